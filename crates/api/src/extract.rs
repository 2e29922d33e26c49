//! Extractors that turn every malformed input into an [`ApiError`] of the one shape:
//! a wrong content type or malformed JSON is 400, an over-size body 413, a
//! well-formed body with wrong, missing or unknown fields 422 naming the field, and a
//! body that fails its `validator` rules 422 with a message per field. Path and query
//! parameters that do not parse are 400.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use validator::Validate;

use crate::error::{ApiError, FieldError};

/// A JSON body, deserialised strictly and validated.
pub struct ValidJson<T>(pub T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::bad_request(
                "invalid_content_type",
                "the request body must be JSON, sent with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "the request body is too large",
                )
            } else {
                ApiError::bad_request("invalid_body", "the request body could not be read")
            }
        })?;
        let value: T = parse_json(&bytes)?;
        value.validate()?;
        Ok(ValidJson(value))
    }
}

fn is_json(content_type: Option<&header::HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Deserialises `bytes`, reporting the failing field's path.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(json_error)?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                "the request body is not valid JSON: {}",
                strip_position(&e.to_string())
            ),
        )
    })?;
    Ok(value)
}

fn json_error(err: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return ApiError::bad_request(
            "malformed_json",
            format!(
                "the request body is not valid JSON: {}",
                strip_position(&inner.to_string())
            ),
        );
    }
    let message = strip_position(&inner.to_string());
    let (field, code, text) = if let Some(name) = backticked(&message, "missing field ") {
        (join(&path, &name), "required", "is required".to_owned())
    } else if let Some(name) = backticked(&message, "unknown field ") {
        // The path already ends at the unknown key.
        let field = if path.is_empty() || path == "." {
            name
        } else {
            path
        };
        (field, "unknown_field", "is not a known field".to_owned())
    } else {
        (
            if path == "." { String::new() } else { path },
            "invalid_type",
            message,
        )
    };
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
        "the request is not valid",
    )
    .with_fields(vec![FieldError {
        field,
        code: code.to_owned(),
        message: text,
    }])
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// `name` from "missing field `name`".
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split('`').next().map(str::to_owned)
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() || path == "." {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// Path parameters; a value that does not parse (a bad UUID) is 400.
pub struct ValidPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ValidPath(v))
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_path",
                    format!("invalid path parameter: {}", e.body_text()),
                )
            })
    }
}

/// Query parameters, validated; a value that does not parse is 400, one that breaks
/// a rule 422.
pub struct ValidQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("invalid query parameter: {}", e.body_text()),
                )
            })?;
        value.validate()?;
        Ok(ValidQuery(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Validate)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        count: u32,
    }

    fn err(body: &str) -> ApiError {
        parse_json::<Input>(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = err(r#"{"name": "x", "count": 1, "extra": true}"#);
        assert_eq!(
            (
                e.status.as_u16(),
                e.fields[0].field.as_str(),
                e.fields[0].code.as_str()
            ),
            (422, "extra", "unknown_field")
        );
        let e = err(r#"{"name": "x"}"#);
        assert_eq!(
            (e.fields[0].field.as_str(), e.fields[0].code.as_str()),
            ("count", "required")
        );
        let e = err(r#"{"name": "x", "count": "many"}"#);
        assert_eq!(
            (e.fields[0].field.as_str(), e.fields[0].code.as_str()),
            ("count", "invalid_type")
        );
        let e = err(r#"{"name": "x", "#);
        assert_eq!((e.status.as_u16(), e.code), (400, "malformed_json"));
        let e = err(r#"{"name": "x", "count": 1} trailing"#);
        assert_eq!((e.status.as_u16(), e.code), (400, "malformed_json"));
    }

    #[test]
    fn content_types() {
        let ok = |v: &str| is_json(Some(&header::HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(!ok("text/plain"));
        assert!(!is_json(None));
    }
}
