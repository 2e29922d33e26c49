//! Integration settings over the API (secrets write-only, encrypted at rest, used by
//! the webhook, rotated keys) and a client's saved payment methods (processor tokens
//! only): role rules and tenant isolation for both.

use agenda_entity::enums::UserRole;
use agenda_entity::{audit_log, integration_setting, user_payment_method};
use agenda_storage::TenantScope;
use agenda_storage::secrets::SecretKeys;
use agenda_testkit::{TestDb, both_engines};
use axum::Router;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};
use serde_json::{Value, json};

use crate::support::{Member, TestApp, api, code, fields, member, organization};
use crate::webhooks::{deliver, signature};

const KEY_A: [u8; 32] = [11; 32];
const KEY_B: [u8; 32] = [22; 32];
const SECRET: &str = "whsec_acme_5f2b8c1d9e0a4b7c";

/// The server with these secret keys; `t` may come from a stopped server (its pool,
/// which a stopped server closes, is opened again).
async fn spawn_with_keys(
    mut t: TestDb,
    current: Option<[u8; 32]>,
    previous: &[[u8; 32]],
) -> TestApp {
    if t.db.is_closed() {
        t.db = t.another_pool(|_| {}).await;
    }
    let keys = std::sync::Arc::new(SecretKeys::from_keys(current, previous));
    TestApp::spawn_configured(t, Router::new(), move |s| s.secrets = keys).await
}

/// A signed `ping` to `slug`'s stripe webhook: 200 when the signature (and so the
/// secret the server holds) is right.
async fn ping(app: &TestApp, slug: &str, secret: &str) -> (u16, Value) {
    let event = json!({"id": format!("evt_{}", uuid::Uuid::now_v7()), "type": "ping"});
    let sig = signature(
        secret,
        Utc::now().timestamp(),
        &serde_json::to_vec(&event).unwrap(),
    );
    deliver(app, slug, "stripe", &event, Some(sig)).await
}

struct World {
    acme: TenantScope,
    admin: Member,
    support: Member,
    provider: Member,
    client: Member,
    other_client: Member,
    beta_admin: Member,
    beta_client: Member,
}

async fn world(app: &TestApp) -> World {
    let acme = organization(app, "acme").await;
    let beta = organization(app, "beta").await;
    World {
        acme,
        admin: member(app, acme, "acme", "admin@acme.example", UserRole::Admin).await,
        support: member(app, acme, "acme", "support@acme.example", UserRole::Support).await,
        provider: member(
            app,
            acme,
            "acme",
            "provider@acme.example",
            UserRole::Provider,
        )
        .await,
        client: member(app, acme, "acme", "client@acme.example", UserRole::Client).await,
        other_client: member(app, acme, "acme", "other@acme.example", UserRole::Client).await,
        beta_admin: member(app, beta, "beta", "admin@beta.example", UserRole::Admin).await,
        beta_client: member(app, beta, "beta", "client@beta.example", UserRole::Client).await,
    }
}

both_engines! {
    /// An admin stores a webhook secret over the API: it is encrypted at rest, never
    /// shown or audited, and the webhook verifies signatures with it.
    async fn integration_secrets_are_write_only_and_used_by_the_webhook(t: TestDb) {
        let app = spawn_with_keys(t, Some(KEY_A), &[]).await;
        let w = world(&app).await;
        let (status, created) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token,
            Some(json!({"is_enabled": true, "config": {"account": "acct_1"}, "secret": SECRET}))).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!((created["has_secret"].as_bool(), created["secret_source"].as_str()), (Some(true), Some("encrypted")));
        assert_eq!(created["secret_hint"], "****4b7c");
        assert_eq!(created["secret_key_id"].as_str(), SecretKeys::from_keys(Some(KEY_A), &[]).current_key_id());
        assert_eq!(created["config"], json!({"account": "acct_1"}));
        assert_eq!(ping(&app, "acme", SECRET).await.0, 200, "the webhook opens the secret");
        assert_eq!(ping(&app, "acme", "whsec_wrong").await.0, 401);

        // Never returned, never in the audit log, never in the database in clear.
        let (_, one) = api(&app, "GET", "/admin/integrations/stripe", &w.admin.token, None).await;
        let (_, list) = api(&app, "GET", "/admin/integrations", &w.admin.token, None).await;
        let (_, log) = api(&app, "GET", "/admin/audit-log?action=integration.put", &w.admin.token, None).await;
        for shown in [&created, &one, &list, &log] {
            assert!(!shown.to_string().contains("5f2b8c1d"), "{shown}");
        }
        assert_eq!(log["items"][0]["details"]["secret"], "stored encrypted");
        let row = integration_setting::Entity::find().filter(integration_setting::Column::Integration.eq("stripe"))
            .filter(integration_setting::Column::OrganizationId.eq(w.acme.organization_id()))
            .one(app.t.conn()).await.unwrap().unwrap();
        assert!(!format!("{:?} {:?}", row.secret_ciphertext, row.config).contains("5f2b8c1d"));
        let rows = audit_log::Entity::find().all(app.t.conn()).await.unwrap();
        assert!(rows.iter().all(|r| !r.details.to_string().contains("5f2b8c1d")));

        // A change that leaves the secret out keeps it; null removes it.
        let (status, changed) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"config": {"account": "acct_2"}}))).await;
        assert_eq!((status, changed["has_secret"].as_bool(), changed["is_enabled"].as_bool()), (200, Some(true), Some(true)), "{changed}");
        assert_eq!(ping(&app, "acme", SECRET).await.0, 200);
        let (status, body) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token,
            Some(json!({"secret": "x", "secret_ref": "env:X"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["secret".to_owned()]), "one source");
        let (status, body) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"secret_ref": "whsec_in_the_ref"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["secret_ref".to_owned()]));
        let (status, body) = api(&app, "PUT", "/admin/integrations/Bad%20Key", &w.admin.token, Some(json!({}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["integration".to_owned()]));
        let (status, cleared) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"secret": null}))).await;
        assert_eq!((status, cleared["has_secret"].as_bool(), cleared["secret_source"].is_null()), (200, Some(false), true));
        assert_eq!(ping(&app, "acme", SECRET).await.0, 404, "no secret, no webhook");

        // A reference to the environment instead.
        let variable = format!("AGENDA_TEST_INTEGRATION_{}", uuid::Uuid::new_v4().simple().to_string().to_uppercase());
        // SAFETY: a variable of this test alone (see webhooks.rs).
        unsafe { std::env::set_var(&variable, "whsec_from_the_environment") };
        let (status, referenced) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token,
            Some(json!({"secret_ref": format!("env:{variable}")}))).await;
        assert_eq!((status, referenced["secret_source"].as_str(), referenced["secret_hint"].is_null()), (200, Some("env"), true), "{referenced}");
        assert_eq!(ping(&app, "acme", "whsec_from_the_environment").await.0, 200);
        let (status, _) = api(&app, "DELETE", "/admin/integrations/stripe", &w.admin.token, None).await;
        assert_eq!(status, 204);
        assert_eq!(api(&app, "GET", "/admin/integrations/stripe", &w.admin.token, None).await.0, 404);
        assert_eq!(ping(&app, "acme", "whsec_from_the_environment").await.0, 404);
        app.stop().await;
    }

    /// Admins only; another organization's integration is not found, and its secret,
    /// copied into this organization's row, does not open.
    async fn integrations_are_for_admins_of_their_organization(t: TestDb) {
        let app = spawn_with_keys(t, Some(KEY_A), &[]).await;
        let w = world(&app).await;
        api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"is_enabled": true, "secret": SECRET}))).await;
        for (who, token) in [("support", &w.support.token), ("provider", &w.provider.token), ("client", &w.client.token)] {
            for (method, path, body) in [
                ("GET", "/admin/integrations", None),
                ("GET", "/admin/integrations/stripe", None),
                ("PUT", "/admin/integrations/stripe", Some(json!({"is_enabled": false}))),
                ("DELETE", "/admin/integrations/stripe", None),
            ] {
                let (status, answer) = api(&app, method, path, token, body).await;
                assert_eq!((status, code(&answer)), (403, "forbidden"), "{who}: {method} {path}");
            }
        }
        let beta = &w.beta_admin.token;
        let (_, list) = api(&app, "GET", "/admin/integrations", beta, None).await;
        assert_eq!(list["items"], json!([]), "another organization's integrations");
        assert_eq!(api(&app, "GET", "/admin/integrations/stripe", beta, None).await.0, 404);
        assert_eq!(api(&app, "DELETE", "/admin/integrations/stripe", beta, None).await.0, 404);
        let (status, theirs) = api(&app, "PUT", "/admin/integrations/stripe", beta, Some(json!({"is_enabled": true}))).await;
        assert_eq!((status, theirs["has_secret"].as_bool()), (201, Some(false)), "their own, separate row");
        assert_eq!(ping(&app, "acme", SECRET).await.0, 200, "ours is untouched");
        // acme's ciphertext in beta's row: beta's webhook cannot open it.
        let ours = integration_setting::Entity::find()
            .filter(integration_setting::Column::OrganizationId.eq(w.acme.organization_id()))
            .one(app.t.conn()).await.unwrap().unwrap();
        let theirs = integration_setting::Entity::find_by_id(theirs["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap())
            .one(app.t.conn()).await.unwrap().unwrap();
        let mut copied = theirs.into_active_model();
        copied.secret_ciphertext = Set(ours.secret_ciphertext.clone());
        copied.secret_key_id = Set(ours.secret_key_id.clone());
        copied.update(app.t.conn()).await.unwrap();
        assert_eq!(ping(&app, "beta", SECRET).await.0, 404);
        app.stop().await;
    }

    /// Without SECRETS_KEY a secret is refused, never stored in clear; a reference
    /// still works.
    async fn without_a_key_secrets_are_refused(t: TestDb) {
        let app = spawn_with_keys(t, None, &[]).await;
        let w = world(&app).await;
        let (status, body) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"is_enabled": true, "secret": SECRET}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["secret".to_owned()]), "{body}");
        assert!(body["error"]["fields"][0]["message"].as_str().unwrap().contains("SECRETS_KEY"), "{body}");
        assert!(integration_setting::Entity::find().all(app.t.conn()).await.unwrap().is_empty(), "nothing written");
        let (status, _) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"secret_ref": "env:SOME_SECRET"}))).await;
        assert_eq!(status, 201);
        app.stop().await;
    }

    /// Rotation: a new SECRETS_KEY with the old one in SECRETS_PREVIOUS_KEYS still
    /// opens old secrets; writing one again seals it with the new key.
    async fn a_rotated_key_still_opens_old_secrets(t: TestDb) {
        let app = spawn_with_keys(t, Some(KEY_A), &[]).await;
        let w = world(&app).await;
        api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"is_enabled": true, "secret": SECRET}))).await;
        let t = app.stop().await;

        let app = spawn_with_keys(t, Some(KEY_B), &[KEY_A]).await;
        assert_eq!(ping(&app, "acme", SECRET).await.0, 200, "opened with the previous key");
        let (_, view) = api(&app, "PUT", "/admin/integrations/stripe", &w.admin.token, Some(json!({"secret": SECRET}))).await;
        assert_eq!(view["secret_key_id"].as_str(), SecretKeys::from_keys(Some(KEY_B), &[]).current_key_id());
        let t = app.stop().await;

        let app = spawn_with_keys(t, Some(KEY_B), &[]).await;
        assert_eq!(ping(&app, "acme", SECRET).await.0, 200, "re-sealed with the new key");
        let t = app.stop().await;
        let app = spawn_with_keys(t, Some(KEY_A), &[]).await;
        assert_eq!(ping(&app, "acme", SECRET).await.0, 404, "the new key is gone: no secret, no webhook");
        app.stop().await;
    }

    /// A client's payment methods: tokens only (a card number is refused), never
    /// returned; one default; their own only; staff read them; isolation.
    async fn clients_save_payment_methods_as_processor_tokens(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let path = "/clients/me/payment-methods";
        let visa = json!({"processor": "stripe", "processor_token": "pm_1NvQ2b2eZvKYlo2C", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030});
        let (status, first) = api(&app, "POST", path, &w.client.token, Some(visa.clone())).await;
        assert_eq!(status, 201, "{first}");
        assert_eq!((first["brand"].as_str(), first["last4"].as_str(), first["is_default"].as_bool()), (Some("visa"), Some("4242"), Some(true)));
        assert!(first.get("processor_token").is_none() && !first.to_string().contains("pm_1NvQ"), "{first}");
        let (status, body) = api(&app, "POST", path, &w.client.token, Some(visa.clone())).await;
        assert_eq!((status, fields(&body)), (409, vec!["processor_token".to_owned()]));
        for card in ["4242424242424242", "4242 4242 4242 4242"] {
            let mut pan = visa.clone();
            pan["processor_token"] = json!(card);
            let (status, body) = api(&app, "POST", path, &w.client.token, Some(pan)).await;
            assert_eq!((status, fields(&body)), (422, vec!["processor_token".to_owned()]), "{card}");
            assert_eq!(body["error"]["fields"][0]["code"], "card_number");
        }
        let (status, body) = api(&app, "POST", path, &w.client.token, Some(json!({"processor": "stripe", "processor_token": "pm_2", "last4": "42"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["last4".to_owned()]));
        let (status, second) = api(&app, "POST", path, &w.client.token,
            Some(json!({"processor": "stripe", "processor_token": "pm_2", "brand": "mastercard", "last4": "4444", "is_default": true}))).await;
        assert_eq!((status, second["is_default"].as_bool()), (201, Some(true)));
        let (_, list) = api(&app, "GET", path, &w.client.token, None).await;
        let listed: Vec<(&str, bool)> = list["items"].as_array().unwrap().iter().map(|m| (m["last4"].as_str().unwrap(), m["is_default"].as_bool().unwrap())).collect();
        assert_eq!(listed, [("4444", true), ("4242", false)], "one default, first");
        assert!(!list.to_string().contains("pm_"), "{list}");
        let stored = user_payment_method::Entity::find().filter(user_payment_method::Column::ProcessorToken.eq("pm_2")).one(app.t.conn()).await.unwrap();
        assert!(stored.is_some(), "the token is kept for the processor");

        // The payment preferences may name one of them as the default method.
        let first_id = first["id"].as_str().unwrap();
        let (status, prefs) = api(&app, "PUT", "/clients/me/payment-preferences", &w.client.token, Some(json!({"default_payment_method_id": first_id}))).await;
        assert_eq!(status, 201, "{prefs}");

        // Changes and deletion: their own only.
        let (status, changed) = api(&app, "PATCH", &format!("{path}/{first_id}"), &w.client.token, Some(json!({"is_default": true, "exp_year": 2031}))).await;
        assert_eq!((status, changed["is_default"].as_bool(), changed["exp_year"].as_i64()), (200, Some(true), Some(2031)));
        for (method, body) in [("PATCH", Some(json!({"brand": "x"}))), ("DELETE", None)] {
            let (status, answer) = api(&app, method, &format!("{path}/{first_id}"), &w.other_client.token, body.clone()).await;
            assert_eq!((status, code(&answer)), (404, "not_found"), "another client: {method}");
            let (status, _) = api(&app, method, &format!("{path}/{first_id}"), &w.beta_client.token, body).await;
            assert_eq!(status, 404, "another organization: {method}");
        }
        assert_eq!(api(&app, "GET", path, &w.other_client.token, None).await.1["items"], json!([]));
        for (who, token) in [("provider", &w.provider.token), ("admin", &w.admin.token), ("support", &w.support.token)] {
            assert_eq!(api(&app, "GET", path, token, None).await.0, 403, "{who}");
            assert_eq!(api(&app, "POST", path, token, Some(visa.clone())).await.0, 403, "{who}");
        }

        // Staff read a client's methods; not a provider's, not another organization's.
        let client_path = format!("/clients/{}/payment-methods", w.client.id);
        for token in [&w.admin.token, &w.support.token] {
            let (status, list) = api(&app, "GET", &client_path, token, None).await;
            assert_eq!((status, list["items"].as_array().map(Vec::len)), (200, Some(2)));
            assert!(!list.to_string().contains("pm_"));
        }
        assert_eq!(api(&app, "GET", &client_path, &w.client.token, None).await.0, 403);
        assert_eq!(api(&app, "GET", &client_path, &w.beta_admin.token, None).await.0, 404);
        assert_eq!(api(&app, "GET", &format!("/clients/{}/payment-methods", w.provider.id), &w.admin.token, None).await.0, 404);

        let (status, _) = api(&app, "DELETE", &format!("{path}/{first_id}"), &w.client.token, None).await;
        assert_eq!(status, 204);
        let (_, prefs) = api(&app, "GET", "/clients/me/payment-preferences", &w.client.token, None).await;
        assert!(prefs["default_payment_method_id"].is_null(), "the preference lost its method: {prefs}");
        app.stop().await;
    }
}
