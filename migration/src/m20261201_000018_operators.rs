//! The platform operator's console credentials (issue 17): `operators` and
//! `operator_sessions`.
//!
//! These are platform tables, outside any tenant: no `organization_id`, no row-level
//! security, not browsed by the organization view of the console and not part of a
//! backup (an operator is a credential of this deployment, not the organizations'
//! data). Operators are made by `agenda operator create` only; the application role
//! may read them (sign-in) and update only their sign-in counters, and owns the
//! sessions. On PostgreSQL this migration takes back from every other role the
//! rights default privileges gave it on `operators`; `agenda db create-app-role`
//! does the same for the role it manages.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &["operators", "operator_sessions"];

pub use agenda_entity::operator::COUNTER_COLUMNS as OPERATOR_COUNTER_COLUMNS;

/// Leaves every role other than the owner with `SELECT` and the counter columns'
/// `UPDATE` on `operators`, whatever default privileges granted.
fn restrict_grants() -> String {
    format!(
        r"
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT DISTINCT grantee FROM information_schema.role_table_grants
             WHERE table_schema = current_schema() AND table_name = 'operators'
               AND grantee <> current_user AND grantee <> 'PUBLIC'
    LOOP
        EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON operators FROM %I', r.grantee);
        EXECUTE format('GRANT UPDATE ({OPERATOR_COUNTER_COLUMNS}) ON operators TO %I', r.grantee);
    END LOOP;
END
$$"
    )
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // operators: Platform operators of the console; made by `agenda operator create`.
        NewTable::new("operators")
            .col(string("name"))
            .col(string("password_hash"))
            .col(boolean("read_only"))
            .col(integer("failed_sign_ins"))
            .col(nullable(timestamp("locked_until")))
            .col(nullable(timestamp("last_signed_in_at")))
            .timestamps(backend)
            .unique(&["name"])
            .create(manager)
            .await?;

        // operator_sessions: An operator's console sessions, the token kept only as its SHA-256 digest.
        NewTable::new("operator_sessions")
            .reference("operator_id", "operators", ForeignKeyAction::Cascade, false)
            .col(string("token_hash"))
            .col(timestamp("expires_at"))
            .col(nullable(timestamp("revoked_at")))
            .col(nullable(string("user_agent")))
            .timestamps(backend)
            .unique(&["token_hash"])
            .index(&["expires_at"])
            .create(manager)
            .await?;

        if backend == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&restrict_grants())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        Ok(())
    }
}
