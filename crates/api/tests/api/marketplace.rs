//! The marketplace (balance, ledger, withdrawals, release), notifications, analytics
//! and provider search over HTTP: a role matrix for every route, other users' and
//! other organizations' ids answering 404, and exact figures.

use agenda_entity::enums::{NotificationKind, UserRole};
use agenda_entity::payment_settings;
use agenda_storage::TenantScope;
use agenda_storage::repo::ledger::LedgerRepo;
use agenda_storage::repo::notifications::NotificationRepo;
use agenda_storage::repo::resource::Repo;
use agenda_testkit::both_engines;
use chrono::{Duration, NaiveDate, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Member as User, TestApp, bookable_provider, code, fields, member as user, organization, read,
    request as call,
};

const NOBODY: &str = "00000000-0000-7000-8000-000000000000";

struct World {
    scope: TenantScope,
    admin: User,
    support: User,
    ana: User,
    bruno: User,
    client: User,
    /// An admin of another organization.
    outsider: User,
    service: Uuid,
    day: NaiveDate,
}

/// Two organizations; in "acme" a provider (Ana) with hours every day 09:00–12:00
/// UTC, a 50.00 BRL haircut, and payouts released without delay.
async fn world(app: &TestApp) -> World {
    let scope = organization(app, "acme").await;
    let beta = organization(app, "beta").await;
    let admin = user(app, scope, "acme", "admin@example.com", UserRole::Admin).await;
    let support = user(app, scope, "acme", "support@example.com", UserRole::Support).await;
    let ana = user(app, scope, "acme", "ana@example.com", UserRole::Provider).await;
    let bruno = user(app, scope, "acme", "bruno@example.com", UserRole::Provider).await;
    let client = user(app, scope, "acme", "client@example.com", UserRole::Client).await;
    let outsider = user(app, beta, "beta", "admin@example.com", UserRole::Admin).await;
    let conn = app.t.conn();
    let service = bookable_provider(app, scope, ana.id, json!({"business_name": "Studio Ana", "city": "Recife", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    Repo::<payment_settings::Entity>::create(
        conn,
        scope,
        serde_json::from_value(json!({"payout_delay_days": 0})).unwrap(),
        |_| {},
    )
    .await
    .unwrap();
    World {
        scope,
        admin,
        support,
        ana,
        bruno,
        client,
        outsider,
        service,
        day: (Utc::now() + Duration::days(2)).date_naive(),
    }
}

async fn get(app: &TestApp, path: &str, who: &User) -> (u16, Value) {
    call(app, "GET", path, Some(&who.token), None, None).await
}

async fn post(app: &TestApp, path: &str, who: &User, body: Option<Value>) -> (u16, Value) {
    call(app, "POST", path, Some(&who.token), body, None).await
}

/// Books `hour`:00 on the world's day for the client and returns the appointment id.
async fn book(app: &TestApp, w: &World, hour: u32) -> String {
    let start = w
        .day
        .and_hms_opt(hour, 0, 0)
        .unwrap()
        .and_utc()
        .to_rfc3339();
    let (status, a) = post(
        app,
        "/api/v1/appointments",
        &w.client,
        Some(json!({"service_id": w.service, "start_at": start})),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

/// Confirm, start, pay (pix), complete: 50.00 paid, 10 % fee, 45.00 pending.
async fn complete_paid(app: &TestApp, w: &World, id: &str) {
    for step in ["confirm", "start"] {
        let (status, body) = post(
            app,
            &format!("/api/v1/appointments/{id}/{step}"),
            &w.ana,
            None,
        )
        .await;
        assert_eq!(status, 200, "{step}: {body}");
    }
    let (status, body) = post(
        app,
        &format!("/api/v1/appointments/{id}/payment"),
        &w.ana,
        Some(json!({"method": "pix"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post(
        app,
        &format!("/api/v1/appointments/{id}/complete"),
        &w.ana,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

fn money(body: &Value) -> (i64, i64, &str) {
    (
        body["available_cents"].as_i64().unwrap(),
        body["pending_cents"].as_i64().unwrap(),
        body["currency"].as_str().unwrap(),
    )
}

both_engines! {
    async fn balance_release_and_withdrawals(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let id = book(&app, &w, 9).await;
        complete_paid(&app, &w, &id).await;
        let ana_q = format!("provider_id={}", w.ana.id);

        // Balance: providers their own, staff any provider they name.
        let (status, body) = get(&app, "/api/v1/marketplace/balance", &w.ana).await;
        assert_eq!((status, money(&body)), (200, (0, 4500, "BRL")), "{body}");
        let (status, body) = get(&app, "/api/v1/marketplace/balance", &w.client).await;
        assert_eq!((status, code(&body)), (403, "forbidden"));
        let (status, body) = get(&app, "/api/v1/marketplace/balance", &w.admin).await;
        assert_eq!((status, fields(&body)), (422, vec!["provider_id".to_owned()]), "staff must name the provider");
        for staff in [&w.admin, &w.support] {
            let (status, body) = get(&app, &format!("/api/v1/marketplace/balance?{ana_q}"), staff).await;
            assert_eq!((status, money(&body)), (200, (0, 4500, "BRL")), "{body}");
        }
        let (status, _) = get(&app, &format!("/api/v1/marketplace/balance?{ana_q}"), &w.bruno).await;
        assert_eq!(status, 404, "another provider's balance");
        let (status, _) = get(&app, &format!("/api/v1/marketplace/balance?provider_id={}", w.client.id), &w.admin).await;
        assert_eq!(status, 404, "a client is not a provider");
        let (status, _) = get(&app, &format!("/api/v1/marketplace/balance?{ana_q}"), &w.outsider).await;
        assert_eq!(status, 404, "another organization's provider");
        let (status, body) = get(&app, "/api/v1/marketplace/balance", &w.bruno).await;
        assert_eq!((status, money(&body)), (200, (0, 0, "BRL")), "no ledger yet: zero in the organization's currency");
        let (status, _) = call(&app, "GET", "/api/v1/marketplace/balance", None, None, None).await;
        assert_eq!(status, 401);

        // Transactions: the payment and the commission, newest first, in pages.
        let (status, page) = get(&app, "/api/v1/marketplace/transactions", &w.ana).await;
        assert_eq!(status, 200, "{page}");
        let entries: Vec<(&str, i64)> = page["items"].as_array().unwrap().iter().map(|e| (e["kind"].as_str().unwrap(), e["amount_cents"].as_i64().unwrap())).collect();
        assert_eq!(entries, [("commission", -500), ("payment", 5000)]);
        assert_eq!(page["next"], Value::Null);
        let (status, first) = get(&app, &format!("/api/v1/marketplace/transactions?{ana_q}&limit=1&oldest_first=true"), &w.support).await;
        assert_eq!((status, first["items"][0]["kind"].as_str()), (200, Some("payment")), "{first}");
        let next = first["next"].as_str().unwrap();
        let (_, second) = get(&app, &format!("/api/v1/marketplace/transactions?{ana_q}&limit=1&oldest_first=true&after={next}"), &w.support).await;
        assert_eq!((second["items"][0]["kind"].as_str(), &second["next"]), (Some("commission"), &Value::Null));
        let (status, _) = get(&app, "/api/v1/marketplace/transactions", &w.client).await;
        assert_eq!(status, 403);
        let (status, _) = get(&app, &format!("/api/v1/marketplace/transactions?{ana_q}"), &w.bruno).await;
        assert_eq!(status, 404);
        let (status, _) = get(&app, "/api/v1/marketplace/transactions?limit=1000", &w.ana).await;
        assert_eq!(status, 422, "page size is capped");

        // Release (payout delay 0 days): providers their own, admins any.
        for who in [&w.client, &w.support] {
            let (status, _) = post(&app, "/api/v1/marketplace/release", who, None).await;
            assert_eq!(status, 403);
        }
        let (status, _) = post(&app, &format!("/api/v1/marketplace/release?{ana_q}"), &w.bruno, None).await;
        assert_eq!(status, 404);
        let (status, released) = post(&app, "/api/v1/marketplace/release", &w.ana, None).await;
        assert_eq!(status, 200, "{released}");
        assert_eq!(released["released_cents"], 4500);
        assert_eq!(money(&released["balance"]), (4500, 0, "BRL"));
        let (status, again) = post(&app, &format!("/api/v1/marketplace/release?{ana_q}"), &w.admin, None).await;
        assert_eq!((status, again["released_cents"].as_i64()), (200, Some(0)), "released once: {again}");
        assert_eq!(money(&again["balance"]), (4500, 0, "BRL"));

        // Withdrawals: providers only, retried safely with Idempotency-Key.
        let request = json!({"amount_cents": 1500, "payout_method": "pix"});
        for who in [&w.client, &w.admin, &w.support] {
            let (status, _) = post(&app, "/api/v1/marketplace/withdrawals", who, Some(request.clone())).await;
            assert_eq!(status, 403);
        }
        let url = "/api/v1/marketplace/withdrawals";
        let (status, first) = call(&app, "POST", url, Some(&w.ana.token), Some(request.clone()), Some("w-1")).await;
        assert_eq!(status, 201, "{first}");
        assert_eq!((first["amount_cents"].as_i64(), first["currency"].as_str(), first["status"].as_str()), (Some(1500), Some("BRL"), Some("requested")));
        let response = app.client.post(app.url(url)).bearer_auth(&w.ana.token).header("Idempotency-Key", "w-1").json(&request).send().await.unwrap();
        assert_eq!(response.headers().get("idempotent-replay").map(|v| v.to_str().unwrap()), Some("true"));
        let (status, replay) = read(response).await;
        assert_eq!((status, &replay), (201, &first), "the retry returns the first response");
        let (status, _) = call(&app, "POST", url, Some(&w.ana.token), Some(json!({"amount_cents": 1000, "payout_method": "pix"})), Some("w-1")).await;
        assert_eq!(status, 422, "same key, different body");
        let (_, body) = get(&app, "/api/v1/marketplace/balance", &w.ana).await;
        assert_eq!(money(&body), (3000, 0, "BRL"), "one withdrawal was debited");
        let (_, page) = get(&app, "/api/v1/marketplace/transactions", &w.ana).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 5, "payment, commission, two release entries, one withdrawal");
        let (status, body) = post(&app, url, &w.ana, Some(json!({"amount_cents": 3001, "payout_method": "pix"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["amount_cents".to_owned()]), "above the available balance: {body}");
        let (status, body) = post(&app, url, &w.ana, Some(json!({"amount_cents": 999, "payout_method": "pix"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["amount_cents".to_owned()]), "below the minimum: {body}");
        let (_, body) = get(&app, "/api/v1/marketplace/balance", &w.ana).await;
        assert_eq!(money(&body), (3000, 0, "BRL"), "refusals write nothing");

        // Reading one: its provider and staff; others 404, clients 403.
        let wid = first["id"].as_str().unwrap().to_owned();
        let item = format!("/api/v1/marketplace/withdrawals/{wid}");
        for who in [&w.ana, &w.admin, &w.support] {
            let (status, body) = get(&app, &item, who).await;
            assert_eq!((status, body["id"].as_str()), (200, Some(wid.as_str())));
        }
        assert_eq!(get(&app, &item, &w.bruno).await.0, 404, "another provider's withdrawal");
        assert_eq!(get(&app, &item, &w.outsider).await.0, 404, "another organization's withdrawal");
        assert_eq!(get(&app, &item, &w.client).await.0, 403);
        assert_eq!(get(&app, &format!("/api/v1/marketplace/withdrawals/{NOBODY}"), &w.admin).await.0, 404);

        // Failing it (admins only) returns the money, once.
        let reason = json!({"reason": "bank rejected the key"});
        for who in [&w.ana, &w.support, &w.client] {
            let (status, _) = post(&app, &format!("{item}/fail"), who, Some(reason.clone())).await;
            assert_eq!(status, 403);
        }
        let (status, _) = post(&app, &format!("{item}/fail"), &w.outsider, Some(reason.clone())).await;
        assert_eq!(status, 404, "another organization's withdrawal");
        let (status, body) = post(&app, &format!("{item}/fail"), &w.admin, Some(json!({"reason": ""}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["reason".to_owned()]));
        let (status, failed) = post(&app, &format!("{item}/fail"), &w.admin, Some(reason.clone())).await;
        assert_eq!((status, failed["status"].as_str(), failed["failure_reason"].as_str()), (200, Some("failed"), Some("bank rejected the key")), "{failed}");
        assert_eq!(failed["processed_by"].as_str(), Some(w.admin.id.to_string().as_str()));
        let (_, body) = get(&app, "/api/v1/marketplace/balance", &w.ana).await;
        assert_eq!(money(&body), (4500, 0, "BRL"), "the money came back");
        let (status, body) = post(&app, &format!("{item}/fail"), &w.admin, Some(reason)).await;
        assert_eq!((status, code(&body)), (409, "withdrawal_not_open"), "{body}");
        let (status, _) = post(&app, &format!("{item}/complete"), &w.admin, None).await;
        assert_eq!(status, 409, "a failed withdrawal cannot be paid");

        // Completing one (admins only) keeps the money out.
        let (status, second) = post(&app, url, &w.ana, Some(json!({"amount_cents": 2000, "payout_method": "bank_transfer"}))).await;
        assert_eq!(status, 201, "{second}");
        let item = format!("/api/v1/marketplace/withdrawals/{}", second["id"].as_str().unwrap());
        for who in [&w.ana, &w.support] {
            let (status, _) = post(&app, &format!("{item}/complete"), who, None).await;
            assert_eq!(status, 403);
        }
        let (status, _) = post(&app, &format!("{item}/complete"), &w.outsider, None).await;
        assert_eq!(status, 404);
        let (status, paid) = post(&app, &format!("{item}/complete"), &w.admin, Some(json!({"payout_ref": "bank-42"}))).await;
        assert_eq!((status, paid["status"].as_str(), paid["external_ref"].as_str()), (200, Some("paid"), Some("bank-42")), "{paid}");
        let (_, body) = get(&app, "/api/v1/marketplace/balance", &w.ana).await;
        assert_eq!(money(&body), (2500, 0, "BRL"));
        assert!(LedgerRepo::verify_balance(app.t.conn(), w.scope, w.ana.id).await.unwrap(), "the balance equals the ledger");
        app.stop().await;
    }

    async fn notifications_are_private(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let conn = app.t.conn();
        let mut ids = Vec::new();
        for title in ["first", "second", "third"] {
            let n = NotificationRepo::create(conn, w.scope, w.client.id, NotificationKind::System, title, "body", None).await.unwrap();
            ids.push(n.id);
        }
        let anas = NotificationRepo::create(conn, w.scope, w.ana.id, NotificationKind::PaymentReceived, "paid", "50.00", None).await.unwrap();

        // Every route needs a signed-in user.
        for (method, path) in [("GET", "/api/v1/notifications".to_owned()), ("GET", "/api/v1/notifications/unread-count".to_owned()), ("POST", "/api/v1/notifications/read-all".to_owned()), ("POST", format!("/api/v1/notifications/{}/read", ids[0]))] {
            let (status, _) = call(&app, method, &path, None, None, None).await;
            assert_eq!(status, 401, "{method} {path}");
        }

        let (status, page) = get(&app, "/api/v1/notifications", &w.client).await;
        assert_eq!(status, 200, "{page}");
        let titles: Vec<&str> = page["items"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["third", "second", "first"], "newest first, only their own");
        let (_, count) = get(&app, "/api/v1/notifications/unread-count", &w.client).await;
        assert_eq!(count["unread"], 3);
        let (_, first) = get(&app, "/api/v1/notifications?limit=2", &w.client).await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let (_, rest) = get(&app, &format!("/api/v1/notifications?limit=2&after={}", first["next"].as_str().unwrap()), &w.client).await;
        assert_eq!((rest["items"][0]["title"].as_str(), &rest["next"]), (Some("first"), &Value::Null));
        assert_eq!(get(&app, "/api/v1/notifications?limit=0", &w.client).await.0, 422);

        // Marking read: only one's own.
        let read_one = format!("/api/v1/notifications/{}/read", ids[1]);
        assert_eq!(post(&app, &read_one, &w.ana, None).await.0, 404, "another user's notification");
        assert_eq!(post(&app, &read_one, &w.outsider, None).await.0, 404, "another organization's");
        assert_eq!(post(&app, &format!("/api/v1/notifications/{}/read", anas.id), &w.client, None).await.0, 404);
        assert_eq!(post(&app, &format!("/api/v1/notifications/{NOBODY}/read"), &w.client, None).await.0, 404);
        let (status, read) = post(&app, &read_one, &w.client, None).await;
        assert_eq!((status, read["is_read"].as_bool(), read["title"].as_str()), (200, Some(true), Some("second")), "{read}");
        assert!(read["read_at"].is_string());
        let (_, count) = get(&app, "/api/v1/notifications/unread-count", &w.client).await;
        assert_eq!(count["unread"], 2);
        let (_, unread) = get(&app, "/api/v1/notifications?unread=true", &w.client).await;
        let titles: Vec<&str> = unread["items"].as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap()).collect();
        assert_eq!(titles, ["third", "first"]);

        // Read-all touches only the caller's.
        let (status, body) = post(&app, "/api/v1/notifications/read-all", &w.client, None).await;
        assert_eq!((status, body["updated"].as_u64()), (200, Some(2)));
        let (_, body) = post(&app, "/api/v1/notifications/read-all", &w.client, None).await;
        assert_eq!(body["updated"], 0);
        let (_, count) = get(&app, "/api/v1/notifications/unread-count", &w.client).await;
        assert_eq!(count["unread"], 0);
        let (_, count) = get(&app, "/api/v1/notifications/unread-count", &w.ana).await;
        assert_eq!(count["unread"], 1, "Ana's notification is untouched");
        for who in [&w.admin, &w.support, &w.outsider] {
            let (status, page) = get(&app, "/api/v1/notifications", who).await;
            assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 0));
        }
        app.stop().await;
    }

    async fn analytics_and_search(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let done = book(&app, &w, 9).await;
        complete_paid(&app, &w, &done).await;
        let canceled = book(&app, &w, 10).await;
        let (status, _) = post(&app, &format!("/api/v1/appointments/{canceled}/cancel"), &w.client, None).await;
        assert_eq!(status, 200);
        book(&app, &w, 11).await;
        let period = format!("from={day}&to={day}", day = w.day);
        let ana_q = format!("provider_id={}", w.ana.id);

        // The provider dashboard: providers their own, staff any provider.
        let (status, dash) = get(&app, &format!("/api/v1/analytics/provider?{period}"), &w.ana).await;
        assert_eq!(status, 200, "{dash}");
        let counts = &dash["by_status"];
        assert_eq!((counts["pending"].as_i64(), counts["completed"].as_i64(), counts["canceled"].as_i64(), counts["total"].as_i64()), (Some(1), Some(1), Some(1), Some(3)), "{dash}");
        assert_eq!((dash["revenue_cents"].as_i64(), dash["currency"].as_str()), (Some(5000), Some("BRL")));
        assert_eq!(dash["provider_id"].as_str(), Some(w.ana.id.to_string().as_str()));
        for staff in [&w.admin, &w.support] {
            let (status, body) = get(&app, &format!("/api/v1/analytics/provider?{period}&{ana_q}"), staff).await;
            assert_eq!((status, &body["by_status"]), (200, counts));
        }
        assert_eq!(get(&app, &format!("/api/v1/analytics/provider?{period}"), &w.client).await.0, 403);
        assert_eq!(get(&app, &format!("/api/v1/analytics/provider?{period}&{ana_q}"), &w.bruno).await.0, 404);
        assert_eq!(get(&app, &format!("/api/v1/analytics/provider?{period}&{ana_q}"), &w.outsider).await.0, 404);
        assert_eq!(get(&app, &format!("/api/v1/analytics/provider?{period}"), &w.admin).await.0, 422, "staff must name the provider");
        let (status, body) = get(&app, &format!("/api/v1/analytics/provider?from={}&to={}", w.day, w.day - Duration::days(1)), &w.ana).await;
        assert_eq!((status, fields(&body)), (422, vec!["period".to_owned()]), "{body}");
        assert_eq!(get(&app, "/api/v1/analytics/provider?from=tomorrow&to=2026-01-01", &w.ana).await.0, 400);

        // The organization summary: staff only.
        for staff in [&w.admin, &w.support] {
            let (status, org) = get(&app, &format!("/api/v1/analytics/organization?{period}"), staff).await;
            assert_eq!(status, 200, "{org}");
            assert_eq!(&org["by_status"], counts);
            assert_eq!((org["revenue_cents"].as_i64(), org["active_providers"].as_i64(), org["providers_with_appointments"].as_i64()), (Some(5000), Some(2), Some(1)), "{org}");
        }
        for who in [&w.ana, &w.client] {
            assert_eq!(get(&app, &format!("/api/v1/analytics/organization?{period}"), who).await.0, 403);
        }
        let (status, other) = get(&app, &format!("/api/v1/analytics/organization?{period}"), &w.outsider).await;
        assert_eq!((status, other["by_status"]["total"].as_i64()), (200, Some(0)), "another organization sees only its own");

        // Provider search: any signed-in user, this organization only.
        for (who, text) in [(&w.client, "studio"), (&w.bruno, "hair")] {
            let (status, page) = get(&app, &format!("/api/v1/providers?text={text}"), who).await;
            assert_eq!(status, 200, "{page}");
            let hits = page["items"].as_array().unwrap();
            assert_eq!(hits.len(), 1, "{page}");
            assert_eq!(hits[0]["provider_id"].as_str(), Some(w.ana.id.to_string().as_str()));
            assert_eq!((hits[0]["business_name"].as_str(), hits[0]["city"].as_str()), (Some("Studio Ana"), Some("Recife")));
            assert_eq!(hits[0]["services"], json!([{"name": "Haircut", "min_price_cents": 5000}]));
        }
        let (_, page) = get(&app, "/api/v1/providers?city=recife", &w.admin).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let (_, page) = get(&app, "/api/v1/providers?text=massage", &w.client).await;
        assert!(page["items"].as_array().unwrap().is_empty());
        let (_, page) = get(&app, "/api/v1/providers?text=studio", &w.outsider).await;
        assert!(page["items"].as_array().unwrap().is_empty(), "another organization's providers are not found");
        let (status, body) = get(&app, "/api/v1/providers?text=a", &w.client).await;
        assert_eq!((status, fields(&body)), (422, vec!["text".to_owned()]), "{body}");
        assert_eq!(get(&app, "/api/v1/providers?min_rating=6", &w.client).await.0, 422);
        assert_eq!(call(&app, "GET", "/api/v1/providers", None, None, None).await.0, 401);
        app.stop().await;
    }
}

/// Every new operation is tagged, needs the bearer token, and documents its errors
/// with the one error shape.
#[tokio::test]
async fn the_new_routes_are_documented() {
    let app = TestApp::spawn(agenda_testkit::TestDb::sqlite().await).await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let operations = [
        ("get", "/api/v1/marketplace/balance", "marketplace"),
        ("get", "/api/v1/marketplace/transactions", "marketplace"),
        ("post", "/api/v1/marketplace/withdrawals", "marketplace"),
        ("get", "/api/v1/marketplace/withdrawals/{id}", "marketplace"),
        (
            "post",
            "/api/v1/marketplace/withdrawals/{id}/complete",
            "marketplace",
        ),
        (
            "post",
            "/api/v1/marketplace/withdrawals/{id}/fail",
            "marketplace",
        ),
        ("post", "/api/v1/marketplace/release", "marketplace"),
        ("get", "/api/v1/notifications", "notifications"),
        ("post", "/api/v1/notifications/{id}/read", "notifications"),
        ("post", "/api/v1/notifications/read-all", "notifications"),
        ("get", "/api/v1/notifications/unread-count", "notifications"),
        ("get", "/api/v1/analytics/provider", "analytics"),
        ("get", "/api/v1/analytics/organization", "analytics"),
        ("get", "/api/v1/providers", "analytics"),
    ];
    for (method, path, tag) in operations {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!([tag]), "{method} {path}");
        assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.contains_key("401"), "{method} {path}");
        for (status, response) in responses {
            // Shared answers live in components.responses.
            let response = match response["$ref"].as_str() {
                Some(name) => &doc["components"]["responses"][name.rsplit('/').next().unwrap()],
                None => response,
            };
            let schema = &response["content"]["application/json"]["schema"]["$ref"];
            if status.starts_with('2') {
                assert!(schema.is_string(), "{method} {path} {status}: a typed body");
            } else {
                assert_eq!(
                    schema, "#/components/schemas/ErrorResponse",
                    "{method} {path} {status}"
                );
            }
        }
    }
    let tags: Vec<&str> = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for tag in ["marketplace", "notifications", "analytics"] {
        assert!(tags.contains(&tag), "{tag} is described");
    }
    assert_eq!(
        doc["components"]["schemas"]["ProviderDashboardView"]["type"],
        "object"
    );
    app.stop().await;
}
