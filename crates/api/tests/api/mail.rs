//! E-mail through the running server: the outbox written with its event, the worker
//! delivering to a real SMTP server (aiosmtpd, started by the test kit), retries
//! through an outage, dead letters, two workers sharing one database, and `agenda
//! mail` with no SMTP server at all.

use std::collections::BTreeSet;
use std::time::Duration as StdDuration;

use agenda_entity::enums::{MessageKind, OutboxStatus};
use agenda_entity::outbox_message;
use agenda_storage::Engine;
use agenda_storage::config::Env;
use agenda_testkit::TestDb;
use agenda_testkit::both_engines;
use agenda_testkit::smtp::{Received, SmtpServer};
use axum::Router;
use chrono::{Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::support::{PASSWORD, TestApp, bookable_provider, login, request};

/// Generous: a loaded 2-core machine can be slow, and every wait ends as soon as its
/// condition holds.
pub const PATIENCE: StdDuration = StdDuration::from_secs(60);
pub const BASE: &str = "https://app.example.com";

/// E-mail settings for tests: this SMTP server, quick retries.
pub fn mail_env(smtp: Option<&SmtpServer>) -> agenda_mail::MailSettings {
    let mut pairs = vec![
        ("PUBLIC_BASE_URL", BASE.to_owned()),
        ("MAIL_FROM", "Agenda Test <no-reply@agenda.test>".to_owned()),
        ("MAIL_RETRY_BASE", "50ms".to_owned()),
        ("MAIL_RETRY_MAX", "200ms".to_owned()),
        ("MAIL_POLL_INTERVAL", "50ms".to_owned()),
        ("MAIL_MAX_ATTEMPTS", "100".to_owned()),
        ("MAIL_SEND_TIMEOUT", "10s".to_owned()),
    ];
    if let Some(smtp) = smtp {
        pairs.push(("SMTP_URL", smtp.url()));
    }
    agenda_mail::MailSettings::from_env(&Env::from_pairs(pairs)).unwrap()
}

pub async fn spawn(t: TestDb, smtp: Option<&SmtpServer>) -> TestApp {
    let mail = mail_env(smtp);
    TestApp::spawn_configured(t, Router::new(), |s| s.mail = mail).await
}

/// An organization (through the storage layer: these tests count e-mails, and
/// sign-up would add its admin's; `accounts.rs` tests that one).
async fn organization(app: &TestApp, slug: &str, locale: &str) {
    let input: agenda_entity::organization::CreateOrganization = serde_json::from_value(
        json!({"slug": slug, "name": format!("{slug} clinic"), "time_zone": "America/Sao_Paulo",
               "currency": "BRL", "locale": locale}),
    )
    .unwrap();
    let created =
        agenda_storage::repo::organizations::OrganizationRepo::create(app.t.conn(), input)
            .await
            .unwrap();
    assert_eq!(created.locale.as_str(), locale);
}

async fn register(app: &TestApp, org: &str, email: &str, role: &str) -> (u16, Value) {
    app.post(
        "/api/v1/auth/register",
        &json!({"organization": org, "email": email, "password": PASSWORD,
                "full_name": format!("Person {email}"), "role": role}),
    )
    .await
}

/// The token of the first `BASE<path>?token=…` link in `text`.
pub fn token_in(text: &str, path: &str) -> String {
    let prefix = format!("{BASE}{path}?token=");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} link in: {text}"))
        + prefix.len();
    text[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect()
}

fn addressed<'a>(received: &'a [Received], to: &str, subject_part: &str) -> Vec<&'a Received> {
    received
        .iter()
        .filter(|m| m.rcpt_to.iter().any(|r| r == to) && m.subject.contains(subject_part))
        .collect()
}

/// Waits until `check` holds for the outbox rows (read as the superuser).
pub async fn wait_for_rows(
    t: &TestDb,
    what: &str,
    check: impl Fn(&[outbox_message::Model]) -> bool,
) -> Vec<outbox_message::Model> {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let rows = outbox_message::Entity::find().all(t.conn()).await.unwrap();
        if check(&rows) {
            return rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not reached within {PATIENCE:?}; rows: {:?}",
            rows.iter()
                .map(|r| (r.kind, r.status, r.attempts, r.last_error.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(StdDuration::from_millis(50)).await;
    }
}

fn all_sent(rows: &[outbox_message::Model], n: usize) -> bool {
    rows.len() == n && rows.iter().all(|r| r.status == OutboxStatus::Sent)
}

/// A test route that writes a message in the request's transaction, then answers
/// the body's `status`: the unit of work commits a 2xx and rolls anything else back.
fn enqueue_then_answer() -> Router<agenda_api::AppState> {
    use agenda_api::uow::UnitOfWork;
    use axum::extract::State;
    use axum::http::StatusCode;
    axum::Router::new().route(
        "/test/enqueue",
        axum::routing::post(
            |State(state): State<agenda_api::AppState>,
             uow: UnitOfWork,
             body: axum::Json<Value>| async move {
                let organization =
                    agenda_storage::repo::organizations::OrganizationRepo::find_by_slug(
                        state.db.conn(),
                        "acme",
                    )
                    .await
                    .unwrap()
                    .unwrap();
                uow.enter(agenda_storage::TenantScope::new(organization.id))
                    .await
                    .unwrap();
                let to = agenda_mail::Recipient {
                    user_id: None,
                    address: "x@example.com".into(),
                    name: "X".into(),
                };
                let email = agenda_mail::Email::PasswordReset {
                    token: "ab".repeat(32),
                    valid_minutes: 30,
                };
                state
                    .mail
                    .enqueue(uow.tx().await.unwrap(), &organization, to, email)
                    .await
                    .unwrap();
                StatusCode::from_u16(body["status"].as_u64().unwrap() as u16).unwrap()
            },
        ),
    )
}

both_engines! {
    /// A message written in a request's transaction exists exactly when the request
    /// committed: a 409 after the write leaves nothing, a 201 leaves the message.
    async fn a_rolled_back_request_leaves_no_message(t: TestDb) {
        let app = TestApp::spawn_configured(t, enqueue_then_answer(), |s| s.mail = mail_env(None)).await;
        organization(&app, "acme", "en").await;
        let (status, _) = app.post("/test/enqueue", &json!({"status": 409})).await;
        assert_eq!(status, 409);
        let rows = outbox_message::Entity::find().all(app.t.conn()).await.unwrap();
        assert!(rows.is_empty(), "rolled back with its request: {rows:?}");

        let (status, _) = app.post("/test/enqueue", &json!({"status": 201})).await;
        assert_eq!(status, 201);
        let rows = outbox_message::Entity::find().all(app.t.conn()).await.unwrap();
        assert_eq!(rows.len(), 1, "committed with its request");
        assert_eq!(rows[0].status, OutboxStatus::Queued);
    }

    /// Register, verify the address and reset the password using only what the
    /// e-mails contain; content and language follow the organization's locale.
    async fn verification_and_password_reset_work_from_the_email_alone(t: TestDb) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = spawn(t, Some(&smtp)).await;
        organization(&app, "clinica", "pt-BR").await;
        organization(&app, "clinic", "en").await;
        let (status, user) = register(&app, "clinica", "bia@example.com", "client").await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(user["is_verified"], false);
        let (status, _) = register(&app, "clinic", "bob@example.com", "client").await;
        assert_eq!(status, 201);

        let received = smtp.wait_for(2, PATIENCE).await;
        let pt = addressed(&received, "bia@example.com", "Confirme seu e-mail")[0];
        assert_eq!(pt.subject, "Confirme seu e-mail em clinica clinic");
        assert!(pt.to.contains("bia@example.com") && pt.to.contains("Person"), "{}", pt.to);
        assert!(pt.from.contains("no-reply@agenda.test"), "{}", pt.from);
        assert!(pt.message_id.starts_with('<') && pt.message_id.ends_with("@agenda.test>"), "{}", pt.message_id);
        assert!(pt.text.contains("Olá, Person bia@example.com"), "{}", pt.text);
        assert!(pt.html.contains("<html lang=\"pt-BR\">"), "{}", pt.html);
        assert!(pt.html.contains("Confirmar meu e-mail"), "{}", pt.html);
        let en = addressed(&received, "bob@example.com", "Confirm your e-mail address")[0];
        assert!(en.text.contains("Hello Person bob@example.com"), "{}", en.text);
        assert!(en.html.contains("<html lang=\"en\">"));

        // Verify with the link's token alone.
        let token = token_in(&pt.text, "/verify-email");
        assert_eq!(token.len(), 64);
        let (status, body) = app.post("/api/v1/auth/verify-email", &json!({"token": token})).await;
        assert_eq!(status, 204, "{body}");
        let (status, body) = app.post("/api/v1/auth/verify-email", &json!({"token": token})).await;
        assert_eq!((status, body["error"]["fields"][0]["field"].as_str()), (422, Some("token")), "single use: {body}");
        let (_, signed_in) = login(&app, "clinica", "bia@example.com", PASSWORD).await;
        assert_eq!(signed_in["user"]["is_verified"], true);
        let bearer = signed_in["token"].as_str().unwrap();
        let (status, body) = request(&app, "POST", "/api/v1/auth/verify-email/resend", Some(bearer), None, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_verified")));

        // Reset the password with the link's token alone.
        let (status, _) = app
            .post("/api/v1/auth/password-reset", &json!({"organization": "clinica", "email": "bia@example.com"}))
            .await;
        assert_eq!(status, 202);
        let received = smtp.wait_for(3, PATIENCE).await;
        let reset = addressed(&received, "bia@example.com", "Redefina sua senha");
        assert_eq!(reset.len(), 1);
        assert!(reset[0].text.contains("expira em 30 minutos"), "{}", reset[0].text);
        let token = token_in(&reset[0].text, "/reset-password");
        let new_password = "a brand new passphrase";
        let (status, body) = app
            .post("/api/v1/auth/password-reset/confirm", &json!({"token": token, "new_password": new_password}))
            .await;
        assert_eq!(status, 204, "{body}");
        assert_eq!(login(&app, "clinica", "bia@example.com", PASSWORD).await.0, 401);
        assert_eq!(login(&app, "clinica", "bia@example.com", new_password).await.0, 200);

        // An unknown account gets the same 202 and no e-mail.
        let (status, _) = app
            .post("/api/v1/auth/password-reset", &json!({"organization": "clinica", "email": "nobody@example.com"}))
            .await;
        assert_eq!(status, 202);
        let rows = outbox_message::Entity::find().all(app.t.conn()).await.unwrap();
        app.stop().await;
        assert_eq!(rows.len(), 3, "two verifications and one reset");
        assert!(rows.iter().all(|r| r.status == OutboxStatus::Sent && r.attempts == 1));
        assert_eq!(smtp.received().len(), 3);
    }

    /// Booking confirmed, rescheduled and canceled: each reaches the client and the
    /// provider, in the organization's language and the provider's time zone.
    async fn booking_changes_email_the_client_and_the_provider(t: TestDb) {
        let Some(smtp) = SmtpServer::start() else { return };
        let app = spawn(t, Some(&smtp)).await;
        organization(&app, "acme", "en").await;
        let (_, provider) = register(&app, "acme", "provider@example.com", "provider").await;
        let (_, client) = register(&app, "acme", "client@example.com", "client").await;
        let scope = agenda_storage::TenantScope::new(provider["organization_id"].as_str().unwrap().parse().unwrap());
        let service = bookable_provider(&app, scope, provider["id"].as_str().unwrap().parse().unwrap(),
            json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60,
                   "min_lead_minutes": 0, "auto_confirm": true, "time_zone": "America/Sao_Paulo"})).await;
        let (_, signed_in) = login(&app, "acme", "client@example.com", PASSWORD).await;
        let bearer = signed_in["token"].as_str().unwrap().to_owned();
        // The provider works 09:00–12:00 in São Paulo (UTC−3): 12:00 UTC is 09:00 there.
        let day = (Utc::now() + Duration::days(3)).date_naive();
        let start = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
        let (status, booked) = request(&app, "POST", "/api/v1/appointments", Some(&bearer),
            Some(json!({"service_id": service, "start_at": start})), None).await;
        assert_eq!(status, 201, "{booked}");
        assert_eq!(booked["status"], "confirmed");
        let id = booked["id"].as_str().unwrap().to_owned();
        let received = smtp.wait_for(4, PATIENCE).await;
        let to_client = addressed(&received, "client@example.com", "Booking confirmed");
        let to_provider = addressed(&received, "provider@example.com", "Booking confirmed");
        assert_eq!((to_client.len(), to_provider.len()), (1, 1));
        assert!(to_client[0].text.contains("Your booking is confirmed."), "{}", to_client[0].text);
        assert!(to_client[0].text.contains("at 09:00 (America/Sao_Paulo)"), "{}", to_client[0].text);
        assert!(to_client[0].text.contains("With: Person provider@example.com"), "{}", to_client[0].text);
        assert!(to_provider[0].text.contains("Client: Person client@example.com"), "{}", to_provider[0].text);
        assert!(to_client[0].text.contains(&format!("{BASE}/appointments/{id}")));

        let later = start + Duration::hours(1);
        let (status, body) = request(&app, "POST", &format!("/api/v1/appointments/{id}/reschedule"), Some(&bearer),
            Some(json!({"start_at": later})), None).await;
        assert_eq!(status, 200, "{body}");
        let received = smtp.wait_for(6, PATIENCE).await;
        let moved = addressed(&received, "client@example.com", "Booking moved");
        assert_eq!(moved.len(), 1);
        assert!(moved[0].text.contains("New time: ") && moved[0].text.contains("at 10:00 (America/Sao_Paulo)"), "{}", moved[0].text);
        assert!(moved[0].text.contains("Previously: ") && moved[0].text.contains("at 09:00"), "{}", moved[0].text);
        assert_eq!(addressed(&received, "provider@example.com", "Booking moved").len(), 1);

        let (status, body) = request(&app, "POST", &format!("/api/v1/appointments/{id}/cancel"), Some(&bearer),
            Some(json!({"reason": "I <3 rain checks"})), None).await;
        assert_eq!(status, 200, "{body}");
        let received = smtp.wait_for(8, PATIENCE).await;
        let canceled = addressed(&received, "provider@example.com", "Booking canceled");
        assert_eq!(canceled.len(), 1);
        assert!(canceled[0].text.contains("Reason: I <3 rain checks"), "{}", canceled[0].text);
        assert!(canceled[0].html.contains("I &lt;3 rain checks"), "escaped in HTML: {}", canceled[0].html);
        assert_eq!(addressed(&received, "client@example.com", "Booking canceled").len(), 1);
        let _ = client;
    }

    /// With no SMTP_URL nothing is sent and everything stays queued; a request that
    /// fails (rolls back) leaves no message behind; `agenda mail` shows the queue and
    /// prints a message's link.
    async fn without_smtp_mail_stays_queued_and_rollbacks_write_none(t: TestDb) {
        let app = spawn(t, None).await;
        organization(&app, "acme", "en").await;
        assert_eq!(register(&app, "acme", "ana@example.com", "client").await.0, 201);
        // The same address again: 409, rolled back, so no second verification e-mail.
        assert_eq!(register(&app, "acme", "ana@example.com", "client").await.0, 409);
        let (status, _) = app
            .post("/api/v1/auth/password-reset", &json!({"organization": "acme", "email": "ana@example.com"}))
            .await;
        assert_eq!(status, 202);
        let rows = outbox_message::Entity::find().all(app.t.conn()).await.unwrap();
        let kinds: Vec<MessageKind> = rows.iter().map(|r| r.kind).collect();
        assert_eq!(rows.len(), 2, "{kinds:?}");
        assert!(rows.iter().all(|r| r.status == OutboxStatus::Queued && r.attempts == 0));

        let (status, metrics) = app.get("/metrics").await;
        assert_eq!(status, 200);
        let metrics = metrics.as_str().unwrap().to_owned();
        assert!(metrics.contains("agenda_outbox_messages{status=\"queued\"} 2"), "{metrics}");
        assert!(metrics.contains("agenda_outbox_deliveries_total{outcome=\"sent\"} 0"), "{metrics}");

        // The operator's view: the binary, as the schema owner.
        let t = app.stop().await;
        let url = t.settings.url.expose().to_owned();
        let agenda = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
                .current_dir(std::env::temp_dir())
                .env_clear()
                .env("DATABASE_URL", &url)
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let listed = tokio::task::block_in_place(|| agenda(&["mail", "list"]));
        assert!(listed.contains("2 message(s)"), "{listed}");
        assert!(listed.contains("Reset your password for acme clinic"), "{listed}");
        let reset = rows.iter().find(|r| r.kind == MessageKind::PasswordReset).unwrap();
        let shown = tokio::task::block_in_place(|| agenda(&["mail", "show", &reset.id.to_string()]));
        assert!(shown.contains("To: Person ana@example.com <ana@example.com>"), "{shown}");
        let token = token_in(&shown, "/reset-password");
        assert_eq!(token.len(), 64, "{shown}");
        let json_list = tokio::task::block_in_place(|| agenda(&["mail", "list", "--status", "queued", "--json"]));
        let parsed: Value = serde_json::from_str(&json_list).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 2);
        // Purging keeps queued mail, however old.
        let purged = tokio::task::block_in_place(|| agenda(&["mail", "purge", "--older-than", "1s"]));
        assert!(purged.starts_with("deleted 0 "), "{purged}");
    }

    /// The SMTP server goes away: mail is retried with backoff, never lost, and once
    /// the server is back every message arrives exactly once.
    async fn an_smtp_outage_delays_mail_but_never_loses_or_doubles_it(t: TestDb) {
        let Some(mut smtp) = SmtpServer::start() else { return };
        smtp.stop();
        let app = spawn(t, Some(&smtp)).await;
        organization(&app, "acme", "en").await;
        for n in 0..5 {
            let (status, body) = register(&app, "acme", &format!("user{n}@example.com"), "client").await;
            assert_eq!(status, 201, "{body}");
        }
        // Every message has failed at least twice (connection refused) and waits.
        let rows = wait_for_rows(&app.t, "retried during the outage", |rows| {
            rows.len() == 5 && rows.iter().all(|r| r.attempts >= 2 && r.last_error.is_some())
        })
        .await;
        assert!(rows.iter().all(|r| r.status != OutboxStatus::Sent && r.status != OutboxStatus::Dead));
        assert!(smtp.received().is_empty());

        smtp.resume();
        wait_for_rows(&app.t, "all sent after the outage", |rows| all_sent(rows, 5)).await;
        let received = smtp.wait_for(5, PATIENCE).await;
        let rows = outbox_message::Entity::find().all(app.t.conn()).await.unwrap();
        app.stop().await;
        assert_eq!(smtp.received().len(), 5, "nothing sent twice");
        let ids: BTreeSet<&str> = received.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids.len(), 5);
        let expected: BTreeSet<&str> = rows.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(ids, expected, "the Message-IDs the outbox fixed are the ones received");
        assert!(rows.iter().all(|r| r.last_error.is_none() && r.sent_at.is_some()));
    }

    /// A permanent refusal (550) makes the message dead at once; a transient one
    /// (451) is retried until MAIL_MAX_ATTEMPTS, then dead. Metrics count both.
    async fn refused_mail_goes_dead_and_is_counted(t: TestDb) {
        let Some(smtp) = SmtpServer::start() else { return };
        let mut mail = mail_env(Some(&smtp));
        mail.retry.max_attempts = 3;
        let app = TestApp::spawn_configured(t, Router::new(), |s| s.mail = mail).await;
        organization(&app, "acme", "en").await;
        assert_eq!(register(&app, "acme", "bounce@example.com", "client").await.0, 201);
        assert_eq!(register(&app, "acme", "defer@example.com", "client").await.0, 201);
        let rows = wait_for_rows(&app.t, "both dead", |rows| {
            rows.len() == 2 && rows.iter().all(|r| r.status == OutboxStatus::Dead)
        })
        .await;
        let bounced = rows.iter().find(|r| r.to_address == "bounce@example.com").unwrap();
        assert_eq!(bounced.attempts, 1, "a permanent failure is not retried");
        assert!(bounced.last_error.as_deref().unwrap().contains("550"), "{:?}", bounced.last_error);
        let deferred = rows.iter().find(|r| r.to_address == "defer@example.com").unwrap();
        assert_eq!(deferred.attempts, 3, "retried up to MAIL_MAX_ATTEMPTS");
        assert!(deferred.last_error.as_deref().unwrap().contains("451"), "{:?}", deferred.last_error);

        let (_, metrics) = app.get("/metrics").await;
        let metrics = metrics.as_str().unwrap().to_owned();
        assert!(metrics.contains("agenda_outbox_messages{status=\"dead\"} 2"), "{metrics}");
        assert!(metrics.contains("agenda_outbox_deliveries_total{outcome=\"dead\"} 2"), "{metrics}");
        assert!(metrics.contains("agenda_outbox_deliveries_total{outcome=\"retried\"} 2"), "{metrics}");
        assert!(smtp.received().is_empty());
    }
}

/// Two workers (two pools, as two server processes would have) on one PostgreSQL
/// share 40 due messages: each arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_on_one_postgres_never_send_a_message_twice() {
    let Some(t) = TestDb::postgres().await else {
        return;
    };
    assert_eq!(t.engine(), Engine::Postgres);
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let org = agenda_storage::repo::organizations::OrganizationRepo::create(
        t.conn(),
        agenda_entity::organization::CreateOrganization {
            slug: "acme".into(),
            name: "Acme".into(),
            time_zone: "UTC".into(),
            currency: "BRL".into(),
            locale: None,
        },
    )
    .await
    .unwrap();
    let mut settings = mail_env(Some(&smtp));
    settings.batch_size = 3;
    let outbox = agenda_mail::Outbox::new(settings.clone());
    for n in 0..40 {
        let to = agenda_mail::Recipient {
            user_id: None,
            address: format!("person{n}@example.com"),
            name: format!("Person {n}"),
        };
        let email = agenda_mail::Email::PasswordReset {
            token: format!("{n:064x}"),
            valid_minutes: 30,
        };
        outbox.enqueue(t.conn(), &org, to, email).await.unwrap();
    }
    let (first, second) = (
        agenda_mail::Outbox::new(settings.clone()),
        agenda_mail::Outbox::new(settings),
    );
    let a = agenda_mail::worker::start(t.app_role_pool().await, first.clone())
        .unwrap()
        .unwrap();
    let b = agenda_mail::worker::start(t.app_role_pool().await, second.clone())
        .unwrap()
        .unwrap();
    assert_ne!(a.id(), b.id());
    wait_for_rows(&t, "all 40 sent", |rows| all_sent(rows, 40)).await;
    a.stop(PATIENCE).await;
    b.stop(PATIENCE).await;
    let received = smtp.received();
    assert_eq!(received.len(), 40, "each message once");
    let ids: BTreeSet<&str> = received.iter().map(|m| m.message_id.as_str()).collect();
    assert_eq!(ids.len(), 40);
    let sent = first.metrics().snapshot().sent + second.metrics().snapshot().sent;
    assert_eq!(
        sent, 40,
        "the two workers' deliveries add up to the messages"
    );
    let dead = outbox_message::Entity::find()
        .filter(outbox_message::Column::Status.ne(OutboxStatus::Sent))
        .count(t.conn())
        .await
        .unwrap();
    assert_eq!(dead, 0);
}
