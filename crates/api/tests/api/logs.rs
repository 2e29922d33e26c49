//! Logs a machine can read: the real `agenda` binary with `LOG_FORMAT=json`, its
//! stderr on a pipe, parsed line by line.

use std::time::Duration;

use agenda_testkit::both_engines;
use serde_json::{Value, json};

use crate::faults::Served;

/// The JSON request lines (`message` `request`) written so far.
fn request_lines(served: &Served) -> Vec<Value> {
    let stderr = served.stderr.lock().unwrap().clone();
    stderr
        .lines()
        .map(|line| {
            assert!(!line.contains('\x1b'), "an ANSI escape in {line:?}");
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"))
        })
        .filter(|event| event["message"] == "request")
        .collect()
}

both_engines! {
    /// Every request line carries its request id, method, route template, status and
    /// latency (numbers as numbers), and the tenant once the request entered one.
    /// Figures: 3 lines for 3 requests; the sign-up's names the new organization.
    async fn json_request_lines_have_numbers_route_templates_and_the_tenant(t: TestDb) {
        let url = t.settings.url.expose().to_owned();
        let mut served = Served::start(&[("DATABASE_URL", url.as_str()), ("AUTO_MIGRATE", "false")]);
        let client = reqwest::Client::new();
        let live = client
            .get(served.url("/health/live"))
            .header("x-request-id", "trace-me-42")
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), 200);
        let signed_up = client
            .post(served.url("/api/v1/organizations"))
            .json(&crate::support::sign_up_body(json!({"slug": "logged", "name": "Logged", "time_zone": "UTC", "currency": "BRL"})))
            .send()
            .await
            .unwrap();
        assert_eq!(signed_up.status(), 201);
        let signed_up: Value = signed_up.json().await.unwrap();
        let organization_id = signed_up["organization"]["id"].as_str().unwrap().to_owned();
        let missing = client.get(served.url("/api/v1/organizations/no/such/thing")).send().await.unwrap();
        assert_eq!(missing.status(), 404);

        // The line is written when the answer is; wait for the third (bounded).
        let started = std::time::Instant::now();
        while request_lines(&served).len() < 3 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lines = request_lines(&served);
        assert_eq!(lines.len(), 3, "{lines:#?}");
        for line in &lines {
            assert_eq!(line["target"], "agenda::http", "{line}");
            assert!(line["status"].is_u64(), "status is a number: {line}");
            assert!(line["latency_ms"].is_f64() && line["latency_ms"].as_f64().unwrap() >= 0.0, "latency is a number: {line}");
            assert!(!line["request_id"].as_str().unwrap().is_empty(), "{line}");
        }
        let live = &lines[0];
        assert_eq!((live["method"].as_str(), live["route"].as_str(), live["status"].as_u64()), (Some("GET"), Some("/health/live"), Some(200)), "{live}");
        assert_eq!(live["request_id"], "trace-me-42", "the caller's request id: {live}");
        assert!(live.get("organization_id").is_none(), "no tenant: {live}");
        let sign_up = &lines[1];
        assert_eq!((sign_up["method"].as_str(), sign_up["route"].as_str(), sign_up["status"].as_u64()), (Some("POST"), Some("/api/v1/organizations"), Some(201)), "{sign_up}");
        assert_eq!(sign_up["organization_id"].as_str(), Some(organization_id.as_str()), "{sign_up}");
        let missing = &lines[2];
        assert_eq!((missing["route"].as_str(), missing["status"].as_u64()), (Some("unmatched"), Some(404)), "{missing}");

        let (code, _) = served.terminate(Duration::from_secs(30));
        assert_eq!(code, Some(0));
    }
}
