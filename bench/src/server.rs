//! The server under test: the real `agenda` binary as a child process, configured by
//! environment variables, and what `/proc` says about it (CPU seconds, peak memory).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `agenda serve`.
pub struct Server {
    child: Child,
    pub base_url: String,
    pub label: String,
}

/// How the server is started.
pub struct ServerConfig<'a> {
    pub binary: &'a Path,
    pub database_url: &'a str,
    /// `DB_PGBOUNCER`: the URL goes through PgBouncer in transaction mode.
    pub pgbouncer: bool,
    pub pool_size: u32,
    pub max_overflow: u32,
    pub log_filter: &'a str,
    /// Working directory (no `.env` there, so only these variables apply).
    pub work_dir: &'a Path,
    /// More variables for the server (`--server-env`), set last.
    pub extra_env: &'a [(String, String)],
}

impl Server {
    pub fn start(config: &ServerConfig<'_>, label: &str) -> Result<Server, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log = std::fs::File::create(config.work_dir.join(format!("server-{label}.log")))
            .map_err(|e| e.to_string())?;
        let child = Command::new(config.binary)
            .arg("serve")
            .current_dir(config.work_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", config.database_url)
            .env("DB_PGBOUNCER", config.pgbouncer.to_string())
            .env("AUTO_MIGRATE", "false")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DB_POOL_SIZE", config.pool_size.to_string())
            .env("DB_MAX_OVERFLOW", config.max_overflow.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", config.log_filter)
            .envs(config.extra_env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {}: {e}", config.binary.display()))?;
        Ok(Server {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            label: label.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `GET /health/ready` answers 200.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "the server ({}) exited early: {status}",
                    self.label
                ));
            }
            if let Ok(r) = http
                .get(format!("{}/health/ready", self.base_url))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                return Err("the server did not become ready within 60 s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid()).unwrap_or(0.0)
    }

    /// Peak resident memory (MiB) since the last [`Server::reset_peak_memory`].
    pub fn peak_memory_mib(&self) -> f64 {
        status_kib(self.pid(), "VmHWM:").map_or(0.0, |k| k as f64 / 1024.0)
    }

    /// Resident memory (MiB) now.
    pub fn resident_memory_mib(&self) -> f64 {
        status_kib(self.pid(), "VmRSS:").map_or(0.0, |k| k as f64 / 1024.0)
    }

    /// Resets the kernel's peak-RSS mark (`/proc/<pid>/clear_refs` ← 5).
    pub fn reset_peak_memory(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The server-side time per request of one route (seconds summed / count), from
    /// the `agenda_http_request_duration_seconds` histogram of `/metrics`.
    pub async fn route_time(&self, http: &reqwest::Client, route: &str) -> Option<(f64, f64)> {
        let text = http
            .get(format!("{}/metrics", self.base_url))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        route_totals(&text, route)
    }

    /// SIGTERM, then wait (graceful shutdown).
    pub fn stop(mut self) {
        // SAFETY: plain signal delivery to our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(25);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `(sum_seconds, count)` of a route's latency histogram in Prometheus text.
pub fn route_totals(metrics: &str, route: &str) -> Option<(f64, f64)> {
    let label = format!("{{route=\"{route}\"}}");
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{label} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Some((
        value("agenda_http_request_duration_seconds_sum")?,
        value("agenda_http_request_duration_seconds_count")?,
    ))
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The workspace's `target/release/agenda`, built first unless `explicit` is given.
pub fn server_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        // The server starts in another directory: make the path absolute.
        return std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ lives in the workspace")
        .to_path_buf();
    eprintln!("building the server: cargo build --release -p agenda-api --bin agenda");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "agenda-api", "--bin", "agenda"])
        .current_dir(&workspace)
        .status()
        .map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err("building the server failed".into());
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok(target.join("release").join("agenda"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_route_from_prometheus_text() {
        let text = "agenda_http_request_duration_seconds_bucket{route=\"/a\",le=\"0.001\"} 3\n\
                    agenda_http_request_duration_seconds_sum{route=\"/a\"} 0.25\n\
                    agenda_http_request_duration_seconds_count{route=\"/a\"} 100\n\
                    agenda_http_request_duration_seconds_sum{route=\"/b\"} 9\n";
        assert_eq!(route_totals(text, "/a"), Some((0.25, 100.0)));
        assert_eq!(route_totals(text, "/c"), None);
    }

    #[test]
    fn reads_our_own_cpu_time() {
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
