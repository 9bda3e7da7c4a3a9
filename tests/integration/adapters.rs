//! One behavioural suite for every web-framework adapter: the same `#[pikku_func]` functions
//! (the demo's and the fixtures') served through axum (`Pikku::router`) and through actix-web
//! (`Pikku::actix_config`), checked over real HTTP by the same test bodies. Each behaviour
//! runs once per adapter: `adapters::axum::<name>` and `adapters::actix::<name>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pikku::{Metrics, Pikku, Shutdown};
use serde_json::{Value, json};

use crate::demo;
use crate::fixtures;
use crate::support::*;

/// Which adapter serves the app.
#[derive(Debug, Clone, Copy)]
pub enum Adapter {
    Axum,
    Actix,
}

/// An app served on a free loopback port by one adapter.
pub struct Served {
    pub base: String,
    pub shutdown: Shutdown,
    pub metrics: Metrics,
    server: Server,
}

enum Server {
    Axum(TestServer),
    Actix(ActixServer),
}

impl Served {
    pub async fn start<S: Send + Sync + 'static>(adapter: Adapter, app: Pikku<S>) -> Self {
        let shutdown = app.shutdown_handle();
        let metrics = app.metrics();
        let server = match adapter {
            Adapter::Axum => Server::Axum(TestServer::pikku(app).await),
            Adapter::Actix => Server::Actix(ActixServer::start(app)),
        };
        let addr = match &server {
            Server::Axum(s) => s.addr,
            Server::Actix(s) => s.addr,
        };
        Self {
            base: format!("http://{addr}"),
            shutdown,
            metrics,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Triggers the app's shutdown and stops the server.
    pub async fn stop(self) {
        match self.server {
            Server::Axum(s) => s.stop().await.unwrap(),
            Server::Actix(s) => {
                self.shutdown.trigger();
                s.stop().await;
            }
        }
    }
}

/// actix-web's `HttpServer` on its own thread and actix System (actix's runtime is a
/// current-thread one per worker, apart from the test's tokio runtime).
pub struct ActixServer {
    pub addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl ActixServer {
    pub fn start<S: Send + Sync + 'static>(app: Pikku<S>) -> Self {
        let config = app.actix_config();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = actix_web::HttpServer::new(move || {
                    actix_web::App::new().configure(config.clone())
                })
                .workers(1)
                // Notice a client that went away at its EOF, not at the next write (README).
                .h1_allow_half_closed(false)
                .disable_signals()
                .shutdown_timeout(2)
                .listen(listener)?
                .run();
                let _ = tx.send(server.handle());
                server.await
            })
        });
        let handle = rx.recv().expect("the actix server starts");
        Self {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    /// Stops gracefully (open connections get `shutdown_timeout` to finish) and joins the
    /// server's thread.
    ///
    /// actix waits for every open connection, idle kept-alive ones included, until
    /// `shutdown_timeout` (2 s) has passed, so a stop takes up to about 2 s here; the guard
    /// only catches a stop that never ends. (It was 5 s, and once failed on a loaded 2-core CI
    /// box: a timing check, which belongs in a benchmark.)
    pub async fn stop(mut self) {
        tokio::time::timeout(Duration::from_secs(30), self.handle.stop(true))
            .await
            .expect("actix stops (it waits at most `shutdown_timeout` for connections)");
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join())
                .await
                .unwrap()
                .expect("the actix thread did not panic")
                .unwrap();
        }
    }
}

impl Drop for ActixServer {
    fn drop(&mut self) {
        // The stop command is sent at once; the server's thread winds down by itself.
        drop(self.handle.stop(false));
    }
}

/// Asserts what an ended stream leaves behind: its generator's cleanup ran, once, within
/// `within` (when the app counts `cleanups`), and, within 2 s, no stream open in the metrics.
async fn assert_cleaned_up(srv: &Served, cleanups: Option<&AtomicUsize>, within: Duration) {
    if let Some(cleanups) = cleanups {
        assert!(
            eventually(within, || cleanups.load(Ordering::SeqCst) == 1).await,
            "the generator's cleanup ran (ran {} times)",
            cleanups.load(Ordering::SeqCst)
        );
    }
    assert!(
        eventually(Duration::from_secs(2), || srv
            .metrics
            .snapshot()
            .streams_open
            == 0)
        .await,
        "streams still open: {}",
        srv.metrics.snapshot().streams_open
    );
}

async fn demo_app(adapter: Adapter) -> Served {
    Served::start(adapter, demo::app().await.unwrap()).await
}

async fn login(base: &str, user: &str) -> (String, String) {
    let res = client()
        .post(format!("{base}/auth/login"))
        .json(&json!({ "userId": user }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {user}");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    (body["token"].as_str().unwrap().to_string(), cookie)
}

async fn error_of(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/json",
        "errors are JSON"
    );
    (status, res.json().await.unwrap())
}

// The behaviours, each a function of the adapter.

async fn json_routes_answer_and_refuse_invalid_input(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let res = get(&srv.url("/data")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().contains_key("x-request-id"));
    let len: usize = res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = res.bytes().await.unwrap();
    assert_eq!(body.len(), len, "a JSON body has its exact length");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["data"]["message"], "Static snapshot");

    // A query value of the wrong type: 422 naming the field.
    let (status, body) = error_of(get(&srv.url("/data?realtime=maybe")).await).await;
    assert_eq!(
        (status, &body["field"]),
        (422, &json!("realtime")),
        "{body}"
    );
    // Malformed JSON: 400; a body of the wrong shape, or the function's own refusal: 422.
    let post = |body: &'static str| {
        client()
            .post(srv.url("/auth/login"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let (status, _) = error_of(post("{not json").await.unwrap()).await;
    assert_eq!(status, 400);
    let (status, body) = error_of(post(r#"{"userId": 5}"#).await.unwrap()).await;
    assert_eq!((status, &body["field"]), (422, &json!("userId")), "{body}");
    let (status, body) = error_of(post(r#"{"userId": "no spaces"}"#).await.unwrap()).await;
    assert_eq!((status, &body["field"]), (422, &json!("userId")), "{body}");
    // A body not declared as JSON: 415.
    let res = client()
        .post(srv.url("/auth/login"))
        .header("content-type", "text/plain")
        .body(r#"{"userId": "alice"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 415);
    srv.stop().await;
}

async fn bodies_over_the_limit_are_413(adapter: Adapter) {
    let srv = Served::start(adapter, demo::app().await.unwrap().body_limit(64)).await;
    let big = json!({ "userId": "a".repeat(200) }).to_string();
    let res = client()
        .post(srv.url("/auth/login"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    let (status, body) = error_of(res).await;
    assert_eq!(status, 413, "{body}");
    srv.stop().await;
}

async fn rate_limits_count_per_client_ip(adapter: Adapter) {
    // `/t/limited` allows 3 requests a second per client IP (the adapter's peer address).
    let (app, _, _) = fixtures::app();
    let srv = Served::start(adapter, app).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = get(&srv.url("/t/limited")).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().contains_key("retry-after"));
            assert_eq!(error_of(res).await.1["error"], "too_many_requests");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
    srv.stop().await;
}

/// Behind a trusted proxy the limits count the client it names in `X-Forwarded-For`.
async fn a_trusted_proxy_names_the_client_the_limits_count(adapter: Adapter) {
    let (app, _, _) = fixtures::app();
    let proxies = pikku::TrustedProxies::parse("127.0.0.1, ::1").unwrap();
    let srv = Served::start(adapter, app.trusted_proxies(proxies)).await;
    let hit = |ip: &'static str| {
        client()
            .get(srv.url("/t/limited"))
            .header("x-forwarded-for", ip)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(hit("203.0.113.1").await.unwrap().status().as_u16());
    }
    statuses.push(hit("203.0.113.2").await.unwrap().status().as_u16());
    assert_eq!(statuses, [200, 200, 200, 429, 200]);
    srv.stop().await;
}

async fn unknown_paths_are_404_and_other_methods_405(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let (status, body) = error_of(get(&srv.url("/no/such/path")).await).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    let res = client()
        .delete(srv.url("/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(error_of(res).await.0, 405);
    let res = client()
        .put(srv.url("/users/alice/notifications"))
        .send()
        .await
        .unwrap();
    let mut allow: Vec<_> = res.headers()["allow"]
        .to_str()
        .unwrap()
        .split(", ")
        .map(str::to_owned)
        .collect();
    allow.sort();
    assert_eq!(allow, ["GET", "POST"]);
    assert_eq!(error_of(res).await.0, 405);
    let res = client()
        .post(srv.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["allow"], "GET");
    assert_eq!(error_of(res).await.0, 405);
    // GET routes answer HEAD, without a body.
    let res = client().head(srv.url("/data")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.bytes().await.unwrap().is_empty());
    srv.stop().await;
}

async fn streams_send_events_with_ids_and_heartbeats(adapter: Adapter) {
    let (app, _, _) = fixtures::app();
    let srv = Served::start(adapter, app).await;
    let res = get(&srv.url("/t/events")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut ev = events(res);
    for n in 1..=3u64 {
        let e = next_event(&mut ev, 5).await.unwrap();
        assert_eq!(e.id, n.to_string());
        assert_eq!(json(&e)["n"], n);
        let name = if n == 2 { "special" } else { "message" };
        assert_eq!(e.event, name);
    }
    assert!(next_event(&mut ev, 5).await.is_none(), "the stream ends");

    // A quiet stream still sends heartbeats (comment frames) at the route's pace.
    let mut res = get(&srv.url("/t/heartbeat")).await;
    let raw = read_until(&mut res, 5, |s| s.matches(": ping\n\n").count() >= 2).await;
    assert!(raw.matches(": ping\n\n").count() >= 2, "{raw:?}");

    // Query input reaches the function: the demo's pace.
    drop(res);
    srv.stop().await;
}

async fn err_items_become_error_events_and_the_stream_goes_on(adapter: Adapter) {
    let (app, _, _) = fixtures::app();
    let srv = Served::start(adapter, app).await;
    let mut ev = events(get(&srv.url("/t/fallible")).await);
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(json(&e)["n"], 1);
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(e.event, "error");
    assert_eq!(json(&e)["error"], "conflict");
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(json(&e)["n"], 2);
    // A stream that fails before it starts is an HTTP error, path params decoded.
    let (status, body) = error_of(get(&srv.url("/t/missing/0")).await).await;
    assert_eq!((status, body["field"].as_str()), (404, Some("id")));
    let res = get(&srv.url("/t/missing/%37")).await;
    assert_eq!(res.status(), 200, "%37 is 7");
    assert_eq!(
        json(&next_event(&mut events(res), 5).await.unwrap())["n"],
        7
    );
    srv.stop().await;
}

async fn sessions_and_permissions(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let path = srv.url("/users/alice/notifications");
    let (status, _) = error_of(get(&path).await).await;
    assert_eq!(status, 401, "no session");
    let res = client()
        .get(&path)
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 401);

    let (token, cookie) = login(&srv.base, "alice").await;
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    let res = client()
        .get(&path)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "bearer");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    drop(res);
    let pair = cookie.split(';').next().unwrap().to_string();
    let res = client()
        .get(&path)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "cookie");
    drop(res);

    // Alice may not open Bob's stream, nor publish to him.
    let res = client()
        .get(srv.url("/users/bob/notifications"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 403);
    let res = client()
        .post(srv.url("/users/bob/notifications"))
        .bearer_auth(&token)
        .json(&json!({"type": "info", "message": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 403);
    srv.stop().await;
}

async fn logout_ends_the_users_open_streams(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let (phone, _) = login(&srv.base, "alice").await;
    let (laptop, _) = login(&srv.base, "alice").await;
    let res = client()
        .get(srv.url("/users/alice/notifications"))
        .bearer_auth(&phone)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut stream = events(res);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = client()
        .post(srv.url("/auth/logout"))
        .bearer_auth(&laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let last = next_event(&mut stream, 5).await.expect("a final event");
    assert_eq!(last.event, "session_end");
    assert!(next_event(&mut stream, 2).await.is_none());
    assert_cleaned_up(&srv, None, Duration::ZERO).await;
    srv.stop().await;
}

async fn last_event_id_resumes_after_the_given_event(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let (token, _) = login(&srv.base, "alice").await;
    let mut sent = Vec::new();
    for i in 1..=3 {
        sent.push(demo_notify(&srv.base, &token, "alice", &format!("n{i}")).await);
    }
    let res = client()
        .get(srv.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .header("last-event-id", &sent[0])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ev = events(res);
    for (i, id) in sent.iter().enumerate().skip(1) {
        let e = next_event(&mut ev, 5).await.unwrap();
        assert_eq!(&e.id, id);
        assert_eq!(json(&e)["message"], format!("n{}", i + 1));
    }
    // Then live.
    let live = demo_notify(&srv.base, &token, "alice", "live").await;
    assert_eq!(next_event(&mut ev, 5).await.unwrap().id, live);
    srv.stop().await;
}

async fn a_client_going_away_ends_its_generator(adapter: Adapter) {
    let (app, cleanups, started) = fixtures::app();
    let srv = Served::start(adapter, app).await;
    let mut ev = events(get(&srv.url("/t/guarded?every_ms=20")).await);
    next_event(&mut ev, 5).await.unwrap();
    assert_eq!(srv.metrics.snapshot().streams_open, 1);
    drop(ev);
    assert_cleaned_up(&srv, Some(&cleanups), Duration::from_secs(2)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1);
    srv.stop().await;
}

async fn an_idle_stream_is_cleaned_up_without_a_write(adapter: Adapter) {
    // `/t/idle` yields once and then waits forever without heartbeats: noticing the client
    // left must not wait for the next write.
    let (app, cleanups, _) = fixtures::app();
    let srv = Served::start(adapter, app).await;
    let mut ev = events(get(&srv.url("/t/idle")).await);
    next_event(&mut ev, 5).await.unwrap();
    drop(ev);
    assert_cleaned_up(&srv, Some(&cleanups), Duration::from_secs(3)).await;
    srv.stop().await;
}

async fn shutdown_ends_streams_with_a_shutdown_event(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let mut ev = events(get(&srv.url("/stream/updates?interval_ms=50")).await);
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap())["data"]["count"],
        1
    );
    srv.shutdown.trigger();
    let mut last = None;
    while let Some(e) = next_event(&mut ev, 5).await {
        last = Some(e);
    }
    assert_eq!(last.expect("events until the end").event, "shutdown");
    assert_cleaned_up(&srv, None, Duration::ZERO).await;
    srv.stop().await;
}

async fn cors_answers_preflights_and_marks_answers_for_allowed_origins(adapter: Adapter) {
    const APP: &str = "http://app.example:5173";
    let cors = pikku::CorsConfig::new().allow_origin(APP).unwrap();
    let srv = Served::start(adapter, demo::app().await.unwrap().cors(cors)).await;
    let preflight = |path: &str, origin: &'static str| {
        client()
            .request(reqwest::Method::OPTIONS, srv.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let res = preflight("/users/alice/notifications", APP).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-credentials"], "true");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("last-event-id"));
    let res = preflight("/users/alice/notifications", "https://evil.example")
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // Answers (a stream, a JSON route, a 404) carry the headers for the allowed origin only.
    for path in ["/stream/updates?interval_ms=50", "/data", "/no/such/path"] {
        let res = client()
            .get(srv.url(path))
            .header("origin", APP)
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["access-control-allow-origin"], APP, "{path}");
        let exposed = res.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(exposed.contains("x-request-id"), "{path}: {exposed}");
        let res = client()
            .get(srv.url(path))
            .header("origin", "https://evil.example")
            .send()
            .await
            .unwrap();
        assert!(res.headers().get("access-control-allow-origin").is_none());
    }
    let mut ev = events(
        client()
            .get(srv.url("/stream/updates?interval_ms=50"))
            .header("origin", APP)
            .send()
            .await
            .unwrap(),
    );
    assert!(next_event(&mut ev, 5).await.is_some());
    drop(ev);

    // The allowed origin is trusted by the CSRF check for cookie sessions; others are not.
    let (_, cookie) = login(&srv.base, "alice").await;
    let publish = |origin: &'static str| {
        client()
            .post(srv.url("/users/alice/notifications"))
            .header("cookie", cookie.split(';').next().unwrap().to_string())
            .header("origin", origin)
            .json(&json!({"type": "info", "message": "hi"}))
            .send()
    };
    assert_eq!(publish(APP).await.unwrap().status(), 200);
    assert_eq!(publish("https://evil.example").await.unwrap().status(), 403);
    srv.stop().await;
}

async fn openapi_and_docs_are_served(adapter: Adapter) {
    let srv = demo_app(adapter).await;
    let res = get(&srv.url("/openapi.json")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/stream/updates",
        "/auth/login",
        "/users/{userId}/notifications",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} in the document");
    }
    let res = get(&srv.url("/docs")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        res.headers()["content-security-policy"],
        pikku::openapi::DOCS_CSP
    );
    assert!(res.text().await.unwrap().contains("<html"));
    srv.stop().await;
}

/// Each behaviour once per adapter, as `adapters::<adapter>::<behaviour>`.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod axum {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Adapter::Axum).await
                }
            )*
        }
        mod actix {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Adapter::Actix).await
                }
            )*
        }
    };
}

suite!(
    json_routes_answer_and_refuse_invalid_input,
    bodies_over_the_limit_are_413,
    rate_limits_count_per_client_ip,
    a_trusted_proxy_names_the_client_the_limits_count,
    unknown_paths_are_404_and_other_methods_405,
    streams_send_events_with_ids_and_heartbeats,
    err_items_become_error_events_and_the_stream_goes_on,
    sessions_and_permissions,
    logout_ends_the_users_open_streams,
    last_event_id_resumes_after_the_given_event,
    a_client_going_away_ends_its_generator,
    an_idle_stream_is_cleaned_up_without_a_write,
    shutdown_ends_streams_with_a_shutdown_event,
    cors_answers_preflights_and_marks_answers_for_allowed_origins,
    openapi_and_docs_are_served,
);

/// Both adapters refuse a broken app with the same startup error (one check, shared).
#[tokio::test]
async fn both_adapters_share_the_startup_check() {
    // The demo's session routes without a session service.
    let app = || async { Pikku::new(demo::Services::from_env().await.unwrap()) };
    let axum_err = app().await.try_router().expect_err("refused by try_router");
    let actix_err = app()
        .await
        .try_actix_config()
        .err()
        .expect("refused by try_actix_config");
    assert_eq!(actix_err.to_string(), axum_err.to_string());
    assert!(matches!(
        actix_err,
        pikku::StartupError::NoSessionService { .. }
    ));
}

/// `examples/actix.rs` as its own process: the demo's routes through actix-web, and SIGTERM
/// ending an open stream with `event: shutdown` before the process exits.
#[tokio::test]
async fn the_actix_example_serves_the_demo_and_shuts_down() {
    let demo = DemoProcess::start_example(
        "actix",
        "/health/ready",
        free_port(),
        &[],
        std::process::Stdio::inherit(),
    )
    .await;
    let res = get(&demo.url("/health/ready")).await;
    assert_eq!(res.status(), 200);
    let mut ev = events(get(&demo.url("/stream/updates?interval_ms=50")).await);
    for count in 1..=2u64 {
        assert_eq!(
            json(&next_event(&mut ev, 5).await.unwrap())["data"]["count"],
            count
        );
    }
    let token = demo_login(&demo.base, "alice").await;
    let id = demo_notify(&demo.base, &token, "alice", "hi").await;
    let res = client()
        .get(demo.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(res);
    let doc: Value = get(&demo.url("/openapi.json")).await.json().await.unwrap();
    assert!(doc["paths"].get("/stream/updates").is_some());
    assert!(!id.is_empty());

    demo.terminate();
    let last = last_event(ev, 5).await.expect("events until the end");
    assert_eq!(last.event, "shutdown");
    demo.stop().await;
}
