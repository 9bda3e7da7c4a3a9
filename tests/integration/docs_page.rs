//! The docs page renders doc comments as a safe Markdown subset (headless Chromium).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use pikku::prelude::*;
use serde_json::Value;

use crate::support::*;

pub struct MarkdownServices;

/// Markdown in a doc comment
///
/// Uses `code`, *emphasis*, **strong** and a [link](/docs#schemas), with snake_case_words.
///
/// - first item
/// - second item with `code`
///
/// Raw <b>HTML</b> stays text; [a script link](javascript:alert(1)) stays text.
#[pikku_func(route = "/markdown", auth = false)]
async fn markdown_doc(_s: &MarkdownServices) -> u32 {
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doc_comments_render_as_a_safe_markdown_subset() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let srv = TestServer::pikku(Pikku::new(MarkdownServices)).await;
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(repo.join("tests/browser/docs.mjs"))
            .arg(srv.url("/docs"))
            .arg("markdown_doc")
            .arg("--no-connect")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 90 s")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check failed (it needs tests/browser/node_modules and Chromium: run .ci/run):\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).unwrap();
    let html = seen["descriptions"][0]["html"]
        .as_str()
        .unwrap()
        .to_string();
    for expected in [
        "<code>code</code>",
        "<em>emphasis</em>",
        "<strong>strong</strong>",
        r#"<a href="/docs#schemas" rel="noopener noreferrer">link</a>"#,
        "snake_case_words",
        "<ul class=\"md\"><li>first item</li><li>second item with <code>code</code></li></ul>",
        "Raw &lt;b&gt;HTML&lt;/b&gt; stays text",
        "[a script link](javascript:alert(1)) stays text",
    ] {
        assert!(html.contains(expected), "{expected:?} not in {html}");
    }
    assert!(!html.contains("href=\"javascript"), "{html}");
}
