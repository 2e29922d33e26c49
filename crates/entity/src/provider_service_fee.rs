//! `provider_service_fees`: Per-provider overrides of the organization's platform fee; unset fields inherit.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_service_fees")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub fee_percentage_bp: Option<i32>,
    pub fee_fixed_cents: Option<i64>,
    pub fee_min_cents: Option<i64>,
    pub fee_max_cents: Option<i64>,
    #[sea_orm(column_type = "Text")]
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

/// Input for creating a row of `provider_service_fees`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"provider_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "fee_percentage_bp": 800, "reason": "Launch partner"})))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreateProviderServiceFee {
    pub provider_id: Uuid,
    #[validate(range(min = 0, max = 10000))]
    pub fee_percentage_bp: Option<i32>,
    #[validate(range(min = 0))]
    pub fee_fixed_cents: Option<i64>,
    #[validate(range(min = 0))]
    pub fee_min_cents: Option<i64>,
    #[validate(range(min = 0))]
    pub fee_max_cents: Option<i64>,
    #[validate(length(max = 500))]
    pub reason: Option<String>,
}

impl CreateProviderServiceFee {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.provider_id = Set(self.provider_id);
        model.fee_percentage_bp = Set(self.fee_percentage_bp);
        model.fee_fixed_cents = Set(self.fee_fixed_cents);
        model.fee_min_cents = Set(self.fee_min_cents);
        model.fee_max_cents = Set(self.fee_max_cents);
        model.reason = Set(self.reason);
        model
    }
}

/// Partial update of a row of `provider_service_fees`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderServiceFee {
    #[validate(range(min = 0, max = 10000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub fee_percentage_bp: Option<Option<i32>>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub fee_fixed_cents: Option<Option<i64>>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub fee_min_cents: Option<Option<i64>>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub fee_max_cents: Option<Option<i64>>,
    #[validate(length(max = 500))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub reason: Option<Option<String>>,
}

impl UpdateProviderServiceFee {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.fee_percentage_bp {
            model.fee_percentage_bp = Set(value);
        }
        if let Some(value) = self.fee_fixed_cents {
            model.fee_fixed_cents = Set(value);
        }
        if let Some(value) = self.fee_min_cents {
            model.fee_min_cents = Set(value);
        }
        if let Some(value) = self.fee_max_cents {
            model.fee_max_cents = Set(value);
        }
        if let Some(value) = self.reason {
            model.reason = Set(value);
        }
    }
}

fn create_rules(input: &CreateProviderServiceFee) -> Result<(), validator::ValidationError> {
    crate::rules::fee_bounds(input.fee_min_cents, input.fee_max_cents).map_err(Into::into)
}

impl crate::rules::Rules for Model {
    fn check_rules(&self) -> Result<(), crate::rules::RuleViolation> {
        crate::rules::fee_bounds(self.fee_min_cents, self.fee_max_cents)
    }
}
