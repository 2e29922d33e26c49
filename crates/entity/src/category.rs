//! `categories`: Categories of a niche, optionally nested under a parent category.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "categories")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub niche_id: Uuid,
    /// The parent category (same niche), if nested.
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub sort_order: i32,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "niche_id", to = "id")]
    pub niche: BelongsTo<super::niche::Entity>,
    #[sea_orm(self_ref, relation_enum = "Parent", from = "parent_id", to = "id")]
    pub parent: BelongsTo<Option<Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `categories`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"niche_id": "0190f5a2-6c1e-7b3a-9d4e-2f1a3b4c5d6e", "name": "Hair", "slug": "hair"})))]
#[serde(deny_unknown_fields)]
pub struct CreateCategory {
    pub niche_id: Uuid,
    pub parent_id: Option<Uuid>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: String,
    #[validate(custom(function = "crate::validate::slug"))]
    pub slug: String,
    #[validate(length(max = 1000))]
    pub description: Option<String>,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_active: Option<bool>,
}

impl CreateCategory {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.niche_id = Set(self.niche_id);
        model.parent_id = Set(self.parent_id);
        model.name = Set(self.name);
        model.slug = Set(self.slug);
        model.description = Set(self.description);
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `categories`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateCategory {
    pub niche_id: Option<Uuid>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub parent_id: Option<Option<Uuid>>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub name: Option<String>,
    #[validate(custom(function = "crate::validate::slug"))]
    pub slug: Option<String>,
    #[validate(length(max = 1000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_active: Option<bool>,
}

impl UpdateCategory {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.niche_id {
            model.niche_id = Set(value);
        }
        if let Some(value) = self.parent_id {
            model.parent_id = Set(value);
        }
        if let Some(value) = self.name {
            model.name = Set(value);
        }
        if let Some(value) = self.slug {
            model.slug = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
