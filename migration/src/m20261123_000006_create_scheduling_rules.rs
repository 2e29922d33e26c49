//! Scheduling rules: availability, breaks, blocked time slots.

use agenda_entity::enums::{AvailabilityKind, BlockSource, RecurrenceKind};
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &["availability", "provider_breaks", "blocked_time_slots"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // availability: Weekly working windows (weekday, local start/end time, slot step) and date overrides (a date off, or special hours).
        NewTable::new("availability")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("kind"))
            .col(nullable(integer("weekday")))
            .col(nullable(date("date")))
            .col(nullable(time("start_time")))
            .col(nullable(time("end_time")))
            .col(boolean("is_available").default(true).to_owned())
            .col(nullable(integer("slot_step_minutes")))
            .timestamps(backend)
            .vocabulary::<AvailabilityKind>("kind")
            .check("kind_fields", Expr::cust("(kind = 'weekly' AND weekday IS NOT NULL AND date IS NULL AND start_time IS NOT NULL AND end_time IS NOT NULL AND is_available) OR (kind = 'date_override' AND date IS NOT NULL AND weekday IS NULL AND (NOT is_available OR (start_time IS NOT NULL AND end_time IS NOT NULL)))"))
            .check("weekday_range", Expr::cust("weekday IS NULL OR weekday BETWEEN 1 AND 7"))
            .check("time_range", Expr::cust("start_time IS NULL OR end_time IS NULL OR start_time <> end_time"))
            .check("slot_step_range", Expr::cust("slot_step_minutes IS NULL OR slot_step_minutes BETWEEN 5 AND 240"))
            .index(&["provider_id", "kind", "weekday"])
            .index(&["provider_id", "date"])
            .create(manager)
            .await?;

        // provider_breaks: Breaks (lunch, …): weekly at local times, or one-off between two instants.
        NewTable::new("provider_breaks")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("kind"))
            .col(nullable(integer("weekday")))
            .col(nullable(time("start_time")))
            .col(nullable(time("end_time")))
            .col(nullable(date("starts_on")))
            .col(nullable(date("ends_on")))
            .col(nullable(timestamp("start_at")))
            .col(nullable(timestamp("end_at")))
            .col(nullable(string("label")))
            .timestamps(backend)
            .vocabulary::<RecurrenceKind>("kind")
            .check("kind_fields", Expr::cust("(kind = 'weekly' AND weekday IS NOT NULL AND start_time IS NOT NULL AND end_time IS NOT NULL AND start_at IS NULL AND end_at IS NULL) OR (kind = 'one_off' AND start_at IS NOT NULL AND end_at IS NOT NULL AND weekday IS NULL AND start_time IS NULL AND end_time IS NULL)"))
            .check("weekday_range", Expr::cust("weekday IS NULL OR weekday BETWEEN 1 AND 7"))
            .check("time_order", Expr::cust("start_time IS NULL OR end_time IS NULL OR end_time > start_time"))
            .check("instant_order", Expr::cust("start_at IS NULL OR end_at IS NULL OR end_at > start_at"))
            .check("date_order", Expr::cust("starts_on IS NULL OR ends_on IS NULL OR ends_on >= starts_on"))
            .index(&["provider_id", "kind"])
            .index(&["provider_id", "start_at"])
            .create(manager)
            .await?;

        // blocked_time_slots: Time a provider cannot be booked, blocked manually or by the system: weekly or one-off.
        NewTable::new("blocked_time_slots")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("kind"))
            .col(nullable(integer("weekday")))
            .col(nullable(time("start_time")))
            .col(nullable(time("end_time")))
            .col(nullable(date("starts_on")))
            .col(nullable(date("ends_on")))
            .col(nullable(timestamp("start_at")))
            .col(nullable(timestamp("end_at")))
            .col(string("source").default("manual").to_owned())
            .col(nullable(text("reason")))
            .reference("created_by", "users", ForeignKeyAction::SetNull, true)
            .timestamps(backend)
            .vocabulary::<RecurrenceKind>("kind")
            .vocabulary::<BlockSource>("source")
            .check("kind_fields", Expr::cust("(kind = 'weekly' AND weekday IS NOT NULL AND start_time IS NOT NULL AND end_time IS NOT NULL AND start_at IS NULL AND end_at IS NULL) OR (kind = 'one_off' AND start_at IS NOT NULL AND end_at IS NOT NULL AND weekday IS NULL AND start_time IS NULL AND end_time IS NULL)"))
            .check("weekday_range", Expr::cust("weekday IS NULL OR weekday BETWEEN 1 AND 7"))
            .check("time_order", Expr::cust("start_time IS NULL OR end_time IS NULL OR end_time > start_time"))
            .check("instant_order", Expr::cust("start_at IS NULL OR end_at IS NULL OR end_at > start_at"))
            .check("date_order", Expr::cust("starts_on IS NULL OR ends_on IS NULL OR ends_on >= starts_on"))
            .index(&["provider_id", "kind"])
            .index(&["provider_id", "start_at"])
            .create(manager)
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        Ok(())
    }
}
