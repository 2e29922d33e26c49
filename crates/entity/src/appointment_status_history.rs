//! `appointment_status_history`: Every status transition of an appointment: from, to, who, when (append-only).

use crate::enums::AppointmentStatus;
use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointment_status_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub appointment_id: Uuid,
    pub from_status: Option<AppointmentStatus>,
    pub to_status: AppointmentStatus,
    pub changed_by: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub reason: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "appointment_id", to = "id")]
    pub appointment: BelongsTo<super::appointment::Entity>,
    #[sea_orm(belongs_to, from = "changed_by", to = "id")]
    pub changed_by_user: BelongsTo<Option<super::user::Entity>>,
}

crate::created_active_model!();

impl crate::rules::Rules for Model {}
