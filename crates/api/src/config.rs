//! The server's settings, parsed once at startup from the environment and an optional
//! `.env` file. Every variable the process reads is listed here with its default;
//! `.env.example` and `docs/configuration.md` describe the same list.
//!
//! | variable                   | default                       |
//! |----------------------------|-------------------------------|
//! | `DATABASE_URL` and `DB_*`  | see [`agenda_storage::db::DbSettings`] |
//! | `BIND_ADDR`                | `127.0.0.1:8080`              |
//! | `METRICS_ADDR`             | unset (`/metrics` on `BIND_ADDR`) |
//! | `AUTO_MIGRATE`             | `true`                        |
//! | `HEALTH_TIMEOUT`           | `2s`                          |
//! | `SHUTDOWN_TIMEOUT`         | `20s`                         |
//! | `REQUEST_TIMEOUT`          | `30s`                         |
//! | `CORS_ALLOWED_ORIGINS`     | empty (no cross-origin access) |
//! | `CACHE_TTL`                | `60s` (`0` turns caching off) |
//! | `SESSION_TTL`              | `7d`                          |
//! | `PASSWORD_HASH_CONCURRENCY` | the number of CPU cores       |
//! | `PASSWORD_HASH_QUEUE`      | 16 × `PASSWORD_HASH_CONCURRENCY` |
//! | `CACHE_MAX_ENTRIES`        | `10000`                       |
//! | `CACHE_LISTEN_URL`         | `DATABASE_URL` on PostgreSQL (`off`: no listener, TTL only) |
//! | `SMTP_URL`, `MAIL_*`, `PUBLIC_BASE_URL` | see [`agenda_mail::MailSettings`] |
//! | `SECRETS_KEY`, `SECRETS_PREVIOUS_KEYS` | unset (integration secrets can only be referenced, `env:NAME`); see [`agenda_storage::secrets`] |
//! | `LOG_FORMAT`               | `pretty` (or `json`)          |
//! | `RUST_LOG`                 | `info`                        |
//! | `NO_COLOR`                 | unset (colours on a terminal only) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | unset (no traces); `http://host:4318` sends them over OTLP/HTTP |
//! | `OTEL_SERVICE_NAME`        | `agenda`                      |

use std::net::SocketAddr;
use std::time::Duration;

use agenda_storage::cache::CacheConfig;
use agenda_storage::config::{ConfigError, Env};
use agenda_storage::db::{DatabaseUrl, DbSettings, Engine};
use agenda_storage::secrets::SecretKeys;
use std::sync::Arc;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when writing to a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub db: DbSettings,
    pub http: HttpSettings,
    /// `AUTO_MIGRATE`: apply pending migrations at startup. Convenient in development;
    /// in production turn it off and run the migrator as a deploy step.
    pub auto_migrate: bool,
    pub log: LogSettings,
    /// `CACHE_TTL`, `CACHE_MAX_ENTRIES`: the in-process read cache
    /// (see `agenda_storage::cache`).
    pub cache: CacheConfig,
    /// `CACHE_LISTEN_URL`: where the cache listens for invalidations from other
    /// processes (see [`CacheListen`]).
    pub cache_listen: CacheListen,
    /// `SESSION_TTL`: how long a bearer token from `POST /auth/login` is valid.
    pub session_ttl: Duration,
    /// `SMTP_URL`, `MAIL_FROM`, `PUBLIC_BASE_URL`, `MAIL_*`: e-mail (docs/email.md).
    pub mail: agenda_mail::MailSettings,
    pub passwords: PasswordSettings,
    /// `SECRETS_KEY`, `SECRETS_PREVIOUS_KEYS`: the keys integration secrets are
    /// sealed with at rest (none: secrets can only be referenced).
    pub secrets: Arc<SecretKeys>,
    /// `BACKUP_DIR`: where `agenda backup` and the operator console write, list and
    /// download backups (default `./backups`).
    pub backup_dir: std::path::PathBuf,
    /// `MIGRATION_DATABASE_URL`, when set: the schema owner, whom the operator
    /// console connects as (briefly) to back up every organization.
    pub owner_db: Option<DbSettings>,
}

/// `BACKUP_DIR`, else `./backups`.
pub fn backup_dir(env: &Env) -> std::path::PathBuf {
    std::path::PathBuf::from(env.string("BACKUP_DIR", "./backups"))
}

/// The bound on password hashing (see [`crate::password::PasswordHashing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordSettings {
    /// `PASSWORD_HASH_CONCURRENCY`: argon2 computations (19 MiB each) run at once.
    pub concurrency: usize,
    /// `PASSWORD_HASH_QUEUE`: requests that may wait for one; past that, sign-in,
    /// sign-up and password reset answer 503 with `Retry-After` without hashing.
    pub queue: usize,
}

impl PasswordSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let concurrency = env.number("PASSWORD_HASH_CONCURRENCY", cores, 1..=1024)?;
        let queue = env.number("PASSWORD_HASH_QUEUE", 16 * concurrency, 0..=100_000)?;
        Ok(PasswordSettings { concurrency, queue })
    }
}

/// `SHUTDOWN_TIMEOUT` when unset.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// `BIND_ADDR`: the listen address. Port 0 picks a free port.
    pub bind_addr: SocketAddr,
    /// `HEALTH_TIMEOUT`: deadline of the database round trip in `GET /health/ready`.
    pub health_timeout: Duration,
    /// `SHUTDOWN_TIMEOUT`: how long in-flight requests may run after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// `REQUEST_TIMEOUT`: a request still running after this is answered 503 (with
    /// `Retry-After`) and its work is dropped (its transaction rolls back).
    pub request_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins (`https://app.example.com`)
    /// browsers may call the API from; empty allows none.
    pub cors_origins: Vec<String>,
    /// `METRICS_ADDR`: when set, `/metrics` is served on this address alone (and no
    /// longer on `BIND_ADDR`), so it can stay on an internal network.
    pub metrics_addr: Option<SocketAddr>,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    /// `LOG_FORMAT`.
    pub format: LogFormat,
    /// `RUST_LOG`: a `tracing` filter such as `info` or `info,agenda::sql=debug`.
    pub filter: String,
    /// `NO_COLOR` set (to anything): no colours even on a terminal. Logs written to a
    /// file or a pipe never have colours.
    pub no_color: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_SERVICE_NAME`: where traces go; `None`
    /// (the endpoint unset) exports none.
    pub traces: Option<TraceSettings>,
}

/// OpenTelemetry trace export (see [`crate::telemetry`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The collector's OTLP/HTTP traces URL: `OTEL_EXPORTER_OTLP_ENDPOINT` with
    /// `/v1/traces` appended, as the OpenTelemetry specification says.
    pub traces_url: String,
    /// `OTEL_SERVICE_NAME`: the `service.name` of every span.
    pub service_name: String,
}

impl Settings {
    /// Reads `.env` (when present) and the environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_env(&Env::load()?)
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let db = DbSettings::from_env(env, "DATABASE_URL")?;
        Ok(Settings {
            cache_listen: CacheListen::from_env(env)?,
            db,
            http: HttpSettings::from_env(env)?,
            auto_migrate: env.flag("AUTO_MIGRATE", true)?,
            log: LogSettings::from_env(env)?,
            session_ttl: env.duration("SESSION_TTL", Duration::from_secs(7 * 24 * 3600))?,
            mail: agenda_mail::MailSettings::from_env(env)?,
            passwords: PasswordSettings::from_env(env)?,
            secrets: Arc::new(SecretKeys::from_env(env)?),
            backup_dir: backup_dir(env),
            owner_db: match env.get("MIGRATION_DATABASE_URL") {
                Some(_) => Some(DbSettings::migrator_from_env(env)?),
                None => None,
            },
            cache: CacheConfig {
                ttl: env.duration("CACHE_TTL", CacheConfig::default().ttl)?,
                max_entries: env.parsed(
                    "CACHE_MAX_ENTRIES",
                    CacheConfig::default().max_entries,
                    "a whole number of entries",
                    |raw| raw.parse().ok(),
                )?,
            },
        })
    }
}

/// `CACHE_LISTEN_URL`: the PostgreSQL connection the read cache's listener uses
/// (`LISTEN agenda_cache`). It must be a direct connection: `LISTEN` does not work
/// through a transaction-mode pooler such as PgBouncer.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheListen {
    /// Unset: the database's own URL, when it is PostgreSQL (none on SQLite).
    Database,
    /// `off`: no listener; a write by another process is seen once the entry's TTL
    /// runs out.
    Off,
    /// A PostgreSQL URL of its own (the database directly, beside a pooler).
    Url(DatabaseUrl),
}

impl CacheListen {
    const VAR: &'static str = "CACHE_LISTEN_URL";

    fn from_env(env: &Env) -> Result<Self, ConfigError> {
        match env.get(Self::VAR).map(str::trim) {
            None | Some("") => Ok(CacheListen::Database),
            Some("off") => Ok(CacheListen::Off),
            Some(raw) => {
                let url = DatabaseUrl::parse(raw).map_err(|e| {
                    ConfigError::new(Self::VAR, format!("is not a database URL: {e}"))
                })?;
                if url.engine() != Engine::Postgres {
                    return Err(ConfigError::new(
                        Self::VAR,
                        "must be a PostgreSQL URL (or `off`)",
                    ));
                }
                Ok(CacheListen::Url(url))
            }
        }
    }

    /// The URL to listen on, given the database settings: unset, that is PostgreSQL
    /// itself — `DATABASE_DIRECT_URL` behind PgBouncer (`DB_PGBOUNCER`), where
    /// `DATABASE_URL` is the pooler and cannot carry a `LISTEN`; none there without a
    /// direct URL (the TTL bounds staleness), and none on SQLite.
    pub fn url<'a>(&'a self, db: &'a agenda_storage::DbSettings) -> Option<&'a DatabaseUrl> {
        match self {
            CacheListen::Database if db.pgbouncer => db.direct_url.as_ref(),
            CacheListen::Database => (db.url.engine() == Engine::Postgres).then_some(&db.url),
            CacheListen::Off => None,
            CacheListen::Url(url) => Some(url),
        }
    }
}

impl HttpSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(HttpSettings {
            bind_addr: env.parsed(
                "BIND_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 8080)),
                "an address and port such as 127.0.0.1:8080 or 0.0.0.0:8080",
                |raw| raw.parse().ok(),
            )?,
            metrics_addr: env.parsed(
                "METRICS_ADDR",
                None,
                "an address and port such as 127.0.0.1:9090",
                |raw| raw.parse().ok().map(Some),
            )?,
            health_timeout: env.duration("HEALTH_TIMEOUT", Duration::from_secs(2))?,
            shutdown_timeout: env.duration("SHUTDOWN_TIMEOUT", DEFAULT_SHUTDOWN_TIMEOUT)?,
            request_timeout: env.duration("REQUEST_TIMEOUT", Duration::from_secs(30))?,
            cors_origins: env.parsed(
                "CORS_ALLOWED_ORIGINS",
                Vec::new(),
                "comma-separated origins such as https://app.example.com",
                |raw| {
                    raw.split(',')
                        .map(str::trim)
                        .filter(|o| !o.is_empty())
                        .map(|o| {
                            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                                && !o.ends_with('/')
                                && axum::http::HeaderValue::from_str(o).is_ok();
                            ok.then(|| o.to_owned())
                        })
                        .collect()
                },
            )?,
        })
    }
}

impl LogSettings {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(LogSettings {
            format: env.parsed(
                "LOG_FORMAT",
                LogFormat::Pretty,
                "pretty or json",
                |raw| match raw.to_ascii_lowercase().as_str() {
                    "pretty" | "text" => Some(LogFormat::Pretty),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
            )?,
            filter: env.string("RUST_LOG", "info"),
            no_color: env.get("NO_COLOR").is_some(),
            traces: env.parsed(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                None,
                "an http:// URL such as http://127.0.0.1:4318 (a local collector; https is not supported)",
                |raw| {
                    let uri: axum::http::Uri = raw.parse().ok()?;
                    (uri.scheme_str() == Some("http") && uri.host().is_some()).then(|| {
                        Some(TraceSettings {
                            traces_url: format!("{}/v1/traces", raw.trim_end_matches('/')),
                            service_name: env.string("OTEL_SERVICE_NAME", "agenda"),
                        })
                    })
                },
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::from_env(&Env::default()).unwrap();
        assert_eq!(s.http.bind_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(s.http.metrics_addr, None);
        assert!(s.auto_migrate);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert_eq!(s.log.filter, "info");
        assert_eq!(s.log.traces, None);
        let traces = LogSettings::from_env(&Env::from_pairs([
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_SERVICE_NAME", "agenda-eu"),
        ]))
        .unwrap()
        .traces
        .unwrap();
        assert_eq!(traces.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(traces.service_name, "agenda-eu");
        assert_eq!(s.http.health_timeout, Duration::from_secs(2));
        assert!(s.passwords.concurrency >= 1);
        assert_eq!(s.passwords.queue, 16 * s.passwords.concurrency);
    }

    #[test]
    fn password_hashing_bounds() {
        let env = Env::from_pairs([
            ("PASSWORD_HASH_CONCURRENCY", "3"),
            ("PASSWORD_HASH_QUEUE", "0"),
        ]);
        let s = PasswordSettings::from_env(&env).unwrap();
        assert_eq!((s.concurrency, s.queue), (3, 0));
        let err =
            PasswordSettings::from_env(&Env::from_pairs([("PASSWORD_HASH_CONCURRENCY", "0")]))
                .unwrap_err();
        assert!(
            err.to_string().contains("PASSWORD_HASH_CONCURRENCY"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value, expected) in [
            (
                "BIND_ADDR",
                "localhost",
                "BIND_ADDR is \"localhost\"; expected an address and port",
            ),
            (
                "METRICS_ADDR",
                "9090",
                "METRICS_ADDR is \"9090\"; expected an address and port",
            ),
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4318",
                "OTEL_EXPORTER_OTLP_ENDPOINT is \"collector:4318\"; expected an http:// URL",
            ),
            (
                "LOG_FORMAT",
                "xml",
                "LOG_FORMAT is \"xml\"; expected pretty or json",
            ),
            (
                "AUTO_MIGRATE",
                "sometimes",
                "AUTO_MIGRATE is \"sometimes\"; expected true or false",
            ),
        ] {
            let err = Settings::from_env(&Env::from_pairs([(var, value)])).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
    }
}
