//! Row-level security on PostgreSQL: the database itself keeps tenants apart.
//!
//! Every tenant-owned table (all tables with `organization_id`, i.e. all but
//! `organizations`) gets RLS **enabled and forced** and two policies:
//!
//! - `rls_<table>_tenant` (every role): a row is visible and writable only when its
//!   `organization_id` equals the tenant of the current transaction,
//!   `agenda_current_tenant()`, which reads the transaction-local setting
//!   `app.tenant`. The storage layer sets it with `set_config('app.tenant', …, true)`
//!   at the start of each transaction, so it ends with the transaction and never
//!   reaches the next user of a pooled connection. No tenant set → no rows.
//! - `rls_<table>_owner` (only the role running this migration, the schema owner):
//!   every row. Forcing RLS subjects the owner to policies too; this explicit policy
//!   is what lets the migrator, backups, restores, the demo seed and cross-tenant
//!   housekeeping work — visibly, in `pg_policies`, rather than by an implicit
//!   owner bypass. The application role is never the owner (`agenda db
//!   create-app-role` refuses that), so it only ever gets the tenant policy.
//!
//! Two steps must find a tenant before one is known: resolving a bearer token and a
//! password-reset token. They call `SECURITY DEFINER` functions owned by the schema
//! owner that return only the `organization_id` of the row with that digest (a
//! SHA-256 of a 256-bit secret only its holder knows), nothing else.
//! `EXECUTE` on them is revoked from `PUBLIC`; `agenda db create-app-role` grants it.
//!
//! SQLite has no row-level security; there, tenant isolation rests on the storage
//! layer's scoped queries alone (see docs/operations.md). This migration does
//! nothing on SQLite.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every table with an `organization_id` column. A schema test checks against the
/// live catalog that no tenant-owned table is missing from this list.
pub const TENANT_TABLES: &[&str] = &[
    "users",
    "user_sessions",
    "password_reset_tokens",
    "user_addresses",
    "staff_members",
    "niches",
    "categories",
    "service_templates",
    "services",
    "provider_services",
    "provider_settings",
    "payment_settings",
    "provider_service_fees",
    "integrations_settings",
    "client_payment_preferences",
    "provider_payment_preferences",
    "user_payment_methods",
    "promotions",
    "availability",
    "provider_breaks",
    "blocked_time_slots",
    "appointments",
    "appointment_status_history",
    "reviews",
    "provider_balances",
    "provider_transactions",
    "payment_withdrawals",
    "support_tickets",
    "support_messages",
    "onboarding_steps",
    "user_onboarding_progress",
    "notifications",
    "system_settings",
    "audit_log",
    "idempotency_keys",
];

/// The token-lookup functions this migration creates, with the table each reads.
const TOKEN_FUNCTIONS: &[(&str, &str)] = &[
    ("agenda_session_tenant", "user_sessions"),
    ("agenda_reset_token_tenant", "password_reset_tokens"),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        let schema = current_schema(conn).await?;

        conn.execute_unprepared(
            "CREATE FUNCTION agenda_current_tenant() RETURNS uuid \
             LANGUAGE sql STABLE PARALLEL SAFE \
             AS $$ SELECT NULLIF(current_setting('app.tenant', true), '')::uuid $$",
        )
        .await?;
        for (function, table) in TOKEN_FUNCTIONS {
            conn.execute_unprepared(&format!(
                "CREATE FUNCTION {function}(digest text) RETURNS uuid \
                 LANGUAGE sql STABLE SECURITY DEFINER \
                 SET search_path = pg_catalog, {schema}, pg_temp \
                 AS $$ SELECT organization_id FROM {schema}.{table} WHERE token_hash = digest $$; \
                 REVOKE EXECUTE ON FUNCTION {function}(text) FROM PUBLIC"
            ))
            .await?;
        }
        for table in TENANT_TABLES {
            enable(conn, table).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        for table in TENANT_TABLES.iter().rev() {
            disable(conn, table).await?;
        }
        for (function, _) in TOKEN_FUNCTIONS {
            conn.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {function}(text)"))
                .await?;
        }
        conn.execute_unprepared("DROP FUNCTION IF EXISTS agenda_current_tenant()")
            .await?;
        Ok(())
    }
}

/// The schema the tables live in, double-quoted: pinned into the `SECURITY DEFINER`
/// functions' `search_path` so that a caller's `search_path` cannot redirect them.
pub(crate) async fn current_schema(conn: &SchemaManagerConnection<'_>) -> Result<String, DbErr> {
    let schema = conn
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_schema()::text AS schema",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("no current schema".into()))?
        .try_get::<String>("", "schema")?;
    Ok(quote(&schema))
}

/// Enables and forces row-level security on a tenant-owned table, with its tenant
/// and owner policies (see the module documentation). PostgreSQL only.
pub(crate) async fn enable(conn: &SchemaManagerConnection<'_>, table: &str) -> Result<(), DbErr> {
    conn.execute_unprepared(&format!(
        "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; \
         ALTER TABLE {table} FORCE ROW LEVEL SECURITY; \
         CREATE POLICY rls_{table}_tenant ON {table} \
           USING (organization_id = agenda_current_tenant()) \
           WITH CHECK (organization_id = agenda_current_tenant()); \
         CREATE POLICY rls_{table}_owner ON {table} TO CURRENT_USER \
           USING (true) WITH CHECK (true)"
    ))
    .await?;
    Ok(())
}

/// Undoes [`enable`]. PostgreSQL only.
pub(crate) async fn disable(conn: &SchemaManagerConnection<'_>, table: &str) -> Result<(), DbErr> {
    conn.execute_unprepared(&format!(
        "DROP POLICY IF EXISTS rls_{table}_owner ON {table}; \
         DROP POLICY IF EXISTS rls_{table}_tenant ON {table}; \
         ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; \
         ALTER TABLE {table} DISABLE ROW LEVEL SECURITY"
    ))
    .await?;
    Ok(())
}

/// A double-quoted SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
