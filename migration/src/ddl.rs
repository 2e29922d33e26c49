//! DDL helpers shared by every migration, so that all tables follow one set of rules:
//!
//! - names follow the convention `pk_<table>`, `fk_<table>_<column>_<referred_table>`,
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
            .primary_key(Index::create().name(format!("pk_{name}")).col("id"));
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
                .name(format!("fk_{}_{}_{}", self.name, column, referred))
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
        self.col(timestamp("created_at", backend))
            .col(timestamp("updated_at", backend))
    }

    /// A named CHECK (`ck_<table>_<name>`).
    pub fn check(mut self, name: &str, expr: Expr) -> Self {
        self.stmt
            .check((format!("ck_{}_{}", self.name, name), expr));
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
            .name(format!("uq_{}_{}", self.name, columns.join("_")))
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
            .name(format!("ix_{}_{}", self.name, columns.join("_")))
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

/// A required instant column defaulting to "now" in the engine's storage form.
pub fn timestamp(name: &'static str, backend: DbBackend) -> ColumnDef {
    let mut def = ColumnDef::new(name);
    def.timestamp_with_time_zone()
        .not_null()
        .default(now_default(backend));
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
