//! The event hub: publish/subscribe by topic, with ids, a bounded replay window and resume.
//!
//! This is what the seed's "Conditional Streaming" example subscribes to:
//! ``eventHub.subscribe(`user:${userId}:notifications`)``. An app keeps an
//! `Arc<dyn EventHub>` in its services; [`MemoryHub`] (embedded, the default) serves one
//! process, other backends serve many behind the same trait.
//!
//! Guarantees of every backend:
//! - each published event gets an id, increasing per topic, that is also its SSE `id:`;
//! - the payload is serialized once at publish; every subscriber shares the same bytes
//!   (and the same pre-encoded SSE frame);
//! - [`EventHub::subscribe_from`] yields the events after a given id, then live ones, with no
//!   gap and no duplicate, even while events are published during the hand-over; when the
//!   id is older than the replay window, or unknown, the stream says so with a [`HubItem::Gap`]
//!   instead of silently skipping;
//! - a subscription is removed when it is dropped (or [`Subscription::unsubscribe`]d), and the
//!   hub reports how many are live;
//! - each subscriber has a bounded queue; a subscriber that falls behind gets the configured
//!   [`SlowConsumerPolicy`] and never stalls the publisher.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use futures_util::StreamExt;
//! use pikku::event_hub::{EventHub, EventHubExt, HubItem, MemoryHub};
//!
//! let hub = MemoryHub::new();
//! let mut sub = hub.subscribe("news").await.unwrap();
//! hub.publish("news", &serde_json::json!({"title": "hi"})).await.unwrap();
//! let Some(HubItem::Event(ev)) = sub.next().await else { panic!() };
//! assert_eq!(ev.id(), "1");
//! assert_eq!(ev.json(), &b"{\"title\":\"hi\"}"[..]);
//! drop(sub);
//! assert_eq!(hub.live_subscriptions(), 0);
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio_util::sync::ReusableBoxFuture;

use crate::context::LastEventId;
use crate::error::PikkuError;
use crate::sse::{self, Event, Frame};

#[cfg(feature = "redis")]
pub mod redis;

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
    id: Arc<str>,
    seq: u64,
    json: Bytes,
    frame: Bytes,
    at: Instant,
}

impl HubEvent {
    /// Builds an event whose SSE frame is encoded now, once (backends call this).
    pub fn new(id: impl Into<Arc<str>>, seq: u64, json: Bytes) -> Self {
        let id = id.into();
        let frame = sse::encode_raw(Some(&id), None, &json);
        Self(Arc::new(Record {
            id,
            seq,
            json,
            frame,
            at: Instant::now(),
        }))
    }
    /// The event's id (its SSE `id:`).
    pub fn id(&self) -> &str {
        &self.0.id
    }
    /// The event's position in its topic: increasing with each publish (not necessarily by
    /// one), comparable only within a topic.
    pub fn seq(&self) -> u64 {
        self.0.seq
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
}

impl fmt::Debug for HubEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubEvent")
            .field("id", &self.0.id)
            .field("json", &self.0.json)
            .finish()
    }
}

/// Why a subscription missed events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The resume point is older than the replay window.
    Expired,
    /// The resume point is not an id of this topic (another topic's, a restarted hub's, garbage).
    UnknownId,
    /// The subscriber fell behind its queue and events were skipped (skip policy).
    Lagged,
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

/// What happens to a subscriber whose queue overflows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowConsumerPolicy {
    /// End its stream with `event: error` `{"error":"lagged"}`; it reconnects with
    /// `Last-Event-ID` and resumes from the replay window. The default: nothing is lost
    /// while the window holds the missed events.
    #[default]
    Disconnect,
    /// Skip the missed events and say so with an `event: gap`.
    Skip,
}

/// A hub backend failed (e.g. its server is unreachable).
#[derive(Debug, Clone, thiserror::Error)]
#[error("event hub unavailable: {0}")]
pub struct HubError(pub String);

impl From<HubError> for PikkuError {
    fn from(e: HubError) -> Self {
        tracing::error!(error = %e, "event hub error");
        PikkuError::new(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "hub_unavailable",
            "the event hub is unavailable; retry shortly",
        )
        .with_retry_after(1)
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
    /// Publishes a JSON payload (one line, as `serde_json` writes it) and returns its id.
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>>;

    /// Subscribes to `topic`: the events after `last_event_id` (none when `None`), then live
    /// ones.
    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>>;

    /// How many subscriptions are live in this process.
    fn live_subscriptions(&self) -> usize;

    /// The backend's health, as last seen.
    fn status(&self) -> HubStatus;

    /// Checks the backend now (e.g. a round trip to its server) and returns its health.
    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(futures_util::future::ready(self.status()))
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
            Err(e) => Box::pin(async move { Err(HubError(format!("payload: {e}"))) }),
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
    fn live_subscriptions(&self) -> usize {
        (**self).live_subscriptions()
    }
    fn status(&self) -> HubStatus {
        (**self).status()
    }
    fn check(&self) -> BoxFuture<'_, HubStatus> {
        (**self).check()
    }
}

/// Counts live subscriptions; backends hand one [`SubscriptionGuard`] to each subscription.
#[derive(Debug, Default, Clone)]
pub struct SubscriptionCounter(Arc<AtomicUsize>);

impl SubscriptionCounter {
    /// Registers a subscription until the guard is dropped.
    pub fn guard(&self) -> SubscriptionGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        SubscriptionGuard(self.0.clone())
    }
    /// Live subscriptions.
    pub fn live(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Decrements the live count when dropped.
#[derive(Debug)]
pub struct SubscriptionGuard(Arc<AtomicUsize>);

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A live subscription: a `Stream` of [`HubItem`]s. Dropping it unsubscribes.
pub struct Subscription {
    items: Pin<Box<dyn Stream<Item = HubItem> + Send>>,
    _guard: SubscriptionGuard,
}

impl Subscription {
    /// Wraps a backend's item stream (backends call this).
    pub fn new(
        items: impl Stream<Item = HubItem> + Send + 'static,
        guard: SubscriptionGuard,
    ) -> Self {
        Self {
            items: Box::pin(items),
            _guard: guard,
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
            Some(HubItem::Gap { reason, missed }) => Frame::from_encoded(gap_frame(reason, missed)),
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

fn gap_frame(reason: GapReason, missed: Option<u64>) -> Bytes {
    let json = serde_json::json!({"reason": reason, "missed": missed}).to_string();
    sse::encode_raw(None, Some("gap"), json.as_bytes())
}

impl Stream for Subscription {
    type Item = HubItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<HubItem>> {
        self.items.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription").finish_non_exhaustive()
    }
}

/// Limits of a hub: replay window per topic and queue per subscriber.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Events kept per topic for resume.
    pub replay_max_events: usize,
    /// How long events are kept for resume.
    pub replay_max_age: Duration,
    /// Events queued per subscriber before the slow-consumer policy applies.
    pub subscriber_queue: usize,
    /// What happens to a subscriber whose queue overflows.
    pub slow_consumer: SlowConsumerPolicy,
}

/// Env vars read by [`HubConfig::from_env`].
pub const HUB_ENV_VARS: [&str; 4] = [
    "PIKKU_HUB_SUBSCRIBER_QUEUE",
    "PIKKU_HUB_REPLAY_MAX_EVENTS",
    "PIKKU_HUB_REPLAY_MAX_AGE_MS",
    "PIKKU_HUB_SLOW_CONSUMER",
];

impl HubConfig {
    /// The defaults, overridden by `PIKKU_HUB_SUBSCRIBER_QUEUE`, `PIKKU_HUB_REPLAY_MAX_EVENTS`,
    /// `PIKKU_HUB_REPLAY_MAX_AGE_MS` and `PIKKU_HUB_SLOW_CONSUMER` (`disconnect` or `skip`)
    /// when set. Unparsable values are ignored with a warning.
    pub fn from_env() -> Self {
        fn var<T: std::str::FromStr>(name: &str) -> Option<T> {
            let v = std::env::var(name).ok()?;
            let parsed = v.trim().parse().ok();
            if parsed.is_none() {
                tracing::warn!(value = %v, "ignoring unparsable {name}");
            }
            parsed
        }
        let mut cfg = Self::default();
        if let Some(n) = var::<usize>(HUB_ENV_VARS[0]) {
            cfg.subscriber_queue = n.max(1);
        }
        if let Some(n) = var::<usize>(HUB_ENV_VARS[1]) {
            cfg.replay_max_events = n;
        }
        if let Some(ms) = var::<u64>(HUB_ENV_VARS[2]) {
            cfg.replay_max_age = Duration::from_millis(ms);
        }
        if let Some(policy) = var::<String>(HUB_ENV_VARS[3]) {
            match policy.as_str() {
                "disconnect" => cfg.slow_consumer = SlowConsumerPolicy::Disconnect,
                "skip" => cfg.slow_consumer = SlowConsumerPolicy::Skip,
                other => tracing::warn!(value = other, "ignoring unknown {}", HUB_ENV_VARS[3]),
            }
        }
        cfg
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            replay_max_events: 1000,
            replay_max_age: Duration::from_secs(300),
            subscriber_queue: 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
        }
    }
}

/// The embedded, in-process hub: no setup, bounded memory.
///
/// Per topic: a ring of recent events for resume (bounded by count and age) and a
/// `tokio::sync::broadcast` channel for fan-out (each subscriber's bounded queue). Publishing
/// and subscribing take the topic map's lock briefly, which is what makes the replay-to-live
/// hand-over exact. Idle topics (no subscribers, empty window) are swept as topics are added.
pub struct MemoryHub {
    cfg: HubConfig,
    topics: Mutex<HashMap<Arc<str>, Topic>>,
    counter: SubscriptionCounter,
    published: AtomicU64,
}

struct Topic {
    next_seq: u64,
    window: VecDeque<HubEvent>,
    tx: broadcast::Sender<HubEvent>,
}

impl Default for MemoryHub {
    fn default() -> Self {
        Self::with_config(HubConfig::default())
    }
}

impl MemoryHub {
    /// A hub with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// A hub with the given limits.
    pub fn with_config(cfg: HubConfig) -> Self {
        Self {
            cfg,
            topics: Mutex::new(HashMap::new()),
            counter: SubscriptionCounter::default(),
            published: AtomicU64::new(0),
        }
    }

    /// How many topics are held (with subscribers or replayable events).
    pub fn topic_count(&self) -> usize {
        self.topics.lock().map(|t| t.len()).unwrap_or(0)
    }

    fn trim(&self, topic: &mut Topic, now: Instant) {
        while topic.window.len() > self.cfg.replay_max_events
            || topic
                .window
                .front()
                .is_some_and(|e| now.duration_since(e.0.at) > self.cfg.replay_max_age)
        {
            topic.window.pop_front();
        }
    }

    /// The topic's state, created (after a sweep of idle topics) when new.
    fn topic_mut<'t>(
        &self,
        topics: &'t mut HashMap<Arc<str>, Topic>,
        topic: &str,
        now: Instant,
    ) -> Result<&'t mut Topic, HubError> {
        if !topics.contains_key(topic) {
            let t = self.new_topic(topics, now);
            topics.insert(Arc::from(topic), t);
        }
        topics.get_mut(topic).ok_or_else(lock_poisoned)
    }

    fn new_topic(&self, topics: &mut HashMap<Arc<str>, Topic>, now: Instant) -> Topic {
        // Sweep before growing, so the map holds at most the topics in use (amortised).
        if topics.len() >= 64 && topics.len().is_power_of_two() {
            topics.retain(|_, t| {
                self.trim(t, now);
                t.tx.receiver_count() > 0 || !t.window.is_empty()
            });
        }
        let (tx, _) = broadcast::channel(self.cfg.subscriber_queue.max(1));
        Topic {
            next_seq: 1,
            window: VecDeque::new(),
            tx,
        }
    }
}

fn lock_poisoned() -> HubError {
    HubError("memory hub lock poisoned".into())
}

impl EventHub for MemoryHub {
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        let result = (|| {
            let now = Instant::now();
            let mut topics = self.topics.lock().map_err(|_| lock_poisoned())?;
            let t = self.topic_mut(&mut topics, topic, now)?;
            let seq = t.next_seq;
            t.next_seq += 1;
            let event = HubEvent::new(seq.to_string(), seq, json);
            t.window.push_back(event.clone());
            self.trim(t, now);
            // No receivers is fine: the window keeps the event for resume.
            let _ = t.tx.send(event);
            self.published.fetch_add(1, Ordering::Relaxed);
            Ok(seq.to_string())
        })();
        Box::pin(futures_util::future::ready(result))
    }

    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        let result = (|| {
            let now = Instant::now();
            let mut topics = self.topics.lock().map_err(|_| lock_poisoned())?;
            let t = self.topic_mut(&mut topics, topic, now)?;
            self.trim(t, now);
            // Under the lock: nothing can be published between the replay snapshot and the
            // receiver's first live event.
            let rx = t.tx.subscribe();
            let mut head = Vec::new();
            if let Some(raw) = last_event_id {
                let last_seq = t.next_seq - 1;
                match raw.parse::<u64>().ok().filter(|&a| a <= last_seq) {
                    None => {
                        head.push(HubItem::Gap {
                            reason: GapReason::UnknownId,
                            missed: None,
                        });
                        head.extend(t.window.iter().cloned().map(HubItem::Event));
                    }
                    Some(after) => {
                        let oldest = t.window.front().map_or(t.next_seq, HubEvent::seq);
                        if after + 1 < oldest {
                            head.push(HubItem::Gap {
                                reason: GapReason::Expired,
                                missed: Some(oldest - after - 1),
                            });
                        }
                        head.extend(
                            t.window
                                .iter()
                                .filter(|e| e.seq() > after)
                                .cloned()
                                .map(HubItem::Event),
                        );
                    }
                }
            }
            Ok(Subscription::new(
                live(head, rx, self.cfg.slow_consumer, None),
                self.counter.guard(),
            ))
        })();
        Box::pin(futures_util::future::ready(result))
    }

    fn live_subscriptions(&self) -> usize {
        self.counter.live()
    }

    fn status(&self) -> HubStatus {
        HubStatus {
            backend: "memory".into(),
            healthy: true,
            detail: None,
            subscriptions: self.counter.live(),
        }
    }
}

/// Replayed items, then live events from a broadcast receiver, applying the policy on lag.
///
/// Live events at or before `after_seq` are skipped: a backend whose replay read overlaps its
/// live feed passes the last replayed position, so nothing is delivered twice.
pub fn live(
    head: Vec<HubItem>,
    rx: broadcast::Receiver<HubEvent>,
    policy: SlowConsumerPolicy,
    after_seq: Option<u64>,
) -> impl Stream<Item = HubItem> + Send {
    Live {
        head: head.into_iter(),
        rx: Rx::Ready(rx),
        wait: None,
        policy,
        after_seq,
    }
}

type Recv = (
    Result<HubEvent, broadcast::error::RecvError>,
    broadcast::Receiver<HubEvent>,
);

async fn recv_owned(mut rx: broadcast::Receiver<HubEvent>) -> Recv {
    (rx.recv().await, rx)
}

/// The stream [`live`] returns. A subscriber woken by a publish takes every event already in
/// its queue with `try_recv` (no future, no waiter bookkeeping) and only parks the receiver
/// in `wait` when the queue is empty; `wait`'s box is allocated once and reused.
struct Live {
    head: std::vec::IntoIter<HubItem>,
    rx: Rx,
    wait: Option<ReusableBoxFuture<'static, Recv>>,
    policy: SlowConsumerPolicy,
    after_seq: Option<u64>,
}

/// Where [`Live`]'s receiver is.
enum Rx {
    /// In hand: drain it with `try_recv`.
    Ready(broadcast::Receiver<HubEvent>),
    /// Moved into `Live::wait`, which hands it back with the next event.
    Parked,
    /// The stream has ended.
    Ended,
}

impl Stream for Live {
    type Item = HubItem;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<HubItem>> {
        use broadcast::error::{RecvError, TryRecvError};
        let this = &mut *self;
        if let Some(item) = this.head.next() {
            return Poll::Ready(Some(item));
        }
        loop {
            let received = match &mut this.rx {
                Rx::Ended => return Poll::Ready(None),
                Rx::Parked => {
                    let Some(wait) = this.wait.as_mut() else {
                        return Poll::Ready(None);
                    };
                    let (received, rx) = std::task::ready!(wait.poll(cx));
                    this.rx = Rx::Ready(rx);
                    received
                }
                Rx::Ready(rx) => match rx.try_recv() {
                    Ok(ev) => Ok(ev),
                    Err(TryRecvError::Lagged(missed)) => Err(RecvError::Lagged(missed)),
                    Err(TryRecvError::Closed) => Err(RecvError::Closed),
                    Err(TryRecvError::Empty) => {
                        if let Rx::Ready(rx) = std::mem::replace(&mut this.rx, Rx::Parked) {
                            match this.wait.as_mut() {
                                Some(wait) => wait.set(recv_owned(rx)),
                                None => this.wait = Some(ReusableBoxFuture::new(recv_owned(rx))),
                            }
                        }
                        continue;
                    }
                },
            };
            match received {
                Ok(ev) if this.after_seq.is_some_and(|a| ev.seq() <= a) => continue,
                Ok(ev) => return Poll::Ready(Some(HubItem::Event(ev))),
                Err(RecvError::Lagged(missed)) => match this.policy {
                    SlowConsumerPolicy::Disconnect => {
                        this.rx = Rx::Ended;
                        return Poll::Ready(Some(HubItem::Lagged { missed }));
                    }
                    SlowConsumerPolicy::Skip => {
                        return Poll::Ready(Some(HubItem::Gap {
                            reason: GapReason::Lagged,
                            missed: Some(missed),
                        }));
                    }
                },
                Err(RecvError::Closed) => {
                    this.rx = Rx::Ended;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Env var selecting the hub backend: unset or `memory` for the embedded hub,
/// `redis://host:port` for Redis.
pub const EVENT_HUB_ENV: &str = "PIKKU_EVENT_HUB";

/// The hub `PIKKU_EVENT_HUB` selects (the embedded [`MemoryHub`] when unset).
pub async fn from_env(cfg: HubConfig) -> Result<Arc<dyn EventHub>, HubError> {
    match std::env::var(EVENT_HUB_ENV) {
        Err(_) => Ok(Arc::new(MemoryHub::with_config(cfg))),
        Ok(url) => from_url(&url, cfg).await,
    }
}

/// Env var with the Redis key prefix (default `pikku:hub:`), isolating apps sharing a server.
pub const EVENT_HUB_PREFIX_ENV: &str = "PIKKU_EVENT_HUB_PREFIX";

/// The hub a URL names: `memory` or `redis://...` (key prefix from `PIKKU_EVENT_HUB_PREFIX`).
pub async fn from_url(url: &str, cfg: HubConfig) -> Result<Arc<dyn EventHub>, HubError> {
    match url.split_once("://").map_or(url, |(scheme, _)| scheme) {
        "" | "memory" => Ok(Arc::new(MemoryHub::with_config(cfg))),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let prefix = std::env::var(EVENT_HUB_PREFIX_ENV)
                .unwrap_or_else(|_| redis::DEFAULT_PREFIX.to_string());
            Ok(Arc::new(redis::RedisHub::open(url, &prefix, cfg)?))
        }
        other => Err(HubError(format!(
            "unsupported event hub `{other}` in {EVENT_HUB_ENV}; use `memory` or `redis://host:port`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    fn ids(items: &[HubItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                HubItem::Event(e) => e.id().to_string(),
                HubItem::Gap { reason, missed } => format!("gap:{reason:?}:{missed:?}"),
                HubItem::Lagged { missed } => format!("lagged:{missed}"),
            })
            .collect()
    }

    async fn take(sub: &mut Subscription, n: usize) -> Vec<HubItem> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(
                tokio::time::timeout(Duration::from_secs(2), sub.next())
                    .await
                    .expect("item in time")
                    .expect("not ended"),
            );
        }
        out
    }

    #[tokio::test]
    async fn resume_replays_exactly_the_missed_events() {
        let hub = MemoryHub::new();
        for n in 1..=5 {
            hub.publish("t", &n).await.unwrap();
        }
        let mut sub = hub.subscribe_from("t", Some("2")).await.unwrap();
        hub.publish("t", &6).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 4).await), ["3", "4", "5", "6"]);
    }

    #[tokio::test]
    async fn expired_and_unknown_ids_are_said() {
        let hub = MemoryHub::with_config(HubConfig {
            replay_max_events: 3,
            ..HubConfig::default()
        });
        for n in 1..=10 {
            hub.publish("t", &n).await.unwrap();
        }
        let mut sub = hub.subscribe_from("t", Some("2")).await.unwrap();
        assert_eq!(
            ids(&take(&mut sub, 4).await),
            ["gap:Expired:Some(5)", "8", "9", "10"]
        );
        let mut sub = hub.subscribe_from("t", Some("not-a-number")).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 1).await), ["gap:UnknownId:None"]);
        let mut sub = hub.subscribe_from("t", Some("99")).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 2).await), ["gap:UnknownId:None", "8"]);
    }

    #[tokio::test]
    async fn lagging_subscriber_gets_the_policy_and_publisher_never_blocks() {
        for (policy, expected) in [
            (SlowConsumerPolicy::Disconnect, "lagged:6"),
            (SlowConsumerPolicy::Skip, "gap:Lagged:Some(6)"),
        ] {
            let hub = MemoryHub::with_config(HubConfig {
                subscriber_queue: 4,
                slow_consumer: policy,
                ..HubConfig::default()
            });
            let mut sub = hub.subscribe("t").await.unwrap();
            for n in 0..10 {
                hub.publish("t", &n).await.unwrap();
            }
            let first = take(&mut sub, 1).await;
            assert_eq!(ids(&first), [expected]);
            if policy == SlowConsumerPolicy::Disconnect {
                assert!(sub.next().await.is_none(), "the stream ends after lagged");
            } else {
                // Delivery goes on with what the queue still holds.
                assert_eq!(ids(&take(&mut sub, 4).await), ["7", "8", "9", "10"]);
            }
        }
    }

    #[tokio::test]
    async fn topics_are_swept_when_idle() {
        let hub = MemoryHub::with_config(HubConfig {
            replay_max_age: Duration::ZERO,
            ..HubConfig::default()
        });
        for n in 0..1000 {
            let s = hub.subscribe(&format!("user:{n}")).await.unwrap();
            drop(s);
        }
        assert!(hub.topic_count() < 600, "swept: {}", hub.topic_count());
    }
}
