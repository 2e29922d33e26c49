//! Sign-up, sign-in and sessions.
//!
//! - `POST /api/v1/auth/register` → 201: a client or provider account in the named
//!   organization (admins and support are created by admins).
//! - `POST /api/v1/auth/login` → 200 `{token, expires_at, user}`; 401 with the same
//!   message whether the email is unknown or the password wrong (and the same work:
//!   an unknown email is checked against a dummy hash). After
//!   [`MAX_FAILED_LOGINS`] consecutive failures the account is locked for
//!   [`LOCK_MINUTES`] minutes; while locked, sign-in fails with the same 401, even
//!   with the right password. The count and the lock are decided by single
//!   statements ([`UserRepo::record_failed_login`], [`UserRepo::record_login`]), so
//!   concurrent attempts cannot outrun the lock and a success never lifts it.
//! - Sign-in, sign-up and reset confirmation hash passwords within the server's
//!   bound ([`crate::password::PasswordHashing`]); when it is saturated they answer
//!   503 with `Retry-After` without hashing.
//! - `POST /api/v1/auth/logout` → 204: revokes the session of the token used.
//! - `GET /api/v1/auth/me` → 200: the signed-in user.
//! - `POST /api/v1/auth/password-reset` → 202 whether or not the account exists; when
//!   it does, a single-use token valid for [`RESET_MINUTES`] minutes is created.
//! - `POST /api/v1/auth/password-reset/confirm` → 204: sets the new password, uses the
//!   token up and revokes every session of the user, in one transaction.

use agenda_entity::enums::UserRole;
use agenda_entity::user::{self, CreateUser};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::sessions::{PasswordResetRepo, SessionRepo};
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantScope};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::app::AppState;
use crate::auth::{Auth, new_token, token_digest};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::uow::UnitOfWork;

/// Consecutive failed sign-ins that lock an account.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;
/// How long a password-reset token is valid.
pub const RESET_MINUTES: i64 = 30;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub full_name: String,
    pub phone: Option<String>,
    pub role: UserRole,
    pub is_active: bool,
    pub is_verified: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for UserView {
    fn from(u: user::Model) -> Self {
        UserView {
            id: u.id,
            organization_id: u.organization_id,
            email: u.email,
            full_name: u.full_name,
            phone: u.phone,
            role: u.role,
            is_active: u.is_active,
            is_verified: u.is_verified,
            last_login_at: u.last_login_at,
            created_at: u.created_at,
        }
    }
}

/// Sign-up: the organization's slug and the account.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct Register {
    pub organization: String,
    #[serde(flatten)]
    pub account: CreateUser,
}

impl Validate for Register {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = match self.account.validate() {
            Ok(()) => ValidationErrors::new(),
            Err(e) => e,
        };
        if !matches!(self.account.role, UserRole::Client | UserRole::Provider) {
            errors.add(
                "role",
                validator::ValidationError::new("role")
                    .with_message("must be client or provider; admins create other roles".into()),
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    #[validate(length(min = 1, max = 63))]
    pub organization: String,
    #[validate(length(min = 1, max = 254))]
    pub email: String,
    #[validate(length(min = 1, max = 128))]
    pub password: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    pub token: String,
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[validate(length(min = 1, max = 63))]
    pub organization: String,
    #[validate(length(min = 1, max = 254))]
    pub email: String,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    #[validate(length(equal = 64))]
    pub token: String,
    #[validate(length(min = 10, max = 128))]
    pub new_password: String,
}

fn bad_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "invalid email or password",
    )
}

/// The organization a public request names by slug. The organizations table is the
/// tenant list itself and has no row-level security, so the pool can read it.
async fn organization_scope(state: &AppState, slug: &str) -> Result<Option<TenantScope>, ApiError> {
    Ok(OrganizationRepo::find_by_slug(state.db.conn(), slug.trim())
        .await?
        .map(|o| TenantScope::new(o.id)))
}

/// Creates a client or provider account in the named organization.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = Register,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 400, description = "Malformed JSON or wrong content type", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
        (status = 409, description = "The email is taken in this organization", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn register(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<Register>,
) -> Result<impl IntoResponse, ApiError> {
    let scope = organization_scope(&state, &input.organization)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field("organization", "unknown", "no such organization")
        })?;
    let hash = state.passwords.hash(input.account.password.clone()).await?;
    uow.enter(scope).await?;
    let created = UserRepo::create(uow.tx().await?, scope, input.account, hash).await?;
    Ok((StatusCode::CREATED, Json(UserView::from(created))))
}

/// Signs in; returns a bearer token.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
        (status = 400, description = "Malformed JSON or wrong content type", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
        (status = 401, description = "Invalid email or password (or the account is locked)", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn login(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    ValidJson(input): ValidJson<Login>,
) -> Result<Json<SignedIn>, ApiError> {
    let scope = organization_scope(&state, &input.organization).await?;
    // A short read of its own: the password check below is slow on purpose and must
    // not hold a connection (or, on SQLite, the write lock).
    let found = match scope {
        Some(scope) => {
            let read = state.db.read_in(scope).await?;
            let user = UserRepo::find_by_email(&read, scope, &input.email).await?;
            read.commit().await.map_err(StorageError::from)?;
            user.map(|u| (scope, u))
        }
        None => None,
    };
    // The same check whether or not the account exists (an unknown one is checked
    // against the dummy hash) and whether or not it is locked, so neither the answer
    // nor its timing tells them apart.
    let stored = found.as_ref().map(|(_, u)| u.password_hash.clone());
    let matches = state.passwords.verify(input.password, stored).await?;
    let Some((scope, user)) = found else {
        return Err(bad_credentials());
    };
    // Whether the account is locked is decided by the writes below, not by the row
    // read above: a failure may have locked it since.
    let now = Utc::now();
    if !matches {
        // Its own transaction: the request's is rolled back with the 401.
        let tx = state.db.begin_in(scope).await?;
        let locked = UserRepo::record_failed_login(
            &tx,
            scope,
            user.id,
            now,
            MAX_FAILED_LOGINS,
            Duration::minutes(LOCK_MINUTES),
        )
        .await?;
        tx.commit().await.map_err(StorageError::from)?;
        if locked {
            tracing::warn!(user_id = %user.id, failures = MAX_FAILED_LOGINS, lock_minutes = LOCK_MINUTES, "account locked after failed sign-ins");
        }
        return Err(bad_credentials());
    }
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    if !UserRepo::record_login(db, scope, user.id, now).await? {
        // Locked or inactive: the same answer as a wrong password.
        return Err(bad_credentials());
    }
    let token = new_token();
    let expires_at =
        now + chrono::Duration::from_std(state.settings.session_ttl).unwrap_or(Duration::days(7));
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    SessionRepo::create(
        db,
        scope,
        user.id,
        &token_digest(&token),
        expires_at,
        None,
        agent,
    )
    .await?;
    let user = UserRepo::get(db, scope, user.id).await?;
    Ok(Json(SignedIn {
        token,
        token_type: "Bearer",
        expires_at,
        user: user.into(),
    }))
}

/// Revokes the session of the token used.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "Not signed in", body = ErrorResponse),
    ))]
async fn logout(uow: UnitOfWork, auth: Auth) -> Result<StatusCode, ApiError> {
    let db = uow.tx().await?;
    SessionRepo::revoke(db, auth.scope, auth.session_id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = UserView),
        (status = 401, description = "Not signed in", body = ErrorResponse),
    ))]
async fn me(auth: Auth) -> Json<UserView> {
    Json(auth.user.into())
}

/// Asks for a password reset; the answer is the same whether or not the account exists.
#[utoipa::path(post, path = "/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted"),
        (status = 400, description = "Malformed JSON or wrong content type", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let Some(scope) = organization_scope(&state, &input.organization).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    if let Some(user) = UserRepo::find_by_email(db, scope, &input.email).await?
        && user.is_active
    {
        let token = new_token();
        let expires = Utc::now() + Duration::minutes(RESET_MINUTES);
        PasswordResetRepo::create(db, scope, user.id, &token_digest(&token), expires).await?;
        // Delivery (e-mail) is not part of this service yet; the token is never logged.
        tracing::info!(user_id = %user.id, "password reset requested");
    }
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset token; revokes every session of the user.
#[utoipa::path(post, path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password changed"),
        (status = 400, description = "Malformed JSON or wrong content type", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn confirm_reset(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    // Hashed before the transaction opens: the hash is slow on purpose.
    let hash = state.passwords.hash(input.new_password).await?;
    let tx = uow.tx().await?;
    let now = Utc::now();
    // Finds the token's organization and enters it for the rest of the transaction.
    let user = PasswordResetRepo::consume(tx, &token_digest(input.token.trim()), now)
        .await
        .map_err(|_| ApiError::invalid_field("token", "invalid", "is unknown, used or expired"))?;
    let scope = TenantScope::new(user.organization_id);
    UserRepo::set_password_hash(tx, scope, user.id, hash).await?;
    SessionRepo::revoke_all_for_user(tx, scope, user.id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}
