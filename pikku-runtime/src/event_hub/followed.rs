//! The topics a remote backend (Redis, NATS, PostgreSQL) follows for this instance's
//! subscribers: a local log per topic and whether the backend follows it yet.
//!
//! Subscribing creates the topic here (within `max_topics`) and asks the backend, once, to
//! follow it; the subscription waits until the backend does, then reads the history it asked
//! for. The backend's `LogOwner::idle` takes the topic out again ([`Followed::take_idle`])
//! once its last subscriber has left, and stops following it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use super::config::HubConfig;
use super::log::{Budget, Cursor, LogOwner, TopicLog};
use super::position::{Position, Resume};
use super::{HubError, HubItem};

/// Whether the backend follows a topic yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ready {
    /// Not yet: the subscription waits.
    Pending,
    /// Following: the topic's live events reach its log.
    Following,
    /// Following it failed (the backend's error).
    Failed(String),
}

/// A topic active on this instance: its log, whether it is followed, and what the backend
/// keeps to follow it (`X`: a task handle, or nothing).
pub(super) struct Entry<X> {
    pub(super) log: Arc<TopicLog>,
    ready: watch::Receiver<Ready>,
    // Only NATS keeps something (its topic's task).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(super) follower: X,
}

/// The topics followed for this instance's subscribers, by the backend's key for the topic.
pub(super) struct Followed<X> {
    topics: Mutex<HashMap<Arc<str>, Entry<X>>>,
}

impl<X> Followed<X> {
    pub(super) fn new() -> Self {
        Self {
            topics: Mutex::new(HashMap::new()),
        }
    }

    /// Topics with local subscribers.
    pub(super) fn len(&self) -> usize {
        self.topics.lock().len()
    }

    /// Opens a subscription to `key`: a cursor at the end of its log. A topic new here gets
    /// its log (within `max_topics`), and `follow(log, ready)` is called once, under the
    /// table's lock, to have the backend follow it and report on `ready`.
    pub(super) fn open(
        &self,
        key: &Arc<str>,
        cfg: &HubConfig,
        budget: &Arc<Budget>,
        owner: Weak<dyn LogOwner>,
        follow: impl FnOnce(&Arc<TopicLog>, watch::Sender<Ready>) -> X,
    ) -> Result<Opening, HubError> {
        let mut topics = self.topics.lock();
        let created = !topics.contains_key(key);
        if created {
            if topics.len() >= cfg.max_topics {
                return Err(HubError::TooManyTopics {
                    max: cfg.max_topics,
                });
            }
            let log = TopicLog::new(key.clone(), cfg, budget.clone(), owner);
            let (tx, rx) = watch::channel(Ready::Pending);
            let follower = follow(&log, tx);
            topics.insert(
                key.clone(),
                Entry {
                    log,
                    ready: rx,
                    follower,
                },
            );
        }
        let entry = topics
            .get(key)
            .ok_or_else(|| HubError::unavailable("topic vanished"))?;
        Ok(Opening {
            cursor: entry.log.cursor_at_end(),
            ready: entry.ready.clone(),
            created,
        })
    }

    /// Takes `topic` out if its last subscriber has left, clearing its log: the entry, for
    /// the backend to stop following it.
    pub(super) fn take_idle(&self, topic: &Arc<str>) -> Option<Entry<X>> {
        let mut topics = self.topics.lock();
        if !topics.get(topic)?.log.unsubscribed() {
            return None;
        }
        let entry = topics.remove(topic)?;
        drop(topics);
        entry.log.clear();
        Some(entry)
    }

    /// Takes `topic` out if `log` is still its log (following it failed or ended), so the
    /// next subscriber starts over.
    pub(super) fn remove_if_same(&self, topic: &Arc<str>, log: &Arc<TopicLog>) -> Option<Entry<X>> {
        let mut topics = self.topics.lock();
        if !Arc::ptr_eq(&topics.get(topic)?.log, log) {
            return None;
        }
        topics.remove(topic)
    }

    /// What the backend keeps per topic, for all topics (to stop following on drop).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(super) fn followers(&mut self) -> impl Iterator<Item = &X> {
        self.topics.get_mut().values().map(|e| &e.follower)
    }
}

/// A subscription being opened ([`Followed::open`]).
pub(super) struct Opening {
    cursor: Cursor,
    ready: watch::Receiver<Ready>,
    /// Whether the topic is new here (its log holds nothing yet).
    created: bool,
}

impl Opening {
    /// Waits until the backend follows the topic, so the live events and the history read
    /// next overlap rather than leave a hole. `stopped` says what went away when no report
    /// comes; `fail` turns the backend's failure into the hub's error (the failed topic
    /// leaves the table with its last subscriber, this one when the cursor drops).
    pub(super) async fn followed(
        mut self,
        stopped: &'static str,
        fail: impl FnOnce(&str) -> HubError,
    ) -> Result<Self, HubError> {
        let state = self
            .ready
            .wait_for(|r| *r != Ready::Pending)
            .await
            .map_err(|_| HubError::unavailable(stopped))?
            .clone();
        match state {
            Ready::Failed(e) => Err(fail(&e)),
            _ => Ok(self),
        }
    }

    /// The cursor, after the history `replay` reads when the client resumes from
    /// `last_event_id` or the topic is new here (the cursor skips the live events the
    /// history already yielded).
    pub(super) async fn catch_up<Fut>(
        mut self,
        last_event_id: Option<&str>,
        replay: impl FnOnce(Resume) -> Fut,
    ) -> Result<Cursor, HubError>
    where
        Fut: Future<Output = Result<(Vec<HubItem>, Option<Position>), HubError>>,
    {
        let resume = Resume::parse(last_event_id);
        if resume != Resume::Live || self.created {
            let (items, last) = replay(resume).await?;
            if let Some(last) = last {
                self.cursor.log().set_baseline(last);
            }
            self.cursor.replay(items, last);
        }
        Ok(self.cursor)
    }
}

/// While a listener cannot reach its backend: fails the commands waiting for it now (a
/// subscription waiting to be followed learns the backend is down rather than hang), then
/// waits out `backoff` or until the next command, which is failed the same way (the listener
/// then tries again). `false` once the hub is gone (its last handle dropped).
#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
pub(super) async fn wait_offline<I, C>(
    hub: &Weak<I>,
    cmds: &mut mpsc::UnboundedReceiver<C>,
    backoff: Duration,
    mut offline: impl FnMut(&I, C),
) -> bool {
    if let Some(inner) = hub.upgrade() {
        while let Ok(cmd) = cmds.try_recv() {
            offline(&inner, cmd);
        }
    }
    tokio::select! {
        _ = tokio::time::sleep(backoff) => true,
        cmd = cmds.recv() => match cmd {
            Some(cmd) => {
                if let Some(inner) = hub.upgrade() {
                    offline(&inner, cmd);
                }
                true
            }
            None => false,
        },
    }
}
