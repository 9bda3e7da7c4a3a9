//! The SSE handler: headers, framing, ids, heartbeats, error events, panics, cleanup, shutdown.
//!
//! Every test runs twice: with `Accept: text/event-stream`, as `EventSource` sends it (the
//! server answers such a first request of a connection itself, without hyper's connection
//! buffers), and without it (hyper serves the request). Both must behave alike.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::fixtures;
use crate::support::*;

async fn stream_headers_are_sse_and_unbuffered(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(
        app.sse(
            pikku::SseConfig::default()
                .header("x-stream-version", "7")
                .unwrap(),
        ),
    )
    .await;
    let res = via.get(&srv.url("/t/events")).await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["cache-control"], "no-cache");
    assert_eq!(h["x-accel-buffering"], "no");
    assert_eq!(h["x-stream-version"], "7", "configured extra header");
    assert!(h.get("content-length").is_none());
    // The event-stream path answers and then closes the connection; hyper keeps it.
    let closes = h.get("connection").is_some_and(|v| v == "close");
    assert_eq!(closes, matches!(via, Via::EventStreamPath), "{via:?}");
}

async fn event_fields_reach_a_spec_parser(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut ev = events(via.get(&srv.url("/t/events")).await);
    let e1 = next_event(&mut ev, 5).await.unwrap();
    assert_eq!((e1.event.as_str(), e1.id.as_str()), ("message", "1"));
    assert_eq!(json(&e1), serde_json::json!({"n": 1}));
    let e2 = next_event(&mut ev, 5).await.unwrap();
    assert_eq!((e2.event.as_str(), e2.id.as_str()), ("special", "2"));
    assert_eq!(e2.retry, Some(Duration::from_millis(2500)));
    let e3 = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(e3.id, "3");
    assert!(
        next_event(&mut ev, 5).await.is_none(),
        "stream ends when the generator does"
    );
}

async fn wire_format_is_field_colon_space_value(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut res = via.get(&srv.url("/t/events")).await;
    let raw = read_until(&mut res, 5, |s| s.matches("\n\n").count() >= 3).await;
    assert_eq!(
        raw,
        "id: 1\ndata: {\"n\":1}\n\nid: 2\nevent: special\nretry: 2500\ndata: {\"n\":2}\n\nid: 3\ndata: {\"n\":3}\n\n"
    );
}

async fn err_items_become_error_events_and_the_stream_goes_on(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut ev = events(via.get(&srv.url("/t/fallible")).await);
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap()),
        serde_json::json!({"n": 1})
    );
    let err = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(err.event, "error");
    assert_eq!(
        json(&err),
        serde_json::json!({"error": "conflict", "message": "source is busy"})
    );
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap()),
        serde_json::json!({"n": 2})
    );
}

async fn error_before_the_stream_is_an_http_error(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let res = via.get(&srv.url("/t/missing/0")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "not_found");
    assert_eq!(body["field"], "id");
    let res = via.get(&srv.url("/t/missing/5")).await;
    assert_eq!(res.headers()["content-type"], "text/event-stream");
}

async fn heartbeats_are_comments_sent_when_idle(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut res = via.get(&srv.url("/t/heartbeat")).await;
    let started = std::time::Instant::now();
    let raw = read_until(&mut res, 5, |s| s.matches(": ping\n\n").count() >= 3).await;
    assert!(raw.matches(": ping\n\n").count() >= 3, "got {raw:?}");
    assert!(
        raw.chars().all(|c| c != 'd'),
        "nothing but comments: {raw:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "paced by the interval"
    );
}

async fn heartbeat_interval_is_configurable_app_wide_and_reset_by_events(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(
        app.sse(pikku::SseConfig::default().heartbeat(Some(Duration::from_millis(120)))),
    )
    .await;
    // Events every 50 ms keep the stream busy: no heartbeat between them.
    let mut res = via.get(&srv.url("/t/guarded?every_ms=50")).await;
    let raw = read_until(&mut res, 5, |s| s.matches("data:").count() >= 10).await;
    assert!(
        !raw.contains(": ping"),
        "events reset the heartbeat: {raw:?}"
    );
    // An idle stream gets them at the app-wide interval.
    let mut res = via.get(&srv.url("/t/shutdown-aware")).await;
    let raw = read_until(&mut res, 5, |s| s.contains(": ping")).await;
    assert!(raw.contains(": ping"), "app-wide heartbeat: {raw:?}");
}

async fn retry_hint_configured_app_wide(via: Via) {
    let (app, ..) = fixtures::app();
    let srv =
        TestServer::pikku(app.sse(pikku::SseConfig::default().retry(Some(Duration::from_secs(3)))))
            .await;
    // `retry:` alone is a connection setting (a spec parser dispatches no event for it).
    let mut res = via.get(&srv.url("/t/events")).await;
    let raw = read_until(&mut res, 5, |s| s.contains("id: 1")).await;
    assert!(raw.starts_with("retry: 3000\n\nid: 1\n"), "{raw:?}");
}

async fn last_event_id_reaches_the_function(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let res = via
        .request(srv.url("/t/ctx"))
        .header("last-event-id", "41")
        .header("x-request-id", "req-abc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-abc");
    let mut ev = events(res);
    let seen = json(&next_event(&mut ev, 5).await.unwrap());
    assert_eq!(
        seen,
        serde_json::json!({"last_event_id": "41", "resume_from": 41, "request_id": "req-abc"})
    );
    // An unusable id (too long) is treated as absent, not as an error.
    let res = via
        .request(srv.url("/t/ctx"))
        .header("last-event-id", "x".repeat(10_000))
        .send()
        .await
        .unwrap();
    let seen = json(&next_event(&mut events(res), 5).await.unwrap());
    assert_eq!(seen["last_event_id"], serde_json::Value::Null);
}

async fn panic_in_generator_ends_only_that_stream(via: Via) {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut ev = events(via.get(&srv.url("/t/panic")).await);
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap()),
        serde_json::json!({"n": 1})
    );
    let err = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(err.event, "error");
    assert_eq!(json(&err)["error"], "internal");
    assert!(!err.data.contains("exploded"), "no internals leak");
    assert!(next_event(&mut ev, 5).await.is_none());
    // The server and other streams are unaffected.
    let mut ev = events(via.get(&srv.url("/t/events")).await);
    assert!(next_event(&mut ev, 5).await.is_some());
    let res = via.get(&srv.url("/t/panic-json")).await;
    assert_eq!(res.status(), 500);
    let body = res.text().await.unwrap();
    assert!(
        body.contains("\"internal\"") && !body.contains("exploded"),
        "{body}"
    );
}

async fn client_disconnect_runs_cleanup_within_a_second(via: Via) {
    let (app, cleanups, started) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut ev = events(via.get(&srv.url("/t/guarded?every_ms=200")).await);
    next_event(&mut ev, 5).await.unwrap();
    assert_eq!(started.load(Ordering::SeqCst), 1);
    assert_eq!(
        cleanups.load(Ordering::SeqCst),
        0,
        "guard alive while the client reads"
    );
    drop(ev);
    assert!(
        eventually(Duration::from_secs(1), || cleanups.load(Ordering::SeqCst)
            == 1)
        .await,
        "cleanup ran within one second of the client closing"
    );
}

async fn client_disconnect_runs_cleanup_of_an_idle_stream(via: Via) {
    let (app, cleanups, _) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut ev = events(via.get(&srv.url("/t/idle")).await);
    next_event(&mut ev, 5).await.unwrap();
    drop(ev);
    assert!(
        eventually(Duration::from_secs(1), || cleanups.load(Ordering::SeqCst)
            == 1)
        .await,
        "an idle stream (no writes to fail) is still cleaned up within one second"
    );
}

async fn shutdown_ends_streams_with_a_final_event_and_runs_cleanup(via: Via) {
    let (app, cleanups, _) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut aware = events(via.get(&srv.url("/t/shutdown-aware")).await);
    assert_eq!(next_event(&mut aware, 5).await.unwrap().data, "\"hello\"");
    let mut plain = events(via.get(&srv.url("/t/guarded?every_ms=100")).await);
    next_event(&mut plain, 5).await.unwrap();
    srv.shutdown.trigger();
    // The function that watches ctx.shutdown() says goodbye, then everyone gets `shutdown`.
    assert_eq!(next_event(&mut aware, 5).await.unwrap().data, "\"bye\"");
    let fin = next_event(&mut aware, 5).await.unwrap();
    assert_eq!(fin.event, "shutdown");
    assert!(fin.retry.is_some(), "tells the client when to reconnect");
    assert!(
        next_event(&mut aware, 5).await.is_none(),
        "clean end of body"
    );
    assert_eq!(last_event(plain, 5).await.unwrap().event, "shutdown");
    assert!(
        eventually(Duration::from_secs(1), || cleanups.load(Ordering::SeqCst)
            == 2)
        .await
    );
    srv.stop().await.unwrap();
}

async fn sse_is_never_compressed(via: Via) {
    use tower_http::compression::CompressionLayer;
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let router = app.router().layer(CompressionLayer::new());
    let srv = TestServer::start(router, shutdown).await;
    let gz = |path: &str| {
        via.request(srv.url(path))
            .header("accept-encoding", "gzip")
            .send()
    };
    let json = client()
        .post(srv.url("/t/echo/someone"))
        .header("accept-encoding", "gzip")
        .body(format!(
            r#"{{"note":"{}"}}"#,
            "long enough to be worth compressing ".repeat(4)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        json.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "the layer is active"
    );
    let mut sse = gz("/t/events").await.unwrap();
    assert!(sse.headers().get("content-encoding").is_none());
    let raw = read_until(&mut sse, 5, |s| s.contains("id: 3")).await;
    assert!(raw.starts_with("id: 1\ndata: "), "{raw:?}");
}

/// How a test's requests reach the server.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// No `Accept: text/event-stream`: hyper serves the request.
    Hyper,
    /// `Accept: text/event-stream`: the server's own HTTP/1.1 event-stream path.
    EventStreamPath,
}

impl Via {
    fn request(self, url: String) -> reqwest::RequestBuilder {
        let req = client().get(url);
        match self {
            Via::Hyper => req,
            Via::EventStreamPath => req.header("accept", "text/event-stream"),
        }
    }

    async fn get(self, url: &str) -> reqwest::Response {
        self.request(url.to_owned()).send().await.unwrap()
    }
}

/// One test per path for each test function above.
macro_rules! on_both_paths {
    ($($name:ident),* $(,)?) => {
        mod via_hyper {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Via::Hyper).await
            })*
        }
        mod via_event_stream_path {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Via::EventStreamPath).await
            })*
        }
    };
}

on_both_paths!(
    stream_headers_are_sse_and_unbuffered,
    event_fields_reach_a_spec_parser,
    wire_format_is_field_colon_space_value,
    err_items_become_error_events_and_the_stream_goes_on,
    error_before_the_stream_is_an_http_error,
    heartbeats_are_comments_sent_when_idle,
    heartbeat_interval_is_configurable_app_wide_and_reset_by_events,
    retry_hint_configured_app_wide,
    last_event_id_reaches_the_function,
    panic_in_generator_ends_only_that_stream,
    client_disconnect_runs_cleanup_within_a_second,
    client_disconnect_runs_cleanup_of_an_idle_stream,
    shutdown_ends_streams_with_a_final_event_and_runs_cleanup,
    sse_is_never_compressed,
);
