//! The marketplace (issue 14):
//!
//! - `promotions.max_redemptions_per_client`: how many bookings one client may hold
//!   with a promotion (canceled ones give the use back); `NULL` is no limit.
//! - Cross-process invalidation of the read cache (`agenda_storage::cache`), below.
//!
//! On PostgreSQL, every row written to a cached table sends
//! `NOTIFY agenda_cache, '<organization_id>:<table>:<origin>'` from a trigger.
//! PostgreSQL delivers notifications only when the writing transaction commits (and
//! folds repeated identical ones into one), so a server's cache listener drops an
//! entry exactly after the write became visible — whichever process or tool wrote
//! it. The trigger is a deferred constraint trigger: it runs at commit, so it reads
//! the `app.cache_origin` the writing server set just before committing (its own
//! cache's id, empty for any other writer); a server skips its own notifications,
//! since it has already invalidated after its commit.
//! SQLite has no `NOTIFY`; there a server invalidates its own cache after its own
//! commits, and the TTL bounds everything else.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables served through the cache: `agenda_storage::cache::CACHED_TABLES`.
const TABLES: &[&str] = &[
    "niches",
    "categories",
    "service_templates",
    "services",
    "provider_settings",
    "availability",
    "provider_breaks",
    "blocked_time_slots",
];

const FUNCTION: &str = r"
CREATE OR REPLACE FUNCTION agenda_cache_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('agenda_cache', OLD.organization_id::text || ':' || TG_TABLE_NAME
            || ':' || coalesce(current_setting('app.cache_origin', true), ''));
    ELSE
        PERFORM pg_notify('agenda_cache', NEW.organization_id::text || ':' || TG_TABLE_NAME
            || ':' || coalesce(current_setting('app.cache_origin', true), ''));
    END IF;
    RETURN NULL;
END
$$";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared(
            "ALTER TABLE promotions ADD COLUMN max_redemptions_per_client integer NULL \
             CONSTRAINT \"ck_promotions_max_redemptions_per_client_positive\" \
             CHECK (max_redemptions_per_client IS NULL OR max_redemptions_per_client >= 1)",
        )
        .await?;
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        conn.execute_unprepared(FUNCTION).await?;
        for table in TABLES {
            conn.execute_unprepared(&format!(
                "CREATE CONSTRAINT TRIGGER trg_{table}_cache_notify \
                 AFTER INSERT OR UPDATE OR DELETE ON {table} \
                 DEFERRABLE INITIALLY DEFERRED \
                 FOR EACH ROW EXECUTE FUNCTION agenda_cache_notify()"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        conn.execute_unprepared("ALTER TABLE promotions DROP COLUMN max_redemptions_per_client")
            .await?;
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for table in TABLES {
            conn.execute_unprepared(&format!(
                "DROP TRIGGER IF EXISTS trg_{table}_cache_notify ON {table}"
            ))
            .await?;
        }
        conn.execute_unprepared("DROP FUNCTION IF EXISTS agenda_cache_notify()")
            .await?;
        Ok(())
    }
}
