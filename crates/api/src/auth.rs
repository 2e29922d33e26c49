//! Authentication and roles.
//!
//! A client signs in with `POST /api/v1/auth/login` and receives an opaque bearer
//! token: 32 random bytes, hex-encoded. The database keeps only its SHA-256 digest
//! (`user_sessions.token_hash`), so a leaked table cannot be replayed. Every protected
//! route takes [`Auth`], which reads `Authorization: Bearer <token>`, resolves the
//! digest to an active session, its user and organization, and yields the tenant
//! scope: **the tenant always comes from the signed-in user**, never from the path or
//! the body. A missing, malformed, unknown, expired or revoked token, or a deactivated
//! user, is the same `401`.
//!
//! A session of a **suspended** organization is refused with `403
//! organization_suspended`. The lookup already joins the organization, so this costs
//! no extra query; the session itself is kept, and works again once the organization
//! is activated.
//!
//! Roles are checked with [`Auth::require`]: a signed-in user with the wrong role gets
//! `403 forbidden`.

use std::fmt::Write as _;

use agenda_entity::enums::{OrganizationStatus, UserRole};
use agenda_entity::{organization, user};
use agenda_storage::TenantScope;
use agenda_storage::repo::sessions::SessionRepo;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::ApiError;
use crate::uow::Slot;

/// The signed-in user of a request.
#[derive(Debug, Clone)]
pub struct Auth {
    pub user: user::Model,
    pub session_id: Uuid,
    pub scope: TenantScope,
    /// The user's organization, read with the session (in the request's snapshot
    /// on PostgreSQL): handlers that need its settings (time zone, currency) need
    /// not read it again.
    pub organization: organization::Model,
}

impl Auth {
    pub fn role(&self) -> UserRole {
        self.user.role
    }

    /// `403` unless the user has one of `roles`.
    pub fn require(&self, roles: &[UserRole]) -> Result<(), ApiError> {
        if roles.contains(&self.user.role) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "your role does not allow this",
            ))
        }
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "sign in first: send Authorization: Bearer <token>",
    )
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(unauthorized)?
            .to_owned();
        Auth::from_token(parts, state, &token).await
    }
}

impl Auth {
    /// The session of `token` (a bearer token, or the web console's cookie), with
    /// the same checks and the same request transaction as a bearer request.
    pub(crate) async fn from_token(
        parts: &Parts,
        state: &AppState,
        token: &str,
    ) -> Result<Self, ApiError> {
        if !is_token(token) {
            return Err(unauthorized());
        }
        let now = chrono::Utc::now();
        // The lookup runs in a transaction: on PostgreSQL it enters the session's
        // tenant first (row-level security), and that transaction then serves the
        // rest of the request (see `crate::uow`).
        let digest = token_digest(token);
        if !state.db.settings().replicas.is_empty()
            && let Some(slot) = Slot::of(parts)
        {
            slot.set_fence_key(digest.clone());
        }
        let (db, on_replica) = crate::uow::ReplicaRead::of(parts, state)
            .db(&state.db)
            .await;
        let mut tx = db.begin_read().await?;
        let mut found = SessionRepo::authenticate(&tx, &digest, now).await?;
        if found.is_none() && on_replica {
            // A session opened moments ago may not have reached the replica yet.
            tx.rollback()
                .await
                .map_err(agenda_storage::StorageError::from)?;
            tx = state.db.begin_read().await?;
            found = SessionRepo::authenticate(&tx, &digest, now).await?;
        }
        let found = found.ok_or_else(unauthorized)?;
        if found.organization.status == OrganizationStatus::Suspended {
            tx.rollback()
                .await
                .map_err(agenda_storage::StorageError::from)?;
            return Err(ApiError::organization_suspended());
        }
        let scope = found.scope();
        let slot = Slot::of(parts);
        if let Some(slot) = &slot {
            slot.set_user(found.user.id);
        }
        match slot {
            Some(slot) if crate::uow::keeps_auth_transaction(&state.db) => slot.adopt(tx, scope),
            slot => {
                tx.commit()
                    .await
                    .map_err(agenda_storage::StorageError::from)?;
                if let Some(slot) = slot {
                    slot.set_tenant(scope);
                }
            }
        }
        Ok(Auth {
            user: found.user,
            session_id: found.session.id,
            scope,
            organization: found.organization,
        })
    }
}

const TOKEN_BYTES: usize = 32;

/// A fresh bearer token (64 hex characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    hex(&bytes)
}

/// What the database stores for a token: the hex SHA-256 of the token text.
pub fn token_digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn is_token(text: &str) -> bool {
    text.len() == TOKEN_BYTES * 2 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_digests_are_stable() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(is_token(&a) && is_token(&b));
        assert_eq!(token_digest(&a), token_digest(&a));
        assert_eq!(token_digest(&a).len(), 64);
        assert!(!is_token("not-a-token"));
    }
}
