//! What the migrated database actually contains, and where it disagrees with the
//! entities ("drift").
//!
//! The migrations are the source of truth for the database; the entities are the
//! source of truth for the Rust side. [`drift`] compares the two table by table and
//! column by column (presence, type family, nullability), so an entity change without
//! a migration (or the reverse) is caught by a test instead of by a failing query in
//! production. [`columns`] reads the live schema from `PRAGMA table_info` on SQLite
//! and `information_schema.columns` on PostgreSQL.

use std::collections::BTreeMap;

use agenda_entity::catalog::TableInfo;
use sea_orm::sea_query::{ColumnType, StringLen};
use sea_orm::{ConnectionTrait, Statement};

use crate::db::Engine;
use crate::error::StorageError;

/// Tables that belong to tooling, not to the application (the migration ledger).
pub const TOOLING_TABLES: &[&str] = &["seaql_migrations"];

/// One column as the database reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbColumn {
    pub name: String,
    /// The type as the engine names it (`uuid`, `int8`, `timestamp_with_timezone_text`...).
    pub db_type: String,
    pub nullable: bool,
}

/// The live schema: table name to its columns in declaration order.
pub type LiveSchema = BTreeMap<String, Vec<DbColumn>>;

/// Reads every application table and its columns.
pub async fn columns<C: ConnectionTrait>(conn: &C) -> Result<LiveSchema, StorageError> {
    let backend = conn.get_database_backend();
    let mut schema = LiveSchema::new();
    match Engine::of(backend) {
        Engine::Sqlite => {
            let tables = conn
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT name FROM sqlite_master WHERE type = 'table' \
                     AND name NOT LIKE 'sqlite_%' ORDER BY name",
                ))
                .await?;
            for row in tables {
                let table: String = row.try_get_by_index(0)?;
                if TOOLING_TABLES.contains(&table.as_str()) {
                    continue;
                }
                // `table` comes from sqlite_master, not from user input.
                let info = conn
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}') ORDER BY cid"),
                    ))
                    .await?;
                let mut cols = Vec::with_capacity(info.len());
                for c in info {
                    let not_null: i64 = c.try_get_by_index(2)?;
                    cols.push(DbColumn {
                        name: c.try_get_by_index(0)?,
                        db_type: c.try_get_by_index::<String>(1)?.to_ascii_lowercase(),
                        nullable: not_null == 0,
                    });
                }
                schema.insert(table, cols);
            }
        }
        Engine::Postgres => {
            let rows = conn
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT c.table_name::text, c.column_name::text, c.udt_name::text, \
                            c.is_nullable = 'YES' \
                     FROM information_schema.columns c \
                     JOIN information_schema.tables t \
                       ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
                     WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
                     ORDER BY c.table_name, c.ordinal_position",
                ))
                .await?;
            for row in rows {
                let table: String = row.try_get_by_index(0)?;
                if TOOLING_TABLES.contains(&table.as_str()) {
                    continue;
                }
                schema.entry(table).or_default().push(DbColumn {
                    name: row.try_get_by_index(1)?,
                    db_type: row.try_get_by_index(2)?,
                    nullable: row.try_get_by_index(3)?,
                });
            }
        }
    }
    Ok(schema)
}

/// Every disagreement between the entities and the live schema, as readable lines
/// (`appointments.notes: nullable in the entity, NOT NULL in the database`). Empty
/// when they agree.
pub fn drift(entities: &[TableInfo], live: &LiveSchema, engine: Engine) -> Vec<String> {
    let mut problems = Vec::new();
    for table in entities {
        let Some(db_columns) = live.get(table.name) else {
            problems.push(format!(
                "{}: the entity exists but the table does not",
                table.name
            ));
            continue;
        };
        for column in &table.columns {
            let at = format!("{}.{}", table.name, column.name);
            let Some(db) = db_columns.iter().find(|c| c.name == column.name) else {
                problems.push(format!("{at}: in the entity, missing from the database"));
                continue;
            };
            let expected = expected_family(&column.column_type, engine);
            let actual = db_family(&db.db_type, engine);
            if expected != actual {
                problems.push(format!(
                    "{at}: the entity says {expected}, the database has {} ({actual})",
                    db.db_type
                ));
            }
            if column.nullable != db.nullable {
                let word = |n: bool| if n { "NULL" } else { "NOT NULL" };
                problems.push(format!(
                    "{at}: {} in the entity, {} in the database",
                    word(column.nullable),
                    word(db.nullable)
                ));
            }
        }
        for db in db_columns {
            if !table.columns.iter().any(|c| c.name == db.name) {
                problems.push(format!(
                    "{}.{}: in the database, missing from the entity",
                    table.name, db.name
                ));
            }
        }
    }
    for name in live.keys() {
        if !entities.iter().any(|t| t.name == name) {
            problems.push(format!(
                "{name}: a table in the database that no entity describes"
            ));
        }
    }
    problems
}

/// The storage family an entity column type must have on `engine`. SQLite stores every
/// integer width alike, so widths are compared on PostgreSQL only.
fn expected_family(ty: &ColumnType, engine: Engine) -> &'static str {
    let integer = |pg: &'static str| match engine {
        Engine::Sqlite => "integer",
        Engine::Postgres => pg,
    };
    match ty {
        ColumnType::Uuid => "uuid",
        ColumnType::String(StringLen::None | StringLen::Max) | ColumnType::Char(_) => "varchar",
        ColumnType::String(StringLen::N(_)) => "varchar",
        ColumnType::Text => "text",
        ColumnType::Boolean => "boolean",
        ColumnType::TinyInteger | ColumnType::SmallInteger => integer("int2"),
        ColumnType::Integer => integer("int4"),
        ColumnType::BigInteger => integer("int8"),
        ColumnType::Double | ColumnType::Float => "double",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::TimestampWithTimeZone => "timestamptz",
        ColumnType::Timestamp | ColumnType::DateTime => "timestamp",
        ColumnType::Json => "json",
        ColumnType::JsonBinary => "jsonb",
        _ => "unsupported",
    }
}

/// The family of a type name the database reports.
fn db_family(db_type: &str, engine: Engine) -> &'static str {
    match (engine, db_type) {
        (_, "uuid" | "uuid_text") => "uuid",
        (_, "varchar" | "character varying") => "varchar",
        (_, "text") => "text",
        (_, "boolean" | "bool") => "boolean",
        (Engine::Sqlite, "integer" | "bigint" | "int") => "integer",
        (Engine::Postgres, "int2") => "int2",
        (Engine::Postgres, "int4") => "int4",
        (Engine::Postgres, "int8") => "int8",
        (_, "double" | "float8" | "real" | "float4") => "double",
        (_, "date" | "date_text") => "date",
        (_, "time" | "time_text") => "time",
        (_, "timestamptz" | "timestamp_with_timezone_text") => "timestamptz",
        (_, "timestamp" | "timestamp_text" | "datetime_text") => "timestamp",
        (_, "json" | "json_text") => "json",
        (_, "jsonb" | "jsonb_text") => "jsonb",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agenda_entity::catalog;

    /// The live schema the entities describe, written the way `engine` reports it.
    fn matching(engine: Engine) -> LiveSchema {
        catalog::tables()
            .iter()
            .map(|t| {
                let cols = t
                    .columns
                    .iter()
                    .map(|c| DbColumn {
                        name: c.name.clone(),
                        db_type: reported(&c.column_type, engine).to_owned(),
                        nullable: c.nullable,
                    })
                    .collect();
                (t.name.to_owned(), cols)
            })
            .collect()
    }

    fn reported(ty: &ColumnType, engine: Engine) -> &'static str {
        match (engine, expected_family(ty, engine)) {
            (Engine::Sqlite, "uuid") => "uuid_text",
            (Engine::Sqlite, "timestamptz") => "timestamp_with_timezone_text",
            (Engine::Sqlite, "jsonb") => "jsonb_text",
            (Engine::Sqlite, "date") => "date_text",
            (Engine::Sqlite, "time") => "time_text",
            (Engine::Postgres, "double") => "float8",
            (Engine::Postgres, "boolean") => "bool",
            (_, family) => family,
        }
    }

    #[test]
    fn detects_every_kind_of_disagreement() {
        let entities = catalog::tables();
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let good = matching(engine);
            assert_eq!(drift(&entities, &good, engine), Vec::<String>::new());

            let mut missing = good.clone();
            missing
                .get_mut("appointments")
                .unwrap()
                .retain(|c| c.name != "notes");
            assert_eq!(
                drift(&entities, &missing, engine),
                ["appointments.notes: in the entity, missing from the database"]
            );

            let mut retyped = good.clone();
            retyped
                .get_mut("reviews")
                .unwrap()
                .iter_mut()
                .find(|c| c.name == "rating")
                .unwrap()
                .db_type = "text".into();
            let found = drift(&entities, &retyped, engine);
            assert!(
                found.len() == 1 && found[0].starts_with("reviews.rating: the entity says"),
                "{found:?}"
            );

            let mut nullability = good.clone();
            nullability
                .get_mut("users")
                .unwrap()
                .iter_mut()
                .find(|c| c.name == "email")
                .unwrap()
                .nullable = true;
            assert_eq!(
                drift(&entities, &nullability, engine),
                ["users.email: NOT NULL in the entity, NULL in the database"]
            );

            let mut extra = good.clone();
            extra.get_mut("users").unwrap().push(DbColumn {
                name: "nickname".into(),
                db_type: "text".into(),
                nullable: true,
            });
            extra.insert("leftovers".into(), Vec::new());
            assert_eq!(
                drift(&entities, &extra, engine),
                [
                    "users.nickname: in the database, missing from the entity",
                    "leftovers: a table in the database that no entity describes"
                ]
            );

            let mut dropped = good.clone();
            dropped.remove("idempotency_keys");
            assert_eq!(
                drift(&entities, &dropped, engine),
                ["idempotency_keys: the entity exists but the table does not"]
            );
        }
    }

    #[test]
    fn integer_widths_matter_on_postgres_only() {
        assert_eq!(
            db_family("int4", Engine::Postgres),
            expected_family(&ColumnType::Integer, Engine::Postgres)
        );
        assert_ne!(
            db_family("int4", Engine::Postgres),
            expected_family(&ColumnType::BigInteger, Engine::Postgres)
        );
        assert_eq!(
            db_family("integer", Engine::Sqlite),
            expected_family(&ColumnType::BigInteger, Engine::Sqlite)
        );
    }
}
