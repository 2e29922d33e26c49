//! The tenant scope: which organization a piece of work acts for.
//!
//! Every repository function over a tenant-owned table takes a [`TenantScope`] and
//! filters by it, so "forgot the tenant filter" is a compile error rather than a
//! code-review finding. A scope is created only by trusted code — the
//! authentication layer, from the signed-in user's organization, and operator
//! tooling — never from a request body or path.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, Select};
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
    fn find_in(scope: TenantScope) -> Select<Self> {
        Self::find().filter(Self::tenant_column().eq(scope.organization_id()))
    }
}
