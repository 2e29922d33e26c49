//! Restoring a backup: verify the whole archive, check the target (same schema
//! version, no rows), then insert every table in foreign-key order in one transaction.

use std::path::{Path, PathBuf};

use agenda_entity::catalog;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement, Value};
use serde::Serialize;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::archive::{self, Event, Stop};
use super::canonical::{self, Column};
use super::{
    BackupError, INSERT_BATCH_VALUES, Manifest, OnProgress, Progress, applied_migrations,
    version_of,
};
use crate::db::{Db, Engine};

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub path: PathBuf,
    /// The engine restored into.
    pub engine: String,
    /// The restored archive's manifest (rows per table, source engine, scope).
    pub manifest: Manifest,
    /// Rows inserted, all tables together.
    pub rows: u64,
}

/// Everything [`restore`] checks before it writes, without writing: the archive is
/// sound (see [`super::verify`]), describes the tables this build knows, has the
/// schema version of the target, the connection's role sees every organization (not
/// the application role, which row-level security confines), and the target has no
/// rows in any application table.
/// Returns the archive's manifest.
pub async fn check_restore(db: &Db, path: &Path) -> Result<Manifest, BackupError> {
    let owned = path.to_owned();
    let report = tokio::task::spawn_blocking(move || super::verify(&owned))
        .await
        .map_err(|e| BackupError::io("verifying the archive", std::io::Error::other(e)))??;
    let manifest = report.into_result()?;
    let target = applied_migrations(db.conn()).await?;
    if target != manifest.migrations {
        return Err(BackupError::Refused(format!(
            "schema version mismatch: the backup has {} ({} migrations) but the target \
             database has {} ({} migrations); migrate the target to exactly {} \
             (`agenda migrate up`, or `up -n N` for an older backup) before restoring",
            manifest.schema_version,
            manifest.migrations.len(),
            version_of(&target),
            target.len(),
            manifest.schema_version,
        )));
    }
    check_tables(&manifest)?;
    // A role confined by row-level security would see every table empty.
    if !crate::tenant::sees_every_tenant(db.conn()).await? {
        return Err(BackupError::Refused(super::create::ROLE_CONFINED.into()));
    }
    refuse_non_empty(db.conn()).await?;
    Ok(manifest)
}

/// Restores the archive at `path` into the empty, migrated database `db` (either
/// engine, whichever the backup came from).
///
/// First checks everything ([`check_restore`]); then reads the archive a second time
/// and inserts its rows in one transaction, table by table in the manifest's
/// (foreign-key) order, in multi-row `INSERT`s of at most `INSERT_BATCH_VALUES`
/// values. The second read checks every checksum again and the transaction commits
/// only when it matches, so a damaged, truncated or mismatched archive writes nothing.
///
/// Reading and decompressing run on a blocking thread that hands batches of rows to
/// this task through a small bounded channel: memory holds a few batches whatever the
/// size of the archive.
pub async fn restore(db: &Db, path: &Path) -> Result<RestoreReport, BackupError> {
    restore_with_progress(db, path, &super::no_progress).await
}

/// [`restore`], calling `progress` after every batch of rows inserted.
pub async fn restore_with_progress(
    db: &Db,
    path: &Path,
    progress: OnProgress<'_>,
) -> Result<RestoreReport, BackupError> {
    let manifest = check_restore(db, path).await?;
    let tx = db.begin().await?;
    // Another writer could have added rows since the check.
    refuse_non_empty(&tx).await?;
    let tables: Vec<TablePlan> = {
        let mut plans = Vec::new();
        for table in catalog::tables() {
            let columns = canonical::columns_of(&table)?;
            let self_references = self_references(&tx, table.name).await?;
            plans.push(TablePlan {
                name: table.name,
                rows_per_insert: (INSERT_BATCH_VALUES / columns.len()).max(1),
                self_references: self_references
                    .iter()
                    .filter_map(|r| columns.iter().position(|c| &c.name == r))
                    .collect(),
                columns,
            });
        }
        plans
    };

    let (sender, mut receiver) = mpsc::channel::<Batch>(4);
    let reader = {
        let path = path.to_owned();
        let kinds: Vec<_> = tables
            .iter()
            .map(|t| (t.columns.clone(), t.rows_per_insert))
            .collect();
        tokio::task::spawn_blocking(move || read_batches(&path, &kinds, &sender))
    };

    let mut inserted = vec![0u64; tables.len()];
    let mut tables_done = 0;
    let mut deferred: Vec<Deferred> = Vec::new();
    let mut failure = None;
    while let Some(batch) = receiver.recv().await {
        let result = match batch {
            Batch::Rows { table, rows } => {
                inserted[table] += rows.len() as u64;
                let done = insert(&tx, &tables[table], rows, &mut deferred).await;
                progress(Progress {
                    table: tables[table].name,
                    tables_done,
                    tables_total: tables.len(),
                    rows_done: inserted.iter().sum(),
                    rows_total: Some(manifest.total_rows()),
                });
                done
            }
            Batch::TableDone { table } => {
                tables_done += 1;
                apply_deferred(&tx, &tables[table], std::mem::take(&mut deferred)).await
            }
        };
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }
    // Dropping the receiver stops the reader at its next batch.
    drop(receiver);
    let report = reader
        .await
        .map_err(|e| BackupError::io("reading the archive", std::io::Error::other(e)))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let report = report?;
    let second = report.into_result()?;
    if second != manifest {
        return Err(BackupError::Refused(
            "the archive changed while it was being restored; nothing was written".into(),
        ));
    }
    for (table, count) in manifest.tables.iter().zip(&inserted) {
        if table.rows != *count {
            return Err(BackupError::Refused(format!(
                "{}: {count} rows inserted, the manifest says {}; nothing was written",
                table.name, table.rows
            )));
        }
    }
    tx.commit().await?;
    Ok(RestoreReport {
        path: path.to_owned(),
        engine: db.engine().to_string(),
        rows: manifest.total_rows(),
        manifest,
    })
}

/// How one table is inserted.
struct TablePlan {
    name: &'static str,
    columns: Vec<Column>,
    rows_per_insert: usize,
    /// Positions of columns that reference this same table (`categories.parent_id`).
    self_references: Vec<usize>,
}

/// Rows handed from the reading thread to the inserting task.
enum Batch {
    Rows { table: usize, rows: Vec<Vec<Value>> },
    TableDone { table: usize },
}

/// A self-reference to a row later in the file, set after the table is loaded.
struct Deferred {
    column: usize,
    id: Uuid,
    target: Uuid,
}

/// The reading side: scans the archive and sends typed rows in batches. Manifest
/// positions are catalog positions ([`check_tables`]).
fn read_batches(
    path: &Path,
    tables: &[(Vec<Column>, usize)],
    sender: &mpsc::Sender<Batch>,
) -> Result<archive::VerifyReport, BackupError> {
    let mut current: Option<(usize, Vec<Vec<Value>>)> = None;
    let send = |batch: Batch| {
        sender
            .blocking_send(batch)
            .map_err(|_| Stop("the restore stopped".into()))
    };
    archive::scan(path, |event| match event {
        Event::Row { index, row } => {
            let (columns, per_insert) = &tables[index];
            let mut values = Vec::with_capacity(columns.len());
            for column in columns {
                let raw = row.get(&column.name).unwrap_or(&serde_json::Value::Null);
                values.push(
                    canonical::decode_value(column.kind, raw)
                        .map_err(|e| Stop(format!("{}: {e}", column.name)))?,
                );
            }
            let batch = match &mut current {
                Some((i, rows)) if *i == index => rows,
                _ => &mut current.insert((index, Vec::new())).1,
            };
            batch.push(values);
            if batch.len() >= *per_insert {
                let rows = std::mem::take(batch);
                send(Batch::Rows { table: index, rows })?;
            }
            Ok(())
        }
        Event::TableDone { index } => {
            if let Some((i, rows)) = current.take()
                && !rows.is_empty()
            {
                send(Batch::Rows { table: i, rows })?;
            }
            send(Batch::TableDone { table: index })
        }
    })
}

/// One multi-row `INSERT`. Self-references to a row not inserted yet (a greater
/// key: rows arrive in key order) are written as NULL and remembered.
async fn insert(
    tx: &DatabaseTransaction,
    table: &TablePlan,
    mut rows: Vec<Vec<Value>>,
    deferred: &mut Vec<Deferred>,
) -> Result<(), BackupError> {
    if rows.is_empty() {
        return Ok(());
    }
    for row in &mut rows {
        let Value::Uuid(Some(id)) = row[0] else {
            continue;
        };
        for &column in &table.self_references {
            if let Value::Uuid(Some(target)) = row[column]
                && target > id
            {
                deferred.push(Deferred { column, id, target });
                row[column] = Value::Uuid(None);
            }
        }
    }
    let mut query = Query::insert();
    query
        .into_table(Alias::new(table.name))
        .columns(table.columns.iter().map(|c| Alias::new(c.name.as_str())));
    for row in rows {
        query
            .values(row.into_iter().map(Expr::val))
            .map_err(|e| BackupError::Refused(format!("{}: {e}", table.name)))?;
    }
    tx.execute(&query).await.map_err(|e| {
        let mut err = BackupError::from(e);
        if let BackupError::Database { detail, .. } = &mut err {
            *detail = format!("inserting into {}: {detail}", table.name);
        }
        err
    })?;
    Ok(())
}

/// Sets the self-references that pointed forward, once every row of the table exists.
async fn apply_deferred(
    tx: &DatabaseTransaction,
    table: &TablePlan,
    deferred: Vec<Deferred>,
) -> Result<(), BackupError> {
    for d in deferred {
        let mut query = Query::update();
        query
            .table(Alias::new(table.name))
            .value(
                Alias::new(table.columns[d.column].name.as_str()),
                Expr::val(d.target),
            )
            .and_where(Expr::col(Alias::new("id")).eq(d.id));
        tx.execute(&query).await?;
    }
    Ok(())
}

/// The archive must describe exactly the tables and columns of this build, in the
/// same order (the order is the foreign-key order restore relies on).
fn check_tables(manifest: &Manifest) -> Result<(), BackupError> {
    let tables = catalog::tables();
    let names = |it: &mut dyn Iterator<Item = &str>| it.collect::<Vec<_>>().join(", ");
    if manifest.tables.len() != tables.len()
        || manifest
            .tables
            .iter()
            .zip(&tables)
            .any(|(m, t)| m.name != t.name)
    {
        return Err(BackupError::Refused(format!(
            "the backup's tables ({}) are not this build's ({})",
            names(&mut manifest.tables.iter().map(|t| t.name.as_str())),
            names(&mut tables.iter().map(|t| t.name)),
        )));
    }
    for (m, t) in manifest.tables.iter().zip(&tables) {
        if !m.columns.iter().eq(t.columns.iter().map(|c| &c.name)) {
            return Err(BackupError::Refused(format!(
                "the backup's columns of {} ({}) are not this build's ({})",
                t.name,
                m.columns.join(", "),
                names(&mut t.columns.iter().map(|c| c.name.as_str())),
            )));
        }
    }
    Ok(())
}

/// Refuses a target with rows in any application table, naming the first few.
async fn refuse_non_empty(conn: &impl ConnectionTrait) -> Result<(), BackupError> {
    let mut found = Vec::new();
    for table in catalog::tables() {
        let query = Query::select()
            .column(Alias::new("id"))
            .from(Alias::new(table.name))
            .limit(1)
            .to_owned();
        if conn.query_one(&query).await?.is_some() {
            found.push(table.name);
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    let shown = found.iter().take(5).copied().collect::<Vec<_>>().join(", ");
    let more = if found.len() > 5 {
        format!(" and {} more tables", found.len() - 5)
    } else {
        String::new()
    };
    Err(BackupError::Refused(format!(
        "the target database is not empty (rows in {shown}{more}); a backup is restored \
         only into an empty, migrated database"
    )))
}

/// The columns of `table` with a foreign key to `table` itself, as the live schema
/// declares them.
async fn self_references(
    conn: &impl ConnectionTrait,
    table: &str,
) -> Result<Vec<String>, BackupError> {
    let backend = conn.get_database_backend();
    let statement = match Engine::of(backend) {
        Engine::Sqlite => Statement::from_sql_and_values(
            backend,
            "SELECT \"from\" FROM pragma_foreign_key_list(?) WHERE \"table\" = ?",
            [table.into(), table.into()],
        ),
        Engine::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT a.attname::text FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) \
             WHERE c.contype = 'f' AND c.conrelid = c.confrelid \
               AND c.conrelid = to_regclass($1)",
            [table.into()],
        ),
    };
    let rows = conn.query_all_raw(statement).await?;
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0).map_err(BackupError::from))
        .collect()
}
