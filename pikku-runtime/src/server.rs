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

use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio_util::sync::CancellationToken;
use tower::Service as _;

use crate::serving::Shutdown;

/// How long [`serve`] waits for open connections after shutdown starts.
pub const DEFAULT_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Default time a client has to send a request's headers (and the longest an idle
/// keep-alive connection is held).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Default interval of HTTP/2 keep-alive pings.
pub const DEFAULT_HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(30);

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
    shutdown_deadline: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Some(DEFAULT_HEADER_READ_TIMEOUT),
            http2_keep_alive: Some(DEFAULT_HTTP2_KEEP_ALIVE),
            shutdown_deadline: DEFAULT_SHUTDOWN_DEADLINE,
        }
    }
}

impl ServeConfig {
    /// How long a client has to send a complete request head, counted from the moment the
    /// connection waits for one (so it also closes idle HTTP/1 keep-alive connections).
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

    /// How long to wait for open connections after shutdown starts.
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
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
        .keep_alive_interval(cfg.http2_keep_alive);
    if let Some(every) = cfg.http2_keep_alive {
        builder.http2().keep_alive_timeout(every);
    }
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
        let first_request = CancellationToken::new();
        let service = {
            let router = router.clone();
            let first_request = first_request.clone();
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                first_request.cancel();
                req.extensions_mut().insert(ConnectInfo(peer));
                // A Router is always ready: calling it without `poll_ready` is fine.
                router.clone().call(req)
            })
        };
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let first_request_deadline = cfg.header_read_timeout;
        tokio::spawn(async move {
            tokio::pin!(conn);
            if let Some(limit) = first_request_deadline {
                tokio::select! {
                    result = &mut conn => return log_connection_end(result),
                    _ = first_request.cancelled() => {}
                    _ = tokio::time::sleep(limit) => {
                        tracing::debug!(%peer, "closing a connection that sent no request in time");
                        return;
                    }
                }
            }
            log_connection_end(conn.await);
        });
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
