//! `agenda seed demo`, the real binary, against each engine's test database.

use agenda_storage::seed::DEMO_ORGANIZATION_ID;
use agenda_testkit::both_engines;

use crate::support::{Run, ScratchDir, agenda};

fn seed_demo(url: &str, auto_migrate: &str, json: bool) -> Run {
    let dir = ScratchDir::new("seed");
    let env = [("DATABASE_URL", url), ("AUTO_MIGRATE", auto_migrate)];
    let mut args = vec!["seed", "demo"];
    if json {
        args.push("--json");
    }
    agenda(&dir.0, &env, &args)
}

both_engines! {
    async fn seed_demo_creates_once_then_reports_present(t: TestDb) {
        let url = t.settings.url.expose().to_owned();
        let run = tokio::task::block_in_place(|| seed_demo(&url, "false", false));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(run.stdout.starts_with("created demo organization \"demo\""), "{}", run.stdout);

        let run = tokio::task::block_in_place(|| seed_demo(&url, "false", true));
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        assert_eq!(report["created"], false);
        assert_eq!(report["organization_id"], DEMO_ORGANIZATION_ID.to_string());
        let appointments = report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row[0] == "appointments")
            .unwrap()[1]
            .as_u64()
            .unwrap();
        assert!(appointments > 300, "{appointments}");
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

both_engines! {
    /// `agenda seed demo` with the application role's `DATABASE_URL` (which may not
    /// change the schema), as docs/operations.md lists it: it works with
    /// `AUTO_MIGRATE` on (the default) and off, because checking for pending
    /// migrations only reads the ledger. On SQLite, which has no roles, the same URL.
    async fn seed_demo_works_with_the_application_roles_url(t: TestDb) {
        let url = t.app_role_settings().await.url.expose().to_owned();
        for (auto_migrate, created) in [("true", true), ("false", false)] {
            let run = tokio::task::block_in_place(|| seed_demo(&url, auto_migrate, true));
            assert_eq!(run.code, Some(0), "AUTO_MIGRATE={auto_migrate}: {}", run.stderr);
            let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            assert_eq!(report["created"], created, "AUTO_MIGRATE={auto_migrate}");
        }
    }
}
