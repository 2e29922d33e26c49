//! `GET /metrics`: the process's figures in the Prometheus text format.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `agenda_build_info{version}` | gauge | always 1; the version in a label |
//! | `agenda_db_pool_connections{state="idle"\|"in_use"}` | gauge | connections now |
//! | `agenda_db_pool_min`, `agenda_db_pool_max` | gauge | `DB_POOL_SIZE`, size + overflow |
//! | `agenda_db_acquire_wait_seconds` | histogram | time to get a connection and begin a transaction |
//! | `agenda_db_acquire_timeouts_total` | counter | gave up after `DB_POOL_TIMEOUT` |
//! | `agenda_db_query_duration_seconds` | histogram | every statement |
//! | `agenda_db_query_errors_total`, `agenda_db_statements_total` | counter | failed / all statements |
//! | `agenda_http_requests_total{method,route,status}` | counter | requests answered |
//! | `agenda_http_request_duration_seconds{route}` | histogram | latency by matched route |
//! | `agenda_cache_{hits,misses,invalidations}_total`, `agenda_cache_entries` | counter, gauge | the read cache |
//! | `agenda_outbox_messages{status="queued"\|"sending"\|"dead"}` | gauge | e-mails in the outbox now, all tenants (read from the database) |
//! | `agenda_outbox_oldest_message_age_seconds{status}` | gauge | age of the oldest message in that status |
//! | `agenda_outbox_deliveries_total{outcome="sent"\|"retried"\|"dead"}` | counter | this process's delivery attempts |
//!
//! Routes are the matched templates (`/api/v1/appointments/{id}`), never raw paths, so
//! the number of series stays bounded. Serve `/metrics` on an internal network only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Instant;

use agenda_storage::metrics::{Histogram, label};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;

/// HTTP request counts and latencies.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    requests: Mutex<HashMap<(String, String, u16), u64>>,
    latency: Mutex<HashMap<String, std::sync::Arc<Histogram>>>,
}

impl HttpMetrics {
    fn record(&self, method: &str, route: &str, status: u16, started: Instant) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
        let histogram = self.latency.lock().ok().map(|mut latency| {
            latency
                .entry(route.to_owned())
                .or_insert_with(Default::default)
                .clone()
        });
        if let Some(histogram) = histogram {
            histogram.observe(started.elapsed());
        }
    }
}

/// Middleware recording every request.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .http_metrics
        .record(&method, &route, response.status().as_u16(), started);
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE agenda_build_info gauge");
    let _ = writeln!(
        out,
        "agenda_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );

    let pool = state.db.pool_status();
    let _ = writeln!(out, "# TYPE agenda_db_pool_connections gauge");
    let _ = writeln!(
        out,
        "agenda_db_pool_connections{{state=\"idle\"}} {}",
        pool.idle
    );
    let _ = writeln!(
        out,
        "agenda_db_pool_connections{{state=\"in_use\"}} {}",
        pool.in_use
    );
    let _ = writeln!(
        out,
        "# TYPE agenda_db_pool_min gauge\nagenda_db_pool_min {}",
        pool.min
    );
    let _ = writeln!(
        out,
        "# TYPE agenda_db_pool_max gauge\nagenda_db_pool_max {}",
        pool.max
    );

    let db = state.db.metrics();
    let _ = writeln!(out, "# TYPE agenda_db_acquire_wait_seconds histogram");
    db.acquire_wait
        .render(&mut out, "agenda_db_acquire_wait_seconds", "");
    let _ = writeln!(out, "# TYPE agenda_db_acquire_timeouts_total counter");
    let _ = writeln!(
        out,
        "agenda_db_acquire_timeouts_total {}",
        db.acquire_timeouts.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE agenda_db_query_duration_seconds histogram");
    db.query_duration
        .render(&mut out, "agenda_db_query_duration_seconds", "");
    let _ = writeln!(out, "# TYPE agenda_db_query_errors_total counter");
    let _ = writeln!(
        out,
        "agenda_db_query_errors_total {}",
        db.query_errors.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE agenda_db_statements_total counter");
    let _ = writeln!(
        out,
        "agenda_db_statements_total {}",
        state.db.statements_executed()
    );

    let replicas = state.db.replica_status();
    if !replicas.is_empty() {
        let _ = writeln!(out, "# TYPE agenda_db_replica_up gauge");
        for r in &replicas {
            let up = u8::from(r.state == "up");
            let _ = writeln!(
                out,
                "agenda_db_replica_up{{replica=\"{}\",state=\"{}\"}} {up}",
                label(&r.url),
                r.state
            );
        }
        let _ = writeln!(out, "# TYPE agenda_db_replica_lag_seconds gauge");
        for r in &replicas {
            if let Some(lag) = r.lag_ms {
                let _ = writeln!(
                    out,
                    "agenda_db_replica_lag_seconds{{replica=\"{}\"}} {}",
                    label(&r.url),
                    lag as f64 / 1000.0
                );
            }
        }
        let _ = writeln!(out, "# TYPE agenda_db_replica_reads_total counter");
        for r in &replicas {
            let _ = writeln!(
                out,
                "agenda_db_replica_reads_total{{replica=\"{}\"}} {}",
                label(&r.url),
                r.reads
            );
        }
    }

    let _ = writeln!(out, "# TYPE agenda_http_requests_total counter");
    if let Ok(requests) = state.http_metrics.requests.lock() {
        let mut rows: Vec<_> = requests.iter().collect();
        rows.sort();
        for ((method, route, status), count) in rows {
            let _ = writeln!(
                out,
                "agenda_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {count}",
                label(method),
                label(route)
            );
        }
    }
    let _ = writeln!(out, "# TYPE agenda_http_request_duration_seconds histogram");
    let histograms: Vec<(String, std::sync::Arc<Histogram>)> = state
        .http_metrics
        .latency
        .lock()
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut histograms = histograms;
    histograms.sort_by(|a, b| a.0.cmp(&b.0));
    for (route, histogram) in histograms {
        histogram.render(
            &mut out,
            "agenda_http_request_duration_seconds",
            &format!("route=\"{}\"", label(&route)),
        );
    }

    let cache = agenda_storage::cache::stats();
    for (name, kind, value) in [
        ("agenda_cache_hits_total", "counter", cache.hits),
        ("agenda_cache_misses_total", "counter", cache.misses),
        (
            "agenda_cache_invalidations_total",
            "counter",
            cache.invalidations,
        ),
        ("agenda_cache_entries", "gauge", cache.entries),
    ] {
        let _ = writeln!(out, "# TYPE {name} {kind}\n{name} {value}");
    }
    render_outbox(&state, &mut out).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The outbox series. The counts come from the database; when it cannot answer,
/// the gauges are left out rather than the scrape failing.
async fn render_outbox(state: &AppState, out: &mut String) {
    use agenda_entity::enums::OutboxStatus;
    // In a transaction rather than on the bare pool, for PgBouncer's transaction mode.
    let counts = match state.db.begin_read().await {
        Ok(tx) => agenda_storage::repo::outbox::OutboxRepo::counts(&tx).await,
        Err(e) => Err(e),
    };
    match counts {
        Ok(counts) => {
            let now = chrono::Utc::now();
            let _ = writeln!(out, "# TYPE agenda_outbox_messages gauge");
            for status in [
                OutboxStatus::Queued,
                OutboxStatus::Sending,
                OutboxStatus::Dead,
            ] {
                let n = counts
                    .iter()
                    .find(|c| c.status == status)
                    .map_or(0, |c| c.messages);
                let _ = writeln!(out, "agenda_outbox_messages{{status=\"{status}\"}} {n}");
            }
            let _ = writeln!(out, "# TYPE agenda_outbox_oldest_message_age_seconds gauge");
            for count in &counts {
                if let Some(oldest) = count.oldest {
                    let age = (now - oldest).as_seconds_f64().max(0.0);
                    let _ = writeln!(
                        out,
                        "agenda_outbox_oldest_message_age_seconds{{status=\"{}\"}} {age:.3}",
                        count.status
                    );
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "outbox counts unavailable for /metrics"),
    }
    let deliveries = state.mail.metrics().snapshot();
    let _ = writeln!(out, "# TYPE agenda_outbox_deliveries_total counter");
    for (outcome, n) in [
        ("sent", deliveries.sent),
        ("retried", deliveries.retried),
        ("dead", deliveries.dead),
    ] {
        let _ = writeln!(
            out,
            "agenda_outbox_deliveries_total{{outcome=\"{outcome}\"}} {n}"
        );
    }
}
