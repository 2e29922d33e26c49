//! `Idempotency-Key` for every `POST` of a signed-in user.
//!
//! A client that retries a request (a timeout, a dropped connection, a 504
//! `commit_outcome_unknown`) sends the same `Idempotency-Key` header. The unit of
//! work ([`crate::uow`]) handles it for every route alike, so no handler deals with
//! it:
//!
//! 1. The middleware reads the header and the body ([`read`]): the key must be 1 to
//!    255 characters of text. The request is identified by its method, path and the
//!    digest of its body (JSON bodies in a canonical form, so key order and spacing
//!    do not matter).
//! 2. When the handler opens its write transaction, the key is claimed in it
//!    ([`claim`]) for the signed-in user: `INSERT … ON CONFLICT DO NOTHING` on the
//!    unique `(user_id, key)`. Of concurrent requests with one key exactly one
//!    claims it; on PostgreSQL the others wait for it to end (the row is locked
//!    until then), on SQLite they queue behind it for the writer — so they then find
//!    its stored response and answer with it. A key used for a different request is
//!    `422`; one whose first request is still open elsewhere is `409
//!    request_in_progress`.
//! 3. A 2xx response is stored with the key ([`store`]) in the same transaction,
//!    just before the commit; anything else rolls the claim back with the rest, so a
//!    failed request may be retried. A replay answers the stored status and body with
//!    `Idempotent-Replay: true` and creates nothing.
//!
//! Keys live [`KEY_TTL_HOURS`] hours. Requests without a signed-in user cannot carry
//! a key (a `400` says so): sign-up and registration are safe to retry through their
//! unique slug or e-mail. A route that deduplicates by a key of its own (the payment
//! webhooks, by event id) says so with [`crate::uow::UnitOfWork::replays_by_own_key`].
//! The header is documented once, on every `POST` that needs a bearer token
//! ([`DocumentHeader`]).

use agenda_storage::TenantScope;
use agenda_storage::repo::idempotency::{
    IdempotencyRepo, IdempotencyState, IdempotentRequest, MAX_KEY_CHARS,
};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sea_orm::DatabaseTransaction;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";
pub const KEY_TTL_HOURS: i64 = 24;
/// The header a replayed response carries.
pub const REPLAY_HEADER: &str = "idempotent-replay";
/// The largest body read to identify a request (axum's default body limit).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A request's key and what identifies the request, until it is claimed.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    key: String,
    method: String,
    path: String,
    hash: String,
}

/// What a claim found.
pub(crate) enum Claimed {
    /// The key is this request's now: run it, then [`store`] its response under `id`.
    New(Uuid),
    /// The same request already completed: answer with this response.
    Replay(Response),
}

/// Reads `Idempotency-Key` from a `POST` and, when present, the body (to identify
/// the request); gives back the request with its body restored.
pub(crate) async fn read(request: Request) -> Result<(Request, Option<Pending>), ApiError> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok((request, None));
    };
    if request.method() != Method::POST {
        return Ok((request, None));
    }
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.chars().count() <= MAX_KEY_CHARS)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters of text"),
            )
        })?
        .to_owned();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    })?;
    let pending = Pending {
        key,
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        hash: hex(&Sha256::digest(canonical(&bytes))),
    };
    Ok((Request::from_parts(parts, Body::from(bytes)), Some(pending)))
}

/// Claims `pending` for `user` of `scope` in `tx` (see the module docs).
pub(crate) async fn claim(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    user: Uuid,
    pending: &Pending,
) -> Result<Claimed, ApiError> {
    let request = IdempotentRequest {
        user_id: user,
        key: &pending.key,
        method: &pending.method,
        path: &pending.path,
        request_hash: &pending.hash,
    };
    let state = IdempotencyRepo::begin(
        tx,
        scope,
        &request,
        chrono::Utc::now(),
        chrono::Duration::hours(KEY_TTL_HOURS),
    )
    .await?;
    Ok(match state {
        IdempotencyState::New { id } => Claimed::New(id),
        IdempotencyState::Replay { status, body } => Claimed::Replay(replayed(status, body)),
        IdempotencyState::InProgress => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "request_in_progress",
                "a request with this Idempotency-Key is still running; retry shortly",
            ));
        }
    })
}

/// Stores a successful `response` under the claim `id` (in the request's
/// transaction) and gives it back.
pub(crate) async fn store(
    tx: &DatabaseTransaction,
    scope: TenantScope,
    id: Uuid,
    response: Response,
) -> Result<Response, ApiError> {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(ApiError::internal)?;
    let stored: Option<Value> = (!bytes.is_empty())
        .then(|| serde_json::from_slice(&bytes))
        .transpose()
        .map_err(ApiError::internal)?;
    IdempotencyRepo::complete(tx, scope, id, parts.status.as_u16(), stored).await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

/// The answer to a retry: the stored status and body, marked as a replay.
fn replayed(status: u16, body: Option<Value>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = match body {
        Some(body) => (status, axum::Json(body)).into_response(),
        None => status.into_response(),
    };
    response
        .headers_mut()
        .insert(REPLAY_HEADER, HeaderValue::from_static("true"));
    response
}

/// The refusal of a key on a request without a signed-in user.
pub(crate) fn needs_sign_in() -> ApiError {
    ApiError::bad_request(
        "idempotency_key_needs_sign_in",
        "Idempotency-Key is accepted on requests of a signed-in user; sign-up and \
         registration are safe to retry without it (a repeat answers 409)",
    )
}

/// A JSON body with its object keys sorted and no spacing; anything else as is.
fn canonical(bytes: &[u8]) -> Vec<u8> {
    fn sort(value: Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(String, Value)> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            Value::Array(items) => Value::Array(items.into_iter().map(sort).collect()),
            other => other,
        }
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => serde_json::to_vec(&sort(value)).unwrap_or_else(|_| bytes.to_vec()),
        Err(_) => bytes.to_vec(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Documents the optional `Idempotency-Key` header on every `POST` that needs a
/// bearer token (once, here, instead of on each route).
pub struct DocumentHeader;

impl utoipa::Modify for DocumentHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
        use utoipa::openapi::{ObjectBuilder, Required, Type};
        for item in openapi.paths.paths.values_mut() {
            let Some(post) = item.post.as_mut() else {
                continue;
            };
            let signed_in = post.security.as_ref().is_some_and(|s| !s.is_empty());
            let parameters = post.parameters.get_or_insert_with(Vec::new);
            let documented = parameters.iter().any(|p| match p {
                utoipa::openapi::RefOr::T(p) => {
                    p.name.eq_ignore_ascii_case(HEADER) && p.parameter_in == ParameterIn::Header
                }
                utoipa::openapi::RefOr::Ref(_) => false,
            });
            if !signed_in || documented {
                continue;
            }
            parameters.push(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "Makes a retry safe: a repeat with the same key and body answers \
                         the first response (with Idempotent-Replay: true) and changes \
                         nothing. 1 to 255 characters; kept 24 hours.",
                    ))
                    .schema(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .min_length(Some(1))
                            .max_length(Some(MAX_KEY_CHARS)),
                    ))
                    .build()
                    .into(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_compared_in_a_canonical_form() {
        assert_eq!(
            canonical(br#"{ "b": 1, "a": {"d": [1, {"f": 2, "e": 3}], "c": null} }"#),
            canonical(br#"{"a":{"c":null,"d":[1,{"e":3,"f":2}]},"b":1}"#)
        );
        assert_ne!(canonical(br#"{"a": 1}"#), canonical(br#"{"a": 2}"#));
        assert_eq!(canonical(b"not json"), b"not json");
    }

    #[test]
    fn the_header_is_documented_on_signed_in_posts_only() {
        let doc = crate::routes::openapi();
        let header = |path: &str| {
            doc.paths.paths[path]
                .post
                .as_ref()
                .and_then(|op| op.parameters.as_ref())
                .is_some_and(|ps| {
                    ps.iter().any(|p| {
                        matches!(p, utoipa::openapi::RefOr::T(p) if p.name == "Idempotency-Key")
                    })
                })
        };
        assert!(header("/api/v1/support/tickets"));
        assert!(header("/api/v1/appointments"));
        assert!(!header("/api/v1/auth/login"));
        assert!(!header("/api/v1/organizations"));
    }
}
