//! A client generated from the served document drives the booking journey: the
//! document is fetched from the running server, `openapi-typescript` turns it into
//! types, `tsc --strict` checks `e2e/journey.ts` against them (a wrong parameter
//! place, name or type fails here), and the compiled journey runs against the same
//! server through `openapi-fetch`: sign-up, provider set-up, slots, book, confirm,
//! start, pay, complete, review.

use std::path::Path;
use std::process::Command;

use agenda_entity::enums::{AppointmentStatus, PaymentStatus};
use agenda_testkit::{both_engines, tools};
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::support::TestApp;

fn run(what: &str, command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Generates the client into `build`, type-checks and compiles the journey there.
fn build_journey(e2e: &Path, build: &Path, document: &str) {
    std::fs::create_dir_all(build).unwrap();
    std::fs::write(build.join("openapi.json"), document).unwrap();
    std::fs::copy(e2e.join("journey.ts"), build.join("journey.ts")).unwrap();
    let bin = e2e.join("node_modules/.bin");
    run(
        "openapi-typescript",
        Command::new(bin.join("openapi-typescript"))
            .arg(build.join("openapi.json"))
            .arg("--output")
            .arg(build.join("schema.ts")),
    );
    run(
        "tsc (type-checking the journey against the generated client)",
        Command::new(bin.join("tsc"))
            .current_dir(e2e)
            .args(["--strict", "--noEmitOnError", "--skipLibCheck"])
            .args([
                "--target",
                "es2022",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
            ])
            .arg("--outDir")
            .arg(build.join("out"))
            .arg(build.join("journey.ts")),
    );
}

both_engines! {
    async fn the_generated_client_books_end_to_end(t: TestDb) {
        let Some(e2e) = tools::require(tools::node_project()) else { return };
        let app = TestApp::spawn(t).await;
        let document = app.get_text("/api/v1/openapi.json").await;
        // Inside e2e/ so the journey resolves openapi-fetch from e2e/node_modules.
        let build = e2e.join("build").join(uuid::Uuid::now_v7().to_string());
        let url = app.url("");
        let summary = tokio::task::block_in_place(|| {
            build_journey(&e2e, &build, &document);
            run(
                "the journey",
                Command::new("node").arg(build.join("out/journey.js")).arg(&url),
            )
        });
        let _ = std::fs::remove_dir_all(&build);
        let summary: Value = serde_json::from_str(summary.trim()).unwrap();
        assert_eq!(
            summary["statuses"],
            serde_json::json!(["pending", "confirmed", "in_progress", "paid", "completed"]),
            "{summary}"
        );
        assert_eq!(summary["rating"], 5);

        // What the journey did is in the database.
        let id: uuid::Uuid = summary["appointment_id"].as_str().unwrap().parse().unwrap();
        let stored = agenda_entity::appointment::Entity::find_by_id(id)
            .one(app.t.conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (stored.status, stored.payment_status, stored.price_cents),
            (AppointmentStatus::Completed, PaymentStatus::Paid, 5000)
        );
        let review: uuid::Uuid = summary["review_id"].as_str().unwrap().parse().unwrap();
        assert!(agenda_entity::review::Entity::find_by_id(review)
            .one(app.t.conn())
            .await
            .unwrap()
            .is_some());
        app.stop().await;
    }
}
