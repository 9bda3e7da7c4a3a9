//! Latest value on subscribe and many topics on one stream, against the demo process: the
//! wire bytes a browser's `EventSource` reads, a disconnect, and a reconnect with the last
//! (composite) id. Each test runs on the embedded hub and on Redis (the real server).

use std::time::Duration;

use serde_json::{Value, json};

use crate::hub_suite::{REDIS_URL, unique_prefix};
use crate::support::*;

/// One SSE frame as read off the wire.
#[derive(Debug, Clone, PartialEq)]
struct RawFrame {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

/// The complete frames of `text` (comments and a trailing partial frame left out).
fn parse_frames(text: &str) -> Vec<RawFrame> {
    let complete = match text.rfind("\n\n") {
        Some(end) => &text[..end],
        None => return Vec::new(),
    };
    complete
        .split("\n\n")
        .filter_map(|block| {
            let mut frame = RawFrame {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut any = false;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    frame.id = Some(v.to_string());
                    any = true;
                } else if let Some(v) = line.strip_prefix("event: ") {
                    frame.event = Some(v.to_string());
                    any = true;
                } else if let Some(v) = line.strip_prefix("data: ") {
                    frame.data.push_str(v);
                    any = true;
                }
            }
            any.then_some(frame)
        })
        .collect()
}

/// Frames with data (the events a browser dispatches).
fn data_frames(text: &str) -> Vec<RawFrame> {
    parse_frames(text)
        .into_iter()
        .filter(|f| !f.data.is_empty())
        .collect()
}

/// The hubs each test runs on: the embedded one and Redis (a key prefix of its own).
fn hub_envs() -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    vec![
        ("memory", vec![]),
        (
            "redis",
            vec![
                ("PIKKU_EVENT_HUB", REDIS_URL.to_string()),
                ("PIKKU_EVENT_HUB_PREFIX", unique_prefix("multi")),
            ],
        ),
    ]
}

async fn start(envs: &[(&'static str, String)]) -> DemoProcess {
    let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    DemoProcess::start(&envs).await
}

async fn post(demo: &DemoProcess, token: &str, path: &str, body: Value) -> String {
    let res = client()
        .post(demo.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "POST {path}");
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn open(demo: &DemoProcess, path: &str, last_id: Option<&str>) -> reqwest::Response {
    let mut req = client().get(demo.url(path));
    if let Some(id) = last_id {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res
}

/// Reads until `n` more data frames have arrived, then for `quiet_ms` more (to see any
/// extra); returns what it read.
async fn read_events(res: &mut reqwest::Response, n: usize, quiet_ms: u64) -> String {
    let mut all = read_until(res, 10, |t| data_frames(t).len() >= n).await;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(quiet_ms);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline, res.chunk()).await {
        all.push_str(&String::from_utf8_lossy(&chunk));
    }
    all
}

/// (channel, text) of each message frame.
fn messages(frames: &[RawFrame]) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&f.data).unwrap();
            (
                v["channel"].as_str().unwrap().to_string(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_channels_resume_from_the_composite_id_with_nothing_lost_or_repeated() {
    for (backend, envs) in hub_envs() {
        let demo = start(&envs).await;
        let token = demo_login(&demo.base, "mia").await;
        let run = format!("{}", std::process::id());
        let [a, b, c] = ["a", "b", "c"].map(|n| format!("{n}{run}"));
        let path = format!("/channels/stream?channels={a},{b},{c}");
        let say = |channel: &str, text: &str| {
            let path = format!("/channels/{channel}/messages");
            let body = json!({ "text": text });
            let (demo, token) = (&demo, token.as_str());
            async move { post(demo, token, &path, body).await }
        };

        // The stream opens with an id-only frame: a client that drops before any event
        // still resumes every channel from here.
        let mut res = open(&demo, &path, None).await;
        let head = read_until(&mut res, 10, |t| t.contains("\n\n")).await;
        let opening = parse_frames(&head);
        assert_eq!(opening.len(), 1, "{backend}: {head:?}");
        assert_eq!(opening[0].id.as_deref(), Some("m:_,_,_"), "{backend}");
        assert!(opening[0].data.is_empty(), "{backend}: not dispatched");

        say(&a, "a1").await;
        say(&b, "b1").await;
        say(&a, "a2").await;
        let text = read_events(&mut res, 3, 200).await;
        let seen = data_frames(&text);
        assert_eq!(
            messages(&seen),
            [
                (a.clone(), "a1".into()),
                (b.clone(), "b1".into()),
                (a.clone(), "a2".into())
            ],
            "{backend}"
        );
        for f in &seen {
            let id = f.id.as_deref().unwrap();
            assert!(id.starts_with("m:") && id.split(',').count() == 3, "{id}");
        }
        let last_id = seen[2].id.clone().unwrap();
        assert!(
            last_id.ends_with(",_"),
            "{backend}: nothing of c yet: {last_id}"
        );
        drop(res); // Disconnect mid-stream.

        // While away: messages on every channel, including one it has never seen.
        let mut missed = Vec::new();
        for round in 1..=2 {
            for ch in [&a, &b, &c] {
                let text = format!("{}-away{round}", &ch[..1]);
                say(ch, &text).await;
                missed.push((ch.clone(), text));
            }
        }
        let mut res = open(&demo, &path, Some(&last_id)).await;
        let text = read_events(&mut res, missed.len(), 500).await;
        let got = data_frames(&text);
        let per_channel = |list: &[(String, String)], ch: &str| -> Vec<String> {
            list.iter()
                .filter(|(c, _)| c == ch)
                .map(|(_, t)| t.clone())
                .collect()
        };
        let got_messages = messages(&got);
        for ch in [&a, &b, &c] {
            assert_eq!(
                per_channel(&got_messages, ch),
                per_channel(&missed, ch),
                "{backend}: exactly the missed messages of {ch}, in order"
            );
        }
        assert_eq!(got_messages.len(), missed.len(), "{backend}: no duplicate");
        assert!(
            !got.iter().any(|f| f.event.as_deref() == Some("gap")),
            "{backend}: no gap"
        );
        // Live after the resume, once.
        say(&c, "live").await;
        let more = read_events(&mut res, 1, 300).await;
        assert_eq!(
            messages(&data_frames(&more)),
            [(c.clone(), "live".into())],
            "{backend}"
        );
        drop(res);
        demo.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_before_any_event_resumes_from_the_opening_id() {
    for (backend, envs) in hub_envs() {
        let demo = start(&envs).await;
        let token = demo_login(&demo.base, "noa").await;
        let ch = format!("early{}", std::process::id());
        let path = format!("/channels/stream?channels={ch}");
        post(
            &demo,
            &token,
            &format!("/channels/{ch}/messages"),
            json!({"text": "old"}),
        )
        .await;
        let mut res = open(&demo, &path, None).await;
        let head = read_until(&mut res, 10, |t| t.contains("\n\n")).await;
        let opening = parse_frames(&head)[0].id.clone().unwrap();
        assert_ne!(opening, "m:_", "{backend}: names the retained event");
        drop(res);
        post(
            &demo,
            &token,
            &format!("/channels/{ch}/messages"),
            json!({"text": "new"}),
        )
        .await;
        let mut res = open(&demo, &path, Some(&opening)).await;
        let got = data_frames(&read_events(&mut res, 1, 300).await);
        assert_eq!(messages(&got), [(ch.clone(), "new".into())], "{backend}");
        drop(res);
        demo.stop().await;
    }
}

#[tokio::test]
async fn too_many_or_repeated_channels_are_400s() {
    let demo = DemoProcess::start(&[]).await;
    let seventeen: Vec<String> = (0..17).map(|n| format!("c{n}")).collect();
    let res = client()
        .get(demo.url(&format!(
            "/channels/stream?channels={}",
            seventeen.join(",")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "too_many_topics", "{body}");
    let res = get(&demo.url("/channels/stream?channels=x,x")).await;
    assert_eq!(res.status(), 400);
    let res = get(&demo.url("/channels/stream?channels=x,,y")).await;
    assert_eq!(res.status(), 422);
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ticker_streams_its_latest_value_first_then_changes() {
    for (backend, envs) in hub_envs() {
        let demo = start(&envs).await;
        let token = demo_login(&demo.base, "tia").await;
        let ticker = format!("t{}", std::process::id());
        let set = |value: i64| {
            let path = format!("/tickers/{ticker}");
            let (demo, token) = (&demo, token.as_str());
            async move { post(demo, token, &path, json!({ "value": value })).await }
        };
        let path = format!("/tickers/{ticker}/latest");
        let mut ids = Vec::new();
        for v in 1..=3 {
            ids.push(set(v).await);
        }
        let mut res = open(&demo, &path, None).await;
        let first = data_frames(&read_events(&mut res, 1, 200).await);
        assert_eq!(
            first.len(),
            1,
            "{backend}: only the latest value: {first:?}"
        );
        assert_eq!(first[0].id.as_deref(), Some(ids[2].as_str()), "{backend}");
        let v: Value = serde_json::from_str(&first[0].data).unwrap();
        assert_eq!(v["value"], 3, "{backend}");
        ids.push(set(4).await);
        let live = data_frames(&read_events(&mut res, 1, 200).await);
        assert_eq!(live.len(), 1, "{backend}: then live, once");
        assert_eq!(live[0].id.as_deref(), Some(ids[3].as_str()), "{backend}");
        drop(res);
        // A reconnect resumes after the last value seen: no repeat of it.
        ids.push(set(5).await);
        let mut res = open(&demo, &path, Some(&ids[3])).await;
        let again = data_frames(&read_events(&mut res, 1, 300).await);
        assert_eq!(again.len(), 1, "{backend}: {again:?}");
        assert_eq!(again[0].id.as_deref(), Some(ids[4].as_str()), "{backend}");
        drop(res);
        demo.stop().await;
    }
}

/// Lines the browser script prints, read as they come.
struct Browser {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Browser {
    /// Waits for the line `want` (failing on anything else but `got ...` progress lines).
    async fn expect(&mut self, want: &str) -> String {
        loop {
            let line = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
                .await
                .expect("the browser script reports in time")
                .unwrap()
                .unwrap_or_else(|| panic!("the browser script ended before `{want}`"));
            if line == want || (want == "json" && line.starts_with('{')) {
                return line;
            }
            assert!(line.starts_with("got "), "unexpected line: {line}");
        }
    }
}

// A real browser's EventSource (headless Chromium): it records the opening id-only frame and
// resumes a merged stream across two server restarts (Redis keeps the history; a second
// instance takes the posts while the first is down), getting exactly the missed messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_event_source_resumes_merged_channels_across_restarts() {
    use tokio::io::AsyncBufReadExt;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        repo.join("tests/browser/node_modules/playwright-core")
            .is_dir(),
        "this test drives Chromium with playwright-core: run `.ci/run`, or `npm ci` in tests/browser"
    );
    let prefix = unique_prefix("browser");
    let envs = [
        ("PIKKU_EVENT_HUB", REDIS_URL),
        ("PIKKU_EVENT_HUB_PREFIX", prefix.as_str()),
    ];
    let port = free_port();
    let inherit = std::process::Stdio::inherit;
    let mut served = DemoProcess::start_at(port, &envs, inherit()).await;
    let poster = DemoProcess::start(&envs).await;
    let token = demo_login(&poster.base, "ema").await;
    let run = std::process::id();
    let (a, b) = (format!("ba{run}"), format!("bb{run}"));
    let say = |channel: &str, text: &str| {
        let path = format!("/channels/{channel}/messages");
        let (poster, token) = (&poster, token.as_str());
        let body = json!({ "text": text });
        async move { post(poster, token, &path, body).await }
    };
    // Retained before the page opens: the opening id names it, so the resume skips it.
    say(&a, "old").await;

    let mut child = tokio::process::Command::new("node")
        .arg(repo.join("tests/browser/multi.mjs"))
        .arg(&served.base)
        .arg(format!("/channels/stream?channels={a},{b}"))
        .arg("4")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (is Node.js installed?)");
    let stdout = child.stdout.take().unwrap();
    let mut browser = Browser {
        child,
        lines: tokio::io::BufReader::new(stdout).lines(),
    };
    browser.expect("open").await;

    // Down before any event: only the opening id-only frame told the browser where it is.
    served.stop().await;
    say(&a, "a1").await;
    say(&b, "b1").await;
    served = DemoProcess::start_at(port, &envs, inherit()).await;
    browser.expect("got 2").await;

    // Down again, mid-stream: the browser resumes from the last composite id.
    served.stop().await;
    say(&b, "b2").await;
    say(&a, "a2").await;
    served = DemoProcess::start_at(port, &envs, inherit()).await;
    let seen: Value = serde_json::from_str(&browser.expect("json").await).unwrap();
    let status = browser.child.wait().await.unwrap();
    assert!(status.success(), "{seen:#}");

    let messages = seen["messages"].as_array().unwrap();
    let texts = |ch: &str| -> Vec<&str> {
        messages
            .iter()
            .filter(|m| m["channel"] == ch)
            .map(|m| m["text"].as_str().unwrap())
            .collect()
    };
    assert_eq!(texts(&a), ["a1", "a2"], "{seen:#}");
    assert_eq!(texts(&b), ["b1", "b2"], "{seen:#}");
    assert_eq!(messages.len(), 4, "no duplicate: {seen:#}");
    assert!(
        seen["opens"].as_u64().unwrap() >= 3,
        "reconnected twice: {seen:#}"
    );
    for m in messages {
        assert!(m["lastEventId"].as_str().unwrap().starts_with("m:"), "{m}");
    }
    served.stop().await;
    poster.stop().await;
}

// The typed Rust client: it keeps the composite id (the opening id-only frame's, then each
// event's) and a second stream resumed from it gets exactly what the first did not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_client_resumes_a_merged_stream_from_its_composite_id() {
    use futures_util::StreamExt;
    use pikku::client::{CallOptions, Client};

    use crate::demo::{ChannelsQuery, stream_channels};

    let demo = DemoProcess::start(&[]).await;
    let token = demo_login(&demo.base, "rui").await;
    let run = std::process::id();
    let (a, b) = (format!("ra{run}"), format!("rb{run}"));
    let query = || ChannelsQuery {
        channels: format!("{a},{b}"),
    };
    let client = Client::new(&demo.base).unwrap();
    let mut first = stream_channels::call(&client, query());
    // The client connects when first polled: publish once it has had time to.
    let (got, _) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(10), first.next()),
        async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let path = format!("/channels/{a}/messages");
            post(&demo, &token, &path, json!({"text": "a1"})).await
        }
    );
    let got = got.unwrap().unwrap().unwrap();
    assert_eq!(
        (got.channel.as_str(), got.text.as_str()),
        (a.as_str(), "a1")
    );
    let id = first.last_event_id().unwrap();
    assert!(id.starts_with("m:") && id.ends_with(",_"), "{id}");
    drop(first);
    post(
        &demo,
        &token,
        &format!("/channels/{b}/messages"),
        json!({"text": "b1"}),
    )
    .await;
    post(
        &demo,
        &token,
        &format!("/channels/{a}/messages"),
        json!({"text": "a2"}),
    )
    .await;
    let options = CallOptions::default().last_event_id(id);
    let mut second = stream_channels::call_with(&client, query(), options);
    let mut texts = Vec::new();
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(10), second.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        texts.push(m.text);
    }
    texts.sort();
    assert_eq!(texts, ["a2", "b1"]);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.next())
            .await
            .is_err(),
        "no duplicate"
    );
    drop(second);
    demo.stop().await;
}
