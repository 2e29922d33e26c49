//! The OpenAPI document: generated from the routes, so every mounted `/api/v1` route
//! is in it, and everything in it is mounted.

use agenda_testkit::TestDb;
use serde_json::{Value, json};

use crate::support::TestApp;

#[tokio::test]
async fn the_document_covers_every_route_and_only_mounted_ones() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (status, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["schemas"]["ErrorResponse"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let paths = doc["paths"].as_object().unwrap();
    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}: responses"
            );
            operations.push((method.to_uppercase(), path.clone()));
        }
    }
    // The routes this build mounts under /api/v1 (kept in step with the code: a new
    // route must appear here and in the document).
    let mut expected: Vec<(String, String)> = [
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/password-reset"),
        ("POST", "/api/v1/auth/password-reset/confirm"),
        ("POST", "/api/v1/auth/verify-email"),
        ("POST", "/api/v1/auth/verify-email/resend"),
        ("POST", "/api/v1/auth/invitations/accept"),
        ("POST", "/api/v1/organizations"),
        ("GET", "/api/v1/organizations/{id}"),
        ("PATCH", "/api/v1/organizations/{id}"),
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/users/{id}/invitation"),
        ("POST", "/api/v1/users/{id}/role"),
        ("POST", "/api/v1/users/{id}/deactivate"),
        ("POST", "/api/v1/users/{id}/reactivate"),
        ("GET", "/api/v1/admin/integrations"),
        ("GET", "/api/v1/admin/integrations/{integration}"),
        ("PUT", "/api/v1/admin/integrations/{integration}"),
        ("DELETE", "/api/v1/admin/integrations/{integration}"),
        ("GET", "/api/v1/clients/me/payment-methods"),
        ("POST", "/api/v1/clients/me/payment-methods"),
        ("PATCH", "/api/v1/clients/me/payment-methods/{id}"),
        ("DELETE", "/api/v1/clients/me/payment-methods/{id}"),
        ("GET", "/api/v1/clients/{id}/payment-methods"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/admin/db/pool"),
        ("GET", "/api/v1/admin/db/connections"),
        ("GET", "/api/v1/providers/{provider_id}/slots"),
        ("GET", "/api/v1/providers/{provider_id}/profile"),
        ("POST", "/api/v1/appointments"),
        ("GET", "/api/v1/appointments"),
        ("GET", "/api/v1/appointments/{id}"),
        ("GET", "/api/v1/appointments/{id}/history"),
        ("POST", "/api/v1/appointments/{id}/confirm"),
        ("POST", "/api/v1/appointments/{id}/start"),
        ("POST", "/api/v1/appointments/{id}/complete"),
        ("POST", "/api/v1/appointments/{id}/cancel"),
        ("POST", "/api/v1/appointments/{id}/no-show"),
        ("POST", "/api/v1/appointments/{id}/reschedule"),
        ("POST", "/api/v1/appointments/{id}/payment"),
        ("GET", "/api/v1/marketplace/balance"),
        ("GET", "/api/v1/marketplace/transactions"),
        ("POST", "/api/v1/marketplace/withdrawals"),
        ("GET", "/api/v1/marketplace/withdrawals/{id}"),
        ("POST", "/api/v1/marketplace/withdrawals/{id}/complete"),
        ("POST", "/api/v1/marketplace/withdrawals/{id}/fail"),
        ("POST", "/api/v1/marketplace/release"),
        ("GET", "/api/v1/notifications"),
        ("POST", "/api/v1/notifications/{id}/read"),
        ("POST", "/api/v1/notifications/read-all"),
        ("GET", "/api/v1/notifications/unread-count"),
        ("GET", "/api/v1/analytics/provider"),
        ("GET", "/api/v1/analytics/organization"),
        ("GET", "/api/v1/providers"),
        ("POST", "/api/v1/reviews"),
        ("GET", "/api/v1/reviews"),
        ("POST", "/api/v1/reviews/{id}/response"),
        ("POST", "/api/v1/reviews/{id}/moderate"),
        ("DELETE", "/api/v1/reviews/{id}"),
        ("POST", "/api/v1/support/tickets"),
        ("GET", "/api/v1/support/tickets"),
        ("GET", "/api/v1/support/tickets/{id}"),
        ("POST", "/api/v1/support/tickets/{id}/messages"),
        ("GET", "/api/v1/support/tickets/{id}/messages"),
        ("POST", "/api/v1/support/tickets/{id}/status"),
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("GET", "/api/v1/users"),
        ("GET", "/api/v1/users/{id}"),
        ("GET", "/api/v1/users/me/addresses"),
        ("POST", "/api/v1/users/me/addresses"),
        ("PATCH", "/api/v1/users/me/addresses/{id}"),
        ("DELETE", "/api/v1/users/me/addresses/{id}"),
        ("GET", "/api/v1/providers/me/settings"),
        ("PATCH", "/api/v1/providers/me/settings"),
        ("PUT", "/api/v1/providers/me/settings"),
        ("GET", "/api/v1/admin/payment-settings"),
        ("PATCH", "/api/v1/admin/payment-settings"),
        ("GET", "/api/v1/admin/audit-log"),
        ("GET", "/api/v1/admin/settings"),
        ("POST", "/api/v1/admin/settings"),
        ("POST", "/api/v1/admin/appointments/{id}/refunds"),
        ("POST", "/api/v1/promotions/validate"),
        ("GET", "/api/v1/providers/me/payment-preferences"),
        ("PUT", "/api/v1/providers/me/payment-preferences"),
        ("GET", "/api/v1/clients/me/payment-preferences"),
        ("PUT", "/api/v1/clients/me/payment-preferences"),
        ("GET", "/api/v1/onboarding/progress"),
        ("POST", "/api/v1/onboarding/progress/{step_id}"),
        ("POST", "/api/v1/webhooks/payments/{processor}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    for collection in [
        "niches",
        "categories",
        "service-templates",
        "services",
        "provider-services",
        "availability",
        "breaks",
        "blocked-slots",
        "staff",
        "promotions",
        "onboarding/steps",
        "admin/fee-overrides",
    ] {
        let list = format!("/api/v1/{collection}");
        let item = format!("{list}/{{id}}");
        for (method, path) in [
            ("GET", &list),
            ("POST", &list),
            ("GET", &item),
            ("PATCH", &item),
            ("DELETE", &item),
        ] {
            expected.push((method.to_owned(), path.clone()));
        }
    }
    expected.sort();
    operations.sort();
    assert_eq!(operations, expected);

    // Everything documented is mounted: no "no such route" and no 405.
    for (method, path) in &operations {
        let url = app.url(
            &path
                .replace("{id}", "00000000-0000-7000-8000-000000000000")
                .replace("{step_id}", "00000000-0000-7000-8000-000000000000")
                .replace("{provider_id}", "00000000-0000-7000-8000-000000000000")
                .replace("{processor}", "stripe"),
        );
        let request = match method.as_str() {
            "GET" => app.client.get(url),
            "POST" => app.client.post(url).json(&json!({})),
            "PATCH" => app.client.patch(url).json(&json!({})),
            "PUT" => app.client.put(url).json(&json!({})),
            "DELETE" => app.client.delete(url),
            other => panic!("unexpected method {other}"),
        };
        let (status, body): (u16, Value) =
            crate::support::read(request.send().await.unwrap()).await;
        assert_ne!(status, 405, "{method} {path}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            !(status == 404 && message.contains("route")),
            "{method} {path} is not mounted: {body}"
        );
    }
    app.stop().await;
}

/// Routes are registered only through `OpenApiRouter` (`routes!`), never with plain
/// `Router::route`, except the operational endpoints and the web console's HTML
/// pages, both outside `/api/v1`.
#[test]
fn no_route_is_mounted_around_the_document() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/routes");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "health.rs" || name == "console" {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            !source.contains(".route("),
            "{name} mounts a route with .route(); use .routes(routes!(handler))"
        );
    }
}

/// Every operation the document marks as needing a bearer token refuses a caller
/// without one (401), and one with a token that is not a session (401): the forbidden
/// caller of every protected route, checked from the document itself.
#[tokio::test]
async fn every_protected_route_refuses_anonymous_callers() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let nil = "00000000-0000-7000-8000-000000000000";
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let protected = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            if !protected {
                continue;
            }
            let concrete = path
                .replace("{id}", nil)
                .replace("{provider_id}", nil)
                .replace("{step_id}", nil)
                .replace("{integration}", "stripe");
            for token in [None, Some("f".repeat(64))] {
                let url = app.url(&concrete);
                let mut request = match method.as_str() {
                    "get" => app.client.get(url),
                    "post" => app.client.post(url).json(&json!({})),
                    "put" => app.client.put(url).json(&json!({})),
                    "patch" => app.client.patch(url).json(&json!({})),
                    "delete" => app.client.delete(url),
                    other => panic!("unexpected method {other}"),
                };
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let (status, body): (u16, Value) =
                    crate::support::read(request.send().await.unwrap()).await;
                assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            }
            checked += 1;
        }
    }
    assert!(checked > 90, "only {checked} protected operations found");
    app.stop().await;
}

/// Every operation has an explicit operationId, and no two share one (generated
/// clients name their functions after them).
#[tokio::test]
async fn operation_ids_are_unique_and_descriptive() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
                .to_owned();
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{method} {path}: operationId {id:?} is not lowerCamelCase"
            );
            if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id} is used by {other} and {method} {path}");
            }
        }
    }
    assert_eq!(seen.len(), 152);
    app.stop().await;
}

/// Parameters sit where the server reads them: every path parameter is in the path
/// template (and required), every `{name}` of a template is a declared path parameter.
#[tokio::test]
async fn parameters_are_in_their_real_place() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let params = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for p in &params {
                let name = p["name"].as_str().unwrap();
                if p["in"] == "path" {
                    assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: path parameter {name} is not in the path"
                    );
                    assert_eq!(p["required"], true, "{method} {path}: {name}");
                }
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    params
                        .iter()
                        .any(|p| p["in"] == "path" && p["name"] == name),
                    "{method} {path}: {name} is not declared"
                );
            }
        }
    }
    // The slots route's offering and dates are query parameters.
    let slots = &doc["paths"]["/api/v1/providers/{provider_id}/slots"]["get"]["parameters"];
    for (name, required) in [
        ("service_id", false),
        ("provider_service_id", false),
        ("from", true),
        ("to", true),
    ] {
        let p = slots
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap();
        assert_eq!(
            (p["in"].as_str(), p["required"].as_bool()),
            (Some("query"), Some(required)),
            "{name}"
        );
    }
    app.stop().await;
}

/// The statuses that follow from what an operation is are documented on every
/// operation of that kind, with the error body.
#[tokio::test]
async fn every_operation_lists_the_statuses_of_its_kind() {
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let responses = &doc["components"]["responses"];
    for name in [
        "BadRequest",
        "Unauthorized",
        "Forbidden",
        "PayloadTooLarge",
        "Unprocessable",
        "Unavailable",
    ] {
        assert_eq!(
            responses[name]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorResponse",
            "{name}"
        );
    }
    assert!(responses["Unavailable"]["headers"]["Retry-After"].is_object());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let has = |status: &str| op["responses"].get(status).is_some();
            assert!(has("503"), "{method} {path}: 503");
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(has("401"), "{method} {path}: 401");
                // A suspended organization's session (organization_suspended).
                assert!(has("403"), "{method} {path}: 403");
            }
            if op.get("requestBody").is_some() {
                for s in ["400", "413", "422"] {
                    assert!(has(s), "{method} {path}: {s}");
                }
            }
            if op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["in"] != "header"))
            {
                assert!(has("400") && has("422"), "{method} {path}: 400/422");
            }
        }
    }
    app.stop().await;
}

/// Validates every schema example of the document against its schema; prints how
/// many it checked.
const CHECK_EXAMPLES: &str = r##"
import json, sys, jsonschema
doc = json.load(open(sys.argv[1]))
bad, checked = [], 0
for name, schema in doc["components"]["schemas"].items():
    for example in schema.get("examples", []) + ([schema["example"]] if "example" in schema else []):
        checked += 1
        root = {"$ref": "#/components/schemas/" + name, "components": doc["components"]}
        for error in jsonschema.Draft202012Validator(root).iter_errors(example):
            bad.append(f"{name}: {error.message}")
print("\n".join(bad) if bad else checked)
sys.exit(1 if bad else 0)
"##;

/// An independent validator (openapi-spec-validator, pinned in .ci/requirements.txt)
/// accepts the document the running server serves.
#[tokio::test]
async fn an_independent_validator_accepts_the_served_document() {
    use agenda_testkit::tools;
    let Some(validator) = tools::require(tools::python_tool("openapi-spec-validator")) else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let text = app.get_text("/api/v1/openapi.json").await;
    let file = std::env::temp_dir().join(format!("agenda-openapi-{}.json", uuid::Uuid::now_v7()));
    std::fs::write(&file, text).unwrap();
    let arg = file.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(validator).arg(arg).output()
    })
    .await
    .unwrap()
    .unwrap();
    // The examples the document gives satisfy their own schemas (jsonschema comes
    // with the validator).
    let python = tools::python().unwrap();
    let arg = file.clone();
    let examples = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .args(["-c", CHECK_EXAMPLES])
            .arg(arg)
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(
        examples.status.success(),
        "examples that break their schema: {}{}",
        String::from_utf8_lossy(&examples.stdout),
        String::from_utf8_lossy(&examples.stderr)
    );
    let checked = String::from_utf8_lossy(&examples.stdout);
    assert!(checked.trim().parse::<u32>().unwrap() >= 25, "{checked}");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "the validator refused the document: {said}"
    );
    assert!(said.contains("OK"), "{said}");
    app.stop().await;
}
