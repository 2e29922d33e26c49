//! Settings: a provider's own business profile and booking rules; the
//! organization's payment settings, system settings and audit log for admins.
//!
//! Who may do what (the tenant is always the signed-in user's organization):
//!
//! | route | client | provider | admin | support |
//! |---|---|---|---|---|
//! | `GET/PUT /providers/me/settings` | no | their own | no | no |
//! | `GET/PATCH /admin/payment-settings` | no | no | yes | no |
//! | `GET /admin/audit-log` | no | no | yes | no |
//! | `GET/POST /admin/settings` | no | no | yes | no |
//!
//! `PUT /providers/me/settings` creates the provider's row if it is missing (201) and
//! replaces it otherwise (200): a strict full replacement, every field required
//! (`null` clears a nullable one; a field left out is 422 naming it); the rating
//! counters are never taken from the body. `PATCH` changes only the fields sent.
//! `PATCH /admin/payment-settings` creates the organization's row with defaults if
//! there is none, then applies the body. `POST /admin/settings` sets a key: it
//! creates the setting (201) or replaces its value and description (200).
//! Admin changes to payment and system settings are written to the audit log in the
//! same transaction.

use agenda_entity::enums::UserRole;
use agenda_entity::payment_settings::{self, CreatePaymentSettings, UpdatePaymentSettings};
use agenda_entity::provider_settings::{self, ReplaceProviderSettings, UpdateProviderSettings};
use agenda_entity::system_setting::{self, CreateSystemSetting};
use agenda_storage::repo::audit::{AuditEntry, AuditQuery, AuditRepo};
use agenda_storage::repo::resource::{ListQuery, Repo};
use agenda_storage::{StorageError, TenantOwned, TenantScope};
use axum::Json;
use axum::http::StatusCode;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, IntoActiveModel, QueryFilter, Set};
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::Validate;

use super::resources::{Row, RowPage, row_json};
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{RawBody, ValidJson, ValidQuery, parse_json};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            provider_settings_show,
            provider_settings_put,
            provider_settings_patch
        ))
        .routes(routes!(payment_settings_show, payment_settings_patch))
        .routes(routes!(audit_log))
        .routes(routes!(system_settings_list, system_settings_set))
}

#[derive(Debug, Deserialize, Validate, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditLogQuery {
    pub actor_id: Option<Uuid>,
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    pub action: Option<String>,
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
pub struct SettingsQuery {
    pub key: Option<String>,
    /// Page size, at most 100 (default 20).
    #[validate(range(min = 1, max = 100))]
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

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

async fn audit(
    db: &impl ConnectionTrait,
    auth: &Auth,
    action: &str,
    entity_type: &str,
    entity_id: Uuid,
    details: Value,
) -> Result<(), ApiError> {
    AuditRepo::record(
        db,
        auth.scope,
        AuditEntry {
            actor_id: Some(auth.user.id),
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id: Some(entity_id),
            details,
            ip_address: None,
            request_id: None,
        },
    )
    .await?;
    Ok(())
}

/// The signed-in provider's settings.
#[utoipa::path(get, operation_id = "getMyProviderSettings", path = "/providers/me/settings", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "Your settings", body = Row),
        (status = 403, description = "Providers only", body = ErrorResponse),
        (status = 404, description = "Not set up yet (PUT them first)", body = ErrorResponse),
    ))]
async fn provider_settings_show(uow: UnitOfWork, auth: Auth) -> Result<Json<Value>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Provider])?;
    let found = find_one::<provider_settings::Entity>(
        db,
        auth.scope,
        sea_orm::Condition::all().add(provider_settings::Column::ProviderId.eq(auth.user.id)),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("provider settings"))?;
    Ok(Json(row_json(&found)))
}

/// Creates (201) or replaces (200) the signed-in provider's settings.
///
/// A strict full replacement: every field is required (a field left out is `422`
/// naming it, never kept or cleared silently), and `null` clears a nullable one.
/// The rating counters are never taken from the body. Change only some fields with
/// `PATCH`.
#[utoipa::path(put, operation_id = "putMyProviderSettings", path = "/providers/me/settings", tag = "settings", security(("bearer" = [])),
    request_body = ReplaceProviderSettings,
    responses(
        (status = 200, description = "Replaced", body = Row),
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Providers only", body = ErrorResponse),
        (status = 409, description = "Created concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Invalid fields, or a field left out (every field is required; send null to clear a nullable one)", body = ErrorResponse),
    ))]
async fn provider_settings_put(
    uow: UnitOfWork,
    auth: Auth,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(&[UserRole::Provider])?;
    let input = parse_json::<ReplaceProviderSettings>(&body)?.into_create();
    input.validate()?;
    let tx = uow.tx().await?;
    let me = auth.user.id;
    let existing = find_one::<provider_settings::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all().add(provider_settings::Column::ProviderId.eq(me)),
    )
    .await?;
    let Some(existing) = existing else {
        let created = Repo::<provider_settings::Entity>::create(tx, auth.scope, input, |r| {
            r.provider_id = Set(me);
        })
        .await?;
        return Ok((StatusCode::CREATED, Json(row_json(&created))));
    };
    let replace = UpdateProviderSettings::from(input);
    let updated =
        Repo::<provider_settings::Entity>::update(tx, auth.scope, existing.id, replace).await?;
    Ok((StatusCode::OK, Json(row_json(&updated))))
}

/// Changes the fields present in the body of the signed-in provider's settings
/// (`null` clears an optional one); fields left out keep their value.
#[utoipa::path(patch, operation_id = "updateMyProviderSettings", path = "/providers/me/settings", tag = "settings", security(("bearer" = [])),
    request_body = UpdateProviderSettings,
    responses(
        (status = 200, description = "The updated settings", body = Row),
        (status = 403, description = "Providers only", body = ErrorResponse),
        (status = 404, description = "Not set up yet (PUT them first)", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn provider_settings_patch(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<UpdateProviderSettings>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[UserRole::Provider])?;
    let tx = uow.tx().await?;
    let existing = find_one::<provider_settings::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all().add(provider_settings::Column::ProviderId.eq(auth.user.id)),
    )
    .await?
    .ok_or_else(|| ApiError::not_found("provider settings"))?;
    let updated =
        Repo::<provider_settings::Entity>::update(tx, auth.scope, existing.id, input).await?;
    Ok(Json(row_json(&updated)))
}

/// The organization's payment settings (admin).
#[utoipa::path(get, operation_id = "getPaymentSettings", path = "/admin/payment-settings", tag = "settings", security(("bearer" = [])),
    responses(
        (status = 200, description = "The payment settings", body = Row),
        (status = 403, description = "Admin only", body = ErrorResponse),
        (status = 404, description = "Not configured yet (PATCH creates them)", body = ErrorResponse),
    ))]
async fn payment_settings_show(uow: UnitOfWork, auth: Auth) -> Result<Json<Value>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Admin])?;
    let found = find_one::<payment_settings::Entity>(db, auth.scope, sea_orm::Condition::all())
        .await?
        .ok_or_else(|| ApiError::not_found("payment settings"))?;
    Ok(Json(row_json(&found)))
}

/// Changes the organization's payment settings (admin); creates them with defaults
/// first if there are none.
#[utoipa::path(patch, operation_id = "updatePaymentSettings", path = "/admin/payment-settings", tag = "settings", security(("bearer" = [])),
    request_body = UpdatePaymentSettings,
    responses(
        (status = 200, description = "The updated payment settings", body = Row),
        (status = 403, description = "Admin only", body = ErrorResponse),
        (status = 422, description = "Invalid fields (e.g. minimum fee above maximum)", body = ErrorResponse),
    ))]
async fn payment_settings_patch(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<UpdatePaymentSettings>,
) -> Result<Json<Value>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let tx = uow.tx().await?;
    let existing =
        find_one::<payment_settings::Entity>(tx, auth.scope, sea_orm::Condition::all()).await?;
    let id = match existing {
        Some(row) => row.id,
        None => {
            let defaults = CreatePaymentSettings {
                fee_percentage_bp: None,
                fee_fixed_cents: None,
                fee_min_cents: None,
                fee_max_cents: None,
                payout_schedule: None,
                payout_delay_days: None,
                minimum_withdrawal_cents: None,
            };
            Repo::<payment_settings::Entity>::create(tx, auth.scope, defaults, |_| {})
                .await?
                .id
        }
    };
    let updated = Repo::<payment_settings::Entity>::update(tx, auth.scope, id, input).await?;
    let row = row_json(&updated);
    audit(
        tx,
        &auth,
        "payment_settings.update",
        "payment_settings",
        id,
        row.clone(),
    )
    .await?;
    Ok(Json(row))
}

/// The organization's audit log, newest first (admin).
#[utoipa::path(get, operation_id = "listAuditLog", path = "/admin/audit-log", tag = "settings", security(("bearer" = [])),
    params(AuditLogQuery),
    responses(
        (status = 200, description = "A page", body = RowPage),
        (status = 403, description = "Admin only", body = ErrorResponse),
        (status = 422, description = "Invalid page size or cursor", body = ErrorResponse),
    ))]
async fn audit_log(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<AuditLogQuery>,
) -> Result<Json<RowPage>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Admin])?;
    let query = AuditQuery {
        actor_id: q.actor_id,
        entity_type: q.entity_type,
        entity_id: q.entity_id,
        action: q.action,
        limit: q.limit,
        after: q.after,
    };
    let page = AuditRepo::list(db, auth.scope, &query).await?;
    Ok(Json(RowPage {
        items: page.items.iter().map(row_json).collect(),
        next: page.next,
    }))
}

/// The organization's system settings, oldest first (admin).
#[utoipa::path(get, operation_id = "listSystemSettings", path = "/admin/settings", tag = "settings", security(("bearer" = [])),
    params(SettingsQuery),
    responses(
        (status = 200, description = "A page", body = RowPage),
        (status = 403, description = "Admin only", body = ErrorResponse),
        (status = 422, description = "Invalid page size or cursor", body = ErrorResponse),
    ))]
async fn system_settings_list(
    uow: UnitOfWork,
    auth: Auth,
    ValidQuery(q): ValidQuery<SettingsQuery>,
) -> Result<Json<RowPage>, ApiError> {
    let db = uow.read().await?;
    auth.require(&[UserRole::Admin])?;
    let mut query = ListQuery {
        limit: q.limit,
        after: q.after,
        ..ListQuery::default()
    };
    if let Some(key) = q.key {
        query.filters.push(("key".into(), key));
    }
    let page = Repo::<system_setting::Entity>::list(db, auth.scope, &query).await?;
    Ok(Json(RowPage {
        items: page.items.iter().map(row_json).collect(),
        next: page.next,
    }))
}

/// Sets a system setting (admin): creates the key (201) or replaces its value and
/// description (200).
#[utoipa::path(post, operation_id = "setSystemSetting", path = "/admin/settings", tag = "settings", security(("bearer" = [])),
    request_body = CreateSystemSetting,
    responses(
        (status = 200, description = "Replaced", body = Row),
        (status = 201, description = "Created", body = Row),
        (status = 403, description = "Admin only", body = ErrorResponse),
        (status = 409, description = "Created concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Invalid fields", body = ErrorResponse),
    ))]
async fn system_settings_set(
    uow: UnitOfWork,
    auth: Auth,
    ValidJson(input): ValidJson<CreateSystemSetting>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    auth.require(&[UserRole::Admin])?;
    let tx = uow.tx().await?;
    let me = auth.user.id;
    let existing = find_one::<system_setting::Entity>(
        tx,
        auth.scope,
        sea_orm::Condition::all().add(system_setting::Column::Key.eq(input.key.clone())),
    )
    .await?;
    let (status, saved) = match existing {
        Some(row) => {
            let mut row = row.into_active_model();
            row.value = Set(input.value);
            row.description = Set(input.description);
            row.updated_by = Set(Some(me));
            (
                StatusCode::OK,
                row.update(tx).await.map_err(StorageError::from)?,
            )
        }
        None => {
            let created = Repo::<system_setting::Entity>::create(tx, auth.scope, input, |r| {
                r.updated_by = Set(Some(me));
            })
            .await?;
            (StatusCode::CREATED, created)
        }
    };
    let row = row_json(&saved);
    audit(
        tx,
        &auth,
        "system_setting.set",
        "system_settings",
        saved.id,
        serde_json::json!({"key": saved.key, "value": saved.value}),
    )
    .await?;
    Ok((status, Json(row)))
}
