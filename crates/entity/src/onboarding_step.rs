//! `onboarding_steps`: The steps of the onboarding checklist, per role.

use crate::enums::UserRole;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "onboarding_steps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub key: String,
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub role: UserRole,
    pub sort_order: i32,
    pub is_required: bool,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `onboarding_steps`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"key": "add-services", "title": "Add your services", "role": "provider", "sort_order": 1, "is_required": true})))]
#[serde(deny_unknown_fields)]
pub struct CreateOnboardingStep {
    #[validate(custom(function = "crate::validate::key"))]
    pub key: String,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub title: String,
    #[validate(length(max = 1000))]
    pub description: Option<String>,
    pub role: UserRole,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_required: Option<bool>,
    pub is_active: Option<bool>,
}

impl CreateOnboardingStep {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.key = Set(self.key);
        model.title = Set(self.title);
        model.description = Set(self.description);
        model.role = Set(self.role);
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_required {
            model.is_required = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `onboarding_steps`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateOnboardingStep {
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub title: Option<String>,
    #[validate(length(max = 1000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
    pub role: Option<UserRole>,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_required: Option<bool>,
    pub is_active: Option<bool>,
}

impl UpdateOnboardingStep {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.title {
            model.title = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
        if let Some(value) = self.role {
            model.role = Set(value);
        }
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_required {
            model.is_required = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
