//! `agenda-bench run`: the whole benchmark in one command. It starts a throwaway
//! PostgreSQL 15 cluster, migrates it as a schema owner, creates the least-privilege
//! application role, seeds a large data set, starts the real `agenda` server as that
//! role, drives each scenario over HTTP, reads `pg_stat_statements`, replays the
//! captured SQL through `pgbench`, and writes `bench/results/`. See bench/README.md.
//!
//! `agenda-bench login-flood`: the server's memory under failed sign-ins
//! ([`login_flood`]).

mod load;
mod login_flood;
mod peers;
mod report;
mod seed;
mod server;
mod sql;
mod sqlite;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agenda_testkit::postgres::LocalCluster;
use clap::{Parser, Subcommand};

use crate::load::{Drive, Scenario, Workload};
use crate::report::{Comparison, Paced, Results, ScenarioResult, Settings};
use crate::seed::{Fixtures, SeedSize};
use crate::server::{Server, ServerConfig};
use crate::sql::Admin;

#[derive(Debug, Parser)]
#[command(
    name = "agenda-bench",
    about = "End-to-end benchmark of the Agenda server"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Seed, serve, load, compare with pgbench, write bench/results/.
    Run(RunArgs),
    /// Failed sign-ins for unknown e-mails; the server's memory before and after.
    LoginFlood(login_flood::LoginFloodArgs),
    /// The server on a SQLite file under concurrent writers and readers (the writer
    /// lane), optionally beside a baseline binary; writes bench/results/sqlite-writes.*.
    SqliteWrites(sqlite::SqliteArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A smoke run of about a minute: small data set, short runs, no repeats.
    #[arg(long)]
    quick: bool,
    /// Seconds of measured load per scenario run.
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of unmeasured warm-up before each scenario.
    #[arg(long)]
    warmup: Option<f64>,
    /// Runs of each scenario; the one with the median throughput is reported.
    #[arg(long)]
    repeats: Option<usize>,
    /// Concurrent HTTP connections (and the server's pool size, and pgbench clients).
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Appointments to seed (at least).
    #[arg(long)]
    appointments: Option<u32>,
    #[arg(long, default_value_t = 4)]
    organizations: u32,
    #[arg(long)]
    providers_per_organization: Option<u32>,
    #[arg(long)]
    clients_per_organization: Option<u32>,
    /// Only these scenarios (keys such as a_get_appointment, or a prefix like a).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// The server binary (default: build and use target/release/agenda).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// A second server binary (e.g. before a change): (a) is run alternately on both
    /// and the ratio reported.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Rounds of the before/after alternation.
    #[arg(long, default_value_t = 3)]
    comparison_rounds: usize,
    /// Skip the pgbench ceiling.
    #[arg(long)]
    no_pgbench: bool,
    /// Put a real PgBouncer (transaction mode, `default_pool_size` = --connections)
    /// between the server and PostgreSQL, and run the server with DB_PGBOUNCER=true.
    #[arg(long)]
    pgbouncer: bool,
    /// The server's RUST_LOG.
    #[arg(long, default_value = "warn")]
    server_log: String,
    /// More environment for the server, `NAME=VALUE` (repeatable), e.g.
    /// `--server-env CACHE_TTL=0` to measure without the read cache.
    #[arg(long = "server-env", value_parser = parse_server_env)]
    server_env: Vec<(String, String)>,
    /// Where to write results.json, results.md and throughput.svg.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
    /// Also run Agenda and the peer servers of bench/peers/ (FastAPI, Express) in
    /// alternating rounds on (a) and (b); installs the peers under
    /// target/bench-peers/ first. Results to <out>/peers/.
    #[arg(long)]
    peers: bool,
    /// Only the peer rounds (implies --peers): no other scenario, no ceiling, and
    /// results.* are left as they are.
    #[arg(long)]
    peers_only: bool,
    /// Rounds of the peer comparison.
    #[arg(long, default_value_t = 3)]
    peer_rounds: usize,
    /// Keep running after the results are written, until Enter, with the server up
    /// (for profiling by hand); prints the server's pid and URL.
    #[arg(long)]
    hold: bool,
}

fn parse_server_env(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {raw:?}"))
}

const APP_ROLE: &str = "agenda_app";
const APP_PASSWORD: &str = "agenda-bench-app-password";
const OWNER_ROLE: &str = "agenda_owner";
const DATABASE: &str = "agenda";
/// Requests captured one by one per scenario for the pgbench scripts.
const CAPTURED_REQUESTS: usize = 24;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = match cli.command {
        Cmd::Run(args) => runtime.block_on(run(args)),
        Cmd::LoginFlood(args) => runtime.block_on(login_flood::run(args)),
        Cmd::SqliteWrites(args) => runtime.block_on(sqlite::run(args)),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agenda-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Env {
    cluster: LocalCluster,
    app_url: String,
    /// With --pgbouncer: the PgBouncer the server connects through (kept running).
    pgbouncer: Option<agenda_testkit::pgbouncer::PgBouncer>,
    admin: Admin,
    http: reqwest::Client,
    fixtures: Arc<Fixtures>,
    work_dir: PathBuf,
    log_filter: String,
    server_env: Vec<(String, String)>,
    connections: usize,
}

impl Env {
    fn server(&self, binary: &Path, label: &str) -> Result<Server, String> {
        Server::start(
            &ServerConfig {
                binary,
                database_url: &self.app_url,
                pgbouncer: self.pgbouncer.is_some(),
                pool_size: self.connections as u32,
                max_overflow: 0,
                log_filter: &self.log_filter,
                work_dir: &self.work_dir,
                extra_env: &self.server_env,
            },
            label,
        )
    }

    async fn workload(&self, scenario: Scenario, base_url: &str) -> Result<Arc<Workload>, String> {
        let url = self.cluster.url(DATABASE);
        let candidates = match scenario {
            Scenario::BookSpread => seed::spread_candidates(&url, &self.fixtures).await?,
            Scenario::BookHot => seed::hot_candidates(&url, &self.fixtures).await?,
            _ => Vec::new(),
        };
        if matches!(scenario, Scenario::BookSpread | Scenario::BookHot) && candidates.is_empty() {
            return Err(format!("no free slot left to book for {}", scenario.key()));
        }
        Ok(Workload::new(
            scenario,
            base_url,
            self.fixtures.clone(),
            candidates,
        ))
    }
}

/// One measured run of a scenario and what the server and database did meanwhile.
struct Measured {
    latency: stats::LatencySummary,
    statements: sql::DbSide,
    cpu_s: f64,
    /// CPU seconds of the PostgreSQL cluster (postmaster, backends, background
    /// processes) over the measured window.
    postgres_cpu_s: f64,
    /// What else ran on the machine over the window ([`server::MachineLoad`]).
    machine: server::MachineLoad,
    peak_rss_mib: f64,
    server_time_ms: Option<f64>,
}

async fn measure(
    env: &mut Env,
    server: &Server,
    scenario: Scenario,
    drive: Drive,
    warmup: Duration,
) -> Result<Measured, String> {
    let work = env.workload(scenario, &server.base_url).await?;
    if !warmup.is_zero() {
        load::run(
            &env.http,
            &work,
            Drive {
                duration: warmup,
                rate: None,
                ..drive
            },
        )
        .await;
    }
    env.admin.reset_statements().await?;
    server.reset_peak_memory();
    let before = server.route_time(&env.http, scenario.route()).await;
    let postmaster = env.cluster.pid as u32;
    let window = server::MachineWindow::open(&[server.pid(), postmaster]);
    let cpu = server.cpu_seconds();
    let postgres_cpu = server::tree_cpu_seconds(postmaster);
    let (samples, elapsed) = load::run(&env.http, &work, drive).await;
    let cpu_s = server.cpu_seconds() - cpu;
    let postgres_cpu_s = server::tree_cpu_seconds(postmaster) - postgres_cpu;
    let machine = window.close();
    let peak_rss_mib = server.peak_memory_mib();
    let after = server.route_time(&env.http, scenario.route()).await;
    let statements = env.admin.statements().await?;
    let server_time_ms = match (before, after) {
        (b, Some((sum, count))) => {
            let (sum0, count0) = b.unwrap_or((0.0, 0.0));
            (count > count0).then(|| (sum - sum0) / (count - count0) * 1000.0)
        }
        _ => None,
    };
    Ok(Measured {
        latency: samples.summary(elapsed),
        statements,
        cpu_s,
        postgres_cpu_s,
        machine,
        peak_rss_mib,
        server_time_ms,
    })
}

async fn run(args: RunArgs) -> Result<(), String> {
    let quick = args.quick;
    let duration = args.duration.unwrap_or(if quick { 3.0 } else { 15.0 });
    let warmup = args.warmup.unwrap_or(if quick { 1.0 } else { 3.0 });
    let repeats = args.repeats.unwrap_or(if quick { 1 } else { 3 }).max(1);
    let size = SeedSize {
        organizations: args.organizations,
        providers_per_organization: args.providers_per_organization.unwrap_or(if quick {
            10
        } else {
            75
        }),
        clients_per_organization: args.clients_per_organization.unwrap_or(if quick {
            100
        } else {
            1500
        }),
        appointments: args
            .appointments
            .unwrap_or(if quick { 10_000 } else { 200_000 }),
    };
    let peers_wanted = args.peers || args.peers_only;
    let scenarios: Vec<Scenario> = if args.peers_only {
        Vec::new()
    } else if args.only.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.only
            .iter()
            .map(|k| Scenario::from_key(k).ok_or_else(|| format!("unknown scenario {k:?}")))
            .collect::<Result<_, _>>()?
    };
    let binary = server::server_binary(args.server_bin.clone())?;
    eprintln!("server binary: {}", binary.display());
    let installed = if peers_wanted {
        eprintln!("installing the peers under target/bench-peers/ …");
        Some(peers::install(&server::target_dir())?)
    } else {
        None
    };

    // PostgreSQL: a throwaway cluster with pg_stat_statements and room for the data set.
    let cluster = LocalCluster::start_with(&[
        ("shared_buffers", "512MB"),
        ("effective_cache_size", "4GB"),
        ("work_mem", "8MB"),
        ("max_connections", "200"),
        ("pg_stat_statements.track", "top"),
        ("pg_stat_statements.max", "5000"),
    ])?;
    cluster.wait_ready(Duration::from_secs(60)).await?;
    let work_dir = cluster.root.join("bench");
    std::fs::create_dir_all(&work_dir).map_err(|e| e.to_string())?;
    eprintln!(
        "PostgreSQL on port {} ({})",
        cluster.port,
        cluster.root.display()
    );
    {
        let mut su = Admin::connect(&cluster.url("postgres"), APP_ROLE).await?;
        su.exec(&format!("CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE"))
            .await?;
        su.exec(&format!("CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}"))
            .await?;
    }
    let owner_url = format!(
        "postgresql://{OWNER_ROLE}@127.0.0.1:{}/{DATABASE}",
        cluster.port
    );
    let app_url = format!(
        "postgresql://{APP_ROLE}:{APP_PASSWORD}@127.0.0.1:{}/{DATABASE}",
        cluster.port
    );
    agenda_command(&binary, &["migrate", "up"], &owner_url, &work_dir)?;
    agenda_command(&binary, &["db", "create-app-role"], &owner_url, &work_dir)?;
    let super_url = cluster.url(DATABASE);
    let mut admin = Admin::connect(&super_url, APP_ROLE).await?;
    admin
        .exec("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await?;

    eprintln!(
        "seeding {} organizations × {} providers × {} clients, ≥ {} appointments …",
        size.organizations,
        size.providers_per_organization,
        size.clients_per_organization,
        size.appointments
    );
    let seeded = seed::seed(&super_url, size).await?;
    eprintln!("seeded in {:.1} s: {:?}", seeded.seconds, seeded.rows);
    let fixtures = Arc::new(seed::fixtures(&super_url).await?);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let pgbouncer = if args.pgbouncer {
        let bouncer =
            agenda_testkit::pgbouncer::PgBouncer::start(&app_url, args.connections as u32, &[])?
                .ok_or("--pgbouncer: PgBouncer is not installed (bash .ci/tools)")?;
        eprintln!(
            "through PgBouncer (transaction mode) on port {}",
            bouncer.port
        );
        Some(bouncer)
    } else {
        None
    };
    let app_url = match &pgbouncer {
        Some(bouncer) => bouncer.url_for(&app_url),
        None => app_url,
    };
    let mut env = Env {
        cluster,
        app_url,
        pgbouncer,
        admin,
        http,
        fixtures,
        work_dir,
        log_filter: args.server_log.clone(),
        server_env: args.server_env.clone(),
        connections: args.connections,
    };
    let drive = Drive {
        connections: args.connections,
        duration: Duration::from_secs_f64(duration),
        rate: None,
    };
    let warm = Duration::from_secs_f64(warmup);

    if let Some(installed) = &installed
        && args.peers_only
    {
        return run_peers(
            &mut env, &binary, installed, &args, drive, warm, duration, warmup,
        )
        .await;
    }

    let mut server = env.server(&binary, "main")?;
    server.wait_ready(&env.http).await?;
    let mut results = Vec::new();
    let mut whole_peak: f64 = 0.0;
    for &scenario in &scenarios {
        eprintln!("scenario {} …", scenario.key());
        let mut runs = Vec::new();
        for _ in 0..repeats {
            runs.push(measure(&mut env, &server, scenario, drive, warm).await?);
        }
        let repeat_rps: Vec<f64> = runs.iter().map(|m| m.latency.throughput_rps).collect();
        runs.sort_by(|a, b| {
            a.latency
                .throughput_rps
                .total_cmp(&b.latency.throughput_rps)
        });
        let m = runs.swap_remove(runs.len() / 2);
        let requests = m.latency.requests.max(1) as f64;
        whole_peak = whole_peak.max(m.peak_rss_mib);
        eprintln!(
            "  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {:.2} SQL/req, errors {:?}",
            m.latency.throughput_rps,
            m.latency.p50_ms,
            m.latency.p99_ms,
            m.statements.statements as f64 / requests,
            m.latency.errors
        );
        results.push(ScenarioResult {
            key: scenario.key().into(),
            title: scenario.title().into(),
            route: scenario.route().into(),
            statements_per_request: m.statements.statements as f64 / requests,
            db_exec_ms_per_request: m.statements.exec_ms / requests,
            server_cpu_s: m.cpu_s,
            server_cpu_ms_per_request: m.cpu_s * 1000.0 / requests,
            postgres_cpu_ms_per_request: m.postgres_cpu_s * 1000.0 / requests,
            other_load_cores: m.machine.other_cores,
            server_time_ms: m.server_time_ms,
            server_peak_rss_mib: m.peak_rss_mib,
            pgbench_tps: None,
            ceiling_ratio: None,
            captured_sql: Vec::new(),
            top_statements: m.statements.top.into_iter().take(12).collect(),
            latency: m.latency,
            repeat_rps,
        });
    }

    // (a) at half of its peak, paced.
    let mut half_peak = None;
    if let Some(a) = results
        .iter()
        .find(|r| r.key == Scenario::GetAppointment.key())
    {
        let target = a.latency.throughput_rps / 2.0;
        eprintln!("(a) paced at {target:.0} req/s …");
        let paced = measure(
            &mut env,
            &server,
            Scenario::GetAppointment,
            Drive {
                rate: Some(target),
                ..drive
            },
            warm,
        )
        .await?;
        whole_peak = whole_peak.max(paced.peak_rss_mib);
        half_peak = Some(Paced {
            scenario: Scenario::GetAppointment.title().into(),
            target_rps: target,
            latency: paced.latency,
        });
    }

    // The ceiling: the exact SQL of single requests, replayed by pgbench.
    let mut notes = Vec::new();
    if !args.no_pgbench {
        for r in results.iter_mut() {
            let scenario = Scenario::from_key(&r.key).expect("known key");
            if !matches!(
                scenario,
                Scenario::GetAppointment
                    | Scenario::ListAppointments
                    | Scenario::BookSpread
                    | Scenario::BookHot
            ) {
                continue;
            }
            eprintln!("pgbench ceiling for {} …", r.key);
            let requests = capture(&mut env, &server, scenario).await?;
            let Some(first) = requests.first() else {
                notes.push(format!("{}: no request could be captured", r.key));
                continue;
            };
            r.captured_sql = first.clone();
            let scripts: Vec<String> = requests.iter().map(|q| sql::pgbench_script(q)).collect();
            let dir = env.work_dir.join(format!("pgbench-{}", r.key));
            match sql::pgbench(
                &dir,
                &scripts,
                env.cluster.port,
                APP_ROLE,
                DATABASE,
                args.connections,
                duration.ceil() as u64,
            ) {
                Ok(tps) => {
                    r.pgbench_tps = Some(tps);
                    r.ceiling_ratio = Some(r.latency.throughput_rps / tps);
                    eprintln!(
                        "  pgbench {tps:.0} tps; API at {:.0}%",
                        r.latency.throughput_rps / tps * 100.0
                    );
                }
                Err(e) => notes.push(format!("{}: {e}", r.key)),
            }
        }
    }
    whole_peak = whole_peak.max(server.peak_memory_mib());

    if args.hold {
        eprintln!(
            "holding: server pid {} at {}; PostgreSQL port {}; press Enter to finish",
            server.pid(),
            server.base_url,
            env.cluster.port
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }
    server.stop();

    let comparison = match &args.baseline_bin {
        Some(before) => {
            let before = server::server_binary(Some(before.clone()))?;
            Some(compare(&mut env, &before, &binary, &args, drive, warm).await?)
        }
        None => None,
    };
    if let Some(installed) = &installed {
        run_peers(
            &mut env, &binary, installed, &args, drive, warm, duration, warmup,
        )
        .await?;
    }

    notes.push(
        "The load generator, the server and PostgreSQL share the same machine and cores; \
         pgbench runs on the same machine too."
            .into(),
    );
    notes.push(
        "PostgreSQL runs with fsync=off, synchronous_commit=off and full_page_writes=off \
         (a throwaway cluster): writes are cheaper than on a durable production server."
            .into(),
    );
    notes.push(
        "pgbench replays the captured statements of single requests with their values as \
         literals (one script per captured request, picked at random); a transaction \
         ends in ROLLBACK instead of COMMIT so that bookings can be replayed."
            .into(),
    );
    let results = Results {
        generated_at: utc_now(),
        mode: if quick { "quick".into() } else { "full".into() },
        machine: machine(),
        settings: Settings {
            connections: args.connections,
            duration_s: duration,
            warmup_s: warmup,
            repeats,
            server_pool: format!(
                "DB_POOL_SIZE={} DB_MAX_OVERFLOW=0, RUST_LOG={}",
                args.connections, args.server_log
            ),
            postgres: postgres_version(&mut env.admin).await,
        },
        seed_size: size,
        seed: seeded,
        scenarios: results,
        half_peak,
        comparison,
        server_peak_rss_mib: whole_peak,
        notes,
    };
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("results.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("results.md"), report::markdown(&results))
        .map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("throughput.svg"), report::svg(&results))
        .map_err(|e| e.to_string())?;
    eprintln!("results written to {}", args.out.display());
    Ok(())
}

/// The alternating rounds of Agenda and its peers; writes `<out>/peers/`.
#[allow(clippy::too_many_arguments)]
async fn run_peers(
    env: &mut Env,
    binary: &Path,
    installed: &peers::Installed,
    args: &RunArgs,
    drive: Drive,
    warm: Duration,
    duration: f64,
    warmup: f64,
) -> Result<(), String> {
    let (runs, answer_differences) =
        peers::run_rounds(env, binary, installed, args.peer_rounds, drive, warm).await?;
    let report = peers::PeerReport {
        generated_at: utc_now(),
        agenda_binary: binary.display().to_string(),
        connections: args.connections,
        duration_s: duration,
        warmup_s: warmup,
        rounds: args.peer_rounds.max(1),
        postgres: postgres_version(&mut env.admin).await,
        machine: machine(),
        servers: peers::Contender::ALL
            .iter()
            .map(|c| (c.name().to_owned(), c.description().to_owned()))
            .collect(),
        ratios: peers::ratios(&runs),
        runs,
        answer_differences,
    };
    for q in &report.ratios {
        eprintln!(
            "Agenda ÷ {} on {}: {} (min {:.2}×, goal ≥ {:.0}×)",
            q.peer,
            q.scenario,
            q.per_round
                .iter()
                .map(|v| format!("{v:.2}×"))
                .collect::<Vec<_>>()
                .join(", "),
            q.min,
            q.goal
        );
    }
    let dir = args.out.join("peers");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("peers.json"), json + "\n").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("peers.md"), peers::markdown(&report)).map_err(|e| e.to_string())?;
    eprintln!("peer results written to {}", dir.display());
    Ok(())
}

/// Sends requests one at a time with statement logging on and returns the
/// statements of each successful one.
async fn capture(
    env: &mut Env,
    server: &Server,
    scenario: Scenario,
) -> Result<Vec<Vec<String>>, String> {
    let work = env.workload(scenario, &server.base_url).await?;
    // Warm the connections so that no connection set-up lands in a capture.
    load::one_by_one(&env.http, &work, 4, || async {}).await;
    let started = env.admin.now().await?;
    let log_path = env.cluster.root.join("postgres.log");
    let offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    env.admin.log_statements(true).await?;
    env.admin.mark().await?;
    let mut statuses = Vec::new();
    for _ in 0..CAPTURED_REQUESTS {
        statuses.extend(load::one_by_one(&env.http, &work, 1, || async {}).await);
        // Logged after the request's last statement: the answer came after it.
        env.admin.mark().await?;
    }
    env.admin.log_statements(false).await?;
    // Captured bookings were committed; remove them so that pgbench can replay them.
    // Only rows created up to now: the seed dates future appointments' created_at
    // ahead of their start, and those must stay (the later runs request them).
    env.admin
        .exec(&format!(
            "DELETE FROM appointments WHERE created_at >= '{started}' AND created_at <= now()"
        ))
        .await?;
    let text = std::fs::read(&log_path).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text[offset as usize..]).into_owned();
    let mut requests = sql::captured_requests(&text, APP_ROLE);
    // The first block is what ran before the first request (nothing, normally).
    if !requests.is_empty() {
        requests.remove(0);
    }
    Ok(requests
        .into_iter()
        .zip(statuses)
        .filter(|(q, s)| !q.is_empty() && matches!(s, Some(200..=299)))
        .map(|(q, _)| q)
        .collect())
}

/// Runs (a) alternately on the `before` and `after` binaries.
async fn compare(
    env: &mut Env,
    before: &Path,
    after: &Path,
    args: &RunArgs,
    drive: Drive,
    warm: Duration,
) -> Result<Comparison, String> {
    let scenario = Scenario::GetAppointment;
    let mut c = Comparison {
        scenario: scenario.title().into(),
        before_binary: before.display().to_string(),
        after_binary: after.display().to_string(),
        before_rps: vec![],
        after_rps: vec![],
        before_p99_ms: vec![],
        after_p99_ms: vec![],
        before_statements_per_request: 0.0,
        after_statements_per_request: 0.0,
        before_cpu_ms_per_request: vec![],
        after_cpu_ms_per_request: vec![],
        throughput_ratio: 0.0,
        cpu_per_request_ratio: 0.0,
    };
    for round in 0..args.comparison_rounds.max(1) {
        for (label, binary) in [("before", before), ("after", after)] {
            eprintln!("comparison round {} on the {label} server …", round + 1);
            let mut server = env.server(binary, label)?;
            server.wait_ready(&env.http).await?;
            let m = measure(env, &server, scenario, drive, warm).await?;
            server.stop();
            let requests = m.latency.requests.max(1) as f64;
            let spr = m.statements.statements as f64 / requests;
            let cpu = m.cpu_s * 1000.0 / requests;
            eprintln!("  {:.0} req/s, {spr:.2} SQL/req", m.latency.throughput_rps);
            if label == "before" {
                c.before_rps.push(m.latency.throughput_rps);
                c.before_p99_ms.push(m.latency.p99_ms);
                c.before_statements_per_request = spr;
                c.before_cpu_ms_per_request.push(cpu);
            } else {
                c.after_rps.push(m.latency.throughput_rps);
                c.after_p99_ms.push(m.latency.p99_ms);
                c.after_statements_per_request = spr;
                c.after_cpu_ms_per_request.push(cpu);
            }
        }
    }
    c.throughput_ratio = stats::median(&c.after_rps) / stats::median(&c.before_rps).max(1e-9);
    c.cpu_per_request_ratio = stats::median(&c.after_cpu_ms_per_request)
        / stats::median(&c.before_cpu_ms_per_request).max(1e-9);
    Ok(c)
}

/// Runs `agenda <args>` as the schema owner (migrations, the app role).
fn agenda_command(binary: &Path, args: &[&str], owner_url: &str, dir: &Path) -> Result<(), String> {
    let out = std::process::Command::new(binary)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("DATABASE_URL", owner_url)
        .env("MIGRATION_DATABASE_URL", owner_url)
        .env("APP_DB_ROLE", APP_ROLE)
        .env("APP_DB_PASSWORD", APP_PASSWORD)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("agenda {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "agenda {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

async fn postgres_version(admin: &mut Admin) -> String {
    admin
        .version()
        .await
        .unwrap_or_else(|_| "PostgreSQL (version unknown)".into())
}

fn machine() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    m.insert("cpus".into(), cpus.to_string());
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo")
        && let Some(model) = info
            .lines()
            .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
    {
        m.insert("cpu_model".into(), model.1.trim().to_owned());
    }
    if let Ok(info) = std::fs::read_to_string("/proc/meminfo")
        && let Some(kib) = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    {
        m.insert("memory_gib".into(), format!("{:.1}", kib / 1024.0 / 1024.0));
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        m.insert("kernel".into(), v.trim().to_owned());
    }
    m
}

/// The current UTC time as RFC 3339, without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let date = load::civil_date(days);
    format!(
        "{date}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}
