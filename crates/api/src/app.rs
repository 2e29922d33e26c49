//! The application: state, router and server lifecycle.
//!
//! `main` is a thin shell around [`Application::build`] and
//! [`Application::run_until_stopped`]; tests build the same application on port 0
//! against a fresh database.

use std::net::SocketAddr;
use std::sync::Arc;

use agenda_storage::Db;
use axum::Router;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use migration::{Migrator, MigratorTrait};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Settings;
use crate::error::ApiError;
use crate::routes;

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    /// The OpenAPI document, generated once from the routes.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
    /// Request counts and latencies, and the figures read by `GET /metrics`.
    pub metrics: Arc<crate::metrics::AppMetrics>,
    /// Renders e-mail and writes it to the outbox (`state.mail.enqueue(tx, …)`).
    pub mail: agenda_mail::Outbox,
    /// The bound on password hashing (sign-in, sign-up, password reset).
    pub passwords: crate::password::PasswordHashing,
    /// The read cache of this process (catalogue, provider rules); invalidated by
    /// the unit of work after commit and, on PostgreSQL, by the cache listener.
    pub cache: agenda_storage::cache::ReadCache,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Connect(#[from] agenda_storage::db::ConnectError),
    #[error("applying migrations failed: {0}")]
    Migrate(String),
    #[error(transparent)]
    SchemaNotCurrent(#[from] SchemaNotCurrent),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    /// `METRICS_ADDR`'s listener, serving `/metrics` alone.
    metrics_listener: Option<TcpListener>,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects to the database (with retries), applies migrations when
    /// `AUTO_MIGRATE` is on, and binds the listener.
    /// With `AUTO_MIGRATE` off, a database with pending migrations stops the start
    /// with [`SchemaNotCurrent`]: a server on an older schema would fail request
    /// after request instead.
    pub async fn build(settings: Settings) -> Result<Self, StartError> {
        let started = chrono::Utc::now();
        let db = Db::connect(&settings.db).await?;
        let ready = if settings.auto_migrate {
            apply_migrations(&db).await.map_err(StartError::Migrate)
        } else {
            require_current_schema(&db).await
        };
        if let Err(e) = ready {
            db.close().await;
            return Err(e);
        }
        warn_when_the_role_limit_is_short(&db, started).await;
        Self::with_db(settings, db).await
    }

    /// Like [`Application::build`] on an already opened pool (no migration step).
    pub async fn with_db(settings: Settings, db: Db) -> Result<Self, StartError> {
        Self::with_routes(settings, db, Router::new()).await
    }

    /// Like [`Application::with_db`], also mounting `extra` routes (behind the same
    /// unit-of-work layer as the API). Used by embedders and by tests.
    pub async fn with_routes(
        settings: Settings,
        db: Db,
        extra: Router<AppState>,
    ) -> Result<Self, StartError> {
        let addr = settings.http.bind_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let metrics_listener = match settings.http.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            None => None,
        };
        let passwords = crate::password::PasswordHashing::new(
            settings.passwords.concurrency,
            settings.passwords.queue,
        );
        let mail = agenda_mail::Outbox::new(settings.mail.clone());
        let cache = agenda_storage::cache::ReadCache::new(settings.cache);
        let metrics = Arc::new(crate::metrics::AppMetrics::register(
            db.registry(),
            &mail,
            &cache,
        ));
        let state = AppState {
            db,
            cache,
            mail,
            passwords,
            settings: Arc::new(settings),
            openapi: crate::routes::openapi(),
            metrics,
        };
        let router = router(state.clone(), extra);
        Ok(Application {
            listener,
            metrics_listener,
            router,
            state,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The bound address of the `METRICS_ADDR` listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves (and delivers e-mail, when `SMTP_URL` is set) until `shutdown`
    /// resolves, then stops accepting connections, lets in-flight requests finish
    /// for up to `SHUTDOWN_TIMEOUT`, stops the e-mail worker within the same bound,
    /// and closes the pool, waiting at most [`POOL_CLOSE_LIMIT`] for connections
    /// still in use (requests abandoned at the deadline, connections lost to a
    /// partition): whatever the database does, this returns within
    /// `SHUTDOWN_TIMEOUT` + [`POOL_CLOSE_LIMIT`].
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            metrics_listener,
            router,
            state,
        } = self;
        let grace = state.settings.http.shutdown_timeout;
        state.db.registry().spawn_upkeep();
        let mail_worker = agenda_mail::worker::start(state.db.clone(), state.mail.clone())
            .map_err(std::io::Error::other)?;
        let mail_stop = mail_worker.as_ref().map(|w| w.stop_signal());
        let cache_listener = state
            .settings
            .cache_listen
            .url(&state.settings.db)
            .map(|url| agenda_storage::cache::listen(state.cache.clone(), url.expose().to_owned()));
        let shutdown_began = Arc::new(std::sync::OnceLock::new());
        let began = shutdown_began.clone();
        let (stopping_tx, mut stopping_rx) = tokio::sync::watch::channel(false);
        let metrics_server = metrics_listener.map(|listener| {
            let mut stopping = stopping_rx.clone();
            let router = crate::metrics::router()
                .fallback(fallback)
                .with_state(state.clone());
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stopping.wait_for(|stopping| *stopping).await;
                };
                if let Err(e) = axum::serve(listener, router)
                    .with_graceful_shutdown(stopped)
                    .await
                {
                    tracing::error!(error = %e, "the metrics listener failed");
                }
            })
        });
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!(
                grace_s = grace.as_secs_f64(),
                "shutting down: no new connections, finishing in-flight requests"
            );
            let _ = began.set(std::time::Instant::now());
            if let Some(mail) = mail_stop {
                mail.send();
            }
            let _ = stopping_tx.send(true);
        });
        let deadline = async move {
            let _ = stopping_rx.wait_for(|stopping| *stopping).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            result = server => result,
            () = deadline => {
                tracing::warn!("shutdown grace period over; abandoning the requests still running");
                Ok(())
            }
        };
        if let Some(metrics_server) = metrics_server {
            // A scrape is short; one still running at the deadline is abandoned.
            metrics_server.abort();
        }
        if let Some(worker) = mail_worker {
            // Told to stop when shutdown began; it gets what is left of the grace.
            let spent = shutdown_began.get().map_or(grace, |began| began.elapsed());
            worker.stop(grace.saturating_sub(spent)).await;
        }
        if let Some(listener) = cache_listener {
            listener.abort();
        }
        if state.db.close_within(POOL_CLOSE_LIMIT).await {
            tracing::info!("database pool closed; bye");
        }
        result
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }
}

/// The database's migrations against this build's, read without changing anything
/// (the application role may run it). Logs migrations this build does not know: a
/// newer build migrated the database, which a rolling deploy does on purpose.
pub async fn migration_state(
    db: &Db,
) -> Result<agenda_storage::ops::MigrationState, agenda_storage::StorageError> {
    let names: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let state = agenda_storage::ops::migration_state(db, &names).await?;
    if !state.unknown.is_empty() {
        tracing::warn!(
            migrations = ?state.unknown,
            "the database has migrations this build does not know (a newer build applied them)"
        );
    }
    Ok(state)
}

/// The database has migrations this build needs that are not applied.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database schema is not up to date: {} pending migration(s) ({}); apply them with \
     `agenda migrate up` (as the schema owner: MIGRATION_DATABASE_URL), or set AUTO_MIGRATE=true",
    pending.len(),
    pending.join(", ")
)]
pub struct SchemaNotCurrent {
    pub pending: Vec<String>,
}

/// Logs a warning when the role's `CONNECTION LIMIT` (`APP_DB_CONNECTION_LIMIT`)
/// cannot cover this process's pool maximum on top of the sessions other processes
/// of the role already hold (those open since before this process `started`): under
/// load some of them would then fail with "too many connections for role". Behind
/// PgBouncer the server connections are PgBouncer's, so the check is skipped there
/// (its `max_db_connections` is the budget).
async fn warn_when_the_role_limit_is_short(db: &Db, started: chrono::DateTime<chrono::Utc>) {
    if db.settings().pgbouncer {
        return;
    }
    let Ok(Some(role)) = agenda_storage::ops::role_connections(db, started).await else {
        return;
    };
    let others = role.others;
    let max = i64::from(db.settings().max_connections);
    if others + max > role.limit {
        tracing::warn!(
            limit = role.limit,
            held_by_other_processes = others,
            this_pool_max = max,
            "APP_DB_CONNECTION_LIMIT cannot cover the configured pools: the role may hold {} \
             sessions, other processes hold {others} and this one may open {max}; raise the \
             limit (agenda db create-app-role) or lower DB_POOL_SIZE + DB_MAX_OVERFLOW",
            role.limit
        );
    }
}

/// Succeeds when every migration of this build is applied; never changes anything.
pub async fn require_current_schema(db: &Db) -> Result<(), StartError> {
    let state = migration_state(db)
        .await
        .map_err(|e| StartError::Migrate(format!("reading the migration ledger failed: {e}")))?;
    if state.pending.is_empty() {
        Ok(())
    } else {
        Err(SchemaNotCurrent {
            pending: state.pending,
        }
        .into())
    }
}

/// How long shutdown waits, after `SHUTDOWN_TIMEOUT`, for the pool's connections
/// still in use before the process exits without them.
pub const POOL_CLOSE_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Applies pending migrations, logging what was applied. When nothing is pending it
/// only reads the ledger, so it also succeeds for a role that may not change the
/// schema.
pub async fn apply_migrations(db: &Db) -> Result<(), String> {
    let state = migration_state(db)
        .await
        .map_err(|e| format!("reading the migration ledger failed: {e}"))?;
    if state.pending.is_empty() {
        tracing::info!("database schema is up to date");
        return Ok(());
    }
    tracing::info!(count = state.pending.len(), migrations = ?state.pending, "applying migrations");
    Migrator::up(db.conn(), None)
        .await
        .map_err(|e| e.to_string())
}

use crate::telemetry::REQUEST_ID;

/// CORS for the configured origins only; `None` when none are configured.
fn cors_layer(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

/// The whole HTTP surface: the routes (plus `extra` ones, behind the unit-of-work
/// layer), then the layers every request passes through.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    // `REQUEST_TIMEOUT` is applied by the unit of work, which knows where the commit
    // starts (the deadline must never cut a commit short).
    let extra = extra
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::uow::unit_of_work,
        ))
        .with_state(state.clone());
    let cors = cors_layer(&state.settings.http.cors_origins);
    let router = routes::router(state.clone())
        .merge(extra)
        .fallback(fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::telemetry::observe_request,
        ))
        .layer(tower_http::compression::CompressionLayer::new());
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(
            // The request line is written by `observe_request`, which knows the
            // route and the tenant; this layer opens the request span.
            TraceLayer::new_for_http()
                .make_span_with(crate::telemetry::request_span)
                .on_response(())
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("a handler panicked; answered 500");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "an internal error occurred",
            )
            .into_response()
        }))
        // Outermost, so every answer (a panic's, a timeout's, a 413) is covered.
        .layer(axum::middleware::from_fn(
            crate::keep_alive::honest_keep_alive,
        ))
}

async fn fallback() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this route",
    )
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
