//! A calendar clients can read: slots say the zone their dates were read in and each
//! slot's local time with its offset, and the provider's public profile gives the
//! zone, the services and the rating to the organization's clients.

use agenda_entity::enums::UserRole;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{TestApp, api, bookable_provider, member, scope_of, sign_up_body};

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

        // Settings: PATCH changes one field; PUT without a field the settings hold is
        // refused (never a silent clear), with it as null it clears.
        let (status, body) = api(&app, "PATCH", "/providers/me/settings", &provider.token, Some(json!({"time_zone": "Europe/Lisbon"}))).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["time_zone"].as_str(), body["business_name"].as_str()), (Some("Europe/Lisbon"), Some("Studio")));
        let (status, body) = api(&app, "GET", &format!("/providers/{}/profile", provider.id), &client.token, None).await;
        assert_eq!((status, body["time_zone"].as_str()), (200, Some("Europe/Lisbon")), "the profile (through the cache) follows");
        let full = json!({"business_name": "Studio Ana", "accepted_payment_methods": ["pix"]});
        let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(full.clone())).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["error"]["fields"][0]["field"], "time_zone", "{body}");
        let mut cleared = full;
        cleared["time_zone"] = json!(null);
        let (status, body) = api(&app, "PUT", "/providers/me/settings", &provider.token, Some(cleared)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["time_zone"].clone(), body["business_name"].as_str()), (json!(null), Some("Studio Ana")));

        // A client is not a provider: 404, like an unknown id.
        let (status, _) = api(&app, "GET", &format!("/providers/{}/profile", client.id), &client.token, None).await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}
