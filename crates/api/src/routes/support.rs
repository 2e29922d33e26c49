//! Support tickets and their messages.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client / provider | admin / support |
//! |---|---|---|
//! | `POST /support/tickets` | yes (they are the requester) | yes (they are the requester) |
//! | `GET /support/tickets`, `GET /support/tickets/{id}` | their own tickets | all |
//! | `POST /support/tickets/{id}/messages` | on their own tickets; `is_internal` is 403 | yes, internal notes too |
//! | `GET /support/tickets/{id}/messages` | their own tickets, **without internal notes** | all messages |
//! | `POST /support/tickets/{id}/status` | no | yes |
//!
//! Internal notes (`is_internal: true`) are filtered out in the query for anyone who
//! is not staff: they never reach clients or providers. Another user's ticket answers
//! 404, like one that does not exist. A closed ticket takes no new messages from its
//! requester (409).

use agenda_entity::enums::{TicketPriority, TicketStatus, UserRole};
use agenda_entity::{support_message, support_ticket};
use agenda_storage::StorageError;
use agenda_storage::repo::appointments::AppointmentRepo;
use agenda_storage::repo::resource::{ListQuery, Repo};
use agenda_storage::repo::users::UserRepo;
use axum::Json;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, IntoActiveModel, Set};
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
        .routes(routes!(open, list))
        .routes(routes!(show))
        .routes(routes!(post_message, messages))
        .routes(routes!(set_status))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    pub id: Uuid,
    pub requester_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub appointment_id: Option<Uuid>,
    pub subject: String,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub category: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<support_ticket::Model> for TicketView {
    fn from(t: support_ticket::Model) -> Self {
        TicketView {
            id: t.id,
            requester_id: t.requester_id,
            assignee_id: t.assignee_id,
            appointment_id: t.appointment_id,
            subject: t.subject,
            status: t.status,
            priority: t.priority,
            category: t.category,
            closed_at: t.closed_at,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub ticket_id: Uuid,
    pub author_id: Option<Uuid>,
    pub body: String,
    /// Staff-only note; never shown to clients or providers.
    pub is_internal: bool,
    pub created_at: DateTime<Utc>,
}

impl From<support_message::Model> for MessageView {
    fn from(m: support_message::Model) -> Self {
        MessageView {
            id: m.id,
            ticket_id: m.ticket_id,
            author_id: m.author_id,
            body: m.body,
            is_internal: m.is_internal,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketPage {
    pub items: Vec<TicketView>,
    pub next: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePage {
    pub items: Vec<MessageView>,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenTicket {
    #[validate(
        length(min = 1, max = 200),
        custom(function = "agenda_entity::validate::not_blank")
    )]
    pub subject: String,
    /// `normal` when left out.
    pub priority: Option<TicketPriority>,
    /// An appointment of the caller (staff: any of the organization).
    pub appointment_id: Option<Uuid>,
    #[validate(length(max = 60))]
    pub category: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TicketQuery {
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    #[validate(
        length(min = 1, max = 10000),
        custom(function = "agenda_entity::validate::not_blank")
    )]
    pub body: String,
    /// Staff only: a note the requester never sees.
    pub is_internal: Option<bool>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusBody {
    pub status: TicketStatus,
    /// Assigns the ticket to a support or admin user of the organization.
    pub assignee_id: Option<Uuid>,
}

fn is_staff(auth: &Auth) -> bool {
    matches!(auth.role(), UserRole::Admin | UserRole::Support)
}

/// The ticket if the caller may see it (404 otherwise, like a missing one).
async fn visible(
    db: &impl ConnectionTrait,
    auth: &Auth,
    id: Uuid,
) -> Result<support_ticket::Model, ApiError> {
    let ticket = Repo::<support_ticket::Entity>::get(db, auth.scope, id).await?;
    if ticket.requester_id == auth.user.id || is_staff(auth) {
        Ok(ticket)
    } else {
        Err(ApiError::not_found("support ticket"))
    }
}

/// Opens a ticket; the caller is the requester.
#[utoipa::path(post, operation_id = "openTicket", path = "/support/tickets", tag = "support", security(("bearer" = [])),
    request_body = OpenTicket,
    responses(
        (status = 201, description = "Opened", body = TicketView),
        (status = 422, description = "Invalid fields, or not your appointment", body = ErrorResponse),
    ))]
async fn open(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<OpenTicket>,
) -> Result<(StatusCode, Json<TicketView>), ApiError> {
    let tx = uow.tx().await?;
    if let Some(id) = input.appointment_id {
        let mine = match AppointmentRepo::get(tx, auth.scope, id).await {
            Ok(a) => {
                is_staff(&auth) || a.client_id == auth.user.id || a.provider_id == auth.user.id
            }
            Err(StorageError::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !mine {
            return Err(ApiError::invalid_field(
                "appointment_id",
                "not_found",
                "no such appointment of yours",
            ));
        }
    }
    let requester = auth.user.id;
    let row = support_ticket::CreateSupportTicket {
        appointment_id: input.appointment_id,
        subject: input.subject.trim().to_owned(),
        priority: input.priority,
        category: input.category,
    };
    let created = Repo::<support_ticket::Entity>::create(tx, auth.scope, row, |r| {
        r.requester_id = Set(requester);
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Tickets, oldest first: clients and providers get their own, staff all.
#[utoipa::path(get, operation_id = "listTickets", path = "/support/tickets", tag = "support", security(("bearer" = [])),
    params(TicketQuery),
    responses(
        (status = 200, description = "A page", body = TicketPage),
        (status = 422, description = "Invalid page size or cursor", body = ErrorResponse),
    ))]
async fn list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<TicketQuery>,
) -> Result<Json<TicketPage>, ApiError> {
    let db = uow.read().await?;
    let mut query = ListQuery {
        limit: q.limit,
        after: q.after,
        ..ListQuery::default()
    };
    if !is_staff(&auth) {
        query
            .filters
            .push(("requester_id".into(), auth.user.id.to_string()));
    }
    if let Some(status) = q.status {
        query
            .filters
            .push(("status".into(), status.as_str().into()));
    }
    if let Some(priority) = q.priority {
        query
            .filters
            .push(("priority".into(), priority.as_str().into()));
    }
    let page = Repo::<support_ticket::Entity>::list(db, auth.scope, &query).await?;
    Ok(Json(TicketPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// One ticket.
#[utoipa::path(get, operation_id = "getTicket", path = "/support/tickets/{id}", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The ticket", body = TicketView),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<TicketView>, ApiError> {
    let db = uow.read().await?;
    Ok(Json(visible(db, &auth, id).await?.into()))
}

/// Adds a message to a ticket. Only staff may write internal notes.
#[utoipa::path(post, operation_id = "postTicketMessage", path = "/support/tickets/{id}/messages", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewMessage,
    responses(
        (status = 201, description = "Added", body = MessageView),
        (status = 403, description = "Internal notes are for staff only", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
        (status = 409, description = "The ticket is closed", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn post_message(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<NewMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let internal = input.is_internal.unwrap_or(false);
    if internal && !is_staff(&auth) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "only support staff may write internal notes",
        ));
    }
    let tx = uow.tx().await?;
    let ticket = visible(tx, &auth, id).await?;
    if ticket.status == TicketStatus::Closed && !is_staff(&auth) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "ticket_closed",
            "this ticket is closed; open a new one",
        ));
    }
    let author = auth.user.id;
    let row = support_message::CreateSupportMessage {
        body: input.body,
        is_internal: Some(internal),
    };
    let created = Repo::<support_message::Entity>::create(tx, auth.scope, row, |r| {
        r.ticket_id = Set(id);
        r.author_id = Set(Some(author));
    })
    .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

/// Messages of a ticket, oldest first. Internal notes only for staff.
#[utoipa::path(get, operation_id = "listTicketMessages", path = "/support/tickets/{id}/messages", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path), PageQuery),
    responses(
        (status = 200, description = "A page", body = MessagePage),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
        (status = 422, description = "Invalid page size or cursor", body = ErrorResponse),
    ))]
async fn messages(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidQuery(q): ValidQuery<PageQuery>,
) -> Result<Json<MessagePage>, ApiError> {
    let db = uow.read().await?;
    visible(db, &auth, id).await?;
    let mut query = ListQuery {
        limit: q.limit,
        after: q.after,
        ..ListQuery::default()
    };
    query.filters.push(("ticket_id".into(), id.to_string()));
    if !is_staff(&auth) {
        query.filters.push(("is_internal".into(), "false".into()));
    }
    let page = Repo::<support_message::Entity>::list(db, auth.scope, &query).await?;
    Ok(Json(MessagePage {
        items: page
            .items
            .into_iter()
            // Belt and braces: the filter above already left internal notes out.
            .filter(|m| is_staff(&auth) || !m.is_internal)
            .map(Into::into)
            .collect(),
        next: page.next,
    }))
}

/// Changes a ticket's status (and optionally its assignee). `closed` sets
/// `closed_at`; any other status clears it.
#[utoipa::path(post, operation_id = "setTicketStatus", path = "/support/tickets/{id}/status", tag = "support", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = StatusBody,
    responses(
        (status = 200, description = "The ticket", body = TicketView),
        (status = 403, description = "Admin or support only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 422, description = "Invalid fields, or the assignee is not a staff user of this organization", body = ErrorResponse),
    ))]
async fn set_status(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<StatusBody>,
) -> Result<Json<TicketView>, ApiError> {
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    let tx = uow.tx().await?;
    let ticket = Repo::<support_ticket::Entity>::get(tx, auth.scope, id).await?;
    let mut row = ticket.into_active_model();
    if let Some(assignee) = input.assignee_id {
        let user = match UserRepo::get(tx, auth.scope, assignee).await {
            Ok(user) => user,
            Err(StorageError::NotFound { .. }) => {
                return Err(ApiError::invalid_field(
                    "assignee_id",
                    "not_found",
                    "no such user",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        if !matches!(user.role, UserRole::Admin | UserRole::Support) {
            return Err(ApiError::invalid_field(
                "assignee_id",
                "not_staff",
                "tickets are assigned to support or admin users",
            ));
        }
        row.assignee_id = Set(Some(assignee));
    }
    row.status = Set(input.status);
    row.closed_at = Set((input.status == TicketStatus::Closed).then(Utc::now));
    let updated = row.update(tx).await.map_err(StorageError::from)?;
    Ok(Json(updated.into()))
}
