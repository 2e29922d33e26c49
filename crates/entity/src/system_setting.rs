//! `system_settings`: Per organization key/value settings.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "system_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub key: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub value: Json,
    #[sea_orm(column_type = "Text")]
    pub description: Option<String>,
    pub updated_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "updated_by", to = "id")]
    pub updated_by_user: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `system_settings`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"key": "booking.reminder_hours", "value": 24, "description": "Hours before an appointment to remind the client"})))]
#[serde(deny_unknown_fields)]
pub struct CreateSystemSetting {
    #[validate(custom(function = "crate::validate::key"))]
    pub key: String,
    /// Any JSON value.
    #[cfg_attr(feature = "openapi", schema(value_type = Value))]
    pub value: Json,
    #[validate(length(max = 500))]
    pub description: Option<String>,
}

impl CreateSystemSetting {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.key = Set(self.key);
        model.value = Set(self.value);
        model.description = Set(self.description);
        model
    }
}

/// Partial update of a row of `system_settings`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSystemSetting {
    /// Any JSON value (`null` is a value here, not "absent").
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Value>))]
    pub value: Option<Json>,
    #[validate(length(max = 500))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub description: Option<Option<String>>,
}

impl UpdateSystemSetting {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.value {
            model.value = Set(value);
        }
        if let Some(value) = self.description {
            model.description = Set(value);
        }
    }
}
