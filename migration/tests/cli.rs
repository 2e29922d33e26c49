//! The migrator binary as `cargo run -p migration -- …` and `sea-orm-cli migrate …`
//! run it (`sea-orm-cli` runs this binary with its `-u URL` in `DATABASE_URL`).

use std::path::Path;
use std::process::Output;

use agenda_testkit::both_engines;

fn migrator(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_migration"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch directory, removed when dropped (also when the test fails).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("agenda-migrator-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

both_engines! {
    /// `fresh` through the migrator binary, twice on a migrated database. Figures:
    /// exit code 0 both times; `status` then lists every migration as applied.
    async fn fresh_through_the_migrator_binary(t: TestDb) {
        let url = t.settings.url.expose().to_owned();
        let scratch = Scratch::new("fresh");
        let dir = scratch.0.clone();
        for round in 1..=2 {
            let out = tokio::task::block_in_place(|| migrator(&dir, &[("DATABASE_URL", &url)], &["fresh"]));
            assert!(out.status.success(), "round {round}: {}", text(&out.stderr));
        }
        let out = tokio::task::block_in_place(|| migrator(&dir, &[("DATABASE_URL", &url)], &["status"]));
        let log = text(&out.stderr) + &text(&out.stdout);
        assert!(out.status.success(), "{log}");
        let all = <migration::Migrator as sea_orm_migration::MigratorTrait>::migrations().len();
        assert_eq!(log.matches("... Applied").count(), all, "{log}");
        assert!(!log.contains("Pending"), "{log}");
    }
}

/// With `MIGRATION_DATABASE_URL` set, a `DATABASE_URL` naming another database — what
/// `sea-orm-cli migrate -u URL` passes on — is refused instead of silently ignored;
/// a URL given to the migrator itself wins over both. Figures: exit code 2 with one
/// line naming both (redacted) URLs, and no database file created; then `-u` migrates
/// its own database and says so on its first line.
#[test]
fn the_migrator_never_silently_ignores_a_url() {
    let scratch = Scratch::new("urls");
    let dir = &scratch.0;
    let env = [
        ("MIGRATION_DATABASE_URL", "sqlite://owner.db"),
        ("DATABASE_URL", "sqlite://asked-for.db"),
    ];
    let out = migrator(dir, &env, &["up"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(
            "migration: invalid configuration: MIGRATION_DATABASE_URL (sqlite://owner.db?mode=rwc) \
             and DATABASE_URL (sqlite://asked-for.db?mode=rwc) name different databases"
        ),
        "{stderr}"
    );
    assert!(!dir.join("owner.db").exists() && !dir.join("asked-for.db").exists());

    let out = migrator(dir, &env, &["-u", "sqlite://given.db", "up"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.lines().next(),
        Some("migration: database sqlite://given.db?mode=rwc (from --database-url)")
    );
    assert!(dir.join("given.db").exists() && !dir.join("owner.db").exists());
}
