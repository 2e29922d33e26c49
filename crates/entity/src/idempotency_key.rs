//! `idempotency_keys`: Stored responses of POSTs retried with the same Idempotency-Key (bookings, payments, withdrawals).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    /// The client's Idempotency-Key header.
    pub key: String,
    pub method: String,
    pub path: String,
    /// SHA-256 of the request body: the same key with another body is refused.
    pub request_hash: String,
    /// Unset while the first request is still running.
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "JsonBinary")]
    pub response_body: Option<Json>,
    pub expires_at: DateTimeUtc,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}
