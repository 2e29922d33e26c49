//! `promotions`: Discounts: a percentage (basis points) or a fixed amount, scoped and time-boxed, optionally behind a coupon code.

use crate::enums::{DiscountType, PromotionScope};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "promotions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// Coupon code, upper case, unique per organization; unset: applied automatically.
    pub code: Option<String>,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub discount_type: DiscountType,
    /// Basis points (percentage, 1..=10000) or cents (fixed).
    pub discount_value: i64,
    pub scope: PromotionScope,
    pub service_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub niche_id: Option<Uuid>,
    pub valid_from: DateTimeUtc,
    pub valid_until: Option<DateTimeUtc>,
    pub max_redemptions: Option<i32>,
    /// Bookings one client may hold with this promotion (canceled ones don't count).
    pub max_redemptions_per_client: Option<i32>,
    pub redemptions_count: i32,
    pub min_order_cents: Option<i64>,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "service_id", to = "id")]
    pub service: BelongsTo<Option<super::service::Entity>>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<Option<super::user::Entity>>,
    #[sea_orm(belongs_to, from = "category_id", to = "id")]
    pub category: BelongsTo<Option<super::category::Entity>>,
    #[sea_orm(belongs_to, from = "niche_id", to = "id")]
    pub niche: BelongsTo<Option<super::niche::Entity>>,
}

crate::stamped_active_model!();

/// Input for creating a row of `promotions`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"code": "WELCOME10", "name": "Welcome discount", "discount_type": "percentage", "discount_value": 1000, "scope": "all", "valid_from": "2026-12-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"})))]
#[serde(deny_unknown_fields)]
#[validate(schema(function = "create_rules"))]
pub struct CreatePromotion {
    #[validate(custom(function = "crate::validate::coupon_code"))]
    pub code: Option<String>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: String,
    #[validate(length(max = 1000))]
    pub description: Option<String>,
    pub discount_type: DiscountType,
    #[validate(range(min = 1))]
    pub discount_value: i64,
    pub scope: Option<PromotionScope>,
    pub service_id: Option<Uuid>,
    pub provider_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub niche_id: Option<Uuid>,
    pub valid_from: crate::edge::Timestamp,
    pub valid_until: Option<crate::edge::Timestamp>,
    #[validate(range(min = 1))]
    pub max_redemptions: Option<i32>,
    /// Bookings one client may hold with this promotion (canceled ones don't count).
    #[validate(range(min = 1))]
    pub max_redemptions_per_client: Option<i32>,
    #[validate(range(min = 0))]
    pub min_order_cents: Option<i64>,
    pub is_active: Option<bool>,
}

impl CreatePromotion {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.code = Set(self.code);
        model.name = Set(self.name);
        model.description = Set(self.description);
        model.discount_type = Set(self.discount_type);
        model.discount_value = Set(self.discount_value);
        if let Some(value) = self.scope {
            model.scope = Set(value);
        }
        model.service_id = Set(self.service_id);
        model.provider_id = Set(self.provider_id);
        model.category_id = Set(self.category_id);
        model.niche_id = Set(self.niche_id);
        model.valid_from = Set(self.valid_from.into());
        model.valid_until = Set(self.valid_until.map(Into::into));
        model.max_redemptions = Set(self.max_redemptions);
        model.max_redemptions_per_client = Set(self.max_redemptions_per_client);
        model.min_order_cents = Set(self.min_order_cents);
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model.redemptions_count = Set(0);
        model
    }
}

/// Partial update of a row of `promotions`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdatePromotion {
    #[validate(custom(function = "crate::validate::coupon_code"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub code: Option<Option<String>>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: Option<String>,
    #[validate(length(max = 1000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
    pub discount_type: Option<DiscountType>,
    #[validate(range(min = 1))]
    pub discount_value: Option<i64>,
    pub scope: Option<PromotionScope>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub service_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub provider_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub category_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub niche_id: Option<Option<Uuid>>,
    pub valid_from: Option<crate::edge::Timestamp>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub valid_until: Option<Option<crate::edge::Timestamp>>,
    #[validate(range(min = 1))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub max_redemptions: Option<Option<i32>>,
    #[validate(range(min = 1))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub max_redemptions_per_client: Option<Option<i32>>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub min_order_cents: Option<Option<i64>>,
    pub is_active: Option<bool>,
}

impl UpdatePromotion {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.code {
            model.code = Set(value);
        }
        if let Some(value) = self.name {
            model.name = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
        if let Some(value) = self.discount_type {
            model.discount_type = Set(value);
        }
        if let Some(value) = self.discount_value {
            model.discount_value = Set(value);
        }
        if let Some(value) = self.scope {
            model.scope = Set(value);
        }
        if let Some(value) = self.service_id {
            model.service_id = Set(value);
        }
        if let Some(value) = self.provider_id {
            model.provider_id = Set(value);
        }
        if let Some(value) = self.category_id {
            model.category_id = Set(value);
        }
        if let Some(value) = self.niche_id {
            model.niche_id = Set(value);
        }
        if let Some(value) = self.valid_from {
            model.valid_from = Set(value.into());
        }
        if let Some(value) = self.valid_until {
            model.valid_until = Set(value.map(Into::into));
        }
        if let Some(value) = self.max_redemptions {
            model.max_redemptions = Set(value);
        }
        if let Some(value) = self.max_redemptions_per_client {
            model.max_redemptions_per_client = Set(value);
        }
        if let Some(value) = self.min_order_cents {
            model.min_order_cents = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}

fn create_rules(input: &CreatePromotion) -> Result<(), validator::ValidationError> {
    crate::rules::promotion(&crate::rules::PromotionTerms {
        discount_type: input.discount_type,
        discount_value: input.discount_value,
        scope: input.scope.unwrap_or(PromotionScope::All),
        service: input.service_id.is_some(),
        provider: input.provider_id.is_some(),
        category: input.category_id.is_some(),
        niche: input.niche_id.is_some(),
        valid_from: input.valid_from.into(),
        valid_until: input.valid_until.map(Into::into),
    })
    .map_err(Into::into)
}

impl crate::rules::Rules for Model {
    fn check_rules(&self) -> Result<(), crate::rules::RuleViolation> {
        crate::rules::promotion(&crate::rules::PromotionTerms {
            discount_type: self.discount_type,
            discount_value: self.discount_value,
            scope: self.scope,
            service: self.service_id.is_some(),
            provider: self.provider_id.is_some(),
            category: self.category_id.is_some(),
            niche: self.niche_id.is_some(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        })
    }
}
