//! The OpenAPI document's rules: what every operation of a kind can answer.
//!
//! Route annotations list only the statuses specific to them (403, 404, 409, 202,
//! 204 ...). [`StandardResponses`] adds the ones that follow from what an operation
//! *is*, by the same rules the extractors and layers apply, so the document and the
//! server cannot disagree about them:
//!
//! | the operation | can also answer | because |
//! |---|---|---|
//! | any | 503 (with `Retry-After`) | the database is unavailable or too slow |
//! | any | 504 | the commit got no answer in time (`commit_outcome_unknown`, see [`crate::uow`]) |
//! | needs a bearer token | 401, 403 | the `Auth` extractor: no live session; the organization is suspended (`organization_suspended`) |
//! | has a request body | 400, 413, 422 | `ValidJson` / `RawBody`: malformed JSON or content type, too large, invalid fields |
//! | has path or query parameters | 400, 422 | `ValidPath` / `ValidQuery`: a value that does not parse; a NUL character, a rule, the supported date range |
//! | takes `Idempotency-Key` | 400, 409, 422 | a key that is not 1 to 255 characters of text; the same key still running; the same key with another body |
//!
//! The shared answers live once in `components.responses` and operations refer to
//! them.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorResponse;

/// The bearer-token security scheme every protected operation names.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token of `POST /api/v1/auth/login`: `Authorization: Bearer <token>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// `(status, component name, description)` of the shared answers.
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "Malformed JSON, a wrong content type, or a path or query value that does not parse (`fields` names the parameter); an `Idempotency-Key` that is not 1 to 255 characters of text (`invalid_idempotency_key`) or sent without signing in (`idempotency_key_needs_sign_in`)",
    ),
    (
        "401",
        "Unauthorized",
        "No bearer token, or one that is not a live session",
    ),
    (
        "403",
        "Forbidden",
        "Your role may not do this (`forbidden`), or your organization is suspended (`organization_suspended`)",
    ),
    (
        "409",
        "KeyInUse",
        "A request with the same `Idempotency-Key` is still running (`request_in_progress`)",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is larger than the server accepts (`payload_too_large`)",
    ),
    (
        "422",
        "Unprocessable",
        "A field breaks a rule; `fields` names each one (`validation_failed`; codes such as `required`, `unknown_field`, `invalid_type`, `out_of_range`, `nul_character`)",
    ),
    (
        "503",
        "Unavailable",
        "The database is unavailable or too slow; retry after `Retry-After` seconds (`unavailable`)",
    ),
    (
        "504",
        "CommitOutcomeUnknown",
        "The commit got no answer in time, so the change may or may not be saved (`commit_outcome_unknown`); retry only with the same `Idempotency-Key`",
    ),
];

/// Adds the statuses every operation of a kind can give (see the module docs).
pub struct StandardResponses;

impl utoipa::Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .entry(ErrorResponse::name().into_owned())
            .or_insert_with(ErrorResponse::schema);
        for (status, name, description) in SHARED {
            let mut response = ResponseBuilder::new().description(*description).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(ErrorResponse::name())))
                    .build(),
            );
            if *status == "503" {
                response = response.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(Some(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        ))
                        .description(Some("Seconds to wait before retrying"))
                        .build(),
                );
            }
            components
                .responses
                .insert((*name).to_owned(), RefOr::T(response.build()));
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                for status in statuses_by_rule(operation) {
                    let name = SHARED
                        .iter()
                        .find(|(s, _, _)| *s == status)
                        .map(|(_, name, _)| *name)
                        .expect("every rule names a shared answer");
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

/// The statuses `operation` can give because of what it is.
pub fn statuses_by_rule(operation: &Operation) -> Vec<&'static str> {
    let mut statuses = vec!["503", "504"];
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    if secured {
        statuses.extend(["401", "403"]);
    }
    if operation.request_body.is_some() {
        statuses.extend(["400", "413", "422"]);
    }
    let parameters: Vec<_> = operation
        .parameters
        .iter()
        .flatten()
        .filter_map(|p| match p {
            RefOr::T(p) => Some(p),
            RefOr::Ref(_) => None,
        })
        .collect();
    if parameters
        .iter()
        .any(|p| matches!(p.parameter_in, ParameterIn::Path | ParameterIn::Query))
    {
        statuses.extend(["400", "422"]);
    }
    if parameters
        .iter()
        .any(|p| p.parameter_in == ParameterIn::Header && p.name == "Idempotency-Key")
    {
        statuses.extend(["400", "409", "422"]);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}
