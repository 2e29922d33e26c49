//! The HTTP layers: request deadline, CORS allow-list, compression.

use std::time::{Duration, Instant};

use agenda_api::Application;
use agenda_api::app::AppState;
use agenda_testkit::TestDb;
use axum::Router;
use axum::routing::get;

use crate::support::{read, settings_for};

async fn spawn(
    adjust: impl FnOnce(&mut agenda_api::Settings),
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let t = TestDb::sqlite().await;
    let mut settings = settings_for(&t);
    adjust(&mut settings);
    let slow: Router<AppState> = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "done"
        }),
    );
    let app = Application::with_routes(settings, t.db.clone(), slow)
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _keep = t;
        let _ = app
            .run_until(async {
                let _ = stopped.await;
            })
            .await;
    });
    (base, stop)
}

#[tokio::test]
async fn a_request_past_the_deadline_is_503_with_retry_after() {
    let (base, stop) = spawn(|s| s.http.request_timeout = Duration::from_millis(300)).await;
    let started = Instant::now();
    let response = reqwest::get(format!("{base}/slow")).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let (_, body) = read(response).await;
    assert_eq!(body["error"]["code"], "unavailable");
    // No sooner than the deadline; within a generous margin, far from the handler's
    // 60 seconds.
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let (base, stop) =
        spawn(|s| s.http.cors_origins = vec!["https://app.example.com".into()]).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/api/v1/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let denied = preflight("https://evil.example.com").await.unwrap();
    assert!(
        denied
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let _ = stop.send(());
}

#[tokio::test]
async fn responses_are_compressed_when_asked() {
    let (base, stop) = spawn(|_| {}).await;
    let response = reqwest::Client::new()
        .get(format!("{base}/api/v1/openapi.json"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    let plain = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let _ = stop.send(());
}
