//! Agenda's database layer.
//!
//! - [`browse`]: any tenant table read generically, for the web console;
//! - [`cache`]: the in-process cache of catalogue and provider settings;
//! - [`db`]: the connection pool, session settings, health and transactions;
//! - [`error`]: one classification of database failures for both engines;
//! - [`tenant`]: the tenant scope every tenant-owned query requires;
//! - [`repo`]: repositories, stateless functions taking the executor;
//! - [`schema`]: the live schema and its drift from the entities;
//! - [`secrets`]: secrets sealed at rest with the server's key (`SECRETS_KEY`);
//! - [`config`]: typed settings from the environment.

pub mod backup;
pub mod browse;
pub mod cache;
pub mod config;
pub mod db;
pub mod error;
pub mod fees;
pub mod metrics;
pub mod ops;
pub mod repo;
pub mod schema;
pub mod secrets;
pub mod seed;
pub mod tenant;

pub use db::{DEBUG_CHECK, Db, DbSettings, Engine};
pub use error::{ConflictKind, StorageError};
pub use tenant::{TenantOwned, TenantScope};
