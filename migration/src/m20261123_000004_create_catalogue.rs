//! The catalogue: niches, categories, service templates, services, provider services.

use sea_orm_migration::prelude::*;

use crate::ddl::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Created in this order, dropped in the reverse order.
const TABLES: &[&str] = &[
    "niches",
    "categories",
    "service_templates",
    "services",
    "provider_services",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // niches: Top-level groups of the catalogue (health, beauty, home services, …).
        NewTable::new("niches")
            .tenant()
            .col(string("name"))
            .col(string("slug"))
            .col(nullable(text("description")))
            .col(nullable(string("icon")))
            .col(integer("sort_order").default(0).to_owned())
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check("sort_order_range", Expr::cust("sort_order >= 0"))
            .unique(&["organization_id", "slug"])
            .create(manager)
            .await?;

        // categories: Categories of a niche, optionally nested under a parent category.
        NewTable::new("categories")
            .tenant()
            .reference("niche_id", "niches", ForeignKeyAction::NoAction, false)
            .reference("parent_id", "categories", ForeignKeyAction::NoAction, true)
            .col(string("name"))
            .col(string("slug"))
            .col(nullable(text("description")))
            .col(integer("sort_order").default(0).to_owned())
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check(
                "not_own_parent",
                Expr::cust("parent_id IS NULL OR parent_id <> id"),
            )
            .check("sort_order_range", Expr::cust("sort_order >= 0"))
            .unique(&["organization_id", "slug"])
            .create(manager)
            .await?;

        // service_templates: The organization-wide service catalogue, with default duration and price.
        NewTable::new("service_templates")
            .tenant()
            .reference(
                "category_id",
                "categories",
                ForeignKeyAction::NoAction,
                false,
            )
            .col(string("name"))
            .col(nullable(text("description")))
            .col(integer("default_duration_minutes"))
            .col(nullable(big_integer("default_price_cents")))
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check(
                "duration_range",
                Expr::cust("default_duration_minutes BETWEEN 1 AND 1440"),
            )
            .check(
                "price_non_negative",
                Expr::cust("default_price_cents IS NULL OR default_price_cents >= 0"),
            )
            .unique(&["organization_id", "category_id", "name"])
            .create(manager)
            .await?;

        // services: A provider's own service: name, duration, price.
        NewTable::new("services")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .reference("category_id", "categories", ForeignKeyAction::SetNull, true)
            .reference(
                "template_id",
                "service_templates",
                ForeignKeyAction::SetNull,
                true,
            )
            .col(string("name"))
            .col(nullable(text("description")))
            .col(integer("duration_minutes"))
            .col(big_integer("price_cents"))
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check(
                "duration_range",
                Expr::cust("duration_minutes BETWEEN 1 AND 1440"),
            )
            .check("price_non_negative", Expr::cust("price_cents >= 0"))
            .index(&["provider_id", "is_active"])
            .create(manager)
            .await?;

        // provider_services: A provider's customisation of a catalogue template: price, execution time, buffer after.
        NewTable::new("provider_services")
            .tenant()
            .reference("provider_id", "users", ForeignKeyAction::Cascade, false)
            .reference(
                "template_id",
                "service_templates",
                ForeignKeyAction::Cascade,
                false,
            )
            .col(big_integer("price_cents"))
            .col(integer("execution_minutes"))
            .col(integer("buffer_after_minutes").default(0).to_owned())
            .col(boolean("is_active").default(true).to_owned())
            .timestamps(backend)
            .check("price_non_negative", Expr::cust("price_cents >= 0"))
            .check(
                "execution_range",
                Expr::cust("execution_minutes BETWEEN 1 AND 1440"),
            )
            .check(
                "buffer_range",
                Expr::cust("buffer_after_minutes BETWEEN 0 AND 240"),
            )
            .unique(&["provider_id", "template_id"])
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
