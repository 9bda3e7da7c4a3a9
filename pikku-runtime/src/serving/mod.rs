//! Serving a call over HTTP, independent of the web framework: the request pipeline (rate
//! limits, CSRF, sessions, stream limits, the function), the response body that drives a
//! generator, the limits, and the app's shutdown signal.
//!
//! Built on `http` and `http-body` types only; the axum adapter ([`crate::Pikku`]) and
//! [`crate::serve`] sit on top.

mod body;
pub(crate) mod client_ip;
mod config;
pub(crate) mod limits;
pub(crate) mod pipeline;

use tokio_util::sync::CancellationToken;

pub use body::{COALESCE_MAX_BYTES, PikkuBody, SseBody};
pub use client_ip::{
    ForwardedHeader, TRUSTED_PROXIES_ENV, TRUSTED_PROXIES_HEADER_ENV, TrustedProxies,
    TrustedProxiesError,
};
pub use config::{DEFAULT_HEARTBEAT, HEARTBEAT_ENV, MAX_LIFETIME_ENV, SseConfig};
pub use limits::Limits;

/// The shutdown signal of an app: trigger it (or send SIGTERM/ctrl-c to [`serve`](crate::serve)) and every
/// open stream ends with a final `event: shutdown` carrying a `retry:` hint.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(pub(crate) CancellationToken);

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.cancel();
    }
    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Resolves when shutdown starts.
    pub async fn triggered(&self) {
        self.0.cancelled().await
    }
}
