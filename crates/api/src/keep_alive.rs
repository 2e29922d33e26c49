//! Honest keep-alive: what happens to a request body the handler did not read.
//!
//! Many answers come before the body is read: a 401 from the `Auth` extractor, a
//! 404, a 413, a 503 from the deadline. HTTP/1.1 can only reuse the connection once
//! the rest of that body has been read off it. Left alone, hyper drains only what
//! has already arrived and otherwise closes the connection *after* sending a
//! keep-alive response, so the client's next request on it fails with no answer.
//!
//! [`honest_keep_alive`] settles it before the response leaves, the way Go's
//! `net/http` does: when the handler left part of the body unread, it reads and
//! discards the rest if that is at most [`DRAIN_LIMIT`] bytes and arrives within
//! [`DRAIN_WAIT`]; otherwise (a larger or endless body, a client waiting for
//! `100 Continue`, an error) the response carries `Connection: close` and hyper
//! closes the connection after sending it. Either way the client is told the truth.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Frame, SizeHint};

/// The most unread body, in bytes, drained to keep a connection open.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// How long the drain waits for the rest of the body before giving up and closing.
pub const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Middleware: drain a small unread request body, or answer `Connection: close`.
pub async fn honest_keep_alive(request: Request, next: Next) -> Response {
    if request.version() > Version::HTTP_11 || request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let slot = Arc::new(Mutex::new(Slot(Some(body))));
    let tracked = Body::new(Tracked(slot.clone()));
    let mut response = next.run(Request::from_parts(parts, tracked)).await;

    let rest = slot.lock().unwrap_or_else(PoisonError::into_inner).0.take();
    let Some(rest) = rest.filter(|b| !b.is_end_stream()) else {
        return response;
    };
    // A client waiting for `100 Continue` has not sent the body: asking for it now
    // only to throw it away would cost both sides more than a new connection.
    let drained = !expects_continue && drain(rest).await;
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Reads and discards the rest of `body` if it is small and arrives promptly;
/// `false` when it would not be. (hyper's size hint is what is still to come of a
/// declared `Content-Length`, so a large one is refused without reading.)
async fn drain(mut body: Body) -> bool {
    if body.size_hint().lower() > DRAIN_LIMIT {
        return false;
    }
    let discard = async {
        let mut drained: u64 = 0;
        while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
        {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                drained += data.len() as u64;
                if drained > DRAIN_LIMIT {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_WAIT, discard)
        .await
        .unwrap_or(false)
}

/// The request body, kept where the middleware can reach it after the handler has
/// dropped its side.
struct Slot(Option<Body>);

/// The body the handler sees: reads through to the [`Slot`].
struct Tracked(Arc<Mutex<Slot>>);

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.0.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.0.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        slot.0
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}
