//! The tenant table.

use agenda_entity::enums::OrganizationStatus;
use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        NewTable::new("organizations")
            .col(string("slug"))
            .col(string("name"))
            .col(string("time_zone"))
            .col(string("currency"))
            .col(string("status"))
            .timestamps(backend)
            .vocabulary::<OrganizationStatus>("status")
            .check("slug_format", Expr::cust("length(slug) BETWEEN 3 AND 63"))
            .check(
                "currency_format",
                Expr::cust("length(currency) = 3 AND upper(currency) = currency"),
            )
            .unique(&["slug"])
            .create(manager)
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, "organizations").await
    }
}
