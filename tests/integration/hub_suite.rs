//! The event hub's behaviour, as one suite any backend must pass.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pikku::event_hub::{GapReason, HubConfig, HubItem, MemoryHub, Subscription};
use pikku::{EventHub, EventHubExt};
use proptest::prelude::*;

/// Backends under test, each built fresh with the given limits and a unique key space.
pub fn backends(cfg: HubConfig) -> Vec<(&'static str, Arc<dyn EventHub>)> {
    vec![(
        "memory",
        Arc::new(MemoryHub::with_config(cfg)) as Arc<dyn EventHub>,
    )]
}

async fn next_item(sub: &mut Subscription) -> HubItem {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an item in time")
        .expect("subscription open")
}

async fn next_seq(sub: &mut Subscription) -> u64 {
    match next_item(sub).await {
        HubItem::Event(e) => e.seq(),
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn ids_increase_per_topic_and_payloads_are_shared() {
    for (name, hub) in backends(HubConfig::default()) {
        let mut a = hub.subscribe("t1").await.unwrap();
        let mut b = hub.subscribe("t1").await.unwrap();
        let id1 = hub.publish("t1", &1).await.unwrap();
        let id2 = hub.publish("t1", &2).await.unwrap();
        hub.publish("t2", &3).await.unwrap();
        assert_ne!(id1, id2, "{name}");
        let (HubItem::Event(ea), HubItem::Event(eb)) =
            (next_item(&mut a).await, next_item(&mut b).await)
        else {
            panic!("{name}: events")
        };
        assert_eq!(ea.id(), id1);
        assert_eq!(
            ea.json().as_ptr(),
            eb.json().as_ptr(),
            "{name}: one serialization, shared bytes"
        );
        assert!(next_seq(&mut a).await > ea.seq(), "{name}: increasing");
    }
}

#[tokio::test]
async fn ten_thousand_subscriptions_opened_and_dropped_leave_none() {
    for (name, hub) in backends(HubConfig::default()) {
        let mut subs = Vec::new();
        for i in 0..10_000 {
            subs.push(hub.subscribe(&format!("topic:{}", i % 100)).await.unwrap());
        }
        assert_eq!(hub.live_subscriptions(), 10_000, "{name}");
        // Half explicitly, half by dropping.
        for s in subs.drain(..5_000) {
            s.unsubscribe();
        }
        assert_eq!(hub.live_subscriptions(), 5_000, "{name}");
        drop(subs);
        assert_eq!(hub.live_subscriptions(), 0, "{name}");
    }
}

#[tokio::test]
async fn resume_from_expired_id_reports_a_gap() {
    for (name, hub) in backends(HubConfig {
        replay_max_events: 5,
        ..HubConfig::default()
    }) {
        let first = hub.publish("t", &0).await.unwrap();
        for n in 1..20 {
            hub.publish("t", &n).await.unwrap();
        }
        let mut sub = hub.subscribe_from("t", Some(&first)).await.unwrap();
        match next_item(&mut sub).await {
            HubItem::Gap {
                reason: GapReason::Expired,
                ..
            } => {}
            other => panic!("{name}: expected an expired gap, got {other:?}"),
        }
    }
}

/// 1,000 subscribers and 10,000 events from 4 concurrent publishers: each subscriber ends
/// with every event exactly once, in order. A subscriber that lags is disconnected and
/// resumes from its last id, as an SSE client does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subscribers_ten_thousand_events_exactly_once() {
    const SUBS: usize = 1_000;
    const EVENTS: u64 = 10_000;
    let cfg = HubConfig {
        replay_max_events: EVENTS as usize,
        subscriber_queue: 256,
        ..HubConfig::default()
    };
    for (name, hub) in backends(cfg) {
        let mut tasks = Vec::new();
        for _ in 0..SUBS {
            let sub = hub.subscribe_from("fan", Some("0")).await.ok();
            let hub = hub.clone();
            tasks.push(tokio::spawn(async move {
                let mut sub = sub;
                let mut last: Option<String> = None;
                let mut count = 0u64;
                let mut expected = 1u64;
                let mut resumes = 0;
                while count < EVENTS {
                    let s = match sub.as_mut() {
                        Some(s) => s,
                        None => {
                            resumes += 1;
                            sub = Some(
                                hub.subscribe_from("fan", last.as_deref().or(Some("0")))
                                    .await
                                    .unwrap(),
                            );
                            continue;
                        }
                    };
                    match next_item(s).await {
                        HubItem::Event(e) => {
                            assert_eq!(e.seq(), expected, "no gap, no duplicate");
                            expected += 1;
                            count += 1;
                            last = Some(e.id().to_string());
                        }
                        HubItem::Lagged { .. } => sub = None,
                        HubItem::Gap { reason, .. } => panic!("unexpected gap {reason:?}"),
                    }
                }
                resumes
            }));
        }
        let publishers: Vec<_> = (0..4)
            .map(|_| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for n in 0..EVENTS / 4 {
                        hub.publish("fan", &n).await.unwrap();
                        if n % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for p in publishers {
            p.await.unwrap();
        }
        let mut resumed = 0;
        for t in tasks {
            resumed += t.await.unwrap();
        }
        eprintln!("{name}: {resumed} lagged resumes");
        assert!(
            tokio::time::timeout(Duration::from_secs(5), async {
                while hub.live_subscriptions() > 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await
            .is_ok(),
            "{name}: all unsubscribed"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// Resume hand-over under concurrent publishing: whatever the resume point and however
    /// publishing interleaves with the subscribe, the subscriber sees exactly the events after
    /// its resume point, in order.
    #[test]
    fn resume_hand_over_is_exact(before in 0u64..50, resume_at in 0u64..50, during in 1u64..100) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let resume_at = resume_at.min(before);
            for (name, hub) in backends(HubConfig::default()) {
                for n in 0..before {
                    hub.publish("p", &n).await.unwrap();
                }
                let publisher = {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        for n in 0..during {
                            hub.publish("p", &n).await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                };
                let resume = resume_at.to_string();
                let mut sub = hub.subscribe_from("p", Some(&resume)).await.unwrap();
                publisher.await.unwrap();
                let mut expected = resume_at + 1;
                while expected <= before + during {
                    let got = next_seq(&mut sub).await;
                    assert_eq!(got, expected, "{name}");
                    expected += 1;
                }
                assert!(
                    tokio::time::timeout(Duration::from_millis(50), sub.next()).await.is_err(),
                    "{name}: nothing after the last event"
                );
            }
        });
    }
}
