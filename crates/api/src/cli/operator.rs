//! `agenda operator …`: the platform operator's console credentials
//! (docs/console.md, "The operator view").
//!
//! - `agenda operator create NAME [--read-only] [--json]`: a new operator with a
//!   generated password, printed once and stored only as its argon2id hash;
//! - `agenda operator list [--json]`: names, flavour, last sign-in, lock;
//! - `agenda operator revoke NAME`: deletes the operator and ends its sessions.
//!
//! The commands run as the schema owner (`MIGRATION_DATABASE_URL`, else
//! `DATABASE_URL`): on PostgreSQL the application role may read operators (sign-in)
//! but not make or delete them, so a compromised server cannot mint credentials.

use agenda_storage::Db;
use agenda_storage::config::Env;
use agenda_storage::db::DbSettings;
use agenda_storage::repo::operators::OperatorRepo;
use clap::Subcommand;
use serde::Serialize;

use super::{Failure, command_pool, print_json, print_table, require_migrated};

#[derive(Debug, Subcommand)]
pub enum OperatorAction {
    /// Create an operator of the console; prints its generated password once.
    Create {
        /// 1-64 lowercase letters, digits, `.`, `_` and `-`.
        #[arg(value_parser = parse_name)]
        name: String,
        /// The operator sees every panel but takes no action (ending sessions,
        /// creating backups).
        #[arg(long)]
        read_only: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the operators by name.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an operator; its console sessions end at once.
    Revoke { name: String },
}

fn parse_name(raw: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "{raw:?} is not an operator name: 1-64 lowercase letters, digits, `.`, `_` and `-`"
        ))
    }
}

/// An operator as `list --json` prints it (never its password hash).
#[derive(Serialize)]
struct Listed<'a> {
    name: &'a str,
    read_only: bool,
    created_at: chrono::DateTime<chrono::Utc>,
    last_signed_in_at: Option<chrono::DateTime<chrono::Utc>>,
    locked_until: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn run(env: &Env, action: OperatorAction) -> Result<(), Failure> {
    let owner = DbSettings::migrator_from_env(env).map_err(Failure::config)?;
    // Hashing is slow on purpose: done before the pool opens.
    let password = match &action {
        OperatorAction::Create { .. } => {
            let password = crate::auth::new_token();
            let hash = tokio::task::spawn_blocking({
                let password = password.clone();
                move || crate::password::hash(&password)
            })
            .await
            .map_err(Failure::runtime)?
            .map_err(Failure::runtime)?;
            Some((password, hash))
        }
        _ => None,
    };
    let db = Db::connect(&command_pool(&owner))
        .await
        .map_err(Failure::runtime)?;
    let result = act(&db, action, password).await;
    db.close().await;
    result
}

/// A failed write of `operators`, with the likeliest cause: the application role
/// may read operators but not make or delete them.
fn owner_hint(doing: &str, e: agenda_storage::StorageError) -> Failure {
    Failure::runtime(format!(
        "{doing} the operator failed ({e}); operators are made and revoked as the schema \
         owner: set MIGRATION_DATABASE_URL (the application role may only read them)"
    ))
}

async fn act(
    db: &Db,
    action: OperatorAction,
    password: Option<(String, String)>,
) -> Result<(), Failure> {
    require_migrated(db, " (operators need migration m20261201_000018_operators)").await?;
    let conn = db.conn();
    match action {
        OperatorAction::Create {
            name,
            read_only,
            json,
        } => {
            let (password, hash) = password.expect("hashed before connecting");
            let created = OperatorRepo::create(conn, &name, &hash, read_only)
                .await
                .map_err(|e| match e {
                    agenda_storage::StorageError::Conflict { .. } => {
                        Failure::runtime(format!("an operator named {name:?} already exists"))
                    }
                    e => owner_hint("creating", e),
                })?;
            tracing::info!(operator = %created.name, read_only, "operator created");
            if json {
                print_json(&serde_json::json!({
                    "name": created.name,
                    "read_only": created.read_only,
                    "password": password,
                }))
            } else {
                println!(
                    "created {}operator {:?}; its password (shown only now, store it safely):",
                    if read_only { "read-only " } else { "" },
                    created.name
                );
                println!("{password}");
                Ok(())
            }
        }
        OperatorAction::List { json } => {
            let operators = OperatorRepo::list(conn).await.map_err(Failure::runtime)?;
            let listed: Vec<Listed<'_>> = operators
                .iter()
                .map(|o| Listed {
                    name: &o.name,
                    read_only: o.read_only,
                    created_at: o.created_at,
                    last_signed_in_at: o.last_signed_in_at,
                    locked_until: o.locked_until.filter(|u| *u > chrono::Utc::now()),
                })
                .collect();
            if json {
                return print_json(&listed);
            }
            if listed.is_empty() {
                println!("no operators; create one with `agenda operator create NAME`");
                return Ok(());
            }
            let rows: Vec<[String; 4]> = listed
                .iter()
                .map(|o| {
                    [
                        o.name.to_owned(),
                        if o.read_only { "read-only" } else { "full" }.to_owned(),
                        o.last_signed_in_at
                            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339()),
                        o.locked_until
                            .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                    ]
                })
                .collect();
            print_table(["NAME", "ACCESS", "LAST SIGN-IN", "LOCKED UNTIL"], &rows);
            Ok(())
        }
        OperatorAction::Revoke { name } => {
            if !OperatorRepo::revoke(conn, &name)
                .await
                .map_err(|e| owner_hint("revoking", e))?
            {
                return Err(Failure::runtime(format!("no operator named {name:?}")));
            }
            tracing::info!(operator = %name, "operator revoked");
            println!("revoked operator {name:?}; its console sessions have ended");
            Ok(())
        }
    }
}
