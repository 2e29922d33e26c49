//! Rules that involve several fields of one row (time order, "exactly one of",
//! per-kind required fields). They are pure functions over field values, used twice:
//! by the create inputs (`#[validate(schema(...))]`, so the API answers 422 before
//! touching the database) and by [`Rules::check_rules`] on a row after a partial
//! update has been merged into it. The database has matching CHECK constraints as
//! the last line of defence.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveTime};
use sea_orm::prelude::DateTimeUtc;
use validator::ValidationError;

use crate::enums::{AvailabilityKind, DiscountType, PayoutMethod, PromotionScope, RecurrenceKind};

/// A broken rule, naming the field to point the user at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    pub field: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

const fn violation(
    field: &'static str,
    code: &'static str,
    message: &'static str,
) -> RuleViolation {
    RuleViolation {
        field,
        code,
        message,
    }
}

impl From<RuleViolation> for ValidationError {
    /// The field travels as the `field` parameter: `validator` files struct-level
    /// errors under `__all__`, and the API reads the parameter back.
    fn from(v: RuleViolation) -> Self {
        let mut err = ValidationError::new(v.code).with_message(Cow::Borrowed(v.message));
        err.add_param(Cow::Borrowed("field"), &v.field);
        err
    }
}

impl std::fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

/// Row-level rules of an entity, checked on the merged row after a partial update.
pub trait Rules {
    fn check_rules(&self) -> Result<(), RuleViolation> {
        Ok(())
    }
}

/// A weekly window or a date override.
pub fn availability(
    kind: AvailabilityKind,
    weekday: Option<i32>,
    date: Option<NaiveDate>,
    start: Option<NaiveTime>,
    end: Option<NaiveTime>,
    is_available: bool,
) -> Result<(), RuleViolation> {
    match kind {
        AvailabilityKind::Weekly => {
            if weekday.is_none() {
                return Err(violation(
                    "weekday",
                    "required",
                    "is required for a weekly window",
                ));
            }
            if date.is_some() {
                return Err(violation(
                    "date",
                    "not_allowed",
                    "is only for date overrides",
                ));
            }
            if start.is_none() || end.is_none() {
                return Err(violation(
                    "start_time",
                    "required",
                    "and end_time are required for a weekly window",
                ));
            }
            if !is_available {
                return Err(violation(
                    "is_available",
                    "not_allowed",
                    "can be false only on a date override",
                ));
            }
        }
        AvailabilityKind::DateOverride => {
            if date.is_none() {
                return Err(violation(
                    "date",
                    "required",
                    "is required for a date override",
                ));
            }
            if weekday.is_some() {
                return Err(violation(
                    "weekday",
                    "not_allowed",
                    "is only for weekly windows",
                ));
            }
            if is_available && (start.is_none() || end.is_none()) {
                return Err(violation(
                    "start_time",
                    "required",
                    "and end_time are required for special hours (or set is_available to false)",
                ));
            }
            if !is_available && (start.is_some() || end.is_some()) {
                // Stored, they would read back as if the day off had hours.
                return Err(violation(
                    "start_time",
                    "not_allowed",
                    "and end_time must be left out (or null) for a day off (is_available false)",
                ));
            }
        }
    }
    if let (Some(s), Some(e)) = (start, end)
        && s == e
    {
        return Err(violation(
            "end_time",
            "time_order",
            "must differ from start_time (an earlier end means the next day)",
        ));
    }
    Ok(())
}

/// Fields of a break or blocked slot, weekly (local times) or one-off (instants).
pub struct Recurrence {
    pub kind: RecurrenceKind,
    pub weekday: Option<i32>,
    pub start_time: Option<NaiveTime>,
    pub end_time: Option<NaiveTime>,
    pub starts_on: Option<NaiveDate>,
    pub ends_on: Option<NaiveDate>,
    pub start_at: Option<DateTimeUtc>,
    pub end_at: Option<DateTimeUtc>,
}

/// For entities shaped as a [`Recurrence`] (breaks, blocked slots): the create input's
/// `create_rules` (for `#[validate(schema(...))]`) and `Rules` on the row.
#[macro_export]
macro_rules! recurrence_rules {
    ($create:ty) => {
        fn create_rules(input: &$create) -> Result<(), validator::ValidationError> {
            $crate::rules::recurrence(&$crate::recurrence_fields!(input)).map_err(Into::into)
        }

        impl $crate::rules::Rules for Model {
            fn check_rules(&self) -> Result<(), $crate::rules::RuleViolation> {
                $crate::rules::recurrence(&$crate::recurrence_fields!(self))
            }
        }
    };
}

/// The [`Recurrence`] of a value that has its fields.
#[doc(hidden)]
#[macro_export]
macro_rules! recurrence_fields {
    ($v:expr) => {
        $crate::rules::Recurrence {
            kind: $v.kind,
            weekday: $v.weekday,
            start_time: $v.start_time,
            end_time: $v.end_time,
            starts_on: $v.starts_on.map(Into::into),
            ends_on: $v.ends_on.map(Into::into),
            start_at: $v.start_at.map(Into::into),
            end_at: $v.end_at.map(Into::into),
        }
    };
}

pub fn recurrence(r: &Recurrence) -> Result<(), RuleViolation> {
    match r.kind {
        RecurrenceKind::Weekly => {
            if r.weekday.is_none() {
                return Err(violation(
                    "weekday",
                    "required",
                    "is required for a weekly rule",
                ));
            }
            let (Some(start), Some(end)) = (r.start_time, r.end_time) else {
                return Err(violation(
                    "start_time",
                    "required",
                    "and end_time are required for a weekly rule",
                ));
            };
            if end <= start {
                return Err(violation(
                    "end_time",
                    "time_order",
                    "must be after start_time",
                ));
            }
            if r.start_at.is_some() || r.end_at.is_some() {
                return Err(violation(
                    "start_at",
                    "not_allowed",
                    "and end_at are only for one-off entries",
                ));
            }
        }
        RecurrenceKind::OneOff => {
            let (Some(start), Some(end)) = (r.start_at, r.end_at) else {
                return Err(violation(
                    "start_at",
                    "required",
                    "and end_at are required for a one-off entry",
                ));
            };
            if end <= start {
                return Err(violation("end_at", "time_order", "must be after start_at"));
            }
            if r.weekday.is_some() || r.start_time.is_some() || r.end_time.is_some() {
                return Err(violation(
                    "weekday",
                    "not_allowed",
                    "and local times are only for weekly rules",
                ));
            }
            if r.starts_on.is_some() || r.ends_on.is_some() {
                // A one-off entry has its own instants; a date range would be ignored.
                return Err(violation(
                    "starts_on",
                    "not_allowed",
                    "and ends_on are only for weekly rules",
                ));
            }
        }
    }
    if let (Some(from), Some(until)) = (r.starts_on, r.ends_on)
        && until < from
    {
        return Err(violation(
            "ends_on",
            "date_order",
            "must not be before starts_on",
        ));
    }
    Ok(())
}

/// Fields of a promotion that relate to each other.
pub struct PromotionTerms {
    pub discount_type: DiscountType,
    pub discount_value: i64,
    pub scope: PromotionScope,
    pub service: bool,
    pub provider: bool,
    pub category: bool,
    pub niche: bool,
    pub valid_from: DateTimeUtc,
    pub valid_until: Option<DateTimeUtc>,
}

pub fn promotion(p: &PromotionTerms) -> Result<(), RuleViolation> {
    if p.discount_type == DiscountType::Percentage && !(1..=10_000).contains(&p.discount_value) {
        return Err(violation(
            "discount_value",
            "range",
            "must be 1 to 10000 basis points for a percentage (10000 = 100%)",
        ));
    }
    if p.discount_value < 1 {
        return Err(violation("discount_value", "range", "must be positive"));
    }
    if p.valid_until.is_some_and(|until| until <= p.valid_from) {
        return Err(violation(
            "valid_until",
            "time_order",
            "must be after valid_from",
        ));
    }
    let targets = [p.service, p.provider, p.category, p.niche];
    let expected = match p.scope {
        PromotionScope::All => [false, false, false, false],
        PromotionScope::Service => [true, false, false, false],
        PromotionScope::Provider => [false, true, false, false],
        PromotionScope::Category => [false, false, true, false],
        PromotionScope::Niche => [false, false, false, true],
    };
    if targets != expected {
        return Err(violation(
            "scope",
            "scope_target",
            "needs exactly the matching target: service_id, provider_id, category_id or niche_id (none for all)",
        ));
    }
    Ok(())
}

/// A fee floor and ceiling.
pub fn fee_bounds(min: Option<i64>, max: Option<i64>) -> Result<(), RuleViolation> {
    match (min, max) {
        (Some(min), Some(max)) if max < min => Err(violation(
            "fee_max_cents",
            "range",
            "must not be below fee_min_cents",
        )),
        _ => Ok(()),
    }
}

/// The details a payout method needs.
pub fn payout_details(
    method: PayoutMethod,
    pix_key: Option<&str>,
    bank_code: Option<&str>,
    bank_branch: Option<&str>,
    bank_account: Option<&str>,
) -> Result<(), RuleViolation> {
    match method {
        PayoutMethod::Pix if pix_key.is_none() => Err(violation(
            "pix_key",
            "required",
            "is required for pix payouts",
        )),
        PayoutMethod::BankTransfer
            if bank_code.is_none() || bank_branch.is_none() || bank_account.is_none() =>
        {
            Err(violation(
                "bank_account",
                "required",
                "bank_code, bank_branch and bank_account are required for bank transfers",
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(h, m, 0)
    }

    #[test]
    fn availability_rules() {
        use AvailabilityKind::*;
        assert!(availability(Weekly, Some(1), None, t(9, 0), t(18, 0), true).is_ok());
        assert!(
            availability(Weekly, Some(5), None, t(22, 0), t(2, 0), true).is_ok(),
            "overnight"
        );
        assert_eq!(
            availability(Weekly, None, None, t(9, 0), t(18, 0), true)
                .unwrap_err()
                .field,
            "weekday"
        );
        assert_eq!(
            availability(Weekly, Some(1), None, t(9, 0), t(9, 0), true)
                .unwrap_err()
                .field,
            "end_time"
        );
        let day = NaiveDate::from_ymd_opt(2026, 12, 24);
        assert!(
            availability(DateOverride, None, day, None, None, false).is_ok(),
            "day off"
        );
        assert!(
            availability(DateOverride, None, day, t(9, 0), t(12, 0), true).is_ok(),
            "special hours"
        );
        assert_eq!(
            availability(DateOverride, None, day, None, None, true)
                .unwrap_err()
                .field,
            "start_time"
        );
        let day_off_with_hours =
            availability(DateOverride, None, day, t(9, 0), t(12, 0), false).unwrap_err();
        assert_eq!(
            (day_off_with_hours.field, day_off_with_hours.code),
            ("start_time", "not_allowed"),
            "a day off has no hours"
        );
    }

    #[test]
    fn recurrence_rules() {
        let weekly = Recurrence {
            kind: RecurrenceKind::Weekly,
            weekday: Some(3),
            start_time: t(12, 0),
            end_time: t(13, 0),
            starts_on: None,
            ends_on: None,
            start_at: None,
            end_at: None,
        };
        assert!(recurrence(&weekly).is_ok());
        assert_eq!(
            recurrence(&Recurrence {
                end_time: t(11, 0),
                ..weekly
            })
            .unwrap_err()
            .code,
            "time_order"
        );
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap();
        let one_off = Recurrence {
            kind: RecurrenceKind::OneOff,
            weekday: None,
            start_time: None,
            end_time: None,
            starts_on: None,
            ends_on: None,
            start_at: Some(at),
            end_at: Some(at + chrono::Duration::hours(1)),
        };
        assert!(recurrence(&one_off).is_ok());
        assert_eq!(
            recurrence(&Recurrence {
                end_at: Some(at),
                ..one_off
            })
            .unwrap_err()
            .field,
            "end_at"
        );
        let with_dates = recurrence(&Recurrence {
            starts_on: NaiveDate::from_ymd_opt(2026, 12, 1),
            ..one_off
        })
        .unwrap_err();
        assert_eq!(
            (with_dates.field, with_dates.code),
            ("starts_on", "not_allowed"),
            "a one-off break has no date range"
        );
    }

    #[test]
    fn promotion_rules() {
        let now = chrono::Utc::now();
        let terms = PromotionTerms {
            discount_type: DiscountType::Percentage,
            discount_value: 1000,
            scope: PromotionScope::All,
            service: false,
            provider: false,
            category: false,
            niche: false,
            valid_from: now,
            valid_until: None,
        };
        assert!(promotion(&terms).is_ok());
        assert_eq!(
            promotion(&PromotionTerms {
                discount_value: 10_001,
                ..terms
            })
            .unwrap_err()
            .field,
            "discount_value"
        );
        assert_eq!(
            promotion(&PromotionTerms {
                scope: PromotionScope::Niche,
                ..terms
            })
            .unwrap_err()
            .field,
            "scope"
        );
        assert_eq!(
            promotion(&PromotionTerms {
                valid_until: Some(now),
                ..terms
            })
            .unwrap_err()
            .field,
            "valid_until"
        );
        assert!(fee_bounds(Some(200), Some(100)).is_err() && fee_bounds(Some(100), None).is_ok());
        assert!(payout_details(PayoutMethod::Pix, None, None, None, None).is_err());
    }
}
