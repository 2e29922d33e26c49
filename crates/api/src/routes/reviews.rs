//! Reviews of completed appointments, the provider's response, and moderation.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `POST /reviews` | their own completed appointment, once | no | no | no |
//! | `GET /reviews` | approved only | approved; all of their own (`provider_id` = themself) | all | all |
//! | `POST /reviews/{id}/response` | no | reviews of themself | no | no |
//! | `POST /reviews/{id}/moderate` | no | no | yes | yes |
//! | `DELETE /reviews/{id}` | no | no | yes | yes |
//!
//! A new review is `pending` until an admin or support user approves or rejects it.
//! The provider's `provider_settings.rating_count` and `rating_total` are kept by
//! [`ReviewRepo`] in the transaction of each create, moderation and delete:
//! approval adds the rating, leaving approved (rejection, deletion) takes it away. A
//! provider without a `provider_settings` row gets none created.
//! Another user's appointment or review answers 404, like one that does not exist.

use agenda_entity::enums::{AppointmentStatus, ModerationStatus, UserRole};
use agenda_entity::review;
use agenda_storage::StorageError;
use agenda_storage::repo::appointments::AppointmentRepo;
use agenda_storage::repo::audit::{AuditEntry, AuditRepo};
use agenda_storage::repo::resource::{ListQuery, Repo};
use agenda_storage::repo::reviews::ReviewRepo;
use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath, ValidQuery};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(respond))
        .routes(routes!(moderate))
        .routes(routes!(delete))
}

/// A review as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewView {
    pub id: Uuid,
    pub appointment_id: Uuid,
    pub client_id: Uuid,
    pub provider_id: Uuid,
    pub rating: i32,
    pub comment: Option<String>,
    pub provider_response: Option<String>,
    pub responded_at: Option<DateTime<Utc>>,
    pub moderation_status: ModerationStatus,
    pub moderated_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<review::Model> for ReviewView {
    fn from(r: review::Model) -> Self {
        ReviewView {
            id: r.id,
            appointment_id: r.appointment_id,
            client_id: r.client_id,
            provider_id: r.provider_id,
            rating: r.rating,
            comment: r.comment,
            provider_response: r.provider_response,
            responded_at: r.responded_at,
            moderation_status: r.moderation_status,
            moderated_at: r.moderated_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// A page of reviews; pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReviewPage {
    pub items: Vec<ReviewView>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"appointment_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "rating": 5, "comment": "Great cut"}))]
#[serde(deny_unknown_fields)]
pub struct CreateReviewBody {
    /// A completed appointment of the caller.
    pub appointment_id: Uuid,
    /// 1 to 5.
    #[validate(range(min = 1, max = 5))]
    pub rating: i32,
    #[validate(length(max = 2000))]
    pub comment: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    pub provider_id: Option<Uuid>,
    /// Staff only; clients and providers always get approved reviews (providers: all
    /// of their own when `provider_id` is themself).
    pub moderation_status: Option<ModerationStatus>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseBody {
    #[validate(
        length(min = 1, max = 2000),
        custom(function = "agenda_entity::validate::not_blank")
    )]
    pub response: String,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModerateBody {
    /// `approved` or `rejected`.
    pub status: ModerationStatus,
}

fn is_staff(auth: &Auth) -> bool {
    matches!(auth.role(), UserRole::Admin | UserRole::Support)
}

/// Reviews a completed appointment of the caller (once per appointment).
#[utoipa::path(post, operation_id = "createReview", path = "/reviews", tag = "reviews", security(("bearer" = [])),
    request_body = CreateReviewBody,
    responses(
        (status = 201, description = "Created, pending moderation", body = ReviewView),
        (status = 403, description = "Only clients write reviews", body = ErrorResponse),
        (status = 404, description = "No such appointment of yours", body = ErrorResponse),
        (status = 409, description = "Not completed, or already reviewed", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn create(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<CreateReviewBody>,
) -> Result<(StatusCode, Json<ReviewView>), ApiError> {
    auth.require(&[UserRole::Client])?;
    let tx = uow.tx().await?;
    let appointment = AppointmentRepo::get(tx, auth.scope, input.appointment_id).await?;
    if appointment.client_id != auth.user.id {
        return Err(ApiError::not_found("appointment"));
    }
    if appointment.status != AppointmentStatus::Completed {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_completed",
            "only a completed appointment can be reviewed",
        ));
    }
    let (client_id, provider_id) = (auth.user.id, appointment.provider_id);
    let row = review::CreateReview {
        appointment_id: input.appointment_id,
        rating: input.rating,
        comment: input.comment,
    };
    let created = ReviewRepo::create(
        tx,
        auth.scope,
        row,
        client_id,
        provider_id,
        ModerationStatus::Pending,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Reviews, oldest first. Clients see approved reviews only; providers see approved
/// reviews, and every review of themself when `provider_id` is their own id.
#[utoipa::path(get, operation_id = "listReviews", path = "/reviews", tag = "reviews", security(("bearer" = [])),
    params(ReviewQuery),
    responses(
        (status = 200, description = "A page", body = ReviewPage),
        (status = 422, description = "Invalid page size or cursor", body = ErrorResponse),
    ))]
async fn list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ReviewQuery>,
) -> Result<Json<ReviewPage>, ApiError> {
    let db = uow.read().await?;
    let mut query = ListQuery {
        limit: q.limit,
        after: q.after,
        ..ListQuery::default()
    };
    if let Some(provider) = q.provider_id {
        query
            .filters
            .push(("provider_id".into(), provider.to_string()));
    }
    let sees_all = is_staff(&auth)
        || (auth.role() == UserRole::Provider && q.provider_id == Some(auth.user.id));
    let status = if sees_all {
        q.moderation_status
    } else {
        Some(ModerationStatus::Approved)
    };
    if let Some(status) = status {
        query
            .filters
            .push(("moderation_status".into(), status.as_str().into()));
    }
    let page = Repo::<review::Entity>::list(db, auth.scope, &query).await?;
    Ok(Json(ReviewPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// The reviewed provider answers a review (replaces an earlier answer).
#[utoipa::path(post, operation_id = "respondToReview", path = "/reviews/{id}/response", tag = "reviews", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ResponseBody,
    responses(
        (status = 200, description = "The review with the response", body = ReviewView),
        (status = 403, description = "Only providers respond", body = ErrorResponse),
        (status = 404, description = "Not found (or not about you)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn respond(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<ResponseBody>,
) -> Result<Json<ReviewView>, ApiError> {
    auth.require(&[UserRole::Provider])?;
    let tx = uow.tx().await?;
    let found = Repo::<review::Entity>::get(tx, auth.scope, id).await?;
    if found.provider_id != auth.user.id {
        return Err(ApiError::not_found("review"));
    }
    let mut row = found.into_active_model();
    row.provider_response = Set(Some(input.response));
    row.responded_at = Set(Some(Utc::now()));
    let updated = row.update(tx).await.map_err(StorageError::from)?;
    Ok(Json(updated.into()))
}

/// Approves or rejects a review and keeps the provider's rating counters in step.
#[utoipa::path(post, operation_id = "moderateReview", path = "/reviews/{id}/moderate", tag = "reviews", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ModerateBody,
    responses(
        (status = 200, description = "The moderated review", body = ReviewView),
        (status = 403, description = "Admin or support only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 409, description = "Changed concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Status is not approved or rejected", body = ErrorResponse),
    ))]
async fn moderate(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<ModerateBody>,
) -> Result<Json<ReviewView>, ApiError> {
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    if input.status == ModerationStatus::Pending {
        return Err(ApiError::invalid_field(
            "status",
            "invalid",
            "must be approved or rejected",
        ));
    }
    let tx = uow.tx().await?;
    let (before, after) =
        ReviewRepo::moderate(tx, auth.scope, id, input.status, auth.user.id, Utc::now()).await?;
    AuditRepo::record(
        tx,
        auth.scope,
        AuditEntry {
            actor_id: Some(auth.user.id),
            action: "review.moderate".into(),
            entity_type: "reviews".into(),
            entity_id: Some(id),
            details: serde_json::json!({
                "from": before.moderation_status.as_str(),
                "to": input.status.as_str(),
            }),
            ip_address: None,
            request_id: None,
        },
    )
    .await?;
    Ok(Json(after.into()))
}

/// Deletes a review (admin or support); an approved one leaves the provider's rating.
#[utoipa::path(delete, operation_id = "deleteReview", path = "/reviews/{id}", tag = "reviews", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admin or support only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
    ))]
async fn delete(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    let tx = uow.tx().await?;
    let removed = ReviewRepo::delete(tx, auth.scope, id, Utc::now()).await?;
    AuditRepo::record(
        tx,
        auth.scope,
        AuditEntry {
            actor_id: Some(auth.user.id),
            action: "review.delete".into(),
            entity_type: "reviews".into(),
            entity_id: Some(id),
            details: serde_json::json!({
                "status": removed.moderation_status.as_str(),
                "rating": removed.rating,
            }),
            ip_address: None,
            request_id: None,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
