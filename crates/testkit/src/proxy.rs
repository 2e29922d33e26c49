//! A TCP proxy for fault tests, placed between the server and its database. It
//! passes traffic, stalls it, or black-holes it:
//!
//! - [`Mode::Pass`]: bytes are forwarded both ways.
//! - [`Mode::Stall`]: bytes are held back (the proxy stops reading, so the sender
//!   backs up too) and delivered, in order, once the mode is `Pass` again: a slow or
//!   congested network, nothing lost.
//! - [`Mode::BlackHole`]: the network accepts packets and never answers. Every open
//!   connection goes silent for good (what it sends is read and dropped, nothing
//!   comes back), and new connections are accepted and treated the same — as when a
//!   NAT or firewall forgets its connection table. When the mode is `Pass` again,
//!   only connections opened after that work: the dead ones stay dead until their
//!   owner gives up on them.
//!
//! Because the proxy is a process on the path (like PgBouncer, HAProxy or a cloud
//! load balancer), the client's kernel sees its bytes acknowledged during a black
//! hole: only the application's own timeouts can notice, which is what the tests
//! check.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// A loopback port that refuses connections — bound, never listening — and that no
/// other socket can take while this is held (a port merely closed after a probe may
/// be handed to the next test that binds port 0, which then answers in its place).
pub struct RefusingPort {
    _socket: tokio::net::TcpSocket,
    pub port: u16,
}

pub fn refusing_port() -> RefusingPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket
        .bind("127.0.0.1:0".parse().expect("an address"))
        .expect("bind a loopback port");
    let port = socket.local_addr().expect("the bound address").port();
    RefusingPort {
        _socket: socket,
        port,
    }
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Stall,
    BlackHole,
}

/// A running proxy on `127.0.0.1`; stopped (every connection closed) when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    tasks: Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl Proxy {
    /// A proxy to `upstream`, passing traffic.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, watching) = watch::channel(Mode::Pass);
        let tasks = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let connections = tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                connections
                    .lock()
                    .unwrap()
                    .spawn(relay(client, upstream, watching));
            }
        });
        Proxy { addr, mode, tasks }
    }

    /// A proxy to the host and port of `url` (a `postgres://` URL on an IP address).
    pub async fn in_front_of(url: &str) -> Proxy {
        let url = url::Url::parse(url).expect("a valid URL");
        let host = url.host_str().expect("the URL names a host");
        let port = url.port().unwrap_or(5432);
        Proxy::start(
            format!("{host}:{port}")
                .parse()
                .expect("the URL's host is an IP address"),
        )
        .await
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a valid URL");
        url.set_host(Some("127.0.0.1"))
            .expect("the URL takes a host");
        url.set_port(Some(self.addr.port()))
            .expect("the URL takes a port");
        url.into()
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.abort_all();
        }
    }
}

/// One client connection: to the upstream, both directions pumped under the mode.
async fn relay(client: TcpStream, upstream: SocketAddr, mode: watch::Receiver<Mode>) {
    let dead = Arc::new(AtomicBool::new(*mode.borrow() == Mode::BlackHole));
    let (client_read, client_write) = client.into_split();
    if dead.load(Ordering::Relaxed) {
        // Born in a black hole: accepted, never answered.
        let _keep_open = client_write;
        discard(client_read).await;
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, mode.clone(), dead.clone()),
        pump(server_read, client_write, mode, dead),
    );
}

/// Copies `from` to `to` while the mode allows: held back while stalled, dropped for
/// good once the connection has met a black hole.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    dead: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // A black hole kills the connection even while it carries nothing.
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                if *mode.borrow_and_update() == Mode::BlackHole {
                    dead.store(true, Ordering::Relaxed);
                }
                if dead.load(Ordering::Relaxed) {
                    let _keep_open = to;
                    discard(from).await;
                    return;
                }
                continue;
            }
        };
        loop {
            if dead.load(Ordering::Relaxed) {
                let _keep_open = to;
                discard(from).await;
                return;
            }
            match *mode.borrow_and_update() {
                Mode::Pass => break,
                Mode::BlackHole => {
                    dead.store(true, Ordering::Relaxed);
                    continue;
                }
                Mode::Stall => {}
            }
            // Stalled: wait for the mode to change, or for the other direction to
            // find the black hole.
            tokio::select! {
                changed = mode.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(std::time::Duration::from_millis(20)) => {}
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Reads and drops everything until the peer closes.
async fn discard(mut from: tokio::net::tcp::OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = conn.read(&mut buf).await {
                        if n == 0 || conn.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `text` and waits up to `limit` for it to come back.
    async fn round_trip(conn: &mut TcpStream, text: &[u8], limit: Duration) -> Option<Vec<u8>> {
        conn.write_all(text).await.ok()?;
        let mut buf = vec![0u8; text.len()];
        tokio::time::timeout(limit, conn.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    }

    #[tokio::test]
    async fn passes_stalls_and_black_holes() {
        let proxy = Proxy::start(echo_server().await).await;
        let mut conn = TcpStream::connect(proxy.addr()).await.unwrap();
        let long = Duration::from_secs(10);
        assert_eq!(
            round_trip(&mut conn, b"one", long).await.as_deref(),
            Some(&b"one"[..])
        );

        // Stalled: nothing comes back; once passing again, the held bytes arrive.
        proxy.set(Mode::Stall);
        assert_eq!(
            round_trip(&mut conn, b"two", Duration::from_millis(200)).await,
            None
        );
        proxy.set(Mode::Pass);
        let mut held = [0u8; 3];
        tokio::time::timeout(long, conn.read_exact(&mut held))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&held, b"two");

        // A black hole: the open connection and a new one go silent; afterwards the
        // old one stays dead and a new one works.
        proxy.set(Mode::BlackHole);
        let mut born_dead = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut conn, b"three", Duration::from_millis(200)).await,
            None
        );
        assert_eq!(
            round_trip(&mut born_dead, b"four", Duration::from_millis(200)).await,
            None
        );
        proxy.set(Mode::Pass);
        assert_eq!(
            round_trip(&mut conn, b"five", Duration::from_millis(200)).await,
            None
        );
        let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut fresh, b"six", long).await.as_deref(),
            Some(&b"six"[..])
        );
    }
}
