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
    pub client: reqwest::Client,
    pub t: TestDb,
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
        let settings = settings_for(&t);
        let app = Application::with_routes(settings, t.db.clone(), extra)
            .await
            .unwrap();
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));
        TestApp::new(addr, t, stop, server)
    }

    fn new(
        addr: SocketAddr,
        t: TestDb,
        stop: oneshot::Sender<()>,
        server: JoinHandle<std::io::Result<()>>,
    ) -> Self {
        TestApp {
            addr,
            client: reqwest::Client::new(),
            t,
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
