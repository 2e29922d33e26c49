//! `agenda-bench login-flood`: what failed sign-ins cost the server's memory.
//!
//! Starts the real `agenda serve` on a fresh SQLite file (the cost being measured
//! is argon2's, not the database's), creates one organization, sends `--requests`
//! sign-ins for e-mails that do not exist, `--concurrency` at a time, and reads the
//! server's resident memory (`VmRSS`) before, right after and `--settle` seconds
//! after the flood, and its peak (`VmHWM`). With `--baseline-bin` the same flood
//! runs first against that binary, in the same session, for a before/after pair.
//! Writes `login-flood.json` and `login-flood.md` to `--out`.
//!
//! `--successful` sends correct sign-ins instead: the organization's admin is
//! created with a password (the server hashes it once, while the organization is
//! made, before anything is measured), and every sign-in verifies that hash and
//! opens a session (`200`). The files are then `login-success.json` and `.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::server::{Server, ServerConfig};
use crate::stats::{LatencySummary, Samples};

#[derive(Debug, clap::Args)]
pub struct LoginFloodArgs {
    /// Failed sign-ins to send.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Sign-ins in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to wait after the flood before the last memory reading.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
    /// The server binary (default: build and use target/release/agenda).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A second server binary (e.g. before a change), flooded first.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Correct sign-ins of one user (each verifies the password and opens a
    /// session) instead of failed ones.
    #[arg(long)]
    successful: bool,
    /// Where to write login-flood.json and login-flood.md.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
}

/// The admin the flood's organization is created with; `--successful` signs in as
/// them.
const ADMIN_EMAIL: &str = "owner@flood.example.com";
const ADMIN_PASSWORD: &str = "flood password for the benchmark";

/// One flood against one binary.
#[derive(Debug, Serialize)]
struct Flood {
    label: String,
    binary: String,
    requests: usize,
    concurrency: usize,
    rss_before_mib: f64,
    rss_after_mib: f64,
    rss_settled_mib: f64,
    peak_rss_mib: f64,
    seconds: f64,
    /// Server CPU time (user + system) per sign-in: argon2's cost, whatever else
    /// runs on the machine.
    cpu_ms_per_request: f64,
    latency: LatencySummary,
    /// Answers by status (401 expected, 200 with `--successful`; 503 when the
    /// hashing queue was full).
    statuses: std::collections::BTreeMap<u16, u64>,
}

pub async fn run(args: LoginFloodArgs) -> Result<(), String> {
    let binary = crate::server::server_binary(args.server_bin.clone())?;
    let mut floods = Vec::new();
    if let Some(baseline) = &args.baseline_bin {
        let baseline =
            std::fs::canonicalize(baseline).map_err(|e| format!("{}: {e}", baseline.display()))?;
        floods.push(flood(&args, &baseline, "baseline").await?);
    }
    floods.push(flood(&args, &binary, "current").await?);
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let name = if args.successful {
        "login-success"
    } else {
        "login-flood"
    };
    let json = serde_json::to_string_pretty(&floods).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join(format!("{name}.json")), json).map_err(|e| e.to_string())?;
    let table = markdown(&floods);
    std::fs::write(args.out.join(format!("{name}.md")), &table).map_err(|e| e.to_string())?;
    println!("{table}");
    Ok(())
}

async fn flood(args: &LoginFloodArgs, binary: &Path, label: &str) -> Result<Flood, String> {
    let dir =
        std::env::temp_dir().join(format!("agenda-login-flood-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let database_url = format!("sqlite://{}/agenda.db?mode=rwc", dir.display());
    crate::agenda_command(binary, &["migrate", "up"], &database_url, &dir)?;
    let mut server = Server::start(
        &ServerConfig {
            binary,
            database_url: &database_url,
            pgbouncer: false,
            pool_size: 5,
            max_overflow: 10,
            log_filter: "warn",
            extra_env: &[],
            work_dir: &dir,
        },
        label,
    )?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    server.wait_ready(&http).await?;
    let organization = serde_json::json!({
        "organization": {"slug": "flood", "name": "Flood", "time_zone": "UTC", "currency": "BRL"},
        "admin": {"email": ADMIN_EMAIL, "full_name": "Owner", "password": ADMIN_PASSWORD},
    });
    let created = http
        .post(format!("{}/api/v1/organizations", server.base_url))
        .json(&organization)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if created.status() != 201 {
        return Err(format!("creating the organization: {}", created.status()));
    }

    let rss_before_mib = server.resident_memory_mib();
    server.reset_peak_memory();
    let kind = if args.successful { "correct" } else { "failed" };
    eprintln!(
        "{label}: {} {kind} sign-ins, {} at a time …",
        args.requests, args.concurrency
    );
    let cpu_before = server.cpu_seconds();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let http = http.clone();
            let next = next.clone();
            let url = format!("{}/api/v1/auth/login", server.base_url);
            let total = args.requests;
            let successful = args.successful;
            tokio::spawn(async move {
                let mut samples = Samples::default();
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return samples;
                    }
                    let body = if successful {
                        serde_json::json!({"organization": "flood", "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
                    } else {
                        serde_json::json!({"organization": "flood", "email": format!("nobody-{n}@example.com"), "password": "not the password"})
                    };
                    let sent = Instant::now();
                    let status = http
                        .post(&url)
                        .json(&body)
                        .send()
                        .await
                        .ok()
                        .map(|r| r.status().as_u16());
                    let us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                    samples.record(status, us);
                }
            })
        })
        .collect();
    let mut samples = Samples::default();
    for worker in workers {
        samples.merge(worker.await.map_err(|e| e.to_string())?);
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_after_mib = server.resident_memory_mib();
    let cpu_ms_per_request =
        (server.cpu_seconds() - cpu_before) * 1000.0 / args.requests.max(1) as f64;
    let peak_rss_mib = server.peak_memory_mib();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let rss_settled_mib = server.resident_memory_mib();
    server.stop();
    let _ = std::fs::remove_dir_all(&dir);
    let result = Flood {
        label: label.to_owned(),
        binary: binary.display().to_string(),
        requests: args.requests,
        concurrency: args.concurrency,
        rss_before_mib,
        rss_after_mib,
        rss_settled_mib,
        peak_rss_mib,
        seconds,
        cpu_ms_per_request,
        latency: samples.summary(seconds),
        statuses: samples.statuses.clone(),
    };
    eprintln!(
        "{label}: RSS {:.0} → {:.0} MiB (peak {:.0}, {:.0} after {}s) in {:.1} s, {:.1} CPU ms each; statuses {:?}",
        result.rss_before_mib,
        result.rss_after_mib,
        result.peak_rss_mib,
        result.rss_settled_mib,
        args.settle,
        result.seconds,
        result.cpu_ms_per_request,
        result.statuses
    );
    Ok(result)
}

fn markdown(floods: &[Flood]) -> String {
    let mut out = String::from(
        "| server | sign-ins | at once | RSS before | RSS after | RSS settled | peak RSS | seconds | CPU ms/sign-in | p50 ms | p99 ms | statuses |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for f in floods {
        let statuses: Vec<String> = f
            .statuses
            .iter()
            .map(|(s, n)| format!("{n} × {s}"))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.1} | {:.1} | {:.1} | {:.1} | {} |\n",
            f.label,
            f.requests,
            f.concurrency,
            f.rss_before_mib,
            f.rss_after_mib,
            f.rss_settled_mib,
            f.peak_rss_mib,
            f.seconds,
            f.cpu_ms_per_request,
            f.latency.p50_ms,
            f.latency.p99_ms,
            statuses.join(", ")
        ));
    }
    out
}
