//! Agenda's schema migrations: the source of truth for the database structure.
//!
//! Each migration is reversible (`down` fully undoes `up`) and runs on SQLite and
//! PostgreSQL. Shared conventions (constraint names, key and timestamp columns,
//! vocabulary checks) live in [`ddl`]. Run them with `cargo run -p migration -- up`,
//! `sea-orm-cli migrate up`, `agenda migrate up`, or automatically at server start
//! when `AUTO_MIGRATE=true`.

pub use sea_orm_migration::MigrationStatus;
pub use sea_orm_migration::prelude::*;

pub mod ddl;
pub mod fresh;

mod m20261123_000001_create_organizations;
mod m20261123_000002_create_users;
mod m20261123_000003_create_identity;
mod m20261123_000004_create_catalogue;
mod m20261123_000005_create_provider_and_payment_config;
mod m20261123_000006_create_scheduling_rules;
mod m20261123_000007_create_appointments;
mod m20261123_000008_create_ledger;
mod m20261123_000009_create_support_onboarding_notifications;
mod m20261123_000010_create_platform;
mod m20261123_000011_row_level_security;
mod m20261201_000012_email_outbox;
mod m20261201_000014_integration_secrets;
mod m20261201_000015_marketplace;
mod m20261201_000017_refund_status;
mod m20261201_000018_operators;
mod m20261201_000019_auth_in_one_call;
mod m20261201_000020_busy_index;

pub use m20261201_000012_email_outbox::OUTBOX_FUNCTIONS;
pub use m20261201_000018_operators::OPERATOR_COUNTER_COLUMNS;

/// Every table with an `organization_id` column (all but `organizations`): each has
/// row-level security on PostgreSQL. A schema test checks the list against the live
/// catalog.
pub fn tenant_tables() -> impl Iterator<Item = &'static str> {
    m20261123_000011_row_level_security::TENANT_TABLES
        .iter()
        .chain(m20261201_000012_email_outbox::TENANT_TABLES)
        .copied()
}

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_organizations::Migration),
            Box::new(m20261123_000002_create_users::Migration),
            Box::new(m20261123_000003_create_identity::Migration),
            Box::new(m20261123_000004_create_catalogue::Migration),
            Box::new(m20261123_000005_create_provider_and_payment_config::Migration),
            Box::new(m20261123_000006_create_scheduling_rules::Migration),
            Box::new(m20261123_000007_create_appointments::Migration),
            Box::new(m20261123_000008_create_ledger::Migration),
            Box::new(m20261123_000009_create_support_onboarding_notifications::Migration),
            Box::new(m20261123_000010_create_platform::Migration),
            Box::new(m20261123_000011_row_level_security::Migration),
            Box::new(m20261201_000012_email_outbox::Migration),
            Box::new(m20261201_000014_integration_secrets::Migration),
            Box::new(m20261201_000015_marketplace::Migration),
            Box::new(m20261201_000017_refund_status::Migration),
            Box::new(m20261201_000018_operators::Migration),
            Box::new(m20261201_000019_auth_in_one_call::Migration),
            Box::new(m20261201_000020_busy_index::Migration),
        ]
    }

    /// Drops every table, function and type of the schema, then applies every
    /// migration: the default leaves migration 11's functions behind on PostgreSQL
    /// and drops SQLite tables in an order foreign keys refuse (see [`fresh`]). Every
    /// way of running `fresh` ends here: `agenda migrate fresh --yes`, `cargo run -p
    /// migration -- fresh` and `sea-orm-cli migrate fresh`.
    async fn fresh<'c, C>(db: C) -> Result<(), DbErr>
    where
        C: IntoSchemaManagerConnection<'c>,
    {
        let db = db.into_database_executor();
        fresh::drop_everything(&db).await?;
        Self::up(db, None).await
    }
}
