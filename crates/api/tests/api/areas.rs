//! Reviews, support, users and settings over HTTP: a role matrix for every route
//! (one caller allowed, one refused), other users' and other tenants' rows answering
//! 404, the happy paths, internal support notes hidden from requesters, and reviews
//! only of one's own completed appointments.

use agenda_entity::enums::UserRole;
use agenda_entity::provider_settings;
use agenda_storage::TenantScope;
use agenda_storage::repo::resource::Repo;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Member as Who, TestApp, bookable_provider, code, fields, full_settings, member as user,
    organization, read, request,
};

const NIL: &str = "00000000-0000-7000-8000-000000000000";

#[derive(Clone)]
struct World {
    admin: Who,
    support: Who,
    provider: Who,
    other_provider: Who,
    client: Who,
    other_client: Who,
    /// A client and an admin of another organization.
    foreign_client: Who,
    foreign_admin: Who,
    service: Uuid,
}

async fn world(app: &TestApp) -> World {
    let acme = organization(app, "acme").await;
    let beta = organization(app, "beta").await;
    let provider = user(
        app,
        acme,
        "acme",
        "provider@example.com",
        UserRole::Provider,
    )
    .await;
    // The provider's settings, hours and a service, through the storage layer (their
    // own routes are tested elsewhere).
    let service = bookable_provider(app, acme, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
    World {
        admin: user(app, acme, "acme", "admin@example.com", UserRole::Admin).await,
        support: user(app, acme, "acme", "support@example.com", UserRole::Support).await,
        other_provider: user(
            app,
            acme,
            "acme",
            "provider2@example.com",
            UserRole::Provider,
        )
        .await,
        client: user(app, acme, "acme", "client@example.com", UserRole::Client).await,
        other_client: user(app, acme, "acme", "other@example.com", UserRole::Client).await,
        foreign_client: user(app, beta, "beta", "client@example.com", UserRole::Client).await,
        foreign_admin: user(app, beta, "beta", "admin@example.com", UserRole::Admin).await,
        provider,
        service,
    }
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    who: &Who,
    body: Option<Value>,
) -> (u16, Value) {
    let path = format!("/api/v1{path}");
    request(app, method, &path, Some(&who.token), body, None).await
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a page: {page}"))
}

/// A booked appointment of `client` with the provider, `days` ahead at `hour` UTC.
async fn book(app: &TestApp, w: &World, client: &Who, days: i64, hour: u32) -> String {
    let day = (Utc::now() + Duration::days(days)).date_naive();
    let at = day.and_hms_opt(hour, 0, 0).unwrap().and_utc().to_rfc3339();
    let (status, a) = call(
        app,
        "POST",
        "/appointments",
        client,
        Some(json!({"service_id": w.service, "start_at": at})),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    a["id"].as_str().unwrap().to_owned()
}

async fn complete(app: &TestApp, w: &World, id: &str) {
    for step in ["confirm", "start", "complete"] {
        let (status, body) = call(
            app,
            "POST",
            &format!("/appointments/{id}/{step}"),
            &w.provider,
            None,
        )
        .await;
        assert_eq!(status, 200, "{step}: {body}");
    }
}

async fn rating(app: &TestApp, w: &World) -> (i64, i64) {
    let (status, s) = call(app, "GET", "/providers/me/settings", &w.provider, None).await;
    assert_eq!(status, 200, "{s}");
    (
        s["rating_count"].as_i64().unwrap(),
        s["rating_total"].as_i64().unwrap(),
    )
}

both_engines! {
    async fn every_new_route_needs_a_token(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let routes = [
            ("POST", "/reviews"), ("GET", "/reviews"), ("POST", "/reviews/{id}/response"), ("POST", "/reviews/{id}/moderate"),
            ("POST", "/support/tickets"), ("GET", "/support/tickets"), ("GET", "/support/tickets/{id}"),
            ("POST", "/support/tickets/{id}/messages"), ("GET", "/support/tickets/{id}/messages"), ("POST", "/support/tickets/{id}/status"),
            ("GET", "/users/me"), ("PATCH", "/users/me"), ("GET", "/users"), ("GET", "/users/{id}"),
            ("GET", "/users/me/addresses"), ("POST", "/users/me/addresses"), ("PATCH", "/users/me/addresses/{id}"), ("DELETE", "/users/me/addresses/{id}"),
            ("GET", "/providers/me/settings"), ("PUT", "/providers/me/settings"),
            ("GET", "/admin/payment-settings"), ("PATCH", "/admin/payment-settings"), ("GET", "/admin/audit-log"),
            ("GET", "/admin/settings"), ("POST", "/admin/settings"),
        ];
        for (method, path) in routes {
            let url = app.url(&format!("/api/v1{}", path.replace("{id}", NIL)));
            let request = match method {
                "GET" => app.client.get(url),
                "POST" => app.client.post(url).json(&json!({})),
                "PATCH" => app.client.patch(url).json(&json!({})),
                "PUT" => app.client.put(url).json(&json!({})),
                _ => app.client.delete(url),
            };
            let (status, body) = read(request.send().await.unwrap()).await;
            assert_eq!((status, code(&body)), (401, "unauthorized"), "{method} {path}");
        }
        app.stop().await;
    }

    async fn reviews_only_for_own_completed_appointments_and_moderation_keeps_the_rating(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let id = book(&app, &w, &w.client, 2, 9).await;
        let review = json!({"appointment_id": id, "rating": 4, "comment": "good"});

        // Not completed yet.
        let (status, body) = call(&app, "POST", "/reviews", &w.client, Some(review.clone())).await;
        assert_eq!((status, code(&body)), (409, "not_completed"), "{body}");
        complete(&app, &w, &id).await;

        // Roles and ownership.
        let (status, _) = call(&app, "POST", "/reviews", &w.provider, Some(review.clone())).await;
        assert_eq!(status, 403, "providers do not write reviews");
        let (status, _) = call(&app, "POST", "/reviews", &w.admin, Some(review.clone())).await;
        assert_eq!(status, 403, "nor do admins");
        let (status, body) = call(&app, "POST", "/reviews", &w.other_client, Some(review.clone())).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "another client's appointment: {body}");
        let (status, _) = call(&app, "POST", "/reviews", &w.foreign_client, Some(review.clone())).await;
        assert_eq!(status, 404, "another organization's appointment");
        let (status, body) = call(&app, "POST", "/reviews", &w.client, Some(json!({"appointment_id": id, "rating": 6}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["rating".to_owned()]), "{body}");

        // The client's review: created pending, once.
        let (status, created) = call(&app, "POST", "/reviews", &w.client, Some(review.clone())).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["moderation_status"], "pending");
        assert_eq!(created["provider_id"], w.provider.id.to_string());
        let rid = created["id"].as_str().unwrap().to_owned();
        let (status, body) = call(&app, "POST", "/reviews", &w.client, Some(review.clone())).await;
        assert_eq!((status, code(&body), fields(&body)), (409, "conflict", vec!["appointment_id".to_owned()]), "{body}");

        // Listing: pending reviews are hidden from clients and other providers.
        let by_provider = format!("/reviews?provider_id={}", w.provider.id);
        let (status, page) = call(&app, "GET", &by_provider, &w.client, None).await;
        assert_eq!((status, items(&page).len()), (200, 0), "{page}");
        let (_, page) = call(&app, "GET", &by_provider, &w.other_provider, None).await;
        assert_eq!(items(&page).len(), 0);
        let (_, page) = call(&app, "GET", &format!("{by_provider}&moderation_status=pending"), &w.client, None).await;
        assert_eq!(items(&page).len(), 0, "clients cannot ask for pending ones");
        let (_, page) = call(&app, "GET", &by_provider, &w.provider, None).await;
        assert_eq!(items(&page).len(), 1, "the provider sees their own pending review");
        let (_, page) = call(&app, "GET", "/reviews?moderation_status=pending", &w.support, None).await;
        assert_eq!(items(&page).len(), 1);
        let (_, page) = call(&app, "GET", "/reviews", &w.foreign_admin, None).await;
        assert_eq!(items(&page).len(), 0, "another organization sees nothing");

        // The response: only the reviewed provider.
        let respond = format!("/reviews/{rid}/response");
        let body = Some(json!({"response": "thanks!"}));
        let (status, _) = call(&app, "POST", &respond, &w.client, body.clone()).await;
        assert_eq!(status, 403);
        let (status, _) = call(&app, "POST", &respond, &w.other_provider, body.clone()).await;
        assert_eq!(status, 404, "not about them");
        let (status, answered) = call(&app, "POST", &respond, &w.provider, body.clone()).await;
        assert_eq!((status, answered["provider_response"].as_str()), (200, Some("thanks!")), "{answered}");
        assert!(answered["responded_at"].is_string());

        // Moderation: staff only; approval counts the rating, rejection takes it out.
        let moderate = format!("/reviews/{rid}/moderate");
        assert_eq!(rating(&app, &w).await, (0, 0));
        let (status, _) = call(&app, "POST", &moderate, &w.client, Some(json!({"status": "approved"}))).await;
        assert_eq!(status, 403);
        let (status, _) = call(&app, "POST", &moderate, &w.provider, Some(json!({"status": "approved"}))).await;
        assert_eq!(status, 403);
        let (status, _) = call(&app, "POST", &moderate, &w.foreign_admin, Some(json!({"status": "approved"}))).await;
        assert_eq!(status, 404, "another organization's review");
        let (status, body) = call(&app, "POST", &moderate, &w.support, Some(json!({"status": "pending"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["status".to_owned()]));
        let (status, approved) = call(&app, "POST", &moderate, &w.support, Some(json!({"status": "approved"}))).await;
        assert_eq!((status, approved["moderation_status"].as_str()), (200, Some("approved")), "{approved}");
        assert_eq!(rating(&app, &w).await, (1, 4));
        let (status, _) = call(&app, "POST", &moderate, &w.admin, Some(json!({"status": "approved"}))).await;
        assert_eq!(status, 200, "approving again");
        assert_eq!(rating(&app, &w).await, (1, 4), "does not count twice");
        let (_, page) = call(&app, "GET", &by_provider, &w.client, None).await;
        assert_eq!(items(&page).len(), 1, "approved reviews are public");
        let (status, _) = call(&app, "POST", &moderate, &w.admin, Some(json!({"status": "rejected"}))).await;
        assert_eq!(status, 200);
        assert_eq!(rating(&app, &w).await, (0, 0), "a rejected review no longer counts");
        let (_, page) = call(&app, "GET", &by_provider, &w.client, None).await;
        assert_eq!(items(&page).len(), 0);

        // Every moderation is in the audit log.
        let (status, log) = call(&app, "GET", "/admin/audit-log?action=review.moderate", &w.admin, None).await;
        assert_eq!((status, items(&log).len()), (200, 3), "{log}");
        app.stop().await;
    }

    async fn a_provider_without_settings_gets_no_counters(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;
        let id = book(&app, &w, &w.client, 3, 10).await;
        complete(&app, &w, &id).await;
        let (status, created) = call(&app, "POST", "/reviews", &w.client, Some(json!({"appointment_id": id, "rating": 5}))).await;
        assert_eq!(status, 201, "{created}");
        // Remove the provider's settings row: approval must still work and create none.
        let conn = app.t.conn();
        let (_, s) = call(&app, "GET", "/providers/me/settings", &w.provider, None).await;
        let settings_id: Uuid = s["id"].as_str().unwrap().parse().unwrap();
        let org: Uuid = s["organization_id"].as_str().unwrap().parse().unwrap();
        Repo::<provider_settings::Entity>::delete(conn, TenantScope::new(org), settings_id).await.unwrap();
        let (status, body) = call(&app, "POST", &format!("/reviews/{}/moderate", created["id"].as_str().unwrap()), &w.admin, Some(json!({"status": "approved"}))).await;
        assert_eq!(status, 200, "{body}");
        let (status, _) = call(&app, "GET", "/providers/me/settings", &w.provider, None).await;
        assert_eq!(status, 404, "no settings row was created");
        app.stop().await;
    }

    async fn support_tickets_and_internal_notes(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;

        // Anyone signed in opens a ticket and is its requester.
        let (status, ticket) = call(&app, "POST", "/support/tickets", &w.client, Some(json!({"subject": "Double charge", "priority": "high"}))).await;
        assert_eq!(status, 201, "{ticket}");
        assert_eq!((ticket["requester_id"].as_str(), ticket["status"].as_str(), ticket["priority"].as_str()), (Some(w.client.id.to_string().as_str()), Some("open"), Some("high")));
        let tid = ticket["id"].as_str().unwrap().to_owned();
        let (status, _) = call(&app, "POST", "/support/tickets", &w.provider, Some(json!({"subject": "Payout question"}))).await;
        assert_eq!(status, 201);
        let (status, body) = call(&app, "POST", "/support/tickets", &w.client, Some(json!({"subject": "x", "appointment_id": NIL}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["appointment_id".to_owned()]), "{body}");
        let appointment = book(&app, &w, &w.other_client, 4, 9).await;
        let (status, _) = call(&app, "POST", "/support/tickets", &w.client, Some(json!({"subject": "x", "appointment_id": appointment}))).await;
        assert_eq!(status, 422, "not the client's appointment");
        let (status, _) = call(&app, "POST", "/support/tickets", &w.other_client, Some(json!({"subject": "About my visit", "appointment_id": appointment}))).await;
        assert_eq!(status, 201, "their own appointment");

        // Lists: own tickets for clients and providers, all for staff.
        let count = |page: &Value| items(page).len();
        let (_, page) = call(&app, "GET", "/support/tickets", &w.client, None).await;
        assert_eq!(count(&page), 1);
        let (_, page) = call(&app, "GET", "/support/tickets", &w.provider, None).await;
        assert_eq!(count(&page), 1);
        let (_, page) = call(&app, "GET", "/support/tickets", &w.support, None).await;
        assert_eq!(count(&page), 3);
        let (_, page) = call(&app, "GET", "/support/tickets?priority=high", &w.admin, None).await;
        assert_eq!(count(&page), 1);
        let (_, page) = call(&app, "GET", "/support/tickets", &w.foreign_admin, None).await;
        assert_eq!(count(&page), 0, "another organization's tickets");

        // One ticket: the requester and staff; others 404.
        let item = format!("/support/tickets/{tid}");
        assert_eq!(call(&app, "GET", &item, &w.client, None).await.0, 200);
        assert_eq!(call(&app, "GET", &item, &w.support, None).await.0, 200);
        assert_eq!(call(&app, "GET", &item, &w.other_client, None).await.0, 404);
        assert_eq!(call(&app, "GET", &item, &w.provider, None).await.0, 404);
        assert_eq!(call(&app, "GET", &item, &w.foreign_admin, None).await.0, 404);

        // Messages; internal notes from staff only.
        let messages = format!("{item}/messages");
        let (status, _) = call(&app, "POST", &messages, &w.client, Some(json!({"body": "I was charged twice"}))).await;
        assert_eq!(status, 201);
        let (status, body) = call(&app, "POST", &messages, &w.client, Some(json!({"body": "psst", "is_internal": true}))).await;
        assert_eq!((status, code(&body)), (403, "forbidden"), "{body}");
        let (status, _) = call(&app, "POST", &messages, &w.other_client, Some(json!({"body": "hi"}))).await;
        assert_eq!(status, 404);
        let (status, note) = call(&app, "POST", &messages, &w.support, Some(json!({"body": "SECRET: refund approved by finance", "is_internal": true}))).await;
        assert_eq!((status, note["is_internal"].as_bool()), (201, Some(true)));
        let (status, _) = call(&app, "POST", &messages, &w.support, Some(json!({"body": "We are on it"}))).await;
        assert_eq!(status, 201);

        let (status, seen) = call(&app, "GET", &messages, &w.client, None).await;
        assert_eq!(status, 200);
        assert_eq!(items(&seen).len(), 2, "the internal note is not listed: {seen}");
        assert!(items(&seen).iter().all(|m| m["is_internal"] == false));
        assert!(!seen.to_string().contains("SECRET"), "internal notes never reach the requester");
        let (_, page) = call(&app, "GET", &format!("{messages}?limit=1"), &w.client, None).await;
        assert_eq!(items(&page).len(), 1);
        let (_, next) = call(&app, "GET", &format!("{messages}?limit=1&after={}", page["next"].as_str().unwrap()), &w.client, None).await;
        assert_eq!(items(&next).len(), 1);
        assert!(!next.to_string().contains("SECRET"));
        let (_, staff) = call(&app, "GET", &messages, &w.admin, None).await;
        assert_eq!(items(&staff).len(), 3, "staff see the note");
        assert_eq!(call(&app, "GET", &messages, &w.other_client, None).await.0, 404);

        // Status: staff only.
        let status_path = format!("{item}/status");
        assert_eq!(call(&app, "POST", &status_path, &w.client, Some(json!({"status": "closed"}))).await.0, 403);
        assert_eq!(call(&app, "POST", &status_path, &w.provider, Some(json!({"status": "closed"}))).await.0, 403);
        let (status, body) = call(&app, "POST", &status_path, &w.support, Some(json!({"status": "pending", "assignee_id": w.client.id}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["assignee_id".to_owned()]), "clients are not assignees");
        let (status, closed) = call(&app, "POST", &status_path, &w.support, Some(json!({"status": "closed", "assignee_id": w.support.id}))).await;
        assert_eq!((status, closed["status"].as_str()), (200, Some("closed")), "{closed}");
        assert_eq!(closed["assignee_id"], w.support.id.to_string());
        assert!(closed["closed_at"].is_string());
        let (status, body) = call(&app, "POST", &messages, &w.client, Some(json!({"body": "still there?"}))).await;
        assert_eq!((status, code(&body)), (409, "ticket_closed"));
        let (status, reopened) = call(&app, "POST", &status_path, &w.admin, Some(json!({"status": "open"}))).await;
        assert_eq!((status, reopened["closed_at"].is_null()), (200, true));
        assert_eq!(call(&app, "POST", &status_path, &w.foreign_admin, Some(json!({"status": "open"}))).await.0, 404);
        app.stop().await;
    }

    async fn users_profiles_and_addresses(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;

        let (status, me) = call(&app, "GET", "/users/me", &w.client, None).await;
        assert_eq!((status, me["id"].as_str()), (200, Some(w.client.id.to_string().as_str())));
        let (status, me) = call(&app, "PATCH", "/users/me", &w.client, Some(json!({"full_name": "  Ana Lima ", "phone": "+5511999999999"}))).await;
        assert_eq!((status, me["full_name"].as_str(), me["phone"].as_str()), (200, Some("Ana Lima"), Some("+5511999999999")), "{me}");
        let (status, body) = call(&app, "PATCH", "/users/me", &w.client, Some(json!({"phone": "1"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["phone".to_owned()]));
        let (status, _) = call(&app, "PATCH", "/users/me", &w.client, Some(json!({"role": "admin"}))).await;
        assert_eq!(status, 422, "the role is not a profile field");

        // The user list: staff only, paginated.
        assert_eq!(call(&app, "GET", "/users", &w.client, None).await.0, 403);
        assert_eq!(call(&app, "GET", "/users", &w.provider, None).await.0, 403);
        let (status, all) = call(&app, "GET", "/users", &w.support, None).await;
        // The owner who signed the organization up, and the six users made here.
        assert_eq!((status, items(&all).len()), (200, 7), "acme's seven users only: {all}");
        assert!(!all.to_string().contains("password"));
        let (_, first) = call(&app, "GET", "/users?limit=4", &w.admin, None).await;
        assert_eq!(items(&first).len(), 4);
        let (_, rest) = call(&app, "GET", &format!("/users?limit=4&after={}", first["next"].as_str().unwrap()), &w.admin, None).await;
        assert_eq!((items(&rest).len(), rest["next"].is_null()), (3, true));
        let (_, clients) = call(&app, "GET", "/users?role=client", &w.admin, None).await;
        assert_eq!(items(&clients).len(), 2);
        assert_eq!(call(&app, "GET", "/users?limit=101", &w.admin, None).await.0, 422);

        // One user: self, or staff; others and other tenants 404.
        assert_eq!(call(&app, "GET", &format!("/users/{}", w.client.id), &w.client, None).await.0, 200);
        assert_eq!(call(&app, "GET", &format!("/users/{}", w.other_client.id), &w.client, None).await.0, 404);
        assert_eq!(call(&app, "GET", &format!("/users/{}", w.other_client.id), &w.support, None).await.0, 200);
        assert_eq!(call(&app, "GET", &format!("/users/{}", w.foreign_client.id), &w.admin, None).await.0, 404);

        // Addresses: one's own only; at most one default.
        let address = |street: &str| json!({"kind": "home", "street": street, "city": "São Paulo", "state": "SP", "postal_code": "01000-000", "country": "BR", "is_default": true});
        let (status, a) = call(&app, "POST", "/users/me/addresses", &w.client, Some(address("Rua A"))).await;
        assert_eq!(status, 201, "{a}");
        assert_eq!(a["user_id"], w.client.id.to_string());
        let (status, b) = call(&app, "POST", "/users/me/addresses", &w.client, Some(address("Rua B"))).await;
        assert_eq!(status, 201, "a second default replaces the first: {b}");
        let (status, body) = call(&app, "POST", "/users/me/addresses", &w.client, Some(json!({"kind": "home", "street": "x", "city": "y", "state": "z", "postal_code": "1", "country": "br"}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["country".to_owned()]));
        let (_, list) = call(&app, "GET", "/users/me/addresses", &w.client, None).await;
        assert_eq!(items(&list).len(), 2);
        let defaults: Vec<&str> = items(&list).iter().filter(|x| x["is_default"] == true).map(|x| x["street"].as_str().unwrap()).collect();
        assert_eq!(defaults, ["Rua B"]);
        let (_, theirs) = call(&app, "GET", "/users/me/addresses", &w.other_client, None).await;
        assert_eq!(items(&theirs).len(), 0);

        let a_path = format!("/users/me/addresses/{}", a["id"].as_str().unwrap());
        assert_eq!(call(&app, "PATCH", &a_path, &w.other_client, Some(json!({"label": "mine"}))).await.0, 404);
        assert_eq!(call(&app, "DELETE", &a_path, &w.other_client, None).await.0, 404);
        assert_eq!(call(&app, "PATCH", &a_path, &w.foreign_client, Some(json!({"label": "mine"}))).await.0, 404);
        let (status, changed) = call(&app, "PATCH", &a_path, &w.client, Some(json!({"label": "home", "is_default": true}))).await;
        assert_eq!((status, changed["label"].as_str(), changed["is_default"].as_bool()), (200, Some("home"), Some(true)), "{changed}");
        let (_, list) = call(&app, "GET", "/users/me/addresses", &w.client, None).await;
        assert_eq!(items(&list).iter().filter(|x| x["is_default"] == true).count(), 1);
        assert_eq!(call(&app, "DELETE", &a_path, &w.client, None).await.0, 204);
        assert_eq!(call(&app, "DELETE", &a_path, &w.client, None).await.0, 404);
        app.stop().await;
    }

    async fn provider_payment_and_system_settings(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let w = world(&app).await;

        // A provider's own settings: PUT creates, then replaces.
        let mine = "/providers/me/settings";
        assert_eq!(call(&app, "GET", mine, &w.other_provider, None).await.0, 404);
        assert_eq!(call(&app, "GET", mine, &w.client, None).await.0, 403);
        assert_eq!(call(&app, "PUT", mine, &w.admin, Some(json!({"business_name": "X"}))).await.0, 403);
        let (status, created) = call(&app, "PUT", mine, &w.other_provider, Some(full_settings(json!({"business_name": "Salon", "bio": "hello", "buffer_minutes": 15})))).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!((created["provider_id"].as_str(), created["rating_count"].as_i64()), (Some(w.other_provider.id.to_string().as_str()), Some(0)));
        // A full replacement: leaving out the bio (or anything else) is refused.
        let (status, body) = call(&app, "PUT", mine, &w.other_provider, Some(json!({"business_name": "Salon 2"}))).await;
        assert_eq!((status, body["error"]["fields"][0]["field"].as_str()), (422, Some("bio")), "{body}");
        let (status, replaced) = call(&app, "PUT", mine, &w.other_provider, Some(full_settings(json!({"business_name": "Salon 2", "bio": null, "buffer_minutes": 15})))).await;
        assert_eq!(status, 200, "{replaced}");
        assert_eq!((replaced["id"].clone(), replaced["business_name"].as_str(), replaced["bio"].is_null(), replaced["buffer_minutes"].as_i64()), (created["id"].clone(), Some("Salon 2"), true, Some(15)));
        let (status, body) = call(&app, "PUT", mine, &w.other_provider, Some(full_settings(json!({"business_name": "S", "slot_step_minutes": 1})))).await;
        assert_eq!((status, fields(&body)), (422, vec!["slot_step_minutes".to_owned()]));
        let (_, shown) = call(&app, "GET", mine, &w.other_provider, None).await;
        assert_eq!(shown["business_name"], "Salon 2");
        let (_, theirs) = call(&app, "GET", mine, &w.provider, None).await;
        assert_eq!(theirs["business_name"], "Studio", "each provider sees only their own");

        // Payment settings: admin only.
        let pay = "/admin/payment-settings";
        assert_eq!(call(&app, "GET", pay, &w.support, None).await.0, 403);
        assert_eq!(call(&app, "PATCH", pay, &w.client, Some(json!({"fee_percentage_bp": 1}))).await.0, 403);
        assert_eq!(call(&app, "GET", pay, &w.admin, None).await.0, 404, "not configured yet");
        let (status, updated) = call(&app, "PATCH", pay, &w.admin, Some(json!({"fee_percentage_bp": 500, "payout_delay_days": 3}))).await;
        assert_eq!((status, updated["fee_percentage_bp"].as_i64()), (200, Some(500)), "{updated}");
        let (status, shown) = call(&app, "GET", pay, &w.admin, None).await;
        assert_eq!((status, shown["payout_delay_days"].as_i64()), (200, Some(3)));
        let (status, _) = call(&app, "PATCH", pay, &w.admin, Some(json!({"fee_min_cents": 500, "fee_max_cents": 100}))).await;
        assert_eq!(status, 422, "minimum above maximum");
        let (status, _) = call(&app, "GET", pay, &w.foreign_admin, None).await;
        assert_eq!(status, 404, "another organization has no payment settings yet");

        // System settings: admin only; POST sets a key.
        let sys = "/admin/settings";
        assert_eq!(call(&app, "GET", sys, &w.provider, None).await.0, 403);
        assert_eq!(call(&app, "POST", sys, &w.support, Some(json!({"key": "booking.max", "value": 3}))).await.0, 403);
        let (status, set) = call(&app, "POST", sys, &w.admin, Some(json!({"key": "booking.max", "value": {"per_day": 3}, "description": "limits"}))).await;
        assert_eq!((status, set["value"]["per_day"].as_i64()), (201, Some(3)), "{set}");
        let (status, again) = call(&app, "POST", sys, &w.admin, Some(json!({"key": "booking.max", "value": {"per_day": 5}}))).await;
        assert_eq!((status, again["id"].clone(), again["description"].is_null()), (200, set["id"].clone(), true), "{again}");
        assert_eq!(again["updated_by"], w.admin.id.to_string());
        let (status, body) = call(&app, "POST", sys, &w.admin, Some(json!({"key": "Bad Key", "value": 1}))).await;
        assert_eq!((status, fields(&body)), (422, vec!["key".to_owned()]));
        let (_, list) = call(&app, "GET", &format!("{sys}?key=booking.max"), &w.admin, None).await;
        assert_eq!(items(&list).len(), 1);
        assert_eq!(items(&list)[0]["value"]["per_day"], 5);
        let (_, foreign) = call(&app, "GET", sys, &w.foreign_admin, None).await;
        assert_eq!(items(&foreign).len(), 0, "another organization's settings");

        // The audit log: admin only, this organization's events.
        let (status, log) = call(&app, "GET", "/admin/audit-log", &w.admin, None).await;
        assert_eq!(status, 200);
        let actions: Vec<&str> = items(&log).iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert!(actions.contains(&"payment_settings.update") && actions.contains(&"system_setting.set"), "{actions:?}");
        assert_eq!(call(&app, "GET", "/admin/audit-log", &w.support, None).await.0, 403);
        let (_, foreign) = call(&app, "GET", "/admin/audit-log", &w.foreign_admin, None).await;
        assert!(!foreign.to_string().contains("system_setting.set"), "{foreign}");
        app.stop().await;
    }
}
