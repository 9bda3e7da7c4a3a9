//! Signed, expiring session tokens (JWT): the default [`SessionService`] (feature `jwt`).

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::{Revocations, SESSION_COOKIE, SessionInfo, SessionService, token_from_headers};
use crate::error::PikkuError;

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
    cookie_secure: CookieSecure,
    same_site: SameSite,
    identity: fn(&T) -> String,
    revocations: Revocations,
    _session: std::marker::PhantomData<fn() -> T>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims<T> {
    exp: u64,
    iat: u64,
    /// Issue time in milliseconds: a logout revokes the tokens issued before it, not a login
    /// in the same second after it.
    #[serde(default)]
    iat_ms: u64,
    ses: T,
}

/// When the session cookie gets the `Secure` attribute (sent over HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CookieSecure {
    /// Secure, except when the request was made to a loopback host (`localhost`,
    /// `127.0.0.1`, `[::1]`) over plain HTTP (no `X-Forwarded-Proto: https`): local
    /// development. Behind a proxy that rewrites `Host` to a loopback address, use `Always`.
    #[default]
    Auto,
    /// Always `Secure`: production.
    Always,
    /// Never `Secure`: plain-HTTP deployments only.
    Never,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations (the default).
    #[default]
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent on cross-site requests too: what a page on another site needs for
    /// `EventSource(.., {withCredentials: true})`. Implies `Secure`.
    None,
}

/// Env var read by [`JwtSessions::from_env`]: `auto` (default), `always` or `never`.
pub const COOKIE_SECURE_ENV: &str = "PIKKU_COOKIE_SECURE";
/// Env var read by [`JwtSessions::from_env`]: `lax` (default), `strict` or `none`.
pub const COOKIE_SAMESITE_ENV: &str = "PIKKU_COOKIE_SAMESITE";

fn json_identity<T: serde::Serialize>(session: &T) -> String {
    serde_json::to_string(session).unwrap_or_default()
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
            cookie_secure: CookieSecure::Auto,
            same_site: SameSite::Lax,
            identity: json_identity::<T>,
            revocations: Revocations::new(DEFAULT_SESSION_TTL),
            _session: std::marker::PhantomData,
        }
    }

    /// Sessions signed with the secret in `PIKKU_SESSION_SECRET`; when it is unset, a random
    /// secret for this process (sessions then do not survive a restart, and instances behind
    /// a load balancer do not share them), with a warning.
    ///
    /// The cookie's attributes come from `PIKKU_COOKIE_SECURE` (`auto`, `always`, `never`) and
    /// `PIKKU_COOKIE_SAMESITE` (`lax`, `strict`, `none`) when set.
    pub fn from_env() -> Self {
        let sessions = match std::env::var(SESSION_SECRET_ENV) {
            Ok(s) if !s.is_empty() => Self::new(s.as_bytes()),
            _ => {
                tracing::warn!(
                    "{SESSION_SECRET_ENV} is not set: signing sessions with a random per-process secret"
                );
                let secret: [u8; 32] = rand::random();
                Self::new(&secret)
            }
        };
        let env = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_ascii_lowercase())
        };
        let secure = match env(COOKIE_SECURE_ENV).as_deref() {
            None | Some("" | "auto") => CookieSecure::Auto,
            Some("always" | "true" | "1") => CookieSecure::Always,
            Some("never" | "false" | "0") => CookieSecure::Never,
            Some(other) => {
                tracing::warn!(
                    value = other,
                    "ignoring unknown {COOKIE_SECURE_ENV}; using auto"
                );
                CookieSecure::Auto
            }
        };
        let same_site = match env(COOKIE_SAMESITE_ENV).as_deref() {
            None | Some("" | "lax") => SameSite::Lax,
            Some("strict") => SameSite::Strict,
            Some("none") => SameSite::None,
            Some(other) => {
                tracing::warn!(
                    value = other,
                    "ignoring unknown {COOKIE_SAMESITE_ENV}; using lax"
                );
                SameSite::Lax
            }
        };
        sessions.cookie_secure(secure).same_site(same_site)
    }

    /// Sets how long issued tokens are valid.
    pub fn ttl(mut self, ttl: std::time::Duration) -> Self {
        self.ttl = ttl;
        self.revocations = Revocations::new(ttl.max(Duration::from_secs(1)));
        self
    }

    /// Sets when the cookie is `Secure` (default [`CookieSecure::Auto`]).
    pub fn cookie_secure(mut self, secure: CookieSecure) -> Self {
        self.cookie_secure = secure;
        self
    }

    /// Sets the cookie's `SameSite` (default `Lax`). A browser app on another *site* needs
    /// `SameSite::None` (with `Secure`, which it implies) to send the cookie; the CSRF check
    /// stays on and only lets the app's allowed origins through.
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets who a session belongs to (keys the per-session stream limit and revocation).
    /// The default is the session serialized as JSON, so two logins of the same user share
    /// one identity.
    pub fn identity(mut self, identity: fn(&T) -> String) -> Self {
        self.identity = identity;
        self
    }

    /// Revokes every session of `session`'s identity issued until now (e.g. on logout): their
    /// open streams end with `event: session_end`, and their tokens are refused from now on
    /// by this process. Other instances behind a load balancer do not learn of it; share the
    /// revocation through your own store there.
    pub fn revoke(&self, session: &T) {
        self.revocations.revoke(&(self.identity)(session));
    }

    /// How long issued tokens are valid.
    pub fn session_ttl(&self) -> std::time::Duration {
        self.ttl
    }

    /// Issues a signed token carrying `session`.
    pub fn issue(&self, session: &T) -> Result<String, PikkuError> {
        let now_ms = unix_now_ms();
        let now = now_ms / 1000;
        let claims = Claims {
            iat: now,
            iat_ms: now_ms,
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
        self.claims(token).map(|c| c.ses)
    }

    fn claims(&self, token: &str) -> Result<Claims<T>, PikkuError> {
        let claims = jsonwebtoken::decode::<Claims<T>>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                tracing::debug!(error = %e, "rejected session token");
                PikkuError::unauthorized("session token is invalid or expired")
            })?;
        // jsonwebtoken accepts a token through the whole second of `exp`; streams end at
        // `exp` itself, so verification ends there too.
        if claims.exp.saturating_mul(1000) <= unix_now_ms() {
            return Err(PikkuError::unauthorized(
                "session token is invalid or expired",
            ));
        }
        if self.revocations.any_revoked() {
            let issued = std::time::UNIX_EPOCH + Duration::from_millis(claims.iat_ms);
            if self
                .revocations
                .is_revoked(&(self.identity)(&claims.ses), issued)
            {
                return Err(PikkuError::unauthorized("session has been revoked"));
            }
        }
        Ok(claims)
    }

    /// The `Set-Cookie` value that stores `token` in the browser: HttpOnly, the configured
    /// `SameSite` (default Lax), expiring with the token, `Secure` unless
    /// [`CookieSecure::Never`]. Prefer [`cookie_for`](Self::cookie_for), which can tell local
    /// development over plain HTTP.
    pub fn cookie(&self, token: &str) -> Result<http::HeaderValue, PikkuError> {
        let secure = self.cookie_secure != CookieSecure::Never;
        self.cookie_with(token, self.ttl.as_secs(), secure)
    }

    /// [`cookie`](Self::cookie) for the request with `headers`: with [`CookieSecure::Auto`],
    /// not `Secure` when the request went to a loopback host over plain HTTP.
    pub fn cookie_for(
        &self,
        token: &str,
        headers: &HeaderMap,
    ) -> Result<http::HeaderValue, PikkuError> {
        self.cookie_with(token, self.ttl.as_secs(), self.secure_for(headers))
    }

    /// The `Set-Cookie` value that deletes the session cookie (for logout).
    pub fn clear_cookie(&self, headers: &HeaderMap) -> Result<http::HeaderValue, PikkuError> {
        self.cookie_with("", 0, self.secure_for(headers))
    }

    fn secure_for(&self, headers: &HeaderMap) -> bool {
        match self.cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => !plain_http_to_loopback(headers),
        }
    }

    fn cookie_with(
        &self,
        token: &str,
        max_age: u64,
        secure: bool,
    ) -> Result<http::HeaderValue, PikkuError> {
        let same_site = match self.same_site {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        };
        // Browsers drop `SameSite=None` cookies that are not `Secure`.
        let secure = if secure || self.same_site == SameSite::None {
            "; Secure"
        } else {
            ""
        };
        http::HeaderValue::try_from(format!(
            "{}={token}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age}{secure}",
            self.cookie_name,
        ))
        .map_err(PikkuError::internal)
    }
}

/// Whether the request went to `localhost`/`127.0.0.0/8`/`[::1]` and no proxy says HTTPS.
fn plain_http_to_loopback(headers: &HeaderMap) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("x-forwarded-proto").is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
        || header("forwarded").is_some_and(|f| f.to_ascii_lowercase().contains("proto=https"))
    {
        return false;
    }
    let Some(host) = header("host") else {
        return false;
    };
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
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

    fn info(&self, headers: &HeaderMap, session: &T) -> SessionInfo {
        let expires_at = token_from_headers(headers, &self.cookie_name)
            .and_then(|t| self.claims(t).ok())
            .map(|c| std::time::UNIX_EPOCH + Duration::from_secs(c.exp));
        SessionInfo {
            expires_at,
            identity: Some((self.identity)(session)),
        }
    }

    fn revocations(&self) -> Option<&Revocations> {
        Some(&self.revocations)
    }

    fn credential<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        token_from_headers(headers, &self.cookie_name)
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
