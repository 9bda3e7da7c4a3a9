//! The SSE load generator. One scenario per run; prints its report as one JSON line.
//!
//! ```text
//! loadgen ticks  --addr 127.0.0.1:3100 --conns 100 --n 5000
//! loadgen idle   --addr 127.0.0.1:3100 --conns 10000 [--hold-s 600]
//! loadgen fanout --addr 127.0.0.1:3100 --conns 1000 --n 100 [--topic T]
//! loadgen topics --addr 127.0.0.1:3100 --conns 10000 [--prefix P]
//! ```
//!
//! Common flags: `--threads N` (worker threads, default 2), `--sources N` (127.0.0.x source
//! addresses to spread over, default 16), `--timeout-s S` (bound of the measured phase,
//! default 60), `--setup-timeout-s S` (bound of opening the streams, default 60),
//! `--get-first PATH` (a `GET` answered on each connection before its stream is requested,
//! as a page's `fetch` before its `EventSource`; its body must be chunked or have a length),
//! `--first-body N` (that `GET` carries an N-byte body, at most 64 KiB, which a `GET` route
//! does not read), `--http10` (streams requested over HTTP/1.0, as nginx does upstream by
//! default).
//!
//! `idle` prints `READY {json}` once the streams are open, then holds them until a line
//! arrives on stdin (or stdin closes, or `--hold-s` passes), then prints the report.
//! `topics` does the same once its subscriptions are in place, then publishes one event to
//! each topic (`POST /bench/publish-each`) and prints the report once they are delivered.

use std::net::SocketAddr;
use std::time::Duration;

use loadgen::report::Report;
use loadgen::scenario::{self, Target};
use tokio::io::AsyncBufReadExt;

struct Args {
    scenario: String,
    addr: SocketAddr,
    conns: usize,
    n: u64,
    topic: String,
    prefix: String,
    threads: usize,
    sources: u8,
    timeout: Duration,
    setup_timeout: Duration,
    hold: Duration,
    get_first: Option<String>,
    first_body: usize,
    http10: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let scenario = it
        .next()
        .ok_or("usage: loadgen <ticks|idle|fanout|topics> [flags]")?;
    let mut a = Args {
        scenario,
        addr: "127.0.0.1:3100".parse().map_err(|e| format!("{e}"))?,
        conns: 1,
        n: 1000,
        topic: "bench".into(),
        prefix: "bench-topic-".into(),
        threads: 2,
        sources: 16,
        timeout: Duration::from_secs(60),
        setup_timeout: Duration::from_secs(60),
        hold: Duration::from_secs(600),
        get_first: None,
        first_body: 0,
        http10: false,
    };
    while let Some(flag) = it.next() {
        if flag == "--http10" {
            a.http10 = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--addr" => a.addr = v.parse().map_err(|e| format!("--addr: {e}"))?,
            "--conns" => a.conns = num(&v)? as usize,
            "--n" => a.n = num(&v)?,
            "--topic" => a.topic = v,
            "--prefix" => a.prefix = v,
            "--threads" => a.threads = num(&v)?.max(1) as usize,
            "--sources" => a.sources = num(&v)?.clamp(0, 250) as u8,
            "--timeout-s" => a.timeout = Duration::from_secs(num(&v)?),
            "--setup-timeout-s" => a.setup_timeout = Duration::from_secs(num(&v)?),
            "--hold-s" => a.hold = Duration::from_secs(num(&v)?),
            "--get-first" => a.get_first = Some(v),
            "--first-body" => a.first_body = num(&v)?.min(64 * 1024) as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if a.http10 && a.get_first.is_some() {
        return Err("--http10 streams are a connection's only request: no --get-first".into());
    }
    // Bounds: this is a loopback benchmark, not a flood tool.
    if a.conns == 0 || a.conns > 60_000 {
        return Err("--conns must be 1..=60000".into());
    }
    if a.n > 10_000_000 {
        return Err("--n must be at most 10,000,000".into());
    }
    if a.timeout > Duration::from_secs(900) || a.hold > Duration::from_secs(3600) {
        return Err("--timeout-s is at most 900 and --hold-s at most 3600".into());
    }
    Ok(a)
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let limit = loadgen::raise_nofile();
    if (args.conns as u64) + 64 > limit {
        eprintln!(
            "loadgen: warning: {} streams asked for but the open-files limit is {limit}",
            args.conns
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("loadgen: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let target = match Target::loopback(args.addr, args.sources) {
        Ok(t) => Target {
            get_first: args.get_first.clone(),
            first_body: args.first_body,
            http10: args.http10,
            ..t
        },
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Says READY with the report so far, then waits for a line on stdin (the harness's go).
    let ready = |r: &Report| {
        let line = serde_json::to_string(r).unwrap_or_default();
        println!("READY {line}");
        let hold = args.hold;
        async move {
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            let _ = tokio::time::timeout(hold, stdin.next_line()).await;
        }
    };
    let mut report: Report = rt.block_on(async {
        match args.scenario.as_str() {
            "ticks" => scenario::ticks(&target, args.conns, args.n, args.timeout).await,
            "idle" => scenario::idle(&target, args.conns, args.setup_timeout, ready).await,
            "topics" => {
                scenario::topics(
                    &target,
                    args.conns,
                    &args.prefix,
                    args.setup_timeout,
                    args.timeout,
                    ready,
                )
                .await
            }
            "fanout" => {
                scenario::fanout(
                    &target,
                    args.conns,
                    args.n,
                    &args.topic,
                    args.setup_timeout,
                    args.timeout,
                )
                .await
            }
            other => Report {
                scenario: other.into(),
                errors: vec![format!("unknown scenario {other}")],
                ..Report::default()
            },
        }
    });
    report.threads = args.threads;
    match serde_json::to_string(&report) {
        Ok(line) => println!("{line}"),
        Err(e) => eprintln!("loadgen: report: {e}"),
    }
    // Dropping thousands of sockets is quick, but do not wait on stragglers.
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::ExitCode::SUCCESS
}
