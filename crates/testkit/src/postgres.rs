//! A throwaway PostgreSQL server for the test process, and per-test databases cloned
//! from a migrated template.
//!
//! - `TEST_DATABASE_URL` set: that server is used; the template and the per-test
//!   databases are created there and dropped when done.
//! - Otherwise the binaries (`initdb`, `postgres`) are looked up on `PATH` and under
//!   `/usr/lib/postgresql/*/bin`; a cluster is initialised in a fresh temporary
//!   directory and started on a free loopback port. When the tests run as root the
//!   server runs as the `postgres` user (PostgreSQL refuses root).
//! - The server cannot outlive the test process: it is started with a parent-death
//!   signal (immediate shutdown), stopped and deleted by an exit hook on a normal
//!   exit, and directories left by killed runs are swept at the next start.

use std::ffi::CString;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use agenda_storage::db::DatabaseUrl;
use sqlx::{Connection, PgConnection};

/// Where per-test databases come from.
pub(crate) struct Server {
    /// URL of the maintenance database (`postgres`) with superuser rights.
    pub admin_url: String,
    /// Name of the migrated template database.
    pub template: String,
    /// Whether this process started the server (and so owns its lifetime).
    pub local: Option<LocalCluster>,
}

/// A cluster started by this process.
#[derive(Clone)]
pub struct LocalCluster {
    pub root: PathBuf,
    pub data_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub port: u16,
    pub pid: i32,
    pub run_as: Option<(u32, u32)>,
    /// Server settings passed as `-c name=value` after the defaults (so they win).
    pub settings: Vec<(String, String)>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
static LOCAL: Mutex<Vec<LocalCluster>> = Mutex::new(Vec::new());

/// The shared server, started (and its template migrated) on first use.
pub(crate) fn server() -> Result<&'static Server, String> {
    SERVER
        .get_or_init(|| {
            // Initialisation needs async work; it runs on its own thread and runtime so
            // that no pool outlives the runtime that created it.
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?
                    .block_on(start())
            })
            .join()
            .unwrap_or_else(|_| Err("PostgreSQL test server setup panicked".to_owned()))
        })
        .as_ref()
        .map_err(Clone::clone)
}

async fn start() -> Result<Server, String> {
    let template = format!("agenda_template_{}", std::process::id());
    let (admin_url, local) = match std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(url) => {
            let url = DatabaseUrl::parse(&url).map_err(|e| format!("TEST_DATABASE_URL: {e}"))?;
            (url.expose().to_owned(), None)
        }
        None => {
            let cluster = start_local_cluster()?;
            let url = cluster.url("postgres");
            wait_until_ready(&url, Duration::from_secs(60)).await?;
            (url, Some(cluster))
        }
    };
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .map_err(|e| format!("cannot connect to the PostgreSQL test server: {e}"))?;
    exec(&mut admin, &format!("DROP DATABASE IF EXISTS {template}")).await?;
    exec(&mut admin, &format!("CREATE DATABASE {template}")).await?;
    admin.close().await.ok();

    let template_url = database_url(&admin_url, &template);
    crate::migrate_fresh(&template_url).await?;
    if local.is_none() {
        register_external_cleanup(admin_url.clone(), template.clone());
    }
    Ok(Server {
        admin_url,
        template,
        local,
    })
}

/// `admin_url` with its database replaced by `name`.
pub(crate) fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url).expect("admin URL is valid");
    url.set_path(&format!("/{name}"));
    url.into()
}

pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| format!("{sql}: {e}"))
}

/// Creates `name` as a copy of the template.
pub(crate) async fn create_database(server: &Server, name: &str) -> Result<(), String> {
    let mut admin = PgConnection::connect(&server.admin_url)
        .await
        .map_err(|e| e.to_string())?;
    let sql = format!("CREATE DATABASE {name} TEMPLATE {}", server.template);
    // Two clones starting at the same instant may find the template "being accessed".
    let mut result = Err(String::new());
    for _ in 0..20 {
        result = exec(&mut admin, &sql).await;
        match &result {
            Err(e) if e.contains("being accessed by other users") => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => break,
        }
    }
    admin.close().await.ok();
    result
}

/// Drops `name`, ending any session still connected to it.
pub(crate) async fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .map_err(|e| e.to_string())?;
    let result = exec(
        &mut admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )
    .await;
    admin.close().await.ok();
    result
}

async fn wait_until_ready(url: &str, limit: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match PgConnection::connect(url).await {
            Ok(conn) => {
                conn.close().await.ok();
                return Ok(());
            }
            Err(e) if started.elapsed() > limit => {
                return Err(format!(
                    "the PostgreSQL test server did not accept connections within {limit:?}: {e}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The directory holding `initdb` and `postgres`, if PostgreSQL is installed.
pub fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    let mut versioned: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    // Highest major version first.
    versioned.sort_by_key(|p| {
        std::cmp::Reverse(
            p.parent()
                .and_then(|v| v.file_name())
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0),
        )
    });
    on_path
        .chain(versioned)
        .find(|dir| dir.join("initdb").is_file() && dir.join("postgres").is_file())
        .map(|dir| {
            std::fs::canonicalize(dir.join("postgres"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or(dir)
        })
}

fn start_local_cluster() -> Result<LocalCluster, String> {
    LocalCluster::start()
}

impl LocalCluster {
    /// Initialises and starts a new cluster of this process's own, on a free port.
    /// It is stopped and deleted when the process exits.
    pub fn start() -> Result<LocalCluster, String> {
        Self::start_with(&[])
    }

    /// Like [`LocalCluster::start`], with extra server settings (`-c name=value`) that
    /// override the test defaults, e.g. a larger `shared_buffers` for a benchmark.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<LocalCluster, String> {
        Self::start_inner(settings, None)
    }

    /// Like [`LocalCluster::start`], with TLS on (`ssl=on`) and a self-signed
    /// certificate for `localhost` made by `openssl` (which `.ci/apt.txt` pins): a
    /// client that checks certificates (`sslmode=verify-ca` or `verify-full`) and
    /// does not trust it fails its handshake. `Ok(None)` when `openssl` is missing
    /// outside CI (a loud message says so; under `CI=true` that is an error).
    pub fn start_with_tls() -> Result<Option<LocalCluster>, String> {
        let Some(openssl) = crate::tools::require(crate::tools::program("openssl", &["/usr/bin"]))
        else {
            return Ok(None);
        };
        Self::start_inner(&[("ssl", "on")], Some(&openssl)).map(Some)
    }

    /// Initialises and starts a cluster; with `openssl`, TLS on with a self-signed
    /// certificate.
    fn start_inner(
        settings: &[(&str, &str)],
        openssl: Option<&Path>,
    ) -> Result<LocalCluster, String> {
        let bin_dir = find_binaries().ok_or_else(|| {
            "PostgreSQL is not installed: no initdb/postgres on PATH or under /usr/lib/postgresql/*/bin \
             (install it with `apt-get install -y postgresql`, or set TEST_DATABASE_URL)"
                .to_owned()
        })?;
        sweep_stale_clusters();
        let run_as = if unsafe { libc::geteuid() } == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let root = cluster_root(run_as)?;
        let data_dir = root.join("data");

        let mut initdb = Command::new(bin_dir.join("initdb"));
        initdb
            .args(["-D"])
            .arg(&data_dir)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run_to_end(initdb, run_as, "initdb")?;

        let mut cluster = LocalCluster {
            root,
            data_dir,
            bin_dir,
            port: free_port()?,
            pid: 0,
            run_as,
            settings: settings
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        if let Some(openssl) = openssl {
            self_signed_certificate(openssl, &cluster.data_dir, run_as)?;
        }
        cluster.pid = spawn_postmaster(&cluster)?;
        let mut all = LOCAL.lock().unwrap();
        if all.is_empty() {
            register_local_cleanup();
        }
        all.push(cluster.clone());
        Ok(cluster)
    }

    /// Starts a streaming standby of this cluster: a base backup taken with
    /// `pg_basebackup -R` (as the `postgres` user when root), so it follows this
    /// server through streaming replication and answers read-only queries (hot
    /// standby), on a port of its own. It is stopped and deleted when the process exits.
    pub fn start_standby(&self) -> Result<LocalCluster, String> {
        let root = cluster_root(self.run_as)?;
        let data_dir = root.join("data");
        let mut backup = Command::new(self.bin_dir.join("pg_basebackup"));
        backup
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .arg("-D")
            .arg(&data_dir)
            .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        run_to_end(backup, self.run_as, "pg_basebackup")?;
        let mut standby = LocalCluster {
            root,
            data_dir,
            bin_dir: self.bin_dir.clone(),
            port: free_port()?,
            pid: 0,
            run_as: self.run_as,
            settings: self.settings.clone(),
        };
        standby.pid = spawn_postmaster(&standby)?;
        LOCAL.lock().unwrap().push(standby.clone());
        Ok(standby)
    }

    /// Runs `sql` as the superuser in database `name` (e.g. `pg_wal_replay_pause()`
    /// on a standby).
    pub async fn exec(&self, name: &str, sql: &str) -> Result<(), String> {
        let mut conn = PgConnection::connect(&self.url(name))
            .await
            .map_err(|e| e.to_string())?;
        exec(&mut conn, sql).await
    }

    /// The superuser URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops the server like `pg_ctl stop -m fast`: sessions are ended, the port closes.
    pub fn stop_fast(&self) -> Result<(), String> {
        pg_ctl(self, &["stop", "-m", "fast", "-w"]).map(|_| ())
    }

    /// Starts the server again after [`LocalCluster::stop_fast`], on the same port.
    pub fn start_again(&mut self) -> Result<(), String> {
        self.pid = spawn_postmaster(self)?;
        if let Some(known) = LOCAL
            .lock()
            .unwrap()
            .iter_mut()
            .find(|c| c.root == self.root)
        {
            known.pid = self.pid;
        }
        Ok(())
    }

    /// Waits until the server accepts connections.
    pub async fn wait_ready(&self, limit: Duration) -> Result<(), String> {
        wait_until_ready(&self.url("postgres"), limit).await
    }
}

/// Starts the postmaster from a thread that lives as long as the process, so that
/// the parent-death signal fires exactly when the test process ends.
/// A fresh directory for a cluster of this process (swept at the next start if the
/// process is killed), owned by `run_as` when given.
fn cluster_root(run_as: Option<(u32, u32)>) -> Result<PathBuf, String> {
    let root = std::env::temp_dir().join(format!(
        "agenda-testpg-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
    if let Some((uid, gid)) = run_as {
        chown(&root, uid, gid)?;
    }
    Ok(root)
}

/// Runs `cmd` (as `run_as` when given) to its end; its standard error is the error
/// when it fails.
fn run_to_end(mut cmd: Command, run_as: Option<(u32, u32)>, what: &str) -> Result<(), String> {
    if let Some((uid, gid)) = run_as {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().map_err(|e| format!("run {what}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

pub(crate) fn spawn_postmaster(cluster: &LocalCluster) -> Result<i32, String> {
    let log = std::fs::File::create(cluster.root.join("postgres.log")).ok();
    let mut cmd = Command::new(cluster.bin_dir.join("postgres"));
    cmd.arg("-D")
        .arg(&cluster.data_dir)
        .args(["-h", "127.0.0.1", "-p", &cluster.port.to_string()])
        .arg("-k")
        .arg(&cluster.root)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ])
        .args(["-c", "max_connections=400", "-c", "shared_buffers=64MB"])
        .args(["-c", "shared_preload_libraries=pg_stat_statements"])
        .args(
            cluster
                .settings
                .iter()
                .flat_map(|(k, v)| ["-c".to_owned(), format!("{k}={v}")]),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::null, Stdio::from));
    spawn_tied_to_process(cmd, cluster.run_as, libc::SIGQUIT, "agenda-testpg")
}

/// Starts `cmd` (as `run_as` when given) so that it cannot outlive the test process:
/// it gets `signal` when its parent dies. The parent is a thread of its own kept
/// alive until the process exits (a parent-death signal follows the spawning thread,
/// not the process). Returns the child's pid.
pub(crate) fn spawn_tied_to_process(
    mut cmd: Command,
    run_as: Option<(u32, u32)>,
    signal: libc::c_int,
    name: &str,
) -> Result<i32, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some((uid, gid)) = run_as {
                cmd.uid(uid).gid(gid);
            }
            // SAFETY: prctl is async-signal-safe; runs in the child before exec, after
            // the uid change (which would otherwise clear the setting).
            unsafe {
                cmd.pre_exec(move || {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match cmd.spawn() {
                Ok(mut child) => {
                    let _ = tx.send(Ok(child.id() as i32));
                    let _ = child.wait();
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("start {program}: {e}")));
                }
            }
            // Keep the thread (the child's "parent") alive until the process exits.
            loop {
                std::thread::park();
            }
        })
        .map_err(|e| e.to_string())?;
    rx.recv().map_err(|e| e.to_string())?
}

/// `server.crt` and `server.key` (the server's default names) in `data_dir`: a
/// self-signed certificate for `localhost`, the key readable by its owner only.
fn self_signed_certificate(
    openssl: &Path,
    data_dir: &Path,
    run_as: Option<(u32, u32)>,
) -> Result<(), String> {
    let (cert, key) = (data_dir.join("server.crt"), data_dir.join("server.key"));
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .map_err(|e| format!("run openssl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", key.display()))?;
    if let Some((uid, gid)) = run_as {
        chown(&cert, uid, gid)?;
        chown(&key, uid, gid)?;
    }
    Ok(())
}

pub(crate) fn postgres_user() -> Result<(u32, u32), String> {
    let name = CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(
            "running as root but there is no `postgres` user to run the test server".to_owned(),
        );
    }
    Ok(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

pub(crate) fn chown(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("chown {}: {e}", path.display()))
}

pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Removes directories of clusters whose test process no longer exists.
fn sweep_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("agenda-testpg-") else {
            continue;
        };
        let owner: i32 = rest
            .split('-')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if owner != 0 && !process_alive(owner) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

extern "C" fn stop_local_clusters() {
    let clusters = LOCAL
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    for cluster in &clusters {
        // SAFETY: plain signal delivery to our own child (immediate shutdown).
        unsafe {
            libc::kill(cluster.pid, libc::SIGQUIT);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for cluster in &clusters {
        while process_alive(cluster.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&cluster.root);
    }
}

fn register_local_cleanup() {
    // SAFETY: registering a plain extern "C" function.
    unsafe {
        libc::atexit(stop_local_clusters);
    }
}

static EXTERNAL: OnceLock<(String, String)> = OnceLock::new();

extern "C" fn drop_external_template() {
    if let Some((admin_url, template)) = EXTERNAL.get() {
        let (admin_url, template) = (admin_url.clone(), template.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(drop_database(&admin_url, &template));
            }
        })
        .join();
    }
}

fn register_external_cleanup(admin_url: String, template: String) {
    if EXTERNAL.set((admin_url, template)).is_ok() {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(drop_external_template);
        }
    }
}

/// Runs `pg_ctl` against the local cluster as its owner (for restart tests).
pub fn pg_ctl(cluster: &LocalCluster, args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(cluster.bin_dir.join("pg_ctl"));
    cmd.arg("-D").arg(&cluster.data_dir).args(args);
    if let Some((uid, gid)) = cluster.run_as {
        cmd.uid(uid).gid(gid);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}
