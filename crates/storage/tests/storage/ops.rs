//! Operator tooling (`agenda_storage::ops`): status on both engines, connection
//! monitoring and ending idle sessions on PostgreSQL, and the least-privilege
//! application role, exercised by connecting as that role.

use std::collections::HashSet;
use std::time::Duration;

use agenda_storage::db::{DatabaseUrl, Db, Engine};
use agenda_storage::ops::{self, AppRoleSpec, ConnectionInfo};
use agenda_storage::{StorageError, TenantScope};
use agenda_testkit::{TestDb, both_engines};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};
use sqlx::{Connection, PgConnection};

use crate::connection::{create_user, seed_org};

fn known_migrations() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

async fn pid(conn: &impl ConnectionTrait) -> i32 {
    conn.query_one_raw(Statement::from_string(
        conn.get_database_backend(),
        "SELECT pg_backend_pid()",
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index(0)
    .unwrap()
}

async fn exec(conn: &impl ConnectionTrait, sql: &str) {
    conn.execute_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

both_engines! {
    async fn status_counts_rows_and_never_shows_the_password(t: TestDb) {
        let org = seed_org(&t.db).await;
        seed_org(&t.db).await;
        let scope = TenantScope::new(org);
        for email in ["a@example.com", "b@example.com", "c@example.com"] {
            create_user(t.conn(), scope, email).await.unwrap();
        }

        // A pool whose URL carries a password (the local test server trusts every
        // login, so any password works; an external one already has its own).
        let mut url = url::Url::parse(t.settings.url.expose()).unwrap();
        let secret = match (t.engine(), url.password()) {
            (Engine::Postgres, Some(existing)) => Some(existing.to_owned()),
            (Engine::Postgres, None) => {
                url.set_password(Some("s3cret-Pw-for-status")).unwrap();
                Some("s3cret-Pw-for-status".to_owned())
            }
            (Engine::Sqlite, _) => None,
        };
        let db = if secret.is_some() {
            let url = DatabaseUrl::parse(url.as_str()).unwrap();
            t.another_pool(|s| s.url = url).await
        } else {
            t.db.clone()
        };

        let mut known = known_migrations();
        let names: Vec<&str> = known.iter().map(String::as_str).collect();
        let status = ops::status(&db, &names).await.unwrap();
        assert_eq!(status.engine, t.engine());
        match t.engine() {
            Engine::Postgres => assert!(status.server_version.starts_with("PostgreSQL 1"), "{}", status.server_version),
            Engine::Sqlite => assert!(status.server_version.starts_with("SQLite 3."), "{}", status.server_version),
        }
        assert_eq!(status.migrations.applied, known);
        assert!(status.migrations.pending.is_empty() && status.migrations.unknown.is_empty());
        assert_eq!(status.tables.len(), 37);
        let count = |name: &str| status.tables.iter().find(|t| t.table == name).unwrap().rows;
        assert_eq!(count("organizations"), Some(2));
        assert_eq!(count("users"), Some(3));
        assert_eq!(count("appointments"), Some(0));
        assert!(status.tables.iter().all(|t| t.rows.is_some()));
        assert_eq!(status.total_rows, status.tables.iter().filter_map(|t| t.rows).sum::<i64>());
        assert_eq!(status.settings.max_connections, db.settings().max_connections);
        assert_eq!(status.pool.max, db.settings().max_connections);

        let json = serde_json::to_string(&status).unwrap();
        if let Some(secret) = secret {
            assert!(!json.contains(&secret), "{json}");
            assert!(status.settings.url.contains("***"), "{}", status.settings.url);
        }
        assert!(json.contains("\"applied\"") && json.contains("\"organizations\""));

        // A migration this build knows but the database has not applied is pending;
        // one the database has but this build does not know is reported apart.
        known.push("m29990101_000001_not_yet".to_owned());
        let names: Vec<&str> = known.iter().skip(1).map(String::as_str).collect();
        let status = ops::status(&db, &names).await.unwrap();
        assert_eq!(status.migrations.pending, ["m29990101_000001_not_yet"]);
        assert_eq!(status.migrations.unknown, [known[0].clone()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connection_tools_say_they_need_postgres_on_sqlite() {
    let t = TestDb::sqlite().await;
    let spec = AppRoleSpec::new("agenda_app", "correct-horse-battery");
    let errors = [
        ops::connections(&t).await.unwrap_err(),
        ops::kill_idle(&t, Duration::from_secs(1), true)
            .await
            .unwrap_err(),
        ops::create_app_role(&t, &spec).await.unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(
                err,
                StorageError::InvalidState {
                    code: "postgres_only",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("not available on SQLite"), "{err}");
    }
}

/// Opens `n` sessions on `db` and leaves them idle in the pool; returns their pids.
async fn idle_sessions(db: &Db, n: usize) -> Vec<i32> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(db.begin().await.unwrap());
    }
    let mut pids = Vec::new();
    for tx in held {
        pids.push(pid(&tx).await);
        tx.commit().await.unwrap();
    }
    pids
}

/// A session left inside an open transaction (aborted by a failed statement when
/// `abort` is set).
async fn idle_in_transaction(db: &Db, abort: bool) -> (DatabaseTransaction, i32) {
    let tx = db.begin().await.unwrap();
    let pid = pid(&tx).await;
    if abort {
        let err = tx
            .execute_raw(Statement::from_string(
                tx.get_database_backend(),
                "SELECT 1/0",
            ))
            .await;
        assert!(err.is_err());
    }
    (tx, pid)
}

fn by_pid(list: &[ConnectionInfo], pid: i32) -> Option<&ConnectionInfo> {
    list.iter().find(|c| c.pid == pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_idle_ends_only_this_applications_idle_sessions() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    // The caller: one connection, same application name as the victims.
    let caller = t
        .another_pool(|s| {
            s.pool_size = 0;
            s.max_overflow = 1;
        })
        .await;
    let caller_pid = pid(caller.conn()).await;
    assert_eq!(
        caller
            .settings()
            .postgres
            .as_ref()
            .unwrap()
            .application_name,
        "agenda"
    );

    let ours = t.another_pool(|s| s.max_overflow = 4).await;
    // Transactions first: a connection handed back to the pool would be reused.
    let (our_tx, our_tx_pid) = idle_in_transaction(&ours, false).await;
    let (our_aborted, our_aborted_pid) = idle_in_transaction(&ours, true).await;
    let our_idle = idle_sessions(&ours, 2).await;
    let our_pids: Vec<i32> = [our_idle.clone(), vec![our_tx_pid, our_aborted_pid]].concat();
    assert_eq!(
        our_pids.iter().collect::<HashSet<_>>().len(),
        4,
        "{our_pids:?}"
    );

    let theirs = t
        .another_pool(|s| s.application_name = "agenda-reports".to_owned())
        .await;
    let (their_tx, their_tx_pid) = idle_in_transaction(&theirs, false).await;
    let their_idle = idle_sessions(&theirs, 1).await[0];
    let their_pids = [their_idle, their_tx_pid];

    // Monitoring sees every session, with its state.
    let list = ops::connections(&caller).await.unwrap();
    for &p in our_pids.iter().chain(&their_pids) {
        assert!(by_pid(&list, p).is_some(), "pid {p} missing from {list:#?}");
    }
    let me: Vec<_> = list.iter().filter(|c| c.is_self).collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0].pid, caller_pid);
    assert_eq!(me[0].state.as_deref(), Some("active"));
    let tx_row = by_pid(&list, our_tx_pid).unwrap();
    assert_eq!(tx_row.state.as_deref(), Some("idle in transaction"));
    assert!(tx_row.transaction_start.is_some() && tx_row.idle_seconds.is_some());
    assert_eq!(tx_row.application_name, "agenda");
    assert_eq!(
        by_pid(&list, our_aborted_pid).unwrap().state.as_deref(),
        Some("idle in transaction (aborted)")
    );
    let idle_row = by_pid(&list, our_idle[0]).unwrap();
    assert_eq!(idle_row.state.as_deref(), Some("idle"));
    assert!(idle_row.transaction_start.is_none());
    assert_eq!(
        by_pid(&list, their_idle).unwrap().application_name,
        "agenda-reports"
    );
    assert!(
        list.iter()
            .all(|c| c.user.as_deref().is_some_and(|u| !u.is_empty()))
    );
    assert!(
        list.iter()
            .all(|c| c.query.as_ref().is_none_or(|q| q.chars().count() <= 200))
    );

    tokio::time::sleep(Duration::from_millis(1200)).await;

    // Nothing has been idle for an hour.
    let none = ops::kill_idle(&caller, Duration::from_secs(3600), false)
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:#?}");

    // A dry run lists this application's idle sessions and ends none of them.
    let would = ops::kill_idle(&caller, Duration::from_secs(1), true)
        .await
        .unwrap();
    let would_pids: HashSet<i32> = would.iter().map(|c| c.pid).collect();
    for p in &our_pids {
        assert!(would_pids.contains(p), "pid {p} not listed: {would:#?}");
    }
    assert!(!would_pids.contains(&caller_pid));
    assert!(their_pids.iter().all(|p| !would_pids.contains(p)));
    assert!(would.iter().all(|c| c.application_name == "agenda"));
    let after_dry_run = ops::connections(&caller).await.unwrap();
    for &p in our_pids.iter().chain(&their_pids) {
        assert!(by_pid(&after_dry_run, p).is_some(), "dry run ended pid {p}");
    }

    // The real run ends exactly those: this application's, idle, not the caller.
    let killed = ops::kill_idle(&caller, Duration::from_secs(1), false)
        .await
        .unwrap();
    let killed_pids: HashSet<i32> = killed.iter().map(|c| c.pid).collect();
    for p in &our_pids {
        assert!(killed_pids.contains(p), "pid {p} not ended: {killed:#?}");
    }
    assert!(!killed_pids.contains(&caller_pid));
    assert!(their_pids.iter().all(|p| !killed_pids.contains(p)));
    assert!(killed.iter().all(|c| c.application_name == "agenda"
        && c.state.as_deref().is_some_and(|s| s.starts_with("idle"))));

    let after = ops::connections(&caller).await.unwrap();
    for p in &our_pids {
        assert!(by_pid(&after, *p).is_none(), "pid {p} still there");
    }
    for p in &their_pids {
        assert!(
            by_pid(&after, *p).is_some(),
            "another application's pid {p} was ended"
        );
    }
    // The caller kept its own session.
    assert_eq!(pid(caller.conn()).await, caller_pid);

    // The ended transaction is gone; the other application's is intact.
    assert!(
        our_tx
            .execute_raw(Statement::from_string(
                our_tx.get_database_backend(),
                "SELECT 1"
            ))
            .await
            .is_err()
    );
    drop(our_tx);
    drop(our_aborted);
    exec(&their_tx, "SELECT 1").await;
    their_tx.commit().await.unwrap();
    // The pool replaces ended connections by itself (pre-ping).
    exec(ours.conn(), "SELECT 1").await;

    for db in [caller, ours, theirs] {
        db.close().await;
    }
}

/// `admin_url` (the test database, as the superuser) logged in as `role` instead.
fn url_as(t: &TestDb, role: &str, password: &str) -> String {
    let mut url = url::Url::parse(t.settings.url.expose()).unwrap();
    url.set_username(role).unwrap();
    url.set_password(Some(password)).unwrap();
    url.into()
}

async fn scalar_text(conn: &mut PgConnection, sql: &str) -> String {
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn allowed(conn: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("the app role should be allowed to run {sql}: {e}"));
}

async fn denied(conn: &mut PgConnection, sql: &str) {
    let err = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(conn)
        .await
        .expect_err(sql);
    let code = err
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned());
    assert_eq!(
        code.as_deref(),
        Some("42501"),
        "{sql} should be refused for lack of privilege: {err}"
    );
}

async fn role_row(t: &TestDb, role: &str) -> (i32, bool, bool, bool, bool, bool, bool, i64) {
    let row = t
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            t.conn().get_database_backend(),
            "SELECT r.rolconnlimit, r.rolsuper, r.rolbypassrls, r.rolcreaterole, r.rolcreatedb, \
                    r.rolinherit, r.rolcanlogin, \
                    (SELECT count(*) FROM pg_class WHERE relowner = r.oid) \
             FROM pg_roles r WHERE r.rolname = $1",
            [role.into()],
        ))
        .await
        .unwrap()
        .expect("the role exists");
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
        row.try_get_by_index(2).unwrap(),
        row.try_get_by_index(3).unwrap(),
        row.try_get_by_index(4).unwrap(),
        row.try_get_by_index(5).unwrap(),
        row.try_get_by_index(6).unwrap(),
        row.try_get_by_index(7).unwrap(),
    )
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        bits = bits << 6 | ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_app_role_can_use_rows_and_cannot_change_the_schema() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let role = format!("agenda_app_t{}", fastrand::u32(..));
    let password = "correct-horse-battery-9'\\x";
    let mut spec = AppRoleSpec::new(&role, password);
    spec.connection_limit = 7;
    spec.statement_timeout = Duration::from_secs(20);
    spec.lock_timeout = Duration::from_secs(3);

    let report = ops::create_app_role(&t, &spec).await.unwrap();
    assert!(report.created);
    assert_eq!(report.role, role);
    assert_eq!(
        report.tables, 40,
        "37 tables, the 2 operator tables and the migration ledger"
    );
    assert_eq!(report.idle_in_transaction_timeout_ms, 300_000);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains("correct-horse"), "{shown}");

    let (limit, superuser, bypassrls, createrole, createdb, inherit, login, owned) =
        role_row(&t, &role).await;
    assert_eq!(limit, 7);
    assert!(!superuser && !bypassrls && !createrole && !createdb && !inherit);
    assert!(login);
    assert_eq!(owned, 0, "the role owns nothing");

    // The server stores a SCRAM verifier, never the password.
    let stored: String = t
        .conn()
        .query_one_raw(Statement::from_sql_and_values(
            t.conn().get_database_backend(),
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            [role.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    assert!(stored.starts_with("SCRAM-SHA-256$4096:"), "{stored}");
    assert!(!stored.contains("horse"));

    // As the role, on a connection of its own (not the server's pool, which sets its
    // own session values): the role-level defaults apply.
    let mut app = PgConnection::connect(&url_as(&t, &role, password))
        .await
        .expect("log in as the app role");
    assert_eq!(
        scalar_text(&mut app, "SELECT current_user::text").await,
        role
    );
    assert_eq!(
        scalar_text(&mut app, "SHOW idle_in_transaction_session_timeout").await,
        "5min"
    );
    assert_eq!(scalar_text(&mut app, "SHOW statement_timeout").await, "20s");
    assert_eq!(scalar_text(&mut app, "SHOW lock_timeout").await, "3s");

    // Rows: yes.
    allowed(
        &mut app,
        "INSERT INTO organizations (id, slug, name, time_zone, currency, status) \
         VALUES ('0190a000-0000-7000-8000-000000000001', 'role-test', 'Role test', 'UTC', 'USD', 'active')",
    )
    .await;
    allowed(
        &mut app,
        "UPDATE organizations SET name = 'Renamed' WHERE slug = 'role-test'",
    )
    .await;
    assert_eq!(
        scalar_text(
            &mut app,
            "SELECT name FROM organizations WHERE slug = 'role-test'"
        )
        .await,
        "Renamed"
    );
    allowed(
        &mut app,
        "DELETE FROM organizations WHERE slug = 'role-test'",
    )
    .await;
    // The migration ledger: read, not write.
    assert_eq!(
        scalar_text(&mut app, "SELECT count(*)::text FROM seaql_migrations").await,
        Migrator::migrations().len().to_string()
    );
    denied(&mut app, "DELETE FROM seaql_migrations").await;
    denied(
        &mut app,
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('x', 0)",
    )
    .await;

    // Operator credentials: read, and only the sign-in counters written; sessions:
    // yes (`agenda operator create|revoke` run as the owner).
    assert_eq!(
        scalar_text(&mut app, "SELECT count(*)::text FROM operators").await,
        "0"
    );
    denied(
        &mut app,
        "INSERT INTO operators (id, name, password_hash, read_only, failed_sign_ins) \
         VALUES ('0190a000-0000-7000-8000-000000000002', 'mallory', 'x', false, 0)",
    )
    .await;
    denied(&mut app, "UPDATE operators SET password_hash = 'x'").await;
    denied(&mut app, "UPDATE operators SET read_only = false").await;
    denied(&mut app, "DELETE FROM operators").await;
    allowed(
        &mut app,
        "UPDATE operators SET failed_sign_ins = 0, locked_until = NULL, last_signed_in_at = NULL, updated_at = now()",
    )
    .await;
    allowed(&mut app, "DELETE FROM operator_sessions").await;

    // The schema, roles and databases: no.
    denied(&mut app, "DROP TABLE organizations").await;
    denied(
        &mut app,
        "ALTER TABLE organizations ADD COLUMN extra integer",
    )
    .await;
    denied(&mut app, "TRUNCATE organizations").await;
    denied(&mut app, "CREATE TABLE app_made (id integer)").await;
    denied(&mut app, "CREATE ROLE app_made_role").await;
    denied(&mut app, "CREATE DATABASE app_made_db").await;
    denied(&mut app, "CREATE INDEX ix_app_made ON organizations (name)").await;

    // Tables the owner creates later are usable through the default privileges.
    exec(t.conn(), "CREATE TABLE later_table (id integer)").await;
    allowed(&mut app, "INSERT INTO later_table VALUES (1)").await;
    assert_eq!(
        scalar_text(&mut app, "SELECT count(*)::text FROM later_table").await,
        "1"
    );
    denied(&mut app, "DROP TABLE later_table").await;

    // A second run converges: a stray extra right is taken back, new values apply.
    exec(
        t.conn(),
        &format!("GRANT TRUNCATE ON organizations TO {role}"),
    )
    .await;
    spec.connection_limit = 9;
    let again = ops::create_app_role(&t, &spec).await.unwrap();
    assert!(!again.created);
    assert_eq!(role_row(&t, &role).await.0, 9);
    denied(&mut app, "TRUNCATE organizations").await;
    allowed(&mut app, "SELECT count(*) FROM organizations").await;
    app.close().await.unwrap();
    // The new password (a new verifier, same password) still logs in.
    let mut app = PgConnection::connect(&url_as(&t, &role, password))
        .await
        .unwrap();
    allowed(&mut app, "SELECT 1").await;
    // An upgrade: the operator tables created after the role (default privileges
    // grant everything) are restricted by their migration all the same.
    Migrator::down(t.conn(), Some(1)).await.unwrap();
    Migrator::up(t.conn(), None).await.unwrap();
    denied(&mut app, "UPDATE operators SET password_hash = 'x'").await;
    denied(&mut app, "DELETE FROM operators").await;
    allowed(&mut app, "UPDATE operators SET failed_sign_ins = 0").await;
    allowed(&mut app, "DELETE FROM operator_sessions").await;
    app.close().await.unwrap();

    // The schema owner itself is refused as the application role.
    let current: String = t
        .conn()
        .query_one_raw(Statement::from_string(
            t.conn().get_database_backend(),
            "SELECT current_user::text",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let err = ops::create_app_role(&t, &AppRoleSpec::new(current, password))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Validation { .. }), "{err:?}");

    // Clean up the cluster-wide role.
    for sql in [
        "DROP TABLE later_table".to_owned(),
        format!("DROP OWNED BY {role}"),
        format!("DROP ROLE {role}"),
    ] {
        exec(t.conn(), &sql).await;
    }
}

/// The verifier computed in Rust is the one PostgreSQL computes for the same
/// password, salt and iteration count.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scram_verifier_matches_the_servers() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let role = format!("agenda_scram_t{}", fastrand::u32(..));
    let tx = t.begin().await.unwrap();
    exec(&tx, "SET LOCAL password_encryption = 'scram-sha-256'").await;
    exec(
        &tx,
        &format!("CREATE ROLE {role} PASSWORD 'pencil-and-paper'"),
    )
    .await;
    let stored: String = tx
        .query_one_raw(Statement::from_sql_and_values(
            tx.get_database_backend(),
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            [role.clone().into()],
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    drop(tx); // rolls the role back
    let (head, _) = stored.split_once('$').unwrap().1.split_once('$').unwrap();
    let (iterations, salt) = head.split_once(':').unwrap();
    let ours = ops::scram_sha256_verifier(
        "pencil-and-paper",
        &base64_decode(salt),
        iterations.parse().unwrap(),
    );
    assert_eq!(ours, stored);
}
