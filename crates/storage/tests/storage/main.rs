//! Storage integration tests, on SQLite and PostgreSQL. All storage tests live in this
//! one binary (modules below) to keep link time down.

// Tests read and write across tenants on purpose (to prove isolation, to check
// what a migration or the seed wrote), so the rule against unscoped queries is off.
#![allow(clippy::disallowed_methods)]

mod accounts;
mod analytics;
mod appointments;
mod backup;
mod cache;
mod connection;
mod errors;
mod every_repo;
mod ledger;
mod ops;
mod outbox;
mod pgbouncer;
mod platform;
mod repos;
mod resources;
mod reviews;
mod rls;
mod schema;
mod seed;
