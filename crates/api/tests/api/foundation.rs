//! Cross-cutting behaviour of the foundation: health probes, the unit of work,
//! graceful shutdown, the error shape, configuration errors. What happens when the
//! database misbehaves (cancellation, outages, restarts) is in `faults.rs`.

use std::time::{Duration, Instant};

use agenda_api::app::AppState;
use agenda_api::error::ApiError;
use agenda_api::uow::UnitOfWork;
use agenda_entity::organization::CreateOrganization;
use agenda_storage::db::Db;
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_testkit::{TestDb, both_engines};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::json;

use crate::support::{TestApp, code};

pub(crate) fn org(slug: &str) -> CreateOrganization {
    CreateOrganization {
        slug: slug.into(),
        name: "Test".into(),
        time_zone: "UTC".into(),
        currency: "EUR".into(),
        locale: None,
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
    // Breaks the rule that a GET writes only through `uow.tx()`.
    async fn write_through_read(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        OrganizationRepo::create(uow.read().await?, org("written-by-a-get")).await?;
        Ok(StatusCode::OK)
    }
    Router::new()
        .route(
            "/test/write-through-read",
            axum::routing::get(write_through_read),
        )
        .route("/test/write-then-fail", post(write_then_fail))
        .route("/test/write-then-panic", post(write_then_panic))
        .route("/test/write-then-succeed", post(write_then_succeed))
}

/// On PostgreSQL a `GET` whose transaction wrote nothing ends it by dropping it (its
/// `ROLLBACK` rides on the pool's release check), so a `GET` that wrote through
/// `uow.read()` would lose the write without a word. Debug builds, which every test
/// suite runs, check it at that moment: such a request answers 500 and stores
/// nothing, so any route breaking the rule fails the tests that call it.
#[cfg(debug_assertions)]
#[tokio::test]
async fn a_get_that_writes_through_read_fails_loudly() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn_with(t, uow_routes()).await;
    let response = app
        .client
        .get(app.url("/test/write-through-read"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!((status, code(&body)), (500, "internal"), "{body}");
    assert!(!exists(&app.t.db, "written-by-a-get").await);
    app.stop().await;
}

pub(crate) async fn exists(db: &Db, slug: &str) -> bool {
    OrganizationRepo::find_by_slug(db.conn(), slug)
        .await
        .unwrap()
        .is_some()
}

pub(crate) async fn wait_for_idle_pool(db: &Db) {
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
pub(crate) async fn idle_in_transaction(db: &Db) -> i64 {
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

    async fn graceful_shutdown_finishes_in_flight_requests(t: TestDb) {
        // The handler says when it is inside its transaction, then takes 1 s more.
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let route = Router::new().route(
            "/test/slow",
            post(move |uow: UnitOfWork| {
                let entered = entered_tx.clone();
                async move {
                    OrganizationRepo::create(uow.tx().await?, org("slow")).await?;
                    let _ = entered.send(());
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok::<_, ApiError>(StatusCode::CREATED)
                }
            }),
        );
        let app = TestApp::spawn_with(t, route).await;
        let db = app.db.clone();
        let client = app.client.clone();
        let url = app.url("/test/slow");
        let in_flight = tokio::spawn(async move { client.post(url).send().await.unwrap().status().as_u16() });
        entered.recv().await.unwrap();
        let addr = app.addr;
        let stopping = tokio::spawn(app.stop());
        // The listener closes at once, while the request is still running.
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_ok() {
            assert!(Instant::now() < deadline, "still accepting connections while stopping");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let db = app.db.clone();
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

/// A deferred trigger on `organizations` whose COMMIT waits for the advisory lock
/// `key` (so the test decides when a commit finishes), and a connection of the test
/// holding that lock. Dropping the connection releases it.
async fn commits_wait_for_the_test(t: &TestDb, key: i64) -> sqlx::PgConnection {
    use sqlx::Connection;
    let url = t.settings.url.expose().to_owned();
    let mut setup = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION agenda_test_commit_gate() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN PERFORM pg_advisory_xact_lock({key}); RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER agenda_test_commit_gate AFTER INSERT ON organizations \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION agenda_test_commit_gate(); \
         GRANT EXECUTE ON FUNCTION agenda_test_commit_gate() TO PUBLIC; \
         SELECT pg_advisory_lock({key})"
    )))
    .execute(&mut setup)
    .await
    .unwrap();
    setup
}

/// A server on a PostgreSQL test database whose commits wait for the test (see
/// [`commits_wait_for_the_test`]); `None` when PostgreSQL is not available.
async fn gated_server(
    key: i64,
    adjust: impl FnOnce(&mut agenda_api::Settings),
) -> Option<(TestApp, sqlx::PgConnection)> {
    let t = TestDb::postgres().await?;
    let gate = commits_wait_for_the_test(&t, key).await;
    Some((
        TestApp::spawn_configured(t, Router::new(), adjust).await,
        gate,
    ))
}

/// Waits until some session's COMMIT waits for a lock (the gate above).
async fn wait_for_a_gated_commit(t: &TestDb) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock' AND query = 'COMMIT'",
        )
        .fetch_one(t.db.postgres_pool().unwrap())
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no COMMIT reached the gate");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

both_engines! {
    /// `REQUEST_TIMEOUT` reached while the handler works (it writes, then waits 30 s):
    /// the answer is 503 with `Retry-After`, and the write is not stored.
    async fn a_deadline_before_the_commit_rolls_back_and_answers_503(t: TestDb) {
        let route = Router::new().route(
            "/test/write-then-wait",
            post(|uow: UnitOfWork| async move {
                OrganizationRepo::create(uow.tx().await?, org("too-slow")).await?;
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, ApiError>(StatusCode::CREATED)
            }),
        );
        let app = TestApp::spawn_configured(t, route, |s| s.http.request_timeout = Duration::from_millis(300)).await;
        let response = app.client.post(app.url("/test/write-then-wait")).send().await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let (_, body) = crate::support::read(response).await;
        assert_eq!(code(&body), "unavailable", "{body}");
        assert!(!exists(&app.t.db, "too-slow").await, "the write was rolled back");
        app.stop().await;
    }
}

/// The deadline never cuts a commit short: with `REQUEST_TIMEOUT` 500 ms, a COMMIT
/// the test holds back until well past it (a deferred trigger waits for the test's
/// lock). Figures: the request is answered 201, after the deadline, and the row is
/// stored — the old layering answered 503 "retry shortly" for a committed write.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_deadline_never_cuts_a_commit_short() {
    let limit = Duration::from_millis(500);
    let Some((app, gate)) = gated_server(4201, |s| s.http.request_timeout = limit).await else {
        return;
    };
    let (client, url) = (app.client.clone(), app.url("/api/v1/organizations"));
    let sent = Instant::now();
    let answer = tokio::spawn(async move {
        crate::support::read(client.post(url).json(&crate::support::sign_up_body(json!({"slug": "gated", "name": "Gated", "time_zone": "UTC", "currency": "BRL"}))).send().await.unwrap()).await
    });
    wait_for_a_gated_commit(&app.t).await;
    // Hold the commit until the deadline is well past.
    while sent.elapsed() < limit + Duration::from_millis(500) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!answer.is_finished(), "answered while the commit was held");
    drop(gate);
    let (status, body) = answer.await.unwrap();
    let took = sent.elapsed();
    assert_eq!(status, 201, "{body}");
    assert!(took > limit, "{took:?}");
    assert!(exists(&app.t.db, "gated").await);
    eprintln!(
        "deadline: a commit held past REQUEST_TIMEOUT ({limit:?}) answered 201 after {took:?}; the row is stored"
    );
    app.stop().await;
}

/// A commit that outlasts `DB_COMMIT_TIMEOUT` (1 s; the test holds it back): its
/// outcome is unknown, and the answer says so. Figures: 504 with the code
/// `commit_outcome_unknown` and no `Retry-After` (a blind retry could repeat the
/// change); when the test lets the commit through, the row is there — "unknown" was
/// the honest answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_without_an_answer_in_time_is_504_outcome_unknown() {
    let Some((app, gate)) = gated_server(4202, |s| {
        s.db.commit_timeout = Duration::from_secs(1);
        // The connection whose commit was given up on waits, as it returns to the
        // pool, for the commit to finish: long enough for the test to let it through.
        s.db.ping_timeout = Duration::from_secs(15);
    })
    .await
    else {
        return;
    };
    let response = app
        .client
        .post(app.url("/api/v1/organizations"))
        .json(&crate::support::sign_up_body(json!({"slug": "unconfirmed", "name": "Unconfirmed", "time_zone": "UTC", "currency": "BRL"})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(!response.headers().contains_key("retry-after"));
    let (_, body) = crate::support::read(response).await;
    assert_eq!(code(&body), "commit_outcome_unknown", "{body}");
    assert!(
        !exists(&app.t.db, "unconfirmed").await,
        "not committed while held"
    );
    drop(gate);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !exists(&app.t.db, "unconfirmed").await {
        assert!(Instant::now() < deadline, "the held commit never completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}
