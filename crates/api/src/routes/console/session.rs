//! Console sessions: browser cookies over the API's own sessions, and CSRF tokens.
//!
//! Signing in to the console opens an ordinary session (`user_sessions`, the token
//! stored only as its SHA-256 digest) and hands the token to the browser in the
//! `agenda_console` cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no
//! other site's page sends it), `Path=/console`, and `Secure` when the request came
//! over HTTPS (`X-Forwarded-Proto: https` from the proxy in front). The cookie is
//! resolved by [`Auth::from_token`], so a console request has the same checks, tenant
//! and row-level security as a bearer request.
//!
//! CSRF (synchronizer token): every form that changes something carries the
//! session's CSRF token, `SHA-256("agenda-console-csrf:" ‖ session token)`; another
//! site can neither read the cookie nor compute the token. The sign-in form, which
//! has no session yet, is protected by a double-submit token: a random value in a
//! short-lived cookie that the form must repeat.

use agenda_entity::enums::UserRole;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use sha2::{Digest, Sha256};

use super::ConsoleError;
use crate::app::AppState;
use crate::auth::{Auth, new_token, token_digest};

/// The cookie holding the console session's token.
pub(super) const SESSION_COOKIE: &str = "agenda_console";
/// The cookie holding the sign-in form's double-submit token.
pub(super) const SIGN_IN_COOKIE: &str = "agenda_console_sign_in";

/// The value of cookie `name` in the request, if any.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// A `Set-Cookie` value for a console cookie; `max_age` zero removes it.
pub(super) fn set_cookie(
    headers: &HeaderMap,
    name: &str,
    value: &str,
    max_age: std::time::Duration,
) -> HeaderValue {
    set_cookie_at(headers, "/console", name, value, max_age)
}

/// [`set_cookie`] for a cookie sent to `path` and below only.
pub(super) fn set_cookie_at(
    headers: &HeaderMap,
    path: &str,
    name: &str,
    value: &str,
    max_age: std::time::Duration,
) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"));
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&text).expect("cookie names and tokens are header-safe")
}

/// A fresh double-submit token for the sign-in form.
pub(super) fn new_sign_in_token() -> String {
    new_token()
}

/// The CSRF token of the session whose token is `session_token`.
pub(super) fn csrf_token(session_token: &str) -> String {
    token_digest(&format!("agenda-console-csrf:{session_token}"))
}

/// Whether `given` equals `expected`, in time independent of where they differ.
pub(super) fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A signed-in admin of an organization, from the console cookie. Anyone else is
/// sent to the sign-in page (no session) or refused (`403`, another role).
pub(super) struct ConsoleAdmin {
    pub auth: Auth,
    /// The CSRF token forms of this session carry.
    pub csrf: String,
}

impl ConsoleAdmin {
    /// `Err` unless `given` is this session's CSRF token.
    pub fn check_csrf(&self, given: Option<&str>) -> Result<(), ConsoleError> {
        match given {
            Some(given) if same_token(given, &self.csrf) => Ok(()),
            _ => Err(ConsoleError::Csrf),
        }
    }
}

impl FromRequestParts<AppState> for ConsoleAdmin {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ConsoleError> {
        let token = cookie(&parts.headers, SESSION_COOKIE)
            .ok_or(ConsoleError::SignIn)?
            .to_owned();
        let auth = match Auth::from_token(parts, state, &token).await {
            Ok(auth) => auth,
            Err(e) if e.status == axum::http::StatusCode::UNAUTHORIZED => {
                return Err(ConsoleError::SignIn);
            }
            Err(e) => return Err(e.into()),
        };
        auth.require(&[UserRole::Admin])?;
        Ok(ConsoleAdmin {
            auth,
            csrf: csrf_token(&token),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; agenda_console=abc; agenda_console_sign_in=xyz"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, SIGN_IN_COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "b"), None);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_compared_exactly() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(csrf_token(&a), csrf_token(&b));
        assert!(same_token(&csrf_token(&a), &csrf_token(&a)));
        assert!(!same_token(&csrf_token(&a), &csrf_token(&b)));
        assert!(!same_token("", &csrf_token(&a)));
    }
}
