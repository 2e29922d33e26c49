//! Registration, sign-in, sessions, lockout and password reset, over HTTP.

use agenda_entity::enums::TokenPurpose;
use agenda_storage::TenantScope;
use agenda_storage::repo::sessions::OneTimeTokenRepo;
use agenda_testkit::both_engines;
use serde_json::{Value, json};

use crate::support::{TestApp, code, fields};

const PASSWORD: &str = "correct horse battery";

async fn organization(app: &TestApp) -> String {
    let (status, body) = app
        .post("/api/v1/organizations", &crate::support::sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "America/Sao_Paulo", "currency": "BRL"})))
        .await;
    assert_eq!(status, 201, "{body}");
    body["organization"]["id"].as_str().unwrap().to_owned()
}

async fn register(app: &TestApp, email: &str, role: &str) -> (u16, Value) {
    app.post(
        "/api/v1/auth/register",
        &json!({"organization": "acme", "email": email, "password": PASSWORD, "full_name": "Ana Souza", "role": role}),
    )
    .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> (u16, Value) {
    app.post(
        "/api/v1/auth/login",
        &json!({"organization": "acme", "email": email, "password": password}),
    )
    .await
}

async fn me(app: &TestApp, token: &str) -> (u16, Value) {
    let response = app
        .client
        .get(app.url("/api/v1/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    crate::support::read(response).await
}

both_engines! {
    async fn register_login_me_logout(t: TestDb) {
        let app = TestApp::spawn(t).await;
        organization(&app).await;
        let (status, user) = register(&app, "Ana@Example.com", "client").await;
        assert_eq!(status, 201, "{user}");
        assert_eq!((user["email"].as_str(), user["role"].as_str()), (Some("ana@example.com"), Some("client")));
        assert!(user.get("password_hash").is_none() && user.get("password").is_none());

        let (status, body) = register(&app, "ana@example.com", "provider").await;
        assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
        let (status, body) = register(&app, "root@example.com", "admin").await;
        assert_eq!((status, fields(&body)), (422, vec!["role".to_owned()]));
        let (status, body) = app
            .post("/api/v1/auth/register", &json!({"organization": "nope", "email": "x@example.com", "password": PASSWORD, "full_name": "X", "role": "client"}))
            .await;
        assert_eq!((status, fields(&body)), (422, vec!["organization".to_owned()]));

        let (status, signed_in) = login(&app, "ana@example.com", PASSWORD).await;
        assert_eq!(status, 200, "{signed_in}");
        let token = signed_in["token"].as_str().unwrap().to_owned();
        assert_eq!(token.len(), 64);
        assert_eq!(signed_in["token_type"], "Bearer");
        let (status, body) = me(&app, &token).await;
        assert_eq!((status, body["id"].clone()), (200, user["id"].clone()));
        assert!(body["last_login_at"].is_string());

        for bad in ["", "Bearer", &"0".repeat(64), "not a token"] {
            let (status, body) = me(&app, bad).await;
            assert_eq!((status, code(&body)), (401, "unauthorized"), "{bad:?}");
        }
        let (status, _) = app.get("/api/v1/auth/me").await;
        assert_eq!(status, 401);

        let response = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 204);
        assert_eq!(me(&app, &token).await.0, 401, "the token is revoked");
        app.stop().await;
    }

    async fn failures_do_not_reveal_the_account_and_lock_it(t: TestDb) {
        let app = TestApp::spawn(t).await;
        organization(&app).await;
        register(&app, "ana@example.com", "client").await;
        let (s1, unknown) = login(&app, "nobody@example.com", PASSWORD).await;
        let (s2, wrong) = login(&app, "ana@example.com", "wrong password!").await;
        assert_eq!((s1, s2), (401, 401));
        assert_eq!(unknown, wrong, "the same answer for an unknown email and a wrong password");
        assert_eq!(code(&wrong), "invalid_credentials");
        for _ in 0..4 {
            login(&app, "ana@example.com", "wrong password!").await;
        }
        let (status, body) = login(&app, "ana@example.com", PASSWORD).await;
        assert_eq!((status, body), (401, wrong), "five failures lock the account, even for the right password");
        app.stop().await;
    }

    async fn password_reset_is_single_use_and_revokes_sessions(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let org = organization(&app).await;
        let (_, user) = register(&app, "ana@example.com", "client").await;
        let (_, signed_in) = login(&app, "ana@example.com", PASSWORD).await;
        let old_token = signed_in["token"].as_str().unwrap().to_owned();

        for email in ["ana@example.com", "nobody@example.com"] {
            let (status, _) = app.post("/api/v1/auth/password-reset", &json!({"organization": "acme", "email": email})).await;
            assert_eq!(status, 202, "the same answer whether or not the account exists");
        }
        // The token would be mailed; here the test makes one it knows.
        let token = agenda_api::auth::new_token();
        let scope = TenantScope::new(org.parse().unwrap());
        let user_id = user["id"].as_str().unwrap().parse().unwrap();
        OneTimeTokenRepo::issue(app.t.conn(), scope, user_id, TokenPurpose::PasswordReset, &agenda_api::auth::token_digest(&token), chrono::Utc::now() + chrono::Duration::minutes(5))
            .await
            .unwrap();
        let confirm = json!({"token": token, "new_password": "a brand new secret"});
        let (status, body) = app.post("/api/v1/auth/password-reset/confirm", &confirm).await;
        assert_eq!(status, 204, "{body}");
        let (status, body) = app.post("/api/v1/auth/password-reset/confirm", &confirm).await;
        assert_eq!((status, fields(&body)), (422, vec!["token".to_owned()]), "single use");
        assert_eq!(me(&app, &old_token).await.0, 401, "sessions are revoked");
        assert_eq!(login(&app, "ana@example.com", PASSWORD).await.0, 401);
        assert_eq!(login(&app, "ana@example.com", "a brand new secret").await.0, 200);
        app.stop().await;
    }
}

/// Consecutive failures that lock an account (docs/api.md).
const FIVE: i32 = 5;

/// Waits (up to a generous bound) until `done` holds; the tests below wait for a
/// request to reach a known point rather than sleeping.
async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn account(app: &TestApp, email: &str) -> agenda_entity::user::Model {
    use agenda_entity::user;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(app.t.conn())
        .await
        .unwrap()
        .expect("the account exists")
}

/// Sends `wrong` failed sign-ins and `right` correct ones for ana, all at once;
/// returns how many were accepted.
async fn burst(app: &TestApp, wrong: usize, right: usize) -> usize {
    let attempts = (0..wrong)
        .map(|_| "wrong password!")
        .chain((0..right).map(|_| PASSWORD));
    let answers =
        futures::future::join_all(attempts.map(|p| login(app, "ana@example.com", p))).await;
    for (status, body) in &answers {
        assert!(matches!(status, 200 | 401), "{status} {body}");
    }
    answers.iter().filter(|(status, _)| *status == 200).count()
}

both_engines! {
    async fn a_full_hashing_queue_answers_503_without_hashing(t: TestDb) {
        let app = TestApp::spawn_configured(t, axum::Router::new(), |s| {
            s.passwords.concurrency = 1;
            s.passwords.queue = 0;
        })
        .await;
        organization(&app).await;
        // The only permit is taken: no request can even join the line.
        let held = app.state.passwords.admit().await.unwrap();
        for (path, body) in [
            ("/api/v1/auth/login", json!({"organization": "acme", "email": "ana@example.com", "password": PASSWORD})),
            ("/api/v1/auth/register", json!({"organization": "acme", "email": "ana@example.com", "password": PASSWORD, "full_name": "Ana", "role": "client"})),
            ("/api/v1/auth/password-reset/confirm", json!({"token": "0".repeat(64), "new_password": "a brand new secret"})),
        ] {
            let response = app.client.post(app.url(path)).json(&body).send().await.unwrap();
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let (status, body) = crate::support::read(response).await;
            assert_eq!((status, code(&body)), (503, "unavailable"), "{path}: {body}");
            assert_eq!(retry_after.as_deref(), Some("1"), "{path}");
        }
        assert_eq!((app.state.passwords.running(), app.state.passwords.waiting()), (1, 0), "nothing else was hashed");
        drop(held);
        assert_eq!(register(&app, "ana@example.com", "client").await.0, 201, "refused, not lost: the account did not exist");
        assert_eq!(login(&app, "ana@example.com", PASSWORD).await.0, 200);
        app.stop().await;
    }

    async fn a_burst_cannot_outrun_the_lockout(t: TestDb) {
        let app = TestApp::spawn(t).await;
        organization(&app).await;
        register(&app, "ana@example.com", "client").await;
        // 24 wrong passwords and the right one at once. The right one may win only if
        // it is decided before the fifth failure; either way the failures that follow
        // lock the account, and the success cannot lift a lock.
        let accepted = burst(&app, 24, 1).await;
        assert!(accepted <= 1);
        let locked_until = account(&app, "ana@example.com").await.locked_until;
        assert!(locked_until.is_some_and(|until| until > chrono::Utc::now()), "locked: {locked_until:?}");
        assert_eq!(login(&app, "ana@example.com", PASSWORD).await.0, 401, "the lock holds after the burst");

        // While the lock holds, nothing gets in and nothing moves the lock.
        assert_eq!(burst(&app, 24, 1).await, 0, "0 successes while the lock holds");
        assert_eq!(burst(&app, 0, 8).await, 0);
        let after = account(&app, "ana@example.com").await;
        assert_eq!(after.locked_until, locked_until, "neither extended nor lifted");
        app.stop().await;
    }

    async fn a_success_decided_after_a_lock_does_not_lift_it(t: TestDb) {
        use agenda_storage::repo::users::UserRepo;
        let app = TestApp::spawn_configured(t, axum::Router::new(), |s| {
            s.passwords.concurrency = 1;
            s.passwords.queue = 1;
        })
        .await;
        let org = organization(&app).await;
        register(&app, "ana@example.com", "client").await;
        // The right password is read while the account is still open, then waits for
        // its password check...
        let held = app.state.passwords.admit().await.unwrap();
        let right = {
            let (client, url) = (app.client.clone(), app.url("/api/v1/auth/login"));
            tokio::spawn(async move {
                let body = json!({"organization": "acme", "email": "ana@example.com", "password": PASSWORD});
                client.post(url).json(&body).send().await.unwrap().status().as_u16()
            })
        };
        wait_for("the sign-in to wait for its password check", || app.state.passwords.waiting() == 1).await;
        // ...while five failures lock the account, the way the server records them.
        let scope = TenantScope::new(org.parse().unwrap());
        let id = account(&app, "ana@example.com").await.id;
        let now = chrono::Utc::now();
        let mut locked = false;
        for _ in 0..FIVE {
            locked = UserRepo::record_failed_login(app.t.conn(), scope, id, now, FIVE, chrono::Duration::minutes(15))
                .await
                .unwrap();
        }
        assert!(locked, "the fifth failure locks");
        let locked_until = account(&app, "ana@example.com").await.locked_until;
        drop(held);
        assert_eq!(right.await.unwrap(), 401, "a correct password decided after the lock is refused");
        let after = account(&app, "ana@example.com").await;
        assert_eq!(after.locked_until, locked_until, "the lock is still in force");
        assert!(after.last_login_at.is_none());
        assert_eq!(login(&app, "ana@example.com", PASSWORD).await.0, 401);
        app.stop().await;
    }
}

/// What an authenticated read costs PostgreSQL, counted (not timed) with
/// `pg_stat_statements` for the server's application role in this database: 20
/// `GET /organizations/{id}` run `agenda_authenticate` once each, never the old
/// two-step lookup (`agenda_session_tenant`, then the session join), and end with a
/// `ROLLBACK` (queued when the read's transaction is dropped) rather than a
/// `COMMIT` — four statements, three of them round trips on the request's path.
/// After each, the next transaction on the pool has no tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_read_authenticates_in_one_statement_and_commits_nothing() {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let Some(t) = agenda_testkit::TestDb::postgres().await else {
        return;
    };
    let app = TestApp::spawn(t).await;
    let id = organization(&app).await;
    let scope = TenantScope::new(id.parse().unwrap());
    let admin = crate::support::member(
        &app,
        scope,
        "acme",
        "stats@example.com",
        agenda_entity::enums::UserRole::Admin,
    )
    .await;
    let su = app.t.conn();
    let run = |sql: String| async move {
        su.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
    };
    run("CREATE EXTENSION IF NOT EXISTS pg_stat_statements".into()).await;
    let role = agenda_testkit::APP_ROLE;
    let mine = format!(
        "userid = (SELECT oid FROM pg_roles WHERE rolname = '{role}') \
         AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    );
    crate::foundation::wait_for_idle_pool(&app.db).await;
    run(format!(
        "SELECT pg_stat_statements_reset(r.oid, d.oid, 0) FROM pg_roles r, pg_database d \
         WHERE r.rolname = '{role}' AND d.datname = current_database()"
    ))
    .await;
    let requests = 20;
    for _ in 0..requests {
        let (status, body) = crate::support::api(
            &app,
            "GET",
            &format!("/organizations/{id}"),
            &admin.token,
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    crate::foundation::wait_for_idle_pool(&app.db).await;
    let calls = |pattern: &'static str| {
        let mine = mine.clone();
        async move {
            let rows = run(format!(
                "SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements \
                 WHERE {mine} AND query ILIKE '{pattern}'"
            ))
            .await;
            rows[0].try_get_by_index::<i64>(0).unwrap()
        }
    };
    assert_eq!(calls("%agenda_authenticate%").await, requests);
    assert_eq!(calls("%agenda_session_tenant%").await, 0);
    assert_eq!(
        calls("%FROM \"user_sessions\"%").await,
        0,
        "a second session lookup"
    );
    assert!(
        calls("ROLLBACK").await >= requests,
        "each read ends with a ROLLBACK"
    );
    let tx = app.db.begin_read().await.unwrap();
    let row = tx
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT coalesce(current_setting('app.tenant', true), '')",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<String>(0).unwrap(), "");
    tx.commit().await.unwrap();
    app.stop().await;
}
