//! The web console at `/console`: server-rendered HTML pages for an organization's
//! admins, and the platform operator's view under `/console/operator`
//! ([`operator`]; docs/console.md).
//!
//! The pages are rendered with `minijinja` from templates compiled into the binary,
//! with one stylesheet also compiled in: the console works with no internet and
//! needs no JavaScript. They sit behind the same unit of work as the API, so every
//! read runs in the signed-in admin's tenant transaction (row-level security on
//! PostgreSQL). They are HTML outside `/api/v1` and not part of the OpenAPI
//! document.

use std::sync::LazyLock;

use agenda_storage::browse::{self, BrowseError, Filter, Match};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use minijinja::{Environment, context};
use serde::Deserialize;
use validator::Validate;

use self::session::{ConsoleAdmin, SESSION_COOKIE, SIGN_IN_COOKIE};
use crate::app::AppState;
use crate::error::ApiError;
use crate::uow::UnitOfWork;

mod operator;
mod session;
mod week;

/// The console's routes.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(home))
        .route("/console/login", get(sign_in_page).post(sign_in))
        .route("/console/logout", axum::routing::post(sign_out))
        .route("/console/tables/{table}", get(table))
        .route("/console/week", get(week::week))
        .route("/console/console.css", get(stylesheet))
        .merge(operator::router())
}

/// The templates, parsed once. Names ending in `.html` are HTML-escaped.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("home.html", include_str!("templates/home.html")),
        ("table.html", include_str!("templates/table.html")),
        ("week.html", include_str!("templates/week.html")),
        ("error.html", include_str!("templates/error.html")),
        (
            "operator_login.html",
            include_str!("templates/operator_login.html"),
        ),
        (
            "operator_home.html",
            include_str!("templates/operator_home.html"),
        ),
        (
            "operator_sessions.html",
            include_str!("templates/operator_sessions.html"),
        ),
        (
            "operator_end_idle.html",
            include_str!("templates/operator_end_idle.html"),
        ),
        (
            "operator_backups.html",
            include_str!("templates/operator_backups.html"),
        ),
        (
            "operator_statements.html",
            include_str!("templates/operator_statements.html"),
        ),
    ] {
        env.add_template(name, source)
            .expect("the console's templates are valid");
    }
    env
});

/// Why a console request did not render its page.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No usable console session: go to the sign-in page.
    SignIn,
    /// No usable operator session: go to the operator sign-in page.
    OperatorSignIn,
    /// A form without this session's CSRF token.
    Csrf,
    /// Any API error, shown as a page with the same status.
    Api(ApiError),
}

impl From<ApiError> for ConsoleError {
    fn from(e: ApiError) -> Self {
        ConsoleError::Api(e)
    }
}

impl From<agenda_storage::StorageError> for ConsoleError {
    fn from(e: agenda_storage::StorageError) -> Self {
        ConsoleError::Api(e.into())
    }
}

impl From<BrowseError> for ConsoleError {
    fn from(e: BrowseError) -> Self {
        ConsoleError::Api(match e {
            BrowseError::UnknownColumn(_) => {
                ApiError::invalid_field("column", "unknown", e.to_string())
            }
            BrowseError::MaskedColumn(_) => {
                ApiError::invalid_field("column", "masked", e.to_string())
            }
            BrowseError::Storage(e) => e.into(),
        })
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let e = match self {
            ConsoleError::SignIn => return Redirect::to("/console/login").into_response(),
            ConsoleError::OperatorSignIn => {
                return Redirect::to("/console/operator/login").into_response();
            }
            ConsoleError::Csrf => ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "this form has expired or did not come from the console: reload the page and try again",
            ),
            ConsoleError::Api(e) => e,
        };
        let (status, code, message) = (e.status, e.code, e.message.to_string());
        // The API's answer logs the cause and carries `Retry-After`; the page keeps
        // its headers and replaces its body.
        let mut response = e.into_response();
        let page = render(
            "error.html",
            context! { status => status.as_u16(), code => code, message => message },
        );
        let html = match page {
            Ok(page) => page,
            Err(_) => return response,
        };
        *response.body_mut() = Body::from(html);
        html_headers(response.headers_mut());
        response
    }
}

fn render(name: &str, ctx: minijinja::Value) -> Result<String, ApiError> {
    TEMPLATES
        .get_template(name)
        .and_then(|t| t.render(ctx))
        .map_err(|e| ApiError::internal(format!("rendering console page {name}: {e}")))
}

/// Headers of every console page: HTML, never cached (it shows tenant data), never
/// framed (no click-jacking of its buttons), and nothing loaded from elsewhere.
fn html_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
}

fn page(status: StatusCode, name: &str, ctx: minijinja::Value) -> Result<Response, ConsoleError> {
    let mut response = (status, render(name, ctx)?).into_response();
    html_headers(response.headers_mut());
    Ok(response)
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("templates/console.css"),
    )
}

/// The sign-in form, with a fresh double-submit token.
fn sign_in_form(
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
    organization: &str,
    email: &str,
) -> Result<Response, ConsoleError> {
    let token = session::new_sign_in_token();
    let mut response = page(
        status,
        "login.html",
        context! { error => error, organization => organization, email => email, sign_in_token => &token },
    )?;
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            headers,
            SIGN_IN_COOKIE,
            &token,
            std::time::Duration::from_secs(3600),
        ),
    );
    Ok(response)
}

async fn sign_in_page(headers: HeaderMap) -> Result<Response, ConsoleError> {
    sign_in_form(&headers, StatusCode::OK, None, "", "")
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    organization: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    sign_in_token: String,
}

/// Checks the form's double-submit token, signs in as the API does, and keeps the
/// session only for an admin: the answer for anyone else rolls the new session back.
async fn sign_in(
    State(state): State<AppState>,
    uow: UnitOfWork,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return sign_in_form(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("the form could not be read; fill it in again"),
            "",
            "",
        );
    };
    let expected = session::cookie(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !session::same_token(&form.sign_in_token, expected) {
        return sign_in_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some("this form has expired: sign in again"),
            &form.organization,
            &form.email,
        );
    }
    let input = super::auth::Login {
        organization: form.organization.trim().to_owned(),
        email: form.email.trim().to_owned(),
        password: form.password,
    };
    if input.validate().is_err() {
        return sign_in_form(
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("fill in the organization, the e-mail address and the password"),
            &input.organization,
            &input.email,
        );
    }
    let (organization, email) = (input.organization.clone(), input.email.clone());
    let signed_in = match super::auth::sign_in(&state, &uow, &headers, input).await {
        Ok(signed_in) => signed_in,
        Err(e) if e.status.is_client_error() => {
            return sign_in_form(&headers, e.status, Some(&e.message), &organization, &email);
        }
        Err(e) => return Err(e.into()),
    };
    if signed_in.user.role != agenda_entity::enums::UserRole::Admin {
        return sign_in_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some("the console is for the organization's admins"),
            &organization,
            &email,
        );
    }
    let ttl = (signed_in.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    let mut response = Redirect::to("/console").into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SESSION_COOKIE, &signed_in.token, ttl),
    );
    cookies.append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SIGN_IN_COOKIE, "", std::time::Duration::ZERO),
    );
    Ok(response)
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

/// Revokes the console session (a form with the CSRF token) and drops its cookie.
async fn sign_out(
    uow: UnitOfWork,
    admin: ConsoleAdmin,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ConsoleError> {
    let form: CsrfForm = serde_urlencoded::from_bytes(&body).map_err(|_| ConsoleError::Csrf)?;
    admin.check_csrf(form.csrf.as_deref())?;
    let db = uow.tx().await?;
    agenda_storage::repo::sessions::SessionRepo::revoke(
        db,
        admin.auth.scope,
        admin.auth.session_id,
        chrono::Utc::now(),
    )
    .await?;
    let mut response = Redirect::to("/console/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(&headers, SESSION_COOKIE, "", std::time::Duration::ZERO),
    );
    Ok(response)
}

/// The tables an admin can browse, in the order the schema creates them, and the
/// shortcuts to the ones an admin looks at most.
fn navigation() -> minijinja::Value {
    let tables: Vec<&'static str> = browse::tenant_tables().iter().map(|t| t.name).collect();
    minijinja::Value::from(minijinja::value::Serde(tables))
}

async fn home(admin: ConsoleAdmin) -> Result<Response, ConsoleError> {
    page(
        StatusCode::OK,
        "home.html",
        context! {
            user => admin.auth.user.email,
            csrf => admin.csrf,
            tables => navigation(),
        },
    )
}

#[derive(Deserialize)]
struct TableQuery {
    column: Option<String>,
    #[serde(rename = "match")]
    matching: Option<String>,
    value: Option<String>,
    page: Option<String>,
}

async fn table(
    uow: UnitOfWork,
    admin: ConsoleAdmin,
    Path(name): Path<String>,
    Query(query): Query<TableQuery>,
) -> Result<Response, ConsoleError> {
    let info = browse::tenant_table(&name).ok_or_else(|| ApiError::not_found("table"))?;
    let page_number: u64 = match query.page.as_deref().filter(|p| !p.is_empty()) {
        None => 0,
        Some(p) => {
            p.parse::<u64>().ok().filter(|p| *p >= 1).ok_or_else(|| {
                ApiError::invalid_field("page", "invalid", "page is a whole number from 1")
            })? - 1
        }
    };
    let matching = match query.matching.as_deref() {
        None | Some("" | "equals") => Match::Equals,
        Some("contains") => Match::Contains,
        Some(_) => {
            return Err(ApiError::invalid_field(
                "match",
                "invalid",
                "match is `equals` or `contains`",
            )
            .into());
        }
    };
    let filter = match (query.column.as_deref(), query.value.as_deref()) {
        (Some(column), Some(value)) if !column.is_empty() && !value.is_empty() => Some(Filter {
            column: column.to_owned(),
            matching,
            value: value.to_owned(),
        }),
        _ => None,
    };
    // The filter again, for the pager's links.
    let filter_query = filter.as_ref().map_or_else(String::new, |f| {
        let mut query = form_urlencoded::Serializer::new(String::from("&"));
        query
            .append_pair("column", &f.column)
            .append_pair(
                "match",
                if f.matching == Match::Contains {
                    "contains"
                } else {
                    "equals"
                },
            )
            .append_pair("value", &f.value);
        query.finish()
    });
    let db = uow.read().await?;
    let rows = browse::page(db, admin.auth.scope, &info, filter.as_ref(), page_number).await?;
    let pages = rows.total.div_ceil(browse::PAGE_SIZE).max(1);
    let filterable: Vec<String> = info
        .columns
        .iter()
        .filter(|c| !browse::is_masked(info.name, &c.name))
        .map(|c| c.name.clone())
        .collect();
    page(
        StatusCode::OK,
        "table.html",
        context! {
            user => admin.auth.user.email,
            csrf => admin.csrf,
            tables => navigation(),
            table => info.name,
            rows => minijinja::value::Serde(rows),
            filterable => filterable,
            column => filter.as_ref().map(|f| f.column.clone()),
            matching => if matching == Match::Contains { "contains" } else { "equals" },
            value => filter.as_ref().map(|f| f.value.clone()),
            filter_query => filter_query,
            page => page_number + 1,
            pages => pages,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show() {
        let html = render(
            "error.html",
            context! { status => 422, code => "x", message => "<script>alert(1)</script>" },
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }
}
