//! Refunds: `POST /api/v1/admin/appointments/{id}/refunds`, and the view the
//! `payment.refunded` webhook answers with too.
//!
//! Both paths call [`LedgerRepo::record_refund`], which writes the reversal entries
//! (`refund`, the commission given back, and a cover move when the appointment's
//! bucket is short) and the payment status in the request's one transaction; see
//! `docs/ledger.md` ("Refunds"). The admin route is a signed-in POST, so
//! `Idempotency-Key` makes its retries safe (the unit of work stores the answer); each
//! call without a key is a new refund, with the id `admin:<uuid>`.

use agenda_entity::enums::{PaymentStatus, UserRole};
use agenda_storage::repo::audit::{AuditEntry, AuditRepo};
use agenda_storage::repo::ledger::{LedgerRepo, RefundOutcome};
use axum::Json;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(refund))
}

/// A refund as recorded in the ledger.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub appointment_id: Uuid,
    /// The processor's refund id, or `admin:<uuid>` for the admin route.
    pub refund_id: String,
    /// What the client gets back.
    pub amount_cents: i64,
    /// The platform commission given back to the provider on this refund.
    pub commission_reversed_cents: i64,
    /// The payment that was settled (price − discount).
    pub paid_cents: i64,
    /// Every refund of this payment so far, this one included.
    pub refunded_cents: i64,
    /// `refunded` once everything is refunded; `paid` while part of it is.
    pub payment_status: PaymentStatus,
    /// Whether this refund id had already been recorded (nothing was written now).
    pub replayed: bool,
}

impl From<&RefundOutcome> for RefundView {
    fn from(r: &RefundOutcome) -> Self {
        RefundView {
            appointment_id: r.appointment_id,
            refund_id: r.refund_ref.clone(),
            amount_cents: r.amount_cents,
            commission_reversed_cents: r.commission_reversed_cents,
            paid_cents: r.paid_cents,
            refunded_cents: r.refunded_cents,
            payment_status: r.payment_status,
            replayed: r.replayed,
        }
    }
}

/// The audit details of a refund (both paths).
pub fn audit_details(r: &RefundOutcome) -> serde_json::Value {
    json!({
        "refund_id": r.refund_ref,
        "amount_cents": r.amount_cents,
        "commission_reversed_cents": r.commission_reversed_cents,
        "refunded_cents": r.refunded_cents,
        "paid_cents": r.paid_cents,
        "payment_status": r.payment_status,
        "replayed": r.replayed,
    })
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"amount_cents": 2000, "reason": "Client left early"}))]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// How much to give back, at most what is left of the payment.
    #[validate(range(min = 1))]
    pub amount_cents: i64,
    /// Why (kept in the audit log).
    #[validate(length(max = 500))]
    pub reason: Option<String>,
}

/// Refunds part or all of a settled appointment payment (admins). Send
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, operation_id = "refundAppointment", path = "/admin/appointments/{id}/refunds", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header)),
    request_body = RefundRequest,
    responses(
        (status = 201, description = "Recorded: the reversal entries are in the ledger", body = RefundView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "No such appointment in your organization", body = ErrorResponse),
        (status = 409, description = "`payment_not_settled` (not completed and paid yet), `refund_exceeds_payment` (more than is left to refund), and a retry of the same `Idempotency-Key` still running. A refund larger than the provider's balance is recorded (a debt), not refused", body = ErrorResponse),
        (status = 422, description = "A non-positive amount or an unknown field", body = ErrorResponse),
    ))]
async fn refund(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(body): ValidJson<RefundRequest>,
) -> Result<(StatusCode, Json<RefundView>), ApiError> {
    auth.require(&[UserRole::Admin])?;
    let tx = uow.tx().await?;
    let refund_id = format!("admin:{}", agenda_entity::new_id());
    let outcome =
        LedgerRepo::record_refund(tx, auth.scope, id, body.amount_cents, &refund_id).await?;
    let mut details = audit_details(&outcome);
    details["reason"] = json!(body.reason);
    AuditRepo::record(
        tx,
        auth.scope,
        AuditEntry {
            actor_id: Some(auth.user.id),
            action: "appointment.refund".into(),
            entity_type: "appointment".into(),
            entity_id: Some(id),
            details,
            ip_address: None,
            request_id: None,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(RefundView::from(&outcome))))
}
