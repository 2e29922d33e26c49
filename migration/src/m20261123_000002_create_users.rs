//! The people of an organization.

use agenda_entity::enums::UserRole;
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        NewTable::new("users")
            .tenant()
            .col(string("email"))
            .col(string("password_hash"))
            .col(string("full_name"))
            .col(nullable(string("phone")))
            .col(string("role"))
            .col(nullable(string("tax_id")))
            .col(boolean("is_active").default(true).to_owned())
            .col(boolean("is_verified").default(false).to_owned())
            .col(nullable(timestamp("last_login_at")))
            .col(integer("failed_login_attempts").default(0).to_owned())
            .col(nullable(timestamp("locked_until")))
            .timestamps(backend)
            .vocabulary::<UserRole>("role")
            .check("email_lowercase", Expr::cust("email = lower(email)"))
            .check(
                "tax_id_digits",
                Expr::cust("tax_id IS NULL OR length(tax_id) IN (11, 14)"),
            )
            .check(
                "failed_logins_non_negative",
                Expr::cust("failed_login_attempts >= 0"),
            )
            // Leads with organization_id, so it also serves the tenant foreign key.
            .unique(&["organization_id", "email"])
            .index(&["organization_id", "role"])
            .create(manager)
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, "users").await
    }
}
