//! Beyond one process (issue 16): the API behind a real PgBouncer in transaction
//! mode (`DB_PGBOUNCER=true`), and several real `agenda serve` processes sharing one
//! database with the same guarantees.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agenda_testkit::TestDb;
use agenda_testkit::pgbouncer::PgBouncer;
use agenda_testkit::postgres::LocalCluster;
use axum::Router;
use chrono::Utc;
use serde_json::{Value, json};

use crate::appointments::{booking_journey_over_http, setup};
use crate::support::{ScratchDir, TestApp, request_to};

/// A real `agenda serve` process on a free port, killed when dropped.
struct ServerProcess {
    child: Child,
    base: String,
    _dir: ScratchDir,
}

impl ServerProcess {
    /// Starts the server on `database_url` with a pool of 10 (`DB_POOL_SIZE=10`, no
    /// overflow), in PgBouncer mode when `pgbouncer`, and waits until it is ready.
    async fn start(database_url: &str, pgbouncer: bool) -> ServerProcess {
        Self::start_with(database_url, pgbouncer, &[]).await
    }

    /// [`ServerProcess::start`] with `extra` environment variables.
    async fn start_with(
        database_url: &str,
        pgbouncer: bool,
        extra: &[(&str, &str)],
    ) -> ServerProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = ScratchDir::new("scale-server");
        let log = std::fs::File::create(dir.0.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_agenda"))
            .arg("serve")
            .current_dir(&dir.0)
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("DB_PGBOUNCER", pgbouncer.to_string())
            .env("DB_POOL_SIZE", "10")
            .env("DB_MAX_OVERFLOW", "0")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("AUTO_MIGRATE", "false")
            .env("PUBLIC_BASE_URL", "http://localhost:8080")
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = client
                .get(format!("{}/health/ready", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return server;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the server did not become ready: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.0.join("server.log")).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server's `GET /metrics`.
async fn metrics_text(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// `GET /health/ready` reports the mode.
async fn readiness(client: &reqwest::Client, base: &str) -> Value {
    request_to(
        client,
        format!("{base}/health/ready"),
        "GET",
        None,
        None,
        None,
    )
    .await
    .1
}

/// The whole booking journey over HTTP, with the server behind PgBouncer in
/// transaction mode (2 server connections for the server's pool of up to 5).
#[tokio::test]
async fn the_booking_journey_behind_pgbouncer_transaction_mode() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let bouncer = PgBouncer::start(t.settings.url.expose(), 2, &[])
        .unwrap()
        .expect("pgbouncer");
    let behind = t.app_role_settings_behind(&bouncer).await;
    let app = TestApp::spawn_configured(t, Router::new(), move |s| s.db = behind).await;
    booking_journey_over_http(&app).await;
    let ready = readiness(&app.client, &app.url("")).await;
    assert_eq!(ready["database"]["pgbouncer"], true, "{ready}");
    app.stop().await;
    drop(bouncer);
}

/// 4 server processes × a pool of 10 through PgBouncer's `default_pool_size = 8`:
/// 40 concurrent clients, 400 requests (reads of slots and the catalogue, writes
/// creating services), 0 errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_through_pgbouncer_run_a_load_with_no_errors() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let bouncer = PgBouncer::start(t.settings.url.expose(), 8, &[])
        .unwrap()
        .expect("pgbouncer");
    let behind = t.app_role_settings_behind(&bouncer).await;
    let url = behind.url.expose().to_owned();
    let app = TestApp::spawn_configured(t, Router::new(), move |s| s.db = behind).await;
    let people = setup(&app).await;
    let mut servers = Vec::new();
    for _ in 0..4 {
        servers.push(ServerProcess::start(&url, true).await);
    }
    for server in &servers {
        let ready = readiness(&app.client, &server.base).await;
        assert_eq!(ready["database"]["pgbouncer"], true, "{ready}");
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let day = (Utc::now() + chrono::Duration::days(3)).date_naive();
    let provider_id = people.provider.0;
    let service = people.service;
    let mut clients = Vec::new();
    for c in 0..40usize {
        let bases = bases.clone();
        let (client_token, provider_token) = (people.client.1.clone(), people.provider.1.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = Vec::new();
            for i in 0..10usize {
                let base = &bases[(c + i) % bases.len()];
                let (status, body) = match i % 3 {
                    0 => {
                        request_to(&http, format!("{base}/api/v1/providers/{provider_id}/slots?service_id={service}&from={day}&to={day}"),
                            "GET", Some(&client_token), None, None).await
                    }
                    1 => {
                        request_to(&http, format!("{base}/api/v1/services"), "POST", Some(&provider_token),
                            Some(json!({"name": format!("Service {c}-{i}"), "duration_minutes": 30, "price_cents": 1000})), None).await
                    }
                    _ => {
                        request_to(&http, format!("{base}/api/v1/providers/me/settings"), "GET", Some(&provider_token), None, None).await
                    }
                };
                if !(200..300).contains(&status) {
                    failures.push(format!("{status} {body}"));
                }
            }
            failures
        }));
    }
    let mut failures = Vec::new();
    for client in clients {
        failures.extend(client.await.unwrap());
    }
    assert!(
        failures.is_empty(),
        "{} of 400 requests failed, first: {:?}\n{}",
        failures.len(),
        failures.first(),
        bouncer.log()
    );
    drop(servers);
    app.stop().await;
}

/// 3 server processes on one database: a flood of 200 booking requests for one
/// slot, spread round-robin, gives exactly one 201 (the rest 409); an idempotency
/// key replayed against another process returns the first answer; and failed
/// sign-ins spread over the processes lock the account on all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_keep_one_booking_per_slot_and_idempotency_keys() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let url = t.app_role_settings().await.url.expose().to_owned();
    let app = TestApp::spawn(t).await;
    let people = setup(&app).await;
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(ServerProcess::start(&url, false).await);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let day = (Utc::now() + chrono::Duration::days(4)).date_naive();
    let slot = format!("{day}T10:00:00Z");
    let tokens = [people.client.1.clone(), people.other_client.1.clone()];
    let service = people.service;
    let mut flood = Vec::new();
    for n in 0..200usize {
        let base = bases[n % bases.len()].clone();
        let token = tokens[n % 2].clone();
        let slot = slot.clone();
        flood.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            request_to(
                &http,
                format!("{base}/api/v1/appointments"),
                "POST",
                Some(&token),
                Some(json!({"service_id": service, "start_at": slot})),
                None,
            )
            .await
        }));
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for request in flood {
        let (status, _) = request.await.unwrap();
        *statuses.entry(status).or_default() += 1;
    }
    assert_eq!(statuses.get(&201), Some(&1), "{statuses:?}");
    assert_eq!(statuses.get(&409), Some(&199), "{statuses:?}");

    // The same key on another process: the first answer, not a second booking.
    let http = reqwest::Client::new();
    let body = json!({"service_id": service, "start_at": format!("{day}T11:00:00Z")});
    let first = request_to(
        &http,
        format!("{}/api/v1/appointments", bases[0]),
        "POST",
        Some(&tokens[0]),
        Some(body.clone()),
        Some("scale-replay-1"),
    )
    .await;
    assert_eq!(first.0, 201, "{}", first.1);
    let replay = request_to(
        &http,
        format!("{}/api/v1/appointments", bases[1]),
        "POST",
        Some(&tokens[0]),
        Some(body),
        Some("scale-replay-1"),
    )
    .await;
    assert_eq!(replay, first);

    // The lockout: wrong passwords spread over the processes lock the account for
    // all of them, so the right password is then refused everywhere.
    let login = |base: &str, password: &str| {
        let (http, url) = (http.clone(), format!("{base}/api/v1/auth/login"));
        let body =
            json!({"organization": "acme", "email": "other@example.com", "password": password});
        async move { request_to(&http, url, "POST", None, Some(body), None).await }
    };
    // MAX_FAILED_LOGINS (5) failures lock the account.
    for n in 0..5 {
        let (status, body) = login(&bases[n % bases.len()], "wrong password!").await;
        assert_eq!(status, 401, "{body}");
    }
    for base in &bases {
        let (status, body) = login(base, crate::support::PASSWORD).await;
        assert_eq!(status, 401, "locked on every process: {body}");
    }
    drop(servers);
    app.stop().await;
}

/// A role whose `CONNECTION LIMIT` cannot hold a process's pool maximum: the server
/// starts, and says so at startup.
#[tokio::test]
async fn the_server_warns_when_the_role_limit_cannot_cover_its_pool() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let name = format!("agenda_small_{}", uuid::Uuid::now_v7().simple());
    let mut spec = agenda_storage::ops::AppRoleSpec::new(name.as_str(), "small-role-only");
    spec.connection_limit = 10;
    agenda_storage::ops::create_app_role(&t.db, &spec)
        .await
        .unwrap();
    let superuser = t.settings.url.expose();
    let url = superuser.replacen("://postgres@", &format!("://{name}:small-role-only@"), 1);
    assert_ne!(url, superuser, "the test server's superuser URL");
    // Two processes that may each open 7 on a limit of 10: the first (pool 4 to 7)
    // fits; the second finds at least 4 sessions taken and may open 7. The second
    // keeps a minimum of 2, so that it can still start: the first may hold a
    // session or two more than its minimum at that moment (its cache listener, and
    // a connection its first maintenance run opened beside startup's).
    let pool = [("DB_POOL_SIZE", "4"), ("DB_MAX_OVERFLOW", "3")];
    let first = ServerProcess::start_with(&url, false, &pool).await;
    assert!(
        !first.log().contains("APP_DB_CONNECTION_LIMIT"),
        "{}",
        first.log()
    );
    let small = [("DB_POOL_SIZE", "2"), ("DB_MAX_OVERFLOW", "5")];
    let second = ServerProcess::start_with(&url, false, &small).await;
    let log = second.log();
    assert!(
        log.contains("APP_DB_CONNECTION_LIMIT cannot cover the configured pools"),
        "{log}"
    );
    assert!(log.contains("the role may hold 10 sessions"), "{log}");
    // The first process's sessions (at least its minimum of 4) are older than the
    // second process; the second's own are not counted.
    assert!(
        ["4", "5", "6", "7"]
            .iter()
            .any(|n| log.contains(&format!("other processes hold {n} "))),
        "{log}"
    );
    drop((first, second));
}

/// `url` with its port replaced by `port` (the same user, password and database).
fn on_port(url: &str, port: u16) -> String {
    let (before, after) = url.rsplit_once('@').expect("a URL with a user");
    let path = after.find('/').map_or("", |i| &after[i..]);
    format!("{before}@127.0.0.1:{port}{path}")
}

/// A primary of the test's own with a migrated database, a streaming standby of it,
/// the server on the primary with the standby as `DATABASE_READ_URL` (skipped beyond
/// `max_lag`), and the booking set-up. `None` (after a loud message) when PostgreSQL
/// is missing outside CI.
pub(crate) async fn with_standby(
    max_lag: Duration,
) -> Option<(
    LocalCluster,
    LocalCluster,
    TestApp,
    crate::appointments::People,
)> {
    let primary = match LocalCluster::start_with(&[("full_page_writes", "on")]) {
        Ok(cluster) => cluster,
        Err(reason) => {
            assert!(!agenda_testkit::in_ci(), "{reason}");
            eprintln!("!!!!!!!!!! SKIPPING: {reason}");
            return None;
        }
    };
    primary.wait_ready(Duration::from_secs(60)).await.unwrap();
    let t = TestDb::postgres_on(&primary, "agenda_replicas").await;
    let app_url = t.app_role_settings().await.url.expose().to_owned();
    let standby = primary.start_standby().unwrap();
    standby.wait_ready(Duration::from_secs(60)).await.unwrap();
    let replica = agenda_storage::db::DatabaseUrl::parse(&on_port(&app_url, standby.port)).unwrap();
    let app = TestApp::spawn_configured(t, Router::new(), move |s| {
        s.db.read_urls = vec![replica];
        s.db.replica_max_lag = max_lag;
    })
    .await;
    let people = setup(&app).await;
    Some((primary, standby, app, people))
}

/// Waits until the standby has replayed everything the primary has written so far
/// (the test cluster commits asynchronously, so a synchronous commit flushes first).
async fn caught_up(primary: &LocalCluster, standby: &LocalCluster) {
    use sqlx::Connection as _;
    let mut on_primary = sqlx::PgConnection::connect(&primary.url("agenda_replicas"))
        .await
        .unwrap();
    sqlx::raw_sql(
        "SET synchronous_commit = on; SELECT pg_logical_emit_message(true, 'agenda-test', 'flush')",
    )
    .execute(&mut on_primary)
    .await
    .unwrap();
    let (target,): (String,) = sqlx::query_as("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut on_primary)
        .await
        .unwrap();
    let target = agenda_storage::db::Lsn::parse(&target).unwrap();
    let mut on_standby = sqlx::PgConnection::connect(&standby.url("agenda_replicas"))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let (replayed,): (String,) = sqlx::query_as("SELECT pg_last_wal_replay_lsn()::text")
            .fetch_one(&mut on_standby)
            .await
            .unwrap();
        if agenda_storage::db::Lsn::parse(&replayed).unwrap() >= target {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the standby never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Pauses the standby's replay and waits until it has paused: a pause is only taken
/// at the next WAL record, so one is written on the primary
/// (`pg_logical_emit_message`) until the standby says `paused`.
async fn pause_replay(primary: &LocalCluster, standby: &LocalCluster) {
    use sqlx::Connection as _;
    standby
        .exec("agenda_replicas", "SELECT pg_wal_replay_pause()")
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&standby.url("agenda_replicas"))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        primary
            .exec(
                "agenda_replicas",
                "SELECT pg_logical_emit_message(false, 'agenda-test', 'pause')",
            )
            .await
            .unwrap();
        let (state,): (String,) = sqlx::query_as("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        if state == "paused" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "replay never paused: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls readiness until its first replica is in `state` (the monitor checks every
/// second), returning the readiness body.
async fn replica_becomes(app: &TestApp, state: &str) -> Value {
    let started = Instant::now();
    loop {
        let ready = readiness(&app.client, &app.url("")).await;
        if ready["database"]["replicas"][0]["state"] == state {
            return ready;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the replica never became {state}: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A real streaming standby (`pg_basebackup -R`) as `DATABASE_READ_URL`: the
/// catalogue's reads are served by it (with replay paused, a session that did not
/// write sees the standby's older data); a session that just wrote reads its write
/// at once (from the primary); a booking followed at once by its `GET` answers 200;
/// and with the standby stopped reads fall back to the primary while readiness and
/// `/metrics` report the replica down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_replicas_serve_reads_keep_read_your_writes_and_fall_back() {
    // Replay is paused below: the standby must stay in use however far behind.
    let Some((primary, mut standby, app, people)) = with_standby(Duration::from_secs(3600)).await
    else {
        return;
    };
    let (provider, client) = (people.provider.1.clone(), people.client.1.clone());
    replica_becomes(&app, "up").await;
    caught_up(&primary, &standby).await;
    let service = format!("/api/v1/services/{}", people.service);
    let (status, body) =
        crate::support::request(&app, "GET", &service, Some(&client), None, None).await;
    assert_eq!(status, 200, "{body}");

    pause_replay(&primary, &standby).await;
    let (status, fresh) = crate::support::request(
        &app,
        "POST",
        "/api/v1/services",
        Some(&provider),
        Some(json!({"name": "Fresh", "duration_minutes": 30, "price_cents": 1000})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{fresh}");
    let fresh = format!("/api/v1/services/{}", fresh["id"].as_str().unwrap());
    // The writer reads its write at once: its fence sends it to the primary.
    let (status, body) =
        crate::support::request(&app, "GET", &fresh, Some(&provider), None, None).await;
    assert_eq!(status, 200, "{body}");
    // Another session, which wrote nothing, is served by the paused standby.
    let (status, body) =
        crate::support::request(&app, "GET", &fresh, Some(&client), None, None).await;
    assert_eq!(
        status, 404,
        "a read tolerating lag must come from the standby: {body}"
    );
    let ready = readiness(&app.client, &app.url("")).await;
    assert!(
        ready["database"]["replicas"][0]["reads"].as_u64().unwrap() >= 2,
        "{ready}"
    );

    // A booking followed at once by its GET, replay still paused.
    let day = (Utc::now() + chrono::Duration::days(5)).date_naive();
    let (status, booked) = crate::support::request(
        &app,
        "POST",
        "/api/v1/appointments",
        Some(&client),
        Some(json!({"service_id": people.service, "start_at": format!("{day}T10:00:00Z")})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    let id = booked["id"].as_str().unwrap();
    let (status, body) = crate::support::request(
        &app,
        "GET",
        &format!("/api/v1/appointments/{id}"),
        Some(&client),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The client has written now: its catalogue reads wait for the standby, which
    // is paused, and so go to the primary.
    let (status, body) =
        crate::support::request(&app, "GET", &fresh, Some(&client), None, None).await;
    assert_eq!(status, 200, "{body}");

    standby
        .exec("agenda_replicas", "SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    standby.stop_fast().unwrap();
    let ready = replica_becomes(&app, "down").await;
    assert_eq!(
        ready["status"], "ok",
        "the primary alone decides readiness: {ready}"
    );
    let (status, body) =
        crate::support::request(&app, "GET", &service, Some(&client), None, None).await;
    assert_eq!(status, 200, "reads fall back to the primary: {body}");
    let metrics = metrics_text(&app).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("agenda_db_replica_up{replica=") && l.ends_with("} 0"))
            && metrics
                .lines()
                .any(|l| l.starts_with("agenda_db_replica_state{")
                    && l.contains("state=\"down\"")
                    && l.ends_with("} 1")),
        "{metrics}"
    );
    app.stop().await;
    standby.start_again().ok();
}

/// A standby whose replay falls further behind than `DB_REPLICA_MAX_LAG` is skipped:
/// readiness and `/metrics` report it `lagging`, and the reads that would have gone
/// to it are served by the primary (its read count stays put); once it catches up
/// it is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_lagging_past_the_limit_is_skipped() {
    let Some((primary, standby, app, people)) = with_standby(Duration::from_secs(1)).await else {
        return;
    };
    caught_up(&primary, &standby).await;
    replica_becomes(&app, "up").await;

    pause_replay(&primary, &standby).await;
    // WAL keeps arriving and is not replayed: the lag grows past 1 s.
    let writer = {
        let primary = primary.clone();
        tokio::spawn(async move {
            loop {
                let _ = primary
                    .exec(
                        "agenda_replicas",
                        "SELECT pg_logical_emit_message(true, 'agenda-test', 'lag')",
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let ready = replica_becomes(&app, "lagging").await;
    assert!(
        ready["database"]["replicas"][0]["lag_ms"].as_u64().unwrap() > 1000,
        "{ready}"
    );
    let reads = ready["database"]["replicas"][0]["reads"].as_u64().unwrap();
    let service = format!("/api/v1/services/{}", people.service);
    let (status, body) =
        crate::support::request(&app, "GET", &service, Some(&people.client.1), None, None).await;
    assert_eq!(status, 200, "{body}");
    let ready = readiness(&app.client, &app.url("")).await;
    assert_eq!(
        ready["database"]["replicas"][0]["reads"].as_u64().unwrap(),
        reads,
        "a lagging replica served a read: {ready}"
    );
    let metrics = metrics_text(&app).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("agenda_db_replica_state{")
                && l.contains("state=\"lagging\"")
                && l.ends_with("} 1"))
            && metrics.contains("agenda_db_replica_lag_seconds{replica="),
        "{metrics}"
    );

    writer.abort();
    standby
        .exec("agenda_replicas", "SELECT pg_wal_replay_resume()")
        .await
        .unwrap();
    replica_becomes(&app, "up").await;
    app.stop().await;
}
