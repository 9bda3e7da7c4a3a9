//! The PostgreSQL event hub against the real server at 127.0.0.1:5432 (database `test`), beyond
//! the conformance suite (hub_suite.rs): killed connections, two instances sharing the
//! database, lost history, a database that is down, and two demo processes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use pikku::event_hub::postgres::PgHub;
use pikku::event_hub::{GapReason, HubConfig, HubItem, Subscription};
use pikku::{EventHub, EventHubExt};
use serde_json::Value;

use crate::hub_suite::{PG_URL, pg_hub, unique_pg_prefix};
use crate::support::*;

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL answers at 127.0.0.1:5432 (database `test`)");
    tokio::spawn(conn);
    client
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

/// Terminates the hub's connections (found by their `application_name`) several times while
/// events are published; every subscriber still ends with every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_kills_lose_and_duplicate_nothing() {
    const SUBS: usize = 20;
    const EVENTS: u64 = 600;
    let pg = pg_hub(HubConfig::default());
    let app = pg.application_name().to_string();
    let hub: Arc<dyn EventHub> = Arc::new(pg);
    let admin = admin().await;
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
        tokio::time::sleep(Duration::from_millis(150)).await;
        let row = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&app],
            )
            .await
            .unwrap();
        kills += row.get::<_, i64>(0);
    }
    publisher.await.unwrap();
    eprintln!(
        "terminated {kills} connections; {} publishes failed and were retried",
        failures.load(Ordering::Relaxed)
    );
    assert!(kills >= 5, "connections were terminated ({kills})");
    for t in tasks {
        let (seen, ids) = t.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "no duplicate delivery");
        // Every payload, in order; a publish whose reply was lost may have landed twice.
        let mut dedup = seen.clone();
        dedup.dedup();
        let expected: Vec<u64> = (0..EVENTS).collect();
        if dedup != expected {
            let odd: Vec<(usize, u64, u64)> = seen
                .iter()
                .zip(&ids)
                .enumerate()
                .filter(|(i, _)| *i > 0 && seen[*i] != seen[*i - 1] + 1 && seen[*i] != seen[*i - 1])
                .map(|(i, (s, id))| (i, *s, *id))
                .collect();
            panic!(
                "no gap: irregular at (index, payload, offset) {odd:?}; first {:?} {:?}, last {:?} {:?}",
                &seen[..seen.len().min(5)],
                &ids[..ids.len().min(5)],
                &seen[seen.len().saturating_sub(5)..],
                &ids[ids.len().saturating_sub(5)..]
            );
        }
        assert!(seen.len() - dedup.len() <= failures.load(Ordering::Relaxed));
    }
    assert!(hub.check().await.healthy, "healthy again after the kills");
}

/// A topic's very first events announced in one batch of notifications (three publishes in
/// one transaction, whose notifications arrive together): subscribers get them from the
/// first, none silently skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_topics_first_batch_arrives_from_its_first_event() {
    let prefix = unique_pg_prefix();
    let (schema, name) = prefix.split_once('.').unwrap();
    let hub = PgHub::open(PG_URL, &prefix, HubConfig::default()).unwrap();
    let mut sub = hub.subscribe("batch").await.unwrap();
    let publish = format!(
        "SELECT * FROM \"{schema}\".\"{name}_publish\"('batch', 'batch', convert_to('1', 'UTF8'), 100, 60000, 48879);"
    );
    admin()
        .await
        .batch_execute(&format!("BEGIN; {publish} {publish} {publish} COMMIT;"))
        .await
        .unwrap();
    for offset in 1..=3 {
        assert_eq!(next_event(&mut sub).await.id(), format!("beef-{offset}"));
    }
}

/// Two instances sharing the database: a 100 KB event published on A arrives intact on B
/// (notifications carry only positions), and a client resuming on A with B's last id gets
/// exactly the events it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100kb_event_crosses_instances_and_resume_works_across_them() {
    let prefix = unique_pg_prefix();
    let a = PgHub::open(PG_URL, &prefix, HubConfig::default()).unwrap();
    let b = PgHub::open(PG_URL, &prefix, HubConfig::default()).unwrap();
    let big: String = (0..100 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut on_b = b.subscribe("shared").await.unwrap();
    let id = a.publish("shared", &big).await.unwrap();
    let e = next_event(&mut on_b).await;
    assert_eq!(e.id(), id);
    assert_eq!(e.decode::<String>().unwrap(), big, "intact");
    drop(on_b);

    let mut missed = Vec::new();
    for n in 0..3 {
        missed.push(b.publish("shared", &n).await.unwrap());
    }
    let mut on_a = a.subscribe_from("shared", Some(e.id())).await.unwrap();
    for (n, id) in missed.iter().enumerate() {
        let got = next_event(&mut on_a).await;
        assert_eq!((got.id(), got.decode::<usize>().unwrap()), (id.as_str(), n));
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), on_a.next())
            .await
            .is_err(),
        "exactly the missed events"
    );
    // Live on A, published on B.
    let live = b.publish("shared", &"live").await.unwrap();
    assert_eq!(next_event(&mut on_a).await.id(), live);
}

/// A topic's events deleted (its row kept) is an `expired` gap with the count; its row deleted
/// too starts a new epoch, a `reset` gap for resuming and live subscribers alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deleted_history_is_a_gap() {
    let prefix = unique_pg_prefix();
    let (schema, name) = prefix.split_once('.').unwrap();
    let hub = PgHub::open(PG_URL, &prefix, HubConfig::default()).unwrap();
    let admin = admin().await;
    let mut ids = Vec::new();
    for n in 1..=5 {
        ids.push(hub.publish("t", &n).await.unwrap());
    }
    admin
        .execute(
            &format!("DELETE FROM \"{schema}\".\"{name}_events\" WHERE topic = 't'"),
            &[],
        )
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

    // The whole history deleted while `sub` is live: a new epoch.
    admin
        .batch_execute(&format!(
            "DELETE FROM \"{schema}\".\"{name}_events\" WHERE topic = 't'; \
             DELETE FROM \"{schema}\".\"{name}_topics\" WHERE topic = 't';"
        ))
        .await
        .unwrap();
    let seven = hub.publish("t", &7).await.unwrap();
    assert!(seven.ends_with("-1"), "a new history starts at 1: {seven}");
    assert!(matches!(
        next_item(&mut sub).await,
        HubItem::Gap {
            reason: GapReason::Reset,
            ..
        }
    ));
    assert_eq!(next_event(&mut sub).await.json().as_ref(), b"7");
    let mut resumed = hub.subscribe_from("t", Some(&ids[4])).await.unwrap();
    assert!(matches!(
        next_item(&mut resumed).await,
        HubItem::Gap {
            reason: GapReason::Reset,
            ..
        }
    ));
    assert_eq!(next_event(&mut resumed).await.id(), seven);
}

/// Topics with spaces, quotes, non-ASCII or 1,000 bytes (named by a hash in notifications)
/// are delivered live and resumed like any other, without crossing into each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_and_long_topic_names_are_delivered() {
    let hub = pg_hub(HubConfig::default());
    let long = "l".repeat(1_000);
    let long2 = format!("{}m", "l".repeat(999));
    let topics = [
        "a b",
        "it's \"quoted\"",
        "ü:ß",
        long.as_str(),
        long2.as_str(),
    ];
    let mut subs = Vec::new();
    for t in topics {
        subs.push(hub.subscribe(t).await.unwrap());
    }
    for (i, t) in topics.iter().enumerate() {
        hub.publish(t, &i).await.unwrap();
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        assert_eq!(next_event(sub).await.decode::<usize>().unwrap(), i);
        assert!(
            tokio::time::timeout(Duration::from_millis(100), sub.next())
                .await
                .is_err(),
            "only its own topic's event"
        );
    }
    let mut resumed = hub.subscribe_from(&long, Some("0")).await.unwrap();
    assert_eq!(next_event(&mut resumed).await.decode::<usize>().unwrap(), 3);
}

/// A topic not published for longer than the window's age is swept from the tables (so they
/// hold only recent topics); its next publish starts a new epoch, and a resume from the old
/// one is a `reset` gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_topics_are_swept_and_start_a_new_epoch() {
    let prefix = unique_pg_prefix();
    let (schema, name) = prefix.split_once('.').unwrap();
    let cfg = HubConfig {
        replay_max_age: Duration::from_millis(300),
        ..HubConfig::default()
    };
    let hub = PgHub::open(PG_URL, &prefix, cfg).unwrap();
    let admin = admin().await;
    let first = hub.publish("quiet", &1).await.unwrap();
    hub.publish("quiet", &2).await.unwrap();
    let rows = |table: &'static str| {
        let admin = &admin;
        let sql =
            format!("SELECT count(*) FROM \"{schema}\".\"{name}_{table}\" WHERE topic = 'quiet'");
        async move { admin.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!((rows("topics").await, rows("events").await), (1, 2));
    let started = std::time::Instant::now();
    while rows("topics").await > 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "swept in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rows("events").await, 0, "with its events");
    let next = hub.publish("quiet", &3).await.unwrap();
    assert!(next.ends_with("-1"), "a new history: {next}");
    let mut sub = hub.subscribe_from("quiet", Some(&first)).await.unwrap();
    assert!(matches!(
        next_item(&mut sub).await,
        HubItem::Gap {
            reason: GapReason::Reset,
            ..
        }
    ));
    assert_eq!(next_event(&mut sub).await.id(), next);
}

/// The hub's tables dropped behind its back (an operator, a test reset): the next publish
/// creates them again rather than failing for ever.
#[tokio::test]
async fn dropped_tables_are_created_again() {
    let prefix = unique_pg_prefix();
    let (schema, name) = prefix.split_once('.').unwrap();
    let hub = PgHub::open(PG_URL, &prefix, HubConfig::default()).unwrap();
    hub.publish("t", &1).await.unwrap();
    // This hub's objects only: the schema is shared with the other tests of this process.
    let drop_all = format!(
        "DROP TABLE \"{schema}\".\"{name}_events\"; DROP TABLE \"{schema}\".\"{name}_topics\"; \
         DROP FUNCTION \"{schema}\".\"{name}_publish\";"
    );
    let admin = admin().await;
    admin.batch_execute(&drop_all).await.unwrap();
    let id = hub.publish("t", &2).await.unwrap();
    assert!(id.ends_with("-1"), "a new history: {id}");
    assert!(hub.check().await.healthy);
    // And a history read (a resume) finds them again too.
    admin.batch_execute(&drop_all).await.unwrap();
    let mut sub = hub.subscribe_from("t", Some(&id)).await.unwrap();
    assert!(matches!(
        next_item(&mut sub).await,
        HubItem::Gap {
            reason: GapReason::Reset,
            ..
        }
    ));
}

#[tokio::test]
async fn postgres_down_is_a_clear_error_and_visible_in_status() {
    let hub = PgHub::open(
        "postgres://postgres@127.0.0.1:1/test",
        "pikku_down",
        HubConfig::default(),
    )
    .unwrap();
    assert!(hub.status().healthy, "unknown until tried");
    let started = std::time::Instant::now();
    let err = hub.publish("t", &1).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    assert!(!hub.status().healthy);
    assert!(hub.status().detail.is_some());
    let as_http: pikku::PikkuError = err.into();
    assert_eq!(as_http.status(), 503);
    assert!(hub.subscribe("t").await.is_err());
    assert!(!hub.check().await.healthy);
}

#[tokio::test]
async fn postgres_urls_select_the_postgres_hub() {
    for url in [PG_URL, "postgresql://postgres@127.0.0.1:5432/test"] {
        let hub = pikku::event_hub::from_url(url, HubConfig::default())
            .await
            .unwrap();
        assert_eq!(hub.status().backend, "postgres");
    }
}

/// Two demo processes sharing PostgreSQL: a stream served by B gets an event published on A,
/// and a client reconnecting to A with B's last id gets exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_demo_instances_share_postgres() {
    let prefix = unique_pg_prefix();
    let env = [
        ("PIKKU_EVENT_HUB", PG_URL),
        ("PIKKU_EVENT_HUB_PREFIX", prefix.as_str()),
        ("PIKKU_SESSION_SECRET", "shared-secret-of-the-two-instances"),
    ];
    let a = DemoProcess::start(&env).await;
    let b = DemoProcess::start(&env).await;
    for inst in [&a, &b] {
        let ready: Value = get(&inst.url("/health/ready")).await.json().await.unwrap();
        assert_eq!(ready["backend"], "postgres");
        assert_eq!(ready["healthy"], true);
    }
    let token = demo_login(&a.base, "alice").await;
    let res = client()
        .get(b.url("/users/alice/notifications"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut ev = events(res);
    let id = demo_notify(&a.base, &token, "alice", "from A").await;
    let e = next_sse(&mut ev).await;
    assert_eq!(
        (e.id.as_str(), json(&e)["message"].as_str().unwrap()),
        (id.as_str(), "from A")
    );
    drop(ev);
    let mut missed = Vec::new();
    for i in 1..=3 {
        missed.push(demo_notify(&b.base, &token, "alice", &format!("missed {i}")).await);
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
        let got = next_sse(&mut ev).await;
        assert_eq!(&got.id, id);
        assert_eq!(json(&got)["message"], format!("missed {}", i + 1));
    }
    let nothing_more = tokio::time::timeout(
        Duration::from_millis(300),
        crate::support::next_event(&mut ev, 1),
    )
    .await;
    assert!(nothing_more.is_err(), "exactly those 3");
}

async fn next_sse(
    ev: &mut (impl futures_util::Stream<Item = eventsource_stream::Event> + Unpin),
) -> eventsource_stream::Event {
    crate::support::next_event(ev, 10).await.expect("an event")
}

/// A PostgreSQL server of the test's own (a fresh cluster in a temporary directory, on a free
/// port), for tests that stop and restart it. As root, its tools run as the `postgres` user.
struct OwnPostgres {
    dir: std::path::PathBuf,
    port: u16,
}

impl OwnPostgres {
    const BIN: &'static str = "/usr/lib/postgresql/15/bin";

    fn run(tool: &str, args: &[&str]) {
        let path = format!("{}/{tool}", Self::BIN);
        let as_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut cmd = if as_root {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            std::process::Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{path} runs (PostgreSQL 15's server tools): {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("pikku-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Owned by the server's user when the test runs as root.
        let _ = std::process::Command::new("chown")
            .args(["postgres:postgres", &dir.display().to_string()])
            .status();
        let data = dir.display().to_string();
        Self::run(
            "initdb",
            &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync"],
        );
        let me = Self { dir, port };
        me.up();
        me
    }

    fn up(&self) {
        let data = self.dir.display().to_string();
        let opts = format!(
            "-p {} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        let log = format!("{data}/server.log");
        Self::run(
            "pg_ctl",
            &["-D", &data, "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// Stops the server at once (as a crash would; committed data survives).
    fn down(&self) {
        let data = self.dir.display().to_string();
        Self::run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.dir.display().to_string();
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{}/pg_ctl", Self::BIN))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::process::Command::new(format!("{}/pg_ctl", Self::BIN))
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The database restarts while events flow to live subscribers: publishing while it is down
/// fails promptly (503) and the hub reports it; once it is back, the listener reconnects and
/// every subscriber ends with every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_loses_and_duplicates_nothing() {
    const SUBS: usize = 5;
    const EVENTS: u64 = 200;
    let server = Arc::new(
        tokio::task::spawn_blocking(OwnPostgres::start)
            .await
            .unwrap(),
    );
    let hub: Arc<dyn EventHub> =
        Arc::new(PgHub::open(&server.url(), "restart", HubConfig::default()).unwrap());
    let mut tasks = Vec::new();
    for _ in 0..SUBS {
        let mut sub = hub.subscribe("r").await.unwrap();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut ids = Vec::new();
            while seen.last() != Some(&(EVENTS - 1)) {
                let item = tokio::time::timeout(Duration::from_secs(30), sub.next())
                    .await
                    .expect("an item in time")
                    .expect("subscription open");
                let HubItem::Event(e) = item else {
                    panic!("expected an event, got {item:?}");
                };
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
                while hub.publish("r", &n).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.down()).await.unwrap();
    let started = std::time::Instant::now();
    let err = hub.publish("other", &0).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    assert_eq!(pikku::PikkuError::from(err).status(), 503);
    assert!(!hub.check().await.healthy, "reported down");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = server.clone();
    tokio::task::spawn_blocking(move || s.up()).await.unwrap();
    publisher.await.unwrap();
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "publishes failed while it was down"
    );
    for t in tasks {
        let (seen, ids) = t.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "no duplicate delivery");
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(dedup, (0..EVENTS).collect::<Vec<_>>(), "no gap");
        assert!(seen.len() - dedup.len() <= failures.load(Ordering::Relaxed));
    }
    assert!(hub.check().await.healthy, "healthy again");
}
