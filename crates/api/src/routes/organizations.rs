//! Organizations (tenants).
//!
//! - `POST /api/v1/organizations` → 201 with the organization and its `Location`;
//!   422 on an invalid slug, time zone or currency; 409 when the slug is taken
//!   (decided by the unique constraint, not by a prior lookup).
//! - `GET /api/v1/organizations/{id}` → 200 for a member of that organization; any other
//!   id (unknown, or another tenant's) is 404. Creating an organization is public
//!   (self-service sign-up); reading one is not.

use agenda_entity::organization::{self, CreateOrganization, Locale, OrganizationStatus};
use agenda_storage::repo::organizations::OrganizationRepo;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(show))
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

/// Creates an organization (a tenant).
#[utoipa::path(post, operation_id = "createOrganization", path = "/organizations", tag = "organizations",
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "Created", body = OrganizationView),
        (status = 409, description = "The slug is taken", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn create(
    uow: UnitOfWork,
    ValidJson(input): ValidJson<CreateOrganization>,
) -> Result<impl IntoResponse, ApiError> {
    let org = OrganizationRepo::create(uow.tx().await?, input).await?;
    let location = format!("/api/v1/organizations/{}", org.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(OrganizationView::from(org)),
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
