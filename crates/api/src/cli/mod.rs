//! The `agenda` command line. `agenda` alone (or `agenda serve`) runs the server.
//!
//! Every subcommand reads the same configuration (environment and `.env`). Failures
//! end with one line on stderr and a non-zero exit code: 2 for bad configuration or
//! usage, 1 for everything else.

use std::process::ExitCode;

use agenda_storage::Db;
use agenda_storage::backup::{self, BackupScope};
use agenda_storage::config::Env;
use agenda_storage::db::DbSettings;
use agenda_storage::seed::{self, DEMO_ADMIN_EMAIL, DEMO_PASSWORD, SeedReport};
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};

mod mail;
mod operator;
mod org;

use crate::app::Application;
use crate::config::Settings;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "agenda",
    version,
    about = "Agenda: appointment scheduling and services marketplace backend",
    long_about = "Agenda: appointment scheduling and services marketplace backend.\n\n\
                  Configuration comes from the environment and an optional .env file; \
                  see docs/configuration.md. Without a subcommand, `agenda` runs the server."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply or inspect schema migrations (uses MIGRATION_DATABASE_URL when set).
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Load sample data (uses DATABASE_URL; applies migrations first when AUTO_MIGRATE is on).
    Seed {
        #[command(subcommand)]
        action: SeedAction,
    },
    /// Database operations: status, connections, ending idle sessions, the app role.
    Db {
        #[command(subcommand)]
        action: DbAction,
    },
    /// Create, list or verify backups (uses MIGRATION_DATABASE_URL when set, else
    /// DATABASE_URL, and BACKUP_DIR; see docs/backup.md).
    Backup {
        #[command(subcommand)]
        action: BackupAction,
    },
    /// Organizations: create one with its first admin, list, suspend, activate (uses
    /// DATABASE_URL and enters each organization's tenant; see docs/accounts.md).
    Org {
        #[command(subcommand)]
        action: org::OrgAction,
    },
    /// The console's platform operators: create (prints a generated password once),
    /// list, revoke (uses MIGRATION_DATABASE_URL when set, else DATABASE_URL; see
    /// docs/console.md).
    Operator {
        #[command(subcommand)]
        action: operator::OperatorAction,
    },
    /// The e-mail outbox: list messages, print one, queue a dead one again (uses
    /// MIGRATION_DATABASE_URL when set, else DATABASE_URL; see docs/email.md).
    Mail {
        #[command(subcommand)]
        action: mail::MailAction,
    },
    /// Restore a backup into an empty, migrated database (uses MIGRATION_DATABASE_URL
    /// when set, else DATABASE_URL).
    Restore {
        /// The archive to restore.
        path: std::path::PathBuf,
        /// Confirm the restore; without it only the checks run and nothing is written.
        #[arg(long)]
        yes: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply pending migrations (all, or the next N).
    Up {
        #[arg(short = 'n', long)]
        steps: Option<u32>,
    },
    /// Roll back the last N applied migrations.
    Down {
        #[arg(short = 'n', long, default_value_t = 1)]
        steps: u32,
    },
    /// List every migration and whether it is applied.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Drop every table and apply all migrations again. Destroys all data.
    Fresh {
        /// Confirm that all data may be destroyed.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SeedAction {
    /// Create the demo organization `demo`: an admin, support, 4 providers, 12 clients,
    /// services, hours and a few weeks of appointments. Does nothing when it exists.
    /// Every demo user signs in with the password `agenda-demo`.
    Demo {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Back up the whole database (or one organization) into a .tar.gz archive.
    Create {
        /// Back up only this organization's rows.
        #[arg(long, value_name = "ID")]
        organization: Option<uuid::Uuid>,
        /// Where to write the archive (default: BACKUP_DIR/agenda-backup-<UTC time>.tar.gz).
        #[arg(long, value_name = "PATH")]
        output: Option<std::path::PathBuf>,
        /// Print the manifest as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the archives in BACKUP_DIR with their manifests.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-read an archive and check every count and checksum against its manifest.
    Verify {
        path: std::path::PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbAction {
    /// Engine, server version, migrations, pool settings and row counts (uses DATABASE_URL).
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// The sessions of this database, from pg_stat_activity (PostgreSQL).
    Connections {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End this application's sessions (DB_APPLICATION_NAME) that are idle or idle in
    /// a transaction for longer than DURATION; never this command's own (PostgreSQL).
    KillIdle {
        /// How long a session must have been idle, e.g. 30s, 10m, 1h.
        #[arg(long, value_name = "DURATION", value_parser = parse_older_than)]
        older_than: std::time::Duration,
        /// List the sessions that would be ended, end none.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create or update the least-privilege role the server runs as (APP_DB_ROLE,
    /// APP_DB_PASSWORD, APP_DB_CONNECTION_LIMIT); connects with MIGRATION_DATABASE_URL,
    /// else DATABASE_URL (PostgreSQL).
    CreateAppRole {
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Why a command failed: the line to print and the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub(crate) fn config(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }

    pub(crate) fn runtime(message: impl std::fmt::Display) -> Self {
        Failure {
            message: agenda_storage::db::redact(&message.to_string()),
            code: 1,
        }
    }
}

/// Parses the command line, runs the command, and turns failures into one line.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("agenda: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let env = Env::load().map_err(Failure::config)?;
    let log = crate::config::LogSettings::from_env(&env).map_err(Failure::config)?;
    let telemetry = telemetry::init(&log).map_err(Failure::config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    let result = run_command(&runtime, &env, cli.command.unwrap_or(Command::Serve));
    // Work still running now was abandoned on purpose (requests past the shutdown
    // deadline): do not wait for it, nor for blocking tasks, past this limit.
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_LIMIT);
    // The last spans, within the same bound as the requests' (the default when the
    // settings were invalid: the command failed before it ran then).
    let flush_limit = crate::config::HttpSettings::from_env(&env)
        .map_or(crate::config::DEFAULT_SHUTDOWN_TIMEOUT, |http| {
            http.shutdown_timeout
        });
    telemetry.shutdown(flush_limit);
    result
}

/// How long the process waits, once the command is done, for the tasks it abandoned.
const RUNTIME_SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_millis(500);

fn run_command(
    runtime: &tokio::runtime::Runtime,
    env: &Env,
    command: Command,
) -> Result<(), Failure> {
    match command {
        Command::Serve => {
            let settings = Settings::from_env(env).map_err(Failure::config)?;
            runtime.block_on(serve(settings))
        }
        Command::Migrate { action } => {
            let settings = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
            runtime.block_on(migrate(settings, action))
        }
        Command::Seed { action } => {
            let settings = Settings::from_env(env).map_err(Failure::config)?;
            runtime.block_on(seed(settings, action))
        }
        Command::Db { action } => runtime.block_on(db_command(env, action)),
        Command::Backup { action } => runtime.block_on(backup_command(env, action)),
        Command::Mail { action } => runtime.block_on(mail::run(env, action)),
        Command::Org { action } => runtime.block_on(org::run(env, action)),
        Command::Operator { action } => runtime.block_on(operator::run(env, action)),
        Command::Restore { path, yes, json } => {
            runtime.block_on(restore_command(env, path, yes, json))
        }
    }
}

/// With `AUTO_MIGRATE` on and `MIGRATION_DATABASE_URL` set, the schema owner applies
/// pending migrations on a pool of its own, and `AUTO_MIGRATE` is turned off for the
/// rest of the command, which runs as the application role.
async fn migrate_as_owner(settings: &mut Settings) -> Result<(), Failure> {
    if !settings.auto_migrate || std::env::var_os("MIGRATION_DATABASE_URL").is_none() {
        return Ok(());
    }
    let env = Env::from_process();
    let owner = DbSettings::migrator_from_env(&env).map_err(Failure::config)?;
    let db = Db::connect(&owner).await.map_err(Failure::runtime)?;
    let result = crate::app::apply_migrations(&db).await;
    db.close().await;
    result.map_err(|e| Failure::runtime(format!("applying migrations failed: {e}")))?;
    settings.auto_migrate = false;
    Ok(())
}

async fn serve(mut settings: Settings) -> Result<(), Failure> {
    migrate_as_owner(&mut settings).await?;
    let app = Application::build(settings)
        .await
        .map_err(Failure::runtime)?;
    tracing::info!(addr = %app.local_addr(), "listening");
    if let Some(addr) = app.metrics_addr() {
        tracing::info!(addr = %addr, "serving /metrics");
    }
    app.run_until_stopped().await.map_err(Failure::runtime)
}

/// `agenda seed demo`: needs the migrated schema, like the server (and migrates the
/// same way when `AUTO_MIGRATE` is on).
async fn seed(mut settings: Settings, action: SeedAction) -> Result<(), Failure> {
    let SeedAction::Demo { json } = action;
    migrate_as_owner(&mut settings).await?;
    let db = Db::connect(&settings.db).await.map_err(Failure::runtime)?;
    let result = seed_demo(&db, settings.auto_migrate).await;
    db.close().await;
    let report = result?;
    if json {
        let text = serde_json::to_string_pretty(&report).map_err(Failure::runtime)?;
        println!("{text}");
    } else {
        print_seed_report(&report);
    }
    Ok(())
}

async fn seed_demo(db: &Db, auto_migrate: bool) -> Result<SeedReport, Failure> {
    // Both checks only read the ledger when nothing is pending, so seeding works
    // with the application role's URL.
    if auto_migrate {
        crate::app::apply_migrations(db)
            .await
            .map_err(|e| Failure::runtime(format!("applying migrations failed: {e}")))?;
    } else {
        crate::app::require_current_schema(db)
            .await
            .map_err(Failure::runtime)?;
    }
    // One hash for every demo user: argon2 is slow on purpose.
    let hash = crate::password::hash(DEMO_PASSWORD).map_err(Failure::runtime)?;
    seed::demo(db, &hash)
        .await
        .map_err(|e| Failure::runtime(format!("seeding the demo data failed: {e}")))
}

/// Fails with a clear line when migrations are pending (`hint` ends the sentence).
/// Reads the migration ledger only, so it works as the application role too.
pub(crate) async fn require_migrated(db: &Db, hint: &str) -> Result<(), Failure> {
    let state = crate::app::migration_state(db)
        .await
        .map_err(Failure::runtime)?;
    if state.pending.is_empty() {
        return Ok(());
    }
    Err(Failure::runtime(format!(
        "the database schema is not up to date ({} pending migrations); \
         run `agenda migrate up` first{hint}",
        state.pending.len()
    )))
}

/// The migrations this build ships, oldest first.
fn migration_names() -> Vec<String> {
    Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

fn print_seed_report(report: &SeedReport) {
    if !report.created {
        println!(
            "demo data already present, nothing written (organization {:?}, id {}, {} rows)",
            report.slug,
            report.organization_id,
            report.total_rows()
        );
        return;
    }
    println!(
        "created demo organization {:?} (id {}) with {} rows:",
        report.slug,
        report.organization_id,
        report.total_rows()
    );
    let width = report
        .tables
        .iter()
        .map(|(t, _)| t.len())
        .max()
        .unwrap_or(0);
    for (table, rows) in &report.tables {
        println!("  {table:<width$}  {rows:>5}");
    }
    println!(
        "sign in as {DEMO_ADMIN_EMAIL} (or any demo user) with the password {DEMO_PASSWORD:?}"
    );
}

async fn migrate(settings: DbSettings, action: MigrateAction) -> Result<(), Failure> {
    let db = Db::connect(&settings).await.map_err(Failure::runtime)?;
    let conn = db.conn();
    let result = match action {
        MigrateAction::Up { steps } => Migrator::up(conn, steps).await,
        MigrateAction::Down { steps } => Migrator::down(conn, Some(steps)).await,
        MigrateAction::Fresh { yes: false } => {
            db.close().await;
            return Err(Failure::config(
                "migrate fresh drops every table and all data; run it again with --yes to confirm",
            ));
        }
        MigrateAction::Fresh { yes: true } => Migrator::fresh(conn).await,
        MigrateAction::Status { json } => print_status(conn, json).await,
    };
    db.close().await;
    result.map_err(Failure::runtime)
}

async fn print_status(
    conn: &sea_orm::DatabaseConnection,
    json: bool,
) -> Result<(), sea_orm::DbErr> {
    let migrations = Migrator::get_migration_with_status(conn).await?;
    let rows: Vec<(String, String)> = migrations
        .iter()
        .map(|m| (m.name().to_owned(), m.status().to_string().to_lowercase()))
        .collect();
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(name, status)| serde_json::json!({ "name": name, "status": status }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
    } else {
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(9).max(9);
        println!("{:<width$}  STATUS", "MIGRATION");
        for (name, status) in &rows {
            println!("{name:<width$}  {status}");
        }
        let pending = rows.iter().filter(|(_, s)| s == "pending").count();
        println!(
            "{} migrations, {} applied, {} pending",
            rows.len(),
            rows.len() - pending,
            pending
        );
    }
    Ok(())
}

use crate::config::backup_dir;

/// `agenda backup create|list|verify`. Only `create` opens the database.
async fn backup_command(env: &Env, action: BackupAction) -> Result<(), Failure> {
    match action {
        BackupAction::Create {
            organization,
            output,
            json,
        } => {
            // The schema owner sees every organization; the application role is
            // confined by row-level security (enough for one organization's backup).
            let settings = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
            let scope = organization.map_or(BackupScope::Database, BackupScope::Organization);
            let path = output.unwrap_or_else(|| {
                backup_dir(env).join(backup::default_file_name(scope, chrono::Utc::now()))
            });
            let db = connect_existing(settings).await?;
            let started = std::time::Instant::now();
            let bar = crate::progress::ProgressLine::new("backup", json);
            let result =
                backup::create_file_with_progress(&db, scope, &path, &|p| bar.update(p)).await;
            bar.finish();
            db.close().await;
            let manifest = result.map_err(|e| Failure::runtime(format!("backup failed: {e}")))?;
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if json {
                print_json(&serde_json::json!({
                    "path": path,
                    "bytes": bytes,
                    "seconds": started.elapsed().as_secs_f64(),
                    "manifest": manifest,
                }))?;
            } else {
                println!(
                    "backup written to {} ({}, {} rows in {} tables, {}, schema {}, {:.1} s)",
                    path.display(),
                    manifest.scope,
                    manifest.total_rows(),
                    manifest.tables.len(),
                    human_bytes(bytes),
                    manifest.schema_version,
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        BackupAction::List { json } => {
            let dir = backup_dir(env);
            let found = backup::list(&dir).map_err(Failure::runtime)?;
            if json {
                return print_json(&found);
            }
            if found.is_empty() {
                println!("no backups in {}", dir.display());
                return Ok(());
            }
            let width = found
                .iter()
                .map(|b| b.file_name.len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<width$}  {:>9}  {:<27}  {:<8}  {:>8}  SCOPE",
                "FILE", "SIZE", "CREATED", "ENGINE", "ROWS"
            );
            for b in &found {
                match &b.manifest {
                    Some(m) => println!(
                        "{:<width$}  {:>9}  {:<27}  {:<8}  {:>8}  {}",
                        b.file_name,
                        human_bytes(b.bytes),
                        m.created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        m.engine,
                        m.total_rows(),
                        m.scope
                    ),
                    None => println!(
                        "{:<width$}  {:>9}  unreadable: {}",
                        b.file_name,
                        human_bytes(b.bytes),
                        b.error.as_deref().unwrap_or("unknown error")
                    ),
                }
            }
            println!(
                "{} backups in {} (listed, not verified: use `agenda backup verify PATH`)",
                found.len(),
                dir.display()
            );
            Ok(())
        }
        BackupAction::Verify { path, json } => {
            let report = backup::verify(&path).map_err(Failure::runtime)?;
            if json {
                print_json(&serde_json::json!({ "ok": report.is_ok(), "report": report }))?;
            }
            let summary = report.manifest.as_ref().map(|m| {
                format!(
                    "{}, {} rows in {} tables, schema {}, taken from {} at {}",
                    m.scope,
                    m.total_rows(),
                    m.tables.len(),
                    m.schema_version,
                    m.engine,
                    m.created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            });
            match report.into_result() {
                Ok(_) => {
                    if !json {
                        println!("ok: {} ({})", path.display(), summary.unwrap_or_default());
                    }
                    Ok(())
                }
                Err(e) => Err(Failure::runtime(e)),
            }
        }
    }
}

/// `agenda restore PATH [--yes]`: without `--yes` only the checks run.
async fn restore_command(
    env: &Env,
    path: std::path::PathBuf,
    yes: bool,
    json: bool,
) -> Result<(), Failure> {
    let settings = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
    let target = settings.url.redacted();
    let db = connect_existing(settings).await?;
    let started = std::time::Instant::now();
    let result = if yes {
        let bar = crate::progress::ProgressLine::new("restore", json);
        let result = backup::restore_with_progress(&db, &path, &|p| bar.update(p)).await;
        bar.finish();
        result.map(Some)
    } else {
        backup::check_restore(&db, &path).await.map(|manifest| {
            println!(
                "checks passed: {} ({}, {} rows, schema {}) can be restored into {target}",
                path.display(),
                manifest.scope,
                manifest.total_rows(),
                manifest.schema_version
            );
            None
        })
    };
    db.close().await;
    match result.map_err(|e| Failure::runtime(format!("restore refused: {e}")))? {
        // A dry run whose checks pass succeeded: it did what it was asked.
        None => {
            println!("nothing written; run it again with --yes to restore");
            Ok(())
        }
        Some(report) if json => print_json(&report),
        Some(report) => {
            println!(
                "restored {} rows in {} tables from {} ({}, taken from {} at {}) into {target} in {:.1} s",
                report.rows,
                report.manifest.tables.len(),
                path.display(),
                report.manifest.scope,
                report.manifest.engine,
                report
                    .manifest
                    .created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
    }
}

/// Opens a pool on a database that must already exist: a SQLite file is never
/// created by a command that only reads it or restores into it (a mistyped path
/// would otherwise leave an empty `agenda.db` behind and report on that).
async fn connect_existing(mut settings: DbSettings) -> Result<Db, Failure> {
    if let Some(path) = settings.url.sqlite_path()
        && !std::path::Path::new(path).exists()
    {
        return Err(Failure::runtime(format!(
            "the SQLite database {path} does not exist; check DATABASE_URL \
             (`agenda migrate up` or starting the server creates it)"
        )));
    }
    settings.url = settings.url.existing_only();
    Db::connect(&settings).await.map_err(Failure::runtime)
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(Failure::runtime)?
    );
    Ok(())
}

/// `148.6 kB`, `3.2 MB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `agenda db …`: what the database looks like and what is connected to it.
/// `create-app-role` connects as the schema owner; the others as the server does
/// (DATABASE_URL), on a one-connection pool of their own.
async fn db_command(env: &Env, action: DbAction) -> Result<(), Failure> {
    if let DbAction::CreateAppRole { json } = action {
        return create_app_role_command(env, json).await;
    }
    let configured = DbSettings::from_env(env, "DATABASE_URL").map_err(Failure::config)?;
    let db = connect_existing(command_pool(&configured)).await?;
    let result = db_action(&db, &configured, action).await;
    db.close().await;
    result
}

async fn db_action(db: &Db, configured: &DbSettings, action: DbAction) -> Result<(), Failure> {
    use agenda_storage::ops;
    let failed = |what: &str, e: agenda_storage::StorageError| {
        Failure::runtime(format!("{what} failed: {e}"))
    };
    match action {
        DbAction::Status { json } => {
            let names = migration_names();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut status = ops::status(db, &names)
                .await
                .map_err(|e| failed("reading the database status", e))?;
            // Show the pool the server runs with, not this command's single connection.
            status.settings = agenda_storage::db::SettingsSummary::from(configured);
            if json {
                print_json(&status)
            } else {
                print_db_status(&status);
                Ok(())
            }
        }
        DbAction::Connections { json } => {
            let list = ops::connections(db)
                .await
                .map_err(|e| failed("listing connections", e))?;
            if json {
                return print_json(&list);
            }
            print_connections(&list);
            println!("{} session(s); * marks this command's own", list.len());
            Ok(())
        }
        DbAction::KillIdle {
            older_than,
            dry_run,
            json,
        } => {
            let list = ops::kill_idle(db, older_than, dry_run)
                .await
                .map_err(|e| failed("ending idle connections", e))?;
            if json {
                return print_json(&list);
            }
            let app = &configured.application_name;
            let limit = agenda_storage::config::format_duration(older_than);
            if list.is_empty() {
                println!("no session of application {app:?} has been idle for more than {limit}");
                return Ok(());
            }
            print_connections(&list);
            let verb = if dry_run { "would end" } else { "ended" };
            println!(
                "{verb} {} session(s) of application {app:?} idle for more than {limit}",
                list.len()
            );
            Ok(())
        }
        DbAction::CreateAppRole { .. } => unreachable!("handled by db_command"),
    }
}

/// `configured`, with a pool of one connection: all a command needs. A pool that kept
/// spare idle sessions would show up in `db connections` and be a target of
/// `db kill-idle`.
pub(crate) fn command_pool(configured: &DbSettings) -> DbSettings {
    let mut settings = configured.clone();
    settings.pool_size = 0;
    settings.max_overflow = 1;
    settings
}

/// `agenda db create-app-role`: runs as MIGRATION_DATABASE_URL (else DATABASE_URL).
async fn create_app_role_command(env: &Env, json: bool) -> Result<(), Failure> {
    use agenda_storage::config::ConfigError;
    use agenda_storage::ops::{self, AppRoleSpec};
    // The role's default timeouts follow the server's own DB_* settings.
    let app = DbSettings::from_env(env, "DATABASE_URL").map_err(Failure::config)?;
    let owner = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
    let name = env.string("APP_DB_ROLE", "agenda_app");
    let password = env.get("APP_DB_PASSWORD").ok_or_else(|| {
        Failure::config(ConfigError::new(
            "APP_DB_PASSWORD",
            "is not set; create-app-role needs the password the role will log in with",
        ))
    })?;
    let mut spec = AppRoleSpec::new(name, password);
    spec.connection_limit = env
        .number(
            "APP_DB_CONNECTION_LIMIT",
            ops::DEFAULT_CONNECTION_LIMIT,
            1..=100_000,
        )
        .map_err(Failure::config)?;
    spec.statement_timeout = app.statement_timeout;
    spec.lock_timeout = app.lock_timeout;

    let db = Db::connect(&owner).await.map_err(Failure::runtime)?;
    let result = ops::create_app_role(&db, &spec).await;
    db.close().await;
    let report = result.map_err(|e| match e {
        agenda_storage::StorageError::Validation { .. } => {
            Failure::config(format!("invalid configuration: APP_DB_* {e}"))
        }
        e => Failure::runtime(format!("creating the application role failed: {e}")),
    })?;
    if json {
        return print_json(&report);
    }
    let verb = if report.created { "created" } else { "updated" };
    println!(
        "{verb} role {:?} in database {:?}, schema {:?} (granted by {:?})",
        report.role, report.database, report.schema, report.granted_by
    );
    println!(
        "  rows of {} tables: SELECT, INSERT, UPDATE, DELETE (migration ledger: SELECT only)",
        report.tables
    );
    println!(
        "  connection limit {}; role defaults: statement_timeout {} ms, lock_timeout {} ms, \
         idle_in_transaction_session_timeout {} ms",
        report.connection_limit,
        report.statement_timeout_ms,
        report.lock_timeout_ms,
        report.idle_in_transaction_timeout_ms
    );
    for warning in &report.warnings {
        println!("  warning: {warning}");
    }
    println!(
        "next: set DATABASE_URL to log in as {:?} with APP_DB_PASSWORD; keep \
         MIGRATION_DATABASE_URL for the schema owner",
        report.role
    );
    Ok(())
}

/// `--older-than`: a duration such as `30s`, `10m` or `1h`; zero is refused, since
/// it would end sessions idle for a moment between two requests.
fn parse_older_than(raw: &str) -> Result<std::time::Duration, String> {
    match agenda_storage::config::parse_duration(raw) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "{raw:?} is not a positive duration; expected e.g. 30s, 10m or 1h"
        )),
    }
}

fn print_db_status(s: &agenda_storage::ops::DbStatus) {
    let c = &s.settings;
    println!("engine      {}", s.engine);
    println!("server      {}", s.server_version);
    println!("url         {}", c.url);
    println!(
        "pool        {} kept open, at most {}; wait {} ms; recycle {} s; idle close {} s; \
         pre-ping {}",
        c.pool_size,
        c.max_connections,
        c.pool_timeout_ms,
        c.pool_recycle_s,
        c.idle_timeout_s,
        if c.pre_ping { "on" } else { "off" }
    );
    if c.pgbouncer {
        println!("pooler      PgBouncer, transaction pooling (DB_PGBOUNCER)");
    }
    for replica in &c.replicas {
        println!(
            "replica     {replica} (skipped beyond {} ms of lag)",
            c.replica_max_lag_ms
        );
    }
    if let Some(pg) = &c.postgres {
        println!(
            "session     statement_timeout {} ms; lock_timeout {} ms; \
             idle_in_transaction_session_timeout {} ms; application_name {:?}",
            pg.statement_timeout_ms,
            pg.lock_timeout_ms,
            pg.idle_in_transaction_timeout_ms,
            pg.application_name
        );
    }
    if let Some(sqlite) = &c.sqlite {
        println!(
            "sqlite      busy_timeout {} ms; journal_mode WAL; synchronous NORMAL; foreign_keys on",
            sqlite.busy_timeout_ms
        );
    }
    println!(
        "connections {} open ({} in use, {} idle) in this command's pool",
        s.pool.size, s.pool.in_use, s.pool.idle
    );
    let m = &s.migrations;
    println!(
        "migrations  {} applied, {} pending",
        m.applied.len(),
        m.pending.len()
    );
    for name in &m.pending {
        println!("            pending: {name}");
    }
    for name in &m.unknown {
        println!("            applied but unknown to this build: {name}");
    }
    let width = s
        .tables
        .iter()
        .map(|t| t.table.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!("{:<width$}  {:>10}", "TABLE", "ROWS");
    for t in &s.tables {
        match t.rows {
            Some(n) => println!("{:<width$}  {n:>10}", t.table),
            None => println!("{:<width$}  {:>10}", t.table, "missing"),
        }
    }
    println!("{:<width$}  {:>10}", "total", s.total_rows);
    if s.counts_hidden_by_rls {
        println!(
            "note: this role is confined by row-level security and has entered no \
             organization, so tenant tables count 0; run with the schema owner's URL \
             (MIGRATION_DATABASE_URL as DATABASE_URL) for real counts"
        );
    }
}

fn print_connections(list: &[agenda_storage::ops::ConnectionInfo]) {
    let now = chrono::Utc::now();
    let rows: Vec<[String; 8]> = list
        .iter()
        .map(|c| {
            let query: String = c
                .query
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(60)
                .collect();
            [
                format!("{}{}", c.pid, if c.is_self { "*" } else { "" }),
                c.user.clone().unwrap_or_default(),
                c.application_name.clone(),
                c.client_addr.clone().unwrap_or_else(|| "local".to_owned()),
                c.state.clone().unwrap_or_default(),
                c.idle_seconds.map(seconds).unwrap_or_default(),
                c.transaction_start
                    .map(|t| seconds((now - t).as_seconds_f64().max(0.0)))
                    .unwrap_or_default(),
                query,
            ]
        })
        .collect();
    print_table(
        [
            "PID",
            "USER",
            "APPLICATION",
            "CLIENT",
            "STATE",
            "IDLE",
            "IN TX",
            "QUERY",
        ],
        &rows,
    );
}

/// Prints `rows` under `header`, each column as wide as its widest cell.
pub(crate) fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let text: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header);
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}

/// `42s`, `5m03s`, `2h05m`.
fn seconds(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
