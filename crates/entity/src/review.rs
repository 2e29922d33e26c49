//! `reviews`: One review per completed appointment: rating 1..5, comment, the provider's response, moderation.

use crate::enums::ModerationStatus;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "reviews")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub appointment_id: Uuid,
    pub client_id: Uuid,
    pub provider_id: Uuid,
    pub rating: i32,
    #[sea_orm(column_type = "Text")]
    pub comment: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub provider_response: Option<String>,
    pub responded_at: Option<DateTimeUtc>,
    pub moderation_status: ModerationStatus,
    pub moderated_by: Option<Uuid>,
    pub moderated_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "appointment_id", to = "id")]
    pub appointment: BelongsTo<super::appointment::Entity>,
    #[sea_orm(belongs_to, from = "client_id", to = "id")]
    pub client: BelongsTo<super::user::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Provider",
        from = "provider_id",
        to = "id"
    )]
    pub provider: BelongsTo<super::user::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "ModeratedByUser",
        from = "moderated_by",
        to = "id"
    )]
    pub moderated_by_user: BelongsTo<Option<super::user::Entity>>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `reviews`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateReview {
    pub appointment_id: Uuid,
    #[validate(range(min = 1, max = 5))]
    pub rating: i32,
    #[validate(length(max = 2000))]
    pub comment: Option<String>,
}

impl CreateReview {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.appointment_id = Set(self.appointment_id);
        model.rating = Set(self.rating);
        model.comment = Set(self.comment);
        model.provider_response = Set(None);
        model.responded_at = Set(None);
        model.moderation_status = Set(ModerationStatus::Pending);
        model.moderated_at = Set(None);
        model
    }
}

/// Partial update of a row of `reviews`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateReview {
    #[validate(range(min = 1, max = 5))]
    pub rating: Option<i32>,
    #[validate(length(max = 2000))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub comment: Option<Option<String>>,
}

impl UpdateReview {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.rating {
            model.rating = Set(value);
        }
        if let Some(value) = self.comment {
            model.comment = Set(value);
        }
    }
}
