//! Refund status and refund debt (issue 14):
//!
//! - `appointments.payment_status` may be `partially_refunded` (part of a settled
//!   payment went back to the client; `refunded` once all of it did): the vocabulary
//!   CHECK `ck_appointments_payment_status` is widened to the whole `PaymentStatus`
//!   enum.
//! - `provider_balances.available_cents` may go below zero: a refund the provider's
//!   balance cannot cover is recorded (the processor has already returned the money),
//!   and the negative available balance is the provider's debt (`docs/ledger.md`).
//!   `ck_provider_balances_available_non_negative` is dropped;
//!   `ck_provider_balances_pending_non_negative` stays.
//!
//! PostgreSQL changes the constraints in place (`ALTER TABLE … DROP/ADD CONSTRAINT`),
//! so row-level security, policies, grants and triggers are untouched. SQLite cannot
//! alter a CHECK: each table is rebuilt with [`crate::ddl::sqlite_rebuild`] (the
//! documented procedure: a new table from the edited `CREATE TABLE`, rows copied,
//! indexes and triggers recreated, foreign keys checked, in one transaction).
//!
//! `down` narrows the constraints again: `partially_refunded` payments become `paid`
//! (what they were before this migration; the ledger keeps every refund), and it
//! refuses, changing nothing, while a provider is in debt (that balance cannot be
//! represented without this migration).

use agenda_entity::enums::PaymentStatus;
use sea_orm::{DbBackend, Statement};
use sea_orm_migration::prelude::*;

use crate::ddl::{sqlite_rebuild, vocabulary_sql};
use crate::m20261123_000007_create_appointments::PAYMENT_STATUSES;

#[derive(DeriveMigrationName)]
pub struct Migration;

const PAYMENT_CHECK: &str = "ck_appointments_payment_status";
const AVAILABLE_CHECK: &str = "ck_provider_balances_available_non_negative";
const AVAILABLE_CONDITION: &str = "available_cents >= 0";

/// The payment-status CHECK's condition over `values`.
fn payment_condition(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    format!("payment_status IN ({})", quoted.join(", "))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let widened = vocabulary_sql::<PaymentStatus>("payment_status");
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "ALTER TABLE appointments DROP CONSTRAINT \"{PAYMENT_CHECK}\", \
                     ADD CONSTRAINT \"{PAYMENT_CHECK}\" CHECK ({widened}); \
                     ALTER TABLE provider_balances DROP CONSTRAINT \"{AVAILABLE_CHECK}\""
                ))
                .await?;
            return Ok(());
        }
        sqlite_rebuild(manager, "appointments", &[(PAYMENT_CHECK, Some(&widened))]).await?;
        sqlite_rebuild(manager, "provider_balances", &[(AVAILABLE_CHECK, None)]).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let backend = manager.get_database_backend();
        let in_debt = conn
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM provider_balances WHERE available_cents < 0",
            ))
            .await?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0);
        if in_debt > 0 {
            return Err(DbErr::Migration(format!(
                "{in_debt} provider balance(s) are in debt (available_cents < 0, a refund \
                 larger than the balance); the schema before this migration cannot hold \
                 them. Nothing was changed."
            )));
        }
        let narrowed = payment_condition(PAYMENT_STATUSES);
        conn.execute_unprepared(&format!(
            "UPDATE appointments SET payment_status = 'paid' \
             WHERE payment_status = '{}'",
            PaymentStatus::PartiallyRefunded.as_str()
        ))
        .await?;
        if backend == DbBackend::Postgres {
            conn.execute_unprepared(&format!(
                "ALTER TABLE appointments DROP CONSTRAINT \"{PAYMENT_CHECK}\", \
                 ADD CONSTRAINT \"{PAYMENT_CHECK}\" CHECK ({narrowed}); \
                 ALTER TABLE provider_balances ADD CONSTRAINT \"{AVAILABLE_CHECK}\" \
                 CHECK ({AVAILABLE_CONDITION})"
            ))
            .await?;
            return Ok(());
        }
        sqlite_rebuild(manager, "appointments", &[(PAYMENT_CHECK, Some(&narrowed))]).await?;
        sqlite_rebuild(
            manager,
            "provider_balances",
            &[(AVAILABLE_CHECK, Some(AVAILABLE_CONDITION))],
        )
        .await
    }
}
