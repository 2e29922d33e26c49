//! `user_payment_methods`: Tokenised payment-method references from a payment processor (no card data).

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_payment_methods")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    pub processor: String,
    /// The processor's token; useless without the processor's keys, still never returned by the API.
    /// Secret material: never serialised, never logged.
    pub processor_token: String,
    pub brand: Option<String>,
    pub last4: Option<String>,
    pub exp_month: Option<i32>,
    pub exp_year: Option<i32>,
    pub is_default: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `user_payment_methods`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateUserPaymentMethod {
    /// The payment processor, e.g. `stripe` (an integration key).
    #[validate(custom(function = "crate::validate::key"))]
    pub processor: String,
    /// The processor's token for the card or account (`pm_…`); never the card number
    /// itself (a value that looks like one is refused). Never returned.
    #[validate(
        length(min = 1, max = 255),
        custom(function = "crate::validate::processor_token")
    )]
    pub processor_token: String,
    /// The card brand or wallet for display, e.g. `visa`.
    #[validate(length(min = 1, max = 40))]
    pub brand: Option<String>,
    /// The last four digits, for display.
    #[validate(custom(function = "crate::validate::last4"))]
    pub last4: Option<String>,
    #[validate(range(min = 1, max = 12))]
    pub exp_month: Option<i32>,
    #[validate(range(min = 2000, max = 2100))]
    pub exp_year: Option<i32>,
    pub is_default: Option<bool>,
}

impl CreateUserPaymentMethod {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.processor = Set(self.processor);
        model.processor_token = Set(self.processor_token);
        model.brand = Set(self.brand);
        model.last4 = Set(self.last4);
        model.exp_month = Set(self.exp_month);
        model.exp_year = Set(self.exp_year);
        if let Some(value) = self.is_default {
            model.is_default = Set(value);
        }
        model
    }
}

/// Partial update of a row of `user_payment_methods`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateUserPaymentMethod {
    #[validate(length(min = 1, max = 40))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub brand: Option<Option<String>>,
    #[validate(custom(function = "crate::validate::last4"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub last4: Option<Option<String>>,
    #[validate(range(min = 1, max = 12))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub exp_month: Option<Option<i32>>,
    #[validate(range(min = 2000, max = 2100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub exp_year: Option<Option<i32>>,
    pub is_default: Option<bool>,
}

impl UpdateUserPaymentMethod {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.brand {
            model.brand = Set(value);
        }
        if let Some(value) = self.last4 {
            model.last4 = Set(value);
        }
        if let Some(value) = self.exp_month {
            model.exp_month = Set(value);
        }
        if let Some(value) = self.exp_year {
            model.exp_year = Set(value);
        }
        if let Some(value) = self.is_default {
            model.is_default = Set(value);
        }
    }
}
