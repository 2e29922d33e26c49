//! The catalogue and scheduling-rule resources over HTTP: who may read and write,
//! ownership, filters, and hours set through the API feeding the free slots.

use agenda_entity::enums::UserRole;
use agenda_entity::user::CreateUser;
use agenda_storage::TenantScope;
use agenda_storage::repo::users::UserRepo;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{TestApp, code, read};

const PASSWORD: &str = "correct horse battery";

async fn login(app: &TestApp, email: &str) -> String {
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            &json!({"organization": "acme", "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn user(app: &TestApp, scope: TenantScope, email: &str, role: UserRole) -> (String, String) {
    let hash = agenda_api::password::hash(PASSWORD).unwrap();
    let input = CreateUser {
        email: email.into(),
        password: PASSWORD.into(),
        full_name: "X".into(),
        phone: None,
        role,
        tax_id: None,
    };
    let id = UserRepo::create(app.t.conn(), scope, input, hash)
        .await
        .unwrap()
        .id;
    (id.to_string(), login(app, email).await)
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = app.url(path);
    let mut request = match method {
        "GET" => app.client.get(url),
        "POST" => app.client.post(url),
        "PATCH" => app.client.patch(url),
        _ => app.client.delete(url),
    }
    .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    read(request.send().await.unwrap()).await
}

both_engines! {
    async fn catalogue_and_hours_over_http(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (_, org) = app.post("/api/v1/organizations", &json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"})).await;
        let scope = TenantScope::new(org["id"].as_str().unwrap().parse().unwrap());
        let (_, admin) = user(&app, scope, "admin@example.com", UserRole::Admin).await;
        let (ana_id, ana) = user(&app, scope, "ana@example.com", UserRole::Provider).await;
        let (_, bruno) = user(&app, scope, "bruno@example.com", UserRole::Provider).await;
        let (_, client) = user(&app, scope, "client@example.com", UserRole::Client).await;

        // The catalogue: admins write, everyone reads.
        let niche = json!({"name": "Beauty", "slug": "beauty"});
        assert_eq!(call(&app, "POST", "/api/v1/niches", &client, Some(niche.clone())).await.0, 403);
        assert_eq!(call(&app, "POST", "/api/v1/niches", &ana, Some(niche.clone())).await.0, 403);
        let (status, created) = call(&app, "POST", "/api/v1/niches", &admin, Some(niche.clone())).await;
        assert_eq!(status, 201, "{created}");
        let (status, body) = call(&app, "POST", "/api/v1/niches", &admin, Some(niche)).await;
        assert_eq!((status, code(&body)), (409, "conflict"), "the slug is unique per organization");
        let (status, page) = call(&app, "GET", "/api/v1/niches", &client, None).await;
        assert_eq!((status, page["items"].as_array().unwrap().len()), (200, 1));
        let (status, body) = call(&app, "GET", "/api/v1/niches?name=Beauty", &client, None).await;
        assert_eq!((status, code(&body)), (422, "validation_failed"), "name is not a filter");
        assert_eq!(crate::support::fields(&body), ["filter"]);

        // Services belong to the provider who creates them.
        let (status, service) = call(&app, "POST", "/api/v1/services", &ana, Some(json!({"name": "Cut", "duration_minutes": 60, "price_cents": 5000}))).await;
        assert_eq!(status, 201, "{service}");
        assert_eq!(service["provider_id"], ana_id.as_str());
        let service_id = service["id"].as_str().unwrap().to_owned();
        let item = format!("/api/v1/services/{service_id}");
        assert_eq!(call(&app, "POST", "/api/v1/services", &client, Some(json!({"name": "X", "duration_minutes": 60, "price_cents": 1}))).await.0, 403);
        assert_eq!(call(&app, "PATCH", &item, &bruno, Some(json!({"price_cents": 1}))).await.0, 404, "another provider's service");
        assert_eq!(call(&app, "DELETE", &item, &bruno, None).await.0, 404);
        let (status, updated) = call(&app, "PATCH", &item, &ana, Some(json!({"price_cents": 5500}))).await;
        assert_eq!((status, updated["price_cents"].as_i64()), (200, Some(5500)));
        let (status, mine) = call(&app, "GET", &format!("/api/v1/services?provider_id={ana_id}"), &client, None).await;
        assert_eq!((status, mine["items"].as_array().unwrap().len()), (200, 1));

        // Hours set through the API are what the slots route offers.
        for weekday in 1..=7 {
            let (status, body) = call(&app, "POST", "/api/v1/availability", &ana, Some(json!({"kind": "weekly", "weekday": weekday, "start_time": "09:00", "end_time": "11:00"}))).await;
            assert_eq!(status, 201, "{body}");
            assert_eq!(body["start_time"], "09:00");
        }
        let (status, body) = call(&app, "POST", "/api/v1/availability", &ana, Some(json!({"kind": "weekly", "start_time": "09:00", "end_time": "11:00"}))).await;
        assert_eq!((status, crate::support::fields(&body)), (422, vec!["weekday".to_owned()]));
        let day = (Utc::now() + Duration::days(2)).date_naive();
        let (status, slots) = call(&app, "GET", &format!("/api/v1/providers/{ana_id}/slots?service_id={service_id}&from={day}&to={day}"), &client, None).await;
        assert_eq!(status, 200, "{slots}");
        assert_eq!(slots.as_array().unwrap().len(), 5, "09:00 to 10:00 every 15 minutes (the default step), 60-minute service: {slots}");

        // Admins may change and remove any provider's rows.
        assert_eq!(call(&app, "DELETE", &item, &admin, None).await.0, 204);
        assert_eq!(call(&app, "GET", &item, &client, None).await.0, 404);
        app.stop().await;
    }
}
