//! The connection layer: one pool per process, its per-connection session settings,
//! startup retries, health, transactions and shutdown.
//!
//! [`Db::connect`] builds the pool once from [`DbSettings`]; the handle is cheap to
//! clone and is shared by the whole process. Callers either run single statements on
//! the pool ([`Db::conn`]) or open a transaction ([`Db::begin`]) that commits
//! explicitly and rolls back when dropped — on an error, a panic, or a cancelled
//! request alike. Liveness checks and the pool's maintenance are in [`pool`]: every
//! one of them is bounded, so a dead or black-holed connection is let go within
//! seconds. On SQLite, write transactions queue in the process for one writer
//! connection (the writer lane), so concurrent writers wait their turn instead of
//! meeting SQLite's busy timeout. See `docs/connections.md`.

mod pool;
mod replicas;
mod settings;
mod url;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde::Serialize;
use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgPool, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteSynchronous};

pub use replicas::{Lsn, ReplicaStatus};
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
    policy: pool::Policy,
    /// SQLite only: the one connection every write transaction of this process
    /// queues for (see [`Db::begin`]).
    writer: Option<Writer>,
    summary: SettingsSummary,
    /// Statements run through this pool (and its transactions) since it opened.
    statements: Arc<AtomicU64>,
    /// The registry this pool's figures are recorded in (see [`Db::registry`]).
    registry: crate::metrics::Registry,
    /// Query durations, acquire waits and timeouts, for `GET /metrics`.
    metrics: crate::metrics::DbMetrics,
    /// PgBouncer transaction mode (`DB_PGBOUNCER`): what every transaction runs first,
    /// in one simple-query message (see [`pgbouncer_prelude`]).
    transaction_prelude: Option<String>,
    /// Idle connections that may be dead are pinged before use (see
    /// [`Db::suspect_idle_connections`]).
    suspicion: Arc<pool::Suspicion>,
    /// The read replicas (`DATABASE_READ_URL`), when any.
    replicas: Option<replicas::Replicas>,
    /// Where [`Db::listener`] connects: PostgreSQL itself (`DATABASE_DIRECT_URL`
    /// behind PgBouncer, else `DATABASE_URL`); `None` on SQLite, or behind PgBouncer
    /// without a direct URL.
    direct: Option<PgConnectOptions>,
}

impl Inner {
    fn pool_status(&self) -> PoolStatus {
        let (size, idle) = self.pool.size_and_idle();
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolStatus {
            size,
            idle,
            in_use: size - idle,
            min: self.summary.pool_size,
            max: self.summary.max_connections,
        }
    }
}

/// `agenda_db_pool_*`: the pool's connection counts, read when scraped. The hook holds
/// the pool weakly, so the registry never keeps a closed pool alive.
fn register_pool_gauges(inner: &Arc<Inner>) {
    let registry = &inner.registry;
    let connections = "Connections of the pool now, by state.";
    let idle = registry.gauge(
        "agenda_db_pool_connections",
        connections,
        &[("state", "idle")],
    );
    let in_use = registry.gauge(
        "agenda_db_pool_connections",
        connections,
        &[("state", "in_use")],
    );
    let min = registry.gauge(
        "agenda_db_pool_min",
        "Connections kept open (DB_POOL_SIZE).",
        &[],
    );
    let max = registry.gauge(
        "agenda_db_pool_max",
        "The most connections the pool opens (DB_POOL_SIZE + DB_MAX_OVERFLOW).",
        &[],
    );
    let pool = Arc::downgrade(inner);
    registry.on_scrape(move || {
        if let Some(inner) = pool.upgrade() {
            let status = inner.pool_status();
            idle.set(status.idle);
            in_use.set(status.in_use);
            min.set(status.min);
            max.set(status.max);
        }
    });
}

/// The states a replica can be in (see [`ReplicaStatus::state`]).
const REPLICA_STATES: [&str; 4] = ["unknown", "down", "up", "lagging"];

/// `agenda_db_replica_*`, one set per `DATABASE_READ_URL` entry, read when scraped:
/// `up` (1 while reads go to it), `state` (1 for its current state, 0 for the
/// others: the replica's label set never changes), the last measured lag, and the
/// reads it served. Held weakly, like the pool's gauges.
fn register_replica_gauges(inner: &Arc<Inner>) {
    let Some(replicas) = &inner.replicas else {
        return;
    };
    let registry = &inner.registry;
    let handles: Vec<_> = replicas
        .status()
        .iter()
        .map(|r| {
            let replica = [("replica", r.url.as_str())];
            let states = REPLICA_STATES.map(|state| {
                registry.gauge(
                    "agenda_db_replica_state",
                    "1 for the replica's current state (unknown, down, up, lagging), 0 for the others.",
                    &[("replica", r.url.as_str()), ("state", state)],
                )
            });
            (
                registry.gauge(
                    "agenda_db_replica_up",
                    "1 while reads may go to this replica (answering, a standby, within DB_REPLICA_MAX_LAG).",
                    &replica,
                ),
                states,
                registry.gauge(
                    "agenda_db_replica_lag_seconds",
                    "The replica's replay lag at its last check.",
                    &replica,
                ),
                registry.counter(
                    "agenda_db_replica_reads_total",
                    "Reads this replica served since the process started.",
                    &replica,
                ),
            )
        })
        .collect();
    let pool = Arc::downgrade(inner);
    registry.on_scrape(move || {
        let Some(statuses) = pool
            .upgrade()
            .and_then(|inner| inner.replicas.as_ref().map(replicas::Replicas::status))
        else {
            return;
        };
        for ((up, states, lag, reads), status) in handles.iter().zip(&statuses) {
            up.set(f64::from(u8::from(status.state == "up")));
            for (state, gauge) in REPLICA_STATES.iter().zip(states) {
                gauge.set(f64::from(u8::from(status.state == *state)));
            }
            if let Some(ms) = status.lag_ms {
                lag.set(ms as f64 / 1000.0);
            }
            reads.absolute(status.reads);
        }
    });
}

/// SQLite's writer lane: a pool of exactly one connection, whose acquire queue is
/// first come, first served and bounded by `DB_POOL_TIMEOUT`.
struct Writer {
    pool: SqlitePool,
    conn: DatabaseConnection,
    policy: pool::Policy,
}

/// The driver's pool, kept for statistics, maintenance and shutdown.
#[derive(Clone)]
enum RawPool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

impl RawPool {
    fn size_and_idle(&self) -> (u32, usize) {
        match self {
            RawPool::Postgres(p) => (p.size(), p.num_idle()),
            RawPool::Sqlite(p) => (p.size(), p.num_idle()),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            RawPool::Postgres(p) => p.is_closed(),
            RawPool::Sqlite(p) => p.is_closed(),
        }
    }

    async fn close(&self) {
        match self {
            RawPool::Postgres(p) => p.close().await,
            RawPool::Sqlite(p) => p.close().await,
        }
    }

    async fn maintain(&self, policy: &pool::Policy) {
        match self {
            RawPool::Postgres(p) => pool::maintain(p, policy).await,
            RawPool::Sqlite(p) => pool::maintain(p, policy).await,
        }
    }

    async fn open_minimum(&self, policy: &pool::Policy) -> Result<(), sqlx::Error> {
        match self {
            RawPool::Postgres(p) => pool::open_minimum(p, policy, Vec::new()).await,
            RawPool::Sqlite(p) => pool::open_minimum(p, policy, Vec::new()).await,
        }
    }
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
    /// Whether the pool runs in PgBouncer transaction-pooling mode (`DB_PGBOUNCER`).
    pub pgbouncer: bool,
    /// Time taken by the round trip (or until the deadline, when it failed).
    pub latency_ms: f64,
    pub pool: PoolStatus,
    /// A short, safe description of the failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The read replicas: reads skip those not `up`; the primary alone decides
    /// readiness.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaStatus>,
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
            let error = match db.prove_reachable().await {
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
    /// use, and the maintenance task (started here, in the current Tokio runtime)
    /// brings the pool to `DB_POOL_SIZE` in the background.
    pub fn connect_lazy(settings: &DbSettings) -> Result<Db, String> {
        settings.check().map_err(|e| e.to_string())?;
        let discarded = Arc::new(tokio::sync::Notify::new());
        let suspicion = Arc::new(pool::Suspicion::new());
        let policy = pool::Policy::new(settings, settings.pool_size, settings.max_connections());
        let (pool, writer) = match settings.engine() {
            Engine::Postgres => (
                RawPool::Postgres(postgres_pool(
                    settings,
                    policy,
                    discarded.clone(),
                    suspicion.clone(),
                )?),
                None,
            ),
            Engine::Sqlite => {
                let writer_policy = pool::Policy::new(settings, settings.pool_size.min(1), 1);
                let writer = sqlite_pool(
                    settings,
                    writer_policy,
                    discarded.clone(),
                    suspicion.clone(),
                )?;
                (
                    RawPool::Sqlite(sqlite_pool(
                        settings,
                        policy,
                        discarded.clone(),
                        suspicion.clone(),
                    )?),
                    Some(Writer {
                        conn: DatabaseConnection::from(writer.clone()),
                        pool: writer,
                        policy: writer_policy,
                    }),
                )
            }
        };
        let statements = Arc::new(AtomicU64::new(0));
        let registry = crate::metrics::Registry::new();
        let metrics = crate::metrics::DbMetrics::register(&registry);
        let observer = QueryObserver {
            echo: settings.echo,
            slow: settings.slow_query,
            statements: statements.clone(),
            metrics: metrics.clone(),
        };
        let mut conn = match &pool {
            RawPool::Postgres(p) => DatabaseConnection::from(p.clone()),
            RawPool::Sqlite(p) => DatabaseConnection::from(p.clone()),
        };
        let mut writer = writer;
        if let Some(writer) = &mut writer {
            let observer = observer.clone();
            writer
                .conn
                .set_metric_callback(move |info| observer.observe(info));
        }
        conn.set_metric_callback(move |info| observer.observe(info));
        let direct = match (settings.engine(), settings.pgbouncer, &settings.direct_url) {
            (Engine::Sqlite, _, _) | (Engine::Postgres, true, None) => None,
            (Engine::Postgres, true, Some(url)) => Some(pg_connect_options(settings, url)?),
            (Engine::Postgres, false, _) => Some(pg_connect_options(settings, &settings.url)?),
        };
        let replicas = if settings.read_urls.is_empty() {
            None
        } else {
            let mut members = Vec::new();
            for url in &settings.read_urls {
                let mut own = settings.clone();
                own.url = url.clone();
                own.read_urls.clear();
                members.push((Db::connect_lazy(&own)?, url.redacted()));
            }
            Some(replicas::Replicas::new(members, settings))
        };
        if let Some(note) = settings.url.normalization() {
            tracing::info!(url = %settings.url.redacted(), "database URL understood: {note}");
        }
        let inner = Arc::new(Inner {
            pool,
            policy,
            writer,
            statements,
            registry,
            metrics,
            transaction_prelude: settings.pgbouncer.then(|| pgbouncer_prelude(settings)),
            suspicion,
            replicas,
            direct,
            summary: SettingsSummary::from(settings),
        });
        register_pool_gauges(&inner);
        register_replica_gauges(&inner);
        pool::spawn_maintenance(
            Arc::downgrade(&inner),
            settings.maintenance_interval(),
            discarded,
            |inner: Arc<Inner>| async move {
                if inner.pool.is_closed() {
                    return false;
                }
                inner.pool.maintain(&inner.policy).await;
                if let Some(writer) = &inner.writer {
                    pool::maintain(&writer.pool, &writer.policy).await;
                }
                true
            },
        );
        if inner.replicas.is_some() {
            pool::spawn_maintenance(
                Arc::downgrade(&inner),
                replicas::CHECK_INTERVAL,
                Arc::new(tokio::sync::Notify::new()),
                |inner: Arc<Inner>| async move {
                    if inner.pool.is_closed() {
                        return false;
                    }
                    if let Some(replicas) = &inner.replicas {
                        replicas.check_all().await;
                    }
                    true
                },
            );
        }
        Ok(Db { conn, inner })
    }

    /// One startup attempt: a round trip, then the pool's minimum opened (so that
    /// readiness never reports a pool that cannot hold `DB_POOL_SIZE`).
    async fn prove_reachable(&self) -> Result<(), sqlx::Error> {
        self.ping_raw().await?;
        self.inner.pool.open_minimum(&self.inner.policy).await?;
        if let Some(writer) = &self.inner.writer {
            pool::open_minimum(&writer.pool, &writer.policy, Vec::new()).await?;
        }
        Ok(())
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
    /// rolls back. On SQLite it runs on the writer lane: write transactions of this
    /// process wait in line (first come, first served, up to `DB_POOL_TIMEOUT`) for
    /// the one writer connection, which then takes the write lock at once (`BEGIN
    /// IMMEDIATE`). So writers of one process never compete for SQLite's lock — the
    /// busy timeout only matters against other processes — and readers, on the
    /// other connections, are never blocked (WAL).
    pub async fn begin(&self) -> Result<DatabaseTransaction, StorageError> {
        self.open(true, None).await
    }

    /// [`Db::begin`], then enters `scope` ([`crate::tenant::enter`]): the write
    /// transaction of a unit of work that acts for one organization. On PostgreSQL,
    /// row-level security then shows it that organization's rows only.
    pub async fn begin_in(
        &self,
        scope: crate::TenantScope,
    ) -> Result<DatabaseTransaction, StorageError> {
        self.open(true, Some(scope)).await
    }

    /// [`Db::begin_read`], then enters `scope`: consistent reads for one organization.
    pub async fn read_in(
        &self,
        scope: crate::TenantScope,
    ) -> Result<DatabaseTransaction, StorageError> {
        self.open(false, Some(scope)).await
    }

    /// Opens a transaction — read-write (on SQLite: on the writer lane, `BEGIN
    /// IMMEDIATE`) or for reads — and enters `scope` when given. Behind PgBouncer the
    /// first message after `BEGIN` is the transaction prelude, which also enters the
    /// tenant, so transaction pooling costs no extra round trip there.
    async fn open(
        &self,
        write: bool,
        scope: Option<crate::TenantScope>,
    ) -> Result<DatabaseTransaction, StorageError> {
        let started = Instant::now();
        // A `BEGIN` on a connection that died while idle (handed out without a
        // pre-ping: see `pool::PRE_PING_AFTER_IDLE`) fails at once and did nothing;
        // the dead connection is discarded on its way back, so try another, at most
        // once per connection the pool may hold.
        let mut retries = match self.engine() {
            Engine::Postgres => self.inner.policy.max,
            Engine::Sqlite => 0,
        };
        let result = loop {
            let result = if write {
                let options = TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..Default::default()
                };
                let conn = self.inner.writer.as_ref().map_or(&self.conn, |w| &w.conn);
                conn.begin_with_options(options).await
            } else {
                self.conn.begin().await
            };
            match result {
                Err(e) if retries > 0 && crate::error::connection_lost(&e) => {
                    retries -= 1;
                    // Its idle siblings may be gone too (a restarted server).
                    self.inner.suspicion.raise();
                    tracing::debug!(error = %e, "BEGIN found its connection gone; trying another");
                }
                result => break result,
            }
        };
        self.record_acquire(started, result.as_ref().err());
        let tx = result?;
        match (&self.inner.transaction_prelude, scope) {
            (Some(prelude), scope) => {
                let sql = match scope {
                    Some(scope) => format!("{prelude}, {}", crate::tenant::set_tenant_sql(scope)),
                    None => prelude.clone(),
                };
                self.inner.statements.fetch_add(1, Ordering::Relaxed);
                tx.execute_unprepared(&sql).await?;
            }
            (None, Some(scope)) => crate::tenant::enter(&tx, scope).await?,
            (None, None) => {}
        }
        Ok(tx)
    }

    fn record_acquire(&self, started: Instant, err: Option<&sea_orm::DbErr>) {
        let metrics = &self.inner.metrics;
        metrics.acquire_wait.record(started.elapsed());
        if let Some(err) = err
            && matches!(
                StorageError::from(err.clone()),
                StorageError::Unavailable {
                    reason: crate::error::POOL_TIMEOUT,
                    ..
                }
            )
        {
            metrics.acquire_timeouts.increment(1);
        }
    }

    /// A read replica for a read that tolerates lag, on behalf of the session
    /// `fence_key` (see [`Db::note_write`]); `None` when the read belongs on the
    /// primary: no replica configured or usable, or none has replayed the session's
    /// last write within `DB_REPLICA_WAIT`.
    pub async fn replica_for(&self, fence_key: Option<&str>) -> Option<Db> {
        self.inner.replicas.as_ref()?.choose(fence_key).await
    }

    /// Records that session `fence_key` has just committed a write: its reads stay
    /// on the primary until a replica has replayed it. Nothing without replicas.
    pub async fn note_write(&self, fence_key: &str) {
        let Some(replicas) = &self.inner.replicas else {
            return;
        };
        match replicas::primary_lsn(self).await {
            Ok(lsn) => replicas.fence_at(fence_key, lsn),
            // Without a fence the session could read its own write stale: keep it
            // on the primary for the longest lag a usable replica may have.
            Err(error) => {
                tracing::warn!(%error, "could not read the primary's WAL position");
                replicas.fence_at(fence_key, Lsn(u64::MAX));
            }
        }
    }

    /// A `LISTEN` session on PostgreSQL itself: a connection of its own, outside the
    /// pool and outside PgBouncer, whose notifications [`PgListener::recv`] returns
    /// (it reconnects by itself when the connection drops). Behind PgBouncer it needs
    /// `DATABASE_DIRECT_URL`, since transaction pooling cannot carry a session's
    /// `LISTEN`; otherwise it uses `DATABASE_URL`. Fails with a configuration error on
    /// SQLite or without a direct URL behind PgBouncer.
    pub async fn listener(&self) -> Result<sqlx::postgres::PgListener, StorageError> {
        let options = self
            .inner
            .direct
            .clone()
            .ok_or_else(|| StorageError::InvalidState {
                code: "direct_connection_required",
                message: "LISTEN needs a direct PostgreSQL connection: set \
                          DATABASE_DIRECT_URL (behind PgBouncer), or use PostgreSQL"
                    .to_owned(),
            })?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(self.inner.policy.acquire_timeout)
            .connect_lazy_with(options);
        Ok(sqlx::postgres::PgListener::connect_with(&pool).await?)
    }

    /// The read replicas and what the monitor last saw of them (empty without any).
    pub fn replica_status(&self) -> Vec<ReplicaStatus> {
        self.inner
            .replicas
            .as_ref()
            .map(replicas::Replicas::status)
            .unwrap_or_default()
    }

    /// Query durations, acquire waits and timeouts of this pool.
    pub fn metrics(&self) -> &crate::metrics::DbMetrics {
        &self.inner.metrics
    }

    /// The metrics registry of this pool: it holds the `agenda_db_*` series, and the
    /// application records its own in it too, so that one scrape shows them all.
    pub fn registry(&self) -> &crate::metrics::Registry {
        &self.inner.registry
    }

    /// Opens a transaction for reads: one consistent snapshot, no write lock on SQLite.
    pub async fn begin_read(&self) -> Result<DatabaseTransaction, StorageError> {
        self.open(false, None).await
    }

    /// How many statements this pool (and transactions begun from it) has run: for
    /// metrics, and for tests that prove a code path runs a fixed number of queries.
    pub fn statements_executed(&self) -> u64 {
        self.inner.statements.load(Ordering::Relaxed)
    }

    /// Connection counts right now (of the pool; on SQLite the writer lane's one
    /// connection is not counted).
    /// Marks every connection idle in the pool at this moment as possibly dead: each
    /// is pinged before it is next handed out, whatever its idle time (see
    /// `pool::Suspicion`). Call it after ending sessions of this pool's own
    /// connections, as [`crate::ops::kill_idle`] does.
    pub fn suspect_idle_connections(&self) {
        self.inner.suspicion.raise();
    }

    pub fn pool_status(&self) -> PoolStatus {
        self.inner.pool_status()
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
            pgbouncer: self.inner.summary.pgbouncer,
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            pool: self.pool_status(),
            error,
            replicas: self.replica_status(),
        }
    }

    /// Closes the pool: new work is refused at once; waits for connections in use to
    /// be returned, then closes all. See [`Db::close_within`] for a bounded wait.
    pub async fn close(&self) {
        if let Some(replicas) = &self.inner.replicas {
            for replica in replicas.dbs() {
                Box::pin(replica.close()).await;
            }
        }
        if let Some(writer) = &self.inner.writer {
            writer.pool.close().await;
        }
        self.inner.pool.close().await;
    }

    /// [`Db::close`], waiting at most `limit` for connections still in use (a
    /// request stuck on a lock, a connection lost to a partition): after that they
    /// are abandoned, to be dropped with the process. Returns whether every
    /// connection was closed in time.
    pub async fn close_within(&self, limit: Duration) -> bool {
        let closed = tokio::time::timeout(limit, self.close()).await.is_ok();
        if !closed {
            let status = self.pool_status();
            tracing::warn!(
                in_use = status.in_use,
                limit_ms = limit.as_millis() as u64,
                "connections still in use when the pool closed; abandoning them"
            );
        }
        closed
    }

    pub fn is_closed(&self) -> bool {
        self.inner.pool.is_closed()
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
            // A simple query: no prepared statement, which PgBouncer's transaction
            // mode could not keep on one server connection outside a transaction.
            RawPool::Postgres(p) => sqlx::raw_sql("SELECT 1").execute(p).await.map(|_| ()),
            RawPool::Sqlite(p) => sqlx::raw_sql("SELECT 1").execute(p).await.map(|_| ()),
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

fn postgres_pool(
    s: &DbSettings,
    policy: pool::Policy,
    discarded: Arc<tokio::sync::Notify>,
    suspicion: Arc<pool::Suspicion>,
) -> Result<PgPool, String> {
    let options = pg_connect_options(s, &s.url)?;
    let pool = pool::options::<sqlx::Postgres>(policy, discarded, suspicion);
    if s.pgbouncer {
        // Transaction pooling: a server connection serves a different client after
        // every transaction. sqlx names every prepared statement (`sqlx_s_N`, counted
        // per client connection) and never closes it when its cache is off, so
        // nothing may be cached, and each transaction clears the server connection's
        // leftovers first ([`pgbouncer_prelude`]), which also carries the session
        // settings, transaction-local. PgBouncer refuses the startup option
        // `extra_float_digits` unless told to ignore it; PostgreSQL's default (1)
        // already gives exact floats.
        let options = options.statement_cache_capacity(0).extra_float_digits(None);
        return Ok(pool.connect_lazy_with(options));
    }
    // Applied by a query on every new physical connection rather than as startup
    // parameters, because connection poolers (PgBouncer) drop unknown startup options.
    let session = session_settings(s);
    let sql = format!(
        "SELECT {}",
        (0..session.len())
            .map(|i| format!("set_config(${}, ${}, false)", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(pool
        .after_connect(move |conn, _meta| {
            let (session, sql) = (session.clone(), sql.clone());
            Box::pin(async move {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (name, value) in session {
                    query = query.bind(name).bind(value);
                }
                query.execute(conn).await.map(|_| ())
            })
        })
        .connect_lazy_with(options))
}

/// How to reach the PostgreSQL server at `url` with the settings `s` (TLS mode,
/// application name).
fn pg_connect_options(s: &DbSettings, url: &DatabaseUrl) -> Result<PgConnectOptions, String> {
    let mut options = PgConnectOptions::from_str(url.expose())
        .map_err(|e| {
            format!(
                "invalid PostgreSQL URL {}: {}",
                url.redacted(),
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
    Ok(options)
}

/// The session settings every PostgreSQL connection of the pool sets.
///
/// The TCP keepalive settings configure the server's end of the connection (sqlx
/// 0.9 cannot enable keepalive on its own sockets; the client end is bounded by
/// [`pool`]'s pings instead): a client lost to a partition is found dead after
/// `DB_TCP_KEEPALIVE` of silence plus three unanswered probes, and its backend ends —
/// with its locks and its slot of the role's connection limit — instead of lingering
/// for the kernel's two hours. `client_connection_check_interval` lets a long query
/// notice a vanished client too.
fn session_settings(s: &DbSettings) -> Vec<(&'static str, String)> {
    let mut session = vec![
        ("statement_timeout", millis(s.statement_timeout)),
        ("lock_timeout", millis(s.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            millis(s.idle_in_transaction_timeout),
        ),
        ("application_name", s.application_name.clone()),
    ];
    if !s.tcp_keepalive.is_zero() {
        let idle = s.tcp_keepalive.as_secs().max(1);
        let interval = (idle / 2).max(1);
        let probes = 3;
        session.extend([
            ("tcp_keepalives_idle", idle.to_string()),
            ("tcp_keepalives_interval", interval.to_string()),
            ("tcp_keepalives_count", probes.to_string()),
            // Unacknowledged data: give up after the same silence the probes allow.
            (
                "tcp_user_timeout",
                ((idle + probes * interval) * 1000).to_string(),
            ),
            (
                "client_connection_check_interval",
                (idle * 1000).to_string(),
            ),
        ]);
    }
    session
}

/// PgBouncer transaction mode: the statement every transaction starts with, one
/// simple-query message (no round trip of its own beyond the one the tenant's
/// `set_config` needed anyway). `DEALLOCATE ALL` drops the named statements other
/// clients left on the server connection PgBouncer lent this transaction — sqlx's
/// names would collide with them — and the session settings are made
/// transaction-local (`set_config(…, true)`), since a session outlives the
/// transaction and is shared. Every value is a number formatted here; the tenant, when
/// appended, is a UUID formatted by [`crate::tenant::set_tenant_sql`]. The TCP
/// keepalive settings are left out: PostgreSQL's client is PgBouncer there, and
/// PgBouncer's own `tcp_keepalive` settings govern those sockets.
fn pgbouncer_prelude(s: &DbSettings) -> String {
    let settings = [
        ("statement_timeout", millis(s.statement_timeout)),
        ("lock_timeout", millis(s.lock_timeout)),
        (
            "idle_in_transaction_session_timeout",
            millis(s.idle_in_transaction_timeout),
        ),
    ];
    let calls: Vec<String> = settings
        .iter()
        .map(|(name, value)| format!("set_config('{name}', '{value}', true)"))
        .collect();
    format!("DEALLOCATE ALL; SELECT {}", calls.join(", "))
}

fn sqlite_pool(
    s: &DbSettings,
    policy: pool::Policy,
    discarded: Arc<tokio::sync::Notify>,
    suspicion: Arc<pool::Suspicion>,
) -> Result<SqlitePool, String> {
    // These are applied by the driver to every connection it opens (as PRAGMAs).
    let options = SqliteConnectOptions::from_str(s.url.expose())
        .map_err(|e| format!("invalid SQLite URL {}: {e}", s.url.redacted()))?
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(s.sqlite_busy_timeout)
        .synchronous(SqliteSynchronous::Normal)
        .disable_statement_logging();
    Ok(pool::options::<sqlx::Sqlite>(policy, discarded, suspicion).connect_lazy_with(options))
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
    metrics: crate::metrics::DbMetrics,
}

/// A statement that has run, as given to the observer of [`observe_statements`]: its
/// SQL text with placeholders, never its bound values (personal data, secrets).
#[derive(Debug, Clone, Copy)]
pub struct StatementRun<'a> {
    pub sql: &'a str,
    pub engine: Engine,
    pub elapsed: Duration,
    pub failed: bool,
}

static STATEMENT_OBSERVER: std::sync::OnceLock<fn(&StatementRun<'_>)> = std::sync::OnceLock::new();

/// Installs the process-wide observer of every statement, called on the task that
/// ran it right after it ran (the trace exporter makes a span of it). The first call
/// wins; returns whether this one did.
pub fn observe_statements(observer: fn(&StatementRun<'_>)) -> bool {
    STATEMENT_OBSERVER.set(observer).is_ok()
}

/// Statements that begin with this comment are checks the server's debug builds make
/// of their own contracts (see `agenda_api`'s unit of work): not the application's
/// work, so they are not counted ([`Db::statements_executed`]), measured or traced.
pub const DEBUG_CHECK: &str = "/* agenda debug check */ ";

impl QueryObserver {
    fn observe(&self, info: &sea_orm::metric::Info<'_>) {
        if info.statement.sql.starts_with(DEBUG_CHECK) {
            return;
        }
        if let Some(observer) = STATEMENT_OBSERVER.get() {
            observer(&StatementRun {
                sql: &info.statement.sql,
                engine: Engine::of(info.statement.db_backend),
                elapsed: info.elapsed,
                failed: info.failed,
            });
        }
        self.statements.fetch_add(1, Ordering::Relaxed);
        self.metrics.statements.increment(1);
        self.metrics.query_duration.record(info.elapsed);
        if info.failed {
            self.metrics.query_errors.increment(1);
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
