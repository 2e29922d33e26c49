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

use sea_orm::{ColumnTrait, DeleteMany, EntityTrait, QueryFilter, Select, UpdateMany};
use uuid::Uuid;

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
