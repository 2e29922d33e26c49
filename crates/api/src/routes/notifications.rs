//! The signed-in user's in-app notifications.
//!
//! Every route is for any signed-in user (client, provider, admin, support) and sees
//! only their own notifications: another user's notification answers 404, like one
//! that does not exist.

use agenda_entity::enums::NotificationKind;
use agenda_entity::notification;
use agenda_storage::repo::notifications::NotificationRepo;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidPath, ValidQuery};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(mark_read))
        .routes(routes!(mark_all_read))
        .routes(routes!(unread_count))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationView {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub title: String,
    pub body: String,
    pub appointment_id: Option<Uuid>,
    pub is_read: bool,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<notification::Model> for NotificationView {
    fn from(n: notification::Model) -> Self {
        NotificationView {
            id: n.id,
            kind: n.kind,
            title: n.title,
            body: n.body,
            appointment_id: n.appointment_id,
            is_read: n.is_read,
            read_at: n.read_at,
            created_at: n.created_at,
        }
    }
}

/// A page of notifications, newest first; pass `next` as `after` for the next page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NotificationPage {
    pub items: Vec<NotificationView>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UpdatedView {
    /// How many notifications changed.
    pub updated: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UnreadCountView {
    pub unread: u64,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only unread ones.
    pub unread: Option<bool>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// The caller's notifications, newest first.
#[utoipa::path(get, operation_id = "listNotifications", path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = NotificationPage),
        (status = 422, description = "Bad page size or cursor", body = ErrorResponse),
    ))]
async fn list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<NotificationPage>, ApiError> {
    let db = uow.read().await?;
    let page = NotificationRepo::list_for_user(
        db,
        auth.scope,
        auth.user.id,
        q.unread.unwrap_or(false),
        q.limit,
        q.after.as_deref(),
    )
    .await?;
    Ok(Json(NotificationPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Marks one of the caller's notifications read (again is harmless).
#[utoipa::path(post, operation_id = "markNotificationRead", path = "/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The notification", body = NotificationView),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn mark_read(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<NotificationView>, ApiError> {
    let tx = uow.tx().await?;
    let read = NotificationRepo::mark_read(tx, auth.scope, auth.user.id, id, Utc::now()).await?;
    Ok(Json(read.into()))
}

/// Marks all of the caller's unread notifications read.
#[utoipa::path(post, operation_id = "markAllNotificationsRead", path = "/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "How many changed", body = UpdatedView),
    ))]
async fn mark_all_read(uow: UnitOfWork, auth: Auth) -> Result<Json<UpdatedView>, ApiError> {
    let tx = uow.tx().await?;
    let updated = NotificationRepo::mark_all_read(tx, auth.scope, auth.user.id, Utc::now()).await?;
    Ok(Json(UpdatedView { updated }))
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, operation_id = "countUnreadNotifications", path = "/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "The count", body = UnreadCountView),
    ))]
async fn unread_count(uow: UnitOfWork, auth: Auth) -> Result<Json<UnreadCountView>, ApiError> {
    let db = uow.read().await?;
    let unread = NotificationRepo::unread_count(db, auth.scope, auth.user.id).await?;
    Ok(Json(UnreadCountView { unread }))
}
