//! Cross-cutting behaviour of the foundation: health probes, the unit of work,
//! cancellation, graceful shutdown, the error shape, configuration errors.

use std::time::{Duration, Instant};

use agenda_api::app::AppState;
use agenda_api::error::ApiError;
use agenda_api::uow::UnitOfWork;
use agenda_entity::organization::CreateOrganization;
use agenda_storage::Engine;
use agenda_storage::db::{DatabaseUrl, Db};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_testkit::{TestDb, both_engines, postgres::LocalCluster, test_settings};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;

use crate::support::{TestApp, code};

fn org(slug: &str) -> CreateOrganization {
    CreateOrganization {
        slug: slug.into(),
        name: "Test".into(),
        time_zone: "UTC".into(),
        currency: "EUR".into(),
    }
}

/// Handlers that write and then fail in different ways.
fn uow_routes() -> Router<AppState> {
    async fn write_then_fail(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.tx().await?, org("fails")).await?;
        Err(ApiError::invalid_field(
            "slug",
            "test",
            "rejected after the write",
        ))
    }
    async fn write_then_panic(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.tx().await?, org("panics")).await?;
        panic!("handler bug after a write");
    }
    async fn write_then_succeed(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.tx().await?, org("succeeds")).await?;
        // A second use in the same request shares the transaction.
        OrganizationRepo::create(uow.tx().await?, org("succeeds-too")).await?;
        Ok(StatusCode::CREATED)
    }
    async fn write_then_hang(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.tx().await?, org("hangs")).await?;
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(StatusCode::CREATED)
    }
    async fn slow(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.tx().await?, org("slow")).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Ok(StatusCode::CREATED)
    }
    Router::new()
        .route("/test/write-then-fail", post(write_then_fail))
        .route("/test/write-then-panic", post(write_then_panic))
        .route("/test/write-then-succeed", post(write_then_succeed))
        .route("/test/write-then-hang", post(write_then_hang))
        .route("/test/slow", post(slow))
}

async fn exists(db: &Db, slug: &str) -> bool {
    OrganizationRepo::find_by_slug(db.conn(), slug)
        .await
        .unwrap()
        .is_some()
}

async fn wait_for_idle_pool(db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while db.pool_status().in_use > 0 {
        assert!(
            Instant::now() < deadline,
            "connections still in use: {:?}",
            db.pool_status()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sessions of this database left "idle in transaction" (PostgreSQL).
async fn idle_in_transaction(db: &Db) -> i64 {
    let pool = db.postgres_pool().expect("postgres");
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

both_engines! {
    async fn liveness_and_readiness(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (status, body) = app.get("/health/live").await;
        assert_eq!((status, body), (200, json!({"status": "ok"})));
        let (status, body) = app.get("/health/ready").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "ok");
        let db = &body["database"];
        assert_eq!(db["engine"], app.t.engine().as_str());
        assert!(db["latency_ms"].as_f64().unwrap() >= 0.0);
        for figure in ["size", "idle", "in_use", "min", "max"] {
            assert!(db["pool"][figure].is_u64(), "pool.{figure} in {db}");
        }
        assert_eq!(db["pool"]["max"], 5);
        app.stop().await;
    }

    async fn error_shape_for_unknown_routes_and_methods(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (status, body) = app.get("/api/v1/nothing-here").await;
        assert_eq!((status, code(&body)), (404, "not_found"));
        let response = app.client.delete(app.url("/api/v1/organizations")).send().await.unwrap();
        let (status, body) = crate::support::read(response).await;
        assert_eq!((status, code(&body)), (405, "method_not_allowed"));
        assert!(body["error"]["message"].is_string());
        app.stop().await;
    }

    async fn request_ids_are_echoed_or_generated(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let r = app.client.get(app.url("/health/live")).header("x-request-id", "abc-123").send().await.unwrap();
        assert_eq!(r.headers()["x-request-id"], "abc-123");
        let r = app.client.get(app.url("/health/live")).send().await.unwrap();
        let generated = r.headers()["x-request-id"].to_str().unwrap();
        assert!(uuid::Uuid::parse_str(generated).is_ok(), "{generated}");
        app.stop().await;
    }

    async fn an_error_after_a_write_leaves_nothing_behind(t: TestDb) {
        let app = TestApp::spawn_with(t, uow_routes()).await;
        let (status, body) = app.post("/test/write-then-fail", &json!({})).await;
        assert_eq!((status, code(&body)), (422, "validation_failed"));
        assert!(!exists(&app.t.db, "fails").await, "the write was rolled back");

        let (status, body) = app.post("/test/write-then-panic", &json!({})).await;
        assert_eq!((status, code(&body)), (500, "internal"));
        assert!(!body.to_string().contains("handler bug"), "no internals leak: {body}");
        assert!(!exists(&app.t.db, "panics").await, "the write was rolled back");

        let (status, _) = app.post("/test/write-then-succeed", &json!({})).await;
        assert_eq!(status, 201);
        assert!(exists(&app.t.db, "succeeds").await && exists(&app.t.db, "succeeds-too").await);
        wait_for_idle_pool(&app.db).await;
        app.stop().await;
    }

    async fn a_cancelled_request_leaves_no_transaction_open(t: TestDb) {
        let app = TestApp::spawn_with(t, uow_routes()).await;
        let client = reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap();
        for _ in 0..5 {
            let err = client.post(app.url("/test/write-then-hang")).send().await.unwrap_err();
            assert!(err.is_timeout(), "{err}");
        }
        // The server notices the closed connections and drops the handlers.
        wait_for_idle_pool(&app.db).await;
        assert!(!exists(&app.t.db, "hangs").await, "cancelled writes are rolled back");
        if app.t.engine() == Engine::Postgres {
            assert_eq!(idle_in_transaction(&app.t.db).await, 0);
        }
        // No lock is left behind either: the next write goes straight through.
        let started = Instant::now();
        let (status, _) = app.post("/test/write-then-succeed", &json!({})).await;
        assert_eq!(status, 201);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        app.stop().await;
    }

    async fn graceful_shutdown_finishes_in_flight_requests(t: TestDb) {
        let app = TestApp::spawn_with(t, uow_routes()).await;
        let db = app.db.clone();
        let client = app.client.clone();
        let url = app.url("/test/slow");
        let in_flight = tokio::spawn(async move { client.post(url).send().await.unwrap().status().as_u16() });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let addr = app.addr;
        let stopping = tokio::spawn(app.stop());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections while stopping");
        assert_eq!(in_flight.await.unwrap(), 201, "the in-flight request completed");
        let t = stopping.await.unwrap();
        assert!(db.is_closed(), "the pool is closed at the end");
        let reopened = t.another_pool(|_| {}).await;
        assert!(exists(&reopened, "slow").await, "and its work was committed");
        reopened.close().await;
    }
}

/// `Application::run_until` stops accepting, waits for in-flight work, then closes
/// the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_until_closes_the_pool() {
    let t = TestDb::sqlite().await;
    let db = t.db.clone();
    let app = TestApp::spawn(t).await;
    let addr = app.addr;
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, 200);
    app.stop().await;
    assert!(db.is_closed(), "the pool is closed at shutdown");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

/// Readiness answers 503 within its deadline when the database does not answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_within_its_deadline_when_the_database_hangs() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = DatabaseUrl::parse(&format!(
        "postgres://agenda:pw@{}/agenda",
        silent.local_addr().unwrap()
    ))
    .unwrap();
    let mut db_settings = test_settings(url);
    db_settings.pool_timeout = Duration::from_secs(10);
    let db = Db::connect_lazy(&db_settings).unwrap();
    let mut settings =
        agenda_api::Settings::from_env(&agenda_storage::config::Env::default()).unwrap();
    settings.db = db_settings;
    settings.http.bind_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.health_timeout = Duration::from_millis(700);
    let app = agenda_api::Application::with_db(settings, db)
        .await
        .unwrap();
    let addr = app.local_addr();
    let server = tokio::spawn(app.run_until(std::future::pending()));
    let started = Instant::now();
    let response = reqwest::get(format!("http://{addr}/health/ready"))
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(!body.to_string().contains("pw@"), "{body}");
    assert!(
        took >= Duration::from_millis(650) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    server.abort();
    drop(silent);
}

/// With PostgreSQL stopped, readiness is 503 within its deadline; when PostgreSQL is
/// back, readiness recovers by itself, without a restart of the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_recovers_by_itself_when_postgres_comes_back() {
    if agenda_testkit::postgres::find_binaries().is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "PostgreSQL binaries are required under CI"
        );
        eprintln!("!!!!!!!!!! SKIPPED: PostgreSQL binaries not found");
        return;
    }
    let mut cluster = LocalCluster::start().unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let mut db_settings = test_settings(DatabaseUrl::parse(&cluster.url("postgres")).unwrap());
    db_settings.pool_size = 2;
    db_settings.pool_timeout = Duration::from_secs(1);
    let db = Db::connect(&db_settings).await.unwrap();
    let mut settings =
        agenda_api::Settings::from_env(&agenda_storage::config::Env::default()).unwrap();
    settings.db = db_settings;
    settings.http.bind_addr = "127.0.0.1:0".parse().unwrap();
    settings.http.health_timeout = Duration::from_secs(2);
    let app = agenda_api::Application::with_db(settings, db)
        .await
        .unwrap();
    let ready = format!("http://{}/health/ready", app.local_addr());
    let server = tokio::spawn(app.run_until(std::future::pending()));
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 200);

    cluster.stop_fast().unwrap();
    let started = Instant::now();
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );

    cluster.start_again().unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let back = Instant::now();
    while reqwest::get(&ready).await.unwrap().status() != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "readiness did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
}

/// A malformed setting stops the binary with one clear line and exit code 2.
#[test]
fn bad_configuration_is_one_line_and_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("agenda-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (var, value, expected) in [
        (
            "DATABASE_URL",
            "mysql://root:hunter2@db/x",
            "DATABASE_URL is not valid",
        ),
        (
            "DATABASE_URL",
            "postgres://u:hunter2@/",
            "DATABASE_URL is not valid",
        ),
        ("DB_POOL_TIMEOUT", "soon", "DB_POOL_TIMEOUT is \"soon\""),
        ("BIND_ADDR", "everywhere", "BIND_ADDR is \"everywhere\""),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
            .current_dir(&dir)
            .env_clear()
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.starts_with("agenda: invalid configuration: "),
            "{stderr}"
        );
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("hunter2") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// On PostgreSQL the test server runs as the least-privilege application role, which
/// row-level security confines: every API test therefore also proves its route works
/// under row-level security (and would see nothing if a route forgot its tenant).
#[tokio::test]
async fn the_test_server_runs_as_the_confined_application_role() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(t).await;
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(app.db.postgres_pool().unwrap())
        .await
        .unwrap();
    assert_eq!(user, agenda_testkit::APP_ROLE);
    assert!(
        !agenda_storage::tenant::sees_every_tenant(app.db.conn())
            .await
            .unwrap()
    );
    app.stop().await;
}
