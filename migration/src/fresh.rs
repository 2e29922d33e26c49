//! `migrate fresh` for this schema: drop everything the migrations created, then
//! apply them all again. [`crate::Migrator`] uses [`drop_everything`] instead of
//! sea-orm-migration's own step, which breaks this schema on both engines:
//!
//! - PostgreSQL: it drops tables and types but not functions, so migration 11's
//!   `CREATE FUNCTION agenda_current_tenant` fails with "already exists" and the run
//!   stops at 10 of 11 migrations.
//! - SQLite: it turns foreign keys off with a PRAGMA on one pooled connection, then
//!   drops the tables on whichever connections the pool hands out next, where
//!   foreign keys are still on: a parent dropped before its children makes the next
//!   drop fail with `no such table: main.users`.
//!
//! Here everything is dropped in one transaction (so a failure drops nothing): on
//! PostgreSQL every table of the current schema (`CASCADE`, which takes policies,
//! triggers and views along), then every function and enum or domain type of the
//! schema that no extension owns; on SQLite every table, children before parents, on
//! one connection with foreign keys left on.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, TransactionSession, TransactionTrait};

/// Drops every table, function and type of the current schema (see the module docs).
pub async fn drop_everything<C>(db: &C) -> Result<(), DbErr>
where
    C: ConnectionTrait + TransactionTrait,
{
    let tx = db.begin().await?;
    match tx.get_database_backend() {
        DbBackend::Sqlite => drop_sqlite_tables(&tx).await?,
        _ => drop_postgres_schema(&tx).await?,
    }
    tx.commit().await
}

async fn names(db: &impl ConnectionTrait, sql: &str) -> Result<Vec<String>, DbErr> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect()
}

async fn drop_postgres_schema(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let tables = names(
        db,
        "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema() \
         ORDER BY tablename",
    )
    .await?;
    if !tables.is_empty() {
        db.execute_unprepared(&format!(
            "DROP TABLE IF EXISTS {} CASCADE",
            tables.join(", ")
        ))
        .await?;
    }
    // Functions, procedures, enums and domains of the schema; objects an extension
    // installed belong to the extension (pg_depend 'e') and stay.
    for (kind, catalog, select) in [
        (
            "ROUTINE",
            "pg_proc",
            "SELECT o.oid::regprocedure::text FROM pg_proc o \
             WHERE o.pronamespace = current_schema()::regnamespace AND o.prokind IN ('f', 'p')",
        ),
        (
            "TYPE",
            "pg_type",
            "SELECT o.oid::regtype::text FROM pg_type o \
             WHERE o.typnamespace = current_schema()::regnamespace AND o.typtype IN ('e', 'd')",
        ),
    ] {
        let sql = format!(
            "{select} AND NOT EXISTS (SELECT 1 FROM pg_depend d \
             WHERE d.classid = '{catalog}'::regclass AND d.objid = o.oid AND d.deptype = 'e')"
        );
        for name in names(db, &sql).await? {
            db.execute_unprepared(&format!("DROP {kind} IF EXISTS {name} CASCADE"))
                .await?;
        }
    }
    Ok(())
}

/// Drops the tables in an order foreign keys allow: a table goes once no other
/// remaining table refers to it.
async fn drop_sqlite_tables(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let mut tables = names(
        db,
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .await?;
    let references: Vec<(String, String)> = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT m.name, p.\"table\" FROM sqlite_master m \
             JOIN pragma_foreign_key_list(m.name) p \
             WHERE m.type = 'table' AND m.name <> p.\"table\"",
        ))
        .await?
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<Result<_, DbErr>>()?;
    while !tables.is_empty() {
        let referenced = |table: &String| {
            references
                .iter()
                .any(|(child, parent)| parent == table && tables.contains(child))
        };
        let Some(leaf) = tables.iter().position(|t| !referenced(t)) else {
            return Err(DbErr::Migration(format!(
                "cannot drop the tables {tables:?}: their foreign keys form a cycle"
            )));
        };
        let table = tables.swap_remove(leaf);
        db.execute_unprepared(&format!(
            "DROP TABLE IF EXISTS \"{}\"",
            table.replace('"', "\"\"")
        ))
        .await?;
    }
    Ok(())
}
