//! Agenda's schema migrations: the source of truth for the database structure.
//!
//! Each migration is reversible (`down` fully undoes `up`) and runs on SQLite and
//! PostgreSQL. Shared conventions (constraint names, key and timestamp columns,
//! vocabulary checks) live in [`ddl`]. Run them with `cargo run -p migration -- up`,
//! `sea-orm-cli migrate up`, `agenda migrate up`, or automatically at server start
//! when `AUTO_MIGRATE=true`.

pub use sea_orm_migration::prelude::*;

pub mod ddl;

mod m20261123_000001_create_organizations;
mod m20261123_000002_create_users;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_organizations::Migration),
            Box::new(m20261123_000002_create_users::Migration),
        ]
    }
}
