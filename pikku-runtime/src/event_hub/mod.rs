//! The event hub: publish/subscribe by topic, with positions that detect loss, a bounded
//! replay window, resume, and memory budgets.
//!
//! This is what a stream of "one topic per user" subscribes to
//! (`hub.resume(&topic(&["user", id, "notifications"]), ctx.last_event_id())`). An app keeps
//! an `Arc<dyn EventHub>` in its services; [`MemoryHub`] (embedded, the default) serves one
//! process; `redis::RedisHub` (feature `redis`), `nats::NatsHub` (feature `nats`: NATS
//! JetStream) and `postgres::PgHub` (feature `postgres`) serve many behind the same trait.
//!
//! # Positions
//! Every event has a [`Position`] in its topic: an *epoch* and an *offset*. Offsets count the
//! topic's events (1, 2, 3, ...). The epoch names one unbroken history of the topic and changes
//! whenever the backend may have lost that history (the topic expired entirely, the server
//! restarted without persistence, its data was deleted). The position is the event's SSE `id:`
//! (`<epoch>-<offset>`), so a client's `Last-Event-ID` says exactly where it stopped.
//!
//! # Guarantees of every backend
//! - **No silent loss.** [`EventHub::subscribe_from`] yields the events after a position, then
//!   live ones, with no gap and no duplicate across the hand-over. When continuity cannot be
//!   proven (the position's epoch is gone, the events after it were trimmed, the id is unknown)
//!   the stream says so with a [`HubItem::Gap`] (reason, and the count when known) before the
//!   newer events.
//! - **One shared log per topic.** Subscribers hold a cursor into the topic's window, not a
//!   queue of their own: a subscriber that does not read costs a cursor, and a burst up to the
//!   window never drops a subscriber that keeps reading. A subscriber that falls further behind
//!   than [`HubConfig::subscriber_queue`] (never more than the window) gets the
//!   [`SlowConsumerPolicy`]; since the window is at least that lag, "reconnect to resume"
//!   replays what it missed.
//! - **Bounded memory.** Topics, retained bytes and event size have budgets ([`HubConfig`]);
//!   what a budget refuses is a [`HubError`] the publisher sees (a 413 or 503), never an OOM.
//!   Expired events are trimmed on a timer, not only when a topic is touched.
//! - The payload is serialized once at publish; every subscriber shares the same bytes (and
//!   the same pre-encoded SSE frame).
//! - A subscription is removed when it is dropped, and the hub reports how many are live.
//!
//! # Presence
//! [`EventHub::join`] makes a member (a user id) present in a topic until its
//! [`PresenceGuard`] is dropped; [`EventHub::presence`] lists a topic's members across
//! instances. Tabs and instances of one member are one member: its first join and its last
//! leave are announced on the topic as events that [`presence_frames`] writes as
//! `event: join` / `event: leave` (`{"userId": ...}`). Entries of an instance that dies expire
//! after [`HubConfig::presence_ttl`] (refreshed every [`HubConfig::presence_heartbeat`]), and
//! a surviving instance announces their leave. Members per topic and topics per instance are
//! bounded ([`HubConfig::max_presence_members`], [`HubConfig::max_presence_topics`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use futures_util::StreamExt;
//! use pikku::event_hub::{EventHub, EventHubExt, HubItem, MemoryHub};
//!
//! let hub = MemoryHub::new();
//! let mut sub = hub.subscribe("news").await.unwrap();
//! let id = hub.publish("news", &serde_json::json!({"title": "hi"})).await.unwrap();
//! let Some(HubItem::Event(ev)) = sub.next().await else { panic!() };
//! assert_eq!(ev.id(), id);
//! assert_eq!(ev.position().offset, 1);
//! assert_eq!(ev.json(), &b"{\"title\":\"hi\"}"[..]);
//! drop(sub);
//! assert_eq!(hub.live_subscriptions(), 0);
//! # }
//! ```

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::LastEventId;
use crate::error::PikkuError;
use crate::sse::{self, Event, Frame};

mod config;
#[cfg(any(feature = "redis", feature = "nats", feature = "postgres"))]
mod followed;
mod latest;
mod local;
// Parts of the log only the remote backends use (their readers append, they replay).
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
mod log;
mod memory;
mod multi;
#[cfg(feature = "nats")]
pub mod nats;
mod position;
#[cfg(feature = "postgres")]
pub mod postgres;
mod presence;
#[cfg(feature = "redis")]
pub mod redis;

/// Why a subscription missed events (the `reason` of an `event: gap`).
pub use crate::sse::GapReason;
pub use config::{HUB_ENV_VARS, HubConfig, MAX_TOPICS_PER_STREAM_CEILING, SlowConsumerPolicy};
pub use local::LocalParts;
pub use memory::MemoryHub;
pub use multi::{CompositeId, MultiItem, MultiSubscription};
pub use position::{Position, Resume};
pub use presence::{PRESENCE_JOIN, PRESENCE_LEAVE, PresenceChange, PresenceGuard, presence_frames};

/// Builds a topic name from parts, escaping each so that a user-controlled part (a user id,
/// say) cannot change the topic's structure: `:` and `%` in a part are percent-encoded.
///
/// ```
/// use pikku::event_hub::topic;
/// assert_eq!(topic(&["user", "alice", "notifications"]), "user:alice:notifications");
/// assert_eq!(topic(&["user", "alice:admin", "notifications"]), "user:alice%3Aadmin:notifications");
/// ```
pub fn topic(parts: &[&str]) -> String {
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        for c in part.chars() {
            match c {
                ':' => out.push_str("%3A"),
                '%' => out.push_str("%25"),
                c => out.push(c),
            }
        }
    }
    out
}

/// One published event, as every subscriber receives it.
#[derive(Clone)]
pub struct HubEvent(Arc<Record>);

struct Record {
    pos: Position,
    /// `id: <pos>\ndata: <json>\n\n`: the only copy of the payload when it is one line.
    frame: Bytes,
    /// A view into `frame` (or its own bytes when the payload has line breaks).
    json: Bytes,
    /// The length of the id in `frame`, after `id: `.
    id_len: usize,
    at: Instant,
}

impl HubEvent {
    /// Builds an event; its SSE frame is encoded now, once (backends call this).
    pub fn new(pos: Position, json: Bytes) -> Self {
        use std::io::Write;
        let single_line = !json.iter().any(|b| matches!(b, b'\r' | b'\n'));
        let mut buf = Vec::with_capacity(4 + 21 + 1 + 15 + 6 + json.len() + 2);
        let _ = writeln!(buf, "id: {pos}");
        let id_len = buf.len() - 5;
        let (frame, json) = if single_line {
            buf.extend_from_slice(b"data: ");
            let start = buf.len();
            buf.extend_from_slice(&json);
            let end = buf.len();
            buf.extend_from_slice(b"\n\n");
            let frame = Bytes::from(buf);
            let json = frame.slice(start..end);
            (frame, json)
        } else {
            let mut data = bytes::BytesMut::new();
            sse::write_data_lines(&mut data, &json);
            buf.extend_from_slice(&data);
            (Bytes::from(buf), json)
        };
        Self(Arc::new(Record {
            pos,
            frame,
            json,
            id_len,
            at: Instant::now(),
        }))
    }
    /// The event's id (its SSE `id:`): its [`Position`] as text.
    pub fn id(&self) -> &str {
        let id = &self.0.frame[4..4 + self.0.id_len];
        // The frame was written from a `Position`'s `Display`: ASCII.
        std::str::from_utf8(id).unwrap_or_default()
    }
    /// The event's position in its topic.
    pub fn position(&self) -> Position {
        self.0.pos
    }
    /// The event's offset in its topic (increasing by one with each publish, per epoch).
    pub fn seq(&self) -> u64 {
        self.0.pos.offset
    }
    /// The payload as JSON.
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }
    /// The pre-encoded SSE frame (`id:` and `data:`), shared by all subscribers.
    pub fn frame<T>(&self) -> Frame<T> {
        Frame::from_encoded(self.0.frame.clone())
    }
    /// The payload decoded as `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, PikkuError> {
        serde_json::from_slice(&self.0.json).map_err(PikkuError::internal)
    }
    /// The payload decoded as an [`Event`] carrying this event's id.
    pub fn to_event<T: DeserializeOwned>(&self) -> Result<Event<T>, PikkuError> {
        Ok(Event::new(self.decode()?).with_id(self.id())?)
    }
    /// Bytes this event holds in memory (what the hub's byte budget counts).
    pub fn retained_bytes(&self) -> usize {
        let json_extra = if self.0.json.as_ptr() >= self.0.frame.as_ptr()
            && self.0.json.as_ptr() < self.0.frame.as_ptr().wrapping_add(self.0.frame.len())
        {
            0
        } else {
            self.0.json.len()
        };
        self.0.frame.len() + json_extra + std::mem::size_of::<Record>() + 16
    }
    pub(crate) fn published_at(&self) -> Instant {
        self.0.at
    }
}

impl fmt::Debug for HubEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubEvent")
            .field("id", &self.id())
            .field("json", &self.0.json)
            .finish()
    }
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum HubItem {
    /// An event.
    Event(HubEvent),
    /// Events were missed; `missed` counts them when known. Delivery goes on after it.
    Gap {
        /// Why.
        reason: GapReason,
        /// How many, if known.
        missed: Option<u64>,
    },
    /// The subscriber fell behind and is disconnected (disconnect policy); the stream ends
    /// after this item. A client reconnects with its last id to resume.
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
}

/// Why the hub refused or failed an operation.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The backend is unreachable or failed (a 503 with `Retry-After`).
    #[error("event hub unavailable: {0}")]
    Unavailable(String),
    /// The event is larger than [`HubConfig::max_event_bytes`] (a 413).
    #[error("event of {size} bytes is over the hub's limit of {max} bytes")]
    TooLarge {
        /// The event's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A new topic would exceed [`HubConfig::max_topics`] (a 503).
    #[error("the hub holds its maximum of {max} topics")]
    TooManyTopics {
        /// The limit.
        max: usize,
    },
    /// Retaining the event would exceed [`HubConfig::max_retained_bytes`] (a 503).
    #[error("the hub's retained events are at their budget of {max} bytes")]
    Full {
        /// The budget.
        max: usize,
    },
    /// A merged stream asked for more topics than [`HubConfig::max_topics_per_stream`]
    /// (a 400).
    #[error("{requested} topics asked for one stream; at most {max} are allowed")]
    TooManyTopicsPerStream {
        /// Topics asked for.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// A merged stream's topic list is empty or names a topic twice (a 400).
    #[error("invalid topic list: {0}")]
    InvalidTopicList(String),
    /// A join would exceed [`HubConfig::max_presence_members`] in its topic (a 503).
    #[error("the topic holds its maximum of {max} present members")]
    TooManyMembers {
        /// The limit.
        max: usize,
    },
    /// A join would exceed [`HubConfig::max_presence_topics`] on this instance (a 503).
    #[error("this instance holds presence in its maximum of {max} topics")]
    TooManyPresenceTopics {
        /// The limit.
        max: usize,
    },
    /// The backend has no presence (a 501).
    #[error("this event hub backend does not support presence")]
    PresenceUnsupported,
}

impl HubError {
    /// The backend is unavailable, for `reason`.
    pub fn unavailable(reason: impl fmt::Display) -> Self {
        HubError::Unavailable(reason.to_string())
    }
}

impl From<HubError> for PikkuError {
    fn from(e: HubError) -> Self {
        use http::StatusCode;
        match e {
            HubError::Unavailable(_) => {
                tracing::error!(error = %e, "event hub error");
                PikkuError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "hub_unavailable",
                    "the event hub is unavailable; retry shortly",
                )
                .with_retry_after(1)
            }
            HubError::TooLarge { .. } => PikkuError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "event_too_large",
                e.to_string(),
            ),
            HubError::TooManyTopicsPerStream { .. } => {
                PikkuError::new(StatusCode::BAD_REQUEST, "too_many_topics", e.to_string())
            }
            HubError::InvalidTopicList(_) => {
                PikkuError::new(StatusCode::BAD_REQUEST, "invalid_topics", e.to_string())
            }
            HubError::TooManyTopics { .. }
            | HubError::Full { .. }
            | HubError::TooManyMembers { .. }
            | HubError::TooManyPresenceTopics { .. } => {
                tracing::warn!(error = %e, "event hub budget refused an operation");
                PikkuError::new(StatusCode::SERVICE_UNAVAILABLE, "hub_full", e.to_string())
                    .with_retry_after(5)
            }
            HubError::PresenceUnsupported => PikkuError::new(
                StatusCode::NOT_IMPLEMENTED,
                "presence_unsupported",
                e.to_string(),
            ),
        }
    }
}

/// Health of a hub backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct HubStatus {
    /// The backend's name (`memory`, `redis`, ...).
    pub backend: std::borrow::Cow<'static, str>,
    /// Whether it can publish and deliver now.
    pub healthy: bool,
    /// Why not, when unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Live subscriptions in this process.
    pub subscriptions: usize,
}

/// Publish/subscribe by topic. See the module docs for the guarantees.
pub trait EventHub: Send + Sync + 'static {
    /// Publishes a JSON payload (one line, as `serde_json` writes it) and returns its id
    /// (its [`Position`] as text).
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>>;

    /// Subscribes to `topic`: the events after `last_event_id` (none when `None`; `"0"` for
    /// everything the window holds), then live ones.
    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>>;

    /// Where `topic` stands now: the position of its newest event, or `None` when it has no
    /// history (never published, or its history expired or was lost).
    ///
    /// A JSON route returns it beside a snapshot; the client then opens the stream with it as
    /// `Last-Event-ID` (or `?lastEventId=`) and receives exactly the events published after
    /// the snapshot. For `None`, resume from `earliest` (`0`): everything published since.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use futures_util::StreamExt;
    /// use pikku::event_hub::{EventHub, EventHubExt, HubItem, MemoryHub};
    ///
    /// let hub = MemoryHub::new();
    /// assert_eq!(hub.position("news").await.unwrap(), None);
    /// hub.publish("news", &1).await.unwrap();
    /// let at = hub.position("news").await.unwrap().unwrap();
    /// hub.publish("news", &2).await.unwrap();
    /// let mut sub = hub.subscribe_from("news", Some(&at.to_string())).await.unwrap();
    /// let Some(HubItem::Event(ev)) = sub.next().await else { panic!() };
    /// assert_eq!(ev.json(), &b"2"[..]);
    /// # }
    /// ```
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>>;

    /// The parts of the hub that live in this process (its subscription counter, config,
    /// presence and connection health), from which the default methods below answer. The
    /// backends of this crate have them; a hub written elsewhere returns `None` (the default)
    /// and implements those methods itself.
    fn local(&self) -> Option<LocalParts<'_>> {
        None
    }

    /// How many subscriptions are live in this process.
    fn live_subscriptions(&self) -> usize {
        self.local().map_or(0, |l| l.counter.live())
    }

    /// The backend's health, as last seen. Without [`local`](Self::local) parts: a healthy
    /// backend named `unknown`.
    fn status(&self) -> HubStatus {
        self.local().map_or_else(
            || HubStatus {
                backend: "unknown".into(),
                healthy: true,
                detail: None,
                subscriptions: self.live_subscriptions(),
            },
            |l| l.status(),
        )
    }

    /// Checks the backend now (e.g. a round trip to its server) and returns its health.
    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(futures_util::future::ready(self.status()))
    }

    /// The position of the newest event `topic` retains (`None` when it retains none); it
    /// creates nothing. [`EventHubExt::subscribe_latest`] starts from it. The default knows
    /// no event, so a backend that does not implement it serves latest-value subscriptions as
    /// live ones.
    ///
    /// Not [`position`](Self::position): that is where the topic stands, also when its newest
    /// event has since left the window (by age, count or bytes), so a resume from it loses
    /// nothing; this is an event the window still holds, to be replayed.
    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        let _ = topic;
        Box::pin(futures_util::future::ready(Ok(None)))
    }

    /// How many topics one merged stream may hold ([`HubConfig::max_topics_per_stream`]).
    fn max_topics_per_stream(&self) -> usize {
        self.local().map_or_else(
            || HubConfig::default().topics_per_stream(),
            |l| l.cfg.topics_per_stream(),
        )
    }

    /// Makes `member` (a user id) present in `topic` until the returned guard is dropped.
    ///
    /// Several joins of one member (tabs) are one member: the first publishes a
    /// [`PresenceChange`] `join` on the topic, the drop of the last guard (on every instance)
    /// a `leave`. Entries are refreshed every [`HubConfig::presence_heartbeat`]; an instance
    /// that dies without leaving loses its members after [`HubConfig::presence_ttl`].
    /// Refusals: [`HubError::TooManyMembers`], [`HubError::TooManyPresenceTopics`]; backends
    /// without presence answer [`HubError::PresenceUnsupported`].
    fn join<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
    ) -> BoxFuture<'a, Result<PresenceGuard, HubError>> {
        match self.local() {
            Some(l) => Box::pin(l.presence.join(topic, member)),
            None => Box::pin(futures_util::future::ready(Err(
                HubError::PresenceUnsupported,
            ))),
        }
    }

    /// The members present in `topic` (on every instance, expired entries left out), sorted.
    fn presence<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        match self.local() {
            Some(l) => Box::pin(l.presence.members(topic)),
            None => Box::pin(futures_util::future::ready(Err(
                HubError::PresenceUnsupported,
            ))),
        }
    }

    /// How many members are present in `topic`.
    fn presence_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<usize, HubError>> {
        Box::pin(async move { self.presence(topic).await.map(|m| m.len()) })
    }

    /// What this hub's subscriptions in this process have delivered (events, gaps, lagged
    /// disconnects). Without [`local`](Self::local) parts, the default counts nothing.
    fn counts(&self) -> HubCounts {
        self.local()
            .map_or_else(HubCounts::default, |l| l.counter.counts())
    }
}

/// The typed conveniences every hub has.
pub trait EventHubExt: EventHub {
    /// Serializes `payload` once and publishes it; returns its id.
    fn publish<'a, T: Serialize + ?Sized + Sync>(
        &'a self,
        topic: &'a str,
        payload: &'a T,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        match serde_json::to_vec(payload) {
            Ok(json) => self.publish_json(topic, Bytes::from(json)),
            Err(e) => Box::pin(async move { Err(HubError::unavailable(format!("payload: {e}"))) }),
        }
    }

    /// Subscribes to live events of `topic`.
    fn subscribe<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Subscription, HubError>> {
        self.subscribe_from(topic, None)
    }

    /// Subscribes from a request's `Last-Event-ID` (see [`Context::last_event_id`]).
    ///
    /// [`Context::last_event_id`]: crate::Context::last_event_id
    fn resume<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a LastEventId>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        self.subscribe_from(topic, last_event_id.map(LastEventId::as_str))
    }

    /// Subscribes with the latest value first: without a resume point, the topic's newest
    /// retained event (with its real id, so a reconnect resumes after it), then live events,
    /// with no gap or duplicate between them; with one, a plain [`resume`](Self::resume).
    /// See [`EventHub::newest`].
    fn subscribe_latest<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a LastEventId>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        Box::pin(latest::subscribe_latest(
            self,
            topic,
            last_event_id.map(LastEventId::as_str),
        ))
    }

    /// One stream merging several topics, resumable per topic: each event's id is a
    /// [`CompositeId`] holding every topic's last delivered position, so a reconnect with it
    /// resumes each topic exactly where it stopped. Topics are identified by their order in
    /// `topics`, so a reconnect must ask for the same list. Refused
    /// ([`HubError::TooManyTopicsPerStream`], [`HubError::InvalidTopicList`]) over
    /// [`EventHub::max_topics_per_stream`] topics, with none, or with one named twice.
    fn subscribe_many<'a>(
        &'a self,
        topics: &'a [String],
        last_event_id: Option<&'a LastEventId>,
    ) -> BoxFuture<'a, Result<MultiSubscription, HubError>> {
        Box::pin(multi::subscribe_many(
            self,
            topics,
            last_event_id.map(LastEventId::as_str),
        ))
    }
}

impl<H: EventHub + ?Sized> EventHubExt for H {}

impl<H: EventHub + ?Sized> EventHub for Arc<H> {
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        (**self).publish_json(topic, json)
    }
    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        (**self).subscribe_from(topic, last_event_id)
    }
    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        (**self).position(topic)
    }
    fn local(&self) -> Option<LocalParts<'_>> {
        (**self).local()
    }
    fn live_subscriptions(&self) -> usize {
        (**self).live_subscriptions()
    }
    fn status(&self) -> HubStatus {
        (**self).status()
    }
    fn check(&self) -> BoxFuture<'_, HubStatus> {
        (**self).check()
    }
    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        (**self).newest(topic)
    }
    fn max_topics_per_stream(&self) -> usize {
        (**self).max_topics_per_stream()
    }
    fn join<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
    ) -> BoxFuture<'a, Result<PresenceGuard, HubError>> {
        (**self).join(topic, member)
    }
    fn presence<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        (**self).presence(topic)
    }
    fn presence_count<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<usize, HubError>> {
        (**self).presence_count(topic)
    }
    fn counts(&self) -> HubCounts {
        (**self).counts()
    }
}

/// What the subscriptions of one hub in this process have yielded, for monitoring
/// ([`EventHub::counts`]; exported as `pikku_hub_*_total` with the `prometheus` feature).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubCounts {
    /// Events delivered to subscribers (one per event per subscriber).
    pub delivered: u64,
    /// `gap` items: a subscriber learned that it missed events.
    pub gaps: u64,
    /// Subscribers disconnected for falling behind.
    pub lagged: u64,
}

#[derive(Debug, Default)]
struct Counts {
    live: AtomicUsize,
    delivered: AtomicU64,
    gaps: AtomicU64,
    lagged: AtomicU64,
}

/// Counts live subscriptions and what they yield; backends hand one [`SubscriptionGuard`] to
/// each subscription.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionCounter(Arc<Counts>);

impl SubscriptionCounter {
    /// Registers a subscription until the guard is dropped.
    pub fn guard(&self) -> SubscriptionGuard {
        self.0.live.fetch_add(1, Ordering::SeqCst);
        SubscriptionGuard(self.0.clone())
    }
    /// Live subscriptions.
    pub fn live(&self) -> usize {
        self.0.live.load(Ordering::SeqCst)
    }
    /// What the subscriptions have yielded so far (a subscription adds its share each time it
    /// runs out of ready items, and when it ends).
    pub fn counts(&self) -> HubCounts {
        HubCounts {
            delivered: self.0.delivered.load(Ordering::Relaxed),
            gaps: self.0.gaps.load(Ordering::Relaxed),
            lagged: self.0.lagged.load(Ordering::Relaxed),
        }
    }
}

/// Decrements the live count when dropped.
#[derive(Debug)]
pub struct SubscriptionGuard(Arc<Counts>);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A live subscription: a `Stream` of [`HubItem`]s. Dropping it unsubscribes.
pub struct Subscription {
    items: Pin<Box<dyn Stream<Item = HubItem> + Send>>,
    guard: SubscriptionGuard,
    // Counted here and added to the hub's shared counters once per batch, so a fan-out to many
    // subscribers does not make every delivery contend on one atomic.
    unflushed: (u64, u64),
}

impl Subscription {
    /// Wraps a backend's item stream (backends call this).
    pub fn new(
        items: impl Stream<Item = HubItem> + Send + 'static,
        guard: SubscriptionGuard,
    ) -> Self {
        Self {
            items: Box::pin(items),
            guard,
            unflushed: (0, 0),
        }
    }

    /// Ends the subscription now (the same as dropping it).
    pub fn unsubscribe(self) {}

    /// The subscription as SSE frames of `T` events: each event's shared, pre-encoded frame;
    /// gaps as `event: gap` (`{"reason", "missed"}`); a lagged disconnect as a final
    /// `event: error` (`{"error":"lagged"}`).
    pub fn frames<T>(self) -> impl Stream<Item = Frame<T>> + Send {
        Frames::<T> {
            sub: Some(self),
            _data: std::marker::PhantomData,
        }
    }
}

/// [`Subscription::frames`]: a plain adapter rather than a generator, since it is polled once
/// per event per subscriber (the fan-out hot path).
struct Frames<T> {
    /// `None` once the stream has ended (the subscription is dropped then, not later).
    sub: Option<Subscription>,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T> Stream for Frames<T> {
    type Item = Frame<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Frame<T>>> {
        let Some(sub) = self.sub.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = match std::task::ready!(Pin::new(sub).poll_next(cx)) {
            Some(HubItem::Event(ev)) => ev.frame(),
            Some(HubItem::Gap { reason, missed }) => {
                Frame::from_encoded(sse::encode_gap(reason, missed))
            }
            Some(HubItem::Lagged { missed }) => {
                self.sub = None;
                let err = PikkuError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "lagged",
                    format!("fell behind by {missed} events; reconnect to resume"),
                );
                Frame::from_encoded(sse::encode_error(&err))
            }
            None => {
                self.sub = None;
                return Poll::Ready(None);
            }
        };
        Poll::Ready(Some(frame))
    }
}

impl Subscription {
    fn flush_counts(&mut self) {
        let (delivered, gaps) = std::mem::take(&mut self.unflushed);
        if delivered > 0 {
            self.guard
                .0
                .delivered
                .fetch_add(delivered, Ordering::Relaxed);
        }
        if gaps > 0 {
            self.guard.0.gaps.fetch_add(gaps, Ordering::Relaxed);
        }
    }
}

impl Stream for Subscription {
    type Item = HubItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<HubItem>> {
        let polled = self.items.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(HubItem::Event(_))) => self.unflushed.0 += 1,
            Poll::Ready(Some(HubItem::Gap { .. })) => self.unflushed.1 += 1,
            Poll::Ready(Some(HubItem::Lagged { .. })) => {
                self.guard.0.lagged.fetch_add(1, Ordering::Relaxed);
            }
            Poll::Ready(None) | Poll::Pending => self.flush_counts(),
        }
        polled
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.flush_counts();
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// Env var selecting the hub backend: unset or `memory` for the embedded hub,
/// `redis://host:port` for Redis, `postgres://user@host:port/db` for PostgreSQL (feature
/// `postgres`).
pub const EVENT_HUB_ENV: &str = "PIKKU_EVENT_HUB";

/// The hub `PIKKU_EVENT_HUB` selects (the embedded [`MemoryHub`] when unset).
pub async fn from_env(cfg: HubConfig) -> Result<Arc<dyn EventHub>, HubError> {
    match std::env::var(EVENT_HUB_ENV) {
        Err(_) => Ok(Arc::new(MemoryHub::with_config(cfg))),
        Ok(url) => from_url(&url, cfg).await,
    }
}

/// Env var with the backend's key/table prefix (default `pikku:hub:` for Redis, `pikku_hub`
/// for PostgreSQL), isolating apps sharing a server.
pub const EVENT_HUB_PREFIX_ENV: &str = "PIKKU_EVENT_HUB_PREFIX";

/// The cargo feature of a remote backend's URL scheme.
fn backend_feature(scheme: &str) -> Option<&'static str> {
    match scheme {
        "redis" | "rediss" => Some("redis"),
        "nats" => Some("nats"),
        "postgres" | "postgresql" => Some("postgres"),
        _ => None,
    }
}

/// The hub a URL names: `memory`, `redis://...` or `postgres://...` (prefix from
/// `PIKKU_EVENT_HUB_PREFIX`).
pub async fn from_url(url: &str, cfg: HubConfig) -> Result<Arc<dyn EventHub>, HubError> {
    #[cfg(any(feature = "redis", feature = "nats", feature = "postgres"))]
    let prefix = std::env::var(EVENT_HUB_PREFIX_ENV).ok();
    match url.split_once("://").map_or(url, |(scheme, _)| scheme) {
        "" | "memory" => Ok(Arc::new(MemoryHub::with_config(cfg))),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let prefix = prefix.unwrap_or_else(|| redis::DEFAULT_PREFIX.to_string());
            Ok(Arc::new(redis::RedisHub::open(url, &prefix, cfg)?))
        }
        #[cfg(feature = "nats")]
        "nats" => {
            let prefix = prefix.unwrap_or_else(|| nats::DEFAULT_PREFIX.to_string());
            Ok(Arc::new(nats::NatsHub::connect(url, &prefix, cfg).await?))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let prefix = prefix.unwrap_or_else(|| postgres::DEFAULT_PREFIX.to_string());
            Ok(Arc::new(postgres::PgHub::open(url, &prefix, cfg)?))
        }
        other => Err(HubError::unavailable(match backend_feature(other) {
            Some(feature) => format!(
                "{EVENT_HUB_ENV} names a `{other}` hub, but this build has no `{feature}` feature: enable it on `pikku-runtime` (features = [\"{feature}\"])"
            ),
            None => format!(
                "unsupported event hub `{other}` in {EVENT_HUB_ENV}; use `memory`, `redis://host:port`, `nats://host:port` or `postgres://user@host:port/db` (each remote backend behind its cargo feature)"
            ),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_schemes_name_their_feature() {
        assert_eq!(backend_feature("rediss"), Some("redis"));
        assert_eq!(backend_feature("nats"), Some("nats"));
        assert_eq!(backend_feature("postgresql"), Some("postgres"));
        assert_eq!(backend_feature("kafka"), None);
    }

    /// Redis is opt-in: a build without it says which feature to enable, not "unsupported".
    #[cfg(not(feature = "redis"))]
    #[tokio::test]
    async fn a_redis_url_without_the_feature_says_to_enable_it() {
        let err = match from_url("redis://127.0.0.1:6379", HubConfig::default()).await {
            Ok(_) => panic!("a redis hub without the redis feature"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("no `redis` feature"), "{err}");
        assert!(err.contains("features = [\"redis\"]"), "{err}");
    }
}
