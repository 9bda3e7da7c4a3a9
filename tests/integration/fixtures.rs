//! Functions that exercise one runtime behaviour each, on their own services type so they
//! mount apart from the demo.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pikku::prelude::*;

#[derive(Default)]
pub struct TestServices {
    /// How many stream cleanup guards have run.
    pub cleanups: Arc<AtomicUsize>,
    /// How many streams have started.
    pub started: Arc<AtomicUsize>,
}

/// Counts a cleanup when dropped: the Rust form of the seed's `finally { unsubscribe() }`.
pub struct Guard(pub Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct N {
    pub n: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Ticks {
    pub every_ms: Option<u64>,
}

/// Events with ids, names and a retry hint.
#[pikku_func(route = "/t/events", response = "stream", auth = false)]
async fn events(_s: &TestServices) -> impl Stream<Item = Event<N>> {
    stream! {
        for n in 1..=3u64 {
            let ev = Event::new(N { n }).with_id(n).unwrap();
            yield if n == 2 { ev.with_event("special").unwrap().with_retry(Duration::from_millis(2500)) } else { ev };
        }
    }
}

/// `Err` items become `event: error` and the stream goes on.
#[pikku_func(route = "/t/fallible", response = "stream", auth = false)]
async fn fallible(_s: &TestServices) -> impl Stream<Item = Result<N, PikkuError>> {
    try_stream! {
        yield N { n: 1 };
        // try_stream! ends at the first `?` error; a plain stream! yielding Err goes on.
    }
    .chain(stream! {
        yield Err(PikkuError::conflict("source is busy"));
        yield Ok(N { n: 2 });
    })
}

/// Fails before streaming: an HTTP error, not a stream.
#[pikku_func(route = "/t/missing/{id}", response = "stream", auth = false)]
async fn missing(_s: &TestServices, input: Id) -> Result<impl Stream<Item = N>, PikkuError> {
    if input.id == 0 {
        return Err(PikkuError::not_found("no stream with id 0").with_field("id"));
    }
    Ok(stream! { yield N { n: input.id }; })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Id {
    pub id: u64,
}

/// Yields once, then panics.
#[pikku_func(route = "/t/panic", response = "stream", auth = false)]
async fn panics(_s: &TestServices) -> impl Stream<Item = N> {
    stream! {
        yield N { n: 1 };
        panic!("generator exploded");
    }
}

/// A JSON function that panics.
#[pikku_func(route = "/t/panic-json", auth = false)]
async fn panics_json(_s: &TestServices) -> N {
    panic!("handler exploded")
}

/// Ticks until the client goes away; its guard counts the cleanup.
#[pikku_func(route = "/t/guarded", response = "stream", auth = false)]
async fn guarded(s: &TestServices, input: Ticks) -> impl Stream<Item = N> {
    let every = Duration::from_millis(input.every_ms.unwrap_or(50));
    s.started.fetch_add(1, Ordering::SeqCst);
    let guard = Guard(s.cleanups.clone());
    stream! {
        let _guard = guard;
        for n in 0.. {
            yield N { n };
            tokio::time::sleep(every).await;
        }
    }
}

/// Yields once and then waits forever: cleanup must not depend on the next write.
#[pikku_func(route = "/t/idle", response = "stream", auth = false, heartbeat_ms = 0)]
async fn idle(s: &TestServices) -> impl Stream<Item = N> {
    s.started.fetch_add(1, Ordering::SeqCst);
    let guard = Guard(s.cleanups.clone());
    stream! {
        let _guard = guard;
        yield N { n: 0 };
        std::future::pending::<()>().await;
    }
}

/// Nothing but heartbeats, every 100 ms (per-route override).
#[pikku_func(
    route = "/t/heartbeat",
    response = "stream",
    auth = false,
    heartbeat_ms = 100
)]
async fn heartbeat(_s: &TestServices) -> impl Stream<Item = N> {
    futures_util::stream::pending()
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Seen {
    pub last_event_id: Option<String>,
    pub resume_from: Option<u64>,
    pub request_id: String,
}

/// Reports the resume point it was handed.
#[pikku_func(route = "/t/ctx", response = "stream", auth = false)]
async fn ctx_stream(_s: &TestServices, ctx: &Context) -> impl Stream<Item = Seen> {
    let seen = Seen {
        last_event_id: ctx.last_event_id().map(|l| l.as_str().to_owned()),
        resume_from: ctx.last_event_id().and_then(|l| l.as_u64()),
        request_id: ctx.request_id().to_owned(),
    };
    stream! { yield seen; }
}

/// Ends itself cleanly when the server shuts down, saying goodbye first.
#[pikku_func(route = "/t/shutdown-aware", response = "stream", auth = false)]
async fn shutdown_aware(s: &TestServices, ctx: &Context) -> impl Stream<Item = String> {
    let shutdown = ctx.shutdown();
    let guard = Guard(s.cleanups.clone());
    stream! {
        let _guard = guard;
        yield "hello".to_string();
        shutdown.await;
        yield "bye".to_string();
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EchoInput {
    pub user_id: String,
    pub limit: Option<u32>,
    pub verbose: Option<bool>,
    pub note: Option<String>,
}

/// Echoes the merged input (path + query + body).
#[pikku_func(route = "/t/echo/{userId}", method = "post", auth = false)]
pub async fn echo(_s: &TestServices, input: EchoInput) -> EchoInput {
    input
}

/// Returns a typed error.
#[pikku_func(route = "/t/conflict", method = "put", auth = false)]
async fn conflict(_s: &TestServices) -> Result<N, PikkuError> {
    Err(PikkuError::conflict("already there"))
}

/// A GET and a DELETE on the same path, to check 405s list both.
#[pikku_func(route = "/t/thing", auth = false)]
async fn get_thing(_s: &TestServices) -> N {
    N { n: 1 }
}

#[pikku_func(route = "/t/thing", method = "delete", auth = false)]
async fn delete_thing(_s: &TestServices) -> N {
    N { n: 0 }
}

pub fn app() -> (Pikku<TestServices>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let services = TestServices::default();
    let (cleanups, started) = (services.cleanups.clone(), services.started.clone());
    // Pinned, so a PIKKU_TRUSTED_PROXIES in the environment does not change the tests.
    let app = Pikku::new(services).trusted_proxies(pikku::TrustedProxies::default());
    (app, cleanups, started)
}

/// The client's address as the runtime sees it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ClientIp {
    pub ip: Option<String>,
}

#[pikku_func(route = "/t/client-ip", auth = false)]
async fn client_ip(_s: &TestServices, ctx: &Context) -> ClientIp {
    ClientIp {
        ip: ctx.client_ip().map(|ip| ip.to_string()),
    }
}

/// Three requests a second per client.
#[pikku_func(route = "/t/limited", auth = false, rate_limit = "3/s")]
async fn limited(_s: &TestServices) -> N {
    N { n: 3 }
}

/// Panics at once, every time.
#[pikku_func(route = "/t/panic-now", response = "stream", auth = false)]
async fn panic_now(_s: &TestServices) -> impl Stream<Item = N> {
    stream! {
        if true {
            panic!("boom");
        }
        yield N { n: 0 };
    }
}

/// Yields as fast as it is polled, counting what it produced.
#[pikku_func(route = "/t/firehose", response = "stream", auth = false)]
async fn firehose(s: &TestServices) -> impl Stream<Item = N> {
    let produced = s.started.clone();
    stream! {
        for n in 0.. {
            produced.fetch_add(1, Ordering::SeqCst);
            yield N { n };
        }
    }
}
