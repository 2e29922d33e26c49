//! `POST /api/v1/organizations` (sign-up), `GET` and `PATCH /api/v1/organizations/{id}`.

use agenda_testkit::both_engines;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

use crate::support::{TestApp, code, fields, sign_up_body};

fn acme() -> serde_json::Value {
    sign_up_body(
        json!({"slug": "acme-clinic", "name": "Acme Clinic", "time_zone": "America/Sao_Paulo", "currency": "BRL"}),
    )
}

both_engines! {
    async fn create_then_get(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let response = app.client.post(app.url("/api/v1/organizations")).json(&acme()).send().await.unwrap();
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let signed_up: serde_json::Value = response.json().await.unwrap();
        let created = signed_up["organization"].clone();
        assert_eq!(created["slug"], "acme-clinic");
        assert_eq!(created["status"], "active");
        assert_eq!(location, format!("/api/v1/organizations/{}", created["id"].as_str().unwrap()));
        assert_eq!(app.get(&location).await.0, 401, "reading an organization needs a session");
        let token = member_token(&app, "acme-clinic").await;
        let response = app.client.get(app.url(&location)).bearer_auth(&token).send().await.unwrap();
        let (status, fetched) = crate::support::read(response).await;
        assert_eq!(status, 200);
        assert_eq!(fetched, created);
        chrono::DateTime::parse_from_rfc3339(fetched["created_at"].as_str().unwrap()).expect("RFC 3339 instant");
        app.stop().await;
    }

    async fn invalid_input_is_422_per_field(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (status, body) = app
            .post("/api/v1/organizations", &json!({
                "organization": {"slug": "Bad Slug", "name": "X", "time_zone": "Nowhere/City", "currency": "XYZ"},
                "admin": {"email": "not an address", "full_name": " ", "password": "short"}}))
            .await;
        assert_eq!(status, 422);
        assert_eq!(code(&body), "validation_failed");
        assert_eq!(fields(&body), ["admin.email", "admin.full_name", "admin.password", "organization.currency", "organization.slug", "organization.time_zone"]);
        let (status, body) = app.post("/api/v1/organizations", &json!({"organization": {"slug": "acme"}, "admin": {"email": "a@b.example", "full_name": "A"}})).await;
        assert_eq!((status, fields(&body)), (422, vec!["organization.name".to_owned()]));
        let (status, body) = app.post("/api/v1/organizations", &json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"})).await;
        assert_eq!(status, 422, "the old body without an admin: {body}");
        let mut extra = acme();
        extra["owner"] = json!("me");
        let (status, body) = app.post("/api/v1/organizations", &extra).await;
        assert_eq!((status, fields(&body)), (422, vec!["owner".to_owned()]));
        assert_eq!(body["error"]["fields"][0]["code"], "unknown_field");
        let mut extra = acme();
        extra["admin"]["role"] = json!("client");
        let (status, body) = app.post("/api/v1/organizations", &extra).await;
        assert_eq!((status, fields(&body)), (422, vec!["admin.role".to_owned()]), "the first user is always an admin");
        let count = agenda_entity::organization::Entity::find().count(app.t.conn()).await.unwrap();
        assert_eq!(count, 0, "nothing was created");
        app.stop().await;
    }

    async fn malformed_json_and_wrong_content_type_are_400(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let url = app.url("/api/v1/organizations");
        let r = app.client.post(&url).header("content-type", "application/json").body("{\"slug\": ").send().await.unwrap();
        let (status, body) = crate::support::read(r).await;
        assert_eq!((status, code(&body)), (400, "malformed_json"));
        let r = app.client.post(&url).header("content-type", "text/plain").body(acme().to_string()).send().await.unwrap();
        let (status, body) = crate::support::read(r).await;
        assert_eq!((status, code(&body)), (400, "invalid_content_type"));
        app.stop().await;
    }

    async fn a_taken_slug_is_409_decided_by_the_constraint(t: TestDb) {
        let app = TestApp::spawn(t).await;
        // Ten simultaneous creations of one slug: a check-then-insert would let
        // several through; the unique constraint lets exactly one.
        let mut requests = Vec::new();
        for _ in 0..10 {
            let client = app.client.clone();
            let url = app.url("/api/v1/organizations");
            requests.push(tokio::spawn(async move { client.post(url).json(&acme()).send().await.unwrap() }));
        }
        let mut statuses = Vec::new();
        for r in requests {
            let response = r.await.unwrap();
            let status = response.status().as_u16();
            if status == 409 {
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["message"], "an organization with this slug already exists");
                assert_eq!(fields(&body), ["organization.slug"]);
            }
            statuses.push(status);
        }
        statuses.sort();
        assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
        app.stop().await;
    }

    async fn unknown_malformed_and_other_tenants_ids(t: TestDb) {
        let app = TestApp::spawn(t).await;
        app.post("/api/v1/organizations", &acme()).await;
        let (_, other) = app
            .post("/api/v1/organizations", &sign_up_body(json!({"slug": "other-clinic", "name": "Other", "time_zone": "UTC", "currency": "BRL"})))
            .await;
        let other = other["organization"].clone();
        let token = member_token(&app, "acme-clinic").await;
        let get = |path: String| {
            let request = app.client.get(app.url(&path)).bearer_auth(&token);
            async move { crate::support::read(request.send().await.unwrap()).await }
        };
        let (status, body) = get(format!("/api/v1/organizations/{}", uuid::Uuid::now_v7())).await;
        assert_eq!((status, code(&body)), (404, "not_found"));
        let (status, body) = get(format!("/api/v1/organizations/{}", other["id"].as_str().unwrap())).await;
        assert_eq!((status, code(&body)), (404, "not_found"), "another tenant's organization");
        let (status, body) = get("/api/v1/organizations/not-a-uuid".to_owned()).await;
        assert_eq!((status, code(&body)), (400, "invalid_path"));
        app.stop().await;
    }
}

/// Signs up a client in the organization and returns their bearer token.
async fn member_token(app: &TestApp, organization: &str) -> String {
    let account = json!({"organization": organization, "email": "member@example.com", "password": "correct horse battery", "full_name": "Member", "role": "client"});
    let (status, body) = app.post("/api/v1/auth/register", &account).await;
    assert_eq!(status, 201, "{body}");
    let (_, signed_in) = app
        .post("/api/v1/auth/login", &json!({"organization": organization, "email": "member@example.com", "password": "correct horse battery"}))
        .await;
    signed_in["token"].as_str().unwrap().to_owned()
}
