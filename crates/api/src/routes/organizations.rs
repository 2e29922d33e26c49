//! Organizations (tenants), and self-service sign-up.
//!
//! - `POST /api/v1/organizations` → 201: **sign-up**. Creates the organization and
//!   its first admin in one transaction (`{"organization": {…}, "admin": {…}}`), with
//!   the organization's `Location`. With the admin's `password` the answer carries a
//!   session (`session.token`) and a verification e-mail goes to the admin; without
//!   one, the admin is e-mailed an invitation to choose it (`session` is `null`).
//!   422 on an invalid field (`organization.slug`, `admin.email`, …); 409 when the
//!   slug is taken (decided by the unique constraint, not by a prior lookup), and
//!   then nothing is written.
//! - `GET /api/v1/organizations/{id}` → 200 for a member of that organization; any
//!   other id (unknown, or another tenant's) is 404.
//! - `PATCH /api/v1/organizations/{id}` (admin) → 200: the name, time zone and
//!   e-mail language. The slug and currency are fixed; the status is the platform
//!   operator's (`agenda org suspend|activate`).

use agenda_entity::enums::UserRole;
use agenda_entity::organization::{
    self, CreateOrganization, Locale, OrganizationStatus, UpdateOrganization,
};
use agenda_entity::user::CreateUser;
use agenda_storage::repo::organizations::OrganizationRepo;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::{Validate, ValidationErrors};

use super::auth::{SessionToken, UserView};
use crate::accounts::{self, Creator};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show, update))
}

/// The first admin of a new organization. Without a password, an invitation to
/// choose one is e-mailed instead of a session being returned.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "maria@acme.example", "full_name": "Maria Silva", "password": "correct horse battery"}))]
pub struct FirstAdmin {
    /// An e-mail address, at most 254 characters.
    pub email: String,
    /// 1 to 200 characters, not blank.
    pub full_name: String,
    /// 5 to 32 characters.
    pub phone: Option<String>,
    /// 10 to 128 characters. Left out: the admin is invited by e-mail to choose it.
    pub password: Option<String>,
}

impl FirstAdmin {
    /// The account to create (the role is always admin).
    pub fn account(&self) -> CreateUser {
        let account = CreateUser::without_password(
            self.email.clone(),
            self.full_name.clone(),
            self.phone.clone(),
            UserRole::Admin,
            None,
        );
        match &self.password {
            Some(password) => CreateUser {
                password: password.clone(),
                ..account
            },
            None => account,
        }
    }
}

impl Validate for FirstAdmin {
    fn validate(&self) -> Result<(), ValidationErrors> {
        self.account().validate()
    }
}

/// Sign-up: a new organization and its first admin.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "organization": {"slug": "acme-clinic", "name": "Acme Clinic", "time_zone": "America/Sao_Paulo", "currency": "BRL"},
    "admin": {"email": "maria@acme.example", "full_name": "Maria Silva", "password": "correct horse battery"}}))]
pub struct SignUp {
    #[validate(nested)]
    pub organization: CreateOrganization,
    #[validate(nested)]
    pub admin: FirstAdmin,
}

/// A new organization, its first admin and, when the admin gave a password, their
/// session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedUp {
    pub organization: OrganizationView,
    pub admin: UserView,
    /// `null` when the admin was invited to choose a password.
    pub session: Option<SessionToken>,
}

/// An organization as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OrganizationView {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub time_zone: String,
    pub currency: String,
    /// The language of the organization's e-mails.
    pub locale: Locale,
    pub status: OrganizationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<organization::Model> for OrganizationView {
    fn from(m: organization::Model) -> Self {
        OrganizationView {
            id: m.id,
            slug: m.slug,
            name: m.name,
            time_zone: m.time_zone,
            currency: m.currency,
            locale: m.locale,
            status: m.status,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Self-service sign-up: creates an organization and its first admin, and signs the
/// admin in (or invites them, without a password).
#[utoipa::path(post, operation_id = "createOrganization", path = "/organizations", tag = "organizations",
    request_body = SignUp,
    responses(
        (status = 201, description = "The organization, its admin and (with a password) the admin's session", body = SignedUp,
            headers(("Location" = String, description = "The organization's URL"))),
        (status = 409, description = "The slug is taken; nothing was created", body = ErrorResponse),
        (status = 422, description = "Invalid fields (`organization.…`, `admin.…`)", body = ErrorResponse),
        (status = 503, description = "Too many password checks in progress; retry after `Retry-After` seconds", body = ErrorResponse),
    ))]
async fn create(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    ValidJson(input): ValidJson<SignUp>,
) -> Result<impl IntoResponse, ApiError> {
    // Hashed before the transaction opens: the hash is slow on purpose.
    let hash = match &input.admin.password {
        Some(password) => Some(state.passwords.hash(password.clone()).await?),
        None => None,
    };
    let tx = uow.tx().await?;
    let created = accounts::create_organization(
        &state.mail,
        tx,
        input.organization,
        input.admin.account(),
        hash,
        Creator::SignUp,
    )
    .await?;
    let scope = agenda_storage::TenantScope::new(created.organization.id);
    // The unit of work's transaction entered the new tenant already; record it.
    uow.enter(scope).await?;
    let session = if created.invited {
        None
    } else {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let (token, expires_at) = accounts::start_session(
            tx,
            scope,
            created.admin.id,
            state.settings.session_ttl,
            agent,
        )
        .await?;
        Some(SessionToken::bearer(token, expires_at))
    };
    let location = format!("/api/v1/organizations/{}", created.organization.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(SignedUp {
            organization: created.organization.into(),
            admin: created.admin.into(),
            session,
        }),
    ))
}

/// The caller's own organization.
#[utoipa::path(get, operation_id = "getOrganization", path = "/organizations/{id}", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = OrganizationView),
        (status = 404, description = "No such organization (or not yours)", body = ErrorResponse),
    ))]
async fn show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<OrganizationView>, ApiError> {
    let db = uow.read().await?;
    if id != auth.scope.organization_id() {
        return Err(ApiError::not_found("organization"));
    }
    let org = OrganizationRepo::get(db, id).await?;
    Ok(Json(org.into()))
}

/// The organization's profile fields an admin may change.
#[derive(Debug, Clone, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Clinic & Spa", "locale": "pt-BR"}))]
pub struct UpdateProfile {
    /// 1 to 200 characters, not blank.
    #[validate(
        length(min = 1, max = 200),
        custom(function = "agenda_entity::validate::not_blank")
    )]
    pub name: Option<String>,
    /// An IANA time zone, e.g. `America/Sao_Paulo`: the default for providers' hours.
    #[validate(custom(function = "agenda_entity::validate::time_zone"))]
    pub time_zone: Option<String>,
    /// The language of the organization's e-mails.
    pub locale: Option<Locale>,
}

/// Changes the organization's name, time zone or e-mail language (admin).
#[utoipa::path(patch, operation_id = "updateOrganization", path = "/organizations/{id}", tag = "organizations",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Organization id")),
    request_body = UpdateProfile,
    responses(
        (status = 200, description = "The organization", body = OrganizationView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such organization (or not yours)", body = ErrorResponse),
    ))]
async fn update(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<UpdateProfile>,
) -> Result<Json<OrganizationView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    if id != auth.scope.organization_id() {
        return Err(ApiError::not_found("organization"));
    }
    let tx = uow.tx().await?;
    let changes = json!({"name": input.name, "time_zone": input.time_zone, "locale": input.locale});
    let change = UpdateOrganization {
        name: input.name,
        time_zone: input.time_zone,
        locale: input.locale,
        status: None,
    };
    let org = OrganizationRepo::update(tx, id, change).await?;
    accounts::audit(
        tx,
        auth.scope,
        Some(auth.user.id),
        "organization.update",
        "organization",
        id,
        changes,
    )
    .await?;
    Ok(Json(org.into()))
}
