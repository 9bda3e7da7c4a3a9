//! The README's Rust: every ```rust block is compiled (it must appear verbatim in
//! `examples/quickstart.rs` or `tests/integration/readme_blocks.rs`, which `cargo test`
//! builds), the Quickstart runs, and what the blocks claim holds.

use std::process::Stdio;
use std::time::Duration;

use pikku::SessionService;
use pikku::prelude::*;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::readme_blocks;
use crate::support::*;

const README: &str = include_str!("../../README.md");
const QUICKSTART: &str = include_str!("../../examples/quickstart.rs");

/// The files that compile README blocks, by path.
const COMPILED: &[(&str, &str)] = &[
    ("examples/quickstart.rs", QUICKSTART),
    (
        "tests/integration/readme_blocks.rs",
        include_str!("readme_blocks.rs"),
    ),
];

/// The fenced blocks of `md` whose info string starts with `rust` (or `rs`), with the line of
/// their opening fence.
fn rust_blocks(md: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, bool, Vec<&str>)> = None;
    for (i, line) in md.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                let lang = info.split([',', ' ', '{']).next().unwrap_or("").trim();
                open = Some((i + 1, lang == "rust" || lang == "rs", Vec::new()));
            }
            (Some(_), Some(_)) => {
                let (at, is_rust, lines) = open.take().unwrap();
                if is_rust {
                    blocks.push((at, lines.join("\n")));
                }
            }
            (Some((_, _, lines)), None) => lines.push(line),
            (None, None) => {}
        }
    }
    blocks
}

/// Lines without their indentation and trailing spaces.
fn normalized(text: &str) -> Vec<&str> {
    text.lines().map(str::trim).collect()
}

fn contains(haystack: &[&str], needle: &[&str]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn every_rust_block_of_the_readme_is_compiled() {
    let blocks = rust_blocks(README);
    assert!(blocks.len() >= 10, "found only {} blocks", blocks.len());
    let files: Vec<(&str, Vec<&str>)> = COMPILED
        .iter()
        .map(|(path, text)| (*path, normalized(text)))
        .collect();
    let missing: Vec<String> = blocks
        .iter()
        .filter(|(_, block)| {
            let block = normalized(block);
            !files.iter().any(|(_, file)| contains(file, &block))
        })
        .map(|(line, block)| {
            format!(
                "README.md:{line}: {}",
                block.lines().next().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "README Rust blocks that no compiled file holds verbatim (add each, with what it needs \
         around it, to tests/integration/readme_blocks.rs):\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_quickstart_is_examples_quickstart_rs_verbatim() {
    let blocks = rust_blocks(README);
    assert!(
        blocks
            .iter()
            .any(|(_, b)| b.trim_end() == QUICKSTART.trim_end()),
        "the README's Quickstart block differs from examples/quickstart.rs"
    );
}

#[test]
fn the_block_finder_sees_every_kind_of_rust_fence() {
    let md = "```rust\na\n```\n```toml\nb\n```\n```rust,ignore\nc\n```\n  ```rs\nd\n  ```\n";
    let found: Vec<String> = rust_blocks(md).into_iter().map(|(_, b)| b).collect();
    assert_eq!(found, ["a", "c", "d"]);
}

/// The Quickstart's binary (built by `cargo test`) serves its routes and logs them.
#[tokio::test]
async fn the_quickstart_runs_streams_publishes_and_logs_its_routes() {
    let mut app = DemoProcess::start_example(
        "quickstart",
        "/openapi.json",
        free_port(),
        &[("RUST_LOG", "info")],
        Stdio::piped(),
    )
    .await;
    let mut updates = events(get(&app.url("/stream/updates")).await);
    let first = next_event(&mut updates, 5).await.expect("an update");
    assert_eq!(json(&first)["data"]["count"], 1);

    let mut messages = events(get(&app.url("/messages")).await);
    let res = client()
        .post(app.url("/messages"))
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res.json::<Value>().await.unwrap()["id"].clone();
    let got = next_event(&mut messages, 5).await.expect("the message");
    assert_eq!(json(&got), json!({"text": "hi"}));
    assert_eq!(json!(got.id), id);

    let mut stderr = app.child.stderr.take().expect("piped");
    app.stop().await;
    let mut log = String::new();
    stderr.read_to_string(&mut log).await.unwrap();
    for route in [
        "mounted GET /stream/updates -> `stream_updates`",
        "mounted POST /messages -> `post_message`",
        "mounted GET /messages -> `messages`",
    ] {
        assert!(log.contains(route), "{route} not in the log:\n{log}");
    }
}

/// README, "The seed's error handling": an `Err` item is one `event: error` and the stream
/// goes on; `?` in `try_stream!` sends it and ends the stream.
#[tokio::test]
async fn an_error_item_lets_the_stream_go_on_and_question_mark_ends_it() {
    let srv = TestServer::pikku(Pikku::new(readme_blocks::errors::Services::default())).await;
    let mut ev = events(get(&srv.url("/stream/checked")).await);
    let kinds = [
        next_event(&mut ev, 5).await.unwrap(),
        next_event(&mut ev, 5).await.unwrap(),
        next_event(&mut ev, 5).await.unwrap(),
    ];
    assert_eq!(json(&kinds[0]), json!({"n": 1}));
    assert_eq!(kinds[1].event, "error");
    assert_eq!(json(&kinds[2]), json!({"n": 3}));

    let srv = TestServer::pikku(Pikku::new(readme_blocks::errors::Services::default())).await;
    let mut ev = events(get(&srv.url("/stream/checked-once")).await);
    assert_eq!(
        json(&next_event(&mut ev, 5).await.unwrap()),
        json!({"n": 1})
    );
    assert_eq!(next_event(&mut ev, 5).await.unwrap().event, "error");
    assert!(
        next_event(&mut ev, 5).await.is_none(),
        "the stream ends after the error"
    );
}

/// Sessions from `x-user` / `x-admin` headers, for the permission tests.
struct HeaderSessions;

impl SessionService for HeaderSessions {
    type Session = readme_blocks::permissions::UserSession;
    async fn load(&self, headers: &http::HeaderMap) -> pikku::Result<Option<Self::Session>> {
        Ok(headers
            .get("x-user")
            .and_then(|v| v.to_str().ok())
            .map(|user| readme_blocks::permissions::UserSession {
                user_id: user.to_string(),
                admin: headers.contains_key("x-admin"),
            }))
    }
}

/// README, "Sessions, auth and permissions": one `is_self` guards a GET and a POST whose
/// inputs differ; `is_admin` looks at the session alone.
#[tokio::test]
async fn one_permission_guards_routes_with_different_inputs() {
    let app = Pikku::new(readme_blocks::permissions::Services::default()).sessions(HeaderSessions);
    let srv = TestServer::pikku(app).await;
    let as_user = |method: reqwest::Method, path: &str, user: &str| {
        client()
            .request(method, srv.url(path))
            .header("x-user", user)
            .timeout(Duration::from_secs(5))
    };
    let stream = |user: &str| as_user(reqwest::Method::GET, "/users/bob/notifications", user);
    assert_eq!(stream("alice").send().await.unwrap().status(), 403);
    let res = stream("bob").send().await.unwrap();
    assert_eq!(res.status(), 200);
    drop(res);

    let post = |user: &str| {
        as_user(reqwest::Method::POST, "/users/bob/notifications", user)
            .json(&json!({"message": "hi"}))
    };
    assert_eq!(post("alice").send().await.unwrap().status(), 403);
    assert_eq!(post("bob").send().await.unwrap().status(), 200);

    let stats = as_user(reqwest::Method::GET, "/admin/stats", "bob");
    assert_eq!(stats.send().await.unwrap().status(), 403);
    let stats = as_user(reqwest::Method::GET, "/admin/stats", "root").header("x-admin", "1");
    assert_eq!(stats.send().await.unwrap().status(), 200);
}
