//! The platform operator's `agenda org …` commands (the real binary, as the
//! application role on PostgreSQL) and what suspension does to a running server:
//! sign-in, sessions, public account routes and webhooks refused with `403
//! organization_suspended`, the data untouched, and everything back on activation.

use std::collections::BTreeMap;

use agenda_entity::enums::{MessageKind, OrganizationStatus, UserRole};
use agenda_entity::{organization, outbox_message, user_session};
use agenda_storage::TenantScope;
use agenda_testkit::both_engines;
use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use serde_json::{Value, json};

use crate::mail::{BASE, token_in};
use crate::support::{PASSWORD, TestApp, api, code, member, request};
use crate::webhooks::{deliver, signature};

/// Runs `agenda args…` against the test database as the server's role (the
/// application role on PostgreSQL), with `stdin` as standard input; returns the
/// exit code, stdout and stderr.
async fn agenda(app: &TestApp, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write as _;
    let url = app.t.app_role_settings().await.url.expose().to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
            .current_dir(std::env::temp_dir())
            .env_clear()
            .env("DATABASE_URL", &url)
            .env("PUBLIC_BASE_URL", BASE)
            .env("AUTO_MIGRATE", "false")
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

async fn get(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    api(app, "GET", path, token, None).await
}

async fn login(app: &TestApp, org: &str, email: &str) -> (u16, Value) {
    crate::support::login(app, org, email, PASSWORD).await
}

/// Rows of every tenant table that belong to `scope` (as the superuser).
async fn rows_of(app: &TestApp, scope: TenantScope) -> BTreeMap<&'static str, i64> {
    let conn = app.t.conn();
    let mut counts = BTreeMap::new();
    for table in migration::tenant_tables() {
        let backend = conn.get_database_backend();
        let placeholder = if backend == sea_orm::DbBackend::Postgres {
            "$1"
        } else {
            "?"
        };
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                format!("SELECT count(*) AS n FROM {table} WHERE organization_id = {placeholder}"),
                [scope.organization_id().into()],
            ))
            .await
            .unwrap()
            .unwrap();
        counts.insert(table, row.try_get::<i64>("", "n").unwrap());
    }
    counts
}

fn ping() -> Value {
    json!({"id": format!("evt_{}", uuid::Uuid::now_v7()), "type": "ping"})
}

async fn signed(app: &TestApp, slug: &str, secret: &str) -> (u16, Value) {
    let event = ping();
    let sig = signature(
        secret,
        Utc::now().timestamp(),
        &serde_json::to_vec(&event).unwrap(),
    );
    deliver(app, slug, "stripe", &event, Some(sig)).await
}

both_engines! {
    /// `agenda org create` with and without a password, `list`, and its refusals.
    async fn operators_create_and_list_organizations(t: TestDb) {
        let app = crate::mail::spawn(t, None).await;
        let (code_, out, err) = agenda(&app, &["org", "create", "--slug", "acme", "--name", "Acme Clinic",
            "--time-zone", "America/Sao_Paulo", "--currency", "BRL", "--admin-email", "maria@acme.example",
            "--admin-name", "Maria Silva", "--admin-password-stdin"], Some(&format!("{PASSWORD}\n"))).await;
        assert_eq!(code_, 0, "{out}{err}");
        assert!(out.contains("created organization \"acme\"") && out.contains("a link to verify the address"), "{out}");
        // The admin signs in with the password given on stdin (its newline dropped).
        let (status, signed_in) = login(&app, "acme", "maria@acme.example").await;
        assert_eq!((status, signed_in["user"]["role"].as_str()), (200, Some("admin")), "{signed_in}");
        let admin = signed_in["token"].as_str().unwrap().to_owned();

        // Without a password: an invitation, which `agenda mail list` shows.
        let (code_, out, err) = agenda(&app, &["org", "create", "--slug", "clinica", "--name", "Clínica",
            "--time-zone", "America/Sao_Paulo", "--currency", "BRL", "--locale", "pt-BR",
            "--admin-email", "bia@clinica.example", "--json"], None).await;
        assert_eq!(code_, 0, "{out}{err}");
        let created: Value = serde_json::from_str(&out).unwrap();
        assert_eq!((created["admin_invited"].as_bool(), created["organization"]["locale"].as_str()), (Some(true), Some("pt-BR")));
        let invitation = outbox_message::Entity::find()
            .filter(outbox_message::Column::ToAddress.eq("bia@clinica.example"))
            .one(app.t.conn())
            .await
            .unwrap()
            .expect("an invitation in the outbox");
        assert_eq!(invitation.kind, MessageKind::Invitation);
        assert!(invitation.body_text.contains("administrador"), "in the organization's language: {}", invitation.body_text);
        let link = token_in(&invitation.body_text, "/accept-invitation");
        let (status, accepted) = app.post("/api/v1/auth/invitations/accept", &json!({"token": link, "password": PASSWORD})).await;
        assert_eq!((status, accepted["user"]["full_name"].as_str()), (200, Some("bia")), "{accepted}");

        // Refusals: a taken slug (1), bad flags (2, before connecting), nothing written.
        let (code_, _, err) = agenda(&app, &["org", "create", "--slug", "acme", "--name", "X", "--time-zone", "UTC",
            "--currency", "BRL", "--admin-email", "x@x.example"], None).await;
        assert_eq!(code_, 1, "{err}");
        assert!(err.contains("an organization with the slug \"acme\" exists already"), "{err}");
        let (code_, _, err) = agenda(&app, &["org", "create", "--slug", "Bad Slug", "--name", "X", "--time-zone", "Mars/Base",
            "--currency", "brl", "--admin-email", "nope"], None).await;
        assert_eq!(code_, 2, "{err}");
        for flag in ["--slug", "--time-zone", "--currency", "--admin-email"] {
            assert!(err.contains(flag), "{flag}: {err}");
        }
        let (code_, _, err) = agenda(&app, &["org", "create", "--slug", "short-pw", "--name", "X", "--time-zone", "UTC",
            "--currency", "BRL", "--admin-email", "x@x.example", "--admin-password-stdin"], Some("short")).await;
        assert_eq!(code_, 2, "{err}");
        assert!(err.contains("the password on standard input") && !err.contains("short:"), "{err}");
        let slugs: Vec<String> = organization::Entity::find().all(app.t.conn()).await.unwrap().into_iter().map(|o| o.slug).collect();
        assert_eq!(slugs.len(), 2, "{slugs:?}");

        let (code_, out, _) = agenda(&app, &["org", "list"], None).await;
        assert_eq!(code_, 0);
        assert!(out.contains("SLUG") && out.contains("acme") && out.contains("clinica") && out.contains("2 organization(s)"), "{out}");
        let (_, out, _) = agenda(&app, &["org", "list", "--status", "suspended", "--json"], None).await;
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));

        // The creation is in the organization's own audit log, by the operator.
        let (_, log) = get(&app, "/admin/audit-log?action=organization.create", &admin).await;
        let entry = &log["items"][0];
        assert_eq!((entry["actor_id"].is_null(), entry["details"]["via"].as_str()), (true, Some("operator")), "{log}");
        app.stop().await;
    }

    /// A suspended organization: sign-in, its sessions, its public account routes and
    /// its webhooks are refused with 403 `organization_suspended`; another
    /// organization is untouched; no row changes; activation restores everything,
    /// old sessions included. Both changes are audited.
    async fn suspension_refuses_everything_and_activation_restores_it(t: TestDb) {
        let app = crate::mail::spawn(t, None).await;
        let (status, body) = app.post("/api/v1/organizations", &json!({
            "organization": {"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"},
            "admin": {"email": "maria@acme.example", "full_name": "Maria", "password": PASSWORD}})).await;
        assert_eq!(status, 201, "{body}");
        let acme = crate::support::scope_of(&body);
        let admin = body["session"]["token"].as_str().unwrap().to_owned();
        let provider = member(&app, acme, "acme", "provider@acme.example", UserRole::Provider).await;
        let beta = crate::support::organization(&app, "beta").await;
        let stranger = member(&app, beta, "beta", "client@beta.example", UserRole::Client).await;
        // A pending invitation, and a webhook with its secret in the environment.
        let (status, _) = request(&app, "POST", "/api/v1/users", Some(&admin), Some(json!({"email": "new@acme.example", "full_name": "New", "role": "support"})), None).await;
        assert_eq!(status, 201);
        let invitation = outbox_message::Entity::find()
            .filter(outbox_message::Column::ToAddress.eq("new@acme.example"))
            .one(app.t.conn()).await.unwrap().unwrap();
        let link = token_in(&invitation.body_text, "/accept-invitation");
        let variable = format!("AGENDA_TEST_SUSPEND_{}", uuid::Uuid::new_v4().simple().to_string().to_uppercase());
        // SAFETY: a variable of this test alone (see webhooks.rs).
        unsafe { std::env::set_var(&variable, "whsec-acme-suspension") };
        let (status, body) = request(&app, "PUT", "/api/v1/admin/integrations/stripe", Some(&admin),
            Some(json!({"is_enabled": true, "secret_ref": format!("env:{variable}")})), None).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(signed(&app, "acme", "whsec-acme-suspension").await.0, 200, "the webhook works");
        let before = rows_of(&app, acme).await;
        assert_eq!((before["users"], before["user_sessions"], before["integrations_settings"]), (3, 2, 1), "{before:?}");
        let live = |scope: TenantScope| user_session::Entity::find()
            .filter(user_session::Column::OrganizationId.eq(scope.organization_id()))
            .filter(user_session::Column::RevokedAt.is_null());

        let (code_, out, err) = agenda(&app, &["org", "suspend", "acme", "--reason", "unpaid invoices"], None).await;
        assert_eq!(code_, 0, "{out}{err}");
        assert!(out.contains("suspended organization \"acme\""), "{out}");
        let (code_, out, _) = agenda(&app, &["org", "suspend", "acme"], None).await;
        assert_eq!((code_, out.contains("already")), (0, true), "{out}");

        let suspended = |status: u16, body: &Value, what: &str| {
            assert_eq!((status, code(body)), (403, "organization_suspended"), "{what}: {body}");
        };
        let (status, body) = login(&app, "acme", "maria@acme.example").await;
        suspended(status, &body, "sign-in");
        let (status, body) = login(&app, "acme", "maria@acme.example").await;
        suspended(status, &body, "sign-in, not counted as a failure");
        for token in [&admin, &provider.token] {
            let (status, body) = get(&app, "/auth/me", token).await;
            suspended(status, &body, "an existing session");
        }
        let (status, body) = request(&app, "POST", "/api/v1/users", Some(&admin), Some(json!({"email": "x@acme.example", "full_name": "X", "role": "client"})), None).await;
        suspended(status, &body, "a write");
        let (status, body) = app.post("/api/v1/auth/register", &json!({"organization": "acme", "email": "c@acme.example", "password": PASSWORD, "full_name": "C", "role": "client"})).await;
        suspended(status, &body, "registration");
        let (status, body) = app.post("/api/v1/auth/password-reset", &json!({"organization": "acme", "email": "maria@acme.example"})).await;
        suspended(status, &body, "a password reset");
        let (status, body) = app.post("/api/v1/auth/invitations/accept", &json!({"token": link, "password": PASSWORD})).await;
        suspended(status, &body, "an invitation");
        let (status, body) = signed(&app, "acme", "whsec-acme-suspension").await;
        suspended(status, &body, "a webhook");
        // Another organization goes on as before.
        assert_eq!(get(&app, "/auth/me", &stranger.token).await.0, 200);
        assert_eq!(login(&app, "beta", "client@beta.example").await.0, 200);
        // No row of the suspended organization changed (the audit log has the
        // suspension), no session was revoked.
        let mut expected = before.clone();
        *expected.get_mut("audit_log").unwrap() += 1;
        assert_eq!(rows_of(&app, acme).await, expected);
        assert_eq!(live(acme).all(app.t.conn()).await.unwrap().len(), 2);
        let status_now = organization::Entity::find_by_id(acme.organization_id()).one(app.t.conn()).await.unwrap().unwrap().status;
        assert_eq!(status_now, OrganizationStatus::Suspended);
        let (_, out, _) = agenda(&app, &["org", "list", "--status", "suspended"], None).await;
        assert!(out.contains("acme") && !out.contains("beta"), "{out}");

        let (code_, out, err) = agenda(&app, &["org", "activate", "acme", "--reason", "paid"], None).await;
        assert_eq!(code_, 0, "{out}{err}");
        // Everything is back: the old sessions, sign-in, the invitation, the webhook.
        assert_eq!(get(&app, "/auth/me", &admin).await.0, 200);
        assert_eq!(get(&app, "/auth/me", &provider.token).await.0, 200);
        assert_eq!(login(&app, "acme", "maria@acme.example").await.0, 200);
        let (status, body) = app.post("/api/v1/auth/invitations/accept", &json!({"token": link, "password": PASSWORD})).await;
        assert_eq!(status, 200, "the invitation was not used up while suspended: {body}");
        assert_eq!(signed(&app, "acme", "whsec-acme-suspension").await.0, 200);

        // Both changes are in the organization's audit log, by the operator.
        let (_, log) = get(&app, "/admin/audit-log?entity_type=organization", &admin).await;
        let entries: Vec<(&str, &str)> = log["items"].as_array().unwrap().iter()
            .filter(|e| e["actor_id"].is_null() && e["details"]["by"] == "operator")
            .map(|e| (e["action"].as_str().unwrap(), e["details"]["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(entries, [("organization.activate", "paid"), ("organization.suspend", "unpaid invoices")]);
        let (code_, _, err) = agenda(&app, &["org", "suspend", "nope"], None).await;
        assert_eq!((code_, err.contains("no organization \"nope\"")), (1, true), "{err}");
        app.stop().await;
    }
}

both_engines! {
    /// The suspension check rides on the session lookup, which already returns the
    /// organization: an authenticated request runs one statement to authenticate
    /// (on PostgreSQL `agenda_authenticate`, which also enters the tenant; on SQLite
    /// the join) and nothing else, and a refused one no more.
    async fn the_suspension_check_costs_no_query(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let scope = crate::support::organization(&app, "acme").await;
        let admin = member(&app, scope, "acme", "admin@acme.example", UserRole::Admin).await;
        let per_lookup = 1;
        let before = app.db.statements_executed();
        let (status, _) = get(&app, "/auth/me", &admin.token).await;
        let active = app.db.statements_executed() - before;
        assert_eq!((status, active), (200, per_lookup), "the session lookup, nothing else");
        let (code_, _, err) = agenda(&app, &["org", "suspend", "acme"], None).await;
        assert_eq!(code_, 0, "{err}");
        let before = app.db.statements_executed();
        let (status, _) = get(&app, "/auth/me", &admin.token).await;
        let refused = app.db.statements_executed() - before;
        assert_eq!((status, refused), (403, per_lookup));
        app.stop().await;
    }
}
