//! The demo's rooms: presence and messages across two instances sharing Redis, and the
//! members of a killed instance disappearing within the presence TTL.

use std::time::{Duration, Instant};

use futures_util::Stream;
use serde_json::{Value, json};

use crate::hub_suite::{
    NATS_URL, PG_URL, REDIS_URL, nats_admin, unique_nats_prefix, unique_pg_prefix, unique_prefix,
};
use crate::support::*;

/// The presence TTL and heartbeat the instances run with (short, so the test is quick).
const TTL_MS: u64 = 1500;
const HEARTBEAT_MS: u64 = 300;

async fn open_room(
    base: &str,
    token: &str,
    room: &str,
) -> impl Stream<Item = eventsource_stream::Event> + Unpin {
    let res = client()
        .get(format!("{base}/rooms/{room}/events"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    events(res)
}

/// The next event named `name` (others skipped), as JSON.
async fn next_named(
    ev: &mut (impl Stream<Item = eventsource_stream::Event> + Unpin),
    name: &str,
) -> Value {
    loop {
        let e = next_event(ev, 10).await.expect("stream open");
        if e.event == name {
            assert!(!e.id.is_empty(), "{name} events carry ids");
            return json(&e);
        }
    }
}

async fn presence(base: &str, token: &str, room: &str) -> Vec<String> {
    let res = client()
        .get(format!("{base}/rooms/{room}/presence"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    serde_json::from_value(body["users"].clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_share_presence_and_messages_across_instances_and_a_killed_instance_leaves() {
    rooms_on_two_instances(REDIS_URL, &unique_prefix("rooms")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_nats_share_presence_across_instances_and_a_killed_instance_leaves() {
    let prefix = unique_nats_prefix("rooms");
    rooms_on_two_instances(NATS_URL, &prefix).await;
    let js = nats_admin().await;
    let _ = js.delete_stream(&prefix).await;
    let _ = js.delete_stream(format!("KV_{prefix}_presence")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_on_postgres_share_presence_across_instances_and_a_killed_instance_leaves() {
    rooms_on_two_instances(PG_URL, &unique_pg_prefix()).await;
}

async fn rooms_on_two_instances(url: &str, prefix: &str) {
    let (ttl, beat) = (TTL_MS.to_string(), HEARTBEAT_MS.to_string());
    let env = [
        ("PIKKU_EVENT_HUB", url),
        ("PIKKU_EVENT_HUB_PREFIX", prefix),
        ("PIKKU_SESSION_SECRET", "shared-secret-of-the-two-instances"),
        ("PIKKU_HUB_PRESENCE_TTL_MS", ttl.as_str()),
        ("PIKKU_HUB_PRESENCE_HEARTBEAT_MS", beat.as_str()),
    ];
    let mut a = DemoProcess::start(&env).await;
    let b = DemoProcess::start(&env).await;
    let alice = demo_login(&a.base, "alice").await;
    let bob = demo_login(&b.base, "bob").await;
    // Session routes: nothing without a session; room names are checked.
    let res = client()
        .get(b.url("/rooms/lobby/presence"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client()
        .get(b.url("/rooms/no%20spaces/presence"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);

    // Bob streams the room on B: his own join first.
    let mut on_b = open_room(&b.base, &bob, "lobby").await;
    assert_eq!(
        next_named(&mut on_b, "join").await,
        json!({"userId": "bob"})
    );

    // Alice joins on A: B's stream and B's presence see her.
    let mut on_a = open_room(&a.base, &alice, "lobby").await;
    assert_eq!(
        next_named(&mut on_b, "join").await,
        json!({"userId": "alice"})
    );
    assert_eq!(presence(&b.base, &bob, "lobby").await, ["alice", "bob"]);
    assert_eq!(presence(&a.base, &alice, "lobby").await, ["alice", "bob"]);

    // A second tab of Alice's (on B) is the same member: no join, and closing it no leave.
    let second_tab = open_room(&b.base, &alice, "lobby").await;
    drop(second_tab);

    // A message posted on B arrives on A's stream, with the sender from the session.
    let res = client()
        .post(b.url("/rooms/lobby/messages"))
        .bearer_auth(&bob)
        .json(&json!({"text": "hello from B"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = loop {
        let e = next_event(&mut on_a, 10).await.expect("stream open");
        if e.event == "message" {
            break e;
        }
    };
    assert_eq!(got.id, id);
    assert_eq!(json(&got), json!({"userId": "bob", "text": "hello from B"}));
    // B saw it too, and no leave of Alice's came before it (her second tab closed, one stays).
    let e = loop {
        let e = next_event(&mut on_b, 10).await.expect("stream open");
        if e.event != "join" {
            break e;
        }
    };
    assert_eq!((e.event.as_str(), e.id.as_str()), ("message", id.as_str()));

    // A dies without cleaning up: Alice disappears from B's presence within the TTL (plus
    // a heartbeat of the survivor, which reaps), and B's stream gets her leave.
    a.child.kill().await.unwrap();
    let killed = Instant::now();
    drop(on_a);
    loop {
        if presence(&b.base, &bob, "lobby").await == ["bob"] {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_millis(TTL_MS + 2 * HEARTBEAT_MS + 500),
            "alice still present {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let gone_after = killed.elapsed();
    assert_eq!(
        next_named(&mut on_b, "leave").await,
        json!({"userId": "alice"})
    );
    eprintln!(
        "{url}: a killed instance's member left B's presence after {gone_after:?} (ttl {TTL_MS} ms, heartbeat {HEARTBEAT_MS} ms)"
    );
}
