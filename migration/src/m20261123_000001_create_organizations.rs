//! The tenant table.

use agenda_entity::organization::OrganizationStatus;
use sea_orm_migration::prelude::*;

use crate::ddl::{NewTable, drop_table};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        NewTable::new("organizations")
            .col(ColumnDef::new("slug").string().not_null().to_owned())
            .col(ColumnDef::new("name").string().not_null().to_owned())
            .col(ColumnDef::new("time_zone").string().not_null().to_owned())
            .col(ColumnDef::new("currency").string().not_null().to_owned())
            .col(ColumnDef::new("status").string().not_null().to_owned())
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
