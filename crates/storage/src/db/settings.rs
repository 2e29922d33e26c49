//! The database settings: every knob of the pool and of each connection's session.

use std::time::Duration;

use serde::Serialize;

use super::url::{DatabaseUrl, Engine};
use crate::config::{ConfigError, Env};

/// The embedded default: a SQLite file next to the process, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://agenda.db?mode=rwc";

/// The longest time between two runs of the pool's maintenance (the reference
/// practice: clean up every 30 s, close idle connections after 4 minutes, below the
/// 5-minute idle limit of servers and proxies).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);

/// TLS policy for PostgreSQL connections (libpq's `sslmode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Everything needed to open the pool. Parsed once at startup ([`DbSettings::from_env`])
/// or built in code (tests, tools) from [`DbSettings::new`] and its public fields.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `DATABASE_URL`.
    pub url: DatabaseUrl,
    /// `DB_POOL_SIZE`: connections kept open even when idle (the pool's minimum).
    pub pool_size: u32,
    /// `DB_MAX_OVERFLOW`: extra connections opened under load; max = size + overflow.
    pub max_overflow: u32,
    /// `DB_POOL_TIMEOUT`: the longest a caller waits for a connection before the
    /// request fails fast as "unavailable" (HTTP 503).
    pub pool_timeout: Duration,
    /// `DB_POOL_RECYCLE`: a connection older than this is closed and replaced.
    pub pool_recycle: Duration,
    /// `DB_IDLE_TIMEOUT`: connections above the minimum are closed after this idle
    /// time. Kept below the 5-minute idle limit common to managed servers and proxies.
    pub idle_timeout: Duration,
    /// `DB_POOL_PRE_PING`: test a connection with a round trip before handing it out.
    pub pre_ping: bool,
    /// `DB_ECHO`: log every SQL statement (text only; bound values are never logged).
    pub echo: bool,
    /// `DB_SLOW_QUERY_MS`: statements slower than this are logged at WARN.
    pub slow_query: Duration,
    /// `DB_STATEMENT_TIMEOUT`: server-side limit per statement (PostgreSQL); zero disables.
    pub statement_timeout: Duration,
    /// `DB_LOCK_TIMEOUT`: longest wait for a row or table lock (PostgreSQL); zero disables.
    pub lock_timeout: Duration,
    /// `DB_IDLE_IN_TRANSACTION_TIMEOUT`: the server ends a session left idle inside a
    /// transaction this long (PostgreSQL); zero disables.
    pub idle_in_transaction_timeout: Duration,
    /// `DB_SSL_MODE`: when unset, the URL's `sslmode` or `prefer`.
    pub ssl_mode: Option<SslMode>,
    /// `DB_APPLICATION_NAME`: shown in `pg_stat_activity.application_name`.
    pub application_name: String,
    /// `DB_CONNECT_RETRIES`: attempts to reach the database at startup.
    pub connect_retries: u32,
    /// `DB_SQLITE_BUSY_TIMEOUT`: how long a SQLite connection waits for the write lock.
    pub sqlite_busy_timeout: Duration,
    /// `DB_PING_TIMEOUT`: the longest a connection's liveness check (before it is
    /// handed out, when it comes back to the pool, during maintenance) may take; a
    /// connection that does not answer in time is discarded. This is what bounds a
    /// dead or black-holed connection's hold on the pool.
    pub ping_timeout: Duration,
    /// `DB_COMMIT_TIMEOUT`: the longest a request's COMMIT may take before its
    /// outcome is reported as unknown (HTTP 504 `commit_outcome_unknown`).
    pub commit_timeout: Duration,
    /// `DB_TCP_KEEPALIVE`: on PostgreSQL, the server probes a connection silent this
    /// long with TCP keepalives and drops it when the probes go unanswered, so a
    /// client lost to a network partition stops holding a backend, its locks and a
    /// slot of the connection limit; zero leaves the server's defaults.
    pub tcp_keepalive: Duration,
    /// `DB_PGBOUNCER`: the URL reaches PostgreSQL through PgBouncer in transaction
    /// mode, so no prepared statement and no session setting may outlive a
    /// transaction (see `docs/scaling.md`).
    pub pgbouncer: bool,
    /// `DATABASE_READ_URL`: streaming replicas (comma-separated) that routes which
    /// tolerate lag read from; empty: every read goes to the primary.
    pub read_urls: Vec<DatabaseUrl>,
    /// `DB_REPLICA_MAX_LAG`: a replica further behind than this is skipped.
    pub replica_max_lag: Duration,
    /// `DB_REPLICA_WAIT`: how long a read of a session that wrote waits for a replica
    /// to replay that write before it reads from the primary instead.
    pub replica_wait: Duration,
    /// `DATABASE_DIRECT_URL`: PostgreSQL itself, bypassing PgBouncer, for the few
    /// sessions that transaction pooling cannot carry (`LISTEN`). Without PgBouncer
    /// `DATABASE_URL` serves.
    pub direct_url: Option<DatabaseUrl>,
}

impl DbSettings {
    /// The defaults, for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        DbSettings {
            url,
            pool_size: 5,
            max_overflow: 10,
            pool_timeout: Duration::from_secs(5),
            pool_recycle: Duration::from_secs(1800),
            idle_timeout: Duration::from_secs(240),
            pre_ping: true,
            echo: false,
            slow_query: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
            ssl_mode: None,
            application_name: "agenda".to_owned(),
            connect_retries: 5,
            sqlite_busy_timeout: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(2),
            commit_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(10),
            pgbouncer: false,
            read_urls: Vec::new(),
            replica_max_lag: Duration::from_secs(5),
            replica_wait: Duration::from_millis(100),
            direct_url: None,
        }
    }

    /// Reads the settings, taking the URL from `url_var` (normally `DATABASE_URL`).
    pub fn from_env(env: &Env, url_var: &'static str) -> Result<Self, ConfigError> {
        let raw_url = env.get(url_var).unwrap_or(DEFAULT_DATABASE_URL);
        let url = DatabaseUrl::parse(raw_url)
            .map_err(|e| ConfigError::new(url_var, format!("is not valid: {e}")))?;
        let d = DbSettings::new(url);
        let settings = DbSettings {
            pool_size: env.number("DB_POOL_SIZE", d.pool_size, 0..=1000)?,
            max_overflow: env.number("DB_MAX_OVERFLOW", d.max_overflow, 0..=1000)?,
            pool_timeout: env.duration("DB_POOL_TIMEOUT", d.pool_timeout)?,
            pool_recycle: env.duration("DB_POOL_RECYCLE", d.pool_recycle)?,
            idle_timeout: env.duration("DB_IDLE_TIMEOUT", d.idle_timeout)?,
            pre_ping: env.flag("DB_POOL_PRE_PING", d.pre_ping)?,
            echo: env.flag("DB_ECHO", d.echo)?,
            slow_query: Duration::from_millis(env.number("DB_SLOW_QUERY_MS", 500u64, 0..=3_600_000)?),
            statement_timeout: env.duration("DB_STATEMENT_TIMEOUT", d.statement_timeout)?,
            lock_timeout: env.duration("DB_LOCK_TIMEOUT", d.lock_timeout)?,
            idle_in_transaction_timeout: env
                .duration("DB_IDLE_IN_TRANSACTION_TIMEOUT", d.idle_in_transaction_timeout)?,
            ssl_mode: match env.get("DB_SSL_MODE") {
                None => None,
                Some(raw) => Some(SslMode::parse(raw).ok_or_else(|| {
                    ConfigError::new(
                        "DB_SSL_MODE",
                        format!("is \"{raw}\"; expected disable, prefer, require, verify-ca or verify-full"),
                    )
                })?),
            },
            application_name: env.string("DB_APPLICATION_NAME", &d.application_name),
            connect_retries: env.number("DB_CONNECT_RETRIES", d.connect_retries, 1..=100)?,
            sqlite_busy_timeout: env.duration("DB_SQLITE_BUSY_TIMEOUT", d.sqlite_busy_timeout)?,
            ping_timeout: env.duration("DB_PING_TIMEOUT", d.ping_timeout)?,
            commit_timeout: env.duration("DB_COMMIT_TIMEOUT", d.commit_timeout)?,
            tcp_keepalive: env.duration("DB_TCP_KEEPALIVE", d.tcp_keepalive)?,
            pgbouncer: env.flag("DB_PGBOUNCER", d.pgbouncer)?,
            read_urls: match env.get("DATABASE_READ_URL") {
                None => Vec::new(),
                Some(raw) => raw
                    .split(',')
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(|u| {
                        DatabaseUrl::parse(u).map_err(|e| {
                            ConfigError::new("DATABASE_READ_URL", format!("is not valid: {e}"))
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            replica_max_lag: env.duration("DB_REPLICA_MAX_LAG", d.replica_max_lag)?,
            replica_wait: env.duration("DB_REPLICA_WAIT", d.replica_wait)?,
            direct_url: match env.get("DATABASE_DIRECT_URL") {
                None => None,
                Some(raw) => Some(DatabaseUrl::parse(raw).map_err(|e| {
                    ConfigError::new("DATABASE_DIRECT_URL", format!("is not valid: {e}"))
                })?),
            },
            url: d.url,
        };
        settings.check()?;
        Ok(settings)
    }

    /// Cross-field rules.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.max_connections() == 0 {
            return Err(ConfigError::new(
                "DB_POOL_SIZE",
                "plus DB_MAX_OVERFLOW is 0; expected at least one connection",
            ));
        }
        if self.pool_timeout.is_zero() {
            return Err(ConfigError::new(
                "DB_POOL_TIMEOUT",
                "is 0; expected a positive duration such as 5s",
            ));
        }
        for (var, value) in [
            ("DB_PING_TIMEOUT", self.ping_timeout),
            ("DB_COMMIT_TIMEOUT", self.commit_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::new(
                    var,
                    "is 0; expected a positive duration such as 2s",
                ));
            }
        }
        if self.pgbouncer && self.engine() != Engine::Postgres {
            return Err(ConfigError::new(
                "DB_PGBOUNCER",
                "is true but DATABASE_URL is not PostgreSQL; PgBouncer pools PostgreSQL connections only",
            ));
        }
        if self
            .read_urls
            .iter()
            .any(|u| u.engine() != Engine::Postgres)
            || (!self.read_urls.is_empty() && self.engine() != Engine::Postgres)
        {
            return Err(ConfigError::new(
                "DATABASE_READ_URL",
                "names a replica, but replicas are PostgreSQL streaming standbys of a PostgreSQL DATABASE_URL",
            ));
        }
        if self.application_name.len() > 63 || !self.application_name.is_ascii() {
            return Err(ConfigError::new(
                "DB_APPLICATION_NAME",
                "is too long or not ASCII; expected at most 63 ASCII characters",
            ));
        }
        Ok(())
    }

    /// Reads the settings the migrator uses: the URL from `MIGRATION_DATABASE_URL`
    /// (the schema owner) when set, else `DATABASE_URL`, and the other `DB_*` values.
    ///
    /// When both are set they must name the same database (they may differ in user,
    /// password, host and port): otherwise this is a configuration error rather
    /// than a silent choice. It catches a mistyped pair, and `sea-orm-cli migrate -u
    /// URL`, which hands its URL over as `DATABASE_URL` — the migrator must not
    /// quietly migrate `MIGRATION_DATABASE_URL`'s database instead.
    pub fn migrator_from_env(env: &Env) -> Result<Self, ConfigError> {
        if env.get("MIGRATION_DATABASE_URL").is_none() {
            return Ok(Self::from_env(env, "DATABASE_URL")?.for_migrations());
        }
        let settings = Self::from_env(env, "MIGRATION_DATABASE_URL")?;
        if let Some(raw) = env.get("DATABASE_URL") {
            let app = DatabaseUrl::parse(raw)
                .map_err(|e| ConfigError::new("DATABASE_URL", format!("is not valid: {e}")))?;
            if !settings.url.same_database(&app) {
                return Err(ConfigError::new(
                    "MIGRATION_DATABASE_URL",
                    format!(
                        "({}) and DATABASE_URL ({}) name different databases; they must name \
                         the same one (they may differ in user, password, host and port). \
                         Unset MIGRATION_DATABASE_URL to use DATABASE_URL, or give the \
                         migrator its URL directly (`cargo run -p migration -- -u URL …`; \
                         note that `sea-orm-cli migrate -u URL` passes it on as DATABASE_URL)",
                        settings.url.redacted(),
                        app.redacted()
                    ),
                ));
            }
        }
        Ok(settings.for_migrations())
    }

    /// Which variable [`DbSettings::migrator_from_env`] takes the URL from.
    pub fn migrator_url_var(env: &Env) -> &'static str {
        if env.get("MIGRATION_DATABASE_URL").is_some() {
            "MIGRATION_DATABASE_URL"
        } else {
            "DATABASE_URL"
        }
    }

    /// Adjusts settings for running migrations: a tiny pool, no statement timeout
    /// (building an index on a large table may take long), and an application name
    /// that tells the migrator's sessions apart in `pg_stat_activity`. The lock
    /// timeout stays, so DDL fails instead of queueing behind a long transaction.
    pub fn for_migrations(mut self) -> Self {
        self.pool_size = 0;
        self.max_overflow = 2;
        self.statement_timeout = Duration::ZERO;
        self.idle_in_transaction_timeout = Duration::ZERO;
        self.application_name = format!("{}-migrator", self.application_name)
            .chars()
            .take(63)
            .collect();
        self
    }

    /// How often the pool's maintenance runs: every 30 s, or as often as the
    /// shortest of `DB_IDLE_TIMEOUT` and `DB_POOL_RECYCLE` when that is shorter (so
    /// an idle connection is closed within its timeout plus one interval), never more
    /// often than every 100 ms.
    pub fn maintenance_interval(&self) -> Duration {
        [self.idle_timeout, self.pool_recycle]
            .into_iter()
            .filter(|d| !d.is_zero())
            .fold(MAINTENANCE_INTERVAL, Duration::min)
            .max(Duration::from_millis(100))
    }

    /// The pool's maximum: `pool_size + max_overflow`.
    pub fn max_connections(&self) -> u32 {
        self.pool_size.saturating_add(self.max_overflow)
    }

    pub fn engine(&self) -> Engine {
        self.url.engine()
    }
}

/// The settings in force, safe to show (no password), for `db status`, logs and
/// the readiness endpoint. Engine-specific settings appear only for their engine.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsSummary {
    pub engine: Engine,
    pub url: String,
    pub pool_size: u32,
    pub max_connections: u32,
    pub pool_timeout_ms: u64,
    pub pool_recycle_s: u64,
    pub idle_timeout_s: u64,
    pub pre_ping: bool,
    pub ping_timeout_ms: u64,
    /// How often the pool's maintenance runs (see `db::pool`).
    pub maintenance_interval_ms: u64,
    pub commit_timeout_ms: u64,
    /// Whether the pool runs in PgBouncer transaction-pooling mode (`DB_PGBOUNCER`).
    pub pgbouncer: bool,
    /// The read replicas (`DATABASE_READ_URL`), without passwords.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<String>,
    pub replica_max_lag_ms: u64,
    /// The session settings of every PostgreSQL connection; `None` on SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSession>,
    /// The PRAGMAs of every SQLite connection; `None` on PostgreSQL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite: Option<SqliteSession>,
}

/// What every PostgreSQL connection of the pool sets for its session.
#[derive(Debug, Clone, Serialize)]
pub struct PostgresSession {
    pub statement_timeout_ms: u64,
    pub lock_timeout_ms: u64,
    pub idle_in_transaction_timeout_ms: u64,
    pub application_name: String,
    /// `tcp_keepalives_idle` of the server's end of each connection (0: the server's default).
    pub tcp_keepalive_s: u64,
}

/// What every SQLite connection of the pool sets (the other PRAGMAs are fixed:
/// WAL, foreign keys on, synchronous NORMAL).
#[derive(Debug, Clone, Serialize)]
pub struct SqliteSession {
    pub busy_timeout_ms: u64,
}

impl From<&DbSettings> for SettingsSummary {
    fn from(s: &DbSettings) -> Self {
        let engine = s.engine();
        SettingsSummary {
            engine,
            url: s.url.redacted(),
            pool_size: s.pool_size,
            max_connections: s.max_connections(),
            pool_timeout_ms: s.pool_timeout.as_millis() as u64,
            pool_recycle_s: s.pool_recycle.as_secs(),
            idle_timeout_s: s.idle_timeout.as_secs(),
            pre_ping: s.pre_ping,
            ping_timeout_ms: s.ping_timeout.as_millis() as u64,
            maintenance_interval_ms: s.maintenance_interval().as_millis() as u64,
            commit_timeout_ms: s.commit_timeout.as_millis() as u64,
            pgbouncer: s.pgbouncer,
            replicas: s.read_urls.iter().map(DatabaseUrl::redacted).collect(),
            replica_max_lag_ms: s.replica_max_lag.as_millis() as u64,
            postgres: (engine == Engine::Postgres).then(|| PostgresSession {
                statement_timeout_ms: s.statement_timeout.as_millis() as u64,
                lock_timeout_ms: s.lock_timeout.as_millis() as u64,
                idle_in_transaction_timeout_ms: s.idle_in_transaction_timeout.as_millis() as u64,
                application_name: s.application_name.clone(),
                tcp_keepalive_s: s.tcp_keepalive.as_secs(),
            }),
            sqlite: (engine == Engine::Sqlite).then_some(SqliteSession {
                busy_timeout_ms: s.sqlite_busy_timeout.as_millis() as u64,
            }),
        }
    }
}

impl Serialize for Engine {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_table() {
        let s = DbSettings::from_env(&Env::default(), "DATABASE_URL").unwrap();
        assert_eq!(s.url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(
            (s.pool_size, s.max_overflow, s.max_connections()),
            (5, 10, 15)
        );
        assert_eq!(s.pool_timeout, Duration::from_secs(5));
        assert_eq!(s.pool_recycle, Duration::from_secs(1800));
        assert_eq!(s.idle_timeout, Duration::from_secs(240));
        assert!(s.pre_ping && !s.echo);
        assert_eq!(s.slow_query, Duration::from_millis(500));
        assert_eq!(s.statement_timeout, Duration::from_secs(30));
        assert_eq!(s.ssl_mode, None);
        assert_eq!(s.application_name, "agenda");
        assert_eq!(s.connect_retries, 5);
        assert_eq!(s.ping_timeout, Duration::from_secs(2));
        assert_eq!(s.commit_timeout, Duration::from_secs(10));
        assert_eq!(s.tcp_keepalive, Duration::from_secs(10));
        assert_eq!(s.maintenance_interval(), Duration::from_secs(30));
        assert!(!s.pgbouncer);
    }

    #[test]
    fn maintenance_runs_at_least_as_often_as_the_shortest_lifetime() {
        let mut s = DbSettings::new(DatabaseUrl::parse(DEFAULT_DATABASE_URL).unwrap());
        s.idle_timeout = Duration::from_secs(5);
        assert_eq!(s.maintenance_interval(), Duration::from_secs(5));
        s.idle_timeout = Duration::ZERO;
        s.pool_recycle = Duration::from_millis(10);
        assert_eq!(s.maintenance_interval(), Duration::from_millis(100));
        s.pool_recycle = Duration::ZERO;
        assert_eq!(s.maintenance_interval(), MAINTENANCE_INTERVAL);
    }

    #[test]
    fn every_variable_is_read() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "postgresql+asyncpg://u:p@h/db"),
            ("DB_POOL_SIZE", "2"),
            ("DB_MAX_OVERFLOW", "3"),
            ("DB_POOL_TIMEOUT", "750ms"),
            ("DB_POOL_RECYCLE", "10m"),
            ("DB_IDLE_TIMEOUT", "60"),
            ("DB_POOL_PRE_PING", "false"),
            ("DB_ECHO", "yes"),
            ("DB_SLOW_QUERY_MS", "100"),
            ("DB_STATEMENT_TIMEOUT", "0"),
            ("DB_SSL_MODE", "verify-full"),
            ("DB_APPLICATION_NAME", "agenda-worker"),
            ("DB_CONNECT_RETRIES", "2"),
            ("DB_PING_TIMEOUT", "750ms"),
            ("DB_COMMIT_TIMEOUT", "3s"),
            ("DB_TCP_KEEPALIVE", "0"),
            ("DB_PGBOUNCER", "true"),
            (
                "DATABASE_READ_URL",
                "postgres://u:p@r1/db, postgres://u:p@r2/db",
            ),
            ("DB_REPLICA_MAX_LAG", "2s"),
            ("DB_REPLICA_WAIT", "50ms"),
            ("DATABASE_DIRECT_URL", "postgres://u:p@db/db"),
        ]);
        let s = DbSettings::from_env(&env, "DATABASE_URL").unwrap();
        assert_eq!(s.engine(), Engine::Postgres);
        assert_eq!(s.max_connections(), 5);
        assert_eq!(s.pool_timeout, Duration::from_millis(750));
        assert_eq!(s.pool_recycle, Duration::from_secs(600));
        assert_eq!(s.idle_timeout, Duration::from_secs(60));
        assert!(!s.pre_ping && s.echo);
        assert_eq!(s.slow_query, Duration::from_millis(100));
        assert!(s.statement_timeout.is_zero());
        assert_eq!(s.ssl_mode, Some(SslMode::VerifyFull));
        assert_eq!(s.application_name, "agenda-worker");
        assert_eq!(s.connect_retries, 2);
        assert_eq!(s.ping_timeout, Duration::from_millis(750));
        assert_eq!(s.commit_timeout, Duration::from_secs(3));
        assert!(s.tcp_keepalive.is_zero());
        assert!(s.pgbouncer);
        assert_eq!(s.read_urls.len(), 2);
        assert_eq!(s.read_urls[1].redacted(), "postgresql://u:***@r2/db");
        assert_eq!(s.replica_max_lag, Duration::from_secs(2));
        assert_eq!(s.replica_wait, Duration::from_millis(50));
        assert_eq!(s.direct_url.unwrap().redacted(), "postgresql://u:***@db/db");
    }

    #[test]
    fn the_migrator_refuses_two_urls_naming_different_databases() {
        let env = Env::from_pairs([
            (
                "MIGRATION_DATABASE_URL",
                "postgres://owner:secret@db/agenda",
            ),
            (
                "DATABASE_URL",
                "postgres://app:secret@pgbouncer:6432/agenda",
            ),
        ]);
        let s = DbSettings::migrator_from_env(&env).unwrap();
        assert_eq!(s.url.redacted(), "postgresql://owner:***@db/agenda");
        let env = Env::from_pairs([
            (
                "MIGRATION_DATABASE_URL",
                "postgres://owner:secret@db/agenda",
            ),
            ("DATABASE_URL", "sqlite://elsewhere.db"),
        ]);
        let line = DbSettings::migrator_from_env(&env).unwrap_err().to_string();
        assert!(line.starts_with("invalid configuration: MIGRATION_DATABASE_URL (postgresql://owner:***@db/agenda) and DATABASE_URL (sqlite://elsewhere.db?mode=rwc) name different databases"), "{line}");
        assert!(!line.contains("secret"), "{line}");
    }

    #[test]
    fn bad_values_are_one_clear_line() {
        let cases = [
            (
                ("DATABASE_URL", "mysql://root:pw@h/db"),
                "DATABASE_URL is not valid",
            ),
            (
                ("DB_SSL_MODE", "always"),
                "expected disable, prefer, require, verify-ca or verify-full",
            ),
            (("DB_CONNECT_RETRIES", "0"), "from 1 to 100"),
        ];
        for ((var, value), expected) in cases {
            let err =
                DbSettings::from_env(&Env::from_pairs([(var, value)]), "DATABASE_URL").unwrap_err();
            let line = err.to_string();
            assert!(line.contains(expected), "{line}");
            assert!(!line.contains('\n') && !line.contains("pw@"), "{line}");
        }
        let env = Env::from_pairs([("DB_POOL_SIZE", "0"), ("DB_MAX_OVERFLOW", "0")]);
        assert!(DbSettings::from_env(&env, "DATABASE_URL").is_err());
    }
}
