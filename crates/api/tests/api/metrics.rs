//! `GET /metrics`: Prometheus text with pool, query, HTTP and cache figures.

use agenda_testkit::both_engines;

use crate::support::TestApp;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

both_engines! {
    async fn metrics_report_pool_queries_http_and_cache(t: TestDb) {
        let app = TestApp::spawn(t).await;
        for _ in 0..3 {
            app.get("/health/ready").await;
        }
        let (status, _) = app.get("/api/v1/auth/me").await;
        assert_eq!(status, 401);
        let (status, _) = app
            .post("/api/v1/organizations", &crate::support::sign_up_body(serde_json::json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"})))
            .await;
        assert_eq!(status, 201);
        let response = app.client.get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.unwrap();

        assert_eq!(value(&text, "agenda_build_info{version=\"0.1.0\"}"), 1.0);
        assert!(value(&text, "agenda_db_pool_max") >= 1.0);
        assert!(text.contains("agenda_db_pool_connections{state=\"idle\"}"));
        assert_eq!(value(&text, "agenda_http_requests_total{method=\"GET\",route=\"/health/ready\",status=\"200\"}"), 3.0);
        assert_eq!(value(&text, "agenda_http_requests_total{method=\"GET\",route=\"/api/v1/auth/me\",status=\"401\"}"), 1.0);
        assert_eq!(value(&text, "agenda_http_request_duration_seconds_count{route=\"/health/ready\"}"), 3.0);
        // Creating the organization ran statements, each timed in the query histogram;
        // its transaction waited for a connection once.
        let statements = value(&text, "agenda_db_statements_total");
        assert!(statements >= 1.0, "{statements}");
        assert!(value(&text, "agenda_db_acquire_wait_seconds_count") >= 1.0);
        assert_eq!(value(&text, "agenda_db_query_duration_seconds_count"), statements);
        assert_eq!(value(&text, "agenda_db_query_duration_seconds_bucket{le=\"+Inf\"}"), statements);
        assert!(text.contains("agenda_cache_hits_total"));
        // Histogram buckets never decrease.
        let buckets: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("agenda_db_query_duration_seconds_bucket"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        app.stop().await;
    }
}

both_engines! {
    async fn admin_database_monitoring(t: TestDb) {
        use agenda_entity::enums::UserRole;
        use agenda_entity::user::CreateUser;
        use agenda_storage::repo::users::UserRepo;
        use serde_json::json;

        let app = TestApp::spawn(t).await;
        let (_, org) = app
            .post("/api/v1/organizations", &crate::support::sign_up_body(json!({"slug": "acme", "name": "Acme", "time_zone": "UTC", "currency": "BRL"})))
            .await;
        let scope = crate::support::scope_of(&org);
        let password = "correct horse battery";
        let hash = agenda_api::password::hash(password).unwrap();
        let mut tokens = Vec::new();
        for (email, role) in [("admin@example.com", UserRole::Admin), ("support@example.com", UserRole::Support)] {
            let input = CreateUser { email: email.into(), password: password.into(), full_name: "X".into(), phone: None, role, tax_id: None };
            UserRepo::create(app.t.conn(), scope, input, hash.clone()).await.unwrap();
            let (_, body) = app.post("/api/v1/auth/login", &json!({"organization": "acme", "email": email, "password": password})).await;
            tokens.push(body["token"].as_str().unwrap().to_owned());
        }
        let get = |path: &str, token: &str| {
            let request = app.client.get(app.url(path)).bearer_auth(token);
            async move { crate::support::read(request.send().await.unwrap()).await }
        };
        let (status, pool) = get("/api/v1/admin/db/pool", &tokens[0]).await;
        assert_eq!(status, 200, "{pool}");
        assert!(pool["pool"]["max"].as_u64().unwrap() >= 1);
        assert!(!pool.to_string().contains("password="), "no secret in {pool}");
        assert_eq!(get("/api/v1/admin/db/pool", &tokens[1]).await.0, 403, "support is not admin");
        let (status, body) = get("/api/v1/admin/db/connections", &tokens[0]).await;
        match app.t.engine() {
            agenda_storage::Engine::Postgres => {
                assert_eq!(status, 200, "{body}");
                let total = body["total"].as_u64().unwrap();
                let grouped: u64 = body["groups"].as_array().unwrap().iter().map(|g| g["count"].as_u64().unwrap()).sum();
                assert!(total >= 1 && total == grouped, "{body}");
            }
            agenda_storage::Engine::Sqlite => assert_eq!((status, crate::support::code(&body)), (409, "postgres_only")),
        }
        assert_eq!(get("/api/v1/admin/db/connections", &tokens[1]).await.0, 403);
        app.stop().await;
    }
}

both_engines! {
    async fn metrics_addr_moves_metrics_to_a_listener_of_its_own(t: TestDb) {
        let app = TestApp::spawn_configured(t, axum::Router::new(), |s| {
            s.http.metrics_addr = Some("127.0.0.1:0".parse().unwrap());
        })
        .await;
        let metrics_addr = app.metrics_addr.expect("METRICS_ADDR is bound");
        assert_ne!(metrics_addr, app.addr);
        for _ in 0..2 {
            assert_eq!(app.get("/health/live").await.0, 200);
        }
        // The public listener no longer serves it.
        let (status, body) = app.get("/metrics").await;
        assert_eq!((status, crate::support::code(&body)), (404, "not_found"), "{body}");

        let scrape = |path: &'static str| {
            let client = app.client.clone();
            async move { client.get(format!("http://{metrics_addr}{path}")).send().await.unwrap() }
        };
        let response = scrape("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
        let text = response.text().await.unwrap();
        assert_eq!(value(&text, "agenda_http_requests_total{method=\"GET\",route=\"/health/live\",status=\"200\"}"), 2.0);
        assert_eq!(value(&text, "agenda_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"), 1.0);
        // Scrapes on the metrics listener are not requests of the API.
        assert!(!text.contains("route=\"/metrics\""), "{text}");
        assert_eq!(value(&text, "agenda_outbox_messages{status=\"queued\"}"), 0.0);
        assert_eq!(value(&text, "agenda_outbox_deliveries_total{outcome=\"sent\"}"), 0.0);
        // The metrics listener serves nothing else.
        assert_eq!(scrape("/health/live").await.status(), 404);
        assert_eq!(scrape("/api/v1/auth/me").await.status(), 404);
        app.stop().await;
    }
}
