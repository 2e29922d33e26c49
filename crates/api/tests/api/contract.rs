//! The contract checked from outside: schemathesis (pinned in `.ci/requirements.txt`)
//! generates requests from the served OpenAPI document and runs them against the real
//! server, on SQLite and on PostgreSQL (the server as the application role), signed
//! in as an admin, a provider and a client of the demo organization.
//!
//! Checks: `not_a_server_error` (no 5xx for any input), `response_schema_conformance`
//! and `status_code_conformance` (the server answers what the document says) and
//! `negative_data_rejection` (input the document forbids is refused). Any finding
//! fails the test. Runs are bounded (`--max-examples`) and deterministic
//! (`--generation-deterministic`, which keeps no example database), so they fit in CI time and
//! give the same cases every run.

use std::path::PathBuf;

use agenda_storage::seed::{DEMO_ADMIN_EMAIL, DEMO_PASSWORD, DEMO_SLUG};
use agenda_testkit::{both_engines, tools};
use serde_json::json;

use crate::support::TestApp;

const CHECKS: &str = "not_a_server_error,response_schema_conformance,status_code_conformance,negative_data_rejection";

/// The demo organization on the server's database, and a bearer token per role.
async fn seeded(app: &TestApp) -> Vec<(&'static str, String)> {
    let hash = agenda_api::password::hash(DEMO_PASSWORD).unwrap();
    agenda_storage::seed::demo(&app.db, &hash).await.unwrap();
    let mut tokens = Vec::new();
    for (role, email) in [
        ("admin", DEMO_ADMIN_EMAIL),
        ("provider", "ana.souza@demo.example.com"),
        ("client", "beatriz.alves@demo.example.com"),
    ] {
        let (status, body) = app
            .post(
                "/api/v1/auth/login",
                &json!({"organization": DEMO_SLUG, "email": email, "password": DEMO_PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "{role}: {body}");
        tokens.push((role, body["token"].as_str().unwrap().to_owned()));
    }
    tokens
}

/// One schemathesis run; the transcript on failure.
fn schemathesis(st: &PathBuf, app: &TestApp, token: &str, extra: &[&str]) -> Result<(), String> {
    // A fresh working directory: schemathesis keeps a cache of past crashes under
    // `.schemathesis/`, which would make one run depend on the last.
    let workdir =
        std::env::temp_dir().join(format!("agenda-schemathesis-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&workdir).map_err(|e| e.to_string())?;
    let output = std::process::Command::new(st)
        .current_dir(&workdir)
        .arg("run")
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--checks", CHECKS])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Signing out would end the session the rest of the run uses.
        .args(["--exclude-path", "/api/v1/auth/logout"])
        .arg("--generation-deterministic")
        // One worker: the cases run in the same order every time, so the database
        // state each one meets is the same too.
        .args(["--workers", "1", "--no-color", "--request-timeout", "30"])
        .args(extra)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .output()
        .map_err(|e| format!("cannot run schemathesis: {e}"));
    let _ = std::fs::remove_dir_all(&workdir);
    let output = output?;
    let transcript = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        eprintln!("{transcript}");
        Ok(())
    } else {
        Err(transcript)
    }
}

both_engines! {
    async fn schemathesis_finds_nothing(t: TestDb) {
        let Some(st) = tools::require(tools::python_tool("st")) else { return };
        // A key, so that integration secrets are accepted and exercised.
        let keys = std::sync::Arc::new(agenda_storage::secrets::SecretKeys::from_keys(Some([5; 32]), &[]));
        let app = TestApp::spawn_configured(t, axum::Router::new(), move |s| s.secrets = keys).await;
        let tokens = seeded(&app).await;
        for (role, token) in &tokens {
            // Every phase as the admin (who may call the most); the other roles
            // replay the examples and fuzz a little, for their own branches.
            let extra: &[&str] = if *role == "admin" {
                &["--max-examples", "5"]
            } else {
                &["--max-examples", "5", "--phases", "examples,fuzzing"]
            };
            let result = tokio::task::block_in_place(|| schemathesis(&st, &app, token, extra));
            if let Err(transcript) = result {
                panic!("schemathesis as {role} found problems:\n{transcript}");
            }
        }
        app.stop().await;
    }
}
