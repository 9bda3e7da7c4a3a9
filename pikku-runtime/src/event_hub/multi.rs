//! Many topics on one stream (Mercure's multi-topic subscriptions): one subscription merging
//! several topics, resumable per topic through a composite id.
//!
//! Each topic keeps its own subscription (and so its own resume, gap and slow-consumer
//! handling); this layer merges them fairly and names every event by a [`CompositeId`]: the
//! last delivered position of *every* topic, so whichever event a client saw last, its id
//! says where each topic stopped. The single-topic path is untouched.

use std::collections::HashSet;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use futures_util::task::{ArcWake, AtomicWaker};

use super::{EventHub, HubError, HubItem, Position, Subscription};
use crate::context::COMPOSITE_ID_PREFIX;
use crate::error::PikkuError;
use crate::sse::{self, Frame};

/// What a topic with no position in a composite id is resumed from: everything its window
/// holds (any event of it is newer than what the client saw, which was nothing).
const FROM_START: &str = "0";
/// An id no backend can read as a position: the topics of an unusable composite id resume as
/// from an unknown id (an `unknown_id` gap, then the window).
const UNKNOWN: &str = COMPOSITE_ID_PREFIX;

/// The resume point of a merged stream: the last delivered position of each topic, in the
/// order of the stream's topic list (`None`: nothing of that topic delivered, and none
/// retained when the stream opened).
///
/// Written `m:<slot>,<slot>,...` with a slot `<hex epoch>-<offset>` or `_`: ASCII without
/// CR, LF or NUL (a valid SSE id), at most 38 bytes a topic.
///
/// ```
/// use pikku::event_hub::{CompositeId, Position};
/// let id = CompositeId::new(vec![Some(Position { epoch: 0xbeef, offset: 7 }), None]);
/// assert_eq!(id.to_string(), "m:beef-7,_");
/// assert_eq!(CompositeId::parse("m:beef-7,_", 2), Some(id));
/// assert_eq!(CompositeId::parse("m:beef-7,_", 3), None, "another topic list");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompositeId(Vec<Option<Position>>);

impl CompositeId {
    /// A composite of the given per-topic positions.
    pub fn new(slots: Vec<Option<Position>>) -> Self {
        Self(slots)
    }

    /// The per-topic positions, in the stream's topic order.
    pub fn slots(&self) -> &[Option<Position>] {
        &self.0
    }

    /// The length of its text (what `Display` writes).
    fn text_len(&self) -> usize {
        let digits = |mut n: u64, base: u64| {
            let mut d = 1;
            while n >= base {
                n /= base;
                d += 1;
            }
            d
        };
        let slots: usize = self
            .0
            .iter()
            .map(|slot| slot.map_or(1, |p| digits(p.epoch, 16) + 1 + digits(p.offset, 10)))
            .sum();
        COMPOSITE_ID_PREFIX.len() + slots + self.0.len().saturating_sub(1)
    }

    /// Reads a composite id of a stream of `topics` topics; `None` when `text` is not one.
    pub fn parse(text: &str, topics: usize) -> Option<Self> {
        let body = text.trim().strip_prefix(COMPOSITE_ID_PREFIX)?;
        let slots = body
            .split(',')
            .map(|slot| match slot {
                "_" => Some(None),
                pos => pos.parse().ok().map(Some),
            })
            .collect::<Option<Vec<_>>>()?;
        (slots.len() == topics).then_some(Self(slots))
    }
}

impl fmt::Display for CompositeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(COMPOSITE_ID_PREFIX)?;
        for (i, slot) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match slot {
                Some(p) => write!(f, "{p}")?,
                None => f.write_str("_")?,
            }
        }
        Ok(())
    }
}

/// One item of a merged stream: which topic (its index in the stream's topic list) and what.
#[derive(Debug, Clone)]
pub struct MultiItem {
    /// The topic's index in the list the stream was opened with.
    pub topic: usize,
    /// The topic's item (an event keeps its own single-topic id; see
    /// [`MultiSubscription::id`] for the stream's).
    pub item: HubItem,
}

/// Which topics have something to read: a bit per topic (hence the ceiling of 64), set by
/// the topic's waker, and the merged stream's task to wake.
struct Ready {
    bits: AtomicU64,
    task: AtomicWaker,
}

/// A topic's waker: marks its bit and wakes the merged stream. Made once per topic, so a
/// delivery allocates nothing (a `select_all` allocates a task per item).
struct TopicWaker {
    bit: u64,
    ready: Arc<Ready>,
}

impl ArcWake for TopicWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.ready.bits.fetch_or(arc_self.bit, Ordering::AcqRel);
        arc_self.ready.task.wake();
    }
}

/// A subscription merging several topics (see
/// [`EventHubExt::subscribe_many`](super::EventHubExt::subscribe_many)): a `Stream` of
/// [`MultiItem`]s. It ends when any topic's subscription ends (a lagged disconnect). Dropping
/// it unsubscribes every topic.
pub struct MultiSubscription {
    subs: Vec<Subscription>,
    wakers: Vec<Waker>,
    ready: Arc<Ready>,
    /// Topics that may have items (taken from `ready`, kept while they yield).
    pending: u64,
    /// Where the next poll starts: round-robin, so a busy topic cannot starve the others.
    next: usize,
    position: CompositeId,
    ended: bool,
}

impl MultiSubscription {
    /// The stream's id now: every topic's last delivered position.
    pub fn id(&self) -> &CompositeId {
        &self.position
    }

    /// How many topics it merges.
    pub fn topics(&self) -> usize {
        self.position.0.len()
    }

    /// The subscription as SSE frames of `T` events. It opens with an id-only frame
    /// (`id: m:...`, no data: a browser records it as its last id without dispatching an
    /// event), so a reconnect before any event still resumes every topic. Each event is its
    /// published payload under the stream's composite id; gaps are `event: gap` (of one of the
    /// topics; the next event's id tells which moved) and a lagged disconnect is a final
    /// `event: error`, as in [`Subscription::frames`].
    pub fn frames<T>(self) -> impl Stream<Item = Frame<T>> + Send {
        MultiFrames::<T> {
            sub: Some(self),
            opened: false,
            _data: std::marker::PhantomData,
        }
    }
}

impl Stream for MultiSubscription {
    type Item = MultiItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<MultiItem>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        // Registered before the bits are taken, so a wake in between is not lost.
        this.ready.task.register(cx.waker());
        this.pending |= this.ready.bits.swap(0, Ordering::AcqRel);
        let n = this.subs.len();
        for k in 0..n {
            let topic = (this.next + k) % n;
            let bit = 1u64 << topic;
            if this.pending & bit == 0 {
                continue;
            }
            let mut topic_cx = TaskContext::from_waker(&this.wakers[topic]);
            match Pin::new(&mut this.subs[topic]).poll_next(&mut topic_cx) {
                Poll::Ready(Some(item)) => {
                    match &item {
                        HubItem::Event(ev) => this.position.0[topic] = Some(ev.position()),
                        HubItem::Lagged { .. } => this.ended = true,
                        HubItem::Gap { .. } => {}
                    }
                    // Its bit stays set: it may have more, read after the others' turn.
                    this.next = topic + 1;
                    return Poll::Ready(Some(MultiItem { topic, item }));
                }
                // A topic's subscription ended (a lagged disconnect): the stream ends, and the
                // client's reconnect resumes every topic.
                Poll::Ready(None) => {
                    this.ended = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => this.pending &= !bit,
            }
        }
        Poll::Pending
    }
}

impl fmt::Debug for MultiSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiSubscription")
            .field("id", &self.position.to_string())
            .finish_non_exhaustive()
    }
}

/// [`MultiSubscription::frames`].
struct MultiFrames<T> {
    sub: Option<MultiSubscription>,
    opened: bool,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T> Stream for MultiFrames<T> {
    type Item = Frame<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Frame<T>>> {
        let this = &mut *self;
        let Some(sub) = this.sub.as_mut() else {
            return Poll::Ready(None);
        };
        if !this.opened {
            this.opened = true;
            return Poll::Ready(Some(Frame::from_encoded(id_frame(sub.id(), b""))));
        }
        let frame = match std::task::ready!(Pin::new(&mut *sub).poll_next(cx)) {
            Some(MultiItem {
                item: HubItem::Event(ev),
                ..
            }) => {
                // The shared frame is `id: <position>\n<data lines>\n`: keep its data lines.
                let shared = ev.frame::<T>().into_bytes();
                let body = shared.slice((4 + ev.id().len() + 1).min(shared.len())..);
                id_frame(sub.id(), &body)
            }
            Some(MultiItem {
                item: HubItem::Gap { reason, missed },
                ..
            }) => sse::encode_gap(reason, missed),
            Some(MultiItem {
                item: HubItem::Lagged { missed },
                ..
            }) => {
                this.sub = None;
                let err = PikkuError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "lagged",
                    format!("fell behind by {missed} events; reconnect to resume"),
                );
                sse::encode_error(&err)
            }
            None => {
                this.sub = None;
                return Poll::Ready(None);
            }
        };
        Poll::Ready(Some(Frame::from_encoded(frame)))
    }
}

/// `id: <id>\n` then `body` (data lines and the blank line), or a blank line when empty:
/// one allocation of the exact size (a `Bytes` of a buffer with spare room would allocate
/// again), the id written in place.
fn id_frame(id: &CompositeId, body: &[u8]) -> Bytes {
    use std::fmt::Write as _;
    let tail = if body.is_empty() { 1 } else { body.len() };
    let mut buf = BytesMut::with_capacity(4 + id.text_len() + 1 + tail);
    buf.put_slice(b"id: ");
    // Writing into a `BytesMut` cannot fail.
    let _ = write!(buf, "{id}");
    buf.put_u8(b'\n');
    if body.is_empty() {
        buf.put_u8(b'\n');
    } else {
        buf.put_slice(body);
    }
    buf.freeze()
}

/// See [`EventHubExt::subscribe_many`](super::EventHubExt::subscribe_many).
pub(super) async fn subscribe_many<H: EventHub + ?Sized>(
    hub: &H,
    topics: &[String],
    last_event_id: Option<&str>,
) -> Result<MultiSubscription, HubError> {
    // The ready set has a bit per topic.
    let max = hub
        .max_topics_per_stream()
        .min(super::MAX_TOPICS_PER_STREAM_CEILING);
    if topics.len() > max {
        return Err(HubError::TooManyTopicsPerStream {
            requested: topics.len(),
            max,
        });
    }
    if topics.is_empty() {
        return Err(HubError::InvalidTopicList("no topic given".into()));
    }
    let mut seen = HashSet::with_capacity(topics.len());
    if let Some(twice) = topics.iter().find(|t| !seen.insert(t.as_str())) {
        return Err(HubError::InvalidTopicList(format!(
            "topic `{twice}` is named twice"
        )));
    }
    // Present but unusable (another topic list, garbage): every topic resumes as from an
    // unknown id, which each says with a gap.
    let resume = last_event_id.map(|id| CompositeId::parse(id, topics.len()));
    let opened = futures_util::future::try_join_all(topics.iter().enumerate().map(|(i, topic)| {
        let from: Option<Option<Position>> = match &resume {
            None => None,
            Some(Some(c)) => Some(c.0[i]),
            Some(None) => Some(None),
        };
        let unusable = matches!(resume, Some(None));
        async move {
            match from {
                // A fresh stream: after the newest retained event (so the composite id names
                // it from the start, and nothing published meanwhile is lost), else live.
                None => match hub.newest(topic).await? {
                    Some(p) => {
                        let sub = hub.subscribe_from(topic, Some(&p.to_string())).await?;
                        Ok((sub, Some(p)))
                    }
                    None => Ok((hub.subscribe_from(topic, None).await?, None)),
                },
                Some(Some(p)) => {
                    let sub = hub.subscribe_from(topic, Some(&p.to_string())).await?;
                    Ok((sub, Some(p)))
                }
                Some(None) => {
                    let from = if unusable { UNKNOWN } else { FROM_START };
                    Ok::<_, HubError>((hub.subscribe_from(topic, Some(from)).await?, None))
                }
            }
        }
    }))
    .await?;
    let ready = Arc::new(Ready {
        bits: AtomicU64::new(0),
        task: AtomicWaker::new(),
    });
    let (subs, slots): (Vec<_>, Vec<_>) = opened.into_iter().unzip();
    let wakers = (0..subs.len())
        .map(|topic| {
            futures_util::task::waker(Arc::new(TopicWaker {
                bit: 1 << topic,
                ready: ready.clone(),
            }))
        })
        .collect();
    Ok(MultiSubscription {
        // Every topic is polled once first (which registers its waker).
        pending: u64::MAX >> (64 - subs.len().clamp(1, 64)),
        subs,
        wakers,
        ready,
        next: 0,
        position: CompositeId(slots),
        ended: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_hub::{EventHubExt, MemoryHub};
    use futures_util::StreamExt;
    use std::time::Duration;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("t{i}")).collect()
    }

    #[tokio::test]
    async fn a_busy_topic_does_not_starve_the_others() {
        let hub = MemoryHub::new();
        let topics = names(2);
        let mut sub = hub.subscribe_many(&topics, None).await.unwrap();
        for n in 0..100 {
            hub.publish("t0", &n).await.unwrap();
        }
        hub.publish("t1", &"quiet").await.unwrap();
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(sub.next().await.unwrap().topic);
        }
        assert!(first.contains(&1), "round-robin: {first:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publishers_reach_a_merged_stream_exactly_once() {
        let hub = std::sync::Arc::new(MemoryHub::new());
        let topics = names(16);
        let mut sub = hub.subscribe_many(&topics, None).await.unwrap();
        let per_topic = 500u64;
        for topic in topics.clone() {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 0..per_topic {
                    hub.publish(&topic, &n).await.unwrap();
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
        let mut next = [1u64; 16];
        for _ in 0..16 * per_topic {
            let item = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("in time")
                .expect("open");
            match item.item {
                HubItem::Event(e) => {
                    assert_eq!(e.seq(), next[item.topic], "in order, once");
                    next[item.topic] += 1;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(next, [per_topic + 1; 16]);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err()
        );
    }

    #[test]
    fn composite_ids_are_bounded_sse_safe_and_round_trip() {
        let worst = Position {
            epoch: u64::MAX,
            offset: u64::MAX,
        };
        let n = super::super::MAX_TOPICS_PER_STREAM_CEILING;
        let id = CompositeId::new(vec![Some(worst); n]);
        let text = id.to_string();
        assert!(text.len() <= crate::context::MAX_COMPOSITE_LAST_EVENT_ID_LEN);
        assert!(!text.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        assert_eq!(CompositeId::parse(&text, n), Some(id));
        assert!(crate::LastEventId::parse(&text).is_some());
        for slots in [
            vec![None],
            vec![
                Some(Position {
                    epoch: 1,
                    offset: 0,
                }),
                None,
            ],
            vec![
                Some(worst),
                Some(Position {
                    epoch: 0xabc,
                    offset: 10,
                }),
            ],
        ] {
            let id = CompositeId::new(slots);
            assert_eq!(id.text_len(), id.to_string().len(), "{id}");
        }
        for bad in ["", "m:", "m:x", "beef-1", "m:beef-1,,", "m:0-1"] {
            assert_eq!(CompositeId::parse(bad, 1), None, "{bad}");
        }
    }
}
