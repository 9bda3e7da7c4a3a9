//! The embedded, in-process hub: no setup, bounded memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use super::LocalParts;
use super::log::{Budget, LogOwner, TopicLog};
use super::presence::{Presence, PresenceStore};
use super::{EventHub, HubConfig, HubError, Position, Resume, Subscription, SubscriptionCounter};

/// The embedded hub: one process, no setup, bounded memory.
///
/// Each topic is one shared log ([`HubConfig::replay_max_events`] events, kept for
/// [`HubConfig::replay_max_age`]) that its subscribers read through cursors. A topic's epoch is
/// chosen when the topic is created; a topic is dropped when it has neither subscribers nor
/// retained events, so a resume after that (or after a restart) gets a `reset` gap. A timer
/// trims expired events and drops idle topics, whether or not they are touched again.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use pikku::event_hub::{EventHubExt, MemoryHub};
/// let hub = MemoryHub::new();
/// let id = hub.publish("news", &"hello").await.unwrap();
/// assert!(id.ends_with("-1"));
/// # }
/// ```
pub struct MemoryHub {
    inner: Arc<Inner>,
    presence: Presence,
}

struct Inner {
    cfg: HubConfig,
    topics: Mutex<HashMap<Arc<str>, Arc<TopicLog>>>,
    budget: Arc<Budget>,
    counter: SubscriptionCounter,
    sweeping: AtomicBool,
}

impl LogOwner for Inner {
    fn idle(&self, topic: &Arc<str>) {
        let mut topics = self.topics.lock();
        // Checked under the map lock: a subscriber may have just joined.
        if topics
            .get(topic)
            .is_some_and(|log| log.sweep(Instant::now()))
        {
            topics.remove(topic);
        }
    }
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
        let inner = Arc::new(Inner {
            budget: Budget::new(cfg.max_retained_bytes),
            cfg: cfg.clone(),
            topics: Mutex::new(HashMap::new()),
            counter: SubscriptionCounter::default(),
            sweeping: AtomicBool::new(false),
        });
        let store = MemoryPresence {
            hub: Arc::downgrade(&inner),
            members: Mutex::new(HashMap::new()),
        };
        Self {
            presence: Presence::new(store, &cfg),
            inner,
        }
    }

    /// How many topics are held (with subscribers or retained events).
    pub fn topic_count(&self) -> usize {
        self.inner.topics.lock().len()
    }

    /// Bytes of events retained across all topics (what [`HubConfig::max_retained_bytes`]
    /// bounds).
    pub fn retained_bytes(&self) -> usize {
        self.inner.budget.used()
    }

    /// Starts the expiry timer on first use inside a tokio runtime (a hub may be built
    /// outside one).
    fn ensure_sweeper(&self) {
        ensure_sweeper(&self.inner);
    }

    fn publish_now(&self, topic: &str, json: Bytes) -> Result<String, HubError> {
        publish_now(&self.inner, topic, json)
    }

    fn subscribe_now(&self, topic: &str, from: Option<&str>) -> Result<Subscription, HubError> {
        self.ensure_sweeper();
        let mut topics = self.inner.topics.lock();
        let cursor = log(&self.inner, &mut topics, topic)?.cursor(Resume::parse(from));
        drop(topics);
        Ok(Subscription::new(cursor, self.inner.counter.guard()))
    }
}

/// Starts the expiry timer on first use inside a tokio runtime (a hub may be built outside
/// one).
fn ensure_sweeper(inner: &Arc<Inner>) {
    if inner.sweeping.load(Ordering::Relaxed) {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if inner.sweeping.swap(true, Ordering::AcqRel) {
        return;
    }
    let every =
        (inner.cfg.replay_max_age / 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
    rt.spawn(sweep_loop(Arc::downgrade(inner), every));
}

/// The topic's log, created when new (refused past [`HubConfig::max_topics`]).
fn log<'m>(
    inner: &Arc<Inner>,
    topics: &'m mut HashMap<Arc<str>, Arc<TopicLog>>,
    topic: &str,
) -> Result<&'m Arc<TopicLog>, HubError> {
    if !topics.contains_key(topic) {
        if topics.len() >= inner.cfg.max_topics {
            return Err(HubError::TooManyTopics {
                max: inner.cfg.max_topics,
            });
        }
        let owner: Weak<dyn LogOwner> = Arc::downgrade(inner) as Weak<dyn LogOwner>;
        let name: Arc<str> = Arc::from(topic);
        let log = TopicLog::new(name.clone(), &inner.cfg, inner.budget.clone(), owner);
        topics.insert(name, log);
    }
    topics
        .get(topic)
        .ok_or_else(|| HubError::unavailable("topic vanished"))
}

fn publish_now(inner: &Arc<Inner>, topic: &str, json: Bytes) -> Result<String, HubError> {
    let max = inner.cfg.max_event_bytes;
    if json.len() > max {
        return Err(HubError::TooLarge {
            size: json.len(),
            max,
        });
    }
    ensure_sweeper(inner);
    let (event, wakers): (_, Vec<Waker>) = {
        let mut topics = inner.topics.lock();
        let log = log(inner, &mut topics, topic)?;
        // Under the map lock, so the timer cannot drop the topic in between.
        log.publish(json)?
    };
    wakers.into_iter().for_each(Waker::wake);
    Ok(event.id().to_string())
}

async fn sweep_loop(hub: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        let now = Instant::now();
        inner.topics.lock().retain(|_, log| !log.sweep(now));
    }
}

impl EventHub for MemoryHub {
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(futures_util::future::ready(self.publish_now(topic, json)))
    }

    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        Box::pin(futures_util::future::ready(
            self.subscribe_now(topic, last_event_id),
        ))
    }

    fn local(&self) -> Option<LocalParts<'_>> {
        Some(LocalParts {
            backend: "memory",
            counter: &self.inner.counter,
            cfg: &self.inner.cfg,
            presence: &self.presence,
            health: None,
        })
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        // A topic that is not held has no history: it was never published, or it was dropped
        // (idle) and its next publish starts a new epoch.
        let head = self
            .inner
            .topics
            .lock()
            .get(topic)
            .and_then(|log| log.head());
        Box::pin(futures_util::future::ready(Ok(head)))
    }

    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        // A lookup only: asking does not create the topic.
        let newest = self
            .inner
            .topics
            .lock()
            .get(topic)
            .and_then(|log| log.newest());
        Box::pin(futures_util::future::ready(Ok(newest)))
    }
}

/// Presence of the embedded hub: one instance, so entries never expire (they leave with
/// their guards, or with the process).
struct MemoryPresence {
    hub: Weak<Inner>,
    members: Mutex<HashMap<String, std::collections::BTreeSet<String>>>,
}

impl PresenceStore for MemoryPresence {
    fn add<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        _instance: &'a str,
        _ttl: Duration,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut all = self.members.lock();
        let members = all.entry(topic.to_string()).or_default();
        let r = if members.contains(member) {
            Ok(false)
        } else if members.len() >= max {
            Err(HubError::TooManyMembers { max })
        } else {
            Ok(members.insert(member.to_string()))
        };
        if members.is_empty() {
            all.remove(topic);
        }
        Box::pin(futures_util::future::ready(r))
    }

    fn remove<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        _instance: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        let mut all = self.members.lock();
        let removed = all.get_mut(topic).is_some_and(|m| m.remove(member));
        if all.get(topic).is_some_and(|m| m.is_empty()) {
            all.remove(topic);
        }
        Box::pin(futures_util::future::ready(Ok(removed)))
    }

    fn refresh<'a>(
        &'a self,
        _topic: &'a str,
        _members: &'a [Arc<str>],
        _instance: &'a str,
        _ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(futures_util::future::ready(Ok(Vec::new())))
    }

    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        let members = self
            .members
            .lock()
            .get(topic)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default();
        Box::pin(futures_util::future::ready(Ok(members)))
    }

    fn reap<'a>(&'a self, _topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(futures_util::future::ready(Ok(Vec::new())))
    }

    fn announce<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        let r = match self.hub.upgrade() {
            Some(inner) => publish_now(&inner, topic, json),
            None => Err(HubError::unavailable("the hub was dropped")),
        };
        Box::pin(futures_util::future::ready(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_hub::{EventHubExt, GapReason, HubCounts, HubItem, SlowConsumerPolicy};
    use futures_util::StreamExt;

    fn ids(items: &[HubItem]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                HubItem::Event(e) => e.seq().to_string(),
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
    async fn counts_say_what_subscriptions_delivered() {
        let hub = MemoryHub::new();
        assert_eq!(hub.counts(), HubCounts::default());
        let mut a = hub.subscribe("t").await.unwrap();
        let mut b = hub.subscribe("t").await.unwrap();
        for n in 1..=3 {
            hub.publish("t", &n).await.unwrap();
        }
        take(&mut a, 3).await;
        take(&mut b, 2).await;
        drop((a, b));
        assert_eq!(hub.counts().delivered, 5);
        // An unknown resume point is a gap.
        let mut c = hub.subscribe_from("t", Some("not-an-id")).await.unwrap();
        assert!(matches!(take(&mut c, 1).await[0], HubItem::Gap { .. }));
        drop(c);
        assert_eq!(
            hub.counts(),
            HubCounts {
                delivered: 5,
                gaps: 1,
                lagged: 0
            }
        );
    }

    #[tokio::test]
    async fn resume_replays_exactly_the_missed_events() {
        let hub = MemoryHub::new();
        let mut ids_ = Vec::new();
        for n in 1..=5 {
            ids_.push(hub.publish("t", &n).await.unwrap());
        }
        let mut sub = hub.subscribe_from("t", Some(&ids_[1])).await.unwrap();
        hub.publish("t", &6).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 4).await), ["3", "4", "5", "6"]);
    }

    #[tokio::test]
    async fn expired_unknown_and_reset_ids_are_said() {
        let hub = MemoryHub::with_config(HubConfig {
            replay_max_events: 3,
            ..HubConfig::default()
        });
        let mut published = Vec::new();
        for n in 1..=10 {
            published.push(hub.publish("t", &n).await.unwrap());
        }
        let mut sub = hub.subscribe_from("t", Some(&published[1])).await.unwrap();
        assert_eq!(
            ids(&take(&mut sub, 4).await),
            ["gap:Expired:Some(5)", "8", "9", "10"]
        );
        let mut sub = hub.subscribe_from("t", Some("not-a-number")).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 2).await), ["gap:UnknownId:None", "8"]);
        let future = published[9].replace("-10", "-99");
        let mut sub = hub.subscribe_from("t", Some(&future)).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 2).await), ["gap:UnknownId:None", "8"]);
        // Another epoch: this topic's history is not the one the client saw.
        let mut sub = hub.subscribe_from("t", Some("abc-9")).await.unwrap();
        assert_eq!(ids(&take(&mut sub, 2).await), ["gap:Reset:None", "8"]);
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
                assert_eq!(ids(&take(&mut sub, 4).await), ["7", "8", "9", "10"]);
            }
        }
    }

    #[tokio::test]
    async fn idle_topics_are_dropped_and_expiry_runs_on_a_timer() {
        let hub = MemoryHub::with_config(HubConfig {
            replay_max_age: Duration::from_millis(50),
            ..HubConfig::default()
        });
        for n in 0..1000 {
            let s = hub.subscribe(&format!("user:{n}")).await.unwrap();
            drop(s);
        }
        assert_eq!(hub.topic_count(), 0, "dropped with their last subscriber");
        for n in 0..100 {
            hub.publish(&format!("user:{n}"), &"z".repeat(1000))
                .await
                .unwrap();
        }
        assert_eq!(hub.topic_count(), 100);
        assert!(hub.retained_bytes() > 100 * 1000);
        // Not touched again: the timer trims them.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(hub.topic_count(), 0);
        assert_eq!(hub.retained_bytes(), 0);
    }

    #[tokio::test]
    async fn budgets_refuse_with_errors() {
        let hub = MemoryHub::with_config(HubConfig {
            max_event_bytes: 100,
            max_topics: 2,
            max_retained_bytes: 4096,
            ..HubConfig::default()
        });
        let big = "x".repeat(200);
        assert!(matches!(
            hub.publish("a", &big).await,
            Err(HubError::TooLarge {
                size: 202,
                max: 100
            })
        ));
        hub.publish("a", &1).await.unwrap();
        hub.publish("b", &1).await.unwrap();
        assert!(matches!(
            hub.publish("c", &1).await,
            Err(HubError::TooManyTopics { max: 2 })
        ));
        // One topic fills the budget by itself: its own oldest events make room.
        let mid = "y".repeat(90);
        for _ in 0..200 {
            hub.publish("a", &mid).await.unwrap();
        }
        assert!(hub.retained_bytes() <= 4096);
        let http: crate::PikkuError = HubError::TooLarge { size: 2, max: 1 }.into();
        assert_eq!(http.status(), 413);
    }

    #[tokio::test]
    async fn a_slow_subscriber_costs_a_cursor_not_a_copy() {
        let hub = MemoryHub::new();
        let mut laggards = Vec::new();
        for _ in 0..200 {
            laggards.push(hub.subscribe("t").await.unwrap());
        }
        let mut reader = hub.subscribe("t").await.unwrap();
        for n in 0..5000u32 {
            hub.publish("t", &n).await.unwrap();
        }
        for n in 0..5000u64 {
            match reader.next().await {
                Some(HubItem::Event(e)) => assert_eq!(e.seq(), n + 1),
                other => panic!("{other:?}"),
            }
        }
        let per_event = hub.retained_bytes() / 5000;
        assert!(per_event < 200, "one copy per event: {per_event} bytes");
        let _ = GapReason::Lagged;
    }
}
