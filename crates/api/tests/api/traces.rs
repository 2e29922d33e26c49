//! OpenTelemetry traces from the real `agenda` binary to the test kit's OTLP/HTTP
//! receiver.

use std::time::Duration;

use agenda_testkit::both_engines;
use agenda_testkit::otlp::{OtlpReceiver, ReceivedSpan};
use serde_json::json;

use crate::faults::Served;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

both_engines! {
    /// A request with a `traceparent` becomes a server span of the caller's trace,
    /// named by its route template, with one client span per SQL statement under it
    /// whose text holds no bound value. Figures: the sign-up's span is a child of the
    /// caller's span id; its statements include an INSERT; neither the admin's e-mail
    /// nor the organization's name appears in any span; the spans arrive by the time
    /// the process has exited on SIGTERM (shutdown flushes them).
    async fn a_request_and_its_statements_are_exported_under_the_callers_trace(t: TestDb) {
        let receiver = OtlpReceiver::start().await;
        let endpoint = receiver.endpoint();
        let url = t.settings.url.expose().to_owned();
        let mut served = Served::start(&[
            ("DATABASE_URL", url.as_str()),
            ("AUTO_MIGRATE", "false"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "agenda-under-test"),
        ]);
        let email = "wanda.tracer@example.com";
        let mut body = crate::support::sign_up_body(json!({"slug": "traced", "name": "Tracy Secretname", "time_zone": "UTC", "currency": "BRL"}));
        body["admin"]["email"] = json!(email);
        let response = reqwest::Client::new()
            .post(served.url("/api/v1/organizations"))
            .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);

        let (code, _) = served.terminate(Duration::from_secs(40));
        assert_eq!(code, Some(0), "{}", served.stderr.lock().unwrap());
        // Flushed before the exit; a short bound for the receiver's own task.
        let spans = receiver
            .wait_for(Duration::from_secs(10), |spans| spans.iter().any(|s| s.span.name == "POST /api/v1/organizations"))
            .await;
        let request = spans
            .iter()
            .find(|s| s.span.name == "POST /api/v1/organizations")
            .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
        assert_eq!(request.service_name, "agenda-under-test");
        assert_eq!(hex(&request.span.trace_id), TRACE_ID);
        assert_eq!(hex(&request.span.parent_span_id), CALLER_SPAN_ID, "a child of the caller's span");
        assert_eq!(request.attribute("route").as_deref(), Some("/api/v1/organizations"));
        assert_eq!(request.attribute("status").as_deref(), Some("201"));
        assert_eq!(request.span.kind, 2, "SPAN_KIND_SERVER");

        let statements: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|s| s.span.trace_id == request.span.trace_id && s.attribute("db.query.text").is_some())
            .collect();
        assert!(
            statements.iter().any(|s| s.span.parent_span_id == request.span.span_id),
            "statement spans are children of the request span: {statements:#?}"
        );
        assert!(
            statements.iter().any(|s| s.span.name == "INSERT" && s.attribute("db.query.text").unwrap().contains("INSERT")),
            "{statements:#?}"
        );
        for span in &statements {
            assert_eq!(span.span.kind, 3, "SPAN_KIND_CLIENT");
            assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
        }
        let everything = format!("{spans:?}");
        assert!(!everything.contains(email), "a bound value was exported: {everything}");
        assert!(!everything.contains("Secretname"), "a bound value was exported: {everything}");
    }
}
