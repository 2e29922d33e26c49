//! Promotions applied at booking, through HTTP: a coupon's discount and promotion are
//! stored on the appointment, usage limits hold under concurrency (50 concurrent
//! bookings with a 10-use coupon give exactly 10 discounted bookings), the per-client
//! limit too, canceling returns the use, and automatic promotions apply by scope.

use agenda_entity::enums::UserRole;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{Member, TestApp, api, bookable_provider, code, member, organization};

struct Shop {
    admin: Member,
    client: Member,
    provider: Member,
    service: uuid::Uuid,
}

async fn shop(app: &TestApp) -> Shop {
    let scope = organization(app, "acme").await;
    let admin = member(
        app,
        scope,
        "acme",
        "admin@acme.example.com",
        UserRole::Admin,
    )
    .await;
    let client = member(
        app,
        scope,
        "acme",
        "client@acme.example.com",
        UserRole::Client,
    )
    .await;
    let provider = member(
        app,
        scope,
        "acme",
        "ana@acme.example.com",
        UserRole::Provider,
    )
    .await;
    let service = bookable_provider(app, scope, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    Shop {
        admin,
        client,
        provider,
        service,
    }
}

/// At least `n` free starts of the shop's service, from tomorrow on.
async fn free_starts(app: &TestApp, shop: &Shop, n: usize) -> Vec<String> {
    let from = (Utc::now() + Duration::days(1)).date_naive();
    let to = from + Duration::days(30);
    let path = format!(
        "/providers/{}/slots?service_id={}&from={from}&to={to}",
        shop.provider.id, shop.service
    );
    let (status, slots) = api(app, "GET", &path, &shop.client.token, None).await;
    assert_eq!(status, 200, "{slots}");
    let starts: Vec<String> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect();
    assert!(starts.len() >= n, "only {} free slots", starts.len());
    starts
}

async fn promotion(app: &TestApp, shop: &Shop, body: Value) -> String {
    let mut body = body;
    body["valid_from"] = json!(
        (Utc::now() - Duration::days(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    );
    let (status, row) = api(app, "POST", "/promotions", &shop.admin.token, Some(body)).await;
    assert_eq!(status, 201, "{row}");
    row["id"].as_str().unwrap().to_owned()
}

async fn redemptions(app: &TestApp, shop: &Shop, id: &str) -> i64 {
    let (status, row) = api(
        app,
        "GET",
        &format!("/promotions/{id}"),
        &shop.admin.token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{row}");
    row["redemptions_count"].as_i64().unwrap()
}

fn book(shop: &Shop, start: &str, coupon: Option<&str>) -> Value {
    let mut body = json!({"service_id": shop.service, "start_at": start, "payment_method": "pix"});
    if let Some(coupon) = coupon {
        body["coupon_code"] = json!(coupon);
    }
    body
}

/// Books every start at once with `coupon`, as the shop's client.
async fn book_all_at_once(
    app: &TestApp,
    shop: &Shop,
    starts: &[String],
    coupon: &str,
) -> Vec<(u16, Value)> {
    futures::future::join_all(starts.iter().map(|start| {
        let body = book(shop, start, Some(coupon));
        async move { api(app, "POST", "/appointments", &shop.client.token, Some(body)).await }
    }))
    .await
}

both_engines! {
    async fn fifty_concurrent_bookings_with_a_ten_use_coupon_give_exactly_ten_discounts(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let shop = shop(&app).await;
        let ten = promotion(&app, &shop, json!({"code": "TEN", "name": "Ten uses", "discount_type": "percentage", "discount_value": 1000, "max_redemptions": 10})).await;
        let starts = free_starts(&app, &shop, 52).await;

        let answers = book_all_at_once(&app, &shop, &starts[..50], "ten").await;
        let booked: Vec<&Value> = answers.iter().filter(|(s, _)| *s == 201).map(|(_, b)| b).collect();
        let refused = answers.iter().filter(|(s, b)| *s == 409 && code(b) == "coupon_exhausted").count();
        assert_eq!(booked.len(), 10, "{answers:?}");
        assert_eq!(refused, 40, "every other answer is coupon_exhausted: {answers:?}");
        for a in &booked {
            assert_eq!(a["discount_cents"], 500, "10% of 50.00: {a}");
            assert_eq!(a["promotion_id"], ten.as_str());
        }
        assert_eq!(redemptions(&app, &shop, &ten).await, 10);

        // Canceling gives the use back: one more booking gets it, then none.
        let id = booked[0]["id"].as_str().unwrap();
        let (status, body) = api(&app, "POST", &format!("/appointments/{id}/cancel"), &shop.client.token, Some(json!({}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(redemptions(&app, &shop, &ten).await, 9);
        let (status, body) = api(&app, "POST", "/appointments", &shop.client.token, Some(book(&shop, &starts[50], Some("TEN")))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["discount_cents"], 500);
        let (status, body) = api(&app, "POST", "/appointments", &shop.client.token, Some(book(&shop, &starts[51], Some("TEN")))).await;
        assert_eq!((status, code(&body)), (409, "coupon_exhausted"), "{body}");
        assert_eq!(redemptions(&app, &shop, &ten).await, 10);
        app.stop().await;
    }
}

both_engines! {
    async fn per_client_limits_hold_under_concurrency_and_bad_coupons_are_refused(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let shop = shop(&app).await;
        let once = promotion(&app, &shop, json!({"code": "ONCE", "name": "Once each", "discount_type": "fixed", "discount_value": 1000, "max_redemptions_per_client": 1})).await;
        let starts = free_starts(&app, &shop, 8).await;
        let answers = book_all_at_once(&app, &shop, &starts[..5], "ONCE").await;
        assert_eq!(answers.iter().filter(|(s, _)| *s == 201).count(), 1, "{answers:?}");
        assert_eq!(answers.iter().filter(|(s, b)| *s == 409 && code(b) == "coupon_limit_reached").count(), 4, "{answers:?}");
        assert_eq!(redemptions(&app, &shop, &once).await, 1, "a refused claim gives its use back");

        // A coupon that does not apply is refused, naming the field; nothing is booked.
        let (status, body) = api(&app, "POST", "/appointments", &shop.client.token, Some(book(&shop, &starts[6], Some("NOPE")))).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "coupon_code", "{body}");

        // An automatic promotion (no code) for this service applies by itself.
        let auto = promotion(&app, &shop, json!({"name": "Opening week", "discount_type": "fixed", "discount_value": 700, "scope": "service", "service_id": shop.service})).await;
        let (status, body) = api(&app, "POST", "/appointments", &shop.client.token, Some(book(&shop, &starts[7], None))).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!((body["discount_cents"].as_i64(), body["promotion_id"].as_str()), (Some(700), Some(auto.as_str())));
        assert_eq!(redemptions(&app, &shop, &auto).await, 1);
        app.stop().await;
    }
}

both_engines! {
    async fn worked_example_a_coupon_booking_and_its_ledger(t: TestDb) {
        // docs/api.md, "Worked example": 50.00 with WELCOME10 (10 %) is 45.00 to
        // pay; the platform fee (default 10 %) is taken on 45.00, so the provider's
        // pending balance grows by 40.50.
        let app = TestApp::spawn(t).await;
        let shop = shop(&app).await;
        let welcome = promotion(&app, &shop, json!({"code": "WELCOME10", "name": "Welcome", "discount_type": "percentage", "discount_value": 1000})).await;
        let start = free_starts(&app, &shop, 1).await.remove(0);
        let (status, booked) = api(&app, "POST", "/appointments", &shop.client.token, Some(book(&shop, &start, Some("welcome10")))).await;
        assert_eq!(status, 201, "{booked}");
        assert_eq!((booked["price_cents"].as_i64(), booked["discount_cents"].as_i64()), (Some(5000), Some(500)));
        assert_eq!(booked["promotion_id"], welcome.as_str());
        let id = booked["id"].as_str().unwrap();
        for step in ["confirm", "start"] {
            let (status, body) = api(&app, "POST", &format!("/appointments/{id}/{step}"), &shop.provider.token, None).await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        let (status, paid) = api(&app, "POST", &format!("/appointments/{id}/payment"), &shop.provider.token, Some(json!({"method": "pix"}))).await;
        assert_eq!((status, paid["payment_status"].as_str()), (200, Some("paid")), "{paid}");
        let (status, done) = api(&app, "POST", &format!("/appointments/{id}/complete"), &shop.provider.token, Some(json!({}))).await;
        assert_eq!(status, 200, "{done}");
        let (status, balance) = api(&app, "GET", "/marketplace/balance", &shop.provider.token, None).await;
        assert_eq!(status, 200, "{balance}");
        assert_eq!(balance["pending_cents"], 4050, "45.00 paid minus the 4.50 fee: {balance}");
        let (_, entries) = api(&app, "GET", "/marketplace/transactions", &shop.provider.token, None).await;
        let amounts: Vec<(String, i64)> = entries["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["kind"].as_str().unwrap().to_owned(), e["amount_cents"].as_i64().unwrap()))
            .collect();
        assert!(amounts.contains(&("payment".into(), 4500)) && amounts.contains(&("commission".into(), -450)), "{amounts:?}");
        app.stop().await;
    }
}
