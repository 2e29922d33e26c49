//! Payment webhooks: HMAC-signed events, tenant resolution by header + secret,
//! replays, amount checks, and the ledger they feed.

use agenda_entity::enums::TransactionKind;
use agenda_entity::{audit_log, integration_setting};
use agenda_storage::repo::ledger::{EntriesQuery, LedgerRepo};
use agenda_storage::repo::resource::Repo;
use agenda_storage::{TenantOwned, TenantScope};
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{ColumnTrait, QueryFilter};
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use crate::support::{
    TestApp, bookable_provider, code, fields, read, request, scope_of, sign_up_body,
};

const PASSWORD: &str = "correct horse battery";

/// One organization with a provider, a client, a 50.00 service and an integration
/// `stripe` whose secret lives in a variable unique to this test.
struct Tenant {
    slug: &'static str,
    scope: TenantScope,
    provider: (Uuid, String),
    client: (Uuid, String),
    service: Uuid,
    secret: String,
}

async fn sign_up(app: &TestApp, slug: &str, email: &str, role: &str) -> (Uuid, String) {
    let (status, user) = app
        .post("/api/v1/auth/register", &json!({"organization": slug, "email": email, "password": PASSWORD, "full_name": "Someone", "role": role}))
        .await;
    assert_eq!(status, 201, "{user}");
    let (_, signed_in) = app
        .post(
            "/api/v1/auth/login",
            &json!({"organization": slug, "email": email, "password": PASSWORD}),
        )
        .await;
    (
        user["id"].as_str().unwrap().parse().unwrap(),
        signed_in["token"].as_str().unwrap().to_owned(),
    )
}

/// Sets a process environment variable named uniquely for the calling test.
fn set_secret_var(name: &str, value: &str) {
    // SAFETY: edition 2024 marks `set_var` unsafe because another thread may read the
    // environment through libc at the same time. Each test uses its own variable
    // (a fresh UUID in the name), and the server reads it through `std::env::var`,
    // which takes the same lock as `set_var`.
    unsafe { std::env::set_var(name, value) };
}

async fn tenant(app: &TestApp, slug: &'static str, integration_enabled: bool) -> Tenant {
    let (status, org) = app
        .post(
            "/api/v1/organizations",
            &sign_up_body(
                json!({"slug": slug, "name": slug, "time_zone": "UTC", "currency": "BRL"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    let scope = scope_of(&org);
    let provider = sign_up(app, slug, "provider@example.com", "provider").await;
    let client = sign_up(app, slug, "client@example.com", "client").await;
    let conn = app.t.conn();
    let service = bookable_provider(app, scope, provider.0, json!({"business_name": "Studio", "accepted_payment_methods": ["pix", "card"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    let variable = format!(
        "AGENDA_TEST_WEBHOOK_{}",
        Uuid::new_v4().simple().to_string().to_uppercase()
    );
    let secret = format!("whsec-{slug}-{}", Uuid::new_v4());
    set_secret_var(&variable, &secret);
    Repo::<integration_setting::Entity>::create(
        conn,
        scope,
        serde_json::from_value(json!({"integration": "stripe", "is_enabled": integration_enabled, "config": {}, "secret_ref": format!("env:{variable}")})).unwrap(),
        |_| {},
    )
    .await
    .unwrap();
    Tenant {
        slug,
        scope,
        provider,
        client,
        service,
        secret,
    }
}

async fn call(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    request(app, "POST", path, Some(token), body, None).await
}

/// A booked appointment, taken to `steps` by the provider (e.g. confirm, start, complete).
async fn appointment(app: &TestApp, t: &Tenant, day_offset: i64, steps: &[&str]) -> String {
    let day = (Utc::now() + Duration::days(day_offset)).date_naive();
    let start = day.and_hms_opt(9, 0, 0).unwrap().and_utc().to_rfc3339();
    let (status, a) = call(
        app,
        "/api/v1/appointments",
        &t.client.1,
        Some(json!({"service_id": t.service, "start_at": start})),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let id = a["id"].as_str().unwrap().to_owned();
    for step in steps {
        let (status, body) = call(
            app,
            &format!("/api/v1/appointments/{id}/{step}"),
            &t.provider.1,
            None,
        )
        .await;
        assert_eq!(status, 200, "{step}: {body}");
    }
    id
}

pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={hex}")
}

/// Delivers `event` as the processor would: raw bytes, signed with `secret` at `t`.
pub async fn deliver(
    app: &TestApp,
    slug: &str,
    processor: &str,
    event: &Value,
    signature_header: Option<String>,
) -> (u16, Value) {
    let body = serde_json::to_vec(event).unwrap();
    let mut request = app
        .client
        .post(app.url(&format!("/api/v1/webhooks/payments/{processor}")))
        .header("content-type", "application/json")
        .header("X-Agenda-Organization", slug)
        .body(body);
    if let Some(sig) = signature_header {
        request = request.header("X-Agenda-Signature", sig);
    }
    read(request.send().await.unwrap()).await
}

/// Signed now with the tenant's secret.
async fn signed(app: &TestApp, t: &Tenant, event: &Value) -> (u16, Value) {
    let sig = signature(
        &t.secret,
        Utc::now().timestamp(),
        &serde_json::to_vec(event).unwrap(),
    );
    deliver(app, t.slug, "stripe", event, Some(sig)).await
}

fn paid_event(event_id: &str, appointment: &str, amount: i64) -> Value {
    json!({"id": event_id, "type": "payment.succeeded", "appointment_id": appointment, "amount_cents": amount, "currency": "BRL", "method": "card", "livemode": false})
}

async fn payment_status(app: &TestApp, t: &Tenant, id: &str) -> (String, Option<String>) {
    let (status, a) = app
        .client
        .get(app.url(&format!("/api/v1/appointments/{id}")))
        .bearer_auth(&t.provider.1)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    let a: Value = a.json().await.unwrap();
    (
        a["payment_status"].as_str().unwrap().to_owned(),
        a["payment_method"].as_str().map(str::to_owned),
    )
}

async fn pending(app: &TestApp, t: &Tenant) -> i64 {
    LedgerRepo::balance(app.t.conn(), t.scope, t.provider.0)
        .await
        .unwrap()
        .pending_cents
}

both_engines! {
    async fn a_signed_payment_settles_once(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = tenant(&app, "acme", true).await;
        let id = appointment(&app, &acme, 2, &["confirm", "start", "complete"]).await;
        assert_eq!(pending(&app, &acme).await, 0, "completed but unpaid: nothing yet");

        let event = paid_event("evt_1", &id, 5000);
        let (status, first) = signed(&app, &acme, &event).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!((first["outcome"].as_str(), first["payment_status"].as_str(), first["event_id"].as_str()), (Some("processed"), Some("paid"), Some("evt_1")));
        assert_eq!(payment_status(&app, &acme, &id).await, ("paid".to_owned(), Some("card".to_owned())));
        // 50.00 paid, 10% platform commission: 45.00 pending for the provider.
        assert_eq!(pending(&app, &acme).await, 4500);
        let entries = LedgerRepo::entries(app.t.conn(), acme.scope, acme.provider.0, &EntriesQuery::default()).await.unwrap();
        let mut kinds: Vec<TransactionKind> = entries.items.iter().map(|e| e.kind).collect();
        kinds.sort_by_key(|k| k.to_string());
        assert_eq!(kinds, [TransactionKind::Commission, TransactionKind::Payment]);

        // The processor delivers it again (freshly signed): nothing changes, same answer.
        let (status, again) = signed(&app, &acme, &event).await;
        assert_eq!((status, &again), (200, &first));
        assert_eq!(pending(&app, &acme).await, 4500);
        let entries_again = LedgerRepo::entries(app.t.conn(), acme.scope, acme.provider.0, &EntriesQuery::default()).await.unwrap();
        assert_eq!(entries_again.items.len(), 2);

        // One audit entry, with no actor and no secret in it.
        let audit = audit_log::Entity::find_in(acme.scope)
            .filter(audit_log::Column::EntityId.eq(id.parse::<Uuid>().unwrap()))
            .all(app.t.conn())
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!((audit[0].action.as_str(), audit[0].actor_id), ("webhook.payment.succeeded", None));
        assert!(!audit[0].details.to_string().contains(&acme.secret));

        // The same event id with other payment fields is refused.
        let (status, body) = signed(&app, &acme, &paid_event("evt_1", &id, 4000)).await;
        assert_eq!(status, 422, "{body}");

        // A payment before completion: paid now, settled when it completes.
        let later = appointment(&app, &acme, 3, &["confirm"]).await;
        let (status, body) = signed(&app, &acme, &paid_event("evt_2", &later, 5000)).await;
        assert_eq!((status, body["payment_status"].as_str()), (200, Some("paid")), "{body}");
        assert_eq!(pending(&app, &acme).await, 4500, "not settled before completion");
        for step in ["start", "complete"] {
            let (status, body) = call(&app, &format!("/api/v1/appointments/{later}/{step}"), &acme.provider.1, None).await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        assert_eq!(pending(&app, &acme).await, 9000);
        let _ = acme.client.0;
        app.stop().await;
    }

    async fn signatures_tenants_and_amounts_are_checked(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = tenant(&app, "acme", true).await;
        let globex = tenant(&app, "globex", true).await;
        let initech = tenant(&app, "initech", false).await;
        let id = appointment(&app, &acme, 2, &["confirm", "start", "complete"]).await;
        let theirs = appointment(&app, &globex, 2, &["confirm", "start", "complete"]).await;
        let event = paid_event("evt_9", &id, 5000);
        let bytes = serde_json::to_vec(&event).unwrap();
        let now = Utc::now().timestamp();

        // Signatures.
        let (status, body) = deliver(&app, "acme", "stripe", &event, None).await;
        assert_eq!((status, code(&body)), (401, "invalid_signature"));
        let (status, body) = deliver(&app, "acme", "stripe", &event, Some(signature("wrong secret", now, &bytes))).await;
        assert_eq!((status, code(&body)), (401, "invalid_signature"));
        let (status, _) = deliver(&app, "acme", "stripe", &event, Some("t=abc,v1=zz".into())).await;
        assert_eq!(status, 401);
        let (status, body) = deliver(&app, "acme", "stripe", &event, Some(signature(&acme.secret, now - 301, &bytes))).await;
        assert_eq!((status, code(&body)), (401, "stale_signature"));
        // Signed with globex's secret but naming acme: the tenant is proven by its own secret.
        let (status, _) = deliver(&app, "acme", "stripe", &event, Some(signature(&globex.secret, now, &bytes))).await;
        assert_eq!(status, 401);

        // Unknown organization, unknown processor, disabled integration: the same 404.
        let good = signature(&acme.secret, now, &bytes);
        for (slug, processor) in [("nobody", "stripe"), ("acme", "paypal"), ("acme", "NOT A KEY"), (initech.slug, "stripe")] {
            let (status, body) = deliver(&app, slug, processor, &event, Some(good.clone())).await;
            assert_eq!(status, 404, "{slug}/{processor}: {body}");
            assert_eq!(body["error"]["message"].as_str(), Some("no such webhook"));
        }
        let (status, body) = deliver(&app, "", "stripe", &event, Some(good.clone())).await;
        assert_eq!(status, 400, "{body}");

        // Globex's appointment in an event signed by acme: not found, nothing changes.
        let (status, body) = signed(&app, &acme, &paid_event("evt_x", &theirs, 5000)).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(payment_status(&app, &globex, &theirs).await.0, "unpaid");
        assert_eq!(pending(&app, &globex).await, 0);

        // Amount or currency mismatch: 422, nothing changes.
        let (status, body) = signed(&app, &acme, &paid_event("evt_a", &id, 4999)).await;
        assert_eq!((status, fields(&body)), (422, vec!["amount_cents".to_owned()]), "{body}");
        let mut usd = paid_event("evt_c", &id, 5000);
        usd["currency"] = json!("USD");
        let (status, body) = signed(&app, &acme, &usd).await;
        assert_eq!((status, fields(&body)), (422, vec!["currency".to_owned()]), "{body}");
        assert_eq!(payment_status(&app, &acme, &id).await.0, "unpaid");
        assert_eq!(pending(&app, &acme).await, 0);

        // Unknown types are acknowledged and ignored.
        let (status, body) = signed(&app, &acme, &json!({"id": "evt_u", "type": "customer.created"})).await;
        assert_eq!((status, body["outcome"].as_str()), (200, Some("ignored")), "{body}");

        // A failure, then the success; a late failure does not undo a payment.
        let failed = json!({"id": "evt_f", "type": "payment.failed", "appointment_id": id});
        let (status, body) = signed(&app, &acme, &failed).await;
        assert_eq!((status, body["payment_status"].as_str()), (200, Some("failed")), "{body}");
        assert_eq!(payment_status(&app, &acme, &id).await.0, "failed");
        let (status, body) = signed(&app, &acme, &event).await;
        assert_eq!((status, body["payment_status"].as_str()), (200, Some("paid")), "{body}");
        assert_eq!(pending(&app, &acme).await, 4500);
        let late = json!({"id": "evt_f2", "type": "payment.failed", "appointment_id": id});
        let (status, body) = signed(&app, &acme, &late).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("unchanged"), Some("paid")), "{body}");
        assert_eq!(payment_status(&app, &acme, &id).await.0, "paid");
        assert_eq!(pending(&app, &globex).await, 0, "the other tenant is untouched");
        app.stop().await;
    }
}

fn refund_event(event_id: &str, appointment: &str, amount: i64, refund_id: &str) -> Value {
    json!({"id": event_id, "type": "payment.refunded", "appointment_id": appointment, "amount_cents": amount, "currency": "BRL", "refund_id": refund_id})
}

async fn balance(app: &TestApp, t: &Tenant) -> (i64, i64) {
    let b = LedgerRepo::balance(app.t.conn(), t.scope, t.provider.0)
        .await
        .unwrap();
    assert!(
        LedgerRepo::verify_balance(app.t.conn(), t.scope, t.provider.0)
            .await
            .unwrap(),
        "balance equals the ledger sums"
    );
    (b.available_cents, b.pending_cents)
}

async fn entry_count(app: &TestApp, t: &Tenant) -> usize {
    LedgerRepo::entries(
        app.t.conn(),
        t.scope,
        t.provider.0,
        &EntriesQuery {
            limit: Some(100),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .items
    .len()
}

/// A completed appointment paid by a signed `payment.succeeded` event.
async fn paid_appointment(app: &TestApp, t: &Tenant, day_offset: i64, event_id: &str) -> String {
    let id = appointment(app, t, day_offset, &["confirm", "start", "complete"]).await;
    let (status, body) = signed(app, t, &paid_event(event_id, &id, 5000)).await;
    assert_eq!(status, 200, "{body}");
    id
}

both_engines! {
    async fn refunds_by_webhook_and_admin_reverse_the_ledger_once(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = tenant(&app, "acme", true).await;
        let admin = crate::support::member(&app, acme.scope, "acme", "admin@example.com", agenda_entity::enums::UserRole::Admin).await;
        let id = paid_appointment(&app, &acme, 2, "evt_paid").await;
        assert_eq!(balance(&app, &acme).await, (0, 4500));

        // Unsigned or wrongly signed refunds are refused and change nothing.
        let partial = refund_event("evt_r1", &id, 2000, "re_1");
        let (status, body) = deliver(&app, acme.slug, "stripe", &partial, None).await;
        assert_eq!((status, code(&body)), (401, "invalid_signature"), "{body}");
        let forged = signature("not-the-secret", Utc::now().timestamp(), &serde_json::to_vec(&partial).unwrap());
        let (status, body) = deliver(&app, acme.slug, "stripe", &partial, Some(forged)).await;
        assert_eq!((status, code(&body)), (401, "invalid_signature"), "{body}");
        assert_eq!((balance(&app, &acme).await, entry_count(&app, &acme).await), ((0, 4500), 2));

        // A partial refund: 20.00 back to the client, 10% of it (2.00) back to the provider.
        let (status, first) = signed(&app, &acme, &partial).await;
        assert_eq!(status, 200, "{first}");
        assert_eq!((first["outcome"].as_str(), first["payment_status"].as_str()), (Some("processed"), Some("partially_refunded")), "{first}");
        assert_eq!(first["refund"], json!({"appointment_id": id, "refund_id": "re_1", "amount_cents": 2000, "commission_reversed_cents": 200, "paid_cents": 5000, "refunded_cents": 2000, "payment_status": "partially_refunded", "replayed": false}));
        assert_eq!(payment_status(&app, &acme, &id).await.0, "partially_refunded");
        let (_, doc) = app.get("/api/v1/openapi.json").await;
        assert_eq!(doc["components"]["schemas"]["PaymentStatus"]["enum"], json!(["unpaid", "pending", "paid", "partially_refunded", "refunded", "failed"]));
        // Late events do not overwrite it: a failure, or a success replayed under a new id.
        let late = json!({"id": "evt_f_early", "type": "payment.failed", "appointment_id": id});
        let (status, body) = signed(&app, &acme, &late).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("unchanged"), Some("partially_refunded")), "{body}");
        let (status, body) = signed(&app, &acme, &paid_event("evt_paid_again", &id, 5000)).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("unchanged"), Some("partially_refunded")), "{body}");
        assert_eq!(payment_status(&app, &acme, &id).await.0, "partially_refunded");
        assert_eq!(balance(&app, &acme).await, (0, 2700));
        assert_eq!(entry_count(&app, &acme).await, 4);

        // The same event again: the stored answer, nothing written.
        let (status, again) = signed(&app, &acme, &partial).await;
        assert_eq!((status, &again), (200, &first));
        // The same processor refund in another event: recorded once.
        let (status, other) = signed(&app, &acme, &refund_event("evt_r1_bis", &id, 2000, "re_1")).await;
        assert_eq!((status, other["outcome"].as_str(), other["refund"]["replayed"].as_bool()), (200, Some("unchanged"), Some(true)), "{other}");
        assert_eq!((balance(&app, &acme).await, entry_count(&app, &acme).await), ((0, 2700), 4));
        // The same refund id with another amount is a conflict, not a replay.
        let (status, body) = signed(&app, &acme, &refund_event("evt_r1_ter", &id, 2500, "re_1")).await;
        assert_eq!((status, code(&body)), (409, "refund_id_reused"), "{body}");
        assert_eq!((balance(&app, &acme).await, entry_count(&app, &acme).await), ((0, 2700), 4));

        // More than is left (30.00) is refused with a clear code.
        let (status, body) = signed(&app, &acme, &refund_event("evt_r2", &id, 3001, "re_2")).await;
        assert_eq!((status, code(&body)), (409, "refund_exceeds_payment"), "{body}");
        let (status, body) = signed(&app, &acme, &json!({"id": "evt_r3", "type": "payment.refunded", "appointment_id": id, "amount_cents": 100, "currency": "BRL"})).await;
        assert_eq!((status, fields(&body)), (422, vec!["refund_id".to_owned()]), "{body}");

        // The admin route: admins only; refunds the rest; a retry with the same key replays.
        let path = format!("/api/v1/admin/appointments/{id}/refunds");
        let (status, body) = request(&app, "POST", &path, Some(&acme.provider.1), Some(json!({"amount_cents": 3000})), None).await;
        assert_eq!(status, 403, "{body}");
        let (status, body) = request(&app, "POST", &path, Some(&admin.token), Some(json!({"amount_cents": 0})), None).await;
        assert_eq!((status, fields(&body)), (422, vec!["amount_cents".to_owned()]), "{body}");
        let (status, rest) = request(&app, "POST", &path, Some(&admin.token), Some(json!({"amount_cents": 3000, "reason": "Canceled by the studio"})), Some("refund-1")).await;
        assert_eq!(status, 201, "{rest}");
        assert_eq!((rest["amount_cents"].as_i64(), rest["commission_reversed_cents"].as_i64(), rest["refunded_cents"].as_i64(), rest["payment_status"].as_str()), (Some(3000), Some(300), Some(5000), Some("refunded")), "{rest}");
        assert!(rest["refund_id"].as_str().unwrap().starts_with("admin:"), "{rest}");
        let (status, replay) = request(&app, "POST", &path, Some(&admin.token), Some(json!({"amount_cents": 3000, "reason": "Canceled by the studio"})), Some("refund-1")).await;
        assert_eq!((status, &replay), (201, &rest));
        assert_eq!(balance(&app, &acme).await, (0, 0), "everything refunded, the whole commission returned");
        assert_eq!(entry_count(&app, &acme).await, 6);
        assert_eq!(payment_status(&app, &acme, &id).await.0, "refunded");
        let (status, body) = request(&app, "POST", &path, Some(&admin.token), Some(json!({"amount_cents": 1})), None).await;
        assert_eq!((status, code(&body)), (409, "refund_exceeds_payment"), "{body}");
        // A late failure does not undo a refund.
        let late = json!({"id": "evt_f_late", "type": "payment.failed", "appointment_id": id});
        let (status, body) = signed(&app, &acme, &late).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("unchanged"), Some("refunded")), "{body}");
        let (status, body) = signed(&app, &acme, &paid_event("evt_paid_late", &id, 5000)).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("unchanged"), Some("refunded")), "{body}");
        assert_eq!(payment_status(&app, &acme, &id).await.0, "refunded");
        assert_eq!((balance(&app, &acme).await, entry_count(&app, &acme).await), ((0, 0), 6), "late events wrote nothing");

        // An appointment not settled yet has nothing to refund.
        let unpaid = appointment(&app, &acme, 3, &["confirm"]).await;
        let (status, body) = request(&app, "POST", &format!("/api/v1/admin/appointments/{unpaid}/refunds"), Some(&admin.token), Some(json!({"amount_cents": 100})), None).await;
        assert_eq!((status, code(&body)), (409, "payment_not_settled"), "{body}");
        app.stop().await;
    }

    /// The worked debt example of docs/ledger.md ("Refund debt").
    async fn a_refund_the_balance_cannot_cover_is_recorded_as_a_debt_that_earnings_pay_first(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let acme = tenant(&app, "acme", true).await;
        let admin = crate::support::member(&app, acme.scope, "acme", "admin@example.com", agenda_entity::enums::UserRole::Admin).await;
        let balance_view = |token: String| {
            let app = &app;
            async move {
                let (status, body) = request(app, "GET", "/api/v1/marketplace/balance", Some(&token), None, None).await;
                assert_eq!(status, 200, "{body}");
                (body["available_cents"].as_i64().unwrap(), body["pending_cents"].as_i64().unwrap(), body["debt_cents"].as_i64().unwrap())
            }
        };
        let first = paid_appointment(&app, &acme, 2, "evt_paid_1").await;
        let second = paid_appointment(&app, &acme, 3, "evt_paid_2").await;
        // Both released, and 80.00 of the 90.00 withdrawn: the provider holds 10.00.
        let tx = app.t.db.begin().await.unwrap();
        assert_eq!(LedgerRepo::release_due(&tx, acme.scope, acme.provider.0, Utc::now() + Duration::days(30)).await.unwrap(), 9000);
        LedgerRepo::request_withdrawal(&tx, acme.scope, acme.provider.0, 8000, agenda_entity::enums::PayoutMethod::Pix).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(balance_view(acme.provider.1.clone()).await, (1000, 0, 0));
        let entries = entry_count(&app, &acme).await;

        // The admin refunds the first payment in full: 50.00 back to the client, the
        // 5.00 fee back to the provider, 45.00 taken from a balance of 10.00.
        let path = format!("/api/v1/admin/appointments/{first}/refunds");
        let (status, body) = request(&app, "POST", &path, Some(&admin.token), Some(json!({"amount_cents": 5000})), None).await;
        assert_eq!((status, body["payment_status"].as_str(), body["commission_reversed_cents"].as_i64()), (201, Some("refunded"), Some(500)), "{body}");
        assert_eq!(balance_view(acme.provider.1.clone()).await, (-3500, 0, 3500), "recorded: the provider owes 35.00");
        assert_eq!(balance(&app, &acme).await, (-3500, 0));
        assert_eq!(entry_count(&app, &acme).await, entries + 2, "the refund and the fee given back");

        // The processor's webhook records the same way: 20.00 of the second payment.
        let (status, body) = signed(&app, &acme, &refund_event("evt_r2", &second, 2000, "re_2")).await;
        assert_eq!((status, body["outcome"].as_str(), body["payment_status"].as_str()), (200, Some("processed"), Some("partially_refunded")), "{body}");
        assert_eq!(balance_view(acme.provider.1.clone()).await, (-5300, 0, 5300), "20.00 − 2.00 more");

        // Withdrawals are refused while the debt lasts, with a clear code.
        let (status, body) = request(&app, "POST", "/api/v1/marketplace/withdrawals", Some(&acme.provider.1), Some(json!({"amount_cents": 1000, "payout_method": "pix"})), None).await;
        assert_eq!((status, code(&body)), (409, "balance_in_debt"), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("5300"), "{body}");

        // The next payment (45.00 earned) pays the debt first: it is gone at once, and
        // what is left of the payment stays pending until its release.
        let third = paid_appointment(&app, &acme, 4, "evt_paid_3").await;
        assert_eq!(balance_view(acme.provider.1.clone()).await, (-800, 0, 800));
        let fourth = paid_appointment(&app, &acme, 5, "evt_paid_4").await;
        assert_eq!(balance_view(acme.provider.1.clone()).await, (0, 3700, 0));
        let tx = app.t.db.begin().await.unwrap();
        assert_eq!(LedgerRepo::release_due(&tx, acme.scope, acme.provider.0, Utc::now() + Duration::days(30)).await.unwrap(), 3700);
        tx.commit().await.unwrap();
        assert_eq!(balance(&app, &acme).await, (3700, 0));
        let (status, body) = request(&app, "POST", "/api/v1/marketplace/withdrawals", Some(&acme.provider.1), Some(json!({"amount_cents": 3700, "payout_method": "pix"})), None).await;
        assert_eq!(status, 201, "{body}");
        for id in [&third, &fourth] {
            assert_eq!(payment_status(&app, &acme, id).await.0, "paid");
        }
        app.stop().await;
    }
}
