//! Keep-alive after an early answer, over a raw socket: the server answers a POST
//! before reading its body (401: no token), and the connection must then either
//! serve the next request or have said `Connection: close`.

use std::time::Duration;

use agenda_testkit::both_engines;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::TestApp;

/// Generous: an answer never takes this long, even on a loaded machine.
const READ_LIMIT: Duration = Duration::from_secs(60);

/// One response read off the socket: status, `Connection` header, body length.
#[derive(Debug)]
struct Answer {
    status: u16,
    connection_close: bool,
}

/// Reads one response (head and `Content-Length` body); `None` when the server
/// closed the connection before sending anything.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Answer> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(READ_LIMIT, stream.read(&mut chunk))
            .await
            .expect("the server answers or closes in time")
            .unwrap_or(0);
        if n == 0 {
            assert!(
                buffer.is_empty(),
                "a truncated response: {:?}",
                String::from_utf8_lossy(buffer)
            );
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            l.strip_prefix(&format!("{name}:"))
                .map(|v| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    let connection_close = header("connection").is_some_and(|v| v.contains("close"));
    while buffer.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(READ_LIMIT, stream.read(&mut chunk))
            .await
            .expect("the body arrives in time")
            .unwrap();
        assert!(n > 0, "the body was cut short");
        buffer.extend_from_slice(&chunk[..n]);
    }
    buffer.drain(..head_end + length);
    Some(Answer {
        status,
        connection_close,
    })
}

fn post_head(length: usize) -> String {
    format!(
        "POST /api/v1/appointments HTTP/1.1\r\nhost: agenda\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n"
    )
}

const NEXT: &[u8] = b"GET /health/live HTTP/1.1\r\nhost: agenda\r\n\r\n";

/// After the first answer: the next request on the same connection is served, or
/// the first answer said `Connection: close` and the server then closed.
async fn next_request_is_honest(stream: &mut TcpStream, buffer: &mut Vec<u8>, first: &Answer) {
    // Writing may fail when the server has closed: that is only allowed after a
    // `Connection: close`, which the read below checks.
    let _ = stream.write_all(NEXT).await;
    let second = read_answer(stream, buffer).await;
    match second {
        Some(second) => assert_eq!(second.status, 200, "the next request is served"),
        None => assert!(
            first.connection_close,
            "closed without saying `Connection: close`"
        ),
    }
}

both_engines! {
    async fn a_body_sent_after_an_early_answer_does_not_break_the_connection(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let body = br#"{"service_id": null}"#;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let mut buffer = Vec::new();
        // Like a client that writes the head first: the answer comes before the body.
        stream.write_all(post_head(body.len()).as_bytes()).await.unwrap();
        let first = read_answer(&mut stream, &mut buffer).await.expect("an answer");
        assert_eq!(first.status, 401);
        let _ = stream.write_all(body).await;
        next_request_is_honest(&mut stream, &mut buffer, &first).await;
        app.stop().await;
    }

    async fn small_unread_bodies_leave_the_connection_usable_or_closed_honestly(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let body = br#"{"service_id": null}"#;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let mut buffer = Vec::new();
        for _ in 0..3 {
            let mut request = post_head(body.len()).into_bytes();
            request.extend_from_slice(body);
            stream.write_all(&request).await.unwrap();
            let first = read_answer(&mut stream, &mut buffer).await.expect("an answer");
            assert_eq!(first.status, 401);
            next_request_is_honest(&mut stream, &mut buffer, &first).await;
            if first.connection_close {
                break;
            }
        }
        app.stop().await;
    }

    async fn a_large_unread_body_gets_connection_close(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let mut stream = TcpStream::connect(app.addr).await.unwrap();
        let mut buffer = Vec::new();
        // 10 MiB announced, a little sent: not worth draining.
        stream.write_all(post_head(10 << 20).as_bytes()).await.unwrap();
        stream.write_all(&[b' '; 1024]).await.unwrap();
        let first = read_answer(&mut stream, &mut buffer).await.expect("an answer");
        assert_eq!((first.status, first.connection_close), (401, true), "{first:?}");
        let mut rest = [0u8; 64];
        let n = tokio::time::timeout(READ_LIMIT, stream.read(&mut rest)).await.expect("closed in time").unwrap_or(0);
        assert_eq!(n, 0, "the server closed the connection after the answer");
        app.stop().await;
    }
}
