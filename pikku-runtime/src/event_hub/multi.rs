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
use std::task::{Context as TaskContext, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::Stream;
use futures_util::stream::{SelectAll, select_all};

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

/// A topic's subscription, tagged with its index; says once that it ended (a merged stream
/// ends with any of its topics, so the client reconnects and resumes them all).
struct Tagged {
    index: usize,
    sub: Option<Subscription>,
}

impl Stream for Tagged {
    type Item = (usize, Option<HubItem>);
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let Some(sub) = self.sub.as_mut() else {
            return Poll::Ready(None);
        };
        let item = std::task::ready!(Pin::new(sub).poll_next(cx));
        if item.is_none() {
            self.sub = None;
        }
        Poll::Ready(Some((self.index, item)))
    }
}

/// A subscription merging several topics (see
/// [`EventHubExt::subscribe_many`](super::EventHubExt::subscribe_many)): a `Stream` of
/// [`MultiItem`]s. It ends when any topic's subscription ends (a lagged disconnect). Dropping
/// it unsubscribes every topic.
pub struct MultiSubscription {
    merged: SelectAll<Tagged>,
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
        if self.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(Pin::new(&mut self.merged).poll_next(cx)) {
            Some((topic, Some(item))) => {
                match &item {
                    HubItem::Event(ev) => self.position.0[topic] = Some(ev.position()),
                    HubItem::Lagged { .. } => self.ended = true,
                    HubItem::Gap { .. } => {}
                }
                Poll::Ready(Some(MultiItem { topic, item }))
            }
            Some((_, None)) | None => {
                self.ended = true;
                Poll::Ready(None)
            }
        }
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

/// `id: <id>\n` then `body` (data lines and the blank line), or a blank line when empty.
fn id_frame(id: &CompositeId, body: &[u8]) -> Bytes {
    let id = id.to_string();
    let mut buf = BytesMut::with_capacity(4 + id.len() + 2 + body.len());
    buf.put_slice(b"id: ");
    buf.put_slice(id.as_bytes());
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
    let max = hub.max_topics_per_stream();
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
    let mut slots = Vec::with_capacity(opened.len());
    let merged = select_all(opened.into_iter().enumerate().map(|(index, (sub, pos))| {
        slots.push(pos);
        Tagged {
            index,
            sub: Some(sub),
        }
    }));
    Ok(MultiSubscription {
        merged,
        position: CompositeId(slots),
        ended: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for bad in ["", "m:", "m:x", "beef-1", "m:beef-1,,", "m:0-1"] {
            assert_eq!(CompositeId::parse(bad, 1), None, "{bad}");
        }
    }
}
