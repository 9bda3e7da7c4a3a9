//! Many instances sharing Redis (or NATS JetStream): a stream served by one instance gets
//! events published on another, and resumes across instances.

use serde_json::Value;

use crate::hub_suite::{NATS_URL, REDIS_URL, unique_nats_prefix, unique_prefix};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_streams_and_resume_across_each_other() {
    two_instances("redis", REDIS_URL, &unique_prefix("scale")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_nats_share_streams_and_resume_across_each_other() {
    let prefix = unique_nats_prefix("scale");
    two_instances("nats", NATS_URL, &prefix).await;
    let _ = crate::hub_suite::nats_admin()
        .await
        .delete_stream(&prefix)
        .await;
}

async fn two_instances(backend: &str, url: &str, prefix: &str) {
    let env = [
        ("PIKKU_EVENT_HUB", url),
        ("PIKKU_EVENT_HUB_PREFIX", prefix),
        ("PIKKU_SESSION_SECRET", "shared-secret-of-the-two-instances"),
    ];
    let a = DemoProcess::start(&env).await;
    let b = DemoProcess::start(&env).await;
    for inst in [&a, &b] {
        let ready: Value = get(&inst.url("/health/ready")).await.json().await.unwrap();
        assert_eq!(ready["backend"], backend);
        assert_eq!(ready["healthy"], true);
    }
    let token = demo_login(&a.base, "alice").await; // valid on both: shared secret

    // Subscribed on B, published on A.
    let res = client()
        .get(b.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // B's reader is in place before the stream's headers are sent: no wait is needed.
    let mut ev = events(res);
    let id = demo_notify(&a.base, &token, "alice", "from A").await;
    let e = next_event(&mut ev, 10).await.unwrap();
    assert_eq!(
        (e.id.as_str(), json(&e)["message"].as_str().unwrap()),
        (id.as_str(), "from A")
    );

    // Disconnect from B, 3 events on A, reconnect to A with B's last id: exactly those 3.
    drop(ev);
    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(demo_notify(&a.base, &token, "alice", &format!("missed {i}")).await);
    }
    let res = client()
        .get(a.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .header("last-event-id", &e.id)
        .send()
        .await
        .unwrap();
    let mut ev = events(res);
    for (i, id) in missed.iter().enumerate() {
        let got = next_event(&mut ev, 10).await.unwrap();
        assert_eq!(&got.id, id);
        assert_eq!(json(&got)["message"], format!("missed {}", i + 1));
    }
    let nothing_more = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        next_event(&mut ev, 1),
    )
    .await;
    assert!(nothing_more.is_err(), "exactly those 3");
}
