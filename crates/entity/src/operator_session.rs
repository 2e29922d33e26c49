//! `operator_sessions`: An operator's console sessions, the token kept only as its
//! SHA-256 digest, with expiry and revocation.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operator_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub operator_id: Uuid,
    /// SHA-256 of the cookie's token, hex. Secret material: never serialised.
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub user_agent: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "operator_id", to = "id")]
    pub operator: BelongsTo<super::operator::Entity>,
}

crate::stamped_active_model!();
