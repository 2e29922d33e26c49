//! `payment_settings`: Per organization: platform fee rules and payout schedule.

use crate::enums::PayoutSchedule;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Platform fee in basis points (1000 = 10%).
    pub fee_percentage_bp: i32,
    /// Fixed platform fee per paid appointment.
    pub fee_fixed_cents: i64,
    pub fee_min_cents: i64,
    pub fee_max_cents: Option<i64>,
    pub payout_schedule: PayoutSchedule,
    pub payout_delay_days: i32,
    pub minimum_withdrawal_cents: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
}

crate::stamped_active_model!();

/// Input for creating a row of `payment_settings`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreatePaymentSettings {
    #[validate(range(min = 0, max = 10000))]
    pub fee_percentage_bp: Option<i32>,
    #[validate(range(min = 0))]
    pub fee_fixed_cents: Option<i64>,
    #[validate(range(min = 0))]
    pub fee_min_cents: Option<i64>,
    #[validate(range(min = 0))]
    pub fee_max_cents: Option<i64>,
    pub payout_schedule: Option<PayoutSchedule>,
    #[validate(range(min = 0, max = 90))]
    pub payout_delay_days: Option<i32>,
    #[validate(range(min = 0))]
    pub minimum_withdrawal_cents: Option<i64>,
}

impl CreatePaymentSettings {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        if let Some(value) = self.fee_percentage_bp {
            model.fee_percentage_bp = Set(value);
        }
        if let Some(value) = self.fee_fixed_cents {
            model.fee_fixed_cents = Set(value);
        }
        if let Some(value) = self.fee_min_cents {
            model.fee_min_cents = Set(value);
        }
        model.fee_max_cents = Set(self.fee_max_cents);
        if let Some(value) = self.payout_schedule {
            model.payout_schedule = Set(value);
        }
        if let Some(value) = self.payout_delay_days {
            model.payout_delay_days = Set(value);
        }
        if let Some(value) = self.minimum_withdrawal_cents {
            model.minimum_withdrawal_cents = Set(value);
        }
        model
    }
}

/// Partial update of a row of `payment_settings`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePaymentSettings {
    #[validate(range(min = 0, max = 10000))]
    pub fee_percentage_bp: Option<i32>,
    #[validate(range(min = 0))]
    pub fee_fixed_cents: Option<i64>,
    #[validate(range(min = 0))]
    pub fee_min_cents: Option<i64>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub fee_max_cents: Option<Option<i64>>,
    pub payout_schedule: Option<PayoutSchedule>,
    #[validate(range(min = 0, max = 90))]
    pub payout_delay_days: Option<i32>,
    #[validate(range(min = 0))]
    pub minimum_withdrawal_cents: Option<i64>,
}

impl UpdatePaymentSettings {
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
        if let Some(value) = self.payout_schedule {
            model.payout_schedule = Set(value);
        }
        if let Some(value) = self.payout_delay_days {
            model.payout_delay_days = Set(value);
        }
        if let Some(value) = self.minimum_withdrawal_cents {
            model.minimum_withdrawal_cents = Set(value);
        }
    }
}

fn create_rules(input: &CreatePaymentSettings) -> Result<(), validator::ValidationError> {
    crate::rules::fee_bounds(input.fee_min_cents, input.fee_max_cents).map_err(Into::into)
}

impl crate::rules::Rules for Model {
    fn check_rules(&self) -> Result<(), crate::rules::RuleViolation> {
        crate::rules::fee_bounds(Some(self.fee_min_cents), self.fee_max_cents)
    }
}
