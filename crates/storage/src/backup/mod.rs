//! Logical backups: an engine-neutral archive of the application tables, taken from
//! one consistent snapshot and restorable into an empty database of either engine.
//!
//! - [`create`] / [`create_file`]: read every table (or one organization's rows) in a
//!   single read transaction, in bounded batches, into a gzip-compressed tar archive;
//! - [`verify`]: re-read an archive and check it against its manifest;
//! - [`list`]: the archives of a directory, with their manifests;
//! - [`restore`]: verify, then load an archive into an empty database in one
//!   transaction.
//!
//! The archive format (`manifest.json` + `data/<table>.jsonl`), its canonical values
//! and the rules of restore are described in `docs/backup.md`. The same data gives
//! byte-identical table files whether it was read from SQLite or PostgreSQL, so a
//! backup is also the way to move between engines.
//!
//! A whole-database backup reads across tenants on purpose; it does so with explicit
//! SQL over `agenda_entity::catalog::tables()`, never through the unscoped entity
//! entry points. A one-organization backup filters every table by `organization_id`
//! (`organizations` by `id`).

mod archive;
mod canonical;
mod create;
mod restore;

use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StorageError;

pub use archive::{BackupListing, VerifyReport, list, verify};
pub use create::{
    create, create_file, create_file_with_progress, create_with_progress, default_file_name,
};
pub use restore::{RestoreReport, check_restore, restore, restore_with_progress};

/// Where a long backup or restore has got to, reported as it goes (for a progress bar).
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// The table being read or written.
    pub table: &'a str,
    /// Tables finished so far, of `tables_total`.
    pub tables_done: usize,
    pub tables_total: usize,
    /// Rows read or written so far, over all tables.
    pub rows_done: u64,
    /// All rows to write (restore: from the manifest); `None` while creating a backup,
    /// which does not count rows up front.
    pub rows_total: Option<u64>,
}

/// A progress callback: called after every table (backup) or batch (restore). It
/// must be cheap; it runs on the task doing the work.
pub type OnProgress<'a> = &'a (dyn Fn(Progress<'_>) + Send + Sync);

/// The callback that ignores progress.
fn no_progress(_: Progress<'_>) {}

/// What `format` says in every manifest.
pub const FORMAT_NAME: &str = "agenda-backup";

/// The archive format this build writes and reads. A change to the layout or to the
/// canonical form of a value is a new version.
pub const FORMAT_VERSION: u32 = 1;

/// The manifest's name inside the archive (always the first entry).
pub const MANIFEST_FILE: &str = "manifest.json";

/// Rows read per statement while creating a backup: memory stays bounded by one batch
/// whatever the size of a table.
pub const READ_BATCH_ROWS: u64 = 1000;

/// Bound values per `INSERT` while restoring (rows per statement = this / columns).
/// Well under SQLite's limit of 32766 variables and PostgreSQL's 65535 parameters.
pub const INSERT_BATCH_VALUES: usize = 8000;

/// What a backup contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "ScopeRepr", try_from = "ScopeRepr")]
pub enum BackupScope {
    /// Every row of every application table, including platform-wide audit entries.
    Database,
    /// The rows of one organization: its `organizations` row and every row whose
    /// `organization_id` is this id.
    Organization(Uuid),
}

impl fmt::Display for BackupScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupScope::Database => f.write_str("whole database"),
            BackupScope::Organization(id) => write!(f, "organization {id}"),
        }
    }
}

/// The manifest form of a scope: `{"kind": "database"}` or
/// `{"kind": "organization", "organization_id": "…"}`.
#[derive(Serialize, Deserialize)]
struct ScopeRepr {
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    organization_id: Option<Uuid>,
}

impl From<BackupScope> for ScopeRepr {
    fn from(scope: BackupScope) -> Self {
        match scope {
            BackupScope::Database => ScopeRepr {
                kind: "database".into(),
                organization_id: None,
            },
            BackupScope::Organization(id) => ScopeRepr {
                kind: "organization".into(),
                organization_id: Some(id),
            },
        }
    }
}

impl TryFrom<ScopeRepr> for BackupScope {
    type Error = String;
    fn try_from(repr: ScopeRepr) -> Result<Self, String> {
        match (repr.kind.as_str(), repr.organization_id) {
            ("database", None) => Ok(BackupScope::Database),
            ("organization", Some(id)) => Ok(BackupScope::Organization(id)),
            (kind, _) => Err(format!("unknown backup scope {kind:?}")),
        }
    }
}

/// `manifest.json`: what the archive holds and how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    pub format_version: u32,
    /// When the snapshot was taken (RFC 3339, UTC, microseconds).
    #[serde(with = "canonical::instant_serde")]
    pub created_at: DateTime<Utc>,
    /// The engine the data was read from (`sqlite` or `postgres`).
    pub engine: String,
    /// The version of Agenda that wrote the archive.
    pub agenda_version: String,
    /// The last applied migration of the source database.
    pub schema_version: String,
    /// Every applied migration of the source database, in order.
    pub migrations: Vec<String>,
    pub scope: BackupScope,
    /// One entry per table, parents before children (the order restore inserts them).
    pub tables: Vec<TableManifest>,
}

impl Manifest {
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// The manifest entry of `table`.
    pub fn table(&self, table: &str) -> Option<&TableManifest> {
        self.tables.iter().find(|t| t.name == table)
    }
}

/// One table's data file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableManifest {
    pub name: String,
    /// The path inside the archive: `data/<table>.jsonl`.
    pub file: String,
    /// The columns of every line, in the order they are written.
    pub columns: Vec<String>,
    pub rows: u64,
    /// Size of the data file, uncompressed.
    pub bytes: u64,
    /// SHA-256 of the data file, lower-case hex.
    pub sha256: String,
}

/// Why a backup, verification or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// The database failed; `detail` is the error with its causes.
    #[error("database error: {detail}")]
    Database {
        detail: String,
        #[source]
        source: StorageError,
    },

    /// The archive is damaged, truncated or not an Agenda backup; nothing was written.
    #[error("the backup {} is not valid: {}", path.display(), problems.join("; "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },

    /// The operation was refused before anything was written (non-empty target,
    /// schema version mismatch, unknown organization, existing output file).
    #[error("{0}")]
    Refused(String),
}

impl BackupError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BackupError::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<StorageError> for BackupError {
    fn from(source: StorageError) -> Self {
        let mut detail = source.to_string();
        let mut cause = std::error::Error::source(&source);
        while let Some(e) = cause {
            detail.push_str(": ");
            detail.push_str(&e.to_string());
            cause = e.source();
        }
        BackupError::Database { detail, source }
    }
}

impl From<sea_orm::DbErr> for BackupError {
    fn from(err: sea_orm::DbErr) -> Self {
        BackupError::from(StorageError::from(err))
    }
}

/// The migrations applied to the database `conn` talks to, in order (the
/// `seaql_migrations` ledger; empty when the database was never migrated).
pub async fn applied_migrations(
    conn: &impl sea_orm::ConnectionTrait,
) -> Result<Vec<String>, BackupError> {
    use sea_orm::Statement;
    let backend = conn.get_database_backend();
    let exists_sql = match crate::db::Engine::of(backend) {
        crate::db::Engine::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'seaql_migrations'"
        }
        crate::db::Engine::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = 'seaql_migrations'"
        }
    };
    let exists = conn
        .query_one_raw(Statement::from_string(backend, exists_sql))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    if exists == 0 {
        return Ok(Vec::new());
    }
    let rows = conn
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await?;
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0).map_err(BackupError::from))
        .collect()
}

/// The name of the last migration in `migrations`, or `(none)`.
pub(crate) fn version_of(migrations: &[String]) -> &str {
    migrations.last().map_or("(none)", String::as_str)
}
