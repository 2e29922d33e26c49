//! The connection layer: session settings on every physical connection, pool limits,
//! health, startup retries, transactions.

use std::time::{Duration, Instant};

use agenda_storage::db::{DatabaseUrl, Db, DbSettings, Engine};
use agenda_storage::{StorageError, TenantScope};
use agenda_testkit::{both_engines, test_settings};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, TransactionTrait};

async fn text(conn: &impl ConnectionTrait, sql: &str) -> String {
    let row = conn
        .query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|v| v.to_string()))
        .unwrap()
}

/// Opens `n` transactions at once, so each holds its own physical connection; the
/// later ones are necessarily opened after the first.
async fn hold_connections(db: &Db, n: usize) -> Vec<DatabaseTransaction> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(db.conn().begin().await.unwrap());
    }
    held
}

both_engines! {
    async fn every_new_connection_gets_the_session_settings(t: TestDb) {
        // Use the pool first, so the connections checked below open later in its life.
        t.health(Duration::from_secs(5)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let held = hold_connections(&t.db, 4).await;
        assert_eq!(t.pool_status().size, 4);
        let mut ids = std::collections::HashSet::new();
        for tx in &held {
            match t.engine() {
                Engine::Postgres => {
                    ids.insert(text(tx, "SELECT pg_backend_pid()::text").await);
                    assert_eq!(text(tx, "SHOW statement_timeout").await, "30s");
                    assert_eq!(text(tx, "SHOW lock_timeout").await, "10s");
                    assert_eq!(text(tx, "SHOW idle_in_transaction_session_timeout").await, "1min");
                    assert_eq!(text(tx, "SHOW application_name").await, "agenda");
                }
                Engine::Sqlite => {
                    assert_eq!(text(tx, "PRAGMA journal_mode").await, "wal");
                    assert_eq!(text(tx, "PRAGMA foreign_keys").await, "1");
                    assert_eq!(text(tx, "PRAGMA busy_timeout").await, "5000");
                    assert_eq!(text(tx, "PRAGMA synchronous").await, "1", "1 is NORMAL");
                }
            }
        }
        if t.engine() == Engine::Postgres {
            assert_eq!(ids.len(), 4, "four distinct backends");
        }
    }

    async fn an_exhausted_pool_fails_fast_as_unavailable(t: TestDb) {
        let small = t.another_pool(|s| {
            s.max_overflow = 1;
            s.pool_timeout = Duration::from_millis(300);
        }).await;
        let held = small.begin().await.unwrap();
        let started = Instant::now();
        let err = small.begin().await.unwrap_err();
        let waited = started.elapsed();
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
        // No sooner than the pool timeout; the upper bound only says it does not hang.
        assert!(waited >= Duration::from_millis(280) && waited < Duration::from_secs(10), "{waited:?}");
        // Once the connection is returned, the next caller is served.
        drop(held);
        small.begin().await.unwrap().commit().await.unwrap();
        small.close().await;
    }

    async fn health_reports_latency_and_pool_figures(t: TestDb) {
        let health = t.health(Duration::from_secs(2)).await;
        assert!(health.ok, "{health:?}");
        assert_eq!(health.engine, t.engine());
        assert!(health.latency_ms > 0.0 && health.latency_ms < 2000.0);
        assert_eq!(health.pool.max, 5);
        assert!(health.pool.size >= 1 && health.pool.idle <= health.pool.size);
    }

    async fn a_dropped_transaction_rolls_back(t: TestDb) {
        let scope = TenantScope::new(seed_org(&t.db).await);
        {
            let tx = t.begin().await.unwrap();
            create_user(&tx, scope, "gone@example.com").await.unwrap();
            // Dropped without commit: an error path, a panic or a cancelled request.
        }
        let tx = t.begin().await.unwrap();
        create_user(&tx, scope, "kept@example.com").await.unwrap();
        tx.commit().await.unwrap();
        let users = agenda_storage::repo::users::UserRepo::list(t.conn(), scope, 10).await.unwrap();
        let emails: Vec<_> = users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails, ["kept@example.com"]);
        // Connections are handed back to the pool by a background task; none leaks.
        let deadline = Instant::now() + Duration::from_secs(2);
        while t.pool_status().in_use > 0 {
            assert!(Instant::now() < deadline, "{:?}", t.pool_status());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn closing_the_pool_refuses_new_work(t: TestDb) {
        t.close().await;
        assert!(t.is_closed());
        let err = t.begin().await.unwrap_err();
        assert!(matches!(err, StorageError::Unavailable { .. }), "{err:?}");
    }
}

pub async fn seed_org(db: &Db) -> uuid::Uuid {
    use agenda_entity::organization::CreateOrganization;
    let slug = format!("org-{}", fastrand::u32(..));
    agenda_storage::repo::organizations::OrganizationRepo::create(
        db.conn(),
        CreateOrganization {
            slug,
            name: "Test Org".into(),
            time_zone: "America/Sao_Paulo".into(),
            currency: "BRL".into(),
            locale: None,
        },
    )
    .await
    .unwrap()
    .id
}

pub async fn create_user(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    email: &str,
) -> Result<agenda_entity::user::Model, StorageError> {
    use agenda_entity::user::{CreateUser, UserRole};
    agenda_storage::repo::users::UserRepo::create(
        db,
        scope,
        CreateUser {
            email: email.into(),
            password: "correct horse battery".into(),
            full_name: "Test User".into(),
            phone: None,
            role: UserRole::Client,
            tax_id: None,
        },
        "$argon2id$test".into(),
    )
    .await
}

#[tokio::test]
async fn startup_gives_up_after_the_configured_attempts() {
    let closed = agenda_testkit::proxy::refusing_port();
    let port = closed.port;
    let url = DatabaseUrl::parse(&format!(
        "postgres://agenda:hunter2@127.0.0.1:{port}/agenda"
    ))
    .unwrap();
    let mut settings = test_settings(url);
    settings.connect_retries = 2;
    settings.pool_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = Db::connect(&settings).await.unwrap_err();
    assert_eq!(err.attempts, 2);
    assert!(!err.permanent);
    let message = err.to_string();
    assert!(message.contains("after 2 attempt(s)"), "{message}");
    assert!(message.contains("agenda:***@127.0.0.1"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    // Two attempts of 300 ms plus one backoff of at most 250 ms, and a generous margin
    // for a loaded machine: the bound says it gives up rather than retry on.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn health_answers_within_its_deadline_when_the_server_is_unreachable() {
    // A listener that accepts TCP connections but never speaks: the driver's startup
    // handshake hangs, as it does against a frozen server or a black-holed network.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = DatabaseUrl::parse(&format!("postgres://agenda@127.0.0.1:{port}/agenda")).unwrap();
    let mut settings = DbSettings::new(url);
    settings.pool_size = 0;
    let db = Db::connect_lazy(&settings).unwrap();
    let started = Instant::now();
    let health = db.health(Duration::from_millis(500)).await;
    let took = started.elapsed();
    assert!(!health.ok);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(health.error.unwrap().contains("500 ms"));
    drop(silent);
}

both_engines! {
    /// The pool keeps `DB_POOL_SIZE` connections, opens more under a burst (up to size
    /// + overflow) and closes the extra ones after `DB_IDLE_TIMEOUT`.
    async fn the_pool_grows_under_a_burst_and_shrinks_back(t: TestDb) {
        let db = t
            .another_pool(|s| {
                s.pool_size = 1;
                s.max_overflow = 4;
                s.idle_timeout = Duration::from_secs(1);
            })
            .await;
        db.health(Duration::from_secs(5)).await;
        let held = hold_connections(&db, 5).await;
        assert_eq!(db.pool_status().size, 5, "grew to size + overflow");
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(15);
        while db.pool_status().size > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let status = db.pool_status();
        assert_eq!(status.size, 1, "shrank back to the minimum: {status:?}");
        assert_eq!(status.min, 1);
        db.close().await;
    }
}

both_engines! {
    /// `Db::connect` returns with the pool's minimum open (and, on PostgreSQL, that
    /// many sessions on the server): readiness can only answer 200 once the pool has
    /// shown it can hold `DB_POOL_SIZE` connections. Figure: `DB_POOL_SIZE=3` gives 3
    /// connections (at least; see below) the moment `connect` returns (idle once handed
    /// back).
    async fn the_minimum_is_open_when_connect_returns(t: TestDb) {
        let app_name = format!("agenda-min-{}", fastrand::u32(..));
        let db = t
            .another_pool(|s| {
                s.pool_size = 3;
                s.max_overflow = 2;
                s.application_name = app_name.clone();
            })
            .await;
        // At least the minimum. The maintenance task's first run starts with the pool
        // and may be opening "up to the minimum" at the same moment, which can leave
        // one connection more, never above the maximum.
        let size = db.pool_status().size;
        assert!((3..=5).contains(&size), "{:?}", db.pool_status());
        // The connections opened are handed back by a background task.
        let deadline = Instant::now() + Duration::from_secs(10);
        while db.pool_status().idle < 3 {
            assert!(Instant::now() < deadline, "{:?}", db.pool_status());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if t.engine() == Engine::Postgres {
            let sql = format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app_name}'"
            );
            let sessions: u32 = text(t.conn(), &sql).await.parse().unwrap();
            assert!((3..=5).contains(&sessions), "{sessions} sessions");
        }
        db.close().await;
    }

    /// Writers of one process queue for SQLite's single writer (the writer lane)
    /// instead of racing for its lock: 64 concurrent write transactions, with the
    /// busy timeout cut to 50 ms, all commit — none sees "database is locked" — and a
    /// read transaction started while a writer holds the lane is served at once. On
    /// PostgreSQL the same assertions hold without a lane.
    async fn sixty_four_concurrent_writers_never_see_a_busy_timeout(t: TestDb) {
        let db = t
            .another_pool(|s| {
                s.sqlite_busy_timeout = Duration::from_millis(50);
                // As many connections as writers: without the lane, all 64 race.
                s.max_overflow = 64;
                s.pool_timeout = Duration::from_secs(30);
            })
            .await;
        let scope = TenantScope::new(seed_org(&db).await);
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let db = db.clone();
                tokio::spawn(async move {
                    let tx = db.begin().await?;
                    create_user(&tx, scope, &format!("writer-{i}@example.com")).await?;
                    tx.commit().await.map_err(StorageError::from)
                })
            })
            .collect();
        let mut failures = Vec::new();
        for writer in writers {
            if let Err(e) = writer.await.unwrap() {
                failures.push(format!("{e:?}"));
            }
        }
        assert!(failures.is_empty(), "{failures:#?}");
        let users = agenda_storage::repo::users::UserRepo::list(db.conn(), scope, 100).await.unwrap();
        assert_eq!(users.len(), 64);

        let holding = db.begin().await.unwrap();
        create_user(&holding, scope, "holding@example.com").await.unwrap();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let tx = db.begin_read().await.unwrap();
            let n = text(&tx, "SELECT count(*) FROM organizations").await;
            tx.commit().await.unwrap();
            n
        })
        .await
        .expect("a reader waited for the writer");
        assert_eq!(read, "1");
        holding.commit().await.unwrap();
        db.close().await;
    }
}
