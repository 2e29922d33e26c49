//! The booking journey over HTTP: slots, booking with Idempotency-Key, the role
//! rules, status changes, payment, and the ledger it feeds.

use agenda_storage::TenantScope;
use agenda_storage::repo::ledger::LedgerRepo;
use agenda_testkit::both_engines;
use chrono::{Datelike, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, bookable_provider, code, fields, request, scope_of, sign_up_body};

const PASSWORD: &str = "correct horse battery";

pub(crate) struct People {
    pub scope: TenantScope,
    pub provider: (Uuid, String),
    pub client: (Uuid, String),
    pub other_client: (Uuid, String),
    pub service: Uuid,
}

async fn sign_up(app: &TestApp, email: &str, role: &str) -> (Uuid, String) {
    let (status, user) = app
        .post("/api/v1/auth/register", &json!({"organization": "acme", "email": email, "password": PASSWORD, "full_name": "Someone", "role": role}))
        .await;
    assert_eq!(status, 201, "{user}");
    let (_, signed_in) = app
        .post(
            "/api/v1/auth/login",
            &json!({"organization": "acme", "email": email, "password": PASSWORD}),
        )
        .await;
    (
        user["id"].as_str().unwrap().parse().unwrap(),
        signed_in["token"].as_str().unwrap().to_owned(),
    )
}

pub(crate) async fn setup(app: &TestApp) -> People {
    let (_, org) = app
        .post(
            "/api/v1/organizations",
            &sign_up_body(
                json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"}),
            ),
        )
        .await;
    let scope = scope_of(&org);
    let provider = sign_up(app, "provider@example.com", "provider").await;
    let client = sign_up(app, "client@example.com", "client").await;
    let other_client = sign_up(app, "other@example.com", "client").await;
    // Hours and the service are set through the storage layer here (their routes
    // belong to the catalogue and scheduling-rules areas).
    let service = bookable_provider(app, scope, provider.0, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    People {
        scope,
        provider,
        client,
        other_client,
        service,
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    request(app, method, path, Some(token), body, key).await
}

both_engines! {
    async fn the_booking_journey(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let p = setup(&app).await;
        let day = (Utc::now() + Duration::days(2)).date_naive();
        let path = format!("/api/v1/providers/{}/slots?service_id={}&from={day}&to={day}", p.provider.0, p.service);
        let (status, slots) = call(&app, "GET", &path, &p.client.1, None, None).await;
        assert_eq!(status, 200, "{slots}");
        let starts: Vec<&str> = slots.as_array().unwrap().iter().map(|s| s["start"].as_str().unwrap()).collect();
        assert_eq!(starts.len(), 3, "09:00, 10:00, 11:00 UTC: {slots}");
        assert_eq!(day.day(), chrono::DateTime::parse_from_rfc3339(starts[0]).unwrap().day());

        // Booking, retried with the same key: one appointment, the same answer.
        let book = json!({"service_id": p.service, "start_at": starts[0], "notes": "first visit"});
        let (status, first) = call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(book.clone()), Some("key-1")).await;
        assert_eq!(status, 201, "{first}");
        assert_eq!((first["status"].as_str(), first["price_cents"].as_i64(), first["currency"].as_str()), (Some("pending"), Some(5000), Some("BRL")));
        let (status, again) = call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(book.clone()), Some("key-1")).await;
        assert_eq!((status, &again), (201, &first), "the retry returns the first response");
        let (status, body) = call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(json!({"service_id": p.service, "start_at": starts[1]})), Some("key-1")).await;
        assert_eq!(status, 422, "same key, different request: {body}");
        let (_, page) = call(&app, "GET", "/api/v1/appointments", &p.client.1, None, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "nothing new was created");

        // The slot is taken now.
        let (status, body) = call(&app, "POST", "/api/v1/appointments", &p.other_client.1, Some(book.clone()), None).await;
        assert_eq!((status, code(&body)), (409, "conflict"), "{body}");
        assert_eq!(fields(&body), ["start_at"]);
        let (status, _) = call(&app, "POST", "/api/v1/appointments", &p.provider.1, Some(book.clone()), None).await;
        assert_eq!(status, 403, "providers do not book");

        // Who sees and changes what.
        let id = first["id"].as_str().unwrap();
        let (status, _) = call(&app, "GET", &format!("/api/v1/appointments/{id}"), &p.other_client.1, None, None).await;
        assert_eq!(status, 404, "another client's appointment does not exist for them");
        let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/confirm"), &p.client.1, None, None).await;
        assert_eq!((status, code(&body)), (403, "forbidden_transition"));
        let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/complete"), &p.provider.1, None, None).await;
        assert_eq!((status, code(&body)), (409, "illegal_transition"));
        for step in ["confirm", "start"] {
            let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/{step}"), &p.provider.1, None, None).await;
            assert_eq!(status, 200, "{step}: {body}");
        }
        let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/payment"), &p.client.1, Some(json!({"method": "pix"})), None).await;
        assert_eq!(status, 403, "clients do not record payments: {body}");
        let (status, paid) = call(&app, "POST", &format!("/api/v1/appointments/{id}/payment"), &p.provider.1, Some(json!({"method": "pix"})), Some("pay-1")).await;
        assert_eq!((status, paid["payment_status"].as_str()), (200, Some("paid")));
        let (status, done) = call(&app, "POST", &format!("/api/v1/appointments/{id}/complete"), &p.provider.1, Some(json!({"reason": "all good"})), None).await;
        assert_eq!((status, done["status"].as_str()), (200, Some("completed")), "{done}");

        // The ledger: 50.00 paid, 10% platform fee, 45.00 pending for the provider.
        let balance = LedgerRepo::balance(app.t.conn(), p.scope, p.provider.0).await.unwrap();
        assert_eq!(balance.pending_cents, 4500);

        let (_, history) = call(&app, "GET", &format!("/api/v1/appointments/{id}/history"), &p.client.1, None, None).await;
        let steps: Vec<&str> = history.as_array().unwrap().iter().map(|h| h["to_status"].as_str().unwrap()).collect();
        assert_eq!(steps, ["pending", "confirmed", "in_progress", "completed"]);

        // Lists are scoped by role.
        let (_, other) = call(&app, "GET", "/api/v1/appointments", &p.other_client.1, None, None).await;
        assert!(other["items"].as_array().unwrap().is_empty());
        let (_, provider_page) = call(&app, "GET", &format!("/api/v1/appointments?client_id={}", p.other_client.0), &p.provider.1, None, None).await;
        assert!(provider_page["items"].as_array().unwrap().is_empty());
        let (status, _) = call(&app, "GET", "/api/v1/appointments?limit=1000", &p.client.1, None, None).await;
        assert_eq!(status, 422, "page size is capped");
        let _ = p.client.0;
        app.stop().await;
    }

    async fn cancel_and_reschedule(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let p = setup(&app).await;
        let day = (Utc::now() + Duration::days(3)).date_naive();
        let at = |h: u32| day.and_hms_opt(h, 0, 0).unwrap().and_utc().to_rfc3339();
        let (status, a) = call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(json!({"service_id": p.service, "start_at": at(9)})), None).await;
        assert_eq!(status, 201, "{a}");
        let id = a["id"].as_str().unwrap();
        let (status, moved) = call(&app, "POST", &format!("/api/v1/appointments/{id}/reschedule"), &p.client.1, Some(json!({"start_at": at(11)})), None).await;
        assert_eq!(status, 200, "{moved}");
        assert_eq!(chrono::DateTime::parse_from_rfc3339(moved["start_at"].as_str().unwrap()).unwrap().to_rfc3339(), chrono::DateTime::parse_from_rfc3339(&at(11)).unwrap().to_rfc3339());
        let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/reschedule"), &p.client.1, Some(json!({"start_at": at(15)})), None).await;
        assert_eq!((status, fields(&body)), (422, vec!["start_at".to_owned()]), "outside hours");
        let (status, canceled) = call(&app, "POST", &format!("/api/v1/appointments/{id}/cancel"), &p.client.1, Some(json!({"reason": "sick"})), None).await;
        assert_eq!((status, canceled["cancellation_reason"].as_str()), (200, Some("sick")));
        // The freed slot can be booked by someone else.
        let (status, _) = call(&app, "POST", "/api/v1/appointments", &p.other_client.1, Some(json!({"service_id": p.service, "start_at": at(11)})), None).await;
        assert_eq!(status, 201);
        let (status, body) = call(&app, "POST", &format!("/api/v1/appointments/{id}/cancel"), &p.client.1, None, None).await;
        assert_eq!((status, code(&body)), (409, "illegal_transition"), "already canceled");
        app.stop().await;
    }
}

both_engines! {
    async fn booking_references_belong_to_the_booking(t: TestDb) {
        use agenda_entity::enums::UserRole;
        let app = TestApp::spawn(t).await;
        let p = setup(&app).await;
        let admin = crate::support::member(&app, p.scope, "acme", "admin@example.com", UserRole::Admin).await;
        let day = (Utc::now() + Duration::days(2)).date_naive();
        let at = |h: u32| day.and_hms_opt(h, 0, 0).unwrap().and_utc().to_rfc3339();
        let address = json!({"kind": "home", "street": "Rua A", "city": "São Paulo", "state": "SP", "postal_code": "01000-000", "country": "BR"});
        let (status, mine) = call(&app, "POST", "/api/v1/users/me/addresses", &p.client.1, Some(address.clone()), None).await;
        assert_eq!(status, 201, "{mine}");
        let (_, theirs) = call(&app, "POST", "/api/v1/users/me/addresses", &p.other_client.1, Some(address), None).await;
        let book = |extra: Value| {
            let mut body = json!({"service_id": p.service, "start_at": at(9)});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let refused = |(status, body): (u16, Value), field: &str| {
            assert_eq!((status, code(&body), fields(&body)), (422, "validation_failed", vec![field.to_owned()]), "{body}");
        };

        // The address must be the client's own.
        for address_id in [theirs["id"].clone(), json!(Uuid::now_v7())] {
            refused(call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(book(json!({"address_id": address_id}))), None).await, "address_id");
            refused(call(&app, "POST", "/api/v1/appointments", &admin.token, Some(book(json!({"client_id": p.client.0, "address_id": address_id}))), None).await, "address_id");
        }
        // Staff book for an active client of the organization, never for anyone else.
        for client_id in [p.provider.0, admin.id, Uuid::now_v7()] {
            refused(call(&app, "POST", "/api/v1/appointments", &admin.token, Some(book(json!({"client_id": client_id}))), None).await, "client_id");
        }
        let other_org = crate::support::organization(&app, "elsewhere").await;
        let stranger = crate::support::member(&app, other_org, "elsewhere", "stranger@example.com", UserRole::Client).await;
        refused(call(&app, "POST", "/api/v1/appointments", &admin.token, Some(book(json!({"client_id": stranger.id}))), None).await, "client_id");
        {
            use agenda_entity::user;
            use sea_orm::sea_query::Expr;
            use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
            user::Entity::update_many()
                .col_expr(user::Column::IsActive, Expr::value(false))
                .filter(user::Column::Id.eq(p.other_client.0))
                .exec(app.t.conn())
                .await
                .unwrap();
        }
        refused(call(&app, "POST", "/api/v1/appointments", &admin.token, Some(book(json!({"client_id": p.other_client.0}))), None).await, "client_id");
        let (_, page) = call(&app, "GET", "/api/v1/appointments", &admin.token, None, None).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0, "nothing was booked: {page}");

        // The right references book.
        let (status, booked) = call(&app, "POST", "/api/v1/appointments", &p.client.1, Some(book(json!({"address_id": mine["id"]}))), None).await;
        assert_eq!(status, 201, "{booked}");
        let stored = agenda_storage::repo::appointments::AppointmentRepo::get(app.t.conn(), p.scope, booked["id"].as_str().unwrap().parse().unwrap()).await.unwrap();
        assert_eq!(stored.address_id.map(|a| a.to_string()).as_deref(), mine["id"].as_str());
        let (status, booked) = call(&app, "POST", "/api/v1/appointments", &admin.token, Some(json!({"service_id": p.service, "start_at": at(10), "client_id": p.client.0, "address_id": mine["id"]})), None).await;
        assert_eq!((status, booked["client_id"].as_str()), (201, Some(p.client.0.to_string().as_str())), "{booked}");
        app.stop().await;
    }
}

both_engines! {
    /// The whole journey through the API only: sign up, set up the provider, list
    /// slots, book, confirm, start, pay, complete, review, and see the balance.
    async fn the_booking_journey_entirely_over_http(t: TestDb) {
        let app = TestApp::spawn(t).await;
        booking_journey_over_http(&app).await;
        app.stop().await;
    }
}

/// The journey of `the_booking_journey_entirely_over_http` against `app` (also run
/// behind PgBouncer, in the `scaling` module).
pub(crate) async fn booking_journey_over_http(app: &TestApp) {
    let (status, _) = app
        .post("/api/v1/organizations", &sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "America/Sao_Paulo", "currency": "BRL"})))
        .await;
    assert_eq!(status, 201);
    let (provider_id, provider) = sign_up(app, "provider@example.com", "provider").await;
    let (_, client) = sign_up(app, "client@example.com", "client").await;

    let (status, body) = call(app, "PUT", "/api/v1/providers/me/settings", &provider,
        Some(crate::support::full_settings(json!({"business_name": "Studio Ana", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0}))), None).await;
    assert_eq!(status, 201, "{body}");
    let (status, service) = call(
        app,
        "POST",
        "/api/v1/services",
        &provider,
        Some(json!({"name": "Haircut", "duration_minutes": 60, "price_cents": 8000})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{service}");
    let service_id = service["id"].as_str().unwrap().to_owned();
    for weekday in 1..=7 {
        let (status, body) = call(app, "POST", "/api/v1/availability", &provider,
            Some(json!({"kind": "weekly", "weekday": weekday, "start_time": "09:00", "end_time": "12:00"})), None).await;
        assert_eq!(status, 201, "{body}");
    }

    let day = (Utc::now() + Duration::days(3)).date_naive();
    let (status, slots) = call(
        app,
        "GET",
        &format!(
            "/api/v1/providers/{provider_id}/slots?service_id={service_id}&from={day}&to={day}"
        ),
        &client,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{slots}");
    let starts: Vec<String> = slots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap().to_owned())
        .collect();
    // 09:00, 10:00 and 11:00 in São Paulo (UTC−3) are 12:00, 13:00, 14:00 UTC.
    assert_eq!(starts.len(), 3, "{slots}");
    assert!(starts[0].contains("T12:00:00"), "{starts:?}");

    let (status, booked) = call(
        app,
        "POST",
        "/api/v1/appointments",
        &client,
        Some(json!({"service_id": service_id, "start_at": starts[1]})),
        Some("journey-1"),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    let id = booked["id"].as_str().unwrap().to_owned();
    for step in ["confirm", "start"] {
        assert_eq!(
            call(
                app,
                "POST",
                &format!("/api/v1/appointments/{id}/{step}"),
                &provider,
                None,
                None
            )
            .await
            .0,
            200
        );
    }
    assert_eq!(
        call(
            app,
            "POST",
            &format!("/api/v1/appointments/{id}/payment"),
            &provider,
            Some(json!({"method": "pix"})),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            app,
            "POST",
            &format!("/api/v1/appointments/{id}/complete"),
            &provider,
            None,
            None
        )
        .await
        .0,
        200
    );

    let (status, review) = call(
        app,
        "POST",
        "/api/v1/reviews",
        &client,
        Some(json!({"appointment_id": id, "rating": 5, "comment": "Great"})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{review}");

    let (status, balance) = call(
        app,
        "GET",
        "/api/v1/marketplace/balance",
        &provider,
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{balance}");
    // 80.00 paid, 10% platform fee: 72.00 pending until the payout delay passes.
    assert_eq!(
        (
            balance["pending_cents"].as_i64(),
            balance["available_cents"].as_i64()
        ),
        (Some(7200), Some(0))
    );
    assert_eq!(balance["currency"], "BRL");
}
