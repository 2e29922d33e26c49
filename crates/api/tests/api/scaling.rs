//! Beyond one process (issue 16): the API behind a real PgBouncer in transaction
//! mode (`DB_PGBOUNCER=true`), and several real `agenda serve` processes sharing one
//! database with the same guarantees.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agenda_testkit::TestDb;
use agenda_testkit::pgbouncer::PgBouncer;
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
/// slot, spread round-robin, gives exactly one 201 (the rest 409); and an
/// idempotency key replayed against another process returns the first answer.
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
    // Two processes of pool 4 to 7 on a limit of 10: the first fits; the second
    // finds 4 sessions taken and may open 7.
    let pool = [("DB_POOL_SIZE", "4"), ("DB_MAX_OVERFLOW", "3")];
    let first = ServerProcess::start_with(&url, false, &pool).await;
    assert!(
        !first.log().contains("APP_DB_CONNECTION_LIMIT"),
        "{}",
        first.log()
    );
    let second = ServerProcess::start_with(&url, false, &pool).await;
    let log = second.log();
    assert!(
        log.contains("APP_DB_CONNECTION_LIMIT cannot cover the configured pools"),
        "{log}"
    );
    assert!(log.contains("other processes hold 4"), "{log}");
    drop((first, second));
}
