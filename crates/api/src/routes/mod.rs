//! HTTP routes. Each area module exposes `router()`; this module only merges them.
//! Handlers are thin: parse and validate, call storage, shape the response.
//!
//! Every `/api/v1` route is registered through `utoipa_axum`'s `OpenApiRouter`
//! (`routes!(handler)` next to the handler's `#[utoipa::path]`), so the OpenAPI
//! document served at `/api/v1/openapi.json` is generated from the same code that
//! mounts the routes: a route cannot be mounted without being documented.

use std::sync::Arc;

use axum::{Json, Router};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use self::document::BearerAuth;
use crate::app::AppState;
use crate::idempotency::DocumentHeader;
use crate::uow::{ToleratesLag, unit_of_work};

mod admin;
mod analytics;
mod appointments;
mod auth;
mod catalogue;
mod console;
mod docs;
mod document;
mod extras;
mod health;
mod integrations;
mod marketplace;
mod notifications;
mod organizations;
mod payment_methods;
mod profiles;
pub(crate) mod refunds;
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
        (name = "auth", description = "Sign-in, sessions, accepting invitations, password reset, e-mail verification"),
        (name = "organizations", description = "Tenants: self-service sign-up (an organization and its first admin), the organization's profile"),
        (name = "admin", description = "Database monitoring for admins"),
        (name = "appointments", description = "Free slots, booking, status, rescheduling, payment"),
        (name = "catalogue", description = "Niches, categories, service templates, services"),
        (name = "scheduling rules", description = "A provider's working hours, breaks and blocked slots"),
        (name = "reviews", description = "Reviews of completed appointments, responses, moderation"),
        (name = "support", description = "Support tickets and their messages"),
        (name = "users", description = "Profiles, addresses; staff accounts for admins: invitations, roles, deactivation.\n\n\
| route | client | provider | support | admin |\n\
|---|---|---|---|---|\n\
| `GET`/`PATCH /users/me`, addresses | themself | themself | themself | themself |\n\
| `GET /users`, `GET /users/{id}` | themself only | themself only | anyone | anyone |\n\
| `POST /users` (invite any role), `POST /users/{id}/invitation` | no | no | no | yes |\n\
| `POST /users/{id}/role`, `/deactivate`, `/reactivate` | no | no | no | yes |\n\n\
The organization's last active admin can be neither demoted nor deactivated (`409 last_admin`)."),
        (name = "integrations", description = "An organization's integrations and their write-only secrets (admin)"),
        (name = "payment methods", description = "A client's saved payment methods: processor tokens, never card data"),
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

/// Every `/api/v1` route, documented.
fn v1() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        // Dashboards, search and the catalogue tolerate replica lag (docs/scaling.md).
        .merge(analytics::router().layer(axum::Extension(ToleratesLag)))
        .merge(admin::router())
        .merge(refunds::router())
        .merge(appointments::router())
        .merge(marketplace::router())
        .merge(notifications::router())
        .merge(auth::router())
        .merge(catalogue::router().layer(axum::Extension(ToleratesLag)))
        .merge(organizations::router())
        .merge(reviews::router())
        .merge(profiles::router())
        .merge(support::router())
        .merge(users::router())
        .merge(integrations::router())
        .merge(payment_methods::router())
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
    // After the merge: the rules apply to every operation of every router. The
    // Idempotency-Key header first, so the rules see the operations that take it.
    DocumentHeader.modify(&mut doc);
    document::StandardResponses.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, operation_id = "getOpenApiDocument", path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Json<utoipa::openapi::OpenApi> {
    Json(state.openapi.as_ref().clone())
}

/// Every route of the service.
pub fn router(state: AppState) -> Router {
    let (api, _) = api();
    let metrics_here = state.settings.http.metrics_addr.is_none();
    Router::new()
        .merge(health::router(metrics_here))
        .merge(
            api.merge(console::router())
                .layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    unit_of_work,
                )),
        )
        .with_state(state)
        .merge(docs::router())
}

/// The document, built once for the application state.
pub fn openapi() -> Arc<utoipa::openapi::OpenApi> {
    Arc::new(api().1)
}
