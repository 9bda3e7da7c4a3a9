//! Sessions: how a request's session is found, and how session functions receive it.
//!
//! An app plugs in one [`SessionService`]; the runtime asks it for the session of every request
//! to an `auth = true` route, answers 401 when there is none, and hands the typed session to
//! functions that take one (`session: &MySession`).

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use http::HeaderMap;

use crate::error::PikkuError;

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
}

/// The type-erased form the router keeps.
pub(crate) trait ErasedSessions: Send + Sync + 'static {
    fn resolve<'a>(
        &'a self,
        headers: &'a HeaderMap,
    ) -> BoxFuture<'a, Result<Option<Arc<dyn Any + Send + Sync>>, PikkuError>>;
    fn session_type(&self) -> TypeId;
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
}

/// The token of a request: `Authorization: Bearer <token>`, else the cookie `cookie_name`.
///
/// ```
/// let mut h = http::HeaderMap::new();
/// h.insert("cookie", "theme=dark; pikku_session=abc".parse().unwrap());
/// assert_eq!(pikku::session::token_from_headers(&h, "pikku_session"), Some("abc"));
/// ```
pub fn token_from_headers<'a>(headers: &'a HeaderMap, cookie_name: &str) -> Option<&'a str> {
    if let Some(token) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    {
        return Some(token.trim());
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
