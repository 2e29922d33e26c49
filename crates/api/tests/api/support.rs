//! Starting the application for a test and talking to it.

use std::net::SocketAddr;

use agenda_api::Application;
use agenda_api::app::AppState;
use agenda_api::config::Settings;
use agenda_storage::config::Env;
use agenda_testkit::TestDb;
use axum::Router;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct TestApp {
    pub addr: SocketAddr,
    /// The `METRICS_ADDR` listener's address, when the settings ask for one.
    pub metrics_addr: Option<SocketAddr>,
    pub client: reqwest::Client,
    /// The test database; its pool (`t.db`) is the superuser on PostgreSQL, for
    /// set-up and checks across tenants.
    pub t: TestDb,
    /// The server's own pool: as the least-privilege application role on PostgreSQL
    /// (confined by row-level security, like production); a pool of its own on
    /// SQLite too, so closing it at shutdown leaves `t.db` open for the checks.
    pub db: agenda_storage::Db,
    /// The running server's state (its settings, the password-hashing bound, ...).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

/// Settings for a test server: the test database, port 0, everything else default.
pub fn settings_for(t: &TestDb) -> Settings {
    let mut settings = Settings::from_env(&Env::default()).unwrap();
    settings.db = t.settings.clone();
    settings.http.bind_addr = "127.0.0.1:0".parse().unwrap();
    settings.auto_migrate = false;
    settings
}

impl TestApp {
    /// The real application, as `agenda serve` builds it.
    pub async fn spawn(t: TestDb) -> TestApp {
        Self::spawn_with(t, Router::new()).await
    }

    /// The real application plus `extra` routes (behind the unit-of-work layer), for
    /// tests that need handlers of their own.
    pub async fn spawn_with(t: TestDb, extra: Router<AppState>) -> TestApp {
        Self::spawn_configured(t, extra, |_| {}).await
    }

    /// Like [`TestApp::spawn_with`], adjusting the settings of the server alone (its
    /// pool, HTTP, e-mail and password-hashing settings) on a pool of its own: the
    /// test's pool (`t.db`), which sets up and checks, keeps the test database's
    /// settings, so a fault injected into the server (a short timeout, say) cannot
    /// fail the set-up.
    pub async fn spawn_configured(
        t: TestDb,
        extra: Router<AppState>,
        adjust: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let mut settings = settings_for(&t);
        settings.db = t.app_role_settings().await;
        adjust(&mut settings);
        let db = agenda_storage::Db::connect(&settings.db)
            .await
            .expect("connect the server's pool");
        Self::start(t, settings, db, extra).await
    }

    async fn start(
        t: TestDb,
        settings: Settings,
        db: agenda_storage::Db,
        extra: Router<AppState>,
    ) -> TestApp {
        let app = Application::with_routes(settings, db.clone(), extra)
            .await
            .unwrap();
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let state = app.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        let mut app = TestApp::new(addr, t, db, state, stop, server);
        app.metrics_addr = metrics_addr;
        app
    }

    fn new(
        addr: SocketAddr,
        t: TestDb,
        db: agenda_storage::Db,
        state: AppState,
        stop: oneshot::Sender<()>,
        server: JoinHandle<std::io::Result<()>>,
    ) -> Self {
        TestApp {
            addr,
            metrics_addr: None,
            client: reqwest::Client::new(),
            t,
            db,
            state,
            stop: Some(stop),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        read(response).await
    }

    /// The body of `GET path` as text (the OpenAPI document as served, for tools).
    pub async fn get_text(&self, path: &str) -> String {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        read(response).await
    }

    /// Stops the server gracefully, waits for it to finish, and hands back the
    /// database (its pool is closed by then; the data is still there).
    pub async fn stop(mut self) -> TestDb {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
        self.t
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, body)
}

/// The error code of an error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// The field names of an error body.
pub fn fields(body: &Value) -> Vec<String> {
    body["error"]["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| f["field"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The password of every user the API tests create.
pub const PASSWORD: &str = "correct horse battery";

/// A signed-in user: their id and bearer token.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: uuid::Uuid,
    pub token: String,
}

/// The sign-up body (`POST /api/v1/organizations`) of the organization `fields`
/// (slug, name, time zone, …), whose first admin `owner@<slug>.example.com` is
/// invited rather than given a password: no password hash, one invitation e-mail.
pub fn sign_up_body(fields: Value) -> Value {
    let slug = fields["slug"].as_str().unwrap_or("org").to_owned();
    serde_json::json!({
        "organization": fields,
        "admin": {"email": format!("owner@{slug}.example.com"), "full_name": "Owner"},
    })
}

/// The tenant of a sign-up's answer.
pub fn scope_of(signed_up: &Value) -> agenda_storage::TenantScope {
    let id = signed_up["organization"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("not a sign-up answer: {signed_up}"));
    agenda_storage::TenantScope::new(id.parse().unwrap())
}

/// Creates an organization through the API (sign-up, the admin invited).
pub async fn organization(app: &TestApp, slug: &str) -> agenda_storage::TenantScope {
    let (status, org) = app
        .post(
            "/api/v1/organizations",
            &sign_up_body(serde_json::json!({"slug": slug, "name": slug, "time_zone": "UTC", "currency": "BRL"})),
        )
        .await;
    assert_eq!(status, 201, "{org}");
    scope_of(&org)
}

/// A user of any role in organization `org` (created through storage, since sign-up
/// only makes clients and providers), signed in through the API.
pub async fn member(
    app: &TestApp,
    scope: agenda_storage::TenantScope,
    org: &str,
    email: &str,
    role: agenda_entity::enums::UserRole,
) -> Member {
    let hash = agenda_api::password::hash(PASSWORD).unwrap();
    let input = agenda_entity::user::CreateUser {
        email: email.into(),
        password: PASSWORD.into(),
        full_name: "Someone".into(),
        phone: None,
        role,
        tax_id: None,
    };
    let id = agenda_storage::repo::users::UserRepo::create(app.t.conn(), scope, input, hash)
        .await
        .unwrap()
        .id;
    let (status, body) = app
        .post(
            "/api/v1/auth/login",
            &serde_json::json!({"organization": org, "email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    Member {
        id,
        token: body["token"].as_str().unwrap().to_owned(),
    }
}

/// `method` on `/api/v1<path>` as the holder of `token`, with an optional body.
pub async fn api(
    app: &TestApp,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    request(
        app,
        method,
        &format!("/api/v1{path}"),
        Some(token),
        body,
        None,
    )
    .await
}

/// Signs in (`POST /auth/login`).
pub async fn login(app: &TestApp, org: &str, email: &str, password: &str) -> (u16, Value) {
    app.post(
        "/api/v1/auth/login",
        &serde_json::json!({"organization": org, "email": email, "password": password}),
    )
    .await
}

/// Any request: `method` on `path`, with an optional bearer token, JSON body and
/// `Idempotency-Key`.
pub async fn request(
    app: &TestApp,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    request_to(&app.client, app.url(path), method, token, body, key).await
}

/// [`request`] to any server: `method` on the full `url`.
pub async fn request_to(
    client: &reqwest::Client,
    url: String,
    method: &str,
    token: Option<&str>,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        "PATCH" => client.patch(url),
        "PUT" => client.put(url),
        "DELETE" => client.delete(url),
        other => panic!("unexpected method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    read(request.send().await.unwrap()).await
}

/// Makes `provider_id` bookable in `scope` through the storage layer (the routes that
/// do this are tested in their own areas): provider settings from `settings` (a JSON
/// object), hours 09:00–12:00 UTC every day of the week, and a 60-minute 50.00
/// "Haircut". Returns the service's id.
pub async fn bookable_provider(
    app: &TestApp,
    scope: agenda_storage::TenantScope,
    provider_id: uuid::Uuid,
    settings: Value,
) -> uuid::Uuid {
    use agenda_entity::{availability, provider_settings, service};
    use agenda_storage::repo::resource::Repo;
    use sea_orm::Set;
    let conn = app.t.conn();
    Repo::<provider_settings::Entity>::create(
        conn,
        scope,
        serde_json::from_value(settings).unwrap(),
        |r| r.provider_id = Set(provider_id),
    )
    .await
    .unwrap();
    for weekday in 1..=7 {
        Repo::<availability::Entity>::create(
            conn,
            scope,
            serde_json::from_value(serde_json::json!({"kind": "weekly", "weekday": weekday, "start_time": "09:00", "end_time": "12:00"})).unwrap(),
            |r| r.provider_id = Set(provider_id),
        )
        .await
        .unwrap();
    }
    Repo::<service::Entity>::create(
        conn,
        scope,
        serde_json::from_value(
            serde_json::json!({"name": "Haircut", "duration_minutes": 60, "price_cents": 5000}),
        )
        .unwrap(),
        |r| r.provider_id = Set(provider_id),
    )
    .await
    .unwrap()
    .id
}

/// What a run of the real `agenda` binary printed.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the real `agenda` binary with exactly `env` (nothing inherited) in `dir`,
/// and waits for it. Call it from `tokio::task::block_in_place` in async tests.
pub fn agenda(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scratch directory of this test's own, removed when dropped.
pub struct ScratchDir(pub std::path::PathBuf);

impl ScratchDir {
    pub fn new(name: &str) -> ScratchDir {
        let dir =
            std::env::temp_dir().join(format!("agenda-{name}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the browser script `script` of the `e2e/` project (`e2e`) in headless
/// Chromium (`chromium`): `node <script> <first> <chromium> <fresh profile> <rest…>`,
/// on a profile directory of its own that is removed afterwards. Answers what the
/// script printed as JSON; a script that fails fails the test with its output.
pub fn run_browser_script(
    e2e: &std::path::Path,
    chromium: &std::path::Path,
    script: &str,
    first: &str,
    rest: &[&str],
) -> Value {
    let profile = std::env::temp_dir().join(format!("agenda-chromium-{}", uuid::Uuid::now_v7()));
    let output = tokio::task::block_in_place(|| {
        std::process::Command::new("node")
            .current_dir(e2e)
            .arg(script)
            .arg(first)
            .arg(chromium)
            .arg(&profile)
            .args(rest)
            .output()
            .unwrap()
    });
    let _ = std::fs::remove_dir_all(&profile);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {stdout}"))
}

/// Where a console browser script runs and writes: the server's base URL (no
/// trailing `/`) and the screenshot directory, created — `docs/console` with
/// `AGENDA_WRITE_SCREENSHOTS` set (to refresh the docs' pictures), else
/// `target/console-screenshots`.
pub fn console_run_places(app: &TestApp) -> (String, std::path::PathBuf) {
    let root = agenda_testkit::tools::workspace_root();
    let shots = if std::env::var_os("AGENDA_WRITE_SCREENSHOTS").is_some() {
        root.join("docs/console")
    } else {
        root.join("target/console-screenshots")
    };
    std::fs::create_dir_all(&shots).unwrap();
    let base = app.url("");
    (base.trim_end_matches('/').to_owned(), shots)
}

/// After a console browser script (`e2e/console.mjs`, `e2e/operator.mjs`): every
/// request the page made went to `base`, so nothing came from the internet, and
/// each of `screenshots` was written into `shots`.
pub fn assert_console_run(seen: &Value, base: &str, shots: &std::path::Path, screenshots: &[&str]) {
    for request in seen["requests"].as_array().unwrap() {
        let request = request.as_str().unwrap();
        assert!(
            request.starts_with(base),
            "the page fetched {request} from elsewhere"
        );
    }
    for shot in screenshots {
        assert!(
            std::fs::metadata(shots.join(shot)).unwrap().len() > 1000,
            "{shot}"
        );
    }
}

/// A complete `PUT /providers/me/settings` body (the column defaults, no optional
/// text or place), with `fields` laid over it: PUT requires every field.
pub fn full_settings(fields: Value) -> Value {
    let mut body = serde_json::json!({
        "business_name": "Studio", "bio": null, "phone": null, "time_zone": null,
        "city": null, "state": null, "country": null, "latitude": null, "longitude": null,
        "accepted_payment_methods": [], "default_duration_minutes": 60, "buffer_minutes": 0,
        "slot_step_minutes": 15, "min_lead_minutes": 60, "max_horizon_days": 60,
        "auto_confirm": false, "is_accepting_bookings": true,
    });
    if let (Some(body), Value::Object(fields)) = (body.as_object_mut(), fields) {
        body.extend(fields);
    }
    body
}
