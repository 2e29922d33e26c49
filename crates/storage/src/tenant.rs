//! The tenant scope: which organization a piece of work acts for.
//!
//! Every repository function over a tenant-owned table takes a [`TenantScope`] and
//! starts its query from [`TenantOwned::find_in`], `delete_in` or `update_in`. The
//! unscoped sea-orm entry points (`Entity::find`, `find_by_id`, `delete_many`,
//! `update_many`, `delete_by_id`) are disallowed workspace-wide in `clippy.toml`, and
//! CI runs clippy with `-D warnings`: "forgot the tenant filter" fails the build
//! rather than waiting for code review. Code that legitimately works across tenants
//! (the organizations table, tests) opts out explicitly with
//! `#[allow(clippy::disallowed_methods)]`. A scope is created only by trusted code — the
//! authentication layer, from the signed-in user's organization, and operator
//! tooling — never from a request body or path.
//!
//! On PostgreSQL the database enforces the same boundary underneath (row-level
//! security, migration `m20261123_000011`): a transaction sees and writes only the
//! rows of the tenant it has entered with [`enter`] — [`crate::Db::begin_in`] and
//! [`crate::Db::read_in`] do that for you. A query that forgot its scope therefore
//! still sees one tenant, and a transaction that entered none sees no tenant rows.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DeleteMany, EntityTrait,
    QueryFilter, Select, Statement, UpdateMany,
};
use uuid::Uuid;

use crate::error::StorageError;

/// The setting row-level security policies read (`agenda_current_tenant()`).
pub const TENANT_SETTING: &str = "app.tenant";

/// Makes `scope` the tenant of this transaction, for PostgreSQL's row-level security:
/// `set_config('app.tenant', <id>, true)`. The `true` makes it transaction-local: it
/// ends with the commit or rollback, so it can never leak to the next user of the
/// pooled connection. Entering another tenant later in the same transaction replaces
/// it. Nothing to do on SQLite, which has no row-level security.
pub async fn enter(tx: &DatabaseTransaction, scope: TenantScope) -> Result<(), StorageError> {
    set_tenant(tx, "$2", scope.organization_id().to_string()).await
}

/// `set_config('app.tenant', '<id>', true)` as SQL text, for the PgBouncer prelude
/// that enters the tenant in the same simple-query message (see `crate::db`). The id
/// is a UUID formatted here (hex digits and hyphens), never text from a request.
pub(crate) fn set_tenant_sql(scope: TenantScope) -> String {
    format!(
        "set_config('{TENANT_SETTING}', '{}', true)",
        scope.organization_id().hyphenated()
    )
}

/// Enters the tenant that `function` (one of migration 11's `SECURITY DEFINER`
/// lookups) finds for a token `digest`, in one statement. An unknown digest enters
/// no tenant (`''`), so the lookups that follow find nothing. Nothing on SQLite.
pub(crate) async fn enter_tenant_of(
    tx: &DatabaseTransaction,
    function: &'static str,
    digest: &str,
) -> Result<(), StorageError> {
    let value = format!("coalesce({function}($2)::text, '')");
    set_tenant(tx, &value, digest.to_owned()).await
}

/// PostgreSQL: `SELECT set_config('app.tenant', <value_sql>, true)`, where
/// `value_sql` reads the bound `$2` = `value`. Nothing on SQLite.
async fn set_tenant(
    tx: &DatabaseTransaction,
    value_sql: &str,
    value: String,
) -> Result<(), StorageError> {
    if tx.get_database_backend() == DbBackend::Postgres {
        tx.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT set_config($1, {value_sql}, true)"),
            [TENANT_SETTING.into(), value.into()],
        ))
        .await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantScope {
    organization_id: Uuid,
}

impl TenantScope {
    pub fn new(organization_id: Uuid) -> Self {
        TenantScope { organization_id }
    }

    pub fn organization_id(&self) -> Uuid {
        self.organization_id
    }
}

/// A table whose rows belong to one organization through `organization_id`.
pub trait TenantOwned: EntityTrait {
    /// The `organization_id` column.
    fn tenant_column() -> Self::Column;

    /// `SELECT … WHERE organization_id = <scope>`: the only way repositories start a
    /// query on a tenant-owned table.
    #[allow(clippy::disallowed_methods)] // the one place the unscoped entry point is wrapped
    fn find_in(scope: TenantScope) -> Select<Self> {
        Self::find().filter(Self::tenant_column().eq(scope.organization_id()))
    }

    /// `DELETE … WHERE organization_id = <scope>` (add the row filter).
    #[allow(clippy::disallowed_methods)]
    fn delete_in(scope: TenantScope) -> DeleteMany<Self> {
        Self::delete_many().filter(Self::tenant_column().eq(scope.organization_id()))
    }

    /// `UPDATE … WHERE organization_id = <scope>` (add the row filter and the values).
    #[allow(clippy::disallowed_methods)]
    fn update_in(scope: TenantScope) -> UpdateMany<Self> {
        Self::update_many().filter(Self::tenant_column().eq(scope.organization_id()))
    }
}

/// Whether this connection's role reads every organization's rows: true on SQLite,
/// and on PostgreSQL for a superuser, a `BYPASSRLS` role, the schema owner (which
/// row-level security's owner policy lets through), or a schema without row-level
/// security. False for the application role, which row-level security confines to
/// the tenant its transaction entered. Whole-database operations — backup, restore,
/// row counts — check it so that they refuse to run half-blind instead of silently
/// seeing empty tables.
pub async fn sees_every_tenant(db: &impl ConnectionTrait) -> Result<bool, StorageError> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(true);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT r.rolsuper OR r.rolbypassrls OR c.oid IS NULL OR NOT c.relrowsecurity \
                    OR EXISTS (SELECT 1 FROM pg_policy p \
                               WHERE p.polrelid = c.oid AND p.polname = 'rls_appointments_owner' \
                                 AND EXISTS (SELECT 1 FROM unnest(p.polroles) AS member(oid) \
                                             WHERE pg_has_role(r.oid, member.oid, 'USAGE'))) \
                    AS sees_all \
             FROM pg_roles r \
             LEFT JOIN pg_class c ON c.oid = to_regclass('appointments') \
             WHERE r.rolname = current_user",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<bool>("", "sees_all")?,
        None => false,
    })
}
