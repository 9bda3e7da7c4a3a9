//! The demo app: the seed's SSE examples, served on `PIKKU_ADDR` (default 127.0.0.1:3000).
//!
//! ```sh
//! cargo run --example demo
//! curl -N http://127.0.0.1:3000/stream/updates?interval_ms=500
//! ```

use std::time::Duration;

use pikku::prelude::*;

/// The app's services (Pikku's singleton services): shared by every function.
#[derive(Default)]
pub struct Services {
    /// A simulated flaky upstream for `/stream/with-errors`.
    pub flaky: FlakySource,
}

/// A deterministic stand-in for `fetchDataFromExternalAPI()`: every third call fails.
#[derive(Default)]
pub struct FlakySource;

impl FlakySource {
    /// Fetches reading number `call`; calls 3, 6, 9, ... fail.
    pub async fn fetch(&self, call: u64) -> Result<Reading, String> {
        if call.is_multiple_of(3) {
            Err(format!("upstream timed out (call {call})"))
        } else {
            Ok(Reading {
                call,
                value: call * 10,
            })
        }
    }
}

/// One update of `/stream/updates`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Update {
    /// When the update was produced (RFC 3339).
    pub timestamp: String,
    /// The payload.
    pub data: UpdateData,
}

/// The payload of an [`Update`].
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UpdateData {
    /// Counts from 1.
    pub count: u64,
    /// What happened.
    pub message: String,
}

/// Query of `/stream/updates`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdatesQuery {
    /// Milliseconds between updates (default 1000).
    pub interval_ms: Option<u64>,
}

/// A reading of the flaky source.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Reading {
    /// Which call produced it.
    pub call: u64,
    /// The value read.
    pub value: u64,
}

/// One item of `/stream/with-errors`: the seed's `{ status, data?, error? }`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum StatusUpdate {
    /// The source answered.
    Success {
        /// The reading.
        data: Reading,
    },
    /// The source failed; the stream goes on.
    Error {
        /// What went wrong.
        error: String,
    },
}

/// Query of `/data`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DataQuery {
    /// Stream live updates instead of answering once.
    #[serde(default)]
    pub realtime: bool,
    /// Milliseconds between streamed updates (default 1000).
    pub interval_ms: Option<u64>,
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn interval(ms: Option<u64>) -> Duration {
    Duration::from_millis(ms.unwrap_or(1000).max(1))
}

fn live_updates(every: Duration) -> impl Stream<Item = Update> {
    stream! {
        let mut count = 0;
        loop {
            count += 1;
            yield Update {
                timestamp: now(),
                data: UpdateData { count, message: "Live update".into() },
            };
            tokio::time::sleep(every).await;
        }
    }
}

/// Stream live updates
///
/// One update per `interval_ms` (default 1000), counting from 1.
#[pikku_func(route = "/stream/updates", method = "get", response = "stream", auth = false, tags = ["streaming"])]
pub async fn stream_updates(
    _services: &Services,
    input: UpdatesQuery,
) -> impl Stream<Item = Update> {
    live_updates(interval(input.interval_ms))
}

/// Stream readings of a flaky source
///
/// Failures of the source are reported as `{"status":"error"}` items and the stream goes on.
#[pikku_func(route = "/stream/with-errors", response = "stream", auth = false, tags = ["streaming"])]
pub async fn stream_with_errors(
    services: &Services,
    input: UpdatesQuery,
) -> impl Stream<Item = StatusUpdate> {
    let every = interval(input.interval_ms);
    stream! {
        for call in 1.. {
            match services.flaky.fetch(call).await {
                Ok(data) => yield StatusUpdate::Success { data },
                Err(error) => {
                    tracing::warn!(%error, "stream error");
                    yield StatusUpdate::Error { error };
                }
            }
            tokio::time::sleep(every).await;
        }
    }
}

/// Data, live or not
///
/// Progressive enhancement: `?realtime=true` streams updates, otherwise one JSON snapshot.
#[pikku_func(route = "/data", auth = false, tags = ["streaming"])]
pub async fn get_data(
    _services: &Services,
    input: DataQuery,
) -> Reply<Update, impl Stream<Item = Update>> {
    if input.realtime {
        Reply::Stream(live_updates(interval(input.interval_ms)))
    } else {
        Reply::Json(Update {
            timestamp: now(),
            data: UpdateData {
                count: 0,
                message: "Static snapshot".into(),
            },
        })
    }
}

/// The demo's Pikku app on the embedded defaults.
pub fn app() -> Pikku<Services> {
    Pikku::new(Services::default())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = std::env::var("PIKKU_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let pikku = app();
    let shutdown = pikku.shutdown_handle();
    let router = pikku.router();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("demo listening on http://{}", listener.local_addr()?);
    pikku::serve(listener, router, shutdown).await
}
