//! The process's metrics registry, rendered by `GET /metrics` in the Prometheus text
//! format, and the database's figures recorded in it.
//!
//! Built on the `metrics` facade and `metrics-exporter-prometheus` (its renderer only;
//! `/metrics` is served by the API). Recording never takes a lock: a
//! [`metrics::Counter`] or [`metrics::Gauge`] handle is an atomic, and a
//! [`metrics::Histogram`] handle appends to a lock-free bucket that the registry drains
//! when it renders or runs its upkeep. Looking a series up by name and labels does take
//! the registry's (sharded, read-mostly) lock, so code on a hot path registers its
//! handles once and keeps them.
//!
//! ## Adding a figure
//! - A value that changes where the code runs (a cache hit, a replica's lag read by a
//!   poller): register a handle once with [`Registry::counter`], [`Registry::gauge`] or
//!   [`Registry::histogram`], keep it, and `increment`/`set`/`record` it.
//! - A value that is cheap to read when scraped (pool sizes, a snapshot of atomics kept
//!   elsewhere): [`Registry::on_scrape`] with a closure that sets the handles it
//!   registered.
//!
//! Then list it in `docs/telemetry.md`. Names are `agenda_…`, counters end in `_total`,
//! durations are seconds (`_seconds`); label values must come from a bounded set
//! (a route template, never a raw path or an id).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Histogram bucket upper bounds, in seconds: 0.5 ms to 10 s, for a web service's
/// requests and database work.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often [`Registry::spawn_upkeep`] drains histogram samples into their buckets,
/// so memory stays bounded when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

type ScrapeHook = Box<dyn Fn() + Send + Sync>;

/// A set of series rendered together; cheap to clone (shared).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Run before every render; registered at startup, so the lock is never contended
    /// on a request's path (only scrapes take it).
    on_scrape: Mutex<Vec<ScrapeHook>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

const METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, None);

impl Registry {
    /// An empty registry whose histograms use [`BUCKETS`].
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        Registry {
            inner: Arc::new(Inner {
                recorder,
                handle,
                on_scrape: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The counter `name{labels}`, created at 0 (and described by `help`) on first use.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Counter {
        let recorder = &self.inner.recorder;
        recorder.describe_counter(name.into(), None, help.into());
        let counter = recorder.register_counter(&key(name, labels), &METADATA);
        counter.increment(0);
        counter
    }

    /// The gauge `name{labels}`, created at 0 on first use.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Gauge {
        let recorder = &self.inner.recorder;
        recorder.describe_gauge(name.into(), None, help.into());
        let gauge = recorder.register_gauge(&key(name, labels), &METADATA);
        gauge.increment(0.0);
        gauge
    }

    /// The histogram `name{labels}` (values in seconds, buckets [`BUCKETS`]). It is
    /// rendered from its first observation on.
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &str)],
    ) -> Histogram {
        let recorder = &self.inner.recorder;
        recorder.describe_histogram(name.into(), None, help.into());
        recorder.register_histogram(&key(name, labels), &METADATA)
    }

    /// Runs `hook` before every render, to set gauges (or counters, with
    /// `Counter::absolute`) from values read at scrape time. It must be quick and
    /// must not block: it runs inside the `/metrics` handler.
    pub fn on_scrape(&self, hook: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut hooks) = self.inner.on_scrape.lock() {
            hooks.push(Box::new(hook));
        }
    }

    /// Every series, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        if let Ok(hooks) = self.inner.on_scrape.lock() {
            for hook in hooks.iter() {
                hook();
            }
        }
        self.inner.handle.render()
    }

    /// Drains histogram samples into their buckets every [`UPKEEP_INTERVAL`] for as
    /// long as the registry is in use (in the current Tokio runtime).
    pub fn spawn_upkeep(&self) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(inner) => inner.handle.run_upkeep(),
                    None => return,
                }
            }
        });
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

/// The database figures of one pool, recorded in its [`Registry`].
#[derive(Debug, Clone)]
pub struct DbMetrics {
    /// Duration of every statement (sea-orm's metric callback).
    pub query_duration: Histogram,
    /// Statements run.
    pub statements: Counter,
    /// Statements that failed.
    pub query_errors: Counter,
    /// Time to get a connection and start a transaction (`Db::begin`).
    pub acquire_wait: Histogram,
    /// `Db::begin` calls that gave up waiting for a connection (pool timeout).
    pub acquire_timeouts: Counter,
}

impl DbMetrics {
    pub fn register(registry: &Registry) -> Self {
        DbMetrics {
            query_duration: registry.histogram(
                "agenda_db_query_duration_seconds",
                "Duration of every SQL statement.",
                &[],
            ),
            statements: registry.counter("agenda_db_statements_total", "SQL statements run.", &[]),
            query_errors: registry.counter(
                "agenda_db_query_errors_total",
                "SQL statements that failed.",
                &[],
            ),
            acquire_wait: registry.histogram(
                "agenda_db_acquire_wait_seconds",
                "Time to get a connection and begin a transaction.",
                &[],
            ),
            acquire_timeouts: registry.counter(
                "agenda_db_acquire_timeouts_total",
                "Transactions that gave up waiting for a connection (DB_POOL_TIMEOUT).",
                &[],
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_histograms_counters_gauges_and_escaped_labels() {
        let registry = Registry::new();
        let h = registry.histogram("x_seconds", "x", &[("route", "/a")]);
        h.record(Duration::from_micros(300));
        h.record(Duration::from_millis(30));
        h.record(Duration::from_secs(20));
        registry
            .counter("x_total", "x", &[("path", "a\"b")])
            .increment(2);
        let gauge = registry.gauge("x_now", "x", &[]);
        registry.on_scrape(move || gauge.set(7.0));
        let out = registry.render();
        for line in [
            "x_seconds_bucket{route=\"/a\",le=\"0.0005\"} 1\n",
            "x_seconds_bucket{route=\"/a\",le=\"0.05\"} 2\n",
            "x_seconds_bucket{route=\"/a\",le=\"10\"} 2\n",
            "x_seconds_bucket{route=\"/a\",le=\"+Inf\"} 3\n",
            "x_seconds_count{route=\"/a\"} 3\n",
            "x_total{path=\"a\\\"b\"} 2\n",
            "x_now 7\n",
            "# TYPE x_total counter\n",
            "# HELP x_now x\n",
        ] {
            assert!(out.contains(line), "{line:?} not in:\n{out}");
        }
    }
}
