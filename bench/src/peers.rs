//! `agenda-bench run --peers`: Agenda against the servers its users would otherwise
//! write, on the same database, data and load. The peers live in `bench/peers/`
//! (FastAPI + async SQLAlchemy + asyncpg under uvicorn; Express + Drizzle ORM +
//! node-postgres); this module installs them under `target/bench-peers/` (a venv
//! with `pip install -r`, `npm ci`), starts each as a child process against the
//! seeded database as the least-privilege role, and runs Agenda and the peers in
//! alternating rounds on scenarios (a) and (b). It writes `peers.json` and
//! `peers.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Serialize;

use crate::load::{Drive, Scenario};
use crate::seed::Fixtures;
use crate::server::{MachineLoad, Server};
use crate::stats::median;
use crate::{Env, Measured};

/// The servers of the comparison, in the order each round runs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Agenda,
    FastApi,
    Express,
}

impl Contender {
    pub const ALL: [Contender; 3] = [Contender::Agenda, Contender::FastApi, Contender::Express];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Agenda => "agenda",
            Contender::FastApi => "fastapi",
            Contender::Express => "express",
        }
    }

    /// What the server is and what it does per request, for the report.
    pub fn description(self) -> &'static str {
        match self {
            Contender::Agenda => {
                "the release `agenda serve` (DB_POOL_SIZE=8, no overflow, pre-ping on), as the \
                 least-privilege role"
            }
            Contender::FastApi => {
                "FastAPI + async SQLAlchemy 2 ORM + asyncpg, uvicorn (uvloop, httptools) with 1 \
                 worker, pool_size=8 max_overflow=0, as the least-privilege role; per request one \
                 transaction: BEGIN, set_config(app.tenant, agenda_session_tenant(digest)), the \
                 session ⋈ user ⋈ organization, the query, COMMIT"
            }
            Contender::Express => {
                "Express 5 + Drizzle ORM + node-postgres, one Node process, pg.Pool max=8, as the \
                 least-privilege role; per request one db.transaction: BEGIN, \
                 set_config(app.tenant, agenda_session_tenant(digest)), the session ⋈ user ⋈ \
                 organization, the query, COMMIT"
            }
        }
    }
}

/// The scenarios the peers serve.
pub const SCENARIOS: [Scenario; 2] = [Scenario::GetAppointment, Scenario::ListAppointments];

/// The installed peers.
pub struct Installed {
    python: PathBuf,
    fastapi_app: PathBuf,
    express_server: PathBuf,
}

/// `bench/peers/` in the source tree.
fn sources() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

fn run_checked(cmd: &mut Command, what: &str) -> Result<(), String> {
    eprintln!("  {what}");
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Whether `stamp` records exactly `content` (the install it stands for is current).
fn stamp_matches(stamp: &Path, content: &[u8]) -> bool {
    std::fs::read(stamp).is_ok_and(|s| s == content)
}

/// Installs both peers under `<target>/bench-peers/` unless already installed from
/// the same pins: a venv with `pip install -r requirements.txt`, and a copy of the
/// Express peer with `npm ci`.
pub fn install(target: &Path) -> Result<Installed, String> {
    let root = target.join("bench-peers");
    std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();

    // FastAPI: a virtual environment with the pinned requirements.
    let venv = root.join("venv");
    let python = venv.join("bin").join("python");
    let requirements = sources().join("fastapi").join("requirements.txt");
    let pins = std::fs::read(&requirements).map_err(io)?;
    let stamp = venv.join("agenda-bench-requirements.txt");
    if !python.is_file() {
        run_checked(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv target/bench-peers/venv",
        )?;
    }
    if !stamp_matches(&stamp, &pins) {
        run_checked(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .arg("-r")
                .arg(&requirements),
            "pip install -r bench/peers/fastapi/requirements.txt",
        )?;
        std::fs::write(&stamp, &pins).map_err(io)?;
    }

    // Express: the sources and lock file copied beside their node_modules.
    let express = root.join("express");
    std::fs::create_dir_all(&express).map_err(io)?;
    for file in [
        "package.json",
        "package-lock.json",
        "server.js",
        "schema.js",
    ] {
        std::fs::copy(sources().join("express").join(file), express.join(file)).map_err(io)?;
    }
    let lock = std::fs::read(express.join("package-lock.json")).map_err(io)?;
    let stamp = express.join("node_modules").join("agenda-bench-lock.json");
    if !stamp_matches(&stamp, &lock) {
        run_checked(
            Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&express),
            "npm ci (target/bench-peers/express)",
        )?;
        std::fs::write(&stamp, &lock).map_err(io)?;
    }
    Ok(Installed {
        python,
        fastapi_app: sources().join("fastapi"),
        express_server: express.join("server.js"),
    })
}

/// Starts a peer against `database_url` with a pool of `pool` connections.
fn start_peer(
    peer: Contender,
    installed: &Installed,
    database_url: &str,
    pool: usize,
    work_dir: &Path,
) -> Result<Server, String> {
    let port = crate::server::free_port()?;
    let mut cmd = match peer {
        Contender::FastApi => {
            let mut cmd = Command::new(&installed.python);
            cmd.args(["-m", "uvicorn", "app:app", "--app-dir"])
                .arg(&installed.fastapi_app)
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args([
                    "--workers",
                    "1",
                    "--no-access-log",
                    "--log-level",
                    "warning",
                ])
                // No __pycache__ in the source tree.
                .env("PYTHONDONTWRITEBYTECODE", "1");
            cmd
        }
        Contender::Express => {
            let mut cmd = Command::new("node");
            cmd.arg(&installed.express_server)
                .env("PORT", port.to_string())
                .env("HOST", "127.0.0.1")
                .env("NODE_ENV", "production");
            cmd
        }
        Contender::Agenda => unreachable!("Agenda is started by Env::server"),
    };
    cmd.env("DATABASE_URL", database_url)
        .env("DB_POOL_SIZE", pool.to_string());
    Server::spawn(cmd, port, work_dir, peer.name())
}

/// A few fixed requests whose answers every server must give alike: an own
/// appointment, someone else's (404), no token and an unknown token (401), a page
/// of a list and an invalid `limit` (422).
fn probes(f: &Fixtures) -> Vec<(&'static str, String, Option<String>)> {
    let Some(p) = f.appointments.iter().position(|ids| !ids.is_empty()) else {
        return Vec::new();
    };
    let other = (0..f.providers.len()).find(|&q| q != p).unwrap_or(p);
    let id = &f.appointments[p][0];
    let (own, stranger) = (&f.providers[p].token, &f.providers[other].token);
    let range = format!(
        "from={}&to={}",
        crate::load::days_from_now(-140),
        crate::load::days_from_now(14)
    );
    let one = format!("/api/v1/appointments/{id}");
    let page = |limit: u32| format!("/api/v1/appointments?status=completed&{range}&limit={limit}");
    vec![
        ("own appointment", one.clone(), Some(own.clone())),
        (
            "another provider's appointment",
            one.clone(),
            Some(stranger.clone()),
        ),
        ("no token", one.clone(), None),
        ("unknown token", one, Some("f".repeat(64))),
        ("a page", page(5), Some(own.clone())),
        ("limit=0", page(0), Some(own.clone())),
    ]
}

/// Status and body, with what may differ between stacks taken out: error messages
/// (the code stays), the cursor's spelling (its presence stays), and how an instant
/// writes whole seconds (`…:00Z`, `…:00.000Z`).
fn normalised(status: u16, body: &str) -> (u16, serde_json::Value) {
    use serde_json::Value;
    fn walk(v: &mut Value) {
        match v {
            Value::String(s) if s.len() >= 20 && s.as_bytes()[10] == b'T' => {
                let t = s.replace("+00:00", "Z").replace(".000Z", "Z");
                *s = t;
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => map.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    if let Some(error) = v.get_mut("error").and_then(Value::as_object_mut) {
        error.retain(|k, _| k == "code");
    }
    if let Some(next) = v.get_mut("next")
        && !next.is_null()
    {
        *next = Value::Bool(true);
    }
    walk(&mut v);
    (status, v)
}

async fn answers(
    http: &reqwest::Client,
    base_url: &str,
    f: &Fixtures,
) -> Vec<(&'static str, (u16, serde_json::Value))> {
    let mut out = Vec::new();
    for (what, path, token) in probes(f) {
        let mut request = http.get(format!("{base_url}{path}"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer = match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                normalised(status, &r.text().await.unwrap_or_default())
            }
            Err(_) => (0, serde_json::Value::Null),
        };
        out.push((what, answer));
    }
    out
}

/// Where a peer's answers differ from Agenda's (empty: they agree).
fn differences(
    agenda: &[(&'static str, (u16, serde_json::Value))],
    peer: &[(&'static str, (u16, serde_json::Value))],
) -> Vec<String> {
    agenda
        .iter()
        .zip(peer)
        .filter(|(a, p)| a.1 != p.1)
        .map(|(a, p)| {
            format!(
                "{}: Agenda {} {}, peer {} {}",
                a.0, a.1.0, a.1.1, p.1.0, p.1.1
            )
        })
        .collect()
}

/// One server on one scenario in one round.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRun {
    pub round: usize,
    pub server: String,
    pub scenario: String,
    pub requests: u64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: std::collections::BTreeMap<String, u64>,
    pub server_cpu_ms_per_request: f64,
    pub postgres_cpu_ms_per_request: f64,
    pub statements_per_request: f64,
    pub machine: MachineLoad,
}

/// Agenda's throughput over a peer's, one scenario, every round.
#[derive(Debug, Clone, Serialize)]
pub struct Ratios {
    pub scenario: String,
    pub peer: String,
    /// Agenda req/s ÷ the peer's req/s, per round.
    pub per_round: Vec<f64>,
    pub min: f64,
    pub median: f64,
    /// The issue's goal: ≥ 5× FastAPI, ≥ 3× Express, in every round.
    pub goal: f64,
    pub met_in_every_round: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerReport {
    pub generated_at: String,
    pub agenda_binary: String,
    pub connections: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub rounds: usize,
    pub postgres: String,
    pub machine: std::collections::BTreeMap<String, String>,
    pub servers: Vec<(String, String)>,
    pub runs: Vec<PeerRun>,
    pub ratios: Vec<Ratios>,
    /// Per peer, where its answers to the probe requests differ from Agenda's,
    /// checked in the first round (empty: the same statuses and bodies).
    pub answer_differences: Vec<(String, Vec<String>)>,
}

fn goal(peer: Contender) -> f64 {
    match peer {
        Contender::FastApi => 5.0,
        Contender::Express => 3.0,
        Contender::Agenda => 1.0,
    }
}

/// Runs `rounds` rounds of Agenda, FastAPI and Express, each server started afresh
/// per round and measured on (a) then (b).
pub async fn run_rounds(
    env: &mut Env,
    agenda: &Path,
    installed: &Installed,
    rounds: usize,
    drive: Drive,
    warm: Duration,
) -> Result<(Vec<PeerRun>, Vec<(String, Vec<String>)>), String> {
    let mut runs = Vec::new();
    let mut reference = Vec::new();
    let mut answer_differences = Vec::new();
    for round in 1..=rounds.max(1) {
        for contender in Contender::ALL {
            eprintln!("peers round {round}: {} …", contender.name());
            let mut server = match contender {
                Contender::Agenda => env.server(agenda, "agenda")?,
                peer => start_peer(
                    peer,
                    installed,
                    &env.app_url,
                    env.connections,
                    &env.work_dir,
                )?,
            };
            server.wait_ready(&env.http).await?;
            if round == 1 {
                let got = answers(&env.http, &server.base_url, &env.fixtures).await;
                if contender == Contender::Agenda {
                    reference = got;
                } else {
                    let diff = differences(&reference, &got);
                    for d in &diff {
                        eprintln!("  answer differs from Agenda's: {d}");
                    }
                    answer_differences.push((contender.name().to_owned(), diff));
                }
            }
            for scenario in SCENARIOS {
                let m = crate::measure(env, &server, scenario, drive, warm).await?;
                let run = peer_run(round, contender, scenario, &m);
                eprintln!(
                    "  {}: {:.0} req/s, p99 {:.2} ms, {:.3} + {:.3} CPU ms/req (server + PostgreSQL), {:.2} SQL/req, other load {:.2} cores, errors {:?}",
                    scenario.key(),
                    run.throughput_rps,
                    run.p99_ms,
                    run.server_cpu_ms_per_request,
                    run.postgres_cpu_ms_per_request,
                    run.statements_per_request,
                    run.machine.other_cores,
                    run.errors
                );
                if !run.errors.is_empty() {
                    eprintln!("  {} log:\n{}", contender.name(), server.log_tail(15));
                }
                runs.push(run);
            }
            server.stop();
        }
    }
    Ok((runs, answer_differences))
}

fn peer_run(round: usize, contender: Contender, scenario: Scenario, m: &Measured) -> PeerRun {
    let requests = m.latency.requests.max(1) as f64;
    PeerRun {
        round,
        server: contender.name().into(),
        scenario: scenario.key().into(),
        requests: m.latency.requests,
        throughput_rps: m.latency.throughput_rps,
        p50_ms: m.latency.p50_ms,
        p99_ms: m.latency.p99_ms,
        errors: m.latency.errors.clone(),
        server_cpu_ms_per_request: m.cpu_s * 1000.0 / requests,
        postgres_cpu_ms_per_request: m.postgres_cpu_s * 1000.0 / requests,
        statements_per_request: m.statements.statements as f64 / requests,
        machine: m.machine,
    }
}

/// Agenda ÷ each peer, per scenario and round.
pub fn ratios(runs: &[PeerRun]) -> Vec<Ratios> {
    let rps = |server: Contender, scenario: Scenario, round: usize| {
        runs.iter()
            .find(|r| r.server == server.name() && r.scenario == scenario.key() && r.round == round)
            .map(|r| r.throughput_rps)
    };
    let rounds = runs.iter().map(|r| r.round).max().unwrap_or(0);
    let mut out = Vec::new();
    for scenario in SCENARIOS {
        for peer in [Contender::FastApi, Contender::Express] {
            let per_round: Vec<f64> = (1..=rounds)
                .filter_map(|round| {
                    Some(rps(Contender::Agenda, scenario, round)? / rps(peer, scenario, round)?)
                })
                .collect();
            if per_round.is_empty() {
                continue;
            }
            let min = per_round.iter().copied().fold(f64::INFINITY, f64::min);
            out.push(Ratios {
                scenario: scenario.key().into(),
                peer: peer.name().into(),
                median: median(&per_round),
                min,
                goal: goal(peer),
                met_in_every_round: min >= goal(peer),
                per_round,
            });
        }
    }
    out
}

pub fn markdown(r: &PeerReport) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Agenda against its peers\n");
    let _ = writeln!(
        md,
        "Generated {}. {} rounds; in each, Agenda, FastAPI and Express in turn, each started \
         afresh and measured on (a) then (b): {} s of warm-up, {} s measured, {} keep-alive \
         connections, closed loop. Same PostgreSQL, data and role (`agenda_app`, row-level \
         security in force) for all three. Agenda binary: `{}`. {}.\n",
        r.generated_at,
        r.rounds,
        r.warmup_s,
        r.duration_s,
        r.connections,
        r.agenda_binary,
        r.postgres
    );
    let _ = writeln!(md, "| server | what it is |\n|---|---|");
    for (name, what) in &r.servers {
        let _ = writeln!(md, "| {name} | {what} |");
    }
    let _ = writeln!(md, "\n## The same answers\n");
    let _ = writeln!(
        md,
        "Before measuring, each peer gets the same probe requests as Agenda (an own \
         appointment, another provider's, no token, an unknown token, a page of a list, \
         `limit=0`); statuses, error codes and bodies are compared (error messages, the \
         cursor's spelling and `.000` in instants aside).\n"
    );
    for (peer, diff) in &r.answer_differences {
        if diff.is_empty() {
            let _ = writeln!(md, "- {peer}: the same answers as Agenda.");
        } else {
            let _ = writeln!(md, "- {peer}: **differs**: {}", diff.join("; "));
        }
    }
    let _ = writeln!(md, "\n## Agenda ÷ peer, requests per second\n");
    let _ = writeln!(
        md,
        "| scenario | peer | per round | median | min | goal | met in every round |\n|---|---|---|---:|---:|---:|---|"
    );
    for q in &r.ratios {
        let rounds: Vec<String> = q.per_round.iter().map(|v| format!("{v:.2}×")).collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.2}× | {:.2}× | ≥ {:.0}× | {} |",
            q.scenario,
            q.peer,
            rounds.join(", "),
            q.median,
            q.min,
            q.goal,
            if q.met_in_every_round { "yes" } else { "no" }
        );
    }
    let _ = writeln!(md, "\n## Medians over the rounds\n");
    let _ = writeln!(
        md,
        "| scenario | server | req/s | p50 ms | p99 ms | server CPU ms/req | PostgreSQL CPU ms/req | SQL/req |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    for scenario in SCENARIOS {
        for c in Contender::ALL {
            let of: Vec<&PeerRun> = r
                .runs
                .iter()
                .filter(|x| x.server == c.name() && x.scenario == scenario.key())
                .collect();
            if of.is_empty() {
                continue;
            }
            let m = |f: fn(&PeerRun) -> f64| median(&of.iter().map(|x| f(x)).collect::<Vec<_>>());
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {:.3} | {:.3} | {:.2} |",
                scenario.key(),
                c.name(),
                m(|x| x.throughput_rps),
                m(|x| x.p50_ms),
                m(|x| x.p99_ms),
                m(|x| x.server_cpu_ms_per_request),
                m(|x| x.postgres_cpu_ms_per_request),
                m(|x| x.statements_per_request),
            );
        }
    }
    let _ = writeln!(md, "\n## Every run\n");
    let _ = writeln!(
        md,
        "\"Other load\" is the cores busy with anything but the server, PostgreSQL and the \
         load generator over the window (other builds on the shared machine); \"load avg\" \
         the 1-minute load average as the run began.\n"
    );
    let _ = writeln!(
        md,
        "| round | server | scenario | req/s | p50 ms | p99 ms | errors | server CPU ms/req | PostgreSQL CPU ms/req | SQL/req | machine busy (cores) | other load (cores) | load avg |\n|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"
    );
    for x in &r.runs {
        let errors = if x.errors.is_empty() {
            "0".to_owned()
        } else {
            x.errors
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} |",
            x.round,
            x.server,
            x.scenario,
            x.throughput_rps,
            x.p50_ms,
            x.p99_ms,
            errors,
            x.server_cpu_ms_per_request,
            x.postgres_cpu_ms_per_request,
            x.statements_per_request,
            x.machine.busy_cores,
            x.machine.other_cores,
            x.machine.load_average,
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: usize, server: Contender, scenario: Scenario, rps: f64) -> PeerRun {
        PeerRun {
            round,
            server: server.name().into(),
            scenario: scenario.key().into(),
            requests: 100,
            throughput_rps: rps,
            p50_ms: 1.0,
            p99_ms: 2.0,
            errors: Default::default(),
            server_cpu_ms_per_request: 0.2,
            postgres_cpu_ms_per_request: 0.3,
            statements_per_request: 5.0,
            machine: MachineLoad::default(),
        }
    }

    #[test]
    fn ratios_are_per_round_with_their_minimum_against_the_goal() {
        let a = Scenario::GetAppointment;
        let runs = vec![
            run(1, Contender::Agenda, a, 3000.0),
            run(1, Contender::FastApi, a, 500.0),
            run(1, Contender::Express, a, 1000.0),
            run(2, Contender::Agenda, a, 2000.0),
            run(2, Contender::FastApi, a, 500.0),
            run(2, Contender::Express, a, 500.0),
        ];
        let ratios = ratios(&runs);
        assert_eq!(ratios.len(), 2, "(b) has no runs: no ratio for it");
        let fastapi = &ratios[0];
        assert_eq!(fastapi.peer, "fastapi");
        assert_eq!(fastapi.per_round, vec![6.0, 4.0]);
        assert_eq!(fastapi.min, 4.0);
        assert!(!fastapi.met_in_every_round);
        let express = &ratios[1];
        assert_eq!(express.per_round, vec![3.0, 4.0]);
        assert!(express.met_in_every_round);
        let md = markdown(&PeerReport {
            generated_at: "now".into(),
            agenda_binary: "agenda".into(),
            connections: 8,
            duration_s: 5.0,
            warmup_s: 1.0,
            rounds: 2,
            postgres: "PostgreSQL 15".into(),
            machine: Default::default(),
            servers: vec![],
            runs,
            ratios,
            answer_differences: vec![("express".into(), vec![])],
        });
        assert!(md.contains(
            "| a_get_appointment | fastapi | 6.00×, 4.00× | 5.00× | 4.00× | ≥ 5× | no |"
        ));
        assert!(md.contains("| a_get_appointment | agenda | 2500 |"));
        assert!(md.contains("- express: the same answers as Agenda."));
    }

    #[test]
    fn answers_compare_without_messages_cursor_spelling_or_zero_milliseconds() {
        let agenda = normalised(
            200,
            r#"{"items":[{"start_at":"2026-01-01T10:00:00Z"}],"next":"2026-01-01T10:00:00+00:00/01"}"#,
        );
        let node = normalised(
            200,
            r#"{"items":[{"start_at":"2026-01-01T10:00:00.000Z"}],"next":"2026-01-01T10:00:00.000Z/01"}"#,
        );
        assert_eq!(agenda, node);
        let moved = normalised(
            200,
            r#"{"items":[{"start_at":"2026-01-01T11:00:00Z"}],"next":"x"}"#,
        );
        assert_ne!(agenda, moved);
        assert_eq!(
            normalised(
                401,
                r#"{"error":{"code":"unauthorized","message":"a","fields":null}}"#
            ),
            normalised(401, r#"{"error":{"code":"unauthorized","message":"b"}}"#)
        );
        assert_ne!(
            normalised(404, r#"{"error":{"code":"not_found"}}"#),
            normalised(401, r#"{"error":{"code":"not_found"}}"#)
        );
    }
}
