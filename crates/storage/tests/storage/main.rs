//! Storage integration tests, on SQLite and PostgreSQL. All storage tests live in this
//! one binary (modules below) to keep link time down.

mod connection;
mod errors;
mod repos;
mod resources;
mod schema;
mod seed;
