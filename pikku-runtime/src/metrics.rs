//! Counters of what the runtime is doing: open streams, streams opened and closed (every
//! close ran its generator's cleanup), requests refused by limits, panics caught; for the app
//! as a whole and per route. The `prometheus` module (feature `prometheus`) exports them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// The runtime's counters for one app. Cheap to clone (shared).
///
/// The handle each route's requests count through counts into the app's counters and that
/// route's ([`Metrics::routes`] reads them).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    app: Arc<AppCounters>,
    route: Option<Arc<RouteCounters>>,
}

#[derive(Debug, Default)]
struct AppCounters {
    all: Counters,
    /// One entry per mounted route (written when routes are mounted, so bounded by them).
    routes: RwLock<Vec<Arc<RouteCounters>>>,
}

#[derive(Debug, Default)]
struct Counters {
    streams_opened: AtomicU64,
    streams_closed: AtomicU64,
    requests: AtomicU64,
    rejected: AtomicU64,
    panics: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> MetricsSnapshot {
        let opened = self.streams_opened.load(Ordering::SeqCst);
        let closed = self.streams_closed.load(Ordering::SeqCst);
        MetricsSnapshot {
            streams_open: opened.saturating_sub(closed),
            streams_opened: opened,
            streams_closed: closed,
            requests: self.requests.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug)]
struct RouteCounters {
    method: &'static str,
    path: &'static str,
    counts: Counters,
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

/// A reading of one route's counters (see [`Metrics::routes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMetrics {
    /// The route's method, lower case (`get`, `post`, ...).
    pub method: &'static str,
    /// The route's path as declared (`/users/{userId}/notifications`).
    pub path: &'static str,
    /// Its counters: requests, refusals, panics and streams of this route only.
    pub counts: MetricsSnapshot,
}

impl Metrics {
    /// The app's counters now (all routes).
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.app.all.snapshot()
    }

    /// Each mounted route's counters now, in mounting order.
    pub fn routes(&self) -> Vec<RouteMetrics> {
        self.app
            .routes
            .read()
            .iter()
            .map(|r| RouteMetrics {
                method: r.method,
                path: r.path,
                counts: r.counts.snapshot(),
            })
            .collect()
    }

    /// A handle counting into the app's counters and those of the route `method path`
    /// (registered on first use; the same route gets the same counters again).
    pub(crate) fn for_route(&self, method: &'static str, path: &'static str) -> Metrics {
        let mut routes = self.app.routes.write();
        let route = match routes.iter().find(|r| r.method == method && r.path == path) {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(RouteCounters {
                    method,
                    path,
                    counts: Counters::default(),
                });
                routes.push(r.clone());
                r
            }
        };
        Metrics {
            app: self.app.clone(),
            route: Some(route),
        }
    }

    fn each(&self, f: impl Fn(&Counters)) {
        f(&self.app.all);
        if let Some(r) = &self.route {
            f(&r.counts);
        }
    }

    pub(crate) fn request(&self) {
        self.each(|c| {
            c.requests.fetch_add(1, Ordering::Relaxed);
        });
    }
    pub(crate) fn rejected(&self) {
        self.each(|c| {
            c.rejected.fetch_add(1, Ordering::Relaxed);
        });
    }
    pub(crate) fn panic(&self) {
        self.each(|c| {
            c.panics.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Counts a stream open until the returned guard drops.
    pub(crate) fn stream(&self) -> StreamGuard {
        self.each(|c| {
            c.streams_opened.fetch_add(1, Ordering::SeqCst);
        });
        StreamGuard(self.clone())
    }
}

/// Counts one open stream; dropping it counts the close.
#[derive(Debug)]
pub(crate) struct StreamGuard(Metrics);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.each(|c| {
            c.streams_closed.fetch_add(1, Ordering::SeqCst);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_counts_into_itself_and_the_app() {
        let m = Metrics::default();
        let a = m.for_route("GET", "/a");
        let b = m.for_route("GET", "/b");
        assert_eq!(
            m.for_route("GET", "/a").routes().len(),
            2,
            "registered once"
        );
        a.request();
        let guard = a.stream();
        b.request();
        b.rejected();
        assert_eq!(m.snapshot().requests, 2);
        assert_eq!(m.snapshot().streams_open, 1);
        let routes = m.routes();
        assert_eq!((routes[0].path, routes[0].counts.streams_open), ("/a", 1));
        assert_eq!((routes[1].path, routes[1].counts.rejected), ("/b", 1));
        drop(guard);
        assert_eq!(m.routes()[0].counts.streams_closed, 1);
        assert_eq!(m.snapshot().streams_open, 0);
    }
}
