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
        .post("/api/v1/organizations", &json!({"slug": "acme", "name": "Acme", "time_zone": "America/Sao_Paulo", "currency": "BRL"}))
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
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
