//! One instant format across every response (issue 14): every RFC 3339 instant the
//! API writes — in the OpenAPI document's examples and in the answers of a journey
//! over the routes — has the form `agenda_entity::edge::instant` gives it (UTC, `Z`,
//! a fraction only when the instant has one). Slot answers' `local_start` and
//! `local_end` are local times with their offset on purpose, and are left out.

use std::collections::{BTreeMap, BTreeSet};

use agenda_entity::edge::instant;
use agenda_storage::seed;
use agenda_testkit::both_engines;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::support::{TestApp, login, request};

/// Every string of `value` that parses as an RFC 3339 instant, with its JSON path,
/// except under `local_*` keys.
fn instants(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if DateTime::parse_from_rfc3339(s).is_ok() => {
            out.push((path.to_owned(), s.clone()));
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                instants(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                if !key.starts_with("local_") {
                    instants(item, &format!("{path}.{key}"), out);
                }
            }
        }
        _ => {}
    }
}

/// The instants of `value` not in the canonical form, as `path: text (expected)`.
fn non_canonical(value: &Value, path: &str) -> (usize, Vec<String>) {
    let mut found = Vec::new();
    instants(value, path, &mut found);
    let bad = found
        .iter()
        .filter_map(|(path, text)| {
            let at = DateTime::parse_from_rfc3339(text)
                .unwrap()
                .with_timezone(&Utc);
            let canonical = instant(&at);
            (canonical != *text).then(|| format!("{path}: {text} (canonical: {canonical})"))
        })
        .collect();
    (found.len(), bad)
}

/// Every `example` and `examples` value anywhere in the document.
fn examples<'a>(value: &'a Value, path: &str, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            for (key, item) in map {
                let here = format!("{path}/{key}");
                if key == "example" || key == "examples" {
                    out.push((here.clone(), item));
                }
                examples(item, &here, out);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                examples(item, &format!("{path}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The first `id` of a list answer (an array, or a page with `items`).
fn first_id(body: &Value) -> Option<String> {
    let items = body.as_array().or_else(|| body["items"].as_array())?;
    items.first()?["id"].as_str().map(str::to_owned)
}

both_engines! {
    async fn every_instant_in_examples_and_responses_has_the_one_format(t: TestDb) {
        let app = TestApp::spawn(t).await;

        // The document's examples.
        let (status, doc) = app.get("/api/v1/openapi.json").await;
        assert_eq!(status, 200);
        let mut found = Vec::new();
        examples(&doc, "", &mut found);
        let (mut checked, mut bad) = (0, Vec::new());
        for (path, example) in &found {
            let (n, wrong) = non_canonical(example, path);
            checked += n;
            bad.extend(wrong);
        }
        assert!(checked >= 5, "the examples hold instants: {checked}");
        assert!(bad.is_empty(), "examples with another instant format:\n{}", bad.join("\n"));

        // A populated organization (appointments with their history, reviews, the
        // ledger, withdrawals, notifications, rules, a ticket) and its people.
        let hash = agenda_api::password::hash(seed::DEMO_PASSWORD).unwrap();
        seed::demo_on(&app.t.db, &hash, Utc::now().date_naive()).await.unwrap();
        let mut people = Vec::new();
        for email in [seed::DEMO_ADMIN_EMAIL, "support@demo.example.com", "ana.souza@demo.example.com", "beatriz.alves@demo.example.com"] {
            let (status, body) = login(&app, seed::DEMO_SLUG, email, seed::DEMO_PASSWORD).await;
            assert_eq!(status, 200, "{email}: {body}");
            people.push((email, body["token"].as_str().unwrap().to_owned()));
        }
        let (admin, ana, client) = (people[0].1.clone(), people[2].1.clone(), people[3].1.clone());
        let (status, me) = request(&app, "GET", "/api/v1/users/me", Some(&ana), None, None).await;
        assert_eq!(status, 200, "{me}");
        let ana_id = me["id"].as_str().unwrap().to_owned();

        // Answers collected: route → bodies.
        let mut answers: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut record = |route: &str, status: u16, body: Value| {
            if (200..300).contains(&status) {
                answers.entry(route.to_owned()).or_default().push(body);
            }
        };

        // A few writes, whose answers count too.
        let (status, body) = request(&app, "PATCH", "/api/v1/providers/me/settings", Some(&ana), Some(json!({"bio": "Cuts and colour"})), None).await;
        assert_eq!(status, 200, "{body}");
        record("PATCH /providers/me/settings", status, body);
        let (status, profile) = request(&app, "GET", &format!("/api/v1/providers/{ana_id}/profile"), Some(&client), None, None).await;
        assert_eq!(status, 200, "{profile}");
        let service = profile["services"][0]["id"].as_str().unwrap().to_owned();
        let (from, to) = (Utc::now().date_naive() + Duration::days(1), Utc::now().date_naive() + Duration::days(7));
        let (status, slots) = request(&app, "GET", &format!("/api/v1/providers/{ana_id}/slots?service_id={service}&from={from}&to={to}"), Some(&client), None, None).await;
        assert_eq!(status, 200, "{slots}");
        let start = slots[0]["start"].as_str().expect("a free slot").to_owned();
        record("GET /providers/{id}/slots", status, slots);
        let (status, booked) = request(&app, "POST", "/api/v1/appointments", Some(&client), Some(json!({"service_id": service, "start_at": start})), None).await;
        assert_eq!(status, 201, "{booked}");
        let booked_id = booked["id"].as_str().unwrap().to_owned();
        record("POST /appointments", status, booked);
        let (status, body) = request(&app, "POST", &format!("/api/v1/appointments/{booked_id}/confirm"), Some(&ana), Some(json!({})), None).await;
        record("POST /appointments/{id}/confirm", status, body);
        let (status, body) = request(&app, "POST", "/api/v1/marketplace/release", Some(&ana), None, None).await;
        assert_eq!(status, 200, "{body}");
        record("POST /marketplace/release", status, body);

        // Every GET of the document, as each person: first those without path
        // parameters, then the others with an id taken from the list above them.
        let paths: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, item)| item.get("get").is_some())
            .map(|(path, _)| path.clone())
            .collect();
        let mut ids: BTreeMap<String, String> = BTreeMap::new();
        let mut skipped = BTreeSet::new();
        for pass in [false, true] {
            for path in paths.iter().filter(|p| p.contains('{') == pass) {
                let mut concrete = String::new();
                let mut ok = true;
                for segment in path.trim_start_matches('/').split('/') {
                    if segment.starts_with('{') {
                        let value = if segment == "{provider_id}" { Some(ana_id.clone()) } else { ids.get(&concrete).cloned() };
                        match value {
                            Some(v) => concrete.push_str(&format!("/{v}")),
                            None => ok = false,
                        }
                    } else {
                        concrete.push_str(&format!("/{segment}"));
                    }
                }
                if !ok || path.ends_with("/slots") || path.contains("openapi") {
                    skipped.insert(path.clone());
                    continue;
                }
                for (_, token) in &people {
                    let (status, body) = request(&app, "GET", &concrete, Some(token), None, None).await;
                    assert!(status < 500, "GET {concrete}: {status} {body}");
                    if let Some(id) = first_id(&body) {
                        ids.entry(concrete.clone()).or_insert(id);
                    }
                    record(&format!("GET {path}"), status, body);
                }
            }
        }
        // Staff views that need the provider named.
        for path in ["/marketplace/balance", "/marketplace/transactions"] {
            let (status, body) = request(&app, "GET", &format!("/api/v1{path}?provider_id={ana_id}"), Some(&admin), None, None).await;
            assert_eq!(status, 200, "{body}");
            record(&format!("GET {path}?provider_id"), status, body);
        }

        let (mut checked, mut bad) = (0, Vec::new());
        let mut routes_with_instants = BTreeSet::new();
        for (route, bodies) in &answers {
            for body in bodies {
                let (n, wrong) = non_canonical(body, route);
                if n > 0 {
                    routes_with_instants.insert(route.clone());
                }
                checked += n;
                bad.extend(wrong);
            }
        }
        eprintln!(
            "{:?}: {checked} instants checked in {} answers of {} routes ({} with instants); skipped {skipped:?}",
            app.t.engine(),
            answers.values().map(Vec::len).sum::<usize>(),
            answers.len(),
            routes_with_instants.len()
        );
        assert!(bad.is_empty(), "instants in another format:\n{}", bad.join("\n"));
        // Not vacuous: many instants, from the main areas.
        assert!(checked > 500, "{checked}");
        for route in ["GET /api/v1/appointments", "GET /api/v1/appointments/{id}/history", "GET /api/v1/reviews", "GET /api/v1/marketplace/transactions", "GET /api/v1/notifications", "GET /api/v1/users", "POST /appointments", "GET /providers/{id}/slots"] {
            assert!(routes_with_instants.contains(route), "{route} not covered: {routes_with_instants:?}");
        }
        app.stop().await;
    }
}
