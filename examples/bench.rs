//! The benchmark app (issue #7): the routes the load generator drives, written with the DSL.
//!
//! | route | what |
//! |---|---|
//! | `GET /bench/ticks?n=N` | SSE: `N` events `{"seq": i, "ts_us": server unix micros}`, then the stream ends |
//! | `GET /bench/idle` | SSE: nothing but heartbeats (connection-scale tests) |
//! | `GET /bench/subscribe?topic=T` | SSE: every event published to `T` |
//! | `POST /bench/publish?topic=T&n=N` | publishes `N` events `{"seq": i, "ts_us": ..}` to `T`; `{"published": N}` |
//! | `POST /bench/publish-each?prefix=P&count=C` | publishes one event `{"seq": i, ..}` to each of the topics `P0` .. `P{C-1}` (many topics, one subscriber each); `{"published": C}` |
//!
//! Environment: `PIKKU_ADDR` (default `127.0.0.1:3100`), `PIKKU_SSE_HEARTBEAT_MS`,
//! `PIKKU_DIRECT_EVENT_STREAMS` (`0`: every request through hyper, see
//! `ServeConfig::direct_event_streams`), `PIKKU_REUSE_PORT` (`1`: bind with `SO_REUSEPORT`, so
//! several instances share one port; `hundred-k --one-port`),
//! `PIKKU_EVENT_HUB` (the hub backend, via [`pikku::event_hub::from_env`]) and `RUST_LOG`
//! (default `warn`: a benchmark does not log per request).
//!
//! ```sh
//! cargo run --release --example bench
//! curl -N 'http://127.0.0.1:3100/bench/ticks?n=3'
//! ```
//!
//! The reference it is measured against is `loadgen/src/bin/baseline.rs` (plain axum `Sse`);
//! `cargo run --release -p loadgen --bin bench-all -- --quick` runs both. See BENCHMARKS.md.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use pikku::event_hub::{self, HubConfig};
use pikku::prelude::*;

/// The bench app's services: only the event hub.
pub struct BenchServices {
    /// The hub `PIKKU_EVENT_HUB` selects (embedded by default).
    pub hub: Arc<dyn EventHub>,
}

/// One event of every bench stream.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub struct Tick {
    /// Position in its stream or publish batch, from 0.
    pub seq: u64,
    /// Server wall-clock time when the event was produced (ticks) or published, in
    /// microseconds since the Unix epoch.
    pub ts_us: u64,
}

/// Query of `/bench/ticks`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TicksQuery {
    /// How many events to send before the stream ends.
    pub n: u64,
}

/// Query of `/bench/subscribe`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TopicQuery {
    /// The hub topic.
    pub topic: String,
}

/// Query of `/bench/publish`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PublishQuery {
    /// The hub topic.
    pub topic: String,
    /// How many events to publish.
    pub n: u64,
}

/// Query of `/bench/publish-each`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PublishEachQuery {
    /// Topic names are this prefix followed by 0, 1, ...
    pub prefix: String,
    /// How many topics get one event each.
    pub count: u64,
}

/// Answer of `/bench/publish` and `/bench/publish-each`.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Published {
    /// How many events were published.
    pub published: u64,
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// N ticks, then the end of the stream
///
/// Each event carries its position and the server's clock when it was produced.
#[pikku_func(route = "/bench/ticks", response = "stream", auth = false, tags = ["bench"])]
pub async fn ticks(_services: &BenchServices, input: TicksQuery) -> impl Stream<Item = Tick> {
    let n = input.n;
    stream! {
        for seq in 0..n {
            yield Tick { seq, ts_us: now_us() };
        }
    }
}

/// An idle stream
///
/// Sends nothing but heartbeats: what connection-scale tests hold open.
#[pikku_func(route = "/bench/idle", response = "stream", auth = false, tags = ["bench"])]
pub async fn idle(_services: &BenchServices) -> impl Stream<Item = Tick> {
    futures_util::stream::pending()
}

/// Every event published to a topic
///
/// Subscribes to `topic` on the event hub; each event is the hub's shared, pre-encoded frame.
#[pikku_func(route = "/bench/subscribe", response = "stream", auth = false, tags = ["bench"])]
pub async fn subscribe(
    services: &BenchServices,
    input: TopicQuery,
) -> Result<impl Stream<Item = Frame<Tick>>, PikkuError> {
    let subscription = services.hub.subscribe(&input.topic).await?;
    Ok(subscription.frames())
}

/// Publish N ticks to a topic
///
/// Each tick carries its position in this batch and the time it was published.
#[pikku_func(route = "/bench/publish", method = "post", auth = false, tags = ["bench"])]
pub async fn publish(
    services: &BenchServices,
    input: PublishQuery,
) -> Result<Published, PikkuError> {
    for seq in 0..input.n {
        services
            .hub
            .publish(
                &input.topic,
                &Tick {
                    seq,
                    ts_us: now_us(),
                },
            )
            .await?;
    }
    Ok(Published { published: input.n })
}

/// Publish one tick to each of many topics
///
/// Topic `{prefix}{i}` gets `{"seq": i, ..}` for every `i` below `count`: the "one topic per
/// user" pattern, where each subscriber listens to a topic of its own.
#[pikku_func(route = "/bench/publish-each", method = "post", auth = false, tags = ["bench"])]
pub async fn publish_each(
    services: &BenchServices,
    input: PublishEachQuery,
) -> Result<Published, PikkuError> {
    for seq in 0..input.count {
        let topic = format!("{}{seq}", input.prefix);
        services
            .hub
            .publish(
                &topic,
                &Tick {
                    seq,
                    ts_us: now_us(),
                },
            )
            .await?;
    }
    Ok(Published {
        published: input.count,
    })
}

/// The listener on `addr`; with `reuse_port`, one of several processes' listeners on the
/// same port (`SO_REUSEPORT`: the kernel spreads new connections over them).
fn listen(addr: &str, reuse_port: bool) -> std::io::Result<tokio::net::TcpListener> {
    let addr: std::net::SocketAddr = addr
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    // Connection-scale runs need every descriptor the hard limit allows.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-files limit");
    }
    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3100".into());
    let hub = match event_hub::from_env(HubConfig::from_env()).await {
        Ok(hub) => hub,
        Err(e) => {
            // The harness reads this line and reports the scenario as unavailable.
            eprintln!("bench: event hub unavailable: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    let pikku = Pikku::new(BenchServices { hub });
    let shutdown = pikku.shutdown_handle();
    let router = pikku.router();
    let reuse_port = std::env::var("PIKKU_REUSE_PORT").is_ok_and(|v| v == "1");
    let listener = match listen(&addr, reuse_port) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bench: cannot listen on {addr}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    tracing::info!("bench app listening on http://{addr}");
    // `PIKKU_DIRECT_EVENT_STREAMS=0` leaves event streams to hyper, for A/B runs.
    let direct = std::env::var("PIKKU_DIRECT_EVENT_STREAMS").map_or(true, |v| v != "0");
    let cfg = pikku::ServeConfig::default().direct_event_streams(direct);
    match pikku::serve_with(listener, router, shutdown, cfg).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: server error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
