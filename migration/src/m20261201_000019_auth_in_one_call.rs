//! Authentication in one call (PostgreSQL only; nothing on SQLite).
//!
//! Until now an authenticated request spent two statements on its session:
//! `set_config('app.tenant', agenda_session_tenant(digest), true)` (migration 11),
//! then the session ⋈ user ⋈ organization join, which looked the digest up a second
//! time. `agenda_authenticate(digest, at)` does both in one statement: it finds the
//! **active** session of the digest (not revoked, `expires_at > at`) with its
//! **active** user of the **same organization** and the organization, enters that
//! organization for the rest of the transaction (`set_config('app.tenant', …, true)`:
//! transaction-local, so it ends with the commit or rollback and never reaches the
//! next user of a pooled or PgBouncer server connection), and returns the three rows
//! (one row of three composite columns). An unknown, revoked or expired digest, or a
//! deactivated user, returns no row and enters no tenant (`''`).
//!
//! Like migration 11's lookups it is `SECURITY DEFINER` with a pinned `search_path`
//! (the schema owner's row-level security policy lets it read across tenants, which
//! is the point: nobody knows the tenant yet), and `EXECUTE` is revoked from
//! `PUBLIC`; `agenda db create-app-role` grants it to the application role.
//! `agenda_session_tenant` stays (other callers and older binaries use it).

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::m20261123_000011_row_level_security::current_schema;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        let schema = current_schema(conn).await?;
        // plpgsql so that the tenant is entered only once the row is known to qualify
        // (in one SQL statement the order in which conditions run is the planner's).
        conn.execute_unprepared(&format!(
            "CREATE FUNCTION agenda_authenticate(token_digest text, at_time timestamptz) \
             RETURNS TABLE (session_row {schema}.user_sessions, user_row {schema}.users, \
                            organization_row {schema}.organizations) \
             LANGUAGE plpgsql VOLATILE SECURITY DEFINER \
             SET search_path = pg_catalog, {schema}, pg_temp \
             AS $$ \
             DECLARE found_row record; \
             BEGIN \
               SELECT found_session AS s, found_user AS u, found_organization AS o \
                 INTO found_row \
                 FROM {schema}.user_sessions AS found_session \
                 JOIN {schema}.users AS found_user \
                   ON found_user.id = found_session.user_id \
                  AND found_user.organization_id = found_session.organization_id \
                 JOIN {schema}.organizations AS found_organization \
                   ON found_organization.id = found_session.organization_id \
                WHERE found_session.token_hash = token_digest \
                  AND found_session.revoked_at IS NULL \
                  AND found_session.expires_at > at_time \
                  AND found_user.is_active; \
               IF NOT FOUND THEN \
                 PERFORM set_config('app.tenant', '', true); \
                 RETURN; \
               END IF; \
               session_row := found_row.s; \
               user_row := found_row.u; \
               organization_row := found_row.o; \
               PERFORM set_config('app.tenant', (session_row).organization_id::text, true); \
               RETURN NEXT; \
             END $$; \
             REVOKE EXECUTE ON FUNCTION agenda_authenticate(text, timestamptz) FROM PUBLIC"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS agenda_authenticate(text, timestamptz)")
            .await?;
        Ok(())
    }
}
