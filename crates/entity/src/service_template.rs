//! `service_templates`: The organization-wide service catalogue, with default duration and price.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub category_id: Uuid,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub default_duration_minutes: i32,
    pub default_price_cents: Option<i64>,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "category_id", to = "id")]
    pub category: BelongsTo<super::category::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `service_templates`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"category_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "name": "Haircut", "default_duration_minutes": 45, "default_price_cents": 6000})))]
#[serde(deny_unknown_fields)]
pub struct CreateServiceTemplate {
    pub category_id: Uuid,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: String,
    #[validate(length(max = 2000))]
    pub description: Option<String>,
    #[validate(range(min = 1, max = 1440))]
    pub default_duration_minutes: i32,
    #[validate(range(min = 0))]
    pub default_price_cents: Option<i64>,
    pub is_active: Option<bool>,
}

impl CreateServiceTemplate {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.category_id = Set(self.category_id);
        model.name = Set(self.name);
        model.description = Set(self.description);
        model.default_duration_minutes = Set(self.default_duration_minutes);
        model.default_price_cents = Set(self.default_price_cents);
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `service_templates`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateServiceTemplate {
    pub category_id: Option<Uuid>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
    #[validate(range(min = 1, max = 1440))]
    pub default_duration_minutes: Option<i32>,
    #[validate(range(min = 0))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub default_price_cents: Option<Option<i64>>,
    pub is_active: Option<bool>,
}

impl UpdateServiceTemplate {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.category_id {
            model.category_id = Set(value);
        }
        if let Some(value) = self.name {
            model.name = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
        if let Some(value) = self.default_duration_minutes {
            model.default_duration_minutes = Set(value);
        }
        if let Some(value) = self.default_price_cents {
            model.default_price_cents = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
