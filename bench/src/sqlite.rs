//! `agenda-bench sqlite-writes`: the real server on a SQLite file under many
//! concurrent writers (and a few readers), to measure the writer lane: every write
//! transaction of the process queues for one writer connection instead of racing for
//! SQLite's lock. Reports each side's throughput, p50/p95/p99 and errors by status
//! (a "database is locked" shows up as 503), optionally beside a baseline binary.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::{Server, ServerConfig};
use crate::stats::{LatencySummary, Samples};

#[derive(Debug, clap::Args)]
pub struct SqliteArgs {
    /// Concurrent writers (each `POST /api/v1/organizations`, one at a time).
    #[arg(long, default_value_t = 64)]
    writers: usize,
    /// Concurrent readers (each `GET /health/ready`: a round trip on the read pool).
    #[arg(long, default_value_t = 8)]
    readers: usize,
    /// Seconds of measured load per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Runs per binary; each is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// The server binary (default: build and use target/release/agenda).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A second server binary (e.g. before the writer lane), measured the same way.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Where to write sqlite-writes.json and sqlite-writes.md.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
}

#[derive(Debug, Serialize)]
struct Run {
    binary: String,
    writers: LatencySummary,
    readers: LatencySummary,
}

#[derive(Debug, Serialize)]
struct Report {
    writers: usize,
    readers: usize,
    duration_s: f64,
    runs: Vec<Run>,
}

pub async fn run(args: SqliteArgs) -> Result<(), String> {
    let current = crate::server::server_binary(args.server_bin.clone())?;
    let mut binaries = vec![("current", current)];
    if let Some(baseline) = &args.baseline_bin {
        let baseline =
            std::fs::canonicalize(baseline).map_err(|e| format!("{}: {e}", baseline.display()))?;
        binaries.push(("baseline", baseline));
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.writers + args.readers)
        .build()
        .map_err(|e| e.to_string())?;
    let mut runs = Vec::new();
    for round in 0..args.repeats {
        for (label, binary) in &binaries {
            let run = measure(&http, binary, label, round, &args).await?;
            eprintln!(
                "{label} #{round}: writers {:.0} req/s p99 {:.1} ms errors {:?}; readers p99 {:.1} ms errors {:?}",
                run.writers.throughput_rps,
                run.writers.p99_ms,
                run.writers.errors,
                run.readers.p99_ms,
                run.readers.errors
            );
            runs.push(run);
        }
    }
    let report = Report {
        writers: args.writers,
        readers: args.readers,
        duration_s: args.duration,
        runs,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("sqlite-writes.json"), json).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("sqlite-writes.md"), markdown(&report))
        .map_err(|e| e.to_string())?;
    println!("{}", markdown(&report));
    Ok(())
}

/// One run: a fresh migrated SQLite file, the server on it, writers and readers
/// together for the duration.
async fn measure(
    http: &reqwest::Client,
    binary: &Path,
    label: &str,
    round: usize,
    args: &SqliteArgs,
) -> Result<Run, String> {
    let dir = std::env::temp_dir().join(format!(
        "agenda-bench-sqlite-{}-{label}-{round}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}/bench.db", dir.display());
    let migrated = std::process::Command::new(binary)
        .args(["migrate", "up"])
        .current_dir(&dir)
        .env_clear()
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    if !migrated.status.success() {
        return Err(format!(
            "agenda migrate up: {}",
            String::from_utf8_lossy(&migrated.stderr)
        ));
    }
    let mut server = Server::start(
        &ServerConfig {
            binary,
            database_url: &url,
            pgbouncer: false,
            pool_size: args.readers as u32,
            max_overflow: 0,
            log_filter: "warn",
            extra_env: &[],
            work_dir: &dir,
        },
        label,
    )?;
    server.wait_ready(http).await?;
    let base = server.base_url.clone();
    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let next_slug = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..args.writers {
        let (http, url, next_slug) = (
            http.clone(),
            format!("{base}/api/v1/organizations"),
            next_slug.clone(),
        );
        writers.push(tokio::spawn(until(deadline, move || {
            let n = next_slug.fetch_add(1, Ordering::Relaxed);
            http.post(&url)
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"slug":"bench-{n}","name":"Bench {n}","time_zone":"UTC","currency":"BRL"}}"#
                ))
        })));
    }
    let mut readers = Vec::new();
    for _ in 0..args.readers {
        let (http, url) = (http.clone(), format!("{base}/health/ready"));
        readers.push(tokio::spawn(until(deadline, move || http.get(&url))));
    }
    let (mut written, mut read) = (Samples::default(), Samples::default());
    for w in writers {
        written.merge(w.await.map_err(|e| e.to_string())?);
    }
    for r in readers {
        read.merge(r.await.map_err(|e| e.to_string())?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        binary: format!("{label} ({})", binary.display()),
        writers: written.summary(elapsed),
        readers: read.summary(elapsed),
    })
}

/// Sends the requests `next` builds, one at a time, until `deadline`; records each.
async fn until(deadline: Instant, next: impl Fn() -> reqwest::RequestBuilder) -> Samples {
    let mut samples = Samples::default();
    while Instant::now() < deadline {
        let sent = Instant::now();
        let status = next().send().await.ok().map(|r| r.status().as_u16());
        let micros = sent.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        samples.record(status, micros);
    }
    samples
}

fn markdown(report: &Report) -> String {
    let mut md = format!(
        "# SQLite writes: {} concurrent writers, {} readers, {} s per run\n\n\
         | binary | writes/s | write p50 ms | p95 | p99 | max | write errors | read p99 ms | read errors |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        report.writers, report.readers, report.duration_s
    );
    for run in &report.runs {
        let (w, r) = (&run.writers, &run.readers);
        md.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:?} | {:.1} | {:?} |\n",
            run.binary,
            w.throughput_rps,
            w.p50_ms,
            w.p95_ms,
            w.p99_ms,
            w.max_ms,
            w.errors,
            r.p99_ms,
            r.errors
        ));
    }
    md
}
