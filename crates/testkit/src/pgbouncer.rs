//! A real PgBouncer (Debian's, found by [`crate::tools::pgbouncer`]) in transaction
//! pooling mode, in front of a test PostgreSQL server.
//!
//! Each [`PgBouncer`] is a process of its own on a free loopback port, with its
//! configuration and log in a temporary directory. It forwards every database name
//! to the server it was started for (`* = host=… port=…`), pools in transaction mode
//! with `default_pool_size` server connections per database and user, and trusts the
//! users it knows (the superuser and [`crate::APP_ROLE`]); PostgreSQL checks
//! passwords behind it as usual. It cannot outlive the test process (parent-death
//! signal) and is stopped when dropped. When run as root it runs as the `postgres`
//! user, since PgBouncer refuses to run as root.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::{chown, free_port, postgres_user, spawn_tied_to_process};

/// A running PgBouncer.
pub struct PgBouncer {
    pub port: u16,
    pid: i32,
    root: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of the server of `url` (a test
    /// database URL: its host and port are the upstream), with `default_pool_size`
    /// server connections per database and user, and `extra` settings of its
    /// `[pgbouncer]` section. `Ok(None)` when PgBouncer is not installed outside CI (a
    /// loud message says so); under `CI=true` that panics.
    pub fn start(
        url: &str,
        default_pool_size: u32,
        extra: &[(&str, &str)],
    ) -> Result<Option<PgBouncer>, String> {
        let Some(program) = crate::tools::require(crate::tools::pgbouncer()) else {
            return Ok(None);
        };
        let upstream = url::Url::parse(url).map_err(|e| format!("parse {url}: {e}"))?;
        let host = upstream.host_str().unwrap_or("127.0.0.1").to_owned();
        let upstream_port = upstream.port().unwrap_or(5432);
        let root = std::env::temp_dir().join(format!(
            "agenda-pgbouncer-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        let port = free_port()?;
        // PgBouncer logs in to PostgreSQL with these passwords when the server asks.
        let users = [
            (
                upstream.username().to_owned(),
                upstream.password().unwrap_or("").to_owned(),
            ),
            (
                crate::APP_ROLE.to_owned(),
                crate::APP_ROLE_PASSWORD.to_owned(),
            ),
        ];
        let auth: String = users
            .iter()
            .map(|(user, password)| format!("\"{user}\" \"{password}\"\n"))
            .collect();
        std::fs::write(root.join("users.txt"), auth).map_err(|e| e.to_string())?;
        let extra: String = extra.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        let config = format!(
            "[databases]\n\
             * = host={host} port={upstream_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {root}/users.txt\n\
             pool_mode = transaction\n\
             default_pool_size = {default_pool_size}\n\
             max_client_conn = 2000\n\
             logfile = {root}/pgbouncer.log\n\
             {extra}",
            root = root.display(),
        );
        std::fs::write(root.join("pgbouncer.ini"), config).map_err(|e| e.to_string())?;
        let run_as = if unsafe { libc::geteuid() } == 0 {
            let (uid, gid) = postgres_user()?;
            for entry in ["", "users.txt", "pgbouncer.ini"] {
                chown(&root.join(entry), uid, gid)?;
            }
            Some((uid, gid))
        } else {
            None
        };
        let mut cmd = Command::new(program);
        cmd.arg(root.join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = spawn_tied_to_process(cmd, run_as, libc::SIGTERM, "agenda-pgbouncer")?;
        let bouncer = PgBouncer { port, pid, root };
        bouncer.wait_listening(Duration::from_secs(30))?;
        Ok(Some(bouncer))
    }

    /// `url` with its host and port replaced by this PgBouncer's.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a valid database URL");
        url.set_host(Some("127.0.0.1")).expect("URL takes a host");
        url.set_port(Some(self.port)).expect("URL takes a port");
        url.to_string()
    }

    /// PgBouncer's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("pgbouncer.log")).unwrap_or_default()
    }

    fn wait_listening(&self, limit: Duration) -> Result<(), String> {
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if started.elapsed() > limit {
                return Err(format!(
                    "pgbouncer did not listen on port {} within {limit:?}: {}",
                    self.port,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // SAFETY: signalling the child this value started.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
