//! The Redis event hub: streams across many server instances, on a few connections.
//!
//! # Shape
//! - **History**: each topic is a Redis Stream (the replay window, capped by length and age)
//!   beside a small hash holding the topic's epoch and last offset. A publish is one Lua script:
//!   it takes the next offset, appends the entry, trims, refreshes both keys' expiry and
//!   `PUBLISH`es `<epoch> <offset> <payload>` on the topic's channel, atomically.
//! - **Live delivery**: PUB/SUB on [`HubConfig::connections`] connections per instance (2 by
//!   default), whatever the number of topics: topics are spread over them by hash, and
//!   `SUBSCRIBE`/`UNSUBSCRIBE` are batched as topics come and go. Each instance fans a topic out
//!   to its local subscribers through one shared log (a cursor per subscriber). This is the
//!   shape of Centrifugo's Redis engine, chosen over one `XREAD BLOCK` per topic (a connection
//!   per active topic, which ran instances out of file descriptors and Redis out of
//!   `maxclients` at a few thousand topics) and over a multiplexed `XREAD` on a pool (every
//!   read re-sends all its keys, and a pool still grows with load).
//! - **Continuity**: every event carries its offset, so the hand-over from the history read of a
//!   resume to the live feed skips duplicates and notices holes. When a PUB/SUB connection drops,
//!   the reader reconnects, resubscribes and reads each topic's missed entries from its stream;
//!   a hole it cannot fill (trimmed meanwhile) is a `gap`, never silent.
//! - **Epochs**: the hash holds the topic's epoch. When the keys vanish (expired after
//!   [`HubConfig::replay_max_age`] without publishes, `DEL`, `FLUSHALL`, a restart without
//!   persistence) the next publish starts a new epoch, so a client resuming from the old one
//!   gets a `reset` gap instead of a silent skip.
//!
//! # Redis Cluster
//! A topic's keys share one hash slot (`<prefix>{<topic>}` and `<prefix>{<topic>}:m`), so the
//! script runs on one node. Cluster support itself is a plan, not built: publish with
//! `SPUBLISH` and read with `SSUBSCRIBE` on one connection per shard, so live traffic stays on
//! the node that owns the topic.
//!
//! Publishing while Redis is down fails with a [`HubError`] (a 503 when it reaches a client);
//! [`EventHub::status`] reports the hub unhealthy until an operation succeeds again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use redis::Value;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, watch};

use super::LocalParts;
use super::followed::{Followed, Ready, wait_offline};
use super::local::Health;
use super::log::{Budget, LogOwner, TopicLog};
use super::position::{self, History};
use super::presence::{Presence, PresenceStore, millis};
use super::{
    EventHub, HubConfig, HubError, HubEvent, HubItem, HubStatus, Position, Resume, Subscription,
    SubscriptionCounter,
};

/// Default key prefix: a topic's stream is `pikku:hub:{<topic>}`.
pub const DEFAULT_PREFIX: &str = "pikku:hub:";

/// Appends one event: next offset, entry, trims, expiry, and the live message.
/// KEYS: stream, meta. ARGV: payload, max entries, max age ms, a new epoch, channel.
const PUBLISH_LUA: &str = r"
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[2], 'e', epoch)
  redis.call('DEL', KEYS[1])
end
local offset = redis.call('HINCRBY', KEYS[2], 'o', 1)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'o', offset, 'd', ARGV[1])
local t = redis.call('TIME')
local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
if cutoff > 0 then redis.call('XTRIM', KEYS[1], 'MINID', '~', cutoff) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PUBLISH', ARGV[5], epoch .. ' ' .. offset .. ' ' .. ARGV[1])
return {epoch, offset}
";

/// Reads a topic's epoch, last offset and the newest entries after a position, atomically.
/// KEYS: stream, meta. ARGV: the client's epoch (or ''), the offset it has seen (-1: none),
/// the window.
const READ_LUA: &str = r"
local m = redis.call('HMGET', KEYS[2], 'e', 'o')
if not m[1] then return {} end
local last = tonumber(m[2]) or 0
local after = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
if m[1] == ARGV[1] and after >= 0 and after < last then n = math.min(n, last - after) end
if m[1] == ARGV[1] and after >= last then n = 0 end
local entries = {}
if n > 0 then entries = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', n) end
return {m[1], last, entries}
";

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Live messages a reader takes at once before appending them.
const BURST: usize = 1024;
/// Channels per `SUBSCRIBE`/`UNSUBSCRIBE` command.
const SUBSCRIBE_BATCH: usize = 512;

/// A Redis-backed [`EventHub`].
pub struct RedisHub {
    inner: Arc<Inner>,
    presence: Presence,
}

struct Inner {
    client: redis::Client,
    publisher: ConnectionManager,
    prefix: String,
    cfg: HubConfig,
    publish: redis::Script,
    read: redis::Script,
    readers: Vec<mpsc::UnboundedSender<Cmd>>,
    topics: Followed<()>,
    budget: Arc<Budget>,
    counter: SubscriptionCounter,
    health: Health,
}

enum Cmd {
    Subscribe {
        channel: Arc<str>,
        log: Arc<TopicLog>,
        ready: watch::Sender<Ready>,
    },
    Unsubscribe {
        channel: Arc<str>,
        log: Weak<TopicLog>,
    },
}

impl RedisHub {
    /// A hub on the Redis server at `url` (`redis://host:port/db`), with topics under `prefix`.
    /// Connections are made lazily, so this does not fail when Redis is down. Call it inside a
    /// tokio runtime (the hub spawns its connection tasks there).
    pub fn open(url: &str, prefix: &str, cfg: HubConfig) -> Result<Self, HubError> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(HubError::unavailable(
                "RedisHub::open must be called inside a tokio runtime",
            ));
        };
        let client =
            redis::Client::open(url).map_err(|e| HubError::unavailable(format!("{url}: {e}")))?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500)),
        )
        .map_err(HubError::unavailable)?;
        let n = cfg.connections.clamp(1, 64);
        let mut receivers = Vec::with_capacity(n);
        let mut readers = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            readers.push(tx);
            receivers.push(rx);
        }
        let inner = Arc::new(Inner {
            client,
            publisher,
            prefix: prefix.to_string(),
            budget: Budget::new(cfg.max_retained_bytes),
            cfg,
            publish: redis::Script::new(PUBLISH_LUA),
            read: redis::Script::new(READ_LUA),
            readers,
            topics: Followed::new(),
            counter: SubscriptionCounter::default(),
            health: Health::new("redis"),
        });
        // Spawned once the hub is whole: a reader that ran earlier would find no hub and stop.
        for rx in receivers {
            rt.spawn(reader(Arc::downgrade(&inner), rx));
        }
        let presence = Presence::new(RedisPresence::new(inner.clone()), &inner.cfg);
        Ok(Self { inner, presence })
    }

    /// The Redis key of a topic's stream (its channel has the same name; its hash adds `:m`).
    /// Characters outside `[A-Za-z0-9_.:-]` (including `{}`, which Redis Cluster reads as hash
    /// tags, and `*`/`?` glob characters) are percent-encoded, so no topic reaches outside the
    /// prefix's key space, and the `{...}` around the topic keeps its keys in one slot.
    pub fn key(&self, topic: &str) -> String {
        self.inner.key(topic)
    }

    /// Checks the server now (`PING`) and updates [`EventHub::status`].
    pub async fn ping(&self) -> Result<(), HubError> {
        let mut conn = self.inner.publisher.clone();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        r.map(|_| self.inner.ok()).map_err(|e| self.inner.fail(&e))
    }

    /// Topics with local subscribers on this instance.
    pub fn active_topics(&self) -> usize {
        self.inner.topics.len()
    }
}

impl LogOwner for Inner {
    fn idle(&self, topic: &Arc<str>) {
        if let Some(entry) = self.topics.take_idle(topic) {
            let _ = self.reader_for(topic).send(Cmd::Unsubscribe {
                channel: topic.clone(),
                log: Arc::downgrade(&entry.log),
            });
        }
    }
}

impl Inner {
    fn key(&self, topic: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + topic.len() + 2);
        key.push_str(&self.prefix);
        key.push('{');
        for b in topic.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-') {
                key.push(b as char);
            } else {
                key.push_str(&format!("%{b:02X}"));
            }
        }
        key.push('}');
        key
    }

    fn reader_for(&self, channel: &str) -> &mpsc::UnboundedSender<Cmd> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        channel.hash(&mut h);
        &self.readers[(h.finish() % self.readers.len() as u64) as usize]
    }

    fn ok(&self) {
        self.health.ok();
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> HubError {
        self.health.fail(e)
    }

    async fn publish(&self, key: &str, json: Bytes) -> Result<String, HubError> {
        let max = self.cfg.max_event_bytes;
        if json.len() > max {
            return Err(HubError::TooLarge {
                size: json.len(),
                max,
            });
        }
        let max_age_ms = self.cfg.replay_max_age.as_millis().max(1) as u64;
        let mut conn = self.publisher.clone();
        let (epoch, offset): (String, u64) = self
            .publish
            .key(key)
            .key(format!("{key}:m"))
            .arg(json.as_ref())
            .arg(self.cfg.window())
            .arg(max_age_ms)
            .arg(format!("{:x}", Position::new_epoch()))
            .arg(key)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        let epoch = u64::from_str_radix(&epoch, 16)
            .map_err(|_| HubError::unavailable(format!("bad epoch `{epoch}` in {key}:m")))?;
        Ok(Position { epoch, offset }.to_string())
    }

    /// The topic's epoch and last offset from its hash (`None` when the keys are gone).
    async fn position(&self, key: &str) -> Result<Option<Position>, HubError> {
        let mut conn = self.publisher.clone();
        let (epoch, offset): (Option<String>, Option<u64>) = redis::cmd("HMGET")
            .arg(format!("{key}:m"))
            .arg("e")
            .arg("o")
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        let (Some(epoch), Some(offset)) = (epoch, offset) else {
            return Ok(None);
        };
        let epoch = u64::from_str_radix(&epoch, 16)
            .map_err(|_| HubError::unavailable(format!("bad epoch `{epoch}` in {key}:m")))?;
        Ok(Some(Position { epoch, offset }))
    }

    /// The topic's epoch and last offset, and its newest entries after `after` (all the
    /// window's when `after` is `None` or of another epoch), oldest first.
    async fn read(&self, key: &str, after: Option<Position>) -> Result<History, HubError> {
        let mut conn = self.publisher.clone();
        let (epoch, offset) = after.map_or((String::new(), -1), |p| {
            (format!("{:x}", p.epoch), p.offset as i64)
        });
        let reply: Value = self
            .read
            .key(key)
            .key(format!("{key}:m"))
            .arg(epoch)
            .arg(offset)
            .arg(self.cfg.window())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        History::parse(reply)
            .ok_or_else(|| HubError::unavailable(format!("unexpected reply reading {key}")))
    }

    /// The position of the topic's newest entry (`XREVRANGE ... COUNT 1` in the read script).
    async fn newest(&self, key: &str) -> Result<Option<Position>, HubError> {
        let mut conn = self.publisher.clone();
        let reply: Value = self
            .read
            .key(key)
            .key(format!("{key}:m"))
            .arg("")
            .arg(-1)
            .arg(1)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        let history = History::parse(reply)
            .ok_or_else(|| HubError::unavailable(format!("unexpected reply reading {key}")))?;
        Ok(history.events.last().map(HubEvent::position))
    }

    /// Items a resume from `resume` yields before the live feed, and the last position they
    /// cover (later live events at or before it are duplicates): [`position::replay`] over
    /// the topic's history.
    async fn replay(
        &self,
        key: &str,
        resume: Resume,
    ) -> Result<(Vec<HubItem>, Option<Position>), HubError> {
        let history = self.read(key, resume.after()).await?;
        Ok(position::replay(resume, history))
    }
}

/// Reading what [`READ_LUA`] returns.
impl History {
    fn parse(reply: Value) -> Option<Self> {
        let Value::Array(parts) = reply else {
            return None;
        };
        if parts.is_empty() {
            return Some(History {
                epoch: None,
                last: 0,
                events: Vec::new(),
            });
        }
        let mut parts = parts.into_iter();
        let epoch_text: String = redis::from_redis_value(parts.next()?).ok()?;
        let epoch = u64::from_str_radix(&epoch_text, 16).ok()?;
        let last: u64 = redis::from_redis_value(parts.next()?).ok()?;
        let Value::Array(entries) = parts.next()? else {
            return None;
        };
        let mut events: Vec<HubEvent> = entries
            .into_iter()
            .filter_map(|e| entry_event(epoch, e))
            .collect();
        events.reverse();
        Some(History {
            epoch: Some(epoch),
            last,
            events,
        })
    }
}

/// A stream entry `[id, [o, <offset>, d, <payload>]]` as an event of `epoch`.
fn entry_event(epoch: u64, entry: Value) -> Option<HubEvent> {
    let Value::Array(mut parts) = entry else {
        return None;
    };
    let Value::Array(fields) = parts.pop()? else {
        return None;
    };
    let mut offset = None;
    let mut data = None;
    let mut fields = fields.into_iter();
    while let (Some(k), Some(v)) = (fields.next(), fields.next()) {
        let k: String = redis::from_redis_value(k).ok()?;
        match k.as_str() {
            "o" => offset = redis::from_redis_value::<u64>(v).ok(),
            "d" => data = redis::from_redis_value::<Vec<u8>>(v).ok(),
            _ => {}
        }
    }
    Some(HubEvent::new(
        Position {
            epoch,
            offset: offset?,
        },
        Bytes::from(data?),
    ))
}

/// A live message `<epoch> <offset> <payload>`.
fn message_event(payload: &[u8]) -> Option<HubEvent> {
    let mut parts = payload.splitn(3, |b| *b == b' ');
    let epoch = u64::from_str_radix(std::str::from_utf8(parts.next()?).ok()?, 16).ok()?;
    let offset = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let json = parts.next()?;
    Some(HubEvent::new(
        Position { epoch, offset },
        Bytes::copy_from_slice(json),
    ))
}

/// One PUB/SUB connection's task: subscribes the channels it is given, appends live messages
/// to their logs, and on reconnect resubscribes and reads what it missed from the streams.
async fn reader(hub: Weak<Inner>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut active: HashMap<Arc<str>, Arc<TopicLog>> = HashMap::new();
    let mut backoff = Duration::from_millis(50);
    let mut reconnecting = false;
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let connected =
            match tokio::time::timeout(CONNECT_TIMEOUT, inner.client.get_async_pubsub()).await {
                Ok(Ok(ps)) => Ok(ps),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("timed out connecting".to_string()),
            };
        let pubsub = match connected {
            Ok(ps) => ps,
            Err(e) => {
                inner.fail(&e);
                drop(inner);
                let offline = |inner: &Inner, cmd| apply_offline(inner, &mut active, cmd, &e);
                if !wait_offline(&hub, &mut cmds, backoff, offline).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                reconnecting = true;
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        // Resubscribe what was active, then read what was published meanwhile.
        let channels: Vec<Arc<str>> = active.keys().cloned().collect();
        let mut failed = None;
        for chunk in channels.chunks(SUBSCRIBE_BATCH) {
            let names: Vec<&str> = chunk.iter().map(|c| &**c).collect();
            if let Err(e) = sink.subscribe(&names).await {
                failed = Some(e.to_string());
                break;
            }
        }
        if let Some(e) = failed {
            inner.fail(&e);
            continue;
        }
        if reconnecting {
            catch_up(&inner, &active).await;
        }
        inner.ok();
        backoff = Duration::from_millis(50);
        drop(inner);
        loop {
            tokio::select! {
                cmd = cmds.recv() => {
                    let Some(cmd) = cmd else { return };
                    let mut batch = vec![cmd];
                    while batch.len() < SUBSCRIBE_BATCH {
                        match cmds.try_recv() {
                            Ok(cmd) => batch.push(cmd),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = apply(&mut sink, &mut active, batch).await {
                        if let Some(inner) = hub.upgrade() {
                            inner.fail(&e);
                        }
                        break;
                    }
                }
                msg = stream.next() => {
                    let Some(msg) = msg else { break };
                    let Some(inner) = hub.upgrade() else { return };
                    // Take every message already here, so a burst is appended (and its
                    // subscribers woken) once per topic rather than once per event.
                    let mut burst: Vec<(Arc<str>, Vec<HubEvent>)> = Vec::new();
                    let mut next = Some(msg);
                    let mut taken = 0;
                    while let Some(msg) = next.take() {
                        taken += 1;
                        let channel = msg.get_channel_name();
                        match message_event(msg.get_payload_bytes()) {
                            Some(ev) => match burst.iter_mut().find(|(c, _)| &**c == channel) {
                                Some((_, evs)) => evs.push(ev),
                                None => {
                                    if let Some((c, _)) = active.get_key_value(channel) {
                                        burst.push((c.clone(), vec![ev]));
                                    }
                                }
                            },
                            None => tracing::warn!(channel, "ignoring a malformed hub message"),
                        }
                        if taken < BURST {
                            next = stream.next().now_or_never().flatten();
                        }
                    }
                    for (channel, events) in burst {
                        if let Some(log) = active.get(&channel) {
                            deliver(&inner, log, &channel, events).await;
                        }
                    }
                }
            }
        }
        reconnecting = true;
        if let Some(inner) = hub.upgrade() {
            inner.fail(&"pub/sub connection lost");
        }
    }
}

/// Applies commands while disconnected: subscribes are remembered (the reconnect subscribes
/// them) but their waiters learn that Redis is down.
fn apply_offline(
    inner: &Inner,
    active: &mut HashMap<Arc<str>, Arc<TopicLog>>,
    cmd: Cmd,
    error: &str,
) {
    match cmd {
        Cmd::Subscribe {
            channel,
            ready,
            log,
        } => {
            inner.topics.remove_if_same(&channel, &log);
            let _ = ready.send(Ready::Failed(error.to_string()));
        }
        Cmd::Unsubscribe { channel, log } => remove_if_same(active, &channel, &log),
    }
}

fn remove_if_same(
    active: &mut HashMap<Arc<str>, Arc<TopicLog>>,
    channel: &str,
    log: &Weak<TopicLog>,
) {
    if active
        .get(channel)
        .is_some_and(|l| std::ptr::eq(Arc::as_ptr(l), log.as_ptr()))
    {
        active.remove(channel);
    }
}

/// Subscribes and unsubscribes a batch of channels, one command each way.
async fn apply(
    sink: &mut redis::aio::PubSubSink,
    active: &mut HashMap<Arc<str>, Arc<TopicLog>>,
    batch: Vec<Cmd>,
) -> Result<(), String> {
    let mut subscribe = Vec::new();
    let mut waiting = Vec::new();
    let mut unsubscribe = Vec::new();
    for cmd in batch {
        match cmd {
            Cmd::Subscribe {
                channel,
                log,
                ready,
            } => {
                active.insert(channel.clone(), log);
                subscribe.push(channel);
                waiting.push(ready);
            }
            Cmd::Unsubscribe { channel, log } => {
                let before = active.len();
                remove_if_same(active, &channel, &log);
                if active.len() < before && !active.contains_key(&channel) {
                    unsubscribe.push(channel);
                }
            }
        }
    }
    // A channel both left and re-joined in this batch stays subscribed.
    unsubscribe.retain(|c| !active.contains_key(c));
    if !unsubscribe.is_empty() {
        let names: Vec<&str> = unsubscribe.iter().map(|c| &**c).collect();
        sink.unsubscribe(&names).await.map_err(|e| e.to_string())?;
    }
    if !subscribe.is_empty() {
        let names: Vec<&str> = subscribe.iter().map(|c| &**c).collect();
        if let Err(e) = sink.subscribe(&names).await {
            let e = e.to_string();
            for ready in waiting {
                let _ = ready.send(Ready::Failed(e.clone()));
            }
            return Err(e);
        }
    }
    for ready in waiting {
        let _ = ready.send(Ready::Following);
    }
    Ok(())
}

/// Appends live events of one topic, skipping duplicates and first filling a hole from the
/// stream.
async fn deliver(inner: &Inner, log: &TopicLog, key: &str, events: Vec<HubEvent>) {
    let mut fresh = Vec::with_capacity(events.len());
    let mut last = log.last_known();
    for ev in events {
        let pos = ev.position();
        match last {
            Some(l) if l.epoch == pos.epoch && pos.offset <= l.offset => continue,
            Some(l) if l.epoch == pos.epoch && pos.offset > l.offset + 1 => {
                log.append(fresh.drain(..));
                fill(inner, log, key, l).await;
                last = log.last_known();
                if last.is_some_and(|l| l.epoch == pos.epoch && l.offset >= pos.offset) {
                    continue;
                }
            }
            _ => {}
        }
        last = Some(pos);
        fresh.push(ev);
    }
    log.append(fresh);
}

/// Appends the entries after `last` that the stream still holds.
async fn fill(inner: &Inner, log: &TopicLog, key: &str, last: Position) {
    match inner.read(key, Some(last)).await {
        Ok(history) if history.epoch == Some(last.epoch) => {
            log.append(history.events.into_iter().filter(|e| e.seq() > last.offset));
        }
        // Another epoch (or none): the live feed carries on; cursors report the reset.
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, topic = key, "could not read missed hub events"),
    }
}

/// After a reconnect: each active topic's entries published while the feed was down.
async fn catch_up(inner: &Inner, active: &HashMap<Arc<str>, Arc<TopicLog>>) {
    let topics: Vec<(Arc<str>, Arc<TopicLog>)> =
        active.iter().map(|(k, l)| (k.clone(), l.clone())).collect();
    futures_util::stream::iter(
        topics
            .into_iter()
            .map(|(key, log)| catch_up_one(inner, key, log)),
    )
    .buffer_unordered(32)
    .collect::<Vec<()>>()
    .await;
}

async fn catch_up_one(inner: &Inner, key: Arc<str>, log: Arc<TopicLog>) {
    let last = log.last_known();
    match inner.read(&key, last).await {
        Ok(history) => match last {
            Some(last) if history.epoch == Some(last.epoch) => {
                log.append(history.events.into_iter().filter(|e| e.seq() > last.offset))
            }
            // A new epoch (or a topic first published meanwhile): all of it is new.
            _ => log.append(history.events),
        },
        Err(e) => tracing::warn!(error = %e, topic = &*key, "could not catch up after a reconnect"),
    }
}

impl EventHub for RedisHub {
    fn publish_json<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(async move { self.inner.publish(&self.key(topic), json).await })
    }

    fn subscribe_from<'a>(
        &'a self,
        topic: &'a str,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, HubError>> {
        Box::pin(async move {
            let inner = &self.inner;
            let key: Arc<str> = Arc::from(inner.key(topic));
            let owner: Weak<dyn LogOwner> = Arc::downgrade(inner) as Weak<dyn LogOwner>;
            // The channel is subscribed before the history is read (see `Opening`).
            let cursor = inner
                .topics
                .open(&key, &inner.cfg, &inner.budget, owner, |log, ready| {
                    let _ = inner.reader_for(&key).send(Cmd::Subscribe {
                        channel: key.clone(),
                        log: log.clone(),
                        ready,
                    });
                })?
                .followed("the hub's reader stopped", |e| inner.fail(&e))
                .await?
                .catch_up(last_event_id, |resume| inner.replay(&key, resume))
                .await?;
            Ok(Subscription::new(cursor, inner.counter.guard()))
        })
    }

    fn local(&self) -> Option<LocalParts<'_>> {
        Some(LocalParts {
            backend: "redis",
            counter: &self.inner.counter,
            cfg: &self.inner.cfg,
            presence: &self.presence,
            health: Some(&self.inner.health),
        })
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(async move { self.inner.position(&self.key(topic)).await })
    }

    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(async move {
            let _ = self.ping().await;
            self.status()
        })
    }

    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(async move { self.inner.newest(&self.key(topic)).await })
    }
}

// Presence: a sorted set per topic (`<topic key>:p`) of members scored by their latest
// expiry (ms, Redis's clock), and per member a sorted set (`<topic key>:p:<member>`) of the
// instances holding it, scored by each one's expiry. Scripts read `TIME` so instances' clocks
// never matter; a member whose score has passed has no live instance and is reaped.

/// The server's clock in ms, as every presence script starts.
const NOW_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
";

/// KEYS: the topic's set. ARGV: member, instance, ttl ms, max members.
/// Returns 1 (new member), 0 (was present) or -1 (refused: the topic is full).
const PRESENCE_ADD_LUA: &str = r"
local set, m, ttl = KEYS[1], ARGV[1], tonumber(ARGV[3])
local score = redis.call('ZSCORE', set, m)
local present = score and tonumber(score) > now
if not present and redis.call('ZCOUNT', set, '(' .. now, '+inf') >= tonumber(ARGV[4]) then
  return -1
end
local mk = set .. ':' .. m
redis.call('ZADD', mk, now + ttl, ARGV[2])
redis.call('PEXPIRE', mk, ttl * 2)
redis.call('ZADD', set, 'GT', now + ttl, m)
redis.call('PEXPIRE', set, ttl * 2)
if present then return 0 end
return 1
";

/// KEYS: the topic's set. ARGV: member, instance. Returns 1 when the member is gone now.
const PRESENCE_REMOVE_LUA: &str = r"
local set, m = KEYS[1], ARGV[1]
local mk = set .. ':' .. m
redis.call('ZREM', mk, ARGV[2])
redis.call('ZREMRANGEBYSCORE', mk, '-inf', now)
local top = redis.call('ZREVRANGE', mk, 0, 0, 'WITHSCORES')
if #top == 0 then
  redis.call('DEL', mk)
  return redis.call('ZREM', set, m)
end
redis.call('ZADD', set, 'XX', top[2], m)
return 0
";

/// KEYS: the topic's set. ARGV: instance, ttl ms, members... Returns the members that were
/// gone (reaped: their leave was announced) and are back.
const PRESENCE_REFRESH_LUA: &str = r"
local set, ttl = KEYS[1], tonumber(ARGV[2])
local back = {}
for i = 3, #ARGV do
  local m = ARGV[i]
  local mk = set .. ':' .. m
  if not redis.call('ZSCORE', set, m) then table.insert(back, m) end
  redis.call('ZADD', mk, now + ttl, ARGV[1])
  redis.call('PEXPIRE', mk, ttl * 2)
  redis.call('ZADD', set, 'GT', now + ttl, m)
end
redis.call('PEXPIRE', set, ttl * 2)
return back
";

/// KEYS: the topic's set. Returns the present members.
const PRESENCE_MEMBERS_LUA: &str = r"
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
";

/// KEYS: the topic's set. ARGV: how many at most. Deletes and returns expired members.
const PRESENCE_REAP_LUA: &str = r"
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, m in ipairs(gone) do
  redis.call('ZREM', KEYS[1], m)
  redis.call('DEL', KEYS[1] .. ':' .. m)
end
return gone
";

/// Members refreshed per script call.
const REFRESH_BATCH: usize = 512;

struct RedisPresence {
    inner: Arc<Inner>,
    add: redis::Script,
    remove: redis::Script,
    refresh: redis::Script,
    members: redis::Script,
    reap: redis::Script,
}

impl RedisPresence {
    fn new(inner: Arc<Inner>) -> Self {
        let script = |body: &str| redis::Script::new(&format!("{NOW_LUA}{body}"));
        Self {
            inner,
            add: script(PRESENCE_ADD_LUA),
            remove: script(PRESENCE_REMOVE_LUA),
            refresh: script(PRESENCE_REFRESH_LUA),
            members: script(PRESENCE_MEMBERS_LUA),
            reap: script(PRESENCE_REAP_LUA),
        }
    }

    fn set_key(&self, topic: &str) -> String {
        format!("{}:p", self.inner.key(topic))
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T, HubError> {
        let mut conn = self.inner.publisher.clone();
        let r = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.inner.fail(&e))?;
        self.inner.ok();
        Ok(r)
    }
}

/// A member id as a key part: the characters keys allow, the rest percent-encoded (so a
/// member cannot reach another key).
fn encode_member(member: &str) -> String {
    let mut out = String::with_capacity(member.len());
    for b in member.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_member(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl PresenceStore for RedisPresence {
    fn heartbeat_concurrency(&self) -> usize {
        // Scripts pipeline on the multiplexed connection.
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
        Box::pin(async move {
            let mut inv = self.add.prepare_invoke();
            inv.key(self.set_key(topic))
                .arg(encode_member(member))
                .arg(instance)
                .arg(millis(ttl).max(1))
                .arg(max);
            match self.run::<i64>(inv).await? {
                -1 => Err(HubError::TooManyMembers { max }),
                n => Ok(n == 1),
            }
        })
    }

    fn remove<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let mut inv = self.remove.prepare_invoke();
            inv.key(self.set_key(topic))
                .arg(encode_member(member))
                .arg(instance);
            Ok(self.run::<i64>(inv).await? == 1)
        })
    }

    fn refresh<'a>(
        &'a self,
        topic: &'a str,
        members: &'a [Arc<str>],
        instance: &'a str,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let key = self.set_key(topic);
            let mut back = Vec::new();
            for batch in members.chunks(REFRESH_BATCH) {
                let mut inv = self.refresh.prepare_invoke();
                inv.key(&key).arg(instance).arg(millis(ttl).max(1));
                for m in batch {
                    inv.arg(encode_member(m));
                }
                let raw: Vec<String> = self.run(inv).await?;
                back.extend(raw.iter().map(|m| decode_member(m)));
            }
            Ok(back)
        })
    }

    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let mut inv = self.members.prepare_invoke();
            inv.key(self.set_key(topic));
            let raw: Vec<String> = self.run(inv).await?;
            let mut members: Vec<String> = raw.iter().map(|m| decode_member(m)).collect();
            members.sort();
            Ok(members)
        })
    }

    fn reap<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let mut inv = self.reap.prepare_invoke();
            inv.key(self.set_key(topic)).arg(REFRESH_BATCH);
            let raw: Vec<String> = self.run(inv).await?;
            Ok(raw.iter().map(|m| decode_member(m)).collect())
        })
    }

    fn announce<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(async move { self.inner.publish(&self.inner.key(topic), json).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_messages_parse() {
        let ev = message_event(b"beef 7 {\"a\": 1}").unwrap();
        assert_eq!(
            ev.position(),
            Position {
                epoch: 0xbeef,
                offset: 7
            }
        );
        assert_eq!(ev.json().as_ref(), b"{\"a\": 1}");
        assert!(message_event(b"beef x {}").is_none());
        assert!(message_event(b"beef").is_none());
    }

    #[test]
    fn open_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(RedisHub::open("redis://127.0.0.1:6379", "app:", HubConfig::default()).is_err());
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_prefix() {
        let hub = RedisHub::open("redis://127.0.0.1:6379", "app:", HubConfig::default()).unwrap();
        assert_eq!(hub.key("user:alice:n"), "app:{user:alice:n}");
        assert_eq!(hub.key("{x} *?"), "app:{%7Bx%7D%20%2A%3F}");
        assert_eq!(hub.key("ü"), "app:{%C3%BC}");
    }
}
