//! The 100,000-idle-streams run (issue #17): several instances of the bench app
//! (`examples/bench.rs`) behind ports of their own, or with `--one-port` all on one port
//! (`SO_REUSEPORT`: the kernel spreads the connections), sharing one Redis event hub, holding one
//! SSE stream per user (`GET /bench/subscribe?topic=<prefix>user<i>`), opened from several
//! client processes. The `hundred-k` binary is a thin shell over [`parse`], [`run`] and
//! [`worker`].
//!
//! Every process on this box may hold at most 20,000 open files, so neither one server nor
//! one client can hold 100,000 streams: stream `i` goes to instance `i % instances`, and the
//! coordinator re-executes itself as `--worker` subprocesses, each holding a contiguous range
//! of streams (at most [`PER_PROCESS_MAX`]) and answering commands on stdin with JSON lines on
//! stdout ([`WorkerMsg`]).
//!
//! What it measures and checks, in order:
//! 1. the time until every stream had its `200 text/event-stream` head (from spawning the
//!    workers to the last worker's report);
//! 2. the servers' RSS before any stream and after the idle window, hence RSS per stream;
//! 3. the servers' CPU seconds over an idle window of at least two heartbeat intervals, and
//!    that **every** stream received at least one heartbeat comment (`: ping`) in it;
//! 4. one notification published to one user's topic through a *different* instance than the
//!    one holding that user's stream: it must reach exactly that stream, once, within a bound.
//!
//! All traffic is on loopback; every wait is bounded; every child is killed when the run ends
//! (and, through `PR_SET_PDEATHSIG`, when the coordinator dies).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{Semaphore, mpsc};

use crate::bench::servers::{self, Server};
use crate::http1::Head;
use crate::scenario::Target;
use crate::sse::{SseParser, json_u64};
use crate::{http1, now_us, proc_cpu_seconds, proc_status_kib, raise_nofile};

/// Streams one process (server instance or client worker) may hold: the box caps every
/// process at 20,000 open files, and each also needs a listener, hub connections, logs.
pub const PER_PROCESS_MAX: usize = 18_500;

/// Worker processes by default: enough that each holds at most this many streams.
const DEFAULT_PER_WORKER: usize = 17_000;

/// The command line of the coordinator.
#[derive(Debug, Clone)]
pub struct Options {
    /// Streams in all (`--streams`, default 100,000).
    pub streams: usize,
    /// Bench-app instances, each on a loopback port of its own (`--instances`, default 6).
    pub instances: usize,
    /// Client worker processes (`--workers`; default: one per 17,000 streams).
    pub workers: usize,
    /// The Redis hub all instances share (`--redis`).
    pub redis: String,
    /// The servers' heartbeat interval (`--heartbeat-ms`, default the runtime's 15 s).
    pub heartbeat_ms: u64,
    /// The idle window (`--idle-s`; default two heartbeat intervals plus 2 s, never less than
    /// two intervals).
    pub idle: Duration,
    /// The user the notification goes to (`--user`; default: picked from the clock).
    pub user: Option<usize>,
    /// The bench app (`--bench-app`; default: [`default_bench_app`]).
    pub bench_app: PathBuf,
    /// 127.0.0.x source addresses each worker spreads its connections over (`--sources`).
    pub sources: u8,
    /// Streams each worker opens at once (`--concurrency`).
    pub concurrency: usize,
    /// Bound of opening every stream (`--open-timeout-s`).
    pub open_timeout: Duration,
    /// Bound of the notification's delivery (`--deliver-timeout-s`).
    pub deliver_timeout: Duration,
    /// Also print the outcome as one JSON line after the table (`--json`).
    pub json: bool,
    /// Every instance on one port with `SO_REUSEPORT` (`--one-port`): which instance holds a
    /// stream, and which one a publish reaches, is the kernel's choice.
    pub one_port: bool,
}

/// The command line of a worker subprocess (set by the coordinator, not by hand).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The instances; stream `i` goes to `targets[i % targets.len()]`.
    pub targets: Vec<SocketAddr>,
    /// The first stream this worker holds.
    pub from: usize,
    /// One past the last stream this worker holds.
    pub to: usize,
    /// The run's topic prefix.
    pub prefix: String,
    /// Source addresses to spread over.
    pub sources: u8,
    /// Streams opened at once.
    pub concurrency: usize,
    /// Bound of opening all.
    pub open_timeout: Duration,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The whole run.
    Run(Options),
    /// One client worker (`--worker`).
    Worker(WorkerOptions),
    /// `--help`.
    Help,
}

/// The usage text.
pub const USAGE: &str = "\
hundred-k: N idle SSE streams over K bench-app instances sharing a Redis hub (issue #17)

  hundred-k [--streams 100000] [--instances 6] [--workers auto] [--redis redis://127.0.0.1:6379]
            [--heartbeat-ms 15000] [--idle-s 2*heartbeat+2] [--user I] [--bench-app PATH]
            [--sources 16] [--concurrency 64] [--open-timeout-s 600] [--deliver-timeout-s 10]
            [--one-port] [--json]

--one-port: every instance listens on the same port (SO_REUSEPORT) and the kernel spreads
the streams and the publish over them; default: a port per instance, stream i on i % K.

Needs the release bench app: cargo build --release --example bench";

/// The bench app next to this executable (`<target>/<profile>/examples/bench`), else the
/// release one of the same target dir (the debug test binary uses the release app).
pub fn default_bench_app() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let sibling = dir.join("examples").join("bench");
    if sibling.exists() {
        return sibling;
    }
    let release = dir
        .parent()
        .map(|t| t.join("release").join("examples").join("bench"));
    match release {
        Some(r) if r.exists() => r,
        _ => sibling,
    }
}

/// Parses the command line (without the program name).
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut it = args.into_iter();
    let mut o = Options {
        streams: 100_000,
        instances: 6,
        workers: 0,
        redis: "redis://127.0.0.1:6379".into(),
        heartbeat_ms: 15_000,
        idle: Duration::ZERO,
        user: None,
        bench_app: default_bench_app(),
        sources: 16,
        concurrency: 64,
        open_timeout: Duration::from_secs(600),
        deliver_timeout: Duration::from_secs(10),
        json: false,
        one_port: false,
    };
    let mut worker = false;
    let (mut targets, mut from, mut to, mut prefix) = (Vec::new(), 0, 0, String::new());
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--help" | "-h" => return Ok(Mode::Help),
            "--worker" => {
                worker = true;
                continue;
            }
            "--json" => {
                o.json = true;
                continue;
            }
            "--one-port" => {
                o.one_port = true;
                continue;
            }
            _ => {}
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--streams" => o.streams = num(&v)? as usize,
            "--instances" => o.instances = num(&v)? as usize,
            "--workers" => o.workers = num(&v)? as usize,
            "--redis" => o.redis = v,
            "--heartbeat-ms" => o.heartbeat_ms = num(&v)?,
            "--idle-s" => o.idle = Duration::from_secs(num(&v)?),
            "--user" => o.user = Some(num(&v)? as usize),
            "--bench-app" => o.bench_app = v.into(),
            "--sources" => o.sources = num(&v)?.clamp(1, 250) as u8,
            "--concurrency" => o.concurrency = num(&v)?.clamp(1, 1024) as usize,
            "--open-timeout-s" => o.open_timeout = Duration::from_secs(num(&v)?.min(3600)),
            "--deliver-timeout-s" => o.deliver_timeout = Duration::from_secs(num(&v)?.min(600)),
            "--targets" => {
                targets = v
                    .split(',')
                    .map(|a| {
                        a.parse::<SocketAddr>()
                            .map_err(|e| format!("--targets {a}: {e}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--from" => from = num(&v)? as usize,
            "--to" => to = num(&v)? as usize,
            "--prefix" => prefix = v,
            other => return Err(format!("unknown flag {other}\n\n{USAGE}")),
        }
    }
    if worker {
        if targets.is_empty() || to <= from || to - from > PER_PROCESS_MAX {
            return Err(format!(
                "--worker needs --targets and 1..={PER_PROCESS_MAX} streams (--from, --to)"
            ));
        }
        if let Some(a) = targets.iter().find(|a| !a.ip().is_loopback()) {
            return Err(format!("{a} is not a loopback address"));
        }
        return Ok(Mode::Worker(WorkerOptions {
            targets,
            from,
            to,
            prefix,
            sources: o.sources,
            concurrency: o.concurrency,
            open_timeout: o.open_timeout,
        }));
    }
    // Bounds: a loopback benchmark of this box, not a flood tool.
    if o.streams == 0 || o.streams > 200_000 {
        return Err("--streams must be 1..=200000".into());
    }
    if !(2..=16).contains(&o.instances) {
        return Err("--instances must be 2..=16 (the notification crosses instances)".into());
    }
    if o.streams.div_ceil(o.instances) > PER_PROCESS_MAX {
        return Err(format!(
            "{} streams per instance: at most {PER_PROCESS_MAX} fit one process's open-files \
             limit; use more --instances",
            o.streams.div_ceil(o.instances)
        ));
    }
    if o.workers == 0 {
        o.workers = o.streams.div_ceil(DEFAULT_PER_WORKER);
    }
    if o.workers > 32 || o.streams.div_ceil(o.workers) > PER_PROCESS_MAX {
        return Err(format!(
            "--workers must be at most 32 and leave at most {PER_PROCESS_MAX} streams each"
        ));
    }
    if !(100..=60_000).contains(&o.heartbeat_ms) {
        return Err("--heartbeat-ms must be 100..=60000".into());
    }
    let two = Duration::from_millis(2 * o.heartbeat_ms);
    if o.idle.is_zero() {
        o.idle = two + Duration::from_secs(2);
    }
    if o.idle < two || o.idle > Duration::from_secs(600) {
        return Err("--idle-s must cover two heartbeat intervals and be at most 600".into());
    }
    if o.user.is_some_and(|u| u >= o.streams) {
        return Err("--user must be below --streams".into());
    }
    Ok(Mode::Run(o))
}

/// The topic of user `i`.
fn topic(prefix: &str, i: usize) -> String {
    format!("{prefix}user{i}")
}

/// A line a worker writes on stdout.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkerMsg {
    /// Every stream of the worker has opened or failed (or the open bound passed).
    Opened {
        /// Streams with their 200 head.
        opened: usize,
        /// Streams that failed or timed out.
        failed: usize,
        /// A few distinct errors.
        errors: Vec<String>,
    },
    /// Answer to `mark`: heartbeat counts noted as the idle window's start.
    Marked,
    /// Answer to `check`: the idle window's end.
    Checked {
        /// Streams still open.
        open: usize,
        /// Open streams that received a heartbeat since `mark`.
        with_heartbeat: usize,
        /// Up to 5 streams (global index) without one.
        without: Vec<usize>,
        /// Events (not heartbeats) received on all streams so far.
        events: u64,
        /// A few distinct errors of streams that ended.
        errors: Vec<String>,
    },
    /// An event arrived on a stream (sent as it arrives).
    Event {
        /// Global stream index (= user).
        stream: usize,
        /// When it was read, microseconds since the Unix epoch.
        recv_us: u64,
        /// Its `seq`, if it had one.
        seq: Option<u64>,
    },
    /// Answer to `events`: every stream that received events, with its count.
    Events {
        /// `(stream, events)` for each stream with at least one (at most 100 listed).
        streams: Vec<(usize, u32)>,
        /// Events on all streams.
        total: u64,
    },
}

const OPENING: u8 = 0;
const OPEN: u8 = 1;
const FAILED: u8 = 2;
const ENDED: u8 = 3;

/// Per-stream counters a worker shares between its stream tasks and its command loop.
struct Streams {
    state: Vec<AtomicU8>,
    comments: Vec<AtomicU32>,
    events: Vec<AtomicU32>,
    settled: AtomicUsize,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Streams {
    fn new(n: usize) -> Self {
        Self {
            state: (0..n).map(|_| AtomicU8::new(OPENING)).collect(),
            comments: (0..n).map(|_| AtomicU32::new(0)).collect(),
            events: (0..n).map(|_| AtomicU32::new(0)).collect(),
            settled: AtomicUsize::new(0),
            errors: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn note(&self, e: String) {
        if let Ok(mut errs) = self.errors.lock()
            && errs.len() < 5
            && !errs.contains(&e)
        {
            errs.push(e);
        }
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// One worker process: opens streams `from..to`, reports, then answers `mark`, `check`,
/// `events` and `quit` on stdin until it closes.
pub async fn worker(o: WorkerOptions) -> Result<(), String> {
    raise_nofile();
    let n = o.to - o.from;
    let (out, mut out_rx) = mpsc::unbounded_channel::<WorkerMsg>();
    // One writer owns stdout, so event lines and answers never interleave mid-line.
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(msg) = out_rx.recv().await {
            let mut line = serde_json::to_string(&msg).unwrap_or_default();
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let targets = o
        .targets
        .iter()
        .map(|a| Target::loopback(*a, o.sources).map(Arc::new))
        .collect::<io::Result<Vec<_>>>()
        .map_err(|e| e.to_string())?;
    let shared = Arc::new(Streams::new(n));
    let sem = Arc::new(Semaphore::new(o.concurrency));
    let deadline = tokio::time::Instant::now() + o.open_timeout;
    let mut tasks = Vec::with_capacity(n);
    for local in 0..n {
        let global = o.from + local;
        let target = targets[global % targets.len()].clone();
        let path = format!("/bench/subscribe?topic={}", topic(&o.prefix, global));
        let (sem, shared, out) = (sem.clone(), shared.clone(), out.clone());
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire().await;
            let open = tokio::time::timeout_at(deadline, target.open(global, &path)).await;
            drop(permit);
            match open {
                Ok(Ok((s, head))) => {
                    shared.state[local].store(OPEN, Ordering::Relaxed);
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    hold(s, head, global, local, &shared, &out).await;
                }
                Ok(Err(e)) => {
                    shared.state[local].store(FAILED, Ordering::Relaxed);
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    shared.note(format!("open: {e}"));
                }
                Err(_) => {
                    shared.state[local].store(FAILED, Ordering::Relaxed);
                    shared.settled.fetch_add(1, Ordering::Relaxed);
                    shared.note("open: timed out".into());
                }
            }
        }));
    }
    while shared.settled.load(Ordering::Relaxed) < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let count = |s: u8| {
        shared
            .state
            .iter()
            .filter(|x| x.load(Ordering::Relaxed) == s)
            .count()
    };
    let opened = count(OPEN) + count(ENDED);
    let _ = out.send(WorkerMsg::Opened {
        opened,
        failed: n - opened,
        errors: shared.errors(),
    });

    let mut base = vec![0u32; n];
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(cmd)) = lines.next_line().await {
        let msg = match cmd.trim() {
            "mark" => {
                for (b, c) in base.iter_mut().zip(&shared.comments) {
                    *b = c.load(Ordering::Relaxed);
                }
                WorkerMsg::Marked
            }
            "check" => {
                let (mut open, mut with_heartbeat, mut without) = (0, 0, Vec::new());
                for (i, b) in base.iter().enumerate() {
                    let is_open = shared.state[i].load(Ordering::Relaxed) == OPEN;
                    let beat = shared.comments[i].load(Ordering::Relaxed) > *b;
                    open += usize::from(is_open);
                    if is_open && beat {
                        with_heartbeat += 1;
                    } else if without.len() < 5 {
                        without.push(o.from + i);
                    }
                }
                WorkerMsg::Checked {
                    open,
                    with_heartbeat,
                    without,
                    events: total_events(&shared),
                    errors: shared.errors(),
                }
            }
            "events" => {
                let streams = (0..n)
                    .filter_map(|i| {
                        let e = shared.events[i].load(Ordering::Relaxed);
                        (e > 0).then_some((o.from + i, e))
                    })
                    .take(100)
                    .collect();
                WorkerMsg::Events {
                    streams,
                    total: total_events(&shared),
                }
            }
            "quit" => break,
            _ => continue,
        };
        if out.send(msg).is_err() {
            break;
        }
    }
    for t in &tasks {
        t.abort();
    }
    drop(tasks);
    drop(out);
    // The stream tasks held senders too; once aborted, the writer drains and ends.
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    Ok(())
}

fn total_events(shared: &Streams) -> u64 {
    shared
        .events
        .iter()
        .map(|e| u64::from(e.load(Ordering::Relaxed)))
        .sum()
}

/// Reads one open stream until it ends: counts heartbeat comments, and reports each event
/// as it arrives.
async fn hold(
    mut s: TcpStream,
    head: Head,
    global: usize,
    local: usize,
    shared: &Streams,
    out: &mpsc::UnboundedSender<WorkerMsg>,
) {
    let mut parser = SseParser::new();
    let mut decoder = head.body;
    // Idle streams carry a few bytes a heartbeat: a small buffer keeps the client's RSS small.
    let mut buf = [0u8; 512];
    let mut chunk: Vec<u8> = head.leftover;
    let mut len = chunk.len();
    loop {
        let recv_us = now_us();
        let mut seqs: Vec<Option<u64>> = Vec::new();
        let input = if chunk.is_empty() {
            &buf[..len]
        } else {
            &chunk[..]
        };
        let fed = decoder.feed(input, &mut |body| {
            parser.feed(body, &mut |ev| seqs.push(json_u64(ev.data, b"\"seq\":")))
        });
        chunk = Vec::new();
        shared.comments[local].store(parser.comments as u32, Ordering::Relaxed);
        for seq in seqs {
            shared.events[local].fetch_add(1, Ordering::Relaxed);
            let _ = out.send(WorkerMsg::Event {
                stream: global,
                recv_us,
                seq,
            });
        }
        let end = match fed {
            Err(e) => Some(format!("stream: {e}")),
            Ok(()) if decoder.is_done() => Some("stream: ended by the server".to_owned()),
            Ok(()) => match s.read(&mut buf).await {
                Ok(0) => Some("stream: connection closed".to_owned()),
                Ok(n) => {
                    len = n;
                    None
                }
                Err(e) => Some(format!("stream: {e}")),
            },
        };
        if let Some(e) = end {
            shared.state[local].store(ENDED, Ordering::Relaxed);
            shared.note(e);
            return;
        }
    }
}

/// One check of the run and whether it held.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// What a run measured and checked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// Streams asked for.
    pub streams: usize,
    /// Bench-app instances.
    pub instances: usize,
    /// Client worker processes.
    pub workers: usize,
    /// The servers' heartbeat interval.
    pub heartbeat_ms: u64,
    /// Streams that got their 200 head.
    pub opened: usize,
    /// Streams that did not.
    pub failed: usize,
    /// From spawning the workers until every stream had its head (or failed), seconds.
    pub open_s: f64,
    /// A few distinct errors.
    pub errors: Vec<String>,
    /// The servers' summed RSS before any stream, KiB.
    pub server_rss_before_kib: u64,
    /// The servers' summed RSS once every stream was open, KiB.
    pub server_rss_open_kib: u64,
    /// The servers' summed RSS after the idle window, KiB.
    pub server_rss_idle_kib: u64,
    /// The servers' summed peak RSS (`VmHWM`), KiB.
    pub server_hwm_kib: u64,
    /// (after idle - before) / opened streams, KiB.
    pub rss_per_stream_kib: f64,
    /// The workers' summed RSS after the idle window, KiB.
    pub client_rss_kib: u64,
    /// The idle window, seconds.
    pub idle_s: f64,
    /// The servers' CPU seconds in the idle window (all instances).
    pub server_idle_cpu_s: f64,
    /// The workers' CPU seconds in the idle window.
    pub client_idle_cpu_s: f64,
    /// Streams still open at the window's end.
    pub open_after_idle: usize,
    /// Streams that received at least one heartbeat in the window.
    pub with_heartbeat: usize,
    /// Up to a few streams without one.
    pub without_heartbeat: Vec<usize>,
    /// Events received before the notification (should be none).
    pub events_before: u64,
    /// The user the notification went to.
    pub user: usize,
    /// The instance holding the user's stream (`None` with `--one-port`: the kernel's pick).
    pub holder: Option<usize>,
    /// The instance the notification was published through (`None` with `--one-port`).
    pub via: Option<usize>,
    /// Whether every instance listened on one port (`--one-port`).
    pub one_port: bool,
    /// Streams each instance held once all were open (its established connections on its
    /// port), in instance order.
    pub per_instance: Vec<usize>,
    /// Publish round trip (the `POST`'s answer), ms.
    pub publish_ms: Option<f64>,
    /// From sending the `POST` to the event read on the user's stream, ms.
    pub deliver_ms: Option<f64>,
    /// Streams that received events, with counts, after the notification.
    pub delivered_to: Vec<(usize, u32)>,
    /// Events received on all streams after the notification.
    pub events_after: u64,
    /// The `seq` of the event the user's stream got.
    pub user_seq: Option<u64>,
    /// Every check.
    pub checks: Vec<Check>,
    /// Wall time of the whole run, seconds.
    pub total_s: f64,
}

impl Outcome {
    /// Whether every check held (and there was at least one).
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, name: &str, passed: bool, detail: String) {
        self.checks.push(Check {
            name: name.into(),
            passed,
            detail,
        });
    }

    /// The figures and checks as markdown tables.
    pub fn markdown(&self) -> String {
        let mib = |k: u64| format!("{:.1} MiB", k as f64 / 1024.0);
        let opt = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} ms"));
        let mut s = format!(
            "| {} streams, {} instances, {} client workers, heartbeat {} ms | |\n|---|---|\n",
            thousands(self.streams as u64),
            self.instances,
            self.workers,
            self.heartbeat_ms
        );
        let rows: Vec<(&str, String)> = vec![
            (
                "streams open (200 + `text/event-stream`)",
                format!(
                    "{} / {}",
                    thousands(self.opened as u64),
                    thousands(self.streams as u64)
                ),
            ),
            ("time to open all", format!("{:.1} s", self.open_s)),
            (
                "listening",
                if self.one_port {
                    "one port shared by every instance (`SO_REUSEPORT`)".into()
                } else {
                    "a port per instance".into()
                },
            ),
            (
                "streams per instance (established connections on its port)",
                format!("{:?}", self.per_instance),
            ),
            (
                "servers' RSS before / all open / after idle (sum)",
                format!(
                    "{} / {} / {}",
                    mib(self.server_rss_before_kib),
                    mib(self.server_rss_open_kib),
                    mib(self.server_rss_idle_kib)
                ),
            ),
            ("servers' peak RSS (sum of VmHWM)", mib(self.server_hwm_kib)),
            (
                "**server RSS per stream**",
                format!("**{:.2} KiB**", self.rss_per_stream_kib),
            ),
            (
                "client workers' RSS (sum, for information)",
                mib(self.client_rss_kib),
            ),
            (
                "idle window",
                format!(
                    "{:.1} s ({:.1} heartbeat intervals)",
                    self.idle_s,
                    self.idle_s * 1000.0 / self.heartbeat_ms as f64
                ),
            ),
            (
                "**servers' CPU in the idle window** (all instances)",
                format!(
                    "**{:.2} s = {:.1}% of one core**",
                    self.server_idle_cpu_s,
                    100.0 * self.server_idle_cpu_s / self.idle_s.max(1e-9)
                ),
            ),
            (
                "client workers' CPU in the idle window",
                format!("{:.2} s", self.client_idle_cpu_s),
            ),
            (
                "streams with a heartbeat in the window",
                format!(
                    "{} / {}",
                    thousands(self.with_heartbeat as u64),
                    thousands(self.streams as u64)
                ),
            ),
            (
                "notification",
                match (self.holder, self.via) {
                    (Some(h), Some(v)) => format!(
                        "user {} (stream on instance {h}), published through instance {v}",
                        self.user
                    ),
                    _ => format!(
                        "user {} (stream and publish on the shared port: instances of the kernel's choice)",
                        self.user
                    ),
                },
            ),
            ("publish round trip", opt(self.publish_ms)),
            (
                "**publish → event on the user's stream**",
                opt(self.deliver_ms),
            ),
            (
                "streams that received events",
                format!("{:?} (total {})", self.delivered_to, self.events_after),
            ),
            ("whole run", format!("{:.1} s", self.total_s)),
        ];
        for (k, v) in rows {
            s.push_str(&format!("| {k} | {v} |\n"));
        }
        s.push_str("\n| check | result | |\n|---|---|---|\n");
        for c in &self.checks {
            let r = if c.passed { "pass" } else { "**FAIL**" };
            s.push_str(&format!("| {} | {r} | {} |\n", c.name, c.detail));
        }
        if !self.errors.is_empty() {
            s.push_str(&format!("\nerrors: {:?}\n", self.errors));
        }
        s
    }
}

fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Makes a child die with this process (the thread that spawns it: the coordinator runs on
/// one thread), so a killed coordinator leaves no servers or workers behind.
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe and the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

struct WorkerProc {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
}

/// Messages from all workers, with the worker's index; `None` when its stdout closed.
type Inbox = mpsc::UnboundedReceiver<(usize, Option<WorkerMsg>)>;

/// Waits for one message matching `want` from each of `n` workers (until `deadline`);
/// events that arrive meanwhile go to `events`.
async fn from_each<T>(
    inbox: &mut Inbox,
    n: usize,
    deadline: Instant,
    events: &mut Events,
    mut want: impl FnMut(WorkerMsg) -> Option<T>,
    what: &str,
) -> Result<Vec<T>, String> {
    let mut got: Vec<Option<T>> = (0..n).map(|_| None).collect();
    while got.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, inbox.recv()).await {
            Err(_) => return Err(format!("workers did not answer `{what}` in time")),
            Ok(None) => return Err(format!("the workers exited before answering `{what}`")),
            // A dead worker fails the run now rather than at the deadline.
            Ok(Some((w, None))) if got[w].is_none() => {
                return Err(format!("worker {w} exited before answering `{what}`"));
            }
            Ok(Some((_, None))) => {}
            Ok(Some((
                _,
                Some(WorkerMsg::Event {
                    stream,
                    recv_us,
                    seq,
                }),
            ))) => events.push((stream, recv_us, seq)),
            Ok(Some((w, Some(msg)))) => {
                if let Some(v) = want(msg) {
                    got[w] = Some(v);
                }
            }
        }
    }
    Ok(got.into_iter().flatten().collect())
}

/// How long a worker may take to answer a command (they answer from memory).
const ANSWER_BOUND: Duration = Duration::from_secs(60);

/// Events the workers reported: `(stream, recv_us, seq)`.
type Events = Vec<(usize, u64, Option<u64>)>;

/// Sends `cmd` to every worker and waits for each one's answer matching `want`.
async fn ask<T>(
    workers: &mut [WorkerProc],
    inbox: &mut Inbox,
    events: &mut Events,
    cmd: &str,
    want: impl FnMut(WorkerMsg) -> Option<T>,
) -> Result<Vec<T>, String> {
    send_all(workers, cmd).await?;
    let deadline = Instant::now() + ANSWER_BOUND;
    from_each(inbox, workers.len(), deadline, events, want, cmd).await
}

async fn send_all(workers: &mut [WorkerProc], cmd: &str) -> Result<(), String> {
    for w in workers.iter_mut() {
        w.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .map_err(|e| format!("worker {}: {e}", w.pid))?;
        w.stdin.flush().await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn sum_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .map(|p| proc_status_kib(*p, field).unwrap_or(0))
        .sum()
}

fn sum_cpu(pids: &[u32]) -> f64 {
    pids.iter()
        .map(|p| proc_cpu_seconds(*p).unwrap_or(0.0))
        .sum()
}

/// The whole run: starts the instances and workers, measures, checks, and stops them all
/// (also on failure). `Err` when the run could not get as far as a result.
pub async fn run(o: &Options) -> Result<Outcome, String> {
    raise_nofile();
    if !o.bench_app.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --example bench",
            o.bench_app.display()
        ));
    }
    let logs = std::env::temp_dir().join(format!("hundred-k-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let mut servers = Vec::new();
    let mut workers = Vec::new();
    let result = run_with(o, &logs, &mut servers, &mut workers).await;
    for w in workers.iter_mut() {
        let _ = w.stdin.write_all(b"quit\n").await;
    }
    for mut w in workers {
        if tokio::time::timeout(Duration::from_secs(5), w.child.wait())
            .await
            .is_err()
        {
            let _ = w.child.kill().await;
        }
    }
    for s in servers {
        servers::stop_server(s).await;
    }
    // The instances' logs only matter when something went wrong.
    if matches!(&result, Ok(out) if out.passed()) {
        let _ = std::fs::remove_dir_all(&logs);
    } else {
        eprintln!("hundred-k: the instances' logs are in {}", logs.display());
    }
    result
}

/// Starts the instances, each on a free loopback port with the run's hub and heartbeat,
/// into `servers` (so that the caller stops those that started when one fails).
async fn start_instances(
    o: &Options,
    logs: &std::path::Path,
    servers: &mut Vec<Server>,
) -> Result<(), String> {
    eprintln!(
        "hundred-k: starting {} instances of {} (hub {}, heartbeat {} ms; logs in {})",
        o.instances,
        o.bench_app.display(),
        o.redis,
        o.heartbeat_ms,
        logs.display()
    );
    let fresh = || -> Result<SocketAddr, String> {
        let port = servers::free_port().map_err(|e| e.to_string())?;
        Ok(([127, 0, 0, 1], port).into())
    };
    // With `--one-port` every instance binds the same address.
    let shared = if o.one_port { Some(fresh()?) } else { None };
    for k in 0..o.instances {
        let addr = match shared {
            Some(a) => a,
            None => fresh()?,
        };
        let mut cmd = Command::new(&o.bench_app);
        if shared.is_some() {
            cmd.env("PIKKU_REUSE_PORT", "1");
        }
        cmd.env("PIKKU_ADDR", addr.to_string())
            .env("PIKKU_SSE_HEARTBEAT_MS", o.heartbeat_ms.to_string())
            .env("PIKKU_EVENT_HUB", &o.redis)
            .env("RUST_LOG", "warn");
        die_with_parent(&mut cmd);
        let log = logs.join(format!("instance-{k}.log"));
        let server = servers::spawn_listening(cmd, addr, &log, "bench app")
            .await
            .map_err(|e| format!("instance {k} (hub {}): {e}", o.redis))?;
        servers.push(server);
        // On a shared port the first instance already answers: wait for this one's own
        // listening socket.
        if shared.is_some() {
            wait_for_listeners(addr, k + 1, &mut servers[k]).await?;
        }
    }
    Ok(())
}

/// Waits until `n` sockets listen on `addr` (one per instance on a shared port), or the
/// newest instance exits, or 15 s pass.
async fn wait_for_listeners(addr: SocketAddr, n: usize, newest: &mut Server) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        if listeners(addr) >= n {
            return Ok(());
        }
        if let Some(status) = newest.exited() {
            return Err(format!(
                "instance {} exited ({status}) before listening",
                n - 1
            ));
        }
        if t0.elapsed() > Duration::from_secs(15) {
            return Err(format!(
                "instance {} did not listen on {addr} within 15 s",
                n - 1
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sockets listening on `addr` (IPv4), from `/proc/net/tcp`: each line's local address is
/// `HEXIP:HEXPORT` (the IP's bytes in host order), state `0A` is LISTEN.
fn listeners(addr: SocketAddr) -> usize {
    let std::net::IpAddr::V4(ip) = addr.ip() else {
        return 0;
    };
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(ip.octets()),
        addr.port()
    );
    std::fs::read_to_string("/proc/net/tcp").map_or(0, |t| count_listeners(&t, &local))
}

fn count_listeners(table: &str, local: &str) -> usize {
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let mut f = l.split_whitespace();
            f.nth(1) == Some(local) && f.nth(1) == Some("0A")
        })
        .count()
}

/// Spawns the workers (this executable with `--worker`) into `workers`, each with its range
/// of streams; their stdout lines arrive in the returned inbox.
fn spawn_workers(
    o: &Options,
    prefix: &str,
    servers: &[Server],
    workers: &mut Vec<WorkerProc>,
) -> Result<Inbox, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let targets = servers
        .iter()
        .map(|s| s.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let (tx, inbox) = mpsc::unbounded_channel();
    eprintln!(
        "hundred-k: opening {} streams from {} workers",
        o.streams, o.workers
    );
    let per = o.streams.div_ceil(o.workers);
    for w in 0..o.workers {
        let (from, to) = (w * per, ((w + 1) * per).min(o.streams));
        if from >= to {
            break;
        }
        let mut cmd = Command::new(&exe);
        cmd.arg("--worker")
            .args(["--targets", &targets, "--prefix", prefix])
            .args(["--from", &from.to_string(), "--to", &to.to_string()])
            .args(["--sources", &o.sources.to_string()])
            .args(["--concurrency", &o.concurrency.to_string()])
            .args(["--open-timeout-s", &o.open_timeout.as_secs().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| format!("spawn worker: {e}"))?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("worker without pipes".into());
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<WorkerMsg>(&line) {
                    Ok(msg) => {
                        if tx.send((w, Some(msg))).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("hundred-k: worker {w}: unreadable line ({e}): {line}"),
                }
            }
            let _ = tx.send((w, None));
        });
        workers.push(WorkerProc { child, stdin, pid });
    }
    drop(tx);
    Ok(inbox)
}

async fn run_with(
    o: &Options,
    logs: &std::path::Path,
    servers: &mut Vec<Server>,
    workers: &mut Vec<WorkerProc>,
) -> Result<Outcome, String> {
    let t_run = Instant::now();
    let pid = std::process::id();
    // A fresh prefix per run: no other run's subscribers or history share these topics.
    let prefix = format!("hk{pid}t{}-", now_us() / 1_000_000);
    let mut out = Outcome {
        streams: o.streams,
        instances: o.instances,
        workers: o.workers,
        heartbeat_ms: o.heartbeat_ms,
        ..Outcome::default()
    };

    start_instances(o, logs, servers).await?;
    let server_pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    // Let the instances finish starting (hub connections) before the baseline reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    out.server_rss_before_kib = sum_kib(&server_pids, "VmRSS");
    out.one_port = o.one_port;

    let t_open = Instant::now();
    let mut inbox = spawn_workers(o, &prefix, servers, workers)?;
    let nw = workers.len();
    out.workers = nw;
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    let mut events = Vec::new();

    // 1. Open every stream.
    let opened = from_each(
        &mut inbox,
        nw,
        Instant::now() + o.open_timeout + Duration::from_secs(30),
        &mut events,
        |m| match m {
            WorkerMsg::Opened {
                opened,
                failed,
                errors,
            } => Some((opened, failed, errors)),
            _ => None,
        },
        "opened",
    )
    .await?;
    out.open_s = t_open.elapsed().as_secs_f64();
    for (ok, failed, errors) in opened {
        out.opened += ok;
        out.failed += failed;
        for e in errors {
            if !out.errors.contains(&e) {
                out.errors.push(e);
            }
        }
    }
    out.per_instance = servers
        .iter()
        .map(|s| servers::conns_on_port(s.pid, s.addr.port(), servers::End::Local))
        .collect();
    eprintln!(
        "hundred-k: {} streams open, {} failed, in {:.1} s; per instance {:?}",
        out.opened, out.failed, out.open_s, out.per_instance
    );
    out.check(
        "every stream opened (200, `text/event-stream`)",
        out.opened == o.streams,
        format!("{} of {} in {:.1} s", out.opened, o.streams, out.open_s),
    );
    if out.opened == 0 {
        // Nothing to hold idle or notify (e.g. the hub is down: every open answered 503).
        out.total_s = t_run.elapsed().as_secs_f64();
        return Ok(out);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    out.server_rss_open_kib = sum_kib(&server_pids, "VmRSS");

    // 2. The idle window: heartbeats only.
    ask(workers, &mut inbox, &mut events, "mark", |m| {
        matches!(m, WorkerMsg::Marked).then_some(())
    })
    .await?;
    let (server_cpu0, client_cpu0) = (sum_cpu(&server_pids), sum_cpu(&worker_pids));
    let t_idle = Instant::now();
    eprintln!("hundred-k: idle window of {:.0} s", o.idle.as_secs_f64());
    tokio::time::sleep(o.idle).await;
    out.server_idle_cpu_s = sum_cpu(&server_pids) - server_cpu0;
    out.client_idle_cpu_s = sum_cpu(&worker_pids) - client_cpu0;
    out.idle_s = t_idle.elapsed().as_secs_f64();
    out.server_rss_idle_kib = sum_kib(&server_pids, "VmRSS");
    out.server_hwm_kib = sum_kib(&server_pids, "VmHWM");
    out.client_rss_kib = sum_kib(&worker_pids, "VmRSS");
    out.rss_per_stream_kib = out
        .server_rss_idle_kib
        .saturating_sub(out.server_rss_before_kib) as f64
        / out.opened.max(1) as f64;
    let checked = ask(workers, &mut inbox, &mut events, "check", |m| match m {
        WorkerMsg::Checked {
            open,
            with_heartbeat,
            without,
            events,
            errors,
        } => Some((open, with_heartbeat, without, events, errors)),
        _ => None,
    })
    .await?;
    for (open, beat, without, ev, errors) in checked {
        out.open_after_idle += open;
        out.with_heartbeat += beat;
        out.events_before += ev;
        if out.without_heartbeat.len() < 10 {
            out.without_heartbeat.extend(without);
        }
        for e in errors {
            if !out.errors.contains(&e) {
                out.errors.push(e);
            }
        }
    }
    out.check(
        "every stream got a heartbeat in the idle window",
        out.with_heartbeat == o.streams,
        format!(
            "{} of {} in {:.1} s ({} still open; first without: {:?})",
            out.with_heartbeat, o.streams, out.idle_s, out.open_after_idle, out.without_heartbeat
        ),
    );
    out.check(
        "no events before the notification",
        out.events_before == 0 && events.is_empty(),
        format!("{} events", out.events_before),
    );

    // 3. One notification, to one user, through another instance than the user's.
    notify(
        o,
        &prefix,
        servers,
        workers,
        &mut inbox,
        &mut events,
        &mut out,
    )
    .await?;
    out.total_s = t_run.elapsed().as_secs_f64();
    Ok(out)
}

/// Publishes one event to one user's topic through an instance other than the one holding
/// the user's stream (with `--one-port`, through the shared port: any instance), waits for it
/// (bounded), then asks every worker which streams got events, and records the two delivery
/// checks.
async fn notify(
    o: &Options,
    prefix: &str,
    servers: &[Server],
    workers: &mut [WorkerProc],
    inbox: &mut Inbox,
    events: &mut Events,
    out: &mut Outcome,
) -> Result<(), String> {
    out.user = o
        .user
        .unwrap_or((now_us() / 1_000 % o.streams as u64) as usize);
    let holder = out.user % o.instances;
    let via_k = (holder + 1) % o.instances;
    // On a shared port every instance has the same address: the kernel picks both.
    if !o.one_port {
        out.holder = Some(holder);
        out.via = Some(via_k);
    }
    let via = servers[via_k].addr;
    let path = format!("/bench/publish?topic={}&n=1", topic(prefix, out.user));
    eprintln!(
        "hundred-k: publishing to user {} ({})",
        out.user,
        if o.one_port {
            "on the shared port".to_owned()
        } else {
            format!("instance {holder}, published through instance {via_k}")
        }
    );
    events.clear();
    let t_pub_us = now_us();
    let t_pub = Instant::now();
    let publish = async {
        let mut s = http1::connect(via, None).await?;
        let head = http1::request(&mut s, "POST", &path, &via.to_string(), false).await?;
        Ok::<_, io::Error>(head.status)
    };
    match tokio::time::timeout(o.deliver_timeout, publish).await {
        Ok(Ok(200)) => out.publish_ms = Some(t_pub.elapsed().as_secs_f64() * 1e3),
        Ok(Ok(status)) => out.errors.push(format!("publish: status {status}")),
        Ok(Err(e)) => out.errors.push(format!("publish: {e}")),
        Err(_) => out.errors.push("publish: timed out".into()),
    }
    let deliver_deadline = t_pub + o.deliver_timeout;
    while !events.iter().any(|e| e.0 == out.user) && Instant::now() < deliver_deadline {
        let left = deliver_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, inbox.recv()).await {
            Ok(Some((
                _,
                Some(WorkerMsg::Event {
                    stream,
                    recv_us,
                    seq,
                }),
            ))) => events.push((stream, recv_us, seq)),
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if let Some(e) = events.iter().find(|e| e.0 == out.user) {
        out.deliver_ms = Some(e.1.saturating_sub(t_pub_us) as f64 / 1e3);
        out.user_seq = e.2;
    }
    // Give a wrong delivery time to show up before counting what every stream received.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let lists = ask(workers, inbox, events, "events", |m| match m {
        WorkerMsg::Events { streams, total } => Some((streams, total)),
        _ => None,
    })
    .await?;
    for (streams, total) in lists {
        out.delivered_to.extend(streams);
        out.events_after += total;
    }
    out.delivered_to.sort_unstable();
    let (reached, only_there) = judge_delivery(out);
    out.check(
        "the notification reached the user's stream, within the bound",
        reached,
        format!(
            "{} ms (bound {} s), seq {:?}",
            out.deliver_ms.map_or("never".into(), |d| format!("{d:.1}")),
            o.deliver_timeout.as_secs(),
            out.user_seq
        ),
    );
    out.check(
        "exactly that stream, once (no other stream got anything)",
        only_there,
        format!(
            "streams with events: {:?}, total {}",
            out.delivered_to, out.events_after
        ),
    );
    Ok(())
}

/// The notification's two checks: it reached the user's stream (its one event, `seq` 0,
/// within the bound), and no other stream got anything nor the user's stream a second one.
fn judge_delivery(out: &Outcome) -> (bool, bool) {
    (
        out.deliver_ms.is_some() && out.user_seq == Some(0),
        out.delivered_to == [(out.user, 1)] && out.events_after == 1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn one_port_is_a_flag() {
        let Ok(Mode::Run(o)) = parse(args("--one-port --streams 10 --instances 2")) else {
            panic!("parses");
        };
        assert!(o.one_port);
        let Ok(Mode::Run(o)) = parse(args("--streams 10 --instances 2")) else {
            panic!("parses");
        };
        assert!(!o.one_port);
    }

    /// Two listeners on 127.0.0.1:36983 (0x9077), one connection on it, one listener
    /// elsewhere: the format of `/proc/net/tcp`.
    #[test]
    fn listeners_are_counted_from_the_tcp_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9077 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:9077 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
   2: 0100007F:9077 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1
   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 100 0 0 10 0
";
        assert_eq!(count_listeners(table, "0100007F:9077"), 2);
        assert_eq!(count_listeners(table, "0100007F:1F90"), 1);
        assert_eq!(count_listeners(table, "0100007F:0050"), 0);
        let local = format!("{:08X}:{:04X}", u32::from_ne_bytes([127, 0, 0, 1]), 36983);
        assert_eq!(local, "0100007F:9077");
    }

    #[test]
    fn defaults_and_bounds() {
        let Ok(Mode::Run(o)) = parse(args("")) else {
            panic!("defaults parse")
        };
        assert_eq!((o.streams, o.instances, o.workers), (100_000, 6, 6));
        assert_eq!(o.idle, Duration::from_secs(32));
        // 100,000 streams on 5 instances would put 20,000 in one process.
        assert!(parse(args("--instances 5")).is_err());
        assert!(parse(args("--workers 5")).is_err());
        assert!(parse(args("--heartbeat-ms 1000 --idle-s 1")).is_err());
        assert!(parse(args("--instances 1 --streams 10")).is_err());
        assert!(matches!(
            parse(args("--worker --targets 127.0.0.1:1,127.0.0.1:2 --from 0 --to 10")),
            Ok(Mode::Worker(w)) if w.targets.len() == 2
        ));
        assert!(parse(args("--worker --targets 10.0.0.1:1 --from 0 --to 10")).is_err());
    }

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }

    #[test]
    fn a_notification_elsewhere_or_twice_fails() {
        let at = |delivered_to: Vec<(usize, u32)>, events_after, deliver_ms: Option<f64>| Outcome {
            user: 7,
            user_seq: deliver_ms.map(|_| 0),
            deliver_ms,
            delivered_to,
            events_after,
            ..Outcome::default()
        };
        assert_eq!(
            judge_delivery(&at(vec![(7, 1)], 1, Some(2.0))),
            (true, true)
        );
        // Another user's stream got it (too).
        assert_eq!(judge_delivery(&at(vec![(8, 1)], 1, None)), (false, false));
        assert_eq!(
            judge_delivery(&at(vec![(7, 1), (8, 1)], 2, Some(2.0))),
            (true, false)
        );
        // Twice, or never.
        assert_eq!(
            judge_delivery(&at(vec![(7, 2)], 2, Some(2.0))),
            (true, false)
        );
        assert_eq!(judge_delivery(&at(vec![], 0, None)), (false, false));
    }
}
