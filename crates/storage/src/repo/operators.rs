//! Platform operators of the console and their sessions (`operators`,
//! `operator_sessions`): platform tables outside every tenant, so these functions
//! take no tenant scope. Passwords arrive already hashed and session tokens as their
//! digests: this module never sees a secret.

// The workspace forbids unscoped queries (clippy.toml); these tables have no tenant
// column.
#![allow(clippy::disallowed_methods)]

use agenda_entity::operator::{self, Entity as Operators};
use agenda_entity::operator_session::{self, Entity as OperatorSessions};
use chrono::{DateTime, Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::lockout::Lockout;

pub struct OperatorRepo;

/// A live operator session with its operator.
#[derive(Debug, Clone)]
pub struct OperatorSession {
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub operator: operator::Model,
}

impl OperatorRepo {
    /// Inserts an operator. A taken name is a conflict from the unique constraint
    /// (`uq_operators_name`), not a check-then-insert race.
    pub async fn create(
        db: &impl ConnectionTrait,
        name: &str,
        password_hash: &str,
        read_only: bool,
    ) -> Result<operator::Model, StorageError> {
        let model = operator::ActiveModel {
            name: Set(name.to_owned()),
            password_hash: Set(password_hash.to_owned()),
            read_only: Set(read_only),
            failed_sign_ins: Set(0),
            locked_until: Set(None),
            last_signed_in_at: Set(None),
            ..<operator::ActiveModel as ActiveModelTrait>::default()
        };
        Ok(model.insert(db).await?)
    }

    /// Every operator, by name.
    pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<operator::Model>, StorageError> {
        Ok(Operators::find()
            .order_by_asc(operator::Column::Name)
            .all(db)
            .await?)
    }

    pub async fn find_by_name(
        db: &impl ConnectionTrait,
        name: &str,
    ) -> Result<Option<operator::Model>, StorageError> {
        Ok(Operators::find()
            .filter(operator::Column::Name.eq(name))
            .one(db)
            .await?)
    }

    /// Deletes the operator `name` and, by cascade, its sessions; false when there
    /// is no such operator.
    pub async fn revoke(db: &impl ConnectionTrait, name: &str) -> Result<bool, StorageError> {
        let result = Operators::delete_many()
            .filter(operator::Column::Name.eq(name))
            .exec(db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Counts a failed sign-in of an operator that is not locked; the
    /// `max_attempts`-th in a row locks it for `lock_for` and resets the count. One
    /// statement, so concurrent failures cannot outrun the lock. True when this
    /// failure locked the operator.
    pub async fn record_failed_sign_in(
        db: &impl ConnectionTrait,
        id: Uuid,
        now: DateTime<Utc>,
        max_attempts: i32,
        lock_for: Duration,
    ) -> Result<bool, StorageError> {
        let [(failures, counted), (locked_until, locked)] =
            LOCKOUT.failure(now, max_attempts, lock_for);
        let result = Operators::update_many()
            .col_expr(failures, counted)
            .col_expr(locked_until, locked)
            .col_expr(
                operator::Column::UpdatedAt,
                Expr::value(agenda_entity::now()),
            )
            .filter(operator::Column::Id.eq(id))
            .filter(LOCKOUT.not_locked(now))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Ok(false);
        }
        let locked = Operators::find_by_id(id)
            .one(db)
            .await?
            .and_then(|o| o.locked_until)
            .is_some_and(|until| until > now);
        Ok(locked)
    }

    /// Records a successful sign-in (the failure count back to zero) unless the
    /// operator is locked; false when it is (or no longer exists).
    pub async fn record_sign_in(
        db: &impl ConnectionTrait,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        let result = Operators::update_many()
            .col_expr(operator::Column::FailedSignIns, Expr::value(0))
            .col_expr(operator::Column::LastSignedInAt, Expr::value(now))
            .col_expr(
                operator::Column::UpdatedAt,
                Expr::value(agenda_entity::now()),
            )
            .filter(operator::Column::Id.eq(id))
            .filter(LOCKOUT.not_locked(now))
            .exec(db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// A new session of `operator_id` whose token has the digest `token_hash`; the
    /// operator's expired and revoked sessions are deleted on the way, so they do not
    /// pile up.
    pub async fn start_session(
        db: &impl ConnectionTrait,
        operator_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        user_agent: Option<&str>,
    ) -> Result<operator_session::Model, StorageError> {
        let now = chrono::Utc::now();
        OperatorSessions::delete_many()
            .filter(operator_session::Column::OperatorId.eq(operator_id))
            .filter(
                Condition::any()
                    .add(operator_session::Column::ExpiresAt.lte(now))
                    .add(operator_session::Column::RevokedAt.is_not_null()),
            )
            .exec(db)
            .await?;
        let model = operator_session::ActiveModel {
            operator_id: Set(operator_id),
            token_hash: Set(token_hash.to_owned()),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
            user_agent: Set(user_agent.map(|a| a.chars().take(500).collect())),
            ..<operator_session::ActiveModel as ActiveModelTrait>::default()
        };
        Ok(model.insert(db).await?)
    }

    /// The session whose token has the digest `token_hash`, if it is neither
    /// expired nor revoked, with its operator.
    pub async fn session(
        db: &impl ConnectionTrait,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<OperatorSession>, StorageError> {
        let found = OperatorSessions::find()
            .find_also_related(Operators)
            .filter(operator_session::Column::TokenHash.eq(token_hash))
            .filter(operator_session::Column::RevokedAt.is_null())
            .filter(operator_session::Column::ExpiresAt.gt(now))
            .one(db)
            .await?;
        Ok(match found {
            Some((session, Some(operator))) => Some(OperatorSession {
                session_id: session.id,
                expires_at: session.expires_at,
                operator,
            }),
            _ => None,
        })
    }

    /// Revokes the session `id` (signing out).
    pub async fn end_session(
        db: &impl ConnectionTrait,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        OperatorSessions::update_many()
            .col_expr(operator_session::Column::RevokedAt, Expr::value(now))
            .col_expr(
                operator_session::Column::UpdatedAt,
                Expr::value(agenda_entity::now()),
            )
            .filter(operator_session::Column::Id.eq(id))
            .exec(db)
            .await?;
        Ok(())
    }
}

/// The operators' lockout columns.
const LOCKOUT: Lockout<operator::Column> = Lockout {
    failures: operator::Column::FailedSignIns,
    locked_until: operator::Column::LockedUntil,
};
