//! The HTTP error: one JSON shape for every failure.
//!
//! ```json
//! {"error": {"code": "validation_failed", "message": "…", "fields": [{"field": "slug", "code": "slug", "message": "…"}]}}
//! ```
//!
//! Policy: storage errors are mapped here and only here. Constraint violations become
//! 409 with a sentence chosen by constraint name ([`CONSTRAINTS`]); an unavailable
//! database becomes 503 with `Retry-After`; anything unexpected becomes a 500 whose
//! body says nothing about internals while the log line carries the whole chain.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::Duration;

use agenda_storage::{ConflictKind, StorageError};
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use validator::{ValidationErrors, ValidationErrorsKind};

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request (`slug`, `address.city`, `items[2].qty`).
    pub field: String,
    /// Machine-readable reason (`required`, `length`, `email`, `slug`, `invalid_type`, …).
    pub code: String,
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: Cow<'static, str>,
    pub fields: Vec<FieldError>,
    pub retry_after: Option<Duration>,
    /// The internal cause, logged and never sent.
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
            source: None,
        }
    }

    pub fn with_fields(mut self, fields: Vec<FieldError>) -> Self {
        self.fields = fields;
        self
    }

    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 403 `organization_suspended`: the platform's operator suspended the
    /// organization; its sign-ins, sessions and webhooks are refused until it is
    /// activated again (its data is kept).
    pub fn organization_suspended() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "organization_suspended",
            "this organization is suspended; contact the platform's operator",
        )
    }

    /// 422 for one field.
    pub fn invalid_field(field: &str, code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request is not valid",
        )
        .with_fields(vec![FieldError {
            field: field.to_owned(),
            code: code.to_owned(),
            message,
        }])
    }

    /// 500: the cause goes to the log only.
    pub fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an internal error occurred",
        )
        .with_source(source)
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(message: impl Into<Cow<'static, str>>, retry_after: Duration) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.retry_after = Some(retry_after);
        e
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(source) = &self.source {
            let chain = error_chain(source.as_ref());
            if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(status = self.status.as_u16(), code = self.code, error = %chain, "request failed");
            } else {
                tracing::warn!(status = self.status.as_u16(), code = self.code, error = %chain, "request failed");
            }
        }
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(after) = self.retry_after {
            let secs = after.as_secs().max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// "outer: middle: inner", for one log line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let _ = write!(out, ": {e}");
        next = e.source();
    }
    agenda_storage::db::redact(&out)
}

/// Human sentences for constraint violations, by constraint name (the naming
/// convention makes names stable across engines). Unlisted constraints get a
/// generic sentence.
pub const CONSTRAINTS: &[(&str, &str, &str)] = &[
    (
        "uq_organizations_slug",
        "organization.slug",
        "an organization with this slug already exists",
    ),
    (
        "uq_users_organization_id_email",
        "email",
        "a user with this email already exists",
    ),
    (
        "ex_appointments_provider_id_period",
        "start_at",
        "this time is no longer available; pick another slot",
    ),
    (
        "uq_reviews_appointment_id",
        "appointment_id",
        "this appointment already has a review",
    ),
    (
        "uq_user_payment_methods_user_id_processor_processor_token",
        "processor_token",
        "this payment method is saved already",
    ),
    (
        "uq_integrations_settings_organization_id_integration",
        "integration",
        "this integration was configured concurrently; retry",
    ),
];

fn constraint_message(constraint: Option<&str>) -> Option<(&'static str, &'static str)> {
    let name = constraint?;
    CONSTRAINTS
        .iter()
        .find(|(c, _, _)| *c == name)
        .map(|(_, field, message)| (*field, *message))
}

impl From<StorageError> for ApiError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound { entity } => ApiError::not_found(entity),
            StorageError::Conflict {
                kind,
                ref constraint,
            } => {
                let known = constraint_message(constraint.as_deref());
                let message = match (known, kind) {
                    (Some((_, m)), _) => m,
                    (None, ConflictKind::Unique) => "a record with these values already exists",
                    (None, ConflictKind::Exclusion) => {
                        "the request conflicts with an existing record"
                    }
                    (None, ConflictKind::Serialization) => {
                        "a concurrent change got in the way; retry the request"
                    }
                };
                let mut e = ApiError::new(StatusCode::CONFLICT, "conflict", message);
                if let Some((field, m)) = known {
                    e.fields = vec![FieldError {
                        field: field.to_owned(),
                        code: "taken".to_owned(),
                        message: m.to_owned(),
                    }];
                }
                if kind == ConflictKind::Serialization {
                    e.retry_after = Some(Duration::from_secs(1));
                }
                e
            }
            StorageError::InvalidReference { ref constraint } => {
                let message = constraint_message(constraint.as_deref()).map_or(
                    "a referenced record does not exist or is still in use",
                    |(_, m)| m,
                );
                ApiError::new(StatusCode::CONFLICT, "invalid_reference", message)
            }
            StorageError::CheckViolation { ref constraint } => {
                let message = constraint_message(constraint.as_deref())
                    .map_or("the request breaks a data rule", |(_, m)| m);
                ApiError::new(StatusCode::CONFLICT, "constraint_violation", message)
                    .with_source(err)
            }
            StorageError::Validation { field, message } => {
                ApiError::invalid_field(field, "invalid", message)
            }
            StorageError::InvalidState { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            StorageError::Forbidden { code, message } => {
                ApiError::new(StatusCode::FORBIDDEN, code, message)
            }
            StorageError::Unavailable { retry_after, .. } => ApiError::unavailable(
                "the service is temporarily unavailable; retry shortly",
                retry_after,
            )
            .with_source(err),
            StorageError::Timeout { .. } => ApiError::unavailable(
                "the request took too long; retry shortly",
                Duration::from_secs(1),
            )
            .with_source(err),
            StorageError::Other(_) => ApiError::internal(err),
        }
    }
}

/// Flattens `validator` errors into field errors with dotted paths and readable
/// messages.
pub fn field_errors(errors: &ValidationErrors) -> Vec<FieldError> {
    let mut out = Vec::new();
    collect(errors, "", &mut out);
    out.sort_by(|a, b| a.field.cmp(&b.field));
    out
}

fn collect(errors: &ValidationErrors, prefix: &str, out: &mut Vec<FieldError>) {
    for (field, kind) in errors.errors() {
        let path = if prefix.is_empty() {
            field.to_string()
        } else {
            format!("{prefix}.{field}")
        };
        match kind {
            ValidationErrorsKind::Field(list) => {
                for e in list {
                    // Struct-level rules are filed under `__all__`; they name the field
                    // to blame in their `field` parameter.
                    let field = match (field.as_ref(), e.params.get("field")) {
                        ("__all__", Some(serde_json::Value::String(name))) if prefix.is_empty() => {
                            name.clone()
                        }
                        ("__all__", Some(serde_json::Value::String(name))) => {
                            format!("{prefix}.{name}")
                        }
                        _ => path.clone(),
                    };
                    out.push(FieldError {
                        field,
                        code: e.code.to_string(),
                        message: e
                            .message
                            .as_ref()
                            .map_or_else(|| default_message(e), |m| m.to_string()),
                    });
                }
            }
            ValidationErrorsKind::Struct(inner) => collect(inner, &path, out),
            ValidationErrorsKind::List(items) => {
                for (index, inner) in items {
                    collect(inner, &format!("{path}[{index}]"), out);
                }
            }
        }
    }
}

fn default_message(e: &validator::ValidationError) -> String {
    let param = |name: &str| e.params.get(name).map(|v| v.to_string());
    match e.code.as_ref() {
        "length" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max} characters long"),
            (Some(min), None) => format!("must be at least {min} characters long"),
            (None, Some(max)) => format!("must be at most {max} characters long"),
            _ => "has an invalid length".to_owned(),
        },
        "range" => match (param("min"), param("max")) {
            (Some(min), Some(max)) => format!("must be between {min} and {max}"),
            (Some(min), None) => format!("must be at least {min}"),
            (None, Some(max)) => format!("must be at most {max}"),
            _ => "is out of range".to_owned(),
        },
        "email" => "must be a valid email address".to_owned(),
        "url" => "must be a valid URL".to_owned(),
        "required" => "is required".to_owned(),
        other => format!("is not valid ({other})"),
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(errors: ValidationErrors) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "the request is not valid",
        )
        .with_fields(field_errors(&errors))
    }
}

/// A saturated password-hashing bound is 503 with `Retry-After`, like a busy
/// database: the request did no work and may be retried as it is.
impl From<crate::password::HashingError> for ApiError {
    fn from(err: crate::password::HashingError) -> Self {
        match err {
            crate::password::HashingError::Overloaded(_) => ApiError::unavailable(
                "too many sign-in attempts are being checked; retry shortly",
                Duration::from_secs(1),
            ),
            crate::password::HashingError::Failed(_) => ApiError::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_map_to_statuses() {
        let cases: Vec<(StorageError, StatusCode, &str)> = vec![
            (
                StorageError::not_found("organization"),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                StorageError::Conflict {
                    kind: ConflictKind::Unique,
                    constraint: Some("uq_organizations_slug".into()),
                },
                StatusCode::CONFLICT,
                "conflict",
            ),
            (
                StorageError::unavailable("pool", Duration::from_secs(1)),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StorageError::Timeout { source: None },
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StorageError::Other("boom".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
            ),
        ];
        for (err, status, code) in cases {
            let api = ApiError::from(err);
            assert_eq!((api.status, api.code), (status, code));
        }
    }

    #[test]
    fn unique_conflicts_name_the_field() {
        let api = ApiError::from(StorageError::Conflict {
            kind: ConflictKind::Unique,
            constraint: Some("uq_organizations_slug".into()),
        });
        assert_eq!(api.message, "an organization with this slug already exists");
        assert_eq!(api.fields[0].field, "organization.slug");
    }

    #[test]
    fn struct_level_rules_name_their_field() {
        use validator::Validate;
        let input: agenda_entity::availability::CreateAvailability = serde_json::from_value(
            serde_json::json!({"kind": "weekly", "weekday": 1, "start_time": "09:00", "end_time": "09:00"}),
        )
        .unwrap();
        let fields = field_errors(&input.validate().unwrap_err());
        assert_eq!(fields.len(), 1);
        assert_eq!(
            (fields[0].field.as_str(), fields[0].code.as_str()),
            ("end_time", "time_order")
        );
    }
}

/// The error body every failing request returns (for the OpenAPI document).
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorResponse {
    pub error: ErrorDetail,
}

/// `code` is machine-readable (`validation_failed`, `not_found`, `conflict`,
/// `unauthorized`, `forbidden`, `unavailable`, ...); `fields` names the offending
/// fields of a 422.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    pub fields: Option<Vec<FieldError>>,
}
