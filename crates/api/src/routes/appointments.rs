//! Free slots and appointments.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `GET /providers/{id}/slots` | yes | yes | yes | yes |
//! | `POST /appointments` (book) | for themself | no | for any client | for any client |
//! | `GET /appointments`, `GET /appointments/{id}`, history | their own | their own | all | all |
//! | `POST /appointments/{id}/{confirm,start,complete,cancel,no-show}` | by the state machine (see docs/storage.md) ||||
//! | `POST /appointments/{id}/reschedule` | their own | their own | all | no |
//! | `POST /appointments/{id}/payment` | no | their own | all | all |
//!
//! Another user's appointment answers 404, like one that does not exist.
//!
//! A booking that is confirmed (at once, or later), canceled or rescheduled e-mails
//! the client and the provider, in the same transaction (`agenda_mail::booking`).

use agenda_entity::appointment;
use agenda_entity::appointment_status_history;
use agenda_entity::edge::{CalendarDate, Timestamp};
use agenda_entity::enums::{AppointmentStatus, PaymentMethod, PaymentStatus, UserRole};
use agenda_mail::booking::{self, BookingEvent};
use agenda_scheduling::slots::Slot;
use agenda_storage::repo::appointments::{
    ActingUser, AppointmentQuery, AppointmentRepo, Booking, Offering,
};
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{RawBody, ValidJson, ValidPath, ValidQuery, parse_json};
use crate::uow::UnitOfWork;
use axum::extract::State;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(slots))
        .routes(routes!(book))
        .routes(routes!(list))
        .routes(routes!(show))
        .routes(routes!(history))
        .routes(routes!(confirm))
        .routes(routes!(start))
        .routes(routes!(complete))
        .routes(routes!(cancel))
        .routes(routes!(no_show))
        .routes(routes!(reschedule))
        .routes(routes!(pay))
}

/// An appointment as the API shows it. Money in integer cents with the currency;
/// instants in RFC 3339 (UTC).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AppointmentView {
    pub id: Uuid,
    pub client_id: Uuid,
    pub provider_id: Uuid,
    pub service_id: Option<Uuid>,
    pub provider_service_id: Option<Uuid>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    /// End plus the provider's buffer: the provider is busy until then.
    pub occupied_until: DateTime<Utc>,
    pub status: AppointmentStatus,
    pub price_cents: i64,
    /// Taken off `price_cents` by `promotion_id`; the client pays the difference and
    /// the platform fee is computed on it.
    pub discount_cents: i64,
    /// The promotion applied at booking (a coupon or an automatic one), if any.
    pub promotion_id: Option<Uuid>,
    pub currency: String,
    pub payment_method: Option<PaymentMethod>,
    pub payment_status: PaymentStatus,
    pub notes: Option<String>,
    pub cancellation_reason: Option<String>,
    pub canceled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<appointment::Model> for AppointmentView {
    fn from(a: appointment::Model) -> Self {
        AppointmentView {
            id: a.id,
            client_id: a.client_id,
            provider_id: a.provider_id,
            service_id: a.service_id,
            provider_service_id: a.provider_service_id,
            start_at: a.start_at,
            end_at: a.end_at,
            occupied_until: a.occupied_until,
            status: a.status,
            price_cents: a.price_cents,
            discount_cents: a.discount_cents,
            promotion_id: a.promotion_id,
            currency: a.currency,
            payment_method: a.payment_method,
            payment_status: a.payment_status,
            notes: a.notes,
            cancellation_reason: a.cancellation_reason,
            canceled_at: a.canceled_at,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HistoryView {
    pub from_status: Option<AppointmentStatus>,
    pub to_status: AppointmentStatus,
    pub changed_by: Option<Uuid>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<appointment_status_history::Model> for HistoryView {
    fn from(h: appointment_status_history::Model) -> Self {
        HistoryView {
            from_status: h.from_status,
            to_status: h.to_status,
            changed_by: h.changed_by,
            reason: h.reason,
            created_at: h.created_at,
        }
    }
}

/// A free slot: its instants in UTC, and the same instants in the zone the slot's
/// dates were read in, with that zone's offset at that moment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"start": "2026-12-02T13:00:00Z", "end": "2026-12-02T14:00:00Z", "time_zone": "America/Sao_Paulo", "local_start": "2026-12-02T10:00:00-03:00", "local_end": "2026-12-02T11:00:00-03:00"}))]
pub struct SlotView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The IANA zone of the provider (their settings' `time_zone`, else the
    /// organization's): the zone `from` and `to` were read in.
    pub time_zone: String,
    /// `start` in `time_zone`, RFC 3339 with the offset (`2026-12-02T10:00:00-03:00`).
    pub local_start: String,
    /// `end` in `time_zone`, with its offset (it may differ from the start's across a
    /// DST change).
    pub local_end: String,
}

impl SlotView {
    fn new<Z>(s: Slot, zone: &Z, zone_name: &str) -> Self
    where
        Z: chrono::TimeZone,
        Z::Offset: std::fmt::Display,
    {
        let local = |t: DateTime<Utc>| {
            t.with_timezone(zone)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
        };
        SlotView {
            start: s.start,
            end: s.end,
            time_zone: zone_name.to_owned(),
            local_start: local(s.start),
            local_end: local(s.end),
        }
    }
}

/// A page of results; pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppointmentPage {
    pub items: Vec<AppointmentView>,
    pub next: Option<String>,
}

/// Which offering: exactly one of the two.
#[derive(Debug, Serialize, Deserialize, Validate, utoipa::ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlotQuery {
    pub service_id: Option<Uuid>,
    pub provider_service_id: Option<Uuid>,
    /// First local date (provider's time zone), `YYYY-MM-DD`.
    pub from: CalendarDate,
    /// Last local date, inclusive (at most 92 days after `from`).
    pub to: CalendarDate,
}

#[derive(Debug, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"service_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "start_at": "2026-12-02T13:00:00Z", "notes": "First visit", "payment_method": "pix"}))]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    pub service_id: Option<Uuid>,
    pub provider_service_id: Option<Uuid>,
    /// A start returned by the slots route.
    pub start_at: Timestamp,
    /// Staff booking for a client; clients book for themselves and leave it out.
    pub client_id: Option<Uuid>,
    #[validate(length(max = 2000))]
    pub notes: Option<String>,
    pub payment_method: Option<PaymentMethod>,
    pub address_id: Option<Uuid>,
    /// A coupon to apply. It must apply (else `422` on `coupon_code`, or `409
    /// coupon_exhausted` / `coupon_limit_reached`); without one, the best automatic
    /// promotion in scope applies.
    #[validate(length(min = 1, max = 40))]
    pub coupon_code: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub provider_id: Option<Uuid>,
    pub client_id: Option<Uuid>,
    pub status: Option<AppointmentStatus>,
    /// `start_at` at or after this instant.
    pub from: Option<Timestamp>,
    /// `start_at` before this instant.
    pub to: Option<Timestamp>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"reason": "Running late"}))]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[validate(length(max = 1000))]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"start_at": "2026-12-03T14:00:00Z"}))]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    pub start_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"method": "pix"}))]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub method: PaymentMethod,
}

fn offering(service: Option<Uuid>, provider_service: Option<Uuid>) -> Result<Offering, ApiError> {
    match (service, provider_service) {
        (Some(id), None) => Ok(Offering::Service(id)),
        (None, Some(id)) => Ok(Offering::ProviderService(id)),
        _ => Err(ApiError::invalid_field(
            "service_id",
            "one_of",
            "give exactly one of service_id and provider_service_id",
        )),
    }
}

fn acting(auth: &Auth) -> ActingUser {
    ActingUser {
        id: auth.user.id,
        role: auth.user.role,
    }
}

fn is_staff(auth: &Auth) -> bool {
    matches!(auth.role(), UserRole::Admin | UserRole::Support)
}

/// The appointment if the caller may see it (404 otherwise, like a missing one).
async fn visible(
    db: &impl sea_orm::ConnectionTrait,
    auth: &Auth,
    id: Uuid,
) -> Result<appointment::Model, ApiError> {
    let a = AppointmentRepo::get(db, auth.scope, id).await?;
    let mine = a.client_id == auth.user.id || a.provider_id == auth.user.id;
    if mine || is_staff(auth) {
        Ok(a)
    } else {
        Err(ApiError::not_found("appointment"))
    }
}

/// Free slots of a provider's offering on local dates `from..=to`.
///
/// `from` and `to` are local dates in the provider's time zone (their settings'
/// `time_zone`, else the organization's), both inclusive, at most 92 days apart
/// (`422` on `to` otherwise). Name the offering with exactly one of `service_id` and
/// `provider_service_id`. A slot lasts the offering's duration; its starts step by
/// the window's `slot_step_minutes` (default: the provider settings' step, else 15
/// minutes) from the start of each (merged) working window of `/availability`. The
/// slot must lie inside the window (the buffer after it may run past the end), and
/// the slot plus its buffer (the provider service's `buffer_after_minutes`, else the
/// settings' `buffer_minutes`, else 0) must overlap no break, block or active
/// appointment (back-to-back is fine). Local times that a DST change skips map to
/// the moment of the change; repeated ones start at the earlier and end at the later
/// pass. A slot belongs to the local date it starts on. Slots start at least `min_lead_minutes`
/// from now (default 60) and at most `max_horizon_days` ahead (default 60). Answers
/// instants in UTC, sorted, each with the zone used (`time_zone`) and its local
/// start and end with their offset; a provider not accepting bookings has none.
#[utoipa::path(get, operation_id = "listFreeSlots", path = "/providers/{provider_id}/slots", tag = "appointments",
    security(("bearer" = [])),
    params(("provider_id" = Uuid, Path, description = "The provider"), SlotQuery),
    responses(
        (status = 200, description = "Free slots, sorted", body = Vec<SlotView>),
        (status = 404, description = "No such offering of this provider", body = ErrorResponse),
        (status = 422, description = "Invalid range or offering", body = ErrorResponse),
    ))]
async fn slots(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(provider_id): ValidPath<Uuid>,
    ValidQuery(q): ValidQuery<SlotQuery>,
) -> Result<Json<Vec<SlotView>>, ApiError> {
    let db = uow.read().await?;
    let offering = offering(q.service_id, q.provider_service_id)?;
    let cache = Some(&state.cache);
    let terms = AppointmentRepo::offering(db, cache, auth.scope, offering).await?;
    if terms.provider_id != provider_id {
        return Err(ApiError::not_found("offering"));
    }
    let slots = AppointmentRepo::free_slots(
        db,
        cache,
        auth.scope,
        Some(&auth.organization),
        offering,
        q.from.get(),
        q.to.get(),
        Utc::now(),
    )
    .await?;
    let zone = slots.time_zone;
    Ok(Json(
        slots
            .slots
            .into_iter()
            .map(|s| SlotView::new(s, &zone, zone.name()))
            .collect(),
    ))
}

/// Books a free slot. Send `Idempotency-Key` to make retries safe. A `coupon_code`
/// must apply (see docs/api.md, "Promotions at booking"); without one the best
/// automatic promotion in scope applies. The answer carries `discount_cents` and
/// `promotion_id`.
#[utoipa::path(post, operation_id = "bookAppointment", path = "/appointments", tag = "appointments", security(("bearer" = [])),
    request_body = BookRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the first response")),
    responses(
        (status = 201, description = "Booked", body = AppointmentView),
        (status = 403, description = "Providers cannot book", body = ErrorResponse),
        (status = 404, description = "No such service, provider service or client in your organization", body = ErrorResponse),
        (status = 409, description = "The slot was just taken, the same key is still running, or the coupon is used up (`coupon_exhausted`, `coupon_limit_reached`)", body = ErrorResponse),
        (status = 422, description = "Not a bookable time, a coupon that does not apply (`coupon_code`), or invalid fields", body = ErrorResponse),
    ))]
async fn book(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<BookRequest>,
) -> Result<Response, ApiError> {
    auth.require(&[UserRole::Client, UserRole::Admin, UserRole::Support])?;
    let client_id = match (auth.role(), input.client_id) {
        (UserRole::Client, None) => auth.user.id,
        (UserRole::Client, Some(id)) if id == auth.user.id => id,
        (UserRole::Client, Some(_)) => {
            return Err(ApiError::invalid_field(
                "client_id",
                "not_allowed",
                "clients book for themselves",
            ));
        }
        (_, Some(id)) => id,
        (_, None) => {
            return Err(ApiError::invalid_field(
                "client_id",
                "required",
                "staff must name the client",
            ));
        }
    };
    let tx = uow.tx().await?;
    let booking = Booking {
        client_id,
        offering: offering(input.service_id, input.provider_service_id)?,
        start_at: input.start_at.get(),
        notes: input.notes,
        payment_method: input.payment_method,
        address_id: input.address_id,
        booked_by: auth.user.id,
        coupon_code: input.coupon_code,
    };
    let created = AppointmentRepo::book(tx, auth.scope, booking, Utc::now()).await?;
    let event = BookingEvent::Status(created.status);
    booking::notify(&state.mail, tx, auth.scope, &created, event).await?;
    let view = AppointmentView::from(created);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Appointments the caller may see, in start order.
#[utoipa::path(get, operation_id = "listAppointments", path = "/appointments", tag = "appointments", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = AppointmentPage),
    ))]
async fn list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ListQuery>,
) -> Result<Json<AppointmentPage>, ApiError> {
    let db = uow.read().await?;
    let mut query = AppointmentQuery {
        provider_id: q.provider_id,
        client_id: q.client_id,
        status: q.status,
        from: q.from.map(Into::into),
        to: q.to.map(Into::into),
        limit: q.limit,
        after: q.after,
    };
    match auth.role() {
        UserRole::Client => query.client_id = Some(auth.user.id),
        UserRole::Provider => query.provider_id = Some(auth.user.id),
        UserRole::Admin | UserRole::Support => {}
    }
    let page = AppointmentRepo::list(db, auth.scope, &query).await?;
    Ok(Json(AppointmentPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// One appointment.
#[utoipa::path(get, operation_id = "getAppointment", path = "/appointments/{id}", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The appointment", body = AppointmentView),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<AppointmentView>, ApiError> {
    let db = uow.read().await?;
    Ok(Json(visible(db, &auth, id).await?.into()))
}

/// Status history, oldest first.
#[utoipa::path(get, operation_id = "listAppointmentHistory", path = "/appointments/{id}/history", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "Every status change", body = Vec<HistoryView>),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn history(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Vec<HistoryView>>, ApiError> {
    let db = uow.read().await?;
    visible(db, &auth, id).await?;
    let rows = AppointmentRepo::history(db, auth.scope, id).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

/// The optional `{"reason": ...}` body of a status change (an empty body is fine).
fn optional_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: ReasonBody = parse_json(body)?;
    parsed.validate()?;
    Ok(parsed.reason)
}

async fn change(
    state: AppState,
    uow: UnitOfWork,
    auth: Auth,
    id: Uuid,
    to: AppointmentStatus,
    reason: Option<String>,
) -> Result<Json<AppointmentView>, ApiError> {
    let tx = uow.tx().await?;
    visible(tx, &auth, id).await?;
    let updated =
        AppointmentRepo::transition(tx, auth.scope, id, to, acting(&auth), reason, Utc::now())
            .await?;
    booking::notify(
        &state.mail,
        tx,
        auth.scope,
        &updated,
        BookingEvent::Status(to),
    )
    .await?;
    Ok(Json(updated.into()))
}

macro_rules! status_route {
    ($name:ident, $id:literal, $path:literal, $to:expr, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(post, operation_id = $id, path = $path, tag = "appointments", security(("bearer" = [])),
            params(("id" = Uuid, Path)), request_body = Option<ReasonBody>,
            responses(
                (status = 200, description = "The updated appointment", body = AppointmentView),
                (status = 403, description = "Not allowed for your role", body = ErrorResponse),
                (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
                (status = 409, description = "Not possible from the current status", body = ErrorResponse),
            ))]
        async fn $name(
            State(state): State<AppState>,
            uow: UnitOfWork,
            auth: Auth,
            ValidPath(id): ValidPath<Uuid>,
            RawBody(body): RawBody,
        ) -> Result<Json<AppointmentView>, ApiError> {
            let reason = optional_reason(&body)?;
            change(state, uow, auth, id, $to, reason).await
        }
    };
}

status_route!(
    confirm,
    "confirmAppointment",
    "/appointments/{id}/confirm",
    AppointmentStatus::Confirmed,
    "Confirms a pending appointment (provider, admin)."
);
status_route!(
    start,
    "startAppointment",
    "/appointments/{id}/start",
    AppointmentStatus::InProgress,
    "Starts a confirmed appointment (provider, admin)."
);
status_route!(
    complete,
    "completeAppointment",
    "/appointments/{id}/complete",
    AppointmentStatus::Completed,
    "Completes an appointment in progress (provider, admin); a paid one is settled in the ledger."
);
status_route!(
    cancel,
    "cancelAppointment",
    "/appointments/{id}/cancel",
    AppointmentStatus::Canceled,
    "Cancels a pending or confirmed appointment (client, provider, admin)."
);
status_route!(
    no_show,
    "markAppointmentNoShow",
    "/appointments/{id}/no-show",
    AppointmentStatus::NoShow,
    "Marks a confirmed appointment as a no-show (provider, admin)."
);

/// Moves a pending or confirmed appointment to another free slot.
#[utoipa::path(post, operation_id = "rescheduleAppointment", path = "/appointments/{id}/reschedule", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RescheduleBody,
    responses(
        (status = 200, description = "Moved", body = AppointmentView),
        (status = 403, description = "Not allowed for your role", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
        (status = 409, description = "Taken, or not reschedulable", body = ErrorResponse),
        (status = 422, description = "Not a bookable time", body = ErrorResponse),
    ))]
async fn reschedule(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(body): ValidJson<RescheduleBody>,
) -> Result<Json<AppointmentView>, ApiError> {
    let tx = uow.tx().await?;
    let before = visible(tx, &auth, id).await?;
    let moved = AppointmentRepo::reschedule(
        tx,
        auth.scope,
        id,
        body.start_at.get(),
        acting(&auth),
        Utc::now(),
    )
    .await?;
    let event = BookingEvent::Rescheduled {
        from: before.start_at,
    };
    booking::notify(&state.mail, tx, auth.scope, &moved, event).await?;
    Ok(Json(moved.into()))
}

/// Records the client's payment (provider, admin, support). Send `Idempotency-Key`
/// to make retries safe.
#[utoipa::path(post, operation_id = "payAppointment", path = "/appointments/{id}/payment", tag = "appointments", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = PaymentBody,
    responses(
        (status = 200, description = "Paid", body = AppointmentView),
        (status = 403, description = "Not allowed for your role", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
        (status = 409, description = "Canceled or no-show", body = ErrorResponse),
    ))]
async fn pay(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(body): ValidJson<PaymentBody>,
) -> Result<Response, ApiError> {
    let tx = uow.tx().await?;
    visible(tx, &auth, id).await?;
    let paid = AppointmentRepo::mark_paid(tx, auth.scope, id, body.method, acting(&auth)).await?;
    let view = AppointmentView::from(paid);
    Ok(Json(view).into_response())
}
