//! `Idempotency-Key` for POSTs that create bookings, payments or withdrawals.
//!
//! A client that retries a request (a timeout, a dropped connection) sends the same
//! `Idempotency-Key` header. The first request claims the key in `idempotency_keys`
//! inside its own transaction and stores its response there when it succeeds; a retry
//! with the same key and the same body gets that stored response back and creates
//! nothing new. The same key with a different body is `422` (a client bug); a retry
//! while the first is still running is `409 request_in_progress` (on PostgreSQL it
//! simply waits for the first to finish and then replays it). A failed request rolls
//! back its claim with everything else, so it can be retried. Keys live
//! [`KEY_TTL_HOURS`] hours.

use agenda_storage::repo::idempotency::{IdempotencyRepo, IdempotencyState, IdempotentRequest};
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseTransaction;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Auth;
use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
pub const KEY_TTL_HOURS: i64 = 24;

/// What to do with a request that may carry an `Idempotency-Key`.
pub enum Claim {
    /// No header: just run it.
    None,
    /// The key is ours: run, then [`Claim::store`] the response.
    New(uuid::Uuid),
    /// Answer with the stored response.
    Replay(Response),
}

impl Claim {
    /// Reads the header and claims the key for (`method`, `path`, `body`).
    pub async fn begin(
        tx: &DatabaseTransaction,
        auth: &Auth,
        headers: &HeaderMap,
        method: &str,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Claim, ApiError> {
        let Some(key) = headers.get(HEADER) else {
            return Ok(Claim::None);
        };
        let key = key
            .to_str()
            .map_err(|_| ApiError::bad_request("invalid_header", "Idempotency-Key must be text"))?
            .trim();
        let canonical = serde_json::to_vec(body).map_err(ApiError::internal)?;
        let hash = hex(&Sha256::digest(&canonical));
        let request = IdempotentRequest {
            user_id: auth.user.id,
            key,
            method,
            path,
            request_hash: &hash,
        };
        let state = IdempotencyRepo::begin(
            tx,
            auth.scope,
            &request,
            chrono::Utc::now(),
            chrono::Duration::hours(KEY_TTL_HOURS),
        )
        .await?;
        Ok(match state {
            IdempotencyState::New { id } => Claim::New(id),
            IdempotencyState::Replay { status, body } => {
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                let mut response = match body {
                    Some(body) => (status, Json(body)).into_response(),
                    None => status.into_response(),
                };
                response.headers_mut().insert(
                    "idempotent-replay",
                    axum::http::HeaderValue::from_static("true"),
                );
                Claim::Replay(response)
            }
            IdempotencyState::InProgress => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "request_in_progress",
                    "a request with this Idempotency-Key is still running; retry shortly",
                ));
            }
        })
    }

    /// Stores the successful response for later retries (same transaction).
    pub async fn store(
        self,
        tx: &DatabaseTransaction,
        auth: &Auth,
        status: StatusCode,
        body: &impl Serialize,
    ) -> Result<(), ApiError> {
        if let Claim::New(id) = self {
            let value = serde_json::to_value(body).map_err(ApiError::internal)?;
            IdempotencyRepo::complete(tx, auth.scope, id, status.as_u16(), Some(value)).await?;
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
