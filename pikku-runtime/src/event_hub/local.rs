//! What every backend keeps in this process and answers the same way: the subscription
//! counter, the limits of its config, presence, and the health of its connection.
//!
//! A backend hands these out through [`EventHub::local`](super::EventHub::local), and the
//! trait's default methods (`live_subscriptions`, `counts`, `status`, `join`, `presence`,
//! `max_topics_per_stream`) answer from them, so a backend writes only what differs: how it
//! publishes, subscribes and reads positions.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::presence::Presence;
use super::{HubConfig, HubError, HubStatus, SubscriptionCounter};

/// The in-process parts of a hub written in this crate (see the module docs). Hubs written
/// elsewhere have none and implement the methods themselves.
#[derive(Clone, Copy)]
pub struct LocalParts<'a> {
    /// The backend's name in [`HubStatus::backend`].
    pub(crate) backend: &'static str,
    pub(crate) counter: &'a SubscriptionCounter,
    pub(crate) cfg: &'a HubConfig,
    pub(crate) presence: &'a Presence,
    /// `None`: nothing to lose (the embedded hub), always healthy.
    pub(crate) health: Option<&'a Health>,
}

impl std::fmt::Debug for LocalParts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalParts")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl LocalParts<'_> {
    /// The hub's health as last seen: the detail of the last failure only while unhealthy.
    pub(crate) fn status(&self) -> HubStatus {
        let (healthy, detail) = self.health.map_or((true, None), Health::state);
        HubStatus {
            backend: Cow::Borrowed(self.backend),
            healthy,
            detail,
            subscriptions: self.counter.live(),
        }
    }
}

/// The health of a remote backend's connection: unhealthy from a failed operation until one
/// succeeds again.
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) struct Health {
    backend: &'static str,
    healthy: AtomicBool,
    detail: Mutex<Option<String>>,
}

#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
impl Health {
    /// Healthy, for the backend named `backend` (in logs).
    pub(crate) fn new(backend: &'static str) -> Self {
        Self {
            backend,
            healthy: AtomicBool::new(true),
            detail: Mutex::new(None),
        }
    }

    /// An operation succeeded.
    pub(crate) fn ok(&self) {
        // Only a change takes the lock: this runs on every publish.
        if !self.healthy.swap(true, Ordering::SeqCst) {
            tracing::info!("{} event hub reconnected", self.backend);
            *self.detail.lock() = None;
        }
    }

    /// An operation failed with `e`: unhealthy, and the error to return.
    pub(crate) fn fail(&self, e: &dyn std::fmt::Display) -> HubError {
        if self.healthy.swap(false, Ordering::SeqCst) {
            tracing::warn!(error = %e, "{} event hub unavailable", self.backend);
        }
        *self.detail.lock() = Some(e.to_string());
        HubError::unavailable(e)
    }

    /// Whether healthy, and the last failure while not.
    pub(crate) fn state(&self) -> (bool, Option<String>) {
        let healthy = self.healthy.load(Ordering::SeqCst);
        let detail = if healthy {
            None
        } else {
            self.detail.lock().clone()
        };
        (healthy, detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_reports_the_last_failure_until_an_operation_succeeds() {
        let h = Health::new("test");
        assert_eq!(h.state(), (true, None));
        let err = h.fail(&"connection refused");
        assert!(matches!(err, HubError::Unavailable(ref m) if m == "connection refused"));
        h.fail(&"timed out");
        assert_eq!(h.state(), (false, Some("timed out".to_owned())));
        h.ok();
        assert_eq!(h.state(), (true, None));
    }
}
