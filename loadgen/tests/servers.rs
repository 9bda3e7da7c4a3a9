//! The comparison servers of `bench-all` serve the bench routes the way the load generator
//! expects: every event once and in order, parseable `ts_us`, fan-out to every subscriber.
//! A column whose server drifts from the routes would otherwise show up only as an odd
//! benchmark table. (The Pikku bench app itself is covered by the workspace's integration
//! tests.)
//!
//! The plain Node.js server of the idle rows (`node-plain/server.mjs`) serves only
//! `/bench/idle`: it is checked for holding idle streams with heartbeats.
//!
//! The Node server needs `npm ci --prefix loadgen/node-pikku` (`.ci/run` does it).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use loadgen::report::Report;
use loadgen::scenario::{self, Target};
use tokio::process::{Child, Command};

struct Server {
    _child: Child,
    addr: SocketAddr,
}

async fn start(cmd: Command) -> Server {
    start_with_heartbeat(cmd, 15_000).await
}

async fn start_with_heartbeat(mut cmd: Command, heartbeat_ms: u64) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let child = cmd
        .env("PIKKU_ADDR", addr.to_string())
        .env("PIKKU_SSE_HEARTBEAT_MS", heartbeat_ms.to_string())
        .env_remove("PIKKU_EVENT_HUB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the server");
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Server {
                _child: child,
                addr,
            };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{cmd:?} did not listen on {addr} within 10 s");
}

fn node_server() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node-pikku");
    assert!(
        dir.join("node_modules/@pikku/core/package.json").exists(),
        "@pikku/core is not installed: run `npm ci --prefix loadgen/node-pikku` (.ci/run does)"
    );
    dir.join("server.mjs")
}

fn assert_clean(what: &str, r: &Report, events: u64) {
    assert!(r.errors.is_empty(), "{what}: errors {:?}", r.errors);
    assert_eq!(r.events, events, "{what}: events received: {r:?}");
    assert_eq!(
        (r.lost, r.dup, r.malformed),
        (0, 0, 0),
        "{what}: lost/dup/malformed: {r:?}"
    );
    assert_eq!(r.latency.count, events, "{what}: every event had a ts_us");
}

/// Ticks on 3 connections, then fan-out to 20 subscribers; each checked event by event.
async fn serves_the_bench_routes(server: Server, name: &str) {
    let target = Target::loopback(server.addr, 2).expect("loopback target");
    let ticks = scenario::ticks(&target, 3, 2_000, Duration::from_secs(30)).await;
    assert_clean(&format!("{name} ticks"), &ticks, 6_000);
    assert_eq!(
        ticks.clean_ends, 3,
        "{name}: every tick stream ends cleanly"
    );

    let fan = scenario::fanout(
        &target,
        20,
        50,
        "servers-test",
        Duration::from_secs(30),
        Duration::from_secs(30),
    )
    .await;
    assert_clean(&format!("{name} fan-out"), &fan, 20 * 50);
    assert_eq!(fan.complete_streams, 20, "{name}: every subscriber got all");
}

#[tokio::test]
async fn axum_baseline_serves_the_bench_routes() {
    let server = start(Command::new(env!("CARGO_BIN_EXE_baseline"))).await;
    serves_the_bench_routes(server, "baseline").await;
}

/// The many-topics scenario as `bench-all` runs it against the baseline: a topic per
/// subscriber, one `POST /bench/publish-each`, and each subscriber gets exactly its own event.
#[tokio::test]
async fn axum_baseline_publishes_one_event_to_each_topic() {
    let server = start(Command::new(env!("CARGO_BIN_EXE_baseline"))).await;
    let target = Target::loopback(server.addr, 2).expect("loopback target");
    let r = scenario::topics(
        &target,
        30,
        "servers-test-each-",
        Duration::from_secs(30),
        Duration::from_secs(30),
        |ready| {
            assert_eq!((ready.opened, ready.failed), (30, 0), "opened: {ready:?}");
            std::future::ready(())
        },
    )
    .await;
    assert_clean("baseline topics", &r, 30);
    assert_eq!(r.complete_streams, 30, "every subscriber got its own event");
}

#[tokio::test]
async fn pikku_on_node_serves_the_bench_routes() {
    let mut cmd = Command::new("node");
    cmd.arg(node_server());
    let server = start(cmd).await;
    serves_the_bench_routes(server, "pikku on node").await;
}

/// The idle scenario as `bench-all` runs it: every stream opens (200, `text/event-stream`),
/// stays open and carries nothing but heartbeat comments.
#[tokio::test]
async fn plain_node_holds_idle_streams_with_heartbeats() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("node-plain");
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("server.mjs"));
    let server = start_with_heartbeat(cmd, 100).await;
    let target = Target::loopback(server.addr, 2).expect("loopback target");
    let r = scenario::idle(&target, 20, Duration::from_secs(10), |ready| {
        assert_eq!((ready.opened, ready.failed), (20, 0), "opened: {ready:?}");
        // Long enough for a few heartbeats on every stream.
        tokio::time::sleep(Duration::from_millis(550))
    })
    .await;
    assert!(r.errors.is_empty(), "errors {:?}", r.errors);
    assert_eq!((r.opened, r.failed), (20, 0), "{r:?}");
    assert_eq!((r.events, r.other_events), (0, 0), "only comments: {r:?}");
    assert!(r.comments >= 20 * 3, "heartbeats on every stream: {r:?}");

    // The other bench routes are not this server's: a ticks stream is refused, not faked.
    let ticks = scenario::ticks(&target, 1, 10, Duration::from_secs(5)).await;
    assert_eq!(ticks.opened, 0, "{ticks:?}");
    assert!(
        ticks.errors.iter().any(|e| e.contains("status 404")),
        "{:?}",
        ticks.errors
    );
}
