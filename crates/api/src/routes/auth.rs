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
//!   it does, a single-use token valid for [`RESET_MINUTES`] minutes is created and
//!   e-mailed (written to the outbox in the same transaction, docs/email.md).
//! - `POST /api/v1/auth/password-reset/confirm` → 204: sets the new password, uses the
//!   token up and revokes every session of the user, in one transaction.
//! - Registering also e-mails a verification link (a token valid for
//!   [`VERIFY_HOURS`] hours); `POST /api/v1/auth/verify-email` `{token}` → 204 marks
//!   the address verified (`is_verified`), and `POST /api/v1/auth/verify-email/resend`
//!   (signed in) → 202 sends a new link, 409 `already_verified` when there is no need.

use agenda_entity::enums::{TokenPurpose, UserRole};
use agenda_entity::organization;
use agenda_entity::user::{self, CreateUser};
use agenda_mail::{Email, Recipient};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::sessions::{OneTimeTokenRepo, SessionRepo};
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
/// How long an e-mail verification link is valid.
pub const VERIFY_HOURS: i64 = 48;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
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

/// The roles one can sign up with; admins create the others.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignUpRole {
    Client,
    Provider,
}

impl From<SignUpRole> for UserRole {
    fn from(role: SignUpRole) -> Self {
        match role {
            SignUpRole::Client => UserRole::Client,
            SignUpRole::Provider => UserRole::Provider,
        }
    }
}

/// Sign-up: the organization's slug and the account. The account's rules are those
/// of [`CreateUser`] (checked on [`Register::account`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"organization": "acme", "email": "ana@example.com",
    "password": "correct horse battery", "full_name": "Ana Souza", "role": "client"}))]
pub struct Register {
    /// The organization's slug.
    #[schema(example = "acme")]
    pub organization: String,
    /// An e-mail address, at most 254 characters; unique in the organization.
    #[schema(example = "ana@example.com")]
    pub email: String,
    /// 10 to 128 characters.
    #[schema(example = "correct horse battery")]
    pub password: String,
    /// 1 to 200 characters, not blank.
    #[schema(example = "Ana Souza")]
    pub full_name: String,
    /// 5 to 32 characters.
    pub phone: Option<String>,
    pub role: SignUpRole,
    /// A Brazilian CPF or CNPJ with valid check digits.
    pub tax_id: Option<String>,
}

impl Register {
    /// The account to create.
    pub fn account(&self) -> CreateUser {
        CreateUser {
            email: self.email.clone(),
            password: self.password.clone(),
            full_name: self.full_name.clone(),
            phone: self.phone.clone(),
            role: self.role.into(),
            tax_id: self.tax_id.clone(),
        }
    }
}

impl Validate for Register {
    fn validate(&self) -> Result<(), ValidationErrors> {
        self.account().validate()
    }
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"organization": "acme", "email": "ana@example.com", "password": "correct horse battery"}))]
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
#[schema(example = json!({"organization": "acme", "email": "ana@example.com"}))]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    #[validate(length(min = 1, max = 63))]
    pub organization: String,
    #[validate(length(min = 1, max = 254))]
    pub email: String,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The token of the link in the verification e-mail.
    #[validate(length(equal = 64))]
    pub token: String,
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
async fn organization_by_slug(
    state: &AppState,
    slug: &str,
) -> Result<Option<organization::Model>, ApiError> {
    Ok(OrganizationRepo::find_by_slug(state.db.conn(), slug.trim()).await?)
}

async fn organization_scope(state: &AppState, slug: &str) -> Result<Option<TenantScope>, ApiError> {
    Ok(organization_by_slug(state, slug)
        .await?
        .map(|o| TenantScope::new(o.id)))
}

/// Issues a single-use token for `purpose` to `user` and e-mails it, in `db` (the
/// request's transaction): the token and its message commit together or not at all.
async fn mail_token(
    state: &AppState,
    db: &sea_orm::DatabaseTransaction,
    organization: &organization::Model,
    user: &user::Model,
    purpose: TokenPurpose,
) -> Result<(), ApiError> {
    let scope = TenantScope::new(organization.id);
    let token = new_token();
    let (valid_for, email) = match purpose {
        TokenPurpose::PasswordReset => (
            Duration::minutes(RESET_MINUTES),
            Email::PasswordReset {
                token: token.clone(),
                valid_minutes: RESET_MINUTES,
            },
        ),
        TokenPurpose::EmailVerification => (
            Duration::hours(VERIFY_HOURS),
            Email::EmailVerification {
                token: token.clone(),
                valid_hours: VERIFY_HOURS,
            },
        ),
        TokenPurpose::Invitation => {
            return Err(ApiError::internal(
                "invitations are sent by the invitation route",
            ));
        }
    };
    let expires = Utc::now() + valid_for;
    OneTimeTokenRepo::issue(db, scope, user.id, purpose, &token_digest(&token), expires).await?;
    state
        .mail
        .enqueue(db, organization, Recipient::user(user), email)
        .await?;
    Ok(())
}

/// Creates a client or provider account in the named organization.
#[utoipa::path(post, operation_id = "register", path = "/auth/register", tag = "auth", request_body = Register,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
        (status = 409, description = "The email is taken in this organization", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn register(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<Register>,
) -> Result<impl IntoResponse, ApiError> {
    let organization = organization_by_slug(&state, &input.organization)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field("organization", "unknown", "no such organization")
        })?;
    let scope = TenantScope::new(organization.id);
    let hash = state.passwords.hash(input.password.clone()).await?;
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    let created = UserRepo::create(db, scope, input.account(), hash).await?;
    mail_token(
        &state,
        db,
        &organization,
        &created,
        TokenPurpose::EmailVerification,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(UserView::from(created))))
}

/// Signs in; returns a bearer token.
#[utoipa::path(post, operation_id = "login", path = "/auth/login", tag = "auth", request_body = Login,
    responses(
        (status = 200, description = "Signed in", body = SignedIn),
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
#[utoipa::path(post, operation_id = "logout", path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
    ))]
async fn logout(uow: UnitOfWork, auth: Auth) -> Result<StatusCode, ApiError> {
    let db = uow.tx().await?;
    SessionRepo::revoke(db, auth.scope, auth.session_id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, operation_id = "getSignedInUser", path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The signed-in user", body = UserView),
    ))]
async fn me(auth: Auth) -> Json<UserView> {
    Json(auth.user.into())
}

/// Asks for a password reset; the answer is the same whether or not the account exists.
#[utoipa::path(post, operation_id = "requestPasswordReset", path = "/auth/password-reset", tag = "auth", request_body = ResetRequest,
    responses(
        (status = 202, description = "Accepted"),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let Some(organization) = organization_by_slug(&state, &input.organization).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    let scope = TenantScope::new(organization.id);
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    if let Some(user) = UserRepo::find_by_email(db, scope, &input.email).await?
        && user.is_active
    {
        // The token travels only in the e-mail; it is never logged.
        mail_token(
            &state,
            db,
            &organization,
            &user,
            TokenPurpose::PasswordReset,
        )
        .await?;
        tracing::info!(user_id = %user.id, "password reset requested");
    }
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset token; revokes every session of the user.
#[utoipa::path(post, operation_id = "confirmPasswordReset", path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password changed"),
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
    let user = use_token(tx, TokenPurpose::PasswordReset, &input.token).await?;
    let scope = TenantScope::new(user.organization_id);
    UserRepo::set_password_hash(tx, scope, user.id, hash).await?;
    SessionRepo::revoke_all_for_user(tx, scope, user.id, now).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the e-mail address with the token of a verification e-mail.
#[utoipa::path(post, operation_id = "verifyEmail", path = "/auth/verify-email", tag = "auth", request_body = VerifyEmail,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 422, description = "Invalid, used or expired token", body = ErrorResponse),
    ))]
async fn verify_email(
    uow: UnitOfWork,
    ValidJson(input): ValidJson<VerifyEmail>,
) -> Result<StatusCode, ApiError> {
    let tx = uow.tx().await?;
    let user = use_token(tx, TokenPurpose::EmailVerification, &input.token).await?;
    UserRepo::mark_verified(tx, TenantScope::new(user.organization_id), user.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends the signed-in user a new verification e-mail.
#[utoipa::path(post, operation_id = "resendVerificationEmail", path = "/auth/verify-email/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "A new verification e-mail is on its way"),
        (status = 409, description = "The address is verified already", body = ErrorResponse),
    ))]
async fn resend_verification(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
) -> Result<StatusCode, ApiError> {
    if auth.user.is_verified {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_verified",
            "this e-mail address is verified already",
        ));
    }
    let db = uow.tx().await?;
    let organization = OrganizationRepo::get(db, auth.scope.organization_id()).await?;
    mail_token(
        &state,
        db,
        &organization,
        &auth.user,
        TokenPurpose::EmailVerification,
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Uses up a mailed token of `purpose` and returns its user; finds the token's
/// organization and enters it for the rest of the transaction. Unknown, used,
/// expired and other-purpose tokens are one `422` on `token`.
async fn use_token(
    tx: &sea_orm::DatabaseTransaction,
    purpose: TokenPurpose,
    token: &str,
) -> Result<user::Model, ApiError> {
    OneTimeTokenRepo::consume(tx, purpose, &token_digest(token.trim()), Utc::now())
        .await
        .map_err(|_| ApiError::invalid_field("token", "invalid", "is unknown, used or expired"))
}
