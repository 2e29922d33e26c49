//! Idempotency keys: a POST retried with the same `Idempotency-Key` header (bookings,
//! payments, withdrawals) is answered with the stored response instead of running
//! twice.
//!
//! The flow: [`IdempotencyRepo::begin`] claims the key (or reports what happened to
//! an earlier request with it), the handler runs, [`IdempotencyRepo::complete`]
//! stores its response; a handler that fails without a response to replay calls
//! [`IdempotencyRepo::abandon`] so a retry may run again. A key belongs to one user
//! (unique `(user_id, key)`), is bound to one request (method, path and the digest
//! of the body) and lives until `expires_at`; after that it may be claimed again.
//!
//! **Concurrency.** The claim is an `INSERT … ON CONFLICT (user_id, key) DO
//! NOTHING`, so the unique index decides: of any number of concurrent `begin`s with
//! one key exactly one inserts and gets [`IdempotencyState::New`]; the others insert
//! nothing and re-read the winner's row (`InProgress`, or `Replay` once it has
//! completed). On PostgreSQL a loser's insert waits until the winner's transaction
//! ends, so claiming in a short transaction of its own (commit, run the handler,
//! complete in another) lets duplicates see `InProgress` at once; claiming inside the
//! handler's transaction makes them wait and then see `Replay`. On SQLite writers run
//! one at a time and the outcome is the same.

use agenda_entity::idempotency_key;
use chrono::{DateTime, Duration, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use serde_json::Value as Json;
use uuid::Uuid;

use crate::error::{ConflictKind, StorageError};
use crate::repo::resource::exists_in_tenant;
use crate::tenant::{TenantOwned, TenantScope};

impl TenantOwned for idempotency_key::Entity {
    fn tenant_column() -> idempotency_key::Column {
        idempotency_key::Column::OrganizationId
    }
}

/// Longest accepted `Idempotency-Key`, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// How many times `begin` re-reads after losing an insert race before it gives up
/// with a retryable conflict (only reached if the winning row vanishes repeatedly,
/// e.g. abandoned or purged in between).
const CLAIM_ATTEMPTS: usize = 3;

/// The request a key is used for. `request_hash` is the digest of the body; the same
/// key with another method, path or body is refused.
#[derive(Debug, Clone, Copy)]
pub struct IdempotentRequest<'a> {
    pub user_id: Uuid,
    pub key: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub request_hash: &'a str,
}

/// What [`IdempotencyRepo::begin`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyState {
    /// The key was free and is now claimed by this request: run it, then
    /// [`IdempotencyRepo::complete`] the row `id`.
    New { id: Uuid },
    /// The same request already completed: answer with this response.
    Replay { status: u16, body: Option<Json> },
    /// The same request is still running elsewhere (a concurrent duplicate).
    InProgress,
}

pub struct IdempotencyRepo;

impl IdempotencyRepo {
    /// Claims `request.key` for `request.user_id` (a user of this organization) until
    /// `now + ttl`, or reports the earlier request with that key. A live key used for
    /// a different request is [`StorageError::Validation`] on `idempotency_key`; an
    /// expired key is deleted and claimed afresh.
    pub async fn begin(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        request: &IdempotentRequest<'_>,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<IdempotencyState, StorageError> {
        use idempotency_key::Column as C;
        let chars = request.key.chars().count();
        if chars == 0 || chars > MAX_KEY_CHARS {
            return Err(StorageError::Validation {
                field: "idempotency_key",
                message: format!("must have 1 to {MAX_KEY_CHARS} characters"),
            });
        }
        if ttl <= Duration::zero() {
            return Err(StorageError::Validation {
                field: "ttl",
                message: "must be positive".into(),
            });
        }
        if !exists_in_tenant(tx, scope, "users", request.user_id).await? {
            return Err(StorageError::InvalidReference {
                constraint: Some("fk_idempotency_keys_user_id_users".into()),
            });
        }
        for _ in 0..CLAIM_ATTEMPTS {
            if let Some(row) = Self::find(tx, scope, request).await? {
                if row.expires_at > now {
                    return state_of(row, request);
                }
                // Expired: free the key. The filter keeps a row that a concurrent
                // `begin` has just claimed afresh.
                idempotency_key::Entity::delete_in(scope)
                    .filter(C::Id.eq(row.id))
                    .filter(C::ExpiresAt.lte(now))
                    .exec(tx)
                    .await?;
            }
            let id = agenda_entity::new_id();
            let claim = idempotency_key::ActiveModel {
                id: Set(id),
                organization_id: Set(scope.organization_id()),
                user_id: Set(request.user_id),
                key: Set(request.key.to_owned()),
                method: Set(request.method.to_owned()),
                path: Set(request.path.to_owned()),
                request_hash: Set(request.request_hash.to_owned()),
                response_status: Set(None),
                response_body: Set(None),
                expires_at: Set(now + ttl),
                created_at: Set(now),
                updated_at: Set(now),
            };
            let inserted = idempotency_key::Entity::insert(claim)
                .on_conflict(
                    OnConflict::columns([C::UserId, C::Key])
                        .do_nothing()
                        .to_owned(),
                )
                .exec_without_returning(tx)
                .await?;
            if inserted == 1 {
                return Ok(IdempotencyState::New { id });
            }
            // Another request holds the key now: read what it is.
        }
        Err(StorageError::Conflict {
            kind: ConflictKind::Serialization,
            constraint: Some("uq_idempotency_keys_user_id_key".into()),
        })
    }

    /// Stores the response of the claimed request `id`. A key that is already
    /// completed is [`StorageError::InvalidState`]; another organization's is "not found".
    pub async fn complete(
        tx: &DatabaseTransaction,
        scope: TenantScope,
        id: Uuid,
        status: u16,
        body: Option<Json>,
    ) -> Result<(), StorageError> {
        use idempotency_key::Column as C;
        if !(100..=599).contains(&status) {
            return Err(StorageError::Validation {
                field: "response_status",
                message: "must be an HTTP status (100..599)".into(),
            });
        }
        let result = idempotency_key::Entity::update_in(scope)
            .col_expr(C::ResponseStatus, Expr::value(i32::from(status)))
            .col_expr(C::ResponseBody, Expr::value(body))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::Id.eq(id))
            .filter(C::ResponseStatus.is_null())
            .exec(tx)
            .await?;
        if result.rows_affected == 0 {
            return Err(Self::why_not_open(tx, scope, id).await?);
        }
        Ok(())
    }

    /// Releases a claim whose request failed without a response worth replaying, so
    /// a retry runs again instead of seeing `InProgress` until the key expires.
    /// Completed keys are kept ([`StorageError::InvalidState`]).
    pub async fn abandon(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<(), StorageError> {
        use idempotency_key::Column as C;
        let result = idempotency_key::Entity::delete_in(scope)
            .filter(C::Id.eq(id))
            .filter(C::ResponseStatus.is_null())
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(Self::why_not_open(db, scope, id).await?);
        }
        Ok(())
    }

    /// Operator cleanup: deletes the expired keys of **every** organization. Returns
    /// how many were deleted.
    #[allow(clippy::disallowed_methods)] // operator housekeeping over all tenants; rows are only deleted, never read
    pub async fn purge_expired(
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let result = idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::ExpiresAt.lte(now))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    async fn find(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        request: &IdempotentRequest<'_>,
    ) -> Result<Option<idempotency_key::Model>, StorageError> {
        use idempotency_key::Column as C;
        Ok(idempotency_key::Entity::find_in(scope)
            .filter(C::UserId.eq(request.user_id))
            .filter(C::Key.eq(request.key))
            .one(db)
            .await?)
    }

    /// The error for a key `id` that is not an open claim: gone, or completed.
    async fn why_not_open(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<StorageError, StorageError> {
        let exists = idempotency_key::Entity::find_in(scope)
            .filter(idempotency_key::Column::Id.eq(id))
            .one(db)
            .await?
            .is_some();
        Ok(if exists {
            StorageError::InvalidState {
                code: "idempotency_key_completed",
                message: "this idempotency key already has a response".into(),
            }
        } else {
            StorageError::not_found("idempotency key")
        })
    }
}

/// A live row with the same key: the same request (replay or still running), or a
/// different one (refused).
fn state_of(
    row: idempotency_key::Model,
    request: &IdempotentRequest<'_>,
) -> Result<IdempotencyState, StorageError> {
    let same = row.method == request.method
        && row.path == request.path
        && row.request_hash == request.request_hash;
    if !same {
        return Err(StorageError::Validation {
            field: "idempotency_key",
            message: "was already used for a different request".into(),
        });
    }
    Ok(match row.response_status {
        Some(status) => IdempotencyState::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: row.response_body,
        },
        None => IdempotencyState::InProgress,
    })
}
