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

/// The cookie [`JwtSessions`] reads and writes.
pub const SESSION_COOKIE: &str = "pikku_session";

/// Env var holding the token signing secret.
pub const SESSION_SECRET_ENV: &str = "PIKKU_SESSION_SECRET";

/// Signed, expiring session tokens (JWT, HS256, via `jsonwebtoken`): the default
/// [`SessionService`].
///
/// The session `T` travels inside the token, so no server-side store is needed. Tokens are
/// read from `Authorization: Bearer` or the `pikku_session` cookie (what a browser's
/// `EventSource` sends). Forged, expired and garbled tokens are rejected with 401.
///
/// ```
/// use pikku::session::JwtSessions;
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct User { id: String }
///
/// let sessions = JwtSessions::<User>::new(b"a secret of at least 32 bytes!!!");
/// let token = sessions.issue(&User { id: "alice".into() }).unwrap();
/// assert_eq!(sessions.verify(&token).unwrap(), User { id: "alice".into() });
/// assert!(sessions.verify("garbage").is_err());
/// ```
pub struct JwtSessions<T> {
    encoding: jsonwebtoken::EncodingKey,
    decoding: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    ttl: std::time::Duration,
    cookie_name: String,
    _session: std::marker::PhantomData<fn() -> T>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims<T> {
    exp: u64,
    iat: u64,
    ses: T,
}

/// Default session lifetime.
pub const DEFAULT_SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl<T> JwtSessions<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    /// Sessions signed with `secret` (use 32+ random bytes), valid for one hour.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_string()].into_iter().collect();
        Self {
            encoding: jsonwebtoken::EncodingKey::from_secret(secret),
            decoding: jsonwebtoken::DecodingKey::from_secret(secret),
            validation,
            ttl: DEFAULT_SESSION_TTL,
            cookie_name: SESSION_COOKIE.to_string(),
            _session: std::marker::PhantomData,
        }
    }

    /// Sessions signed with the secret in `PIKKU_SESSION_SECRET`; when it is unset, a random
    /// secret for this process (sessions then do not survive a restart, and instances behind
    /// a load balancer do not share them), with a warning.
    pub fn from_env() -> Self {
        match std::env::var(SESSION_SECRET_ENV) {
            Ok(s) if !s.is_empty() => Self::new(s.as_bytes()),
            _ => {
                tracing::warn!(
                    "{SESSION_SECRET_ENV} is not set: signing sessions with a random per-process secret"
                );
                let secret: [u8; 32] = rand::random();
                Self::new(&secret)
            }
        }
    }

    /// Sets how long issued tokens are valid.
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How long issued tokens are valid.
    pub fn session_ttl(&self) -> std::time::Duration {
        self.ttl
    }

    /// Issues a signed token carrying `session`.
    pub fn issue(&self, session: &T) -> Result<String, PikkuError> {
        let now = unix_now();
        let claims = Claims {
            iat: now,
            exp: now + self.ttl.as_secs(),
            ses: session,
        };
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .map_err(PikkuError::internal)
    }

    /// Verifies a token and returns its session. Every failure is a 401.
    pub fn verify(&self, token: &str) -> Result<T, PikkuError> {
        jsonwebtoken::decode::<Claims<T>>(token, &self.decoding, &self.validation)
            .map(|data| data.claims.ses)
            .map_err(|e| {
                tracing::debug!(error = %e, "rejected session token");
                PikkuError::unauthorized("session token is invalid or expired")
            })
    }

    /// The `Set-Cookie` value that stores `token` in the browser: HttpOnly, SameSite=Lax,
    /// expiring with the token.
    pub fn cookie(&self, token: &str) -> Result<http::HeaderValue, PikkuError> {
        http::HeaderValue::try_from(format!(
            "{}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
            self.cookie_name,
            self.ttl.as_secs()
        ))
        .map_err(PikkuError::internal)
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl<T> SessionService for JwtSessions<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    type Session = T;

    async fn load(&self, headers: &HeaderMap) -> Result<Option<T>, PikkuError> {
        match token_from_headers(headers, &self.cookie_name) {
            Some(token) => self.verify(token).map(Some),
            None => Ok(None),
        }
    }
}

impl<S: SessionService> SessionService for Arc<S> {
    type Session = S::Session;

    fn load(
        &self,
        headers: &HeaderMap,
    ) -> impl Future<Output = Result<Option<Self::Session>, PikkuError>> + Send {
        (**self).load(headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct U {
        id: String,
    }

    #[test]
    fn forged_and_expired_tokens_are_rejected() {
        let a = JwtSessions::<U>::new(b"secret-a-secret-a-secret-a-12345");
        let b = JwtSessions::<U>::new(b"secret-b-secret-b-secret-b-12345");
        let token = b.issue(&U { id: "x".into() }).unwrap();
        assert_eq!(a.verify(&token).unwrap_err().status(), 401, "other key");
        let expired = JwtSessions::<U>::new(b"secret-a-secret-a-secret-a-12345")
            .ttl(std::time::Duration::ZERO);
        let token = expired.issue(&U { id: "x".into() }).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert_eq!(a.verify(&token).unwrap_err().status(), 401, "expired");
    }
}
