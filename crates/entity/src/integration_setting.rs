//! `integrations_settings`: per organization, which integrations are enabled and
//! where their secret comes from: a reference to the server's environment
//! (`secret_ref = env:NAME`) or the secret itself, sealed with the server's
//! `SECRETS_KEY` (`secret_ciphertext`, migration 14). Never the secret in clear.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "integrations_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Integration key, e.g. `payments.stripe`.
    pub integration: String,
    pub is_enabled: bool,
    /// Non-secret settings (JSON object).
    #[sea_orm(column_type = "JsonBinary")]
    pub config: Json,
    /// Where the secret lives, e.g. `env:AGENDA_STRIPE_WEBHOOK_SECRET`; never the secret itself.
    pub secret_ref: Option<String>,
    /// The secret sealed with XChaCha20-Poly1305 (base64 of nonce and ciphertext).
    /// Secret material: never serialised, never logged.
    #[sea_orm(column_type = "Text")]
    pub secret_ciphertext: Option<String>,
    /// Which key sealed `secret_ciphertext` (for key rotation).
    pub secret_key_id: Option<String>,
    /// The secret's last four characters, for telling secrets apart in a view.
    pub secret_hint: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `integrations_settings`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateIntegrationSetting {
    #[validate(custom(function = "crate::validate::key"))]
    pub integration: String,
    pub is_enabled: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Json,
    #[validate(custom(function = "crate::validate::secret_ref"))]
    pub secret_ref: Option<String>,
}

impl CreateIntegrationSetting {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.integration = Set(self.integration);
        if let Some(value) = self.is_enabled {
            model.is_enabled = Set(value);
        }
        model.config = Set(self.config);
        model.secret_ref = Set(self.secret_ref);
        model
    }
}

/// Partial update of a row of `integrations_settings`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateIntegrationSetting {
    pub is_enabled: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<Json>,
    #[validate(custom(function = "crate::validate::secret_ref"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub secret_ref: Option<Option<String>>,
}

impl UpdateIntegrationSetting {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.is_enabled {
            model.is_enabled = Set(value);
        }
        if let Some(value) = self.config {
            model.config = Set(value);
        }
        if let Some(value) = self.secret_ref {
            model.secret_ref = Set(value);
        }
    }
}
