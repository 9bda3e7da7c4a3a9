//! How an app's streams behave: heartbeat, extra headers, `retry:` hint, maximum lifetime.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// Default heartbeat interval (as FastAPI's and axum's SSE helpers use).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// SSE behaviour of an app (`sse: { headers, heartbeat }` in Pikku's TypeScript config), overridable per route.
///
/// ```
/// use std::time::Duration;
/// let cfg = pikku::SseConfig::default()
///     .heartbeat(Some(Duration::from_secs(30)))
///     .header("x-stream-version", "1").unwrap();
/// assert_eq!(cfg.heartbeat_interval(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone)]
pub struct SseConfig {
    heartbeat: Option<Duration>,
    headers: HeaderMap,
    retry: Option<Duration>,
    max_lifetime: Option<Duration>,
}

impl Default for SseConfig {
    fn default() -> Self {
        Self {
            heartbeat: Some(DEFAULT_HEARTBEAT),
            headers: HeaderMap::new(),
            retry: None,
            max_lifetime: None,
        }
    }
}

/// Env var read by [`SseConfig::from_env`]: heartbeat interval in milliseconds (`0` turns it off).
pub const HEARTBEAT_ENV: &str = "PIKKU_SSE_HEARTBEAT_MS";

/// Env var read by [`SseConfig::from_env`]: maximum stream lifetime in milliseconds.
pub const MAX_LIFETIME_ENV: &str = "PIKKU_SSE_MAX_LIFETIME_MS";

impl SseConfig {
    /// The defaults, with the heartbeat from `PIKKU_SSE_HEARTBEAT_MS` and the maximum stream
    /// lifetime from `PIKKU_SSE_MAX_LIFETIME_MS` when set (`0`: none).
    ///
    /// An unparsable value is ignored with a warning rather than taking the server down.
    pub fn from_env() -> Self {
        let ms = |name: &str| {
            let v = std::env::var(name).ok()?;
            match v.trim().parse::<u64>() {
                Ok(0) => Some(None),
                Ok(ms) => Some(Some(Duration::from_millis(ms))),
                Err(_) => {
                    tracing::warn!(value = %v, "ignoring unparsable {name}");
                    None
                }
            }
        };
        let mut cfg = Self::default();
        if let Some(heartbeat) = ms(HEARTBEAT_ENV) {
            cfg.heartbeat = heartbeat;
        }
        if let Some(lifetime) = ms(MAX_LIFETIME_ENV) {
            cfg.max_lifetime = lifetime;
        }
        cfg
    }

    /// Sets the heartbeat interval; `None` turns heartbeats off.
    pub fn heartbeat(mut self, every: Option<Duration>) -> Self {
        self.heartbeat = every;
        self
    }

    /// The heartbeat interval, if heartbeats are on.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        self.heartbeat
    }

    /// Adds a header to every SSE response (like `sse.headers` in Pikku's TypeScript config).
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, http::Error> {
        let name = HeaderName::try_from(name)?;
        let value = HeaderValue::try_from(value)?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// Sends `retry: <ms>` at the start of every stream, telling clients how long to wait
    /// before reconnecting.
    pub fn retry(mut self, retry: Option<Duration>) -> Self {
        self.retry = retry;
        self
    }

    /// Ends every stream after `lifetime` with a final `event: close` (with a `retry:` hint):
    /// clients reconnect, which rebalances them and bounds what one connection can hold.
    pub fn max_lifetime(mut self, lifetime: Option<Duration>) -> Self {
        self.max_lifetime = lifetime;
        self
    }

    pub(crate) fn apply_headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        );
        for (k, v) in &self.headers {
            headers.insert(k.clone(), v.clone());
        }
    }

    pub(crate) fn lifetime(&self) -> Option<Duration> {
        self.max_lifetime
    }

    pub(crate) fn prelude(&self) -> Option<Bytes> {
        self.retry
            .map(|r| Bytes::from(format!("retry: {}\n\n", r.as_millis())))
    }
}
