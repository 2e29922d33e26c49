//! Behaviour shared by every entity: key generation and timestamp maintenance.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::ActiveValue;
use uuid::Uuid;

/// A new time-ordered primary key (UUIDv7): sortable by creation time, so inserts
/// append to the primary-key index, and safe to expose and to merge across databases.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// The current instant, truncated to microseconds: PostgreSQL `timestamptz` keeps
/// microseconds, so a value written and read back compares equal on both engines.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Fills `id` (on insert, when not set), `created_at` (on insert) and `updated_at`
/// (always). Called from each entity's `ActiveModelBehavior::before_save`, so every
/// insert and update through an active model keeps the timestamps right; bulk
/// updates in the storage layer set `updated_at` themselves.
pub fn stamp(
    id: &mut ActiveValue<Uuid>,
    created_at: &mut ActiveValue<DateTime<Utc>>,
    updated_at: &mut ActiveValue<DateTime<Utc>>,
    insert: bool,
) {
    let now = now();
    if insert {
        if matches!(id, ActiveValue::NotSet) {
            *id = ActiveValue::Set(new_id());
        }
        if matches!(created_at, ActiveValue::NotSet) {
            *created_at = ActiveValue::Set(now);
        }
    }
    *updated_at = ActiveValue::Set(now);
}

/// Fills `id` and `created_at` on insert, for append-only tables (no `updated_at`).
pub fn stamp_created(
    id: &mut ActiveValue<Uuid>,
    created_at: &mut ActiveValue<DateTime<Utc>>,
    insert: bool,
) {
    if insert {
        if matches!(id, ActiveValue::NotSet) {
            *id = ActiveValue::Set(new_id());
        }
        if matches!(created_at, ActiveValue::NotSet) {
            *created_at = ActiveValue::Set(now());
        }
    }
}

/// Implements `ActiveModelBehavior` for an entity whose table has the standard
/// `id`, `created_at` and `updated_at` columns.
#[macro_export]
macro_rules! stamped_active_model {
    () => {
        #[async_trait::async_trait]
        impl sea_orm::ActiveModelBehavior for ActiveModel {
            async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, sea_orm::DbErr>
            where
                C: sea_orm::ConnectionTrait,
            {
                $crate::stamp(
                    &mut self.id,
                    &mut self.created_at,
                    &mut self.updated_at,
                    insert,
                );
                Ok(self)
            }
        }
    };
}

/// Implements `ActiveModelBehavior` for an append-only entity (`id`, `created_at`).
#[macro_export]
macro_rules! created_active_model {
    () => {
        #[async_trait::async_trait]
        impl sea_orm::ActiveModelBehavior for ActiveModel {
            async fn before_save<C>(mut self, _db: &C, insert: bool) -> Result<Self, sea_orm::DbErr>
            where
                C: sea_orm::ConnectionTrait,
            {
                $crate::stamp_created(&mut self.id, &mut self.created_at, insert);
                Ok(self)
            }
        }
    };
}
