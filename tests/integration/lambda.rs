//! The `lambda` example (feature `lambda`) as a Lambda function behind cargo-lambda's Runtime
//! API emulator (`cargo lambda watch`, installed by `.ci/run` into `.ci/lambda-venv`): the
//! emulator's function URL-style endpoint invokes the function, which streams its response to
//! the emulator's Runtime API, which streams it on to the client.
//!
//! The emulator runs with `--only-lambda-apis` and the test starts the example binary that
//! `cargo test` built, with the environment the emulator names (so the emulator does not
//! compile the function itself). Its concurrency is 1, as one Lambda execution environment.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::support::{demo_binary, free_port};

/// The function name the emulator serves when the function is started by hand.
const FUNCTION: &str = "_";

/// cargo-lambda's binary: `.ci/lambda-venv` (where `.ci/run` installs it), else `PATH`.
fn cargo_lambda() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/lambda-venv/bin/cargo-lambda");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("cargo-lambda"))
            .find(|p| p.exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "cargo-lambda is not installed: the Lambda tests need its Runtime API emulator \
             (`.ci/run` installs it: python3 -m venv .ci/lambda-venv && \
             .ci/lambda-venv/bin/pip install cargo-lambda==1.9.2)"
        )
    })
}

/// A client whose requests (bodies included) give up after 20 s, so a stuck emulator fails
/// the test instead of hanging it.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The emulator and the function, both killed when dropped.
struct Emulated {
    _emulator: tokio::process::Child,
    _function: tokio::process::Child,
    base: String,
}

impl Emulated {
    async fn start(envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let emulator = tokio::process::Command::new(cargo_lambda())
            .args([
                "lambda",
                "watch",
                "--only-lambda-apis",
                "-A",
                "127.0.0.1",
                "-P",
            ])
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("cargo lambda watch starts");
        let mut up = false;
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                up = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(
            up,
            "cargo lambda watch did not listen on port {port} within 5 s"
        );
        let exe = demo_binary().with_file_name("lambda");
        assert!(
            exe.exists(),
            "cargo test builds the lambda example at {}",
            exe.display()
        );
        let mut cmd = tokio::process::Command::new(exe);
        cmd.env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4096")
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let function = cmd.spawn().expect("the lambda example starts");
        Self {
            _emulator: emulator,
            _function: function,
            base: format!("http://127.0.0.1:{port}/lambda-url/{FUNCTION}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    async fn hello(&self, name: &str) -> reqwest::Response {
        let res = client()
            .post(self.url("/hello"))
            .json(&serde_json::json!({ "name": name }))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("the emulator answers /hello");
        // Observed with cargo-lambda 1.9.2: an invocation sent the moment the previous
        // response arrived was sometimes never delivered to the function (the client waited
        // 20 s for headers). Give the function time to ask for its next invocation.
        tokio::time::sleep(Duration::from_millis(300)).await;
        res
    }
}

/// The body's chunks, each with when it arrived (since `start`), until the body ends.
async fn timed_chunks(res: reqwest::Response, start: Instant) -> Vec<(Duration, String)> {
    let mut body = res.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), body.next())
        .await
        .expect("a chunk or the end within 10 s")
    {
        let chunk = chunk.expect("the body reads");
        out.push((
            start.elapsed(),
            String::from_utf8_lossy(&chunk).into_owned(),
        ));
    }
    out
}

/// When each `data:` line arrived.
fn data_times(chunks: &[(Duration, String)]) -> Vec<(Duration, String)> {
    chunks
        .iter()
        .flat_map(|(t, text)| {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .map(|d| (*t, d.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn json_routes_answer_through_the_runtime_api_emulator() {
    let lambda = Emulated::start(&[]).await;
    let res = lambda.hello("lambda").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "message": "hello, lambda" }));

    // Pikku's errors keep their status and JSON body.
    let res = client()
        .post(lambda.url("/hello"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client().get(lambda.url("/nowhere")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"].is_object() || body["error"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn a_stream_routes_first_event_arrives_before_the_generator_finishes() {
    let lambda = Emulated::start(&[]).await;
    // Warm up: the function's first invocation waits for the process to start.
    assert_eq!(lambda.hello("warm").await.status(), 200);

    let start = Instant::now();
    let res = client()
        .get(lambda.url("/stream/ticks?count=3&interval_ms=500"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = data_times(&timed_chunks(res, start).await);
    let ns: Vec<u64> = events
        .iter()
        .map(|(_, d)| {
            serde_json::from_str::<serde_json::Value>(d).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(ns, [1, 2, 3], "{events:?}");
    let first = events[0].0;
    let last = events[2].0;
    // The generator sleeps 2 × 500 ms: a buffered response would deliver all three at >= 1 s.
    assert!(
        first < Duration::from_millis(800),
        "first event at {first:?}: {events:?}"
    );
    assert!(
        last >= Duration::from_millis(1000),
        "last event at {last:?}: {events:?}"
    );
    assert!(
        last - first >= Duration::from_millis(800),
        "events arrived together, not as produced: {events:?}"
    );
}

#[tokio::test]
async fn heartbeats_flow_through_the_emulator_while_a_stream_is_idle() {
    let lambda = Emulated::start(&[("PIKKU_SSE_HEARTBEAT_MS", "200")]).await;
    assert_eq!(lambda.hello("warm").await.status(), 200);
    let start = Instant::now();
    let res = client()
        .get(lambda.url("/stream/ticks?count=2&interval_ms=1500"))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(res, start).await;
    let events = data_times(&chunks);
    assert_eq!(events.len(), 2, "{chunks:?}");
    let pings_between = chunks
        .iter()
        .filter(|(t, text)| *t > events[0].0 && *t < events[1].0 && text.contains(": ping"))
        .count();
    assert!(
        pings_between >= 3,
        "heartbeats between the events: {pings_between} in {chunks:?}"
    );
}

#[tokio::test]
async fn a_client_that_goes_away_frees_the_function_for_the_next_invocation() {
    let lambda = Emulated::start(&[]).await;
    assert_eq!(lambda.hello("warm").await.status(), 200);
    // 20 ticks 500 ms apart: the generator would run for 9.5 s.
    let res = client()
        .get(lambda.url("/stream/ticks?count=20&interval_ms=500"))
        .send()
        .await
        .unwrap();
    let mut body = res.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
    assert!(matches!(first, Ok(Some(Ok(_)))), "a first chunk: {first:?}");
    drop(body);
    // The emulator runs one invocation at a time: /hello is answered only once the stream's
    // invocation has ended, which happens when the function's next write finds the
    // emulator's response channel closed (the body, and with it the generator, is dropped).
    let start = Instant::now();
    let res = lambda.hello("next").await;
    assert_eq!(res.status(), 200);
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the next invocation waited {waited:?}: the abandoned stream kept the function busy"
    );
}
