//! The typed clients (issue #6): the Rust client (`f::call`, feature `client`) against live
//! servers, and the generated TypeScript client: fresh, type-checked with `tsc --strict`, and
//! run by `node --test` against a live demo.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use futures_util::StreamExt;
use pikku::client::{CallOptions, Client, ClientError, ClientStream};

use crate::demo;
use crate::hub_suite::{REDIS_URL, unique_prefix};
use crate::support::*;

const SECRET: &str = "secret-of-the-client-tests-0123456789";

/// The next item, failing the test after `secs` seconds.
async fn next<T>(s: &mut ClientStream<T>, secs: u64) -> Result<T, ClientError> {
    tokio::time::timeout(Duration::from_secs(secs), s.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
}

async fn demo_server() -> (TestServer, pikku::Metrics, Client) {
    let app = demo::app_with(demo::Services::from_env().await.unwrap());
    let metrics = app.metrics();
    let srv = TestServer::pikku(app).await;
    let client = Client::new(srv.url("")).unwrap();
    (srv, metrics, client)
}

async fn logged_in(client: &Client, user: &str) -> Client {
    let out = demo::login::call(
        client,
        demo::LoginInput {
            user_id: user.into(),
        },
    )
    .await
    .unwrap();
    client.clone().bearer(&out.token).unwrap()
}

fn query(ms: u64) -> demo::UpdatesQuery {
    demo::UpdatesQuery {
        interval_ms: Some(ms),
    }
}

#[tokio::test]
async fn rust_client_reads_updates_and_dropping_the_stream_closes_it() {
    let (_srv, metrics, client) = demo_server().await;
    let mut updates = demo::stream_updates::call(&client, query(20));
    let mut counts = Vec::new();
    for _ in 0..3 {
        let u = next(&mut updates, 5).await.unwrap();
        assert_eq!(u.data.message, "Live update");
        counts.push(u.data.count);
    }
    assert_eq!(counts, [1, 2, 3]);
    assert_eq!(metrics.snapshot().streams_open, 1);
    drop(updates);
    assert!(
        eventually(Duration::from_secs(2), || metrics.snapshot().streams_open
            == 0)
        .await,
        "dropping the stream closed the connection"
    );
}

#[tokio::test]
async fn rust_client_reads_every_other_demo_stream_and_json_call() {
    let (_srv, _metrics, client) = demo_server().await;

    // /stream/with-errors: the seed's `{"status": "error"}` items are items.
    let mut s = demo::stream_with_errors::call(&client, query(10));
    let mut summary = Vec::new();
    for _ in 0..4 {
        summary.push(match next(&mut s, 5).await.unwrap() {
            demo::StatusUpdate::Success { data } => format!("ok {}:{}", data.call, data.value),
            demo::StatusUpdate::Error { error } => format!("error {error}"),
        });
    }
    assert_eq!(
        summary,
        [
            "ok 1:10",
            "ok 2:20",
            "error upstream timed out (call 3)",
            "ok 4:40"
        ]
    );

    // /data: `call` is the JSON answer, `stream` the stream (Reply).
    let snapshot = demo::get_data::call(
        &client,
        demo::DataQuery {
            realtime: false,
            interval_ms: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(snapshot.data.message, "Static snapshot");
    let mut live = demo::get_data::stream(
        &client,
        demo::DataQuery {
            realtime: true,
            interval_ms: Some(10),
        },
    );
    assert_eq!(next(&mut live, 5).await.unwrap().data.count, 1);
    assert_eq!(next(&mut live, 5).await.unwrap().data.count, 2);
    // The JSON method refuses a stream answer instead of hanging on it.
    let err = demo::get_data::call(
        &client,
        demo::DataQuery {
            realtime: true,
            interval_ms: None,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ClientError::Unexpected(_)), "{err}");
}

#[tokio::test]
async fn rust_client_errors_carry_the_server_body() {
    let (_srv, _metrics, client) = demo_server().await;
    let path = || demo::UserPath {
        user_id: "carol".into(),
    };
    let mut s = demo::stream_user_notifications::call(&client, path());
    match next(&mut s, 5).await {
        Err(ClientError::Http { status, body }) => {
            assert_eq!(
                (status.as_u16(), body.error.as_str()),
                (401, "unauthorized")
            )
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    assert!(s.next().await.is_none(), "an HTTP error ends the stream");

    let dave = logged_in(&client, "dave").await;
    let mut s = demo::stream_user_notifications::call(&dave, path());
    assert!(matches!(
        next(&mut s, 5).await,
        Err(ClientError::Http { status, .. }) if status == 403
    ));

    let err = demo::login::call(
        &client,
        demo::LoginInput {
            user_id: "../bob".into(),
        },
    )
    .await
    .unwrap_err();
    match err {
        ClientError::Http { status, body } => {
            assert_eq!(status, 422);
            assert_eq!(body.field.as_deref(), Some("userId"));
        }
        other => panic!("expected a 422, got {other:?}"),
    }
}

#[tokio::test]
async fn rust_client_resumes_notifications_by_last_event_id() {
    let (_srv, _metrics, client) = demo_server().await;
    let erin = logged_in(&client, "erin").await;
    let post = |message: &str| {
        demo::post_notification::call(
            &erin,
            demo::NewNotification {
                user_id: "erin".into(),
                kind: "info".into(),
                message: message.into(),
            },
        )
    };
    let path = || demo::UserPath {
        user_id: "erin".into(),
    };
    let mut s = demo::stream_user_notifications::call(&erin, path());
    // The first poll connects; the subscription is in place before the headers are sent.
    let first = tokio::spawn(async move {
        let n = next(&mut s, 5).await.unwrap();
        (n, s)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id1 = post("n1").await.unwrap().id;
    let (n1, s) = first.await.unwrap();
    assert_eq!(n1.message, "n1");
    assert_eq!(s.last_event_id().as_deref(), Some(id1.as_str()));
    drop(s);

    post("n2").await.unwrap();
    post("n3").await.unwrap();
    let mut resumed = demo::stream_user_notifications::call_with(
        &erin,
        path(),
        CallOptions::default().last_event_id(id1),
    );
    assert_eq!(next(&mut resumed, 5).await.unwrap().message, "n2");
    assert_eq!(next(&mut resumed, 5).await.unwrap().message, "n3");
}

#[tokio::test]
async fn rust_client_reconnects_a_silent_stream_after_the_heartbeat_timeout() {
    let (_srv, metrics, client) = demo_server().await;
    let client = client
        .heartbeat_timeout(Some(Duration::from_millis(300)))
        .retry(Duration::ZERO);
    // One update, then a minute of silence (the server's heartbeat is 15 s): the client gives
    // up on the connection after 300 ms and reconnects, which restarts the count.
    let mut s = demo::stream_updates::call(&client, query(60_000));
    assert_eq!(next(&mut s, 5).await.unwrap().data.count, 1);
    let t = Instant::now();
    assert_eq!(next(&mut s, 5).await.unwrap().data.count, 1);
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(metrics.snapshot().streams_opened, 2);
}

/// A scripted SSE server: the nth request gets `scripts[n]` (the last one repeats); records
/// when each came and its `Last-Event-ID`.
type Seen = Arc<Mutex<Vec<(Instant, Option<String>)>>>;

async fn scripted(scripts: Vec<String>) -> (TestServer, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let handler = move |headers: http::HeaderMap| {
        let seen = s.clone();
        let scripts = scripts.clone();
        async move {
            let n = {
                let mut seen = seen.lock().unwrap();
                let id = headers
                    .get("last-event-id")
                    .map(|v| v.to_str().unwrap().to_owned());
                seen.push((Instant::now(), id));
                seen.len() - 1
            };
            let script = &scripts[n.min(scripts.len() - 1)];
            // `…` at the end: keep the connection open after the script.
            let (body, open) = match script.strip_suffix('…') {
                Some(b) => (b.to_owned(), true),
                None => (script.clone(), false),
            };
            let head =
                futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(body))]);
            let tail = futures_util::stream::iter(open.then_some(()))
                .then(|_| futures_util::future::pending::<Result<bytes::Bytes, std::io::Error>>());
            (
                [(http::header::CONTENT_TYPE, "text/event-stream")],
                axum::body::Body::from_stream(head.chain(tail)),
            )
                .into_response()
        }
    };
    let router = axum::Router::new().route("/stream/updates", axum::routing::get(handler));
    (
        TestServer::start(router, pikku::Shutdown::default()).await,
        seen,
    )
}

const U1: &str = r#"{"timestamp":"t","data":{"count":1,"message":"m"}}"#;

#[tokio::test]
async fn rust_client_honours_retry_sends_last_event_id_and_surfaces_error_and_gap_events() {
    let (srv, seen) = scripted(vec![
        // The runtime's `SseConfig::retry` prelude is a block with `retry:` only.
        format!("retry: 2500\n\nid: 1\ndata: {U1}\n\n"),
        "event: error\ndata: {\"error\":\"internal\",\"message\":\"boom\"}\n\n\
         event: gap\ndata: {\"reason\":\"expired\",\"missed\":4}\n\n\
         event: shutdown\nretry: 0\ndata: {\"reason\":\"bye\"}\n\n"
            .to_owned(),
        format!("id: 2\ndata: {U1}\n\n…"),
    ])
    .await;
    // Delays far apart (default 10 s, `retry: 2500`, then `retry: 0`) so a loaded box cannot
    // blur which one the client used.
    let client = Client::new(srv.url(""))
        .unwrap()
        .retry(Duration::from_secs(10));
    let mut s = demo::stream_updates::call(&client, query(1));
    assert_eq!(next(&mut s, 15).await.unwrap().data.count, 1);
    match next(&mut s, 15).await {
        Err(ClientError::Stream(body)) => assert_eq!(body.message, "boom"),
        other => panic!("expected the error event, got {other:?}"),
    }
    match next(&mut s, 5).await {
        Err(ClientError::Gap(gap)) => {
            assert_eq!((gap.reason.as_str(), gap.missed), ("expired", Some(4)))
        }
        other => panic!("expected the gap event, got {other:?}"),
    }
    assert_eq!(
        next(&mut s, 5).await.unwrap().data.count,
        1,
        "after shutdown: reconnected"
    );
    assert_eq!(s.last_event_id().as_deref(), Some("2"));
    let seen = seen.lock().unwrap().clone();
    let ids: Vec<_> = seen.iter().map(|(_, id)| id.as_deref()).collect();
    assert_eq!(ids, [None, Some("1"), Some("1")]);
    let first_gap = seen[1].0 - seen[0].0;
    assert!(
        first_gap >= Duration::from_millis(2400) && first_gap < Duration::from_millis(8000),
        "retry: 2500 honoured (not the client's 10 s): {first_gap:?}"
    );
    let second_gap = seen[2].0 - seen[1].0;
    assert!(
        second_gap < Duration::from_millis(1500),
        "retry: 0 honoured (not the 2.5 s before it): {second_gap:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_client_reconnects_after_a_server_restart_and_loses_nothing() {
    let prefix = unique_prefix("clients-rust");
    let env = [
        ("PIKKU_EVENT_HUB", REDIS_URL),
        ("PIKKU_EVENT_HUB_PREFIX", prefix.as_str()),
        ("PIKKU_SESSION_SECRET", SECRET),
    ];
    let stderr = || std::process::Stdio::inherit();
    let publisher = DemoProcess::start(&env).await; // publishes while the other restarts
    let restarted = DemoProcess::start(&env).await;
    let port = restarted.port();
    let anonymous = Client::new(&publisher.base).unwrap();
    let via_publisher = logged_in(&anonymous, "frank").await;
    // The shared secret makes a token of one instance valid on the other.
    let token = demo::login::call(
        &anonymous,
        demo::LoginInput {
            user_id: "frank".into(),
        },
    )
    .await
    .unwrap()
    .token;
    let subscriber = Client::new(&restarted.base)
        .unwrap()
        .bearer(&token)
        .unwrap()
        .max_retry(Duration::from_millis(300));
    let post = |message: &str| {
        demo::post_notification::call(
            &via_publisher,
            demo::NewNotification {
                user_id: "frank".into(),
                kind: "info".into(),
                message: message.into(),
            },
        )
    };
    let mut s = demo::stream_user_notifications::call(
        &subscriber,
        demo::UserPath {
            user_id: "frank".into(),
        },
    );
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 7 {
            match tokio::time::timeout(Duration::from_secs(20), s.next()).await {
                Ok(Some(Ok(n))) => got.push(n.message),
                other => panic!("after {got:?}: {other:?}"),
            }
        }
        (got, s)
    });
    let ready = |base: String| async move {
        get(&format!("{base}/health/ready"))
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap()["subscriptions"]
            .as_u64()
    };
    let base = restarted.base.clone();
    assert!(
        wait_for(|| ready(base.clone()), Some(1)).await,
        "the stream is subscribed"
    );
    for m in ["r1", "r2", "r3"] {
        post(m).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    restarted.stop().await; // `event: shutdown`, then refused connections
    for m in ["r4", "r5", "r6"] {
        post(m).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1500)).await; // some reconnections fail
    let _restarted = DemoProcess::start_at(port, &env, stderr()).await;
    tokio::time::sleep(Duration::from_millis(1000)).await; // the client is back...
    post("r7").await.unwrap(); // ...and gets this one live
    let (got, _s) = reader.await.unwrap();
    assert_eq!(got, ["r1", "r2", "r3", "r4", "r5", "r6", "r7"]);
}

/// Polls `f` every 20 ms for up to 5 s until it yields `want`.
async fn wait_for<F, Fut, T>(mut f: F, want: T) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: PartialEq,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if f().await == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// The TypeScript client

fn client_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/client")
}

const REGENERATE: &str =
    "cargo run --example demo -- --emit-ts-client examples/client/pikku-fetch.gen.ts";

#[test]
fn ts_client_is_up_to_date() {
    let out = std::env::temp_dir().join(format!("pikku-fetch-{}.gen.ts", std::process::id()));
    let status = std::process::Command::new(demo_binary())
        .arg("--emit-ts-client")
        .arg(&out)
        .env("RUST_LOG", "error")
        .status()
        .unwrap();
    assert!(status.success(), "the demo's --emit-ts-client failed");
    let fresh = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let committed =
        std::fs::read_to_string(client_dir().join("pikku-fetch.gen.ts")).unwrap_or_default();
    assert!(
        fresh == committed,
        "examples/client/pikku-fetch.gen.ts is stale: regenerate it with `{REGENERATE}` and commit it"
    );
    // Deterministic: the same app writes the same bytes.
    let again = pikku::client_ts::typescript(
        demo::app_with(demo_services()).routes(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(again, fresh);
}

fn demo_services() -> demo::Services {
    demo::Services {
        flaky: demo::FlakySource,
        hub: Arc::new(pikku::MemoryHub::default()),
        sessions: Arc::new(pikku::session::JwtSessions::new(SECRET.as_bytes())),
    }
}

/// Runs `cmd` in the client dir, failing the test with its output unless it succeeds.
fn run(what: &str, cmd: &mut std::process::Command) {
    let out = cmd
        .current_dir(client_dir())
        .output()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ts_client_type_checks_strictly_and_passes_its_node_tests_against_the_demo() {
    let tsc = client_dir().join("node_modules/.bin/tsc");
    assert!(
        tsc.exists(),
        "TypeScript is not installed at {}: run `npm ci --prefix examples/client` (.ci/run does)",
        tsc.display()
    );
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        node_ok,
        "node is missing (the TypeScript client tests run in Node.js 20+)"
    );

    let _ = std::fs::remove_dir_all(client_dir().join("dist"));
    run(
        "tsc --strict (Node)",
        std::process::Command::new(&tsc).args(["-p", "tsconfig.json"]),
    );
    run(
        "tsc --strict (browser, the seed's import)",
        std::process::Command::new(&tsc).args(["-p", "tsconfig.browser.json"]),
    );

    let prefix = unique_prefix("clients-ts");
    let env = [
        ("PIKKU_EVENT_HUB", REDIS_URL.to_owned()),
        ("PIKKU_EVENT_HUB_PREFIX", prefix),
        ("PIKKU_SESSION_SECRET", SECRET.to_owned()),
    ];
    let demo_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let demo = DemoProcess::start(&demo_env).await;
    let base = demo.base.clone();
    let bin = demo_binary();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new("node");
        cmd.args(["--test", "--test-concurrency=1", "dist/test/"])
            .current_dir(client_dir())
            .env("PIKKU_BASE_URL", base)
            .env("PIKKU_DEMO_BIN", bin);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output()
    })
    .await
    .unwrap()
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node --test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Every test ran: none skipped or todo.
    assert!(
        stdout.contains("# fail 0") && stdout.contains("# skipped 0"),
        "{stdout}"
    );
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(passed >= 15, "expected every Node test to run:\n{stdout}");
}
