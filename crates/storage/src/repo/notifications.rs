//! In-app notifications of one user: create, list (newest first), mark read, count.
//!
//! Every read and write is limited to the tenant **and** the user: a notification of
//! another user of the same organization is "not found" like one of another
//! organization. `is_read` and `read_at` always change together, in one statement
//! (`ck_notifications_read_at_when_read` would refuse anything else).

use agenda_entity::enums::NotificationKind;
use agenda_entity::notification;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, Order, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::resource::{Page, exists_in_tenant, id_cursor, page_size};
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for notification::Entity {
    fn tenant_column() -> notification::Column {
        notification::Column::OrganizationId
    }
}

/// Longest title, in characters (the body is text of any length).
const MAX_TITLE_CHARS: usize = 200;

pub struct NotificationRepo;

impl NotificationRepo {
    /// Sends a notification to `user_id`. The user and the appointment, when given,
    /// must belong to this organization; otherwise it fails like a reference to a row
    /// that does not exist ([`StorageError::InvalidReference`]).
    pub async fn create(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        kind: NotificationKind,
        title: &str,
        body: &str,
        appointment_id: Option<Uuid>,
    ) -> Result<notification::Model, StorageError> {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(StorageError::Validation {
                field: "title",
                message: format!("must have 1 to {MAX_TITLE_CHARS} characters"),
            });
        }
        let references = [
            ("user_id", "users", Some(user_id)),
            ("appointment_id", "appointments", appointment_id),
        ];
        for (column, table, id) in references {
            let Some(id) = id else { continue };
            if !exists_in_tenant(db, scope, table, id).await? {
                return Err(StorageError::InvalidReference {
                    constraint: Some(format!("fk_notifications_{column}_{table}")),
                });
            }
        }
        let row = notification::ActiveModel {
            organization_id: Set(scope.organization_id()),
            user_id: Set(user_id),
            kind: Set(kind),
            title: Set(title.to_owned()),
            body: Set(body.to_owned()),
            appointment_id: Set(appointment_id),
            is_read: Set(false),
            read_at: Set(None),
            ..Default::default()
        };
        Ok(row.insert(db).await?)
    }

    /// The user's notifications, newest first, keyset-paginated by id (UUIDv7 keys
    /// are creation-ordered). `limit` defaults to
    /// [`DEFAULT_PAGE_SIZE`](super::resource::DEFAULT_PAGE_SIZE) and never
    /// exceeds [`MAX_PAGE_SIZE`](super::resource::MAX_PAGE_SIZE); `after` is the `next`
    /// cursor of the previous page.
    pub async fn list_for_user(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        unread_only: bool,
        limit: Option<u64>,
        after: Option<&str>,
    ) -> Result<Page<notification::Model>, StorageError> {
        use notification::Column as C;
        let limit = page_size(limit);
        let mut select = notification::Entity::find_in(scope).filter(C::UserId.eq(user_id));
        if unread_only {
            select = select.filter(C::IsRead.eq(false));
        }
        if let Some(cursor) = after {
            select = select.filter(C::Id.lt(id_cursor(cursor)?));
        }
        let items = select
            .order_by(C::Id, Order::Desc)
            .limit(limit + 1)
            .all(db)
            .await?;
        Ok(Page::from_probe(items, limit, |n| n.id.to_string()))
    }

    /// Marks one of the user's notifications read and returns it. Marking a read
    /// notification again keeps its first `read_at`. Another user's (or
    /// organization's) notification is "not found".
    pub async fn mark_read(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<notification::Model, StorageError> {
        use notification::Column as C;
        notification::Entity::update_in(scope)
            .col_expr(C::IsRead, Expr::value(true))
            .col_expr(C::ReadAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::Id.eq(id))
            .filter(C::UserId.eq(user_id))
            .filter(C::IsRead.eq(false))
            .exec(db)
            .await?;
        notification::Entity::find_in(scope)
            .filter(C::Id.eq(id))
            .filter(C::UserId.eq(user_id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("notification"))
    }

    /// Marks all of the user's unread notifications read, in one `UPDATE`. Returns how
    /// many changed.
    pub async fn mark_all_read(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        use notification::Column as C;
        let result = notification::Entity::update_in(scope)
            .col_expr(C::IsRead, Expr::value(true))
            .col_expr(C::ReadAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::UserId.eq(user_id))
            .filter(C::IsRead.eq(false))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// How many of the user's notifications are unread (served by
    /// `ix_notifications_user_id_is_read_created_at`).
    pub async fn unread_count(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
    ) -> Result<u64, StorageError> {
        use notification::Column as C;
        Ok(notification::Entity::find_in(scope)
            .filter(C::UserId.eq(user_id))
            .filter(C::IsRead.eq(false))
            .count(db)
            .await?)
    }
}
