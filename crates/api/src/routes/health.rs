//! Liveness and readiness probes.
//!
//! - `GET /health/live`: the process is up and serving HTTP. No database work, so an
//!   orchestrator does not restart healthy processes during a database outage.
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]), here unless
//!   `METRICS_ADDR` moves it to a listener of its own.
//! - `GET /health/ready`: a real database round trip within `HEALTH_TIMEOUT`; 200
//!   with the latency and pool figures, or 503 (with `Retry-After`) so that a load
//!   balancer stops routing here until the database is back.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::app::AppState;

pub fn router(metrics_here: bool) -> Router<AppState> {
    let router = Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready));
    if metrics_here {
        router.merge(crate::metrics::router())
    } else {
        router
    }
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let health = state.db.health(state.settings.http.health_timeout).await;
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if health.ok { "ok" } else { "unavailable" },
        "database": health,
    });
    let mut response = (status, Json(body)).into_response();
    if !health.ok {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}
