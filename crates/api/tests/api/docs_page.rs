//! `GET /docs`: Swagger UI served by the binary, loaded in a real headless Chromium
//! (Debian's, driven by playwright-core from `e2e/`), lists the API's operations. The
//! page's assets come from the server itself: no request leaves it.

use agenda_testkit::{TestDb, tools};

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

    let url = app.url("/docs");
    let shown = crate::support::run_browser_script(
        &e2e,
        &chromium,
        "docs-page.mjs",
        &url,
        &[&operations.to_string()],
    );
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
