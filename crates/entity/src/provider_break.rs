//! `provider_breaks`: Breaks (lunch, …): weekly at local times, or one-off between two instants.

use crate::enums::RecurrenceKind;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_breaks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    /// `weekly` (local times on a weekday) or `one_off` (two instants).
    pub kind: RecurrenceKind,
    /// ISO weekday, 1 = Monday … 7 = Sunday (weekly only).
    pub weekday: Option<i32>,
    /// Local start time in the provider's time zone (weekly only).
    pub start_time: Option<Time>,
    /// Local end time, after the start (weekly only).
    pub end_time: Option<Time>,
    /// First local date a weekly rule applies (inclusive).
    pub starts_on: Option<Date>,
    /// Last local date a weekly rule applies (inclusive).
    pub ends_on: Option<Date>,
    /// Start instant (one-off only).
    pub start_at: Option<DateTimeUtc>,
    /// End instant, after the start (one-off only).
    pub end_at: Option<DateTimeUtc>,
    pub label: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

/// Time inside working hours when the provider takes no bookings (lunch, ...).
/// `weekly`: on ISO `weekday` from `start_time` to `end_time` (local `HH:MM` in the
/// provider's zone), optionally only between `starts_on` and `ends_on` (local dates,
/// inclusive). `one_off`: from the instant `start_at` to `end_at`. A slot that
/// overlaps a break is not offered.
///
/// The provider is the signed-in provider (never taken from the body).
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"kind": "weekly", "weekday": 1, "start_time": "12:00", "end_time": "13:00", "label": "Lunch"})))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreateProviderBreak {
    pub kind: RecurrenceKind,
    #[validate(range(min = 1, max = 7))]
    pub weekday: Option<i32>,
    #[serde(default, with = "crate::local_time::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub start_time: Option<Time>,
    #[serde(default, with = "crate::local_time::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub end_time: Option<Time>,
    pub starts_on: Option<crate::edge::CalendarDate>,
    pub ends_on: Option<crate::edge::CalendarDate>,
    pub start_at: Option<crate::edge::Timestamp>,
    pub end_at: Option<crate::edge::Timestamp>,
    #[validate(length(max = 100))]
    pub label: Option<String>,
}

impl CreateProviderBreak {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.kind = Set(self.kind);
        model.weekday = Set(self.weekday);
        model.start_time = Set(self.start_time);
        model.end_time = Set(self.end_time);
        model.starts_on = Set(self.starts_on.map(Into::into));
        model.ends_on = Set(self.ends_on.map(Into::into));
        model.start_at = Set(self.start_at.map(Into::into));
        model.end_at = Set(self.end_at.map(Into::into));
        model.label = Set(self.label);
        model
    }
}

/// Partial update of a row of `provider_breaks`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderBreak {
    #[validate(range(min = 1, max = 7))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub weekday: Option<Option<i32>>,
    #[serde(default, deserialize_with = "crate::local_time::option::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub start_time: Option<Option<Time>>,
    #[serde(default, deserialize_with = "crate::local_time::option::present")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "09:00"))]
    pub end_time: Option<Option<Time>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub starts_on: Option<Option<crate::edge::CalendarDate>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub ends_on: Option<Option<crate::edge::CalendarDate>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub start_at: Option<Option<crate::edge::Timestamp>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub end_at: Option<Option<crate::edge::Timestamp>>,
    #[validate(length(max = 100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub label: Option<Option<String>>,
}

impl UpdateProviderBreak {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.weekday {
            model.weekday = Set(value);
        }
        if let Some(value) = self.start_time {
            model.start_time = Set(value);
        }
        if let Some(value) = self.end_time {
            model.end_time = Set(value);
        }
        if let Some(value) = self.starts_on {
            model.starts_on = Set(value.map(Into::into));
        }
        if let Some(value) = self.ends_on {
            model.ends_on = Set(value.map(Into::into));
        }
        if let Some(value) = self.start_at {
            model.start_at = Set(value.map(Into::into));
        }
        if let Some(value) = self.end_at {
            model.end_at = Set(value.map(Into::into));
        }
        if let Some(value) = self.label {
            model.label = Set(value);
        }
    }
}

crate::recurrence_rules!(CreateProviderBreak);
