//! `provider_payment_preferences`: Where a provider receives payouts.

use crate::enums::PayoutMethod;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_payment_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub payout_method: PayoutMethod,
    pub pix_key: Option<String>,
    pub bank_code: Option<String>,
    pub bank_branch: Option<String>,
    pub bank_account: Option<String>,
    pub account_holder_name: Option<String>,
    pub account_holder_tax_id: Option<String>,
    pub minimum_payout_cents: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

/// Input for creating a row of `provider_payment_preferences`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreateProviderPaymentPreference {
    pub payout_method: PayoutMethod,
    #[validate(length(max = 140))]
    pub pix_key: Option<String>,
    #[validate(length(max = 10))]
    pub bank_code: Option<String>,
    #[validate(length(max = 10))]
    pub bank_branch: Option<String>,
    #[validate(length(max = 20))]
    pub bank_account: Option<String>,
    #[validate(length(max = 150))]
    pub account_holder_name: Option<String>,
    #[validate(custom(function = "crate::validate::tax_id"))]
    pub account_holder_tax_id: Option<String>,
    #[validate(range(min = 0))]
    pub minimum_payout_cents: Option<i64>,
}

impl CreateProviderPaymentPreference {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.payout_method = Set(self.payout_method);
        model.pix_key = Set(self.pix_key);
        model.bank_code = Set(self.bank_code);
        model.bank_branch = Set(self.bank_branch);
        model.bank_account = Set(self.bank_account);
        model.account_holder_name = Set(self.account_holder_name);
        model.account_holder_tax_id = Set(self.account_holder_tax_id);
        if let Some(value) = self.minimum_payout_cents {
            model.minimum_payout_cents = Set(value);
        }
        model
    }
}

/// Partial update of a row of `provider_payment_preferences`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderPaymentPreference {
    pub payout_method: Option<PayoutMethod>,
    #[validate(length(max = 140))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub pix_key: Option<Option<String>>,
    #[validate(length(max = 10))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub bank_code: Option<Option<String>>,
    #[validate(length(max = 10))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub bank_branch: Option<Option<String>>,
    #[validate(length(max = 20))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub bank_account: Option<Option<String>>,
    #[validate(length(max = 150))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub account_holder_name: Option<Option<String>>,
    #[validate(custom(function = "crate::validate::tax_id"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub account_holder_tax_id: Option<Option<String>>,
    #[validate(range(min = 0))]
    pub minimum_payout_cents: Option<i64>,
}

impl UpdateProviderPaymentPreference {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.payout_method {
            model.payout_method = Set(value);
        }
        if let Some(value) = self.pix_key {
            model.pix_key = Set(value);
        }
        if let Some(value) = self.bank_code {
            model.bank_code = Set(value);
        }
        if let Some(value) = self.bank_branch {
            model.bank_branch = Set(value);
        }
        if let Some(value) = self.bank_account {
            model.bank_account = Set(value);
        }
        if let Some(value) = self.account_holder_name {
            model.account_holder_name = Set(value);
        }
        if let Some(value) = self.account_holder_tax_id {
            model.account_holder_tax_id = Set(value);
        }
        if let Some(value) = self.minimum_payout_cents {
            model.minimum_payout_cents = Set(value);
        }
    }
}

fn create_rules(input: &CreateProviderPaymentPreference) -> Result<(), validator::ValidationError> {
    crate::rules::payout_details(
        input.payout_method,
        input.pix_key.as_deref(),
        input.bank_code.as_deref(),
        input.bank_branch.as_deref(),
        input.bank_account.as_deref(),
    )
    .map_err(Into::into)
}

impl crate::rules::Rules for Model {
    fn check_rules(&self) -> Result<(), crate::rules::RuleViolation> {
        crate::rules::payout_details(
            self.payout_method,
            self.pix_key.as_deref(),
            self.bank_code.as_deref(),
            self.bank_branch.as_deref(),
            self.bank_account.as_deref(),
        )
    }
}
