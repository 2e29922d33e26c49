//! `audit_log`: Who did what to which record: admin actions, backups, restores, role changes (append-only). Platform-wide events have no organization.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    /// Dotted verb, e.g. `organization.update`, `backup.create`.
    pub action: String,
    /// The table (or object kind) acted on.
    pub entity_type: String,
    /// Not a foreign key: the record may be of any table and may since have been deleted.
    pub entity_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Json,
    pub ip_address: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<Option<super::organization::Entity>>,
    #[sea_orm(belongs_to, from = "actor_id", to = "id")]
    pub actor: BelongsTo<Option<super::user::Entity>>,
}

crate::created_active_model!();

impl crate::rules::Rules for Model {}
