//! Server-Sent Events: the event type, its wire encoding, and the response body that
//! drives a generator.
//!
//! Encoding follows the WHATWG `text/event-stream` format: every field is written as
//! `field: value`, data is split into one `data:` line per line of the payload (CR, LF and
//! CRLF all end a line, so no payload can break framing), and an event ends with a blank line.
//! Fields that cannot be split (`id`, `event`) are validated when the [`Event`] is built.
//!
//! ```
//! use pikku::sse::Event;
//! let ev = Event::new(serde_json::json!({"n": 1})).with_id(7).unwrap().with_event("tick").unwrap();
//! assert_eq!(&ev.encode().unwrap()[..], b"id: 7\nevent: tick\ndata: {\"n\":1}\n\n");
//! assert!(Event::new(()).with_event("bad\nname").is_err());
//! ```

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::io::Write as _;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde::Serialize;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::dispatch::{Step, Steps};
use crate::error::PikkuError;
use crate::limits::StreamPermit;
use crate::metrics::{Metrics, StreamGuard};
use crate::session_end::{self, SessionEnd};

/// Default heartbeat interval (as FastAPI's and axum's SSE helpers use).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The comment line sent when a stream has been idle for the heartbeat interval.
pub const HEARTBEAT_FRAME: &[u8] = b": ping\n\n";

/// An SSE event carrying typed data plus the optional `id`, `event` and `retry` fields.
///
/// Yield `Event<T>` items from a stream function to set these fields per item; plain `T`
/// items are sent as data-only events.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T> {
    data: T,
    id: Option<String>,
    event: Option<Cow<'static, str>>,
    retry: Option<Duration>,
}

/// Returned when an `id` or `event` value contains CR, LF or NUL, which SSE cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE `{field}` field must not contain CR, LF or NUL")]
pub struct InvalidEventField {
    field: &'static str,
}

impl From<InvalidEventField> for PikkuError {
    fn from(e: InvalidEventField) -> Self {
        PikkuError::internal(e)
    }
}

fn check_field(field: &'static str, v: &str) -> Result<(), InvalidEventField> {
    if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(InvalidEventField { field })
    } else {
        Ok(())
    }
}

impl<T> Event<T> {
    /// A data-only event.
    pub fn new(data: T) -> Self {
        Self {
            data,
            id: None,
            event: None,
            retry: None,
        }
    }

    /// Sets the `id:` field (the value a reconnecting client sends back as `Last-Event-ID`).
    pub fn with_id(mut self, id: impl fmt::Display) -> Result<Self, InvalidEventField> {
        let id = id.to_string();
        check_field("id", &id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the `event:` field (the event type a browser dispatches on).
    pub fn with_event(
        mut self,
        event: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidEventField> {
        let event = event.into();
        check_field("event", &event)?;
        self.event = Some(event);
        Ok(self)
    }

    /// Sets the `retry:` field: how long a client waits before reconnecting.
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The data.
    pub fn data(&self) -> &T {
        &self.data
    }
    /// The `id:` field, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// The `event:` field, if set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }
}

impl<T> From<T> for Event<T> {
    fn from(data: T) -> Self {
        Event::new(data)
    }
}

impl<T: Serialize> Event<T> {
    /// Encodes the event as it goes on the wire (data as JSON).
    pub fn encode(&self) -> Result<Bytes, PikkuError> {
        encode_with(|buf| {
            write_field(buf, b"id", self.id.as_deref());
            write_field(buf, b"event", self.event.as_deref());
            if let Some(retry) = self.retry {
                let _ = writeln!(buf.writer(), "retry: {}", retry.as_millis());
            }
            write_json_data(buf, &self.data)
        })
    }
}

fn write_field(buf: &mut BytesMut, name: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(v.as_bytes());
        buf.put_u8(b'\n');
    }
}

/// An event already encoded for the wire, typed by the data it carries.
///
/// The event hub encodes each published event once and hands every subscriber the same
/// bytes as a `Frame<T>`; yielding it sends those bytes as they are (no serialization per
/// subscriber). `T` only documents the data (OpenAPI, clients).
pub struct Frame<T> {
    bytes: Bytes,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T> Frame<T> {
    /// Wraps bytes that are one or more complete SSE events.
    pub fn from_encoded(bytes: Bytes) -> Self {
        Self {
            bytes,
            _data: std::marker::PhantomData,
        }
    }
    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// The encoded bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl<T> Clone for Frame<T> {
    fn clone(&self) -> Self {
        Self::from_encoded(self.bytes.clone())
    }
}

impl<T> fmt::Debug for Frame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&self.bytes).finish()
    }
}

/// Encodes an event with an optional `event:` name and a JSON payload that is already
/// serialized (`json` must be one line, as serde_json's compact output is).
pub fn encode_raw(id: Option<&str>, event: Option<&str>, json: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(json.len() + 32);
    write_field(&mut buf, b"id", id);
    write_field(&mut buf, b"event", event);
    write_data_lines(&mut buf, json);
    buf.freeze()
}

/// Encodes a data-only event whose data is `value` as JSON.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, PikkuError> {
    encode_with(|buf| write_json_data(buf, value))
}

/// Scratch buffers larger than this are not kept for the next event.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Encodes into this thread's scratch buffer, then copies the result into an exactly-sized
/// `Bytes`: one allocation per event. (`BytesMut::with_capacity(..).freeze()` costs two:
/// the buffer, and the shared header `Bytes` adds when length and capacity differ.)
fn encode_with(
    write: impl FnOnce(&mut BytesMut) -> Result<(), PikkuError>,
) -> Result<Bytes, PikkuError> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = write(&mut buf).map(|()| Bytes::copy_from_slice(&buf));
            if buf.capacity() > SCRATCH_KEEP {
                *buf = BytesMut::new();
            }
            result
        }
        // Re-entered (a `Serialize` impl that encodes an event itself): a fresh buffer.
        Err(_) => {
            let mut buf = BytesMut::with_capacity(128);
            write(&mut buf)?;
            Ok(buf.freeze())
        }
    })
}

fn write_json_data<T: Serialize + ?Sized>(buf: &mut BytesMut, value: &T) -> Result<(), PikkuError> {
    let start = buf.len();
    buf.put_slice(b"data: ");
    serde_json::to_writer(buf.writer(), value).map_err(PikkuError::internal)?;
    // Compact serde_json output never holds a raw line break; a custom serializer might.
    if buf[start..].iter().any(|b| matches!(b, b'\r' | b'\n')) {
        let payload = buf.split_off(start + 6);
        buf.truncate(start);
        write_data_lines(buf, &payload);
    } else {
        buf.put_slice(b"\n\n");
    }
    Ok(())
}

/// Writes `payload` as `data:` lines (split on CR, LF and CRLF) and ends the event.
pub fn write_data_lines(buf: &mut BytesMut, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let end = rest.iter().position(|b| matches!(b, b'\r' | b'\n'));
        buf.put_slice(b"data: ");
        match end {
            None => {
                buf.put_slice(rest);
                buf.put_u8(b'\n');
                break;
            }
            Some(i) => {
                buf.put_slice(&rest[..i]);
                buf.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    buf.put_u8(b'\n');
}

/// An `event: error` whose data is the error's JSON body. Sent for `Err` items.
pub fn encode_error(err: &PikkuError) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_slice(b"event: error\n");
    let body = serde_json::json!({"error": err.code(), "message": err.message()});
    // A json! value always serializes.
    let _ = write_json_data(&mut buf, &body);
    buf.freeze()
}

/// SSE behaviour of an app (the seed's `sse: { headers, heartbeat }`), overridable per route.
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

    /// Adds a header to every SSE response (the seed's `sse.headers`).
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

    pub(crate) fn prelude(&self) -> Option<Bytes> {
        self.retry
            .map(|r| Bytes::from(format!("retry: {}\n\n", r.as_millis())))
    }
}

/// The frame that ends a stream at its maximum lifetime: the client reconnects at once.
pub fn lifetime_frame() -> Bytes {
    Bytes::from_static(
        b"event: close\nretry: 0\ndata: {\"reason\":\"maximum stream lifetime reached\"}\n\n",
    )
}

/// The frame sent to every open stream when the server shuts down: tells the client to
/// reconnect (to another instance) after a short pause.
pub fn shutdown_frame() -> Bytes {
    Bytes::from_static(
        b"event: shutdown\nretry: 1000\ndata: {\"reason\":\"server shutting down\"}\n\n",
    )
}

/// The streaming response body: polls the generator only when the connection asks for
/// the next frame (so a slow client slows the generator instead of growing a buffer),
/// interleaves heartbeats, turns a panic into a final error event, and ends on shutdown.
///
/// Dropping the body (the client went away) drops the generator, which runs its cleanup.
pub struct SseBody {
    steps: Option<Steps>,
    prelude: Option<Bytes>,
    heartbeat: Option<(Duration, Pin<Box<Sleep>>)>,
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    shutdown_token: Option<CancellationToken>,
    lifetime: Option<Pin<Box<Sleep>>>,
    session_end: Option<SessionEnd>,
    metrics: Metrics,
    // Released when the body is dropped: the stream's place under the limits, and its count.
    _guards: (StreamGuard, Option<StreamPermit>),
    span: tracing::Span,
}

impl SseBody {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        steps: Steps,
        cfg: &SseConfig,
        heartbeat: Option<Duration>,
        shutdown: Option<CancellationToken>,
        metrics: Metrics,
        permit: Option<StreamPermit>,
        session_end: Option<SessionEnd>,
        span: tracing::Span,
    ) -> Self {
        Self {
            steps: Some(steps),
            prelude: cfg.prelude(),
            heartbeat: heartbeat.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            shutdown: shutdown.clone().map(|t| Box::pin(t.cancelled_owned())),
            shutdown_token: shutdown,
            lifetime: cfg.max_lifetime.map(|d| Box::pin(tokio::time::sleep(d))),
            session_end,
            _guards: (metrics.stream(), permit),
            metrics,
            span,
        }
    }
}

/// Most bytes of ready events [`SseBody`] gathers into one body frame.
///
/// Events the generator has ready at once (a burst from the hub, a fast producer) go out as
/// one frame, so the connection writes one chunk and makes one syscall for many events,
/// and the per-frame work (span entry, heartbeat reset) is paid once per batch. The bound
/// keeps the promise that a slow client slows its generator instead of growing a buffer.
pub const COALESCE_MAX_BYTES: usize = 16 * 1024;

/// Ready events gathered for one body frame: the first as it is (no copy when it is alone),
/// later ones appended to a buffer.
#[derive(Default)]
struct Batch {
    first: Option<Bytes>,
    more: BytesMut,
}

impl Batch {
    fn push(&mut self, bytes: Bytes) {
        match self.first.take() {
            None if self.more.is_empty() => self.first = Some(bytes),
            first => {
                if let Some(first) = first {
                    // Headroom past the bound, so the event that crosses it does not double
                    // the buffer.
                    self.more.reserve(
                        (COALESCE_MAX_BYTES + COALESCE_MAX_BYTES / 4)
                            .max(first.len() + bytes.len()),
                    );
                    self.more.put_slice(&first);
                }
                self.more.put_slice(&bytes);
            }
        }
    }

    fn len(&self) -> usize {
        self.first.as_ref().map_or(self.more.len(), Bytes::len)
    }

    fn into_frame(self) -> Option<http_body::Frame<Bytes>> {
        match self.first {
            Some(b) => Some(http_body::Frame::data(b)),
            // A frame may wait in the connection's buffer for as long as its client does not
            // read: it keeps only its own bytes, not the spare capacity reserved for a batch.
            None if self.more.capacity() > self.more.len() + self.more.len() / 4 => {
                Some(http_body::Frame::data(Bytes::copy_from_slice(&self.more)))
            }
            None if !self.more.is_empty() => Some(http_body::Frame::data(self.more.freeze())),
            None => None,
        }
    }
}

impl http_body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Infallible>>> {
        let SseBody {
            steps: steps_slot,
            prelude,
            heartbeat,
            shutdown,
            shutdown_token,
            lifetime,
            session_end,
            metrics,
            span,
            ..
        } = self.get_mut();
        let _enter = span.enter();
        // Dropping the generator here (not when hyper drops the body) runs its cleanup now.
        macro_rules! finish {
            () => {{
                *steps_slot = None;
                *heartbeat = None;
                *shutdown = None;
                *lifetime = None;
                *session_end = None;
            }};
        }
        if let Some(p) = prelude.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(p))));
        }
        let mut batch = Batch::default();
        while let Some(steps) = steps_slot.as_mut() {
            match std::panic::catch_unwind(AssertUnwindSafe(|| steps.as_mut().poll_next(cx))) {
                Ok(Poll::Ready(Some(Step::Frame(bytes)))) => {
                    batch.push(bytes);
                    if batch.len() >= COALESCE_MAX_BYTES {
                        break;
                    }
                }
                Ok(Poll::Ready(Some(other))) => {
                    // Open/Json/Fail only make sense before the stream started.
                    tracing::error!(step = ?other, "unexpected step inside an open stream");
                    finish!();
                    let err = PikkuError::internal("unexpected step inside an open stream");
                    batch.push(encode_error(&err));
                }
                Ok(Poll::Ready(None)) => {
                    finish!();
                    // A generator that ended because the server is shutting down still tells
                    // its client to reconnect elsewhere.
                    if shutdown_token.take().is_some_and(|t| t.is_cancelled()) {
                        batch.push(shutdown_frame());
                    }
                }
                Ok(Poll::Pending) => break,
                Err(panic) => {
                    metrics.panic();
                    let msg = panic_message(&panic);
                    tracing::error!(panic = %msg, "stream generator panicked; ending this stream");
                    finish!();
                    let err = PikkuError::new(
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "internal server error",
                    );
                    batch.push(encode_error(&err));
                }
            }
        }
        if let Some(frame) = batch.into_frame() {
            // One reset per batch: the stream was active just now.
            if let Some((every, sleep)) = heartbeat.as_mut() {
                sleep.as_mut().reset(Instant::now() + *every);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        if steps_slot.is_none() {
            return Poll::Ready(None);
        }
        if let Some(shutdown) = shutdown.as_mut() {
            if shutdown.as_mut().poll(cx).is_ready() {
                finish!();
                *shutdown_token = None;
                return Poll::Ready(Some(Ok(http_body::Frame::data(shutdown_frame()))));
            }
        }
        if let Some(end) = session_end.as_mut() {
            if let Poll::Ready(reason) = end.poll(cx) {
                finish!();
                tracing::debug!(?reason, "the stream's session ended");
                return Poll::Ready(Some(Ok(http_body::Frame::data(session_end::frame(reason)))));
            }
        }
        if let Some(deadline) = lifetime.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                finish!();
                return Poll::Ready(Some(Ok(http_body::Frame::data(lifetime_frame()))));
            }
        }
        if let Some((every, sleep)) = heartbeat.as_mut() {
            if sleep.as_mut().poll(cx).is_ready() {
                sleep.as_mut().reset(Instant::now() + *every);
                // Poll once more so the new deadline registers this task's waker.
                let _ = sleep.as_mut().poll(cx);
                return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                    HEARTBEAT_FRAME,
                )))));
            }
        }
        Poll::Pending
    }
}

use std::future::Future as _;

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_on_every_line_ending() {
        let mut buf = BytesMut::new();
        write_data_lines(&mut buf, b"a\rb\nc\r\nd\n");
        assert_eq!(&buf[..], b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
    }

    #[test]
    fn json_data_is_one_line() {
        let b = encode_json(&serde_json::json!({"s": "x\ny"})).unwrap();
        assert_eq!(&b[..], b"data: {\"s\":\"x\\ny\"}\n\n");
    }

    #[test]
    fn invalid_fields_rejected_when_built() {
        assert!(Event::new(1).with_id("a\rb").is_err());
        assert!(Event::new(1).with_id("a\0b").is_err());
        assert!(Event::new(1).with_event("x\n").is_err());
        assert!(Event::new(1).with_id("ok-1").is_ok());
    }

    #[test]
    fn retry_is_written_in_millis() {
        let b = Event::new(1)
            .with_retry(Duration::from_secs(2))
            .encode()
            .unwrap();
        assert_eq!(&b[..], b"retry: 2000\ndata: 1\n\n");
    }

    fn body_of(steps: Vec<Result<Bytes, ()>>) -> SseBody {
        use futures_util::StreamExt as _;
        let steps: Steps = Box::pin(futures_util::stream::iter(steps).map(|s| match s {
            Ok(b) => Step::Frame(b),
            Err(()) => panic!("generator failed"),
        }));
        SseBody::new(
            steps,
            &SseConfig::default(),
            None,
            None,
            Metrics::default(),
            None,
            None,
            tracing::Span::none(),
        )
    }

    async fn frames_of(mut body: SseBody) -> Vec<Bytes> {
        use http_body_util::BodyExt as _;
        let mut out = Vec::new();
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.unwrap().into_data() {
                out.push(d);
            }
        }
        out
    }

    #[tokio::test]
    async fn ready_events_are_coalesced_within_the_bound() {
        let events: Vec<Bytes> = (0..2000).map(|i| encode_json(&i).unwrap()).collect();
        let frames = frames_of(body_of(events.iter().cloned().map(Ok).collect())).await;
        assert_eq!(
            frames.concat(),
            events.concat(),
            "every event, in order, intact"
        );
        assert!(
            frames.len() > 1 && frames.len() < 10,
            "{} frames",
            frames.len()
        );
        let largest = events.iter().map(Bytes::len).max().unwrap();
        assert!(
            frames
                .iter()
                .all(|f| f.len() < COALESCE_MAX_BYTES + largest)
        );
        // One event alone is passed on as it is.
        let one = encode_json(&1).unwrap();
        assert_eq!(frames_of(body_of(vec![Ok(one.clone())])).await, vec![one]);
    }

    #[tokio::test]
    async fn a_panic_mid_batch_keeps_the_events_before_it_and_ends_the_stream() {
        let a = encode_json(&"a").unwrap();
        let b = encode_json(&"b").unwrap();
        let frames = frames_of(body_of(vec![Ok(a.clone()), Ok(b.clone()), Err(())])).await;
        let all = frames.concat();
        assert!(all.starts_with(&[a, b].concat()));
        assert!(all.ends_with(b"event: error\ndata: {\"error\":\"internal\",\"message\":\"internal server error\"}\n\n"));
    }

    #[test]
    fn error_event_has_json_body() {
        let b = encode_error(&PikkuError::bad_request("nope"));
        assert_eq!(
            &b[..],
            b"event: error\ndata: {\"error\":\"bad_request\",\"message\":\"nope\"}\n\n"
        );
    }
}
