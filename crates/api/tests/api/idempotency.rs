//! `Idempotency-Key` on every `POST` of a signed-in user, handled by the unit of work
//! (bookings, payments and withdrawals are checked in their own areas too).

use agenda_entity::enums::UserRole;
use agenda_testkit::both_engines;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

use crate::support::{TestApp, code, member, organization, read, request};

async fn count(app: &TestApp, table: &str) -> i64 {
    let conn = app.t.conn();
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT count(*) FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

fn address(street: &str) -> Value {
    json!({"kind": "home", "street": street, "city": "São Paulo", "state": "SP", "postal_code": "01000-000", "country": "BR"})
}

both_engines! {
    /// Routes that never handled the header themselves — a support ticket, an
    /// address — replay with it. Figures: a repeat with the same key and body answers
    /// the first response (`Idempotent-Replay: true`) and creates nothing; the same
    /// key with another body (keys and spaces reordered do not count) is 422; a key of
    /// 256 characters is 400; a key on a request without a signed-in user is 400.
    async fn signed_in_posts_that_create_replay_with_their_key(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let scope = organization(&app, "acme").await;
        let client = member(&app, scope, "acme", "client@example.com", UserRole::Client).await;

        let ticket = json!({"subject": "Double charge", "priority": "high"});
        let (status, first) = request(&app, "POST", "/api/v1/support/tickets", Some(&client.token), Some(ticket.clone()), Some("t-1")).await;
        assert_eq!(status, 201, "{first}");
        let response = app
            .client
            .post(app.url("/api/v1/support/tickets"))
            .bearer_auth(&client.token)
            .header("Idempotency-Key", "t-1")
            .header("content-type", "application/json")
            .body(r#"{ "priority": "high",  "subject": "Double charge" }"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers().get("idempotent-replay").map(|v| v.to_str().unwrap()), Some("true"));
        let (status, again) = read(response).await;
        assert_eq!((status, &again), (201, &first), "the retry answers the first response");
        assert_eq!(count(&app, "support_tickets").await, 1);
        let (status, body) = request(&app, "POST", "/api/v1/support/tickets", Some(&client.token), Some(json!({"subject": "Other"})), Some("t-1")).await;
        assert_eq!((status, crate::support::fields(&body)), (422, vec!["idempotency_key".to_owned()]), "{body}");

        let (status, home) = request(&app, "POST", "/api/v1/users/me/addresses", Some(&client.token), Some(address("Rua A")), Some("a-1")).await;
        assert_eq!(status, 201, "{home}");
        let (status, again) = request(&app, "POST", "/api/v1/users/me/addresses", Some(&client.token), Some(address("Rua A")), Some("a-1")).await;
        assert_eq!((status, &again), (201, &home));
        assert_eq!(count(&app, "user_addresses").await, 1);

        let long = "k".repeat(256);
        let (status, body) = request(&app, "POST", "/api/v1/support/tickets", Some(&client.token), Some(ticket.clone()), Some(&long)).await;
        assert_eq!((status, code(&body)), (400, "invalid_idempotency_key"), "{body}");
        let org = crate::support::sign_up_body(json!({"slug": "beta", "name": "Beta", "time_zone": "UTC", "currency": "BRL"}));
        let (status, body) = request(&app, "POST", "/api/v1/organizations", None, Some(org), Some("o-1")).await;
        assert_eq!((status, code(&body)), (400, "idempotency_key_needs_sign_in"), "{body}");
        assert_eq!(count(&app, "organizations").await, 1, "the refused request created nothing");
        app.stop().await;
    }

    /// Sixteen identical requests with one key at the same moment, across the pool's
    /// connections. Figures: exactly one ticket is stored; every answer is 201 with
    /// that ticket (the others waited for the first and replayed it) or 409
    /// `request_in_progress` — never a second ticket.
    async fn concurrent_requests_with_one_key_create_once(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let scope = organization(&app, "acme").await;
        let client = member(&app, scope, "acme", "client@example.com", UserRole::Client).await;
        let requests: Vec<_> = (0..16)
            .map(|_| {
                let request = app
                    .client
                    .post(app.url("/api/v1/support/tickets"))
                    .bearer_auth(&client.token)
                    .header("Idempotency-Key", "same-moment")
                    .json(&json!({"subject": "Help"}));
                tokio::spawn(async move { read(request.send().await.unwrap()).await })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        let (mut created, mut in_progress) = (0, 0);
        for answer in requests {
            match answer.await.unwrap() {
                (201, body) => {
                    created += 1;
                    ids.insert(body["id"].as_str().unwrap().to_owned());
                }
                (409, body) if code(&body) == "request_in_progress" => in_progress += 1,
                (status, body) => panic!("unexpected {status} {body}"),
            }
        }
        assert_eq!(ids.len(), 1, "{ids:?}");
        assert_eq!(count(&app, "support_tickets").await, 1);
        eprintln!("idempotency ({}): 16 concurrent requests with one key: {created} × 201 (one ticket), {in_progress} × 409", app.t.engine().as_str());
        app.stop().await;
    }
}
