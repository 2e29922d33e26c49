//! Users of one organization. Every function takes the tenant scope.
//!
//! **An organization always keeps an active admin.** Changing a role
//! ([`UserRepo::change_role`]) and deactivating ([`UserRepo::set_active`]) first lock
//! the organization's active admins (`SELECT … FOR NO KEY UPDATE`, in id order) and
//! refuse to take away the last one ([`LAST_ADMIN`], 409 in the API). Two admins
//! demoting each other at once therefore run one after the other on PostgreSQL: the
//! second waits for the first's locks, then re-reads the rows, no longer finds the
//! demoted one among the admins and refuses. On SQLite the write transaction
//! (`BEGIN IMMEDIATE`) already runs them one at a time. Both take the transaction,
//! so the check and the change commit together.

use agenda_entity::enums::UserRole;
use agenda_entity::user::{self, CreateUser, Entity as Users, UpdateUser, normalize_email};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::lockout::Lockout;
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for Users {
    fn tenant_column() -> user::Column {
        user::Column::OrganizationId
    }
}

pub struct UserRepo;

/// The error code of a change that would leave the organization without an active admin.
pub const LAST_ADMIN: &str = "last_admin";

/// A user before and after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct UserChange {
    pub before: user::Model,
    pub after: user::Model,
}

impl UserChange {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

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
        use sea_orm::sea_query::Expr;
        let [(failures, counted), (locked_until, locked)] =
            LOCKOUT.failure(now, max_attempts, lock_for);
        let result = Users::update_in(scope)
            .col_expr(failures, counted)
            .col_expr(locked_until, locked)
            .col_expr(user::Column::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(user::Column::Id.eq(id))
            .filter(LOCKOUT.not_locked(now))
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
            .filter(LOCKOUT.not_locked(now))
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

    /// Gives the user `id` the role `role`. Refused with [`LAST_ADMIN`] when it would
    /// demote the organization's last active admin (see the module documentation).
    /// Setting the role a user already has changes nothing.
    pub async fn change_role(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        role: UserRole,
    ) -> Result<UserChange, StorageError> {
        let before = Self::locked_keeping_an_admin(tx, scope, id, |u| {
            u.role == UserRole::Admin && u.is_active && role != UserRole::Admin
        })
        .await?;
        let after = if before.role == role {
            before.clone()
        } else {
            let mut row = before.clone().into_active_model();
            row.role = sea_orm::Set(role);
            row.update(tx).await?
        };
        Ok(UserChange { before, after })
    }

    /// Activates or deactivates the user `id`. Deactivating the organization's last
    /// active admin is refused with [`LAST_ADMIN`]. Revoking the user's sessions is
    /// the caller's part of the same transaction.
    pub async fn set_active(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        active: bool,
    ) -> Result<UserChange, StorageError> {
        let before = Self::locked_keeping_an_admin(tx, scope, id, |u| {
            u.role == UserRole::Admin && u.is_active && !active
        })
        .await?;
        let after = if before.is_active == active {
            before.clone()
        } else {
            let mut row = before.clone().into_active_model();
            row.is_active = sea_orm::Set(active);
            row.update(tx).await?
        };
        Ok(UserChange { before, after })
    }

    /// Users of one role in name order, at most `limit` (the console's provider list).
    pub async fn with_role(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        role: UserRole,
        limit: u64,
    ) -> Result<Vec<user::Model>, StorageError> {
        Ok(Users::find_in(scope)
            .filter(user::Column::Role.eq(role))
            .order_by_asc(user::Column::FullName)
            .order_by_asc(user::Column::Id)
            .limit(limit)
            .all(db)
            .await?)
    }

    /// The organization's active admins, locked for the rest of the transaction (on
    /// PostgreSQL; SQLite's write transaction holds the whole database).
    pub async fn lock_active_admins(
        tx: &DatabaseTransaction,
        scope: TenantScope,
    ) -> Result<Vec<user::Model>, StorageError> {
        let mut select = Users::find_in(scope)
            .filter(user::Column::Role.eq(UserRole::Admin))
            .filter(user::Column::IsActive.eq(true))
            .order_by_asc(user::Column::Id);
        if tx.get_database_backend() == DbBackend::Postgres {
            // Not FOR UPDATE: that would also block inserts of rows referring to these
            // users (sessions, audit entries), which take FOR KEY SHARE.
            select = select.lock(sea_orm::sea_query::LockType::NoKeyUpdate);
        }
        Ok(select.all(tx).await?)
    }

    /// Locks the organization's active admins and then the user `id`, always in that
    /// order (so concurrent changes cannot deadlock), and returns the user; refuses
    /// with [`LAST_ADMIN`] when `takes_an_admin` says the change removes an active
    /// admin and the user is the only one.
    async fn locked_keeping_an_admin(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        takes_an_admin: impl Fn(&user::Model) -> bool,
    ) -> Result<user::Model, StorageError> {
        let admins = Self::lock_active_admins(tx, scope).await?;
        let mut select = Users::find_in(scope).filter(user::Column::Id.eq(id));
        if tx.get_database_backend() == DbBackend::Postgres {
            select = select.lock(sea_orm::sea_query::LockType::NoKeyUpdate);
        }
        let target = select
            .one(tx)
            .await?
            .ok_or(StorageError::not_found("user"))?;
        let others = admins.iter().filter(|a| a.id != target.id).count();
        if takes_an_admin(&target) && others == 0 {
            return Err(StorageError::InvalidState {
                code: LAST_ADMIN,
                message: "this is the organization's last active admin; make another user \
                          admin first"
                    .into(),
            });
        }
        Ok(target)
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

/// The users' lockout columns.
const LOCKOUT: Lockout<user::Column> = Lockout {
    failures: user::Column::FailedLoginAttempts,
    locked_until: user::Column::LockedUntil,
};
