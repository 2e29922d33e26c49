//! HTTP routes. Each area module exposes `router()`; this module only merges them.
//! Handlers are thin: parse and validate, call storage, shape the response.
//!
//! Every `/api/v1` route is registered through `utoipa_axum`'s `OpenApiRouter`
//! (`routes!(handler)` next to the handler's `#[utoipa::path]`), so the OpenAPI
//! document served at `/api/v1/openapi.json` is generated from the same code that
//! mounts the routes: a route cannot be mounted without being documented.

use std::sync::Arc;

use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::idempotency::DocumentHeader;
use crate::uow::unit_of_work;

mod admin;
mod analytics;
mod appointments;
mod auth;
mod catalogue;
mod extras;
mod health;
mod marketplace;
mod notifications;
mod organizations;
mod resources;
mod reviews;
mod settings;
mod support;
mod users;
mod webhooks;

/// The document's fixed parts; paths and schemas come from the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Agenda API",
        description = "Appointment scheduling and services marketplace. Errors always have the shape {\"error\": {\"code\", \"message\", \"fields\"?}}.",
        version = "1"
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign-up, sign-in, sessions, password reset"),
        (name = "organizations", description = "Tenants"),
        (name = "admin", description = "Database monitoring for admins"),
        (name = "appointments", description = "Free slots, booking, status, rescheduling, payment"),
        (name = "catalogue", description = "Niches, categories, service templates, services"),
        (name = "scheduling rules", description = "A provider's working hours, breaks and blocked slots"),
        (name = "reviews", description = "Reviews of completed appointments, responses, moderation"),
        (name = "support", description = "Support tickets and their messages"),
        (name = "users", description = "Profiles, addresses, the user list for staff"),
        (name = "settings", description = "Provider settings, payment and system settings, the audit log"),
        (name = "marketplace", description = "Provider balances, ledger entries, withdrawals, releases"),
        (name = "notifications", description = "The signed-in user's in-app notifications"),
        (name = "analytics", description = "Provider and organization dashboards, provider search"),
        (name = "staff", description = "The organization's staff members"),
        (name = "promotions", description = "Promotions and coupon validation"),
        (name = "onboarding", description = "Onboarding steps and each user's progress"),
        (name = "webhooks", description = "Signed payment events from processors (HMAC, no bearer token)"),
        (name = "meta", description = "This document")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every `/api/v1` route, documented.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(analytics::router())
        .merge(admin::router())
        .merge(appointments::router())
        .merge(marketplace::router())
        .merge(notifications::router())
        .merge(auth::router())
        .merge(catalogue::router())
        .merge(organizations::router())
        .merge(reviews::router())
        .merge(support::router())
        .merge(users::router())
        .merge(settings::router())
        .merge(extras::router())
        .merge(webhooks::router())
}

/// The routes and the OpenAPI document generated from them. Passes over the whole
/// document (such as [`DocumentHeader`]) run once the routes' paths are in it.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1())
        .routes(utoipa_axum::routes!(openapi_json))
        .split_for_parts();
    utoipa::Modify::modify(&DocumentHeader, &mut doc);
    (router, doc)
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(state.openapi.as_ref().clone())
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let (api, _) = api();
    Router::new()
        .merge(health::router())
        .merge(api.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            unit_of_work,
        )))
        .with_state(state)
}

/// The document, built once for the application state.
pub fn openapi() -> Arc<utoipa::openapi::OpenApi> {
    Arc::new(api().1)
}
