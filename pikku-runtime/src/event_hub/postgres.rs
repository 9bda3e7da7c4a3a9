//! The PostgreSQL event hub: topics shared by many server instances through one database.
//!
//! # Shape
//! - **History**: two tables under the hub's prefix (`<prefix>_topics`: a topic's epoch and
//!   last offset; `<prefix>_events`: its window of payloads, keyed by `(topic, offset)`),
//!   created on first use. A publish is one call of a PL/pgSQL function the hub installs: it
//!   upserts the topic row to take the next offset (a new epoch when the row is new, i.e. the
//!   topic was never published or its history was deleted), inserts the event, trims the
//!   topic's events to the window by count and age, and `pg_notify`s the new position, all in
//!   one transaction (one round trip). The row lock serializes a topic's publishes, so offsets
//!   are dense and commit order is offset order.
//! - **Live delivery**: one `LISTEN` connection per instance, whatever the number of topics,
//!   on one channel per prefix ([`HubConfig::connections`] is not used: one channel carries
//!   every topic, so one connection suffices). A notification carries only
//!   `<epoch> <offset> <topic>` (a long topic is replaced by a hash), so payloads are not bound
//!   by `NOTIFY`'s 8,000 bytes: the listener reads the events after what it has for each topic
//!   that is active on this instance (notifications are batched, one read per topic per batch)
//!   and appends them to the topic's shared log, from which local subscribers read through
//!   cursors. Topics with no local subscriber cost a hash lookup per notification.
//! - **Continuity**: every event carries its offset, so the hand-over from a resume's history
//!   read to the live feed skips duplicates and notices holes. When the `LISTEN` connection
//!   drops (a database restart, `pg_terminate_backend`), the listener reconnects with backoff,
//!   listens again and reads each active topic's missed events from the table; a hole it cannot
//!   fill (trimmed meanwhile) is a `gap`, never silent.
//! - **Epochs**: when a topic's row is gone (deleted with its events, or never there), the
//!   next publish starts a new random epoch, so a client resuming from the old one gets a
//!   `reset` gap. Events older than [`HubConfig::replay_max_age`] are trimmed at the topic's
//!   next publish and never replayed, and a timer deletes the topics not published within that
//!   age with their events (as Redis keys expire), so the tables hold only recent topics.
//!
//! # Why this shape
//! `LISTEN` per topic would need a channel name per topic and re-`LISTEN`s of every topic on
//! each reconnect; polling the table per topic costs queries even when nothing happens. One
//! channel per prefix keeps the connection count fixed and the reconnect cheap, and the
//! table (not the notification) stays the source of truth, so a missed notification costs
//! latency, never an event. The price: every instance receives every notification of its
//! prefix, which suits the moderate publish rates PostgreSQL itself sustains; past that, use
//! Redis.
//!
//! # Limits
//! Connections are plain TCP (`NoTls`): reach the database over a trusted network or a local
//! TLS proxy. The pool holds at most 8 connections per instance, plus the listener's.
//!
//! Publishing or subscribing while the database is down fails fast with
//! [`HubError::Unavailable`] (a 503); [`EventHub::status`] reports the hub unhealthy until an
//! operation succeeds again. The hub's connections carry the `application_name`
//! `pikku_hub:<prefix>`, so an operator can find them in `pg_stat_activity`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls};

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

/// Default prefix: tables `pikku_hub_topics` and `pikku_hub_events`, channel `pikku_hub`.
pub const DEFAULT_PREFIX: &str = "pikku_hub";

/// How long connecting, or waiting for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections of the pool that publishes and reads history.
const POOL_SIZE: usize = 8;
/// Tries of a listener's read before it gives up (a later notification or reconnect retries).
const READ_ATTEMPTS: usize = 4;
/// Topics read at once by the listener.
const FETCH_CONCURRENCY: usize = 8;
/// Topics longer than this are named by a hash in notifications (whose payload is limited).
const MAX_NOTIFIED_TOPIC: usize = 200;

/// A PostgreSQL-backed [`EventHub`].
pub struct PgHub {
    inner: Arc<Inner>,
    presence: Presence,
}

/// The SQL names of one prefix, quoted.
struct Names {
    /// `CREATE SCHEMA` for a schema-qualified prefix.
    schema: Option<String>,
    topics: String,
    events: String,
    events_age_index: String,
    publish_fn: String,
    /// The `NOTIFY` channel (the prefix as given).
    channel: String,
    /// Presence entries: `(topic, member, instance, expires_at)`.
    presence: String,
    presence_expiry_index: String,
    presence_add_fn: String,
    presence_remove_fn: String,
}

impl Names {
    /// `prefix` is `name` or `schema.name`, each `[A-Za-z0-9_]`, 40 bytes at most in all.
    fn new(prefix: &str) -> Result<Self, HubError> {
        let ident =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let (schema, name) = match prefix.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, prefix),
        };
        if prefix.len() > 40 || !ident(name) || !schema.is_none_or(ident) {
            return Err(HubError::unavailable(format!(
                "invalid postgres hub prefix `{prefix}`: use `name` or `schema.name` of [A-Za-z0-9_], at most 40 bytes"
            )));
        }
        let qualify = |table: &str| match schema {
            Some(s) => format!("\"{s}\".\"{name}_{table}\""),
            None => format!("\"{name}_{table}\""),
        };
        Ok(Self {
            schema: schema.map(|s| format!("\"{s}\"")),
            topics: qualify("topics"),
            events: qualify("events"),
            events_age_index: format!("\"{name}_events_age\""),
            publish_fn: qualify("publish"),
            channel: prefix.to_string(),
            presence: qualify("presence"),
            presence_expiry_index: format!("\"{name}_presence_expiry\""),
            presence_add_fn: qualify("presence_add"),
            presence_remove_fn: qualify("presence_remove"),
        })
    }

    /// Tables, index and the publish function; safe to run from many instances at once.
    fn schema_sql(&self) -> String {
        let Names {
            schema,
            topics,
            events,
            events_age_index,
            publish_fn,
            channel,
            presence,
            presence_expiry_index,
            presence_add_fn,
            presence_remove_fn,
        } = self;
        let create_schema = schema
            .as_ref()
            .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {s};"))
            .unwrap_or_default();
        // Concurrent `CREATE ... IF NOT EXISTS` of the same object can still fail: serialize.
        format!(
            r#"
BEGIN;
SELECT pg_advisory_xact_lock(hashtext('pikku_hub_schema'));
{create_schema}
CREATE TABLE IF NOT EXISTS {topics} (
  topic text PRIMARY KEY,
  epoch bigint NOT NULL,
  last_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {events} (
  topic text NOT NULL,
  event_offset bigint NOT NULL,
  payload bytea NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (topic, event_offset)
);
CREATE INDEX IF NOT EXISTS {events_age_index} ON {events} (topic, created_at);
CREATE TABLE IF NOT EXISTS {presence} (
  topic text NOT NULL,
  member text NOT NULL,
  instance text NOT NULL,
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (topic, member, instance)
);
CREATE INDEX IF NOT EXISTS {presence_expiry_index} ON {presence} (expires_at);
-- Joins and leaves take the topic's advisory lock (held to the end of their statement's
-- transaction), so the member bound and "last one out" hold across instances.
CREATE OR REPLACE FUNCTION {presence_add_fn}(
  p_topic text, p_member text, p_instance text, p_ttl_ms bigint, p_max bigint
) RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  v_present boolean;
  v_count bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('pikku_presence'), hashtext(p_topic));
  SELECT coalesce(bool_or(member = p_member), false), count(DISTINCT member)
  INTO v_present, v_count
  FROM {presence} WHERE topic = p_topic AND expires_at > clock_timestamp();
  IF NOT v_present AND v_count >= p_max THEN
    RETURN -1;
  END IF;
  INSERT INTO {presence} (topic, member, instance, expires_at)
  VALUES (p_topic, p_member, p_instance, clock_timestamp() + p_ttl_ms * interval '1 millisecond')
  ON CONFLICT (topic, member, instance) DO UPDATE SET expires_at = EXCLUDED.expires_at;
  RETURN CASE WHEN v_present THEN 0 ELSE 1 END;
END
$fn$;
CREATE OR REPLACE FUNCTION {presence_remove_fn}(
  p_topic text, p_member text, p_instance text
) RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
  v_mine integer;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('pikku_presence'), hashtext(p_topic));
  DELETE FROM {presence} WHERE topic = p_topic AND member = p_member AND instance = p_instance;
  GET DIAGNOSTICS v_mine = ROW_COUNT;
  IF EXISTS (SELECT 1 FROM {presence} WHERE topic = p_topic AND member = p_member
             AND expires_at > clock_timestamp()) THEN
    RETURN false;
  END IF;
  -- Gone: its expired rows go too, so no reaper announces it again.
  DELETE FROM {presence} WHERE topic = p_topic AND member = p_member;
  RETURN v_mine > 0;
END
$fn$;
CREATE OR REPLACE FUNCTION {publish_fn}(
  p_topic text, p_key text, p_payload bytea, p_window bigint, p_max_age_ms bigint, p_epoch bigint
) RETURNS TABLE (o_epoch bigint, o_offset bigint) LANGUAGE plpgsql AS $fn$
DECLARE
  v_epoch bigint;
  v_offset bigint;
  v_new boolean;
BEGIN
  INSERT INTO {topics} AS t (topic, epoch, last_offset, updated_at)
  VALUES (p_topic, p_epoch, 1, now())
  ON CONFLICT (topic) DO UPDATE SET last_offset = t.last_offset + 1, updated_at = now()
  RETURNING t.epoch, t.last_offset, (t.xmax = 0) INTO v_epoch, v_offset, v_new;
  IF v_new THEN
    -- A new history: whatever an older one left behind is not part of it.
    DELETE FROM {events} WHERE topic = p_topic;
  END IF;
  INSERT INTO {events} (topic, event_offset, payload, created_at)
  VALUES (p_topic, v_offset, p_payload, now());
  DELETE FROM {events} WHERE topic = p_topic AND event_offset <= v_offset - p_window;
  DELETE FROM {events}
  WHERE topic = p_topic AND created_at < now() - p_max_age_ms * interval '1 millisecond';
  PERFORM pg_notify('{channel}', to_hex(v_epoch) || ' ' || v_offset || ' ' || p_key);
  RETURN QUERY SELECT v_epoch, v_offset;
END
$fn$;
COMMIT;
"#
        )
    }

    /// Deletes the topics not published within the max age (param 1, ms), with their events.
    fn sweep_sql(&self) -> String {
        let Names { topics, events, .. } = self;
        format!(
            "WITH gone AS (DELETE FROM {topics} \
               WHERE updated_at < now() - $1::bigint * interval '1 millisecond' RETURNING topic) \
             DELETE FROM {events} WHERE topic IN (SELECT topic FROM gone)"
        )
    }

    /// The topic row and its newest events after an offset, in one statement (one snapshot).
    /// Params: topic, after (-1: none), max age ms, limit.
    fn read_sql(&self) -> String {
        let Names { topics, events, .. } = self;
        format!(
            "SELECT t.epoch, t.last_offset, e.event_offset, e.payload FROM {topics} t \
             LEFT JOIN LATERAL (SELECT event_offset, payload FROM {events} ev \
               WHERE ev.topic = t.topic AND ev.event_offset > $2 \
                 AND ev.created_at >= now() - $3::bigint * interval '1 millisecond' \
               ORDER BY ev.event_offset DESC LIMIT $4) e ON true \
             WHERE t.topic = $1"
        )
    }
}

struct Inner {
    pool: Pool,
    pg: tokio_postgres::Config,
    names: Names,
    read_sql: String,
    publish_sql: String,
    /// Whether the tables and function are known to exist (reset when a statement finds them
    /// missing, e.g. dropped by an operator, so the next use creates them again).
    schema_ready: AtomicBool,
    /// Serializes this instance's schema creation.
    schema_lock: tokio::sync::Mutex<()>,
    sweep_sql: String,
    cfg: HubConfig,
    listener: mpsc::UnboundedSender<Cmd>,
    topics: Followed<()>,
    budget: Arc<Budget>,
    counter: SubscriptionCounter,
    health: Health,
}

enum Cmd {
    Follow {
        topic: Arc<str>,
        log: Arc<TopicLog>,
        ready: watch::Sender<Ready>,
    },
    Unfollow {
        topic: Arc<str>,
        log: Weak<TopicLog>,
    },
}

/// What the listener follows: a topic's notification key → the topic and its log.
type Active = HashMap<String, (Arc<str>, Arc<TopicLog>)>;

impl PgHub {
    /// A hub on the database at `url` (`postgres://user@host:port/db`), with its tables under
    /// `prefix` (`name` or `schema.name`, see [`DEFAULT_PREFIX`]). Connections are made
    /// lazily, so this does not fail when the database is down; the tables are created on
    /// first use. Call it inside a tokio runtime (the hub spawns its listener there).
    pub fn open(url: &str, prefix: &str, cfg: HubConfig) -> Result<Self, HubError> {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Err(HubError::unavailable(
                "PgHub::open must be called inside a tokio runtime",
            ));
        };
        let names = Names::new(prefix)?;
        let mut pg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| HubError::unavailable(format!("invalid postgres url: {e}")))?;
        pg.application_name(format!("pikku_hub:{prefix}"));
        pg.connect_timeout(CONNECT_TIMEOUT);
        let manager = Manager::from_config(
            pg.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(HubError::unavailable)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            pool,
            pg,
            read_sql: names.read_sql(),
            sweep_sql: names.sweep_sql(),
            publish_sql: format!(
                "SELECT o_epoch, o_offset FROM {}($1, $2, $3, $4, $5, $6)",
                names.publish_fn
            ),
            names,
            schema_ready: AtomicBool::new(false),
            schema_lock: tokio::sync::Mutex::new(()),
            budget: Budget::new(cfg.max_retained_bytes),
            cfg,
            listener: tx,
            topics: Followed::new(),
            counter: SubscriptionCounter::default(),
            health: Health::new("postgres"),
        });
        // Spawned once the hub is whole: a listener that ran earlier would find no hub.
        rt.spawn(listener(Arc::downgrade(&inner), rx));
        let every =
            (inner.cfg.replay_max_age / 2).clamp(Duration::from_secs(1), Duration::from_secs(60));
        rt.spawn(sweeper(Arc::downgrade(&inner), every));
        let presence = Presence::new(PgPresence::new(inner.clone()), &inner.cfg);
        Ok(Self { inner, presence })
    }

    /// Checks the database now (`SELECT 1`) and updates [`EventHub::status`].
    pub async fn ping(&self) -> Result<(), HubError> {
        let client = self.inner.client().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map(|_| self.inner.ok())
            .map_err(|e| self.inner.fail(&e))
    }

    /// Topics with local subscribers on this instance.
    pub fn active_topics(&self) -> usize {
        self.inner.topics.len()
    }

    /// The `application_name` of the hub's connections (`pikku_hub:<prefix>`).
    pub fn application_name(&self) -> &str {
        self.inner.pg.get_application_name().unwrap_or_default()
    }
}

impl LogOwner for Inner {
    fn idle(&self, topic: &Arc<str>) {
        if let Some(entry) = self.topics.take_idle(topic) {
            let _ = self.listener.send(Cmd::Unfollow {
                topic: topic.clone(),
                log: Arc::downgrade(&entry.log),
            });
        }
    }
}

/// Whether a statement failed because the hub's tables, function or schema are missing.
fn schema_missing(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        [
            SqlState::UNDEFINED_TABLE,
            SqlState::UNDEFINED_FUNCTION,
            SqlState::INVALID_SCHEMA_NAME,
        ]
        .contains(code)
    })
}

/// A topic's name in notifications: itself, or `#` and a hash when long. FNV-1a, so every
/// instance computes the same key whatever its build.
fn note_key(topic: &str) -> String {
    if topic.len() <= MAX_NOTIFIED_TOPIC {
        return topic.to_string();
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("#{h:016x}")
}

/// A notification `<epoch hex> <offset> <topic key>`.
fn parse_note(payload: &str) -> Option<(Position, &str)> {
    let mut parts = payload.splitn(3, ' ');
    let epoch = u64::from_str_radix(parts.next()?, 16).ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some((Position { epoch, offset }, parts.next()?))
}

impl Inner {
    fn ok(&self) {
        self.health.ok();
    }

    fn fail(&self, e: &dyn std::fmt::Display) -> HubError {
        self.health.fail(e)
    }

    /// A pooled connection, with the hub's tables in place.
    async fn client(&self) -> Result<deadpool_postgres::Object, HubError> {
        let client = self.pool.get().await.map_err(|e| self.fail(&e))?;
        if !self.schema_ready.load(Ordering::Acquire) {
            let _creating = self.schema_lock.lock().await;
            if !self.schema_ready.load(Ordering::Acquire) {
                client
                    .batch_execute(&self.names.schema_sql())
                    .await
                    .map_err(|e| self.db_fail(&client, &e))?;
                self.schema_ready.store(true, Ordering::Release);
            }
        }
        Ok(client)
    }

    /// A statement's failure: unhealthy, and when the hub's tables or function are missing
    /// (dropped behind its back), created again on next use.
    fn db_fail(&self, client: &deadpool_postgres::Object, e: &tokio_postgres::Error) -> HubError {
        if schema_missing(e) {
            self.schema_ready.store(false, Ordering::Release);
            client.statement_cache.clear();
        }
        self.fail(e)
    }

    /// Deletes the topics not published for longer than the window's age, with their events:
    /// their histories expired, so their next publish starts a new epoch (as Redis keys
    /// expire). Bounds the tables to the topics published recently.
    async fn sweep(&self) -> Result<u64, HubError> {
        let client = self.client().await?;
        let max_age_ms = self.cfg.replay_max_age.as_millis().max(1) as i64;
        client
            .execute(&self.sweep_sql, &[&max_age_ms])
            .await
            .map_err(|e| self.db_fail(&client, &e))
    }

    async fn publish(&self, topic: &str, json: Bytes) -> Result<String, HubError> {
        let max = self.cfg.max_event_bytes;
        if json.len() > max {
            return Err(HubError::TooLarge {
                size: json.len(),
                max,
            });
        }
        // A statement that found the schema missing did nothing: once recreated, retry it.
        let mut retried = false;
        let row = loop {
            let client = self.client().await?;
            match self.publish_row(&client, topic, &json).await {
                Ok(row) => break row,
                Err(e) if schema_missing(&e) && !retried => {
                    self.db_fail(&client, &e);
                    retried = true;
                }
                Err(e) => return Err(self.db_fail(&client, &e)),
            }
        };
        self.ok();
        let epoch: i64 = row.get(0);
        let offset: i64 = row.get(1);
        Ok(Position {
            epoch: epoch as u64,
            offset: offset as u64,
        }
        .to_string())
    }

    async fn publish_row(
        &self,
        client: &deadpool_postgres::Object,
        topic: &str,
        json: &Bytes,
    ) -> Result<tokio_postgres::Row, tokio_postgres::Error> {
        let stmt = client.prepare_cached(&self.publish_sql).await?;
        client
            .query_one(
                &stmt,
                &[
                    &topic,
                    &note_key(topic),
                    &json.as_ref(),
                    &(self.cfg.window() as i64),
                    &(self.cfg.replay_max_age.as_millis().max(1) as i64),
                    &(Position::new_epoch() as i64),
                ],
            )
            .await
    }

    /// The topic's epoch and last offset, and its newest events after `after` (the window's
    /// newest when `after` is `None` or of another epoch), oldest first.
    async fn read(&self, topic: &str, after: Option<Position>) -> Result<History, HubError> {
        let was_ready = self.schema_ready.load(Ordering::Acquire);
        match self.read_once(topic, after).await {
            // The schema was found missing (the read did nothing): created again, read again.
            Err(_) if was_ready && !self.schema_ready.load(Ordering::Acquire) => {
                self.read_once(topic, after).await
            }
            read => read,
        }
    }

    /// The topic row's epoch and last offset (`None` without a row: no history).
    async fn position(&self, topic: &str) -> Result<Option<Position>, HubError> {
        let was_ready = self.schema_ready.load(Ordering::Acquire);
        match self.position_once(topic).await {
            // The schema was found missing (the read did nothing): created again, read again.
            Err(_) if was_ready && !self.schema_ready.load(Ordering::Acquire) => {
                self.position_once(topic).await
            }
            read => read,
        }
    }

    async fn position_once(&self, topic: &str) -> Result<Option<Position>, HubError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.read_sql)
            .await
            .map_err(|e| self.db_fail(&client, &e))?;
        // No event comes after offset i64::MAX: the read returns the topic row alone.
        let rows = self.read_rows(&client, &stmt, topic, i64::MAX).await?;
        self.ok();
        let history = History::from_rows(rows);
        Ok(history.epoch.map(|epoch| Position {
            epoch,
            offset: history.last,
        }))
    }

    /// The position of the topic's newest event within the window's age (the read statement
    /// with a limit of one: the `max(event_offset)` row).
    async fn newest(&self, topic: &str) -> Result<Option<Position>, HubError> {
        let was_ready = self.schema_ready.load(Ordering::Acquire);
        match self.newest_once(topic).await {
            Err(_) if was_ready && !self.schema_ready.load(Ordering::Acquire) => {
                self.newest_once(topic).await
            }
            newest => newest,
        }
    }

    async fn newest_once(&self, topic: &str) -> Result<Option<Position>, HubError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.read_sql)
            .await
            .map_err(|e| self.db_fail(&client, &e))?;
        let max_age_ms = self.cfg.replay_max_age.as_millis().max(1) as i64;
        let rows = client
            .query(&stmt, &[&topic, &-1i64, &max_age_ms, &1i64])
            .await
            .map_err(|e| self.db_fail(&client, &e))?;
        self.ok();
        Ok(History::from_rows(rows)
            .events
            .last()
            .map(HubEvent::position))
    }

    /// [`Inner::read`] for the listener, which has no caller to retry for it: a read on a
    /// pooled connection that was just killed is tried again on a fresh one.
    async fn read_retrying(
        &self,
        topic: &str,
        after: Option<Position>,
    ) -> Result<History, HubError> {
        let mut backoff = Duration::from_millis(25);
        for _ in 0..READ_ATTEMPTS - 1 {
            match self.read(topic, after).await {
                Ok(history) => return Ok(history),
                Err(_) => tokio::time::sleep(backoff).await,
            }
            backoff *= 4;
        }
        self.read(topic, after).await
    }

    async fn read_once(&self, topic: &str, after: Option<Position>) -> Result<History, HubError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&self.read_sql)
            .await
            .map_err(|e| self.db_fail(&client, &e))?;
        let mut rows = self
            .read_rows(&client, &stmt, topic, after.map_or(-1, |p| p.offset as i64))
            .await?;
        // The epoch is only known from the row: an offset of another epoch means nothing, so
        // then read the window and let the caller compare epochs.
        if let (Some(after), Some(row)) = (after, rows.first())
            && row.get::<_, i64>(0) as u64 != after.epoch
            && after.offset > 0
        {
            rows = self.read_rows(&client, &stmt, topic, -1).await?;
        }
        self.ok();
        Ok(History::from_rows(rows))
    }

    async fn read_rows(
        &self,
        client: &deadpool_postgres::Object,
        stmt: &tokio_postgres::Statement,
        topic: &str,
        after: i64,
    ) -> Result<Vec<tokio_postgres::Row>, HubError> {
        let max_age_ms = self.cfg.replay_max_age.as_millis().max(1) as i64;
        let limit = self.cfg.window() as i64;
        client
            .query(stmt, &[&topic, &after, &max_age_ms, &limit])
            .await
            .map_err(|e| self.db_fail(client, &e))
    }

    /// Items a resume from `resume` yields before the live feed, and the last position they
    /// cover (later live events at or before it are duplicates): [`position::replay`] over
    /// the topic's history.
    async fn replay(
        &self,
        topic: &str,
        resume: Resume,
    ) -> Result<(Vec<HubItem>, Option<Position>), HubError> {
        let history = self.read(topic, resume.after()).await?;
        Ok(position::replay(resume, history))
    }
}

/// Reading what [`Names::read_sql`] returns.
impl History {
    fn from_rows(rows: Vec<tokio_postgres::Row>) -> Self {
        let Some(first) = rows.first() else {
            return History {
                epoch: None,
                last: 0,
                events: Vec::new(),
            };
        };
        let epoch = first.get::<_, i64>(0) as u64;
        let last = first.get::<_, i64>(1) as u64;
        let mut events: Vec<HubEvent> = rows
            .iter()
            .filter_map(|row| {
                let offset: Option<i64> = row.get(2);
                let payload: Option<Vec<u8>> = row.get(3);
                Some(HubEvent::new(
                    Position {
                        epoch,
                        offset: offset? as u64,
                    },
                    Bytes::from(payload?),
                ))
            })
            .collect();
        events.reverse();
        History {
            epoch: Some(epoch),
            last,
            events,
        }
    }
}

/// Sweeps expired topics every `every`, until the hub is dropped.
async fn sweeper(hub: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(inner) = hub.upgrade() else { return };
        // Before its first use the hub has no tables of its own to sweep.
        if !inner.schema_ready.load(Ordering::Acquire) {
            continue;
        }
        match inner.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(events = n, "swept expired hub topics"),
            Err(e) => tracing::debug!(error = %e, "could not sweep expired hub topics"),
        }
    }
}

/// The `LISTEN` connection's task: follows the topics it is given, reads the events that
/// notifications announce into their logs, and on reconnect listens again and reads what it
/// missed from the table.
async fn listener(hub: Weak<Inner>, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    let mut active: Active = HashMap::new();
    let mut backoff = Duration::from_millis(50);
    let mut reconnecting = false;
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let (client, mut notes) = match connect(&inner).await {
            Ok(c) => c,
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
                    apply(&mut active, cmd);
                    while let Ok(cmd) = cmds.try_recv() {
                        apply(&mut active, cmd);
                    }
                }
                note = notes.recv() => {
                    let Some(note) = note else { break };
                    let mut batch = vec![note];
                    while let Ok(note) = notes.try_recv() {
                        batch.push(note);
                    }
                    let Some(inner) = hub.upgrade() else { return };
                    deliver(&inner, &active, batch).await;
                }
            }
        }
        drop(client);
        reconnecting = true;
        if let Some(inner) = hub.upgrade() {
            inner.fail(&"the LISTEN connection was lost");
        }
    }
}

/// Opens the `LISTEN` connection: the client, and the notifications its connection task
/// forwards (the channel closes when the connection ends).
async fn connect(
    inner: &Inner,
) -> Result<(tokio_postgres::Client, mpsc::UnboundedReceiver<String>), String> {
    let (client, mut connection) =
        match tokio::time::timeout(CONNECT_TIMEOUT, inner.pg.connect(NoTls)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("timed out connecting".to_string()),
        };
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "postgres event hub listener connection ended");
                    return;
                }
            }
        }
    });
    let listen = format!("LISTEN \"{}\"", inner.names.channel);
    match tokio::time::timeout(CONNECT_TIMEOUT, client.batch_execute(&listen)).await {
        Ok(Ok(())) => Ok((client, rx)),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out listening".to_string()),
    }
}

/// Applies a command while connected: the topic is followed from now on.
fn apply(active: &mut Active, cmd: Cmd) {
    match cmd {
        Cmd::Follow { topic, log, ready } => {
            active.insert(note_key(&topic), (topic, log));
            let _ = ready.send(Ready::Following);
        }
        Cmd::Unfollow { topic, log } => remove_if_same(active, &topic, &log),
    }
}

/// Applies a command while disconnected: the waiter learns that the database is down.
fn apply_offline(inner: &Inner, active: &mut Active, cmd: Cmd, error: &str) {
    match cmd {
        Cmd::Follow { topic, ready, log } => {
            inner.topics.remove_if_same(&topic, &log);
            let _ = ready.send(Ready::Failed(error.to_string()));
        }
        Cmd::Unfollow { topic, log } => remove_if_same(active, &topic, &log),
    }
}

fn remove_if_same(active: &mut Active, topic: &str, log: &Weak<TopicLog>) {
    let key = note_key(topic);
    if active
        .get(&key)
        .is_some_and(|(_, l)| std::ptr::eq(Arc::as_ptr(l), log.as_ptr()))
    {
        active.remove(&key);
    }
}

/// Reads the events a batch of notifications announces, one read per followed topic.
async fn deliver(inner: &Inner, active: &Active, batch: Vec<String>) {
    // The first and the newest announced positions per topic, in first-seen order: a log that
    // has nothing yet reads from the first, one that has events from what it has.
    let mut newest: Vec<(&str, Position, Position)> = Vec::new();
    for note in &batch {
        let Some((pos, key)) = parse_note(note) else {
            tracing::warn!(note = %note, "ignoring a malformed hub notification");
            continue;
        };
        if !active.contains_key(key) {
            continue;
        }
        match newest.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, p)) => *p = pos,
            None => newest.push((key, pos, pos)),
        }
    }
    // Collected first: a lazy iterator's closure here trips the compiler's `Send` analysis.
    let mut reads = Vec::with_capacity(newest.len());
    for (key, first, last) in newest {
        if let Some((topic, log)) = active.get(key) {
            reads.push(follow(inner, topic.clone(), log.clone(), first, last));
        }
    }
    futures_util::stream::iter(reads)
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// Appends a topic's events up to at least `announced` that its log does not have yet;
/// `first` is the batch's first announcement of the topic.
async fn follow(
    inner: &Inner,
    topic: Arc<str>,
    log: Arc<TopicLog>,
    first: Position,
    announced: Position,
) {
    let after = match log.last_known() {
        Some(last) if last.epoch == announced.epoch && announced.offset <= last.offset => return,
        Some(last) if last.epoch == announced.epoch => last,
        // A new history: all of it is new here.
        Some(_) => Position {
            epoch: announced.epoch,
            offset: 0,
        },
        // Nothing yet: the subscriber's own history read covers what came before. Recorded,
        // so that if this read fails the next announcement still reads from here.
        None => {
            let after = if first.epoch == announced.epoch {
                Position {
                    epoch: first.epoch,
                    offset: first.offset.saturating_sub(1),
                }
            } else {
                Position {
                    epoch: announced.epoch,
                    offset: 0,
                }
            };
            log.set_baseline(after);
            after
        }
    };
    match inner.read_retrying(&topic, Some(after)).await {
        Ok(history) if history.epoch == Some(after.epoch) => {
            // A concurrent append (there is none: one listener) would only make this a no-op.
            let floor = log
                .last_known()
                .filter(|l| l.epoch == after.epoch)
                .map_or(after.offset, |l| l.offset.max(after.offset));
            log.append(history.events.into_iter().filter(|e| e.seq() > floor));
        }
        // Another epoch began meanwhile: its own notification follows.
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, topic = &*topic, "could not read announced hub events")
        }
    }
}

/// After a reconnect: each followed topic's events published while the listener was down.
async fn catch_up(inner: &Inner, active: &Active) {
    let mut reads = Vec::with_capacity(active.len());
    for (topic, log) in active.values() {
        reads.push(catch_up_one(inner, topic.clone(), log.clone()));
    }
    futures_util::stream::iter(reads)
        .buffer_unordered(FETCH_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

async fn catch_up_one(inner: &Inner, topic: Arc<str>, log: Arc<TopicLog>) {
    let last = log.last_known();
    match inner.read_retrying(&topic, last).await {
        Ok(history) => match last {
            Some(last) if history.epoch == Some(last.epoch) => {
                log.append(history.events.into_iter().filter(|e| e.seq() > last.offset))
            }
            // A new epoch (or a topic first published meanwhile): all of it is new.
            _ => log.append(history.events),
        },
        Err(e) => {
            tracing::warn!(error = %e, topic = &*topic, "could not catch up after a reconnect")
        }
    }
}

impl EventHub for PgHub {
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
            let key: Arc<str> = Arc::from(topic);
            let owner: Weak<dyn LogOwner> = Arc::downgrade(inner) as Weak<dyn LogOwner>;
            // The listener follows the topic before the history is read (see `Opening`).
            let cursor = inner
                .topics
                .open(&key, &inner.cfg, &inner.budget, owner, |log, ready| {
                    let _ = inner.listener.send(Cmd::Follow {
                        topic: key.clone(),
                        log: log.clone(),
                        ready,
                    });
                })?
                .followed("the hub's listener stopped", |e| inner.fail(&e))
                .await?
                .catch_up(last_event_id, |resume| inner.replay(topic, resume))
                .await?;
            Ok(Subscription::new(cursor, inner.counter.guard()))
        })
    }

    fn local(&self) -> Option<LocalParts<'_>> {
        Some(LocalParts {
            backend: "postgres",
            counter: &self.inner.counter,
            cfg: &self.inner.cfg,
            presence: &self.presence,
            health: Some(&self.inner.health),
        })
    }

    fn position<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(self.inner.position(topic))
    }

    fn check(&self) -> BoxFuture<'_, HubStatus> {
        Box::pin(async move {
            let _ = self.ping().await;
            self.status()
        })
    }

    fn newest<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Option<Position>, HubError>> {
        Box::pin(self.inner.newest(topic))
    }
}

// Presence: one row per (topic, member, instance) in `<prefix>_presence` with its
// `expires_at` (the database's clock, so instances' clocks never matter). A member is present
// while one of its rows is unexpired. Joins and leaves are one call each of a function that
// takes the topic's advisory lock (see the schema); statements are prepared once per
// connection.

/// Stripes of the per-topic locks (a fixed number: bounded whatever the topics).
const PRESENCE_STRIPES: usize = 64;

struct PgPresence {
    inner: Arc<Inner>,
    /// Serializes this instance's joins and leaves of a topic before they take a pooled
    /// connection: waiting on the advisory lock would otherwise hold the whole pool (and
    /// starve publishes) when many join one topic at once.
    stripes: Vec<tokio::sync::Mutex<()>>,
    add_sql: String,
    remove_sql: String,
    refresh_sql: String,
    members_sql: String,
    reap_sql: String,
    cleanup_sql: String,
}

impl PgPresence {
    fn new(inner: Arc<Inner>) -> Self {
        let Names {
            presence: table,
            presence_add_fn,
            presence_remove_fn,
            ..
        } = &inner.names;
        Self {
            add_sql: format!("SELECT {presence_add_fn}($1, $2, $3, $4, $5)"),
            remove_sql: format!("SELECT {presence_remove_fn}($1, $2, $3)"),
            // `existing` reads the table as it was before the upsert (one snapshot); the
            // upsert in `WITH` runs whether or not the query reads it.
            refresh_sql: format!(
                "WITH existing AS (SELECT DISTINCT member FROM {table} \
                   WHERE topic = $1 AND member = ANY($2::text[])), \
                 upsert AS (INSERT INTO {table} (topic, member, instance, expires_at) \
                   SELECT $1, m, $3, clock_timestamp() + $4::bigint * interval '1 millisecond' \
                   FROM unnest($2::text[]) AS m \
                   ON CONFLICT (topic, member, instance) DO UPDATE SET expires_at = EXCLUDED.expires_at) \
                 SELECT m FROM unnest($2::text[]) AS m WHERE m NOT IN (SELECT member FROM existing)"
            ),
            members_sql: format!(
                "SELECT DISTINCT member FROM {table} \
                 WHERE topic = $1 AND expires_at > clock_timestamp() ORDER BY member"
            ),
            // Concurrent reapers: a row is deleted (and returned) by one of them only.
            reap_sql: format!(
                "DELETE FROM {table} p WHERE topic = $1 AND expires_at <= clock_timestamp() \
                 RETURNING member, NOT EXISTS (SELECT 1 FROM {table} q \
                   WHERE q.topic = p.topic AND q.member = p.member \
                     AND q.expires_at > clock_timestamp())"
            ),
            cleanup_sql: format!(
                "DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} \
                 WHERE expires_at < clock_timestamp() - interval '1 minute' LIMIT 1000)"
            ),
            stripes: (0..PRESENCE_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            inner,
        }
    }

    /// Runs one prepared statement, `serial` when it takes the topic's advisory lock.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        serial: Option<&str>,
    ) -> Result<Vec<tokio_postgres::Row>, HubError> {
        let _serial = match serial {
            Some(topic) => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                topic.hash(&mut h);
                let stripe = (h.finish() % PRESENCE_STRIPES as u64) as usize;
                Some(self.stripes[stripe].lock().await)
            }
            None => None,
        };
        let client = self.inner.client().await?;
        let rows = async {
            let stmt = client.prepare_cached(sql).await?;
            client.query(&stmt, params).await
        }
        .await
        .map_err(|e| self.inner.db_fail(&client, &e))?;
        self.inner.ok();
        Ok(rows)
    }
}

fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(millis(ttl).max(1)).unwrap_or(i64::MAX)
}

fn first<T: for<'r> tokio_postgres::types::FromSql<'r>>(
    rows: &[tokio_postgres::Row],
) -> Result<T, HubError> {
    rows.first()
        .and_then(|r| r.try_get(0).ok())
        .ok_or_else(|| HubError::unavailable("presence: unexpected reply"))
}

impl PresenceStore for PgPresence {
    fn add<'a>(
        &'a self,
        topic: &'a str,
        member: &'a str,
        instance: &'a str,
        ttl: Duration,
        max: usize,
    ) -> BoxFuture<'a, Result<bool, HubError>> {
        Box::pin(async move {
            let max_i = i64::try_from(max).unwrap_or(i64::MAX);
            let rows = self
                .query(
                    &self.add_sql,
                    &[&topic, &member, &instance, &ttl_ms(ttl), &max_i],
                    Some(topic),
                )
                .await?;
            match first::<i32>(&rows)? {
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
            let rows = self
                .query(&self.remove_sql, &[&topic, &member, &instance], Some(topic))
                .await?;
            first::<bool>(&rows)
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
            let members: Vec<&str> = members.iter().map(|m| &**m).collect();
            let rows = self
                .query(
                    &self.refresh_sql,
                    &[&topic, &members, &instance, &ttl_ms(ttl)],
                    None,
                )
                .await?;
            Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
        })
    }

    fn members<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let rows = self.query(&self.members_sql, &[&topic], None).await?;
            Ok(rows.iter().filter_map(|r| r.try_get(0).ok()).collect())
        })
    }

    fn reap<'a>(&'a self, topic: &'a str) -> BoxFuture<'a, Result<Vec<String>, HubError>> {
        Box::pin(async move {
            let rows = self.query(&self.reap_sql, &[&topic], None).await?;
            // Now and then, rows of topics no live instance reaps (bounded per call).
            if rand::random::<u8>() < 8 {
                self.query(&self.cleanup_sql, &[], None).await?;
            }
            let mut members: Vec<String> = rows
                .iter()
                .filter(|r| r.try_get::<_, bool>(1).unwrap_or(false))
                .filter_map(|r| r.try_get(0).ok())
                .collect();
            members.sort();
            members.dedup();
            Ok(members)
        })
    }

    fn announce<'a>(
        &'a self,
        topic: &'a str,
        json: Bytes,
    ) -> BoxFuture<'a, Result<String, HubError>> {
        Box::pin(async move { self.inner.publish(topic, json).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_parse_and_long_topics_are_hashed() {
        let (pos, key) = parse_note("beef 7 user:alice b").unwrap();
        assert_eq!(
            pos,
            Position {
                epoch: 0xbeef,
                offset: 7
            }
        );
        assert_eq!(key, "user:alice b");
        assert!(parse_note("beef x t").is_none());
        assert!(parse_note("beef 7").is_none());
        let long = "x".repeat(5_000);
        assert_eq!(note_key(&long).len(), 17);
        assert_eq!(note_key(&long), note_key(&long.clone()));
        assert_eq!(note_key("short"), "short");
    }

    #[test]
    fn prefixes_are_plain_identifiers() {
        assert!(Names::new("pikku_hub").is_ok());
        assert!(Names::new("app.pikku_hub").is_ok());
        assert_eq!(
            Names::new("app.h1").unwrap().topics,
            "\"app\".\"h1_topics\""
        );
        for bad in [
            "",
            "a b",
            "a\"b",
            "a.b.c",
            ".x",
            "x.",
            "a;drop",
            &"x".repeat(41),
        ] {
            assert!(Names::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn open_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(
            PgHub::open(
                "postgres://postgres@127.0.0.1/test",
                "app",
                HubConfig::default()
            )
            .is_err()
        );
    }
}
