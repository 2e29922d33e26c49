//! Running an organization without SQL, through the running server: sign-up (the
//! organization and its first admin), invitations completed from the e-mail alone
//! (a real SMTP server), staff accounts (roles, deactivation, reactivation), the last
//! active admin under concurrency, and the audit log of every change.

use agenda_entity::enums::{MessageKind, TokenPurpose, UserRole};
use agenda_entity::{password_reset_token, user};
use agenda_testkit::both_engines;
use agenda_testkit::smtp::{Received, SmtpServer};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::mail::{PATIENCE, spawn, token_in, wait_for_rows};
use crate::support::{Member, PASSWORD, TestApp, api, code, fields, login, member};

/// `POST /organizations` for `slug` with a first admin `email` (and a password, or an
/// invitation without one).
async fn sign_up(app: &TestApp, slug: &str, email: &str, password: Option<&str>) -> (u16, Value) {
    let mut admin = json!({"email": email, "full_name": "Maria Silva"});
    if let Some(password) = password {
        admin["password"] = json!(password);
    }
    app.post(
        "/api/v1/organizations",
        &json!({"organization": {"slug": slug, "name": format!("{slug} clinic"), "time_zone": "America/Sao_Paulo", "currency": "BRL"},
                "admin": admin}),
    )
    .await
}

/// The actions of the organization's audit log, newest first, as an admin sees them.
async fn audit_actions(app: &TestApp, admin: &str) -> Vec<(String, Value)> {
    let (status, log) = api(app, "GET", "/admin/audit-log?limit=100", admin, None).await;
    assert_eq!(status, 200, "{log}");
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e.clone()))
        .collect()
}

/// The one message to `to` whose subject contains `subject`.
fn the_mail<'a>(received: &'a [Received], to: &str, subject: &str) -> &'a Received {
    let found: Vec<_> = received
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == to) && m.subject.contains(subject))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one {subject:?} to {to}: {:?}",
        received
            .iter()
            .map(|m| (&m.rcpt_to, &m.subject))
            .collect::<Vec<_>>()
    );
    found[0]
}

both_engines! {
    /// Sign-up with a password: one transaction makes the organization and its admin,
    /// answers a working session, e-mails a verification link, and audits it.
    async fn sign_up_creates_the_organization_and_its_admin_and_signs_in(t: TestDb) {
        let app = spawn(t, None).await;
        let (status, body) = sign_up(&app, "acme", "Maria@Acme.example", Some(PASSWORD)).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!((body["organization"]["slug"].as_str(), body["organization"]["status"].as_str()), (Some("acme"), Some("active")));
        assert_eq!((body["admin"]["email"].as_str(), body["admin"]["role"].as_str()), (Some("maria@acme.example"), Some("admin")));
        assert_eq!(body["admin"]["invitation_pending"], false);
        let token = body["session"]["token"].as_str().expect("a session").to_owned();
        assert_eq!(body["session"]["token_type"], "Bearer");
        assert!(!body.to_string().contains(PASSWORD));

        // The session is the admin's, in the new organization.
        let (status, me) = api(&app, "GET", "/auth/me", &token, None).await;
        assert_eq!((status, me["role"].as_str()), (200, Some("admin")), "{me}");
        let org_id = body["organization"]["id"].as_str().unwrap();
        let (status, _) = api(&app, "GET", &format!("/organizations/{org_id}"), &token, None).await;
        assert_eq!(status, 200);
        let (status, users) = api(&app, "GET", "/users", &token, None).await;
        assert_eq!((status, users["items"].as_array().unwrap().len()), (200, 1));
        // Signing in with the password works too.
        assert_eq!(login(&app, "acme", "maria@acme.example", PASSWORD).await.0, 200);

        // A verification e-mail to the admin, written in the sign-up's transaction.
        let rows = wait_for_rows(&app.t, "the verification", |rows| rows.len() == 1).await;
        assert_eq!((rows[0].kind, rows[0].to_address.as_str()), (MessageKind::EmailVerification, "maria@acme.example"));

        // The admin runs the organization: its profile, with an audit entry.
        let (status, changed) = api(&app, "PATCH", &format!("/organizations/{org_id}"), &token,
            Some(json!({"name": "Acme Clinic & Spa", "locale": "pt-BR"}))).await;
        assert_eq!((status, changed["name"].as_str(), changed["locale"].as_str()), (200, Some("Acme Clinic & Spa"), Some("pt-BR")), "{changed}");
        let (status, body) = api(&app, "PATCH", &format!("/organizations/{org_id}"), &token, Some(json!({"status": "suspended"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["status".to_owned()]), "the status is the operator's");
        let log = audit_actions(&app, &token).await;
        let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["organization.update", "organization.create"]);
        let created = &log[1].1;
        assert_eq!(created["actor_id"], me["id"]);
        assert_eq!((created["details"]["via"].as_str(), created["details"]["admin_invited"].as_bool()), (Some("sign_up"), Some(false)));

        // Another sign-up of the slug is 409 and leaves nothing behind.
        let (status, body) = sign_up(&app, "acme", "other@acme.example", Some(PASSWORD)).await;
        assert_eq!((status, fields(&body)), (409, vec!["organization.slug".to_owned()]), "{body}");
        let admins = user::Entity::find().filter(user::Column::Email.eq("other@acme.example")).all(app.t.conn()).await.unwrap();
        assert!(admins.is_empty());
        app.stop().await;
    }

    /// Sign-up without a password: no session, an invitation e-mail; the admin sets
    /// the password with nothing but what the e-mail contains, and is signed in.
    async fn a_first_admin_without_a_password_accepts_the_invitation_from_the_email(t: TestDb) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = spawn(t, Some(&smtp)).await;
        let (status, body) = sign_up(&app, "clinica", "maria@clinica.example", None).await;
        assert_eq!(status, 201, "{body}");
        assert!(body["session"].is_null(), "{body}");
        assert_eq!(body["admin"]["invitation_pending"], true);
        // Nobody signs in as the admin before the invitation is accepted.
        let (status, answer) = login(&app, "clinica", "maria@clinica.example", "anything at all").await;
        assert_eq!((status, code(&answer)), (401, "invalid_credentials"));

        let received = smtp.wait_for(1, PATIENCE).await;
        let invitation = the_mail(&received, "maria@clinica.example", "invited");
        assert!(invitation.text.contains("as an administrator"), "{}", invitation.text);
        let link = token_in(&invitation.text, "/accept-invitation");
        let (status, signed_in) = app.post("/api/v1/auth/invitations/accept", &json!({"token": link, "password": PASSWORD})).await;
        assert_eq!(status, 200, "{signed_in}");
        assert_eq!((signed_in["user"]["role"].as_str(), signed_in["user"]["is_verified"].as_bool()), (Some("admin"), Some(true)));
        assert_eq!(signed_in["user"]["invitation_pending"], false);
        let token = signed_in["token"].as_str().unwrap();
        assert_eq!(api(&app, "GET", "/auth/me", token, None).await.0, 200);
        assert_eq!(login(&app, "clinica", "maria@clinica.example", PASSWORD).await.0, 200);
        // Single use.
        let (status, again) = app.post("/api/v1/auth/invitations/accept", &json!({"token": link, "password": PASSWORD})).await;
        assert_eq!((status, fields(&again)), (422, vec!["token".to_owned()]));
        let log = audit_actions(&app, token).await;
        let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["user.invitation_accept", "organization.create"]);
        app.stop().await;
    }

    /// An admin invites staff of any role; the invited person completes the invitation
    /// using only the e-mail; a new invitation replaces the old one; nobody else may
    /// invite.
    async fn admins_invite_staff_who_join_from_the_email_alone(t: TestDb) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = spawn(t, Some(&smtp)).await;
        let (_, body) = sign_up(&app, "acme", "maria@acme.example", Some(PASSWORD)).await;
        let admin = body["session"]["token"].as_str().unwrap().to_owned();
        let scope = crate::support::scope_of(&body);
        let support = member(&app, scope, "acme", "support@acme.example", UserRole::Support).await;
        let client = member(&app, scope, "acme", "client@acme.example", UserRole::Client).await;

        let invite = json!({"email": "joao@acme.example", "full_name": "João Lima", "role": "provider"});
        for (who, token) in [("support", &support.token), ("client", &client.token)] {
            let (status, body) = api(&app, "POST", "/users", token, Some(invite.clone())).await;
            assert_eq!((status, code(&body)), (403, "forbidden"), "{who}");
        }
        let (status, joao) = api(&app, "POST", "/users", &admin, Some(invite.clone())).await;
        assert_eq!(status, 201, "{joao}");
        assert_eq!((joao["role"].as_str(), joao["invitation_pending"].as_bool(), joao["is_verified"].as_bool()), (Some("provider"), Some(true), Some(false)));
        let (status, body) = api(&app, "POST", "/users", &admin, Some(invite.clone())).await;
        assert_eq!((status, fields(&body)), (409, vec!["email".to_owned()]));
        let (status, body) = api(&app, "POST", "/users", &admin, Some(json!({"email": "x", "full_name": "", "role": "owner"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["role".to_owned()]), "{body}");
        let (status, body) = api(&app, "POST", "/users", &admin, Some(json!({"email": "x", "full_name": " ", "role": "admin"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["email".to_owned(), "full_name".to_owned()]), "{body}");

        // The e-mail: who invited, as what, and the link.
        let received = smtp.wait_for(2, PATIENCE).await; // the admin's verification, the invitation
        let first = the_mail(&received, "joao@acme.example", "invited");
        assert!(first.text.contains("Maria Silva invited you") && first.text.contains("as a provider"), "{}", first.text);
        let first_link = token_in(&first.text, "/accept-invitation");

        // A new invitation: the first link stops working.
        let joao_id = joao["id"].as_str().unwrap();
        let (status, _) = api(&app, "POST", &format!("/users/{joao_id}/invitation"), &admin, None).await;
        assert_eq!(status, 202);
        assert_eq!(api(&app, "POST", &format!("/users/{joao_id}/invitation"), &support.token, None).await.0, 403);
        let received = smtp.wait_for(3, PATIENCE).await;
        let second = received.iter().filter(|m| m.rcpt_to == ["joao@acme.example"]).nth(1).expect("a second invitation");
        let second_link = token_in(&second.text, "/accept-invitation");
        assert_ne!(first_link, second_link);
        let (status, body) = app.post("/api/v1/auth/invitations/accept", &json!({"token": first_link, "password": PASSWORD})).await;
        assert_eq!((status, fields(&body)), (422, vec!["token".to_owned()]), "replaced by the second");
        let (status, body) = app.post("/api/v1/auth/invitations/accept", &json!({"token": second_link, "password": "short"})).await;
        assert_eq!((status, fields(&body)), (422, vec!["password".to_owned()]));
        let (status, signed_in) = app.post("/api/v1/auth/invitations/accept", &json!({"token": second_link, "password": PASSWORD})).await;
        assert_eq!(status, 200, "{signed_in}");
        assert_eq!((signed_in["user"]["id"].as_str(), signed_in["user"]["role"].as_str()), (Some(joao_id), Some("provider")));
        let provider = signed_in["token"].as_str().unwrap();
        assert_eq!(api(&app, "GET", "/providers/me/settings", provider, None).await.0, 404, "a provider's route, not set up yet");
        let (status, body) = api(&app, "POST", &format!("/users/{joao_id}/invitation"), &admin, None).await;
        assert_eq!((status, code(&body)), (409, "invitation_accepted"));

        // An expired invitation is refused like a used one.
        let (_, ana) = api(&app, "POST", "/users", &admin, Some(json!({"email": "ana@acme.example", "full_name": "Ana", "role": "support"}))).await;
        let received = smtp.wait_for(4, PATIENCE).await;
        let ana_link = token_in(&the_mail(&received, "ana@acme.example", "invited").text, "/accept-invitation");
        let ana_id: uuid::Uuid = ana["id"].as_str().unwrap().parse().unwrap();
        password_reset_token::Entity::update_many()
            .col_expr(password_reset_token::Column::CreatedAt, sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::hours(200)))
            .col_expr(password_reset_token::Column::ExpiresAt, sea_orm::sea_query::Expr::value(chrono::Utc::now() - chrono::Duration::minutes(1)))
            .filter(password_reset_token::Column::UserId.eq(ana_id))
            .filter(password_reset_token::Column::Purpose.eq(TokenPurpose::Invitation))
            .exec(app.t.conn())
            .await
            .unwrap();
        let (status, _) = app.post("/api/v1/auth/invitations/accept", &json!({"token": ana_link, "password": PASSWORD})).await;
        assert_eq!(status, 422, "expired");

        let log = audit_actions(&app, &admin).await;
        let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["user.invite", "user.invitation_accept", "user.invitation_resend", "user.invite", "organization.create"]);
        assert!(log.iter().all(|(_, e)| !e.to_string().contains(&first_link) && !e.to_string().contains(&second_link)));
        app.stop().await;
    }

    /// Roles, deactivation (which revokes every session) and reactivation, by admins
    /// only, within the organization only, each in the audit log; the last active
    /// admin can be neither demoted nor deactivated.
    async fn admins_change_roles_deactivate_and_reactivate(t: TestDb) {
        let app = spawn(t, None).await;
        let (_, body) = sign_up(&app, "acme", "maria@acme.example", Some(PASSWORD)).await;
        let admin = body["session"]["token"].as_str().unwrap().to_owned();
        let admin_id = body["admin"]["id"].as_str().unwrap().to_owned();
        let scope = crate::support::scope_of(&body);
        let provider = member(&app, scope, "acme", "provider@acme.example", UserRole::Provider).await;
        let support = member(&app, scope, "acme", "support@acme.example", UserRole::Support).await;
        let beta = crate::support::organization(&app, "beta").await;
        let stranger = member(&app, beta, "beta", "stranger@beta.example", UserRole::Client).await;
        let p = provider.id;

        // Only admins; another organization's user is not found.
        for path in [format!("/users/{p}/role"), format!("/users/{p}/deactivate"), format!("/users/{p}/reactivate")] {
            let body = path.ends_with("/role").then(|| json!({"role": "support"}));
            let (status, _) = api(&app, "POST", &path, &support.token, body.clone()).await;
            assert_eq!(status, 403, "support: {path}");
            let foreign = path.replace(&p.to_string(), &stranger.id.to_string());
            let (status, answer) = api(&app, "POST", &foreign, &admin, body).await;
            assert_eq!((status, code(&answer)), (404, "not_found"), "{foreign}");
        }
        assert_eq!(api(&app, "POST", &format!("/users/{}/invitation", stranger.id), &admin, None).await.0, 404);

        // A role change.
        let (status, changed) = api(&app, "POST", &format!("/users/{p}/role"), &admin, Some(json!({"role": "support"}))).await;
        assert_eq!((status, changed["role"].as_str()), (200, Some("support")), "{changed}");
        let (status, body) = api(&app, "POST", &format!("/users/{p}/role"), &admin, Some(json!({"role": "root"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["role".to_owned()]));

        // Deactivation revokes the sessions: the old token and signing in are 401.
        assert_eq!(api(&app, "GET", "/auth/me", &provider.token, None).await.0, 200);
        let (status, off) = api(&app, "POST", &format!("/users/{p}/deactivate"), &admin, None).await;
        assert_eq!((status, off["is_active"].as_bool()), (200, Some(false)), "{off}");
        assert_eq!(api(&app, "GET", "/auth/me", &provider.token, None).await.0, 401);
        let (status, body) = login(&app, "acme", "provider@acme.example", PASSWORD).await;
        assert_eq!((status, code(&body)), (401, "invalid_credentials"));
        // Reactivation: signing in works again (old sessions stay revoked).
        let (status, on) = api(&app, "POST", &format!("/users/{p}/reactivate"), &admin, None).await;
        assert_eq!((status, on["is_active"].as_bool()), (200, Some(true)));
        assert_eq!(api(&app, "GET", "/auth/me", &provider.token, None).await.0, 401);
        assert_eq!(login(&app, "acme", "provider@acme.example", PASSWORD).await.0, 200);

        // The last active admin: neither demoted nor deactivated, not even by themself.
        let (status, body) = api(&app, "POST", &format!("/users/{admin_id}/role"), &admin, Some(json!({"role": "client"}))).await;
        assert_eq!((status, code(&body)), (409, "last_admin"), "{body}");
        let (status, body) = api(&app, "POST", &format!("/users/{admin_id}/deactivate"), &admin, None).await;
        assert_eq!((status, code(&body)), (409, "last_admin"));
        // With a second admin, the first may step down.
        api(&app, "POST", &format!("/users/{p}/role"), &admin, Some(json!({"role": "admin"}))).await;
        let (status, body) = api(&app, "POST", &format!("/users/{admin_id}/role"), &admin, Some(json!({"role": "support"}))).await;
        assert_eq!((status, body["role"].as_str()), (200, Some("support")), "{body}");
        assert_eq!(api(&app, "GET", "/users", &admin, None).await.0, 200, "support still lists users");
        assert_eq!(api(&app, "POST", "/users", &admin, Some(json!({"email": "z@acme.example", "full_name": "Z", "role": "client"}))).await.0, 403, "no longer an admin");

        let (_, again) = login(&app, "acme", "provider@acme.example", PASSWORD).await;
        let new_admin = again["token"].as_str().unwrap();
        let log = audit_actions(&app, new_admin).await;
        let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions, ["user.role_change", "user.role_change", "user.reactivate", "user.deactivate", "user.role_change", "organization.create"]);
        assert_eq!((log[0].1["details"]["from"].as_str(), log[0].1["details"]["to"].as_str()), (Some("admin"), Some("support")));
        assert_eq!(log[3].1["details"]["sessions_revoked"], 1);
        assert!(log[..5].iter().all(|(_, e)| e["actor_id"].as_str() == Some(admin_id.as_str())));
        app.stop().await;
    }

    /// Two admins demote (or deactivate) each other at the same moment, many times:
    /// every time one change wins and the other is refused, and the organization
    /// keeps exactly one active admin.
    async fn two_admins_removing_each_other_at_once_leave_one_admin(t: TestDb) {
        let app = spawn(t, None).await;
        let (_, body) = sign_up(&app, "acme", "a@acme.example", Some(PASSWORD)).await;
        let scope = crate::support::scope_of(&body);
        let a = Member {
            id: body["admin"]["id"].as_str().unwrap().parse().unwrap(),
            token: body["session"]["token"].as_str().unwrap().to_owned(),
        };
        let b = member(&app, scope, "acme", "b@acme.example", UserRole::Admin).await;
        let emails = ["a@acme.example", "b@acme.example"];
        let mut admins = [a, b];
        for round in 0..12 {
            let action = if round % 2 == 0 { "role" } else { "deactivate" };
            let body = (action == "role").then(|| json!({"role": "client"}));
            let [a, b] = &admins;
            let (on_b, on_a) = (format!("/users/{}/{action}", b.id), format!("/users/{}/{action}", a.id));
            let (one, other) = tokio::join!(
                api(&app, "POST", &on_b, &a.token, body.clone()),
                api(&app, "POST", &on_a, &b.token, body.clone()),
            );
            let statuses = [one.0, other.0];
            assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "round {round} ({action}): {one:?} {other:?}");
            // The loser was refused by the lock (409 last_admin), or had lost its
            // admin role (403) or its session (401) before its request was checked.
            assert!(statuses.iter().all(|s| [200, 401, 403, 409].contains(s)), "round {round}: {statuses:?}");
            let active_admins = user::Entity::find()
                .filter(user::Column::OrganizationId.eq(scope.organization_id()))
                .filter(user::Column::Role.eq(UserRole::Admin))
                .filter(user::Column::IsActive.eq(true))
                .all(app.t.conn())
                .await
                .unwrap();
            assert_eq!(active_admins.len(), 1, "round {round}: exactly one active admin");
            // The winner makes the other an active admin again for the next round.
            let (winner, loser) = if one.0 == 200 { (0, 1) } else { (1, 0) };
            let (winner_token, loser_id) = (admins[winner].token.clone(), admins[loser].id);
            let (status, _) = api(&app, "POST", &format!("/users/{loser_id}/reactivate"), &winner_token, None).await;
            assert_eq!(status, 200);
            let (status, _) = api(&app, "POST", &format!("/users/{loser_id}/role"), &winner_token, Some(json!({"role": "admin"}))).await;
            assert_eq!(status, 200);
            // A deactivated loser lost its sessions: it signs in again.
            if api(&app, "GET", "/auth/me", &admins[loser].token, None).await.0 == 401 {
                let (_, signed_in) = login(&app, "acme", emails[loser], PASSWORD).await;
                admins[loser].token = signed_in["token"].as_str().unwrap().to_owned();
            }
        }
        app.stop().await;
    }
}
