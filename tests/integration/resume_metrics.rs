//! A first connection's resume point from the query (`?lastEventId=`, for a browser's
//! `EventSource`), the hub's position handed out with a snapshot, and the Prometheus metrics
//! endpoint: against the demo app with the embedded hub and with Redis.

use std::sync::Arc;
use std::time::Duration;

use pikku::EventHub;
use pikku::event_hub::HubConfig;
use pikku::event_hub::redis::RedisHub;
use pikku::prelude::*;
use serde_json::{Value, json};

use crate::demo;
use crate::hub_suite::{REDIS_URL, unique_prefix};
use crate::support::*;

/// The demo with `hub`, and a session cookie of alice (what a browser's `EventSource` sends).
struct Demo {
    srv: TestServer,
    hub: Arc<dyn EventHub>,
    cookie: String,
    token: String,
}

async fn demo_with(hub: Arc<dyn EventHub>) -> Demo {
    let services = demo::Services {
        flaky: demo::FlakySource,
        hub: hub.clone(),
        sessions: Arc::new(pikku::session::JwtSessions::from_env()),
    };
    let srv = TestServer::pikku(demo::app_with(services)).await;
    let res = client()
        .post(srv.url("/auth/login"))
        .json(&json!({"userId": "alice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    Demo {
        srv,
        hub,
        cookie,
        token,
    }
}

/// The backends the resume tests run against: the embedded hub and Redis.
fn hubs() -> Vec<(&'static str, Arc<dyn EventHub>)> {
    vec![
        (
            "memory",
            Arc::new(pikku::MemoryHub::new()) as Arc<dyn EventHub>,
        ),
        (
            "redis",
            Arc::new(
                RedisHub::open(REDIS_URL, &unique_prefix("resume"), HubConfig::default()).unwrap(),
            ),
        ),
    ]
}

impl Demo {
    async fn notify(&self, message: &str) -> String {
        let res = client()
            .post(self.srv.url("/users/alice/notifications"))
            .bearer_auth(&self.token)
            .json(&json!({"type": "info", "message": message}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Opens alice's stream as a browser's first `EventSource` request: the cookie, no
    /// `Last-Event-ID` header unless `header` is given.
    async fn open(
        &self,
        query: &str,
        header: Option<&str>,
    ) -> impl futures_util::Stream<Item = eventsource_stream::Event> + Unpin + use<> {
        let mut req = client()
            .get(self.srv.url(&format!("/users/alice/notifications{query}")))
            .header("cookie", &self.cookie);
        if let Some(id) = header {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 200, "{query}");
        events(res)
    }
}

/// The ids of the next `n` events, then checks that nothing else arrives for a moment.
async fn exactly(
    ev: &mut (impl futures_util::Stream<Item = eventsource_stream::Event> + Unpin),
    n: usize,
) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = next_event(ev, 5).await.expect("an event");
        assert_eq!(e.event, "message", "no gap or error: {e:?}");
        ids.push(e.id);
    }
    let more = tokio::time::timeout(Duration::from_millis(200), ev.next()).await;
    assert!(more.is_err(), "nothing more: {more:?}");
    ids
}

#[tokio::test]
async fn query_last_event_id_resumes_a_first_connection_with_exactly_the_missed_events() {
    for (name, hub) in hubs() {
        let d = demo_with(hub).await;
        let mut sent = Vec::new();
        for i in 0..4 {
            sent.push(d.notify(&format!("n{i}")).await);
        }
        let q = format!("?lastEventId={}", sent[1]);
        let mut ev = d.open(&q, None).await;
        assert_eq!(exactly(&mut ev, 2).await, sent[2..], "{name}");
        // Then live, with nothing replayed twice.
        let live = d.notify("live").await;
        assert_eq!(exactly(&mut ev, 1).await, [live], "{name}");
    }
}

#[tokio::test]
async fn the_header_wins_over_the_query_when_both_are_sent() {
    for (name, hub) in hubs() {
        let d = demo_with(hub).await;
        let mut sent = Vec::new();
        for i in 0..4 {
            sent.push(d.notify(&format!("n{i}")).await);
        }
        let q = format!("?lastEventId={}", sent[0]);
        // The query alone is used...
        let mut ev = d.open(&q, None).await;
        assert_eq!(exactly(&mut ev, 3).await, sent[1..], "{name}: the query");
        // ...and the header, when there is one, wins.
        let mut ev = d.open(&q, Some(&sent[2])).await;
        assert_eq!(exactly(&mut ev, 1).await, sent[3..], "{name}: the header");
    }
}

#[tokio::test]
async fn earliest_replays_everything_the_window_keeps() {
    for (name, hub) in hubs() {
        let d = demo_with(hub).await;
        let mut sent = Vec::new();
        for i in 0..3 {
            sent.push(d.notify(&format!("n{i}")).await);
        }
        let mut ev = d.open("?lastEventId=earliest", None).await;
        assert_eq!(exactly(&mut ev, 3).await, sent, "{name}");
    }
}

#[tokio::test]
async fn snapshot_position_then_stream_gets_exactly_the_later_notifications() {
    for (name, hub) in hubs() {
        let d = demo_with(hub).await;
        let snapshot = |d: &Demo| {
            client()
                .get(d.srv.url("/users/alice/notifications/snapshot"))
                .header("cookie", d.cookie.clone())
                .send()
        };
        // No history yet: the snapshot says to start from the earliest event.
        let res = snapshot(&d).await.unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(res.json::<Value>().await.unwrap()["position"], "earliest");
        let first = d.notify("before the snapshot").await;
        let position = snapshot(&d).await.unwrap().json::<Value>().await.unwrap()["position"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(position, first, "{name}: the newest event's id");
        // Published while the page renders the snapshot.
        let mut later = Vec::new();
        for i in 0..3 {
            later.push(d.notify(&format!("after {i}")).await);
        }
        let mut ev = d.open(&format!("?lastEventId={position}"), None).await;
        assert_eq!(exactly(&mut ev, 3).await, later, "{name}");
        // Someone else's snapshot is refused like their stream.
        let res = client()
            .get(d.srv.url("/users/bob/notifications/snapshot"))
            .header("cookie", d.cookie.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}");
        drop(ev);
        assert!(eventually(Duration::from_secs(2), || d.hub.live_subscriptions() == 0).await);
    }
}

/// A stream route whose input refuses unknown fields (on its own services type).
pub struct StrictServices;

/// Input of `/t/strict-stream`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StrictInput {
    /// How many events.
    pub n: u64,
}

/// Echoes the input and the resume point it was given.
#[pikku_func(route = "/t/strict-stream", response = "stream", auth = false)]
async fn strict_stream(
    _s: &StrictServices,
    input: StrictInput,
    ctx: &Context,
) -> impl Stream<Item = Value> {
    let from = ctx.last_event_id().map(|id| id.as_str().to_owned());
    stream! {
        for i in 0..input.n {
            yield json!({"i": i, "from": from});
        }
    }
}

#[tokio::test]
async fn last_event_id_in_the_query_never_reaches_an_input_that_refuses_unknown_fields() {
    let srv = TestServer::pikku(Pikku::new(StrictServices)).await;
    let res = get(&srv.url("/t/strict-stream?n=2&lastEventId=abc-7")).await;
    assert_eq!(res.status(), 200);
    let mut ev = events(res);
    for i in 0..2 {
        let e = json(&next_event(&mut ev, 5).await.unwrap());
        assert_eq!(e, json!({"i": i, "from": "abc-7"}));
    }
    // `earliest` is the same resume point as `0`; other unknown keys are still refused.
    let res = get(&srv.url("/t/strict-stream?lastEventId=earliest&n=1")).await;
    let e = json(&next_event(&mut events(res), 5).await.unwrap());
    assert_eq!(e["from"], "0");
    let res = get(&srv.url("/t/strict-stream?n=1&other=1")).await;
    assert_eq!(res.status(), 422);
}

/// Scrapes `/metrics` and parses it as Prometheus text.
async fn scrape(srv: &TestServer) -> prometheus_parse::Scrape {
    let res = get(&srv.url("/metrics")).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("valid Prometheus text: {e}\n{text}"))
}

/// The value of `name` whose labels include `labels`.
fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("{name} {labels:?} in {:?}", scrape.samples));
    match sample.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_endpoint_counts_an_open_stream_until_it_closes() {
    let services = demo::Services::from_env().await.unwrap();
    let srv = TestServer::pikku(demo::app_with(services)).await;
    let route = [("method", "get"), ("route", "/stream/updates")];
    let before = scrape(&srv).await;
    assert_eq!(value(&before, "pikku_streams_open", &[]), 0.0);
    assert_eq!(value(&before, "pikku_route_streams_open", &route), 0.0);
    let mut ev = events(get(&srv.url("/stream/updates?interval_ms=50")).await);
    next_event(&mut ev, 5).await.unwrap();
    let open = scrape(&srv).await;
    assert_eq!(value(&open, "pikku_streams_open", &[]), 1.0);
    assert_eq!(value(&open, "pikku_route_streams_open", &route), 1.0);
    assert_eq!(value(&open, "pikku_streams_opened_total", &[]), 1.0);
    assert_eq!(value(&open, "pikku_route_requests_total", &route), 1.0);
    assert_eq!(
        value(&open, "pikku_hub_healthy", &[("backend", "memory")]),
        1.0
    );
    drop(ev);
    let mut closed = scrape(&srv).await;
    for _ in 0..100 {
        if value(&closed, "pikku_streams_open", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        closed = scrape(&srv).await;
    }
    assert_eq!(value(&closed, "pikku_streams_open", &[]), 0.0);
    assert_eq!(value(&closed, "pikku_route_streams_open", &route), 0.0);
    assert_eq!(value(&closed, "pikku_streams_closed_total", &[]), 1.0);
    // Scrapes are not routes: they count nowhere.
    assert_eq!(value(&closed, "pikku_requests_total", &[]), 1.0);
    let res = client().post(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 405);

    // Refusals count on their route: the demo's login allows 10/s per IP.
    let logins = (0..15).map(|_| {
        client()
            .post(srv.url("/auth/login"))
            .json(&json!({"userId": "alice"}))
            .send()
    });
    let refused: u32 = futures_util::future::join_all(logins)
        .await
        .into_iter()
        .map(|res| u32::from(res.unwrap().status() == 429))
        .sum();
    assert!(refused > 0, "the rate limit refused some");
    let after = scrape(&srv).await;
    let login = [("method", "post"), ("route", "/auth/login")];
    assert_eq!(
        value(&after, "pikku_route_requests_rejected_total", &login),
        f64::from(refused)
    );
    assert_eq!(value(&after, "pikku_route_requests_total", &login), 15.0);
    assert_eq!(
        value(&after, "pikku_requests_rejected_total", &[]),
        f64::from(refused)
    );
}

#[test]
fn a_route_on_the_metrics_path_is_refused_at_startup() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt.block_on(async {
        Pikku::new(StrictServices)
            .metrics_endpoint("/t/strict-stream")
            .try_router()
            .map(|_| ())
            .unwrap_err()
    });
    assert!(err.to_string().contains("metrics endpoint"), "{err}");
}

/// The browser pattern of the README in headless Chromium (playwright-core from
/// `tests/browser/node_modules`), against the demo process whose streams end after 1.5 s
/// (`event: close`, `retry: 0`): render a snapshot, open a native `EventSource` with
/// `?lastEventId=<position>`, then let the browser reconnect on its own. The first connection
/// gets exactly the events after the snapshot; after the reconnect the browser's own
/// `Last-Event-ID` header wins over the URL's older `lastEventId`, so nothing is replayed.
const BROWSER_RESUME_JS: &str = r#"
import { createRequire } from 'node:module';
const [browserDir, api] = process.argv.slice(2);
const { chromium } = createRequire(browserDir + '/package.json')('playwright-core');
const browser = await chromium.launch({
  executablePath: process.env.PIKKU_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  timeout: 30_000,
});
let code = 0;
try {
  const page = await browser.newPage();
  await page.goto(api + '/health/ready'); // any page of the API's origin
  const seen = await page.evaluate(async () => {
    const json = { 'content-type': 'application/json' };
    await fetch('/auth/login', { method: 'POST', headers: json, body: JSON.stringify({ userId: 'alice' }) });
    const post = async (message) => (await (await fetch('/users/alice/notifications', {
      method: 'POST', headers: json, body: JSON.stringify({ userId: 'alice', type: 'info', message }),
    })).json()).id;
    const before = await post('before the snapshot');
    const snapshot = await (await fetch('/users/alice/notifications/snapshot')).json();
    const after = [await post('after 1'), await post('after 2')];
    return await new Promise((resolve) => {
      const out = { before, snapshot, after, opens: 0, got: [] };
      const es = new EventSource('/users/alice/notifications?lastEventId=' + encodeURIComponent(snapshot.position));
      const done = () => { es.close(); resolve(out); };
      es.onopen = async () => {
        out.opens += 1;
        if (out.opens === 2) out.live = await post('after the reconnect');
      };
      es.onmessage = (m) => {
        out.got.push({ id: m.lastEventId, message: JSON.parse(m.data).message });
        if (out.got.length === 3) setTimeout(done, 500);
      };
      setTimeout(done, 8000);
    });
  });
  console.log(JSON.stringify(seen));
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_event_source_resumes_from_a_snapshot_and_its_reconnect_header_wins() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let browser_dir = repo.join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "this test drives Chromium with playwright-core: run `.ci/run`, or `npm ci` in tests/browser"
    );
    let script = std::env::temp_dir().join(format!("pikku-resume-{}.mjs", std::process::id()));
    std::fs::write(&script, BROWSER_RESUME_JS).unwrap();
    let demo = DemoProcess::start(&[("PIKKU_SSE_MAX_LIFETIME_MS", "1500")]).await;
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&browser_dir)
            .arg(&demo.base)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 90 s")
    .expect("node runs (is Node.js installed?)");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("browser check printed no JSON ({e}):\n{stdout}"));
    assert_eq!(seen["snapshot"]["position"], seen["before"], "{seen:#}");
    assert_eq!(seen["opens"], 2, "the browser reconnected once: {seen:#}");
    let got: Vec<(&str, &str)> = seen["got"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["message"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (seen["after"][0].as_str().unwrap(), "after 1"),
            (seen["after"][1].as_str().unwrap(), "after 2"),
            (seen["live"].as_str().unwrap(), "after the reconnect"),
        ],
        "exactly the events after the snapshot, none twice: {seen:#}"
    );
    demo.stop().await;
}
