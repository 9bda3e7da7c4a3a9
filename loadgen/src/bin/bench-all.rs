//! Runs every benchmark scenario against the Pikku bench app (`examples/bench.rs`), the
//! hand-written axum baseline and, where Node is installed, Pikku's own TypeScript runtime
//! (`loadgen/node-pikku`, npm `@pikku/core`), alternating, and prints a table of all three plus
//! ratios. Writes `results.md`, `results.json` and `chart.svg` to `--out` (default
//! `target/bench-all`).
//!
//! ```sh
//! cargo run --release -p loadgen --bin bench-all -- --quick   # < 2 minutes once built
//! cargo run --release -p loadgen --bin bench-all             # full: 3 rounds, capped 50k, compile cost
//! ```
//!
//! Flags: `--quick`, `--rounds N`, `--out DIR`, `--no-build`, `--only a,b` (scenario ids),
//! `--redis URL` (default `redis://127.0.0.1:6379`), `--no-compile`, `--no-node` (skip the
//! Node column), `--threads N`
//! (load-generator worker threads), `--from-json FILE` (rebuild the table and chart from a
//! previous run's `results.json`, running nothing).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use loadgen::report::Report;
use loadgen::{proc_cpu_seconds, proc_status_kib};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

/// Descriptors a process keeps for itself (listener, runtime, logs) beyond its streams.
const FD_RESERVE: u64 = 500;

#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    rounds: usize,
    out: PathBuf,
    build: bool,
    only: Option<Vec<String>>,
    redis: String,
    compile: bool,
    /// Run the third column, Pikku on Node (needs `node` and `npm`).
    node: bool,
    threads: usize,
    /// Server logs (under the target dir, not `--out`).
    logs: PathBuf,
    /// Rebuild the table and chart from a previous `results.json` instead of running.
    from_json: Option<PathBuf>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        rounds: 0,
        out: PathBuf::new(),
        build: true,
        only: None,
        redis: "redis://127.0.0.1:6379".into(),
        compile: true,
        node: true,
        threads: 2,
        logs: PathBuf::new(),
        from_json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--full" => o.quick = false,
            "--no-build" => o.build = false,
            "--no-compile" => o.compile = false,
            "--no-node" => o.node = false,
            "--rounds" => o.rounds = val()?.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--threads" => o.threads = val()?.parse().map_err(|e| format!("--threads: {e}"))?,
            "--out" => o.out = PathBuf::from(val()?),
            "--redis" => o.redis = val()?,
            "--only" => o.only = Some(val()?.split(',').map(str::to_owned).collect()),
            "--from-json" => o.from_json = Some(PathBuf::from(val()?)),
            "-h" | "--help" => {
                return Err(
                    "usage: bench-all [--quick] [--rounds N] [--out DIR] [--no-build] \
                            [--only id,..] [--redis URL] [--no-compile] [--no-node] [--threads N]"
                        .into(),
                );
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if o.rounds == 0 {
        o.rounds = if o.quick { 1 } else { 3 };
    }
    o.rounds = o.rounds.min(9);
    if o.quick {
        o.compile = false;
    }
    Ok(o)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
enum ServerKind {
    Pikku,
    Baseline,
    /// Pikku's TypeScript runtime (npm `@pikku/core`) on Node: `loadgen/node-pikku/server.mjs`.
    PikkuNode,
}

impl ServerKind {
    fn label(self) -> &'static str {
        match self {
            ServerKind::Pikku => "Pikku",
            ServerKind::Baseline => "axum baseline",
            ServerKind::PikkuNode => "Pikku on Node",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            ServerKind::Pikku => "pikku",
            ServerKind::Baseline => "baseline",
            ServerKind::PikkuNode => "node",
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Ticks { conns: usize, n: u64 },
    Idle { asked: usize, conns: usize },
    Fanout { subs: usize, n: u64, redis: bool },
}

#[derive(Debug, Clone)]
struct Scenario {
    id: &'static str,
    label: String,
    kind: Kind,
}

fn scenarios(o: &Opts, stream_cap: usize) -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            id: "single",
            label: "1 connection x 200k events".into(),
            kind: Kind::Ticks {
                conns: 1,
                n: 200_000,
            },
        },
        Scenario {
            id: "multi",
            label: "100 connections x 5k events".into(),
            kind: Kind::Ticks {
                conns: 100,
                n: 5_000,
            },
        },
        Scenario {
            id: "idle10k",
            label: "10k idle streams".into(),
            kind: Kind::Idle {
                asked: 10_000,
                conns: 10_000.min(stream_cap),
            },
        },
    ];
    if !o.quick {
        v.push(Scenario {
            id: "idle50k",
            label: format!("50k idle streams (capped at {stream_cap}: fd limit)"),
            kind: Kind::Idle {
                asked: 50_000,
                conns: 50_000.min(stream_cap),
            },
        });
    }
    for (id, subs, redis) in [
        ("fanout1k", 1_000, false),
        ("fanout10k", 10_000, false),
        ("fanout1k-redis", 1_000, true),
        ("fanout10k-redis", 10_000, true),
    ] {
        v.push(Scenario {
            id,
            label: format!(
                "fan-out 100 events to {}k subscribers ({})",
                subs / 1000,
                if redis { "Redis" } else { "embedded hub" }
            ),
            kind: Kind::Fanout {
                subs: subs.min(stream_cap),
                n: 100,
                redis,
            },
        });
    }
    if let Some(only) = &o.only {
        v.retain(|s| only.iter().any(|o| o == s.id));
    }
    v
}

/// One run of one scenario against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Run {
    server: ServerKind,
    scenario: String,
    round: usize,
    /// `None` when the scenario could not run (the reason is in `note`).
    report: Option<Report>,
    note: Option<String>,
    server_cpu_s: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    server_fds: usize,
    rss_per_stream_kib: f64,
    server_peak_rss_kib: u64,
    /// Of this scenario's rounds on this server: (complete, all); set on the median shown.
    #[serde(skip)]
    rounds_ok: (usize, usize),
}

impl Run {
    fn na(server: ServerKind, scenario: &str, round: usize, note: String) -> Self {
        Self {
            server,
            scenario: scenario.into(),
            round,
            report: None,
            note: Some(note),
            server_cpu_s: 0.0,
            rss_before_kib: 0,
            rss_after_kib: 0,
            server_fds: 0,
            rss_per_stream_kib: 0.0,
            server_peak_rss_kib: 0,
            rounds_ok: (0, 0),
        }
    }
}

struct Paths {
    root: PathBuf,
    bench_app: PathBuf,
    baseline: PathBuf,
    node_server: PathBuf,
    loadgen: PathBuf,
    compile_cost: PathBuf,
}

fn paths() -> Result<Paths, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    Ok(Paths {
        root: root.clone(),
        bench_app: dir.join("examples").join("bench"),
        baseline: dir.join("baseline"),
        node_server: root.join("loadgen").join("node-pikku").join("server.mjs"),
        loadgen: dir.join("loadgen"),
        compile_cost: dir.join("compile-cost"),
    })
}

struct Server {
    child: Child,
    pid: u32,
    addr: SocketAddr,
}

async fn start_server(
    p: &Paths,
    kind: ServerKind,
    port: u16,
    hub: Option<&str>,
    log: &Path,
) -> Result<Server, String> {
    let (bin, args): (&Path, &[&Path]) = match kind {
        ServerKind::Pikku => (&p.bench_app, &[]),
        ServerKind::Baseline => (&p.baseline, &[]),
        ServerKind::PikkuNode if hub.is_some() => {
            // @pikku/core fans SSE out through its in-process LocalEventHubService only;
            // @pikku/redis 0.12 stores serverless channel subscriptions, it is no pub/sub.
            return Err("n/a (no Redis fan-out in @pikku/core)".into());
        }
        ServerKind::PikkuNode => (Path::new("node"), &[p.node_server.as_path()]),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log_file = std::fs::File::create(log).map_err(|e| format!("log: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.args(args).env("NODE_ENV", "production");
    cmd.env("PIKKU_ADDR", addr.to_string())
        .env("PIKKU_SSE_HEARTBEAT_MS", "15000")
        .env("RUST_LOG", "warn")
        .env_remove("PIKKU_EVENT_HUB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    if let Some(url) = hub {
        cmd.env("PIKKU_EVENT_HUB", url);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))?;
    let pid = child.id().ok_or("no pid")?;
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let line = log.lines().last().unwrap_or("").trim().to_owned();
            return Err(if line.contains("event hub unavailable") {
                eprintln!("   ({} exited: {line})", kind.label());
                "n/a (backend unavailable)".to_owned()
            } else {
                format!("server exited ({status}): {line}")
            });
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Server { child, pid, addr });
        }
        if t0.elapsed() > Duration::from_secs(15) {
            return Err("server did not start listening within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn stop_server(mut s: Server) {
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(s.pid as libc::pid_t, libc::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), s.child.wait())
        .await
        .is_err()
    {
        let _ = s.child.kill().await;
    }
}

fn loadgen_cmd(p: &Paths, o: &Opts, scenario: &str, addr: SocketAddr) -> Command {
    let mut cmd = Command::new(&p.loadgen);
    cmd.arg(scenario)
        .args(["--addr", &addr.to_string()])
        .args(["--threads", &o.threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    cmd
}

/// Runs the load generator to completion (bounded) and parses its report.
async fn run_loadgen(mut cmd: Command, bound: Duration) -> Result<Report, String> {
    let child = cmd.spawn().map_err(|e| format!("loadgen: {e}"))?;
    let out = tokio::time::timeout(bound, child.wait_with_output())
        .await
        .map_err(|_| format!("loadgen ran over {bound:?}"))?
        .map_err(|e| format!("loadgen: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("loadgen report: {e}: {last:?}"))
}

/// A loopback port nobody listens on (the kernel's pick), for the next server.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn run_one(
    p: &Paths,
    o: &Opts,
    sc: &Scenario,
    kind: ServerKind,
    round: usize,
    port: u16,
) -> Run {
    let hub = match &sc.kind {
        Kind::Fanout { redis: true, .. } => Some(o.redis.as_str()),
        _ => None,
    };
    let log = o
        .logs
        .join(format!("server-{}-{}-r{round}.log", sc.id, kind.slug()));
    let server = match start_server(p, kind, port, hub, &log).await {
        Ok(s) => s,
        Err(note) => return Run::na(kind, sc.id, round, note),
    };
    let addr = server.addr;
    let pid = server.pid;
    let mut run = Run::na(kind, sc.id, round, String::new());
    run.note = None;
    let result: Result<Report, String> = async {
        match sc.kind {
            Kind::Ticks { conns, n } => {
                // Warm-up: first connections, allocator arenas, page faults.
                let mut warm = loadgen_cmd(p, o, "ticks", addr);
                warm.args(["--conns", "2", "--n", "20000"]);
                run_loadgen(warm, Duration::from_secs(60)).await?;
                let cpu0 = proc_cpu_seconds(pid).unwrap_or(0.0);
                let mut cmd = loadgen_cmd(p, o, "ticks", addr);
                cmd.args(["--conns", &conns.to_string(), "--n", &n.to_string()])
                    .args(["--timeout-s", "120"]);
                let r = run_loadgen(cmd, Duration::from_secs(180)).await?;
                run.server_cpu_s = proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
                Ok(r)
            }
            Kind::Idle { conns, .. } => {
                let mut warm = loadgen_cmd(p, o, "idle", addr);
                warm.args(["--conns", "50", "--hold-s", "0"]);
                run_loadgen(warm, Duration::from_secs(60)).await?;
                tokio::time::sleep(Duration::from_millis(500)).await;
                run.rss_before_kib = proc_status_kib(pid, "VmRSS").unwrap_or(0);
                let mut cmd = loadgen_cmd(p, o, "idle", addr);
                cmd.args(["--conns", &conns.to_string(), "--hold-s", "300"])
                    .args(["--setup-timeout-s", "120"])
                    .stdin(Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| format!("loadgen: {e}"))?;
                let mut stdin = child.stdin.take().ok_or("no stdin")?;
                let stdout = child.stdout.take().ok_or("no stdout")?;
                let mut lines = BufReader::new(stdout).lines();
                let ready = tokio::time::timeout(Duration::from_secs(150), async {
                    while let Ok(Some(l)) = lines.next_line().await {
                        if l.starts_with("READY ") {
                            return Some(l);
                        }
                    }
                    None
                })
                .await
                .ok()
                .flatten()
                .ok_or("idle streams never became ready")?;
                // Let lazily-grown buffers settle before reading the server's RSS.
                tokio::time::sleep(Duration::from_secs(1)).await;
                run.rss_after_kib = proc_status_kib(pid, "VmRSS").unwrap_or(0);
                run.server_fds = fd_count(pid);
                let ready: Report = serde_json::from_str(&ready["READY ".len()..])
                    .map_err(|e| format!("ready line: {e}"))?;
                if ready.opened > 0 {
                    run.rss_per_stream_kib = (run.rss_after_kib as f64 - run.rss_before_kib as f64)
                        / ready.opened as f64;
                }
                let _ = stdin.write_all(b"stop\n").await;
                drop(stdin);
                let last = tokio::time::timeout(Duration::from_secs(60), async {
                    let mut last = None;
                    while let Ok(Some(l)) = lines.next_line().await {
                        last = Some(l);
                    }
                    last
                })
                .await
                .ok()
                .flatten()
                .ok_or("no idle report")?;
                let _ = child.wait().await;
                serde_json::from_str(&last).map_err(|e| format!("idle report: {e}"))
            }
            Kind::Fanout { subs, n, .. } => {
                let mut warm = loadgen_cmd(p, o, "fanout", addr);
                warm.args(["--conns", "20", "--n", "10", "--topic", "warmup"])
                    .args(["--timeout-s", "20"]);
                run_loadgen(warm, Duration::from_secs(60)).await?;
                let cpu0 = proc_cpu_seconds(pid).unwrap_or(0.0);
                let mut cmd = loadgen_cmd(p, o, "fanout", addr);
                cmd.args(["--conns", &subs.to_string(), "--n", &n.to_string()])
                    .args(["--topic", &format!("fan-{}", sc.id)])
                    .args(["--timeout-s", "60", "--setup-timeout-s", "120"]);
                let r = run_loadgen(cmd, Duration::from_secs(240)).await?;
                run.server_cpu_s = proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
                run.server_peak_rss_kib = proc_status_kib(pid, "VmHWM").unwrap_or(0);
                Ok(r)
            }
        }
    }
    .await;
    stop_server(server).await;
    match result {
        Ok(r) => run.report = Some(r),
        Err(e) => run.note = Some(e),
    }
    run
}

/// Whether a run delivered everything it should have, once: only those compete for the median
/// (a fan-out round whose publish failed has no late events, so a fine-looking p99).
fn complete(sc: &Scenario, r: &Run) -> bool {
    let Some(rep) = r.report.as_ref() else {
        return false;
    };
    let once = rep.errors.is_empty() && rep.lost == 0 && rep.dup == 0 && rep.malformed == 0;
    match sc.kind {
        Kind::Ticks { conns, n } => once && rep.events == conns as u64 * n,
        Kind::Idle { conns, .. } => rep.errors.is_empty() && rep.opened == conns,
        Kind::Fanout { .. } => once && rep.complete_streams == rep.conns,
    }
}

/// The scenario's primary metric, oriented so that larger is better (for the median).
fn primary(sc: &Scenario, r: &Run) -> Option<f64> {
    let rep = r.report.as_ref()?;
    Some(match sc.kind {
        Kind::Ticks { .. } => rep.events_per_s,
        Kind::Idle { .. } => -r.rss_per_stream_kib,
        Kind::Fanout { .. } => -(rep.latency.p99_us as f64),
    })
}

/// The median complete run by the primary metric; the first run when none is complete (its
/// table cells then show what went wrong).
fn median_run(sc: &Scenario, runs: &[&Run]) -> Option<Run> {
    let mut ok: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| complete(sc, r) && primary(sc, r).is_some())
        .collect();
    let shown = (ok.len(), runs.len());
    let pick = |r: &Run| Run {
        rounds_ok: shown,
        ..r.clone()
    };
    if ok.is_empty() {
        return runs.first().map(|r| pick(r));
    }
    ok.sort_by(|a, b| {
        primary(sc, a)
            .partial_cmp(&primary(sc, b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Some(pick(ok[(ok.len() - 1) / 2]))
}

use loadgen::report::CompileCost;

fn compile_rows(c: &CompileCost) -> Vec<Row> {
    [
        (
            "cargo build of the crate (deps built) s",
            c.pikku_build_s,
            c.axum_build_s,
        ),
        (
            "incremental rebuild after touching one fn s",
            c.pikku_incremental_s,
            c.axum_incremental_s,
        ),
    ]
    .into_iter()
    .chain(
        [
            (
                "cargo build CPU s (user + sys)",
                c.pikku_build_cpu_s,
                c.axum_build_cpu_s,
            ),
            (
                "incremental rebuild CPU s",
                c.pikku_incremental_cpu_s,
                c.axum_incremental_cpu_s,
            ),
        ]
        .into_iter()
        .filter_map(|(m, a, b)| Some((m, a?, b?))),
    )
    .map(|(metric, a, b)| Row {
        scenario: format!("compile: {} functions", c.functions),
        metric: metric.into(),
        pikku: format!("{a:.1}"),
        baseline: format!("{b:.1}"),
        ratio: ratio(a, b),
        node: None,
        target: "reported".into(),
    })
    .collect()
}

/// A previous run, as `results.json` holds it.
#[derive(Debug, Deserialize)]
struct Previous {
    mode: String,
    rounds: usize,
    runs: Vec<Run>,
    compile: Option<CompileCost>,
    #[serde(default)]
    stream_cap: Option<usize>,
    #[serde(default)]
    command: Option<String>,
    /// What the Node column ran (`prepare_node`), when it ran.
    #[serde(default)]
    node: Option<String>,
}

/// One table row: a metric of every server.
struct Row {
    scenario: String,
    metric: String,
    pikku: String,
    baseline: String,
    ratio: String,
    /// Pikku on Node's cell and Pikku's ratio to it, where that column ran.
    node: Option<(String, String)>,
    target: String,
}

fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

type Val<'a> = &'a dyn Fn(&Run, &Report) -> f64;
type Show<'a> = &'a dyn Fn(&Run, &Report) -> String;

/// `nd` is `None` when the Node column was not run at all, `Some(None)` when it ran and failed.
fn rows_for(
    sc: &Scenario,
    pk: Option<&Run>,
    bl: Option<&Run>,
    nd: Option<Option<&Run>>,
) -> Vec<Row> {
    let pair = |r: Option<&Run>| r.and_then(|run| run.report.clone().map(|rep| (run.clone(), rep)));
    let na = |r: Option<&Run>| {
        r.and_then(|r| r.note.clone())
            .unwrap_or_else(|| "n/a".into())
    };
    let (pp, bp) = (pair(pk), pair(bl));
    let np = nd.map(pair);
    let mut rows = Vec::new();
    // `value` feeds the ratio (when `target` asks for one or `with_ratio`), `show` the cells.
    let mut row = |metric: &str, value: Option<Val<'_>>, show: Show<'_>, target: &str| {
        let cell = |r: Option<&Run>, p: &Option<(Run, Report)>| match p {
            Some((run, rep)) => show(run, rep),
            None => na(r),
        };
        let ratio_to = |other: &Option<(Run, Report)>| match (value, &pp, other) {
            (Some(v), Some((a, ar)), Some((b, br))) => ratio(v(a, ar), v(b, br)),
            _ => "-".into(),
        };
        rows.push(Row {
            scenario: sc.label.clone(),
            metric: metric.into(),
            pikku: cell(pk, &pp),
            baseline: cell(bl, &bp),
            ratio: ratio_to(&bp),
            node: match (&nd, &np) {
                (Some(r), Some(p)) => Some((cell(*r, p), ratio_to(p))),
                _ => None,
            },
            target: target.into(),
        });
    };
    let latencies = |_: &Run, r: &Report| {
        format!(
            "{} / {} / {}",
            ms(r.latency.p50_us),
            ms(r.latency.p99_us),
            ms(r.latency.max_us)
        )
    };
    let loadgen_cpu = |_: &Run, r: &Report| format!("{:.0}%", r.cpu_pct);
    let rounds = |run: &Run| format!("{}/{}", run.rounds_ok.0, run.rounds_ok.1);
    match sc.kind {
        Kind::Ticks { conns, n } => {
            let expected = conns as u64 * n;
            row(
                "events/s",
                Some(&|_, r| r.events_per_s),
                &|_, r| fmt_num(r.events_per_s),
                ">= 0.95x",
            );
            row(
                "MB/s on the wire",
                Some(&|_, r| r.mb_per_s),
                &|_, r| format!("{:.1}", r.mb_per_s),
                "",
            );
            row("latency p50 / p99 / max ms", None, &latencies, "");
            row(
                "received of expected; lost / dup / malformed; complete rounds",
                None,
                &|run, r| {
                    format!(
                        "{}/{expected}; {} / {} / {}; {}",
                        r.events,
                        r.lost,
                        r.dup,
                        r.malformed,
                        rounds(run)
                    )
                },
                "all, once",
            );
            row(
                "server CPU s per M events",
                Some(&|run, r| run.server_cpu_s / (r.events as f64 / 1e6).max(1e-9)),
                &|run, r| {
                    format!(
                        "{:.2}",
                        run.server_cpu_s / (r.events as f64 / 1e6).max(1e-9)
                    )
                },
                "",
            );
            row("loadgen CPU (% of a core)", None, &loadgen_cpu, "");
        }
        Kind::Idle { asked, conns } => {
            row(
                "streams held",
                None,
                &|run, r| format!("{} of {asked} ({} server fds)", r.opened, run.server_fds),
                if asked > conns { "fd-capped" } else { "" },
            );
            row(
                "server RSS per stream KiB",
                Some(&|run, _| run.rss_per_stream_kib),
                &|run, _| format!("{:.1}", run.rss_per_stream_kib),
                "<= 1.1x",
            );
            row(
                "server RSS before -> after MiB",
                None,
                &|run, _| {
                    format!(
                        "{:.0} -> {:.0}",
                        run.rss_before_kib as f64 / 1024.0,
                        run.rss_after_kib as f64 / 1024.0
                    )
                },
                "",
            );
            row(
                "time to open all s",
                None,
                &|_, r| format!("{:.1}", r.setup_s),
                "",
            );
        }
        Kind::Fanout { subs, .. } => {
            row("latency p50 / p99 / max ms", None, &latencies, "");
            row(
                "latency p99 ms",
                Some(&|_, r| r.latency.p99_us as f64),
                &|_, r| ms(r.latency.p99_us),
                if subs >= 10_000 { "<= 1.0x" } else { "" },
            );
            row(
                "subscribers with every event once; lost / dup; complete rounds",
                None,
                &|run, r| {
                    format!(
                        "{}/{}; {} / {}; {}",
                        r.complete_streams,
                        r.conns,
                        r.lost,
                        r.dup,
                        rounds(run)
                    )
                },
                "all; 0 / 0",
            );
            row(
                "publish request took / all delivered after ms",
                None,
                &|_, r| format!("{:.0} / {:.0}", r.publish_ms, r.elapsed_s * 1e3),
                "",
            );
            row(
                "deliveries/s",
                Some(&|_, r| r.events_per_s),
                &|_, r| fmt_num(r.events_per_s),
                "",
            );
            row(
                "server CPU s",
                Some(&|run, _| run.server_cpu_s),
                &|run, _| format!("{:.2}", run.server_cpu_s),
                "",
            );
            row("loadgen CPU (% of a core)", None, &loadgen_cpu, "");
        }
    }
    rows
}

fn markdown(rows: &[Row]) -> String {
    let with_node = rows.iter().any(|r| r.node.is_some());
    let mut s = String::from(if with_node {
        "| scenario | metric | Pikku | axum baseline | Pikku on Node | Pikku / baseline | Pikku / Node | target |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "| scenario | metric | Pikku | axum baseline | Pikku / baseline | target |\n|---|---|---|---|---|---|\n"
    });
    let mut last = String::new();
    for r in rows {
        let sc = if r.scenario == last { "" } else { &r.scenario };
        if with_node {
            let (nc, nr) = r.node.clone().unwrap_or_else(|| ("-".into(), "-".into()));
            let _ = writeln!(
                s,
                "| {sc} | {} | {} | {} | {nc} | {} | {nr} | {} |",
                r.metric, r.pikku, r.baseline, r.ratio, r.target
            );
        } else {
            let _ = writeln!(
                s,
                "| {sc} | {} | {} | {} | {} | {} |",
                r.metric, r.pikku, r.baseline, r.ratio, r.target
            );
        }
        last = r.scenario.clone();
    }
    s
}

fn plain(rows: &[Row]) -> String {
    let w = |f: &dyn Fn(&Row) -> &str, min: usize| {
        rows.iter().map(|r| f(r).len()).max().unwrap_or(0).max(min)
    };
    let node_cell = |r: &Row| r.node.as_ref().map_or("-", |n| n.0.as_str()).to_owned();
    let node_ratio = |r: &Row| r.node.as_ref().map_or("-", |n| n.1.as_str()).to_owned();
    let (w0, w1, w2, w3, w4) = (
        w(&|r| &r.scenario, 8),
        w(&|r| &r.metric, 6),
        w(&|r| &r.pikku, 5),
        w(&|r| &r.baseline, 8),
        w(&|r| &r.ratio, 5),
    );
    let w5 = rows
        .iter()
        .map(|r| node_cell(r).len())
        .max()
        .unwrap_or(0)
        .max(4);
    let w6 = rows
        .iter()
        .map(|r| node_ratio(r).len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut s = format!(
        "{:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {:>w6$}  target\n",
        "scenario", "metric", "Pikku", "baseline", "ratio", "Node", "ratio Node"
    );
    let mut last = String::new();
    for r in rows {
        let sc = if r.scenario == last { "" } else { &r.scenario };
        let _ = writeln!(
            s,
            "{sc:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {:>w6$}  {}",
            r.metric,
            r.pikku,
            r.baseline,
            r.ratio,
            node_cell(r),
            node_ratio(r),
            r.target
        );
        last = r.scenario.clone();
    }
    s
}

/// A bar chart panel: groups of (label, one value per series) values.
struct Panel {
    title: String,
    unit: String,
    groups: Vec<(String, Vec<Option<f64>>)>,
}

fn bar_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A hand-written SVG of side-by-side bars, one panel per metric; `series` are (label, colour).
fn svg(panels: &[Panel], series: &[(&str, &str)], subtitle: &str) -> String {
    let pw = 300.0;
    let ph = 260.0;
    let top = 70.0;
    let width = pw * panels.len() as f64 + 20.0;
    let height = top + ph + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">Pikku vs hand-written axum SSE{} (same run)</text>\n\
         <text x=\"10\" y=\"40\" fill=\"#555\">{}</text>\n",
        if series.len() > 2 {
            " and Pikku on Node"
        } else {
            ""
        },
        esc(subtitle)
    );
    let mut lx = 10.0;
    for (label, color) in series {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"48\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"58\">{}</text>",
            lx + 16.0,
            esc(label)
        );
        lx += 30.0 + 7.0 * label.len() as f64;
    }
    for (pi, p) in panels.iter().enumerate() {
        let x0 = 10.0 + pi as f64 * pw;
        let base_y = top + ph - 30.0;
        let chart_h = ph - 70.0;
        // The scale follows Pikku and the baseline; a bar far beyond them (Node's, often 10-20x)
        // is cut at the top with a break mark and its value, so the other two stay readable.
        let top_of = |n: usize| {
            p.groups
                .iter()
                .flat_map(|(_, vs)| vs.iter().take(n).map(|v| v.unwrap_or(0.0)))
                .fold(0.0_f64, f64::max)
        };
        let max = if top_of(series.len()) > 3.0 * top_of(2) {
            1.5 * top_of(2)
        } else {
            top_of(series.len())
        }
        .max(1e-9);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n<line x1=\"{}\" y1=\"{base_y}\" x2=\"{}\" y2=\"{base_y}\" stroke=\"#333\"/>",
            x0 + 5.0,
            top + 10.0,
            esc(&format!("{} ({})", p.title, p.unit)),
            x0 + 5.0,
            x0 + pw - 15.0
        );
        let gw = (pw - 30.0) / p.groups.len().max(1) as f64;
        for (gi, (label, vs)) in p.groups.iter().enumerate() {
            let gx = x0 + 10.0 + gi as f64 * gw;
            let bw = (gw - 20.0) / series.len().max(1) as f64;
            for (bi, (v, (_, color))) in vs.iter().zip(series).enumerate() {
                let bx = gx + 5.0 + bi as f64 * bw;
                match v {
                    Some(v) => {
                        let cut = *v > max;
                        let h = chart_h * v.min(max) / max;
                        if cut {
                            let y = base_y - h + 12.0;
                            let _ = writeln!(
                                s,
                                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"/><path d=\"M{bx:.1} {:.1} L{:.1} {y:.1}\" stroke=\"white\" stroke-width=\"4\"/>",
                                base_y - h,
                                bw - 2.0,
                                y + 6.0,
                                bx + bw - 2.0
                            );
                        }
                        let _ = writeln!(
                            s,
                            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{}\">{}</text>",
                            base_y - h,
                            bw - 2.0,
                            if cut { "none" } else { color },
                            bx + bw / 2.0 - 1.0,
                            // Neighbouring labels of narrow bars alternate heights.
                            base_y - h - 3.0 - if bw < 30.0 && bi % 2 == 1 { 10.0 } else { 0.0 },
                            if bw < 30.0 { 9 } else { 10 },
                            esc(&bar_label(*v))
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#a00\">n/a</text>",
                            bx + bw / 2.0,
                            base_y - 4.0
                        );
                    }
                }
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
                gx + gw / 2.0 - 5.0,
                base_y + 16.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Checks `node`, installs `loadgen/node-pikku`'s pinned `@pikku/core` (`npm ci`) once, and
/// says what the Node column runs: the installed @pikku/core (not the pinned one: a stale
/// install says so) and Node's version.
fn prepare_node(server: &Path) -> Result<String, String> {
    let dir = server.parent().ok_or("no node-pikku dir")?;
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let package = dir.join("node_modules/@pikku/core/package.json");
    if !package.exists() {
        let status = std::process::Command::new("npm")
            .current_dir(dir)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm ci in {} failed", dir.display()));
        }
    }
    let core = std::fs::read_to_string(&package)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(version unknown)".into());
    Ok(format!(
        "`loadgen/node-pikku/server.mjs`, npm @pikku/core {core} on Node {}",
        String::from_utf8_lossy(&node.stdout).trim()
    ))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(_, h)| h);
    format!(
        "{cpu}, {cores} cores (shared with other builds), {:.0} GiB RAM, Linux {}, open-files limit {nofile} per process",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-all: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let mut o = parse()?;
    let p = paths()?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| p.root.join("target"));
    if o.out.as_os_str().is_empty() {
        o.out = target.join("bench-all");
    }
    o.logs = target.join("bench-all").join("logs");
    for d in [&o.out, &o.logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let started = Instant::now();
    let previous: Option<Previous> = match &o.from_json {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let prev: Previous =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            o.quick = prev.mode == "quick";
            o.rounds = prev.rounds;
            o.build = false;
            Some(prev)
        }
        None => None,
    };
    if o.build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("== building the bench app, baseline and load generator (release)");
        let status = std::process::Command::new(cargo)
            .current_dir(&p.root)
            .args([
                "build",
                "--release",
                "-p",
                "pikku-suite",
                "--example",
                "bench",
            ])
            .args(["-p", "loadgen", "--bins"])
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build failed".into());
        }
    }
    let mut node_ran = None;
    if o.node && previous.is_none() {
        match prepare_node(&p.node_server) {
            Ok(d) => {
                eprintln!("== Pikku on Node: {d}");
                node_ran = Some(d);
            }
            Err(why) => {
                eprintln!("== no Pikku-on-Node column: {why}");
                o.node = false;
            }
        }
    }
    for b in [&p.bench_app, &p.baseline, &p.loadgen] {
        if previous.is_none() && !b.exists() {
            return Err(format!(
                "{} is missing (build it, or drop --no-build)",
                b.display()
            ));
        }
    }
    let nofile = loadgen::raise_nofile();
    let stream_cap = previous
        .as_ref()
        .and_then(|p| p.stream_cap)
        .unwrap_or_else(|| nofile.saturating_sub(FD_RESERVE).max(100) as usize);
    let list = scenarios(&o, stream_cap);
    let mode = if o.quick { "quick" } else { "full" };
    eprintln!(
        "== {} scenarios x {} round(s), {mode} mode; stream cap {stream_cap} per process (open-files limit {nofile})",
        list.len(),
        o.rounds
    );
    let mut runs: Vec<Run> = previous.as_ref().map_or_else(Vec::new, |p| p.runs.clone());
    for sc in list.iter().filter(|_| previous.is_none()) {
        for round in 0..o.rounds {
            // Rotate which server goes first, round by round.
            let mut order = vec![ServerKind::Pikku, ServerKind::Baseline];
            if o.node {
                order.push(ServerKind::PikkuNode);
            }
            let first = round % order.len();
            order.rotate_left(first);
            for kind in order {
                let t = Instant::now();
                let r = match free_port() {
                    Ok(port) => run_one(&p, &o, sc, kind, round, port).await,
                    Err(e) => Run::na(kind, sc.id, round, format!("no free port: {e}")),
                };
                let summary = match (&r.report, &r.note) {
                    (Some(rep), _) => match sc.kind {
                        Kind::Ticks { .. } => format!("{} events/s", fmt_num(rep.events_per_s)),
                        Kind::Idle { .. } => format!(
                            "{} streams, {:.1} KiB/stream",
                            rep.opened, r.rss_per_stream_kib
                        ),
                        Kind::Fanout { .. } => format!(
                            "p99 {} ms, {}/{} complete",
                            ms(rep.latency.p99_us),
                            rep.complete_streams,
                            rep.conns
                        ),
                    },
                    (None, Some(n)) => n.clone(),
                    (None, None) => "?".into(),
                };
                eprintln!(
                    "   {:<16} round {} {:<14} {summary} ({:.1} s)",
                    sc.id,
                    round + 1,
                    kind.label(),
                    t.elapsed().as_secs_f64()
                );
                runs.push(r);
            }
        }
    }
    let with_node = runs.iter().any(|r| r.server == ServerKind::PikkuNode);
    let mut rows = Vec::new();
    let mut medians: BTreeMap<(&str, ServerKind), Run> = BTreeMap::new();
    for sc in &list {
        let pick = |k: ServerKind| {
            let of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.scenario == sc.id && r.server == k)
                .collect();
            median_run(sc, &of)
        };
        let (pk, bl, nd) = (
            pick(ServerKind::Pikku),
            pick(ServerKind::Baseline),
            pick(ServerKind::PikkuNode),
        );
        rows.extend(rows_for(
            sc,
            pk.as_ref(),
            bl.as_ref(),
            with_node.then_some(nd.as_ref()),
        ));
        for (kind, r) in [
            (ServerKind::Pikku, pk),
            (ServerKind::Baseline, bl),
            (ServerKind::PikkuNode, nd),
        ] {
            if let Some(r) = r {
                medians.insert((sc.id, kind), r);
            }
        }
    }
    let mut compile = previous.as_ref().and_then(|p| p.compile.clone());
    if let Some(c) = &compile {
        rows.extend(compile_rows(c));
    }
    if previous.is_none() && o.compile && p.compile_cost.exists() {
        eprintln!("== compile cost (200 functions, debug build; takes a few minutes)");
        let out = Command::new(&p.compile_cost)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .output()
            .await
            .map_err(|e| format!("compile-cost: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        match serde_json::from_str::<CompileCost>(text.lines().last().unwrap_or("")) {
            Ok(c) => {
                rows.extend(compile_rows(&c));
                compile = Some(c);
            }
            Err(e) => eprintln!("compile-cost gave no report: {e}"),
        }
    }
    let get = |id: &str, k: ServerKind| medians.get(&(id, k)).and_then(|r| r.report.clone());
    let rss = |id: &str, k: ServerKind| {
        medians
            .get(&(id, k))
            .filter(|r| r.report.is_some())
            .map(|r| r.rss_per_stream_kib)
    };
    let thr = |id: &str, k| get(id, k).map(|r| r.events_per_s / 1e6);
    let p99 = |id: &str, k| get(id, k).map(|r| r.latency.p99_us as f64 / 1e3);
    let has = |id: &str| list.iter().any(|s| s.id == id);
    let kinds: &[ServerKind] = if with_node {
        &[
            ServerKind::Pikku,
            ServerKind::Baseline,
            ServerKind::PikkuNode,
        ]
    } else {
        &[ServerKind::Pikku, ServerKind::Baseline]
    };
    let each = |f: &dyn Fn(ServerKind) -> Option<f64>| kinds.iter().map(|&k| f(k)).collect();
    let mut panels = vec![Panel {
        title: "Throughput".into(),
        unit: "M events/s, higher is better".into(),
        groups: ["single", "multi"]
            .into_iter()
            .filter(|id| has(id))
            .map(|id| {
                let label = if id == "single" {
                    "1 conn"
                } else {
                    "100 conns"
                };
                (label.to_owned(), each(&|k| thr(id, k)))
            })
            .collect(),
    }];
    panels.push(Panel {
        title: "Fan-out p99".into(),
        unit: "ms, lower is better".into(),
        groups: [
            ("fanout1k", "1k"),
            ("fanout10k", "10k"),
            ("fanout1k-redis", "1k Redis"),
            ("fanout10k-redis", "10k Redis"),
        ]
        .into_iter()
        .filter(|(id, _)| has(id))
        .map(|(id, l)| (l.to_owned(), each(&|k| p99(id, k))))
        .collect(),
    });
    panels.push(Panel {
        title: "RSS per idle stream".into(),
        unit: "KiB, lower is better".into(),
        groups: [
            ("idle10k", "10k".to_owned()),
            (
                "idle50k",
                format!("{}k (50k capped)", stream_cap as f64 / 1000.0),
            ),
        ]
        .into_iter()
        .filter(|(id, _)| has(id))
        .map(|(id, l)| (l.to_owned(), each(&|k| rss(id, k))))
        .collect(),
    });
    panels.retain(|p| !p.groups.is_empty());
    let machine = match &o.from_json {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["machine"].as_str().map(str::to_owned))
            .unwrap_or_else(machine),
        None => machine(),
    };
    let command = match &previous {
        Some(prev) => prev.command.clone().unwrap_or_else(|| "bench-all".into()),
        None => std::env::args().collect::<Vec<_>>().join(" "),
    };
    let subtitle = format!("{mode} mode, {} round(s), median; {machine}", o.rounds);
    let series: &[(&str, &str)] = &[
        ("Pikku", "#1b9e77"),
        ("axum baseline", "#9e9e9e"),
        ("Pikku on Node (@pikku/core)", "#d95f02"),
    ];
    let chart = svg(&panels, &series[..kinds.len()], &subtitle);
    let rebuilt = if previous.is_some() {
        " (table and chart rebuilt from its results.json with --from-json)"
    } else {
        ""
    };
    let node_desc = match &previous {
        Some(prev) => prev.node.clone(),
        None => node_ran.filter(|_| with_node),
    };
    let node_line = node_desc
        .as_ref()
        .map(|d| format!("\n\nPikku on Node: {d}"))
        .unwrap_or_default();
    let md = format!(
        "Machine: {machine}\n\nToolchain: {}{node_line}\n\nCommand: `{command}`{rebuilt} ({mode} mode, {} round(s) per server, alternating; median run shown; load generator on {} worker threads)\n\n{}",
        rustc_version(),
        o.rounds,
        o.threads,
        markdown(&rows)
    );
    let write = |name: &str, body: &str| {
        let path = o.out.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("results.md", &md)?;
    write("chart.svg", &chart)?;
    let json = serde_json::json!({
        "machine": machine, "mode": mode, "rounds": o.rounds, "runs": runs, "compile": compile,
        "stream_cap": stream_cap, "command": command, "node": node_desc,
    });
    write(
        "results.json",
        &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    println!("\n{}", plain(&rows));
    println!(
        "wrote {}/{{results.md,results.json,chart.svg}} in {:.0} s",
        o.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
