//! Agenda's HTTP API and the `agenda` command.
//!
//! - [`accounts`]: organizations and their users: sign-up, invitations, sessions;
//! - [`config`]: the server's settings from the environment;
//! - [`app`]: application state, the router and the server lifecycle;
//! - [`routes`]: one module per area;
//! - [`uow`]: the per-request unit of work (transaction);
//! - [`error`] and [`extract`]: one error shape for every failure;
//! - [`auth`]: bearer-token authentication and roles;
//! - [`password`]: password hashing and its bound;
//! - [`keep_alive`]: what happens to request bodies answered before being read;
//! - [`memory`]: how the process returns large blocks to the OS;
//! - [`cli`]: the `agenda` command line.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod keep_alive;
pub mod memory;
pub mod metrics;
pub mod password;
pub mod progress;
pub mod routes;
pub mod telemetry;
pub mod uow;

pub use app::{AppState, Application};
pub use config::Settings;
