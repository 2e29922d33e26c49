//! `support_tickets`: Support requests of users, worked by support staff.

use crate::enums::{TicketPriority, TicketStatus};
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use serde::Deserialize;
use validator::Validate;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "support_tickets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub requester_id: Uuid,
    pub assignee_id: Option<Uuid>,
    pub appointment_id: Option<Uuid>,
    pub subject: String,
    pub status: TicketStatus,
    pub priority: TicketPriority,
    pub category: Option<String>,
    pub closed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "requester_id", to = "id")]
    pub requester: BelongsTo<super::user::Entity>,
    #[sea_orm(
        belongs_to,
        relation_enum = "Assignee",
        from = "assignee_id",
        to = "id"
    )]
    pub assignee: BelongsTo<Option<super::user::Entity>>,
    #[sea_orm(belongs_to, from = "appointment_id", to = "id")]
    pub appointment: BelongsTo<Option<super::appointment::Entity>>,
    #[sea_orm(has_many)]
    pub messages: HasMany<super::support_message::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}

/// Input for creating a row of `support_tickets`. Fields the server decides (the
/// organization, owners taken from the signed-in user, counters) are not part of it;
/// the storage layer sets them on the returned active model.
#[derive(Debug, Clone, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSupportTicket {
    pub appointment_id: Option<Uuid>,
    #[validate(length(min = 1, max = 200))]
    pub subject: String,
    pub priority: Option<TicketPriority>,
    #[validate(length(max = 60))]
    pub category: Option<String>,
}

impl CreateSupportTicket {
    /// The active model to insert; call only after `validate()` succeeded.
    pub fn into_active_model(self, organization_id: Uuid) -> ActiveModel {
        let mut model = <ActiveModel as sea_orm::ActiveModelTrait>::default();
        model.organization_id = Set(organization_id);
        model.appointment_id = Set(self.appointment_id);
        model.subject = Set(self.subject);
        if let Some(value) = self.priority {
            model.priority = Set(value);
        }
        model.category = Set(self.category);
        model.status = Set(TicketStatus::Open);
        model.closed_at = Set(None);
        model
    }
}

/// Partial update of a row of `support_tickets`: absent fields stay as they are; for
/// optional columns `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize, Validate)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateSupportTicket {
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub assignee_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub appointment_id: Option<Option<Uuid>>,
    #[validate(length(min = 1, max = 200))]
    pub subject: Option<String>,
    pub status: Option<TicketStatus>,
    pub priority: Option<TicketPriority>,
    #[validate(length(max = 60))]
    #[serde(default, deserialize_with = "crate::patch::present")]
    pub category: Option<Option<String>>,
}

impl UpdateSupportTicket {
    /// Applies the present fields to `model`.
    pub fn apply(self, model: &mut ActiveModel) {
        if let Some(value) = self.assignee_id {
            model.assignee_id = Set(value);
        }
        if let Some(value) = self.appointment_id {
            model.appointment_id = Set(value);
        }
        if let Some(value) = self.subject {
            model.subject = Set(value);
        }
        if let Some(value) = self.status {
            model.status = Set(value);
        }
        if let Some(value) = self.priority {
            model.priority = Set(value);
        }
        if let Some(value) = self.category {
            model.category = Set(value);
        }
    }
}
