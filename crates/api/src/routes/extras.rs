//! Staff members, promotions and coupon validation, payment preferences, provider fee
//! overrides, and onboarding.
//!
//! Who may do what (the tenant is always the signed-in user's organization; another
//! organization's row, or another user's own row, answers 404):
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `GET /staff`, `GET /staff/{id}` | yes | yes | yes | yes |
//! | `POST /staff`, `PATCH/DELETE /staff/{id}` | no | no | yes | no |
//! | `GET /promotions`, `GET /promotions/{id}` | active ones | active ones | all | all |
//! | `POST /promotions`, `PATCH/DELETE /promotions/{id}` | no | no | yes | no |
//! | `POST /promotions/validate` | yes | yes | yes | yes |
//! | `GET/PUT /providers/me/payment-preferences` | no | their own | no | no |
//! | `GET/PUT /clients/me/payment-preferences` | their own | no | no | no |
//! | `/admin/fee-overrides` (list, create, show, change, delete) | no | no | yes | no |
//! | `GET /onboarding/steps`, `GET /onboarding/steps/{id}` | yes | yes | yes | yes |
//! | `POST /onboarding/steps`, `PATCH/DELETE /onboarding/steps/{id}` | no | no | yes | no |
//! | `GET /onboarding/progress`, `POST /onboarding/progress/{step_id}` | their own | their own | their own | their own |
//!
//! `PUT …/me/payment-preferences` creates the caller's row (201) or replaces it (200):
//! optional fields left out are cleared, numbers and flags left out keep their value.
//! A fee override names a provider of the organization (anyone else is 404, like an
//! unknown id). Coupon validation answers 200 with `valid: false` and a `reason` for a
//! code that does not apply; see [`agenda_storage::repo::promotions::discount`] for
//! the rules (the same rule bookings apply).

use std::collections::HashMap;

use agenda_entity::enums::{OnboardingStatus, UserRole};
use agenda_entity::{
    client_payment_preference, onboarding_step, promotion, provider_payment_preference,
    provider_service_fee, staff_member, user_onboarding_progress,
};
use agenda_storage::repo::promotions::{PromotionRepo, PromotionTarget, discount};
use agenda_storage::repo::resource::Repo;
use agenda_storage::repo::users::UserRepo;
use agenda_storage::{StorageError, TenantOwned, TenantScope};
use axum::Json;
use axum::http::StatusCode;
use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use super::catalogue::resource;
use super::resources::{self, Filters, PageParams, Policy, Row, RowPage, row_json};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{QueryMap, ValidJson, ValidPath};
use crate::uow::UnitOfWork;

resource!(
    staff,
    staff_member::Entity,
    staff_member::CreateStaffMember,
    staff_member::UpdateStaffMember,
    Policy::AdminWrites,
    "staff",
    "/staff",
    "/staff/{id}",
    "StaffMembers",
    "StaffMember"
);
resource!(
    onboarding_steps,
    onboarding_step::Entity,
    onboarding_step::CreateOnboardingStep,
    onboarding_step::UpdateOnboardingStep,
    Policy::AdminWrites,
    "onboarding",
    "/onboarding/steps",
    "/onboarding/steps/{id}",
    "OnboardingSteps",
    "OnboardingStep"
);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(staff::router())
        .merge(onboarding_steps::router())
        .routes(routes!(promotions_list, promotions_create))
        .routes(routes!(
            promotions_show,
            promotions_update,
            promotions_delete
        ))
        .routes(routes!(promotions_validate))
        .routes(routes!(provider_preferences_show, provider_preferences_put))
        .routes(routes!(client_preferences_show, client_preferences_put))
        .routes(routes!(fee_overrides_list, fee_overrides_create))
        .routes(routes!(
            fee_overrides_show,
            fee_overrides_update,
            fee_overrides_delete
        ))
        .routes(routes!(onboarding_progress))
        .routes(routes!(onboarding_progress_set))
}

const STAFF: &[UserRole] = &[UserRole::Admin, UserRole::Support];

async fn find_one<E: TenantOwned>(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    filter: sea_orm::Condition,
) -> Result<Option<E::Model>, ApiError> {
    Ok(E::find_in(scope)
        .filter(filter)
        .one(db)
        .await
        .map_err(StorageError::from)?)
}

// ---------------------------------------------------------------- promotions

/// Promotions of the organization; admins and support see all, others only active ones.
#[utoipa::path(get, operation_id = "listPromotions", path = "/promotions", tag = "promotions", security(("bearer" = [])),
    params(PageParams, Filters<promotion::Entity>),
    responses(
        (status = 200, description = "A page", body = RowPage),
        (status = 422, description = "Unknown filter or bad value", body = ErrorResponse),
    ))]
async fn promotions_list(
    uow: UnitOfWork,
    auth: Auth,
    QueryMap(mut params): QueryMap,
) -> Result<Json<RowPage>, ApiError> {
    // Others see active ones only: asking them for inactive ones finds none (after
    // the parameters are checked like any list's).
    let staff = STAFF.contains(&auth.role());
    let inactive_asked = params.get("is_active").is_some_and(|v| v == "false");
    if !staff && !params.contains_key("is_active") {
        params.insert("is_active".into(), "true".into());
    }
    let mut page =
        resources::list_page::<promotion::Entity>(uow.read().await?, &auth, params).await?;
    if !staff && inactive_asked {
        page = RowPage {
            items: Vec::new(),
            next: None,
        };
    }
    Ok(Json(page))
}

/// Creates a promotion (admin).
#[utoipa::path(post, operation_id = "createPromotion", path = "/promotions", tag = "promotions", security(("bearer" = [])),
    request_body = promotion::CreatePromotion,
    responses(
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 409, description = "Taken code or a missing reference", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn promotions_create(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<promotion::CreatePromotion>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    resources::create::<promotion::Entity>(uow.tx().await?, &auth, Policy::AdminWrites, input).await
}

/// One promotion (an inactive one is 404 except for admins and support).
#[utoipa::path(get, operation_id = "getPromotion", path = "/promotions/{id}", tag = "promotions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The promotion", body = Row),
        (status = 404, description = "Not found", body = ErrorResponse),
    ))]
async fn promotions_show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let db = uow.read().await?;
    let found = Repo::<promotion::Entity>::get(db, auth.scope, id).await?;
    if !found.is_active && !STAFF.contains(&auth.role()) {
        return Err(ApiError::not_found("promotion"));
    }
    Ok(Json(row_json(&found)))
}

/// Changes a promotion (admin).
#[utoipa::path(patch, operation_id = "updatePromotion", path = "/promotions/{id}", tag = "promotions", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = promotion::UpdatePromotion,
    responses(
        (status = 200, description = "The updated promotion", body = Row),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 409, description = "Taken code or a missing reference", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn promotions_update(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<promotion::UpdatePromotion>,
) -> Result<Json<Value>, ApiError> {
    resources::update::<promotion::Entity>(uow.tx().await?, &auth, Policy::AdminWrites, id, input)
        .await
}

/// Deletes a promotion (admin).
#[utoipa::path(delete, operation_id = "deletePromotion", path = "/promotions/{id}", tag = "promotions", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 409, description = "Still referenced", body = ErrorResponse),
    ))]
async fn promotions_delete(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    resources::delete::<promotion::Entity>(uow.tx().await?, &auth, Policy::AdminWrites, id).await
}

/// A coupon check: the code and what it would apply to.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"code": "WELCOME10", "amount_cents": 5000, "service_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e"}))]
#[serde(deny_unknown_fields)]
pub struct ValidateCoupon {
    #[validate(length(min = 1, max = 40))]
    pub code: String,
    /// The order amount the discount applies to.
    #[validate(range(min = 0))]
    pub amount_cents: i64,
    pub service_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
}

/// Whether a coupon applies, and how much it takes off.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CouponVerdict {
    pub valid: bool,
    pub discount_cents: i64,
    /// Why the coupon does not apply: `not_found`, `inactive`, `not_started`,
    /// `expired`, `exhausted`, `below_minimum` or `out_of_scope`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// Checks a coupon code against an amount and, optionally, a service and a provider.
#[utoipa::path(post, operation_id = "validateCoupon", path = "/promotions/validate", tag = "promotions", security(("bearer" = [])),
    request_body = ValidateCoupon,
    responses(
        (status = 200, description = "The verdict (`valid: false` with a reason when the code does not apply)", body = CouponVerdict),
        (status = 404, description = "The service or provider is not in your organization", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn promotions_validate(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<ValidateCoupon>,
) -> Result<Json<CouponVerdict>, ApiError> {
    let db = uow.read().await?;
    let target = if let Some(id) = input.service_id {
        PromotionRepo::service_target(db, auth.scope, id).await?
    } else {
        if let Some(id) = input.provider_id {
            provider_of(db, auth.scope, id).await?;
        }
        PromotionTarget {
            provider_id: input.provider_id,
            ..PromotionTarget::default()
        }
    };
    let promo = PromotionRepo::by_code(db, auth.scope, &input.code).await?;
    let verdict = match promo.map(|p| discount(&p, input.amount_cents, &target, Utc::now())) {
        None => Err("not_found"),
        Some(result) => result,
    };
    Ok(Json(match verdict {
        Ok(discount_cents) => CouponVerdict {
            valid: true,
            discount_cents,
            reason: None,
        },
        Err(reason) => CouponVerdict {
            valid: false,
            discount_cents: 0,
            reason: Some(reason),
        },
    }))
}

/// `id` must be a provider of the organization (anyone else is "not found").
async fn provider_of(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    id: Uuid,
) -> Result<(), ApiError> {
    let found = UserRepo::get(db, scope, id).await?;
    if found.role != UserRole::Provider {
        return Err(ApiError::not_found("provider"));
    }
    Ok(())
}

// ------------------------------------------------------- payment preferences

/// The signed-in provider's payout preferences.
#[utoipa::path(get, operation_id = "getMyProviderPaymentPreferences", path = "/providers/me/payment-preferences", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your payout preferences", body = Row),
        (status = 403, description = "Providers only", body = ErrorResponse),
        (status = 404, description = "Not set up yet (PUT them first)", body = ErrorResponse),
    ))]
async fn provider_preferences_show(uow: UnitOfWork, auth: Auth) -> Result<Json<Value>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Provider])?;
    let found = find_one::<provider_payment_preference::Entity>(
        db,
        auth.scope,
        sea_orm::Condition::all()
            .add(provider_payment_preference::Column::ProviderId.eq(auth.user.id)),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("provider payment preference"))?;
    Ok(Json(row_json(&found)))
}

/// Creates (201) or replaces (200) the signed-in provider's payout preferences.
#[utoipa::path(put, operation_id = "putMyProviderPaymentPreferences", path = "/providers/me/payment-preferences", tag = "settings", security(("bearer" = [])),
    request_body = provider_payment_preference::CreateProviderPaymentPreference,
    responses(
        (status = 200, description = "Replaced", body = Row),
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Providers only", body = ErrorResponse),
        (status = 409, description = "Created concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn provider_preferences_put(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<provider_payment_preference::CreateProviderPaymentPreference>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(&[UserRole::Provider])?;
    let tx = uow.tx().await?;
    let me = auth.user.id;
    let existing = find_one::<provider_payment_preference::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all().add(provider_payment_preference::Column::ProviderId.eq(me)),
    )
    .await?;
    let Some(existing) = existing else {
        let created =
            Repo::<provider_payment_preference::Entity>::create(tx, auth.scope, input, |r| {
                r.provider_id = Set(me);
            })
            .await?;
        return Ok((StatusCode::CREATED, Json(row_json(&created))));
    };
    let replace = provider_payment_preference::UpdateProviderPaymentPreference {
        payout_method: Some(input.payout_method),
        pix_key: Some(input.pix_key),
        bank_code: Some(input.bank_code),
        bank_branch: Some(input.bank_branch),
        bank_account: Some(input.bank_account),
        account_holder_name: Some(input.account_holder_name),
        account_holder_tax_id: Some(input.account_holder_tax_id),
        minimum_payout_cents: input.minimum_payout_cents,
    };
    let updated =
        Repo::<provider_payment_preference::Entity>::update(tx, auth.scope, existing.id, replace)
            .await?;
    Ok((StatusCode::OK, Json(row_json(&updated))))
}

/// The signed-in client's payment preferences.
#[utoipa::path(get, operation_id = "getMyClientPaymentPreferences", path = "/clients/me/payment-preferences", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your payment preferences", body = Row),
        (status = 403, description = "Clients only", body = ErrorResponse),
        (status = 404, description = "Not set up yet (PUT them first)", body = ErrorResponse),
    ))]
async fn client_preferences_show(uow: UnitOfWork, auth: Auth) -> Result<Json<Value>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Client])?;
    let found = find_one::<client_payment_preference::Entity>(
        db,
        auth.scope,
        sea_orm::Condition::all().add(client_payment_preference::Column::ClientId.eq(auth.user.id)),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("client payment preference"))?;
    Ok(Json(row_json(&found)))
}

/// Creates (201) or replaces (200) the signed-in client's payment preferences; the
/// default payment method must be one of the organization's saved methods.
#[utoipa::path(put, operation_id = "putMyClientPaymentPreferences", path = "/clients/me/payment-preferences", tag = "settings", security(("bearer" = [])),
    request_body = client_payment_preference::CreateClientPaymentPreference,
    responses(
        (status = 200, description = "Replaced", body = Row),
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Clients only", body = ErrorResponse),
        (status = 404, description = "The default payment method is not yours", body = ErrorResponse),
        (status = 409, description = "Created concurrently, or a missing reference", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn client_preferences_put(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<client_payment_preference::CreateClientPaymentPreference>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(&[UserRole::Client])?;
    let tx = uow.tx().await?;
    let me = auth.user.id;
    if let Some(method) = input.default_payment_method_id {
        let mine = find_one::<agenda_entity::user_payment_method::Entity>(
            tx,
            auth.scope,
            sea_orm::Condition::all()
                .add(agenda_entity::user_payment_method::Column::Id.eq(method))
                .add(agenda_entity::user_payment_method::Column::UserId.eq(me)),
        )
        .await?;
        if mine.is_none() {
            return Err(ApiError::not_found("payment method"));
        }
    }
    let existing = find_one::<client_payment_preference::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all().add(client_payment_preference::Column::ClientId.eq(me)),
    )
    .await?;
    let Some(existing) = existing else {
        let created =
            Repo::<client_payment_preference::Entity>::create(tx, auth.scope, input, |r| {
                r.client_id = Set(me);
            })
            .await?;
        return Ok((StatusCode::CREATED, Json(row_json(&created))));
    };
    let replace = client_payment_preference::UpdateClientPaymentPreference {
        preferred_method: Some(input.preferred_method),
        default_payment_method_id: Some(input.default_payment_method_id),
        save_payment_methods: input.save_payment_methods,
        send_receipts: input.send_receipts,
    };
    let updated =
        Repo::<client_payment_preference::Entity>::update(tx, auth.scope, existing.id, replace)
            .await?;
    Ok((StatusCode::OK, Json(row_json(&updated))))
}

// ------------------------------------------------------------ fee overrides

/// Providers' fee overrides (admin).
#[utoipa::path(get, operation_id = "listFeeOverrides", path = "/admin/fee-overrides", tag = "settings", security(("bearer" = [])),
    params(PageParams, Filters<provider_service_fee::Entity>),
    responses(
        (status = 200, description = "A page", body = RowPage),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 422, description = "Unknown filter or bad value", body = ErrorResponse),
    ))]
async fn fee_overrides_list(
    uow: UnitOfWork,
    auth: Auth,
    QueryMap(params): QueryMap,
) -> Result<Json<RowPage>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    resources::list_page::<provider_service_fee::Entity>(uow.read().await?, &auth, params)
        .await
        .map(Json)
}

/// Sets a provider's fee override (admin); unset fields inherit the payment settings.
#[utoipa::path(post, operation_id = "createFeeOverride", path = "/admin/fee-overrides", tag = "settings", security(("bearer" = [])),
    request_body = provider_service_fee::CreateProviderServiceFee,
    responses(
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not a provider of your organization", body = ErrorResponse),
        (status = 409, description = "The provider already has an override", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn fee_overrides_create(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<provider_service_fee::CreateProviderServiceFee>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(&[UserRole::Admin])?;
    let tx = uow.tx().await?;
    provider_of(tx, auth.scope, input.provider_id).await?;
    resources::create::<provider_service_fee::Entity>(tx, &auth, Policy::AdminWrites, input).await
}

/// One fee override (admin).
#[utoipa::path(get, operation_id = "getFeeOverride", path = "/admin/fee-overrides/{id}", tag = "settings", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, description = "The override", body = Row),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
    ))]
async fn fee_overrides_show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    resources::show::<provider_service_fee::Entity>(uow.read().await?, &auth, id).await
}

/// Changes a fee override (admin; `null` clears a field, which then inherits).
#[utoipa::path(patch, operation_id = "updateFeeOverride", path = "/admin/fee-overrides/{id}", tag = "settings", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = provider_service_fee::UpdateProviderServiceFee,
    responses(
        (status = 200, description = "The updated override", body = Row),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn fee_overrides_update(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<provider_service_fee::UpdateProviderServiceFee>,
) -> Result<Json<Value>, ApiError> {
    resources::update::<provider_service_fee::Entity>(
        uow.tx().await?,
        &auth,
        Policy::AdminWrites,
        id,
        input,
    )
    .await
}

/// Deletes a fee override (admin); the provider then pays the organization's fee.
#[utoipa::path(delete, operation_id = "deleteFeeOverride", path = "/admin/fee-overrides/{id}", tag = "settings", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not found", body = ErrorResponse),
    ))]
async fn fee_overrides_delete(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(id): ValidPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    resources::delete::<provider_service_fee::Entity>(
        uow.tx().await?,
        &auth,
        Policy::AdminWrites,
        id,
    )
    .await
}

// --------------------------------------------------------------- onboarding

/// An onboarding step with the caller's status on it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StepProgress {
    pub step_id: Uuid,
    pub key: String,
    pub title: String,
    pub description: Option<String>,
    pub sort_order: i32,
    pub is_required: bool,
    pub status: OnboardingStatus,
    /// RFC 3339, microseconds, like every instant of the API.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub completed_at: Option<String>,
}

/// A new status for one step.
#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"status": "completed"}))]
#[serde(deny_unknown_fields)]
pub struct SetProgress {
    pub status: OnboardingStatus,
}

/// Every active step for the caller's role, in order, with the caller's status
/// (`pending` where there is no progress yet).
#[utoipa::path(get, operation_id = "listMyOnboardingProgress", path = "/onboarding/progress", tag = "onboarding", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your checklist", body = Vec<StepProgress>),
    ))]
async fn onboarding_progress(
    uow: UnitOfWork,
    auth: Auth,
) -> Result<Json<Vec<StepProgress>>, ApiError> {
    let db = uow.read().await?;
    let steps = onboarding_step::Entity::find_in(auth.scope)
        .filter(onboarding_step::Column::Role.eq(auth.role()))
        .filter(onboarding_step::Column::IsActive.eq(true))
        .order_by_asc(onboarding_step::Column::SortOrder)
        .order_by_asc(onboarding_step::Column::Id)
        .all(db)
        .await
        .map_err(StorageError::from)?;
    let progress: HashMap<Uuid, user_onboarding_progress::Model> =
        user_onboarding_progress::Entity::find_in(auth.scope)
            .filter(user_onboarding_progress::Column::UserId.eq(auth.user.id))
            .all(db)
            .await
            .map_err(StorageError::from)?
            .into_iter()
            .map(|p| (p.step_id, p))
            .collect();
    Ok(Json(
        steps
            .into_iter()
            .map(|step| {
                let mine = progress.get(&step.id);
                StepProgress {
                    step_id: step.id,
                    key: step.key,
                    title: step.title,
                    description: step.description,
                    sort_order: step.sort_order,
                    is_required: step.is_required,
                    status: mine.map_or(OnboardingStatus::Pending, |p| p.status),
                    completed_at: mine
                        .and_then(|p| p.completed_at)
                        .map(|at| resources::instant(&at)),
                }
            })
            .collect(),
    ))
}

/// Sets the caller's status on a step of their role; `completed` records when.
#[utoipa::path(post, operation_id = "setMyOnboardingProgress", path = "/onboarding/progress/{step_id}", tag = "onboarding", security(("bearer" = [])),
    params(("step_id" = Uuid, Path)), request_body = SetProgress,
    responses(
        (status = 200, description = "Updated", body = Row),
        (status = 201, description = "First progress on this step", body = Row),
        (status = 404, description = "No active step of your role with this id", body = ErrorResponse),
        (status = 409, description = "Created concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn onboarding_progress_set(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(step_id): ValidPath<Uuid>,
    ValidJson(input): ValidJson<SetProgress>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let tx = uow.tx().await?;
    let step = Repo::<onboarding_step::Entity>::get(tx, auth.scope, step_id).await?;
    if step.role != auth.role() || !step.is_active {
        return Err(ApiError::not_found("onboarding step"));
    }
    let me = auth.user.id;
    let completed_at = (input.status == OnboardingStatus::Completed).then(Utc::now);
    let existing = find_one::<user_onboarding_progress::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all()
            .add(user_onboarding_progress::Column::UserId.eq(me))
            .add(user_onboarding_progress::Column::StepId.eq(step_id)),
    )
    .await?;
    let Some(existing) = existing else {
        let create = user_onboarding_progress::CreateUserOnboardingProgress {
            step_id,
            status: Some(input.status),
        };
        let created =
            Repo::<user_onboarding_progress::Entity>::create(tx, auth.scope, create, |r| {
                r.user_id = Set(me);
                r.completed_at = Set(completed_at);
            })
            .await?;
        return Ok((StatusCode::CREATED, Json(row_json(&created))));
    };
    // Completing twice keeps the first instant.
    let completed_at = match (existing.completed_at, completed_at) {
        (Some(first), Some(_)) => Some(first),
        (_, now) => now,
    };
    let mut row = existing.into_active_model();
    row.status = Set(input.status);
    row.completed_at = Set(completed_at);
    let updated = row.update(tx).await.map_err(StorageError::from)?;
    Ok((StatusCode::OK, Json(row_json(&updated))))
}
