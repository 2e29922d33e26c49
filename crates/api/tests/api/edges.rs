//! No input gives a 5xx: the cases issue 12 measured on `main`, each on both engines.
//! Before the edge types, every one of these answered 500 on PostgreSQL (NUL bytes,
//! years before 4713 BC), panicked on both engines (`-262143-01-01`), answered 413 in
//! plain text, or carried a parser's line numbers.

use agenda_entity::enums::UserRole;
use agenda_testkit::both_engines;
use serde_json::{Value, json};

use crate::support::{Member, TestApp, bookable_provider, code, member, organization, request};

/// 422 `field` with `code` on the error body.
#[track_caller]
fn rejects(status: u16, body: &Value, field: &str, field_code: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(code(body), "validation_failed", "{body}");
    let f = &body["error"]["fields"][0];
    assert_eq!(
        (f["field"].as_str(), f["code"].as_str()),
        (Some(field), Some(field_code)),
        "{body}"
    );
}

struct World {
    app: TestApp,
    admin: Member,
    provider: Member,
    client: Member,
    service: uuid::Uuid,
}

async fn world(t: agenda_testkit::TestDb) -> World {
    let app = TestApp::spawn(t).await;
    let scope = organization(&app, "edges").await;
    let admin = member(&app, scope, "edges", "admin@edges.test", UserRole::Admin).await;
    let provider = member(&app, scope, "edges", "pro@edges.test", UserRole::Provider).await;
    let client = member(&app, scope, "edges", "client@edges.test", UserRole::Client).await;
    let service =
        bookable_provider(&app, scope, provider.id, json!({"business_name": "Edges"})).await;
    World {
        app,
        admin,
        provider,
        client,
        service,
    }
}

both_engines! {
    async fn nul_characters_are_422_on_their_field(t: TestDb) {
        let w = world(t).await;
        let app = &w.app;
        // An unauthenticated body.
        let (status, body) = request(app, "POST", "/api/v1/auth/login", None,
            Some(json!({"organization": "ed\u{0}ges", "email": "a@b.c", "password": "x"})), None).await;
        rejects(status, &body, "organization", "nul_character");
        // A nested key and value of a signed-in body.
        let (status, body) = request(app, "POST", "/api/v1/appointments", Some(&w.client.token),
            Some(json!({"service_id": w.service, "start_at": "2030-01-01T10:00:00Z", "notes": "a\u{0}b"})), None).await;
        rejects(status, &body, "notes", "nul_character");
        let (status, body) = request(app, "PATCH", "/api/v1/users/me", Some(&w.client.token),
            Some(json!({"full_name": "x", "ph\u{0}one": "1"})), None).await;
        rejects(status, &body, "ph\u{0}one", "nul_character");
        // Query strings: a typed query and a generic list's filter.
        let (status, body) = request(app, "GET", "/api/v1/niches?slug=%00", Some(&w.admin.token), None, None).await;
        rejects(status, &body, "slug", "nul_character");
        let (status, body) = request(app, "GET", "/api/v1/providers?text=ab%00", Some(&w.client.token), None, None).await;
        rejects(status, &body, "text", "nul_character");
        // A path segment.
        let (status, body) = request(app, "POST", "/api/v1/webhooks/payments/str%00ipe", None, Some(json!({})), None).await;
        rejects(status, &body, "processor", "nul_character");
        app.t.db.conn().ping().await.unwrap();
        w.app.stop().await;
    }

    async fn instants_and_dates_outside_the_supported_range_are_422(t: TestDb) {
        let w = world(t).await;
        let app = &w.app;
        let p = w.provider.id;
        let s = w.service;
        for (method, path, token, body, field) in [
            ("GET", "/api/v1/appointments?from=-5000-01-01T00:00:00Z".to_owned(), &w.admin.token, None, "from"),
            ("GET", "/api/v1/analytics/organization?from=-5000-01-01&to=-5000-01-02".to_owned(), &w.admin.token, None, "from"),
            ("GET", format!("/api/v1/providers/{p}/slots?service_id={s}&from=-5000-01-01&to=-5000-01-02"), &w.client.token, None, "from"),
            ("GET", format!("/api/v1/providers/{p}/slots?service_id={s}&from=-262143-01-01&to=-262143-01-02"), &w.client.token, None, "from"),
            ("GET", format!("/api/v1/providers/{p}/slots?service_id={s}&from=2026-01-01&to=%2B262142-12-31"), &w.client.token, None, "to"),
            ("POST", "/api/v1/appointments".to_owned(), &w.client.token,
                Some(json!({"service_id": s, "start_at": "-262143-01-01T00:00:00Z"})), "start_at"),
            ("POST", "/api/v1/appointments".to_owned(), &w.client.token,
                Some(json!({"service_id": s, "start_at": "-5000-01-01T00:00:00Z"})), "start_at"),
            ("POST", "/api/v1/promotions".to_owned(), &w.admin.token,
                Some(json!({"name": "x", "discount_type": "fixed", "discount_value": 100, "valid_from": "-5000-01-01T00:00:00Z"})), "valid_from"),
            ("POST", "/api/v1/blocked-slots".to_owned(), &w.provider.token,
                Some(json!({"kind": "one_off", "start_at": "-5000-01-01T00:00:00Z", "end_at": "2026-01-01T01:00:00Z"})), "start_at"),
            ("POST", "/api/v1/availability".to_owned(), &w.provider.token,
                Some(json!({"kind": "override", "date": "0000-12-31", "is_available": false})), "date"),
        ] {
            let (status, answer) = request(app, method, &path, Some(token), body, None).await;
            assert_eq!(status, 422, "{method} {path}: {answer}");
            let f = &answer["error"]["fields"][0];
            assert_eq!((f["field"].as_str(), f["code"].as_str()), (Some(field), Some("out_of_range")), "{method} {path}: {answer}");
        }
        // The ends of the range are accepted (and answer without a 5xx).
        let (status, body) = request(app, "GET",
            &format!("/api/v1/providers/{p}/slots?service_id={s}&from=9999-12-29&to=9999-12-31"), Some(&w.client.token), None, None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = request(app, "GET",
            "/api/v1/appointments?from=0001-01-01T00:00:00Z&to=9999-12-31T23:59:59Z", Some(&w.admin.token), None, None).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = request(app, "POST", "/api/v1/appointments", Some(&w.client.token),
            Some(json!({"service_id": s, "start_at": "0001-01-01T00:00:00Z"})), None).await;
        assert_eq!(status, 422, "{body}");
        w.app.stop().await;
    }

    async fn raw_body_routes_answer_413_in_the_error_shape(t: TestDb) {
        let w = world(t).await;
        let app = &w.app;
        let big = " ".repeat(3 * 1024 * 1024);
        let nil = "00000000-0000-7000-8000-000000000000";
        for (path, token) in [
            (format!("/api/v1/appointments/{nil}/confirm"), Some(&w.provider.token)),
            (format!("/api/v1/marketplace/withdrawals/{nil}/complete"), Some(&w.admin.token)),
            ("/api/v1/webhooks/payments/stripe".to_owned(), None),
            ("/api/v1/appointments".to_owned(), Some(&w.client.token)),
        ] {
            // The server answers before reading the whole body and closes the
            // connection, which the client may see as a reset before the answer
            // (issue 12 item 9, keep-alive, is fixed separately): retry a few times.
            let mut answer = None;
            for _ in 0..10 {
                let mut req = app.client.post(app.url(&path))
                    .header("content-type", "application/json")
                    .header("x-agenda-organization", "edges")
                    .body(big.clone());
                if let Some(token) = token {
                    req = req.bearer_auth(token);
                }
                if let Ok(response) = req.send().await {
                    answer = Some(crate::support::read(response).await);
                    break;
                }
            }
            let (status, body) = answer.expect("no answer in 10 tries");
            assert_eq!((status, code(&body)), (413, "payload_too_large"), "{path}: {body}");
        }
        w.app.stop().await;
    }

    async fn messages_carry_no_parser_positions_or_driver_text(t: TestDb) {
        let w = world(t).await;
        let app = &w.app;
        let nil = "00000000-0000-7000-8000-000000000000";
        let (status, body) = request(app, "POST", &format!("/api/v1/appointments/{nil}/confirm"),
            Some(&w.provider.token), Some(json!({"reason": 5})), None).await;
        rejects(status, &body, "reason", "invalid_type");
        let (status, malformed) = crate::support::read(app.client
            .post(app.url(&format!("/api/v1/appointments/{nil}/cancel")))
            .bearer_auth(&w.client.token)
            .header("content-type", "application/json")
            .body("{\n\n  \"reason\": ")
            .send().await.unwrap()).await;
        assert_eq!((status, code(&malformed)), (400, "malformed_json"));
        for answer in [&body, &malformed] {
            let text = answer.to_string();
            assert!(!text.contains(" line ") && !text.contains("column"), "{text}");
        }
        // Limits and cursors answer the same status on every list.
        for path in ["/api/v1/appointments?limit=0", "/api/v1/users?limit=101", "/api/v1/niches?limit=0",
                     "/api/v1/users?after=nope", "/api/v1/niches?after=nope", "/api/v1/appointments?after=nope"] {
            let (status, body) = request(app, "GET", path, Some(&w.admin.token), None, None).await;
            assert_eq!(status, 422, "{path}: {body}");
        }
        for path in ["/api/v1/appointments?limit=x", "/api/v1/niches?limit=x", "/api/v1/users?limit=-1"] {
            let (status, body) = request(app, "GET", path, Some(&w.admin.token), None, None).await;
            assert_eq!((status, code(&body)), (400, "invalid_query"), "{path}: {body}");
            assert_eq!(body["error"]["fields"][0]["field"], "limit", "{path}: {body}");
        }
        w.app.stop().await;
    }

    /// Found by schemathesis: a client's bad `is_active` filter on promotions was
    /// replaced by `true` and answered 200 instead of being refused.
    async fn a_forced_filter_still_refuses_bad_values(t: TestDb) {
        let w = world(t).await;
        let app = &w.app;
        let (status, body) = request(app, "GET", "/api/v1/promotions?is_active=null", Some(&w.client.token), None, None).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = request(app, "GET", "/api/v1/promotions?is_active=false&service_id=x", Some(&w.client.token), None, None).await;
        assert_eq!(status, 422, "{body}");
        let (status, body) = request(app, "GET", "/api/v1/promotions?is_active=false", Some(&w.client.token), None, None).await;
        assert_eq!((status, body["items"].as_array().map(Vec::len)), (200, Some(0)), "{body}");
        let (status, body) = request(app, "GET", "/api/v1/promotions?is_active=true", Some(&w.client.token), None, None).await;
        assert_eq!(status, 200, "{body}");
        w.app.stop().await;
    }
}
