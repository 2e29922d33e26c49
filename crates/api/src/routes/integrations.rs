//! An organization's integrations (payment processors and the like): whether each is
//! enabled, its non-secret settings, and its secret, which is **write-only**.
//!
//! Who may do what: every route is for admins (others get 403); the tenant is the
//! signed-in admin's organization, and another organization's integration is 404.
//!
//! | route | client | provider | support | admin |
//! |---|---|---|---|---|
//! | `GET /admin/integrations`, `GET /admin/integrations/{integration}` | no | no | no | yes |
//! | `PUT /admin/integrations/{integration}` | no | no | no | yes |
//! | `DELETE /admin/integrations/{integration}` | no | no | no | yes |
//!
//! **Secrets.** `PUT` takes either `secret` (the secret itself: it is encrypted at
//! rest with the server's `SECRETS_KEY` and never returned or logged) or
//! `secret_ref` (`env:NAME`: the secret stays in the server's environment). Views
//! show only whether there is one, its source, the reference, the id of the key that
//! sealed it and a hint (`****abcd`, the last four characters of a secret of 16 or
//! more). Without `SECRETS_KEY` a `secret` is refused (`422` on `secret`), never
//! stored in clear; see docs/accounts.md.
//!
//! `PUT` creates the integration (201) or changes it (200): fields left out keep their
//! value (a new integration starts disabled, with `config: {}` and no secret);
//! `null` removes the secret. Every change is written to the audit log
//! (`integration.put`, `integration.delete`), saying what happened to the secret,
//! never what it is.

use agenda_entity::enums::UserRole;
use agenda_entity::integration_setting;
use agenda_storage::repo::integrations::{
    IntegrationChange, IntegrationRepo, SecretChange, SecretSource,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;
use validator::{Validate, ValidationError};

use crate::accounts;
use crate::app::AppState;
use crate::auth::Auth;
use crate::error::{ApiError, ErrorResponse};
use crate::extract::{ValidJson, ValidPath};
use crate::uow::UnitOfWork;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, put, delete))
}

/// Where an integration's secret comes from.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretSourceView {
    /// The server's environment variable named by `secret_ref`.
    Env,
    /// Sent by an admin, stored encrypted with the server's key.
    Encrypted,
}

/// An integration as the API shows it: never the secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    pub id: Uuid,
    /// The integration key, e.g. `stripe` (the `{processor}` of its webhook URL).
    pub integration: String,
    pub is_enabled: bool,
    /// Non-secret settings.
    #[schema(value_type = Object)]
    pub config: Value,
    pub has_secret: bool,
    pub secret_source: Option<SecretSourceView>,
    /// The reference, when the secret is in the server's environment (`env:NAME`).
    pub secret_ref: Option<String>,
    /// `****` and the secret's last four characters (only for secrets of 16 or more
    /// characters sent over the API).
    pub secret_hint: Option<String>,
    /// The id of the key that encrypted the secret (for key rotation).
    pub secret_key_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<integration_setting::Model> for IntegrationView {
    fn from(m: integration_setting::Model) -> Self {
        let source = SecretSource::of(&m).map(|s| match s {
            SecretSource::Environment => SecretSourceView::Env,
            SecretSource::Sealed => SecretSourceView::Encrypted,
        });
        IntegrationView {
            id: m.id,
            integration: m.integration,
            is_enabled: m.is_enabled,
            config: m.config,
            has_secret: source.is_some(),
            secret_source: source,
            secret_ref: m.secret_ref,
            secret_hint: m.secret_hint.map(|h| format!("****{h}")),
            secret_key_id: m.secret_key_id,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// The organization's integrations.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationList {
    pub items: Vec<IntegrationView>,
}

/// Creates or changes an integration. Fields left out keep their value.
#[derive(Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"is_enabled": true, "config": {"account": "acct_123"}, "secret": "whsec_5f2b8c1d9e0a4b7c"}))]
pub struct PutIntegration {
    pub is_enabled: Option<bool>,
    /// Non-secret settings (a JSON object); they are shown back as they are.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    /// The secret itself, 1 to 4096 characters, **write-only**: encrypted at rest,
    /// never returned. `null` removes the secret. Not together with `secret_ref`.
    #[validate(length(min = 1, max = 4096))]
    #[serde(default, deserialize_with = "agenda_entity::patch::present")]
    #[schema(max_length = 4096, min_length = 1)]
    pub secret: Option<Option<String>>,
    /// A reference to the server's environment instead, `env:NAME` (upper-case
    /// letters, digits, `_`). `null` removes the secret. Not together with `secret`.
    #[validate(custom(function = "agenda_entity::validate::secret_ref"))]
    #[serde(default, deserialize_with = "agenda_entity::patch::present")]
    pub secret_ref: Option<Option<String>>,
}

/// The secret must never reach a log line, not even through `{:?}` of the input.
impl std::fmt::Debug for PutIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutIntegration")
            .field("is_enabled", &self.is_enabled)
            .field("config", &self.config)
            .field(
                "secret",
                &self.secret.as_ref().map(|s| s.as_ref().map(|_| "***")),
            )
            .field("secret_ref", &self.secret_ref)
            .finish()
    }
}

impl PutIntegration {
    /// What the write does to the secret, and how the audit entry says it.
    fn secret_change(&mut self) -> Result<(SecretChange, &'static str), ApiError> {
        match (self.secret.take(), self.secret_ref.take()) {
            (Some(Some(_)), Some(Some(_))) => Err(ApiError::invalid_field(
                "secret",
                "one_source",
                "send either secret or secret_ref, not both",
            )),
            (Some(Some(secret)), _) => Ok((SecretChange::Store(secret), "stored encrypted")),
            (_, Some(Some(reference))) => Ok((SecretChange::Reference(reference), "referenced")),
            (Some(None), _) | (_, Some(None)) => Ok((SecretChange::Clear, "removed")),
            (None, None) => Ok((SecretChange::Keep, "kept")),
        }
    }
}

/// The `{integration}` of the path: a key such as `stripe` (422 otherwise).
fn integration_key(raw: String) -> Result<String, ApiError> {
    agenda_entity::validate::key(&raw)
        .map(|()| raw)
        .map_err(|e: ValidationError| {
            ApiError::invalid_field(
                "integration",
                "key",
                e.message
                    .map_or_else(|| "is not a key".into(), |m| m.to_string()),
            )
        })
}

fn not_found() -> ApiError {
    ApiError::not_found("integration")
}

/// The organization's integrations, by key (admin).
#[utoipa::path(get, operation_id = "listIntegrations", path = "/admin/integrations", tag = "integrations", security(("bearer" = [])),
    responses(
        (status = 200, description = "Every integration of the organization", body = IntegrationList),
        (status = 403, description = "Admins only", body = ErrorResponse),
    ))]
async fn list(uow: UnitOfWork, auth: Auth) -> Result<Json<IntegrationList>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let rows = IntegrationRepo::list(uow.read().await?, auth.scope).await?;
    Ok(Json(IntegrationList {
        items: rows.into_iter().map(Into::into).collect(),
    }))
}

/// One integration (admin); never its secret.
#[utoipa::path(get, operation_id = "getIntegration", path = "/admin/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("integration" = String, Path, description = "The integration key, e.g. `stripe`", pattern = "^[a-z0-9_.-]{2,100}$")),
    responses(
        (status = 200, description = "The integration", body = IntegrationView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not configured", body = ErrorResponse),
    ))]
async fn show(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(integration): ValidPath<String>,
) -> Result<Json<IntegrationView>, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let integration = integration_key(integration)?;
    let found = IntegrationRepo::find(uow.read().await?, auth.scope, &integration)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(found.into()))
}

/// Creates (201) or changes (200) an integration (admin). A `secret` is encrypted
/// with the server's key and never shown again.
#[utoipa::path(put, operation_id = "putIntegration", path = "/admin/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("integration" = String, Path, description = "The integration key, e.g. `stripe`", pattern = "^[a-z0-9_.-]{2,100}$")),
    request_body = PutIntegration,
    responses(
        (status = 200, description = "Changed", body = IntegrationView),
        (status = 201, description = "Created", body = IntegrationView),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 409, description = "Created concurrently; retry", body = ErrorResponse),
        (status = 422, description = "Invalid fields, both `secret` and `secret_ref`, or a `secret` this server cannot encrypt (no `SECRETS_KEY`)", body = ErrorResponse),
    ))]
async fn put(
    State(state): State<AppState>,
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(integration): ValidPath<String>,
    ValidJson(mut input): ValidJson<PutIntegration>,
) -> Result<(StatusCode, Json<IntegrationView>), ApiError> {
    auth.require(&[UserRole::Admin])?;
    let integration = integration_key(integration)?;
    let (secret, what) = input.secret_change()?;
    let change = IntegrationChange {
        is_enabled: input.is_enabled,
        config: input.config.map(Value::Object),
        secret,
    };
    let tx = uow.tx().await?;
    let (saved, created) = IntegrationRepo::put(
        tx,
        auth.scope,
        &state.settings.secrets,
        &integration,
        change,
    )
    .await?;
    accounts::audit(
        tx,
        auth.scope,
        Some(auth.user.id),
        "integration.put",
        "integrations_settings",
        saved.id,
        json!({
            "integration": saved.integration,
            "created": created,
            "is_enabled": saved.is_enabled,
            "secret": what,
            "secret_source": SecretSource::of(&saved).map(SecretSource::as_str),
        }),
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(saved.into())))
}

/// Removes an integration and its secret (admin).
#[utoipa::path(delete, operation_id = "deleteIntegration", path = "/admin/integrations/{integration}", tag = "integrations", security(("bearer" = [])),
    params(("integration" = String, Path, description = "The integration key, e.g. `stripe`", pattern = "^[a-z0-9_.-]{2,100}$")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Admins only", body = ErrorResponse),
        (status = 404, description = "Not configured", body = ErrorResponse),
    ))]
async fn delete(
    uow: UnitOfWork,
    auth: Auth,
    ValidPath(integration): ValidPath<String>,
) -> Result<StatusCode, ApiError> {
    auth.require(&[UserRole::Admin])?;
    let integration = integration_key(integration)?;
    let tx = uow.tx().await?;
    let found = IntegrationRepo::find(tx, auth.scope, &integration)
        .await?
        .ok_or_else(not_found)?;
    IntegrationRepo::delete(tx, auth.scope, &integration).await?;
    accounts::audit(
        tx,
        auth.scope,
        Some(auth.user.id),
        "integration.delete",
        "integrations_settings",
        found.id,
        json!({"integration": integration}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
