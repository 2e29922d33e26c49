//! Platform tables: system settings, audit log, idempotency keys.

use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &["system_settings", "audit_log", "idempotency_keys"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // system_settings: Per organization key/value settings.
        NewTable::new("system_settings")
            .tenant()
            .col(string("key"))
            .col(json("value"))
            .col(nullable(text("description")))
            .reference("updated_by", "users", ForeignKeyAction::SetNull, true)
            .timestamps(backend)
            .unique(&["organization_id", "key"])
            .create(manager)
            .await?;

        // audit_log: Who did what to which record: admin actions, backups, restores, role changes (append-only). Platform-wide events have no organization.
        NewTable::new("audit_log")
            .reference(
                "organization_id",
                "organizations",
                ForeignKeyAction::Cascade,
                true,
            )
            // NO ACTION: the log is append-only and must keep its actors (see
            // appointment_status_history.changed_by).
            .reference("actor_id", "users", ForeignKeyAction::NoAction, true)
            .col(string("action"))
            .col(string("entity_type"))
            .col(nullable(uuid("entity_id")))
            .col(json("details"))
            .col(nullable(string("ip_address")))
            .col(nullable(string("request_id")))
            .col(timestamp_now("created_at", backend))
            .index(&["organization_id", "created_at"])
            .index(&["entity_type", "entity_id"])
            .create(manager)
            .await?;

        // idempotency_keys: Stored responses of POSTs retried with the same Idempotency-Key (bookings, payments, withdrawals).
        NewTable::new("idempotency_keys")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("key"))
            .col(string("method"))
            .col(string("path"))
            .col(string("request_hash"))
            .col(nullable(integer("response_status")))
            .col(nullable(json("response_body")))
            .col(timestamp("expires_at"))
            .timestamps(backend)
            .check(
                "response_status_range",
                Expr::cust("response_status IS NULL OR response_status BETWEEN 100 AND 599"),
            )
            .check(
                "expiry_after_creation",
                Expr::cust("expires_at > created_at"),
            )
            .unique(&["user_id", "key"])
            .index(&["expires_at"])
            .create(manager)
            .await?;
        append_only(manager, "audit_log").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        Ok(())
    }
}
