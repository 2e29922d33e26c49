//! E-mail: the transactional outbox, token purposes, and the organization's locale.
//!
//! - `organizations.locale` (`en` or `pt-BR`, default `en`): the language of the
//!   organization's e-mails.
//! - `password_reset_tokens.purpose` (`password_reset`, `email_verification`,
//!   `invitation`; existing rows are resets): the table becomes the one store of
//!   single-use tokens mailed to a user, so verification and invitation tokens get
//!   the hashing, single use, expiry, tenant lookup and row-level security that
//!   resets already have, instead of a second copy of all of it.
//! - `outbox_messages`: rendered e-mails written in the event's own transaction and
//!   delivered by the worker (`docs/email.md`). `ix_outbox_messages_status_next_attempt_at`
//!   serves the claim query and the status counts.
//!
//! On PostgreSQL the outbox gets row-level security like every tenant table
//! (migration 11), plus two `SECURITY DEFINER` functions for the worker and the
//! metrics, which must see every tenant's due mail without weakening row-level
//! security for anything else:
//!
//! - `agenda_outbox_claim(worker, at, lease_until, batch)` claims up to `batch` due
//!   messages of any tenant (`FOR UPDATE SKIP LOCKED`, so concurrent workers never
//!   claim the same row) and returns only their `id` and `organization_id`. The
//!   worker then reads and updates each message inside its own tenant.
//! - `agenda_outbox_counts()` returns counts (and the oldest creation time) of the
//!   unfinished and dead messages per status: numbers, no content.
//!
//! `EXECUTE` on both is revoked from `PUBLIC`; `agenda db create-app-role` grants it.

use agenda_entity::enums::{Locale, MessageKind, OutboxStatus, TokenPurpose};
use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::ddl::*;
use crate::m20261123_000011_row_level_security as rls;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant-owned tables this migration creates (row-level security on PostgreSQL).
pub const TENANT_TABLES: &[&str] = &["outbox_messages"];

/// The worker's and the metrics' cross-tenant functions, with their signatures.
pub const OUTBOX_FUNCTIONS: &[&str] = &[
    "agenda_outbox_claim(text, timestamptz, timestamptz, integer)",
    "agenda_outbox_counts()",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        add_column(
            manager,
            "organizations",
            "locale",
            Locale::En.as_str(),
            &vocabulary_sql::<Locale>("locale"),
        )
        .await?;
        add_column(
            manager,
            "password_reset_tokens",
            "purpose",
            TokenPurpose::PasswordReset.as_str(),
            &vocabulary_sql::<TokenPurpose>("purpose"),
        )
        .await?;

        // outbox_messages: E-mails written with their event, delivered by the worker.
        NewTable::new("outbox_messages")
            .tenant()
            .reference(
                "recipient_user_id",
                "users",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(string("kind"))
            .col(string("locale"))
            .col(string("to_address"))
            .col(nullable(string("to_name")))
            .col(string("subject"))
            .col(text("body_text"))
            .col(text("body_html"))
            .col(string("message_id"))
            .col(string("status"))
            .col(integer("attempts").default(0).to_owned())
            .col(timestamp("next_attempt_at"))
            .col(nullable(text("last_error")))
            .col(nullable(string("claimed_by")))
            .col(nullable(timestamp("claimed_until")))
            .col(nullable(timestamp("sent_at")))
            .timestamps(backend)
            .vocabulary::<MessageKind>("kind")
            .vocabulary::<Locale>("locale")
            .vocabulary::<OutboxStatus>("status")
            .check("attempts_non_negative", Expr::cust("attempts >= 0"))
            .check(
                "claimed_while_sending",
                Expr::cust("(status = 'sending') = (claimed_until IS NOT NULL)"),
            )
            .check(
                "sent_at_when_sent",
                Expr::cust("(status = 'sent') = (sent_at IS NOT NULL)"),
            )
            .unique(&["message_id"])
            .index(&["organization_id", "created_at"])
            .index(&["status", "next_attempt_at"])
            .create(manager)
            .await?;

        if backend == DbBackend::Postgres {
            let conn = manager.get_connection();
            let schema = rls::current_schema(conn).await?;
            for table in TENANT_TABLES {
                rls::enable(conn, table).await?;
            }
            conn.execute_unprepared(&format!(
                "CREATE FUNCTION agenda_outbox_claim(worker text, at timestamptz, \
                   lease_until timestamptz, batch integer) \
                 RETURNS TABLE (id uuid, organization_id uuid) \
                 LANGUAGE sql VOLATILE SECURITY DEFINER \
                 SET search_path = pg_catalog, {schema}, pg_temp \
                 AS $$ \
                   UPDATE {schema}.outbox_messages AS m \
                      SET status = 'sending', claimed_by = worker, claimed_until = lease_until, \
                          attempts = m.attempts + 1, updated_at = at \
                    WHERE m.id IN ( \
                      SELECT d.id FROM {schema}.outbox_messages AS d \
                       WHERE (d.status = 'queued' AND d.next_attempt_at <= at) \
                          OR (d.status = 'sending' AND d.claimed_until <= at) \
                       ORDER BY d.next_attempt_at, d.id \
                       LIMIT batch \
                       FOR UPDATE SKIP LOCKED) \
                   RETURNING m.id, m.organization_id \
                 $$"
            ))
            .await?;
            conn.execute_unprepared(&format!(
                "CREATE FUNCTION agenda_outbox_counts() \
                 RETURNS TABLE (status text, messages bigint, oldest timestamptz) \
                 LANGUAGE sql STABLE SECURITY DEFINER \
                 SET search_path = pg_catalog, {schema}, pg_temp \
                 AS $$ \
                   SELECT m.status::text, count(*), min(m.created_at) \
                     FROM {schema}.outbox_messages AS m \
                    WHERE m.status IN ('queued', 'sending', 'dead') \
                    GROUP BY m.status \
                 $$"
            ))
            .await?;
            for function in OUTBOX_FUNCTIONS {
                conn.execute_unprepared(&format!(
                    "REVOKE EXECUTE ON FUNCTION {function} FROM PUBLIC"
                ))
                .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            let conn = manager.get_connection();
            for function in OUTBOX_FUNCTIONS.iter().rev() {
                conn.execute_unprepared(&format!("DROP FUNCTION IF EXISTS {function}"))
                    .await?;
            }
        }
        drop_table(manager, "outbox_messages").await?;
        // Verification and invitation tokens cannot exist without their purpose.
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "DELETE FROM password_reset_tokens WHERE purpose <> '{}'",
                TokenPurpose::PasswordReset.as_str()
            ))
            .await?;
        drop_column(manager, "password_reset_tokens", "purpose").await?;
        drop_column(manager, "organizations", "locale").await
    }
}
