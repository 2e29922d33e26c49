//! `client_payment_preferences`: A client's payment preferences.

use crate::enums::PaymentMethod;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_payment_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub client_id: Uuid,
    pub preferred_method: Option<PaymentMethod>,
    pub default_payment_method_id: Option<Uuid>,
    pub save_payment_methods: bool,
    pub send_receipts: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "client_id", to = "id")]
    pub client: BelongsTo<super::user::Entity>,
    #[sea_orm(belongs_to, from = "default_payment_method_id", to = "id")]
    pub default_payment_method: BelongsTo<Option<super::user_payment_method::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `client_payment_preferences`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateClientPaymentPreference {
    pub preferred_method: Option<PaymentMethod>,
    pub default_payment_method_id: Option<Uuid>,
    pub save_payment_methods: Option<bool>,
    pub send_receipts: Option<bool>,
}

impl CreateClientPaymentPreference {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.preferred_method = Set(self.preferred_method);
        model.default_payment_method_id = Set(self.default_payment_method_id);
        if let Some(value) = self.save_payment_methods {
            model.save_payment_methods = Set(value);
        }
        if let Some(value) = self.send_receipts {
            model.send_receipts = Set(value);
        }
        model
    }
}

/// Partial update of a row of `client_payment_preferences`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateClientPaymentPreference {
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub preferred_method: Option<Option<PaymentMethod>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub default_payment_method_id: Option<Option<Uuid>>,
    pub save_payment_methods: Option<bool>,
    pub send_receipts: Option<bool>,
}

impl UpdateClientPaymentPreference {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.preferred_method {
            model.preferred_method = Set(value);
        }
        if let Some(value) = self.default_payment_method_id {
            model.default_payment_method_id = Set(value);
        }
        if let Some(value) = self.save_payment_methods {
            model.save_payment_methods = Set(value);
        }
        if let Some(value) = self.send_receipts {
            model.send_receipts = Set(value);
        }
    }
}
