//! `staff_members`: The organization's professionals and back-office staff.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "staff_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    /// The login of this staff member, if any.
    pub user_id: Option<Uuid>,
    pub display_name: String,
    pub title: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub bio: Option<String>,
    /// Whether clients can book this person.
    pub is_bookable: bool,
    /// Calendar colour, `#rrggbb`.
    pub color: Option<String>,
    pub sort_order: i32,
    pub is_active: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `staff_members`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"display_name": "Ana Souza", "title": "Hair stylist", "is_bookable": true, "color": "#1a2b3c"})))]
#[serde(deny_unknown_fields)]
pub struct CreateStaffMember {
    pub user_id: Option<Uuid>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub display_name: String,
    #[validate(length(max = 120))]
    pub title: Option<String>,
    #[validate(length(max = 2000))]
    pub bio: Option<String>,
    pub is_bookable: Option<bool>,
    #[validate(custom(function = "crate::validate::hex_color"))]
    pub color: Option<String>,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_active: Option<bool>,
}

impl CreateStaffMember {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.user_id = Set(self.user_id);
        model.display_name = Set(self.display_name);
        model.title = Set(self.title);
        model.bio = Set(self.bio);
        if let Some(value) = self.is_bookable {
            model.is_bookable = Set(value);
        }
        model.color = Set(self.color);
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
        model
    }
}

/// Partial update of a row of `staff_members`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateStaffMember {
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub user_id: Option<Option<Uuid>>,
    #[validate(
        length(min = 1, max = 150),
        custom(function = "crate::validate::not_blank")
    )]
    pub display_name: Option<String>,
    #[validate(length(max = 120))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub title: Option<Option<String>>,
    #[validate(length(max = 2000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub bio: Option<Option<String>>,
    pub is_bookable: Option<bool>,
    #[validate(custom(function = "crate::validate::hex_color"))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub color: Option<Option<String>>,
    #[validate(range(min = 0, max = 10000))]
    pub sort_order: Option<i32>,
    pub is_active: Option<bool>,
}

impl UpdateStaffMember {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.user_id {
            model.user_id = Set(value);
        }
        if let Some(value) = self.display_name {
            model.display_name = Set(value);
        }
        if let Some(value) = self.title {
            model.title = Set(value);
        }
        if let Some(value) = self.bio {
            model.bio = Set(value);
        }
        if let Some(value) = self.is_bookable {
            model.is_bookable = Set(value);
        }
        if let Some(value) = self.color {
            model.color = Set(value);
        }
        if let Some(value) = self.sort_order {
            model.sort_order = Set(value);
        }
        if let Some(value) = self.is_active {
            model.is_active = Set(value);
        }
    }
}
