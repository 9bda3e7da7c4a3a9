//! Presence: which members (user ids) are in a topic, across instances, with `join`/`leave`
//! announcements on the topic itself.
//!
//! The part every backend shares lives here: per-instance reference counts (a user with
//! several tabs is one member), the guard that leaves on drop, the heartbeat that refreshes
//! this instance's entries and reaps expired ones, and the announcement format. A backend
//! supplies a [`PresenceStore`]: where entries live and how they expire.
//!
//! Announcements are ordinary events of the topic (so they share its positions, order and
//! resume): `{"pikkuPresence":"join","userId":"alice"}`. [`presence_frames`] turns them into
//! `event: join` / `event: leave` frames with `{"userId":"alice"}` data, and
//! [`PresenceChange::of`] recognises them in a [`Subscription`]. Apps that publish
//! client-supplied JSON verbatim on a topic with presence should not let it start with the
//! `pikkuPresence` key.

use std::borrow::Cow;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{HubConfig, HubError, HubEvent, HubItem, Subscription};
use crate::error::PikkuError;
use crate::sse::{self, Frame};

/// The `event:` name of a member's arrival (data `{"userId": ...}`).
pub const PRESENCE_JOIN: &str = "join";
/// The `event:` name of a member's departure (data `{"userId": ...}`).
pub const PRESENCE_LEAVE: &str = "leave";

/// Every announcement starts with this, so ordinary events are told apart without parsing.
const MARKER: &[u8] = b"{\"pikkuPresence\":";

/// A `join` or `leave` announced on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// Whether the member arrived (`true`) or left.
    pub joined: bool,
    /// The member (a user id).
    pub user_id: String,
}

#[derive(Serialize, Deserialize)]
struct Announcement<'a> {
    #[serde(rename = "pikkuPresence", borrow)]
    kind: Cow<'a, str>,
    /// Borrowed unless it has escapes.
    #[serde(rename = "userId", borrow)]
    user_id: Cow<'a, str>,
}

#[derive(Serialize)]
struct UserData<'a> {
    #[serde(rename = "userId")]
    user_id: &'a str,
}

impl PresenceChange {
    /// The announcement an event carries, if it is one.
    pub fn of(event: &HubEvent) -> Option<Self> {
        Self::parse(event.json())
    }

    fn parse(json: &[u8]) -> Option<Self> {
        if !json.starts_with(MARKER) {
            return None;
        }
        let a: Announcement<'_> = serde_json::from_slice(json).ok()?;
        let joined = match &*a.kind {
            PRESENCE_JOIN => true,
            PRESENCE_LEAVE => false,
            _ => return None,
        };
        Some(Self {
            joined,
            user_id: a.user_id.into_owned(),
        })
    }

    /// The `event:` name: `join` or `leave`.
    pub fn event_name(&self) -> &'static str {
        if self.joined {
            PRESENCE_JOIN
        } else {
            PRESENCE_LEAVE
        }
    }

    /// The payload published on the topic.
    pub(crate) fn announcement(joined: bool, user_id: &str) -> Bytes {
        let kind = if joined {
            PRESENCE_JOIN
        } else {
            PRESENCE_LEAVE
        };
        // Two strings: serialization cannot fail.
        let a = Announcement {
            kind: Cow::Borrowed(kind),
            user_id: Cow::Borrowed(user_id),
        };
        Bytes::from(serde_json::to_vec(&a).unwrap_or_default())
    }
}

/// A subscription as SSE frames of `T` events, like [`Subscription::frames`], with presence
/// announcements as `event: join` / `event: leave` carrying `{"userId": ...}` (and their
/// ids, so a reconnect resumes past them).
pub fn presence_frames<T>(sub: Subscription) -> impl Stream<Item = Frame<T>> + Send {
    PresenceFrames::<T> {
        inner: Box::pin(sub.frames_raw()),
        _data: std::marker::PhantomData,
    }
}

struct PresenceFrames<T> {
    inner: Pin<Box<dyn Stream<Item = RawItem> + Send>>,
    _data: std::marker::PhantomData<fn() -> T>,
}

/// An item of [`Subscription::frames_raw`]: an event, or a frame already encoded.
pub(crate) enum RawItem {
    Event(HubEvent),
    Frame(Bytes),
}

impl<T> Stream for PresenceFrames<T> {
    type Item = Frame<T>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Frame<T>>> {
        Poll::Ready(
            std::task::ready!(self.inner.as_mut().poll_next(cx)).map(|item| match item {
                RawItem::Frame(bytes) => Frame::from_encoded(bytes),
                RawItem::Event(ev) => match PresenceChange::of(&ev) {
                    None => ev.frame(),
                    Some(change) => {
                        let data = serde_json::to_vec(&UserData {
                            user_id: &change.user_id,
                        })
                        .unwrap_or_default();
                        Frame::from_encoded(sse::encode_raw(
                            Some(ev.id()),
                            Some(change.event_name()),
                            &data,
                        ))
                    }
                },
            }),
        )
    }
}

impl Subscription {
    /// Like [`Subscription::frames`], leaving events undecided (for [`presence_frames`]).
    pub(crate) fn frames_raw(self) -> impl Stream<Item = RawItem> + Send {
        use futures_util::StreamExt;
        self.map(|item| match item {
            HubItem::Event(ev) => RawItem::Event(ev),
            HubItem::Gap { reason, missed } => RawItem::Frame(sse::encode_gap(reason, missed)),
            HubItem::Lagged { missed } => {
                let err = PikkuError::new(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "lagged",
                    format!("fell behind by {missed} events; reconnect to resume"),
                );
                // The backend ends the stream after `Lagged`.
                RawItem::Frame(sse::encode_error(&err))
            }
        })
    }
}

/// Where a backend keeps presence entries: one per (topic, member, instance), expiring
/// unless refreshed. "Present" means at least one unexpired entry.
pub(crate) trait PresenceStore: Send + Sync + 'static {
    /// Adds this instance's entry of `member`; `Ok(true)` when the member was not present
    /// before (on any instance). Refuses past `max` members in the topic.
    fn add<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
        ttl: Duration,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Removes this instance's entry; `Ok(true)` when the member is present nowhere now and
    /// this call removed it (the caller announces the leave).
    fn remove<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>>;

    /// Extends this instance's entries of `members` in `topic` by `ttl`, adding them again
    /// where they are gone (reaped while this instance could not refresh: its leave was
    /// announced); returns those, for the caller to announce their join again.
    fn refresh<'a>(
        &'a self,
        topic: &'a str,
        members: &'a [Arc<str>],
        instance: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, HubError>>;

    /// The members with an unexpired entry, sorted.
    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>>;

    /// Deletes the members of `topic` whose every entry expired (their instances died) and
    /// returns those this call deleted, for the caller to announce their leave.
    fn reap<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>>;

    /// Topics a heartbeat refreshes at once: enough that a round over many topics stays well
    /// within the TTL, without taking the backend's whole connection pool.
    fn heartbeat_concurrency(&self) -> usize {
        4
    }

    /// Publishes an announcement on the topic.
    fn announce<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>>;
}

/// One member on this instance: its tabs, and whether the store has its entry.
struct Slot {
    tabs: AtomicUsize,
    /// Serialises the store's add and remove of this member, so they apply in order.
    stored: tokio::sync::Mutex<bool>,
}

type Local = HashMap<Arc<str>, HashMap<Arc<str>, Arc<Slot>>>;

/// A hub's presence: this instance's members and the backend's store.
pub(crate) struct Presence {
    inner: Arc<Shared>,
}

struct Shared {
    store: Box<dyn PresenceStore>,
    instance: String,
    ttl: Duration,
    heartbeat: Duration,
    max_members: usize,
    max_topics: usize,
    local: Mutex<Local>,
    beating: AtomicBool,
}

impl Presence {
    /// Presence on `store`, with the limits and timings of `cfg`.
    pub(crate) fn new(store: impl PresenceStore, cfg: &HubConfig) -> Self {
        Self {
            inner: Arc::new(Shared {
                store: Box::new(store),
                instance: format!("{:016x}", rand::random::<u64>()),
                ttl: cfg.presence_ttl.max(Duration::from_millis(1)),
                heartbeat: cfg.presence_heartbeat.max(Duration::from_millis(1)),
                max_members: cfg.max_presence_members,
                max_topics: cfg.max_presence_topics,
                local: Mutex::new(HashMap::new()),
                beating: AtomicBool::new(false),
            }),
        }
    }

    /// See [`super::EventHub::join`].
    pub(crate) async fn join(&self, topic: &str, member: &str) -> Result<PresenceGuard, HubError> {
        let shared = &self.inner;
        shared.ensure_heartbeat();
        let slot = {
            let mut local = shared.local.lock();
            if !local.contains_key(topic) && local.len() >= shared.max_topics {
                return Err(HubError::TooManyPresenceTopics {
                    max: shared.max_topics,
                });
            }
            let members = local.entry(Arc::from(topic)).or_default();
            if !members.contains_key(member) && members.len() >= shared.max_members {
                let max = shared.max_members;
                if members.is_empty() {
                    local.remove(topic);
                }
                return Err(HubError::TooManyMembers { max });
            }
            let slot = members
                .entry(Arc::from(member))
                .or_insert_with(|| {
                    Arc::new(Slot {
                        tabs: AtomicUsize::new(0),
                        stored: tokio::sync::Mutex::new(false),
                    })
                })
                .clone();
            slot.tabs.fetch_add(1, Ordering::SeqCst);
            slot
        };
        let mut stored = slot.stored.lock().await;
        if !*stored {
            let added = shared
                .store
                .add(
                    topic,
                    member,
                    &shared.instance,
                    shared.ttl,
                    shared.max_members,
                )
                .await;
            match added {
                Ok(new) => {
                    *stored = true;
                    if new {
                        let json = PresenceChange::announcement(true, member);
                        // The member is present either way; only the announcement is lost.
                        if let Err(e) = shared.store.announce(topic, json).await {
                            tracing::warn!(error = %e, topic, "could not announce a join");
                        }
                    }
                }
                Err(e) => {
                    drop(stored);
                    shared.release(topic, member, &slot).await;
                    return Err(e);
                }
            }
        }
        drop(stored);
        Ok(PresenceGuard {
            // Joined inside a runtime (this is async): the leave runs there, wherever the
            // guard is dropped.
            rt: tokio::runtime::Handle::try_current().ok(),
            shared: Arc::downgrade(shared),
            topic: Arc::from(topic),
            member: Arc::from(member),
            slot: Some(slot),
        })
    }

    /// See [`super::EventHub::presence`].
    pub(crate) async fn members(&self, topic: &str) -> Result<Vec<String>, HubError> {
        self.inner.store.members(topic).await
    }
}

impl Shared {
    /// Starts the heartbeat on first use inside a tokio runtime.
    fn ensure_heartbeat(self: &Arc<Self>) {
        if self.beating.load(Ordering::Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.beating.swap(true, Ordering::AcqRel) {
            rt.spawn(heartbeat(Arc::downgrade(self), self.heartbeat));
        }
    }

    /// One tab of `member` left: the last one removes the entry and announces the leave.
    async fn release(&self, topic: &str, member: &str, slot: &Arc<Slot>) {
        if slot.tabs.fetch_sub(1, Ordering::SeqCst) > 1 {
            return;
        }
        let mut stored = slot.stored.lock().await;
        // A tab may have joined again while this waited.
        if slot.tabs.load(Ordering::SeqCst) > 0 {
            return;
        }
        if *stored {
            match self.store.remove(topic, member, &self.instance).await {
                Ok(true) => {
                    let json = PresenceChange::announcement(false, member);
                    if let Err(e) = self.store.announce(topic, json).await {
                        tracing::warn!(error = %e, topic, "could not announce a leave");
                    }
                }
                Ok(false) => {}
                // The entry expires by itself; another instance's reaper announces the leave.
                Err(e) => tracing::warn!(error = %e, topic, "could not remove a presence entry"),
            }
            *stored = false;
        }
        let mut local = self.local.lock();
        if slot.tabs.load(Ordering::SeqCst) == 0
            && let Some(members) = local.get_mut(topic)
        {
            if members.get(member).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                members.remove(member);
            }
            if members.is_empty() {
                local.remove(topic);
            }
        }
    }
}

/// Refreshes this instance's entries and reaps (announcing the leave of) members whose
/// instances stopped refreshing, in the topics this instance has members in.
async fn heartbeat(shared: Weak<Shared>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        // Only members the store holds: a join or leave in flight (its lock taken) writes its
        // own entry, and a refused join must not be added behind the bound's back.
        let topics: Vec<(Arc<str>, Vec<Arc<str>>)> = shared
            .local
            .lock()
            .iter()
            .map(|(t, m)| {
                let stored = m
                    .iter()
                    .filter(|(_, slot)| slot.stored.try_lock().is_ok_and(|s| *s))
                    .map(|(member, _)| member.clone());
                (t.clone(), stored.collect())
            })
            .collect();
        let started = std::time::Instant::now();
        let count = topics.len();
        futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(topics),
            shared.store.heartbeat_concurrency().max(1),
            |(topic, members)| {
                let shared = &shared;
                async move { beat(shared, &topic, &members).await }
            },
        )
        .await;
        let took = started.elapsed();
        if took > shared.ttl / 2 {
            tracing::warn!(
                ?took,
                topics = count,
                ttl = ?shared.ttl,
                "presence heartbeat is slow: entries may expire while their instance lives"
            );
        }
    }
}

/// One topic's refresh and reap.
async fn beat(shared: &Shared, topic: &str, members: &[Arc<str>]) {
    let store = &shared.store;
    if !members.is_empty() {
        match store
            .refresh(topic, members, &shared.instance, shared.ttl)
            .await
        {
            Ok(revived) => {
                for member in revived {
                    let json = PresenceChange::announcement(true, &member);
                    if let Err(e) = store.announce(topic, json).await {
                        tracing::warn!(error = %e, "could not announce a join");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, topic, "could not refresh presence");
                return;
            }
        }
    }
    match store.reap(topic).await {
        Ok(gone) => {
            for member in gone {
                let json = PresenceChange::announcement(false, &member);
                if let Err(e) = store.announce(topic, json).await {
                    tracing::warn!(error = %e, "could not announce a leave");
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not reap presence"),
    }
}

/// A member's presence in a topic (one tab of it): dropping it leaves. The member's `leave`
/// is announced when its last guard, on every instance, is dropped. A guard outliving its hub
/// leaves nothing behind to clean: the entry expires.
pub struct PresenceGuard {
    rt: Option<tokio::runtime::Handle>,
    shared: Weak<Shared>,
    topic: Arc<str>,
    member: Arc<str>,
    slot: Option<Arc<Slot>>,
}

impl PresenceGuard {
    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    /// The member.
    pub fn member(&self) -> &str {
        &self.member
    }
}

impl std::fmt::Debug for PresenceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceGuard")
            .field("topic", &self.topic)
            .field("member", &self.member)
            .finish()
    }
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        let (Some(slot), Some(shared)) = (self.slot.take(), self.shared.upgrade()) else {
            return;
        };
        let Some(rt) = self.rt.take() else {
            // Joined outside tokio: nothing can run the leave; the entry expires after the TTL.
            slot.tabs.fetch_sub(1, Ordering::SeqCst);
            return;
        };
        let (topic, member) = (self.topic.clone(), self.member.clone());
        // A runtime shut down since cannot run it: the entry then expires after the TTL.
        rt.spawn(async move { shared.release(&topic, &member, &slot).await });
    }
}

/// The milliseconds of a duration, for stores that speak milliseconds.
#[cfg_attr(
    not(any(feature = "redis", feature = "nats", feature = "postgres")),
    allow(dead_code)
)]
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_hub::{EventHub, MemoryHub};

    #[tokio::test]
    async fn a_guard_dropped_off_the_runtime_still_leaves() {
        let hub = MemoryHub::new();
        let guard = hub.join("room", "alice").await.unwrap();
        assert_eq!(hub.presence("room").await.unwrap(), ["alice"]);
        std::thread::spawn(move || drop(guard)).join().unwrap();
        for _ in 0..200 {
            if hub.presence_count("room").await.unwrap() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("alice is still present");
    }

    #[test]
    fn announcements_round_trip_and_ordinary_events_are_not_ones() {
        let json = PresenceChange::announcement(true, "al\"ice");
        assert_eq!(
            PresenceChange::parse(&json),
            Some(PresenceChange {
                joined: true,
                user_id: "al\"ice".into()
            })
        );
        assert_eq!(
            PresenceChange::parse(br#"{"userId":"a","text":"hi"}"#),
            None
        );
        assert_eq!(
            PresenceChange::parse(br#"{"pikkuPresence":"dance","userId":"a"}"#),
            None
        );
    }
}
