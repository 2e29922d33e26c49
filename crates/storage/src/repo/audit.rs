//! The audit log: who did what to which record. Append-only — this module only
//! inserts and reads, and the table refuses `UPDATE` with a trigger
//! (`trg_audit_log_append_only`).
//!
//! `audit_log.organization_id` is nullable: a row either belongs to one
//! organization (an admin changed a role) or is **platform-wide** (a backup, a
//! restore, an operator action), with no organization. The two never mix:
//!
//! - tenant code uses [`AuditRepo::record`] and [`AuditRepo::list`], which take a
//!   [`TenantScope`]. `find_in(scope)` filters `organization_id = <scope>`, and SQL
//!   equality is never true for NULL, so a tenant never sees platform rows (nor, of
//!   course, another organization's);
//! - platform rows are written and read only by the explicitly named operator
//!   functions [`AuditRepo::record_platform`] and [`AuditRepo::list_platform`].

use agenda_entity::audit_log;
use sea_orm::ActiveValue::Set;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, QueryFilter,
    QueryOrder, QuerySelect, Select,
};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::resource::{Page, exists_in_tenant, page_size, time_id_cursor};
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for audit_log::Entity {
    /// Nullable: `organization_id = <scope>` excludes platform-wide (NULL) rows.
    fn tenant_column() -> audit_log::Column {
        audit_log::Column::OrganizationId
    }
}

/// Longest `action` / `entity_type`, in characters.
const MAX_NAME_CHARS: usize = 100;

/// One audit event to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// The user who acted; `None` for the system itself.
    pub actor_id: Option<Uuid>,
    /// Dotted verb, e.g. `user.role_change`, `backup.create`.
    pub action: String,
    /// The table or kind of object acted on.
    pub entity_type: String,
    pub entity_id: Option<Uuid>,
    /// What changed (before/after, parameters). Never secrets.
    pub details: Json,
    pub ip_address: Option<String>,
    pub request_id: Option<String>,
}

impl AuditEntry {
    /// An event by `actor_id` (`None`: the system or a platform operator) on one
    /// record, without request details.
    pub fn new(
        actor_id: Option<Uuid>,
        action: impl Into<String>,
        entity_type: impl Into<String>,
        entity_id: Option<Uuid>,
        details: Json,
    ) -> Self {
        AuditEntry {
            actor_id,
            action: action.into(),
            entity_type: entity_type.into(),
            entity_id,
            details,
            ip_address: None,
            request_id: None,
        }
    }
}

/// A page of the log, newest first: optional equality filters, page size (default
/// [`DEFAULT_PAGE_SIZE`](super::resource::DEFAULT_PAGE_SIZE), at most
/// [`MAX_PAGE_SIZE`](super::resource::MAX_PAGE_SIZE)) and the previous page's `next`.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub actor_id: Option<Uuid>,
    pub entity_type: Option<String>,
    pub entity_id: Option<Uuid>,
    pub action: Option<String>,
    pub limit: Option<u64>,
    pub after: Option<String>,
}

pub struct AuditRepo;

impl AuditRepo {
    /// Appends an event of this organization. The actor, when given, must be a user
    /// of this organization.
    pub async fn record(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        entry: AuditEntry,
    ) -> Result<audit_log::Model, StorageError> {
        if let Some(actor) = entry.actor_id
            && !exists_in_tenant(db, scope, "users", actor).await?
        {
            return Err(StorageError::InvalidReference {
                constraint: Some("fk_audit_log_actor_id_users".into()),
            });
        }
        insert(db, Some(scope.organization_id()), entry).await
    }

    /// Operator: appends a **platform-wide** event (no organization): backups,
    /// restores, migrations, tenant creation and deletion. The actor may be any user
    /// (an operator account) or none.
    pub async fn record_platform(
        db: &impl ConnectionTrait,
        entry: AuditEntry,
    ) -> Result<audit_log::Model, StorageError> {
        insert(db, None, entry).await
    }

    /// This organization's events, newest first. Platform-wide events and other
    /// organizations' are never included.
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        query: &AuditQuery,
    ) -> Result<Page<audit_log::Model>, StorageError> {
        page(db, audit_log::Entity::find_in(scope), query).await
    }

    /// Operator: the platform-wide events (those without an organization), newest
    /// first. No tenant's events are included.
    #[allow(clippy::disallowed_methods)] // platform rows have no tenant; the filter keeps exactly those
    pub async fn list_platform(
        db: &impl ConnectionTrait,
        query: &AuditQuery,
    ) -> Result<Page<audit_log::Model>, StorageError> {
        let platform =
            audit_log::Entity::find().filter(audit_log::Column::OrganizationId.is_null());
        page(db, platform, query).await
    }
}

async fn insert(
    db: &impl ConnectionTrait,
    organization_id: Option<Uuid>,
    entry: AuditEntry,
) -> Result<audit_log::Model, StorageError> {
    let name = |field: &'static str, value: &str| {
        let chars = value.trim().chars().count();
        if chars == 0 || chars > MAX_NAME_CHARS {
            Err(StorageError::Validation {
                field,
                message: format!("must have 1 to {MAX_NAME_CHARS} characters"),
            })
        } else {
            Ok(value.trim().to_owned())
        }
    };
    let row = audit_log::ActiveModel {
        organization_id: Set(organization_id),
        actor_id: Set(entry.actor_id),
        action: Set(name("action", &entry.action)?),
        entity_type: Set(name("entity_type", &entry.entity_type)?),
        entity_id: Set(entry.entity_id),
        details: Set(entry.details),
        ip_address: Set(entry.ip_address),
        request_id: Set(entry.request_id),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// Newest first by `(created_at, id)` — served by `ix_audit_log_organization_id_created_at`
/// — with the cursor `<created_at>/<id>` of the last row.
async fn page(
    db: &impl ConnectionTrait,
    base: Select<audit_log::Entity>,
    query: &AuditQuery,
) -> Result<Page<audit_log::Model>, StorageError> {
    use audit_log::Column as C;
    let limit = page_size(query.limit);
    let mut select = base;
    if let Some(actor) = query.actor_id {
        select = select.filter(C::ActorId.eq(actor));
    }
    if let Some(entity_type) = &query.entity_type {
        select = select.filter(C::EntityType.eq(entity_type.as_str()));
    }
    if let Some(entity_id) = query.entity_id {
        select = select.filter(C::EntityId.eq(entity_id));
    }
    if let Some(action) = &query.action {
        select = select.filter(C::Action.eq(action.as_str()));
    }
    if let Some(cursor) = &query.after {
        let (at, id) = time_id_cursor(cursor)?;
        select = select.filter(
            Condition::any()
                .add(C::CreatedAt.lt(at))
                .add(Condition::all().add(C::CreatedAt.eq(at)).add(C::Id.lt(id))),
        );
    }
    let items = select
        .order_by(C::CreatedAt, Order::Desc)
        .order_by(C::Id, Order::Desc)
        .limit(limit + 1)
        .all(db)
        .await?;
    Ok(Page::from_probe(items, limit, |e| {
        format!("{}/{}", e.created_at.to_rfc3339(), e.id)
    }))
}
