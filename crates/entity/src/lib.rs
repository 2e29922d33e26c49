//! Agenda's schema: one sea-orm entity per table, the status vocabularies, and the
//! validated input types the API accepts.
//!
//! This crate deliberately enables no database driver and no async runtime, so any
//! program can depend on it to read or write Agenda's data model cheaply. Drivers,
//! pooling and queries live in `agenda-storage`; DDL lives in the `migration` crate.
//!
//! Conventions every entity follows (see `docs/schema.md`):
//! - `id` is a UUIDv7 assigned by the application ([`new_id`]) before insert;
//! - `created_at` / `updated_at` are UTC instants maintained by [`stamp`];
//! - status columns are [`sea_orm::ActiveEnum`]s stored as short strings, and the
//!   migrations build their CHECK constraints from the same enums.

pub mod organization;
pub mod user;
pub mod validate;

mod behavior;

pub use behavior::{new_id, now, stamp};

/// Re-exports that callers typically want together.
pub mod prelude {
    pub use crate::organization::{
        self, CreateOrganization, Entity as Organizations, OrganizationStatus, UpdateOrganization,
    };
    pub use crate::user::{self, CreateUser, Entity as Users, UpdateUser, UserRole};
}
