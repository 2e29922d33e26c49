//! `services`: A provider's own service: name, duration, price.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The provider (a user with role `provider`).
    pub provider_id: Uuid,
    pub category_id: Option<Uuid>,
    /// The catalogue template it was derived from, if any.
    pub template_id: Option<Uuid>,
    pub name: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub duration_minutes: i32,
    pub price_cents: i64,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "provider_id", to = "id")]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(belongs_to, from = "category_id", to = "id")]
    pub category: BelongsTo<Option<super::category::Entity>>,
    #[sea_orm(belongs_to, from = "template_id", to = "id")]
    pub template: BelongsTo<Option<super::service_template::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `services`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"name": "Haircut", "duration_minutes": 60, "price_cents": 5000, "description": "Wash, cut and dry"})))]
#[serde(deny_unknown_fields)]
pub struct CreateService {
    pub category_id: Option<Uuid>,
    pub template_id: Option<Uuid>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: String,
    #[validate(length(max = 2000))]
    pub description: Option<String>,
    #[validate(range(min = 1, max = 1440))]
    pub duration_minutes: i32,
    #[validate(range(min = 0))]
    pub price_cents: i64,
    pub is_active: Option<bool>,
}

impl CreateService {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.category_id = Set(self.category_id);
        model.template_id = Set(self.template_id);
        model.name = Set(self.name);
        model.description = Set(self.description);
        model.duration_minutes = Set(self.duration_minutes);
        model.price_cents = Set(self.price_cents);
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `services`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateService {
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub category_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub template_id: Option<Option<Uuid>>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: Option<String>,
    #[validate(length(max = 2000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
    #[validate(range(min = 1, max = 1440))]
    pub duration_minutes: Option<i32>,
    #[validate(range(min = 0))]
    pub price_cents: Option<i64>,
    pub is_active: Option<bool>,
}

impl UpdateService {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.category_id {
            model.category_id = Set(value);
        }
        if let Some(value) = self.template_id {
            model.template_id = Set(value);
        }
        if let Some(value) = self.name {
            model.name = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
        if let Some(value) = self.duration_minutes {
            model.duration_minutes = Set(value);
        }
        if let Some(value) = self.price_cents {
            model.price_cents = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
