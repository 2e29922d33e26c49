//! A calendar clients can read: slots say the zone their dates were read in and each
//! slot's local time with its offset, and the provider's public profile gives the
//! zone, the services and the rating to the organization's clients.

use agenda_entity::enums::UserRole;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{
    TestApp, api, bookable_provider, fields, full_settings, member, scope_of, sign_up_body,
};

both_engines! {
    async fn clients_read_the_zone_local_times_and_the_provider_profile(t: TestDb) {
        let app = TestApp::spawn(t).await;
        let (status, org) = app.post("/api/v1/organizations", &sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "America/Sao_Paulo", "currency": "BRL"}))).await;
        assert_eq!(status, 201, "{org}");
        let scope = scope_of(&org);
        let client = member(&app, scope, "acme", "client@acme.example.com", UserRole::Client).await;
        let provider = member(&app, scope, "acme", "ana@acme.example.com", UserRole::Provider).await;
        // Hours 09:00-12:00 in the provider's zone (the organization's: no own zone).
        let service = bookable_provider(&app, scope, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;

        let day = (Utc::now() + Duration::days(3)).date_naive();
        let path = format!("/providers/{}/slots?service_id={service}&from={day}&to={day}", provider.id);
        let (status, slots) = api(&app, "GET", &path, &client.token, None).await;
        assert_eq!(status, 200, "{slots}");
        let first = &slots[0];
        assert_eq!(first["time_zone"], "America/Sao_Paulo", "{first}");
        // São Paulo has no DST: 09:00 local is 12:00 UTC, offset -03:00.
        assert_eq!(first["start"], format!("{day}T12:00:00Z"));
        assert_eq!(first["local_start"], format!("{day}T09:00:00-03:00"));
        assert_eq!(first["local_end"], format!("{day}T10:00:00-03:00"));

        let (status, profile) = api(&app, "GET", &format!("/providers/{}/profile", provider.id), &client.token, None).await;
        assert_eq!(status, 200, "{profile}");
        assert_eq!(profile["time_zone"], "America/Sao_Paulo");
        assert_eq!(profile["business_name"], "Studio");
        assert_eq!(profile["accepting_bookings"], true);
        assert_eq!(profile["services"][0]["name"], "Haircut");
        assert_eq!(profile["services"][0]["price_cents"], 5000);
        assert_eq!(profile["rating"], json!({"count": 0, "average": null}));

        // Settings: PATCH changes one field; PUT is a strict full replacement: every
        // field is required (never kept or cleared silently), null clears one.
        let (status, body) = api(&app, "PATCH", "/providers/me/settings", &provider.token, Some(json!({"time_zone": "Europe/Lisbon"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["time_zone"].as_str(), body["business_name"].as_str()), (Some("Europe/Lisbon"), Some("Studio")));
        let (status, body) = api(&app, "GET", &format!("/providers/{}/profile", provider.id), &client.token, None).await;
        assert_eq!((status, body["time_zone"].as_str()), (200, Some("Europe/Lisbon")), "the profile (through the cache) follows");
        let full = full_settings(json!({"business_name": "Studio Ana", "accepted_payment_methods": ["pix"], "time_zone": "Europe/Lisbon", "slot_step_minutes": 60, "min_lead_minutes": 0, "buffer_minutes": 5}));
        for field in full.as_object().unwrap().keys() {
            let mut partial = full.clone();
            partial.as_object_mut().unwrap().remove(field);
            let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(partial)).await;
            assert_eq!((status, fields(&body)), (422, vec![field.clone()]), "{field} left out: {body}");
        }
        // The document says the same: every field required.
        let (_, doc) = app.get("/api/v1/openapi.json").await;
        let mut required: Vec<&str> = doc["components"]["schemas"]["ReplaceProviderSettings"]["required"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        let mut all: Vec<&str> = full.as_object().unwrap().keys().map(String::as_str).collect();
        required.sort_unstable();
        all.sort_unstable();
        assert_eq!(required, all);
        let body = &doc["paths"]["/api/v1/providers/me/settings"]["put"]["requestBody"]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(body, "#/components/schemas/ReplaceProviderSettings");
        // null on a field that cannot be empty is refused too, naming it.
        for field in ["business_name", "accepted_payment_methods", "buffer_minutes", "auto_confirm"] {
            let mut nulled = full.clone();
            nulled[field] = json!(null);
            let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(nulled)).await;
            assert_eq!((status, fields(&body)), (422, vec![field.to_owned()]), "{field}: null: {body}");
        }
        let (status, body) = api(&app, "GET", "/providers/me/settings", &provider.token, None).await;
        assert_eq!((status, body["business_name"].as_str(), body["time_zone"].as_str()), (200, Some("Studio"), Some("Europe/Lisbon")), "nothing changed");
        let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(full.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["business_name"].as_str(), body["buffer_minutes"].as_i64(), body["time_zone"].as_str()), (Some("Studio Ana"), Some(5), Some("Europe/Lisbon")));
        let mut cleared = full;
        cleared["time_zone"] = json!(null);
        cleared["buffer_minutes"] = json!(0);
        let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(cleared)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["time_zone"].clone(), body["business_name"].as_str(), body["buffer_minutes"].as_i64()), (json!(null), Some("Studio Ana"), Some(0)));

        // A client is not a provider: 404, like an unknown id.
        let (status, _) = api(&app, "GET", &format!("/providers/{}/profile", client.id), &client.token, None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}
