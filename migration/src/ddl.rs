//! DDL helpers shared by every migration, so that all tables follow one set of rules:
//!
//! - names follow the convention `pk_<table>`, `fk_<table>_<column>_<referred_table>`
//!   (`fk_<table>_<column>` when that would exceed PostgreSQL's 63-byte identifiers),
//!   `uq_<table>_<columns>`, `ck_<table>_<name>`, `ix_<table>_<columns>`;
//! - keys are UUIDs assigned by the application (UUIDv7);
//! - every foreign-key column is covered by an index whose first column it is;
//! - status vocabularies get a CHECK built from the Rust enum, the one source of truth;
//! - instants are `timestamptz` on PostgreSQL; on SQLite they are RFC 3339 text in UTC
//!   (the form the driver writes), and the column defaults produce that same form so
//!   that text comparison orders instants correctly.

use sea_orm::{ActiveEnum, DbBackend, Iterable};
use sea_orm_migration::prelude::*;

/// A table under construction with its constraints and indexes.
pub struct NewTable {
    name: &'static str,
    stmt: TableCreateStatement,
    indexes: Vec<(Vec<&'static str>, IndexCreateStatement)>,
    fk_columns: Vec<&'static str>,
}

impl NewTable {
    /// A table with a UUID primary key `id` (`pk_<table>`).
    pub fn new(name: &'static str) -> Self {
        let mut stmt = Table::create();
        stmt.table(name)
            .col(ColumnDef::new("id").uuid().not_null())
            .primary_key(
                Index::create()
                    .name(identifier(format!("pk_{name}")))
                    .col("id"),
            );
        NewTable {
            name,
            stmt,
            indexes: Vec::new(),
            fk_columns: Vec::new(),
        }
    }

    /// Adds `organization_id`, a required reference to the tenant. Deleting an
    /// organization deletes everything it owns.
    pub fn tenant(self) -> Self {
        self.reference(
            "organization_id",
            "organizations",
            ForeignKeyAction::Cascade,
            false,
        )
    }

    /// Adds a column.
    pub fn col(mut self, mut column: ColumnDef) -> Self {
        self.stmt.col(&mut column);
        self
    }

    /// Adds a UUID column referencing `referred.id` with an explicit ON DELETE policy,
    /// named `fk_<table>_<column>_<referred>`, and makes sure it is indexed.
    pub fn reference(
        mut self,
        column: &'static str,
        referred: &'static str,
        on_delete: ForeignKeyAction,
        nullable: bool,
    ) -> Self {
        let mut def = ColumnDef::new(column);
        def.uuid();
        if nullable {
            def.null();
        } else {
            def.not_null();
        }
        self.stmt.col(&mut def).foreign_key(
            ForeignKey::create()
                .name(foreign_key_name(self.name, column, referred))
                .from_col(column)
                .to(referred, "id")
                .on_delete(on_delete)
                .on_update(ForeignKeyAction::Cascade),
        );
        self.fk_columns.push(column);
        self
    }

    /// `created_at` and `updated_at`, required, defaulting to the current instant.
    pub fn timestamps(self, backend: DbBackend) -> Self {
        self.col(timestamp_now("created_at", backend))
            .col(timestamp_now("updated_at", backend))
    }

    /// A named CHECK (`ck_<table>_<name>`).
    pub fn check(mut self, name: &str, expr: Expr) -> Self {
        self.stmt
            .check((identifier(format!("ck_{}_{}", self.name, name)), expr));
        self
    }

    /// A CHECK that `column` holds one of the enum's stored values (`ck_<table>_<column>`).
    pub fn vocabulary<E: ActiveEnum<Value = String> + Iterable>(
        self,
        column: &'static str,
    ) -> Self {
        let values: Vec<String> = E::iter().map(|v| v.to_value()).collect();
        self.check(column, Expr::col(column).is_in(values))
    }

    /// A unique index over `columns` (`uq_<table>_<columns>`).
    pub fn unique(self, columns: &[&'static str]) -> Self {
        self.unique_where(columns, None)
    }

    /// A unique index over `columns` restricted to rows matching `condition`
    /// (a partial index; both engines support them).
    pub fn unique_where(mut self, columns: &[&'static str], condition: Option<Expr>) -> Self {
        let mut index = Index::create();
        index
            .name(identifier(format!(
                "uq_{}_{}",
                self.name,
                columns.join("_")
            )))
            .table(self.name)
            .unique();
        for column in columns {
            index.col(*column);
        }
        if let Some(condition) = condition {
            index.and_where(condition);
        }
        self.indexes.push((columns.to_vec(), index));
        self
    }

    /// A unique index named `uq_<table>_<suffix>`, for partial indexes whose name
    /// should say more than the column list (`uq_user_addresses_user_id_default`).
    pub fn unique_named(
        mut self,
        suffix: &str,
        columns: &[&'static str],
        condition: Option<Expr>,
    ) -> Self {
        let mut index = Index::create();
        index
            .name(identifier(format!("uq_{}_{}", self.name, suffix)))
            .table(self.name)
            .unique();
        for column in columns {
            index.col(*column);
        }
        if let Some(condition) = condition {
            index.and_where(condition);
        }
        self.indexes.push((columns.to_vec(), index));
        self
    }

    /// A plain index over `columns` (`ix_<table>_<columns>`).
    pub fn index(mut self, columns: &[&'static str]) -> Self {
        let mut index = Index::create();
        index
            .name(identifier(format!(
                "ix_{}_{}",
                self.name,
                columns.join("_")
            )))
            .table(self.name);
        for column in columns {
            index.col(*column);
        }
        self.indexes.push((columns.to_vec(), index));
        self
    }

    /// Creates the table, then its indexes. A foreign-key column that no declared index
    /// leads with gets `ix_<table>_<column>`.
    pub async fn create(mut self, manager: &SchemaManager<'_>) -> Result<(), DbErr> {
        for column in std::mem::take(&mut self.fk_columns) {
            if !self
                .indexes
                .iter()
                .any(|(cols, _)| cols.first() == Some(&column))
            {
                self = self.index(&[column]);
            }
        }
        manager.create_table(self.stmt).await?;
        for (_, index) in self.indexes {
            manager.create_index(index).await?;
        }
        Ok(())
    }
}

/// PostgreSQL silently truncates identifiers to 63 bytes, which would break the naming
/// convention (and could make two names collide); a longer name is a bug in the
/// migration, caught the first time it runs on any engine.
pub const MAX_IDENTIFIER_LEN: usize = 63;

/// `name`, checked against [`MAX_IDENTIFIER_LEN`].
pub fn identifier(name: String) -> String {
    assert!(
        name.len() <= MAX_IDENTIFIER_LEN,
        "identifier {name} is {} bytes, over PostgreSQL's limit of {MAX_IDENTIFIER_LEN}",
        name.len()
    );
    name
}

/// `fk_<table>_<column>_<referred_table>`, or `fk_<table>_<column>` when the full
/// form would exceed [`MAX_IDENTIFIER_LEN`] (the column already says what it refers to).
pub fn foreign_key_name(table: &str, column: &str, referred: &str) -> String {
    let full = format!("fk_{table}_{column}_{referred}");
    if full.len() <= MAX_IDENTIFIER_LEN {
        full
    } else {
        identifier(format!("fk_{table}_{column}"))
    }
}

/// A required instant column defaulting to "now" in the engine's storage form.
pub fn timestamp_now(name: &'static str, backend: DbBackend) -> ColumnDef {
    let mut def = timestamp(name);
    def.default(now_default(backend));
    def
}

// Column constructors: required (NOT NULL) unless wrapped in `nullable`.

fn required(name: &'static str, kind: impl FnOnce(&mut ColumnDef) -> &mut ColumnDef) -> ColumnDef {
    let mut def = ColumnDef::new(name);
    kind(&mut def).not_null();
    def
}

pub fn uuid(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::uuid)
}
pub fn string(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::string)
}
pub fn text(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::text)
}
pub fn boolean(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::boolean)
}
pub fn integer(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::integer)
}
/// Money (`*_cents`) and other 64-bit integers.
pub fn big_integer(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::big_integer)
}
pub fn double(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::double)
}
/// A calendar date (`DATE`).
pub fn date(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::date)
}
/// A local time of day (`TIME`), interpreted in a named time zone.
pub fn time(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::time)
}
/// An instant (`timestamptz`).
pub fn timestamp(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::timestamp_with_time_zone)
}
/// JSON (`jsonb` on PostgreSQL, text on SQLite).
pub fn json(name: &'static str) -> ColumnDef {
    required(name, ColumnDef::json_binary)
}

/// Makes a column NULL-able.
pub fn nullable(mut def: ColumnDef) -> ColumnDef {
    def.null();
    def
}

/// The current instant, in the same representation the application writes.
pub fn now_default(backend: DbBackend) -> Expr {
    match backend {
        DbBackend::Sqlite => Expr::cust("(strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))"),
        _ => Expr::current_timestamp(),
    }
}

/// Drops a table (its indexes and constraints go with it).
pub async fn drop_table(manager: &SchemaManager<'_>, name: &'static str) -> Result<(), DbErr> {
    manager
        .drop_table(Table::drop().table(name).to_owned())
        .await
}

/// Makes `table` append-only: any UPDATE is rejected by a trigger, on both engines.
/// (DELETE stays possible for the schema owner, so deleting an organization still
/// cascades; the application role is not granted DELETE on these tables.)
pub async fn append_only(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            conn.execute_unprepared(&format!(
                "CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION agenda_reject_update()"
            ))
            .await?;
        }
        _ => {
            conn.execute_unprepared(&format!(
                "CREATE TRIGGER trg_{table}_append_only BEFORE UPDATE ON {table} \
                 BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            ))
            .await?;
        }
    }
    Ok(())
}

/// The PostgreSQL trigger function behind [`append_only`].
pub async fn create_reject_update_function(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE OR REPLACE FUNCTION agenda_reject_update() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION '% is append-only', TG_TABLE_NAME \
                 USING ERRCODE = 'object_not_in_prerequisite_state'; \
                 END $$",
            )
            .await?;
    }
    Ok(())
}

/// Drops the function created by [`create_reject_update_function`].
pub async fn drop_reject_update_function(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if manager.get_database_backend() == DbBackend::Postgres {
        manager
            .get_connection()
            .execute_unprepared("DROP FUNCTION IF EXISTS agenda_reject_update()")
            .await?;
    }
    Ok(())
}

/// `column IN ('a', 'b', …)` over the enum's stored values: the body of a vocabulary
/// CHECK written as SQL text (for `ALTER TABLE … ADD COLUMN`, see [`add_column`]).
pub fn vocabulary_sql<E: ActiveEnum<Value = String> + Iterable>(column: &str) -> String {
    let values: Vec<String> = E::iter()
        .map(|v| format!("'{}'", v.to_value().replace('\'', "''")))
        .collect();
    format!("{column} IN ({})", values.join(", "))
}

/// Adds a required `varchar` column with a default to an existing table, with a
/// named CHECK (`ck_<table>_<column>`), on both engines. SQLite can add a CHECK only
/// as part of the column definition; PostgreSQL gets the same constraint by name.
pub async fn add_column(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
    default: &str,
    check: &str,
) -> Result<(), DbErr> {
    let name = identifier(format!("ck_{table}_{column}"));
    let default = default.replace('\'', "''");
    let sql = match manager.get_database_backend() {
        DbBackend::Postgres => format!(
            "ALTER TABLE {table} ADD COLUMN {column} varchar NOT NULL DEFAULT '{default}', \
             ADD CONSTRAINT \"{name}\" CHECK ({check})"
        ),
        _ => format!(
            "ALTER TABLE {table} ADD COLUMN {column} varchar NOT NULL DEFAULT '{default}' \
             CONSTRAINT \"{name}\" CHECK ({check})"
        ),
    };
    manager.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

/// Drops a column added by [`add_column`] (its CHECK goes with it).
pub async fn drop_column(
    manager: &SchemaManager<'_>,
    table: &str,
    column: &str,
) -> Result<(), DbErr> {
    manager
        .get_connection()
        .execute_unprepared(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
        .await?;
    Ok(())
}
