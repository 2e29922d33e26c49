//! Identity around users: staff, sessions, password resets, addresses.

use agenda_entity::enums::AddressKind;
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &[
    "staff_members",
    "user_sessions",
    "password_reset_tokens",
    "user_addresses",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // staff_members: The organization's professionals and back-office staff.
        NewTable::new("staff_members")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::SetNull, true)
            .col(string("display_name"))
            .col(nullable(string("title")))
            .col(nullable(text("bio")))
            .col(boolean("is_bookable").default(true).to_owned())
            .col(nullable(string("color")))
            .col(integer("sort_order").default(0).to_owned())
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check(
                "color_format",
                Expr::cust("color IS NULL OR length(color) = 7"),
            )
            .check("sort_order_range", Expr::cust("sort_order >= 0"))
            .unique(&["user_id"])
            .index(&["organization_id", "is_active"])
            .create(manager)
            .await?;

        // user_sessions: Opaque bearer tokens, stored as SHA-256 hashes, with expiry, last use and revocation.
        NewTable::new("user_sessions")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("token_hash"))
            .col(timestamp("expires_at"))
            .col(nullable(timestamp("last_used_at")))
            .col(nullable(timestamp("revoked_at")))
            .col(nullable(string("ip_address")))
            .col(nullable(string("user_agent")))
            .timestamps(backend)
            .check(
                "expiry_after_creation",
                Expr::cust("expires_at > created_at"),
            )
            .unique(&["token_hash"])
            .index(&["user_id", "expires_at"])
            .create(manager)
            .await?;

        // password_reset_tokens: Password reset tokens: hashed, single use, expiring.
        NewTable::new("password_reset_tokens")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("token_hash"))
            .col(timestamp("expires_at"))
            .col(nullable(timestamp("used_at")))
            .timestamps(backend)
            .check(
                "expiry_after_creation",
                Expr::cust("expires_at > created_at"),
            )
            .unique(&["token_hash"])
            .index(&["user_id"])
            .create(manager)
            .await?;

        // user_addresses: Typed postal addresses of a user; at most one default per user.
        NewTable::new("user_addresses")
            .tenant()
            .reference("user_id", "users", ForeignKeyAction::Cascade, false)
            .col(string("kind"))
            .col(nullable(string("label")))
            .col(string("street"))
            .col(nullable(string("number")))
            .col(nullable(string("complement")))
            .col(nullable(string("district")))
            .col(string("city"))
            .col(string("state"))
            .col(string("postal_code"))
            .col(string("country"))
            .col(nullable(double("latitude")))
            .col(nullable(double("longitude")))
            .col(boolean("is_default").default(false).to_owned())
            .timestamps(backend)
            .vocabulary::<AddressKind>("kind")
            .check(
                "country_format",
                Expr::cust("length(country) = 2 AND upper(country) = country"),
            )
            .check(
                "latitude_range",
                Expr::cust("latitude IS NULL OR latitude BETWEEN -90 AND 90"),
            )
            .check(
                "longitude_range",
                Expr::cust("longitude IS NULL OR longitude BETWEEN -180 AND 180"),
            )
            .unique_named(
                "user_id_default",
                &["user_id"],
                Some(Expr::cust("is_default")),
            )
            .index(&["user_id"])
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
