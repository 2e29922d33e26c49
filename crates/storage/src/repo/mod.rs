//! Repositories: stateless functions over one aggregate each. They take the executor
//! (`&impl ConnectionTrait`: the pool or an open transaction) so a caller can compose
//! several of them in one transaction, and they return [`crate::StorageError`].

pub mod analytics;
pub mod appointments;
pub mod ledger;
pub mod organizations;
pub mod resource;
pub mod search;
pub mod users;
