//! The demo's routes, as the README promises them.

use std::time::Duration;

use crate::demo;
use crate::support::*;
use serde_json::Value;

#[tokio::test]
async fn stream_updates_counts_from_one_at_the_interval() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let started = std::time::Instant::now();
    let mut ev = events(get(&srv.url("/stream/updates?interval_ms=50")).await);
    for expected in 1..=4u64 {
        let e = json(&next_event(&mut ev, 5).await.unwrap());
        assert_eq!(e["data"]["count"], expected);
        assert_eq!(e["data"]["message"], "Live update");
        let ts = e["timestamp"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(ts).expect("RFC 3339 timestamp");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "paced by interval_ms"
    );
}

#[tokio::test]
async fn stream_with_errors_reports_failures_as_items() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let mut ev = events(get(&srv.url("/stream/with-errors?interval_ms=10")).await);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let e = json(&next_event(&mut ev, 5).await.unwrap());
        if e["status"] == "success" {
            assert!(e["data"]["value"].is_u64());
        } else {
            assert!(e["error"].as_str().unwrap().contains("timed out"));
        }
        statuses.push(e["status"].as_str().unwrap().to_string());
    }
    assert_eq!(
        statuses,
        ["success", "success", "error", "success", "success", "error"]
    );
}

#[tokio::test]
async fn data_negotiates_json_or_stream() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let res = get(&srv.url("/data")).await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["message"], "Static snapshot");
    let res = get(&srv.url("/data?realtime=false")).await;
    assert_eq!(res.headers()["content-type"], "application/json");
    let res = get(&srv.url("/data?realtime=true&interval_ms=20")).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut ev = events(res);
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap())["data"]["count"],
        1
    );
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap())["data"]["count"],
        2
    );
    let res = get(&srv.url("/data?realtime=maybe")).await;
    assert_eq!(res.status(), 422);
}

#[tokio::test]
async fn bad_interval_is_a_422_not_a_500() {
    let srv = TestServer::pikku(demo::app().await.unwrap()).await;
    let res = get(&srv.url("/stream/updates?interval_ms=soon")).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["field"], "interval_ms");
}

/// The demo binary itself: `PIKKU_ADDR` and `PIKKU_SSE_HEARTBEAT_MS` from the environment,
/// and a graceful exit on SIGTERM.
#[tokio::test]
async fn demo_binary_reads_addr_and_heartbeat_from_env() {
    let mut demo = DemoProcess::start(&[("PIKKU_SSE_HEARTBEAT_MS", "100")]).await;
    let mut res = get(&demo.url("/stream/updates?interval_ms=100000")).await;
    let raw = read_until(&mut res, 5, |s| s.matches(": ping").count() >= 2).await;
    assert!(
        raw.matches(": ping").count() >= 2,
        "heartbeat every 100 ms: {raw:?}"
    );
    demo.terminate();
    let rest = read_until(&mut res, 5, |s| s.contains("event: shutdown")).await;
    assert!(rest.contains("event: shutdown"), "{rest:?}");
    let status = tokio::time::timeout(Duration::from_secs(10), demo.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}
