//! Sign-up, sign-in and sessions.
//!
//! - `POST /api/v1/auth/register` → 201: a client or provider account in the named
//!   organization (admins and support are invited by admins, `POST /users`).
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
//!   it does, a single-use token valid for [`RESET_MINUTES`](crate::accounts::RESET_MINUTES) minutes is created and
//!   e-mailed (written to the outbox in the same transaction, docs/email.md).
//! - `POST /api/v1/auth/password-reset/confirm` → 204: sets the new password, uses the
//!   token up and revokes every session of the user, in one transaction.
//! - Registering also e-mails a verification link (a token valid for
//!   [`VERIFY_HOURS`](crate::accounts::VERIFY_HOURS) hours); `POST /api/v1/auth/verify-email` `{token}` → 204 marks
//!   the address verified (`is_verified`), and `POST /api/v1/auth/verify-email/resend`
//!   (signed in) → 202 sends a new link, 409 `already_verified` when there is no need.
//! - `POST /api/v1/auth/invitations/accept` `{token, password}` → 200 with a session:
//!   the invited user sets their password (the token of the invitation e-mail, valid
//!   [`INVITATION_HOURS`](crate::accounts::INVITATION_HOURS) hours, single use) and is signed in; the address counts as
//!   verified.
//! - A **suspended** organization answers every one of these `403
//!   organization_suspended` (sign-in before any password is checked; the token
//!   routes without using the token up), and its existing sessions get the same
//!   answer from the `Auth` extractor.

use agenda_entity::enums::{OrganizationStatus, TokenPurpose, UserRole};
use agenda_entity::organization;
use agenda_entity::user::{self, CreateUser};
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
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use crate::accounts::{self, Mailed};
use crate::app::AppState;
use crate::auth::{Auth, token_digest};
use crate::error::{ApiError, ErrorResponse};
use crate::extract::ValidJson;
use crate::uow::UnitOfWork;

/// Consecutive failed sign-ins that lock an account.
pub const MAX_FAILED_LOGINS: i32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;

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
        .routes(routes!(accept_invitation))
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
    /// Invited and not signed up yet: the user has no password until they accept the
    /// invitation (an admin can send a new one, `POST /users/{id}/invitation`).
    pub invitation_pending: bool,
    pub last_login_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<user::Model> for UserView {
    fn from(u: user::Model) -> Self {
        let invitation_pending = !u.has_password();
        UserView {
            id: u.id,
            organization_id: u.organization_id,
            email: u.email,
            full_name: u.full_name,
            phone: u.phone,
            role: u.role,
            is_active: u.is_active,
            is_verified: u.is_verified,
            invitation_pending,
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

/// A new bearer session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionToken {
    /// The bearer token (64 hex digits): `Authorization: Bearer <token>`. Only its
    /// digest is stored, so it is shown this once.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    pub expires_at: DateTime<Utc>,
}

impl SessionToken {
    pub fn bearer(token: String, expires_at: DateTime<Utc>) -> Self {
        SessionToken {
            token,
            token_type: "Bearer",
            expires_at,
        }
    }
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

/// Accepting an invitation: the token of the invitation e-mail and a new password.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"token": "9f2c3e4d5b6a79880123456789abcdef0123456789abcdef0123456789abcdef", "password": "correct horse battery"}))]
pub struct AcceptInvitation {
    /// The token of the link in the invitation e-mail (64 hex digits).
    #[validate(length(equal = 64))]
    pub token: String,
    /// 10 to 128 characters.
    #[validate(length(min = 10, max = 128))]
    pub password: String,
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
/// tenant list itself and has no row-level security, so a transaction that entered no
/// tenant can read it (a transaction rather than the bare pool, which PgBouncer's
/// transaction mode does not allow for a prepared statement).
pub(crate) async fn organization_by_slug(
    state: &AppState,
    slug: &str,
) -> Result<Option<organization::Model>, ApiError> {
    let tx = state.db.begin_read().await?;
    let found = OrganizationRepo::find_by_slug(&tx, slug.trim()).await?;
    tx.commit().await.map_err(StorageError::from)?;
    Ok(found)
}

/// The organization a public request names, unless it is suspended.
async fn active_organization(
    state: &AppState,
    slug: &str,
) -> Result<Option<organization::Model>, ApiError> {
    match organization_by_slug(state, slug).await? {
        Some(o) if o.status == OrganizationStatus::Suspended => {
            Err(ApiError::organization_suspended())
        }
        found => Ok(found),
    }
}

/// Creates a client or provider account in the named organization.
#[utoipa::path(post, operation_id = "register", path = "/auth/register", tag = "auth", request_body = Register,
    responses(
        (status = 201, description = "The new user", body = UserView),
        (status = 403, description = "The organization is suspended (`organization_suspended`)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
        (status = 409, description = "The email is taken in this organization", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn register(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<Register>,
) -> Result<impl IntoResponse, ApiError> {
    let organization = active_organization(&state, &input.organization)
        .await?
        .ok_or_else(|| {
            ApiError::invalid_field("organization", "unknown", "no such organization")
        })?;
    let scope = TenantScope::new(organization.id);
    let hash = state.passwords.hash(input.password.clone()).await?;
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    let created = UserRepo::create(db, scope, input.account(), hash).await?;
    accounts::mail_token(
        &state.mail,
        db,
        &organization,
        &created,
        Mailed::EmailVerification,
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
        (status = 403, description = "The organization is suspended (`organization_suspended`)", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn login(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    ValidJson(input): ValidJson<Login>,
) -> Result<Json<SignedIn>, ApiError> {
    sign_in(&state, &uow, &headers, input).await.map(Json)
}

/// Checks the password of a validated `input` and opens a session: the sign-in of
/// the API and of the web console.
pub(super) async fn sign_in(
    state: &AppState,
    uow: &UnitOfWork,
    headers: &HeaderMap,
    input: Login,
) -> Result<SignedIn, ApiError> {
    let scope = active_organization(state, &input.organization)
        .await?
        .map(|o| TenantScope::new(o.id));
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
    // An invited user without a password yet is checked against the dummy too.
    let stored = found
        .as_ref()
        .filter(|(_, u)| u.has_password())
        .map(|(_, u)| u.password_hash.clone());
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
    signed_in(state, db, scope, user.id, headers).await
}

/// A new session for the user `user_id`, as sign-in answers it.
async fn signed_in(
    state: &AppState,
    db: &sea_orm::DatabaseTransaction,
    scope: TenantScope,
    user_id: Uuid,
    headers: &HeaderMap,
) -> Result<SignedIn, ApiError> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let (token, expires_at) =
        accounts::start_session(db, scope, user_id, state.settings.session_ttl, agent).await?;
    let user = UserRepo::get(db, scope, user_id).await?;
    Ok(SignedIn {
        token,
        token_type: "Bearer",
        expires_at,
        user: user.into(),
    })
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
        (status = 403, description = "The organization is suspended (`organization_suspended`)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    uow: UnitOfWork,
    ValidJson(input): ValidJson<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    let Some(organization) = active_organization(&state, &input.organization).await? else {
        return Ok(StatusCode::ACCEPTED);
    };
    let scope = TenantScope::new(organization.id);
    uow.enter(scope).await?;
    let db = uow.tx().await?;
    if let Some(user) = UserRepo::find_by_email(db, scope, &input.email).await?
        && user.is_active
    {
        // The token travels only in the e-mail; it is never logged.
        accounts::mail_token(&state.mail, db, &organization, &user, Mailed::PasswordReset).await?;
        tracing::info!(user_id = %user.id, "password reset requested");
    }
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with a reset token; revokes every session of the user.
#[utoipa::path(post, operation_id = "confirmPasswordReset", path = "/auth/password-reset/confirm", tag = "auth", request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password changed"),
        (status = 403, description = "The organization is suspended (`organization_suspended`); the token is not used up", body = ErrorResponse),
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
    let user = set_password_with_token(tx, TokenPurpose::PasswordReset, &input.token, hash).await?;
    let scope = TenantScope::new(user.organization_id);
    SessionRepo::revoke_all_for_user(tx, scope, user.id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Uses up the mailed token of `purpose` and gives its user the password `hash`
/// (computed before the transaction). Following a mailed link proves the address,
/// so it counts as verified, and an invitation still open for the user is used up
/// (an invited user may also choose their password with a reset).
async fn set_password_with_token(
    tx: &sea_orm::DatabaseTransaction,
    purpose: TokenPurpose,
    token: &str,
    hash: String,
) -> Result<user::Model, ApiError> {
    let user = use_token(tx, purpose, token).await?;
    let scope = TenantScope::new(user.organization_id);
    UserRepo::set_password_hash(tx, scope, user.id, hash).await?;
    UserRepo::mark_verified(tx, scope, user.id).await?;
    OneTimeTokenRepo::use_up_all(tx, scope, user.id, TokenPurpose::Invitation, Utc::now()).await?;
    Ok(user)
}

/// Confirms the e-mail address with the token of a verification e-mail.
#[utoipa::path(post, operation_id = "verifyEmail", path = "/auth/verify-email", tag = "auth", request_body = VerifyEmail,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 403, description = "The organization is suspended (`organization_suspended`); the token is not used up", body = ErrorResponse),
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
    accounts::mail_token(
        &state.mail,
        db,
        &organization,
        &auth.user,
        Mailed::EmailVerification,
    )
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets the invited user's password and signs them in, with the token of the
/// invitation e-mail.
#[utoipa::path(post, operation_id = "acceptInvitation", path = "/auth/invitations/accept", tag = "auth", request_body = AcceptInvitation,
    responses(
        (status = 200, description = "The password is set and the user signed in", body = SignedIn),
        (status = 403, description = "The organization is suspended (`organization_suspended`); the token is not used up", body = ErrorResponse),
        (status = 422, description = "Invalid, used or expired token (`token`), or an invalid password", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn accept_invitation(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    ValidJson(input): ValidJson<AcceptInvitation>,
) -> Result<Json<SignedIn>, ApiError> {
    // Hashed before the transaction opens: the hash is slow on purpose.
    let hash = state.passwords.hash(input.password).await?;
    let tx = uow.tx().await?;
    let user = set_password_with_token(tx, TokenPurpose::Invitation, &input.token, hash).await?;
    if !user.is_active {
        // Deactivated since the invitation: the link is dead, like a used one (the
        // error rolls the password back).
        return Err(invalid_token());
    }
    let scope = TenantScope::new(user.organization_id);
    UserRepo::record_login(tx, scope, user.id, Utc::now()).await?;
    accounts::audit(
        tx,
        scope,
        Some(user.id),
        "user.invitation_accept",
        "user",
        user.id,
        json!({"email": user.email, "role": user.role}),
    )
    .await?;
    signed_in(&state, tx, scope, user.id, &headers)
        .await
        .map(Json)
}

fn invalid_token() -> ApiError {
    ApiError::invalid_field("token", "invalid", "is unknown, used or expired")
}

/// Uses up a mailed token of `purpose` and returns its user; finds the token's
/// organization and enters it for the rest of the transaction. Unknown, used,
/// expired and other-purpose tokens are one `422` on `token`; a token of a suspended
/// organization is `403 organization_suspended` (and the rollback keeps it unused).
async fn use_token(
    tx: &sea_orm::DatabaseTransaction,
    purpose: TokenPurpose,
    token: &str,
) -> Result<user::Model, ApiError> {
    let user = OneTimeTokenRepo::consume(tx, purpose, &token_digest(token.trim()), Utc::now())
        .await
        .map_err(|e| match e {
            StorageError::NotFound { .. } => invalid_token(),
            other => other.into(),
        })?;
    let organization = OrganizationRepo::get(tx, user.organization_id).await?;
    if organization.status == OrganizationStatus::Suspended {
        return Err(ApiError::organization_suspended());
    }
    Ok(user)
}
