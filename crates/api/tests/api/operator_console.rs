//! The operator view of the console at `/console/operator`, through the running
//! server and the real `agenda` binary: credentials made by `agenda operator …`,
//! operator sessions apart from the organizations' ones, CSRF and read-only refusals,
//! ending idle database sessions, backups (create, download, verify) and the
//! slowest statements.

use std::path::PathBuf;

use agenda_entity::enums::UserRole;
use agenda_storage::Engine;
use agenda_testkit::postgres::LocalCluster;
use agenda_testkit::{TestDb, both_engines, tools};
use axum::Router;
use migration::MigratorTrait as _;
use sea_orm::{ConnectionTrait, Statement};

use crate::console::{browser, console_sign_in, get_page, hidden, set_cookie};
use crate::support::{PASSWORD, TestApp, assert_console_run, member, organization};

/// Runs `agenda operator args…` as the real binary; `as_owner` also gives it
/// `MIGRATION_DATABASE_URL` (the schema owner), as an operator's shell has. Returns
/// the exit code, stdout and stderr.
async fn agenda_operator(app: &TestApp, args: &[&str], as_owner: bool) -> (i32, String, String) {
    let app_url = app.t.app_role_settings().await.url.expose().to_owned();
    let owner_url = app.t.settings.url.expose().to_owned();
    let args: Vec<String> = std::iter::once("operator")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"));
        command
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", &app_url)
            .env("AUTO_MIGRATE", "false")
            .args(&args);
        if as_owner {
            command.env("MIGRATION_DATABASE_URL", &owner_url);
        }
        let out = command.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// `agenda operator create NAME [flags]`; the printed password.
async fn create_operator(app: &TestApp, name: &str, flags: &[&str]) -> String {
    let args: Vec<&str> = [&["create", name], flags].concat();
    let (code, stdout, stderr) = agenda_operator(app, &args, true).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let password = stdout.lines().nth(1).unwrap_or_default().trim().to_owned();
    assert_eq!(password.len(), 64, "{stdout}");
    password
}

/// Signs in to the operator view: the status, the operator cookie (`name=value`)
/// with its whole `Set-Cookie` header, and the page.
async fn operator_sign_in(
    app: &TestApp,
    name: &str,
    password: &str,
) -> (u16, Option<(String, String)>, String) {
    operator_sign_in_over(app, name, password, "http").await
}

/// [`operator_sign_in`] as if behind a proxy that received the request over `proto`.
async fn operator_sign_in_over(
    app: &TestApp,
    name: &str,
    password: &str,
    proto: &str,
) -> (u16, Option<(String, String)>, String) {
    let client = browser();
    let form = client
        .get(app.url("/console/operator/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let (sign_in_cookie, _) =
        set_cookie(&form, "agenda_console_sign_in").expect("a sign-in cookie");
    let token = hidden(&form.text().await.unwrap(), "sign_in_token");
    let answer = client
        .post(app.url("/console/operator/login"))
        .header("cookie", sign_in_cookie)
        .header("x-forwarded-proto", proto)
        .form(&[
            ("name", name),
            ("password", password),
            ("sign_in_token", &token),
        ])
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let cookie = set_cookie(&answer, "agenda_operator");
    (status, cookie, answer.text().await.unwrap())
}

/// Signs in and returns the cookie, or fails.
async fn signed_in(app: &TestApp, name: &str, password: &str) -> String {
    let (status, cookie, page) = operator_sign_in(app, name, password).await;
    assert_eq!(status, 303, "{page}");
    cookie.expect("an operator cookie").0
}

async fn post_form(
    app: &TestApp,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let answer = browser()
        .post(app.url(path))
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    (status, headers, answer.bytes().await.unwrap().to_vec())
}

/// The last line a command wrote (its failure line comes after its log lines).
fn last_line(text: &str) -> &str {
    text.trim_end().lines().last().unwrap_or_default()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `SELECT count(*)` of `sql` as the test's superuser pool.
async fn count(app: &TestApp, sql: &str) -> i64 {
    let conn = app.t.conn();
    conn.query_one_raw(Statement::from_string(
        conn.get_database_backend(),
        sql.to_owned(),
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

both_engines! {
    /// `agenda operator create|list|revoke` through the real binary: the password is
    /// printed once and stored as an argon2id hash; list never shows it; names are
    /// checked; a taken name and an unknown one fail clearly. On PostgreSQL the
    /// application role alone cannot create operators.
    async fn operator_commands_create_list_and_revoke(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let engine = app.t.engine();
        let (code, stdout, _) = agenda_operator(&app, &["list"], true).await;
        assert_eq!(code, 0);
        assert!(stdout.contains("no operators"), "{stdout}");

        let password = create_operator(&app, "alice", &[]).await;
        create_operator(&app, "watcher", &["--read-only"]).await;
        let stored: Vec<String> = {
            let conn = app.t.conn();
            conn.query_all_raw(Statement::from_string(conn.get_database_backend(), "SELECT password_hash FROM operators ORDER BY name"))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get_by_index::<String>(0).unwrap())
                .collect()
        };
        assert_eq!(stored.len(), 2);
        assert!(stored.iter().all(|h| h.starts_with("$argon2id$") && !h.contains(&password)), "{stored:?}");

        let (code, stdout, stderr) = agenda_operator(&app, &["list", "--json"], true).await;
        assert_eq!(code, 0, "{stderr}");
        let listed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(listed[0]["name"], "alice");
        assert_eq!(listed[0]["read_only"], false);
        assert_eq!(listed[1]["name"], "watcher");
        assert_eq!(listed[1]["read_only"], true);
        assert!(!stdout.contains("argon2") && !stdout.contains(&password), "{stdout}");
        let (code, table, _) = agenda_operator(&app, &["list"], true).await;
        assert_eq!(code, 0);
        assert!(table.contains("alice") && table.contains("read-only") && table.contains("never"), "{table}");

        let (code, _, stderr) = agenda_operator(&app, &["create", "alice"], true).await;
        assert_eq!((code, last_line(&stderr)), (1, "agenda: an operator named \"alice\" already exists"));
        let (code, _, stderr) = agenda_operator(&app, &["create", "Not A Name"], true).await;
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains("is not an operator name"), "{stderr}");
        if engine == Engine::Postgres {
            // The application role reads operators (sign-in) but cannot make them.
            let (code, _, stderr) = agenda_operator(&app, &["create", "mallory"], false).await;
            assert_eq!(code, 1, "{stderr}");
            assert!(last_line(&stderr).starts_with("agenda: creating the operator failed") && stderr.contains("set MIGRATION_DATABASE_URL"), "{stderr}");
            assert_eq!(count(&app, "SELECT count(*) FROM operators WHERE name = 'mallory'").await, 0);
        }

        // Revoking ends the operator's sessions at once.
        let cookie = signed_in(&app, "alice", &password).await;
        assert_eq!(get_page(&app, "/console/operator", &cookie).await.0, 200);
        let (code, stdout, stderr) = agenda_operator(&app, &["revoke", "alice"], true).await;
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("revoked operator \"alice\""), "{stdout}");
        assert_eq!(get_page(&app, "/console/operator", &cookie).await.0, 303);
        assert_eq!(count(&app, "SELECT count(*) FROM operator_sessions").await, 0);
        let (code, _, stderr) = agenda_operator(&app, &["revoke", "alice"], true).await;
        assert_eq!((code, last_line(&stderr)), (1, "agenda: no operator named \"alice\""));
        app.stop().await;
    }

    /// Operator sign-in: the double-submit token, a wrong password (401, no cookie),
    /// the lockout after five failures, the cookie's attributes, the overview (pool,
    /// migrations, replicas; PostgreSQL-only panels say so on SQLite), and signing
    /// out only with the CSRF token.
    async fn an_operator_signs_in_sees_the_overview_and_signs_out(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let engine = app.t.engine();
        let password = create_operator(&app, "alice", &[]).await;

        let answer = browser().get(app.url("/console/operator")).send().await.unwrap();
        assert_eq!(answer.status(), 303);
        assert_eq!(answer.headers()["location"], "/console/operator/login");
        let answer = browser()
            .post(app.url("/console/operator/login"))
            .form(&[("name", "alice"), ("password", password.as_str()), ("sign_in_token", "x")])
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 403);
        assert!(set_cookie(&answer, "agenda_operator").is_none());
        let (status, cookie, page) = operator_sign_in(&app, "alice", "wrong").await;
        assert_eq!((status, cookie.is_none()), (401, true));
        assert!(page.contains("wrong operator name or password"), "{page}");
        assert_eq!(operator_sign_in(&app, "nobody", "wrong").await.0, 401);

        let (status, cookie, page) = operator_sign_in(&app, "alice", &password).await;
        assert_eq!(status, 303, "{page}");
        let (cookie, header) = cookie.unwrap();
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console/operator", "Max-Age=28800"] {
            assert!(header.contains(attribute), "{header}");
        }
        assert!(!header.contains("Secure"), "plain HTTP: {header}");
        let (_, behind_https, _) = operator_sign_in_over(&app, "alice", &password, "https").await;
        let (_, behind_https) = behind_https.unwrap();
        assert!(behind_https.contains("; Secure"), "{behind_https}");
        let stored = count(&app, &format!(
            "SELECT count(*) FROM operator_sessions WHERE token_hash = '{}'",
            agenda_api::auth::token_digest(cookie.split_once('=').unwrap().1)
        )).await;
        assert_eq!(stored, 1, "the session is stored as the token's digest");

        let (status, html) = get_page(&app, "/console/operator", &cookie).await;
        assert_eq!(status, 200, "{html}");
        assert!(html.contains("http-equiv=\"refresh\""), "{html}");
        assert!(html.contains("operator alice"), "{html}");
        assert!(html.contains("<td id=\"pool-size\">"), "{html}");
        let migrations = migration::Migrator::migrations().len();
        assert!(html.contains(&format!("<span id=\"applied\">{migrations}</span> applied, <span id=\"pending\">0</span> pending")), "{html}");
        assert!(html.contains("No read replicas configured"), "{html}");
        match engine {
            Engine::Sqlite => assert!(html.contains("PostgreSQL only"), "{html}"),
            Engine::Postgres => {
                assert!(html.contains("<table id=\"by-state\">"), "{html}");
                assert!(html.contains("<td>active</td>"), "the overview's own session: {html}");
            }
        }
        let (status, html) = get_page(&app, "/console/operator/statements", &cookie).await;
        assert_eq!(status, 200);
        match engine {
            Engine::Sqlite => assert!(html.contains("PostgreSQL only"), "{html}"),
            Engine::Postgres => assert!(html.contains("pg_stat_statements is not installed"), "{html}"),
        }

        // Signing out needs the session's CSRF token.
        let csrf = hidden(&html, "csrf");
        let (status, _, body) = post_form(&app, "/console/operator/logout", &cookie, &[]).await;
        assert_eq!(status, 403, "{}", text(&body));
        let (status, _, _) = post_form(&app, "/console/operator/logout", &cookie, &[("csrf", "0".repeat(64).as_str())]).await;
        assert_eq!(status, 403);
        assert_eq!(get_page(&app, "/console/operator", &cookie).await.0, 200);
        let (status, headers, _) = post_form(&app, "/console/operator/logout", &cookie, &[("csrf", &csrf)]).await;
        assert_eq!(status, 303);
        assert_eq!(headers["location"], "/console/operator/login");
        assert_eq!(get_page(&app, "/console/operator", &cookie).await.0, 303);

        // Signing in again drops the revoked session (the one behind HTTPS stays).
        let again = signed_in(&app, "alice", &password).await;
        assert_eq!(count(&app, "SELECT count(*) FROM operator_sessions").await, 2);
        assert_eq!(get_page(&app, "/console/operator", &again).await.0, 200);

        // Five wrong passwords in a row lock the operator: the right one fails too.
        for _ in 0..5 {
            assert_eq!(operator_sign_in(&app, "alice", "wrong").await.0, 401);
        }
        assert_eq!(operator_sign_in(&app, "alice", &password).await.0, 401);
        let (_, listed, _) = agenda_operator(&app, &["list", "--json"], true).await;
        let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
        assert!(listed[0]["locked_until"].is_string(), "{listed}");
        app.stop().await;
    }

    /// An organization's admin session opens no operator page, and an operator's
    /// session opens no page of the organization view, whichever cookie carries it.
    async fn the_two_console_views_do_not_open_each_other(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = organization(&app, "acme").await;
        member(&app, acme, "acme", "boss@acme.example", UserRole::Admin).await;
        let password = create_operator(&app, "alice", &[]).await;
        let (status, admin) = console_sign_in(&app, "acme", "boss@acme.example", PASSWORD).await;
        assert_eq!(status, 303);
        let admin = admin.unwrap();
        let admin_token = admin.split_once('=').unwrap().1.to_owned();
        let operator = signed_in(&app, "alice", &password).await;
        let operator_token = operator.split_once('=').unwrap().1.to_owned();

        // The admin's cookie (and its token in the operator cookie) on operator pages.
        for cookie in [admin.clone(), format!("agenda_operator={admin_token}")] {
            for path in ["/console/operator", "/console/operator/sessions", "/console/operator/backups"] {
                let answer = browser().get(app.url(path)).header("cookie", &cookie).send().await.unwrap();
                assert_eq!(answer.status(), 303, "{path} with {cookie}");
                assert_eq!(answer.headers()["location"], "/console/operator/login");
            }
        }
        // The operator's cookie (and its token in the console cookie) on admin pages.
        for cookie in [operator.clone(), format!("agenda_console={operator_token}")] {
            for path in ["/console", "/console/tables/users"] {
                let answer = browser().get(app.url(path)).header("cookie", &cookie).send().await.unwrap();
                assert_eq!(answer.status(), 303, "{path} with {cookie}");
                assert_eq!(answer.headers()["location"], "/console/login");
            }
        }
        // Both cookies at once: each view reads its own.
        let both = format!("{admin}; {operator}");
        assert_eq!(get_page(&app, "/console", &both).await.0, 200);
        let (status, html) = get_page(&app, "/console/operator", &both).await;
        assert_eq!(status, 200);
        // The admin's CSRF token does not sign the operator out.
        let (_, admin_home) = get_page(&app, "/console", &admin).await;
        let admin_csrf = hidden(&admin_home, "csrf");
        assert_ne!(admin_csrf, hidden(&html, "csrf"));
        assert_eq!(post_form(&app, "/console/operator/logout", &both, &[("csrf", &admin_csrf)]).await.0, 403);
        app.stop().await;
    }

    /// A read-only operator sees every panel with no action on it, and each action
    /// answers 403 even with the right CSRF token.
    async fn a_read_only_operator_takes_no_action(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let password = create_operator(&app, "watcher", &["--read-only"]).await;
        let cookie = signed_in(&app, "watcher", &password).await;
        let (status, home) = get_page(&app, "/console/operator", &cookie).await;
        assert_eq!(status, 200);
        assert!(home.contains("(read-only)"), "{home}");
        let csrf = hidden(&home, "csrf");
        let (status, sessions) = get_page(&app, "/console/operator/sessions", &cookie).await;
        assert_eq!(status, 200);
        assert!(!sessions.contains("end-idle"), "{sessions}");
        let (status, backups) = get_page(&app, "/console/operator/backups", &cookie).await;
        assert_eq!(status, 200);
        assert!(!backups.contains("create-backup"), "{backups}");
        let (status, page) = get_page(&app, "/console/operator/sessions/end-idle?older_than=0", &cookie).await;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("read_only_operator"), "{page}");
        for path in ["/console/operator/sessions/end-idle", "/console/operator/backups"] {
            let (status, _, body) = post_form(&app, path, &cookie, &[("csrf", &csrf), ("older_than", "0")]).await;
            assert_eq!(status, 403, "{path}");
            assert!(text(&body).contains("read_only_operator"), "{path}");
        }
        app.stop().await;
    }

    /// "End idle sessions": a confirmation page lists what would end, the POST
    /// without the CSRF token ends nothing, and with it the idle session of the
    /// application role is really gone from `pg_stat_activity`. On SQLite the
    /// panel says it needs PostgreSQL.
    async fn an_operator_ends_an_idle_session(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let password = create_operator(&app, "alice", &[]).await;
        let cookie = signed_in(&app, "alice", &password).await;
        let (status, sessions) = get_page(&app, "/console/operator/sessions", &cookie).await;
        assert_eq!(status, 200);
        let csrf = hidden(&sessions, "csrf");
        if app.t.engine() == Engine::Sqlite {
            assert!(sessions.contains("PostgreSQL only"), "{sessions}");
            let (status, page) = get_page(&app, "/console/operator/sessions/end-idle?older_than=0", &cookie).await;
            assert_eq!(status, 409);
            assert!(page.contains("postgres_only"), "{page}");
            let (status, _, _) = post_form(&app, "/console/operator/sessions/end-idle", &cookie, &[("csrf", &csrf), ("older_than", "0")]).await;
            assert_eq!(status, 409);
            app.stop().await;
            return;
        }
        assert!(sessions.contains("End idle sessions"), "{sessions}");
        // An idle session of the application role, as a pool leaves one.
        let idle = agenda_storage::Db::connect(&app.t.app_role_settings().await).await.unwrap();
        let pid: i32 = idle
            .conn()
            .query_one_raw(Statement::from_string(sea_orm::DbBackend::Postgres, "SELECT pg_backend_pid()"))
            .await
            .unwrap()
            .unwrap()
            .try_get_by_index(0)
            .unwrap();
        let alive = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
        assert_eq!(count(&app, &alive).await, 1);

        let (status, confirm) = get_page(&app, "/console/operator/sessions/end-idle?older_than=0", &cookie).await;
        assert_eq!(status, 200, "{confirm}");
        assert!(confirm.contains(&format!("<td>{pid}</td>")), "the dry run lists it: {confirm}");
        assert!(confirm.contains("confirm-end-idle"), "{confirm}");
        assert_eq!(count(&app, &alive).await, 1, "confirming ends nothing");
        let (status, _) = get_page(&app, "/console/operator/sessions/end-idle?older_than=x", &cookie).await;
        assert_eq!(status, 422);

        let (status, _, body) = post_form(&app, "/console/operator/sessions/end-idle", &cookie, &[("older_than", "0")]).await;
        assert_eq!(status, 403, "{}", text(&body));
        assert_eq!(count(&app, &alive).await, 1, "no CSRF token, nothing ended");

        let (status, _, body) = post_form(&app, "/console/operator/sessions/end-idle", &cookie, &[("csrf", &csrf), ("older_than", "0")]).await;
        let page = text(&body);
        assert_eq!(status, 200, "{page}");
        assert!(page.contains(&format!("pid {pid} ")), "{page}");
        let ended: usize = page.split("Ended ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        assert!(ended >= 1, "{page}");
        assert_eq!(count(&app, &alive).await, 0, "the idle session is gone");
        // The server's own pool recovers from its ended idle connections.
        assert_eq!(get_page(&app, "/console/operator/sessions", &cookie).await.0, 200);
        idle.close().await;
        app.stop().await;
    }

    /// Backups from the console: created into BACKUP_DIR (as the schema owner on
    /// PostgreSQL, refused clearly without one), listed, downloaded with a safe file
    /// name, and the downloaded file verifies; names outside the listing are 404.
    async fn an_operator_creates_and_downloads_a_backup(t: TestDb) {
        let dir = std::env::temp_dir().join(format!("agenda-operator-backups-{}", uuid::Uuid::now_v7()));
        let engine = t.engine();
        let owner = t.settings.clone();
        if engine == Engine::Postgres {
            // Without an owner's URL the application role would back up nothing.
            let app = TestApp::spawn_configured(t, Router::new(), {
                let dir = dir.clone();
                move |s| s.backup_dir = dir
            })
            .await;
            let password = create_operator(&app, "alice", &[]).await;
            let cookie = signed_in(&app, "alice", &password).await;
            let (_, page) = get_page(&app, "/console/operator/backups", &cookie).await;
            let csrf = hidden(&page, "csrf");
            let (status, _, body) = post_form(&app, "/console/operator/backups", &cookie, &[("csrf", &csrf)]).await;
            assert_eq!(status, 409, "{}", text(&body));
            assert!(text(&body).contains("backup_needs_owner") && text(&body).contains("MIGRATION_DATABASE_URL"), "{}", text(&body));
            assert!(agenda_storage::backup::list(&dir).unwrap().is_empty());
            let t = app.stop().await;
            return backup_with_owner(t, dir, Some(owner)).await;
        }
        backup_with_owner(t, dir, None).await;
    }
}

async fn backup_with_owner(t: TestDb, dir: PathBuf, owner: Option<agenda_storage::db::DbSettings>) {
    let app = TestApp::spawn_configured(t, Router::new(), {
        let dir = dir.clone();
        move |s| {
            s.backup_dir = dir;
            s.owner_db = owner;
        }
    })
    .await;
    let acme = organization(&app, "acme").await;
    member(&app, acme, "acme", "boss@acme.example", UserRole::Admin).await;
    let other = organization(&app, "other").await;
    member(&app, other, "other", "boss@other.example", UserRole::Admin).await;
    let password = create_operator(&app, "bob", &[]).await;
    let cookie = signed_in(&app, "bob", &password).await;
    let (status, page) = get_page(&app, "/console/operator/backups", &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("No backups yet"), "{page}");
    let csrf = hidden(&page, "csrf");
    let (status, _, _) = post_form(&app, "/console/operator/backups", &cookie, &[]).await;
    assert_eq!(status, 403, "no CSRF token");

    let (status, _, body) = post_form(
        &app,
        "/console/operator/backups",
        &cookie,
        &[("csrf", &csrf)],
    )
    .await;
    let page = text(&body);
    assert_eq!(status, 201, "{page}");
    let listed = agenda_storage::backup::list(&dir).unwrap();
    assert_eq!(listed.len(), 1);
    let file = listed[0].file_name.clone();
    assert!(
        page.contains(&format!("Backup <code>{file}</code> written")),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/console/operator/backups/{file}\"")),
        "{page}"
    );

    let answer = browser()
        .get(app.url(&format!("/console/operator/backups/{file}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/gzip");
    assert_eq!(
        answer.headers()["content-disposition"],
        format!("attachment; filename=\"{file}\"").as_str()
    );
    let bytes = answer.bytes().await.unwrap();
    assert_eq!(
        bytes.as_ref(),
        std::fs::read(&listed[0].path).unwrap().as_slice()
    );
    let downloaded = dir.with_extension("download.tar.gz");
    std::fs::write(&downloaded, &bytes).unwrap();
    let manifest = agenda_storage::backup::verify(&downloaded)
        .unwrap()
        .into_result()
        .unwrap();
    let users = manifest.table("users").unwrap().rows;
    assert!(users >= 4, "both organizations' users: {users}");
    assert_eq!(
        manifest.table("organizations").unwrap().rows,
        2,
        "every organization"
    );

    for bad in [
        "..%2F..%2Fetc%2Fpasswd",
        "nothing.tar.gz",
        "..",
        "%2Fetc%2Fpasswd.tar.gz",
    ] {
        let (status, _) =
            get_page(&app, &format!("/console/operator/backups/{bad}"), &cookie).await;
        assert_eq!(status, 404, "{bad}");
    }
    // Only an operator downloads.
    let answer = browser()
        .get(app.url(&format!("/console/operator/backups/{file}")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    app.stop().await;
    let _ = std::fs::remove_file(&downloaded);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `pg_stat_statements` preloaded and installed, the panel lists this
/// database's statements, slowest first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_slowest_statements_come_from_pg_stat_statements() {
    if agenda_testkit::postgres::find_binaries().is_none() {
        assert!(!agenda_testkit::in_ci(), "PostgreSQL binaries not found");
        eprintln!("!!!!!!!!!! SKIPPED: PostgreSQL binaries not found");
        return;
    }
    let cluster =
        LocalCluster::start_with(&[("shared_preload_libraries", "pg_stat_statements")]).unwrap();
    cluster
        .wait_ready(std::time::Duration::from_secs(60))
        .await
        .unwrap();
    let t = TestDb::postgres_on(&cluster, "agenda_statements").await;
    t.conn()
        .execute_unprepared("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let app = TestApp::spawn(t).await;
    let acme = organization(&app, "acme").await;
    member(&app, acme, "acme", "boss@acme.example", UserRole::Admin).await;
    let password = create_operator(&app, "alice", &[]).await;
    let cookie = signed_in(&app, "alice", &password).await;
    let (status, html) = get_page(&app, "/console/operator/statements", &cookie).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<table id=\"statements\">"), "{html}");
    // The server's own statements (its sign-in of the operator, say), and no
    // statement whose text the server's role may not read.
    assert!(
        html.contains("operator_sessions"),
        "the server's own statements are listed: {html}"
    );
    assert!(!html.contains("insufficient privilege"), "{html}");
    app.stop().await;
    cluster.stop_fast().unwrap();
}

/// The operator view in a real headless Chromium (`e2e/operator.mjs`) on PostgreSQL
/// as the application role: the operator signs in, sees the pool, ends an idle
/// session through the confirmation step and reads how many were ended. It takes
/// the operator screenshots of docs/console.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_view_works_in_a_real_browser() {
    let Some(chromium) = tools::require(tools::chromium()) else {
        return;
    };
    let Some(e2e) = tools::require(tools::node_project()) else {
        return;
    };
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(t).await;
    let password = create_operator(&app, "alice", &[]).await;
    let idle = agenda_storage::Db::connect(&app.t.app_role_settings().await)
        .await
        .unwrap();
    let pid: i32 = idle
        .conn()
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_backend_pid()",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index(0)
        .unwrap();
    let (base, shots) = crate::support::console_run_places(&app);
    let seen = crate::support::run_browser_script(
        &e2e,
        &chromium,
        "operator.mjs",
        &base,
        &[shots.to_str().unwrap(), "alice", &password],
    );
    assert_eq!(seen["signedInAs"], "operator alice", "{seen}");
    assert!(
        seen["poolSize"].as_str().unwrap().parse::<u32>().unwrap() >= 1,
        "{seen}"
    );
    assert!(
        seen["wouldEnd"].as_str().unwrap().parse::<u32>().unwrap() >= 1,
        "{seen}"
    );
    let ended = seen["ended"].as_str().unwrap();
    assert!(
        ended.starts_with("Ended ") && !ended.starts_with("Ended 0 "),
        "{seen}"
    );
    let alive = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid}");
    assert_eq!(count(&app, &alive).await, 0, "the idle session is gone");
    assert_eq!(seen["afterSignOut"], "/console/operator/login");
    assert_console_run(
        &seen,
        &base,
        &shots,
        &[
            "console-operator-overview.png",
            "console-operator-end-idle.png",
            "console-operator-ended.png",
        ],
    );
    idle.close().await;
    app.stop().await;
}

/// With a streaming standby as a read replica, the overview lists it with its state
/// and lag, by its URL without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_overview_shows_each_replica_and_its_lag() {
    let Some((_primary, _standby, app, _people)) =
        crate::scaling::with_standby(std::time::Duration::from_secs(3600)).await
    else {
        return;
    };
    let password = create_operator(&app, "alice", &[]).await;
    let cookie = signed_in(&app, "alice", &password).await;
    // The replica monitor checks every second: wait (generously) for its first check.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let html = loop {
        let (status, html) = get_page(&app, "/console/operator", &cookie).await;
        assert_eq!(status, 200, "{html}");
        if html.contains("<td>up</td>") {
            break html;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never showed as up: {html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(html.contains("<table id=\"replicas\">"), "{html}");
    assert!(html.contains(" ms</td>"), "its lag: {html}");
    let replica_url = &app.state.settings.db.read_urls[0];
    // As the page escapes it (`/` as `&#x2f;`).
    let shown = replica_url.redacted().replace('/', "&#x2f;");
    assert!(html.contains(&shown), "{html}");
    // user:password@host: the password never shows.
    let credentials = replica_url
        .expose()
        .split("://")
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap();
    let secret = credentials.split_once(':').unwrap().1;
    assert!(!html.contains(secret), "{html}");
    app.stop().await;
}
