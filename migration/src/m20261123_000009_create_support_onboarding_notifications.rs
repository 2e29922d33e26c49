//! Support tickets and messages, onboarding, notifications.

use agenda_entity::enums::{
    NotificationKind, OnboardingStatus, TicketPriority, TicketStatus, UserRole,
};
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &[
    "support_tickets",
    "support_messages",
    "onboarding_steps",
    "user_onboarding_progress",
    "notifications",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // support_tickets: Support requests of users, worked by support staff.
        NewTable::new("support_tickets")
            .tenant()
            .reference("requester_id", "users", ForeignKeyAction::Cascade, false)
            .reference("assignee_id", "users", ForeignKeyAction::SetNull, true)
            .reference(
                "appointment_id",
                "appointments",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(string("subject"))
            .col(string("status").default("open").to_owned())
            .col(string("priority").default("normal").to_owned())
            .col(nullable(string("category")))
            .col(nullable(timestamp("closed_at")))
            .timestamps(backend)
            .vocabulary::<TicketStatus>("status")
            .vocabulary::<TicketPriority>("priority")
            .index(&["organization_id", "status"])
            .create(manager)
            .await?;

        // support_messages: Messages of a ticket. Internal notes are visible to staff only.
        NewTable::new("support_messages")
            .tenant()
            .reference(
                "ticket_id",
                "support_tickets",
                ForeignKeyAction::Cascade,
                false,
            )
            .reference("author_id", "users", ForeignKeyAction::SetNull, true)
            .col(text("body"))
            .col(boolean("is_internal").default(false).to_owned())
            .timestamps(backend)
            .index(&["ticket_id", "created_at"])
            .create(manager)
            .await?;

        // onboarding_steps: The steps of the onboarding checklist, per role.
        NewTable::new("onboarding_steps")
            .tenant()
            .col(string("key"))
            .col(string("title"))
            .col(nullable(text("description")))
            .col(string("role"))
            .col(integer("sort_order").default(0).to_owned())
            .col(boolean("is_required").default(true).to_owned())
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .vocabulary::<UserRole>("role")
            .check("sort_order_range", Expr::cust("sort_order >= 0"))
            .unique(&["organization_id", "key"])
            .create(manager)
            .await?;

        // user_onboarding_progress: A user's progress on each onboarding step.
        NewTable::new("user_onboarding_progress")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .reference(
                "step_id",
                "onboarding_steps",
                ForeignKeyAction::Cascade,
                false,
            )
            .col(string("status").default("pending").to_owned())
            .col(nullable(timestamp("completed_at")))
            .timestamps(backend)
            .vocabulary::<OnboardingStatus>("status")
            .check(
                "completed_at_when_completed",
                Expr::cust("(status = 'completed') = (completed_at IS NOT NULL)"),
            )
            .unique(&["user_id", "step_id"])
            .create(manager)
            .await?;

        // notifications: In-app notifications of a user, optionally about an appointment.
        NewTable::new("notifications")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("kind"))
            .col(string("title"))
            .col(text("body"))
            .reference(
                "appointment_id",
                "appointments",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(boolean("is_read").default(false).to_owned())
            .col(nullable(timestamp("read_at")))
            .timestamps(backend)
            .vocabulary::<NotificationKind>("kind")
            .check(
                "read_at_when_read",
                Expr::cust("is_read = (read_at IS NOT NULL)"),
            )
            .index(&["user_id", "is_read", "created_at"])
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
