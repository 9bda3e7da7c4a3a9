//! The reference server: the bench app's five routes written by hand with axum's own `Sse`
//! and `tokio::sync::broadcast`, the way an axum user would write them without Pikku.
//!
//! | route | what |
//! |---|---|
//! | `GET /bench/ticks?n=N` | SSE: `N` events `{"seq": i, "ts_us": server unix micros}`, then the end |
//! | `GET /bench/idle` | SSE: nothing but keep-alive comments |
//! | `GET /bench/subscribe?topic=T` | SSE: every event published to `T` (with `id:`) |
//! | `POST /bench/publish?topic=T&n=N` | publishes `N` events to `T`; `{"published": N}` |
//! | `POST /bench/publish-each?prefix=P&count=C` | publishes one event `{"seq": i, ..}` to each of the topics `P0` .. `P{C-1}`; `{"published": C}` |
//!
//! Environment, as the bench app: `PIKKU_ADDR` (default `127.0.0.1:3200`),
//! `PIKKU_SSE_HEARTBEAT_MS` (keep-alive interval, default 15 000; `0` for none) and
//! `PIKKU_EVENT_HUB` (`redis://host:port` relays publishes through Redis pub/sub; anything
//! else, or unset, is in-process). Per-subscriber queues hold 1,024 events, as Pikku's hub.
//! Topics are a map of broadcast channels, one per topic, created on first use.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use loadgen::now_us;

/// Per-subscriber queue length (Pikku's hub default).
const QUEUE: usize = 1024;
/// Redis channel prefix of the relay.
const CHANNEL_PREFIX: &str = "pikku-bench-baseline:";

#[derive(Serialize)]
struct Tick {
    seq: u64,
    ts_us: u64,
}

struct Topic {
    next_id: AtomicU64,
    tx: broadcast::Sender<(u64, Arc<str>)>,
}

struct AppState {
    topics: Mutex<HashMap<String, Arc<Topic>>>,
    heartbeat: Option<Duration>,
    /// Set when `PIKKU_EVENT_HUB` names Redis: publishes go through it.
    redis: OnceLock<redis::aio::MultiplexedConnection>,
}

impl AppState {
    fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        let mut topics = self.topics.lock().ok()?;
        Some(
            topics
                .entry(name.to_owned())
                .or_insert_with(|| {
                    Arc::new(Topic {
                        next_id: AtomicU64::new(1),
                        tx: broadcast::channel(QUEUE).0,
                    })
                })
                .clone(),
        )
    }

    /// Delivers one serialized event to the local subscribers of `topic`.
    fn deliver(&self, topic: &str, json: Arc<str>) {
        if let Some(t) = self.topic(topic) {
            let id = t.next_id.fetch_add(1, Ordering::Relaxed);
            let _ = t.tx.send((id, json));
        }
    }

    fn sse<S>(&self, stream: S) -> Response
    where
        S: Stream<Item = Result<Event, Infallible>> + Send + 'static,
    {
        let sse = Sse::new(stream);
        match self.heartbeat {
            Some(every) => sse
                .keep_alive(KeepAlive::new().interval(every).text("ping"))
                .into_response(),
            None => sse.into_response(),
        }
    }
}

#[derive(Deserialize)]
struct TicksQuery {
    n: u64,
}

#[derive(Deserialize)]
struct TopicQuery {
    topic: String,
}

#[derive(Deserialize)]
struct PublishQuery {
    topic: String,
    n: u64,
}

type Shared = Arc<AppState>;

async fn ticks(State(st): State<Shared>, Query(q): Query<TicksQuery>) -> Response {
    let events = futures_util::stream::iter(0..q.n).map(|seq| {
        let tick = Tick {
            seq,
            ts_us: now_us(),
        };
        Ok(Event::default()
            .json_data(&tick)
            .unwrap_or_else(|_| Event::default().event("error").data("encode")))
    });
    st.sse(events)
}

async fn idle(State(st): State<Shared>) -> Response {
    st.sse(futures_util::stream::pending())
}

async fn subscribe(
    State(st): State<Shared>,
    Query(q): Query<TopicQuery>,
) -> Result<Response, StatusCode> {
    let topic = st
        .topic(&q.topic)
        .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
    let mut rx = topic.tx.subscribe();
    let events = async_stream::stream! {
        loop {
            match rx.recv().await {
                Ok((id, json)) => yield Ok(Event::default().id(id.to_string()).data(&*json)),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    yield Ok(Event::default().event("error").data(r#"{"error":"lagged"}"#));
                    break;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    };
    Ok(st.sse(events))
}

#[derive(Serialize)]
struct Published {
    published: u64,
}

#[derive(Deserialize)]
struct PublishEachQuery {
    prefix: String,
    count: u64,
}

type Failure = (StatusCode, String);

impl AppState {
    /// Publishes tick `seq`, stamped now, to `topic`: through Redis when the relay is on,
    /// else straight to the local subscribers.
    async fn publish_tick(
        &self,
        redis: &mut Option<redis::aio::MultiplexedConnection>,
        topic: &str,
        seq: u64,
    ) -> Result<(), Failure> {
        let internal = |e: String| (StatusCode::INTERNAL_SERVER_ERROR, e);
        let json = serde_json::to_string(&Tick {
            seq,
            ts_us: now_us(),
        })
        .map_err(|e| internal(e.to_string()))?;
        match redis.as_mut() {
            Some(conn) => {
                redis::cmd("PUBLISH")
                    .arg(format!("{CHANNEL_PREFIX}{topic}"))
                    .arg(json)
                    .query_async::<i64>(conn)
                    .await
                    .map_err(|e| internal(e.to_string()))?;
            }
            None => self.deliver(topic, json.into()),
        }
        Ok(())
    }
}

async fn publish(
    State(st): State<Shared>,
    Query(q): Query<PublishQuery>,
) -> Result<Json<Published>, Failure> {
    let mut redis = st.redis.get().cloned();
    for seq in 0..q.n {
        st.publish_tick(&mut redis, &q.topic, seq).await?;
    }
    Ok(Json(Published { published: q.n }))
}

async fn publish_each(
    State(st): State<Shared>,
    Query(q): Query<PublishEachQuery>,
) -> Result<Json<Published>, Failure> {
    let mut redis = st.redis.get().cloned();
    for seq in 0..q.count {
        st.publish_tick(&mut redis, &format!("{}{seq}", q.prefix), seq)
            .await?;
    }
    Ok(Json(Published { published: q.count }))
}

/// Connects to Redis and relays every message of the bench channels to local subscribers.
async fn redis_relay(
    url: &str,
    state: Arc<AppState>,
) -> Result<redis::aio::MultiplexedConnection, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let conn = client.get_multiplexed_async_connection().await?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("{CHANNEL_PREFIX}*")).await?;
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let channel = msg.get_channel_name();
            let topic = channel.strip_prefix(CHANNEL_PREFIX).unwrap_or(channel);
            match std::str::from_utf8(msg.get_payload_bytes()) {
                Ok(json) => state.deliver(topic, json.into()),
                Err(_) => eprintln!("baseline: non-UTF-8 message on {channel}"),
            }
        }
        eprintln!("baseline: redis relay ended");
    });
    Ok(conn)
}

fn heartbeat_from_env() -> Option<Duration> {
    match std::env::var("PIKKU_SSE_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => Some(Duration::from_secs(15)),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("baseline: could not raise the open-files limit: {e}");
    }
    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3200".into());
    let hub = std::env::var("PIKKU_EVENT_HUB").unwrap_or_default();
    let state = Arc::new(AppState {
        topics: Mutex::new(HashMap::new()),
        heartbeat: heartbeat_from_env(),
        redis: OnceLock::new(),
    });
    if hub.starts_with("redis://") {
        match redis_relay(&hub, state.clone()).await {
            Ok(conn) => {
                let _ = state.redis.set(conn);
            }
            Err(e) => {
                eprintln!("baseline: event hub unavailable: {e}");
                return std::process::ExitCode::from(3);
            }
        }
    }
    let app = Router::new()
        .route("/bench/ticks", get(ticks))
        .route("/bench/idle", get(idle))
        .route("/bench/subscribe", get(subscribe))
        .route("/bench/publish", post(publish))
        .route("/bench/publish-each", post(publish_each))
        .with_state(state);
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("baseline: cannot listen on {addr}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
