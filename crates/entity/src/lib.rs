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

// sea-orm's model macros expand to `EntityTrait::find`; this crate runs no queries,
// so the workspace rule against unscoped queries (clippy.toml) does not apply here.
#![allow(clippy::disallowed_methods)]

pub mod catalog;
pub mod edge;
pub mod enums;
pub mod local_time;
pub mod patch;
pub mod rules;
pub mod validate;

// One module per table (37), in the order of docs/schema.md, and the two platform
// tables of the operator console (`operator`, `operator_session`).
pub mod appointment;
pub mod appointment_status_history;
pub mod audit_log;
pub mod availability;
pub mod blocked_time_slot;
pub mod category;
pub mod client_payment_preference;
pub mod idempotency_key;
pub mod integration_setting;
pub mod niche;
pub mod notification;
pub mod onboarding_step;
pub mod operator;
pub mod operator_session;
pub mod organization;
pub mod outbox_message;
pub mod password_reset_token;
pub mod payment_settings;
pub mod payment_withdrawal;
pub mod promotion;
pub mod provider_balance;
pub mod provider_break;
pub mod provider_payment_preference;
pub mod provider_service;
pub mod provider_service_fee;
pub mod provider_settings;
pub mod provider_transaction;
pub mod review;
pub mod service;
pub mod service_template;
pub mod staff_member;
pub mod support_message;
pub mod support_ticket;
pub mod system_setting;
pub mod user;
pub mod user_address;
pub mod user_onboarding_progress;
pub mod user_payment_method;
pub mod user_session;

mod behavior;

pub use behavior::{new_id, now, stamp, stamp_created};

/// Re-exports that callers typically want together.
pub mod prelude {
    pub use crate::organization::{
        self, CreateOrganization, Entity as Organizations, OrganizationStatus, UpdateOrganization,
    };
    pub use crate::user::{self, CreateUser, Entity as Users, UpdateUser, UserRole};
}
