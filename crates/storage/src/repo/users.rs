//! Users of one organization. Every function takes the tenant scope.

use agenda_entity::user::{self, CreateUser, Entity as Users, UpdateUser, normalize_email};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for Users {
    fn tenant_column() -> user::Column {
        user::Column::OrganizationId
    }
}

pub struct UserRepo;

impl UserRepo {
    /// Inserts a user into the scope's organization. A taken email is reported by
    /// `uq_users_organization_id_email`.
    pub async fn create(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        input: CreateUser,
        password_hash: String,
    ) -> Result<user::Model, StorageError> {
        Ok(input
            .into_active_model(scope.organization_id(), password_hash)
            .insert(db)
            .await?)
    }

    /// The user `id` of this organization; another organization's user is "not found".
    pub async fn get(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<user::Model, StorageError> {
        Users::find_in(scope)
            .filter(user::Column::Id.eq(id))
            .one(db)
            .await?
            .ok_or(StorageError::not_found("user"))
    }

    pub async fn find_by_email(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        email: &str,
    ) -> Result<Option<user::Model>, StorageError> {
        Ok(Users::find_in(scope)
            .filter(user::Column::Email.eq(normalize_email(email)))
            .one(db)
            .await?)
    }

    /// Users in creation order (UUIDv7 keys are time-ordered), at most `limit`.
    pub async fn list(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        limit: u64,
    ) -> Result<Vec<user::Model>, StorageError> {
        Ok(Users::find_in(scope)
            .order_by_asc(user::Column::Id)
            .limit(limit)
            .all(db)
            .await?)
    }

    pub async fn count(db: &impl ConnectionTrait, scope: TenantScope) -> Result<u64, StorageError> {
        Ok(Users::find_in(scope).count(db).await?)
    }

    pub async fn update(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        input: UpdateUser,
    ) -> Result<user::Model, StorageError> {
        let mut model = Self::get(db, scope, id).await?.into_active_model();
        input.apply(&mut model);
        Ok(model.update(db).await?)
    }

    /// Deletes the user `id` of this organization.
    pub async fn delete(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<(), StorageError> {
        let result = Users::delete_in(scope)
            .filter(user::Column::Id.eq(id))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::not_found("user"));
        }
        Ok(())
    }

    /// Counts a failed sign-in of an account that is not locked; the failure that
    /// reaches `max_attempts` locks the account until `now + lock_for` and starts the
    /// count again. One statement decides and writes both, so concurrent failures all
    /// count and none can slip past a lock another one set: on PostgreSQL the row lock
    /// of the `UPDATE` orders them (a waiting one re-reads the row it updates), on
    /// SQLite writers run one at a time. Failures while locked are not counted (the lock
    /// is not extended). Returns whether this failure locked the account.
    pub async fn record_failed_login(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
        max_attempts: i32,
        lock_for: chrono::Duration,
    ) -> Result<bool, StorageError> {
        use sea_orm::sea_query::{Expr, ExprTrait};
        let reaches_limit = || {
            Expr::col(user::Column::FailedLoginAttempts)
                .add(1)
                .gte(max_attempts)
        };
        let result = Users::update_in(scope)
            .col_expr(
                user::Column::FailedLoginAttempts,
                Expr::case(reaches_limit(), 0)
                    .finally(Expr::col(user::Column::FailedLoginAttempts).add(1))
                    .into(),
            )
            .col_expr(
                user::Column::LockedUntil,
                Expr::case(reaches_limit(), Expr::value(now + lock_for))
                    .finally(Expr::col(user::Column::LockedUntil))
                    .into(),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(user::Column::Id.eq(id))
            .filter(not_locked(now))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Ok(false);
        }
        let locked = Users::find_in(scope)
            .select_only()
            .column(user::Column::LockedUntil)
            .filter(user::Column::Id.eq(id))
            .into_tuple::<Option<chrono::DateTime<chrono::Utc>>>()
            .one(db)
            .await?
            .flatten()
            .is_some_and(|until| until > now);
        Ok(locked)
    }

    /// A successful sign-in, if the account may sign in now: active and not locked.
    /// Clears the failure count, stamps the time and returns `true`; returns `false`
    /// (and changes nothing) for a locked or inactive account. The condition is part
    /// of the one `UPDATE`, so a lock set by a concurrent failure is never undone.
    pub async fn record_login(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StorageError> {
        use sea_orm::sea_query::Expr;
        let result = Users::update_in(scope)
            .col_expr(user::Column::FailedLoginAttempts, Expr::value(0))
            .col_expr(
                user::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            )
            .col_expr(user::Column::LastLoginAt, Expr::value(now))
            .col_expr(user::Column::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(user::Column::Id.eq(id))
            .filter(user::Column::IsActive.eq(true))
            .filter(not_locked(now))
            .exec(db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    /// Sets a new password hash.
    pub async fn set_password_hash(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
        password_hash: String,
    ) -> Result<(), StorageError> {
        use sea_orm::sea_query::Expr;
        let update = Users::update_in(scope)
            .col_expr(user::Column::PasswordHash, Expr::value(password_hash))
            .col_expr(user::Column::FailedLoginAttempts, Expr::value(0))
            .col_expr(
                user::Column::LockedUntil,
                Expr::value(Option::<chrono::DateTime<chrono::Utc>>::None),
            );
        update_one(db, id, update).await
    }

    /// Records that the user proved they read mail at their address
    /// (`is_verified = true`). Verifying a verified user changes nothing.
    pub async fn mark_verified(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<(), StorageError> {
        use sea_orm::sea_query::Expr;
        let update = Users::update_in(scope).col_expr(user::Column::IsVerified, Expr::value(true));
        update_one(db, id, update).await
    }
}

/// Runs `update` (already scoped to the tenant) on the user `id`, stamping
/// `updated_at`; "not found" when no such user is in the tenant.
async fn update_one(
    db: &impl ConnectionTrait,
    id: Uuid,
    update: sea_orm::UpdateMany<Users>,
) -> Result<(), StorageError> {
    use sea_orm::sea_query::Expr;
    let result = update
        .col_expr(user::Column::UpdatedAt, Expr::value(agenda_entity::now()))
        .filter(user::Column::Id.eq(id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(StorageError::not_found("user"));
    }
    Ok(())
}

/// No lock, or one that has run out by `now`.
fn not_locked(now: chrono::DateTime<chrono::Utc>) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(user::Column::LockedUntil.is_null())
        .add(user::Column::LockedUntil.lte(now))
}
