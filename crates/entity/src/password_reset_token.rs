//! `password_reset_tokens`: the single-use tokens mailed to a user — password
//! resets, e-mail verifications and invitations (`purpose`): hashed, single use,
//! expiring. The table keeps the name it had when resets were its only use.

use sea_orm::entity::prelude::*;

pub use crate::enums::TokenPurpose;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "password_reset_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub user_id: Uuid,
    /// What the token is for; a token is accepted only for its own purpose.
    pub purpose: TokenPurpose,
    /// SHA-256 of the emailed token, hex.
    /// Secret material: never serialised, never logged.
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    /// Set when the token is used; a used token is never accepted again.
    pub used_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(belongs_to, from = "organization_id", to = "id")]
    pub organization: BelongsTo<super::organization::Entity>,
    #[sea_orm(belongs_to, from = "user_id", to = "id")]
    pub user: BelongsTo<super::user::Entity>,
}

crate::stamped_active_model!();

impl crate::rules::Rules for Model {}
