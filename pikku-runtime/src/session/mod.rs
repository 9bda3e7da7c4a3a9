//! Sessions: how a request's session is found, and how session functions receive it.
//!
//! An app plugs in one [`SessionService`]; the runtime asks it for the session of every request
//! to an `auth = true` route, answers 401 when there is none, and hands the typed session to
//! functions that take one (`session: &MySession`).

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::BoxFuture;
use http::HeaderMap;

use crate::error::PikkuError;

pub(crate) mod end;
#[cfg(feature = "jwt")]
mod jwt;
mod revocation;

#[cfg(feature = "jwt")]
pub use jwt::{
    COOKIE_SAMESITE_ENV, COOKIE_SECURE_ENV, CookieSecure, DEFAULT_SESSION_TTL, JwtSessions,
    SESSION_SECRET_ENV, SameSite,
};
pub(crate) use revocation::RevocationWatch;
pub use revocation::Revocations;

/// The cookie `JwtSessions` (feature `jwt`) reads and writes, and the one OpenAPI documents by default.
pub const SESSION_COOKIE: &str = "pikku_session";

/// Finds the session of a request.
///
/// Return `Ok(None)` when the request carries no valid session (the runtime answers 401), and
/// `Err` for failures that are not the client's fault.
pub trait SessionService: Send + Sync + 'static {
    /// The typed session session functions receive.
    type Session: Send + Sync + 'static;

    /// Reads the session from the request headers (e.g. `Authorization` or a cookie).
    fn load(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Option<Self::Session>, PikkuError>> + Send;

    /// When `session` (just loaded from `headers`) ends and whose it is. Streams opened with
    /// it end at `expires_at` with a final `event: session_end`; `identity` keys the
    /// per-session stream limit and revocation. The default says nothing: streams then live
    /// on and the limit falls back to the credential.
    fn info(&self, headers: &HeaderMap, session: &Self::Session) -> SessionInfo {
        let _ = (headers, session);
        SessionInfo::default()
    }

    /// The revocations of this service, if it supports them: [`Revocations::revoke`] ends
    /// the open streams of an identity (e.g. on logout).
    fn revocations(&self) -> Option<&Revocations> {
        None
    }

    /// The credential a request carries, which keys the per-session stream limit when
    /// [`info`](Self::info) names no identity. The default is the `Authorization: Bearer`
    /// token; a service reading a cookie returns that too.
    fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        bearer_token(headers)
    }
}

/// What the runtime needs to know about a session besides its value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionInfo {
    /// When the session ends; streams opened with it end then.
    pub expires_at: Option<SystemTime>,
    /// Who the session belongs to (one user, however many logins): keys the per-session
    /// stream limit and revocation.
    pub identity: Option<String>,
}

/// The type-erased form the router keeps.
pub(crate) trait ErasedSessions: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Any + Send + Sync>>, PikkuError>>;
    fn session_type(&self) -> TypeId;
    fn info(&self, headers: &HeaderMap, session: &(dyn Any + Send + Sync)) -> SessionInfo;
    fn revocations(&self) -> Option<&Revocations>;
    fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str>;
}

impl<T: SessionService> ErasedSessions for T {
    fn resolve<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Any + Send + Sync>>, PikkuError>> {
        Box::pin(async move {
            Ok(self
                .load(headers)
                .await?
                .map(|s| Arc::new(s) as Arc<dyn Any + Send + Sync>))
        })
    }
    fn session_type(&self) -> TypeId {
        TypeId::of::<T::Session>()
    }
    fn info(&self, headers: &HeaderMap, session: &(dyn Any + Send + Sync)) -> SessionInfo {
        session
            .downcast_ref::<T::Session>()
            .map(|s| SessionService::info(self, headers, s))
            .unwrap_or_default()
    }
    fn revocations(&self) -> Option<&Revocations> {
        SessionService::revocations(self)
    }
    fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        SessionService::credential(self, headers)
    }
}

/// The token of a request: `Authorization: Bearer <token>`, else the cookie `cookie_name`.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("cookie", "theme=dark; pikku_session=abc".parse().unwrap());
/// assert_eq!(pikku::session::token_from_headers(&h, "pikku_session"), Some("abc"));
/// ```
pub fn token_from_headers<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    if let Some(token) = bearer_token(headers) {
        return Some(token);
    }
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == cookie_name)
        .map(|(_, v)| v)
}

/// The token of `Authorization: Bearer <token>`; the scheme is case-insensitive (RFC 9110).
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("authorization", "BEARER abc".parse().unwrap());
/// assert_eq!(pikku::session::bearer_token(&h), Some("abc"));
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl<S: SessionService> SessionService for Arc<S> {
    type Session = S::Session;

    fn load(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Option<Self::Session>, PikkuError>> + Send {
        (**self).load(headers)
    }

    fn info(&self, headers: &HeaderMap, session: &Self::Session) -> SessionInfo {
        (**self).info(headers, session)
    }

    fn revocations(&self) -> Option<&Revocations> {
        (**self).revocations()
    }

    fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        (**self).credential(headers)
    }
}
