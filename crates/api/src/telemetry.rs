//! Logging and traces: `tracing` with a `RUST_LOG` filter, pretty or JSON lines, on
//! stderr. Colours only when stderr is a terminal (and `NO_COLOR` is unset), never in
//! JSON: a log file or a pipe to a log shipper gets plain text.
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans also go to an OpenTelemetry collector
//! over OTLP/HTTP (protobuf), in batches from the SDK's own thread: one server span
//! per request (named `METHOD /route/template`, a child of the caller's W3C
//! `traceparent`), and a client span per SQL statement under it, with the statement's
//! text and never its bound values. [`Telemetry::shutdown`] flushes what is left.
//!
//! Also the per-request observation ([`observe_request`]): every answered request is
//! counted in the metrics and written as one request line (target `agenda::http`,
//! message `request`) with `request_id`, `method`, `route` (the matched template),
//! `status` and `latency_ms` (numbers), and `organization_id` when the request
//! entered a tenant. See `docs/telemetry.md`.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use agenda_storage::TenantScope;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use agenda_storage::db::StatementRun;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{KeyValue, propagation::TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, LogSettings, TraceSettings};

/// The tracer of statement spans, set when traces are exported.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// What [`init`] installed; [`Telemetry::shutdown`] it when the process is done.
#[must_use = "shut it down to flush the last spans"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Sends the spans not yet exported, waiting at most `limit`
    /// (`SHUTDOWN_TIMEOUT`) for the collector.
    pub fn shutdown(self, limit: Duration) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown_with_timeout(limit)
        {
            tracing::warn!(error = %e, "traces not all exported at shutdown");
        }
    }
}

/// Installs the global subscriber (and, with `OTEL_EXPORTER_OTLP_ENDPOINT`, the
/// trace exporter). Returns an error line when `RUST_LOG` is invalid or the exporter
/// cannot be built. Calling it twice (tests) is harmless: the first subscriber stays.
pub fn init(settings: &LogSettings) -> Result<Telemetry, String> {
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| {
        format!(
            "invalid configuration: RUST_LOG is \"{}\"; {e}",
            settings.filter
        )
    })?;
    let colour = std::io::stderr().is_terminal()
        && !settings.no_color
        && settings.format == LogFormat::Pretty;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let fmt = match settings.format {
        LogFormat::Pretty => fmt.with_target(true).boxed(),
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = settings.traces.as_ref().map(trace_provider).transpose()?;
    let otel = provider.as_ref().map(|provider| {
        use opentelemetry::trace::TracerProvider as _;
        let tracer = provider.tracer("agenda");
        let _ = TRACER.set(tracer.clone());
        agenda_storage::db::observe_statements(export_statement);
        tracing_opentelemetry::layer().with_tracer(tracer)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Ok(Telemetry { traces: provider })
}

/// The OTLP/HTTP exporter and its batching provider.
fn trace_provider(settings: &TraceSettings) -> Result<SdkTracerProvider, String> {
    use opentelemetry_otlp::{Protocol, WithExportConfig as _};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&settings.traces_url)
        .build()
        .map_err(|e| format!("invalid configuration: OTEL_EXPORTER_OTLP_ENDPOINT: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder_empty()
        .with_service_name(settings.service_name.clone())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// A client span for one statement that ran, under the current span (the request's),
/// timed by the driver's own measure. Statements outside a traced request (startup,
/// pool maintenance) make none.
fn export_statement(run: &StatementRun<'_>) {
    let Some(tracer) = TRACER.get() else { return };
    let parent = tracing::Span::current().context();
    if !parent.span().span_context().is_valid() {
        return;
    }
    let ended = SystemTime::now();
    let operation = run
        .sql
        .split_whitespace()
        .next()
        .unwrap_or("SQL")
        .to_ascii_uppercase();
    let system = match run.engine {
        agenda_storage::Engine::Postgres => "postgresql",
        agenda_storage::Engine::Sqlite => "sqlite",
    };
    let mut span = tracer
        .span_builder(operation.clone())
        .with_kind(SpanKind::Client)
        .with_start_time(ended - run.elapsed)
        .with_attributes([
            KeyValue::new("db.system.name", system),
            KeyValue::new("db.operation.name", operation),
            KeyValue::new("db.query.text", run.sql.to_owned()),
        ])
        .start_with_context(tracer, &parent);
    if run.failed {
        span.set_status(Status::error("the statement failed"));
    }
    span.end_with_timestamp(ended);
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
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        route = tracing::field::Empty,
        request_id,
        status = tracing::field::Empty,
        organization_id = tracing::field::Empty,
        otel.kind = "server",
    );
    if TRACER.get().is_some() {
        // The caller's trace, from its W3C `traceparent` (none: a new trace).
        let extractor = opentelemetry_http::HeaderExtractor(request.headers());
        let _ = span.set_parent(TraceContextPropagator::new().extract(&extractor));
    }
    span
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
    if TRACER.get().is_some() {
        // The exported span is named by the route, known only now (tracing's span
        // name is fixed when it is created).
        span.context()
            .span()
            .update_name(format!("{method} {route}"));
    }
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
