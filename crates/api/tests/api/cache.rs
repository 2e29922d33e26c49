//! The read cache in the running server: repeated catalogue and free-slot reads are
//! served from it (the hit and miss counters of `GET /metrics` move), a write is
//! visible to the next read once it has committed, and on PostgreSQL a write made
//! by another process reaches the server's cache through `LISTEN/NOTIFY`.

use agenda_entity::enums::UserRole;
use agenda_storage::Engine;
use agenda_testkit::both_engines;
use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::support::{TestApp, api, bookable_provider, member, organization};

fn series(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no series {name} in:\n{text}"))
}

/// `(hits, misses)` as `GET /metrics` reports them.
async fn counters(app: &TestApp) -> (u64, u64) {
    let text = app.get_text("/metrics").await;
    (
        series(&text, "agenda_cache_hits_total"),
        series(&text, "agenda_cache_misses_total"),
    )
}

fn names(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect()
}

both_engines! {
    async fn the_server_reads_through_its_cache_and_drops_entries_after_commit(t: TestDb) {
        let postgres = t.engine() == Engine::Postgres;
        let app = TestApp::spawn(t).await;
        let scope = organization(&app, "acme").await;
        let admin = member(&app, scope, "acme", "admin@acme.example.com", UserRole::Admin).await;
        let client = member(&app, scope, "acme", "client@acme.example.com", UserRole::Client).await;
        let provider = member(&app, scope, "acme", "ana@acme.example.com", UserRole::Provider).await;
        // Written behind the server's back (the test's own pool), before any read.
        let service = bookable_provider(&app, scope, provider.id, json!({"business_name": "Studio", "accepted_payment_methods": ["pix"], "slot_step_minutes": 60, "min_lead_minutes": 0})).await;
        let (status, created) = api(&app, "POST", "/niches", &admin.token, Some(json!({"name": "Hair", "slug": "hair"}))).await;
        assert_eq!(status, 201, "{created}");

        if postgres {
            // Another process (here: the test's own pool, not the server) renames
            // the niche. The trigger's NOTIFY reaches the server's listener after
            // that commit and drops the entry, long before the 60 s TTL. Being the
            // last write behind the server's back, once it is seen every earlier
            // notification has been handled too.
            wait_until("the cache listener connects", || async {
                app.get_text("/metrics").await.contains("agenda_cache_listener_connected 1")
            })
            .await;
            assert_eq!(names(&api(&app, "GET", "/niches", &client.token, None).await.1), ["Hair"]);
            use sea_orm::ConnectionTrait;
            app.t.conn().execute_unprepared("UPDATE niches SET name = 'Hair and beard'").await.unwrap();
            wait_until("the listener drops the renamed niche", || async {
                names(&api(&app, "GET", "/niches", &client.token, None).await.1) == ["Hair and beard"]
            })
            .await;
        }

        // Repeated reads hit.
        let (status, page) = api(&app, "GET", "/niches", &client.token, None).await;
        assert_eq!(status, 200, "{page}");
        let (hits, misses) = counters(&app).await;
        for _ in 0..3 {
            assert_eq!(api(&app, "GET", "/niches", &client.token, None).await.1, page);
        }
        let after = counters(&app).await;
        assert_eq!(after, (hits + 3, misses), "three hits, no miss");

        // A write through the API is visible to the very next read (its entry was
        // dropped after the commit), which misses once and is then cached again.
        let (status, created) = api(&app, "POST", "/niches", &admin.token, Some(json!({"name": "Nails", "slug": "nails"}))).await;
        assert_eq!(status, 201, "{created}");
        let (_, page) = api(&app, "GET", "/niches", &client.token, None).await;
        assert_eq!(names(&page).len(), 2, "{page}");
        assert!(names(&page).contains(&"Nails"), "{page}");
        assert_eq!(api(&app, "GET", "/niches", &client.token, None).await.1, page);
        let (hits, misses) = counters(&app).await;
        assert_eq!((hits, misses), (after.0 + 1, after.1 + 1));

        // A write that fails (a duplicate slug, 409) rolled back: nothing to drop.
        let (status, _) = api(&app, "POST", "/niches", &admin.token, Some(json!({"name": "Nails again", "slug": "nails"}))).await;
        assert_eq!(status, 409);
        assert_eq!(api(&app, "GET", "/niches", &client.token, None).await.1, page);
        assert_eq!(counters(&app).await, (hits + 1, misses), "still cached");

        // Free slots read the provider's settings and rules through the cache.
        let day = (Utc::now() + Duration::days(2)).date_naive();
        let slots_path = format!("/providers/{}/slots?service_id={service}&from={day}&to={day}", provider.id);
        let (status, slots) = api(&app, "GET", &slots_path, &client.token, None).await;
        assert_eq!(status, 200, "{slots}");
        assert_eq!(slots["slots"].as_array().or(slots.as_array()).unwrap().len(), 3, "{slots}");
        let before = counters(&app).await;
        assert_eq!(api(&app, "GET", &slots_path, &client.token, None).await.1, slots);
        let after = counters(&app).await;
        assert!(after.0 >= before.0 + 5, "the service, settings, hours, breaks and blocks hit: {before:?} -> {after:?}");
        assert_eq!(after.1, before.1, "no miss on a repeated slots read");

        // The provider shortens their hours through the API: the next slots read
        // sees it.
        let (status, rules) = api(&app, "GET", &format!("/availability?provider_id={}&limit=100", provider.id), &client.token, None).await;
        assert_eq!(status, 200);
        for rule in rules["items"].as_array().unwrap() {
            let path = format!("/availability/{}", rule["id"].as_str().unwrap());
            let (status, body) = api(&app, "PATCH", &path, &provider.token, Some(json!({"end_time": "10:00"}))).await;
            assert_eq!(status, 200, "{body}");
        }
        let (_, slots) = api(&app, "GET", &slots_path, &client.token, None).await;
        assert_eq!(slots["slots"].as_array().or(slots.as_array()).unwrap().len(), 1, "{slots}");
        app.stop().await;
    }
}

/// Polls `condition` every 50 ms for up to 20 s.
async fn wait_until<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !condition().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

both_engines! {
    async fn cache_ttl_zero_turns_the_cache_off(t: TestDb) {
        let app = TestApp::spawn_configured(t, axum::Router::new(), |s| s.cache.ttl = std::time::Duration::ZERO).await;
        let scope = organization(&app, "acme").await;
        let client = member(&app, scope, "acme", "client@acme.example.com", UserRole::Client).await;
        for _ in 0..3 {
            assert_eq!(api(&app, "GET", "/niches", &client.token, None).await.0, 200);
        }
        assert_eq!(counters(&app).await, (0, 0));
        app.stop().await;
    }
}
