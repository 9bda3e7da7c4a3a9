//! Per-request context a function may take as `ctx: &Context`: request id, the SSE resume
//! point (`Last-Event-ID`), the request headers, the client's address, and the server's
//! shutdown signal.
//!
//! The resume point comes from the `Last-Event-ID` header (what a browser's `EventSource`
//! sends when it reconnects) or, on stream routes, from the query parameter
//! [`LAST_EVENT_ID_QUERY`] (`?lastEventId=...`), since a browser's first request cannot set
//! headers. The header wins when both are present. `earliest` (Mercure's convention) reads as
//! `0`: from the start of what the stream keeps.

use std::net::IpAddr;

use parking_lot::Mutex;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, MetricsSnapshot};

/// Longest `Last-Event-ID` accepted; longer ones are treated as absent (and logged).
pub const MAX_LAST_EVENT_ID_LEN: usize = 256;

/// The query parameter that carries a resume point on stream routes (`?lastEventId=...`),
/// for a first connection that cannot send the `Last-Event-ID` header (a browser's
/// `EventSource`). Reserved on stream routes: the runtime takes it off the query before the
/// function's input is decoded, unless the input declares a field of that name.
pub const LAST_EVENT_ID_QUERY: &str = "lastEventId";

/// The resume point that means "from the start of what the stream keeps" (Mercure's
/// convention); [`LastEventId::parse`] reads it as `0`.
pub const EARLIEST: &str = "earliest";

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
/// // Mercure's `earliest`: from the start of the replay window, the same as `0`.
/// assert_eq!(LastEventId::parse("earliest").unwrap().as_str(), "0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LastEventId(String);

impl LastEventId {
    /// Reads a header (or query) value; `None` for empty or over-long ids (over
    /// [`MAX_LAST_EVENT_ID_LEN`] bytes, or [`MAX_COMPOSITE_LAST_EVENT_ID_LEN`] for a composite).
    /// [`EARLIEST`] reads as `0`, the id that asks a stream for everything it keeps.
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
        if raw == EARLIEST {
            return Some(Self("0".to_owned()));
        }
        Some(Self(raw.to_owned()))
    }

    /// Reads one source of the id, logging (not failing on) an unusable one.
    fn read(raw: &str, source: &'static str) -> Option<Self> {
        let id = Self::parse(raw);
        if id.is_none() && !raw.trim().is_empty() {
            tracing::warn!(
                len = raw.len(),
                source,
                "ignoring an unusable Last-Event-ID"
            );
        }
        id
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
#[derive(Debug)]
pub struct Context {
    request_id: String,
    last_event_id: Option<LastEventId>,
    headers: HeaderMap,
    client_ip: Option<IpAddr>,
    shutdown: CancellationToken,
    /// Headers the function adds; they leave with the call's first step (see
    /// [`Context::take_response_headers`]).
    response_headers: Mutex<HeaderMap>,
    metrics: Metrics,
}

impl Clone for Context {
    /// A copy with the headers added so far; headers added to the copy are its own.
    fn clone(&self) -> Self {
        Self {
            request_id: self.request_id.clone(),
            last_event_id: self.last_event_id.clone(),
            headers: self.headers.clone(),
            client_ip: self.client_ip,
            shutdown: self.shutdown.clone(),
            response_headers: Mutex::new(self.response_headers.lock().clone()),
            metrics: self.metrics.clone(),
        }
    }
}

impl Context {
    /// `query_last_event_id` is the stream route's `lastEventId` query parameter, if any:
    /// used when the request has no usable `Last-Event-ID` header (the header wins).
    pub(crate) fn new(
        request_id: String,
        headers: HeaderMap,
        client_ip: Option<IpAddr>,
        query_last_event_id: Option<&str>,
        shutdown: CancellationToken,
        metrics: Metrics,
    ) -> Self {
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|raw| LastEventId::read(raw, "header"))
            .or_else(|| query_last_event_id.and_then(|raw| LastEventId::read(raw, "query")));
        Self {
            request_id,
            last_event_id,
            headers,
            client_ip,
            shutdown,
            response_headers: Mutex::default(),
            metrics,
        }
    }

    /// Takes the headers added so far: the generated handler hands them back with the call's
    /// first step, so they travel with the result instead of through shared state.
    pub(crate) fn take_response_headers(&self) -> HeaderMap {
        std::mem::take(&mut *self.response_headers.lock())
    }

    /// A context for calling a function directly (tests, other transports).
    pub fn detached() -> Self {
        Self::new(
            String::new(),
            HeaderMap::new(),
            None,
            None,
            CancellationToken::new(),
            Metrics::default(),
        )
    }

    /// The request id (from `x-request-id`, or generated).
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The resume point a reconnecting SSE client sent (the `Last-Event-ID` header, or on
    /// stream routes the `lastEventId` query parameter), if any.
    pub fn last_event_id(&self) -> Option<&LastEventId> {
        self.last_event_id.as_ref()
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The client's address: the connection's peer or, from a trusted reverse proxy, the
    /// client it names (see [`TrustedProxies`](crate::TrustedProxies)); the address the per-IP
    /// limits count. `None` where the transport has none (a [`detached`](Self::detached)
    /// context, a server that does not record peers).
    pub fn client_ip(&self) -> Option<IpAddr> {
        self.client_ip
    }

    /// Adds a header to the response (e.g. `Set-Cookie` on login). Headers added before a
    /// stream's first event are sent with it; later ones are ignored.
    pub fn append_response_header(&self, name: HeaderName, value: HeaderValue) {
        self.response_headers.lock().append(name, value);
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
