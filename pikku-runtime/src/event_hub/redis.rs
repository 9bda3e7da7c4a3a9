//! The Redis event hub: streams work across many server instances.
//!
//! Each topic is a Redis Stream (`XADD` with a capped length and age: the replay window).
//! Stream entry ids (`<ms>-<n>`) are the events' ids, and so the SSE `id:`s: an id a client
//! got from instance A resumes on instance B. Per instance and active topic, one reader task
//! (`XREAD BLOCK` on its own connection) fans events out locally through a broadcast channel,
//! so 10,000 subscribers on one instance cost one Redis read loop.
//!
//! When a connection drops (restart, `CLIENT KILL`, a network blip) the reader reconnects with
//! backoff and reads on from the last id it delivered: subscribers see no gap and no duplicate.
//! Publishing while Redis is down fails with a [`HubError`] (a 503 when it reaches a client);
//! [`EventHub::status`] reports the hub unhealthy until an operation succeeds again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Value};
use tokio::sync::broadcast;

use super::{
    EventHub, GapReason, HubConfig, HubError, HubEvent, HubItem, HubStatus, Subscription,
    SubscriptionCounter, live,
};

/// Default key prefix: every topic's stream is `pikku:hub:<topic>`.
pub const DEFAULT_PREFIX: &str = "pikku:hub:";

/// How long one `XREAD` blocks; also how soon an idle reader notices it has no subscribers.
const READ_BLOCK: Duration = Duration::from_millis(1000);
/// Entries read per `XREAD`.
const READ_BATCH: usize = 1024;
/// The stream field holding the JSON payload.
const DATA_FIELD: &str = "d";

/// A Redis-backed [`EventHub`].
pub struct RedisHub {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    publisher: ConnectionManager,
    prefix: String,
    cfg: HubConfig,
    readers: tokio::sync::Mutex<HashMap<String, broadcast::Sender<HubEvent>>>,
    counter: SubscriptionCounter,
    healthy: AtomicBool,
    detail: Mutex<Option<String>>,
}

impl RedisHub {
    /// A hub on the Redis server at `url` (`redis://host:port/db`), with topics under `prefix`.
    /// Connections are made lazily, so this does not fail when Redis is down. Call it inside a
    /// tokio runtime (the hub spawns its connection tasks there).
    pub fn open(url: &str, prefix: &str, cfg: HubConfig) -> Result<Self, HubError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(HubError(
                "RedisHub::open must be called inside a tokio runtime".into(),
            ));
        }
        let client = redis::Client::open(url).map_err(|e| HubError(format!("{url}: {e}")))?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500)),
        )
        .map_err(|e| HubError(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                publisher,
                prefix: prefix.to_string(),
                cfg,
                readers: tokio::sync::Mutex::new(HashMap::new()),
                counter: SubscriptionCounter::default(),
                healthy: AtomicBool::new(true),
                detail: Mutex::new(None),
            }),
        })
    }

    /// The Redis key of a topic. Characters outside `[A-Za-z0-9_.:-]` (including `{}`, which
    /// Redis Cluster reads as hash tags, and `*`/`?` glob characters) are percent-encoded,
    /// so no topic reaches outside the prefix's key space.
    pub fn key(&self, topic: &str) -> String {
        let mut key = String::with_capacity(self.inner.prefix.len() + topic.len());
        key.push_str(&self.inner.prefix);
        for b in topic.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-') {
                key.push(b as char);
            } else {
                key.push_str(&format!("%{b:02X}"));
            }
        }
        key
    }

    /// Checks the server now (`PING`) and updates [`EventHub::status`].
    pub async fn ping(&self) -> Result<(), HubError> {
        let mut conn = self.inner.publisher.clone();
        let r: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        r.map(|_| self.inner.ok()).map_err(|e| self.inner.fail(&e))
    }
}

impl Inner {
    fn ok(&self) {
        if !self.healthy.swap(true, Ordering::SeqCst) {
            tracing::info!("redis event hub reconnected");
            if let Ok(mut d) = self.detail.lock() {
                *d = None;
            }
        }
    }

    fn fail(&self, e: &redis::RedisError) -> HubError {
        if self.healthy.swap(false, Ordering::SeqCst) {
            tracing::warn!(error = %e, "redis event hub unavailable");
        }
        if let Ok(mut d) = self.detail.lock() {
            *d = Some(e.to_string());
        }
        HubError(e.to_string())
    }

    async fn connection(&self) -> Result<MultiplexedConnection, HubError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(READ_BLOCK + Duration::from_secs(2)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.fail(&e))
    }

    async fn publish(&self, key: &str, json: Bytes) -> Result<String, HubError> {
        let max_age_ms = self.cfg.replay_max_age.as_millis().max(1) as u64;
        let cutoff = unix_ms().saturating_sub(max_age_ms);
        let mut conn = self.publisher.clone();
        let (id,): (String,) = redis::pipe()
            .cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.cfg.replay_max_events.max(1))
            .arg("*")
            .arg(DATA_FIELD)
            .arg(json.as_ref())
            .cmd("XTRIM")
            .arg(key)
            .arg("MINID")
            .arg("~")
            .arg(cutoff)
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(max_age_ms)
            .ignore()
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        Ok(id)
    }

    /// The broadcast receiver of `key`'s reader, starting one (from the stream's current end)
    /// when none runs.
    async fn receiver(
        self: &Arc<Self>,
        key: &str,
    ) -> Result<broadcast::Receiver<HubEvent>, HubError> {
        let mut readers = self.readers.lock().await;
        if let Some(tx) = readers.get(key) {
            return Ok(tx.subscribe());
        }
        let mut conn = self.publisher.clone();
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        let start = last
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
        let (tx, rx) = broadcast::channel(self.cfg.subscriber_queue.max(1));
        readers.insert(key.to_string(), tx.clone());
        tokio::spawn(read_loop(Arc::downgrade(self), key.to_string(), tx, start));
        Ok(rx)
    }

    async fn replay(
        &self,
        key: &str,
        last_event_id: &str,
    ) -> Result<(Vec<HubItem>, Option<u64>), HubError> {
        let mut conn = self.publisher.clone();
        let info: redis::RedisResult<HashMap<String, Value>> = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(key)
            .query_async(&mut conn)
            .await;
        let info = match info {
            Ok(info) => Some(info),
            Err(e) if e.to_string().contains("no such key") => None,
            Err(e) => return Err(self.fail(&e)),
        };
        let last_generated = info
            .as_ref()
            .and_then(|i| id_field(i, "last-generated-id"))
            .and_then(|id| seq_of(&id));
        // Trimming (MAXLEN/MINID) does not move `max-deleted-entry-id`; the first entry and
        // the count of entries ever added tell whether anything left the window.
        let first_entry = info
            .as_ref()
            .and_then(|i| id_field(i, "recorded-first-entry-id"))
            .and_then(|id| seq_of(&id));
        let trimmed = info.as_ref().is_some_and(|i| {
            int_field(i, "entries-added").unwrap_or(0) > int_field(i, "length").unwrap_or(0)
        });
        let mut head = Vec::new();
        // `0` is the start of every topic, even one not created yet.
        let known = |s: &u64| *s == 0 || last_generated.is_some_and(|g| *s <= g);
        let (from, after) = match seq_of(last_event_id).filter(known) {
            None => {
                head.push(HubItem::Gap {
                    reason: GapReason::UnknownId,
                    missed: None,
                });
                ("-".to_string(), None)
            }
            Some(after) => {
                // The resume id itself has left the window: say so (the count is unknown).
                if trimmed && first_entry.is_some_and(|f| after < f) {
                    head.push(HubItem::Gap {
                        reason: GapReason::Expired,
                        missed: None,
                    });
                }
                (format!("({last_event_id}"), Some(after))
            }
        };
        let entries: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(self.cfg.replay_max_events.max(1))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.fail(&e))?;
        self.ok();
        let mut last_seq = after;
        for entry in entries.ids {
            if let Some(ev) = to_event(entry) {
                last_seq = Some(ev.seq());
                head.push(HubItem::Event(ev));
            }
        }
        Ok((head, last_seq))
    }
}

/// One reader per active topic: reads new entries and fans them out, reconnecting on errors
/// and resuming from the last id it delivered. Ends when no subscriber is left.
async fn read_loop(
    hub: Weak<Inner>,
    key: String,
    tx: broadcast::Sender<HubEvent>,
    mut last_id: String,
) {
    let mut conn: Option<MultiplexedConnection> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        let Some(inner) = hub.upgrade() else { return };
        if tx.receiver_count() == 0 {
            let mut readers = inner.readers.lock().await;
            // Checked again under the lock: a subscriber may have just joined.
            if tx.receiver_count() == 0 {
                readers.remove(&key);
                return;
            }
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match inner.connection().await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    drop(inner);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(READ_BATCH)
            .arg("BLOCK")
            .arg(READ_BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last_id)
            .query_async(c)
            .await;
        match reply {
            Ok(reply) => {
                inner.ok();
                backoff = Duration::from_millis(50);
                for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                    last_id = entry.id.clone();
                    if let Some(ev) = to_event(entry) {
                        // No receivers: the loop notices at the top and ends.
                        let _ = tx.send(ev);
                    }
                }
            }
            Err(e) => {
                inner.fail(&e);
                conn = None;
                drop(inner);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

fn to_event(entry: StreamId) -> Option<HubEvent> {
    let seq = seq_of(&entry.id)?;
    let json: Vec<u8> = entry.get(DATA_FIELD)?;
    Some(HubEvent::new(entry.id, seq, Bytes::from(json)))
}

fn id_field(info: &HashMap<String, Value>, name: &str) -> Option<String> {
    match info.get(name)? {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn int_field(info: &HashMap<String, Value>, name: &str) -> Option<i64> {
    match info.get(name)? {
        Value::Int(i) => Some(*i),
        _ => None,
    }
}

/// A stream id `<ms>-<n>` (or `<ms>`) as one increasing number.
fn seq_of(id: &str) -> Option<u64> {
    let (ms, n) = id.split_once('-').unwrap_or((id, "0"));
    let (ms, n) = (ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?);
    ms.checked_mul(1_000_000)?.checked_add(n.min(999_999))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
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
            let key = self.key(topic);
            // Subscribe to the live feed first, then read the replay: the two overlap rather
            // than leave a hole, and `live` drops what the replay already yielded.
            let rx = self.inner.receiver(&key).await?;
            let (head, after) = match last_event_id {
                Some(id) => self.inner.replay(&key, id).await?,
                None => (Vec::new(), None),
            };
            Ok(Subscription::new(
                live(head, rx, self.inner.cfg.slow_consumer, after),
                self.inner.counter.guard(),
            ))
        })
    }

    fn live_subscriptions(&self) -> usize {
        self.inner.counter.live()
    }

    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(async move {
            let _ = self.ping().await;
            self.status()
        })
    }

    fn status(&self) -> HubStatus {
        HubStatus {
            backend: "redis".into(),
            healthy: self.inner.healthy.load(Ordering::SeqCst),
            detail: self.inner.detail.lock().ok().and_then(|d| d.clone()),
            subscriptions: self.inner.counter.live(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_as_numbers() {
        assert!(seq_of("1700000000000-1") > seq_of("1700000000000-0"));
        assert!(seq_of("1700000000001-0") > seq_of("1700000000000-5"));
        assert_eq!(seq_of("garbage"), None);
        assert_eq!(seq_of("0"), Some(0));
        assert_eq!(seq_of("1-x"), None);
    }

    #[test]
    fn open_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(RedisHub::open("redis://127.0.0.1:6379", "app:", HubConfig::default()).is_err());
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_prefix() {
        let hub = RedisHub::open("redis://127.0.0.1:6379", "app:", HubConfig::default()).unwrap();
        assert_eq!(hub.key("user:alice:n"), "app:user:alice:n");
        assert_eq!(hub.key("{x} *?"), "app:%7Bx%7D%20%2A%3F");
        assert_eq!(hub.key("ü"), "app:%C3%BC");
    }
}
