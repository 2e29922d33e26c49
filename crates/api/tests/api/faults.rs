//! The fault-injection suite: what the service does when its database misbehaves.
//!
//! Each test names its fault, states in its doc comment the figure it checks, and
//! asserts it; the measured value is printed (`cargo test -p agenda-api --test api
//! faults:: -- --nocapture` shows the `fault N:` lines). Run with
//! `AGENDA_LONG_FAULTS=1` for the long variants (more cancelled requests, more
//! restarts). Where a fault applies to both engines the test runs on both
//! (`both_engines!`); PostgreSQL-only faults use a database of the shared test server,
//! or a server of their own when they stop it. Under `CI=true` none is skipped.
//!
//! | fault | where it is tested |
//! |---|---|
//! | 1. pool exhausted | `fault_1_exhausted_pool_answers_503_then_serves_the_next_waiter` (both engines); the storage layer alone: `storage::connection::an_exhausted_pool_fails_fast_as_unavailable` |
//! | 2. PostgreSQL restarted under load | `fault_2_postgres_restart_under_load` |
//! | 3. idle backends terminated | `fault_3_terminated_idle_backends_cause_no_errors` |
//! | 4. statement timeout | `fault_4_statement_timeout_is_503_and_the_connection_is_reused`; the classification alone: `storage::errors::statement_timeout_is_classified_as_timeout` |
//! | 5. idle-in-transaction timeout | `fault_5_idle_transaction_is_ended_by_the_server_and_the_pool_refills` |
//! | 6. cancelled requests | `fault_6_cancelled_requests_leave_the_pool_clean` (both engines) |
//! | 7. SQLite concurrent writers | `fault_7_sqlite_concurrent_writers_never_see_database_is_locked` (two pools), `fault_7_sixty_four_http_writers_queue_instead_of_meeting_the_busy_timeout` (the writer lane); the storage layer alone: `storage::connection::sixty_four_concurrent_writers_never_see_a_busy_timeout` |
//! | 8. double-booking flood | `fault_8_double_booking_flood_gives_exactly_one_201` (both engines, over HTTP); the storage layer alone: `storage::appointments::fifty_bookings_of_one_slot_give_exactly_one` |
//! | 9. database unreachable | at startup: `fault_9_unreachable_at_startup_retries_with_backoff_then_exits`, `fault_9_a_bad_tls_certificate_stops_at_once`; at runtime: `fault_9_readiness_is_503_within_its_deadline_when_the_database_hangs` and `fault_9_readiness_is_503_while_postgres_is_down_and_recovers_by_itself` |
//! | 10. network partition (black hole) | `fault_10_a_black_holed_network_is_survived_and_recovered_from`, through the test kit's TCP proxy |
//! | shutdown with a request blocked on a lock | `shutdown_is_bounded_with_a_request_blocked_on_a_lock` (both engines, the real binary) |

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agenda_api::app::AppState;
use agenda_api::error::ApiError;
use agenda_api::uow::UnitOfWork;
use agenda_api::{Application, Settings};
use agenda_entity::enums::UserRole;
use agenda_storage::StorageError;
use agenda_storage::config::Env;
use agenda_storage::db::{DatabaseUrl, Db, DbSettings, Engine};
use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_testkit::postgres::LocalCluster;
use agenda_testkit::{TestDb, both_engines, test_settings};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::io::AsyncWriteExt;
use tokio::task::JoinHandle;

use crate::foundation::{exists, idle_in_transaction, org, wait_for_idle_pool};
use crate::support::{PASSWORD, TestApp, code, member, organization, read};

/// `AGENDA_LONG_FAULTS=1`: the long variants (20,000 cancelled requests per engine
/// instead of 1,000; five PostgreSQL restarts instead of one).
fn long_run() -> bool {
    std::env::var("AGENDA_LONG_FAULTS").is_ok_and(|v| v == "1" || v == "true")
}

/// `t` with its pool replaced by one built from adjusted settings.
async fn with_pool(mut t: TestDb, adjust: impl FnOnce(&mut DbSettings)) -> TestDb {
    let mut settings = t.settings.clone();
    adjust(&mut settings);
    let db = Db::connect(&settings)
        .await
        .expect("open the adjusted pool");
    t.db.close().await;
    t.db = db;
    t.settings = settings;
    t
}

fn new_org(slug: &str) -> Value {
    crate::support::sign_up_body(
        json!({"slug": slug, "name": slug, "time_zone": "UTC", "currency": "BRL"}),
    )
}

/// One number from a query (`count(*)`, `pg_backend_pid()`).
async fn number(conn: &impl ConnectionTrait, sql: &str) -> i64 {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .unwrap()
}

/// How many organizations have a slug starting with `prefix`.
async fn organizations_like(db: &Db, prefix: &str) -> i64 {
    number(
        db.conn(),
        &format!("SELECT count(*) FROM organizations WHERE slug LIKE '{prefix}%'"),
    )
    .await
}

/// Sessions of the server's pool in this database: application `agenda`, connected as
/// the application role (the test's own superuser pool uses the same application name).
fn app_sessions_sql() -> String {
    format!(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'agenda' AND usename = '{}' AND pid <> pg_backend_pid()",
        agenda_testkit::APP_ROLE
    )
}

/// The pids of the application's sessions, seen from a connection outside its pool.
async fn app_sessions(url: &str) -> Vec<i32> {
    let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
    let pids = sqlx::query_scalar(sqlx::AssertSqlSafe(app_sessions_sql()))
        .fetch_all(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    pids
}

/// Waits until none of `pids` is connected any more; returns how long that took.
async fn wait_until_gone(url: &str, pids: &[i32], limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let left: HashSet<i32> = app_sessions(url).await.into_iter().collect();
        if pids.iter().all(|pid| !left.contains(pid)) {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "sessions {pids:?} still there");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A PostgreSQL server of this test's own (for faults that stop it), or `None` when
/// PostgreSQL is not installed outside CI.
async fn own_cluster() -> Option<LocalCluster> {
    if agenda_testkit::postgres::find_binaries().is_none() {
        assert!(
            std::env::var("CI").is_err(),
            "PostgreSQL binaries are required under CI"
        );
        eprintln!("!!!!!!!!!! SKIPPED: PostgreSQL binaries not found");
        return None;
    }
    let cluster = LocalCluster::start().unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    Some(cluster)
}

/// A migrated database `agenda` on `cluster`, and a pool on it.
async fn migrated_database(
    cluster: &LocalCluster,
    adjust: impl FnOnce(&mut DbSettings),
) -> (Db, DbSettings) {
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE DATABASE agenda")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    let url = cluster.url("agenda");
    agenda_testkit::migrate_fresh(&url).await.unwrap();
    let mut settings = test_settings(DatabaseUrl::parse(&url).unwrap());
    adjust(&mut settings);
    (Db::connect(&settings).await.unwrap(), settings)
}

/// The real application on `db` (a database outside the test kit) until the returned
/// task is aborted; its base URL.
async fn serve(
    db: Db,
    db_settings: DbSettings,
    extra: Router<AppState>,
    adjust: impl FnOnce(&mut Settings),
) -> (String, JoinHandle<std::io::Result<()>>) {
    let mut settings = Settings::from_env(&Env::default()).unwrap();
    settings.db = db_settings;
    settings.http.bind_addr = "127.0.0.1:0".parse().unwrap();
    settings.auto_migrate = false;
    adjust(&mut settings);
    let app = Application::with_routes(settings, db, extra).await.unwrap();
    let base = format!("http://{}", app.local_addr());
    (base, tokio::spawn(app.run_until(std::future::pending())))
}

async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    read(request.send().await.unwrap()).await
}

/// Over HTTP only: organization `acme` (UTC), a provider bookable every 15 minutes
/// from 00:00 to 23:00 every day (15-minute service), and a signed-in client. Returns
/// the client's token and the service id.
async fn bookable_provider(http: &reqwest::Client, base: &str) -> (String, String) {
    let url = |path: &str| format!("{base}/api/v1{path}");
    let (status, body) = send(http.post(url("/organizations")).json(&new_org("acme"))).await;
    assert_eq!(status, 201, "{body}");
    let mut tokens = Vec::new();
    for (email, role) in [
        ("provider@example.com", "provider"),
        ("client@example.com", "client"),
    ] {
        let account = json!({"organization": "acme", "email": email, "password": PASSWORD});
        let mut register = account.clone();
        register["full_name"] = json!("Someone");
        register["role"] = json!(role);
        let (status, body) = send(http.post(url("/auth/register")).json(&register)).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = send(http.post(url("/auth/login")).json(&account)).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["token"].as_str().unwrap().to_owned());
    }
    let provider = &tokens[0];
    let settings = crate::support::full_settings(
        json!({"accepted_payment_methods": ["pix"], "min_lead_minutes": 0}),
    );
    let (status, body) = send(
        http.put(url("/providers/me/settings"))
            .bearer_auth(provider)
            .json(&settings),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let service = json!({"name": "Trim", "duration_minutes": 15, "price_cents": 1000});
    let (status, body) = send(
        http.post(url("/services"))
            .bearer_auth(provider)
            .json(&service),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let service_id = body["id"].as_str().unwrap().to_owned();
    for weekday in 1..=7 {
        let hours = json!({"kind": "weekly", "weekday": weekday, "start_time": "00:00", "end_time": "23:00"});
        let (status, body) = send(
            http.post(url("/availability"))
                .bearer_auth(provider)
                .json(&hours),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    (tokens.swap_remove(1), service_id)
}

/// The `n`-th free slot of [`bookable_provider`]: 92 a day, from tomorrow on.
fn slot(n: usize) -> String {
    let per_day = 92;
    let day = chrono::Utc::now().date_naive() + chrono::Duration::days(1 + (n / per_day) as i64);
    let start =
        day.and_hms_opt(0, 0, 0).unwrap() + chrono::Duration::minutes(15 * (n % per_day) as i64);
    start.and_utc().to_rfc3339()
}

both_engines! {
    /// Fault 1, the pool exhausted (all connections held; on SQLite also the writer
    /// lane, which every write transaction queues for). Figures: a request that needs
    /// a connection is answered 503 with `Retry-After: 1` no sooner than
    /// `DB_POOL_TIMEOUT` (2 s) — and within 2 s + 5 s: it fails fast rather than
    /// hang — and the acquire timeout is counted; when the connection it needs is
    /// freed, a request waiting for one is answered 201, i.e. served while it waits
    /// rather than at the end of its own 2 s wait (nothing else frees one).
    async fn fault_1_exhausted_pool_answers_503_then_serves_the_next_waiter(t: TestDb) {
        const MAX: u32 = 3;
        let timeout = Duration::from_secs(2);
        let t = with_pool(t, |s| {
            s.pool_size = 0;
            s.max_overflow = MAX;
            s.pool_timeout = timeout;
        })
        .await;
        let app = TestApp::spawn(t).await;
        // Read transactions hold the pool's connections; on SQLite a write
        // transaction holds the writer lane too.
        let mut held = Vec::new();
        for _ in 0..MAX {
            held.push(app.db.begin_read().await.unwrap());
        }
        if app.t.engine() == Engine::Sqlite {
            held.push(app.db.begin().await.unwrap());
        }
        assert_eq!(app.db.pool_status().in_use, MAX);

        let started = Instant::now();
        let response = app.client.post(app.url("/api/v1/organizations")).json(&new_org("exhausted")).send().await.unwrap();
        let waited = started.elapsed();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let (_, body) = read(response).await;
        assert_eq!(code(&body), "unavailable", "{body}");
        assert!(waited >= timeout - Duration::from_millis(20) && waited < timeout + Duration::from_secs(5), "{waited:?}");
        // Read from the registry: `GET /metrics` would wait for a connection too.
        assert!(app.db.registry().render().contains("\nagenda_db_acquire_timeouts_total 1\n"));

        let (client, url) = (app.client.clone(), app.url("/api/v1/organizations"));
        let waiter = tokio::spawn(async move {
            let response = client.post(url).json(&new_org("next-waiter")).send().await.unwrap();
            (response.status().as_u16(), Instant::now())
        });
        // Let the waiter queue for a connection (if it is not queued yet, it simply
        // finds the freed one).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let freed = Instant::now();
        drop(held.pop());
        let (status, answered) = waiter.await.unwrap();
        let served_after = answered - freed;
        assert_eq!(status, 201, "the waiter timed out instead of getting the freed connection");
        eprintln!(
            "fault 1 ({}): 503 after {waited:?} (pool timeout {timeout:?}); next waiter served {served_after:?} after a connection was freed",
            app.t.engine().as_str()
        );
        drop(held);
        app.stop().await;
    }
}

/// What the booking clients of fault 2 saw.
#[derive(Default)]
struct Traffic {
    /// Answered 201: (idempotency key, appointment id, when, replayed).
    created: Vec<(String, String, Instant, bool)>,
    /// Answered 503: when, and whether `Retry-After` was set.
    unavailable: Vec<(Instant, bool)>,
    /// Anything else: another status, no answer (a hang or a dropped connection).
    unexpected: Vec<String>,
    /// Keys that needed more than one attempt.
    retried: usize,
    slowest: Duration,
}

/// Books one new slot after another, each with its own `Idempotency-Key`, retrying a
/// 503 with the same key until it is answered 201; stops when `stop` is set.
async fn book_until_stopped(
    http: reqwest::Client,
    url: String,
    token: String,
    service: String,
    next: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    traffic: Arc<Mutex<Traffic>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let key = format!("restart-{n}");
        let body = json!({"service_id": service, "start_at": slot(n)});
        for attempt in 1.. {
            let sent = Instant::now();
            let result = http
                .post(&url)
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await;
            let took = sent.elapsed();
            let response = match result {
                Ok(response) => response,
                Err(e) => {
                    let mut log = traffic.lock().unwrap();
                    log.unexpected
                        .push(format!("{key}: no answer after {took:?}: {e}"));
                    break;
                }
            };
            let replayed = response.headers().contains_key("idempotent-replay");
            let retry_after = response.headers().contains_key("retry-after");
            let (status, answer) = read(response).await;
            let done = {
                let mut log = traffic.lock().unwrap();
                log.slowest = log.slowest.max(took);
                match status {
                    201 => {
                        let id = answer["id"].as_str().unwrap_or_default().to_owned();
                        log.created
                            .push((key.clone(), id, Instant::now(), replayed));
                        log.retried += usize::from(attempt > 1);
                        true
                    }
                    503 if attempt < 200 => {
                        log.unavailable.push((Instant::now(), retry_after));
                        false
                    }
                    _ => {
                        log.unexpected
                            .push(format!("{key}: {status} {answer} (attempt {attempt})"));
                        true
                    }
                }
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `POST /test/write-and-hold`: writes organization `held-{n}`, tells the test it is
/// inside its transaction, then holds it open for `hold` (forever when `None`) before
/// answering 201.
fn write_and_hold(
    hold: Option<Duration>,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
) -> Router<AppState> {
    let next = Arc::new(AtomicU64::new(0));
    Router::new().route(
        "/test/write-and-hold",
        post(move |uow: UnitOfWork| {
            let (entered, n) = (entered.clone(), next.fetch_add(1, Ordering::Relaxed));
            async move {
                OrganizationRepo::create(uow.tx().await?, org(&format!("held-{n}"))).await?;
                let _ = entered.send(());
                match hold {
                    Some(hold) => tokio::time::sleep(hold).await,
                    None => std::future::pending().await,
                }
                Ok::<_, ApiError>(StatusCode::CREATED)
            }
        }),
    )
}

/// Fault 2, PostgreSQL restarted while requests run: `pg_ctl stop -m fast`, 1.5 s
/// down (longer than the 1 s pool timeout), started again on the same port (what
/// `pg_ctl restart -m fast` does, in two steps so that the server stays a child of the
/// test and the outage is long enough to be seen). Four clients book continuously,
/// each booking with its own `Idempotency-Key`, retrying 503s with the same key; at
/// the moment of the stop three more requests are inside their transaction.
/// Figures: those three are answered 503 and their writes are not stored; every
/// booking answer is 201 or 503 with `Retry-After` — never a 500, never later than
/// 10 s (no hang); no 503 comes later than 5 s after the server accepts connections
/// again (bounds generous enough for a loaded machine); every booking answered 201 is stored, exactly one per key; sending 20
/// answered keys again replays the same bookings and stores nothing new. With
/// `AGENDA_LONG_FAULTS=1`: five restarts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_2_postgres_restart_under_load() {
    let Some(mut cluster) = own_cluster().await else {
        return;
    };
    let (db, db_settings) = migrated_database(&cluster, |s| {
        s.pool_size = 2;
        s.max_overflow = 10;
        s.pool_timeout = Duration::from_secs(1);
    })
    .await;
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let route = write_and_hold(Some(Duration::from_secs(2)), entered_tx);
    let (base, server) = serve(db.clone(), db_settings, route, |_| {}).await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let (token, service) = bookable_provider(&http, &base).await;

    let (next, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let bookings = format!("{base}/api/v1/appointments");
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(book_until_stopped(
                http.clone(),
                bookings.clone(),
                token.clone(),
                service.clone(),
                next.clone(),
                stop.clone(),
                traffic.clone(),
            ))
        })
        .collect();
    let restarts = if long_run() { 5 } else { 1 };
    let mut outages = Vec::new();
    let mut in_flight = Vec::new();
    for _ in 0..restarts {
        tokio::time::sleep(Duration::from_millis(700)).await;
        for _ in 0..3 {
            let request = http.post(format!("{base}/test/write-and-hold"));
            in_flight.push(tokio::spawn(async move {
                let response = request.send().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((
                    response.status().as_u16(),
                    response.headers().contains_key("retry-after"),
                ))
            }));
            entered.recv().await.unwrap();
        }
        let stopped = Instant::now();
        cluster.stop_fast().unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        cluster.start_again().unwrap();
        cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
        outages.push((stopped, Instant::now()));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }

    for request in in_flight {
        assert_eq!(
            request.await.unwrap(),
            Ok((503, true)),
            "a request in its transaction at the stop"
        );
    }
    let in_flight_stored = number(
        db.conn(),
        "SELECT count(*) FROM organizations WHERE slug LIKE 'held-%'",
    )
    .await;
    assert_eq!(in_flight_stored, 0, "writes answered 503 were stored");

    let log = std::mem::take(&mut *traffic.lock().unwrap());
    assert!(log.unexpected.is_empty(), "{:#?}", log.unexpected);
    assert!(
        log.unavailable.iter().all(|(_, retry_after)| *retry_after),
        "a 503 without Retry-After"
    );
    assert!(
        log.slowest < Duration::from_secs(10),
        "slowest answer {:?}",
        log.slowest
    );
    let mut errors_after_ready = Duration::ZERO;
    for (at, _) in &log.unavailable {
        let (stopped, ready) = outages
            .iter()
            .rev()
            .find(|(stopped, _)| stopped <= at)
            .expect("a 503 before any outage");
        let after = at.saturating_duration_since(*ready);
        assert!(
            after < Duration::from_secs(5),
            "a 503 {after:?} after the server was ready again ({:?} after it stopped)",
            *at - *stopped
        );
        errors_after_ready = errors_after_ready.max(after);
    }
    let last_ready = outages.last().unwrap().1;
    assert!(
        log.created.iter().any(|(_, _, at, _)| *at > last_ready),
        "no booking after the restart"
    );

    let answered: HashSet<&str> = log
        .created
        .iter()
        .map(|(_, id, _, _)| id.as_str())
        .collect();
    assert_eq!(
        answered.len(),
        log.created.len(),
        "two keys were answered with the same booking"
    );
    let stored = stored_appointments(&db).await;
    let missing: Vec<_> = answered
        .iter()
        .filter(|id| !stored.contains(**id))
        .collect();
    assert!(
        missing.is_empty(),
        "answered 201 but not stored: {missing:?}"
    );
    assert_eq!(
        stored.len(),
        answered.len(),
        "stored bookings that no key was answered with (duplicates)"
    );

    // Retrying answered keys, now that the server has been restarted, replays them.
    for (key, id, _, _) in log.created.iter().take(20) {
        let n: usize = key.trim_start_matches("restart-").parse().unwrap();
        let body = json!({"service_id": service, "start_at": slot(n)});
        let response = http
            .post(&bookings)
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().contains_key("idempotent-replay"),
            "{key}"
        );
        let (status, again) = read(response).await;
        assert_eq!(
            (status, again["id"].as_str()),
            (201, Some(id.as_str())),
            "{key}: {again}"
        );
    }
    assert_eq!(
        stored_appointments(&db).await.len(),
        stored.len(),
        "a replay stored a booking"
    );

    let replayed = log
        .created
        .iter()
        .filter(|(_, _, _, replayed)| *replayed)
        .count();
    eprintln!(
        "fault 2: {restarts} restart(s); in-flight transactions answered 503 and not stored; {} bookings answered 201 and stored once each ({} after a retry, {replayed} of them replays), {} answers 503, the last {errors_after_ready:?} after the server was ready; slowest answer {:?}",
        log.created.len(),
        log.retried,
        log.unavailable.len(),
        log.slowest
    );
    server.abort();
}

async fn stored_appointments(db: &Db) -> HashSet<String> {
    let sql = Statement::from_string(
        db.conn().get_database_backend(),
        "SELECT id::text FROM appointments",
    );
    let rows = db.conn().query_all_raw(sql).await.unwrap();
    rows.iter()
        .map(|r| r.try_get_by_index::<String>(0).unwrap())
        .collect()
}

/// Fault 3, every backend of the application terminated while idle
/// (`pg_terminate_backend` on all sessions with `application_name = 'agenda'`).
/// Figure: the next 60 requests (writes, sign-ins, authenticated reads, readiness;
/// 20 at a time) are all 2xx — zero errors — and run on new backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_3_terminated_idle_backends_cause_no_errors() {
    let Some(t) = TestDb::postgres_with(|s| {
        s.pool_size = 3;
        s.max_overflow = 5;
    })
    .await
    else {
        return;
    };
    let url = t.settings.url.expose().to_owned();
    let app = TestApp::spawn(t).await;
    let scope = organization(&app, "acme").await;
    let admin = member(&app, scope, "acme", "admin@example.com", UserRole::Admin).await;
    // Open every connection the pool may have, then leave them all idle.
    let max = app.db.pool_status().max;
    let mut held = Vec::new();
    for _ in 0..max {
        held.push(app.db.begin_read().await.unwrap());
    }
    drop(held);
    wait_for_idle_pool(&app.db).await;
    let before = app_sessions(&url).await;
    assert_eq!(before.len(), max as usize, "{before:?}");

    let mut terminator = sqlx::PgConnection::connect(&url).await.unwrap();
    let ended: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid")
            .bind(&before)
            .fetch_all(&mut terminator)
            .await
            .unwrap();
    terminator.close().await.ok();
    assert!(ended.iter().all(|e| *e) && ended.len() == before.len());
    wait_until_gone(&url, &before, Duration::from_secs(20)).await;

    let org_path = format!("/api/v1/organizations/{}", scope.organization_id());
    let login = json!({"organization": "acme", "email": "admin@example.com", "password": PASSWORD});
    let mut failures = Vec::new();
    let started = Instant::now();
    for wave in 0..3 {
        let mut requests = Vec::new();
        for i in 0..20 {
            let request = match i % 5 {
                0 => app
                    .client
                    .post(app.url("/api/v1/organizations"))
                    .json(&new_org(&format!("after-{wave}-{i}"))),
                1 => app.client.post(app.url("/api/v1/auth/login")).json(&login),
                2 => app
                    .client
                    .get(app.url("/api/v1/auth/me"))
                    .bearer_auth(&admin.token),
                3 => app.client.get(app.url(&org_path)).bearer_auth(&admin.token),
                _ => app.client.get(app.url("/health/ready")),
            };
            requests.push(tokio::spawn(async move {
                read(request.send().await.unwrap()).await
            }));
        }
        for request in requests {
            let (status, body) = request.await.unwrap();
            if !(200..300).contains(&status) {
                failures.push(format!("{status} {body}"));
            }
        }
    }
    let took = started.elapsed();
    assert!(
        failures.is_empty(),
        "errors after the backends were terminated: {failures:#?}"
    );
    let after: HashSet<i32> = app_sessions(&url).await.into_iter().collect();
    assert!(
        before.iter().all(|pid| !after.contains(pid)),
        "a terminated backend is still in use"
    );
    eprintln!(
        "fault 3: {} idle backends terminated; 60 requests after it, 0 errors, in {took:?}",
        before.len()
    );
    app.stop().await;
}

/// Test-only routes that run slow or introspective statements in the unit of work.
fn statement_routes() -> Router<AppState> {
    async fn sleep(uow: UnitOfWork) -> Result<StatusCode, ApiError> {
        uow.tx()
            .await?
            .execute_unprepared("SELECT pg_sleep(5)")
            .await
            .map_err(StorageError::from)?;
        Ok(StatusCode::NO_CONTENT)
    }
    async fn backend(uow: UnitOfWork) -> Result<axum::Json<Value>, ApiError> {
        let pid = number(uow.tx().await?, "SELECT pg_backend_pid()").await;
        Ok(axum::Json(json!({ "pid": pid })))
    }
    Router::new()
        .route("/test/pg-sleep", post(sleep))
        .route("/test/backend-pid", post(backend))
}

/// Fault 4, a statement running beyond `statement_timeout` (300 ms; the statement
/// would take 5 s). Figure: the request is answered 503 with `Retry-After` no sooner
/// than 300 ms (and within 300 ms + 5 s: no hang); the pool's only connection is then reused
/// (same backend before and after, pool size 1) and left in no transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_4_statement_timeout_is_503_and_the_connection_is_reused() {
    let limit = Duration::from_millis(300);
    let Some(t) = TestDb::postgres_with(|s| {
        s.statement_timeout = limit;
        s.pool_size = 0;
        s.max_overflow = 1;
    })
    .await
    else {
        return;
    };
    let app = TestApp::spawn_with(t, statement_routes()).await;
    let (status, before) = app.post("/test/backend-pid", &json!({})).await;
    assert_eq!(status, 200, "{before}");

    let started = Instant::now();
    let response = app
        .client
        .post(app.url("/test/pg-sleep"))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = read(response).await;
    assert_eq!(code(&body), "unavailable", "{body}");
    assert!(
        took >= limit && took < limit + Duration::from_secs(5),
        "{took:?}"
    );

    let (status, after) = app.post("/test/backend-pid", &json!({})).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        before["pid"], after["pid"],
        "the same connection serves the next request"
    );
    assert_eq!(app.db.pool_status().size, 1);
    assert_eq!(idle_in_transaction(&app.t.db).await, 0);
    eprintln!(
        "fault 4: 503 after {took:?} (statement_timeout {limit:?}); backend {} reused",
        after["pid"]
    );
    app.stop().await;
}

/// Fault 5, a transaction left idle beyond `idle_in_transaction_session_timeout`
/// (500 ms, on the server's pool only): a handler writes, then waits — until the test
/// has seen its session ended — before answering. Figures: the server ends that
/// session no sooner than the timeout after the write (and within 20 s: it does end
/// it); the request is then answered 503 (its commit cannot succeed) and its write is
/// not stored; the pool refills to its minimum (2) with live connections (within
/// 20 s) and serves the next write. No bound depends on the machine's speed: the
/// handler waits for the test, not for a clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_5_idle_transaction_is_ended_by_the_server_and_the_pool_refills() {
    let limit = Duration::from_millis(500);
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let url = t.settings.url.expose().to_owned();
    let (pid_tx, mut pid_rx) = tokio::sync::mpsc::unbounded_channel::<(i32, Instant)>();
    let release = Arc::new(tokio::sync::Notify::new());
    let handler_release = release.clone();
    let route = Router::new().route(
        "/test/write-then-idle",
        post(move |uow: UnitOfWork| async move {
            let tx = uow.tx().await?;
            OrganizationRepo::create(tx, org("left-idle")).await?;
            let pid = number(tx, "SELECT pg_backend_pid()").await;
            let _ = pid_tx.send((pid as i32, Instant::now()));
            handler_release.notified().await;
            Ok::<_, ApiError>(StatusCode::CREATED)
        }),
    );
    // Only the server's pool gets the short timeout: the test's own set-up (creating
    // the application role, for one) runs with the defaults.
    let app = TestApp::spawn_configured(t, route, |s| {
        s.db.idle_in_transaction_timeout = limit;
        s.db.pool_size = 2;
        s.db.max_overflow = 3;
    })
    .await;
    let (client, request_url) = (app.client.clone(), app.url("/test/write-then-idle"));
    let request =
        tokio::spawn(async move { read(client.post(request_url).send().await.unwrap()).await });
    let (pid, last_statement) = pid_rx.recv().await.unwrap();
    wait_until_gone(&url, &[pid], Duration::from_secs(20)).await;
    let ended_after = last_statement.elapsed();
    assert!(ended_after >= limit, "{ended_after:?}");
    release.notify_one();

    let (status, body) = request.await.unwrap();
    assert_eq!((status, code(&body)), (503, "unavailable"), "{body}");
    assert!(
        !exists(&app.t.db, "left-idle").await,
        "the write was not committed"
    );

    let started = Instant::now();
    loop {
        let status = app.db.pool_status();
        let sessions = app_sessions(&url).await;
        if status.size == 2 && status.idle == 2 && sessions.len() == 2 && !sessions.contains(&pid) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{status:?}, sessions {sessions:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refilled_after = started.elapsed();
    let (status, body) = app
        .post("/api/v1/organizations", &new_org("after-idle"))
        .await;
    assert_eq!(status, 201, "{body}");
    eprintln!(
        "fault 5: the server ended the idle transaction within {ended_after:?} of its last statement (timeout {limit:?}); answered 503; pool back to 2 live connections {refilled_after:?} after the answer"
    );
    app.stop().await;
}

both_engines! {
    /// Fault 6, requests aborted by the client mid-transaction: 1,000 per engine
    /// (20,000 with `AGENDA_LONG_FAULTS=1`), each closing its connection once its
    /// handler has written and holds the transaction open — as many at a time as the
    /// pool has connections on PostgreSQL, one at a time on SQLite (whose single
    /// writer would make the others wait for the lock rather than sit in a
    /// transaction). Figures: afterwards no session is idle in transaction, no
    /// connection is in use, the pool is within its maximum with one server session
    /// per pooled connection, all of its connections can be taken at once, none of
    /// the aborted writes is stored, and the next write is served within 3 s (a
    /// leftover lock would hold it for the busy or lock timeout, 5 s or 10 s).
    async fn fault_6_cancelled_requests_leave_the_pool_clean(t: TestDb) {
        let total = if long_run() { 20_000 } else { 1_000 };
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
        let app = TestApp::spawn_with(t, write_and_hold(None, entered_tx)).await;
        let max = app.db.pool_status().max;
        let width = if app.t.engine() == Engine::Sqlite { 1 } else { max as usize };
        let request = b"POST /test/write-and-hold HTTP/1.1\r\nhost: test\r\ncontent-length: 0\r\n\r\n";
        let started = Instant::now();
        let mut aborted = 0;
        while aborted < total {
            let mut open = Vec::with_capacity(width);
            for _ in 0..width {
                let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
                stream.write_all(request).await.unwrap();
                open.push(stream);
            }
            for _ in 0..width {
                tokio::time::timeout(Duration::from_secs(10), entered.recv())
                    .await
                    .expect("a handler did not get into its transaction within 10 s")
                    .unwrap();
            }
            // The clients go away while their transactions are open.
            drop(open);
            aborted += width;
        }
        let took = started.elapsed();

        wait_for_idle_pool(&app.db).await;
        let pool = app.db.pool_status();
        assert!(pool.size <= pool.max && pool.idle == pool.size, "{pool:?}");
        if app.t.engine() == Engine::Postgres {
            assert_eq!(idle_in_transaction(&app.t.db).await, 0);
            let sessions = number(app.t.conn(), &format!("SELECT count(*) FROM ({}) AS app", app_sessions_sql())).await;
            assert_eq!(sessions, i64::from(app.db.pool_status().size), "one session per pooled connection");
        }
        let stored = number(app.t.conn(), "SELECT count(*) FROM organizations WHERE slug LIKE 'held-%'").await;
        assert_eq!(stored, 0, "aborted writes are rolled back");
        let whole_pool = Instant::now();
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(app.db.begin_read().await.unwrap());
        }
        drop(held);
        assert!(whole_pool.elapsed() < Duration::from_secs(3), "{:?}", whole_pool.elapsed());
        let next = Instant::now();
        let (status, body) = app.post("/api/v1/organizations", &new_org("after-cancellations")).await;
        assert_eq!(status, 201, "{body}");
        let next = next.elapsed();
        // A leftover lock would hold it for the busy or lock timeout (5 s, 10 s).
        assert!(next < Duration::from_secs(3), "{next:?}");
        eprintln!(
            "fault 6 ({}): {aborted} requests aborted mid-transaction in {took:?}; afterwards pool {pool:?}, 0 idle in transaction, next write in {next:?}",
            app.t.engine().as_str(),
        );
        app.stop().await;
    }
}

/// Fault 7, SQLite under concurrent writers: eight HTTP clients and two writers on a
/// second pool (as a second process would be), 25 writes each, all at once. Figure:
/// all 250 writes succeed — no "database is locked", no 503 — and all 250 rows are
/// there; the slowest write stays well under the busy timeout (5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_7_sqlite_concurrent_writers_never_see_database_is_locked() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let other = app.t.another_pool(|_| {}).await;
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let mut writers = Vec::new();
    for w in 0..10 {
        let (client, url, other, slowest) = (
            app.client.clone(),
            app.url("/api/v1/organizations"),
            other.clone(),
            slowest.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            for i in 0..25 {
                let slug = format!("writer-{w}-{i}");
                let started = Instant::now();
                if w < 8 {
                    let (status, body) = read(
                        client
                            .post(&url)
                            .json(&new_org(&slug))
                            .send()
                            .await
                            .unwrap(),
                    )
                    .await;
                    if status != 201 {
                        failures.push(format!("{status} {body}"));
                    }
                } else {
                    let result = async {
                        let tx = other.begin().await?;
                        OrganizationRepo::create(&tx, org(&slug)).await?;
                        tx.commit().await.map_err(StorageError::from)
                    }
                    .await;
                    if let Err(e) = result {
                        failures.push(format!("{e:?}"));
                    }
                }
                let took = started.elapsed();
                let mut slowest = slowest.lock().unwrap();
                *slowest = (*slowest).max(took);
            }
            failures
        }));
    }
    let started = Instant::now();
    let mut failures = Vec::new();
    for writer in writers {
        failures.extend(writer.await.unwrap());
    }
    let took = started.elapsed();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(organizations_like(&app.t.db, "writer-").await, 250);
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < Duration::from_secs(4), "{slowest:?}");
    eprintln!(
        "fault 7: 250 concurrent SQLite writes from two pools in {took:?}, 0 errors, slowest {slowest:?}"
    );
    other.close().await;
    app.stop().await;
}

/// Fault 7, SQLite under 64 concurrent HTTP writers, with the busy timeout cut to
/// 100 ms (the writers of one process queue for the writer lane, so the busy timeout
/// should not matter at all). Figures: all 64 writes are answered 201 — none 503 with
/// "database is locked" — and all 64 rows are there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_7_sixty_four_http_writers_queue_instead_of_meeting_the_busy_timeout() {
    let app = TestApp::spawn_configured(TestDb::sqlite().await, Router::new(), |s| {
        s.db.sqlite_busy_timeout = Duration::from_millis(100);
        s.db.pool_timeout = Duration::from_secs(30);
        // As many connections as writers: without the lane, all 64 race for the lock.
        s.db.max_overflow = 64;
    })
    .await;
    let started = Instant::now();
    let writers: Vec<_> = (0..64)
        .map(|i| {
            let request = app
                .client
                .post(app.url("/api/v1/organizations"))
                .json(&new_org(&format!("lane-{i}")));
            tokio::spawn(async move { read(request.send().await.unwrap()).await })
        })
        .collect();
    let mut failures = Vec::new();
    for writer in writers {
        let (status, body) = writer.await.unwrap();
        if status != 201 {
            failures.push(format!("{status} {body}"));
        }
    }
    let took = started.elapsed();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(organizations_like(&app.t.db, "lane-").await, 64);
    eprintln!(
        "fault 7 (writer lane): 64 concurrent HTTP writes with a 100 ms busy timeout in {took:?}, 0 errors"
    );
    app.stop().await;
}

both_engines! {
    /// Fault 8, a double-booking flood: 100 concurrent bookings of one slot over HTTP.
    /// Figure: exactly one 201; the other 99 are 409 on `start_at`; nothing else (no
    /// 5xx); one appointment is stored.
    async fn fault_8_double_booking_flood_gives_exactly_one_201(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (token, service) = bookable_provider(&app.client, &app.url("")).await;
        let body = json!({"service_id": service, "start_at": slot(0)});
        let started = Instant::now();
        let requests: Vec<_> = (0..100)
            .map(|_| {
                let request = app.client.post(app.url("/api/v1/appointments")).bearer_auth(&token).json(&body);
                tokio::spawn(async move { read(request.send().await.unwrap()).await })
            })
            .collect();
        let (mut created, mut taken, mut other) = (0, 0, Vec::new());
        for request in requests {
            match request.await.unwrap() {
                (201, _) => created += 1,
                (409, body) if crate::support::fields(&body) == ["start_at"] => taken += 1,
                (status, body) => other.push(format!("{status} {body}")),
            }
        }
        let took = started.elapsed();
        assert_eq!((created, taken), (1, 99), "{other:#?}");
        assert_eq!(number(app.t.conn(), "SELECT count(*) FROM appointments").await, 1);
        eprintln!("fault 8 ({}): 100 concurrent bookings of one slot: 1 × 201, 99 × 409, in {took:?}", app.t.engine().as_str());
        app.stop().await;
    }
}

/// Fault 9, the database unreachable at startup: the real binary against a closed
/// port, `DB_CONNECT_RETRIES=4`, `DB_POOL_TIMEOUT=200ms`. Figures: three retries are
/// logged with growing delays, each within its backoff step (125–250 ms, 250–500 ms,
/// 500–1000 ms), each saying why; then one line `agenda: could not connect to the
/// database at … after 4 attempt(s): no connection could be opened within
/// DB_POOL_TIMEOUT …` (password hidden) and exit code 1; the whole run takes less
/// than 4 × 200 ms + 1.75 s of backoff + 5 s (for process start-up on a loaded machine).
#[test]
fn fault_9_unreachable_at_startup_retries_with_backoff_then_exits() {
    let closed = agenda_testkit::proxy::refusing_port();
    let port = closed.port;
    let dir = std::env::temp_dir().join(format!("agenda-fault9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
        .current_dir(&dir)
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("postgres://agenda:hunter2@127.0.0.1:{port}/agenda"),
        )
        .env("DB_CONNECT_RETRIES", "4")
        .env("DB_POOL_TIMEOUT", "200ms")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let took = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let retries: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["retry_in_ms"].is_u64())
        .collect();
    let delays: Vec<u64> = retries
        .iter()
        .map(|r| r["retry_in_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays.len(), 3, "{stderr}");
    for (i, (retry, delay)) in retries.iter().zip(&delays).enumerate() {
        let step = 250 << i;
        assert_eq!(retry["attempt"], i + 1, "{retry}");
        assert!(
            (step / 2..=step).contains(delay),
            "attempt {}: {delay} ms",
            i + 1
        );
    }
    assert!(delays.windows(2).all(|d| d[0] <= d[1]), "{delays:?}");
    // The driver's own words for this ("pool timed out") would point at the pool.
    let why = "no connection could be opened within DB_POOL_TIMEOUT (200 ms): \
               the server refused it, did not answer, or is still starting up";
    assert!(retries.iter().all(|r| r["error"] == why), "{retries:?}");
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "agenda: could not connect to the database at \
             postgresql://agenda:***@127.0.0.1:{port}/agenda after 4 attempt(s): {why}"
        )
    );
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        took < Duration::from_millis(4 * 200 + 1750 + 5000),
        "{took:?}"
    );
    eprintln!("fault 9 (startup): retries after {delays:?} ms, exit 1 after {took:?}: {last}");
}

/// Fault 9, a TLS set-up that cannot work: the server's certificate is self-signed
/// and the URL asks for `sslmode=verify-full`. Figures: the real binary makes one
/// attempt — no retry is logged although `DB_CONNECT_RETRIES=5` — and exits with code
/// 1 and one line naming the certificate problem.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_9_a_bad_tls_certificate_stops_at_once() {
    if agenda_testkit::postgres::find_binaries().is_none() {
        assert!(
            !agenda_testkit::in_ci(),
            "PostgreSQL binaries are required under CI"
        );
        eprintln!("!!!!!!!!!! SKIPPED: PostgreSQL binaries not found");
        return;
    }
    let Some(cluster) = LocalCluster::start_with_tls().unwrap() else {
        return;
    };
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let url = format!(
        "postgres://postgres:hunter2@localhost:{}/postgres?sslmode=verify-full",
        cluster.port
    );
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", url)
            .env("DB_CONNECT_RETRIES", "5")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let retries = stderr
        .lines()
        .filter(|line| line.contains("retry_in_ms"))
        .count();
    assert_eq!(retries, 0, "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "agenda: could not connect to the database at postgresql://postgres:***@localhost:"
        ) && last.contains("after 1 attempt(s)")
            && last.to_lowercase().contains("certificate"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    eprintln!("fault 9 (TLS): exit 1 after {took:?}, no retry: {last}");
}

/// Fault 9, the database unreachable at runtime (a server that accepts TCP
/// connections and never answers). Figure: `/health/ready` answers 503 with
/// `Retry-After: 5` at its deadline (700 ms: answered no sooner than 650 ms, and
/// within 3.7 s),
/// without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_9_readiness_is_503_within_its_deadline_when_the_database_hangs() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = DatabaseUrl::parse(&format!(
        "postgres://agenda:pw@{}/agenda",
        silent.local_addr().unwrap()
    ))
    .unwrap();
    let db_settings = test_settings(url);
    let db = Db::connect_lazy(&db_settings).unwrap();
    let deadline = Duration::from_millis(700);
    let (base, server) = serve(db, db_settings, Router::new(), |s| {
        s.http.health_timeout = deadline
    })
    .await;
    let started = Instant::now();
    let response = reqwest::get(format!("{base}/health/ready")).await.unwrap();
    let took = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert!(!body.to_string().contains("pw@"), "{body}");
    assert!(
        took >= deadline - Duration::from_millis(50) && took < deadline + Duration::from_secs(3),
        "{took:?}"
    );
    eprintln!(
        "fault 9 (runtime, silent server): readiness 503 after {took:?} (deadline {deadline:?})"
    );
    server.abort();
    drop(silent);
}

/// Fault 9, PostgreSQL down at runtime, then back. Figures: with the server stopped,
/// `/health/ready` answers 503 within its deadline (2 s, answered within 5 s); when
/// it is back, readiness is 200 again within 20 s without restarting the application.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_9_readiness_is_503_while_postgres_is_down_and_recovers_by_itself() {
    let Some(mut cluster) = own_cluster().await else {
        return;
    };
    let mut db_settings = test_settings(DatabaseUrl::parse(&cluster.url("postgres")).unwrap());
    db_settings.pool_size = 2;
    db_settings.pool_timeout = Duration::from_secs(1);
    let db = Db::connect(&db_settings).await.unwrap();
    let (base, server) = serve(db, db_settings, Router::new(), |s| {
        s.http.health_timeout = Duration::from_secs(2)
    })
    .await;
    let ready = format!("{base}/health/ready");
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 200);

    cluster.stop_fast().unwrap();
    let started = Instant::now();
    assert_eq!(reqwest::get(&ready).await.unwrap().status(), 503);
    let down = started.elapsed();
    assert!(down < Duration::from_secs(5), "{down:?}");

    cluster.start_again().unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let back = Instant::now();
    while reqwest::get(&ready).await.unwrap().status() != 200 {
        assert!(
            back.elapsed() < Duration::from_secs(20),
            "readiness did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "fault 9 (runtime, server stopped): readiness 503 after {down:?}; 200 again {:?} after the server accepted connections",
        back.elapsed()
    );
    server.abort();
}

/// The server's pool through a [`Proxy`] to the test database: `t`'s application-role
/// URL with the proxy as host and port, the rest adjusted by `adjust`.
async fn behind_proxy(
    t: TestDb,
    extra: Router<AppState>,
    adjust: impl FnOnce(&mut Settings),
) -> (TestApp, agenda_testkit::proxy::Proxy) {
    let proxy = agenda_testkit::proxy::Proxy::in_front_of(t.settings.url.expose()).await;
    let app = TestApp::spawn_configured(t, extra, |s| {
        s.db.url = DatabaseUrl::parse(&proxy.url_for(s.db.url.expose())).unwrap();
        adjust(s);
    })
    .await;
    (app, proxy)
}

/// Fault 10, a network partition between the server and PostgreSQL: a TCP proxy on
/// the path black-holes the traffic for 3 s (packets accepted, never answered; the
/// connections it swallowed stay dead, as when a NAT forgets them), then passes again.
/// The server's pool has at most 2 connections, both in the middle of a statement
/// when the network goes,
/// `DB_PING_TIMEOUT` 500 ms, `DB_POOL_TIMEOUT` 1 s, `REQUEST_TIMEOUT` and
/// `DB_COMMIT_TIMEOUT` 2 s, and four clients write all along. Figures: during the
/// partition every request is answered — 201, 503 with `Retry-After`, or, for a
/// write whose COMMIT the partition swallowed, 504 `commit_outcome_unknown` without
/// `Retry-After` — none after more than 10 s (no hang); once the
/// network passes again a write succeeds within 10 s (measured: the documented bound
/// is `DB_PING_TIMEOUT` plus one connect), the next 20 writes all succeed, and no
/// connection is left in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fault_10_a_black_holed_network_is_survived_and_recovered_from() {
    use agenda_testkit::proxy::Mode;
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let (app, proxy) = behind_proxy(t, statement_routes(), |s| {
        s.db.pool_size = 2;
        s.db.max_overflow = 0;
        s.db.ping_timeout = Duration::from_millis(500);
        s.db.pool_timeout = Duration::from_secs(1);
        s.db.commit_timeout = Duration::from_secs(2);
        s.http.request_timeout = Duration::from_secs(2);
    })
    .await;
    let (http, url) = (app.client.clone(), app.url("/api/v1/organizations"));
    let write = move |label: String| {
        let request = http.post(&url).json(&new_org(&label));
        async move {
            let sent = Instant::now();
            let response = request.send().await.unwrap();
            let retry_after = response.headers().contains_key("retry-after");
            let (status, body) = read(response).await;
            (status, retry_after, sent.elapsed(), body)
        }
    };
    for i in 0..3 {
        let (status, _, _, body) = write(format!("before-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    // Both connections are mid-query when the network goes: the case that used to
    // leave them "in use" for good (their return to the pool waited for an answer).
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let request = app.client.post(app.url("/test/pg-sleep"));
            tokio::spawn(async move {
                let sent = Instant::now();
                let status = request.send().await.unwrap().status().as_u16();
                (status, sent.elapsed())
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while number(
        app.t.conn(),
        "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(5)' AND state = 'active'",
    )
    .await
        < 2
    {
        assert!(Instant::now() < deadline, "the two statements did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (stop, write) = (stop.clone(), write.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    answers.push(write(format!("during-{c}-{n}")).await);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                answers
            })
        })
        .collect();
    proxy.set(Mode::BlackHole);
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Mode::Pass);
    let back = Instant::now();
    let recovered_after = loop {
        let (status, _, _, _) = write(format!("after-{}", back.elapsed().as_millis())).await;
        if status == 201 {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "no write succeeded within 10 s of the network coming back: {:?}",
            app.db.pool_status()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in clients {
        answers.extend(client.await.unwrap());
    }
    // A write whose COMMIT the black hole swallowed cannot know its outcome, and says
    // so (504 without Retry-After); everything else is 201, or 503 "nothing saved".
    let honest = |status: u16, retry_after: bool, body: &Value| {
        status == 201
            || (status == 503 && retry_after)
            || (status == 504 && !retry_after && code(body) == "commit_outcome_unknown")
    };
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(status, retry_after, took, body)| {
            !honest(*status, *retry_after, body) || *took > Duration::from_secs(10)
        })
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    for sleeper in sleepers {
        let (status, took) = sleeper.await.unwrap();
        assert!(
            status == 503 && took < Duration::from_secs(10),
            "a statement caught by the partition: {status} after {took:?}"
        );
    }
    let unavailable = answers.iter().filter(|(status, ..)| *status == 503).count();
    assert!(
        unavailable > 0,
        "the partition was not noticed: {answers:?}"
    );
    let slowest = answers.iter().map(|(_, _, took, _)| *took).max().unwrap();

    for i in 0..20 {
        let (status, _, _, body) = write(format!("settled-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    wait_for_idle_pool(&app.db).await;
    let pool = app.db.pool_status();
    assert!(pool.size <= 2 && pool.in_use == 0, "{pool:?}");
    eprintln!(
        "fault 10: 3 s black hole under 4 writers: {} answers, {unavailable} × 503, slowest {slowest:?}; \
         first write {recovered_after:?} after the network came back; pool {pool:?}",
        answers.len()
    );
    app.stop().await;
}

/// The real `agenda` server, started on a free port; its stderr is collected.
pub(crate) struct Served {
    child: std::process::Child,
    pub(crate) addr: String,
    pub(crate) stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Starts `agenda` with exactly `env` (plus a free port and JSON logs) and waits
    /// until it listens.
    pub(crate) fn start(env: &[(&str, &str)]) -> Served {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
            .current_dir(std::env::temp_dir())
            .env_clear()
            .envs(env.iter().copied())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "listening"
                {
                    let _ = addr_tx.send(event["addr"].as_str().unwrap_or_default().to_owned());
                }
                log.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("the server did not listen: {}", stderr.lock().unwrap()));
        Served {
            child,
            addr,
            stderr,
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM and waits for the process to exit; how long that took.
    pub(crate) fn terminate(&mut self, limit: Duration) -> (Option<i32>, Duration) {
        let sent = Instant::now();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), sent.elapsed());
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "still running {limit:?} after SIGTERM: {}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

both_engines! {
    /// Shutdown is bounded whatever the database does: the real binary with
    /// `SHUTDOWN_TIMEOUT=3s` and one request blocked on a lock the test holds (a
    /// uniqueness check waiting for the test's uncommitted row on PostgreSQL, the
    /// write lock held by another connection on SQLite; lock and busy timeouts of
    /// 60 s, so the database would keep it for a minute). Figures: after SIGTERM the
    /// process exits with code 0 no sooner than the 3 s grace period and within
    /// `SHUTDOWN_TIMEOUT` + 2 s (the documented margin: 1 s for the pool's close,
    /// 0.5 s for abandoned tasks) + 1 s for a loaded machine.
    async fn shutdown_is_bounded_with_a_request_blocked_on_a_lock(t: TestDb) {
        let grace = Duration::from_secs(3);
        let url = t.settings.url.expose().to_owned();
        // The test holds what the request will need: a row it must wait for (it has
        // the same unique slug), or SQLite's write lock.
        let blocker = t.another_pool(|_| {}).await;
        let holding = blocker.begin().await.unwrap();
        OrganizationRepo::create(&holding, org("blocked")).await.unwrap();
        let mut served = tokio::task::block_in_place(|| {
            Served::start(&[
                ("DATABASE_URL", url.as_str()),
                ("AUTO_MIGRATE", "false"),
                ("SHUTDOWN_TIMEOUT", "3s"),
                ("DB_LOCK_TIMEOUT", "60s"),
                ("DB_SQLITE_BUSY_TIMEOUT", "60s"),
                ("DB_POOL_TIMEOUT", "60s"),
                ("REQUEST_TIMEOUT", "120s"),
            ])
        });
        let http = reqwest::Client::new();
        let blocked = tokio::spawn(http.post(served.url("/api/v1/organizations")).json(&new_org("blocked")).send());
        // Connections are accepted in order: once a later one is answered, the
        // blocked request's connection has been accepted and its request read.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let live = reqwest::get(served.url("/health/live")).await.unwrap();
        assert_eq!(live.status(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!blocked.is_finished(), "the request was not blocked");

        let (code, took) = tokio::task::block_in_place(|| served.terminate(Duration::from_secs(60)));
        assert_eq!(code, Some(0), "{}", served.stderr.lock().unwrap());
        assert!(took >= grace, "{took:?}");
        assert!(took < grace + Duration::from_secs(3), "{took:?}: {}", served.stderr.lock().unwrap());
        let log = served.stderr.lock().unwrap().clone();
        assert!(log.contains("abandoning the requests still running"), "{log}");
        drop(holding);
        blocker.close().await;
        let _ = blocked.await;
        eprintln!("shutdown ({}): exit 0 {took:?} after SIGTERM (SHUTDOWN_TIMEOUT {grace:?}) with a request blocked on a lock", t.engine().as_str());
    }
}
