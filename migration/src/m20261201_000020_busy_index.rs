//! An index for the appointments that overlap a range (issue 18, free slots).
//!
//! Free slots, booking and rescheduling read a provider's active appointments that
//! overlap `[from, to)`: `start_at < to AND occupied_until > from`. The only index
//! that led with the provider, `ix_appointments_provider_id_start_at`, bounds just
//! `start_at < to`, so each lookup walked the provider's whole history. The GiST
//! index behind the exclusion constraint (migration 7) cannot serve it either under
//! row-level security: PostgreSQL may use only leakproof operators before a policy's
//! check, and the range operator `&&` is not leakproof.
//!
//! `ix_appointments_provider_id_occupied_until` on `(provider_id, occupied_until)`,
//! for active appointments only (the same statuses the exclusion constraint covers),
//! bounds the walk by `occupied_until > from` with plain comparisons, which are
//! leakproof: a lookup reads the appointments that end after `from`, that is the
//! provider's upcoming ones, however long their history. On PostgreSQL it also
//! carries `start_at` and `organization_id` (`INCLUDE`, not part of the key): the
//! lookup reads only the two instants, and the tenant column is what the query and
//! the row-level security policy compare, so PostgreSQL answers from the index alone
//! (an index-only scan, on pages vacuum has marked all-visible). SQLite has no
//! `INCLUDE` and gets the two key columns; both engines support the partial index.

use agenda_entity::enums::AppointmentStatus;
use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

pub const INDEX: &str = "ix_appointments_provider_id_occupied_until";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let inactive = AppointmentStatus::INACTIVE.map(|s| s.as_str());
        let mut index = Index::create();
        index
            .name(INDEX)
            .table("appointments")
            .col("provider_id")
            .col("occupied_until")
            .and_where(Expr::col("status").is_not_in(inactive));
        if manager.get_database_backend() == DbBackend::Postgres {
            index.include("start_at").include("organization_id");
        }
        manager.create_index(index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table("appointments").to_owned())
            .await
    }
}
