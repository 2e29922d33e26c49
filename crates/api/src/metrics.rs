//! `GET /metrics`: the process's figures in the Prometheus text format, from the
//! registry of [`agenda_storage::metrics`] (every series and its labels are listed in
//! `docs/telemetry.md`).
//!
//! This module owns the HTTP series (recorded on every request by
//! [`crate::telemetry::observe_request`]), the
//! figures read when scraped (build info, the read cache, the outbox), and the
//! handler. The pool's and statements' series are the storage crate's.
//!
//! Nothing on a request's path takes a lock: the handles of each (method, route,
//! status) are found in a map read through an [`ArcSwap`] (an atomic load), and the
//! map is copied and swapped only the first time a combination is seen. Routes are
//! the matched templates (`/api/v1/appointments/{id}`), never raw paths, so the number
//! of series stays bounded.
//!
//! With `METRICS_ADDR` set, `/metrics` is served only there (see
//! [`crate::app::Application`]), so it need not be reachable from the public listener.

use std::collections::HashMap;
use std::time::Duration;

use agenda_entity::enums::OutboxStatus;
use agenda_storage::metrics::Registry;
use arc_swap::ArcSwap;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::IntoResponse;
use metrics::{Counter, Gauge, Histogram};

use crate::app::AppState;

/// The figures of the HTTP layer and those read at scrape time.
pub struct AppMetrics {
    registry: Registry,
    routes: ArcSwap<HashMap<String, RouteMetrics>>,
    outbox: OutboxGauges,
}

/// One route's latency histogram and its request counters by method and status.
#[derive(Clone)]
struct RouteMetrics {
    latency: Histogram,
    requests: HashMap<(Method, u16), Counter>,
}

/// `agenda_outbox_messages{status}` and `agenda_outbox_oldest_message_age_seconds{status}`.
struct OutboxGauges {
    by_status: Vec<(OutboxStatus, Gauge, Gauge)>,
}

/// The outbox statuses reported (sent messages are history, not a backlog).
const OUTBOX_STATUSES: [OutboxStatus; 3] = [
    OutboxStatus::Queued,
    OutboxStatus::Sending,
    OutboxStatus::Dead,
];

impl AppMetrics {
    /// Registers the application's series in `registry` (the pool's: `db.registry()`),
    /// with the hooks that copy the read cache's and the e-mail worker's counts at
    /// scrape time.
    pub fn register(
        registry: &Registry,
        mail: &agenda_mail::Outbox,
        cache: &agenda_storage::cache::ReadCache,
    ) -> Self {
        registry
            .gauge(
                "agenda_build_info",
                "Always 1; the version is in the label.",
                &[("version", env!("CARGO_PKG_VERSION"))],
            )
            .set(1.0);
        register_cache(registry, cache.clone());
        register_deliveries(registry, mail.clone());
        let by_status = OUTBOX_STATUSES
            .iter()
            .map(|status| {
                let name = status.to_string();
                let label = [("status", name.as_str())];
                (
                    *status,
                    registry.gauge(
                        "agenda_outbox_messages",
                        "E-mails in the outbox now, all tenants, by status.",
                        &label,
                    ),
                    registry.gauge(
                        "agenda_outbox_oldest_message_age_seconds",
                        "Age of the oldest e-mail in that status (0 when there is none).",
                        &label,
                    ),
                )
            })
            .collect();
        AppMetrics {
            registry: registry.clone(),
            routes: ArcSwap::default(),
            outbox: OutboxGauges { by_status },
        }
    }

    /// Counts one answered request and its latency.
    pub(crate) fn record(&self, method: &Method, route: &str, status: u16, elapsed: Duration) {
        let routes = self.routes.load();
        if let Some(metrics) = routes.get(route)
            && let Some(requests) = metrics.requests.get(&(method.clone(), status))
        {
            requests.increment(1);
            metrics.latency.record(elapsed);
            return;
        }
        drop(routes);
        let (requests, latency) = self.add(method, route, status);
        requests.increment(1);
        latency.record(elapsed);
    }

    /// The first request of a (method, route, status): registers its handles and
    /// publishes a new map with them.
    fn add(&self, method: &Method, route: &str, status: u16) -> (Counter, Histogram) {
        let mut found = None;
        self.routes.rcu(|current| {
            let mut next = HashMap::clone(current);
            let metrics = next
                .entry(route.to_owned())
                .or_insert_with(|| RouteMetrics {
                    latency: self.registry.histogram(
                        "agenda_http_request_duration_seconds",
                        "Latency of answered requests, by matched route.",
                        &[("route", route)],
                    ),
                    requests: HashMap::new(),
                });
            let requests = metrics
                .requests
                .entry((method.clone(), status))
                .or_insert_with(|| {
                    self.registry.counter(
                        "agenda_http_requests_total",
                        "Requests answered, by method, matched route and status.",
                        &[
                            ("method", method.as_str()),
                            ("route", route),
                            ("status", &status.to_string()),
                        ],
                    )
                });
            found = Some((requests.clone(), metrics.latency.clone()));
            next
        });
        found.expect("rcu runs its closure at least once")
    }

    /// Reads the outbox's counts from the database into their gauges. When the
    /// database cannot answer, the gauges keep their last values (and a warning is
    /// logged) rather than the scrape failing.
    async fn read_outbox(&self, db: &agenda_storage::Db) {
        // In a transaction rather than on the bare pool, for PgBouncer's transaction mode.
        let counts = match db.begin_read().await {
            Ok(tx) => agenda_storage::repo::outbox::OutboxRepo::counts(&tx).await,
            Err(e) => Err(e),
        };
        let counts = match counts {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "outbox counts unavailable for /metrics");
                return;
            }
        };
        let now = chrono::Utc::now();
        for (status, messages, oldest_age) in &self.outbox.by_status {
            let count = counts.iter().find(|c| c.status == *status);
            messages.set(count.map_or(0.0, |c| c.messages as f64));
            let age = count
                .and_then(|c| c.oldest)
                .map_or(0.0, |oldest| (now - oldest).as_seconds_f64().max(0.0));
            oldest_age.set(age);
        }
    }
}

/// `agenda_cache_*`: this server's read cache's counts, copied when scraped.
fn register_cache(registry: &Registry, cache: agenda_storage::cache::ReadCache) {
    let hits = registry.counter("agenda_cache_hits_total", "Read-cache hits.", &[]);
    let misses = registry.counter("agenda_cache_misses_total", "Read-cache misses.", &[]);
    let invalidations = registry.counter(
        "agenda_cache_invalidations_total",
        "Read-cache entries invalidated by writes.",
        &[],
    );
    let entries = registry.gauge(
        "agenda_cache_entries",
        "Entries in the read cache now.",
        &[],
    );
    let listener = registry.gauge(
        "agenda_cache_listener_connected",
        "1 while the PostgreSQL cache listener is listening (0: other processes' writes are seen within CACHE_TTL).",
        &[],
    );
    registry.on_scrape(move || {
        let stats = cache.stats();
        hits.absolute(stats.hits);
        misses.absolute(stats.misses);
        invalidations.absolute(stats.invalidations);
        entries.set(stats.entries as f64);
        listener.set(f64::from(u8::from(stats.listening)));
    });
}

/// `agenda_outbox_deliveries_total{outcome}`: this process's delivery attempts,
/// copied from the e-mail worker's counts when scraped.
fn register_deliveries(registry: &Registry, mail: agenda_mail::Outbox) {
    let help = "E-mail delivery attempts of this process, by outcome.";
    let sent = registry.counter(
        "agenda_outbox_deliveries_total",
        help,
        &[("outcome", "sent")],
    );
    let retried = registry.counter(
        "agenda_outbox_deliveries_total",
        help,
        &[("outcome", "retried")],
    );
    let dead = registry.counter(
        "agenda_outbox_deliveries_total",
        help,
        &[("outcome", "dead")],
    );
    registry.on_scrape(move || {
        let deliveries = mail.metrics().snapshot();
        sent.absolute(deliveries.sent);
        retried.absolute(deliveries.retried);
        dead.absolute(deliveries.dead);
    });
}

/// `GET /metrics` alone: merged into the main router, or served by the
/// `METRICS_ADDR` listener.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/metrics", axum::routing::get(render))
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.read_outbox(&state.db).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.registry.render(),
    )
}

impl std::fmt::Debug for AppMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppMetrics").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// The request path only reads: once a (method, route, status) has been seen, its
    /// requests find their handles in the published map, which stays the same map
    /// (no copy, no swap), and the counts are right.
    #[test]
    fn a_known_combination_is_recorded_without_publishing_a_new_map() {
        let registry = Registry::new();
        let outbox = agenda_mail::Outbox::new(agenda_mail::MailSettings::default());
        let cache = agenda_storage::cache::ReadCache::new(Default::default());
        let metrics = AppMetrics::register(&registry, &outbox, &cache);
        let elapsed = Duration::from_millis(3);
        metrics.record(&Method::GET, "/a/{id}", 200, elapsed);
        let published = metrics.routes.load_full();
        for _ in 0..1000 {
            metrics.record(&Method::GET, "/a/{id}", 200, elapsed);
        }
        assert!(Arc::ptr_eq(&published, &metrics.routes.load_full()));
        metrics.record(&Method::GET, "/a/{id}", 404, elapsed);
        assert!(!Arc::ptr_eq(&published, &metrics.routes.load_full()));
        let text = registry.render();
        for line in [
            "agenda_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"200\"} 1001\n",
            "agenda_http_requests_total{method=\"GET\",route=\"/a/{id}\",status=\"404\"} 1\n",
            "agenda_http_request_duration_seconds_count{route=\"/a/{id}\"} 1002\n",
            "agenda_build_info{version=\"0.1.0\"} 1\n",
        ] {
            assert!(text.contains(line), "{line:?} not in:\n{text}");
        }
    }
}
