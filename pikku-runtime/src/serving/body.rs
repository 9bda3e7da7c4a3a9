//! The response body: a complete buffer, or an event stream driven by the generator.

use std::convert::Infallible;
use std::future::Future as _;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::config::SseConfig;
use super::limits::StreamPermit;
use crate::call::{Step, Steps};
use crate::error::PikkuError;
use crate::metrics::{Metrics, StreamGuard};
use crate::session::end::{self as session_end, SessionEnd};
use crate::sse::{HEARTBEAT_FRAME, encode_error, lifetime_frame, shutdown_frame};

/// The response body: a complete buffer or an event stream.
pub enum PikkuBody {
    /// A complete body.
    Full(Option<Bytes>),
    /// An event stream.
    Sse(Box<SseBody>),
}

impl http_body::Body for PikkuBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            PikkuBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            PikkuBody::Sse(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, PikkuBody::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            PikkuBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            PikkuBody::Full(None) => http_body::SizeHint::with_exact(0),
            PikkuBody::Sse(_) => http_body::SizeHint::default(),
        }
    }
}

/// An empty complete body (e.g. a CORS preflight's answer).
impl Default for PikkuBody {
    fn default() -> Self {
        PikkuBody::Full(None)
    }
}

impl From<Bytes> for PikkuBody {
    fn from(b: Bytes) -> Self {
        PikkuBody::Full(Some(b))
    }
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
            lifetime: cfg.lifetime().map(|d| Box::pin(tokio::time::sleep(d))),
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
                Ok(Poll::Ready(Some(Step::Event(bytes)))) => {
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
                    let err = PikkuError::internal_logged();
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
    use crate::sse::encode_json;

    fn body_of(steps: Vec<Result<Bytes, ()>>) -> SseBody {
        use futures_util::StreamExt as _;
        let steps: Steps = Box::pin(futures_util::stream::iter(steps).map(|s| match s {
            Ok(b) => Step::Event(b),
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
}
