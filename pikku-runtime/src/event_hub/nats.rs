//! The NATS JetStream event hub: streams across many server instances, on one connection per
//! instance.
//!
//! # Shape
//! - **History**: one JetStream stream per hub prefix holds every topic's window: a topic is
//!   the subject `<prefix>.ev.<topic>` (the topic percent-encoded into one subject token), the
//!   stream keeps [`HubConfig::replay_max_events`] messages per subject for
//!   [`HubConfig::replay_max_age`]. Each message carries its topic position in headers
//!   (`Pikku-Epoch`, `Pikku-Offset`).
//! - **Offsets**: JetStream sequences are stream-wide, so the hub numbers each topic itself.
//!   A publish takes the subject's last message (cached per instance after its own publishes),
//!   publishes offset + 1 with `Nats-Expected-Last-Subject-Sequence` set to that message's
//!   sequence, and retries on a conflict: concurrent publishers (on any instance) can never
//!   give two events one offset. Publishes of one topic on one instance are serialized, so they
//!   do not conflict with each other.
//! - **Epochs**: when a subject holds no message (never published, every event expired, the
//!   subject or stream was purged, the server lost its data) the next publish starts a new
//!   random epoch at offset 1, so a client resuming from the old history gets a `reset` gap;
//!   a history trimmed past a client's offset shows as a hole in the offsets (an `expired` gap).
//! - **Live delivery**: the stream *republishes* each stored message to
//!   `<prefix>.live.<topic>`, and each instance subscribes (core NATS) to the live subject of
//!   every topic it has subscribers for, all on its one client connection: connections do not
//!   grow with topics. Republishing, rather than subscribing to the stored subjects, means
//!   subscribers only ever see events JetStream accepted: a publish refused for a stale
//!   expected sequence (whose offset another event took) never reaches them. Each topic is
//!   fanned out to local subscribers through one shared log, as in the Redis hub.
//! - **Continuity**: a resume subscribes to the live subject first, then reads the history
//!   (the subject's last message, and when more is needed an ordered consumer filtered on the
//!   subject), and the cursor skips what the history already yielded. A hole in the live
//!   offsets (a message dropped for a slow client connection) is filled from the stream; after
//!   the client reconnects (`async-nats` reconnects and resubscribes by itself) each active
//!   topic reads what it missed from the stream, so subscribers see no loss or duplicate.
//!
//! # Operation
//! - Needs NATS 2.9 or later with JetStream (stream republish and direct get). The stream is
//!   created, or its settings updated, by [`NatsHub::connect`]; should it be deleted while the
//!   hub runs, the next publish creates it again (a new epoch for every topic).
//! - One client connection per instance carries publishes, history reads and every live
//!   subscription, so [`HubConfig::connections`] does not apply. History reads longer than one
//!   event use a short-lived ordered consumer, which the server removes once it is idle.
//! - [`HubConfig::max_topics`] bounds the topics with subscribers on this instance;
//!   [`HubConfig::max_event_bytes`] is also capped by the server's maximum message size.
//! - Publishing while NATS is unreachable fails within about two seconds with
//!   [`HubError::Unavailable`] (a 503 when it reaches a client); [`EventHub::status`] reports
//!   the hub unhealthy until the connection is back.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::watch;

use super::LocalParts;
use super::followed::{Followed, Ready};
use super::local;
use super::log::{Budget, LogOwner, TopicLog};
use super::position;
use super::presence::{Presence, PresenceStore, millis};
use super::{
    EventHub, HubConfig, HubError, HubEvent, HubItem, HubStatus, Position, Resume, Subscription,
    SubscriptionCounter,
};

/// Default subject prefix: a topic's events are stored on `pikku_hub.ev.<topic>`, in the
/// stream `pikku_hub`.
pub const DEFAULT_PREFIX: &str = "pikku_hub";

/// Header holding an event's epoch (hex).
const EPOCH_HEADER: &str = "Pikku-Epoch";
/// Header holding an event's offset.
const OFFSET_HEADER: &str = "Pikku-Offset";
/// Header JetStream adds to a republished message: its stream sequence.
const SEQUENCE_HEADER: &str = "Nats-Sequence";
/// How long a connection attempt, a request or an awaited history message may take.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Publish attempts when other publishers keep taking the topic's next offset.
const PUBLISH_ATTEMPTS: usize = 32;
/// Locks serializing publishes (by topic hash), each with a cache of its topics' last message.
const TAIL_SHARDS: usize = 64;
/// Cached topic tails per shard before the cache is emptied (it is only a shortcut).
const TAILS_PER_SHARD: usize = 1024;
/// Topics reading what they missed at once after a reconnect.
const CATCH_UPS: usize = 32;
/// Below this many messages in a subject, a resume reads them all rather than seek.
const SEEK_MIN_MESSAGES: u64 = 256;
/// Room kept for headers when checking a payload against the server's maximum message size.
const HEADER_ROOM: usize = 512;

/// A NATS JetStream-backed [`EventHub`].
pub struct NatsHub {
    inner: Arc<Inner>,
    presence: Presence,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream: stream::Stream<()>,
    /// What the stream is created with (again, should it be deleted while the hub runs).
    stream_config: stream::Config,
    prefix: String,
    cfg: HubConfig,
    /// The largest payload accepted: the configured one, within the server's maximum.
    max_event: usize,
    /// Topics with local subscribers, by subject token; each followed by a task of its own.
    topics: Followed<tokio::task::AbortHandle>,
    tails: Vec<tokio::sync::Mutex<HashMap<Arc<str>, Tail>>>,
    budget: Arc<Budget>,
    counter: SubscriptionCounter,
    health: Arc<Health>,
    /// Bounds the topics catching up at once after a reconnect.
    catch_ups: tokio::sync::Semaphore,
}

/// The connection's state, shared with the client's event callback.
struct Health {
    state: local::Health,
    /// Bumped on every (re)connect: topic tasks catch up from the stream then.
    connects: watch::Sender<u64>,
}

impl Health {
    fn ok(&self) {
        self.state.ok();
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> HubError {
        self.state.fail(e)
    }

    fn on_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                self.ok();
                self.connects.send_modify(|n| *n += 1);
            }
            async_nats::Event::Disconnected => {
                self.fail(&"connection to NATS lost");
            }
            async_nats::Event::Closed => {
                self.fail(&"connection to NATS closed");
            }
            async_nats::Event::SlowConsumer(_) => {
                // The dropped live message shows as a hole in the offsets, filled from the stream.
                tracing::warn!("nats event hub dropped live messages (slow consumer)");
            }
            _ => {}
        }
    }
}

/// The last message of a topic's subject, as a publish builds on it.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// Its stream sequence (0: the subject holds no message).
    seq: u64,
    /// Its position (`None`: no message, or not one of this hub's).
    pos: Option<Position>,
}

/// A topic's history as read from the stream.
#[derive(Default)]
struct History {
    /// `None` when the subject holds no message.
    epoch: Option<u64>,
    /// The last offset.
    last: u64,
    /// The stream sequence of the last message.
    last_seq: u64,
    /// Oldest first.
    events: Vec<HubEvent>,
}

impl NatsHub {
    /// Connects to the NATS server at `url` (`nats://host:port`) and creates (or updates) the
    /// hub's JetStream stream for `prefix` (a valid subject prefix, e.g. `pikku_hub` or
    /// `app.hub`). Fails with [`HubError::Unavailable`] when the server cannot be reached
    /// within a few seconds or has no JetStream; once connected, the client reconnects by
    /// itself. Call it inside a tokio runtime.
    pub async fn connect(url: &str, prefix: &str, cfg: HubConfig) -> Result<Self, HubError> {
        if !valid_prefix(prefix) {
            return Err(HubError::unavailable(format!(
                "`{prefix}` is not a NATS subject prefix (tokens of printable characters without `*`, `>` or spaces, separated by `.`)"
            )));
        }
        let (connects, _) = watch::channel(0);
        let health = Arc::new(Health {
            state: local::Health::new("nats"),
            connects,
        });
        let events = health.clone();
        let options = async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            // Back within a second of the server's return (the default waits up to 4 s).
            .reconnect_delay_callback(|attempts| match attempts {
                0 | 1 => Duration::ZERO,
                n => {
                    (Duration::from_millis(50) * (1 << n.min(5) as u32)).min(Duration::from_secs(1))
                }
            })
            .event_callback(move |event| {
                let health = events.clone();
                async move { health.on_event(event) }
            });
        let client = match tokio::time::timeout(2 * TIMEOUT, options.connect(url)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(HubError::unavailable(format!("{url}: {e}"))),
            Err(_) => return Err(HubError::unavailable(format!("{url}: timed out"))),
        };
        let js = jetstream::ContextBuilder::new()
            .timeout(TIMEOUT)
            .build(client.clone());
        let max_payload = client.server_info().max_payload;
        let max_event = cfg
            .max_event_bytes
            .min(max_payload.saturating_sub(HEADER_ROOM));
        let stored = format!("{prefix}.ev.>");
        let config = stream::Config {
            name: stream_name(prefix),
            subjects: vec![stored.clone()],
            max_messages_per_subject: i64::try_from(cfg.window()).unwrap_or(i64::MAX),
            max_age: cfg.replay_max_age,
            // No message ids are sent, but the server refuses a window longer than `max_age`.
            duplicate_window: cfg.replay_max_age.min(Duration::from_secs(120)),
            max_message_size: i32::try_from((max_event + HEADER_ROOM).min(max_payload))
                .unwrap_or(i32::MAX),
            allow_direct: true,
            republish: Some(stream::Republish {
                source: stored,
                destination: format!("{prefix}.live.>"),
                headers_only: false,
            }),
            ..Default::default()
        };
        let name = config.name.clone();
        create_stream(&js, &config).await?;
        let stream = js
            .get_stream_no_info(&name)
            .await
            .map_err(|e| HubError::unavailable(format!("stream {name}: {e}")))?;
        let inner = Arc::new(Inner {
            client,
            js,
            stream,
            stream_config: config,
            prefix: prefix.to_string(),
            max_event,
            topics: Followed::new(),
            tails: (0..TAIL_SHARDS)
                .map(|_| tokio::sync::Mutex::new(HashMap::new()))
                .collect(),
            budget: Budget::new(cfg.max_retained_bytes),
            cfg,
            counter: SubscriptionCounter::default(),
            health,
            catch_ups: tokio::sync::Semaphore::new(CATCH_UPS),
        });
        let presence = Presence::new(
            NatsPresence {
                inner: inner.clone(),
                store: tokio::sync::OnceCell::new(),
                stripes: (0..CAS_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            },
            &inner.cfg,
        );
        Ok(Self { inner, presence })
    }

    /// The subject a topic's events are stored on (`<prefix>.ev.<token>`). The topic becomes
    /// one subject token: characters outside `[A-Za-z0-9_-]` are percent-encoded (an empty
    /// topic is `%`), so no topic reaches outside the prefix or adds wildcards.
    pub fn subject(&self, topic: &str) -> String {
        self.inner.stored_subject(&encode(topic))
    }

    /// The name of the hub's JetStream stream.
    pub fn stream_name(&self) -> String {
        stream_name(&self.inner.prefix)
    }

    /// Checks the server now (a JetStream round trip) and updates [`EventHub::status`].
    pub async fn ping(&self) -> Result<(), HubError> {
        match tokio::time::timeout(TIMEOUT, self.inner.stream.get_info()).await {
            Ok(Ok(_)) => {
                self.inner.health.ok();
                Ok(())
            }
            Ok(Err(e)) => Err(self.inner.health.fail(&e)),
            Err(_) => Err(self.inner.health.fail(&"timed out")),
        }
    }

    /// Topics with local subscribers on this instance.
    pub fn active_topics(&self) -> usize {
        self.inner.topics.len()
    }
}

impl LogOwner for Inner {
    fn idle(&self, topic: &Arc<str>) {
        // Ending the task drops its subscription, which unsubscribes the live subject.
        if let Some(entry) = self.topics.take_idle(topic) {
            entry.follower.abort();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        for task in self.topics.followers() {
            task.abort();
        }
    }
}

impl Inner {
    fn stored_subject(&self, token: &str) -> String {
        format!("{}.ev.{token}", self.prefix)
    }

    fn live_subject(&self, token: &str) -> String {
        format!("{}.live.{token}", self.prefix)
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> HubError {
        self.health.fail(e)
    }

    fn tails_for(&self, token: &str) -> &tokio::sync::Mutex<HashMap<Arc<str>, Tail>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        token.hash(&mut h);
        &self.tails[(h.finish() % self.tails.len() as u64) as usize]
    }

    /// The subject's last message (`seq` 0 when it holds none).
    async fn tail(&self, subject: &str) -> Result<Tail, HubError> {
        match self.last_message(subject).await? {
            Some(m) => Ok(Tail {
                seq: m.sequence,
                pos: header_position(&m.headers),
            }),
            None => Ok(Tail { seq: 0, pos: None }),
        }
    }

    async fn last_message(
        &self,
        subject: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, HubError> {
        let get = self.stream.direct_get_last_for_subject(subject.to_string());
        match tokio::time::timeout(TIMEOUT, get).await {
            Ok(Ok(m)) => {
                self.health.ok();
                Ok(Some(m))
            }
            Ok(Err(e)) if e.kind() == stream::DirectGetErrorKind::NotFound => {
                self.health.ok();
                Ok(None)
            }
            Ok(Err(e)) => Err(self.fail(&e)),
            Err(_) => Err(self.fail(&"timed out reading a topic's last event")),
        }
    }

    async fn publish(&self, topic: &str, json: Bytes) -> Result<String, HubError> {
        if json.len() > self.max_event {
            return Err(HubError::TooLarge {
                size: json.len(),
                max: self.max_event,
            });
        }
        let token: Arc<str> = Arc::from(encode(topic));
        let subject = self.stored_subject(&token);
        // Held across the round trip: this instance's publishes of a topic never conflict.
        let mut tails = self.tails_for(&token).lock().await;
        let mut tail = tails.get(&token).copied();
        let mut recreated = false;
        for attempt in 0..PUBLISH_ATTEMPTS {
            let t = match tail {
                Some(t) => t,
                None => self.tail(&subject).await?,
            };
            let pos = match t.pos {
                Some(p) if t.seq > 0 => Position {
                    epoch: p.epoch,
                    offset: p.offset + 1,
                },
                _ => Position {
                    epoch: Position::new_epoch(),
                    offset: 1,
                },
            };
            let mut headers = HeaderMap::new();
            headers.insert(EPOCH_HEADER, format!("{:x}", pos.epoch));
            headers.insert(OFFSET_HEADER, pos.offset.to_string());
            headers.insert(
                async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
                t.seq.to_string(),
            );
            let acked = tokio::time::timeout(TIMEOUT, async {
                self.js
                    .publish_with_headers(subject.clone(), headers, json.clone())
                    .await?
                    .await
            })
            .await;
            match acked {
                Ok(Ok(ack)) => {
                    self.health.ok();
                    if tails.len() >= TAILS_PER_SHARD {
                        tails.clear();
                    }
                    tails.insert(
                        token,
                        Tail {
                            seq: ack.sequence,
                            pos: Some(pos),
                        },
                    );
                    return Ok(pos.to_string());
                }
                Ok(Err(e))
                    if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence =>
                {
                    // Another publisher (or a purge) moved the subject on: read it again.
                    tail = None;
                    // Publishers that keep colliding on one topic spread out: a random pause
                    // that grows with the attempts (up to 128 ms), so they stop retrying in step.
                    if attempt >= 2 {
                        let cap_ms = 1u64 << attempt.min(7);
                        let pause = rand::random::<u64>() % cap_ms + 1;
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
                Ok(Err(e))
                    if e.kind() == jetstream::context::PublishErrorKind::StreamNotFound
                        && !recreated =>
                {
                    // The stream was deleted (its history with it): create it again; the
                    // topic starts a new epoch.
                    recreated = true;
                    tail = None;
                    tails.clear();
                    if let Err(e) = create_stream(&self.js, &self.stream_config).await {
                        return Err(self.fail(&e));
                    }
                }
                Ok(Err(e)) => {
                    tails.remove(&token);
                    return Err(self.fail(&e));
                }
                Err(_) => {
                    // The event may have been stored: the next publish reads the subject again.
                    tails.remove(&token);
                    return Err(self.fail(&"timed out publishing"));
                }
            }
        }
        tails.remove(&token);
        Err(HubError::unavailable(format!(
            "publishing to `{topic}` kept conflicting with other publishers"
        )))
    }

    /// The subject's epoch and last offset, and up to `limit` of its newest events after
    /// `after` (all the window's when `after` is `None`, of another epoch or ahead of the
    /// topic), oldest first.
    /// `from_seq`, when not 0, is a stream sequence at or before the first event wanted.
    async fn read(
        &self,
        token: &str,
        after: Option<Position>,
        limit: usize,
        from_seq: u64,
    ) -> Result<History, HubError> {
        let subject = self.stored_subject(token);
        let Some(last) = self.last_message(&subject).await? else {
            return Ok(History::default());
        };
        let Some(last_pos) = header_position(&last.headers) else {
            return Err(HubError::unavailable(format!(
                "a message without a position on {subject}"
            )));
        };
        // A position of another epoch, or ahead of the topic, reads the whole window.
        let after_offset = after
            .filter(|a| a.epoch == last_pos.epoch && a.offset <= last_pos.offset)
            .map(|a| a.offset);
        let wanted = after_offset
            .map_or(u64::MAX, |o| last_pos.offset.saturating_sub(o))
            .min(limit.min(self.cfg.window()) as u64);
        let mut history = History {
            epoch: Some(last_pos.epoch),
            last: last_pos.offset,
            last_seq: last.sequence,
            events: Vec::new(),
        };
        if wanted == 1 {
            history.events.push(HubEvent::new(last_pos, last.payload));
        } else if wanted > 1 {
            let from_seq = match after_offset {
                Some(after) if from_seq == 0 => self.seek(&subject, after, last.sequence).await?,
                _ => from_seq,
            };
            history.events = self
                .read_range(
                    &subject,
                    last_pos,
                    last.sequence,
                    after_offset,
                    wanted,
                    from_seq,
                )
                .await?;
        }
        Ok(history)
    }

    /// A stream sequence at or before the subject's first event after offset `after` (and
    /// after none it does not need), so a resume that missed a few events of a long history
    /// does not read all of it: bisects the sequences up to `last_seq` with direct gets
    /// (the subject's offsets grow with its sequences). 0 (read from the start) when the
    /// subject holds few events.
    async fn seek(&self, subject: &str, after: u64, last_seq: u64) -> Result<u64, HubError> {
        let Some((first_seq, first_offset)) = self.next_for_subject(subject, 1).await? else {
            return Ok(0);
        };
        let held = last_seq.saturating_sub(first_seq);
        if first_offset > after || held < SEEK_MIN_MESSAGES {
            return Ok(first_seq);
        }
        // The smallest `s` whose next message of the subject has an offset above `after`.
        let (mut lo, mut hi) = (first_seq, last_seq);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.next_for_subject(subject, mid).await? {
                Some((_, offset)) if offset > after => hi = mid,
                // Every sequence up to that message's leads to an offset at or before `after`.
                Some((seq, _)) => lo = seq.max(mid) + 1,
                None => hi = mid,
            }
        }
        Ok(lo)
    }

    /// The sequence and offset of the subject's first message at or after `seq`.
    async fn next_for_subject(
        &self,
        subject: &str,
        seq: u64,
    ) -> Result<Option<(u64, u64)>, HubError> {
        let get = self
            .stream
            .direct_get_next_for_subject(subject.to_string(), Some(seq));
        match tokio::time::timeout(TIMEOUT, get).await {
            Ok(Ok(m)) => Ok(header_position(&m.headers).map(|p| (m.sequence, p.offset))),
            Ok(Err(e)) if e.kind() == stream::DirectGetErrorKind::NotFound => Ok(None),
            Ok(Err(e)) => Err(self.fail(&e)),
            Err(_) => Err(self.fail(&"timed out reading history")),
        }
    }

    /// Reads the subject's events of `last`'s epoch after `after_offset`, up to the message at
    /// `last_seq`, keeping the newest `wanted`: an ordered consumer filtered on the subject.
    async fn read_range(
        &self,
        subject: &str,
        last: Position,
        last_seq: u64,
        after_offset: Option<u64>,
        wanted: u64,
        from_seq: u64,
    ) -> Result<Vec<HubEvent>, HubError> {
        let deliver_policy = if from_seq > 0 {
            consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from_seq,
            }
        } else {
            consumer::DeliverPolicy::All
        };
        let created = self.stream.create_consumer(consumer::pull::OrderedConfig {
            filter_subject: subject.to_string(),
            deliver_policy,
            ..Default::default()
        });
        let consumer = match tokio::time::timeout(TIMEOUT, created).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.fail(&e)),
            Err(_) => return Err(self.fail(&"timed out reading history")),
        };
        let name = consumer.cached_info().name.clone();
        let pending = consumer.cached_info().num_pending;
        let read = async {
            let mut events = VecDeque::new();
            if pending == 0 {
                return Ok(Vec::new());
            }
            let mut messages = match consumer.messages().await {
                Ok(m) => m,
                Err(e) => return Err(self.fail(&e)),
            };
            loop {
                let msg = match tokio::time::timeout(TIMEOUT, messages.next()).await {
                    Ok(Some(Ok(m))) => m,
                    Ok(Some(Err(e))) => return Err(self.fail(&e)),
                    Ok(None) => break,
                    Err(_) => return Err(self.fail(&"timed out reading history")),
                };
                let (seq, pending) = match msg.info() {
                    Ok(info) => (info.stream_sequence, info.pending),
                    Err(e) => return Err(self.fail(&e)),
                };
                if let Some(pos) = msg.headers.as_ref().and_then(header_position)
                    && pos.epoch == last.epoch
                    && pos.offset <= last.offset
                    && after_offset.is_none_or(|o| pos.offset > o)
                {
                    events.push_back(HubEvent::new(pos, msg.payload.clone()));
                    if events.len() as u64 > wanted {
                        events.pop_front();
                    }
                }
                if seq >= last_seq || pending == 0 {
                    break;
                }
            }
            Ok(events.into())
        }
        .await;
        // The server would keep the consumer until it has been idle for 30 s: remove it now,
        // off the resume's path.
        let stream = self.stream.clone();
        tokio::spawn(async move {
            let _ = stream.delete_consumer(&name).await;
        });
        read
    }

    /// Items a resume from `resume` yields before the live feed, and the last position they
    /// cover (later live events at or before it are duplicates): [`position::replay`] over
    /// the subject's history.
    async fn replay(
        &self,
        token: &str,
        resume: Resume,
    ) -> Result<(Vec<HubItem>, Option<Position>), HubError> {
        // A live subscription reads only where the topic stands.
        let limit = if resume == Resume::Live {
            0
        } else {
            usize::MAX
        };
        let history = self.read(token, resume.after(), limit, 0).await?;
        let history = position::History {
            epoch: history.epoch,
            last: history.last,
            events: history.events,
        };
        Ok(position::replay(resume, history))
    }
}

/// Creates the hub's stream, or updates its settings when it exists.
async fn create_stream(js: &jetstream::Context, config: &stream::Config) -> Result<(), HubError> {
    let name = &config.name;
    match tokio::time::timeout(2 * TIMEOUT, js.create_or_update_stream(config.clone())).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HubError::unavailable(format!("stream {name}: {e}"))),
        Err(_) => Err(HubError::unavailable(format!("stream {name}: timed out"))),
    }
}

/// A topic as one subject token: `[A-Za-z0-9_-]` kept, every other byte percent-encoded, the
/// empty topic `%` (which no encoding produces otherwise).
fn encode(topic: &str) -> String {
    if topic.is_empty() {
        return "%".to_string();
    }
    let mut out = String::with_capacity(topic.len());
    for b in topic.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A prefix is dot-separated tokens of printable ASCII without wildcards.
fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && !matches!(b, b'*' | b'>'))
        })
}

/// The stream's name: the prefix with characters stream names refuse replaced by `_`.
fn stream_name(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn header_position(headers: &HeaderMap) -> Option<Position> {
    let epoch = headers.get(EPOCH_HEADER)?.as_str();
    let offset = headers.get(OFFSET_HEADER)?.as_str();
    let epoch = u64::from_str_radix(epoch, 16).ok().filter(|e| *e != 0)?;
    let offset = offset.parse().ok()?;
    Some(Position { epoch, offset })
}

/// A republished live message as an event, with its stream sequence.
fn live_event(msg: &async_nats::Message) -> Option<(HubEvent, u64)> {
    let headers = msg.headers.as_ref()?;
    let pos = header_position(headers)?;
    let seq = headers
        .get(SEQUENCE_HEADER)
        .and_then(|s| s.as_str().parse().ok())
        .unwrap_or(0);
    Some((HubEvent::new(pos, msg.payload.clone()), seq))
}

/// One topic's task: subscribes its live subject, appends live events to its log (filling
/// holes from the stream), and catches up from the stream after each reconnect. Aborted when
/// the topic's last local subscriber leaves.
async fn follow(
    hub: Weak<Inner>,
    token: Arc<str>,
    log: Arc<TopicLog>,
    ready: watch::Sender<Ready>,
) {
    let (subscribed, mut connects) = {
        let Some(inner) = hub.upgrade() else { return };
        let subject = inner.live_subject(&token);
        let connects = inner.health.connects.subscribe();
        (inner.client.subscribe(subject).await, connects)
    };
    let mut sub = match subscribed {
        Ok(sub) => sub,
        Err(e) => {
            let _ = ready.send(Ready::Failed(e.to_string()));
            return;
        }
    };
    connects.borrow_and_update();
    let _ = ready.send(Ready::Following);
    // The stream sequence of the newest live event: where a read of what followed may start.
    let mut last_seq = 0;
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else {
                    // The client closed the subscription (the client is closing): later
                    // subscribers of the topic start over rather than join a dead feed.
                    tracing::warn!(topic = &*token, "the hub's NATS subscription ended");
                    if let Some(inner) = hub.upgrade() {
                        inner.topics.remove_if_same(&token, &log);
                    }
                    return;
                };
                let Some(inner) = hub.upgrade() else { return };
                let Some((ev, seq)) = live_event(&msg) else {
                    tracing::warn!(subject = %msg.subject, "ignoring a malformed hub message");
                    continue;
                };
                deliver(&inner, &log, &token, ev, last_seq).await;
                last_seq = last_seq.max(seq);
            }
            changed = connects.changed() => {
                if changed.is_err() {
                    return;
                }
                let Some(inner) = hub.upgrade() else { return };
                last_seq = last_seq.max(catch_up(&inner, &log, &token, last_seq).await);
            }
        }
    }
}

/// Where a read of what followed the live event at stream sequence `seq` starts (0, when no
/// live event was seen, lets the read find the start itself).
fn after_seq(seq: u64) -> u64 {
    if seq == 0 { 0 } else { seq.saturating_add(1) }
}

/// Appends a live event, first filling a hole before it from the stream.
async fn deliver(inner: &Inner, log: &TopicLog, token: &str, ev: HubEvent, last_seq: u64) {
    let pos = ev.position();
    match log.last_known() {
        Some(last) if last.epoch == pos.epoch && pos.offset <= last.offset => {}
        Some(last) if last.epoch == pos.epoch && pos.offset > last.offset + 1 => {
            // Everything after `last` the stream holds (later live copies are skipped).
            match inner
                .read(token, Some(last), usize::MAX, after_seq(last_seq))
                .await
            {
                Ok(history) if history.epoch == Some(last.epoch) => {
                    log.append(history.events.into_iter().filter(|e| e.seq() > last.offset))
                }
                // Another epoch (or none): the live feed carries on; cursors report the reset.
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, topic = token, "could not read missed hub events")
                }
            }
            if log
                .last_known()
                .is_none_or(|l| l.epoch != pos.epoch || l.offset < pos.offset)
            {
                log.append([ev]);
            }
        }
        _ => log.append([ev]),
    }
}

/// After a reconnect: the topic's events published while the connection was down. Returns
/// the stream sequence of the topic's newest message (0 when unknown).
async fn catch_up(inner: &Inner, log: &TopicLog, token: &str, last_seq: u64) -> u64 {
    // Every active topic catches up at once after a reconnect: a few reads at a time.
    let Ok(_permit) = inner.catch_ups.acquire().await else {
        return 0;
    };
    let last = log.last_known();
    match inner
        .read(token, last, usize::MAX, after_seq(last_seq))
        .await
    {
        Ok(history) => {
            match last {
                Some(last) if history.epoch == Some(last.epoch) => {
                    log.append(history.events.into_iter().filter(|e| e.seq() > last.offset))
                }
                // A new epoch (or a topic first published meanwhile): all of it is new.
                _ => log.append(history.events),
            }
            history.last_seq
        }
        Err(e) => {
            tracing::warn!(error = %e, topic = token, "could not catch up after a reconnect");
            0
        }
    }
}

impl EventHub for NatsHub {
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(self.inner.publish(topic, json))
    }

    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let token: Arc<str> = Arc::from(encode(topic));
            let owner: Weak<dyn LogOwner> = Arc::downgrade(inner) as Weak<dyn LogOwner>;
            // The live subject is subscribed before the history is read (see `Opening`).
            let cursor = inner
                .topics
                .open(&token, &inner.cfg, &inner.budget, owner, |log, ready| {
                    tokio::spawn(follow(
                        Arc::downgrade(inner),
                        token.clone(),
                        log.clone(),
                        ready,
                    ))
                    .abort_handle()
                })?
                .followed("the topic's task stopped", |e| inner.fail(&e))
                .await?
                .catch_up(last_event_id, |resume| inner.replay(&token, resume))
                .await?;
            Ok(Subscription::new(cursor, inner.counter.guard()))
        })
    }

    fn local(&self) -> Option<LocalParts<'_>> {
        Some(LocalParts {
            backend: "nats",
            counter: &self.inner.counter,
            cfg: &self.inner.cfg,
            presence: &self.presence,
            health: Some(&self.inner.health.state),
        })
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(async move {
            let subject = self.inner.stored_subject(&encode(topic));
            // The subject's last message is the topic's head; none means no history (the
            // next publish starts a new epoch).
            match self.inner.last_message(&subject).await? {
                None => Ok(None),
                Some(m) => header_position(&m.headers).map(Some).ok_or_else(|| {
                    HubError::unavailable(format!("a message without a position on {subject}"))
                }),
            }
        })
    }

    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(async move {
            let _ = self.ping().await;
            self.status()
        })
    }

    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(async move {
            // The subject's last message (a direct get) carries its position in headers.
            let subject = self.inner.stored_subject(&encode(topic));
            Ok(self
                .inner
                .last_message(&subject)
                .await?
                .and_then(|m| header_position(&m.headers)))
        })
    }
}

// Presence: a key-value bucket (`<stream>_presence`, created on first use) with one key per
// topic holding `{member: {instance: expires_at_ms}}`, changed by compare-and-set on the key's
// revision (retried on a conflict), so concurrent instances never overwrite each other. The
// bucket's max age (4 TTLs, at least a minute) drops keys of topics nobody refreshes. Expiry
// times are the instances' clocks: keep them synchronized (NTP) well within the TTL.

/// Members and, for each, its instances' expiry (ms since the Unix epoch).
type Doc = std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>;

/// Tries of a compare-and-set before giving up.
const CAS_ATTEMPTS: usize = 32;

/// Stripes of the per-topic locks (a fixed number: bounded whatever the topics).
const CAS_STRIPES: usize = 64;

struct NatsPresence {
    inner: Arc<Inner>,
    store: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    /// Serializes this instance's changes of a topic, so compare-and-set only ever races
    /// other instances.
    stripes: Vec<tokio::sync::Mutex<()>>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(millis)
        .unwrap_or(0)
}

fn live(instances: &std::collections::BTreeMap<String, u64>, now: u64) -> bool {
    instances.values().any(|&exp| exp > now)
}

impl NatsPresence {
    async fn store(&self) -> Result<&async_nats::jetstream::kv::Store, HubError> {
        self.store
            .get_or_try_init(|| async {
                let bucket = format!("{}_presence", stream_name(&self.inner.prefix));
                // The bucket's stream as `create_key_value` makes it, created directly:
                // `create_key_value` first queries the account, whose reply the client cannot
                // parse from NATS 2.9.
                let config = stream::Config {
                    name: format!("KV_{bucket}"),
                    subjects: vec![format!("$KV.{bucket}.>")],
                    max_messages_per_subject: 1,
                    max_age: (self.inner.cfg.presence_ttl * 4).max(Duration::from_secs(60)),
                    allow_rollup: true,
                    deny_delete: true,
                    allow_direct: true,
                    discard: stream::DiscardPolicy::New,
                    num_replicas: 1,
                    ..Default::default()
                };
                create_stream(&self.inner.js, &config).await?;
                self.inner
                    .js
                    .get_key_value(&bucket)
                    .await
                    .map_err(|e| self.inner.fail(&format!("presence bucket {bucket}: {e}")))
            })
            .await
    }

    /// The topic's key: its subject token, with `=` for `%` (which keys do not allow).
    fn key(topic: &str) -> String {
        encode(topic).replace('%', "=")
    }

    async fn read(&self, topic: &str) -> Result<(Doc, Option<u64>), HubError> {
        use async_nats::jetstream::kv::Operation;
        let store = self.store().await?;
        let entry = store
            .entry(Self::key(topic))
            .await
            .map_err(|e| self.inner.fail(&e))?;
        Ok(match entry {
            Some(e) if e.operation == Operation::Put => (
                serde_json::from_slice(&e.value).unwrap_or_default(),
                Some(e.revision),
            ),
            Some(e) => (Doc::new(), Some(e.revision)),
            None => (Doc::new(), None),
        })
    }

    /// Applies `change` to the topic's document and writes it back if nobody wrote since.
    async fn modify<T>(
        &self,
        topic: &str,
        mut change: impl FnMut(&mut Doc, u64) -> Result<T, HubError>,
    ) -> Result<T, HubError> {
        use async_nats::jetstream::kv::{CreateErrorKind, UpdateErrorKind};
        let store = self.store().await?;
        let key = Self::key(topic);
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let _serial = self.stripes[(h.finish() % CAS_STRIPES as u64) as usize]
            .lock()
            .await;
        for attempt in 0..CAS_ATTEMPTS {
            if attempt > 0 {
                // Another instance wrote meanwhile: back off a little, randomly, so two
                // instances do not keep colliding.
                let ms = rand::random::<u64>() % (2 + 2 * attempt as u64).min(50);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            let (mut doc, revision) = self.read(topic).await?;
            let out = change(&mut doc, now_ms())?;
            let json = Bytes::from(serde_json::to_vec(&doc).map_err(HubError::unavailable)?);
            let written = match revision {
                Some(rev) => match store.update(&key, json, rev).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => false,
                    Err(e) => return Err(self.inner.fail(&e)),
                },
                None => match store.create(&key, json).await {
                    Ok(_) => true,
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => false,
                    Err(e) => return Err(self.inner.fail(&e)),
                },
            };
            if written {
                self.inner.health.ok();
                return Ok(out);
            }
        }
        Err(HubError::unavailable(
            "presence: too many concurrent changes of one topic",
        ))
    }
}

impl PresenceStore for NatsPresence {
    fn heartbeat_concurrency(&self) -> usize {
        // Requests multiplex on the one client connection.
        32
    }

    fn add<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
        ttl: Duration,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(self.modify(topic, move |doc, now| {
            let present = doc.get(member).is_some_and(|i| live(i, now));
            if !present && doc.values().filter(|i| live(i, now)).count() >= max {
                return Err(HubError::TooManyMembers { max });
            }
            doc.entry(member.to_string())
                .or_default()
                .insert(instance.to_string(), now + millis(ttl));
            Ok(!present)
        }))
    }

    fn remove<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(self.modify(topic, move |doc, now| {
            let Some(instances) = doc.get_mut(member) else {
                return Ok(false); // reaped meanwhile: whoever reaped it announced the leave
            };
            instances.remove(instance);
            if live(instances, now) {
                return Ok(false);
            }
            doc.remove(member);
            Ok(true)
        }))
    }

    fn refresh<'a>(
        &'a self,
        topic: &'a str,
        members: &'a [Arc<str>],
        instance: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(self.modify(topic, move |doc, now| {
            let mut back = Vec::new();
            for m in members {
                let instances = doc.entry(m.to_string()).or_insert_with(|| {
                    back.push(m.to_string());
                    Default::default()
                });
                instances.insert(instance.to_string(), now + millis(ttl));
            }
            Ok(back)
        }))
    }

    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let (doc, _) = self.read(topic).await?;
            let now = now_ms();
            // A BTreeMap: already sorted.
            Ok(doc
                .into_iter()
                .filter(|(_, i)| live(i, now))
                .map(|(m, _)| m)
                .collect())
        })
    }

    fn reap<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let now = now_ms();
            // Most beats find nothing expired: read first, write only when there is.
            let (doc, _) = self.read(topic).await?;
            if doc.values().all(|i| i.values().all(|&exp| exp > now)) {
                return Ok(Vec::new());
            }
            self.modify(topic, |doc, now| {
                let gone: Vec<String> = doc
                    .iter()
                    .filter(|(_, i)| !live(i, now))
                    .map(|(m, _)| m.clone())
                    .collect();
                for m in &gone {
                    doc.remove(m);
                }
                for instances in doc.values_mut() {
                    instances.retain(|_, exp| *exp > now);
                }
                Ok(gone)
            })
            .await
        })
    }

    fn announce<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(self.inner.publish(topic, json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_one_subject_token() {
        assert_eq!(encode("user:alice:n"), "user%3Aalice%3An");
        assert_eq!(encode("a.b *>"), "a%2Eb%20%2A%3E");
        assert_eq!(encode("ü"), "%C3%BC");
        assert_eq!(encode("100%"), "100%25");
        assert_eq!(encode(""), "%");
        assert_eq!(encode("ok_-1"), "ok_-1");
    }

    #[test]
    fn prefixes_and_stream_names() {
        assert!(valid_prefix("pikku_hub"));
        assert!(valid_prefix("app.hub"));
        for bad in ["", "a..b", "a.*", "a b", ">", "a."] {
            assert!(!valid_prefix(bad), "{bad}");
        }
        assert_eq!(stream_name("app.hub"), "app_hub");
    }

    #[test]
    fn positions_come_from_headers() {
        let mut h = HeaderMap::new();
        h.insert(EPOCH_HEADER, "beef");
        h.insert(OFFSET_HEADER, "7");
        assert_eq!(
            header_position(&h),
            Some(Position {
                epoch: 0xbeef,
                offset: 7
            })
        );
        h.insert(EPOCH_HEADER, "0");
        assert_eq!(header_position(&h), None);
        assert_eq!(header_position(&HeaderMap::new()), None);
    }
}
