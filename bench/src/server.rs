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
    log: PathBuf,
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
        let port = free_port()?;
        let mut cmd = Command::new(config.binary);
        cmd.arg("serve")
            .env("DATABASE_URL", config.database_url)
            .env("DB_PGBOUNCER", config.pgbouncer.to_string())
            .env("AUTO_MIGRATE", "false")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("DB_POOL_SIZE", config.pool_size.to_string())
            .env("DB_MAX_OVERFLOW", config.max_overflow.to_string())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", config.log_filter)
            .envs(config.extra_env.iter().map(|(k, v)| (k, v)));
        Server::spawn(cmd, port, config.work_dir, label)
    }

    /// Starts `cmd` (which must listen on `127.0.0.1:port`) in `work_dir` with only
    /// `PATH` and the variables `cmd` sets, its output to `server-<label>.log`.
    pub fn spawn(
        mut cmd: Command,
        port: u16,
        work_dir: &Path,
        label: &str,
    ) -> Result<Server, String> {
        let log_path = work_dir.join(format!("server-{label}.log"));
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        // env_clear() drops what `cmd` set too: set it again after.
        let set: Vec<(std::ffi::OsString, std::ffi::OsString)> = cmd
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        let child = cmd
            .current_dir(work_dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(set)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("start {program}: {e}"))?;
        Ok(Server {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
            label: label.to_owned(),
            log: log_path,
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
                    "the server ({}) exited early: {status}\n{}",
                    self.label,
                    self.log_tail(20)
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
                return Err(format!(
                    "the server ({}) did not become ready within 60 s\n{}",
                    self.label,
                    self.log_tail(20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `lines` lines of the server's output.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// CPU seconds (user + system) used so far by the server and its descendants.
    pub fn cpu_seconds(&self) -> f64 {
        tree_cpu_seconds(self.pid())
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

/// How busy the machine was over a measured window besides what is measured.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MachineLoad {
    /// Cores busy on average over the window, all processes (`/proc/stat`).
    pub busy_cores: f64,
    /// Of those, the cores used by anything else than the watched process trees
    /// (the server, PostgreSQL) and this benchmark process (the load generator):
    /// other engineers' builds and tests on a shared machine.
    pub other_cores: f64,
    /// The 1-minute load average when the window opened.
    pub load_average: f64,
}

/// Readings at the start of a window, closed by [`MachineWindow::close`].
pub struct MachineWindow {
    roots: Vec<u32>,
    started: Instant,
    busy: f64,
    watched: f64,
    load_average: f64,
}

impl MachineWindow {
    pub fn open(roots: &[u32]) -> MachineWindow {
        MachineWindow {
            roots: roots.to_vec(),
            started: Instant::now(),
            busy: machine_busy_seconds(),
            watched: watched_seconds(roots),
            load_average: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok())
                .unwrap_or(0.0),
        }
    }

    pub fn close(self) -> MachineLoad {
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-6);
        let busy = machine_busy_seconds() - self.busy;
        let watched = watched_seconds(&self.roots) - self.watched;
        MachineLoad {
            busy_cores: busy / elapsed,
            other_cores: ((busy - watched) / elapsed).max(0.0),
            load_average: self.load_average,
        }
    }
}

fn watched_seconds(roots: &[u32]) -> f64 {
    roots.iter().map(|&p| tree_cpu_seconds(p)).sum::<f64>()
        + cpu_seconds(std::process::id()).unwrap_or(0.0)
}

/// CPU seconds all cores spent outside idle and I/O wait since boot.
fn machine_busy_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
    (ticks.iter().sum::<f64>() - idle) / clock_ticks_per_second()
}

/// A free TCP port on loopback (bound and released: a child binds it next).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces,
/// so they start after the last `)`): field 3 of the line (state) is index 0.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// CPU ticks of one process: utime + stime, plus cutime + cstime (children it has
/// already waited for) when `reaped` is set.
fn process_ticks(fields: &[String], reaped: bool) -> f64 {
    // utime, stime, cutime, cstime are fields 14-17 of the line: 11-14 after ')'.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let own = tick(11) + tick(12);
    if reaped {
        own + tick(13) + tick(14)
    } else {
        own
    }
}

fn cpu_seconds(pid: u32) -> Option<f64> {
    let fields = stat_fields(pid)?;
    Some(process_ticks(&fields, false) / clock_ticks_per_second())
}

/// CPU seconds used so far by `root` and every live descendant, including the
/// children each of them has already reaped (a PostgreSQL backend that ended, a
/// worker process that exited). 0 when `root` is gone.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    let mut parents: Vec<(u32, u32, f64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(fields) = stat_fields(pid) {
                // The parent pid is field 4 of the line: index 1 after ')'.
                let ppid = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                parents.push((pid, ppid, process_ticks(&fields, true)));
            }
        }
    }
    let mut tree = vec![root];
    let mut ticks = 0.0;
    let mut i = 0;
    while i < tree.len() {
        let pid = tree[i];
        for &(child, ppid, t) in &parents {
            if child == pid {
                ticks += t;
            }
            if ppid == pid && child != pid {
                tree.push(child);
            }
        }
        i += 1;
    }
    ticks / clock_ticks_per_second()
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
    let workspace = workspace();
    eprintln!("building the server: cargo build --release -p agenda-api --bin agenda");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "agenda-api", "--bin", "agenda"])
        .current_dir(&workspace)
        .status()
        .map_err(|e| format!("run cargo: {e}"))?;
    if !status.success() {
        return Err("building the server failed".into());
    }
    Ok(target_dir().join("release").join("agenda"))
}

/// The workspace's target directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ lives in the workspace")
        .to_path_buf()
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

    #[test]
    fn a_process_tree_counts_its_descendants() {
        // A shell whose only CPU is spent by a subshell it started (still alive).
        let mut shell = Command::new("sh")
            .args([
                "-c",
                "(i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; sleep 30) & wait",
            ])
            .spawn()
            .expect("sh");
        let pid = shell.id();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tree = 0.0;
        while Instant::now() < deadline {
            tree = tree_cpu_seconds(pid);
            if tree > 0.05 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let own = cpu_seconds(pid).unwrap_or(0.0);
        let _ = shell.kill();
        let _ = shell.wait();
        assert!(tree > own + 0.04, "tree {tree} s, the shell alone {own} s");
        assert_eq!(tree_cpu_seconds(u32::MAX), 0.0);
    }
}
