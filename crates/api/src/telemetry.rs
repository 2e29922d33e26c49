//! Logging: `tracing` with a `RUST_LOG` filter, pretty or JSON lines, on stderr.
//! Colours only when stderr is a terminal (and `NO_COLOR` is unset), never in JSON: a
//! log file or a pipe to a log shipper gets plain text.
//!
//! Also the per-request observation ([`observe_request`]): every answered request is
//! counted in the metrics and written as one request line (target `agenda::http`,
//! message `request`) with `request_id`, `method`, `route` (the matched template),
//! `status` and `latency_ms` (numbers), and `organization_id` when the request
//! entered a tenant. See `docs/telemetry.md`.

use std::io::IsTerminal;
use std::time::Instant;

use agenda_storage::TenantScope;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber. Returns an error line when `RUST_LOG` is invalid.
/// Calling it twice (tests) is harmless: the first subscriber stays.
pub fn init(settings: &LogSettings) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| {
        format!(
            "invalid configuration: RUST_LOG is \"{}\"; {e}",
            settings.filter
        )
    })?;
    let colour = std::io::stderr().is_terminal()
        && !settings.no_color
        && settings.format == LogFormat::Pretty;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(FmtSpan::NONE)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Pretty => builder.with_target(true).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    Ok(())
}

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

/// The `x-request-id` header every request carries (set by the outer layers).
pub const REQUEST_ID: axum::http::HeaderName = axum::http::HeaderName::from_static("x-request-id");

/// The fields of the request span that [`observe_request`] fills in once known.
pub fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        route = tracing::field::Empty,
        request_id,
        status = tracing::field::Empty,
        organization_id = tracing::field::Empty,
    )
}

/// Middleware (inside the router, where the matched route is known): records the
/// request in the metrics, fills in the request span, and writes the request line.
pub async fn observe_request(
    State(state): State<crate::app::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or(UNMATCHED, MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::Span::current();
    span.record("route", route);
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.record(&method, route, status, elapsed);
    // Set by the unit of work when the request entered a tenant.
    let organization_id = response
        .extensions()
        .get::<TenantScope>()
        .map(|scope| tracing::field::display(scope.organization_id()));
    span.record("status", status);
    if let Some(organization_id) = &organization_id {
        span.record("organization_id", organization_id);
    }
    tracing::info!(
        target: "agenda::http",
        request_id,
        method = method.as_str(),
        route,
        status,
        // Whole microseconds, as milliseconds: 0.119, not 0.11921899999999999.
        latency_ms = elapsed.as_micros() as f64 / 1000.0,
        organization_id,
        "request"
    );
    response
}
