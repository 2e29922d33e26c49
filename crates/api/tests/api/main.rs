//! API integration tests: the real application on port 0 against a fresh database of
//! each engine. One test binary; areas are modules.

// Tests read and write across tenants on purpose (to prove isolation, to check
// what a migration or the seed wrote), so the rule against unscoped queries is off.
#![allow(clippy::disallowed_methods)]

mod accounts;
mod appointments;
mod areas;
mod auth;
mod cache;
mod calendar;
mod catalogue;
mod cli;
mod console;
mod contract;
mod docs_page;
mod edges;
mod extras;
mod faults;
mod foundation;
mod generated_client;
mod http_layer;
mod idempotency;
mod instants;
mod integrations;
mod keep_alive;
mod logs;
mod mail;
mod marketplace;
mod metrics;
mod openapi;
mod operator_console;
mod operators;
mod organizations;
mod promotions;
mod scaling;
mod seed;
mod support;
mod traces;
mod webhooks;
