//! Micro-benchmarks of the streaming hot path (issue #7):
//!
//! - `encode/*`: one event to wire bytes (plain data, with an id, pre-serialized);
//! - `hub_publish/N`: publishing one event through the embedded hub to `N` subscribers and
//!   each subscriber taking it (serialize + encode once, then shared bytes);
//! - `hub_merged/*`: the same delivery as SSE frames, to `N` single-topic subscribers and to
//!   `N` streams each merging 16 topics (`subscribe_many`: a composite id per event);
//! - `pipeline/*`: a 1,000-event stream through the whole in-process stack (axum router,
//!   the generated handler, `SseBody`) against the same stream through axum's own `Sse`,
//!   with no socket: the runtime's per-event cost beside the hand-written baseline.
//!
//! - `allocations`: printed before the timings: heap allocations per event of both
//!   pipelines (a counting global allocator), for "no per-event allocation beyond the
//!   baseline's".
//!
//! `cargo bench -p pikku-runtime --bench hot_path` (add `-- --quick` for a short run).

use std::alloc::{GlobalAlloc, Layout, System};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use pikku::event_hub::{EventHub, EventHubExt, MemoryHub};
use pikku::prelude::*;
use tower::ServiceExt as _;

/// Counts heap allocations (all benches pay the same small overhead).
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The bench payload.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub struct Tick {
    /// Position.
    pub seq: u64,
    /// Microseconds.
    pub ts_us: u64,
}

const TICK: Tick = Tick {
    seq: 123_456,
    ts_us: 1_795_918_528_209_696,
};

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_data", |b| {
        b.iter(|| pikku::sse::encode_json(std::hint::black_box(&TICK)))
    });
    g.bench_function("event_with_id", |b| {
        b.iter(|| {
            Event::new(std::hint::black_box(TICK))
                .with_id(42)
                .map(|e| e.encode())
        })
    });
    let json = serde_json::to_vec(&TICK).unwrap_or_default();
    g.bench_function("raw_preserialized", |b| {
        b.iter(|| pikku::sse::encode_raw(Some("42"), None, std::hint::black_box(&json)))
    });
    g.finish();
}

fn hub_publish(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("hub_publish");
    for n in [1usize, 100, 1_000, 10_000] {
        let hub = MemoryHub::new();
        let mut subs: Vec<_> = rt.block_on(async {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(hub.subscribe("t").await.expect("subscribe"));
            }
            v
        });
        // Allocations of one publish and its n deliveries (after a warm-up round).
        for round in 0..2 {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let _ = hub.publish("t", &TICK).now_or_never();
            let after_publish = ALLOCATIONS.load(Ordering::Relaxed);
            for s in subs.iter_mut() {
                std::hint::black_box(s.next().now_or_never());
            }
            let after = ALLOCATIONS.load(Ordering::Relaxed);
            if round == 1 {
                eprintln!(
                    "allocations/hub_publish/{n}: {} for the publish, {:.2} per delivery",
                    after_publish - before,
                    (after - after_publish) as f64 / n as f64
                );
            }
        }
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let _ = hub.publish("t", &TICK).now_or_never();
                for s in subs.iter_mut() {
                    std::hint::black_box(s.next().now_or_never());
                }
            })
        });
        drop(subs);
        assert_eq!(hub.live_subscriptions(), 0);
    }
    g.finish();
}

/// Frames of one subscriber, boxed so single and merged streams bench alike.
type Frames = std::pin::Pin<Box<dyn futures_util::Stream<Item = Frame<Tick>> + Send>>;

fn hub_merged(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("hub_merged");
    let topics: Vec<String> = (0..16).map(|i| format!("t{i}")).collect();
    for n in [100usize, 1_000] {
        for merged in [false, true] {
            let name = if merged { "merged16" } else { "single" };
            let hub = MemoryHub::new();
            let mut subs: Vec<Frames> = rt.block_on(async {
                let mut v: Vec<Frames> = Vec::with_capacity(n);
                for _ in 0..n {
                    if merged {
                        let sub = hub.subscribe_many(&topics, None).await.expect("subscribe");
                        let mut frames: Frames = Box::pin(sub.frames());
                        // The opening id-only frame.
                        std::hint::black_box(frames.next().await);
                        v.push(frames);
                    } else {
                        let sub = hub.subscribe("t0").await.expect("subscribe");
                        v.push(Box::pin(sub.frames()));
                    }
                }
                v
            });
            for round in 0..2 {
                let _ = hub.publish("t0", &TICK).now_or_never();
                let before = ALLOCATIONS.load(Ordering::Relaxed);
                for s in subs.iter_mut() {
                    std::hint::black_box(s.next().now_or_never());
                }
                let after = ALLOCATIONS.load(Ordering::Relaxed);
                if round == 1 {
                    eprintln!(
                        "allocations/hub_merged/{name}/{n}: {:.2} per delivery",
                        (after - before) as f64 / n as f64
                    );
                }
            }
            g.throughput(Throughput::Elements(n as u64));
            g.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let _ = hub.publish("t0", &TICK).now_or_never();
                    for s in subs.iter_mut() {
                        std::hint::black_box(s.next().now_or_never());
                    }
                })
            });
        }
    }
    g.finish();
}

/// Services of the pipeline bench.
pub struct BenchServices;

/// Query of the ticks route.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TicksQuery {
    /// How many.
    pub n: u64,
}

/// N ticks.
#[pikku_func(route = "/ticks", response = "stream", auth = false)]
pub async fn ticks(_services: &BenchServices, input: TicksQuery) -> impl Stream<Item = Tick> {
    let n = input.n;
    stream! {
        for seq in 0..n {
            yield Tick { seq, ts_us: TICK.ts_us };
        }
    }
}

async fn axum_ticks(
    axum::extract::Query(q): axum::extract::Query<TicksQuery>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    use axum::response::sse::{Event as AxEvent, KeepAlive, Sse};
    let events = futures_util::stream::iter(0..q.n).map(|seq| {
        Ok::<_, Infallible>(
            AxEvent::default()
                .json_data(Tick {
                    seq,
                    ts_us: TICK.ts_us,
                })
                .unwrap_or_default(),
        )
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

async fn drain(router: axum::Router, uri: &str) -> usize {
    let req = http::Request::get(uri)
        .body(axum::body::Body::empty())
        .expect("request");
    let res = router.oneshot(req).await.expect("infallible");
    let mut body = res.into_body();
    let mut bytes = 0;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(d) = frame.data_ref() {
            bytes += d.len();
        }
    }
    bytes
}

fn pipeline(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pikku_router = rt.block_on(async {
        Pikku::with_routes(BenchServices, pikku::routes![ticks])
            .sse(SseConfig::default())
            .router()
    });
    let axum_router = axum::Router::new().route("/ticks", axum::routing::get(axum_ticks));
    // Allocations per event, after a warm-up: (allocations of an n-event stream minus those
    // of a 1-event stream) / (n - 1), so per-request costs cancel out.
    for (name, router) in [("pikku", &pikku_router), ("axum Sse", &axum_router)] {
        let count = |n: u64| {
            rt.block_on(drain(router.clone(), &format!("/ticks?n={n}")));
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            rt.block_on(drain(router.clone(), &format!("/ticks?n={n}")));
            ALLOCATIONS.load(Ordering::Relaxed) - before
        };
        let (one, many) = (count(1), count(10_001));
        eprintln!(
            "allocations/{name}: {:.2} per event (+{one} per request)",
            (many - one) as f64 / 10_000.0
        );
    }
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("pikku_1000_events", |b| {
        b.iter(|| rt.block_on(drain(pikku_router.clone(), "/ticks?n=1000")))
    });
    g.bench_function("axum_sse_1000_events", |b| {
        b.iter(|| rt.block_on(drain(axum_router.clone(), "/ticks?n=1000")))
    });
    g.finish();
}

criterion_group!(benches, encode, hub_publish, hub_merged, pipeline);
criterion_main!(benches);
