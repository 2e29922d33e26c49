//! The people of an organization.

use agenda_entity::user::UserRole;
use sea_orm_migration::prelude::*;

use crate::ddl::{NewTable, drop_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        NewTable::new("users")
            .tenant()
            .col(ColumnDef::new("email").string().not_null().to_owned())
            .col(
                ColumnDef::new("password_hash")
                    .string()
                    .not_null()
                    .to_owned(),
            )
            .col(ColumnDef::new("full_name").string().not_null().to_owned())
            .col(ColumnDef::new("phone").string().null().to_owned())
            .col(ColumnDef::new("role").string().not_null().to_owned())
            .col(ColumnDef::new("tax_id").string().null().to_owned())
            .col(
                ColumnDef::new("is_active")
                    .boolean()
                    .not_null()
                    .default(true)
                    .to_owned(),
            )
            .col(
                ColumnDef::new("is_verified")
                    .boolean()
                    .not_null()
                    .default(false)
                    .to_owned(),
            )
            .col(
                ColumnDef::new("last_login_at")
                    .timestamp_with_time_zone()
                    .null()
                    .to_owned(),
            )
            .timestamps(backend)
            .vocabulary::<UserRole>("role")
            .check("email_lowercase", Expr::cust("email = lower(email)"))
            .check(
                "tax_id_digits",
                Expr::cust("tax_id IS NULL OR length(tax_id) IN (11, 14)"),
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
