//! `operators`: Platform operators of the console, made by `agenda operator create`.
//! A platform table: no organization, no row-level security (docs/console.md).

use sea_orm::entity::prelude::*;

/// The columns of `operators` the application role may update: the sign-in
/// counters, never the name, the password digest or the read-only flag.
pub const COUNTER_COLUMNS: &str = "failed_sign_ins, locked_until, last_signed_in_at, updated_at";

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "operators")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Unique; what the operator signs in with.
    pub name: String,
    /// argon2id PHC string. Secret material: never serialised, never logged.
    pub password_hash: String,
    /// A read-only operator sees every panel and can take no action.
    pub read_only: bool,
    /// Consecutive failed sign-ins since the last success or lock.
    pub failed_sign_ins: i32,
    pub locked_until: Option<DateTimeUtc>,
    pub last_signed_in_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    #[sea_orm(has_many)]
    pub sessions: HasMany<super::operator_session::Entity>,
}

crate::stamped_active_model!();
