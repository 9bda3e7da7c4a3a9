//! HTTP/2 in `pikku::serve`: h2c (prior knowledge) and HTTP/1.1 on the plain port, HTTPS with
//! ALPN `h2`/`http/1.1` (feature `tls`), and SSE over HTTP/2 with every guarantee it has over
//! HTTP/1.1: many streams on one connection, cleanup on `RST_STREAM`, per-stream
//! backpressure, heartbeats, the shutdown event. Real clients: reqwest (hyper's h2), and
//! headless Chromium against the demo over HTTPS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use pikku::prelude::*;
use pikku::{ServeConfig, TlsConfig};
use serde_json::Value;

use crate::support::*;

/// Services of this module's routes: counters the tests read.
#[derive(Default)]
pub struct H2Services {
    /// Stream cleanups that ran (generators dropped).
    cleanups: Arc<AtomicUsize>,
    /// Events `/h2/big` produced.
    produced: Arc<AtomicUsize>,
}

/// Counts a cleanup when dropped.
struct Guard(Arc<AtomicUsize>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Tick {
    n: u64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct Every {
    every_ms: Option<u64>,
}

/// Ticks (from 0) every `every_ms` until the client goes away; its guard counts the cleanup.
#[pikku_func(route = "/h2/ticks", response = "stream", auth = false)]
async fn ticks(s: &H2Services, input: Every) -> impl Stream<Item = Tick> {
    let every = Duration::from_millis(input.every_ms.unwrap_or(50));
    let guard = Guard(s.cleanups.clone());
    stream! {
        let _guard = guard;
        for n in 0.. {
            yield Tick { n };
            tokio::time::sleep(every).await;
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Big {
    n: u64,
    pad: String,
}

/// Size of the padding of each `/h2/big` event.
const BIG_EVENT: usize = 8 * 1024;

/// 8 KiB events as fast as the stream is polled, counted.
#[pikku_func(route = "/h2/big", response = "stream", auth = false)]
async fn big(s: &H2Services) -> impl Stream<Item = Big> {
    let produced = s.produced.clone();
    stream! {
        for n in 0.. {
            produced.fetch_add(1, Ordering::SeqCst);
            yield Big { n, pad: "x".repeat(BIG_EVENT) };
        }
    }
}

/// Nothing but heartbeats, every 100 ms.
#[pikku_func(
    route = "/h2/quiet",
    response = "stream",
    auth = false,
    heartbeat_ms = 100
)]
async fn quiet(_s: &H2Services) -> impl Stream<Item = Tick> {
    futures_util::stream::pending()
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Transport {
    /// Plain port, HTTP/2 with prior knowledge.
    H2c,
    /// HTTPS, HTTP/2 chosen by ALPN.
    Tls,
}

const BOTH: [Transport; 2] = [Transport::H2c, Transport::Tls];

/// A self-signed certificate for `localhost` and `127.0.0.1`, as PEM.
struct TestCert {
    cert_pem: String,
    key_pem: String,
}

impl TestCert {
    fn new() -> Self {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        Self {
            cert_pem: ck.cert.pem(),
            key_pem: ck.signing_key.serialize_pem(),
        }
    }

    fn tls_config(&self) -> TlsConfig {
        TlsConfig::from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes()).unwrap()
    }

    /// Writes cert.pem and key.pem into a fresh directory; returns their paths.
    fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    /// A client that trusts only this certificate (certificate checks stay on).
    fn client(&self) -> reqwest::ClientBuilder {
        let root = reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).unwrap();
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root)
            .https_only(true)
    }
}

fn temp_dir(what: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    std::env::temp_dir().join(format!("pikku-h2-{what}-{}-{n}", std::process::id()))
}

/// What reached the router: which connection (peer address) and which HTTP version.
type Seen = Arc<Mutex<Vec<(SocketAddr, http::Version)>>>;

/// An `H2Services` app served by `serve_with` on a loopback port, plain or TLS.
struct H2Server {
    addr: SocketAddr,
    transport: Transport,
    cert: TestCert,
    shutdown: pikku::Shutdown,
    metrics: pikku::Metrics,
    cleanups: Arc<AtomicUsize>,
    produced: Arc<AtomicUsize>,
    seen: Seen,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl H2Server {
    async fn start(transport: Transport) -> Self {
        Self::start_with(transport, ServeConfig::default()).await
    }

    async fn start_with(transport: Transport, cfg: ServeConfig) -> Self {
        let services = H2Services::default();
        let (cleanups, produced) = (services.cleanups.clone(), services.produced.clone());
        let app = Pikku::new(services);
        let (shutdown, metrics) = (app.shutdown_handle(), app.metrics());
        let seen = Seen::default();
        let router = app.router().layer(axum::middleware::from_fn({
            let seen = seen.clone();
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let peer = req
                    .extensions()
                    .get::<axum::extract::ConnectInfo<SocketAddr>>()
                    .map(|c| c.0);
                if let Some(peer) = peer {
                    seen.lock().unwrap().push((peer, req.version()));
                }
                next.run(req)
            }
        }));
        let cert = TestCert::new();
        let cfg = match transport {
            Transport::H2c => cfg,
            Transport::Tls => cfg.tls(cert.tls_config()),
        }
        .shutdown_deadline(Duration::from_secs(2));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = shutdown.clone();
        let task = tokio::spawn(async move { pikku::serve_with(listener, router, s, cfg).await });
        Self {
            addr,
            transport,
            cert,
            shutdown,
            metrics,
            cleanups,
            produced,
            seen,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = match self.transport {
            Transport::H2c => "http",
            Transport::Tls => "https",
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// An HTTP/2 client: prior knowledge on the plain port, ALPN over TLS.
    fn h2_client(&self) -> reqwest::Client {
        match self.transport {
            Transport::H2c => reqwest::Client::builder().http2_prior_knowledge(),
            Transport::Tls => self.cert.client(),
        }
        .build()
        .unwrap()
    }

    /// An HTTP/1.1-only client of the same port.
    fn h1_client(&self) -> reqwest::Client {
        match self.transport {
            Transport::H2c => reqwest::Client::builder(),
            Transport::Tls => self.cert.client(),
        }
        .http1_only()
        .build()
        .unwrap()
    }

    /// The connections (peer addresses) the router saw requests on, and their versions.
    fn connections(&self) -> (Vec<SocketAddr>, Vec<http::Version>) {
        let seen = self.seen.lock().unwrap();
        let mut peers: Vec<_> = seen.iter().map(|(p, _)| *p).collect();
        peers.sort();
        peers.dedup();
        let mut versions: Vec<_> = seen.iter().map(|(_, v)| *v).collect();
        versions.dedup();
        (peers, versions)
    }

    async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("server stops within 5 s")
            .expect("server task did not panic")
            .unwrap();
    }
}

/// Opens `n` streams of `path` on `http`'s one connection: the first alone (over TLS the
/// client learns from ALPN that the connection is HTTP/2 only once it is made; concurrent
/// first requests would each open a connection), the rest at once.
async fn open_streams(
    http: &reqwest::Client,
    url: &str,
    n: usize,
) -> Vec<impl futures_util::Stream<Item = eventsource_stream::Event> + Unpin + use<>> {
    let first = http.get(url).send().await.unwrap();
    assert_eq!(first.version(), http::Version::HTTP_2, "{url}");
    let rest = join_all((1..n).map(|_| http.get(url).send())).await;
    std::iter::once(first)
        .chain(rest.into_iter().map(|r| r.unwrap()))
        .map(|res| {
            assert_eq!(res.status(), 200);
            assert_eq!(res.version(), http::Version::HTTP_2);
            events(res)
        })
        .collect()
}

/// Reads events until one has `n >= at_least`; panics after `secs`.
async fn read_until_tick(
    ev: &mut (impl futures_util::Stream<Item = eventsource_stream::Event> + Unpin),
    at_least: u64,
    secs: u64,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let e = tokio::time::timeout_at(deadline, ev.next())
            .await
            .unwrap_or_else(|_| panic!("tick {at_least} within {secs} s"))
            .expect("the stream goes on");
        if json(&e)["n"].as_u64().is_some_and(|n| n >= at_least) {
            return;
        }
    }
}

/// 50 SSE streams over one HTTP/2 connection, h2c and TLS: each gets its events in order, and
/// the server saw one connection, all HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_streams_share_one_http2_connection() {
    const STREAMS: usize = 50;
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        let http = srv.h2_client();
        let mut streams = open_streams(&http, &srv.url("/h2/ticks?every_ms=50"), STREAMS).await;
        let got = join_all(streams.iter_mut().map(|ev| async move {
            let mut ns = Vec::new();
            for _ in 0..3 {
                ns.push(
                    json(&next_event(ev, 10).await.unwrap())["n"]
                        .as_u64()
                        .unwrap(),
                );
            }
            ns
        }))
        .await;
        assert!(
            got.iter().all(|ns| ns == &[0, 1, 2]),
            "{transport:?}: {got:?}"
        );
        assert_eq!(srv.metrics.snapshot().streams_open, STREAMS as u64);
        let (peers, versions) = srv.connections();
        assert_eq!(
            peers.len(),
            1,
            "{transport:?}: one connection, saw {peers:?}"
        );
        assert_eq!(versions, [http::Version::HTTP_2], "{transport:?}");
        drop(streams);
        srv.stop().await;
    }
}

/// The plain port speaks HTTP/1.1 and h2c; the TLS port HTTP/2 and HTTP/1.1, as ALPN says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_port_speaks_http1_and_http2() {
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        for (http, version) in [
            (srv.h1_client(), http::Version::HTTP_11),
            (srv.h2_client(), http::Version::HTTP_2),
        ] {
            let mut res = http
                .get(srv.url("/h2/ticks?every_ms=50"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.version(), version, "{transport:?}");
            let body = read_until(&mut res, 5, |s| s.contains("\"n\":1")).await;
            assert!(body.starts_with("data: {\"n\":0}\n\n"), "{body:?}");
        }
        let (_, versions) = srv.connections();
        assert_eq!(
            versions,
            [http::Version::HTTP_11, http::Version::HTTP_2],
            "{transport:?}"
        );
        srv.stop().await;
    }
}

/// Dropping one response on an HTTP/2 connection resets its stream (`RST_STREAM`): its
/// generator is dropped within 1 s, while the other streams of the connection go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_stream_is_cleaned_up_within_a_second_while_the_others_go_on() {
    const STREAMS: usize = 10;
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        let http = srv.h2_client();
        let mut streams = open_streams(&http, &srv.url("/h2/ticks?every_ms=50"), STREAMS).await;
        for ev in &mut streams {
            next_event(ev, 10).await.unwrap();
        }
        assert_eq!(srv.cleanups.load(Ordering::SeqCst), 0);
        let reset_at = Instant::now();
        drop(streams.remove(0));
        assert!(
            eventually(Duration::from_secs(1), || srv
                .cleanups
                .load(Ordering::SeqCst)
                == 1)
            .await,
            "{transport:?}: the reset stream's generator is dropped within 1 s"
        );
        let cleaned_in = reset_at.elapsed();
        assert_eq!(
            srv.metrics.snapshot().streams_open,
            STREAMS as u64 - 1,
            "{transport:?}"
        );
        // The others go on, on the same connection: 10 more ticks each.
        join_all(streams.iter_mut().map(|ev| read_until_tick(ev, 12, 10))).await;
        assert_eq!(srv.cleanups.load(Ordering::SeqCst), 1, "{transport:?}");
        assert_eq!(srv.connections().0.len(), 1, "{transport:?}");
        eprintln!("{transport:?}: reset stream cleaned up in {cleaned_in:?}");
        drop(streams);
        srv.stop().await;
    }
}

/// A stream nobody reads, emitting 8 KiB events as fast as it can, does not stall the other
/// streams of its connection: its generator stops once HTTP/2 flow control (the client's
/// stream window) and the server's per-stream buffer are full, and ticks produced after
/// that still reach the other streams, including streams opened after it stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unread_stream_does_not_stall_the_others_on_its_connection() {
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        let http = srv.h2_client();
        let ticks_url = srv.url("/h2/ticks?every_ms=50");
        let opened_at = Instant::now();
        let mut early = open_streams(&http, &ticks_url, 5).await;
        let unread = http.get(srv.url("/h2/big")).send().await.unwrap();
        assert_eq!(unread.version(), http::Version::HTTP_2);
        // Wait until its generator stops: nothing produced for 500 ms.
        let mut stalled_at = None;
        for _ in 0..40 {
            let before = srv.produced.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            if srv.produced.load(Ordering::SeqCst) == before {
                stalled_at = Some(before);
                break;
            }
        }
        let stalled_at = stalled_at.expect("the unread stream's generator stops");
        let held = stalled_at * BIG_EVENT;
        assert!(
            held > 64 * 1024 && held < 32 * 1024 * 1024,
            "{transport:?}: the unread stream stopped after {held} bytes"
        );
        // Ticks are 50 ms apart, so tick n of an early stream was produced no sooner than
        // n * 50 ms after it opened: reaching `after_stall` proves delivery after the stall.
        let after_stall = opened_at.elapsed().as_millis() as u64 / 50 + 10;
        let mut late = Vec::new();
        for _ in 0..5 {
            let res = http.get(&ticks_url).send().await.unwrap();
            assert_eq!(res.version(), http::Version::HTTP_2);
            late.push(events(res));
        }
        let early_ok = join_all(
            early
                .iter_mut()
                .map(|ev| read_until_tick(ev, after_stall, 15)),
        );
        let late_ok = join_all(late.iter_mut().map(|ev| read_until_tick(ev, 10, 15)));
        tokio::join!(early_ok, late_ok);
        assert_eq!(
            srv.produced.load(Ordering::SeqCst),
            stalled_at,
            "{transport:?}: still stalled"
        );
        assert_eq!(
            srv.connections().0.len(),
            1,
            "{transport:?}: one connection"
        );
        eprintln!(
            "{transport:?}: the unread stream stalled after {stalled_at} events ({} KiB)",
            held / 1024
        );
        // Reading it resumes it.
        let mut unread = unread;
        let resumed = tokio::time::timeout(Duration::from_secs(15), async {
            while srv.produced.load(Ordering::SeqCst) == stalled_at {
                match unread.chunk().await {
                    Ok(Some(_)) => {}
                    _ => return false,
                }
            }
            true
        })
        .await
        .unwrap_or(false);
        assert!(resumed, "{transport:?}: reading the stream resumes it");
        drop((unread, early, late));
        srv.stop().await;
    }
}

/// Heartbeats keep an idle stream alive over HTTP/2 as over HTTP/1.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_flow_over_http2() {
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        let mut res = srv
            .h2_client()
            .get(srv.url("/h2/quiet"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.version(), http::Version::HTTP_2);
        let body = read_until(&mut res, 5, |s| s.matches(": ping\n\n").count() >= 2).await;
        assert!(
            body.split(": ping\n\n").all(str::is_empty),
            "{transport:?}: only heartbeats, {body:?}"
        );
        drop(res);
        srv.stop().await;
    }
}

/// Shutdown with 20 streams open on one HTTP/2 connection: each gets the final
/// `event: shutdown`, every generator is cleaned up, and the server returns in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_every_http2_stream_with_the_final_event() {
    const STREAMS: usize = 20;
    for transport in BOTH {
        let srv = H2Server::start(transport).await;
        let http = srv.h2_client();
        let mut streams = open_streams(&http, &srv.url("/h2/ticks?every_ms=200"), STREAMS).await;
        for ev in &mut streams {
            next_event(ev, 10).await.unwrap();
        }
        let t0 = Instant::now();
        srv.shutdown.trigger();
        let finals = join_all(streams.into_iter().map(|ev| last_event(ev, 10))).await;
        assert!(
            finals
                .iter()
                .all(|e| e.as_ref().is_some_and(|e| e.event == "shutdown")),
            "{transport:?}: {finals:?}"
        );
        let cleanups = srv.cleanups.clone();
        let metrics = srv.metrics.clone();
        srv.stop().await;
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        assert_eq!(cleanups.load(Ordering::SeqCst), STREAMS, "{transport:?}");
        assert_eq!(metrics.snapshot().streams_open, 0, "{transport:?}");
    }
}

/// A TCP proxy to `upstream` for one connection that can be frozen: it then stops forwarding
/// in both directions but keeps both sockets open, as a peer that vanished without closing
/// (a laptop closed, a phone out of coverage) looks to the server.
async fn freezable_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let frozen = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flag = frozen.clone();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = tokio::net::TcpStream::connect(upstream).await.unwrap();
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(pipe(client_read, server_write, flag.clone()));
        tokio::spawn(pipe(server_read, client_write, flag));
    });
    (addr, frozen)
}

/// Forwards `from` to `to` until either closes, or forever nothing once `frozen` is set.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Hold both halves open and forward nothing.
            let _hold = (from, to);
            return std::future::pending().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// HTTP/2 keep-alive pings find a peer that vanished without closing its connection: the
/// server closes it once a ping goes unanswered, and the streams on it are cleaned up. With
/// pings off, the same streams stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_pings_close_a_vanished_peers_connection_and_clean_up_its_streams() {
    const STREAMS: usize = 3;
    let every = Duration::from_millis(300);
    for pings in [Some(every), None] {
        let srv = H2Server::start_with(
            Transport::H2c,
            ServeConfig::default().http2_keep_alive(pings),
        )
        .await;
        let (proxy, frozen) = freezable_proxy(srv.addr).await;
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let url = format!("http://{proxy}/h2/ticks?every_ms=60000");
        let mut streams = open_streams(&http, &url, STREAMS).await;
        for ev in &mut streams {
            next_event(ev, 10).await.unwrap();
        }
        frozen.store(true, Ordering::SeqCst);
        let t0 = Instant::now();
        let cleaned = eventually(Duration::from_secs(3), || {
            srv.cleanups.load(Ordering::SeqCst) == STREAMS
        })
        .await;
        match pings {
            Some(_) => {
                assert!(cleaned, "the vanished peer's streams are cleaned up");
                eprintln!(
                    "pings every {every:?}: streams cleaned up {:?} after the freeze",
                    t0.elapsed()
                );
            }
            None => assert!(!cleaned, "without pings nothing notices the vanished peer"),
        }
        drop(streams);
        srv.stop().await;
    }
}

/// Over HTTP/2 a request's host is `:authority` (browsers send no `Host`): a same-origin
/// login over HTTPS passes the CSRF check, a foreign one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_checks_work_over_http2() {
    let cert = TestCert::new();
    let services = crate::demo::Services::from_env().await.unwrap();
    let app = crate::demo::app_with(services);
    let shutdown = app.shutdown_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = ServeConfig::default().tls(cert.tls_config());
    let task = tokio::spawn(pikku::serve_with(
        listener,
        app.router(),
        shutdown.clone(),
        cfg,
    ));
    let http = cert.client().build().unwrap();
    let login = |origin: String| {
        http.post(format!("https://{addr}/auth/login"))
            .header("origin", origin)
            .json(&serde_json::json!({"userId": "h2"}))
            .send()
    };
    let same = login(format!("https://{addr}")).await.unwrap();
    assert_eq!(same.version(), http::Version::HTTP_2);
    assert_eq!(same.status(), 200, "{:?}", same.text().await);
    let foreign = login("https://evil.example".into()).await.unwrap();
    assert_eq!(foreign.status(), 403);
    shutdown.trigger();
    task.await.unwrap().unwrap();
}

/// The header-read timeout also bounds the TLS handshake: a silent socket and a client that
/// stops halfway through its hello are closed within it, while other clients are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_closed_within_the_header_read_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let timeout = Duration::from_millis(500);
    let srv = H2Server::start_with(
        Transport::Tls,
        ServeConfig::default().header_read_timeout(Some(timeout)),
    )
    .await;
    let t0 = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    let mut half = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    // The start of a TLS record carrying a ClientHello, and then nothing.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let res = srv
        .h2_client()
        .get(srv.url("/h2/ticks"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "others are served meanwhile");
    for sock in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("closed within 5 s");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "closed, not answered: {read:?}"
        );
    }
    let closed_in = t0.elapsed();
    assert!(
        closed_in >= timeout && closed_in < timeout + Duration::from_secs(3),
        "closed after {closed_in:?}"
    );
    drop(res);
    srv.stop().await;
}

/// Shutdown does not wait for TLS handshakes in progress: with a client stuck halfway through
/// its hello (and a 30 s header-read timeout), the server still returns at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_unfinished_tls_handshakes() {
    use tokio::io::AsyncWriteExt;
    let srv = H2Server::start_with(
        Transport::Tls,
        ServeConfig::default().header_read_timeout(Some(Duration::from_secs(30))),
    )
    .await;
    let mut half = tokio::net::TcpStream::connect(srv.addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    srv.stop().await;
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "returned after {:?} (the shutdown deadline is 2 s)",
        t0.elapsed()
    );
    drop(half);
}

/// Bad TLS settings are refused with what is wrong, by the API and by the demo at startup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_are_refused_clearly() {
    let a = TestCert::new();
    let b = TestCert::new();
    let err = |r: Result<TlsConfig, pikku::TlsError>| r.unwrap_err().to_string();
    assert!(
        err(TlsConfig::from_pem(b"junk", a.key_pem.as_bytes())).contains("no PEM certificate"),
        "not a certificate"
    );
    assert!(
        err(TlsConfig::from_pem(
            a.cert_pem.as_bytes(),
            a.cert_pem.as_bytes()
        ))
        .contains("no PEM private key")
    );
    assert!(
        err(TlsConfig::from_pem(
            a.cert_pem.as_bytes(),
            b.key_pem.as_bytes()
        ))
        .contains("KeyMismatch"),
        "a key of another certificate"
    );
    assert!(
        err(TlsConfig::from_pem_files("/nonexistent/cert.pem", "k.pem"))
            .contains("cannot read certificate chain /nonexistent/cert.pem")
    );

    let dir = temp_dir("bad");
    let (cert, key) = a.write(&dir);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    for (envs, expected) in [
        (
            vec![("PIKKU_TLS_CERT", cert)],
            "PIKKU_TLS_CERT is set but PIKKU_TLS_KEY is not",
        ),
        (
            vec![("PIKKU_TLS_KEY", key)],
            "PIKKU_TLS_KEY is set but PIKKU_TLS_CERT is not",
        ),
        (
            vec![("PIKKU_TLS_CERT", key), ("PIKKU_TLS_KEY", key)],
            "no PEM certificate in",
        ),
        (
            vec![
                ("PIKKU_TLS_CERT", cert),
                ("PIKKU_TLS_KEY", "/nonexistent/key.pem"),
            ],
            "cannot read private key /nonexistent/key.pem",
        ),
    ] {
        let mut cmd = tokio::process::Command::new(demo_binary());
        cmd.env("PIKKU_ADDR", format!("127.0.0.1:{}", free_port()))
            .env_remove("PIKKU_TLS_CERT")
            .env_remove("PIKKU_TLS_KEY")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(10), cmd.output())
            .await
            .expect("the demo exits at once")
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{envs:?}: {stderr}");
        assert!(stderr.contains(expected), "{envs:?}: {stderr}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// The demo as its own process, serving HTTPS with `cert` (or plain HTTP without).
struct Demo {
    _child: tokio::process::Child,
    origin: String,
}

async fn start_demo(tls: Option<(&TestCert, &Path)>) -> Demo {
    let port = free_port();
    let mut cmd = tokio::process::Command::new(demo_binary());
    cmd.env("PIKKU_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .env_remove("PIKKU_TLS_CERT")
        .env_remove("PIKKU_TLS_KEY")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let (origin, http) = match tls {
        Some((cert, dir)) => {
            let (cert_path, key_path) = cert.write(dir);
            cmd.env("PIKKU_TLS_CERT", cert_path)
                .env("PIKKU_TLS_KEY", key_path);
            (
                format!("https://127.0.0.1:{port}"),
                cert.client().build().unwrap(),
            )
        }
        None => (format!("http://127.0.0.1:{port}"), client()),
    };
    let child = cmd.spawn().unwrap();
    for _ in 0..200 {
        if let Ok(res) = http.get(format!("{origin}/health/ready")).send().await {
            assert_eq!(res.status(), 200);
            return Demo {
                _child: child,
                origin,
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the demo did not start on {origin}");
}

/// Runs tests/browser/h2.mjs: `count` EventSources from one page to `origin`.
async fn browser_event_sources(origin: &str, count: usize, wait_ms: u64) -> Value {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(repo.join("tests/browser/h2.mjs"))
            .arg(origin)
            .arg(count.to_string())
            .arg(wait_ms.to_string())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser check finishes within 90 s")
    .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser check failed (it needs tests/browser/node_modules and Chromium: run .ci/run):\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

/// Headless Chromium opens 10 `EventSource`s to the demo over HTTPS from one page: all 10
/// receive events, every one over HTTP/2 on the connection the page came on, and a
/// same-origin `fetch` POST (login) passes the CSRF check. Over plain HTTP/1.1 the same page
/// gets no more than six streams going (Chromium's per-origin connection limit): the others
/// wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_opens_ten_event_sources_over_https_on_one_http2_connection() {
    const SOURCES: usize = 10;
    let cert = TestCert::new();
    let dir = temp_dir("browser");
    let demo = start_demo(Some((&cert, &dir))).await;
    let seen = browser_event_sources(&demo.origin, SOURCES, 15_000).await;
    let counts: Vec<u64> = serde_json::from_value(seen["counts"].clone()).unwrap();
    assert!(
        counts.iter().all(|&c| c >= 3),
        "every source got events: {seen}"
    );
    assert_eq!(seen["page"]["protocol"], "h2", "{seen}");
    let streams = seen["streams"].as_array().unwrap();
    assert_eq!(streams.len(), SOURCES, "{seen}");
    assert!(
        streams
            .iter()
            .all(|s| s["protocol"] == "h2" && s["status"] == 200),
        "{seen}"
    );
    assert!(
        streams
            .iter()
            .all(|s| s["connectionId"] == seen["page"]["connectionId"]),
        "one connection: {seen}"
    );
    assert_eq!(seen["login"]["status"], 200, "{seen}");
    eprintln!(
        "https: message counts {counts:?}, all on h2 connection {}",
        seen["page"]["connectionId"]
    );
    drop(demo);
    std::fs::remove_dir_all(dir).unwrap();

    // The control: the same page over HTTP/1.1.
    let demo = start_demo(None).await;
    let seen = browser_event_sources(&demo.origin, SOURCES, 3_000).await;
    let counts: Vec<u64> = serde_json::from_value(seen["counts"].clone()).unwrap();
    let streaming = counts.iter().filter(|&&c| c > 0).count();
    assert_eq!(seen["page"]["protocol"], "http/1.1", "{seen}");
    eprintln!("http/1.1: message counts {counts:?}");
    assert!(
        (1..=6).contains(&streaming),
        "over HTTP/1.1 at most six streams run: {seen}"
    );
}
