//! Taking a backup: one read transaction, every table in bounded batches, spooled to
//! temporary files (so counts and checksums are known before the manifest is
//! written first in the archive), then packed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use agenda_entity::catalog;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::canonical::{self, Column};
use super::{
    BackupError, BackupScope, FORMAT_NAME, FORMAT_VERSION, Manifest, OnProgress, Progress,
    READ_BATCH_ROWS, TableManifest, applied_migrations, archive,
};
use crate::db::{Db, Engine};

/// Why a whole-database backup or restore refuses a role that row-level security
/// confines to one tenant at a time (PostgreSQL's application role).
pub(crate) const ROLE_CONFINED: &str = "the database role of this connection is confined to one \
    organization at a time by row-level security (it is the application role), so it cannot \
    see every organization's rows; connect as the schema owner (set MIGRATION_DATABASE_URL)";

/// Writes a backup of `scope` to `writer` and returns its manifest.
///
/// All tables are read in one read transaction, so the archive is one consistent
/// snapshot: on PostgreSQL `REPEATABLE READ, READ ONLY`; on SQLite a read transaction,
/// which in WAL mode sees the database as of its first read while writers go on.
/// Rows are read `READ_BATCH_ROWS` at a time by primary key (keyset), encoded and
/// written to a temporary file per table under the system temporary directory, so
/// memory does not grow with the data; the temporary files are removed afterwards.
/// The transaction ends before the archive is compressed.
///
/// File I/O and compression run on the calling task: from a server, call it where
/// blocking is acceptable.
pub async fn create(
    db: &Db,
    scope: BackupScope,
    writer: impl Write,
) -> Result<Manifest, BackupError> {
    create_with_progress(db, scope, writer, &super::no_progress).await
}

/// [`create`], calling `progress` after every table.
pub async fn create_with_progress(
    db: &Db,
    scope: BackupScope,
    writer: impl Write,
    progress: OnProgress<'_>,
) -> Result<Manifest, BackupError> {
    let tables = catalog::tables();
    let plans = tables
        .iter()
        .map(canonical::columns_of)
        .collect::<Result<Vec<_>, _>>()?;
    let spool = SpoolDir::new()?;

    let tx = db.begin_read().await?;
    if db.engine() == Engine::Postgres {
        tx.execute_unprepared("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
    }
    let migrations = applied_migrations(&tx).await?;
    let Some(schema_version) = migrations.last().cloned() else {
        return Err(BackupError::Refused(
            "the database has no migrations applied: there is nothing to back up".into(),
        ));
    };
    match scope {
        // Row-level security would hide every tenant's rows from a confined role
        // and the archive would silently be empty.
        BackupScope::Database if !crate::tenant::sees_every_tenant(&tx).await? => {
            return Err(BackupError::Refused(ROLE_CONFINED.into()));
        }
        BackupScope::Database => {}
        BackupScope::Organization(id) => {
            let found = tx
                .query_one(
                    Query::select()
                        .column(Alias::new("id"))
                        .from(Alias::new("organizations"))
                        .and_where(Expr::col(Alias::new("id")).eq(id)),
                )
                .await?;
            if found.is_none() {
                return Err(BackupError::Refused(format!(
                    "organization {id} does not exist"
                )));
            }
            crate::tenant::enter(&tx, crate::TenantScope::new(id)).await?;
        }
    }
    let created_at = Utc::now().trunc_subsecs(6);

    let mut entries = Vec::with_capacity(tables.len());
    let mut rows_done = 0;
    let mut spooled = Vec::with_capacity(tables.len());
    for (table, columns) in tables.iter().zip(&plans) {
        let path = spool.path.join(format!("{}.jsonl", table.name));
        let entry = dump_table(&tx, scope, table.name, columns, &path).await?;
        rows_done += entry.rows;
        entries.push(entry);
        progress(Progress {
            table: table.name,
            tables_done: entries.len(),
            tables_total: tables.len(),
            rows_done,
            rows_total: None,
        });
        spooled.push(path);
    }
    tx.commit().await?;

    let manifest = Manifest {
        format: FORMAT_NAME.to_owned(),
        format_version: FORMAT_VERSION,
        created_at,
        engine: db.engine().to_string(),
        agenda_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version,
        migrations,
        scope,
        tables: entries,
    };
    archive::write(writer, &manifest, &spooled)?;
    Ok(manifest)
}

/// Writes a backup to a new file at `path` (its directory is created when missing).
/// The data goes to `<path>.partial` first and is renamed when complete and synced,
/// so a failed or interrupted backup never leaves a file that looks finished. An
/// existing `path` is never overwritten.
pub async fn create_file(
    db: &Db,
    scope: BackupScope,
    path: &Path,
) -> Result<Manifest, BackupError> {
    create_file_with_progress(db, scope, path, &super::no_progress).await
}

/// [`create_file`], calling `progress` after every table.
pub async fn create_file_with_progress(
    db: &Db,
    scope: BackupScope,
    path: &Path,
    progress: OnProgress<'_>,
) -> Result<Manifest, BackupError> {
    if path.exists() {
        return Err(BackupError::Refused(format!(
            "{} already exists; choose another path",
            path.display()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| BackupError::io(format!("creating {}", dir.display()), e))?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let result = async {
        let file = private_file(&partial)
            .map_err(|e| BackupError::io(format!("creating {}", partial.display()), e))?;
        let mut out = BufWriter::new(file);
        let manifest = create_with_progress(db, scope, &mut out, progress).await?;
        let file = out.into_inner().map_err(|e| {
            BackupError::io(format!("writing {}", partial.display()), e.into_error())
        })?;
        file.sync_all()
            .map_err(|e| BackupError::io(format!("syncing {}", partial.display()), e))?;
        std::fs::rename(&partial, path)
            .map_err(|e| BackupError::io(format!("renaming to {}", path.display()), e))?;
        Ok(manifest)
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The default file name of a backup taken at `at`:
/// `agenda-backup-20261123T100000Z.tar.gz`, or
/// `agenda-backup-org-<id>-20261123T100000Z.tar.gz` for one organization. Names sort
/// in time order.
pub fn default_file_name(scope: BackupScope, at: DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%dT%H%M%SZ");
    match scope {
        BackupScope::Database => format!("agenda-backup-{stamp}.tar.gz"),
        BackupScope::Organization(id) => format!("agenda-backup-org-{id}-{stamp}.tar.gz"),
    }
}

/// Reads one table in primary-key order, `READ_BATCH_ROWS` rows per statement, and
/// writes its canonical lines to `path`, hashing them on the way.
async fn dump_table(
    tx: &DatabaseTransaction,
    scope: BackupScope,
    table: &'static str,
    columns: &[Column],
    path: &Path,
) -> Result<TableManifest, BackupError> {
    let failed = |e| BackupError::io(format!("writing {}", path.display()), e);
    let filter = match scope {
        BackupScope::Database => None,
        BackupScope::Organization(id) => {
            let column = if table == "organizations" {
                "id"
            } else if columns.iter().any(|c| c.name == "organization_id") {
                "organization_id"
            } else {
                return Err(BackupError::Refused(format!(
                    "{table} has no organization_id: it cannot be backed up for one organization"
                )));
            };
            // `audit_log` rows without an organization are platform-wide: they match
            // no organization here and belong only to whole-database backups.
            Some((column, id))
        }
    };
    let mut out = BufWriter::with_capacity(256 * 1024, private_file(path).map_err(failed)?);
    let mut hasher = Sha256::new();
    let (mut rows, mut bytes) = (0u64, 0u64);
    let mut last: Option<Uuid> = None;
    let mut line = String::new();
    loop {
        let mut query = Query::select();
        query
            .columns(columns.iter().map(|c| Alias::new(c.name.as_str())))
            .from(Alias::new(table))
            .order_by(Alias::new("id"), Order::Asc)
            .limit(READ_BATCH_ROWS);
        if let Some((column, id)) = filter {
            query.and_where(Expr::col(Alias::new(column)).eq(id));
        }
        if let Some(last) = last {
            query.and_where(Expr::col(Alias::new("id")).gt(last));
        }
        let batch = tx.query_all(&query).await?;
        for row in &batch {
            line.clear();
            canonical::encode_row(row, columns, table, &mut line)?;
            line.push('\n');
            hasher.update(line.as_bytes());
            out.write_all(line.as_bytes()).map_err(failed)?;
            bytes += line.len() as u64;
            rows += 1;
        }
        match batch.last() {
            Some(row) if batch.len() as u64 == READ_BATCH_ROWS => {
                last = Some(row.try_get::<Uuid>("", "id")?);
            }
            _ => break,
        }
    }
    out.flush().map_err(failed)?;
    Ok(TableManifest {
        name: table.to_owned(),
        file: archive::data_file(table),
        columns: columns.iter().map(|c| c.name.clone()).collect(),
        rows,
        bytes,
        sha256: archive::hex(&hasher.finalize()),
    })
}

/// A private temporary directory, removed with everything in it when dropped.
struct SpoolDir {
    path: PathBuf,
}

impl SpoolDir {
    fn new() -> Result<Self, BackupError> {
        let path = std::env::temp_dir().join(format!(
            "agenda-backup-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&path)
            .map_err(|e| BackupError::io(format!("creating {}", path.display()), e))?;
        Ok(SpoolDir { path })
    }
}

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Creates a new file readable by its owner only: an archive holds personal data and
/// password hashes. Fails when the file exists.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}
