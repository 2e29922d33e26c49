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

    /// A vocabulary CHECK over a fixed list of values: for a vocabulary a later
    /// migration widens, so that this migration keeps building what it built first.
    pub fn vocabulary_of(self, column: &'static str, values: &[&str]) -> Self {
        self.check(column, Expr::col(column).is_in(values.iter().copied()))
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

/// Rebuilds a SQLite table to change its CHECK constraints, which SQLite cannot
/// alter in place: each `(name, condition)` replaces the named CHECK's condition (or
/// adds the CHECK), and `(name, None)` drops it. Everything else of the table is kept:
/// columns, rows, keys, foreign keys, indexes and triggers.
///
/// The procedure is SQLite's own ("Making Other Kinds Of Table Schema Changes" in
/// its `ALTER TABLE` documentation): on one connection, foreign keys off (dropping
/// the old table would otherwise delete or block its children's rows), then in one
/// transaction: a new table from the edited `CREATE TABLE`, rows copied, old table
/// dropped, new one renamed, indexes and triggers recreated from their stored SQL,
/// and `PRAGMA foreign_key_check` must find nothing. Foreign keys are turned back on
/// before the connection returns to the pool; a connection that cannot be restored
/// is taken out of the pool instead.
///
/// It needs a connection of its own (foreign keys cannot be switched inside a
/// transaction), so it refuses to run inside one.
pub async fn sqlite_rebuild(
    manager: &SchemaManager<'_>,
    table: &str,
    checks: &[(&str, Option<&str>)],
) -> Result<(), DbErr> {
    use sea_orm::DatabaseExecutor;
    use sqlx::Connection as _;
    let DatabaseExecutor::Connection(db) = manager.get_connection() else {
        return Err(DbErr::Migration(format!(
            "rebuilding {table} on SQLite needs a connection of its own; \
             run this migration outside a transaction"
        )));
    };
    let mut conn = db
        .get_sqlite_connection_pool()
        .acquire()
        .await
        .map_err(|e| DbErr::Migration(format!("rebuilding {table}: {e}")))?;
    let result = rebuild_on(&mut conn, table, checks).await;
    if result.is_err() {
        let _ = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await;
    }
    let restored = sqlx::raw_sql("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await
        .is_ok();
    if !restored {
        // Never hand a connection without foreign keys to the application.
        let _ = conn.detach().close().await;
    }
    result
}

async fn rebuild_on(
    conn: &mut sqlx::SqliteConnection,
    table: &str,
    checks: &[(&str, Option<&str>)],
) -> Result<(), DbErr> {
    let fail = |e: sqlx::Error| DbErr::Migration(format!("rebuilding {table}: {e}"));
    sqlx::raw_sql("PRAGMA foreign_keys = OFF")
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    let create: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(table)
            .fetch_one(&mut *conn)
            .await
            .map_err(fail)?;
    // Indexes and triggers with their SQL (automatic indexes have none: they come
    // back with the table's own constraints).
    let dependents: Vec<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') \
         AND sql IS NOT NULL ORDER BY type, name",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await
    .map_err(fail)?;
    let scratch = format!("{table}_rebuild");
    let head = format!("CREATE TABLE \"{table}\"");
    let body = create.strip_prefix(&head).ok_or_else(|| {
        DbErr::Migration(format!(
            "rebuilding {table}: unexpected definition {create}"
        ))
    })?;
    let mut edited = format!("CREATE TABLE \"{scratch}\"{body}");
    for (name, condition) in checks {
        edited = edit_check(&edited, name, *condition)
            .map_err(|e| DbErr::Migration(format!("rebuilding {table}: {e}")))?;
    }
    let mut statements = vec![
        edited,
        format!("INSERT INTO \"{scratch}\" SELECT * FROM \"{table}\""),
        format!("DROP TABLE \"{table}\""),
        format!("ALTER TABLE \"{scratch}\" RENAME TO \"{table}\""),
    ];
    statements.extend(dependents);
    // The statements are built from the stored schema and constants, not from input.
    for statement in &statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.as_str()))
            .execute(&mut *conn)
            .await
            .map_err(fail)?;
    }
    let broken: Vec<String> = sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(fail)?;
    if !broken.is_empty() {
        return Err(DbErr::Migration(format!(
            "rebuilding {table}: foreign keys broken in {broken:?}; nothing was changed"
        )));
    }
    sqlx::raw_sql("COMMIT")
        .execute(&mut *conn)
        .await
        .map_err(fail)?;
    Ok(())
}

/// `create` (a SQLite `CREATE TABLE` as stored) with the CHECK named `name` given the
/// condition, added when missing, or dropped for `None`.
fn edit_check(create: &str, name: &str, condition: Option<&str>) -> Result<String, String> {
    let marker = format!("CONSTRAINT \"{name}\" CHECK (");
    let Some(start) = create.find(&marker) else {
        let condition = condition.ok_or_else(|| format!("no CHECK named {name}"))?;
        let end = create
            .rfind(')')
            .ok_or_else(|| format!("no closing parenthesis in {create}"))?;
        let before = create[..end].trim_end();
        return Ok(format!(
            "{before}, CONSTRAINT \"{name}\" CHECK ({condition}) {}",
            &create[end..]
        ));
    };
    // The condition's closing parenthesis: the first one that balances the opening.
    let open = start + marker.len() - 1;
    let mut depth = 0usize;
    let mut close = None;
    for (i, c) in create[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            _ => {}
        }
    }
    let close = close.ok_or_else(|| format!("unbalanced CHECK {name}"))?;
    Ok(match condition {
        Some(condition) => format!(
            "{}CONSTRAINT \"{name}\" CHECK ({condition}){}",
            &create[..start],
            &create[close + 1..]
        ),
        None => {
            // The clause and the comma that separates it from the previous one.
            let before = create[..start].trim_end();
            let before = before.strip_suffix(',').unwrap_or(before);
            format!("{before}{}", &create[close + 1..])
        }
    })
}

#[cfg(test)]
mod tests {
    use super::edit_check;

    const CREATE: &str = "CREATE TABLE \"t\" ( \"a\" integer NOT NULL, \
        CONSTRAINT \"ck_t_a\" CHECK (\"a\" IN ('x', 'y')), \
        CONSTRAINT \"ck_t_b\" CHECK ((a > 0) AND (a < 9)) )";

    #[test]
    fn edits_replace_drop_and_add_one_named_check() {
        assert_eq!(
            edit_check(CREATE, "ck_t_a", Some("a IN ('x', 'y', 'z')")).unwrap(),
            "CREATE TABLE \"t\" ( \"a\" integer NOT NULL, \
             CONSTRAINT \"ck_t_a\" CHECK (a IN ('x', 'y', 'z')), \
             CONSTRAINT \"ck_t_b\" CHECK ((a > 0) AND (a < 9)) )"
        );
        assert_eq!(
            edit_check(CREATE, "ck_t_b", None).unwrap(),
            "CREATE TABLE \"t\" ( \"a\" integer NOT NULL, \
             CONSTRAINT \"ck_t_a\" CHECK (\"a\" IN ('x', 'y')) )"
        );
        assert_eq!(
            edit_check(
                &edit_check(CREATE, "ck_t_b", None).unwrap(),
                "ck_t_b",
                Some("a < 9")
            )
            .unwrap(),
            "CREATE TABLE \"t\" ( \"a\" integer NOT NULL, \
             CONSTRAINT \"ck_t_a\" CHECK (\"a\" IN ('x', 'y')), CONSTRAINT \"ck_t_b\" CHECK (a < 9) )"
        );
        assert!(edit_check(CREATE, "ck_t_c", None).is_err());
    }
}
