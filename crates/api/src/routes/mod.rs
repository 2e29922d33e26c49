//! HTTP routes. Each area module exposes `router()`; this module only merges them.
//! Handlers are thin: parse and validate, call storage, shape the response.

use axum::Router;

use crate::app::AppState;
use crate::uow::unit_of_work;

mod auth;
mod health;
mod organizations;

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .merge(auth::router())
        .merge(organizations::router());
    Router::new()
        .merge(health::router())
        .nest("/api/v1", v1.layer(axum::middleware::from_fn(unit_of_work)))
        .with_state(state)
}
