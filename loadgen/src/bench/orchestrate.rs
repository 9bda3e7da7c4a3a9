//! Running rows: one scenario against one fresh server (warm-up, measured run, server-side
//! readings), the rounds of every scenario with the servers' order rotating round by round,
//! and the compile-cost measurement.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::options::Opts;
use super::record::{BackendConns, Run, ServerKind};
use super::scenarios::{Backend, Kind, Opening, Scenario};
use super::servers::{
    HubEnv, Paths, Server, conns_to_port, fd_count, free_port, start_server, stop_server, url_port,
};
use super::table::{fmt_num, ms};
use crate::report::{CompileCost, Report};
use crate::{proc_cpu_seconds, proc_status_kib};

/// The load generator, to run scenario `scenario` against `addr`; the caller adds the sizes.
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

/// A load generator that printed `READY {report}` and waits for a line on stdin to go on
/// (`idle` holding its streams, `topics` with its subscriptions in place).
struct Paused {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// The report of the READY line.
    ready: Report,
}

impl Paused {
    /// Starts `cmd` and waits (at most `bound`) for its READY line.
    async fn start(mut cmd: Command, bound: Duration, what: &str) -> Result<Paused, String> {
        cmd.stdin(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("loadgen: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(bound, async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(json) = l.strip_prefix("READY ") {
                    return Some(json.to_owned());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("{what} never became ready"))?;
        let ready = serde_json::from_str(&ready).map_err(|e| format!("ready line: {e}"))?;
        Ok(Paused {
            child,
            stdin,
            lines,
            ready,
        })
    }

    /// Tells it to go on and reads its final report (waiting at most `bound`).
    async fn resume(mut self, bound: Duration, what: &str) -> Result<Report, String> {
        let _ = self.stdin.write_all(b"go\n").await;
        drop(self.stdin);
        let last = tokio::time::timeout(bound, async {
            let mut last = None;
            while let Ok(Some(l)) = self.lines.next_line().await {
                last = Some(l);
            }
            last
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| format!("no {what} report"))?;
        let _ = self.child.wait().await;
        serde_json::from_str(&last).map_err(|e| format!("{what} report: {e}"))
    }
}

/// Why server `kind` does not run rows of `scenario` at all (the table cell), or `None`.
pub fn not_run(kind: ServerKind, scenario: &Kind) -> Option<&'static str> {
    use Backend::*;
    let (backend, topics) = match scenario {
        Kind::Fanout { backend, .. } => (*backend, false),
        Kind::Topics { backend, .. } => (*backend, true),
        // It serves the idle route only: there is no `GET` to answer first.
        Kind::Idle { opening, .. } if kind == ServerKind::NodePlain && opening.gets_first() => {
            return Some("n/a (idle route only)");
        }
        Kind::Ticks { .. } | Kind::Idle { .. } => return None,
    };
    match (kind, backend) {
        (ServerKind::Pikku, _) => None,
        // It serves the idle route only.
        (ServerKind::NodePlain, _) => Some("n/a (idle rows only)"),
        // @pikku/core fans SSE out through its in-process LocalEventHubService only;
        // @pikku/redis 0.12 stores serverless channel subscriptions, it is no pub/sub.
        (ServerKind::PikkuNode, Redis) => Some("n/a (no Redis fan-out in @pikku/core)"),
        (ServerKind::PikkuNode, Nats) => Some("n/a (no NATS fan-out in @pikku/core)"),
        (ServerKind::PikkuNode, Postgres) => Some("n/a (no PostgreSQL fan-out in @pikku/core)"),
        (ServerKind::PikkuNode, Embedded) if topics => {
            Some("n/a (node-pikku has no publish-each route)")
        }
        (ServerKind::PikkuNode, Embedded) => None,
        // The hand-written server relays through Redis pub/sub or nothing.
        (ServerKind::Baseline, Nats) => Some("n/a (the baseline relays through Redis only)"),
        (ServerKind::Baseline, Postgres) => Some("n/a (the baseline relays through Redis only)"),
        (ServerKind::Baseline, Embedded | Redis) => None,
    }
}

/// The hub prefix of the bench servers on `backend`: their own keys, subjects and tables,
/// apart from the default ones tests and apps use on the shared servers. It is fixed, so
/// rounds reuse one NATS stream and one set of PostgreSQL tables rather than leave a new one
/// behind each; rounds are kept apart by their topics ([`run_tag`]).
fn hub_prefix(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Embedded => None,
        Backend::Redis => Some("pikku:bench:"),
        Backend::Nats | Backend::Postgres => Some("pikku_bench"),
    }
}

/// A prefix for the topics of one run that no other run uses (scenario, server, round, this
/// process and the clock), so that no round sees another's history or live events.
fn run_tag(id: &str, kind: ServerKind, round: usize) -> String {
    let ms = crate::now_us() / 1000;
    format!("{id}-{}-r{round}-{}-{ms}-", kind.slug(), std::process::id())
}

/// Runs scenario `sc` once against a fresh `kind` server on `port`: warm-up, the measured run,
/// the server-side readings; a row the server does not run, a server that could not start or
/// a failed load-generator run gives a run with a note instead of a report.
pub async fn run_one(
    p: &Paths,
    o: &Opts,
    sc: &Scenario,
    kind: ServerKind,
    round: usize,
    port: u16,
) -> Run {
    if let Some(note) = not_run(kind, &sc.kind) {
        return Run::na(kind, sc.id, round, note.into());
    }
    let backend = sc.kind.backend();
    let hub = backend.url(o).map(|url| HubEnv {
        url: url.to_owned(),
        prefix: hub_prefix(backend).map(str::to_owned),
    });
    let tag = run_tag(sc.id, kind, round);
    let log = o
        .logs
        .join(format!("server-{}-{}-r{round}.log", sc.id, kind.slug()));
    let server = match start_server(p, kind, port, hub.as_ref(), &log).await {
        Ok(s) => s,
        Err(note) => return Run::na(kind, sc.id, round, note),
    };
    let mut run = Run::na(kind, sc.id, round, String::new());
    run.note = None;
    let result = match sc.kind {
        Kind::Ticks { conns, n } => measure_ticks(p, o, &server, &mut run, conns, n).await,
        Kind::Idle { conns, opening, .. } => {
            measure_idle(p, o, &server, &mut run, conns, opening).await
        }
        Kind::Fanout { subs, n, .. } => {
            measure_fanout(p, o, &server, &mut run, &tag, subs, n).await
        }
        Kind::Topics { topics, .. } => {
            let port = hub.as_ref().and_then(|h| url_port(&h.url));
            measure_topics(p, o, &server, &mut run, &tag, topics, port).await
        }
    };
    stop_server(server).await;
    match result {
        Ok(r) => run.report = Some(r),
        Err(e) => run.note = Some(e),
    }
    run
}

/// Ticks: a small warm-up (first connections, allocator arenas, page faults), then `conns`
/// streams of `n` events; records the server's CPU over the measured run.
async fn measure_ticks(
    p: &Paths,
    o: &Opts,
    server: &Server,
    run: &mut Run,
    conns: usize,
    n: u64,
) -> Result<Report, String> {
    let (addr, pid) = (server.addr, server.pid);
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

/// Idle: a warm-up, the server's RSS, `conns` streams held until the load generator says
/// READY, the server's RSS and descriptors 1 s later, then the streams released.
async fn measure_idle(
    p: &Paths,
    o: &Opts,
    server: &Server,
    run: &mut Run,
    conns: usize,
    opening: Opening,
) -> Result<Report, String> {
    let (addr, pid) = (server.addr, server.pid);
    let flags = opening.loadgen_args();
    let mut warm = loadgen_cmd(p, o, "idle", addr);
    warm.args(["--conns", "50", "--hold-s", "0"]).args(flags);
    run_loadgen(warm, Duration::from_secs(60)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.rss_before_kib = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let mut cmd = loadgen_cmd(p, o, "idle", addr);
    cmd.args(["--conns", &conns.to_string(), "--hold-s", "300"])
        .args(["--setup-timeout-s", "120"])
        .args(flags);
    let paused = Paused::start(cmd, Duration::from_secs(150), "idle streams").await?;
    // Let lazily-grown buffers settle before reading the server's RSS.
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.rss_after_kib = proc_status_kib(pid, "VmRSS").unwrap_or(0);
    run.server_fds = fd_count(pid);
    if paused.ready.opened > 0 {
        run.rss_per_stream_kib =
            (run.rss_after_kib as f64 - run.rss_before_kib as f64) / paused.ready.opened as f64;
    }
    paused.resume(Duration::from_secs(60), "idle").await
}

/// Fan-out: a warm-up on another topic, then `n` events published once to `subs` subscribers
/// of the run's own topic (`tag`, see [`run_tag`]); records the server's CPU and peak RSS.
async fn measure_fanout(
    p: &Paths,
    o: &Opts,
    server: &Server,
    run: &mut Run,
    tag: &str,
    subs: usize,
    n: u64,
) -> Result<Report, String> {
    let (addr, pid) = (server.addr, server.pid);
    let mut warm = loadgen_cmd(p, o, "fanout", addr);
    warm.args([
        "--conns",
        "20",
        "--n",
        "10",
        "--topic",
        &format!("{tag}warmup"),
    ])
    .args(["--timeout-s", "20"]);
    run_loadgen(warm, Duration::from_secs(60)).await?;
    let cpu0 = proc_cpu_seconds(pid).unwrap_or(0.0);
    let mut cmd = loadgen_cmd(p, o, "fanout", addr);
    cmd.args(["--conns", &subs.to_string(), "--n", &n.to_string()])
        .args(["--topic", &format!("{tag}fan")])
        .args(["--timeout-s", "60", "--setup-timeout-s", "120"]);
    let r = run_loadgen(cmd, Duration::from_secs(240)).await?;
    run.server_cpu_s = proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    run.server_peak_rss_kib = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    Ok(r)
}

/// Many topics: a warm-up of 20 topics, then `topics` subscribers with a topic each (topics
/// `<tag>t0`, `<tag>t1`, ...) and one event to each; records the server's CPU, peak RSS and,
/// when the hub has a backend on `backend_port`, the server's connections to it before the
/// streams opened and with all of them subscribed.
async fn measure_topics(
    p: &Paths,
    o: &Opts,
    server: &Server,
    run: &mut Run,
    tag: &str,
    topics: usize,
    backend_port: Option<u16>,
) -> Result<Report, String> {
    let (addr, pid) = (server.addr, server.pid);
    let mut warm = loadgen_cmd(p, o, "topics", addr);
    warm.args(["--conns", "20", "--prefix", &format!("{tag}warm")])
        .args(["--timeout-s", "20", "--hold-s", "0"]);
    run_loadgen(warm, Duration::from_secs(60)).await?;
    let before = backend_port.map(|port| conns_to_port(pid, port));
    let cpu0 = proc_cpu_seconds(pid).unwrap_or(0.0);
    let mut cmd = loadgen_cmd(p, o, "topics", addr);
    cmd.args([
        "--conns",
        &topics.to_string(),
        "--prefix",
        &format!("{tag}t"),
    ])
    .args([
        "--timeout-s",
        "120",
        "--setup-timeout-s",
        "120",
        "--hold-s",
        "60",
    ]);
    let paused = Paused::start(cmd, Duration::from_secs(150), "topic subscriptions").await?;
    if let (Some(port), Some(before)) = (backend_port, before) {
        run.backend_conns = Some(BackendConns {
            before,
            subscribed: conns_to_port(pid, port),
        });
    }
    let r = paused.resume(Duration::from_secs(180), "topics").await?;
    run.server_cpu_s = proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    run.server_peak_rss_kib = proc_status_kib(pid, "VmHWM").unwrap_or(0);
    Ok(r)
}

/// The servers in the order they run in `round`: Pikku, the baseline, (with `node`) Pikku on
/// Node and (with `plain`) plain Node.js, rotated so that each goes first in turn.
pub fn server_order(round: usize, node: bool, plain: bool) -> Vec<ServerKind> {
    let mut order = vec![ServerKind::Pikku, ServerKind::Baseline];
    if node {
        order.push(ServerKind::PikkuNode);
    }
    if plain {
        order.push(ServerKind::NodePlain);
    }
    let first = round % order.len();
    order.rotate_left(first);
    order
}

/// Runs every scenario of `list` for `o.rounds` rounds against each server, alternating, with
/// a progress line per run on stderr; returns every run. Plain Node.js runs the idle rows only.
pub async fn run_rounds(p: &Paths, o: &Opts, list: &[Scenario]) -> Vec<Run> {
    let mut runs = Vec::new();
    for sc in list {
        let plain = o.node_plain && matches!(sc.kind, Kind::Idle { .. });
        for round in 0..o.rounds {
            for kind in server_order(round, o.node, plain) {
                let t = Instant::now();
                let r = match free_port() {
                    Ok(port) => run_one(p, o, sc, kind, round, port).await,
                    Err(e) => Run::na(kind, sc.id, round, format!("no free port: {e}")),
                };
                eprintln!(
                    "   {:<16} round {} {:<14} {} ({:.1} s)",
                    sc.id,
                    round + 1,
                    kind.label(),
                    summary(sc, &r),
                    t.elapsed().as_secs_f64()
                );
                runs.push(r);
            }
        }
    }
    runs
}

/// A run's primary figure for its progress line, or why it has none.
fn summary(sc: &Scenario, r: &Run) -> String {
    match (&r.report, &r.note) {
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
            Kind::Topics { .. } => format!(
                "subscribed in {:.1} s, p99 {} ms, {}/{} complete{}",
                rep.setup_s,
                ms(rep.latency.p99_us),
                rep.complete_streams,
                rep.conns,
                r.backend_conns.map_or(String::new(), |c| format!(
                    ", backend conns {} -> {}",
                    c.before, c.subscribed
                ))
            ),
        },
        (None, Some(n)) => n.clone(),
        (None, None) => "?".into(),
    }
}

/// Runs `compile-cost` (minutes) and reads its report; `Ok(None)` when it gave none (said on
/// stderr), `Err` when it could not be started.
pub async fn compile_cost(p: &Paths) -> Result<Option<CompileCost>, String> {
    eprintln!("== compile cost (200 functions, debug build; takes a few minutes)");
    let out = Command::new(&p.compile_cost)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .await
        .map_err(|e| format!("compile-cost: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str::<CompileCost>(text.lines().last().unwrap_or("")) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            eprintln!("compile-cost gave no report: {e}");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_server_runs_which_hub_row() {
        use ServerKind::*;
        let fan = |backend| Kind::Fanout {
            subs: 1,
            n: 1,
            backend,
        };
        let topics = |backend| Kind::Topics { topics: 1, backend };
        for b in [
            Backend::Embedded,
            Backend::Redis,
            Backend::Nats,
            Backend::Postgres,
        ] {
            assert_eq!(not_run(Pikku, &fan(b)), None);
            assert_eq!(not_run(Pikku, &topics(b)), None);
            assert_eq!(not_run(NodePlain, &fan(b)), Some("n/a (idle rows only)"));
        }
        assert_eq!(not_run(Baseline, &fan(Backend::Redis)), None);
        assert_eq!(not_run(Baseline, &topics(Backend::Embedded)), None);
        assert_eq!(
            not_run(Baseline, &fan(Backend::Nats)),
            Some("n/a (the baseline relays through Redis only)")
        );
        assert_eq!(
            not_run(Baseline, &topics(Backend::Postgres)),
            Some("n/a (the baseline relays through Redis only)")
        );
        assert_eq!(not_run(PikkuNode, &fan(Backend::Embedded)), None);
        assert_eq!(
            not_run(PikkuNode, &fan(Backend::Redis)),
            Some("n/a (no Redis fan-out in @pikku/core)")
        );
        assert_eq!(
            not_run(PikkuNode, &topics(Backend::Embedded)),
            Some("n/a (node-pikku has no publish-each route)")
        );
        let idle = |opening| Kind::Idle {
            asked: 1,
            conns: 1,
            opening,
        };
        assert_eq!(not_run(NodePlain, &idle(Opening::Fresh)), None);
        assert!(not_run(NodePlain, &idle(Opening::AfterGet)).is_some());
        assert!(not_run(NodePlain, &idle(Opening::AfterUnreadBody)).is_some());
        assert_eq!(not_run(NodePlain, &idle(Opening::Http10)), None);
    }

    #[test]
    fn run_tags_differ_by_server_and_round() {
        let a = run_tag("topics10k", ServerKind::Pikku, 0);
        assert!(a.starts_with("topics10k-pikku-r0-") && a.ends_with('-'));
        assert_ne!(a, run_tag("topics10k", ServerKind::Baseline, 0));
        assert_ne!(a, run_tag("topics10k", ServerKind::Pikku, 1));
    }

    #[test]
    fn each_server_goes_first_in_turn() {
        use ServerKind::*;
        assert_eq!(server_order(0, false, false), [Pikku, Baseline]);
        assert_eq!(server_order(1, false, false), [Baseline, Pikku]);
        assert_eq!(server_order(2, false, false), [Pikku, Baseline]);
        assert_eq!(server_order(0, true, false), [Pikku, Baseline, PikkuNode]);
        assert_eq!(server_order(1, true, false), [Baseline, PikkuNode, Pikku]);
        assert_eq!(server_order(2, true, false), [PikkuNode, Pikku, Baseline]);
        assert_eq!(
            server_order(1, true, true),
            [Baseline, PikkuNode, NodePlain, Pikku]
        );
        assert_eq!(
            server_order(3, true, true),
            [NodePlain, Pikku, Baseline, PikkuNode]
        );
    }
}
