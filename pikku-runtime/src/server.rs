//! Serving a router over TCP with the timeouts an internet-facing server needs, and a
//! graceful shutdown.
//!
//! `axum::serve` sets no timer on hyper, so hyper's header-read timeout never fires and a
//! client that never finishes its headers (slowloris), or never sends a byte, holds its
//! connection for as long as it likes. [`serve_with`] drives hyper-util's server itself:
//!
//! - **before the first request** a connection has [`ServeConfig::header_read_timeout`] to
//!   send it in full (this covers silent sockets and the HTTP/2 preface, which hyper reads
//!   before its own timer starts);
//! - **afterwards**, on HTTP/1, hyper's header-read timer starts as soon as the connection
//!   waits for its next request, so the same timeout also bounds how long an idle keep-alive
//!   connection is held. A response being written (an event stream) is not affected;
//! - on HTTP/2, keep-alive pings close connections whose peer stopped answering.
//!
//! One plain port speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c): hyper-util's auto
//! builder tells them apart by the HTTP/2 preface. With the `tls` feature and
//! `ServeConfig::tls`, the port speaks HTTPS instead (rustls), offering `h2` and `http/1.1`
//! by ALPN; the TLS handshake counts towards the time before the first request. Browsers
//! only speak HTTP/2 over TLS, and only HTTP/2 lifts their limit of six connections per
//! origin (across all tabs), which is otherwise six `EventSource`s.
//!
//! Over HTTP/2 each SSE stream is flow-controlled on its own: a stream whose reader stops
//! stalls its generator once the peer's stream window and [`CONNECTION_BUFFER_MAX`] are
//! full, while the other streams of the connection go on; a stream the client resets
//! (`RST_STREAM`) drops its generator as a disconnect does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use crate::serving::Shutdown;

mod event_stream_h1;

use event_stream_h1::{FirstRequest, Rewind};

/// How long [`serve`] waits for open connections after shutdown starts.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Default time a client has to send a request's headers (and the longest an idle
/// keep-alive connection is held).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Default interval of HTTP/2 keep-alive pings.
pub const DEFAULT_HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(30);

/// Default most streams (requests) one HTTP/2 connection may have open at once: hyper's
/// default. A browser shares one connection per origin across all its tabs, so this is also
/// how many `EventSource`s one browser can hold open on the app; each stream may buffer up to
/// [`CONNECTION_BUFFER_MAX`], so it also bounds a connection's buffers (12.5 MiB).
pub const DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS: u32 = 200;

/// Connection settings of [`serve_with`].
///
/// ```
/// use std::time::Duration;
/// let cfg = pikku::ServeConfig::default()
///     .header_read_timeout(Some(Duration::from_secs(5)))
///     .shutdown_deadline(Duration::from_secs(20));
/// # let _ = cfg;
/// ```
#[derive(Debug, Clone)]
pub struct ServeConfig {
    header_read_timeout: Option<Duration>,
    http2_keep_alive: Option<Duration>,
    http2_max_concurrent_streams: u32,
    shutdown_deadline: Duration,
    direct_event_streams: bool,
    #[cfg(feature = "tls")]
    tls: Option<TlsConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            http2_keep_alive: Some(DEFAULT_HTTP2_KEEP_ALIVE),
            http2_max_concurrent_streams: DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS,
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
            direct_event_streams: true,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

impl ServeConfig {
    /// How long a client has to send a complete request head, counted from the moment the
    /// connection waits for one (so it also closes idle HTTP/1 keep-alive connections). The
    /// first request's time starts at accept and includes the TLS handshake, if any.
    /// `None` turns it off; only do that behind a proxy that enforces its own.
    pub fn header_read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The interval of HTTP/2 keep-alive pings (a peer that does not answer one within the
    /// same time is disconnected). `None` turns them off.
    pub fn http2_keep_alive(mut self, every: Option<Duration>) -> Self {
        self.http2_keep_alive = every;
        self
    }

    /// The most streams one HTTP/2 connection may have open at once (see
    /// [`DEFAULT_HTTP2_MAX_CONCURRENT_STREAMS`]); a client opening more waits for one to end.
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = max;
        self
    }

    /// How long to wait for open connections after shutdown starts.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// Whether HTTP/1.1 event-stream requests are answered by the server itself, without
    /// hyper's per-connection buffers: a connection's first request, and a later one on a
    /// keep-alive connection (on by default: an idle stream then costs about a fifth of the
    /// memory). `false` leaves every request to hyper.
    pub fn direct_event_streams(mut self, on: bool) -> Self {
        self.direct_event_streams = on;
        self
    }

    /// Serves HTTPS with this certificate and key (feature `tls`): HTTP/2 and HTTP/1.1,
    /// chosen by ALPN. Without it the port speaks plain HTTP/1.1 and h2c.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
}

/// Serves `router` until ctrl-c, SIGTERM or `shutdown.trigger()`, then shuts down gracefully:
/// stops accepting, ends every open stream with a final event, and returns once connections
/// have closed or [`DEFAULT_SHUTDOWN_DEADLINE`] has passed. Connections get the timeouts of
/// [`ServeConfig::default`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeConfig::default()).await
}

/// [`serve`] with a chosen shutdown deadline.
pub async fn serve_with_deadline(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
    deadline: Duration,
) -> std::io::Result<()> {
    let cfg = ServeConfig::default().shutdown_deadline(deadline);
    serve_with(listener, router, shutdown, cfg).await
}

/// Most bytes a connection (HTTP/1.1) or stream (HTTP/2) buffers for writing: what a client
/// that stops reading can make the server hold besides the kernel's socket buffer. Smaller
/// than hyper's default (~400 KiB), since a stream server holds many such clients; still
/// four SSE batches, so a reading client's throughput is not limited by it.
pub const CONNECTION_BUFFER_MAX: usize = 64 * 1024;

/// [`serve`] with chosen connection settings.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: Shutdown,
    cfg: ServeConfig,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(CONNECTION_BUFFER_MAX);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_send_buf_size(CONNECTION_BUFFER_MAX)
        .max_concurrent_streams(cfg.http2_max_concurrent_streams)
        .keep_alive_interval(cfg.http2_keep_alive);
    if let Some(every) = cfg.http2_keep_alive {
        builder.http2().keep_alive_timeout(every);
    }
    let builder = Arc::new(builder);
    // The same HTTP/1.1 settings, for connections served one exchange at a time.
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(CONNECTION_BUFFER_MAX);
    let http1 = Arc::new(http1);
    #[cfg(feature = "tls")]
    let acceptor = cfg
        .tls
        .as_ref()
        .map(|tls| tokio_rustls::TlsAcceptor::from(tls.config.clone()));
    let graceful = GracefulShutdown::new();
    let signal = {
        let shutdown = shutdown.clone();
        async move {
            tokio::select! {
                _ = shutdown.triggered() => {}
                _ = os_signal() => {
                    tracing::info!("shutdown signal received");
                    shutdown.trigger();
                }
            }
        }
    };
    tokio::pin!(signal);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut signal => break,
        };
        let conn = Connection {
            builder: builder.clone(),
            http1: http1.clone(),
            router: router.clone(),
            peer,
            first_request_by: cfg.header_read_timeout.map(|limit| Instant::now() + limit),
            shutdown: shutdown.0.clone(),
            direct_event_streams: cfg.direct_event_streams,
            // Taken now, so shutdown waits for this connection even while its TLS handshake
            // is still going.
            watcher: graceful.watcher(),
        };
        #[cfg(feature = "tls")]
        if let Some(acceptor) = &acceptor {
            tokio::spawn(conn.serve_tls(stream, acceptor.clone(), shutdown.clone()));
            continue;
        }
        tokio::spawn(conn.serve(stream));
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => Ok(()),
        _ = tokio::time::sleep(cfg.shutdown_deadline) => {
            let deadline = cfg.shutdown_deadline;
            tracing::warn!(?deadline, "connections still open at the shutdown deadline; exiting");
            Ok(())
        }
    }
}

/// How [`Connection::serve_http1`] left a connection.
enum Handoff<I> {
    /// Closed (by the client, hyper, a timeout or shutdown).
    Done,
    /// Its next request is an event stream.
    EventStream(I, Box<http::Request<axum::body::Body>>),
    /// Its next requests are hyper's, starting with these bytes.
    Hyper(I, Bytes),
}

/// One accepted connection, before its protocol is known.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    http1: Arc<http1::Builder>,
    router: Router,
    peer: SocketAddr,
    /// When the connection is closed unless its first request head has arrived.
    first_request_by: Option<Instant>,
    shutdown: CancellationToken,
    /// [`ServeConfig::direct_event_streams`].
    direct_event_streams: bool,
    watcher: Watcher,
}

impl Connection {
    /// Serves the connection: an HTTP/1.1 event-stream request here ([`event_stream_h1`]),
    /// whether it is the first request or comes after others ([`Connection::serve_http1`]);
    /// everything else by hyper (HTTP/1.1 or HTTP/2, told apart by the HTTP/2 preface).
    async fn serve<I>(self, mut io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if !self.direct_event_streams {
            return Box::pin(self.serve_hyper(io)).await;
        }
        let first = event_stream_h1::read_first_request(&mut io);
        let first = match self.first_request_by {
            Some(deadline) => match tokio::time::timeout_at(deadline, first).await {
                Ok(first) => first,
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "closing a connection that sent no request in time");
                    return;
                }
            },
            None => first.await,
        };
        let req = match first {
            FirstRequest::Closed => return,
            FirstRequest::EventStream(req) => req,
            // Boxed and returning before the stream is served, so a stream's task is not the
            // size of a hyper connection, whichever request of its connection it was.
            FirstRequest::Other(read) if event_stream_h1::http1_head(&read) => {
                match Box::pin(self.serve_http1(Rewind::new(read, io))).await {
                    Handoff::Done => return,
                    Handoff::EventStream(inner, req) => {
                        io = inner;
                        req
                    }
                    Handoff::Hyper(inner, read) => {
                        return Box::pin(self.serve_hyper(Rewind::new(read, inner))).await;
                    }
                }
            }
            // Boxed, so a stream's task is not the size of a hyper connection.
            FirstRequest::Other(read) => {
                return Box::pin(self.serve_hyper(Rewind::new(read, io))).await;
            }
        };
        // Held until the stream ends, so a graceful shutdown waits for its last event (the
        // stream itself ends on shutdown).
        let _watcher = self.watcher;
        event_stream_h1::serve(io, req, self.router, self.peer).await;
    }

    /// Serves an HTTP/1.1 connection with hyper, looking at the start of each request before
    /// hyper reads it ([`Watch`]): when one is an event-stream request, hyper is shut down
    /// once the exchange before it is over (it has not seen a byte of the request) and the
    /// connection is handed back with the request, for
    /// [`event_stream_h1`]; an upgrade request is handed to hyper's connection with upgrades.
    /// So an `EventSource` opened on a keep-alive connection a page's `fetch` used first costs
    /// what one on a new connection does.
    async fn serve_http1<I>(&self, io: Rewind<I>) -> Handoff<I>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = Watch::new(io);
        let state = io.state.clone();
        let service = {
            let (router, peer, state) = (self.router.clone(), self.peer, state.clone());
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                // A request found after this one waits until its response is sent.
                state.done.store(false, Ordering::Relaxed);
                let keep = wants_keep_alive(req.version(), req.headers());
                req.extensions_mut().insert(ConnectInfo(peer));
                // A Router is always ready: calling it without `poll_ready` is fine.
                let response = router.clone().call(req);
                let state = state.clone();
                // `poll_without_shutdown` needs an `Unpin` future: the router's is, and so is
                // this map of it (no box per request).
                futures_util::FutureExt::map(response, move |res| {
                    res.map(|res| {
                        let keep = keep && wants_keep_alive(res.version(), res.headers());
                        res.map(|body| axum::body::Body::new(WatchAfter { body, keep, state }))
                    })
                })
            })
        };
        let mut conn = self.http1.serve_connection(TokioIo::new(io), service);
        let mut closing = false;
        let cancelled = self.shutdown.cancelled();
        tokio::pin!(cancelled);
        let result = std::future::poll_fn(|cx| {
            loop {
                if let Poll::Ready(result) = conn.poll_without_shutdown(cx) {
                    return Poll::Ready(result);
                }
                if closing {
                    return Poll::Pending;
                }
                // An event stream is waiting (hyper reads nothing more) and hyper has flushed
                // its last response: it is idle, and its graceful shutdown closes it at once
                // without touching the socket. Or the server is shutting down.
                let handoff = state.handing_over()
                    && state.done.load(Ordering::Relaxed)
                    && state.flushed.load(Ordering::Relaxed);
                if handoff || cancelled.as_mut().poll(cx).is_ready() {
                    closing = true;
                    Pin::new(&mut conn).graceful_shutdown();
                    continue;
                }
                return Poll::Pending;
            }
        })
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
            return Handoff::Done;
        }
        let parts = conn.into_parts();
        let (mut inner, head, rest) = parts.io.into_inner().into_parts();
        let stream = state.stream.lock().take();
        // Nothing found after an exchange that closes the connection is answered.
        let done = state.done.load(Ordering::Relaxed);
        match stream {
            // The stream's head was all there was: it is the connection's next request.
            Some(req) if done && parts.read_buf.is_empty() && rest.is_empty() => {
                return Handoff::EventStream(inner, req);
            }
            // Bytes hyper held before it: hyper serves all of them.
            Some(_) if done => {}
            None if done && state.upgrade.load(Ordering::Relaxed) => {}
            _ => {
                let _ = tokio::io::AsyncWriteExt::shutdown(&mut inner).await;
                return Handoff::Done;
            }
        }
        // The rest of the connection is hyper's (with upgrades), from the bytes read so far.
        let mut read = bytes::BytesMut::from(&parts.read_buf[..]);
        read.extend_from_slice(&head);
        read.extend_from_slice(&rest);
        Handoff::Hyper(inner, read.freeze())
    }

    /// Serves HTTP/1.1 or HTTP/2 (told apart by the HTTP/2 preface) on `io` with hyper.
    async fn serve_hyper<I>(self, io: I)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Self {
            builder,
            router,
            peer,
            first_request_by,
            watcher,
            ..
        } = self;
        let first_request = CancellationToken::new();
        let service = {
            let first_request = first_request.clone();
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                first_request.cancel();
                req.extensions_mut().insert(ConnectInfo(peer));
                // A Router is always ready: calling it without `poll_ready` is fine.
                router.clone().call(req)
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let conn = watcher.watch(conn);
        tokio::pin!(conn);
        if let Some(deadline) = first_request_by {
            tokio::select! {
                result = &mut conn => return log_connection_end(result),
                _ = first_request.cancelled() => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::debug!(%peer, "closing a connection that sent no request in time");
                    return;
                }
            }
        }
        log_connection_end(conn.await);
    }

    /// Completes the TLS handshake (within the first request's time), then serves the
    /// protocol ALPN chose.
    #[cfg(feature = "tls")]
    async fn serve_tls(
        self,
        stream: tokio::net::TcpStream,
        acceptor: tokio_rustls::TlsAcceptor,
        shutdown: Shutdown,
    ) {
        let peer = self.peer;
        let handshake = acceptor.accept(stream);
        let deadline = async {
            match self.first_request_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let tls = tokio::select! {
            result = handshake => match result {
                Ok(tls) => tls,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            },
            _ = deadline => {
                tracing::debug!(%peer, "closing a connection whose TLS handshake did not finish in time");
                return;
            }
            _ = shutdown.triggered() => return,
        };
        self.serve(tls).await;
    }
}

/// Whether a message lets its connection be kept alive: HTTP/1.1 without `connection: close`.
fn wants_keep_alive(version: http::Version, headers: &http::HeaderMap) -> bool {
    version == http::Version::HTTP_11
        && !headers.get_all(http::header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
        })
}

/// What [`Watch`] and the exchange's driver share.
#[derive(Default)]
struct WatchState {
    /// Whether the last exchange is over (its response sent) and leaves the connection to be
    /// reused: a request found after it may be handed over.
    done: AtomicBool,
    /// Whether everything hyper wrote has been flushed: hyper flushes only once its own
    /// buffer is empty, so after a flush it holds nothing unsent.
    flushed: AtomicBool,
    /// The event-stream request found at the start of the next request.
    stream: parking_lot::Mutex<Option<Box<http::Request<axum::body::Body>>>>,
    /// The next request asks for an upgrade: hyper with upgrades is to serve the rest.
    upgrade: AtomicBool,
    /// `stream` or `upgrade` is set (read on every poll, so not behind the lock).
    handing_over: AtomicBool,
}

impl WatchState {
    /// Whether the next request was found to be one this connection hands over.
    fn handing_over(&self) -> bool {
        self.handing_over.load(Ordering::Relaxed)
    }
}

/// A response body that, once hyper drops it (the response is sent, or not needed), marks
/// the exchange over if it leaves the connection to be reused.
struct WatchAfter {
    body: axum::body::Body,
    keep: bool,
    state: Arc<WatchState>,
}

impl Drop for WatchAfter {
    fn drop(&mut self) {
        if self.keep {
            self.state.done.store(true, Ordering::Relaxed);
        }
    }
}

impl http_body::Body for WatchAfter {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Where the next byte hyper reads stands among the connection's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// It starts a request: the head is looked at here before hyper gets any of it.
    Start,
    /// It is in the head of a request that is not handed over: the head is read here to its
    /// end, to learn where the request's body ends.
    Head,
    /// This many bytes of a body come next: a `content-length` body (then the next request
    /// starts), or a chunk's data and CRLF (`chunked`: then the next chunk-size line).
    Body { left: u64, chunked: bool },
    /// A chunked body's chunk-size line comes next (read here to its end).
    ChunkSize,
    /// The trailer section after a chunked body's last chunk comes next (read here to its
    /// end); the next request starts after it.
    Trailers,
    /// Where requests start is no longer followed (a transfer coding other than `chunked`,
    /// say): hyper gets every byte as it comes, and the connection stays hyper's.
    Lost,
}

/// The connection as hyper sees it in [`Connection::serve_http1`].
///
/// It follows where each request ends (its head, then a `content-length` or chunked body,
/// whether or not anybody reads it: hyper drains an unread one), never giving hyper bytes past the end
/// of the current request. So the start of each next request is looked at
/// ([`event_stream_h1::peek`]) before hyper sees it: anything but an event-stream request is
/// handed to hyper as read; an event-stream request is kept for the driver, and so is a
/// request asking for an upgrade (which this connection, without upgrades, leaves to hyper's
/// connection with upgrades), and hyper's reads stay pending, so hyper stays idle, until the
/// exchange before it is over. It also notes when hyper has flushed what it wrote.
struct Watch<I> {
    inner: Rewind<I>,
    state: Arc<WatchState>,
    /// Bytes read here: the start of the request being looked at and whatever came with it.
    buf: Vec<u8>,
    /// How much of `buf` hyper has been given.
    given: usize,
    /// Bytes of `buf` after `given` that hyper may have as they are: a request's head, a
    /// chunk-size line or a trailer section, found complete.
    head_left: usize,
    framing: Framing,
}

/// What reading more of a request head into [`Watch::buf`] came to.
enum Filled {
    More,
    /// The client closed its side, or the head is longer than hyper accepts (which hyper
    /// refuses when it gets it).
    NoMore,
}

impl<I> Watch<I> {
    fn new(inner: Rewind<I>) -> Self {
        let state = WatchState::default();
        state.flushed.store(true, Ordering::Relaxed);
        Self {
            inner,
            state: Arc::new(state),
            buf: Vec::new(),
            given: 0,
            head_left: 0,
            framing: Framing::Start,
        }
    }

    /// The connection, the bytes read here that hyper was not given, and the bytes put back
    /// in front before hyper that were not read yet (in that order).
    fn into_parts(self) -> (I, Vec<u8>, Bytes) {
        let (rest, inner) = self.inner.into_parts();
        let mut buf = self.buf;
        buf.drain(..self.given);
        (inner, buf, rest)
    }

    /// Gives hyper up to `max` of the bytes read here that it has not had.
    fn give(&mut self, out: &mut tokio::io::ReadBuf<'_>, max: usize) -> usize {
        let n = (self.buf.len() - self.given).min(max).min(out.remaining());
        out.put_slice(&self.buf[self.given..self.given + n]);
        self.given += n;
        n
    }
}

impl<I: AsyncRead + Unpin> Watch<I> {
    /// Gives hyper up to `left` bytes of a body (what was read here first, then straight
    /// from the connection): never past its end. Returns how many.
    fn pass(
        &mut self,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
        left: u64,
    ) -> Poll<std::io::Result<u64>> {
        let max = usize::try_from(left).unwrap_or(usize::MAX);
        if self.given < self.buf.len() {
            return Poll::Ready(Ok(self.give(out, max) as u64));
        }
        if max >= out.remaining() {
            let before = out.filled().len();
            std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, out))?;
            return Poll::Ready(Ok((out.filled().len() - before) as u64));
        }
        // The body ends within hyper's buffer: read no further than that.
        let mut limited = tokio::io::ReadBuf::new(out.initialize_unfilled_to(max));
        std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut limited))?;
        let n = limited.filled().len();
        out.advance(n);
        Poll::Ready(Ok(n as u64))
    }

    /// Reads more of a request head into `buf`.
    fn fill(&mut self, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<Filled>> {
        if self.given > 0 {
            self.buf.drain(..self.given);
            self.given = 0;
        }
        let start = self.buf.len();
        if start >= event_stream_h1::HEAD_MAX {
            return Poll::Ready(Ok(Filled::NoMore));
        }
        self.buf
            .resize((start + 1024).min(event_stream_h1::HEAD_MAX), 0);
        let mut read = tokio::io::ReadBuf::new(&mut self.buf[start..]);
        let polled = Pin::new(&mut self.inner).poll_read(cx, &mut read);
        let n = read.filled().len();
        self.buf.truncate(start + n);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) if n == 0 => Poll::Ready(Ok(Filled::NoMore)),
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Filled::More)),
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watch<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        out: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.state.handing_over() {
                // Kept for the driver: hyper waits (idle once its exchange is over) until
                // the driver shuts it down.
                return Poll::Pending;
            }
            if this.head_left > 0 {
                let n = this.give(out, this.head_left);
                this.head_left -= n;
                return Poll::Ready(Ok(()));
            }
            match this.framing {
                Framing::Lost => {
                    if this.given < this.buf.len() {
                        this.give(out, usize::MAX);
                        return Poll::Ready(Ok(()));
                    }
                    return Pin::new(&mut this.inner).poll_read(cx, out);
                }
                Framing::Body { left: 0, chunked } => {
                    if chunked {
                        this.framing = Framing::ChunkSize;
                        continue;
                    }
                    this.framing = Framing::Start;
                    if this.given == this.buf.len() && this.buf.capacity() > 4096 {
                        // Done with a long head: an idle connection keeps no large buffer.
                        this.buf = Vec::new();
                        this.given = 0;
                    }
                }
                Framing::Body { left, chunked } => {
                    let n = std::task::ready!(this.pass(cx, out, left))?;
                    this.framing = Framing::Body {
                        left: left - n,
                        chunked,
                    };
                    return Poll::Ready(Ok(()));
                }
                Framing::ChunkSize | Framing::Trailers => {
                    let at = &this.buf[this.given..];
                    let end = if this.framing == Framing::ChunkSize {
                        event_stream_h1::chunk_size_line(at)
                    } else {
                        event_stream_h1::chunk_trailers(at)
                    };
                    match end {
                        event_stream_h1::ChunkEnd::Size { line, size: 0 } => {
                            this.head_left = line;
                            this.framing = Framing::Trailers;
                        }
                        event_stream_h1::ChunkEnd::Size { line, size } => {
                            this.head_left = line;
                            this.framing = Framing::Body {
                                left: size.saturating_add(2),
                                chunked: true,
                            };
                        }
                        event_stream_h1::ChunkEnd::Trailers { len } => {
                            this.head_left = len;
                            this.framing = Framing::Body {
                                left: 0,
                                chunked: false,
                            };
                        }
                        // Hyper refuses it and closes the connection; it gets it as it is.
                        event_stream_h1::ChunkEnd::Invalid => this.framing = Framing::Lost,
                        event_stream_h1::ChunkEnd::Partial => {
                            if let Filled::NoMore = std::task::ready!(this.fill(cx))? {
                                this.framing = Framing::Lost;
                            }
                        }
                    }
                }
                Framing::Start => {
                    if this.given < this.buf.len() {
                        match event_stream_h1::peek(&this.buf[this.given..]) {
                            event_stream_h1::Parsed::Partial => {}
                            event_stream_h1::Parsed::Upgrade => {
                                this.state.upgrade.store(true, Ordering::Relaxed);
                                this.state.handing_over.store(true, Ordering::Relaxed);
                                continue;
                            }
                            event_stream_h1::Parsed::EventStream(req) => {
                                *this.state.stream.lock() = Some(req);
                                this.state.handing_over.store(true, Ordering::Relaxed);
                                continue;
                            }
                            event_stream_h1::Parsed::Other => {
                                this.framing = Framing::Head;
                                continue;
                            }
                        }
                    }
                    match std::task::ready!(this.fill(cx))? {
                        Filled::More => {}
                        // The client closed between requests: hyper sees the end.
                        Filled::NoMore if this.buf.is_empty() => return Poll::Ready(Ok(())),
                        Filled::NoMore => this.framing = Framing::Lost,
                    }
                }
                Framing::Head => match event_stream_h1::request_end(&this.buf[this.given..]) {
                    event_stream_h1::RequestEnd::Known { head, body } => {
                        this.head_left = head;
                        this.framing = Framing::Body {
                            left: body,
                            chunked: false,
                        };
                    }
                    event_stream_h1::RequestEnd::Chunked { head } => {
                        this.head_left = head;
                        this.framing = Framing::ChunkSize;
                    }
                    event_stream_h1::RequestEnd::Unknown => this.framing = Framing::Lost,
                    event_stream_h1::RequestEnd::Partial => {
                        if let Filled::NoMore = std::task::ready!(this.fill(cx))? {
                            this.framing = Framing::Lost;
                        }
                    }
                },
            }
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watch<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.state.flushed.store(false, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.state.flushed.store(false, Ordering::Relaxed);
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.state.flushed.store(true, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn log_connection_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Accept errors are about one connection (reset before accept) or the process (out of file
/// descriptors); either way the server keeps going, pausing on the latter so it does not spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn os_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Env var naming the PEM certificate chain file read by [`TlsConfig::from_env`].
#[cfg(feature = "tls")]
pub const TLS_CERT_ENV: &str = "PIKKU_TLS_CERT";

/// Env var naming the PEM private key file read by [`TlsConfig::from_env`].
#[cfg(feature = "tls")]
pub const TLS_KEY_ENV: &str = "PIKKU_TLS_KEY";

/// A certificate chain and its private key for [`ServeConfig::tls`] (feature `tls`): rustls
/// with the *ring* provider, its safe default protocol versions (TLS 1.2 and 1.3), and ALPN
/// `h2` then `http/1.1`.
///
/// ```no_run
/// # fn main() -> Result<(), pikku::server::TlsError> {
/// let tls = pikku::TlsConfig::from_pem_files("cert.pem", "key.pem")?;
/// let cfg = pikku::ServeConfig::default().tls(tls);
/// # let _ = cfg;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "tls")]
#[derive(Debug, Clone)]
pub struct TlsConfig {
    config: Arc<rustls::ServerConfig>,
}

/// Why a [`TlsConfig`] could not be made.
#[cfg(feature = "tls")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Only one of [`TLS_CERT_ENV`] and [`TLS_KEY_ENV`] is set.
    #[error(
        "{set} is set but {missing} is not: set both (a PEM certificate chain and its private key) or neither"
    )]
    HalfConfigured {
        /// The variable that is set.
        set: &'static str,
        /// The one that is missing.
        missing: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// `certificate chain` or `private key`.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The certificate chain is not PEM or holds no `CERTIFICATE` block.
    #[error("no PEM certificate in {origin}: {reason}")]
    Certificate {
        /// The file (or `the given PEM`).
        origin: String,
        /// What the PEM parser said.
        reason: String,
    },
    /// The key is not PEM or holds no private key (PKCS#8, PKCS#1 or SEC1).
    #[error("no PEM private key in {origin}: {reason}")]
    Key {
        /// The file (or `the given PEM`).
        origin: String,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("rustls refused the certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

#[cfg(feature = "tls")]
impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first) and a PEM private key.
    pub fn from_pem_files(
        cert_chain: impl AsRef<std::path::Path>,
        key: impl AsRef<std::path::Path>,
    ) -> Result<Self, TlsError> {
        let read = |what, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        let certs = read("certificate chain", cert_path)?;
        let key = read("private key", key_path)?;
        Self::parse(
            &certs,
            &cert_path.display().to_string(),
            &key,
            &key_path.display().to_string(),
        )
    }

    /// A PEM certificate chain (the server's certificate first) and a PEM private key, in
    /// memory.
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        Self::parse(cert_chain, "the given PEM", key, "the given PEM")
    }

    /// The files named by `PIKKU_TLS_CERT` and `PIKKU_TLS_KEY`; `None` when neither is set
    /// (or both are empty), an error when only one is.
    pub fn from_env() -> Result<Option<Self>, TlsError> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        match (var(TLS_CERT_ENV), var(TLS_KEY_ENV)) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Self::from_pem_files(cert, key).map(Some),
            (Some(_), None) => Err(TlsError::HalfConfigured {
                set: TLS_CERT_ENV,
                missing: TLS_KEY_ENV,
            }),
            (None, Some(_)) => Err(TlsError::HalfConfigured {
                set: TLS_KEY_ENV,
                missing: TLS_CERT_ENV,
            }),
        }
    }

    fn parse(
        cert_pem: &[u8],
        cert_origin: &str,
        key_pem: &[u8],
        key_origin: &str,
    ) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let cert_error = |reason: String| TlsError::Certificate {
            origin: cert_origin.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(e.to_string()))?;
        if certs.is_empty() {
            return Err(cert_error("no `BEGIN CERTIFICATE` block".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Key {
            origin: key_origin.to_owned(),
            reason: match e {
                rustls::pki_types::pem::Error::NoItemsFound => {
                    "no `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block"
                        .into()
                }
                e => e.to_string(),
            },
        })?;
        // The provider is named rather than taken from the process default, which panics
        // when more than one provider is compiled in.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            config: Arc::new(config),
        })
    }
}
