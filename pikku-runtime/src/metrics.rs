//! Counters of what the runtime is doing: open streams, streams opened and closed (every
//! close ran its generator's cleanup), requests refused by limits, panics caught.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The runtime's counters for one app. Cheap to clone (shared).
#[derive(Debug, Default, Clone)]
pub struct Metrics(Arc<Counters>);

#[derive(Debug, Default)]
struct Counters {
    streams_opened: AtomicU64,
    streams_closed: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    panics: AtomicU64,
}

/// A reading of [`Metrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct MetricsSnapshot {
    /// Streams open now.
    pub streams_open: u64,
    /// Streams opened since start.
    pub streams_opened: u64,
    /// Streams closed since start (each one dropped its generator: cleanup ran).
    pub streams_closed: u64,
    /// Requests served (any route).
    pub requests: u64,
    /// Requests refused by a limit (429/503).
    pub rejected: u64,
    /// Panics caught in functions and generators.
    pub panics: u64,
}

impl Metrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let c = &self.0;
        let opened = c.streams_opened.load(Ordering::SeqCst);
        let closed = c.streams_closed.load(Ordering::SeqCst);
        MetricsSnapshot {
            streams_open: opened.saturating_sub(closed),
            streams_opened: opened,
            streams_closed: closed,
            requests: c.requests.load(Ordering::Relaxed),
            rejected: c.rejected.load(Ordering::Relaxed),
            panics: c.panics.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn request(&self) {
        self.0.requests.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn rejected(&self) {
        self.0.rejected.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn panic(&self) {
        self.0.panics.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a stream open until the returned guard drops.
    pub(crate) fn stream(&self) -> StreamGuard {
        self.0.streams_opened.fetch_add(1, Ordering::SeqCst);
        StreamGuard(self.clone())
    }
}

/// Counts one open stream; dropping it counts the close.
#[derive(Debug)]
pub(crate) struct StreamGuard(Metrics);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.0.streams_closed.fetch_add(1, Ordering::SeqCst);
    }
}
