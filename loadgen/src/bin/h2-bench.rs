//! The HTTP/2 row of BENCHMARKS.md: SSE over many streams on one HTTP/2 connection (h2c),
//! against the same events over HTTP/1.1 (one stream per connection), in the same run, with
//! the same client (hyper's) and the same parser. It starts the bench app
//! (`examples/bench.rs`, release build) itself on a free loopback port.
//!
//! ```sh
//! cargo build --release --example bench
//! cargo run --release -p loadgen --bin h2-bench               # 3 rounds, about 20 s
//! cargo run --release -p loadgen --bin h2-bench -- --rounds 1
//! ```
//!
//! Scenarios (the throughput rounds share one server process; each idle run gets a fresh one):
//! - `1 stream x 1M events`: one h2c connection, one stream, against one HTTP/1.1 connection;
//! - `100 streams x 10k events`: one h2c connection carrying 100 streams, against 100
//!   HTTP/1.1 connections carrying one each;
//! - `idle streams`: as many `/bench/idle` streams as one connection takes (the server's
//!   `http2_max_concurrent_streams`, 200 by default) on each of 10 connections, with the
//!   server's RSS per stream, against the same number of HTTP/1.1 connections.
//!
//! The client's HTTP/2 windows are Chromium's (6 MiB per stream, 15 MiB per connection).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use loadgen::sse::{SseParser, json_u64};

type Request = hyper::Request<Empty<Bytes>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Chromium's HTTP/2 receive windows.
const STREAM_WINDOW: u32 = 6 * 1024 * 1024;
const CONN_WINDOW: u32 = 15 * 1024 * 1024;

struct Args {
    bench_app: PathBuf,
    rounds: usize,
}

fn args() -> Result<Args, Error> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or("no exe dir")?;
    let mut out = Args {
        bench_app: dir.join("examples").join("bench"),
        rounds: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bench-app" => out.bench_app = it.next().ok_or("--bench-app PATH")?.into(),
            "--rounds" => out.rounds = it.next().ok_or("--rounds N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(out)
}

fn get(addr: SocketAddr, path: &str) -> Result<Request, Error> {
    Ok(hyper::Request::get(format!("http://{addr}{path}"))
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::new())?)
}

/// One h2c connection (prior knowledge).
async fn h2_connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http2::SendRequest<Empty<Bytes>>, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .handshake(TokioIo::new(tcp))
        .await?;
    tokio::spawn(conn);
    Ok(send)
}

/// One HTTP/1.1 connection.
async fn h1_connect(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(send)
}

/// Reads a `/bench/ticks` stream to its end; returns the events, failing on a gap.
async fn read_ticks(res: hyper::Response<hyper::body::Incoming>, n: u64) -> Result<u64, Error> {
    if res.status() != 200 {
        return Err(format!("status {}", res.status()).into());
    }
    let mut body = res.into_body();
    let mut parser = SseParser::new();
    let mut next = 0u64;
    let mut bad = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            parser.feed(&data, &mut |e| match json_u64(e.data, b"\"seq\":") {
                Some(seq) if seq == next => next += 1,
                _ => bad += 1,
            });
        }
    }
    if bad > 0 || next != n {
        return Err(format!("received {next} of {n} in order, {bad} out of order").into());
    }
    Ok(next)
}

struct Measured {
    events: u64,
    secs: f64,
    server_cpu: f64,
    client_cpu: f64,
}

impl Measured {
    fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.secs
    }
    fn cpu_per_m(&self) -> f64 {
        self.server_cpu / (self.events as f64 / 1e6)
    }
    fn client_share(&self) -> f64 {
        self.client_cpu / self.secs
    }
}

/// `streams` streams of `n` events each: over one h2c connection, or one HTTP/1.1
/// connection per stream.
async fn ticks(
    addr: SocketAddr,
    pid: u32,
    h2: bool,
    streams: usize,
    n: u64,
) -> Result<Measured, Error> {
    let path = format!("/bench/ticks?n={n}");
    let cpu0 = loadgen::proc_cpu_seconds(pid).unwrap_or(0.0);
    let client0 = loadgen::self_cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    if h2 {
        let send = h2_connect(addr).await?;
        for _ in 0..streams {
            let mut send = send.clone();
            let req = get(addr, &path)?;
            tasks.spawn(async move { read_ticks(send.send_request(req).await?, n).await });
        }
    } else {
        for _ in 0..streams {
            let req = get(addr, &path)?;
            tasks.spawn(async move {
                let mut send = h1_connect(addr).await?;
                read_ticks(send.send_request(req).await?, n).await
            });
        }
    }
    let mut events = 0;
    while let Some(r) = tasks.join_next().await {
        events += r??;
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = loadgen::proc_cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let client_cpu = loadgen::self_cpu_seconds() - client0;
    Ok(Measured {
        events,
        secs,
        server_cpu,
        client_cpu,
    })
}

struct Idle {
    held: usize,
    per_connection: usize,
    rss_per_stream_kib: f64,
}

/// Idle streams on `conns` connections: over HTTP/2 as many per connection as the server
/// takes (a stream beyond its limit gets no answer within 1 s), over HTTP/1.1 one each.
async fn idle(
    addr: SocketAddr,
    pid: u32,
    h2: bool,
    conns: usize,
    per_conn_h1: usize,
) -> Result<Idle, Error> {
    let rss0 = loadgen::proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let mut held = Vec::new();
    // The connections' senders, kept so their connections stay open.
    let mut conns_held: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    let mut per_connection = 0;
    if h2 {
        for c in 0..conns {
            let send = h2_connect(addr).await?;
            let mut n = 0;
            loop {
                let mut s = send.clone();
                let req = get(addr, "/bench/idle")?;
                match tokio::time::timeout(Duration::from_secs(1), s.send_request(req)).await {
                    Ok(res) => {
                        let res = res?;
                        if res.status() != 200 {
                            return Err(format!("idle stream: status {}", res.status()).into());
                        }
                        held.push(res);
                        n += 1;
                    }
                    Err(_) => break,
                }
                if n > 10_000 {
                    return Err("no per-connection stream limit".into());
                }
            }
            if c == 0 {
                per_connection = n;
            }
            conns_held.push(Box::new(send));
        }
    } else {
        for _ in 0..conns * per_conn_h1 {
            let mut send = h1_connect(addr).await?;
            let res = send.send_request(get(addr, "/bench/idle")?).await?;
            if res.status() != 200 {
                return Err(format!("idle stream: status {}", res.status()).into());
            }
            held.push(res);
            conns_held.push(Box::new(send));
        }
        per_connection = 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss1 = loadgen::proc_status_kib(pid, "VmRSS").unwrap_or(0);
    let n = held.len();
    Ok(Idle {
        held: n,
        per_connection,
        rss_per_stream_kib: rss1.saturating_sub(rss0) as f64 / n as f64,
    })
}

/// The bench app as its own process on a free loopback port; killed when dropped.
struct BenchApp {
    addr: SocketAddr,
    pid: u32,
    _child: tokio::process::Child,
}

impl BenchApp {
    async fn start(path: &std::path::Path) -> Result<Self, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let child = tokio::process::Command::new(path)
            .env("PIKKU_ADDR", addr.to_string())
            .env("PIKKU_SSE_HEARTBEAT_MS", "15000")
            .env("RUST_LOG", "warn")
            .env_remove("PIKKU_EVENT_HUB")
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("bench app exited")?;
        for _ in 0..400 {
            if let Ok(mut s) = h1_connect(addr).await {
                if let Ok(res) = s.send_request(get(addr, "/bench/ticks?n=1")?).await {
                    read_ticks(res, 1).await?;
                    return Ok(Self {
                        addr,
                        pid,
                        _child: child,
                    });
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err("the bench app did not start".into())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn human(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let args = args()?;
    if !args.bench_app.exists() {
        return Err(format!(
            "{} is missing: cargo build --release --example bench",
            args.bench_app.display()
        )
        .into());
    }
    loadgen::raise_nofile();
    let server = BenchApp::start(&args.bench_app).await?;
    let (addr, pid) = (server.addr, server.pid);

    println!(
        "| scenario | metric | HTTP/2 (h2c, one connection) | HTTP/1.1 (a connection per stream) |"
    );
    println!("|---|---|---|---|");
    for (name, streams, n) in [
        ("1 stream x 1M events", 1usize, 1_000_000u64),
        ("100 streams x 10k events", 100, 10_000),
    ] {
        let (mut h2, mut h1) = (Vec::new(), Vec::new());
        for _ in 0..args.rounds {
            h2.push(ticks(addr, pid, true, streams, n).await?);
            h1.push(ticks(addr, pid, false, streams, n).await?);
        }
        let eps = |v: &[Measured]| median(v.iter().map(Measured::events_per_sec).collect());
        let cpu = |v: &[Measured]| median(v.iter().map(Measured::cpu_per_m).collect());
        let h1_label = if streams == 1 {
            "1 connection"
        } else {
            "100 connections"
        };
        println!(
            "| {name} | events/s (median of {}) | {} | {} ({h1_label}) |",
            args.rounds,
            human(eps(&h2)),
            human(eps(&h1))
        );
        println!(
            "|  | server CPU s per M events | {:.2} | {:.2} |",
            cpu(&h2),
            cpu(&h1)
        );
        let client = |v: &[Measured]| median(v.iter().map(Measured::client_share).collect());
        println!(
            "|  | load generator CPU (% of a core) | {:.0}% | {:.0}% |",
            client(&h2) * 100.0,
            client(&h1) * 100.0
        );
    }
    drop(server);
    // Each idle run on a fresh process, so neither reuses memory the other freed.
    let server = BenchApp::start(&args.bench_app).await?;
    let h2_idle = idle(server.addr, server.pid, true, 10, 0).await?;
    drop(server);
    let server = BenchApp::start(&args.bench_app).await?;
    let h1_idle = idle(server.addr, server.pid, false, 1, h2_idle.held).await?;
    drop(server);
    println!(
        "| idle streams | streams per connection | {} (the server's limit) | 1 |",
        h2_idle.per_connection
    );
    println!(
        "|  | streams held; connections | {}; 10 | {}; {} |",
        h2_idle.held, h1_idle.held, h1_idle.held
    );
    println!(
        "|  | server RSS per stream KiB | {:.1} | {:.1} |",
        h2_idle.rss_per_stream_kib, h1_idle.rss_per_stream_kib
    );
    Ok(())
}
