//! `hundred-k` at a small size against the real Redis hub (127.0.0.1:6379, or
//! `HUNDRED_K_REDIS`): 2,000 streams over 2 bench-app instances from 2 worker processes, on a
//! port each and on one shared port (`--one-port`).
//! The run must open every stream, see a heartbeat on every one, and deliver the one
//! notification (published through the other instance) to exactly its user's stream; the
//! binary exits non-zero otherwise, and the figures it prints are checked here too.
//!
//! Needs the release bench app: `cargo build --release --example bench -p pikku-suite`
//! (`hundred-k` looks for `examples/bench` next to itself, then in the release dir).

use std::process::Command;

use serde_json::Value;

/// Runs `hundred-k` at 2,000 streams on 2 instances (plus `extra`) and returns its JSON
/// outcome and its stdout, after checking what every run must hold.
fn run(extra: &[&str]) -> (Value, String) {
    let redis =
        std::env::var("HUNDRED_K_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let run = Command::new(env!("CARGO_BIN_EXE_hundred-k"))
        .args(["--streams", "2000", "--instances", "2", "--workers", "2"])
        .args(["--heartbeat-ms", "1000", "--idle-s", "3", "--redis", &redis])
        .args(extra)
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
    (out, stdout.into_owned())
}

/// Both runs in one test, one after the other: each reads `/proc/net/tcp`, which the other's
/// connections would be changing at the same time.
#[test]
fn two_thousand_streams_on_two_instances_a_port_each_and_on_one_shared_port() {
    a_port_each();
    one_shared_port();
}

fn a_port_each() {
    let (out, stdout) = run(&[]);
    let user = out["user"].as_u64().expect("a user");
    assert_ne!(
        out["holder"], out["via"],
        "published through another instance"
    );
    assert_eq!(out["holder"].as_u64(), Some(user % 2));
    // Stream i goes to instance i % 2.
    assert_eq!(
        out["per_instance"],
        serde_json::json!([1000, 1000]),
        "{stdout}"
    );
}

/// Both instances on one port (`SO_REUSEPORT`): the kernel spreads the streams over both,
/// and the notification, published through the shared port to whichever instance the kernel
/// picks, still reaches exactly the user's stream on whichever holds it (checked in `run`).
fn one_shared_port() {
    let (out, stdout) = run(&["--one-port"]);
    assert_eq!(out["one_port"], true, "{stdout}");
    assert_eq!(out["holder"], Value::Null, "the kernel's pick: {stdout}");
    let per: Vec<u64> = out["per_instance"]
        .as_array()
        .expect("per_instance")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(per.len(), 2, "{stdout}");
    assert_eq!(
        per.iter().sum::<u64>(),
        2000,
        "every stream on one of them: {stdout}"
    );
    assert!(
        per.iter().all(|n| *n > 0),
        "the kernel gave both instances streams: {stdout}"
    );
}
