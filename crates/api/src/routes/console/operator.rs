//! The operator view of the console, at `/console/operator` (docs/console.md): the
//! platform operator's pages, for credentials made by `agenda operator create`,
//! never an organization's admin.
//!
//! - the pool live, sessions by state, migrations, replicas and their lag;
//! - sessions from `pg_stat_activity` with a confirmed "end idle sessions" action
//!   ([`ops::kill_idle`]);
//! - backups in `BACKUP_DIR`: list, create (as a role that sees every tenant, or
//!   refused), download;
//! - the slowest statements from `pg_stat_statements`.
//!
//! Operator sessions live in `operator_sessions` (the token kept only as its
//! digest) and travel in the `agenda_operator` cookie, scoped to this path; an
//! organization's session opens none of these pages, and an operator's opens none of
//! the organization view. Every action is a POST with the session's CSRF token, and
//! a read-only operator gets `403` for it (the buttons are not shown either).
//! Sign-in checks the password through the server's bounded hashing queue and locks
//! an operator after [`MAX_FAILED_LOGINS`] failures, like the API's sign-in.

use std::time::Duration;

use agenda_entity::operator;
use agenda_storage::backup::{self, BackupScope};
use agenda_storage::db::Engine;
use agenda_storage::ops;
use agenda_storage::repo::operators::OperatorRepo;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::context;
use serde::Deserialize;

use super::session::{self, SIGN_IN_COOKIE, cookie, same_token};
use super::{ConsoleError, page};
use crate::app::AppState;
use crate::auth::{new_token, token_digest};
use crate::error::ApiError;
use crate::routes::auth::{LOCK_MINUTES, MAX_FAILED_LOGINS};

/// The cookie holding an operator session's token.
pub(super) const OPERATOR_COOKIE: &str = "agenda_operator";
/// The path the operator cookie is sent to.
pub(super) const OPERATOR_PATH: &str = "/console/operator";
/// How long an operator session lasts.
pub const OPERATOR_SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
/// The idle age the "end idle sessions" form proposes, in seconds.
const DEFAULT_IDLE_SECONDS: u64 = 300;
/// Statements the slowest-statements page lists.
const STATEMENT_LIMIT: u32 = 25;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/console/operator", get(overview))
        .route("/console/operator/login", get(sign_in_page).post(sign_in))
        .route("/console/operator/logout", post(sign_out))
        .route("/console/operator/sessions", get(sessions))
        .route(
            "/console/operator/sessions/end-idle",
            get(confirm_end_idle).post(end_idle),
        )
        .route(
            "/console/operator/backups",
            get(backups).post(create_backup),
        )
        .route("/console/operator/backups/{file}", get(download_backup))
        .route("/console/operator/statements", get(statements))
}

/// A signed-in operator, from the operator cookie; without a live session the
/// request is sent to the operator sign-in page.
pub(super) struct ConsoleOperator {
    pub operator: operator::Model,
    pub session_id: uuid::Uuid,
    /// The CSRF token forms of this session carry.
    pub csrf: String,
}

impl ConsoleOperator {
    /// `Err` unless `given` is this session's CSRF token.
    fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        match given {
            Some(given) if same_token(given, &self.csrf) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }

    /// `Err` (403) for a read-only operator.
    fn require_full_access(&self) -> Result<(), ConsoleError> {
        if self.operator.read_only {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "read_only_operator",
                "this operator is read-only: it sees every panel and takes no action",
            )
            .into());
        }
        Ok(())
    }

    /// What every operator page shows in its header.
    fn header(&self) -> minijinja::Value {
        context! {
            operator => &self.operator.name,
            read_only => self.operator.read_only,
            csrf => &self.csrf,
        }
    }
}

/// The CSRF token of the operator session whose token is `token` (another label
/// than the organization view's, so neither view's token works in the other).
fn csrf_token(token: &str) -> String {
    token_digest(&format!("agenda-operator-csrf:{token}"))
}

impl FromRequestParts<AppState> for ConsoleOperator {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let token = cookie(&parts.headers, OPERATOR_COOKIE)
            .filter(|t| !t.is_empty())
            .ok_or(ConsoleError::OperatorSignIn)?
            .to_owned();
        let found =
            OperatorRepo::session(state.db.conn(), &token_digest(&token), chrono::Utc::now())
                .await?
                .ok_or(ConsoleError::OperatorSignIn)?;
        Ok(ConsoleOperator {
            operator: found.operator,
            session_id: found.session_id,
            csrf: csrf_token(&token),
        })
    }
}

fn operator_cookie(headers: &HeaderMap, value: &str, max_age: Duration) -> HeaderValue {
    session::set_cookie_at(headers, OPERATOR_PATH, OPERATOR_COOKIE, value, max_age)
}

/// The sign-in form, with a fresh double-submit token.
fn sign_in_form(
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    name: &str,
) -> Result<Response, ConsoleError> {
    let token = session::new_sign_in_token();
    let mut response = page(
        status,
        "operator_login.html",
        context! { error => error, name => name, sign_in_token => &token },
    )?;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(headers, SIGN_IN_COOKIE, &token, Duration::from_secs(3600)),
    );
    Ok(response)
}

async fn sign_in_page(headers: HeaderMap) -> Result<Response, ConsoleError> {
    sign_in_form(&headers, StatusCode::OK, None, "")
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    sign_in_token: String,
}

const BAD_CREDENTIALS: &str = "wrong operator name or password (or the operator is locked)";

/// Checks the double-submit token and the password (the same work for an unknown
/// name, through the bounded hashing queue), counts failures, and opens a session.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_form(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("the form could not be read; fill it in again"),
            "",
        );
    };
    let expected = cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !same_token(&form.sign_in_token, expected) {
        return sign_in_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some("this form has expired: sign in again"),
            &form.name,
        );
    }
    let name = form.name.trim().to_owned();
    if name.is_empty() || name.len() > 64 || form.password.is_empty() || form.password.len() > 1024
    {
        return sign_in_form(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("fill in the operator name and the password"),
            &name,
        );
    }
    let found = OperatorRepo::find_by_name(state.db.conn(), &name).await?;
    let matches = state
        .passwords
        .verify(
            form.password,
            found.as_ref().map(|o| o.password_hash.clone()),
        )
        .await
        .map_err(ApiError::from)?;
    let Some(found) = found else {
        return sign_in_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(BAD_CREDENTIALS),
            &name,
        );
    };
    let now = chrono::Utc::now();
    if !matches {
        let locked = OperatorRepo::record_failed_sign_in(
            state.db.conn(),
            found.id,
            now,
            MAX_FAILED_LOGINS,
            chrono::Duration::minutes(LOCK_MINUTES),
        )
        .await?;
        if locked {
            tracing::warn!(operator = %found.name, failures = MAX_FAILED_LOGINS, lock_minutes = LOCK_MINUTES, "operator locked after failed sign-ins");
        }
        return sign_in_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(BAD_CREDENTIALS),
            &name,
        );
    }
    let token = new_token();
    let expires_at = now + chrono::Duration::from_std(OPERATOR_SESSION_TTL).unwrap_or_default();
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let tx = state.db.begin().await?;
    if !OperatorRepo::record_sign_in(&tx, found.id, now).await? {
        return sign_in_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(BAD_CREDENTIALS),
            &name,
        );
    }
    OperatorRepo::start_session(&tx, found.id, &token_digest(&token), expires_at, agent).await?;
    tx.commit()
        .await
        .map_err(agenda_storage::StorageError::from)?;
    tracing::info!(operator = %found.name, "operator signed in to the console");
    let mut response = Redirect::to(OPERATOR_PATH).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        operator_cookie(&headers, &token, OPERATOR_SESSION_TTL),
    );
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SIGN_IN_COOKIE, "", Duration::ZERO),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    older_than: Option<String>,
}

fn read_form(body: &Bytes) -> Result<ActionForm, ConsoleError> {
    serde_urlencoded::from_bytes(body).map_err(|_| ConsoleError::Csrf)
}

async fn sign_out(
    State(state): State<AppState>,
    operator: ConsoleOperator,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    operator.check_csrf(read_form(&body)?.csrf.as_deref())?;
    OperatorRepo::end_session(state.db.conn(), operator.session_id, chrono::Utc::now()).await?;
    let mut response = Redirect::to("/console/operator/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        operator_cookie(&headers, "", Duration::ZERO),
    );
    Ok(response)
}

fn is_postgres(state: &AppState) -> bool {
    state.db.engine() == Engine::Postgres
}

/// `(state, sessions)` pairs, most sessions first.
fn sessions_by_state(connections: &[ops::ConnectionInfo]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for c in connections {
        let state = c.state.clone().unwrap_or_else(|| "unknown".to_owned());
        match counts.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}

async fn overview(
    State(state): State<AppState>,
    operator: ConsoleOperator,
) -> Result<Response, ConsoleError> {
    let migrations = crate::app::migration_state(&state.db).await?;
    let by_state = if is_postgres(&state) {
        Some(sessions_by_state(&ops::connections(&state.db).await?))
    } else {
        None
    };
    page(
        StatusCode::OK,
        "operator_home.html",
        context! {
            engine => state.db.engine().to_string(),
            pool => minijinja::value::Serde(state.db.pool_status()),
            by_state => by_state,
            applied => migrations.applied.len(),
            pending => migrations.pending,
            unknown => migrations.unknown,
            replicas => minijinja::value::Serde(state.db.replica_status()),
            refreshed => chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ..operator.header()
        },
    )
}

async fn sessions(
    State(state): State<AppState>,
    operator: ConsoleOperator,
) -> Result<Response, ConsoleError> {
    let connections = if is_postgres(&state) {
        Some(ops::connections(&state.db).await?)
    } else {
        None
    };
    page(
        StatusCode::OK,
        "operator_sessions.html",
        context! {
            by_state => connections.as_deref().map(sessions_by_state),
            connections => minijinja::value::Serde(connections),
            older_than => DEFAULT_IDLE_SECONDS,
            ..operator.header()
        },
    )
}

/// `older_than` in whole seconds, from a form or a query.
fn older_than(raw: Option<&str>) -> Result<Duration, ConsoleError> {
    match raw.map(str::trim).filter(|r| !r.is_empty()) {
        None => Ok(Duration::from_secs(DEFAULT_IDLE_SECONDS)),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|s| *s <= 30 * 24 * 3600)
            .map(Duration::from_secs)
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "older_than",
                    "invalid",
                    "older_than is a whole number of seconds, at most 30 days",
                )
                .into()
            }),
    }
}

fn postgres_only(what: &str) -> ConsoleError {
    ApiError::new(
        StatusCode::CONFLICT,
        "postgres_only",
        format!("{what} needs PostgreSQL: an embedded SQLite database has no server sessions"),
    )
    .into()
}

#[derive(Deserialize)]
struct IdleQuery {
    older_than: Option<String>,
}

/// The confirmation step: which sessions would end (a dry run), and the form that
/// ends them.
async fn confirm_end_idle(
    State(state): State<AppState>,
    operator: ConsoleOperator,
    Query(query): Query<IdleQuery>,
) -> Result<Response, ConsoleError> {
    operator.require_full_access()?;
    if !is_postgres(&state) {
        return Err(postgres_only("ending idle sessions"));
    }
    let older_than = older_than(query.older_than.as_deref())?;
    let would_end = ops::kill_idle(&state.db, older_than, true).await?;
    page(
        StatusCode::OK,
        "operator_end_idle.html",
        context! {
            confirm => true,
            older_than => older_than.as_secs(),
            sessions => minijinja::value::Serde(would_end),
            application_name => application_name(&state),
            ..operator.header()
        },
    )
}

fn application_name(state: &AppState) -> String {
    state
        .db
        .settings()
        .postgres
        .as_ref()
        .map(|p| p.application_name.clone())
        .unwrap_or_default()
}

async fn end_idle(
    State(state): State<AppState>,
    operator: ConsoleOperator,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form = read_form(&body)?;
    operator.check_csrf(form.csrf.as_deref())?;
    operator.require_full_access()?;
    if !is_postgres(&state) {
        return Err(postgres_only("ending idle sessions"));
    }
    let older_than = older_than(form.older_than.as_deref())?;
    let ended = ops::kill_idle(&state.db, older_than, false).await?;
    tracing::warn!(operator = %operator.operator.name, ended = ended.len(), older_than_s = older_than.as_secs(), "operator ended idle database sessions from the console");
    page(
        StatusCode::OK,
        "operator_end_idle.html",
        context! {
            confirm => false,
            older_than => older_than.as_secs(),
            ended => ended.len(),
            sessions => minijinja::value::Serde(ended),
            application_name => application_name(&state),
            ..operator.header()
        },
    )
}

/// A backup file name the download accepts: what `agenda backup` names files, with
/// nothing that could leave `BACKUP_DIR`.
fn is_backup_file_name(name: &str) -> bool {
    name.ends_with(".tar.gz")
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn backup_listing(state: &AppState) -> Result<Vec<backup::BackupListing>, ConsoleError> {
    backup::list(&state.settings.backup_dir)
        .map_err(|e| ApiError::internal(format!("listing backups: {e}")).into())
}

async fn backups(
    State(state): State<AppState>,
    operator: ConsoleOperator,
) -> Result<Response, ConsoleError> {
    let listing = backup_listing(&state)?;
    render_backups(&state, &operator, StatusCode::OK, &listing, None)
}

fn render_backups(
    state: &AppState,
    operator: &ConsoleOperator,
    status: StatusCode,
    listing: &[backup::BackupListing],
    created: Option<minijinja::Value>,
) -> Result<Response, ConsoleError> {
    let rows: Vec<minijinja::Value> = listing
        .iter()
        .map(|b| {
            context! {
                file_name => &b.file_name,
                downloadable => is_backup_file_name(&b.file_name),
                bytes => b.bytes,
                created_at => b.manifest.as_ref().map(|m| m.created_at.to_rfc3339()),
                scope => b.manifest.as_ref().map(|m| m.scope.to_string()),
                rows => b.manifest.as_ref().map(|m| m.total_rows()),
                error => b.error.as_ref().map(ToString::to_string),
            }
        })
        .collect();
    page(
        status,
        "operator_backups.html",
        context! {
            backup_dir => state.settings.backup_dir.display().to_string(),
            backups => rows,
            created => created,
            ..operator.header()
        },
    )
}

/// A pool that sees every organization, for a whole-database backup: the schema
/// owner's (`MIGRATION_DATABASE_URL`) when configured, else the server's own when it
/// is not confined by row-level security (SQLite, or an owner `DATABASE_URL`).
/// `None` when neither: a backup through row-level security would silently miss
/// every organization.
async fn backup_pool(state: &AppState) -> Result<Option<(agenda_storage::Db, bool)>, ConsoleError> {
    if let Some(owner) = &state.settings.owner_db {
        let mut settings = owner.clone();
        settings.pool_size = 0;
        settings.max_overflow = 1;
        let db = agenda_storage::Db::connect(&settings).await.map_err(|e| {
            tracing::warn!(error = %e, "the operator console could not connect as the schema owner");
            ApiError::unavailable(
                "the schema owner's database (MIGRATION_DATABASE_URL) could not be reached; \
                 retry later",
                Duration::from_secs(5),
            )
        })?;
        return Ok(Some((db, true)));
    }
    if agenda_storage::tenant::sees_every_tenant(state.db.conn()).await? {
        return Ok(Some((state.db.clone(), false)));
    }
    Ok(None)
}

async fn create_backup(
    State(state): State<AppState>,
    operator: ConsoleOperator,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    operator.check_csrf(read_form(&body)?.csrf.as_deref())?;
    operator.require_full_access()?;
    let Some((db, own_pool)) = backup_pool(&state).await? else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "backup_needs_owner",
            "the server connects as the application role, which row-level security confines \
             to one organization at a time, so a backup made through it would miss every \
             organization; set MIGRATION_DATABASE_URL (the schema owner) for the server, or \
             run `agenda backup create` where it is set",
        )
        .into());
    };
    let path = state.settings.backup_dir.join(backup::default_file_name(
        BackupScope::Database,
        chrono::Utc::now(),
    ));
    // A task of its own: a backup that outlasts REQUEST_TIMEOUT (or a browser that
    // gives up) still finishes, and its archive appears in the list.
    let task = tokio::spawn(async move {
        let result = backup::create_file(&db, BackupScope::Database, &path).await;
        if own_pool {
            db.close().await;
        }
        result.map(|manifest| (manifest, path))
    });
    let (manifest, path) = match task.await.map_err(ApiError::internal)? {
        Ok(done) => done,
        Err(backup::BackupError::Refused(message)) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "backup_exists", message).into());
        }
        Err(e) => return Err(ApiError::internal(format!("backup failed: {e}")).into()),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    tracing::info!(operator = %operator.operator.name, file = %file_name, rows = manifest.total_rows(), "operator created a backup from the console");
    let listing = backup_listing(&state)?;
    let created = context! {
        file_name => file_name,
        rows => manifest.total_rows(),
        tables => manifest.tables.len(),
    };
    render_backups(
        &state,
        &operator,
        StatusCode::CREATED,
        &listing,
        Some(created),
    )
}

/// Streams a backup of `BACKUP_DIR` by its listed name; any other name is `404`.
async fn download_backup(
    State(state): State<AppState>,
    _operator: ConsoleOperator,
    Path(file): Path<String>,
) -> Result<Response, ConsoleError> {
    if !is_backup_file_name(&file) {
        return Err(ApiError::not_found("backup").into());
    }
    let listing = backup_listing(&state)?;
    let Some(found) = listing.into_iter().find(|b| b.file_name == file) else {
        return Err(ApiError::not_found("backup").into());
    };
    let handle = std::fs::File::open(&found.path)
        .map_err(|e| ApiError::internal(format!("opening {}: {e}", found.path.display())))?;
    let stream = futures::stream::unfold(Some(handle), |handle| async move {
        let mut handle = handle?;
        let read = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut chunk = vec![0u8; 64 * 1024];
            let n = handle.read(&mut chunk)?;
            chunk.truncate(n);
            Ok::<_, std::io::Error>((chunk, handle))
        })
        .await
        .map_err(std::io::Error::other);
        match read {
            Ok(Ok((chunk, _))) if chunk.is_empty() => None,
            Ok(Ok((chunk, handle))) => Some((Ok(Bytes::from(chunk)), Some(handle))),
            Ok(Err(e)) | Err(e) => Some((Err(e), None)),
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(found.bytes));
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
            .map_err(ApiError::internal)?,
    );
    Ok(response)
}

async fn statements(
    State(state): State<AppState>,
    operator: ConsoleOperator,
) -> Result<Response, ConsoleError> {
    let found = if is_postgres(&state) {
        Some(ops::slowest_statements(&state.db, STATEMENT_LIMIT).await?)
    } else {
        None
    };
    let (state_name, rows) = match found {
        None => ("sqlite", Vec::new()),
        Some(ops::SlowestStatements::NotInstalled) => ("not_installed", Vec::new()),
        Some(ops::SlowestStatements::NotLoaded) => ("not_loaded", Vec::new()),
        Some(ops::SlowestStatements::Statements(rows)) => ("installed", rows),
    };
    page(
        StatusCode::OK,
        "operator_statements.html",
        context! {
            statements_state => state_name,
            statements => minijinja::value::Serde(rows),
            ..operator.header()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_backup_names_are_downloadable() {
        assert!(is_backup_file_name("agenda-backup-20261201T100000Z.tar.gz"));
        for bad in [
            "../etc/passwd.tar.gz",
            "a/b.tar.gz",
            ".hidden.tar.gz",
            "x.tar.gz\"",
            "notes.txt",
            "%2e%2e.tar.gz",
        ] {
            assert!(!is_backup_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn operator_csrf_tokens_differ_from_the_organization_views() {
        let token = new_token();
        assert_ne!(csrf_token(&token), session::csrf_token(&token));
    }
}
