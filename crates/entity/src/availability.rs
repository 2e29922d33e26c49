//! `availability`: Weekly working windows (weekday, local start/end time, slot step) and date overrides (a date off, or special hours).

use crate::enums::AvailabilityKind;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "availability")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub kind: AvailabilityKind,
    /// ISO weekday, 1 = Monday … 7 = Sunday (weekly only).
    pub weekday: Option<i32>,
    /// The local date an override applies to (overrides only).
    pub date: Option<Date>,
    /// Local start time in the provider's time zone.
    pub start_time: Option<Time>,
    /// Local end time; at or before the start means the window ends the next day.
    pub end_time: Option<Time>,
    /// False on an override: the provider does not work that date.
    pub is_available: bool,
    /// Overrides the provider's slot step for this window.
    pub slot_step_minutes: Option<i32>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

/// When a provider works. `weekly`: on ISO `weekday` (1 = Monday … 7 = Sunday) from
/// `start_time` to `end_time`, local times (`HH:MM`) in the provider's time zone (their
/// settings' `time_zone`, else the organization's); an `end_time` earlier than
/// `start_time` runs past midnight (the window belongs to the date it starts on).
/// `date_override`: one local `date` whose hours (`start_time`/`end_time`) replace
/// the weekly windows of that day, or, with `is_available: false`, a day off (which
/// wins over special hours). Windows of one date that overlap or touch merge. `slot_step_minutes` (5 to 240) sets how far
/// apart slot starts are in this window (default: the provider settings' step, else
/// 15 minutes).
///
/// The provider is the signed-in provider (never taken from the body).
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"kind": "weekly", "weekday": 1, "start_time": "09:00", "end_time": "18:00"})))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreateAvailability {
    pub kind: AvailabilityKind,
    #[validate(range(min = 1, max = 7))]
    pub weekday: Option<i32>,
    pub date: Option<crate::edge::CalendarDate>,
    #[serde(default, with = "crate::local_time::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub start_time: Option<Time>,
    #[serde(default, with = "crate::local_time::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub end_time: Option<Time>,
    pub is_available: Option<bool>,
    #[validate(range(min = 5, max = 240))]
    pub slot_step_minutes: Option<i32>,
}

impl CreateAvailability {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.kind = Set(self.kind);
        model.weekday = Set(self.weekday);
        model.date = Set(self.date.map(Into::into));
        model.start_time = Set(self.start_time);
        model.end_time = Set(self.end_time);
        if let Some(value) = self.is_available {
            model.is_available = Set(value);
        }
        model.slot_step_minutes = Set(self.slot_step_minutes);
        model
    }
}

/// Partial update of a row of `availability`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateAvailability {
    #[validate(range(min = 1, max = 7))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub weekday: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub date: Option<Option<crate::edge::CalendarDate>>,
    #[serde(default, deserialize_with = "crate::local_time::option::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub start_time: Option<Option<Time>>,
    #[serde(default, deserialize_with = "crate::local_time::option::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub end_time: Option<Option<Time>>,
    pub is_available: Option<bool>,
    #[validate(range(min = 5, max = 240))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub slot_step_minutes: Option<Option<i32>>,
}

impl UpdateAvailability {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.weekday {
            model.weekday = Set(value);
        }
        if let Some(value) = self.date {
            model.date = Set(value.map(Into::into));
        }
        if let Some(value) = self.start_time {
            model.start_time = Set(value);
        }
        if let Some(value) = self.end_time {
            model.end_time = Set(value);
        }
        if let Some(value) = self.is_available {
            model.is_available = Set(value);
        }
        if let Some(value) = self.slot_step_minutes {
            model.slot_step_minutes = Set(value);
        }
    }
}

fn create_rules(input: &CreateAvailability) -> Result<(), validator::ValidationError> {
    crate::rules::availability(
        input.kind,
        input.weekday,
        input.date.map(Into::into),
        input.start_time,
        input.end_time,
        input.is_available.unwrap_or(true),
    )
    .map_err(Into::into)
}

impl crate::rules::Rules for Model {
    fn check_rules(&self) -> Result<(), crate::rules::RuleViolation> {
        crate::rules::availability(
            self.kind,
            self.weekday,
            self.date,
            self.start_time,
            self.end_time,
            self.is_available,
        )
    }
}
