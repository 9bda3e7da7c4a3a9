//! Cross-origin access (CORS) as configuration, served by tower-http's [`CorsLayer`].
//!
//! By default an app answers no cross-origin request: browsers then refuse to let pages of
//! other origins read its answers. List the origins of your browser apps (the usual SPA + API
//! split) with [`CorsConfig`] and [`Pikku::cors`](crate::Pikku::cors): preflights (`OPTIONS`)
//! are answered before routing, credentials are allowed (what `fetch(.., {credentials:
//! "include"})` and `new EventSource(url, {withCredentials: true})` need), and the listed
//! origins are also the ones the CSRF check ([`csrf`](crate::csrf)) trusts for cookie
//! sessions.
//!
//! The layer wraps the router [`Pikku::router`](crate::Pikku::router) returns. Routes of your
//! own merged next to it are outside it: give a router of only those routes
//! [`CorsConfig::layer`] if they should be reachable cross-origin (not the router that also
//! holds Pikku's, which would then send the headers twice).
//!
//! ```
//! let cors = pikku::CorsConfig::new()
//!     .allow_origin("https://app.example.com").unwrap()
//!     .allow_origin("http://localhost:5173").unwrap();
//! assert!(cors.allows("https://app.example.com"));
//! assert!(!cors.allows("https://evil.example"));
//! ```

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Env var read by [`CorsConfig::from_env`]: comma-separated allowed origins.
pub const CORS_ORIGINS_ENV: &str = "PIKKU_CORS_ORIGINS";

/// Request headers a cross-origin page may send.
pub const ALLOWED_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "last-event-id",
    "x-request-id",
];

/// Response headers a cross-origin page may read.
pub const EXPOSED_HEADERS: [&str; 2] = ["x-request-id", "retry-after"];

/// How long browsers may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// A configured origin is not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{origin}` is not an origin: write it as scheme://host[:port] (no path, no `*`)")]
pub struct InvalidOrigin {
    origin: String,
}

/// The cross-origin policy of an app: which origins may call it from a browser.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    origins: Vec<String>,
    credentials: bool,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl CorsConfig {
    /// No origin allowed (the default): only same-origin pages can use the app.
    pub fn new() -> Self {
        Self {
            origins: Vec::new(),
            credentials: true,
        }
    }

    /// The origins listed in `PIKKU_CORS_ORIGINS` (comma-separated); none when unset.
    pub fn from_env() -> Result<Self, InvalidOrigin> {
        let list = std::env::var(CORS_ORIGINS_ENV).unwrap_or_default();
        list.split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .try_fold(Self::new(), |cfg, o| cfg.allow_origin(o))
    }

    /// Allows the browser origin `origin` (`https://app.example.com`, `http://localhost:5173`).
    /// Wildcards are refused: with credentials they would let any site act as the user.
    pub fn allow_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        let normalized = normalize(origin).ok_or_else(|| InvalidOrigin {
            origin: origin.to_string(),
        })?;
        if !self.origins.contains(&normalized) {
            self.origins.push(normalized);
        }
        Ok(self)
    }

    /// Whether cross-origin requests may carry credentials (cookies); on by default.
    pub fn credentials(mut self, allow: bool) -> Self {
        self.credentials = allow;
        self
    }

    /// The allowed origins, normalized (lower case, no trailing `/`).
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether `origin` (an `Origin` header value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        normalize(origin).is_some_and(|o| self.origins.contains(&o))
    }

    /// The tower-http layer implementing this policy; `None` when no origin is allowed.
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.origins.is_empty() {
            return None;
        }
        let origins: Vec<HeaderValue> = self
            .origins
            .iter()
            .filter_map(|o| HeaderValue::try_from(o.as_str()).ok())
            .collect();
        let names = |list: &[&'static str]| {
            list.iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>()
        };
        // Explicit lists only: tower-http refuses credentials with wildcards (and so do
        // browsers).
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                ])
                .allow_headers(names(&ALLOWED_HEADERS))
                .expose_headers(names(&EXPOSED_HEADERS))
                .allow_credentials(self.credentials)
                .max_age(PREFLIGHT_MAX_AGE),
        )
    }
}

/// `scheme://host[:port]`, lower-cased, or `None` when `origin` is not one.
pub(crate) fn normalize(origin: &str) -> Option<String> {
    let origin = origin.trim().trim_end_matches('/');
    let uri: http::Uri = origin.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?.as_str();
    let bare = uri.path().is_empty() || uri.path() == "/";
    if !matches!(scheme.as_str(), "http" | "https")
        || !bare
        || uri.query().is_some()
        || authority.contains('@')
        || authority.contains('*')
    {
        return None;
    }
    Some(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_checked() {
        assert_eq!(
            normalize("HTTPS://App.Example.com/").as_deref(),
            Some("https://app.example.com")
        );
        for bad in [
            "*",
            "app.example.com",
            "https://a.com/path",
            "ftp://a.com",
            "null",
        ] {
            assert!(normalize(bad).is_none(), "{bad}");
        }
        let cfg = CorsConfig::new()
            .allow_origin("http://127.0.0.1:5173")
            .unwrap();
        assert!(cfg.allows("http://127.0.0.1:5173"));
        assert!(!cfg.allows("http://127.0.0.1:5174"));
        assert!(CorsConfig::new().allow_origin("*").is_err());
    }
}
