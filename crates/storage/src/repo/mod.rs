//! Repositories: stateless functions over one aggregate each. They take the executor
//! (`&impl ConnectionTrait`: the pool or an open transaction) so a caller can compose
//! several of them in one transaction, and they return [`crate::StorageError`].

pub mod analytics;
pub mod appointments;
pub mod audit;
pub mod idempotency;
pub mod integrations;
pub mod ledger;
mod lockout;
pub mod notifications;
pub mod operators;
pub mod organizations;
pub mod outbox;
pub mod payment_methods;
pub mod promotions;
pub mod resource;
pub mod reviews;
pub mod search;
pub mod sessions;
pub mod users;
