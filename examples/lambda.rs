//! A Pikku app served as an AWS Lambda function with streamed responses (feature `lambda`).
//!
//! Locally (the README's "AWS Lambda" has the commands): `cargo lambda watch
//! --only-lambda-apis`, this binary started with the environment it prints, then
//! `curl -N 'http://127.0.0.1:9000/lambda-url/_/stream/ticks?count=3&interval_ms=500'`.
//! Deployed: `cargo lambda build --release --example lambda`, `cargo lambda deploy`, and a
//! function URL with invoke mode `RESPONSE_STREAM` (see the README's "AWS Lambda").

use std::time::{Duration, Instant};

use pikku::prelude::*;
use tracing_subscriber::EnvFilter;

/// The function's services (none needed here).
pub struct Services;

/// How many ticks, and how far apart.
#[derive(Deserialize, JsonSchema)]
pub struct TickInput {
    /// Number of ticks (at most 100).
    count: u32,
    /// Milliseconds between ticks (at most 10 000).
    interval_ms: u64,
}

/// One tick.
#[derive(Serialize, JsonSchema)]
pub struct Tick {
    n: u32,
    /// Milliseconds since the generator started.
    elapsed_ms: u64,
}

/// Ticks `count` times, `interval_ms` apart: each event leaves as soon as it is yielded.
#[pikku_func(route = "/stream/ticks", response = "stream", auth = false)]
pub async fn ticks(_services: &Services, input: TickInput) -> impl Stream<Item = Tick> {
    let count = input.count.min(100);
    let interval = Duration::from_millis(input.interval_ms.min(10_000));
    stream! {
        let start = Instant::now();
        for n in 1..=count {
            if n > 1 {
                tokio::time::sleep(interval).await;
            }
            let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            yield Tick { n, elapsed_ms };
        }
    }
}

/// A greeting's input.
#[derive(Deserialize, JsonSchema)]
pub struct HelloInput {
    name: String,
}

/// A greeting.
#[derive(Serialize, JsonSchema)]
pub struct Hello {
    message: String,
}

/// A JSON route: says hello.
#[pikku_func(route = "/hello", method = "post", auth = false)]
pub async fn hello(_services: &Services, input: HelloInput) -> Hello {
    Hello {
        message: format!("hello, {}", input.name),
    }
}

#[tokio::main]
async fn main() -> Result<(), pikku::lambda::LambdaError> {
    // CloudWatch keeps stdout/stderr; no ANSI colours there.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(false)
        .init();
    pikku::lambda::run(Pikku::new(Services)).await
}
