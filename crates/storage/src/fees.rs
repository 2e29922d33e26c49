//! The organization's money rules, from one place: the platform fee charged on a paid
//! appointment and the payout rules of the ledger.
//!
//! **Where the rules come from.** The organization's `payment_settings` row gives the
//! fee (percentage in basis points, fixed part, minimum, optional maximum) and the
//! payout rules (delay before money becomes available, minimum withdrawal). A
//! provider's `provider_service_fees` row overrides the fee *field by field*: each
//! override field that is not null wins, the others are inherited. When the
//! organization has no `payment_settings` row, the defaults are those of the table's
//! column defaults (see [`FeeRules::DEFAULT`] and [`PayoutRules::DEFAULT`]): a 10 %
//! fee, no fixed part, no minimum, no maximum, a payout delay of 2 days and a minimum
//! withdrawal of 1,000 cents.
//!
//! **How the fee is computed** ([`platform_fee`]), in integer arithmetic only (an
//! `i128` intermediate, so no product can overflow):
//!
//! 1. the percentage part is `amount × bp / 10 000`, **rounded half up on the exact
//!    fraction**: 10 % of 1,005 cents is 100.5 → 101; 10 % of 1,004 is 100.4 → 100;
//! 2. the fixed part is added;
//! 3. the result is raised to the minimum, then lowered to the maximum when there is
//!    one (if an override leaves the minimum above the inherited maximum, the
//!    maximum wins: a fee is never above its cap);
//! 4. the fee is never more than the amount itself and never negative.

use agenda_entity::{payment_settings, provider_service_fee};
use sea_orm::{ColumnTrait, ConnectionTrait, QueryFilter};
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

/// One basis point is 1/10 000.
const BASIS_POINTS: i128 = 10_000;

/// The platform fee rules in force for one provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeeRules {
    /// Percentage of the amount, in basis points (1 000 = 10 %).
    pub percentage_bp: i32,
    /// Added to the percentage part.
    pub fixed_cents: i64,
    /// The smallest fee (still never more than the amount).
    pub min_cents: i64,
    /// The largest fee, if any.
    pub max_cents: Option<i64>,
}

impl FeeRules {
    /// The rules of an organization without `payment_settings`; the same values as the
    /// column defaults of `payment_settings`, so "no row" and "a row with defaults"
    /// charge the same.
    pub const DEFAULT: FeeRules = FeeRules {
        percentage_bp: 1_000,
        fixed_cents: 0,
        min_cents: 0,
        max_cents: None,
    };

    /// The organization's rules (or the defaults when it has no settings row).
    pub fn from_settings(settings: Option<&payment_settings::Model>) -> FeeRules {
        match settings {
            Some(s) => FeeRules {
                percentage_bp: s.fee_percentage_bp,
                fixed_cents: s.fee_fixed_cents,
                min_cents: s.fee_min_cents,
                max_cents: s.fee_max_cents,
            },
            None => FeeRules::DEFAULT,
        }
    }

    /// These rules with the provider's override applied field by field: each
    /// non-null override field wins.
    pub fn overridden_by(self, fee: Option<&provider_service_fee::Model>) -> FeeRules {
        let Some(fee) = fee else { return self };
        FeeRules {
            percentage_bp: fee.fee_percentage_bp.unwrap_or(self.percentage_bp),
            fixed_cents: fee.fee_fixed_cents.unwrap_or(self.fixed_cents),
            min_cents: fee.fee_min_cents.unwrap_or(self.min_cents),
            max_cents: fee.fee_max_cents.or(self.max_cents),
        }
    }
}

impl Default for FeeRules {
    fn default() -> Self {
        FeeRules::DEFAULT
    }
}

/// The payout rules of an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayoutRules {
    /// Days a payment stays pending before it can be withdrawn.
    pub payout_delay_days: i32,
    /// The smallest withdrawal a provider may request.
    pub minimum_withdrawal_cents: i64,
}

impl PayoutRules {
    /// The rules of an organization without `payment_settings` (the column defaults).
    pub const DEFAULT: PayoutRules = PayoutRules {
        payout_delay_days: 2,
        minimum_withdrawal_cents: 1_000,
    };

    pub fn from_settings(settings: Option<&payment_settings::Model>) -> PayoutRules {
        match settings {
            Some(s) => PayoutRules {
                payout_delay_days: s.payout_delay_days,
                minimum_withdrawal_cents: s.minimum_withdrawal_cents,
            },
            None => PayoutRules::DEFAULT,
        }
    }
}

impl Default for PayoutRules {
    fn default() -> Self {
        PayoutRules::DEFAULT
    }
}

/// The platform fee on `amount_cents` under `rules` (see the module documentation for
/// the rule and its rounding). Total: defined for every input, never panics.
///
/// ```
/// use agenda_storage::fees::{FeeRules, platform_fee};
/// let ten_percent = FeeRules { percentage_bp: 1_000, fixed_cents: 0, min_cents: 0, max_cents: None };
/// assert_eq!(platform_fee(1_005, &ten_percent), 101); // 100.5 rounds half up
/// assert_eq!(platform_fee(1_004, &ten_percent), 100); // 100.4 rounds down
/// ```
pub fn platform_fee(amount_cents: i64, rules: &FeeRules) -> i64 {
    if amount_cents <= 0 {
        return 0;
    }
    let amount = i128::from(amount_cents);
    let bp = i128::from(rules.percentage_bp.max(0));
    // Round half up: add half the divisor before the (flooring, both operands
    // non-negative) integer division.
    let percentage = (amount * bp + BASIS_POINTS / 2) / BASIS_POINTS;
    let mut fee = percentage + i128::from(rules.fixed_cents.max(0));
    fee = fee.max(i128::from(rules.min_cents.max(0)));
    if let Some(max) = rules.max_cents {
        fee = fee.min(i128::from(max.max(0)));
    }
    let fee = fee.min(amount).max(0);
    // `fee <= amount_cents`, so it fits.
    i64::try_from(fee).unwrap_or(amount_cents)
}

/// The organization's `payment_settings` row, if it has one.
pub async fn payment_settings(
    db: &impl ConnectionTrait,
    scope: TenantScope,
) -> Result<Option<payment_settings::Model>, StorageError> {
    Ok(payment_settings::Entity::find_in(scope).one(db).await?)
}

/// The fee rules for `provider_id`: the organization's settings (or the defaults)
/// overridden field by field by the provider's `provider_service_fees` row.
pub async fn fee_rules(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    provider_id: Uuid,
) -> Result<FeeRules, StorageError> {
    let settings = payment_settings(db, scope).await?;
    let fee = provider_service_fee::Entity::find_in(scope)
        .filter(provider_service_fee::Column::ProviderId.eq(provider_id))
        .one(db)
        .await?;
    Ok(FeeRules::from_settings(settings.as_ref()).overridden_by(fee.as_ref()))
}

/// The organization's payout rules (or the defaults).
pub async fn payout_rules(
    db: &impl ConnectionTrait,
    scope: TenantScope,
) -> Result<PayoutRules, StorageError> {
    let settings = payment_settings(db, scope).await?;
    Ok(PayoutRules::from_settings(settings.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(bp: i32, fixed: i64, min: i64, max: Option<i64>) -> FeeRules {
        FeeRules {
            percentage_bp: bp,
            fixed_cents: fixed,
            min_cents: min,
            max_cents: max,
        }
    }

    #[test]
    fn fee_table() {
        // (what, amount, rules, expected fee)
        let cases: &[(&str, i64, FeeRules, i64)] = &[
            ("plain 10 %", 10_000, rules(1_000, 0, 0, None), 1_000),
            ("100.5 rounds up", 1_005, rules(1_000, 0, 0, None), 101),
            ("100.4 rounds down", 1_004, rules(1_000, 0, 0, None), 100),
            ("100.6 rounds up", 1_006, rules(1_000, 0, 0, None), 101),
            ("0.5 rounds up", 5, rules(1_000, 0, 0, None), 1),
            ("0.4 rounds down to zero", 4, rules(1_000, 0, 0, None), 0),
            ("1 bp of 5,000 is 0.5", 5_000, rules(1, 0, 0, None), 1),
            (
                "3.33 % of 1,500 is 49.95",
                1_500,
                rules(333, 0, 0, None),
                50,
            ),
            (
                "percentage plus fixed",
                10_000,
                rules(1_000, 250, 0, None),
                1_250,
            ),
            ("fixed only", 10_000, rules(0, 300, 0, None), 300),
            (
                "raised to the minimum",
                500,
                rules(1_000, 0, 100, None),
                100,
            ),
            (
                "lowered to the maximum",
                100_000,
                rules(1_000, 0, 100, Some(5_000)),
                5_000,
            ),
            (
                "fixed counts towards the maximum",
                40_000,
                rules(1_000, 2_000, 0, Some(5_000)),
                5_000,
            ),
            (
                "inside [min, max]",
                20_000,
                rules(1_000, 0, 100, Some(5_000)),
                2_000,
            ),
            (
                "never more than the amount (minimum)",
                50,
                rules(1_000, 0, 100, None),
                50,
            ),
            (
                "never more than the amount (fixed)",
                1_000,
                rules(10_000, 100, 0, None),
                1_000,
            ),
            (
                "max below min: the maximum wins",
                10_000,
                rules(1_000, 0, 600, Some(500)),
                500,
            ),
            ("no fee at all", 10_000, rules(0, 0, 0, None), 0),
            ("zero amount", 0, rules(1_000, 100, 100, None), 0),
            ("negative amount", -500, rules(1_000, 100, 100, None), 0),
            (
                "huge amount does not overflow",
                i64::MAX,
                rules(10_000, i64::MAX, 0, None),
                i64::MAX,
            ),
            (
                "huge amount, 10 %",
                9_000_000_000_000_000_005,
                rules(1_000, 0, 0, None),
                900_000_000_000_000_001,
            ),
            (
                "negative settings are ignored",
                10_000,
                rules(-5, -5, -5, Some(-5)),
                0,
            ),
        ];
        for (what, amount, rules, expected) in cases {
            assert_eq!(platform_fee(*amount, rules), *expected, "{what}");
        }
    }

    #[test]
    fn fee_is_bounded_for_many_inputs() {
        for amount in (0..5_000).chain([99_999, 1_000_001]) {
            for r in [
                rules(1_000, 0, 100, Some(5_000)),
                rules(800, 50, 0, None),
                rules(10_000, 0, 0, None),
                rules(250, 0, 0, Some(10)),
            ] {
                let fee = platform_fee(amount, &r);
                assert!(fee >= 0 && fee <= amount, "{amount} {r:?} -> {fee}");
                if let Some(max) = r.max_cents {
                    assert!(fee <= max);
                }
                // Half up: never further than half a cent from the exact percentage.
                if r.fixed_cents == 0 && r.min_cents == 0 && r.max_cents.is_none() {
                    let exact = amount as f64 * f64::from(r.percentage_bp) / 10_000.0;
                    assert!((fee as f64 - exact).abs() <= 0.5, "{amount} {r:?}");
                }
            }
        }
    }

    fn settings(bp: i32, fixed: i64, min: i64, max: Option<i64>) -> payment_settings::Model {
        let now = chrono::Utc::now();
        payment_settings::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            fee_percentage_bp: bp,
            fee_fixed_cents: fixed,
            fee_min_cents: min,
            fee_max_cents: max,
            payout_schedule: agenda_entity::enums::PayoutSchedule::Weekly,
            payout_delay_days: 3,
            minimum_withdrawal_cents: 2_000,
            created_at: now,
            updated_at: now,
        }
    }

    fn override_of(
        bp: Option<i32>,
        fixed: Option<i64>,
        min: Option<i64>,
        max: Option<i64>,
    ) -> provider_service_fee::Model {
        let now = chrono::Utc::now();
        provider_service_fee::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            provider_id: Uuid::now_v7(),
            fee_percentage_bp: bp,
            fee_fixed_cents: fixed,
            fee_min_cents: min,
            fee_max_cents: max,
            reason: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn overrides_win_field_by_field() {
        let org = settings(1_000, 50, 100, Some(5_000));
        let cases: &[(&str, Option<provider_service_fee::Model>, FeeRules)] = &[
            ("no override", None, rules(1_000, 50, 100, Some(5_000))),
            (
                "all null inherits everything",
                Some(override_of(None, None, None, None)),
                rules(1_000, 50, 100, Some(5_000)),
            ),
            (
                "percentage only",
                Some(override_of(Some(800), None, None, None)),
                rules(800, 50, 100, Some(5_000)),
            ),
            (
                "fixed and max",
                Some(override_of(None, Some(0), None, Some(2_000))),
                rules(1_000, 0, 100, Some(2_000)),
            ),
            (
                "everything",
                Some(override_of(Some(0), Some(10), Some(0), Some(20))),
                rules(0, 10, 0, Some(20)),
            ),
        ];
        for (what, fee, expected) in cases {
            let merged = FeeRules::from_settings(Some(&org)).overridden_by(fee.as_ref());
            assert_eq!(merged, *expected, "{what}");
        }
        // Without organization settings, overrides apply on top of the defaults.
        let merged = FeeRules::from_settings(None).overridden_by(Some(&override_of(
            None,
            Some(25),
            None,
            None,
        )));
        assert_eq!(merged, rules(1_000, 25, 0, None));
    }

    #[test]
    fn defaults_without_settings() {
        assert_eq!(FeeRules::from_settings(None), FeeRules::DEFAULT);
        assert_eq!(PayoutRules::from_settings(None), PayoutRules::DEFAULT);
        assert_eq!(platform_fee(12_345, &FeeRules::default()), 1_235); // 1234.5 -> 1235
        let s = settings(1_000, 0, 0, None);
        assert_eq!(
            PayoutRules::from_settings(Some(&s)),
            PayoutRules {
                payout_delay_days: 3,
                minimum_withdrawal_cents: 2_000
            }
        );
    }
}
