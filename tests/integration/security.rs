//! Security defaults (docs/security.md): each test attacks a real server over real HTTP the
//! way the audit of issue #13 did, and fails without the defence it names.

use std::sync::Arc;
use std::time::Duration;

use pikku::session::JwtSessions;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::demo;
use crate::support::*;

const SECRET: &[u8] = b"security-tests-secret-0123456789abcdef";

fn services(ttl: Duration) -> demo::Services {
    demo::Services {
        flaky: demo::FlakySource,
        hub: Arc::new(pikku::MemoryHub::default()),
        sessions: Arc::new(JwtSessions::new(SECRET).ttl(ttl)),
    }
}

async fn demo_server() -> TestServer {
    TestServer::pikku(demo::app_with(services(Duration::from_secs(3600)))).await
}

/// Logs in; returns the token and the `name=value` part of the cookie.
async fn login(base: &str, user: &str) -> (String, String) {
    let res = client()
        .post(format!("{base}/auth/login"))
        .json(&json!({"userId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {user}");
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let body: Value = res.json().await.unwrap();
    (body["token"].as_str().unwrap().to_string(), cookie)
}

fn publish(srv: &TestServer, user: &str) -> reqwest::RequestBuilder {
    client()
        .post(srv.url(&format!("/users/{user}/notifications")))
        .json(&json!({"type": "info", "message": "hi"}))
}

// 1. Anyone could post into anyone's notifications.
#[tokio::test]
async fn publishing_to_another_users_notifications_is_403_and_events_name_their_sender() {
    let srv = demo_server().await;
    let (alice, _) = login(&srv.url(""), "alice").await;
    let res = publish(&srv, "bob")
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("is_self_recipient"),
        "{body}"
    );

    let mut ev = events(
        client()
            .get(srv.url("/users/alice/notifications"))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap(),
    );
    let res = publish(&srv, "alice")
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let e = next_event(&mut ev, 5).await.unwrap();
    assert_eq!(
        json(&e)["from"],
        "alice",
        "the sender comes from the session"
    );
}

// 2a. Bodies were parsed as JSON whatever their Content-Type.
#[tokio::test]
async fn json_routes_refuse_text_form_and_multipart_bodies_with_415() {
    let srv = demo_server().await;
    let body = r#"{"userId":"alice"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = client().post(srv.url("/auth/login")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 415, "{content_type:?}");
        assert!(
            res.headers().get("set-cookie").is_none(),
            "no session was made"
        );
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "unsupported_media_type");
        assert!(
            err["message"]
                .as_str()
                .unwrap()
                .contains("Content-Type: application/json"),
            "names what was expected: {err}"
        );
    }
    for ok in [
        "application/json",
        "application/json; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let res = client()
            .post(srv.url("/auth/login"))
            .header("content-type", ok)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{ok}");
    }
}

// 2b. Cookie sessions could be used from any same-site page (and login forged cross-site).
#[tokio::test]
async fn cookie_posts_from_a_foreign_origin_are_403_same_origin_and_bearer_pass() {
    let srv = demo_server().await;
    let (token, cookie) = login(&srv.url(""), "alice").await;
    let own = format!("http://{}", srv.addr);
    let with_cookie = |origin: Option<&str>| {
        let mut req = publish(&srv, "alice").header("cookie", &cookie);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    let res = with_cookie(Some("http://127.0.0.1:1")).await.unwrap();
    assert_eq!(res.status(), 403, "a same-site page on another port");
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "cross_origin_refused");
    assert_eq!(with_cookie(Some("null")).await.unwrap().status(), 403);
    assert_eq!(
        with_cookie(Some(&own)).await.unwrap().status(),
        200,
        "same origin"
    );
    assert_eq!(
        with_cookie(None).await.unwrap().status(),
        200,
        "not a browser"
    );
    let res = publish(&srv, "alice")
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "Sec-Fetch-Site without Origin");
    let res = publish(&srv, "alice")
        .bearer_auth(&token)
        .header("origin", "https://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "bearer requests are not affected");
    // Login CSRF: a foreign page must not swap the victim's session for the attacker's.
    let res = client()
        .post(srv.url("/auth/login"))
        .header("origin", "https://evil.example")
        .json(&json!({"userId": "mallory"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
}

// 3. No CORS at all.
#[tokio::test]
async fn cors_preflight_and_requests_from_an_allowed_origin_succeed_and_others_get_no_headers() {
    const APP: &str = "http://app.example:5173";
    let cors = pikku::CorsConfig::new().allow_origin(APP).unwrap();
    let srv =
        TestServer::pikku(demo::app_with(services(Duration::from_secs(3600))).cors(cors)).await;
    let (token, _) = login(&srv.url(""), "alice").await;
    let preflight = |origin: &'static str| {
        client()
            .request(
                reqwest::Method::OPTIONS,
                srv.url("/users/alice/notifications"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let res = preflight(APP).await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["authorization", "content-type", "last-event-id"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());

    // The actual requests: a bearer POST and a stream (what EventSource withCredentials does).
    let res = publish(&srv, "alice")
        .bearer_auth(&token)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    let res = client()
        .get(srv.url("/stream/updates?interval_ms=50"))
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], APP);
    assert_eq!(res.headers()["access-control-allow-credentials"], "true");
    let mut ev = events(res);
    assert!(next_event(&mut ev, 5).await.is_some());
    let res = client()
        .get(srv.url("/stream/updates?interval_ms=50"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // And the allowed origin is trusted by the CSRF check for cookie sessions.
    let (_, cookie) = login(&srv.url(""), "alice").await;
    let res = publish(&srv, "alice")
        .header("cookie", cookie)
        .header("origin", APP)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn cors_origins_come_from_the_env_list_and_wildcards_are_refused() {
    let cfg = pikku::CorsConfig::new()
        .allow_origin("https://a.example")
        .unwrap()
        .allow_origin("http://localhost:5173/")
        .unwrap();
    assert_eq!(
        cfg.origins(),
        ["https://a.example", "http://localhost:5173"]
    );
    assert!(pikku::CorsConfig::new().allow_origin("*").is_err());
}

// 4. No header-read timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed_within_the_timeout_while_others_are_served() {
    const TIMEOUT: Duration = Duration::from_millis(800);
    let app = demo::app_with(services(Duration::from_secs(3600)));
    let shutdown = app.shutdown_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = pikku::ServeConfig::default().header_read_timeout(Some(TIMEOUT));
    let router = app.router();
    let s = shutdown.clone();
    let server = tokio::spawn(async move { pikku::serve_with(listener, router, s, cfg).await });

    // Closed: the server's side reads EOF or a reset, within `within`.
    async fn closed_within(conn: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue, // e.g. a 408 before closing
                Err(_) => return false,
            }
        }
    }
    let t0 = std::time::Instant::now();
    // Slowloris: headers trickle in and never finish.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    let trickle = tokio::spawn(async move {
        for b in b"GET /health/ready HTTP/1.1\r\nHost: x\r\nX-Slow: " {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        slow
    });
    // Silent: connects and sends nothing.
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Meanwhile other clients are served.
    for _ in 0..3 {
        let res = get(&format!("http://{addr}/health/ready")).await;
        assert_eq!(res.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "silent socket held"
    );
    let silent_after = t0.elapsed();
    let mut slow = trickle.await.unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)).await,
        "slowloris held"
    );
    assert!(
        silent_after >= TIMEOUT && silent_after < TIMEOUT * 6,
        "closed after {silent_after:?}"
    );
    // Idle keep-alive: one request, then nothing.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t1 = std::time::Instant::now();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "idle keep-alive held"
    );
    assert!(t1.elapsed() >= TIMEOUT, "{:?}", t1.elapsed());
    // A stream is a response being written, not an idle connection: it outlives the timeout.
    let mut ev = events(get(&format!("http://{addr}/stream/updates?interval_ms=500")).await);
    let mut n = 0;
    while n < 4 {
        next_event(&mut ev, 3).await.unwrap();
        n += 1;
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

// 5. Streams outlived their session.
#[tokio::test]
async fn a_stream_ends_with_session_end_when_its_token_expires() {
    let srv = TestServer::pikku(demo::app_with(services(Duration::from_secs(1)))).await;
    let (token, _) = login(&srv.url(""), "alice").await;
    let res = client()
        .get(srv.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let t0 = std::time::Instant::now();
    let mut ev = events(res);
    // `exp` has one-second resolution: the token expires within 2 s of its issue.
    let last = next_event(&mut ev, 6).await.expect("a final event");
    assert_eq!(last.event, "session_end");
    assert_eq!(json(&last)["error"], "session_expired");
    assert!(
        next_event(&mut ev, 2).await.is_none(),
        "then the stream ends"
    );
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let res = client()
        .get(srv.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "reconnecting with it is refused");
}

#[tokio::test]
async fn logout_ends_the_users_open_streams_and_refuses_their_tokens() {
    let srv = demo_server().await;
    let (phone, _) = login(&srv.url(""), "alice").await;
    let (laptop, _) = login(&srv.url(""), "alice").await;
    let (bob, _) = login(&srv.url(""), "bob").await;
    let open = |user: &str, token: &str| {
        client()
            .get(srv.url(&format!("/users/{user}/notifications")))
            .bearer_auth(token.to_string())
            .send()
    };
    let mut alice_stream = events(open("alice", &phone).await.unwrap());
    let mut bob_stream = events(open("bob", &bob).await.unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let res = client()
        .post(srv.url("/auth/logout"))
        .bearer_auth(&laptop)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cleared = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let last = next_event(&mut alice_stream, 5)
        .await
        .expect("a final event");
    assert_eq!(last.event, "session_end");
    assert_eq!(json(&last)["error"], "session_revoked");
    assert!(next_event(&mut alice_stream, 2).await.is_none());
    for token in [&phone, &laptop] {
        assert_eq!(open("alice", token).await.unwrap().status(), 401);
    }
    // Bob is untouched, and alice can log in again at once.
    let res = publish(&srv, "bob").bearer_auth(&bob).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(&next_event(&mut bob_stream, 2).await.unwrap())["from"],
        "bob"
    );
    let (again, _) = login(&srv.url(""), "alice").await;
    assert_eq!(open("alice", &again).await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_rust_client_ends_a_stream_whose_session_ended_instead_of_reconnecting() {
    use futures_util::StreamExt as _;
    let srv = demo_server().await;
    let anonymous = pikku::client::Client::new(srv.url("")).unwrap();
    let token = demo::login::call(
        &anonymous,
        demo::LoginInput {
            user_id: "alice".into(),
        },
    )
    .await
    .unwrap()
    .token;
    let alice = anonymous.bearer(&token).unwrap();
    let mut s = demo::stream_user_notifications::call(
        &alice,
        demo::UserPath {
            user_id: "alice".into(),
        },
    );
    let reader = tokio::spawn(async move {
        let first = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
        let then = tokio::time::timeout(Duration::from_secs(5), s.next()).await;
        (first, then)
    });
    tokio::time::sleep(Duration::from_millis(300)).await; // the stream is open
    demo::logout::call(&alice).await.unwrap();
    let (first, then) = reader.await.unwrap();
    match first.expect("the final event in time") {
        Some(Err(pikku::client::ClientError::Stream(body))) => {
            assert_eq!(body.error, "session_revoked")
        }
        other => panic!("expected the session_end error, got {other:?}"),
    }
    assert!(matches!(then, Ok(None)), "then the stream ends: {then:?}");
}

// 6. The smaller ones.
#[tokio::test]
async fn forged_request_ids_are_replaced_and_never_logged_raw() {
    let demo = DemoProcess::start_with(
        &[("RUST_LOG", "pikku=debug"), ("NO_COLOR", "1")],
        std::process::Stdio::piped(),
    )
    .await;
    let forged = "abc route=/admin user=root";
    let send = |id: &'static str| {
        client()
            .get(demo.url("/stream/updates?interval_ms=50"))
            .header("x-request-id", id)
            .send()
    };
    let mut res = send(forged).await.unwrap();
    let echoed = res.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(echoed, forged);
    assert!(
        echoed.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{echoed}"
    );
    read_until(&mut res, 5, |s| s.contains("data:")).await;
    drop(res);
    let mut ok = send("req-42.a_b:c").await.unwrap();
    assert_eq!(
        ok.headers()["x-request-id"],
        "req-42.a_b:c",
        "safe ids are kept"
    );
    read_until(&mut ok, 5, |s| s.contains("data:")).await;
    drop(ok);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut demo = demo;
    let mut stderr = demo.child.stderr.take().unwrap();
    demo.terminate();
    let mut log = String::new();
    tokio::time::timeout(Duration::from_secs(10), stderr.read_to_string(&mut log))
        .await
        .unwrap()
        .unwrap();
    assert!(!log.contains("route=/admin"), "{log}");
    assert!(
        log.contains("request_id=\"req-42.a_b:c\""),
        "quoted in logs:\n{log}"
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let srv = demo_server().await;
    let (token, _) = login(&srv.url(""), "alice").await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let res = client()
            .get(srv.url("/users/alice/notifications"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn the_per_session_stream_cap_counts_the_user_not_the_login() {
    let app = demo::app_with(services(Duration::from_secs(3600))).limits(pikku::Limits {
        max_streams_per_session: Some(2),
        ..pikku::Limits::default()
    });
    let srv = TestServer::pikku(app).await;
    let mut held = Vec::new();
    for i in 0..2 {
        let (token, _) = login(&srv.url(""), "alice").await;
        let res = client()
            .get(srv.url("/users/alice/notifications"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "stream {i}");
        held.push(res);
    }
    let (third_login, _) = login(&srv.url(""), "alice").await;
    let res = client()
        .get(srv.url("/users/alice/notifications"))
        .bearer_auth(&third_login)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "a new login does not buy more streams");
}

#[tokio::test]
async fn the_session_cookie_is_secure_except_for_plain_http_on_loopback() {
    let srv = demo_server().await;
    let cookie = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = client()
            .post(srv.url("/auth/login"))
            .json(&json!({"userId": "alice"}));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.headers()["set-cookie"].to_str().unwrap().to_string()
        }
    };
    assert!(
        !cookie(&[]).await.contains("Secure"),
        "http://127.0.0.1 is local development"
    );
    assert!(
        cookie(&[("x-forwarded-proto", "https")])
            .await
            .contains("; Secure")
    );
    assert!(
        cookie(&[("host", "api.example.com")])
            .await
            .contains("; Secure")
    );
    let always = JwtSessions::<demo::UserSession>::new(SECRET)
        .cookie_secure(pikku::session::CookieSecure::Always);
    assert!(
        always
            .cookie_for("t", &http::HeaderMap::new())
            .unwrap()
            .to_str()
            .unwrap()
            .contains("; Secure")
    );
    let cross_site =
        JwtSessions::<demo::UserSession>::new(SECRET).same_site(pikku::session::SameSite::None);
    let c = cross_site.cookie("t").unwrap();
    let c = c.to_str().unwrap();
    assert!(c.contains("SameSite=None") && c.contains("; Secure"), "{c}");
}

#[tokio::test]
async fn the_docs_page_cannot_be_framed() {
    let srv = demo_server().await;
    let res = get(&srv.url("/docs")).await;
    let csp = res.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn demo_stream_intervals_have_a_floor() {
    let srv = demo_server().await;
    let t0 = std::time::Instant::now();
    let mut ev = events(get(&srv.url("/stream/with-errors?interval_ms=0")).await);
    for _ in 0..5 {
        next_event(&mut ev, 5).await.unwrap();
    }
    // Five events are four intervals.
    let floor = Duration::from_millis(demo::MIN_INTERVAL_MS * 4);
    assert!(t0.elapsed() >= floor, "{:?}", t0.elapsed());
}

// A real browser: a page on another origin (a second loopback port) against the demo with
// `PIKKU_CORS_ORIGINS` set, and a page on a third port that is not allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_an_allowed_origin_streams_with_credentials_and_a_foreign_one_gets_nothing() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        repo.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "this test drives Chromium with playwright-core: run `.ci/run`, or `npm ci` in tests/browser"
    );
    let chromium = std::env::var("PIKKU_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "this test needs Chromium at {chromium}: run `.ci/run` (it installs Debian's chromium) or \
         set PIKKU_CHROMIUM"
    );
    let (allowed, foreign) = (free_port(), free_port());
    let origin = format!("http://127.0.0.1:{allowed}");
    let demo = DemoProcess::start(&[("PIKKU_CORS_ORIGINS", origin.as_str())]).await;
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(repo.join("tests/browser/cors.mjs"))
            .arg(&demo.base)
            .arg(allowed.to_string())
            .arg(foreign.to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 90 s")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "browser check failed:\n{stderr}\n{stdout}"
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("browser check printed no JSON ({e}):\n{stdout}"));

    // The allowed origin: login sets the cookie (not Secure: plain HTTP on loopback), the
    // EventSource sends it, and a cookie-authenticated publish from that origin passes CSRF.
    assert_eq!(seen["allowedLogin"]["status"], 200, "{seen:#}");
    assert_eq!(
        seen["cookies"],
        json!([{"name": "pikku_session", "sameSite": "Lax", "secure": false}])
    );
    let stream = &seen["allowedStream"];
    assert_eq!(stream["opened"], true, "{seen:#}");
    assert_eq!(stream["published"]["status"], 200, "{seen:#}");
    assert!(
        stream["published"]["requestId"].is_string(),
        "x-request-id is exposed to the page: {seen:#}"
    );
    assert_eq!(
        stream["messages"],
        json!([{"type": "info", "message": "from the allowed page", "from": "alice"}])
    );
    // The foreign origin gets nothing: not the login answer, not a stream (even a public one,
    // even though the browser holds the cookie).
    assert!(
        seen["foreignLogin"]["error"].is_string(),
        "the preflight was refused: {seen:#}"
    );
    for s in ["foreignStream", "foreignPublic"] {
        assert_eq!(seen[s]["opened"], false, "{s}: {seen:#}");
        assert_eq!(seen[s]["messages"], json!([]), "{s}: {seen:#}");
    }
    // A plain form POST with the cookie (no preflight, text/plain) is refused.
    assert_eq!(seen["form"]["status"], 403, "{seen:#}");
    assert_eq!(seen["form"]["body"]["error"], "cross_origin_refused");
    demo.stop().await;
}
