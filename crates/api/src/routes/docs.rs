//! Interactive API documentation at `GET /docs`: Swagger UI reading
//! `/api/v1/openapi.json`. Its scripts and styles are compiled into the binary (the
//! `swagger-ui-dist` crate vendors them), so the page needs no internet.

use axum::Router;
use swagger_ui_dist::{ApiDefinition, OpenApiSource};

/// `/docs` and its assets (`/docs/swagger-ui-bundle.js`, `/docs/swagger-ui.css`, ...).
pub fn router() -> Router {
    Router::new().merge(swagger_ui_dist::generate_routes(ApiDefinition {
        uri_prefix: "/docs",
        api_definition: OpenApiSource::Uri("/api/v1/openapi.json"),
        title: Some("Agenda API"),
    }))
}
