//! `hundred-k` at a small size against the real Redis hub (127.0.0.1:6379, or
//! `HUNDRED_K_REDIS`): 2,000 streams over 2 bench-app instances from 2 worker processes.
//! The run must open every stream, see a heartbeat on every one, and deliver the one
//! notification (published through the other instance) to exactly its user's stream; the
//! binary exits non-zero otherwise, and the figures it prints are checked here too.
//!
//! Needs the release bench app: `cargo build --release --example bench -p pikku-suite`
//! (`hundred-k` looks for `examples/bench` next to itself, then in the release dir).

use std::process::Command;

use serde_json::Value;

#[test]
fn two_thousand_streams_on_two_instances_one_notification_to_the_right_stream() {
    let redis =
        std::env::var("HUNDRED_K_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run = Command::new(env!("CARGO_BIN_EXE_hundred-k"))
        .args(["--streams", "2000", "--instances", "2", "--workers", "2"])
        .args(["--heartbeat-ms", "1000", "--idle-s", "3", "--redis", &redis])
        .arg("--json")
        .output()
        .expect("run hundred-k");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "hundred-k failed ({}):\n{stdout}\n{stderr}",
        run.status
    );
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in:\n{stdout}"));
    let out: Value = serde_json::from_str(json).expect("the JSON line parses");

    assert_eq!(out["opened"], 2000, "{stdout}");
    assert_eq!(
        out["with_heartbeat"], 2000,
        "every stream got a heartbeat: {stdout}"
    );
    assert_eq!(out["events_before"], 0, "{stdout}");
    let user = out["user"].as_u64().expect("a user");
    assert_ne!(
        out["holder"], out["via"],
        "published through another instance"
    );
    assert_eq!(out["holder"].as_u64(), Some(user % 2));
    assert_eq!(
        out["delivered_to"],
        serde_json::json!([[user, 1]]),
        "exactly the user's stream got the one event: {stdout}"
    );
    assert_eq!(out["events_after"], 1, "{stdout}");
    assert_eq!(out["user_seq"], 0, "{stdout}");
    assert!(out["deliver_ms"].as_f64().is_some(), "{stdout}");
    assert!(out["rss_per_stream_kib"].as_f64().is_some_and(|k| k > 0.0));
    assert!(
        out["checks"]
            .as_array()
            .is_some_and(|c| c.len() >= 5 && c.iter().all(|c| c["passed"] == true)),
        "{stdout}"
    );
}
