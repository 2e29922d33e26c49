//! `support_messages`: Messages of a ticket. Internal notes are visible to staff only.

use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "support_messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub ticket_id: Uuid,
    pub author_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub body: String,
    /// Internal notes never reach clients.
    pub is_internal: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "ticket_id", to = "id")]
    pub ticket: BelongsTo<super::support_ticket::Entity>,
    #[sea_orm(belongs_to, from = "author_id", to = "id")]
    pub author: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `support_messages`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSupportMessage {
    #[validate(
        length(min = 1, max = 10000),
        custom(function = "crate::validate::not_blank")
    )]
    pub body: String,
    pub is_internal: Option<bool>,
}

impl CreateSupportMessage {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.body = Set(self.body);
        if let Some(value) = self.is_internal {
            model.is_internal = Set(value);
        }
        model
    }
}

/// Partial update of a row of `support_messages`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSupportMessage {
    #[validate(
        length(min = 1, max = 10000),
        custom(function = "crate::validate::not_blank")
    )]
    pub body: Option<String>,
}

impl UpdateSupportMessage {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.body {
            model.body = Set(value);
        }
    }
}
