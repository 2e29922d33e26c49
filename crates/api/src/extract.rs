//! Extractors that turn every malformed input into an [`ApiError`] of the one shape:
//! a wrong content type or malformed JSON is 400, an over-size body 413 (also for
//! routes that read the raw body, [`RawBody`]), a well-formed body with wrong, missing
//! or unknown fields 422 naming the field, and a body that fails its `validator`
//! rules 422 with a message per field. Path and query values that do not parse are
//! 400 naming the parameter.
//!
//! Edge rules hold for every input at once, here: a string with a NUL character
//! (JSON bodies, query strings, path segments; PostgreSQL text cannot hold one) is
//! `422 nul_character` on its field, and an instant or date outside the supported
//! range ([`agenda_entity::edge`]) is `422 out_of_range`, in a body or a query.

use agenda_entity::edge::{OUT_OF_RANGE, has_nul};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;
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
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        let value: T = parse_json(&bytes)?;
        value.validate()?;
        Ok(ValidJson(value))
    }
}

/// The raw body, for routes that read it themselves (signatures, optional bodies);
/// an over-size body is 413 in the error shape, like every other.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        "the request body is too large",
                    )
                } else {
                    ApiError::bad_request("invalid_body", "the request body could not be read")
                }
            })
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

/// Deserialises `bytes`, reporting the failing field's path. Any string in the body
/// (key or value) with a NUL character is 422 on its field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!(
                "the request body is not valid JSON: {}",
                strip_position(&e.to_string())
            ),
        )
    })?;
    reject_nul(&value, "")?;
    // Every request body of this API is an object. serde would also fill a struct
    // from an array of its fields in order (`[true, null]`), which no client means.
    if value.is_array() {
        return Err(ApiError::invalid_field(
            "",
            "invalid_type",
            "the request body must be a JSON object, not an array",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(json_error)
}

/// 422 naming the first string of `value` (at `path`) that holds a NUL character.
fn reject_nul(value: &Value, path: &str) -> Result<(), ApiError> {
    match value {
        Value::String(s) if has_nul(s) => Err(nul_field(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| reject_nul(item, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().try_for_each(|(key, item)| {
            let field = join(path, key);
            if has_nul(key) {
                return Err(nul_field(&field));
            }
            reject_nul(item, &field)
        }),
        _ => Ok(()),
    }
}

fn nul_field(field: &str) -> ApiError {
    ApiError::invalid_field(
        field,
        "nul_character",
        "must not contain the NUL character (\\u0000)",
    )
}

/// The message and code of a deserialisation error: edge types say `out_of_range`.
fn data_error(message: &str) -> (&'static str, String) {
    match message.strip_prefix(OUT_OF_RANGE) {
        Some(rest) => ("out_of_range", rest.to_owned()),
        None => ("invalid_type", message.to_owned()),
    }
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
        let (code, text) = data_error(&message);
        (if path == "." { String::new() } else { path }, code, text)
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

/// Path parameters; a value that does not parse (a bad UUID) is 400 naming the
/// parameter, one with a NUL character 422.
pub struct ValidPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid_path", "invalid path parameter"))?;
        let names: Vec<String> = raw.iter().map(|(key, _)| key.to_owned()).collect();
        if let Some((key, _)) = raw.iter().find(|(_, value)| has_nul(value)) {
            return Err(nul_field(key));
        }
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ValidPath(v))
            .map_err(|rejection| {
                use axum::extract::path::ErrorKind;
                use axum::extract::rejection::PathRejection;
                let key = match &rejection {
                    PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
                        ErrorKind::ParseErrorAtKey { key, .. }
                        | ErrorKind::InvalidUtf8InPathParam { key } => Some(key.clone()),
                        _ => None,
                    },
                    _ => None,
                };
                let field = key.or_else(|| (names.len() == 1).then(|| names[0].clone()));
                invalid_param(
                    "invalid_path",
                    field.unwrap_or_default(),
                    "is not a valid value for this path parameter".to_owned(),
                )
            })
    }
}

/// 400 naming one path or query parameter.
pub fn invalid_param(code: &'static str, field: String, message: String) -> ApiError {
    ApiError::bad_request(code, "a parameter of the request is not valid").with_fields(vec![
        FieldError {
            field,
            code: "invalid_type".to_owned(),
            message,
        },
    ])
}

/// The query string's pairs, percent-decoded; a NUL character in a name or a value is
/// 422 on that parameter.
pub fn query_pairs(parts: &Parts) -> Result<Vec<(String, String)>, ApiError> {
    let query = parts.uri.query().unwrap_or("");
    form_urlencoded::parse(query.as_bytes())
        .map(|(key, value)| {
            if has_nul(&key) || has_nul(&value) {
                Err(nul_field(&key))
            } else {
                Ok((key.into_owned(), value.into_owned()))
            }
        })
        .collect()
}

/// Query parameters, validated; a value that does not parse is 400 naming the
/// parameter, one that breaks a rule (or the supported range of dates) 422.
pub struct ValidQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        query_pairs(parts)?;
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        let value: T = serde_path_to_error::deserialize(de).map_err(|err| {
            let field = err.path().to_string();
            let field = if field == "." { String::new() } else { field };
            let message = err.into_inner().to_string();
            if let Some(name) = backticked(&message, "unknown field ") {
                return invalid_param(
                    "invalid_query",
                    name,
                    "is not a parameter of this route".to_owned(),
                );
            }
            if let Some(name) = backticked(&message, "missing field ") {
                return invalid_param("invalid_query", name, "is required".to_owned());
            }
            match data_error(&message) {
                ("out_of_range", text) => ApiError::invalid_field(&field, "out_of_range", text),
                (_, text) => invalid_param("invalid_query", field, text),
            }
        })?;
        value.validate()?;
        Ok(ValidQuery(value))
    }
}

/// The query string as a map of parameter names to values (the last of repeated
/// names wins), for the generic lists whose filters are allow-listed per table.
pub struct QueryMap(pub std::collections::HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        Ok(QueryMap(query_pairs(parts)?.into_iter().collect()))
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
        // A struct's fields in order are not an object.
        let e = err(r#"["x", 1]"#);
        assert_eq!(
            (e.status.as_u16(), e.fields[0].code.as_str()),
            (422, "invalid_type")
        );
    }

    /// Free-form text with a NUL put anywhere in it, under any key.
    fn nul_text() -> impl proptest::strategy::Strategy<Value = (String, String)> {
        use proptest::prelude::*;
        (any::<String>(), any::<String>(), "[a-z_]{1,12}")
            .prop_map(|(before, after, key)| (key, format!("{before}\0{after}")))
    }

    proptest::proptest! {
        /// Wherever a NUL sits in a body (a value, a nested value, a list item, a
        /// key), the answer is 422 `nul_character` naming that place, before any
        /// typed parsing.
        #[test]
        fn a_nul_anywhere_is_refused_with_its_path((key, text) in nul_text(), depth in 0usize..3, in_key: bool) {
            let mut value = if in_key {
                serde_json::json!({ format!("{key}\0"): 1 })
            } else {
                serde_json::json!({ key.clone(): text })
            };
            let mut path = if in_key { format!("{key}\0") } else { key.clone() };
            for _ in 0..depth {
                value = serde_json::json!({ "outer": [value] });
                path = format!("outer[0].{path}");
            }
            let err = parse_json::<serde_json::Value>(value.to_string().as_bytes()).unwrap_err();
            proptest::prop_assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
            proptest::prop_assert_eq!(err.fields[0].code.as_str(), "nul_character");
            proptest::prop_assert_eq!(&err.fields[0].field, &path);
        }

        /// Text without NUL passes the check untouched.
        #[test]
        fn text_without_nul_passes(text in "[^\u{0}]{0,40}") {
            let body = serde_json::json!({ "name": text.clone() }).to_string();
            let parsed: serde_json::Value = parse_json(body.as_bytes()).unwrap();
            proptest::prop_assert_eq!(parsed["name"].as_str(), Some(text.as_str()));
        }
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
