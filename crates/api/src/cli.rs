//! The `agenda` command line. `agenda` alone (or `agenda serve`) runs the server.
//!
//! Every subcommand reads the same configuration (environment and `.env`). Failures
//! end with one line on stderr and a non-zero exit code: 2 for bad configuration or
//! usage, 1 for everything else.

use std::process::ExitCode;

use agenda_storage::Db;
use agenda_storage::config::Env;
use agenda_storage::db::DbSettings;
use agenda_storage::seed::{self, DEMO_ADMIN_EMAIL, DEMO_PASSWORD, SeedReport};
use clap::{Parser, Subcommand};
use migration::{Migrator, MigratorTrait};

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

/// Why a command failed: the line to print and the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    fn config(message: impl std::fmt::Display) -> Self {
        Failure {
            message: message.to_string(),
            code: 2,
        }
    }

    fn runtime(message: impl std::fmt::Display) -> Self {
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
    telemetry::init(&log).map_err(Failure::config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Failure::runtime)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let settings = Settings::from_env(&env).map_err(Failure::config)?;
            runtime.block_on(serve(settings))
        }
        Command::Migrate { action } => {
            let settings = DbSettings::migrator_from_env(&env).map_err(Failure::config)?;
            runtime.block_on(migrate(settings, action))
        }
        Command::Seed { action } => {
            let settings = Settings::from_env(&env).map_err(Failure::config)?;
            runtime.block_on(seed(settings, action))
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
    if auto_migrate {
        crate::app::apply_migrations(db)
            .await
            .map_err(|e| Failure::runtime(format!("applying migrations failed: {e}")))?;
    } else {
        let pending = Migrator::get_pending_migrations(db.conn())
            .await
            .map_err(Failure::runtime)?;
        if !pending.is_empty() {
            return Err(Failure::runtime(format!(
                "the database schema is not up to date ({} pending migrations); \
                 run `agenda migrate up` first, or set AUTO_MIGRATE=true",
                pending.len()
            )));
        }
    }
    // One hash for every demo user: argon2 is slow on purpose.
    let hash = crate::password::hash(DEMO_PASSWORD).map_err(Failure::runtime)?;
    seed::demo(db, &hash)
        .await
        .map_err(|e| Failure::runtime(format!("seeding the demo data failed: {e}")))
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
