//! A client's saved payment methods: the payment processor's token for a card or
//! account, and what to show for it (brand, last four digits, expiry). Card numbers
//! never reach Agenda: the client's app tokenises the card with the processor and
//! sends the token; a value that looks like a card number is refused (`422` on
//! `processor_token`), and the token is never returned.
//!
//! Who may do what (the tenant is the signed-in user's organization; another
//! client's method, or another organization's, answers 404):
//!
//! | route | client | provider | support | admin |
//! |---|---|---|---|---|
//! | `GET/POST /clients/me/payment-methods` | their own | no | no | no |
//! | `PATCH/DELETE /clients/me/payment-methods/{id}` | their own | no | no | no |
//! | `GET /clients/{id}/payment-methods` | no | no | any client's | any client's |
//!
//! A client has at most one default method; the first one saved is the default, and
//! making another the default clears the flag on the rest. The default method of a
//! client's payment preferences (`/clients/me/payment-preferences`) must be one of
//! these.

use agenda_entity::enums::UserRole;
use agenda_entity::user_payment_method::{self, CreateUserPaymentMethod, UpdateUserPaymentMethod};
use agenda_storage::repo::payment_methods::PaymentMethodRepo;
use agenda_storage::repo::users::UserRepo;
use axum::Json;
use axum::http::StatusCode;
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
        .routes(routes!(list_mine, add))
        .routes(routes!(update, remove))
        .routes(routes!(list_of_client))
}

/// A saved payment method as the API shows it: never the processor's token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentMethodView {
    pub id: Uuid,
    /// The payment processor, e.g. `stripe`.
    pub processor: String,
    /// The card brand or wallet, e.g. `visa`.
    pub brand: Option<String>,
    /// The last four digits.
    pub last4: Option<String>,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub is_default: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<user_payment_method::Model> for PaymentMethodView {
    fn from(m: user_payment_method::Model) -> Self {
        PaymentMethodView {
            id: m.id,
            processor: m.processor,
            brand: m.brand,
            last4: m.last4,
            exp_month: m.exp_month,
            exp_year: m.exp_year,
            is_default: m.is_default,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A client's saved payment methods, the default first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PaymentMethodList {
    pub items: Vec<PaymentMethodView>,
}

fn listed(rows: Vec<user_payment_method::Model>) -> Json<PaymentMethodList> {
    Json(PaymentMethodList {
        items: rows.into_iter().map(Into::into).collect(),
    })
}

/// The signed-in client's saved payment methods.
#[utoipa::path(get, operation_id = "listMyPaymentMethods", path = "/clients/me/payment-methods", tag = "payment methods", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your payment methods, the default first", body = PaymentMethodList),
        (status = 403, description = "Clients only", body = ErrorResponse),
    ))]
async fn list_mine(uow: UnitOfWork, auth: Auth) -> Result<Json<PaymentMethodList>, ApiError> {
    auth.require(&[UserRole::Client])?;
    let rows = PaymentMethodRepo::list(uow.read().await?, auth.scope, auth.user.id).await?;
    Ok(listed(rows))
}

/// Saves a payment method (the processor's token) for the signed-in client.
#[utoipa::path(post, operation_id = "addMyPaymentMethod", path = "/clients/me/payment-methods", tag = "payment methods", security(("bearer" = [])),
    request_body = CreateUserPaymentMethod,
    responses(
        (status = 201, description = "Saved", body = PaymentMethodView),
        (status = 403, description = "Clients only", body = ErrorResponse),
        (status = 409, description = "This token is saved already", body = ErrorResponse),
        (status = 422, description = "Invalid fields, or a card number instead of a token (`processor_token`)", body = ErrorResponse),
    ))]
async fn add(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<CreateUserPaymentMethod>,
) -> Result<(StatusCode, Json<PaymentMethodView>), ApiError> {
    auth.require(&[UserRole::Client])?;
    let saved = PaymentMethodRepo::add(uow.tx().await?, auth.scope, auth.user.id, input).await?;
    Ok((StatusCode::CREATED, Json(saved.into())))
}

/// Changes one of the signed-in client's payment methods (display fields, default).
#[utoipa::path(patch, operation_id = "updateMyPaymentMethod", path = "/clients/me/payment-methods/{id}", tag = "payment methods", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = UpdateUserPaymentMethod,
    responses(
        (status = 200, description = "The updated payment method", body = PaymentMethodView),
        (status = 403, description = "Clients only", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn update(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<UpdateUserPaymentMethod>,
) -> Result<Json<PaymentMethodView>, ApiError> {
    auth.require(&[UserRole::Client])?;
    let tx = uow.tx().await?;
    let saved = PaymentMethodRepo::update(tx, auth.scope, auth.user.id, id, input).await?;
    Ok(Json(saved.into()))
}

/// Deletes one of the signed-in client's payment methods.
#[utoipa::path(delete, operation_id = "deleteMyPaymentMethod", path = "/clients/me/payment-methods/{id}", tag = "payment methods", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Clients only", body = ErrorResponse),
        (status = 404, description = "Not found (or not yours)", body = ErrorResponse),
    ))]
async fn remove(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[UserRole::Client])?;
    PaymentMethodRepo::remove(uow.tx().await?, auth.scope, auth.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A client's saved payment methods (admin, support).
#[utoipa::path(get, operation_id = "listClientPaymentMethods", path = "/clients/{id}/payment-methods", tag = "payment methods", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The client's user id")),
    responses(
        (status = 200, description = "The client's payment methods, the default first", body = PaymentMethodList),
        (status = 403, description = "Admin and support only", body = ErrorResponse),
        (status = 404, description = "No such client in this organization", body = ErrorResponse),
    ))]
async fn list_of_client(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<PaymentMethodList>, ApiError> {
    auth.require(&[UserRole::Admin, UserRole::Support])?;
    let db = uow.read().await?;
    let client = UserRepo::get(db, auth.scope, id).await?;
    if client.role != UserRole::Client {
        return Err(ApiError::not_found("client"));
    }
    Ok(listed(PaymentMethodRepo::list(db, auth.scope, id).await?))
}
