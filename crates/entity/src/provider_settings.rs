//! `provider_settings`: A provider's business profile and booking rules.

use crate::enums::PaymentMethods;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub provider_id: Uuid,
    pub business_name: String,
    #[sea_orm(column_type = "Text")]
    pub bio: Option<String>,
    pub phone: Option<String>,
    /// IANA zone of the provider's calendar rules; unset: the organization's.
    pub time_zone: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    /// JSON array of payment methods.
    #[sea_orm(column_type = "JsonBinary")]
    pub accepted_payment_methods: PaymentMethods,
    /// Number of approved reviews (maintained by the storage layer).
    pub rating_count: i32,
    /// Sum of approved ratings; average = total / count.
    pub rating_total: i64,
    pub default_duration_minutes: i32,
    /// Default minutes kept free after each appointment.
    pub buffer_minutes: i32,
    /// Granularity of offered start times.
    pub slot_step_minutes: i32,
    /// Earliest booking: now + this.
    pub min_lead_minutes: i32,
    /// Latest booking: today + this many days.
    pub max_horizon_days: i32,
    /// New bookings start confirmed instead of pending.
    pub auto_confirm: bool,
    pub is_accepting_bookings: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `provider_settings`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"business_name": "Ana Hair Studio", "time_zone": "America/Sao_Paulo", "city": "Sao Paulo", "country": "BR", "accepted_payment_methods": ["pix", "card"], "slot_step_minutes": 15, "min_lead_minutes": 60, "max_horizon_days": 60})))]
#[serde(deny_unknown_fields)]
pub struct CreateProviderSettings {
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub business_name: String,
    #[validate(length(max = 2000))]
    pub bio: Option<String>,
    #[validate(length(max = 32))]
    pub phone: Option<String>,
    #[validate(custom(function = "crate::validate::time_zone"))]
    pub time_zone: Option<String>,
    #[validate(length(max = 100))]
    pub city: Option<String>,
    #[validate(length(max = 100))]
    pub state: Option<String>,
    #[validate(custom(function = "crate::validate::country"))]
    pub country: Option<String>,
    #[validate(range(min = -90.0, max = 90.0))]
    pub latitude: Option<f64>,
    #[validate(range(min = -180.0, max = 180.0))]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub accepted_payment_methods: PaymentMethods,
    #[validate(range(min = 1, max = 1440))]
    pub default_duration_minutes: Option<i32>,
    #[validate(range(min = 0, max = 240))]
    pub buffer_minutes: Option<i32>,
    #[validate(range(min = 5, max = 240))]
    pub slot_step_minutes: Option<i32>,
    #[validate(range(min = 0, max = 43200))]
    pub min_lead_minutes: Option<i32>,
    #[validate(range(min = 1, max = 730))]
    pub max_horizon_days: Option<i32>,
    pub auto_confirm: Option<bool>,
    pub is_accepting_bookings: Option<bool>,
}

impl CreateProviderSettings {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.business_name = Set(self.business_name);
        model.bio = Set(self.bio);
        model.phone = Set(self.phone);
        model.time_zone = Set(self.time_zone);
        model.city = Set(self.city);
        model.state = Set(self.state);
        model.country = Set(self.country);
        model.latitude = Set(self.latitude);
        model.longitude = Set(self.longitude);
        model.accepted_payment_methods = Set(self.accepted_payment_methods);
        if let Some(value) = self.default_duration_minutes {
            model.default_duration_minutes = Set(value);
        }
        if let Some(value) = self.buffer_minutes {
            model.buffer_minutes = Set(value);
        }
        if let Some(value) = self.slot_step_minutes {
            model.slot_step_minutes = Set(value);
        }
        if let Some(value) = self.min_lead_minutes {
            model.min_lead_minutes = Set(value);
        }
        if let Some(value) = self.max_horizon_days {
            model.max_horizon_days = Set(value);
        }
        if let Some(value) = self.auto_confirm {
            model.auto_confirm = Set(value);
        }
        if let Some(value) = self.is_accepting_bookings {
            model.is_accepting_bookings = Set(value);
        }
        model.rating_count = Set(0);
        model.rating_total = Set(0);
        model
    }
}

/// Partial update of a row of `provider_settings`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateProviderSettings {
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub business_name: Option<String>,
    #[validate(length(max = 2000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub bio: Option<Option<String>>,
    #[validate(length(max = 32))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub phone: Option<Option<String>>,
    #[validate(custom(function = "crate::validate::time_zone"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub time_zone: Option<Option<String>>,
    #[validate(length(max = 100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub city: Option<Option<String>>,
    #[validate(length(max = 100))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub state: Option<Option<String>>,
    #[validate(custom(function = "crate::validate::country"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub country: Option<Option<String>>,
    #[validate(range(min = -90.0, max = 90.0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub latitude: Option<Option<f64>>,
    #[validate(range(min = -180.0, max = 180.0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub longitude: Option<Option<f64>>,
    pub accepted_payment_methods: Option<PaymentMethods>,
    #[validate(range(min = 1, max = 1440))]
    pub default_duration_minutes: Option<i32>,
    #[validate(range(min = 0, max = 240))]
    pub buffer_minutes: Option<i32>,
    #[validate(range(min = 5, max = 240))]
    pub slot_step_minutes: Option<i32>,
    #[validate(range(min = 0, max = 43200))]
    pub min_lead_minutes: Option<i32>,
    #[validate(range(min = 1, max = 730))]
    pub max_horizon_days: Option<i32>,
    pub auto_confirm: Option<bool>,
    pub is_accepting_bookings: Option<bool>,
}

impl UpdateProviderSettings {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.business_name {
            model.business_name = Set(value);
        }
        if let Some(value) = self.bio {
            model.bio = Set(value);
        }
        if let Some(value) = self.phone {
            model.phone = Set(value);
        }
        if let Some(value) = self.time_zone {
            model.time_zone = Set(value);
        }
        if let Some(value) = self.city {
            model.city = Set(value);
        }
        if let Some(value) = self.state {
            model.state = Set(value);
        }
        if let Some(value) = self.country {
            model.country = Set(value);
        }
        if let Some(value) = self.latitude {
            model.latitude = Set(value);
        }
        if let Some(value) = self.longitude {
            model.longitude = Set(value);
        }
        if let Some(value) = self.accepted_payment_methods {
            model.accepted_payment_methods = Set(value);
        }
        if let Some(value) = self.default_duration_minutes {
            model.default_duration_minutes = Set(value);
        }
        if let Some(value) = self.buffer_minutes {
            model.buffer_minutes = Set(value);
        }
        if let Some(value) = self.slot_step_minutes {
            model.slot_step_minutes = Set(value);
        }
        if let Some(value) = self.min_lead_minutes {
            model.min_lead_minutes = Set(value);
        }
        if let Some(value) = self.max_horizon_days {
            model.max_horizon_days = Set(value);
        }
        if let Some(value) = self.auto_confirm {
            model.auto_confirm = Set(value);
        }
        if let Some(value) = self.is_accepting_bookings {
            model.is_accepting_bookings = Set(value);
        }
    }
}

/// The whole of a provider's settings, for `PUT /providers/me/settings` (a full
/// replacement): every field is required, so nothing is kept or cleared by leaving
/// it out; `null` clears a nullable one. Validated through [`CreateProviderSettings`]
/// (one set of rules), which [`ReplaceProviderSettings::into_create`] returns.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"business_name": "Ana Hair Studio", "bio": null, "phone": null, "time_zone": "America/Sao_Paulo", "city": "Sao Paulo", "state": "SP", "country": "BR", "latitude": null, "longitude": null, "accepted_payment_methods": ["pix", "card"], "default_duration_minutes": 60, "buffer_minutes": 0, "slot_step_minutes": 15, "min_lead_minutes": 60, "max_horizon_days": 60, "auto_confirm": false, "is_accepting_bookings": true})))]
#[serde(deny_unknown_fields)]
pub struct ReplaceProviderSettings {
    /// 1 to 150 characters, not blank.
    pub business_name: String,
    /// At most 2000 characters.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub bio: Option<String>,
    /// At most 32 characters.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub phone: Option<String>,
    /// An IANA zone; `null` reads rules in the organization's zone.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub time_zone: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub city: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub state: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub country: Option<String>,
    /// -90 to 90.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub latitude: Option<f64>,
    /// -180 to 180.
    #[serde(deserialize_with = "Option::deserialize")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub longitude: Option<f64>,
    pub accepted_payment_methods: PaymentMethods,
    /// 1 to 1440.
    pub default_duration_minutes: i32,
    /// 0 to 240.
    pub buffer_minutes: i32,
    /// 5 to 240.
    pub slot_step_minutes: i32,
    /// 0 to 43200.
    pub min_lead_minutes: i32,
    /// 1 to 730.
    pub max_horizon_days: i32,
    pub auto_confirm: bool,
    pub is_accepting_bookings: bool,
}

impl ReplaceProviderSettings {
    /// The same settings as a creation input (every field set), to validate and to
    /// insert.
    pub fn into_create(self) -> CreateProviderSettings {
        CreateProviderSettings {
            business_name: self.business_name,
            bio: self.bio,
            phone: self.phone,
            time_zone: self.time_zone,
            city: self.city,
            state: self.state,
            country: self.country,
            latitude: self.latitude,
            longitude: self.longitude,
            accepted_payment_methods: self.accepted_payment_methods,
            default_duration_minutes: Some(self.default_duration_minutes),
            buffer_minutes: Some(self.buffer_minutes),
            slot_step_minutes: Some(self.slot_step_minutes),
            min_lead_minutes: Some(self.min_lead_minutes),
            max_horizon_days: Some(self.max_horizon_days),
            auto_confirm: Some(self.auto_confirm),
            is_accepting_bookings: Some(self.is_accepting_bookings),
        }
    }
}

impl From<CreateProviderSettings> for UpdateProviderSettings {
    /// Every field of `input` set (a full replacement of an existing row).
    fn from(input: CreateProviderSettings) -> Self {
        UpdateProviderSettings {
            business_name: Some(input.business_name),
            bio: Some(input.bio),
            phone: Some(input.phone),
            time_zone: Some(input.time_zone),
            city: Some(input.city),
            state: Some(input.state),
            country: Some(input.country),
            latitude: Some(input.latitude),
            longitude: Some(input.longitude),
            accepted_payment_methods: Some(input.accepted_payment_methods),
            default_duration_minutes: input.default_duration_minutes,
            buffer_minutes: input.buffer_minutes,
            slot_step_minutes: input.slot_step_minutes,
            min_lead_minutes: input.min_lead_minutes,
            max_horizon_days: input.max_horizon_days,
            auto_confirm: input.auto_confirm,
            is_accepting_bookings: input.is_accepting_bookings,
        }
    }
}
