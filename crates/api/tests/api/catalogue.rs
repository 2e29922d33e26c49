//! The catalogue and scheduling-rule resources over HTTP: who may read and write,
//! ownership, filters, and hours set through the API feeding the free slots.

use agenda_entity::enums::UserRole;
use agenda_entity::user::CreateUser;
use agenda_storage::TenantScope;
use agenda_storage::repo::users::UserRepo;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{TestApp, code, request, scope_of, sign_up_body};

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
    request(app, method, path, Some(token), body, None).await
}

both_engines! {
    async fn catalogue_and_hours_over_http(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (_, org) = app.post("/api/v1/organizations", &sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"}))).await;
        let scope = scope_of(&org);
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

/// Ids of rows created so far, by collection.
type Ids = std::collections::HashMap<&'static str, String>;
/// Builds a create body from the ids of earlier rows.
type Body = Box<dyn Fn(&Ids) -> Value>;

both_engines! {
    /// Every catalogue and scheduling-rule route with its allowed caller (create, list,
    /// get, update, delete) and a forbidden one (a client writing).
    async fn every_resource_route_by_its_allowed_and_forbidden_caller(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (_, org) = app.post("/api/v1/organizations", &sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"}))).await;
        let scope = scope_of(&org);
        let (_, admin) = user(&app, scope, "admin@example.com", UserRole::Admin).await;
        let (_, provider) = user(&app, scope, "ana@example.com", UserRole::Provider).await;
        let (_, client) = user(&app, scope, "client@example.com", UserRole::Client).await;

        // (collection, writer, create body, update body); ids of earlier rows feed later bodies.
        let mut ids = Ids::new();
        let start = (Utc::now() + Duration::days(1)).to_rfc3339();
        let end = (Utc::now() + Duration::days(1) + Duration::hours(1)).to_rfc3339();
        let cases: Vec<(&str, &str, Body, Value)> = vec![
            ("niches", "admin", Box::new(|_| json!({"name": "Beauty", "slug": "beauty"})), json!({"name": "Beauty & care"})),
            ("categories", "admin", Box::new(|ids| json!({"niche_id": ids["niches"], "name": "Hair", "slug": "hair"})), json!({"sort_order": 2})),
            ("service-templates", "admin", Box::new(|ids| json!({"category_id": ids["categories"], "name": "Cut", "default_duration_minutes": 30})), json!({"default_price_cents": 3000})),
            ("services", "provider", Box::new(|_| json!({"name": "Shave", "duration_minutes": 20, "price_cents": 2000})), json!({"price_cents": 2500})),
            ("provider-services", "provider", Box::new(|ids| json!({"template_id": ids["service-templates"], "price_cents": 3500, "execution_minutes": 30})), json!({"buffer_after_minutes": 10})),
            ("availability", "provider", Box::new(|_| json!({"kind": "weekly", "weekday": 1, "start_time": "09:00", "end_time": "18:00"})), json!({"end_time": "17:00"})),
            ("breaks", "provider", Box::new(|_| json!({"kind": "weekly", "weekday": 1, "start_time": "12:00", "end_time": "13:00"})), json!({"label": "lunch"})),
            ("blocked-slots", "provider", Box::new(move |_| json!({"kind": "one_off", "start_at": start, "end_at": end})), json!({"reason": "dentist"})),
        ];
        for (collection, writer, create, update) in &cases {
            let writer_token = if *writer == "admin" { &admin } else { &provider };
            let list = format!("/api/v1/{collection}");
            let body = create(&ids);
            assert_eq!(call(&app, "POST", &list, &client, Some(body.clone())).await.0, 403, "{collection}: a client writing");
            let (status, created) = call(&app, "POST", &list, writer_token, Some(body)).await;
            assert_eq!(status, 201, "{collection}: {created}");
            let id = created["id"].as_str().unwrap().to_owned();
            let item = format!("{list}/{id}");
            let (status, page) = call(&app, "GET", &list, &client, None).await;
            assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(1)), "{collection}");
            assert_eq!(call(&app, "GET", &item, &client, None).await.0, 200, "{collection}");
            assert_eq!(call(&app, "PATCH", &item, &client, Some(update.clone())).await.0, 403, "{collection}");
            let (status, updated) = call(&app, "PATCH", &item, writer_token, Some(update.clone())).await;
            assert_eq!(status, 200, "{collection}: {updated}");
            for (field, value) in update.as_object().unwrap() {
                assert_eq!(&updated[field], value, "{collection}.{field}");
            }
            assert_eq!(call(&app, "DELETE", &item, &client, None).await.0, 403, "{collection}");
            ids.insert(collection, id);
        }
        // Delete in reverse order (children before parents), by the allowed caller.
        for (collection, writer, _, _) in cases.iter().rev() {
            let writer_token = if *writer == "admin" { &admin } else { &provider };
            let item = format!("/api/v1/{collection}/{}", ids[collection]);
            assert_eq!(call(&app, "DELETE", &item, writer_token, None).await.0, 204, "{collection}");
            assert_eq!(call(&app, "GET", &item, &client, None).await.0, 404, "{collection}");
        }
        app.stop().await;
    }
}
