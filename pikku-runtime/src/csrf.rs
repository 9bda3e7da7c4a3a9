//! CSRF protection for cookie sessions: unsafe requests must come from an allowed origin.
//!
//! Browsers attach cookies to cross-site requests a page makes (SameSite=Lax still sends them
//! from same-site pages and top-level navigations), so a cookie alone does not show that the
//! user meant the request. Every `POST`/`PUT`/`PATCH`/`DELETE` that does not carry
//! `Authorization: Bearer` (which a foreign page cannot add without the token) is therefore
//! checked, the way browsers let servers check:
//!
//! - `Origin` present: it must be this server's own origin (its host and port equal the
//!   request's `Host`) or one of the app's allowed origins ([`CorsConfig`]); `null` (sandboxed
//!   frames, some redirects) is refused;
//! - no `Origin` but `Sec-Fetch-Site`: only `same-origin` and `none` (the user typed it) pass;
//! - neither: not a browser (curl, servers, the typed clients), nothing to forge; it passes.
//!
//! Unauthenticated routes are checked too: a forged `POST /auth/login` would swap the
//! victim's session for the attacker's (login CSRF).

use http::HeaderMap;

use crate::cors::{CorsConfig, normalize};
use crate::error::PikkuError;
use crate::registry::Method;
use crate::session::bearer_token;

/// Lets an unsafe request through when it cannot be a cross-site forgery; 403 otherwise.
pub(crate) fn check(
    method: Method,
    headers: &HeaderMap,
    cors: &CorsConfig,
) -> Result<(), PikkuError> {
    if matches!(method, Method::Get) {
        return Ok(());
    }
    if bearer_token(headers).is_some() {
        return Ok(());
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(http::header::ORIGIN) {
        let origin = origin.to_str().ok().and_then(normalize);
        let allowed = origin.as_deref().is_some_and(|o| {
            same_origin(o, header("host")) || cors.origins().iter().any(|a| a == o)
        });
        return if allowed { Ok(()) } else { Err(refusal()) };
    }
    match header("sec-fetch-site") {
        None | Some("same-origin" | "none") => Ok(()),
        Some(_) => Err(refusal()),
    }
}

fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host.trim()))
}

fn refusal() -> PikkuError {
    PikkuError::new(
        http::StatusCode::FORBIDDEN,
        "cross_origin_refused",
        "cross-origin request refused: this origin may not send cookie-authenticated or \
         login requests here (allow it with the app's CORS origins, or authenticate with \
         `Authorization: Bearer`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    http::HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn foreign_origins_are_refused_unless_allowed_or_bearer() {
        let cors = CorsConfig::new()
            .allow_origin("https://app.example")
            .unwrap();
        let post = |h: &[(&'static str, &'static str)]| check(Method::Post, &headers(h), &cors);
        let host = ("host", "api.example");
        assert!(post(&[host, ("origin", "https://evil.example")]).is_err());
        assert!(post(&[host, ("origin", "null")]).is_err());
        assert!(
            post(&[host, ("origin", "https://api.example")]).is_ok(),
            "same origin"
        );
        assert!(
            post(&[host, ("origin", "https://app.example")]).is_ok(),
            "allowed"
        );
        assert!(
            post(&[
                host,
                ("origin", "https://evil.example"),
                ("authorization", "Bearer x")
            ])
            .is_ok()
        );
        assert!(post(&[host, ("sec-fetch-site", "cross-site")]).is_err());
        assert!(post(&[host, ("sec-fetch-site", "same-site")]).is_err());
        assert!(post(&[host, ("sec-fetch-site", "same-origin")]).is_ok());
        assert!(post(&[host]).is_ok(), "not a browser");
        let get = check(
            Method::Get,
            &headers(&[host, ("origin", "https://evil.example")]),
            &cors,
        );
        assert!(get.is_ok(), "safe methods are not checked");
    }
}
