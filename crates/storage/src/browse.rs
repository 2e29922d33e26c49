//! Reading any tenant table generically, for the web console's table browser.
//!
//! The tables and their columns come from the entities ([`agenda_entity::catalog`]),
//! so a new entity is browsable without new code, and table and column names in the
//! SQL are only ever names from that list, never request text. Every value is read as
//! text by the database itself (`CAST(… AS TEXT)`); on SQLite, where UUIDs are 16-byte
//! blobs, UUID columns are read as hex and shown in their usual hyphenated form.
//! Secret columns ([`is_masked`]) are never selected: the query only says whether
//! they hold a value.
//!
//! Confinement: every query names the tenant (`organization_id = <scope>`, or the
//! organization's own row for `organizations`) and runs in the caller's tenant
//! transaction, so on PostgreSQL row-level security confines it as well.

use agenda_entity::catalog::{ColumnInfo, TableInfo};
use sea_orm::sea_query::ColumnType;
use sea_orm::{ConnectionTrait, Statement, Value};
use uuid::Uuid;

use crate::db::Engine;
use crate::error::StorageError;
use crate::tenant::TenantScope;

/// Rows per page of the browser.
pub const PAGE_SIZE: u64 = 50;

/// Columns whose values are never shown, by name anywhere...
const MASKED_NAMES: &[&str] = &[
    "password_hash",
    "token_hash",
    "secret_ciphertext",
    "secret_ref",
    "processor_token",
    "pix_key",
];

/// ...and by table: idempotency keys replay stored responses, and e-mail bodies
/// carry sign-in and reset links.
const MASKED_COLUMNS: &[(&str, &str)] = &[
    ("idempotency_keys", "key"),
    ("idempotency_keys", "response_body"),
    ("outbox_messages", "body_text"),
    ("outbox_messages", "body_html"),
];

/// Whether `table.column` holds a secret the console never shows.
pub fn is_masked(table: &str, column: &str) -> bool {
    MASKED_NAMES.contains(&column)
        || column.contains("password")
        || column.ends_with("_token")
        || MASKED_COLUMNS.contains(&(table, column))
}

/// The tables an organization's admin can browse: its own `organizations` row and
/// every table keyed by `organization_id`.
pub fn tenant_tables() -> Vec<TableInfo> {
    agenda_entity::catalog::tables()
        .into_iter()
        .filter(|t| t.name == ORGANIZATIONS || t.columns.iter().any(|c| c.name == TENANT_COLUMN))
        .collect()
}

/// One of [`tenant_tables`] by name.
pub fn tenant_table(name: &str) -> Option<TableInfo> {
    tenant_tables().into_iter().find(|t| t.name == name)
}

const ORGANIZATIONS: &str = "organizations";
const TENANT_COLUMN: &str = "organization_id";

/// How a filter compares a column with the given text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// The column's text equals the value (UUIDs in any case, with or without hyphens).
    Equals,
    /// The column's text contains the value, ignoring ASCII case.
    Contains,
}

/// A filter on one column.
#[derive(Debug, Clone)]
pub struct Filter {
    pub column: String,
    pub matching: Match,
    pub value: String,
}

/// Why a browse request cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BrowseError {
    #[error("no column `{0}` in this table")]
    UnknownColumn(String),
    #[error("column `{0}` holds secrets and cannot be filtered")]
    MaskedColumn(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One shown value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Cell {
    Null,
    Masked,
    Text(String),
}

/// A page of rows.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows matching the filter in all pages.
    pub total: u64,
}

/// Page `page` (from 0) of `table`'s rows of the tenant, newest first, with `filter`.
pub async fn page<C: ConnectionTrait>(
    conn: &C,
    scope: TenantScope,
    table: &TableInfo,
    filter: Option<&Filter>,
    page: u64,
) -> Result<Page, BrowseError> {
    let engine = Engine::of(conn.get_database_backend());
    let mut values: Vec<Value> = Vec::new();
    let placeholder = |values: &mut Vec<Value>, value: Value| {
        values.push(value);
        match engine {
            Engine::Postgres => format!("${}", values.len()),
            Engine::Sqlite => "?".to_owned(),
        }
    };
    let tenant_column = if table.name == ORGANIZATIONS {
        "id"
    } else {
        TENANT_COLUMN
    };
    let mut condition = format!(
        "{} = {}",
        quoted(tenant_column),
        placeholder(&mut values, scope.organization_id().into())
    );
    if let Some(filter) = filter {
        let column = table
            .columns
            .iter()
            .find(|c| c.name == filter.column)
            .ok_or_else(|| BrowseError::UnknownColumn(filter.column.clone()))?;
        if is_masked(table.name, &column.name) {
            return Err(BrowseError::MaskedColumn(column.name.clone()));
        }
        let is_uuid = matches!(column.column_type, ColumnType::Uuid);
        let text = as_text(engine, column);
        let clause = match filter.matching {
            Match::Equals if is_uuid => {
                // Both engines' text of a UUID column, whatever form was typed.
                let typed = filter.value.trim().to_ascii_lowercase();
                let normalized = match (engine, Uuid::parse_str(&typed)) {
                    (Engine::Sqlite, Ok(id)) => id.simple().to_string(),
                    (Engine::Postgres, Ok(id)) => id.hyphenated().to_string(),
                    (_, Err(_)) => typed,
                };
                format!("{text} = {}", placeholder(&mut values, normalized.into()))
            }
            Match::Equals => format!(
                "{text} = {}",
                placeholder(&mut values, filter.value.clone().into())
            ),
            Match::Contains => format!(
                "LOWER({text}) LIKE {} ESCAPE '\\'",
                placeholder(&mut values, like_pattern(&filter.value).into())
            ),
        };
        condition = format!("{condition} AND {clause}");
    }
    let from = format!("FROM {} WHERE {condition}", quoted(table.name));
    let backend = conn.get_database_backend();
    let count = conn
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!("SELECT COUNT(*) {from}"),
            values.clone(),
        ))
        .await
        .map_err(StorageError::from)?;
    let total: i64 = match count {
        Some(row) => row.try_get_by_index(0).map_err(StorageError::from)?,
        None => 0,
    };
    let select: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            if is_masked(table.name, &c.name) {
                format!(
                    "CASE WHEN {} IS NULL THEN NULL ELSE '' END",
                    quoted(&c.name)
                )
            } else {
                as_text(engine, c)
            }
        })
        .collect();
    // UUIDv7 ids are time-ordered: newest first. `id` is the unique key, so the
    // pages are stable.
    let order = if table.columns.iter().any(|c| c.name == "id") {
        "ORDER BY id DESC"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {} {from} {order} LIMIT {PAGE_SIZE} OFFSET {}",
        select.join(", "),
        page.saturating_mul(PAGE_SIZE)
    );
    let found = conn
        .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
        .await
        .map_err(StorageError::from)?;
    let mut rows = Vec::with_capacity(found.len());
    for row in found {
        let mut cells = Vec::with_capacity(table.columns.len());
        for (i, column) in table.columns.iter().enumerate() {
            let text: Option<String> = row.try_get_by_index(i).map_err(StorageError::from)?;
            cells.push(match text {
                None => Cell::Null,
                Some(_) if is_masked(table.name, &column.name) => Cell::Masked,
                Some(text) => Cell::Text(shown(engine, column, text)),
            });
        }
        rows.push(cells);
    }
    Ok(Page {
        columns: table.columns.iter().map(|c| c.name.clone()).collect(),
        rows,
        total: u64::try_from(total).unwrap_or(0),
    })
}

/// `"name"`; names come from the entity catalogue, never from a request.
fn quoted(name: &str) -> String {
    format!("\"{name}\"")
}

/// The SQL that reads `column` as text.
fn as_text(engine: Engine, column: &ColumnInfo) -> String {
    let name = quoted(&column.name);
    match (engine, &column.column_type) {
        (Engine::Sqlite, ColumnType::Uuid) => format!("LOWER(HEX({name}))"),
        _ => format!("CAST({name} AS TEXT)"),
    }
}

/// The text as a person reads it: UUIDs hyphenated, booleans as words.
fn shown(engine: Engine, column: &ColumnInfo, text: String) -> String {
    match (engine, &column.column_type) {
        (Engine::Sqlite, ColumnType::Uuid) => Uuid::parse_str(&text)
            .map(|id| id.hyphenated().to_string())
            .unwrap_or(text),
        (_, ColumnType::Boolean) => match text.as_str() {
            "1" | "t" | "true" => "true".to_owned(),
            "0" | "f" | "false" => "false".to_owned(),
            _ => text,
        },
        _ => text,
    }
}

/// `%value%` in lower case, with `%`, `_` and `\` taken literally.
fn like_pattern(value: &str) -> String {
    let mut pattern = String::from("%");
    for ch in value.to_lowercase().chars() {
        if matches!(ch, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(ch);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_and_ordinary_columns_are_not() {
        assert!(is_masked("users", "password_hash"));
        assert!(is_masked("user_sessions", "token_hash"));
        assert!(is_masked("outbox_messages", "body_html"));
        assert!(is_masked("idempotency_keys", "key"));
        assert!(!is_masked("system_settings", "key"));
        assert!(!is_masked("users", "email"));
    }

    #[test]
    fn every_tenant_table_but_organizations_is_keyed_by_organization() {
        let tables = tenant_tables();
        assert!(tables.iter().any(|t| t.name == "organizations"));
        assert!(tables.iter().any(|t| t.name == "outbox_messages"));
        assert!(tables.len() >= 30, "{}", tables.len());
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("A_b%"), "%a\\_b\\%%");
    }
}
