//! The event hub's behaviour, as one suite every backend passes: the embedded `MemoryHub`,
//! `RedisHub` (against the real server at 127.0.0.1:6379), `NatsHub` (against the real NATS
//! JetStream server at 127.0.0.1:4222) and `PgHub` (against the real PostgreSQL at
//! 127.0.0.1:5432), each test in its own key prefix, stream or tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use pikku::event_hub::nats::NatsHub;
use pikku::event_hub::postgres::PgHub;
use pikku::event_hub::redis::RedisHub;
use pikku::event_hub::{
    GapReason, HubConfig, HubError, HubItem, MemoryHub, SlowConsumerPolicy, Subscription,
};
use pikku::{EventHub, EventHubExt};
use proptest::prelude::*;
use serde_json::json;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const NATS_URL: &str = "nats://127.0.0.1:4222";

/// A key prefix no other test (or earlier run) uses.
pub fn unique_prefix(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "pikku-test:{what}:{}:{nanos}:{}:",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A NATS subject prefix (and stream) no other test or earlier run uses.
pub fn unique_nats_prefix(what: &str) -> String {
    unique_prefix(what)
        .trim_end_matches(':')
        .replace([':', '.'], "_")
}

/// An operator's handle on the test NATS server (to purge subjects, inspect and delete streams).
pub async fn nats_admin() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(NATS_URL).await.unwrap())
}

/// Deletes test streams older than ten minutes (left by earlier runs; the shared server would
/// otherwise keep a stream per test forever). Once per test process.
async fn sweep_old_test_streams() {
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let js = nats_admin().await;
    let cutoff = std::time::SystemTime::now() - Duration::from_secs(600);
    let mut streams = js.streams();
    let mut old = Vec::new();
    while let Some(Ok(info)) = streams.next().await {
        let created = std::time::SystemTime::from(info.created);
        // `KV_...`: the presence buckets of test hubs.
        let test = ["pikku-test_", "KV_pikku-test_"]
            .iter()
            .any(|p| info.config.name.starts_with(p));
        if test && created < cutoff {
            old.push(info.config.name);
        }
    }
    for name in old {
        let _ = js.delete_stream(&name).await;
    }
}

pub const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A table prefix no other hub uses: `pikku_test_<pid>.h<n>`. The first call drops the schemas
/// that earlier test processes (no longer running) left behind.
pub fn unique_pg_prefix() -> String {
    static CLEANED: std::sync::Once = std::sync::Once::new();
    static N: AtomicUsize = AtomicUsize::new(0);
    CLEANED.call_once(|| {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(drop_stale_pg_schemas());
        })
        .join()
        .unwrap();
    });
    format!(
        "pikku_test_{}.h{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn drop_stale_pg_schemas() {
    let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers at 127.0.0.1:5432 (database `test`)");
    tokio::spawn(conn);
    let rows = client
        .query(
            r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'pikku\_test\_%'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let schema: String = row.get(0);
        let pid = schema.trim_start_matches("pikku_test_");
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await;
        }
    }
}

/// A PostgreSQL hub in tables of its own.
pub fn pg_hub(cfg: HubConfig) -> PgHub {
    PgHub::open(PG_URL, &unique_pg_prefix(), cfg).unwrap()
}

/// Backends under test, each built fresh with the given limits.
pub async fn backends(cfg: HubConfig) -> Vec<(&'static str, Arc<dyn EventHub>)> {
    sweep_old_test_streams().await;
    let nats = NatsHub::connect(NATS_URL, &unique_nats_prefix("suite"), cfg.clone())
        .await
        .unwrap();
    vec![
        (
            "memory",
            Arc::new(MemoryHub::with_config(cfg.clone())) as Arc<dyn EventHub>,
        ),
        (
            "redis",
            Arc::new(RedisHub::open(REDIS_URL, &unique_prefix("suite"), cfg.clone()).unwrap()),
        ),
        ("nats", Arc::new(nats)),
        ("postgres", Arc::new(pg_hub(cfg))),
    ]
}

async fn next_item(sub: &mut Subscription) -> HubItem {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an item in time")
        .expect("subscription open")
}

async fn next_event(sub: &mut Subscription) -> pikku::event_hub::HubEvent {
    match next_item(sub).await {
        HubItem::Event(e) => e,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn until_no_subscriptions(hub: &Arc<dyn EventHub>) -> bool {
    tokio::time::timeout(Duration::from_secs(5), async {
        while hub.live_subscriptions() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn ids_increase_per_topic_and_payloads_are_shared() {
    for (name, hub) in backends(HubConfig::default()).await {
        let mut a = hub.subscribe("t1").await.unwrap();
        let mut b = hub.subscribe("t1").await.unwrap();
        let id1 = hub.publish("t1", &1).await.unwrap();
        let id2 = hub.publish("t1", &2).await.unwrap();
        hub.publish("t2", &3).await.unwrap();
        assert_ne!(id1, id2, "{name}");
        let (ea, eb) = (next_event(&mut a).await, next_event(&mut b).await);
        assert_eq!(ea.id(), id1, "{name}");
        assert_eq!(
            ea.json().as_ptr(),
            eb.json().as_ptr(),
            "{name}: one copy, shared bytes"
        );
        let e2 = next_event(&mut a).await;
        assert_eq!(e2.id(), id2, "{name}");
        assert!(e2.seq() > ea.seq(), "{name}: increasing");
        assert_eq!(e2.json().as_ref(), b"2", "{name}");
        assert!(
            String::from_utf8_lossy(e2.frame::<u32>().bytes()).starts_with(&format!("id: {id2}\n")),
            "{name}"
        );
    }
}

#[tokio::test]
async fn ten_thousand_subscriptions_opened_and_dropped_leave_none() {
    for (name, hub) in backends(HubConfig::default()).await {
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
async fn resume_replays_exactly_the_missed_events_then_live() {
    for (name, hub) in backends(HubConfig::default()).await {
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(hub.publish("r", &n).await.unwrap());
        }
        let mut sub = hub.subscribe_from("r", Some(&ids[1])).await.unwrap();
        let live = hub.publish("r", &5).await.unwrap();
        let got: Vec<String> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(next_event(&mut sub).await.id().to_string());
            }
            v
        };
        assert_eq!(
            got,
            [ids[2].clone(), ids[3].clone(), ids[4].clone(), live],
            "{name}"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err(),
            "{name}: no duplicate"
        );
    }
}

/// A snapshot's position, used as `Last-Event-ID`, resumes with exactly the events published
/// after it; a topic without history has no position, and `earliest` then yields everything.
#[tokio::test]
async fn position_as_last_event_id_resumes_with_exactly_the_later_events() {
    async fn ids(sub: &mut Subscription, n: usize) -> Vec<String> {
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(next_event(sub).await.id().to_string());
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err(),
            "nothing more"
        );
        v
    }
    for (name, hub) in backends(HubConfig::default()).await {
        assert_eq!(hub.position("p").await.unwrap(), None, "{name}: no history");
        let mut before = Vec::new();
        for n in 0..3 {
            before.push(hub.publish("p", &n).await.unwrap());
        }
        let mut sub = hub.subscribe_from("p", Some("earliest")).await.unwrap();
        assert_eq!(ids(&mut sub, 3).await, before, "{name}: earliest");
        drop(sub);
        let at = hub.position("p").await.unwrap().expect("a position");
        assert_eq!(at.to_string(), before[2], "{name}: the newest event's id");
        let mut after = Vec::new();
        for n in 3..8 {
            after.push(hub.publish("p", &n).await.unwrap());
        }
        let mut sub = hub
            .subscribe_from("p", Some(&at.to_string()))
            .await
            .unwrap();
        assert_eq!(
            ids(&mut sub, 5).await,
            after,
            "{name}: exactly the later events"
        );
    }
}

#[tokio::test]
async fn resume_from_an_expired_or_unknown_id_is_said() {
    for (name, hub) in backends(HubConfig {
        replay_max_events: 5,
        ..HubConfig::default()
    })
    .await
    {
        let first = hub.publish("t", &0).await.unwrap();
        // Redis trims whole nodes (`MAXLEN ~`), so publish well past the cap.
        for n in 1..500 {
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
        for bogus in ["not-an-id", "99999999999999999-0", "7"] {
            let mut sub = hub.subscribe_from("t", Some(bogus)).await.unwrap();
            match next_item(&mut sub).await {
                HubItem::Gap {
                    reason: GapReason::UnknownId,
                    ..
                } if bogus != "7" => {}
                HubItem::Gap {
                    reason: GapReason::UnknownId | GapReason::Expired,
                    ..
                } => {}
                other => panic!("{name}: {bogus}: expected a gap, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn a_lagging_subscriber_gets_the_policy_and_the_publisher_never_waits() {
    for policy in [SlowConsumerPolicy::Disconnect, SlowConsumerPolicy::Skip] {
        let cfg = HubConfig {
            subscriber_queue: 8,
            slow_consumer: policy,
            ..HubConfig::default()
        };
        for (name, hub) in backends(cfg).await {
            let mut slow = hub.subscribe("lag").await.unwrap();
            let started = std::time::Instant::now();
            for n in 0..100 {
                hub.publish("lag", &n).await.unwrap();
            }
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name}: publisher not stalled"
            );
            // Let a backend's reader fan the events out before the laggard reads.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut saw_policy = false;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), slow.next()).await {
                    Ok(Some(HubItem::Lagged { .. })) => {
                        assert_eq!(policy, SlowConsumerPolicy::Disconnect, "{name}");
                        assert!(
                            slow.next().await.is_none(),
                            "{name}: disconnected after lagged"
                        );
                        saw_policy = true;
                        break;
                    }
                    Ok(Some(HubItem::Gap {
                        reason: GapReason::Lagged,
                        missed,
                    })) => {
                        assert_eq!(policy, SlowConsumerPolicy::Skip, "{name}");
                        assert!(missed.unwrap_or(0) > 0);
                        saw_policy = true;
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            assert!(saw_policy, "{name}: {policy:?} applied");
        }
    }
}

/// 1,000 subscribers and 10,000 events from 4 concurrent publishers: each subscriber ends
/// with exactly the published events, each once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_subscribers_ten_thousand_events_exactly_once() {
    const SUBS: usize = 1_000;
    const PUBLISHERS: u64 = 4;
    const EVENTS: u64 = 10_000;
    let cfg = HubConfig {
        replay_max_events: EVENTS as usize,
        subscriber_queue: 16_384,
        ..HubConfig::default()
    };
    for (name, hub) in backends(cfg).await {
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..SUBS {
            let mut sub = hub.subscribe("fan").await.unwrap();
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::with_capacity(EVENTS as usize);
                for _ in 0..EVENTS {
                    seqs.push(next_event(&mut sub).await.seq());
                }
                let extra = tokio::time::timeout(Duration::from_millis(200), sub.next()).await;
                assert!(extra.is_err(), "nothing beyond what was published");
                seqs
            }));
        }
        let publishers: Vec<_> = (0..PUBLISHERS)
            .map(|p| {
                let hub = hub.clone();
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    for n in 0..EVENTS / PUBLISHERS {
                        ids.push(hub.publish("fan", &json!({"p": p, "n": n})).await.unwrap());
                    }
                    ids
                })
            })
            .collect();
        let mut published = Vec::new();
        for p in publishers {
            published.extend(p.await.unwrap());
        }
        // The ids the publishers got back, in topic order, are what every subscriber saw.
        let probe = hub.subscribe_from("fan", Some("0")).await.unwrap();
        let mut order: Vec<(u64, String)> = Vec::new();
        let mut probe = probe;
        for _ in 0..EVENTS {
            let e = next_event(&mut probe).await;
            order.push((e.seq(), e.id().to_string()));
        }
        drop(probe);
        let mut published_sorted: Vec<String> = published;
        let seq_of: HashMap<String, u64> = order.iter().map(|(s, id)| (id.clone(), *s)).collect();
        published_sorted.sort_by_key(|id| seq_of[id]);
        let expected: Vec<u64> = published_sorted.iter().map(|id| seq_of[id]).collect();
        assert_eq!(
            expected.len() as u64,
            EVENTS,
            "{name}: every publish has its own id"
        );
        for t in tasks {
            assert!(
                t.await.unwrap() == expected,
                "{name}: exactly the published events, once, in order"
            );
        }
        assert!(
            until_no_subscriptions(&hub).await,
            "{name}: all unsubscribed"
        );
        eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    }
}

/// Kills the Redis hub's connections (every client of its private db) several times while
/// events are published; every subscriber still ends with every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_connection_kills_lose_and_duplicate_nothing() {
    const SUBS: usize = 20;
    const EVENTS: u64 = 600;
    const DB: u8 = 9; // this test's own db, so kills spare other tests' connections
    let hub: Arc<dyn EventHub> = Arc::new(
        RedisHub::open(
            &format!("{REDIS_URL}/{DB}"),
            &unique_prefix("fault"),
            HubConfig::default(),
        )
        .unwrap(),
    );
    let admin = redis::Client::open(REDIS_URL).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..SUBS {
        let mut sub = hub.subscribe("faulty").await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut ids = Vec::new();
            // Until the last payload: a publish whose reply was lost may land twice.
            while seen.last() != Some(&(EVENTS - 1)) {
                let e = next_event(&mut sub).await;
                ids.push(e.seq());
                seen.push(serde_json::from_slice::<u64>(e.json()).unwrap());
            }
            (seen, ids)
        }));
    }
    let failures = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let (hub, failures) = (hub.clone(), failures.clone());
        tokio::spawn(async move {
            for n in 0..EVENTS {
                // A failed publish is retried by the caller: the hub said it failed.
                while hub.publish("faulty", &n).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        })
    };
    let mut kills = 0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(120)).await;
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut admin)
            .await
            .unwrap();
        for line in list.lines().filter(|l| l.contains(&format!(" db={DB} "))) {
            if let Some(id) = line.split(' ').find_map(|f| f.strip_prefix("id=")) {
                let _: redis::RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("ID")
                    .arg(id)
                    .query_async(&mut admin)
                    .await;
                kills += 1;
            }
        }
    }
    publisher.await.unwrap();
    assert!(kills >= 5, "connections were killed ({kills})");
    for t in tasks {
        let (seen, ids) = t.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "no duplicate delivery");
        // Every payload, in order; a publish whose reply was lost may have landed twice.
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(dedup, (0..EVENTS).collect::<Vec<_>>(), "no gap");
        assert!(seen.len() - dedup.len() <= failures.load(Ordering::Relaxed));
    }
}

#[tokio::test]
async fn redis_down_is_a_clear_error_and_visible_in_status() {
    let hub = RedisHub::open(
        "redis://127.0.0.1:1",
        "pikku-test:down:",
        HubConfig::default(),
    )
    .unwrap();
    assert!(hub.status().healthy, "unknown until tried");
    let started = std::time::Instant::now();
    let err = hub.publish("t", &1).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    assert!(!hub.status().healthy);
    assert!(hub.status().detail.is_some());
    let as_http: pikku::PikkuError = err.into();
    assert_eq!(as_http.status(), 503);
    assert!(hub.subscribe("t").await.is_err());
}

async fn expect_gap(sub: &mut Subscription, reason: GapReason) -> Option<u64> {
    match next_item(sub).await {
        HubItem::Gap { reason: r, missed } if r == reason => missed,
        other => panic!("expected a {reason:?} gap, got {other:?}"),
    }
}

/// A JetStream purge of a topic's subject (an operator deleting its history) is never
/// silent: a whole purge makes the next publish start a new epoch, so resuming and live
/// clients get a `reset` gap; a partial purge shows as an `expired` gap with the count.
#[tokio::test]
async fn nats_purge_is_a_reset_or_an_expired_gap_never_silence() {
    let hub = NatsHub::connect(NATS_URL, &unique_nats_prefix("purge"), HubConfig::default())
        .await
        .unwrap();
    let js = nats_admin().await;
    let stream = js.get_stream(hub.stream_name()).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(hub.publish("p", &n).await.unwrap());
    }
    let mut live = hub.subscribe("p").await.unwrap();

    stream.purge().filter(hub.subject("p")).await.unwrap();
    // Nothing published since: the history the client resumes from is gone.
    let mut sub = hub.subscribe_from("p", Some(&ids[1])).await.unwrap();
    expect_gap(&mut sub, GapReason::Reset).await;

    // The next publish starts a new epoch at offset 1.
    let fresh = hub.publish("p", &3).await.unwrap();
    let (old_epoch, _) = ids[2].split_once('-').unwrap();
    let (new_epoch, offset) = fresh.split_once('-').unwrap();
    assert_ne!(old_epoch, new_epoch);
    assert_eq!(offset, "1");
    // The resumed client was told already; the live one learns it now.
    assert_eq!(next_event(&mut sub).await.id(), fresh);
    expect_gap(&mut live, GapReason::Reset).await;
    assert_eq!(next_event(&mut live).await.id(), fresh);
    let mut resumed = hub.subscribe_from("p", Some(&ids[2])).await.unwrap();
    expect_gap(&mut resumed, GapReason::Reset).await;
    assert_eq!(next_event(&mut resumed).await.id(), fresh);

    // A partial purge (all but the newest two): a client after `fresh` missed two events.
    let mut later = Vec::new();
    for n in 4..8 {
        later.push(hub.publish("p", &n).await.unwrap());
    }
    stream
        .purge()
        .filter(hub.subject("p"))
        .keep(2)
        .await
        .unwrap();
    let mut sub = hub.subscribe_from("p", Some(&fresh)).await.unwrap();
    assert_eq!(expect_gap(&mut sub, GapReason::Expired).await, Some(2));
    assert_eq!(next_event(&mut sub).await.id(), later[2]);
    assert_eq!(next_event(&mut sub).await.id(), later[3]);
    // The live subscriber saw them all, in order.
    for id in &later {
        assert_eq!(next_event(&mut live).await.id(), *id);
    }
    let _ = js.delete_stream(hub.stream_name()).await;
}

#[tokio::test]
async fn nats_unreachable_is_a_quick_clear_error() {
    let started = std::time::Instant::now();
    let Err(err) = NatsHub::connect(
        "nats://127.0.0.1:1",
        "pikku-test_down",
        HubConfig::default(),
    )
    .await
    else {
        panic!("connected to nothing");
    };
    assert!(started.elapsed() < Duration::from_secs(10), "fails fast");
    let as_http: pikku::PikkuError = err.into();
    assert_eq!(as_http.status(), 503);
}

/// A TCP proxy in front of NATS that a test can cut (every connection through it closes) and
/// take down (new connections are closed at once).
struct Proxy {
    url: String,
    conns: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    up: Arc<std::sync::atomic::AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("nats://{}", listener.local_addr().unwrap());
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let accept = {
            let (conns, up) = (conns.clone(), up.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    if !up.load(Ordering::SeqCst) {
                        continue;
                    }
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect("127.0.0.1:4222").await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        Proxy {
            url,
            conns,
            up,
            accept,
        }
    }
    /// Closes every connection through the proxy; returns how many were open.
    fn cut(&self) -> usize {
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        let open = conns.iter().filter(|c| !c.is_finished()).count();
        conns.iter().for_each(|c| c.abort());
        open
    }
    /// Waits (up to 5 s) until a client has connected through the proxy again.
    async fn until_connected(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while !self.conns.lock().unwrap().iter().any(|c| !c.is_finished()) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Cuts the NATS hub's connection several times while another instance publishes: every
/// subscriber still ends with every event exactly once, in order (the reconnect reads what
/// was missed from the stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_connection_cuts_lose_and_duplicate_nothing() {
    const SUBS: usize = 20;
    const EVENTS: u64 = 600;
    let prefix = unique_nats_prefix("cuts");
    let proxy = Proxy::start().await;
    let hub: Arc<dyn EventHub> = Arc::new(
        NatsHub::connect(&proxy.url, &prefix, HubConfig::default())
            .await
            .unwrap(),
    );
    // Publishes on its own connection, which the cuts spare.
    let publisher = NatsHub::connect(NATS_URL, &prefix, HubConfig::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..SUBS {
        let mut sub = hub.subscribe("faulty").await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut seqs = Vec::new();
            while seen.last() != Some(&(EVENTS - 1)) {
                let e = next_event(&mut sub).await;
                seqs.push(e.seq());
                seen.push(serde_json::from_slice::<u64>(e.json()).unwrap());
            }
            (seen, seqs)
        }));
    }
    let publishing = tokio::spawn(async move {
        for n in 0..EVENTS {
            publisher.publish("faulty", &n).await.unwrap();
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        publisher
    });
    let mut cuts = 0;
    for _ in 0..5 {
        proxy.until_connected().await;
        tokio::time::sleep(Duration::from_millis(60)).await;
        cuts += proxy.cut();
    }
    let publisher = publishing.await.unwrap();
    assert!(cuts >= 5, "connections were cut ({cuts})");
    for t in tasks {
        let (seen, seqs) = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "no duplicate delivery"
        );
        assert_eq!(
            seen,
            (0..EVENTS).collect::<Vec<_>>(),
            "every event, once, in order"
        );
    }
    let _ = nats_admin()
        .await
        .delete_stream(publisher.stream_name())
        .await;
}

/// While NATS is unreachable a publish fails within seconds with a 503 and the status says
/// so; when it is back, the hub recovers by itself, and its subscribers get what other
/// instances published meanwhile (read from the stream, with no new event to reveal the hole).
#[tokio::test]
async fn nats_outage_is_a_503_in_status_and_recovers() {
    let proxy = Proxy::start().await;
    let prefix = unique_nats_prefix("outage");
    let hub = NatsHub::connect(&proxy.url, &prefix, HubConfig::default())
        .await
        .unwrap();
    let other = NatsHub::connect(NATS_URL, &prefix, HubConfig::default())
        .await
        .unwrap();
    let mut sub = hub.subscribe("missed").await.unwrap();
    hub.publish("t", &0).await.unwrap();
    assert!(hub.status().healthy);
    proxy.set_up(false);
    proxy.cut();
    let mut missed = Vec::new();
    for n in 0..5 {
        missed.push(other.publish("missed", &n).await.unwrap());
    }
    let started = std::time::Instant::now();
    let err = hub.publish("t", &1).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    let as_http: pikku::PikkuError = err.into();
    assert_eq!(as_http.status(), 503);
    assert!(!hub.status().healthy);
    assert!(hub.status().detail.is_some());
    assert!(!hub.check().await.healthy);
    proxy.set_up(true);
    let recovered = tokio::time::timeout(Duration::from_secs(10), async {
        while hub.publish("t", &2).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(recovered.is_ok(), "publishes again once NATS is back");
    assert!(hub.status().healthy);
    for id in &missed {
        assert_eq!(next_event(&mut sub).await.id(), *id);
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .is_err(),
        "each once"
    );
    let _ = nats_admin().await.delete_stream(hub.stream_name()).await;
}

/// Several instances publishing to one topic at once (each on its own connection): every
/// publish gets its own offset, offsets stay dense, and a subscriber on another instance sees
/// each accepted event once, with the payload its publisher sent under that id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_instances_publishing_one_topic_never_share_an_offset() {
    const PER_PUBLISHER: u64 = 150;
    let prefix = unique_nats_prefix("instances");
    let cfg = HubConfig::default();
    let reader = NatsHub::connect(NATS_URL, &prefix, cfg.clone())
        .await
        .unwrap();
    let mut sub = reader.subscribe("shared").await.unwrap();
    let mut publishers = Vec::new();
    for p in 0..3u64 {
        let hub = NatsHub::connect(NATS_URL, &prefix, cfg.clone())
            .await
            .unwrap();
        publishers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0..PER_PUBLISHER {
                let payload = p * 1000 + n;
                sent.push((hub.publish("shared", &payload).await.unwrap(), payload));
            }
            sent
        }));
    }
    let mut sent: HashMap<String, u64> = HashMap::new();
    for p in publishers {
        for (id, payload) in p.await.unwrap() {
            assert!(sent.insert(id, payload).is_none(), "an id given twice");
        }
    }
    let total = 3 * PER_PUBLISHER;
    for offset in 1..=total {
        let e = next_event(&mut sub).await;
        assert_eq!(e.seq(), offset, "dense offsets, in order");
        let payload: u64 = serde_json::from_slice(e.json()).unwrap();
        assert_eq!(
            sent.get(e.id()),
            Some(&payload),
            "the payload published as {}",
            e.id()
        );
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(200), sub.next())
            .await
            .is_err(),
        "no refused publish reached subscribers"
    );
    let _ = nats_admin().await.delete_stream(reader.stream_name()).await;
}

#[tokio::test]
async fn nats_budgets_refuse_with_errors() {
    let hub = NatsHub::connect(
        NATS_URL,
        &unique_nats_prefix("budgets"),
        HubConfig {
            max_event_bytes: 100,
            max_topics: 2,
            ..HubConfig::default()
        },
    )
    .await
    .unwrap();
    let err = hub.publish("t", &"x".repeat(200)).await.unwrap_err();
    assert!(
        matches!(err, HubError::TooLarge { max: 100, .. }),
        "{err:?}"
    );
    assert_eq!(pikku::PikkuError::from(err).status(), 413);
    let a = hub.subscribe("a").await.unwrap();
    let _b = hub.subscribe("b").await.unwrap();
    let err = hub.subscribe("c").await.unwrap_err();
    assert!(matches!(err, HubError::TooManyTopics { max: 2 }), "{err:?}");
    drop(a);
    assert_eq!(
        hub.active_topics(),
        1,
        "a topic leaves with its last subscriber"
    );
    hub.subscribe("c").await.unwrap();
    let _ = nats_admin().await.delete_stream(hub.stream_name()).await;
}

/// The hub's stream deleted under it (an operator, a server that lost its data): the next
/// publish creates it again and starts a new epoch, which subscribers see as a reset.
#[tokio::test]
async fn nats_deleted_stream_is_recreated_with_a_reset() {
    let hub = NatsHub::connect(
        NATS_URL,
        &unique_nats_prefix("deleted"),
        HubConfig::default(),
    )
    .await
    .unwrap();
    let old = hub.publish("t", &1).await.unwrap();
    let mut live = hub.subscribe("t").await.unwrap();
    nats_admin()
        .await
        .delete_stream(hub.stream_name())
        .await
        .unwrap();
    let fresh = hub.publish("t", &2).await.unwrap();
    assert!(fresh.ends_with("-1") && fresh != old, "{old} then {fresh}");
    expect_gap(&mut live, GapReason::Reset).await;
    assert_eq!(next_event(&mut live).await.id(), fresh);
    let mut resumed = hub.subscribe_from("t", Some(&old)).await.unwrap();
    expect_gap(&mut resumed, GapReason::Reset).await;
    assert_eq!(next_event(&mut resumed).await.id(), fresh);
    let _ = nats_admin().await.delete_stream(hub.stream_name()).await;
}

/// A resume into a long history (two topics interleaved, so the stream's sequences of one
/// topic are not contiguous) yields exactly the events after the resume point, wherever it is.
#[tokio::test]
async fn nats_resume_in_a_long_history_is_exact() {
    let hub = NatsHub::connect(
        NATS_URL,
        &unique_nats_prefix("long"),
        HubConfig {
            replay_max_events: 700,
            ..HubConfig::default()
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..1000u64 {
        ids.push(hub.publish("a", &n).await.unwrap());
        if n % 3 == 0 {
            hub.publish("b", &n).await.unwrap();
        }
    }
    // The window holds the newest 700: 300..999.
    for resume_at in [300usize, 301, 500, 990, 998] {
        let mut sub = hub
            .subscribe_from("a", Some(&ids[resume_at - 1]))
            .await
            .unwrap();
        for n in resume_at as u64..1000 {
            let e = next_event(&mut sub).await;
            assert_eq!(e.id(), ids[n as usize], "resumed after {}", resume_at - 1);
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err()
        );
    }
    // Trimmed: an expired gap counting what left the window, then the window.
    let mut sub = hub.subscribe_from("a", Some(&ids[99])).await.unwrap();
    assert_eq!(expect_gap(&mut sub, GapReason::Expired).await, Some(200));
    assert_eq!(next_event(&mut sub).await.id(), ids[300]);
    // The history reads' consumers are removed, not left to expire.
    let js = nats_admin().await;
    let consumers_gone = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let mut stream = js.get_stream(hub.stream_name()).await.unwrap();
            if stream.info().await.unwrap().state.consumer_count == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(consumers_gone.is_ok(), "history consumers deleted");
    let _ = js.delete_stream(hub.stream_name()).await;
}

/// A topic whose every event outlived `replay_max_age` has no history left: the next publish
/// starts a new epoch, and a client resuming from before gets a `reset` gap.
#[tokio::test]
async fn nats_fully_expired_topic_is_a_reset() {
    let hub = NatsHub::connect(
        NATS_URL,
        &unique_nats_prefix("expiry"),
        HubConfig {
            replay_max_age: Duration::from_millis(300),
            ..HubConfig::default()
        },
    )
    .await
    .unwrap();
    let old = hub.publish("t", &1).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut sub = hub.subscribe_from("t", Some(&old)).await.unwrap();
    expect_gap(&mut sub, GapReason::Reset).await;
    let fresh = hub.publish("t", &2).await.unwrap();
    assert!(fresh.ends_with("-1") && fresh != old, "{old} then {fresh}");
    assert_eq!(next_event(&mut sub).await.id(), fresh);
    let _ = nats_admin().await.delete_stream(hub.stream_name()).await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Resume hand-over under concurrent publishing: whatever the resume point and however
    /// publishing interleaves with the subscribe, the subscriber sees exactly the events after
    /// its resume point, in order, once.
    #[test]
    fn resume_hand_over_is_exact(before in 0u64..40, resume_at in 0u64..40, during in 1u64..60) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let resume_at = resume_at.min(before);
            for (name, hub) in backends(HubConfig::default()).await {
                let mut ids = Vec::new();
                for n in 0..before {
                    ids.push(hub.publish("p", &n).await.unwrap());
                }
                let publisher = {
                    let hub = hub.clone();
                    tokio::spawn(async move {
                        for n in before..before + during {
                            hub.publish("p", &n).await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                };
                let resume = if resume_at == 0 { "0".to_string() } else { ids[resume_at as usize - 1].clone() };
                let mut sub = hub.subscribe_from("p", Some(&resume)).await.unwrap();
                for expected in resume_at..before + during {
                    let got: u64 = serde_json::from_slice(next_event(&mut sub).await.json()).unwrap();
                    assert_eq!(got, expected, "{name}");
                }
                publisher.await.unwrap();
                assert!(
                    tokio::time::timeout(Duration::from_millis(50), sub.next()).await.is_err(),
                    "{name}: nothing after the last event"
                );
            }
        });
    }
}

/// A Redis server of the test's own on a free port (no persistence), stopped when dropped:
/// for tests that flush, delete, restart or count its clients.
pub struct OwnRedis {
    child: std::process::Child,
    port: u16,
    args: Vec<String>,
}

impl OwnRedis {
    pub fn start(extra: &[&str]) -> Self {
        let port = crate::support::free_port();
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(port, &args);
        let me = Self { child, port, args };
        me.wait_ready();
        me
    }

    fn spawn(port: u16, extra: &[String]) -> std::process::Child {
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server on PATH (the CI machine has it)")
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            if let Ok(mut c) = redis::Client::open(self.url()).and_then(|c| c.get_connection())
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not start", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server and starts a new one on the same port: everything it held is gone.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.port, &self.args);
        self.wait_ready();
    }

    pub async fn admin(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    /// `connected_clients` from `INFO clients`.
    pub async fn connected_clients(&self) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut self.admin().await)
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .expect("connected_clients in INFO")
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_gap(item: &HubItem) -> bool {
    matches!(item, HubItem::Gap { .. })
}

/// A topic whose whole history expired: the next publish starts a new history, and a client
/// resuming from the old one is told (`reset`, or `expired` with a count), never silently
/// handed only the newer events.
#[tokio::test]
async fn history_lost_by_expiry_is_a_gap_never_silence() {
    let cfg = HubConfig {
        replay_max_age: Duration::from_millis(800),
        ..HubConfig::default()
    };
    for (name, hub) in backends(cfg).await {
        let first = hub.publish("exp", &1).await.unwrap();
        hub.publish("exp", &2).await.unwrap();
        hub.publish("exp", &3).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        hub.publish("exp", &4).await.unwrap();
        let mut sub = hub.subscribe_from("exp", Some(&first)).await.unwrap();
        let item = next_item(&mut sub).await;
        assert!(
            matches!(
                item,
                HubItem::Gap {
                    reason: GapReason::Reset,
                    ..
                } | HubItem::Gap {
                    reason: GapReason::Expired,
                    missed: Some(2)
                }
            ),
            "{name}: expected a gap first, got {item:?}"
        );
        assert_eq!(next_event(&mut sub).await.json().as_ref(), b"4", "{name}");
    }
}

/// Redis loses a topic's history three ways (its stream deleted, the whole server flushed, a
/// restart without persistence): each resume or live subscriber is told with a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_deleted_flushed_or_restarted_history_is_a_gap() {
    let mut server = OwnRedis::start(&[]);
    let hub: Arc<dyn EventHub> =
        Arc::new(RedisHub::open(&server.url(), "gap:", HubConfig::default()).unwrap());
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(hub.publish("t", &n).await.unwrap());
    }
    let mut admin = server.admin().await;
    // The stream alone deleted: the offsets show how many are gone.
    let _: i64 = redis::cmd("DEL")
        .arg("gap:{t}")
        .query_async(&mut admin)
        .await
        .unwrap();
    hub.publish("t", &6).await.unwrap();
    let mut sub = hub.subscribe_from("t", Some(&ids[1])).await.unwrap();
    match next_item(&mut sub).await {
        HubItem::Gap {
            reason: GapReason::Expired,
            missed: Some(3),
        } => {}
        other => panic!("expected 3 expired, got {other:?}"),
    }
    assert_eq!(next_event(&mut sub).await.json().as_ref(), b"6");
    let six = ids.len();
    drop(sub);
    // Everything flushed: a new epoch.
    let last = hub.subscribe_from("t", Some("0")).await.unwrap();
    drop(last);
    let _: String = redis::cmd("FLUSHALL")
        .query_async(&mut admin)
        .await
        .unwrap();
    hub.publish("t", &7).await.unwrap();
    let mut sub = hub.subscribe_from("t", Some(&ids[six - 1])).await.unwrap();
    assert!(matches!(
        next_item(&mut sub).await,
        HubItem::Gap {
            reason: GapReason::Reset,
            ..
        }
    ));
    assert_eq!(next_event(&mut sub).await.json().as_ref(), b"7");
    // A live subscriber across a restart: the next event comes after a reset gap.
    server.restart();
    let started = std::time::Instant::now();
    while hub.publish("t", &8).await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "Redis is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let item = next_item(&mut sub).await;
    assert!(is_gap(&item), "a gap before the new history, got {item:?}");
    assert_eq!(next_event(&mut sub).await.json().as_ref(), b"8");
}

/// Bursts up to the window never drop a subscriber that keeps reading, whatever the
/// subscribers that never read: with default settings, a reader gets all of a 5,000-event
/// burst while 200 subscriptions are never polled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reaches_a_reader_while_200_never_read() {
    const BURST: u64 = 5_000;
    for (name, hub) in backends(HubConfig::default()).await {
        let mut idle = Vec::new();
        for _ in 0..200 {
            idle.push(hub.subscribe("burst").await.unwrap());
        }
        let mut reader = hub.subscribe("burst").await.unwrap();
        let reading = tokio::spawn(async move {
            let mut offsets = Vec::with_capacity(BURST as usize);
            while (offsets.len() as u64) < BURST {
                match next_item(&mut reader).await {
                    HubItem::Event(e) => offsets.push(e.seq()),
                    other => panic!("the reader got {other:?}"),
                }
            }
            offsets
        });
        for n in 0..BURST {
            hub.publish("burst", &n).await.unwrap();
        }
        let offsets = reading.await.unwrap();
        assert_eq!(offsets, (1..=BURST).collect::<Vec<_>>(), "{name}");
        assert_eq!(
            hub.live_subscriptions(),
            200,
            "{name}: the idle ones are still there"
        );
    }
}

/// The budgets refuse with errors the caller sees, on every backend.
#[tokio::test]
async fn budgets_refuse_with_errors() {
    let cfg = HubConfig {
        max_event_bytes: 1_000,
        max_topics: 3,
        ..HubConfig::default()
    };
    for (name, hub) in backends(cfg).await {
        let big = "x".repeat(2_000);
        let err = hub.publish("b", &big).await.unwrap_err();
        assert!(
            matches!(err, HubError::TooLarge { max: 1_000, .. }),
            "{name}: {err:?}"
        );
        assert_eq!(pikku::PikkuError::from(err).status(), 413, "{name}");
        let mut held = Vec::new();
        for t in ["b1", "b2", "b3"] {
            held.push(hub.subscribe(t).await.unwrap());
        }
        let err = hub.subscribe("b4").await.unwrap_err();
        assert!(
            matches!(err, HubError::TooManyTopics { max: 3 }),
            "{name}: {err:?}"
        );
        assert_eq!(pikku::PikkuError::from(err).status(), 503, "{name}");
        drop(held);
        assert!(until_no_subscriptions(&hub).await);
    }
}

/// Subscribes to `topics` topics (one subscription each), publishes one event to each and
/// returns (time to subscribe all, delivery latencies in ms sorted).
async fn one_event_per_topic(
    hub: Arc<dyn EventHub>,
    prefix: &str,
    topics: usize,
) -> (Duration, Vec<f64>) {
    let started = std::time::Instant::now();
    let mut subs = Vec::with_capacity(topics);
    for chunk in (0..topics).collect::<Vec<_>>().chunks(256) {
        let opened = futures_util::future::join_all(chunk.iter().map(|i| {
            let (hub, topic) = (hub.clone(), format!("{prefix}:{i}"));
            async move { hub.subscribe(&topic).await }
        }))
        .await;
        subs.extend(opened.into_iter().map(Result::unwrap));
    }
    let subscribed = started.elapsed();
    let publish_at = Arc::new(std::sync::Mutex::new(vec![None; topics]));
    let readers: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, mut sub)| {
            let publish_at = publish_at.clone();
            tokio::spawn(async move {
                // Generous: 10,000 deliveries on a loaded 2-core CI box are slow, not lost.
                let e = match tokio::time::timeout(Duration::from_secs(60), sub.next()).await {
                    Ok(Some(HubItem::Event(e))) => e,
                    other => panic!("topic {i}: expected its event, got {other:?}"),
                };
                let got = std::time::Instant::now();
                assert_eq!(serde_json::from_slice::<usize>(e.json()).unwrap(), i);
                let sent: std::time::Instant = publish_at.lock().unwrap()[i].unwrap();
                got.duration_since(sent).as_secs_f64() * 1e3
            })
        })
        .collect();
    for chunk in (0..topics).collect::<Vec<_>>().chunks(64) {
        let now = std::time::Instant::now();
        for &i in chunk {
            publish_at.lock().unwrap()[i] = Some(now);
        }
        futures_util::future::join_all(chunk.iter().map(|i| {
            let hub = hub.clone();
            let topic = format!("{prefix}:{i}");
            async move { hub.publish(&topic, i).await.unwrap() }
        }))
        .await;
    }
    let mut latencies = Vec::with_capacity(topics);
    for r in readers {
        latencies.push(r.await.unwrap());
    }
    latencies.sort_by(f64::total_cmp);
    (subscribed, latencies)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One topic per client at scale: 10,000 subscriptions, each on its own topic, on one instance
/// backed by Redis (its own server, so `INFO clients` counts only this test): every one gets
/// its event, and the instance holds at most 8 connections to Redis. Then two instances with
/// 5,000 topics each against a Redis that allows only 100 clients. The embedded hub runs the
/// runs the same for comparison; the figures are printed and recorded in BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_topics_on_a_few_redis_connections() {
    const TOPICS: usize = 10_000;
    let report = |what: &str, subscribed: Duration, lat: &[f64]| {
        eprintln!(
            "{what}: subscribed {} topics in {:.0} ms; delivery p50 {:.1} ms, p99 {:.1} ms",
            lat.len(),
            subscribed.as_secs_f64() * 1e3,
            pct(lat, 0.5),
            pct(lat, 0.99)
        );
    };
    let memory: Arc<dyn EventHub> = Arc::new(MemoryHub::new());
    let (t, lat) = one_event_per_topic(memory, "user", TOPICS).await;
    report("memory", t, &lat);

    let server = OwnRedis::start(&[]);
    let hub: Arc<dyn EventHub> =
        Arc::new(RedisHub::open(&server.url(), "scale:", HubConfig::default()).unwrap());
    let (t, lat) = one_event_per_topic(hub.clone(), "user", TOPICS).await;
    report("redis, one instance", t, &lat);
    // The test's own admin connection is one of them.
    let held = server.connected_clients().await - 1;
    assert!(held <= 8, "the instance holds {held} connections to Redis");
    drop(hub);

    let small = OwnRedis::start(&["--maxclients", "100"]);
    let a: Arc<dyn EventHub> =
        Arc::new(RedisHub::open(&small.url(), "two:", HubConfig::default()).unwrap());
    let b: Arc<dyn EventHub> =
        Arc::new(RedisHub::open(&small.url(), "two:", HubConfig::default()).unwrap());
    let (ra, rb) = tokio::join!(
        one_event_per_topic(a.clone(), "a", TOPICS / 2),
        one_event_per_topic(b.clone(), "b", TOPICS / 2)
    );
    report("redis, instance A of two", ra.0, &ra.1);
    report("redis, instance B of two", rb.0, &rb.1);
    let held = small.connected_clients().await - 1;
    assert!(held <= 16, "two instances hold {held} connections");
}

// ---- Latest value on subscribe and many topics on one stream ----

/// The events a subscription yields until it is quiet for 300 ms (at most 10 s).
async fn drain_quiet<S: futures_util::Stream + Unpin>(sub: &mut S) -> Vec<S::Item> {
    let mut out = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        out.push(item);
        assert!(out.len() < 100_000, "runaway stream");
    }
    out
}

async fn next_multi(sub: &mut pikku::event_hub::MultiSubscription) -> pikku::event_hub::MultiItem {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an item in time")
        .expect("subscription open")
}

#[tokio::test]
async fn latest_value_comes_first_then_live_without_duplicate() {
    for (name, hub) in backends(HubConfig::default()).await {
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(hub.publish("ticker", &n).await.unwrap());
        }
        let mut sub = hub.subscribe_latest("ticker", None).await.unwrap();
        let first = next_event(&mut sub).await;
        assert_eq!(first.id(), ids[2], "{name}: the newest, with its real id");
        assert_eq!(first.json().as_ref(), b"2", "{name}");
        let live = hub.publish("ticker", &3).await.unwrap();
        assert_eq!(next_event(&mut sub).await.id(), live, "{name}: then live");
        assert!(
            drain_quiet(&mut sub).await.is_empty(),
            "{name}: no duplicate, nothing older"
        );
        // A topic with nothing retained: live only, and nothing is created by asking.
        assert_eq!(hub.newest("nothing-yet").await.unwrap(), None, "{name}");
        let mut empty = hub.subscribe_latest("nothing-yet", None).await.unwrap();
        let first = hub.publish("nothing-yet", &"a").await.unwrap();
        assert_eq!(next_event(&mut empty).await.id(), first, "{name}");
        assert!(drain_quiet(&mut empty).await.is_empty(), "{name}");
        drop((sub, empty));
        assert!(until_no_subscriptions(&hub).await, "{name}");
    }
}

#[tokio::test]
async fn latest_value_with_a_resume_point_is_a_plain_resume() {
    for (name, hub) in backends(HubConfig::default()).await {
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(hub.publish("gauge", &n).await.unwrap());
        }
        let resume = pikku::LastEventId::parse(&ids[2]).unwrap();
        let mut sub = hub.subscribe_latest("gauge", Some(&resume)).await.unwrap();
        let live = hub.publish("gauge", &5).await.unwrap();
        let got: Vec<String> = drain_quiet(&mut sub)
            .await
            .into_iter()
            .map(|i| match i {
                HubItem::Event(e) => e.id().to_string(),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            [ids[3].clone(), ids[4].clone(), live],
            "{name}: exactly the missed events, no extra latest"
        );
    }
}

/// Events of a merged stream as (topic index, id) pairs, and the stream's id after the last.
fn merged_ids(items: Vec<pikku::event_hub::MultiItem>, name: &str) -> Vec<(usize, String)> {
    items
        .into_iter()
        .map(|m| match m.item {
            HubItem::Event(e) => (m.topic, e.id().to_string()),
            other => panic!("{name}: {other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn merged_topics_deliver_every_event_of_every_topic_exactly_once() {
    for (name, hub) in backends(HubConfig::default()).await {
        let topics: Vec<String> = ["m:a", "m:b", "m:c"].map(String::from).to_vec();
        // Published before the stream opened: not delivered (a merged stream starts live).
        hub.publish("m:a", &"old").await.unwrap();
        let mut sub = hub.subscribe_many(&topics, None).await.unwrap();
        assert_eq!(sub.topics(), 3);
        let mut published: Vec<Vec<String>> = vec![Vec::new(); 3];
        for n in 0..30usize {
            let t = n % 3;
            published[t].push(hub.publish(&topics[t], &n).await.unwrap());
        }
        let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
        for _ in 0..30 {
            let m = next_multi(&mut sub).await;
            match m.item {
                HubItem::Event(e) => got[m.topic].push(e.id().to_string()),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            got, published,
            "{name}: every event once, in order per topic"
        );
        assert!(
            drain_quiet(&mut sub).await.is_empty(),
            "{name}: no duplicate"
        );
        let id = sub.id().clone();
        for (t, ids) in published.iter().enumerate() {
            assert_eq!(
                id.slots()[t].map(|p| p.to_string()).as_deref(),
                ids.last().map(String::as_str),
                "{name}: the composite names each topic's last event"
            );
        }
        drop(sub);
        assert!(until_no_subscriptions(&hub).await, "{name}");
    }
}

#[tokio::test]
async fn merged_resume_from_a_composite_id_delivers_exactly_the_missed_events() {
    for (name, hub) in backends(HubConfig::default()).await {
        // `seen` gets events before the disconnect; `quiet` had events retained before the
        // stream opened but none since; `fresh` had none at all (its slot is `_`).
        let topics: Vec<String> = ["x:seen", "x:quiet", "x:fresh"].map(String::from).to_vec();
        hub.publish("x:quiet", &"before").await.unwrap();
        let mut sub = hub.subscribe_many(&topics, None).await.unwrap();
        let opened = sub.id().to_string();
        assert!(
            opened.starts_with("m:") && opened.ends_with(",_"),
            "{name}: {opened}"
        );
        let mut before = Vec::new();
        for n in 0..4 {
            before.push(hub.publish("x:seen", &n).await.unwrap());
        }
        // Read two of them, then disconnect: the other two are missed too.
        let delivered = merged_ids(
            vec![next_multi(&mut sub).await, next_multi(&mut sub).await],
            name,
        );
        assert_eq!(
            delivered,
            [(0, before[0].clone()), (0, before[1].clone())],
            "{name}"
        );
        let last_id = sub.id().to_string();
        drop(sub);
        // While disconnected: events on every topic.
        let mut missed: Vec<Vec<String>> = vec![before[2..].to_vec(), Vec::new(), Vec::new()];
        for n in 0..3 {
            for (t, topic) in topics.iter().enumerate() {
                missed[t].push(hub.publish(topic, &n).await.unwrap());
            }
        }
        let resume = pikku::LastEventId::parse(&last_id).unwrap();
        let mut sub = hub.subscribe_many(&topics, Some(&resume)).await.unwrap();
        let mut got: Vec<Vec<String>> = vec![Vec::new(); 3];
        for (t, id) in merged_ids(drain_quiet(&mut sub).await, name) {
            got[t].push(id);
        }
        assert_eq!(got, missed, "{name}: exactly the missed events, per topic");
        // And live after the hand-over, once.
        let live = hub.publish("x:fresh", &"live").await.unwrap();
        assert_eq!(
            merged_ids(drain_quiet(&mut sub).await, name),
            [(2, live)],
            "{name}"
        );
        // Resuming from the latest composite delivers nothing again.
        let again = pikku::LastEventId::parse(&sub.id().to_string()).unwrap();
        drop(sub);
        let mut sub = hub.subscribe_many(&topics, Some(&again)).await.unwrap();
        assert!(
            drain_quiet(&mut sub).await.is_empty(),
            "{name}: no duplicate"
        );
        drop(sub);
        assert!(until_no_subscriptions(&hub).await, "{name}");
    }
}

#[tokio::test]
async fn merged_streams_are_bounded_and_refusals_are_400s() {
    let cfg = HubConfig {
        max_topics_per_stream: 3,
        ..HubConfig::default()
    };
    for (name, hub) in backends(cfg).await {
        assert_eq!(hub.max_topics_per_stream(), 3, "{name}");
        let four: Vec<String> = (0..4).map(|n| format!("k{n}")).collect();
        let err = hub.subscribe_many(&four, None).await.unwrap_err();
        assert!(
            matches!(
                err,
                HubError::TooManyTopicsPerStream {
                    requested: 4,
                    max: 3
                }
            ),
            "{name}: {err:?}"
        );
        assert_eq!(pikku::PikkuError::from(err).status(), 400, "{name}");
        for bad in [vec![], vec!["k".to_string(), "k".to_string()]] {
            let err = hub.subscribe_many(&bad, None).await.unwrap_err();
            assert!(
                matches!(err, HubError::InvalidTopicList(_)),
                "{name}: {err:?}"
            );
            assert_eq!(pikku::PikkuError::from(err).status(), 400, "{name}");
        }
        assert_eq!(hub.live_subscriptions(), 0, "{name}: nothing left open");
        // A composite id of another topic list: each topic says it cannot resume.
        let two: Vec<String> = ["k0", "k1"].map(String::from).to_vec();
        hub.publish("k0", &1).await.unwrap();
        let foreign = pikku::LastEventId::parse("m:beef-1").unwrap();
        let mut sub = hub.subscribe_many(&two, Some(&foreign)).await.unwrap();
        let items = drain_quiet(&mut sub).await;
        let gaps = items
            .iter()
            .filter(|m| matches!(m.item, HubItem::Gap { .. }))
            .count();
        assert!(gaps >= 1, "{name}: {items:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_value_while_publishing_is_contiguous_with_the_live_feed() {
    for (name, hub) in backends(HubConfig::default()).await {
        for n in 0..20u64 {
            hub.publish("busy", &n).await.unwrap();
        }
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 20..220u64 {
                    hub.publish("busy", &n).await.unwrap();
                    if n % 10 == 0 {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Subscribed mid-burst: the newest at that moment, then every later event once.
        let mut sub = hub.subscribe_latest("busy", None).await.unwrap();
        publisher.await.unwrap();
        let first = next_event(&mut sub).await;
        let mut expected = first.seq() + 1;
        assert!(first.seq() >= 20, "{name}: at least the newest before it");
        while expected <= 220 {
            let e = next_event(&mut sub).await;
            assert_eq!(e.seq(), expected, "{name}: no gap, no duplicate");
            expected += 1;
        }
        assert!(drain_quiet(&mut sub).await.is_empty(), "{name}");
    }
}

// Presence: members of a topic across instances, `join`/`leave` announcements, expiry of a
// dead instance's members, bounds.

use pikku::event_hub::{PresenceChange, PresenceGuard};

/// Two instances of each backend with presence, sharing its data (the memory hub is one
/// process: both are the same hub).
async fn presence_pairs(
    cfg: HubConfig,
) -> Vec<(&'static str, Arc<dyn EventHub>, Arc<dyn EventHub>)> {
    sweep_old_test_streams().await;
    let memory: Arc<dyn EventHub> = Arc::new(MemoryHub::with_config(cfg.clone()));
    let redis_prefix = unique_prefix("presence");
    let redis = |cfg: HubConfig| -> Arc<dyn EventHub> {
        Arc::new(RedisHub::open(REDIS_URL, &redis_prefix, cfg).unwrap())
    };
    let pg_prefix = unique_pg_prefix();
    let pg = |cfg: HubConfig| -> Arc<dyn EventHub> {
        Arc::new(PgHub::open(PG_URL, &pg_prefix, cfg).unwrap())
    };
    let nats_prefix = unique_nats_prefix("presence");
    let nats_a = NatsHub::connect(NATS_URL, &nats_prefix, cfg.clone())
        .await
        .unwrap();
    let nats_b = NatsHub::connect(NATS_URL, &nats_prefix, cfg.clone())
        .await
        .unwrap();
    vec![
        ("memory", memory.clone(), memory),
        ("redis", redis(cfg.clone()), redis(cfg.clone())),
        ("nats", Arc::new(nats_a), Arc::new(nats_b)),
        ("postgres", pg(cfg.clone()), pg(cfg)),
    ]
}

/// The next presence announcement on `sub` (other events are skipped).
async fn next_change(sub: &mut Subscription) -> PresenceChange {
    loop {
        if let Some(change) = PresenceChange::of(&next_event(sub).await) {
            return change;
        }
    }
}

/// Whether `sub` yields no announcement for `ms`.
async fn no_change_for(sub: &mut Subscription, ms: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(ms), next_change(sub))
        .await
        .is_err()
}

fn change(joined: bool, user: &str) -> PresenceChange {
    PresenceChange {
        joined,
        user_id: user.into(),
    }
}

async fn join(hub: &Arc<dyn EventHub>, topic: &str, member: &str) -> PresenceGuard {
    let backend = hub.status().backend;
    hub.join(topic, member)
        .await
        .unwrap_or_else(|e| panic!("{backend}: join {member} to {topic}: {e}"))
}

async fn present(hub: &Arc<dyn EventHub>, topic: &str) -> Vec<String> {
    let backend = hub.status().backend;
    hub.presence(topic)
        .await
        .unwrap_or_else(|e| panic!("{backend}: presence of {topic}: {e}"))
}

/// Waits until `topic`'s members on `hub` are `want` (leaves are applied in the background).
async fn until_present(hub: &Arc<dyn EventHub>, topic: &str, want: &[&str], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = present(hub, topic).await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "members {now:?}, expected {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_lists_counts_and_announces_with_tabs_and_instances_as_one_member() {
    for (name, a, b) in presence_pairs(HubConfig::default()).await {
        let mut sub = b.subscribe("room").await.unwrap();
        let alice_tab1 = join(&a, "room", "alice").await;
        let alice_tab2 = join(&a, "room", "alice").await;
        let bob = join(&b, "room", "bob").await;
        assert_eq!(next_change(&mut sub).await, change(true, "alice"), "{name}");
        assert_eq!(next_change(&mut sub).await, change(true, "bob"), "{name}");
        assert_eq!(present(&a, "room").await, ["alice", "bob"], "{name}");
        assert_eq!(present(&b, "room").await, ["alice", "bob"], "{name}");
        assert_eq!(b.presence_count("room").await.unwrap(), 2, "{name}");
        assert!(present(&a, "other").await.is_empty(), "{name}");
        // Alice on the other instance too: still one member, no second join.
        let alice_on_b = join(&b, "room", "alice").await;
        drop(alice_tab1);
        assert!(
            no_change_for(&mut sub, 300).await,
            "{name}: one tab left, one stays"
        );
        drop(alice_tab2);
        assert!(
            no_change_for(&mut sub, 300).await,
            "{name}: present on B still"
        );
        assert_eq!(present(&b, "room").await, ["alice", "bob"], "{name}");
        drop(alice_on_b);
        assert_eq!(
            next_change(&mut sub).await,
            change(false, "alice"),
            "{name}"
        );
        until_present(&a, "room", &["bob"], Duration::from_secs(5)).await;
        drop(bob);
        assert_eq!(next_change(&mut sub).await, change(false, "bob"), "{name}");
        until_present(&b, "room", &[], Duration::from_secs(5)).await;
        // Announcements are events of the topic: ordinary subscribers see them with ids.
        let id = b
            .publish("room", &json!({"userId": "x", "text": "hi"}))
            .await;
        assert!(id.is_ok(), "{name}");
    }
}

#[tokio::test]
async fn presence_of_an_instance_that_stops_refreshing_expires_and_its_leave_is_announced() {
    let cfg = HubConfig {
        presence_ttl: Duration::from_millis(800),
        presence_heartbeat: Duration::from_millis(150),
        ..HubConfig::default()
    };
    for (name, a, b) in presence_pairs(cfg).await {
        if name == "memory" {
            continue; // one process: its members cannot outlive it
        }
        let bob = join(&b, "room", "bob").await;
        let alice = join(&a, "room", "alice").await;
        let mut sub = b.subscribe("room").await.unwrap();
        // Refreshed: present well past the TTL.
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert_eq!(present(&b, "room").await, ["alice", "bob"], "{name}");
        // A dies: its hub is gone before its guard (nothing left to leave or refresh with).
        drop(a);
        drop(alice);
        let started = std::time::Instant::now();
        until_present(&b, "room", &["bob"], Duration::from_secs(3)).await;
        let gone_after = started.elapsed();
        assert_eq!(
            next_change(&mut sub).await,
            change(false, "alice"),
            "{name}"
        );
        eprintln!("{name}: a dead instance's member disappeared after {gone_after:?} (ttl 800 ms)");
        assert!(
            gone_after < Duration::from_millis(800 + 300),
            "{name}: {gone_after:?}"
        );
        drop(bob);
    }
}

#[tokio::test]
async fn presence_bounds_refuse_with_errors() {
    let cfg = HubConfig {
        max_presence_members: 2,
        max_presence_topics: 1,
        ..HubConfig::default()
    };
    for (name, a, b) in presence_pairs(cfg).await {
        let _alice = join(&a, "room", "alice").await;
        let bob = join(&a, "room", "bob").await;
        let _bob_again = join(&a, "room", "bob").await; // a tab of a present member is fine
        assert!(
            matches!(
                a.join("room", "carol").await,
                Err(HubError::TooManyMembers { max: 2 })
            ),
            "{name}"
        );
        // Across instances: the topic's members are counted where they are shared.
        assert!(
            matches!(
                b.join("room", "carol").await,
                Err(HubError::TooManyMembers { max: 2 })
            ),
            "{name}"
        );
        assert!(
            matches!(
                a.join("lobby", "alice").await,
                Err(HubError::TooManyPresenceTopics { max: 1 })
            ),
            "{name}"
        );
        let http: pikku::PikkuError = HubError::TooManyMembers { max: 2 }.into();
        assert_eq!(http.status(), 503);
        drop(bob);
        drop(_bob_again);
        until_present(&a, "room", &["alice"], Duration::from_secs(5)).await;
        let _carol = join(&b, "room", "carol").await;
        assert_eq!(present(&a, "room").await, ["alice", "carol"], "{name}");
    }
}

#[tokio::test]
async fn redis_presence_wiped_behind_the_hubs_back_heals_on_the_next_heartbeat() {
    let hub = RedisHub::open(
        REDIS_URL,
        &unique_prefix("presence-heal"),
        HubConfig {
            presence_ttl: Duration::from_millis(800),
            presence_heartbeat: Duration::from_millis(150),
            ..HubConfig::default()
        },
    )
    .unwrap();
    let mut sub = hub.subscribe("room").await.unwrap();
    let _alice = hub.join("room", "alice").await.unwrap();
    assert_eq!(next_change(&mut sub).await, change(true, "alice"));
    // Deleted (FLUSHDB, eviction, a failover without persistence): a reaper would have
    // announced the leave; the instance that still holds her adds her back and says so.
    let set = format!("{}:p", hub.key("room"));
    let mut conn = redis::Client::open(REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&set)
        .arg(format!("{set}:alice"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(hub.presence("room").await.unwrap().is_empty());
    assert_eq!(next_change(&mut sub).await, change(true, "alice"));
    assert_eq!(hub.presence("room").await.unwrap(), ["alice"]);
}

#[tokio::test]
async fn presence_of_500_members_joins_lists_and_leaves_on_every_backend() {
    use futures_util::stream::{self, StreamExt as _};
    for (name, a, b) in presence_pairs(HubConfig::default()).await {
        let started = std::time::Instant::now();
        let guards: Vec<PresenceGuard> = stream::iter(0..500)
            .map(|i| {
                let hub = if i % 2 == 0 { a.clone() } else { b.clone() };
                async move { join(&hub, "big", &format!("user-{i:04}")).await }
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let joined = started.elapsed();
        let started = std::time::Instant::now();
        let members = present(&a, "big").await;
        let listed = started.elapsed();
        assert_eq!(members.len(), 500, "{name}");
        assert_eq!(b.presence_count("big").await.unwrap(), 500, "{name}");
        let started = std::time::Instant::now();
        drop(guards);
        until_present(&b, "big", &[], Duration::from_secs(30)).await;
        let left = started.elapsed();
        eprintln!(
            "{name}: 500 members on two instances: joined in {joined:?} (32 at once), listed in {listed:?}, all left in {left:?}"
        );
    }
}

#[tokio::test]
async fn presence_heartbeat_keeps_a_thousand_topics_alive_within_the_ttl() {
    use futures_util::stream::{self, StreamExt as _};
    let cfg = HubConfig {
        presence_ttl: Duration::from_millis(3000),
        presence_heartbeat: Duration::from_millis(1000),
        ..HubConfig::default()
    };
    for (name, a, _b) in presence_pairs(cfg).await {
        if name == "memory" {
            continue; // nothing expires
        }
        let guards: Vec<PresenceGuard> = stream::iter(0..1000)
            .map(|i| {
                let a = a.clone();
                async move { join(&a, &format!("t{i}"), "alice").await }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        // Two TTLs: entries live only if every round refreshed every topic in time.
        tokio::time::sleep(Duration::from_millis(6000)).await;
        for i in (0..1000).step_by(50) {
            assert_eq!(
                present(&a, &format!("t{i}")).await,
                ["alice"],
                "{name}: t{i}"
            );
        }
        drop(guards);
    }
}
