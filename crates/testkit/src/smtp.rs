//! A real SMTP server for tests: Python's `aiosmtpd` (pinned in
//! `.ci/requirements.txt`) running `smtp_sink.py`, which writes every accepted
//! message to a directory as JSON (envelope, headers, decoded text and HTML parts).
//!
//! Recipients whose local part starts with `bounce` are refused with `550`
//! (permanent), `defer` with `451` (transient). The server can be stopped and
//! started again on the same port to simulate an outage.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SINK: &str = include_str!("smtp_sink.py");

/// One received message, as the sink wrote it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub rcpt_to: Vec<String>,
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// A running (or stopped) SMTP sink. Stopped when dropped.
pub struct SmtpServer {
    python: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts a sink on a free port, or `None` when the tools are missing (after
    /// [`crate::tools::require`]'s message; under `CI=true` that fails instead).
    pub fn start() -> Option<SmtpServer> {
        let python = crate::tools::require(
            crate::tools::python_tool("aiosmtpd").and_then(|_| crate::tools::python()),
        )?;
        let dir = std::env::temp_dir().join(format!(
            "agenda_smtp_{}_{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).expect("create the mail directory");
        std::fs::write(dir.join("smtp_sink.py"), SINK).expect("write the sink script");
        let port = free_port();
        let mut server = SmtpServer {
            python,
            dir,
            port,
            child: None,
        };
        server.resume();
        Some(server)
    }

    /// `smtp://127.0.0.1:<port>` (plain SMTP, no authentication).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (an outage): connections are refused until [`Self::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM lets it finish the message it is receiving.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and waits until it listens.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "the SMTP sink is running already");
        std::fs::create_dir_all(self.messages_dir()).expect("create the messages directory");
        let mut child = Command::new(&self.python)
            .arg(self.dir.join("smtp_sink.py"))
            .arg("127.0.0.1")
            .arg(self.port.to_string())
            .arg(self.messages_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        // "ready" is printed once the socket listens.
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)
            .expect("read the SMTP sink's first line");
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        self.child = Some(child);
    }

    fn messages_dir(&self) -> PathBuf {
        self.dir.join("messages")
    }

    /// Every message received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        read_messages(&self.messages_dir())
    }

    /// Waits until at least `count` messages have arrived (at most `limit`), and
    /// returns all received so far. Panics with what arrived when the limit passes.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected {count} e-mail(s) within {limit:?}, got {}: {:?}",
                    received.len(),
                    received.iter().map(|m| &m.subject).collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn read_messages(dir: &Path) -> Vec<Received> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    // Named <pid>-<n>: sort by modification time, then name, for arrival order.
    files.sort_by_key(|p| {
        (
            std::fs::metadata(p).and_then(|m| m.modified()).ok(),
            p.clone(),
        )
    });
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|text| parse(&text))
        .collect()
}

/// The sink's JSON: every field is a string (or null) or a list of strings.
fn parse(text: &str) -> Option<Received> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let s = |key: &str| value[key].as_str().unwrap_or_default().to_owned();
    Some(Received {
        rcpt_to: value["rcpt_to"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        message_id: s("message_id"),
        from: s("from"),
        to: s("to"),
        subject: s("subject"),
        text: s("text"),
        html: s("html"),
    })
}
