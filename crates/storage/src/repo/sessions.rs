//! Bearer-token sessions and the single-use tokens mailed to users (password reset,
//! e-mail verification, invitation: [`TokenPurpose`]).
//!
//! Both tables store only the SHA-256 digest (hex) of a token the client holds; the
//! token itself never reaches the database. A digest is unique across all tenants
//! (`uq_user_sessions_token_hash`, `uq_password_reset_tokens_token_hash`).
//!
//! Most functions take a [`TenantScope`] like every other repository. Two steps
//! cannot: when a request arrives with a bearer token, or a mailed link is followed,
//! nobody knows the organization yet — finding it is the point of the lookup. Those
//! two functions, [`SessionRepo::authenticate`] and [`OneTimeTokenRepo::consume`],
//! resolve a digest across tenants, and so does the operator cleanup
//! [`SessionRepo::delete_expired`]. Each carries an explicit
//! `#[allow(clippy::disallowed_methods)]` with its reason; everything they return
//! after the first lookup is read through the scope of the row they found.
//!
//! Under PostgreSQL's row-level security a transaction that has entered no tenant
//! sees no session or token rows at all, so those two lookups go through
//! `SECURITY DEFINER` functions: [`SessionRepo::authenticate`] calls
//! `agenda_authenticate` (migration 19), which returns the session with its user and
//! organization and enters their tenant in one statement; [`OneTimeTokenRepo::consume`]
//! asks `agenda_reset_token_tenant` (migration 11) for the digest's organization and
//! enters it before reading the rows. Either way the transaction stays in that tenant
//! for the rest of its work, which is why they take a transaction rather than any
//! connection.
//!
//! A session is **active** while it is neither revoked nor expired; no function here
//! returns or extends an inactive one.

use agenda_entity::enums::TokenPurpose;
use agenda_entity::{organization, password_reset_token, user, user_session};
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, IdenStatic, Iterable, QueryFilter, Statement,
};
use uuid::Uuid;

use crate::error::StorageError;
use crate::repo::resource::exists_in_tenant;
use crate::tenant::{TenantOwned, TenantScope, enter_tenant_of};

impl TenantOwned for user_session::Entity {
    fn tenant_column() -> user_session::Column {
        user_session::Column::OrganizationId
    }
}

impl TenantOwned for password_reset_token::Entity {
    fn tenant_column() -> password_reset_token::Column {
        password_reset_token::Column::OrganizationId
    }
}

/// Longest stored `ip_address` and `user_agent` (longer values are cut: they are
/// informational, shown in "your devices" lists, never used for decisions).
const MAX_IP_CHARS: usize = 64;
const MAX_USER_AGENT_CHARS: usize = 255;

/// A bearer token resolved at authentication time: the active session, its user
/// (active, of the session's organization) and the organization.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    pub session: user_session::Model,
    pub user: user::Model,
    pub organization: organization::Model,
}

impl Authenticated {
    /// The scope the rest of the request runs in. The organization's `status` is left
    /// to the caller (a suspended organization may deserve its own message).
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.session.organization_id)
    }
}

pub struct SessionRepo;

impl SessionRepo {
    /// Starts a session for `user_id` (a user of this organization) with the digest
    /// of a fresh token. `expires_at` must be in the future.
    pub async fn create(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        ip_address: Option<&str>,
        user_agent: Option<&str>,
    ) -> Result<user_session::Model, StorageError> {
        check_token_hash(token_hash)?;
        check_expiry(expires_at)?;
        check_user(db, scope, user_id, "user_sessions").await?;
        let row = user_session::ActiveModel {
            organization_id: Set(scope.organization_id()),
            user_id: Set(user_id),
            token_hash: Set(token_hash.to_owned()),
            expires_at: Set(expires_at),
            ip_address: Set(ip_address.map(|v| cut(v, MAX_IP_CHARS))),
            user_agent: Set(user_agent.map(|v| cut(v, MAX_USER_AGENT_CHARS))),
            ..Default::default()
        };
        Ok(row.insert(db).await?)
    }

    /// The active session with this digest in this organization, if any.
    pub async fn find_active(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<user_session::Model>, StorageError> {
        use user_session::Column as C;
        Ok(user_session::Entity::find_in(scope)
            .filter(C::TokenHash.eq(token_hash))
            .filter(C::RevokedAt.is_null())
            .filter(C::ExpiresAt.gt(now))
            .one(db)
            .await?)
    }

    /// Resolves a bearer token's digest to its active session, user and organization,
    /// **across tenants**: this is how the authentication layer learns which tenant a
    /// request belongs to, so no scope can exist yet.
    ///
    /// Why the unscoped lookup is safe: the digest is of a 256-bit random secret that
    /// only its holder knows, and it is unique across all organizations
    /// (`uq_user_sessions_token_hash`), so it identifies exactly one row and cannot
    /// be guessed or enumerated. The user is joined only within the session's own
    /// organization (`users.organization_id = user_sessions.organization_id`, what
    /// `find_in` would add), so a user row of another organization can never be
    /// returned with it. `None` when the token is unknown, revoked or expired, or its
    /// user is deactivated — one answer for all, so a caller cannot tell them apart.
    ///
    /// One statement. On PostgreSQL it is migration 19's `SECURITY DEFINER`
    /// `agenda_authenticate(digest, now)`, which finds the three rows under the same
    /// conditions and enters the session's tenant in the same call (row-level
    /// security hides every session row from a transaction that has entered no
    /// tenant, so the lookup cannot be an ordinary query); on SQLite, which has no
    /// row-level security, the same join as a query. This runs before every
    /// authenticated request: each statement is a round trip.
    ///
    /// On PostgreSQL the transaction is left in the session's tenant (see the module
    /// documentation), so the caller can go on using it for that organization's work.
    pub async fn authenticate(
        db: &DatabaseTransaction,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Authenticated>, StorageError> {
        if db.get_database_backend() == DbBackend::Postgres {
            return authenticate_in_one_call(db, token_hash, now).await;
        }
        authenticate_by_join(db, token_hash, now).await
    }

    /// Records the last use of an active session. Revoked, expired and other
    /// organizations' sessions are "not found" (they are never extended).
    pub async fn touch(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        session_id: Uuid,
        last_used_at: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        use user_session::Column as C;
        let result = user_session::Entity::update_in(scope)
            .col_expr(C::LastUsedAt, Expr::value(last_used_at))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::Id.eq(session_id))
            .filter(C::RevokedAt.is_null())
            .filter(C::ExpiresAt.gt(last_used_at))
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            return Err(StorageError::not_found("session"));
        }
        Ok(())
    }

    /// Revokes one session (logout). Revoking an already revoked session is a no-op
    /// that keeps the first `revoked_at`; another organization's session is "not found".
    pub async fn revoke(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        use user_session::Column as C;
        let result = user_session::Entity::update_in(scope)
            .col_expr(C::RevokedAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::Id.eq(session_id))
            .filter(C::RevokedAt.is_null())
            .exec(db)
            .await?;
        if result.rows_affected == 0 {
            let exists = user_session::Entity::find_in(scope)
                .filter(C::Id.eq(session_id))
                .one(db)
                .await?
                .is_some();
            if !exists {
                return Err(StorageError::not_found("session"));
            }
        }
        Ok(())
    }

    /// Revokes every session of a user that is not revoked yet (logout everywhere,
    /// password change, deactivation), in one `UPDATE`. Returns how many it revoked.
    pub async fn revoke_all_for_user(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        use user_session::Column as C;
        let result = user_session::Entity::update_in(scope)
            .col_expr(C::RevokedAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::UserId.eq(user_id))
            .filter(C::RevokedAt.is_null())
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Operator cleanup: deletes the sessions of **every** organization that expired
    /// at or before `now` (revoked ones included: a revoked session is deleted once
    /// it would have expired anyway). Returns how many were deleted.
    #[allow(clippy::disallowed_methods)] // operator housekeeping over all tenants; rows are only deleted, never read
    pub async fn delete_expired(
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        let result = user_session::Entity::delete_many()
            .filter(user_session::Column::ExpiresAt.lte(now))
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }
}

/// The single-use tokens mailed to a user (`password_reset_tokens`, one table for
/// every [`TokenPurpose`]).
pub struct OneTimeTokenRepo;

impl OneTimeTokenRepo {
    /// Stores the digest of a token for `purpose` mailed to `user_id` (a user of this
    /// organization). `expires_at` must be in the future.
    pub async fn issue(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        purpose: TokenPurpose,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<password_reset_token::Model, StorageError> {
        check_token_hash(token_hash)?;
        check_expiry(expires_at)?;
        check_user(db, scope, user_id, "password_reset_tokens").await?;
        let row = password_reset_token::ActiveModel {
            organization_id: Set(scope.organization_id()),
            user_id: Set(user_id),
            purpose: Set(purpose),
            token_hash: Set(token_hash.to_owned()),
            expires_at: Set(expires_at),
            ..Default::default()
        };
        Ok(row.insert(db).await?)
    }

    /// Uses up every unused token of `purpose` of the user `user_id` (a newer one
    /// replaces them, or the user no longer needs them); returns how many.
    pub async fn use_up_all(
        db: &impl ConnectionTrait,
        scope: TenantScope,
        user_id: Uuid,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<u64, StorageError> {
        use password_reset_token::Column as C;
        let result = password_reset_token::Entity::update_in(scope)
            .col_expr(C::UsedAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::UserId.eq(user_id))
            .filter(C::Purpose.eq(purpose))
            .filter(C::UsedAt.is_null())
            .exec(db)
            .await?;
        Ok(result.rows_affected)
    }

    /// Uses a token of `purpose` once and returns its user, **resolving the digest
    /// across tenants** (the person following the link is not signed in, so there is
    /// no scope yet; the tenant is the user's, `TenantScope::new(user.organization_id)`).
    ///
    /// Single use: one conditional `UPDATE … SET used_at = now WHERE token_hash = ?
    /// AND purpose = ? AND used_at IS NULL AND expires_at > now`. Of two concurrent
    /// consumes exactly one changes the row: PostgreSQL makes the second wait for the
    /// first's row lock and re-checks `used_at IS NULL` afterwards; SQLite runs
    /// writers one at a time. The loser sees 0 rows affected. An unknown, used or
    /// expired token, or one issued for another purpose, is the same "not found", so
    /// the answer reveals nothing about which it was.
    ///
    /// It takes the transaction so the caller does the token's work (sets the new
    /// password, marks the address verified, …) in the same unit of work: if that
    /// fails, the token is unused.
    ///
    /// Why the unscoped statements are safe: the digest is of a 256-bit random secret
    /// mailed to the user, unique across organizations
    /// (`uq_password_reset_tokens_token_hash`); the user is then read through the
    /// token's own organization.
    #[allow(clippy::disallowed_methods)] // the tenant is what this lookup finds out; see above
    pub async fn consume(
        tx: &DatabaseTransaction,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<user::Model, StorageError> {
        use password_reset_token::Column as C;
        let gone = || StorageError::not_found("token");
        enter_tenant_of(tx, "agenda_reset_token_tenant", token_hash).await?;
        let result = password_reset_token::Entity::update_many()
            .col_expr(C::UsedAt, Expr::value(now))
            .col_expr(C::UpdatedAt, Expr::value(agenda_entity::now()))
            .filter(C::TokenHash.eq(token_hash))
            .filter(C::Purpose.eq(purpose))
            .filter(C::UsedAt.is_null())
            .filter(C::ExpiresAt.gt(now))
            .exec(tx)
            .await?;
        if result.rows_affected != 1 {
            return Err(gone());
        }
        let token = password_reset_token::Entity::find()
            .filter(C::TokenHash.eq(token_hash))
            .one(tx)
            .await?
            .ok_or_else(gone)?;
        user::Entity::find_in(TenantScope::new(token.organization_id))
            .filter(user::Column::Id.eq(token.user_id))
            .one(tx)
            .await?
            .ok_or_else(gone)
    }
}

/// SQLite: the session ⋈ user ⋈ organization join of [`SessionRepo::authenticate`].
#[allow(clippy::disallowed_methods)] // the tenant is what this lookup finds out; see `authenticate`
async fn authenticate_by_join(
    db: &DatabaseTransaction,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Authenticated>, StorageError> {
    use user_session::Column as C;
    let found = user_session::Entity::find()
        .find_also(user_session::Entity, user::Entity)
        .find_also(user_session::Entity, organization::Entity)
        .filter(C::TokenHash.eq(token_hash))
        .filter(C::RevokedAt.is_null())
        .filter(C::ExpiresAt.gt(now))
        .filter(user::Column::IsActive.eq(true))
        .filter(
            Expr::col((user::Entity, user::Column::OrganizationId))
                .equals((user_session::Entity, C::OrganizationId)),
        )
        .one(db)
        .await?;
    Ok(match found {
        Some((session, Some(user), Some(organization))) => Some(Authenticated {
            session,
            user,
            organization,
        }),
        _ => None,
    })
}

/// PostgreSQL: `agenda_authenticate` (migration 19), whose one row holds the
/// session, user and organization as composite columns; each field is selected under
/// a prefixed name (`s_id`, `u_id`, `o_id`, …) so that the models decode as from any
/// query. The column lists come from the entities, so a column added to a table and
/// its entity is read without touching this.
async fn authenticate_in_one_call(
    db: &DatabaseTransaction,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Authenticated>, StorageError> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            authenticate_sql(),
            [token_hash.into(), now.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Authenticated {
        session: user_session::Model::from_query_result(&row, "s_")?,
        user: user::Model::from_query_result(&row, "u_")?,
        organization: organization::Model::from_query_result(&row, "o_")?,
    }))
}

/// `SELECT (a.session_row)."id" AS "s_id", … FROM agenda_authenticate($1, $2) AS a`,
/// built once.
fn authenticate_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        fn fields<C: IdenStatic + Iterable>(composite: &str, prefix: &str) -> Vec<String> {
            C::iter()
                .map(|c| format!("(a.{composite}).\"{0}\" AS \"{prefix}{0}\"", c.as_str()))
                .collect()
        }
        let mut columns = fields::<user_session::Column>("session_row", "s_");
        columns.extend(fields::<user::Column>("user_row", "u_"));
        columns.extend(fields::<organization::Column>("organization_row", "o_"));
        format!(
            "SELECT {} FROM agenda_authenticate($1, $2) AS a",
            columns.join(", ")
        )
    })
}

/// Digests are SHA-256 in hex: 64 hex digits. Anything else is a caller bug (a raw
/// token about to be stored, say) and is refused before it reaches the table.
fn check_token_hash(token_hash: &str) -> Result<(), StorageError> {
    if token_hash.len() == 64 && token_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(StorageError::Validation {
            field: "token_hash",
            message: "must be a SHA-256 digest in hex (64 digits)".into(),
        })
    }
}

fn check_expiry(expires_at: DateTime<Utc>) -> Result<(), StorageError> {
    if expires_at > agenda_entity::now() {
        Ok(())
    } else {
        Err(StorageError::Validation {
            field: "expires_at",
            message: "must be in the future".into(),
        })
    }
}

/// The user must be of this organization: the foreign key alone would accept a user
/// of any organization.
async fn check_user(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    user_id: Uuid,
    table: &str,
) -> Result<(), StorageError> {
    if exists_in_tenant(db, scope, "users", user_id).await? {
        Ok(())
    } else {
        Err(StorageError::InvalidReference {
            constraint: Some(format!("fk_{table}_user_id_users")),
        })
    }
}

/// The first `max` characters of `value`.
fn cut(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}
