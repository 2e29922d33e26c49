//! The migrator, compatible with `sea-orm-cli migrate <command>` (run from the
//! repository root) and `cargo run -p migration -- <command>`.
//!
//! It reads the same configuration as the server: `MIGRATION_DATABASE_URL` (the
//! schema owner) when set, else `DATABASE_URL`, else the embedded SQLite default,
//! from the environment or `.env`. URLs in the forms other stacks use
//! (`postgresql+asyncpg://…`, `file:./local.db`) are understood. `-u URL` given to
//! this program overrides both. When both variables are set they must name the same
//! database: `sea-orm-cli migrate -u URL` passes its URL on as `DATABASE_URL`, and
//! quietly migrating `MIGRATION_DATABASE_URL`'s database instead would be a surprise,
//! so that is refused with one line (exit code 2).

use agenda_storage::Db;
use agenda_storage::config::Env;
use agenda_storage::db::{DatabaseUrl, DbSettings};
use migration::Migrator;
use sea_orm_migration::cli;

fn fail(message: impl std::fmt::Display, code: i32) -> ! {
    eprintln!(
        "migration: {}",
        agenda_storage::db::redact(&message.to_string())
    );
    std::process::exit(code)
}

/// `-u URL`, `-uURL`, `--database-url URL` or `--database-url=URL`, if given.
fn url_argument() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "-u" || arg == "--database-url" {
            return args.next();
        }
        if let Some(v) = arg.strip_prefix("--database-url=") {
            return Some(v.to_owned());
        }
        if let Some(v) = arg
            .strip_prefix("-u")
            .filter(|v| !v.is_empty() && !arg.starts_with("--"))
        {
            return Some(v.to_owned());
        }
    }
    None
}

fn main() {
    let mut env = Env::load().unwrap_or_else(|e| fail(e, 2));
    let source = match url_argument() {
        // A URL given to this program itself wins over every variable.
        Some(raw) => {
            DatabaseUrl::parse(&raw)
                .unwrap_or_else(|e| fail(format!("--database-url is not valid: {e}"), 2));
            env.set("MIGRATION_DATABASE_URL", None);
            env.set("DATABASE_URL", Some(&raw));
            "--database-url"
        }
        None => DbSettings::migrator_url_var(&env),
    };
    let settings = DbSettings::migrator_from_env(&env).unwrap_or_else(|e| fail(e, 2));
    // Say which database is migrated: with two URLs configured that is not obvious.
    eprintln!(
        "migration: database {} (from {source})",
        settings.url.redacted()
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(e, 1));
    runtime.block_on(cli::run_cli_with_custom_connection(
        Migrator,
        || async move {
            match Db::connect(&settings).await {
                Ok(db) => Ok(db.conn().clone()),
                Err(e) => fail(e, 1),
            }
        },
    ));
}
