//! The connection layer: one pool per process, its per-connection session settings,
//! startup retries, health, transactions and shutdown.
//!
//! [`Db::connect`] builds the pool once from [`DbSettings`]; the handle is cheap to
//! clone and is shared by the whole process. Callers either run single statements on
//! the pool ([`Db::conn`]) or open a transaction ([`Db::begin`]) that commits
//! explicitly and rolls back when dropped — on an error, a panic, or a cancelled
//! request alike. See `docs/connections.md`.

mod settings;
mod url;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use serde::Serialize;
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

pub use settings::{
    DEFAULT_DATABASE_URL, DbSettings, PostgresSession, SettingsSummary, SqliteSession, SslMode,
};
pub use url::{DatabaseUrl, Engine, UrlError, redact};

use crate::error::StorageError;

/// The process-wide database handle: the pool plus what is needed to observe it.
#[derive(Clone)]
pub struct Db {
    conn: DatabaseConnection,
    inner: Arc<Inner>,
}

struct Inner {
    pool: RawPool,
    summary: SettingsSummary,
    /// Statements run through this pool (and its transactions) since it opened.
    statements: Arc<AtomicU64>,
    /// Query durations, acquire waits and timeouts, for `GET /metrics`.
    metrics: Arc<crate::metrics::DbMetrics>,
}

/// The driver's pool, kept for statistics and shutdown.
#[derive(Clone)]
enum RawPool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Why the database could not be reached at startup.
#[derive(Debug, thiserror::Error)]
#[error("could not connect to the database at {url} after {attempts} attempt(s): {reason}")]
pub struct ConnectError {
    pub url: String,
    pub attempts: u32,
    pub reason: String,
    /// True when retrying cannot help (bad password, missing database, bad TLS setup).
    pub permanent: bool,
}

/// Connection counts of the pool at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolStatus {
    /// Open connections (idle + in use).
    pub size: u32,
    pub idle: u32,
    pub in_use: u32,
    /// Connections kept open even when idle (`DB_POOL_SIZE`).
    pub min: u32,
    /// The most the pool will open (`DB_POOL_SIZE + DB_MAX_OVERFLOW`).
    pub max: u32,
}

/// The outcome of [`Db::health`].
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub ok: bool,
    pub engine: Engine,
    /// Time taken by the round trip (or until the deadline, when it failed).
    pub latency_ms: f64,
    pub pool: PoolStatus,
    /// A short, safe description of the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Db {
    /// Builds the pool and proves the database is reachable, retrying with
    /// exponential backoff and jitter up to `DB_CONNECT_RETRIES` attempts. Errors that
    /// retrying cannot fix (authentication, unknown database) stop at once.
    pub async fn connect(settings: &DbSettings) -> Result<Db, ConnectError> {
        let db = Db::connect_lazy(settings).map_err(|reason| ConnectError {
            url: settings.url.redacted(),
            attempts: 0,
            reason,
            permanent: true,
        })?;
        let attempts = settings.connect_retries.max(1);
        for attempt in 1..=attempts {
            let error = match db.ping_raw().await {
                Ok(()) => {
                    tracing::info!(
                        engine = %settings.engine(),
                        url = %settings.url.redacted(),
                        attempt,
                        pool_size = settings.pool_size,
                        max_connections = settings.max_connections(),
                        "database connected"
                    );
                    return Ok(db);
                }
                Err(e) => e,
            };
            let permanent = is_permanent(&error);
            let reason = startup_reason(&error, settings.pool_timeout);
            if permanent || attempt == attempts {
                db.close().await;
                return Err(ConnectError {
                    url: settings.url.redacted(),
                    attempts: attempt,
                    reason,
                    permanent,
                });
            }
            let delay = backoff(attempt);
            tracing::warn!(
                attempt,
                of = attempts,
                retry_in_ms = delay.as_millis() as u64,
                error = %reason,
                "database not reachable yet; retrying"
            );
            tokio::time::sleep(delay).await;
        }
        unreachable!("the loop returns on its last attempt")
    }

    /// Builds the pool without opening a connection. Connections are opened on first
    /// use and then kept at `DB_POOL_SIZE` by the pool's maintenance task.
    pub fn connect_lazy(settings: &DbSettings) -> Result<Db, String> {
        settings.check().map_err(|e| e.to_string())?;
        let (mut conn, pool) = match settings.engine() {
            Engine::Postgres => {
                let pool = postgres_pool(settings)?;
                (
                    DatabaseConnection::from(pool.clone()),
                    RawPool::Postgres(pool),
                )
            }
            Engine::Sqlite => {
                let pool = sqlite_pool(settings)?;
                (
                    DatabaseConnection::from(pool.clone()),
                    RawPool::Sqlite(pool),
                )
            }
        };
        let statements = Arc::new(AtomicU64::new(0));
        let metrics = Arc::new(crate::metrics::DbMetrics::default());
        let observer = QueryObserver {
            echo: settings.echo,
            slow: settings.slow_query,
            statements: statements.clone(),
            metrics: metrics.clone(),
        };
        conn.set_metric_callback(move |info| observer.observe(info));
        if let Some(note) = settings.url.normalization() {
            tracing::info!(url = %settings.url.redacted(), "database URL understood: {note}");
        }
        Ok(Db {
            conn,
            inner: Arc::new(Inner {
                pool,
                statements,
                metrics,
                summary: SettingsSummary::from(settings),
            }),
        })
    }

    /// The sea-orm connection: run statements on the pool (each acquires and
    /// releases a connection). On PostgreSQL under row-level security a statement on
    /// the bare pool has entered no tenant and sees no tenant-owned rows: tenant work
    /// goes through [`Db::begin_in`] / [`Db::read_in`].
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn engine(&self) -> Engine {
        self.inner.summary.engine
    }

    /// The settings in force, without secrets.
    pub fn settings(&self) -> &SettingsSummary {
        &self.inner.summary
    }

    /// Opens a read-write transaction. It commits only through `commit()`; dropping it
    /// rolls back. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// concurrent writers queue on the busy timeout instead of failing with "database
    /// is locked" when a read lock cannot be upgraded.
    pub async fn begin(&self) -> Result<DatabaseTransaction, StorageError> {
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let started = Instant::now();
        let result = self.conn.begin_with_options(options).await;
        self.record_acquire(started, result.as_ref().err());
        Ok(result?)
    }

    /// [`Db::begin`], then enters `scope` ([`crate::tenant::enter`]): the write
    /// transaction of a unit of work that acts for one organization. On PostgreSQL,
    /// row-level security then shows it that organization's rows only.
    pub async fn begin_in(
        &self,
        scope: crate::TenantScope,
    ) -> Result<DatabaseTransaction, StorageError> {
        let tx = self.begin().await?;
        crate::tenant::enter(&tx, scope).await?;
        Ok(tx)
    }

    /// [`Db::begin_read`], then enters `scope`: consistent reads for one organization.
    pub async fn read_in(
        &self,
        scope: crate::TenantScope,
    ) -> Result<DatabaseTransaction, StorageError> {
        let tx = self.begin_read().await?;
        crate::tenant::enter(&tx, scope).await?;
        Ok(tx)
    }

    fn record_acquire(&self, started: Instant, err: Option<&sea_orm::DbErr>) {
        let metrics = &self.inner.metrics;
        metrics.acquire_wait.observe(started.elapsed());
        if let Some(err) = err
            && matches!(
                StorageError::from(err.clone()),
                StorageError::Unavailable {
                    reason: crate::error::POOL_TIMEOUT,
                    ..
                }
            )
        {
            metrics.acquire_timeouts.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Query durations, acquire waits and timeouts of this pool.
    pub fn metrics(&self) -> &crate::metrics::DbMetrics {
        &self.inner.metrics
    }

    /// Opens a transaction for reads: one consistent snapshot, no write lock on SQLite.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, StorageError> {
        let started = Instant::now();
        let result = self.conn.begin().await;
        self.record_acquire(started, result.as_ref().err());
        Ok(result?)
    }

    /// How many statements this pool (and transactions begun from it) has run: for
    /// metrics, and for tests that prove a code path runs a fixed number of queries.
    pub fn statements_executed(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Connection counts right now.
    pub fn pool_status(&self) -> PoolStatus {
        let (size, idle) = match &self.inner.pool {
            RawPool::Postgres(p) => (p.size(), p.num_idle()),
            RawPool::Sqlite(p) => (p.size(), p.num_idle()),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolStatus {
            size,
            idle,
            in_use: size - idle,
            min: self.inner.summary.pool_size,
            max: self.inner.summary.max_connections,
        }
    }

    /// A real round trip to the database, bounded by `deadline`.
    pub async fn health(&self, deadline: Duration) -> Health {
        let started = Instant::now();
        let error = match tokio::time::timeout(deadline, self.ping_raw()).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(match StorageError::from(e) {
                StorageError::Unavailable { reason, .. } => reason.to_owned(),
                StorageError::Timeout { .. } => "the database did not answer in time".to_owned(),
                _ => "the database returned an error".to_owned(),
            }),
            Err(_) => Some(format!("no answer within {} ms", deadline.as_millis())),
        };
        Health {
            ok: error.is_none(),
            engine: self.engine(),
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            pool: self.pool_status(),
            error,
        }
    }

    /// Closes the pool: waits for connections in use to be returned, then closes all.
    pub async fn close(&self) {
        match &self.inner.pool {
            RawPool::Postgres(p) => p.close().await,
            RawPool::Sqlite(p) => p.close().await,
        }
    }

    pub fn is_closed(&self) -> bool {
        match &self.inner.pool {
            RawPool::Postgres(p) => p.is_closed(),
            RawPool::Sqlite(p) => p.is_closed(),
        }
    }

    /// The PostgreSQL pool, for the few operational queries that need the driver
    /// directly (connection monitoring). `None` on SQLite.
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.inner.pool {
            RawPool::Postgres(p) => Some(p),
            RawPool::Sqlite(_) => None,
        }
    }

    /// The SQLite pool; `None` on PostgreSQL.
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.inner.pool {
            RawPool::Sqlite(p) => Some(p),
            RawPool::Postgres(_) => None,
        }
    }

    /// Acquires a connection (opening one if needed, pinging it when pre-ping is on)
    /// and runs a trivial statement on it.
    async fn ping_raw(&self) -> Result<(), sqlx::Error> {
        match &self.inner.pool {
            RawPool::Postgres(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
            RawPool::Sqlite(p) => sqlx::query("SELECT 1").execute(p).await.map(|_| ()),
        }
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("url", &self.inner.summary.url)
            .field("pool", &self.pool_status())
            .finish()
    }
}

fn postgres_pool(s: &DbSettings) -> Result<PgPool, String> {
    let mut options = PgConnectOptions::from_str(s.url.expose())
        .map_err(|e| {
            format!(
                "invalid PostgreSQL URL {}: {}",
                s.url.redacted(),
                redact(&e.to_string())
            )
        })?
        .application_name(&s.application_name)
        .disable_statement_logging();
    if let Some(mode) = s.ssl_mode {
        options = options.ssl_mode(match mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        });
    }
    // Applied by a query on every new physical connection rather than as startup
    // parameters, because connection poolers (PgBouncer) drop unknown startup options.
    let session = [
        ("statement_timeout", millis(s.statement_timeout)),
        ("lock_timeout", millis(s.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            millis(s.idle_in_transaction_timeout),
        ),
        ("application_name", s.application_name.clone()),
    ];
    Ok(pool_options::<sqlx::Postgres>(s)
        .after_connect(move |conn, _meta| {
            let session = session.clone();
            Box::pin(async move {
                let mut query = sqlx::query(
                    "SELECT set_config($1, $2, false), set_config($3, $4, false), \
                            set_config($5, $6, false), set_config($7, $8, false)",
                );
                for (name, value) in session {
                    query = query.bind(name).bind(value);
                }
                query.execute(conn).await.map(|_| ())
            })
        })
        .connect_lazy_with(options))
}

fn sqlite_pool(s: &DbSettings) -> Result<SqlitePool, String> {
    // These are applied by the driver to every connection it opens (as PRAGMAs).
    let options = SqliteConnectOptions::from_str(s.url.expose())
        .map_err(|e| format!("invalid SQLite URL {}: {e}", s.url.redacted()))?
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(s.sqlite_busy_timeout)
        .synchronous(SqliteSynchronous::Normal)
        .disable_statement_logging();
    Ok(pool_options::<sqlx::Sqlite>(s).connect_lazy_with(options))
}

/// Pool sizing and lifetimes, identical for both engines.
fn pool_options<DB: sqlx::Database>(s: &DbSettings) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .min_connections(s.pool_size)
        .max_connections(s.max_connections())
        .acquire_timeout(s.pool_timeout)
        .max_lifetime(nonzero(s.pool_recycle))
        .idle_timeout(nonzero(s.idle_timeout))
        .test_before_acquire(s.pre_ping)
}

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// PostgreSQL reads a bare number as milliseconds; 0 disables a timeout.
fn millis(d: Duration) -> String {
    d.as_millis().to_string()
}

/// Delay before startup attempt `attempt + 1`: 250 ms doubling per attempt, capped at
/// 10 s, with "equal jitter" (half fixed, half random) so restarted replicas do not
/// reconnect in lockstep.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1 << attempt.min(10).saturating_sub(1));
    let capped = base.min(Duration::from_secs(10));
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

/// What a failed startup attempt reports. The driver keeps retrying a refused
/// connection until `DB_POOL_TIMEOUT` and then says "pool timed out", which reads like
/// an exhausted pool although nothing uses the pool yet: say what it means instead.
fn startup_reason(err: &sqlx::Error, pool_timeout: Duration) -> String {
    match err {
        sqlx::Error::PoolTimedOut => format!(
            "no connection could be opened within DB_POOL_TIMEOUT ({} ms): the server \
             refused it, did not answer, or is still starting up",
            pool_timeout.as_millis()
        ),
        other => redact(&other.to_string()),
    }
}

/// Errors that no amount of retrying will fix.
fn is_permanent(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Configuration(_) | sqlx::Error::Tls(_) => true,
        // The TLS library reports a refused handshake (an untrusted or wrong
        // certificate, a protocol mismatch) as invalid data on the socket.
        sqlx::Error::Io(e) => e.kind() == std::io::ErrorKind::InvalidData,
        sqlx::Error::Database(db) => {
            // invalid_authorization_specification / invalid_password (28…),
            // invalid_catalog_name (3D000): wrong credentials or database name.
            db.code()
                .is_some_and(|c| c.starts_with("28") || c == "3D000")
        }
        _ => false,
    }
}

/// Logs statements: all of them at INFO when `DB_ECHO` is on (target `agenda::sql`),
/// slow ones at WARN. Only the SQL text is logged, never the bound values, which may
/// hold personal data or secrets.
#[derive(Clone)]
struct QueryObserver {
    echo: bool,
    slow: Duration,
    statements: Arc<AtomicU64>,
    metrics: Arc<crate::metrics::DbMetrics>,
}

impl QueryObserver {
    fn observe(&self, info: &sea_orm::metric::Info<'_>) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.metrics.query_duration.observe(info.elapsed);
        if info.failed {
            self.metrics.query_errors.fetch_add(1, Ordering::Relaxed);
        }
        let elapsed_ms = info.elapsed.as_secs_f64() * 1000.0;
        if !self.slow.is_zero() && info.elapsed >= self.slow {
            tracing::warn!(
                target: "agenda::sql",
                elapsed_ms,
                failed = info.failed,
                sql = %info.statement.sql,
                "slow statement"
            );
        } else if self.echo {
            tracing::info!(target: "agenda::sql", elapsed_ms, failed = info.failed, sql = %info.statement.sql);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 1..=20 {
            let d = backoff(attempt);
            let nominal = Duration::from_millis(250)
                .saturating_mul(1 << attempt.min(10).saturating_sub(1))
                .min(Duration::from_secs(10));
            assert!(d >= nominal / 2 && d <= nominal, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(20) <= Duration::from_secs(10));
    }
}
