//! The `agenda` command as an operator runs it: the real binary, against each
//! engine's test database. `seed demo` is in `seed.rs`; startup and shutdown under
//! database faults are in `faults.rs`.

use std::time::{Duration, Instant};

use agenda_storage::repo::organizations::OrganizationRepo;
use agenda_testkit::{TestDb, both_engines};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};

use crate::foundation::org;
use crate::support::{ScratchDir, agenda};

/// One number from a query, on a pool of its own (the schema may just have been
/// dropped and rebuilt under the test's pool).
async fn count(t: &TestDb, sql: &str) -> i64 {
    let db = t.another_pool(|_| {}).await;
    let row = db
        .conn()
        .query_one_raw(Statement::from_string(
            db.conn().get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    let n = row
        .try_get_by_index::<i64>(0)
        .or_else(|_| row.try_get_by_index::<i32>(0).map(i64::from))
        .unwrap();
    db.close().await;
    n
}

/// Logs written to a pipe (or a file) carry no ANSI colour codes. Figure: the
/// INFO lines of `agenda migrate status` on a piped stderr contain no ESC byte.
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = ScratchDir::new("colour");
    let run = agenda(
        &dir.0,
        &[("DATABASE_URL", "sqlite://colour.db"), ("RUST_LOG", "info")],
        &["migrate", "status"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stderr.contains("INFO"), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

both_engines! {
    /// `agenda db status` shows the settings of its engine only: on SQLite the busy
    /// timeout and no PostgreSQL session settings, on PostgreSQL the session settings
    /// and no SQLite line; the JSON form has `settings.sqlite` or `settings.postgres`.
    async fn db_status_shows_the_settings_of_its_engine(t: TestDb) {
        let url = t.settings.url.expose().to_owned();
        let dir = ScratchDir::new("status");
        let env = [("DATABASE_URL", url.as_str())];
        let text = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["db", "status"]));
        assert_eq!(text.code, Some(0), "{}", text.stderr);
        let json = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["db", "status", "--json"]));
        assert_eq!(json.code, Some(0), "{}", json.stderr);
        let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        match t.engine() {
            agenda_storage::Engine::Sqlite => {
                assert!(text.stdout.contains("sqlite      busy_timeout 5000 ms"), "{}", text.stdout);
                assert!(!text.stdout.contains("statement_timeout"), "{}", text.stdout);
                assert!(!text.stdout.contains("application_name"), "{}", text.stdout);
                assert_eq!(json["settings"]["sqlite"]["busy_timeout_ms"], 5000);
                assert!(json["settings"].get("postgres").is_none(), "{json}");
            }
            agenda_storage::Engine::Postgres => {
                assert!(text.stdout.contains("session     statement_timeout 30000 ms"), "{}", text.stdout);
                assert!(!text.stdout.contains("busy_timeout"), "{}", text.stdout);
                assert_eq!(json["settings"]["postgres"]["statement_timeout_ms"], 30000);
                assert!(json["settings"].get("sqlite").is_none(), "{json}");
            }
        }
    }
}

/// `agenda db status` (and `backup create`) never create a missing SQLite file.
/// Figures: exit code 1, one line naming the path, and still no file afterwards.
#[test]
fn commands_that_read_never_create_a_missing_sqlite_file() {
    let dir = ScratchDir::new("missing");
    for args in [
        &["db", "status"][..],
        &["backup", "create", "--output", "x.tar.gz"][..],
    ] {
        let run = agenda(&dir.0, &[("DATABASE_URL", "sqlite://agenda.db")], args);
        assert_eq!(run.code, Some(1), "{args:?}: {}", run.stderr);
        assert_eq!(
            run.stderr.trim(),
            "agenda: the SQLite database agenda.db does not exist; check DATABASE_URL \
             (`agenda migrate up` or starting the server creates it)",
            "{args:?}"
        );
        assert!(
            !dir.0.join("agenda.db").exists(),
            "{args:?} created the file"
        );
    }
}

both_engines! {
    /// `agenda restore PATH` without `--yes` is a dry run: when its checks pass it
    /// says so, writes nothing and exits 0 (not 2, the usage-error code); a check
    /// that fails exits 1.
    async fn a_dry_run_restore_whose_checks_pass_exits_0(t: TestDb) {
        let url = t.settings.url.expose().to_owned();
        let dir = ScratchDir::new("dry-run");
        let env = [("DATABASE_URL", url.as_str())];
        let backup = tokio::task::block_in_place(|| {
            agenda(&dir.0, &env, &["backup", "create", "--output", "empty.tar.gz"])
        });
        assert_eq!(backup.code, Some(0), "{}", backup.stderr);
        let dry_run = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["restore", "empty.tar.gz"]));
        assert_eq!(dry_run.code, Some(0), "{}", dry_run.stderr);
        assert!(dry_run.stdout.starts_with("checks passed: empty.tar.gz"), "{}", dry_run.stdout);
        assert!(dry_run.stdout.contains("nothing written; run it again with --yes to restore"), "{}", dry_run.stdout);

        OrganizationRepo::create(t.conn(), org("not-empty")).await.unwrap();
        let refused = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["restore", "empty.tar.gz"]));
        assert_eq!(refused.code, Some(1), "{}", refused.stderr);
        let last = refused.stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("agenda: restore refused: the target database is not empty"), "{}", refused.stderr);
    }
}

both_engines! {
    /// `agenda migrate fresh --yes` on a used database drops everything and applies
    /// every migration again — twice in a row. Figures: exit code 0; afterwards all
    /// 11 migrations are applied and the old rows are gone; on PostgreSQL migration
    /// 11's functions and policies exist again (row-level security forced on
    /// `appointments`).
    async fn migrate_fresh_rebuilds_a_used_database(t: TestDb) {
        OrganizationRepo::create(t.conn(), org("before-fresh")).await.unwrap();
        let url = t.settings.url.expose().to_owned();
        let dir = ScratchDir::new("fresh");
        let env = [("DATABASE_URL", url.as_str())];
        for round in 1..=2 {
            let run = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["migrate", "fresh", "--yes"]));
            assert_eq!(run.code, Some(0), "round {round}: {}", run.stderr);
            let applied = count(&t, "SELECT count(*) FROM seaql_migrations").await;
            assert_eq!(applied, Migrator::migrations().len() as i64, "round {round}");
            assert_eq!(count(&t, "SELECT count(*) FROM organizations").await, 0);
            if t.engine() == agenda_storage::Engine::Postgres {
                let functions = count(&t, "SELECT count(*) FROM pg_proc WHERE proname IN \
                    ('agenda_current_tenant', 'agenda_session_tenant', 'agenda_reset_token_tenant')").await;
                assert_eq!(functions, 3, "round {round}");
                let forced = count(&t, "SELECT count(*) FROM pg_class WHERE relname = 'appointments' AND relforcerowsecurity").await;
                assert_eq!(forced, 1, "round {round}");
            }
        }
        let status = tokio::task::block_in_place(|| agenda(&dir.0, &env, &["migrate", "status"]));
        let n = Migrator::migrations().len();
        let summary = format!("{n} migrations, {n} applied, 0 pending");
        assert!(status.stdout.contains(&summary), "{}", status.stdout);
    }
}

/// Runs `agenda` (the server) and waits at most `limit` for it to exit on its own.
fn serve_until_exit(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> (Option<i32>, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .env("BIND_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code(), stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server was still running after {limit:?}: it started despite pending migrations"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

both_engines! {
    /// With `AUTO_MIGRATE=false`, a database with a pending migration stops the
    /// server before it listens. Figures: exit code 1 and one line naming the pending
    /// migration and `agenda migrate up`; nothing was applied.
    async fn pending_migrations_stop_the_server_when_auto_migrate_is_off(t: TestDb) {
        Migrator::down(t.conn(), Some(1)).await.unwrap();
        let url = t.settings.url.expose().to_owned();
        let dir = ScratchDir::new("pending");
        let env = [("DATABASE_URL", url.as_str()), ("AUTO_MIGRATE", "false"), ("RUST_LOG", "warn")];
        let (code, stderr) = tokio::task::block_in_place(|| serve_until_exit(&dir.0, &env, Duration::from_secs(60)));
        assert_eq!(code, Some(1), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        let newest = Migrator::migrations().last().unwrap().name().to_owned();
        assert_eq!(
            last,
            format!(
                "agenda: the database schema is not up to date: 1 pending migration(s) \
                 ({newest}); apply them with `agenda migrate up` \
                 (as the schema owner: MIGRATION_DATABASE_URL), or set AUTO_MIGRATE=true"
            )
        );
        let applied = count(&t, "SELECT count(*) FROM seaql_migrations").await;
        assert_eq!(applied, Migrator::migrations().len() as i64 - 1);
    }
}

/// An unmigrated (new, empty) SQLite file with `AUTO_MIGRATE=false`: the server
/// names every pending migration and exits 1.
#[test]
fn an_unmigrated_database_stops_the_server_when_auto_migrate_is_off() {
    let dir = ScratchDir::new("unmigrated");
    let env = [
        ("DATABASE_URL", "sqlite://new.db"),
        ("AUTO_MIGRATE", "false"),
    ];
    let (code, stderr) = serve_until_exit(&dir.0, &env, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    let expected = format!(
        "the database schema is not up to date: {} pending migration(s) (m20261123_000001_create_organizations, ",
        Migrator::migrations().len()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}
