//! The marketplace ledger over HTTP: a provider's balance and ledger entries,
//! withdrawals (payout requests) and the release of pending money.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `GET /marketplace/balance`, `GET /marketplace/transactions` | no | their own | any provider (`?provider_id=` required) | any provider (`?provider_id=` required) |
//! | `POST /marketplace/withdrawals` | no | for themself | no | no |
//! | `GET /marketplace/withdrawals/{id}` | no | their own | all | all |
//! | `POST /marketplace/withdrawals/{id}/complete`, `/fail` | no | no | yes | no |
//! | `POST /marketplace/release` | no | their own due money | any provider (`?provider_id=` required) | no |
//!
//! A provider that names another provider, and anyone naming a user who is not a
//! provider of the organization, gets 404, like an unknown id. Money is in integer
//! cents with its currency (see docs/ledger.md).

use agenda_entity::enums::{
    BalanceBucket, PayoutMethod, TransactionKind, UserRole, WithdrawalStatus,
};
use agenda_entity::payment_withdrawal;
use agenda_storage::repo::ledger::{Balance, EntriesQuery, Entry, LedgerRepo};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_storage::repo::users::UserRepo;
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(transactions))
        .routes(routes!(request_withdrawal))
        .routes(routes!(show_withdrawal))
        .routes(routes!(complete_withdrawal))
        .routes(routes!(fail_withdrawal))
        .routes(routes!(release))
}

/// A provider's balance. `available_cents` can be withdrawn; `pending_cents` is
/// earned but still inside the payout delay. A refund larger than the whole balance
/// leaves `available_cents` negative: `debt_cents` is what the provider then owes,
/// withdrawals are refused (409 `balance_in_debt`) and later earnings pay it first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BalanceView {
    pub provider_id: Uuid,
    /// Negative while the provider is in debt.
    pub available_cents: i64,
    pub pending_cents: i64,
    /// What the provider owes: `max(0, -available_cents)`.
    pub debt_cents: i64,
    /// The balance's currency (the organization's when the provider has no ledger yet).
    pub currency: String,
}

/// One ledger entry: signed integer cents (credits positive, debits negative).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransactionView {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub kind: TransactionKind,
    pub bucket: BalanceBucket,
    pub amount_cents: i64,
    pub currency: String,
    pub appointment_id: Option<Uuid>,
    pub withdrawal_id: Option<Uuid>,
    pub external_ref: Option<String>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<Entry> for TransactionView {
    fn from(e: Entry) -> Self {
        TransactionView {
            id: e.id,
            provider_id: e.provider_id,
            kind: e.kind,
            bucket: e.bucket,
            amount_cents: e.amount_cents,
            currency: e.currency,
            appointment_id: e.appointment_id,
            withdrawal_id: e.withdrawal_id,
            external_ref: e.external_ref,
            description: e.description,
            created_at: e.created_at,
        }
    }
}

/// A page of ledger entries; pass `next` as `after` to get the following page.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TransactionPage {
    pub items: Vec<TransactionView>,
    pub next: Option<String>,
}

/// A payout request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WithdrawalView {
    pub id: Uuid,
    pub provider_id: Uuid,
    pub amount_cents: i64,
    pub currency: String,
    pub status: WithdrawalStatus,
    pub payout_method: PayoutMethod,
    pub processed_at: Option<DateTime<Utc>>,
    pub processed_by: Option<Uuid>,
    pub failure_reason: Option<String>,
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<payment_withdrawal::Model> for WithdrawalView {
    fn from(w: payment_withdrawal::Model) -> Self {
        WithdrawalView {
            id: w.id,
            provider_id: w.provider_id,
            amount_cents: w.amount_cents,
            currency: w.currency,
            status: w.status,
            payout_method: w.payout_method,
            processed_at: w.processed_at,
            processed_by: w.processed_by,
            failure_reason: w.failure_reason,
            external_ref: w.external_ref,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// What a release moved, and the balance after it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    pub released_cents: i64,
    pub balance: BalanceView,
}

/// Which provider (staff only; providers always get their own).
#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProviderParam {
    /// Required for admin and support; a provider may leave it out (or name themself).
    pub provider_id: Option<Uuid>,
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TransactionQuery {
    /// Required for admin and support; a provider may leave it out (or name themself).
    pub provider_id: Option<Uuid>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
    /// Oldest first instead of the default newest first.
    pub oldest_first: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"amount_cents": 10000, "payout_method": "pix"}))]
#[serde(deny_unknown_fields)]
pub struct WithdrawalRequest {
    /// Positive, at least the organization's minimum withdrawal, at most the
    /// available balance.
    pub amount_cents: i64,
    pub payout_method: PayoutMethod,
}

/// The optional body of `complete`.
#[derive(Debug, Default, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    /// The payout's id at the bank or processor.
    #[validate(length(min = 1, max = 200))]
    pub payout_ref: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailBody {
    #[validate(length(min = 1, max = 1000))]
    pub reason: String,
}

fn is_staff(auth: &Auth) -> bool {
    matches!(auth.role(), UserRole::Admin | UserRole::Support)
}

/// The provider a request is about: the caller for a provider (naming someone else
/// is 404), the named provider for staff (422 when missing, 404 when not a provider
/// of this organization).
async fn target_provider(
    db: &impl sea_orm::ConnectionTrait,
    auth: &Auth,
    named: Option<Uuid>,
) -> Result<Uuid, ApiError> {
    if auth.role() == UserRole::Provider {
        return match named {
            None => Ok(auth.user.id),
            Some(id) if id == auth.user.id => Ok(id),
            Some(_) => Err(ApiError::not_found("provider")),
        };
    }
    let id = named.ok_or_else(|| {
        ApiError::invalid_field("provider_id", "required", "staff must name the provider")
    })?;
    let user = UserRepo::get(db, auth.scope, id).await?;
    if user.role != UserRole::Provider {
        return Err(ApiError::not_found("provider"));
    }
    Ok(id)
}

async fn balance_view(
    db: &impl sea_orm::ConnectionTrait,
    auth: &Auth,
    balance: Balance,
) -> Result<BalanceView, ApiError> {
    let debt_cents = balance.debt_cents();
    let currency = match balance.currency {
        Some(c) => c,
        None => {
            OrganizationRepo::get(db, auth.scope.organization_id())
                .await?
                .currency
        }
    };
    Ok(BalanceView {
        provider_id: balance.provider_id,
        available_cents: balance.available_cents,
        pending_cents: balance.pending_cents,
        debt_cents,
        currency,
    })
}

/// The withdrawal if the caller may see it (404 otherwise, like a missing one).
async fn visible_withdrawal(
    db: &impl sea_orm::ConnectionTrait,
    auth: &Auth,
    id: Uuid,
) -> Result<payment_withdrawal::Model, ApiError> {
    let w = LedgerRepo::withdrawal(db, auth.scope, id).await?;
    if w.provider_id == auth.user.id || is_staff(auth) {
        Ok(w)
    } else {
        Err(ApiError::not_found("withdrawal"))
    }
}

/// A provider's balance (provider: their own; admin, support: `?provider_id=`).
#[utoipa::path(get, operation_id = "getBalance", path = "/marketplace/balance", tag = "marketplace", security(("bearer" = [])),
    params(ProviderParam),
    responses(
        (status = 200, description = "The balance", body = BalanceView),
        (status = 403, description = "Clients have no balance", body = ErrorResponse),
        (status = 404, description = "No such provider (or not yours)", body = ErrorResponse),
        (status = 422, description = "Staff did not name the provider", body = ErrorResponse),
    ))]
async fn balance(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ProviderParam>,
) -> Result<Json<BalanceView>, ApiError> {
    auth.require(&[UserRole::Provider, UserRole::Admin, UserRole::Support])?;
    let db = uow.read().await?;
    let provider = target_provider(db, &auth, q.provider_id).await?;
    let balance = LedgerRepo::balance(db, auth.scope, provider).await?;
    Ok(Json(balance_view(db, &auth, balance).await?))
}

/// A provider's ledger entries, newest first by default (keyset pages).
#[utoipa::path(get, operation_id = "listTransactions", path = "/marketplace/transactions", tag = "marketplace", security(("bearer" = [])),
    params(TransactionQuery),
    responses(
        (status = 200, description = "A page of entries", body = TransactionPage),
        (status = 403, description = "Clients have no ledger", body = ErrorResponse),
        (status = 404, description = "No such provider (or not yours)", body = ErrorResponse),
        (status = 422, description = "Bad page size or cursor, or no provider named", body = ErrorResponse),
    ))]
async fn transactions(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<TransactionQuery>,
) -> Result<Json<TransactionPage>, ApiError> {
    auth.require(&[UserRole::Provider, UserRole::Admin, UserRole::Support])?;
    let db = uow.read().await?;
    let provider = target_provider(db, &auth, q.provider_id).await?;
    let query = EntriesQuery {
        limit: q.limit,
        after: q.after,
        newest_first: !q.oldest_first.unwrap_or(false),
    };
    let page = LedgerRepo::entries(db, auth.scope, provider, &query).await?;
    Ok(Json(TransactionPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next: page.next,
    }))
}

/// Requests a payout from the caller's available balance (provider only). Send
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, operation_id = "requestWithdrawal", path = "/marketplace/withdrawals", tag = "marketplace", security(("bearer" = [])),
    request_body = WithdrawalRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the first response")),
    responses(
        (status = 201, description = "Requested; the amount left the available balance", body = WithdrawalView),
        (status = 403, description = "Only providers withdraw", body = ErrorResponse),
        (status = 409, description = "The same key is still running, or `balance_in_debt` (a refund left the provider owing money; withdrawals resume once earnings paid it)", body = ErrorResponse),
        (status = 422, description = "Not positive, below the minimum or above the available balance", body = ErrorResponse),
    ))]
async fn request_withdrawal(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<WithdrawalRequest>,
) -> Result<Response, ApiError> {
    auth.require(&[UserRole::Provider])?;
    let tx = uow.tx().await?;
    let created = LedgerRepo::request_withdrawal(
        tx,
        auth.scope,
        auth.user.id,
        input.amount_cents,
        input.payout_method,
    )
    .await?;
    let view = WithdrawalView::from(created);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// One withdrawal (its provider, admin, support).
#[utoipa::path(get, operation_id = "getWithdrawal", path = "/marketplace/withdrawals/{id}", tag = "marketplace", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The withdrawal", body = WithdrawalView),
        (status = 403, description = "Clients have no withdrawals", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn show_withdrawal(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<WithdrawalView>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Provider, UserRole::Admin, UserRole::Support])?;
    Ok(Json(visible_withdrawal(db, &auth, id).await?.into()))
}

/// Marks an open withdrawal as paid (admin only). Optional body `{"payout_ref"}`.
#[utoipa::path(post, operation_id = "completeWithdrawal", path = "/marketplace/withdrawals/{id}/complete", tag = "marketplace", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = Option<CompleteBody>,
    responses(
        (status = 200, description = "Paid", body = WithdrawalView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 409, description = "Not open any more (paid, failed or canceled)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn complete_withdrawal(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    RawBody(body): RawBody,
) -> Result<Json<WithdrawalView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let body: CompleteBody = if body.iter().all(u8::is_ascii_whitespace) {
        CompleteBody::default()
    } else {
        parse_json(&body)?
    };
    body.validate()?;
    let tx = uow.tx().await?;
    let paid =
        LedgerRepo::complete_withdrawal(tx, auth.scope, id, Some(auth.user.id), body.payout_ref)
            .await?;
    Ok(Json(paid.into()))
}

/// Marks an open withdrawal as failed and returns its amount to the available
/// balance (admin only).
#[utoipa::path(post, operation_id = "failWithdrawal", path = "/marketplace/withdrawals/{id}/fail", tag = "marketplace", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = FailBody,
    responses(
        (status = 200, description = "Failed; the money is back in the available balance", body = WithdrawalView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 409, description = "Not open any more (paid, failed or canceled)", body = ErrorResponse),
        (status = 422, description = "No reason given", body = ErrorResponse),
    ))]
async fn fail_withdrawal(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(body): ValidJson<FailBody>,
) -> Result<Json<WithdrawalView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let tx = uow.tx().await?;
    let failed =
        LedgerRepo::fail_withdrawal(tx, auth.scope, id, Some(auth.user.id), body.reason.trim())
            .await?;
    Ok(Json(failed.into()))
}

/// Moves the provider's pending money whose payout delay has passed to the
/// available balance (provider: their own; admin: `?provider_id=`). Safe to repeat:
/// money is released once.
#[utoipa::path(post, operation_id = "releasePending", path = "/marketplace/release", tag = "marketplace", security(("bearer" = [])),
    params(ProviderParam),
    responses(
        (status = 200, description = "What moved and the balance after", body = ReleaseView),
        (status = 403, description = "Providers and admins only", body = ErrorResponse),
        (status = 404, description = "No such provider (or not yours)", body = ErrorResponse),
        (status = 422, description = "The admin did not name the provider", body = ErrorResponse),
    ))]
async fn release(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<ProviderParam>,
) -> Result<Json<ReleaseView>, ApiError> {
    auth.require(&[UserRole::Provider, UserRole::Admin])?;
    let tx = uow.tx().await?;
    let provider = target_provider(tx, &auth, q.provider_id).await?;
    let released_cents = LedgerRepo::release_due(tx, auth.scope, provider, Utc::now()).await?;
    let balance = LedgerRepo::balance(tx, auth.scope, provider).await?;
    Ok(Json(ReleaseView {
        released_cents,
        balance: balance_view(tx, &auth, balance).await?,
    }))
}
