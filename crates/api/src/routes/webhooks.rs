//! Payment processor webhooks: `POST /api/v1/webhooks/payments/{processor}`.
//!
//! **No bearer token.** A webhook carries no signed-in user, so the request is
//! authenticated by an HMAC-SHA256 signature made with the organization's webhook
//! secret for that processor:
//!
//! - `X-Agenda-Organization: <slug>` names the tenant. The header alone proves
//!   nothing: the organization's `integrations_settings` row with
//!   `integration = <processor>` must exist and be enabled, and hold **that
//!   tenant's** secret: sealed with the server's key (sent by an admin,
//!   `PUT /admin/integrations/{integration}`), or a `secret_ref` (`env:NAME`) naming
//!   the environment variable that holds it (read at request time). The signature is
//!   checked with that secret, so a forged header naming another tenant fails the
//!   signature and never reaches that tenant's data. An unknown organization or
//!   processor, a disabled integration or a secret that is not available are the
//!   same `404 no such webhook`, revealing nothing more. A **suspended**
//!   organization's webhooks are refused with `403 organization_suspended` before
//!   anything is read or written, so the processor retries them; they are accepted
//!   again once it is activated.
//! - `X-Agenda-Signature: t=<unix seconds>,v1=<hex>` where the MAC is
//!   `HMAC-SHA256(secret, "<t>.<raw body>")`. Several `v1=` entries may be sent (a
//!   secret rotation); one must match. The comparison is constant-time; a missing,
//!   malformed or wrong signature is `401`, and so is a `t` more than
//!   [`TOLERANCE_SECONDS`] away from the server's clock (replay window). Neither the
//!   secret nor the signature is ever logged.
//!
//! **Events.** `payment.succeeded` marks the appointment paid (its amount and currency
//! must equal `price − discount` and the appointment's currency, else `422` and nothing
//! changes) and, if it is completed, settles it in the ledger — one transaction with an
//! audit-log entry (no actor: the processor). `payment.failed` sets
//! `payment_status = failed` unless it is already paid. `payment.refunded` (full or
//! partial: `amount_cents`, `currency`, the processor's `refund_id`) writes the
//! reversal entries through `LedgerRepo::record_refund` (see `docs/ledger.md`); the
//! same `refund_id` in another event is recorded once (`unchanged`). Any other type
//! is answered `200 ignored`, so processors stop retrying events we do not use.
//!
//! **Replays.** A processed event is remembered in `idempotency_keys` under the key
//! `webhook:<processor>:<event id>`, owned by the appointment's client (the table needs
//! a user of the organization) and kept [`EVENT_TTL_DAYS`] days. The claim is made in
//! the same transaction as the change, by `INSERT … ON CONFLICT DO NOTHING`: of two
//! concurrent deliveries of one event exactly one applies it; the other (on PostgreSQL
//! it waits for the first to commit) answers the first one's stored response. A
//! delivery that fails (`4xx`/`5xx`) rolls its claim back, so a retry is evaluated
//! afresh. The same event id with different payment fields is `422`.

use agenda_entity::appointment;
use agenda_entity::enums::{OrganizationStatus, PaymentMethod, PaymentStatus, UserRole};
use agenda_storage::TenantOwned;
use agenda_storage::TenantScope;
use agenda_storage::repo::appointments::{ActingUser, AppointmentRepo};
use agenda_storage::repo::audit::{AuditEntry, AuditRepo};
use agenda_storage::repo::idempotency::{IdempotencyRepo, IdempotencyState, IdempotentRequest};
use agenda_storage::repo::integrations::{IntegrationRepo, SecretUnavailable};
use agenda_storage::repo::ledger::LedgerRepo;
use agenda_storage::secrets::Secret;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, DatabaseTransaction, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{RawBody, ValidPath, parse_json};
use crate::routes::refunds::{RefundView, audit_details};
use crate::uow::UnitOfWork;

/// The header naming the organization (its slug).
pub const ORGANIZATION_HEADER: &str = "x-agenda-organization";
/// The header carrying `t=<unix seconds>,v1=<hex hmac>`.
pub const SIGNATURE_HEADER: &str = "x-agenda-signature";
/// How far the signed timestamp may be from the server's clock, in seconds.
pub const TOLERANCE_SECONDS: i64 = 300;
/// How long a processed event id is remembered.
pub const EVENT_TTL_DAYS: i64 = 30;
/// Longest accepted event id, in characters.
const MAX_EVENT_ID_CHARS: usize = 128;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(payment_webhook))
}

/// A payment event from a processor. Fields other than these are ignored.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PaymentEvent {
    /// The processor's event id (the replay key).
    pub id: String,
    /// `payment.succeeded`, `payment.failed`; other types are ignored.
    #[serde(rename = "type")]
    pub kind: String,
    pub appointment_id: Option<Uuid>,
    pub amount_cents: Option<i64>,
    /// ISO 4217, e.g. `BRL`.
    pub currency: Option<String>,
    pub method: Option<PaymentMethod>,
    /// `payment.refunded`: the processor's refund id (one refund is recorded once,
    /// whichever events carry it).
    pub refund_id: Option<String>,
}

/// Only the envelope: enough to decide whether the type is one we handle.
#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
}

/// What became of an event.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WebhookOutcome {
    pub event_id: String,
    /// `processed`, `unchanged` (a failure reported for a paid appointment) or `ignored`.
    pub outcome: String,
    pub appointment_id: Option<Uuid>,
    pub payment_status: Option<PaymentStatus>,
    /// `payment.refunded`: the refund as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund: Option<RefundView>,
}

/// The payment fields of a handled event; its digest binds the event id.
#[derive(Serialize)]
struct Handled {
    kind: &'static str,
    appointment_id: Uuid,
    amount_cents: Option<i64>,
    currency: Option<String>,
    method: Option<PaymentMethod>,
    refund_id: Option<String>,
}

/// Receives a signed payment event from a processor (no bearer token: see the
/// "Payment webhooks" section of docs/api.md for the signature).
#[utoipa::path(post, operation_id = "receivePaymentWebhook", path = "/webhooks/payments/{processor}", tag = "webhooks",
    params(
        ("processor" = String, Path, description = "The integration key, e.g. `stripe`"),
        ("X-Agenda-Organization" = String, Header, description = "The organization's slug"),
        ("X-Agenda-Signature" = String, Header, description = "`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, \"<t>.<raw body>\")>`"),
    ),
    request_body = PaymentEvent,
    responses(
        (status = 200, description = "Processed, ignored (unknown type), or a replay of an event already processed (same answer)", body = WebhookOutcome),
        (status = 400, description = "Missing organization header, or a body that is not JSON", body = ErrorResponse),
        (status = 401, description = "Missing, malformed or wrong signature, or a timestamp outside the 5-minute window", body = ErrorResponse),
        (status = 403, description = "The organization is suspended (`organization_suspended`); retry once it is active again", body = ErrorResponse),
        (status = 404, description = "No such webhook (organization, processor, enabled integration or secret), or no such appointment in that organization", body = ErrorResponse),
        (status = 409, description = "The appointment is canceled or a no-show, the same event is still being processed, or a refund that cannot be recorded: `payment_not_settled`, `refund_exceeds_payment`, `refund_id_reused` (a refund id already recorded with another amount)", body = ErrorResponse),
        (status = 422, description = "Amount or currency do not match the appointment, a missing field, or an event id reused with other payment fields", body = ErrorResponse),
    ))]
async fn payment_webhook(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    ValidPath(processor): ValidPath<String>,
    RawBody(body): RawBody,
) -> Result<Response, ApiError> {
    let slug = headers
        .get(ORGANIZATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_organization",
                "send the organization's slug in X-Agenda-Organization",
            )
        })?;
    // Resolve the tenant and its secret in a short read transaction: nothing is
    // written (and no write transaction opened) before the signature is verified.
    let (scope, secret) = webhook_secret(&state, slug, &processor).await?;
    verify_signature(&headers, &body, &secret, chrono::Utc::now().timestamp())?;
    drop(secret);
    uow.replays_by_own_key();
    uow.enter(scope).await?;

    let envelope: Envelope = parse_json(&body)?;
    check_event_id(&envelope.id)?;
    let kind = match envelope.kind.as_str() {
        "payment.succeeded" => "payment.succeeded",
        "payment.failed" => "payment.failed",
        "payment.refunded" => "payment.refunded",
        _ => {
            tracing::info!(processor = %processor, event_id = %envelope.id, kind = %envelope.kind, "payment webhook ignored");
            return Ok(Json(WebhookOutcome {
                event_id: envelope.id,
                outcome: "ignored".into(),
                appointment_id: None,
                payment_status: None,
                refund: None,
            })
            .into_response());
        }
    };
    let event: PaymentEvent = parse_json(&body)?;
    let appointment_id = event
        .appointment_id
        .ok_or_else(|| ApiError::invalid_field("appointment_id", "required", "is required"))?;

    let tx = uow.tx().await?;
    // Another organization's appointment is "not found", like one that does not exist.
    let current = AppointmentRepo::get(tx, scope, appointment_id).await?;
    let handled = Handled {
        kind,
        appointment_id,
        amount_cents: event.amount_cents,
        currency: event.currency.clone(),
        method: event.method,
        refund_id: event.refund_id.clone(),
    };
    let canonical = serde_json::to_vec(&handled).map_err(ApiError::internal)?;
    let key = format!("webhook:{processor}:{}", event.id);
    let path = format!("/api/v1/webhooks/payments/{processor}");
    let hash = hex(&Sha256::digest(&canonical));
    let request = IdempotentRequest {
        user_id: current.client_id,
        key: &key,
        method: "POST",
        path: &path,
        request_hash: &hash,
    };
    let now = chrono::Utc::now();
    let claim = match IdempotencyRepo::begin(
        tx,
        scope,
        &request,
        now,
        chrono::Duration::days(EVENT_TTL_DAYS),
    )
    .await?
    {
        IdempotencyState::New { id } => id,
        IdempotencyState::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = match body {
                Some(body) => (status, Json(body)).into_response(),
                None => status.into_response(),
            };
            response
                .headers_mut()
                .insert("idempotent-replay", HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyState::InProgress => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "this event is still being processed; retry shortly",
            ));
        }
    };

    let before = current.payment_status;
    let mut refund = None;
    let (outcome, after) = match kind {
        "payment.succeeded" => {
            let method = event
                .method
                .ok_or_else(|| ApiError::invalid_field("method", "required", "is required"))?;
            let expected = current.price_cents - current.discount_cents;
            if event.amount_cents != Some(expected) {
                return Err(ApiError::invalid_field(
                    "amount_cents",
                    "amount_mismatch",
                    "does not match the appointment's amount due",
                ));
            }
            check_currency(event.currency.as_deref(), &current.currency)?;
            // The processor acts with an administrator's rights; no user is recorded
            // (`mark_paid` writes no history row, and the audit entry has no actor).
            let processor_acts = ActingUser {
                id: Uuid::nil(),
                role: UserRole::Admin,
            };
            let paid =
                AppointmentRepo::mark_paid(tx, scope, appointment_id, method, processor_acts)
                    .await?;
            // A success arriving after a refund changes nothing (see `mark_paid`).
            let outcome = if matches!(
                before,
                PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
            ) {
                "unchanged"
            } else {
                "processed"
            };
            (outcome, paid.payment_status)
        }
        "payment.refunded" => {
            let amount = event.amount_cents.ok_or_else(|| {
                ApiError::invalid_field("amount_cents", "required", "is required")
            })?;
            check_currency(event.currency.as_deref(), &current.currency)?;
            let refund_id = event
                .refund_id
                .as_deref()
                .ok_or_else(|| ApiError::invalid_field("refund_id", "required", "is required"))?;
            let recorded =
                LedgerRepo::record_refund(tx, scope, appointment_id, amount, refund_id).await?;
            let outcome = if recorded.replayed {
                "unchanged"
            } else {
                "processed"
            };
            let after = recorded.payment_status;
            refund = Some(recorded);
            (outcome, after)
        }
        _ => {
            if mark_failed(tx, scope, appointment_id).await? {
                ("processed", PaymentStatus::Failed)
            } else {
                ("unchanged", before)
            }
        }
    };
    AuditRepo::record(
        tx,
        scope,
        AuditEntry {
            actor_id: None,
            action: format!("webhook.{kind}"),
            entity_type: "appointment".into(),
            entity_id: Some(appointment_id),
            details: json!({
                "processor": processor,
                "event_id": event.id,
                "type": event.kind,
                "outcome": outcome,
                "amount_cents": event.amount_cents,
                "currency": event.currency,
                "method": event.method,
                "payment_status": {"before": before, "after": after},
                "refund": refund.as_ref().map(audit_details),
            }),
            ip_address: None,
            request_id: None,
        },
    )
    .await?;
    let view = WebhookOutcome {
        event_id: event.id,
        outcome: outcome.into(),
        appointment_id: Some(appointment_id),
        payment_status: Some(after),
        refund: refund.as_ref().map(RefundView::from),
    };
    let stored = serde_json::to_value(&view).map_err(ApiError::internal)?;
    IdempotencyRepo::complete(tx, scope, claim, StatusCode::OK.as_u16(), Some(stored)).await?;
    tracing::info!(processor = %processor, event_id = %view.event_id, kind, outcome, "payment webhook processed");
    Ok(Json(view).into_response())
}

/// The tenant and the webhook secret of (`slug`, `processor`), or `404 no such
/// webhook` whatever is missing; `403` for a suspended organization.
async fn webhook_secret(
    state: &AppState,
    slug: &str,
    processor: &str,
) -> Result<(TenantScope, Secret), ApiError> {
    let no_such = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such webhook");
    if agenda_entity::validate::key(processor).is_err() {
        return Err(no_such());
    }
    let organization = super::auth::organization_by_slug(state, slug)
        .await?
        .ok_or_else(no_such)?;
    if organization.status == OrganizationStatus::Suspended {
        return Err(ApiError::organization_suspended());
    }
    let scope = TenantScope::new(organization.id);
    let read = state.db.read_in(scope).await?;
    let setting = IntegrationRepo::find(&read, scope, processor)
        .await?
        .filter(|s| s.is_enabled)
        .ok_or_else(no_such)?;
    read.commit()
        .await
        .map_err(agenda_storage::StorageError::from)?;
    match IntegrationRepo::secret(&state.settings.secrets, scope, &setting) {
        Ok(secret) => Ok((scope, secret)),
        Err(why) => {
            // Why is configuration (a variable's name, a key id), never a secret.
            match &why {
                SecretUnavailable::None => {
                    tracing::warn!(organization = %slug, processor, "payment webhook has no secret")
                }
                other => {
                    tracing::warn!(organization = %slug, processor, reason = %other, "payment webhook secret is not available")
                }
            }
            Err(no_such())
        }
    }
}

fn unauthorized(code: &'static str, message: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// Checks `X-Agenda-Signature` against `HMAC-SHA256(secret, "<t>.<body>")` and the
/// replay window around `now` (unix seconds).
fn verify_signature(
    headers: &HeaderMap,
    body: &[u8],
    secret: &Secret,
    now: i64,
) -> Result<(), ApiError> {
    let invalid = || {
        unauthorized(
            "invalid_signature",
            "the X-Agenda-Signature header is missing, malformed or does not match",
        )
    };
    let header = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(invalid)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| invalid())?),
            Some(("v1", v)) => signatures.push(unhex(v).ok_or_else(invalid)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(invalid)?;
    if signatures.is_empty() {
        return Err(invalid());
    }
    if now.abs_diff(timestamp) > TOLERANCE_SECONDS.unsigned_abs() {
        return Err(unauthorized(
            "stale_signature",
            "the signature's timestamp is outside the 5-minute window",
        ));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose()).map_err(|_| invalid())?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let ok = signatures
        .iter()
        // `verify_slice` compares in constant time.
        .any(|s| mac.clone().verify_slice(s).is_ok());
    if ok { Ok(()) } else { Err(invalid()) }
}

fn check_currency(sent: Option<&str>, appointment: &str) -> Result<(), ApiError> {
    if sent == Some(appointment) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "currency",
            "currency_mismatch",
            "does not match the appointment's currency",
        ))
    }
}

fn check_event_id(id: &str) -> Result<(), ApiError> {
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_EVENT_ID_CHARS {
        return Err(ApiError::invalid_field(
            "id",
            "length",
            format!("must have 1 to {MAX_EVENT_ID_CHARS} characters"),
        ));
    }
    Ok(())
}

/// `payment_status = failed` unless the appointment is already paid (or refunded, in
/// part or in full: a
/// late failure must not hide money that moved); whether it changed. One conditional
/// UPDATE, so a concurrent success is never overwritten.
async fn mark_failed(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    id: Uuid,
) -> Result<bool, ApiError> {
    use appointment::Column as C;
    let changes = appointment::ActiveModel {
        payment_status: Set(PaymentStatus::Failed),
        updated_at: Set(agenda_entity::now()),
        ..Default::default()
    };
    let result = appointment::Entity::update_in(scope)
        .set(changes)
        .filter(C::Id.eq(id))
        .filter(C::PaymentStatus.is_not_in([
            PaymentStatus::Paid,
            PaymentStatus::PartiallyRefunded,
            PaymentStatus::Refunded,
        ]))
        .exec(tx)
        .await
        .map_err(agenda_storage::StorageError::from)?;
    Ok(result.rows_affected > 0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) || text.is_empty() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(SIGNATURE_HEADER, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn signatures() {
        let secret = Secret::new(b"whsec".to_vec());
        let body = br#"{"id":"e1"}"#;
        let now = 1_800_000_000;
        let good = sign(b"whsec", now, body);
        assert!(verify_signature(&headers(&good), body, &secret, now).is_ok());
        assert!(verify_signature(&headers(&good), body, &secret, now + 300).is_ok());
        let stale = verify_signature(&headers(&good), body, &secret, now + 301).unwrap_err();
        assert_eq!(
            (stale.status.as_u16(), stale.code),
            (401, "stale_signature")
        );
        let other = sign(b"other", now, body);
        assert_eq!(
            verify_signature(&headers(&other), body, &secret, now)
                .unwrap_err()
                .code,
            "invalid_signature"
        );
        assert!(verify_signature(&headers(&good), b"{}", &secret, now).is_err());
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz"] {
            assert!(
                verify_signature(&headers(bad), body, &secret, now).is_err(),
                "{bad}"
            );
        }
        assert!(verify_signature(&HeaderMap::new(), body, &secret, now).is_err());
        // A rotation: the old and the new signature; one matching is enough.
        let both = format!("{other},{}", good.split(',').nth(1).unwrap());
        assert!(verify_signature(&headers(&both), body, &secret, now).is_ok());
    }
}
