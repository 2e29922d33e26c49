//! `GET /docs`: Swagger UI served by the binary, loaded in a real headless Chromium
//! (Debian's, driven by playwright-core from `e2e/`), lists the API's operations. The
//! page's assets come from the server itself: no request leaves it.

use agenda_testkit::{TestDb, tools};
use serde_json::Value;

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_lists_every_operation_in_a_real_browser() {
    let Some(chromium) = tools::require(tools::chromium()) else {
        return;
    };
    let Some(e2e) = tools::require(tools::node_project()) else {
        return;
    };
    let app = TestApp::spawn(TestDb::sqlite().await).await;
    let (_, doc) = app.get("/api/v1/openapi.json").await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();

    let profile = std::env::temp_dir().join(format!("agenda-chromium-{}", uuid::Uuid::now_v7()));
    let url = app.url("/docs");
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new("node")
            .current_dir(&e2e)
            .arg("docs-page.mjs")
            .arg(&url)
            .arg(&chromium)
            .arg(&profile)
            .arg(operations.to_string())
            .output()
            .unwrap()
    });
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the page did not render: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(shown["title"], "Agenda API");
    let listed = shown["operations"].as_array().unwrap();
    assert_eq!(listed.len(), operations, "{shown}");
    for (method, path) in [
        ("POST", "/api/v1/appointments"),
        ("GET", "/api/v1/providers/{provider_id}/slots"),
        ("POST", "/api/v1/auth/register"),
    ] {
        assert!(
            listed
                .iter()
                .any(|o| o["method"] == method && o["path"] == path),
            "{method} {path} is not listed"
        );
    }
    // Everything the page loaded came from this server.
    let origin = app.url("");
    for request in shown["requests"].as_array().unwrap() {
        let request = request.as_str().unwrap();
        assert!(
            request.starts_with(&origin) || request.starts_with("data:"),
            "the page fetched {request} from elsewhere"
        );
    }
    app.stop().await;
}
