//! Per-request context a function may take as `ctx: &Context`: request id, the SSE resume
//! point (`Last-Event-ID`), the request headers, and the server's shutdown signal.

use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, MetricsSnapshot};

/// Longest `Last-Event-ID` accepted; longer ones are treated as absent (and logged).
pub const MAX_LAST_EVENT_ID_LEN: usize = 256;

/// How a composite id (the id of a stream merging several hub topics) starts: `m:` and one
/// position per topic.
pub const COMPOSITE_ID_PREFIX: &str = "m:";

/// Longest composite `Last-Event-ID` accepted (one that starts with [`COMPOSITE_ID_PREFIX`]):
/// room for a position per topic of the largest merged stream the hub allows.
pub const MAX_COMPOSITE_LAST_EVENT_ID_LEN: usize = 2560;

/// The `Last-Event-ID` a reconnecting client sent: where its stream should resume.
///
/// ```
/// # use pikku::LastEventId;
/// let id = LastEventId::parse("41").unwrap();
/// assert_eq!(id.as_u64(), Some(41));
/// assert!(LastEventId::parse("").is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastEventId(String);

impl LastEventId {
    /// Reads a header value; `None` for empty or over-long ids (over
    /// [`MAX_LAST_EVENT_ID_LEN`] bytes, or [`MAX_COMPOSITE_LAST_EVENT_ID_LEN`] for a composite).
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let max = if raw.starts_with(COMPOSITE_ID_PREFIX) {
            MAX_COMPOSITE_LAST_EVENT_ID_LEN
        } else {
            MAX_LAST_EVENT_ID_LEN
        };
        if raw.is_empty() || raw.len() > max {
            return None;
        }
        Some(Self(raw.to_owned()))
    }

    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a number, for streams whose ids are sequence numbers.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }
}

/// Everything about the request that is not the function's typed input.
#[derive(Debug, Clone)]
pub struct Context {
    request_id: String,
    last_event_id: Option<LastEventId>,
    headers: HeaderMap,
    shutdown: CancellationToken,
    response_headers: Arc<Mutex<HeaderMap>>,
    metrics: Metrics,
}

impl Context {
    pub(crate) fn new(
        request_id: String,
        headers: HeaderMap,
        shutdown: CancellationToken,
        metrics: Metrics,
    ) -> Self {
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| {
                let id = LastEventId::parse(raw);
                if id.is_none() && !raw.trim().is_empty() {
                    tracing::warn!(len = raw.len(), "ignoring an unusable Last-Event-ID");
                }
                id
            });
        Self {
            request_id,
            last_event_id,
            headers,
            shutdown,
            response_headers: Arc::default(),
            metrics,
        }
    }

    pub(crate) fn response_headers(&self) -> Arc<Mutex<HeaderMap>> {
        self.response_headers.clone()
    }

    /// A context for calling a function directly (tests, other transports).
    pub fn detached() -> Self {
        Self::new(
            String::new(),
            HeaderMap::new(),
            CancellationToken::new(),
            Metrics::default(),
        )
    }

    /// The request id (from `x-request-id`, or generated).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The resume point a reconnecting SSE client sent, if any.
    pub fn last_event_id(&self) -> Option<&LastEventId> {
        self.last_event_id.as_ref()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Adds a header to the response (e.g. `Set-Cookie` on login). Headers added before a
    /// stream's first event are sent with it; later ones are ignored.
    pub fn append_response_header(&self, name: HeaderName, value: HeaderValue) {
        if let Ok(mut h) = self.response_headers.lock() {
            h.append(name, value);
        }
    }

    /// The app's runtime counters (open streams, cleanups, refusals, panics).
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Whether the server is shutting down.
    pub fn is_shutting_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Resolves when the server starts shutting down: select on it to end a stream cleanly.
    ///
    /// ```ignore
    /// tokio::select! {
    ///     _ = ctx.shutdown() => return,
    ///     item = source.next() => yield item,
    /// }
    /// ```
    pub fn shutdown(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.shutdown.clone().cancelled_owned()
    }
}
