//! Appointments, their status history, reviews.

use agenda_entity::enums::{AppointmentStatus, ModerationStatus, PaymentMethod};
use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &["appointments", "appointment_status_history", "reviews"];

/// `appointments.payment_status` as this migration created it. Frozen: migration 17
/// (`m20261201_000017_refund_status`) widens the CHECK to the whole `PaymentStatus`
/// enum, so a fresh database and an upgraded one end with the same constraint.
pub(crate) const PAYMENT_STATUSES: &[&str] = &["unpaid", "pending", "paid", "refunded", "failed"];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        create_reject_update_function(manager).await?;

        // appointments: Bookings. No two active appointments of one provider overlap (exclusion constraint on PostgreSQL, checked in the booking transaction on SQLite).
        NewTable::new("appointments")
            .tenant()
            .reference("client_id", "users", ForeignKeyAction::NoAction, false)
            .reference("provider_id", "users", ForeignKeyAction::NoAction, false)
            .reference("service_id", "services", ForeignKeyAction::NoAction, true)
            .reference(
                "provider_service_id",
                "provider_services",
                ForeignKeyAction::NoAction,
                true,
            )
            .reference(
                "promotion_id",
                "promotions",
                ForeignKeyAction::SetNull,
                true,
            )
            .reference(
                "address_id",
                "user_addresses",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(timestamp("start_at"))
            .col(timestamp("end_at"))
            .col(timestamp("occupied_until"))
            .col(string("status").default("pending").to_owned())
            .col(big_integer("price_cents"))
            .col(big_integer("discount_cents").default(0).to_owned())
            .col(string("currency"))
            .col(nullable(string("payment_method")))
            .col(string("payment_status").default("unpaid").to_owned())
            .col(nullable(text("notes")))
            .col(nullable(text("provider_notes")))
            .col(nullable(text("cancellation_reason")))
            .col(nullable(timestamp("canceled_at")))
            .reference("canceled_by", "users", ForeignKeyAction::SetNull, true)
            .timestamps(backend)
            .vocabulary::<AppointmentStatus>("status")
            .vocabulary::<PaymentMethod>("payment_method")
            .vocabulary_of("payment_status", PAYMENT_STATUSES)
            .check("time_order", Expr::cust("end_at > start_at"))
            .check("occupied_after_end", Expr::cust("occupied_until >= end_at"))
            .check(
                "one_offering",
                Expr::cust("(service_id IS NULL) <> (provider_service_id IS NULL)"),
            )
            .check("price_non_negative", Expr::cust("price_cents >= 0"))
            .check(
                "discount_range",
                Expr::cust("discount_cents >= 0 AND discount_cents <= price_cents"),
            )
            .check(
                "currency_format",
                Expr::cust("length(currency) = 3 AND upper(currency) = currency"),
            )
            .index(&["provider_id", "start_at"])
            .index(&["client_id", "start_at"])
            .index(&["organization_id", "status", "start_at"])
            .create(manager)
            .await?;

        // appointment_status_history: Every status transition of an appointment: from, to, who, when (append-only).
        NewTable::new("appointment_status_history")
            .tenant()
            .reference(
                "appointment_id",
                "appointments",
                ForeignKeyAction::Cascade,
                false,
            )
            .col(nullable(string("from_status")))
            .col(string("to_status"))
            // NO ACTION, not SET NULL: the history is append-only, so SET NULL would be an
            // UPDATE the trigger refuses. Users who acted are deactivated, not deleted.
            .reference("changed_by", "users", ForeignKeyAction::NoAction, true)
            .col(nullable(text("reason")))
            .col(timestamp_now("created_at", backend))
            .vocabulary::<AppointmentStatus>("from_status")
            .vocabulary::<AppointmentStatus>("to_status")
            .index(&["appointment_id", "created_at"])
            .create(manager)
            .await?;

        // reviews: One review per completed appointment: rating 1..5, comment, the provider's response, moderation.
        NewTable::new("reviews")
            .tenant()
            .reference(
                "appointment_id",
                "appointments",
                ForeignKeyAction::Cascade,
                false,
            )
            .reference("client_id", "users", ForeignKeyAction::Cascade, false)
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .col(integer("rating"))
            .col(nullable(text("comment")))
            .col(nullable(text("provider_response")))
            .col(nullable(timestamp("responded_at")))
            .col(string("moderation_status").default("pending").to_owned())
            .reference("moderated_by", "users", ForeignKeyAction::SetNull, true)
            .col(nullable(timestamp("moderated_at")))
            .timestamps(backend)
            .vocabulary::<ModerationStatus>("moderation_status")
            .check("rating_range", Expr::cust("rating BETWEEN 1 AND 5"))
            .unique(&["appointment_id"])
            .index(&["provider_id", "moderation_status"])
            .create(manager)
            .await?;

        append_only(manager, "appointment_status_history").await?;
        if backend == DbBackend::Postgres {
            // No two active appointments of one provider may overlap, buffer included.
            // Canceled and no-show appointments free their time, so they are left out.
            // On SQLite the booking transaction (which holds the write lock) re-checks
            // overlaps instead; see agenda_storage's appointment repository.
            let inactive: Vec<String> = AppointmentStatus::INACTIVE
                .iter()
                .map(|s| format!("'{}'", s.as_str()))
                .collect();
            let conn = manager.get_connection();
            conn.execute_unprepared("CREATE EXTENSION IF NOT EXISTS btree_gist")
                .await?;
            conn.execute_unprepared(&format!(
                "ALTER TABLE appointments ADD CONSTRAINT ex_appointments_provider_id_period \
                 EXCLUDE USING gist (provider_id WITH =, tstzrange(start_at, occupied_until, '[)') WITH &&) \
                 WHERE (status NOT IN ({}))",
                inactive.join(", ")
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            drop_table(manager, table).await?;
        }
        drop_reject_update_function(manager).await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP EXTENSION IF EXISTS btree_gist")
                .await?;
        }
        Ok(())
    }
}
