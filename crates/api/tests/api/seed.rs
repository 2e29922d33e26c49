//! `agenda seed demo`, the real binary, against each engine's test database.

use agenda_storage::seed::DEMO_ORGANIZATION_ID;
use agenda_testkit::both_engines;

fn seed_demo(t: &agenda_testkit::TestDb, json: bool) -> (Option<i32>, String, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_agenda"));
    command
        .current_dir(std::env::temp_dir())
        .env_clear()
        .env("DATABASE_URL", t.settings.url.expose())
        .env("AUTO_MIGRATE", "false")
        .args(["seed", "demo"]);
    if json {
        command.arg("--json");
    }
    let out = command.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

both_engines! {
    async fn seed_demo_creates_once_then_reports_present(t: TestDb) {
        let (code, stdout, stderr) = tokio::task::block_in_place(|| seed_demo(&t, false));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.starts_with("created demo organization \"demo\""), "{stdout}");

        let (code, stdout, stderr) = tokio::task::block_in_place(|| seed_demo(&t, true));
        assert_eq!(code, Some(0), "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
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
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
