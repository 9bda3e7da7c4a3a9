//! AWS Lambda with streamed responses (feature `lambda`): the app's axum [`Router`] served
//! through `lambda_http`'s streaming runtime, so a stream route's events reach a function URL
//! (invoke mode `RESPONSE_STREAM`) as they are produced.
//!
//! ```no_run
//! # use pikku::Pikku;
//! # struct Services;
//! #[tokio::main]
//! async fn main() -> Result<(), pikku::lambda::LambdaError> {
//!     pikku::lambda::run(Pikku::new(Services)).await
//! }
//! ```
//!
//! What differs from [`serve`](crate::serve):
//! - One invocation is one request; an execution environment serves one invocation at a time
//!   (Lambda starts more environments for concurrent clients), and a stream holds its
//!   environment until the stream ends or the function's timeout (at most 15 minutes) cuts it.
//! - Lambda does not tell the function when the client goes away: the generator keeps running
//!   (and its cleanup waits) until it ends, the function times out, or writing the response
//!   to the Runtime API fails.
//! - SSE heartbeats are sent as usual; they keep idle streams open through the function URL.
//! - The peer IP (per-IP stream limits) is the request context's `sourceIp`, already the
//!   client's address, so leave `PIKKU_TRUSTED_PROXIES` unset here; the `Host` header
//!   (same-origin checks) is the function URL's host.
//! - Shutdown: Lambda sends `SIGTERM` only to functions with an extension registered; then
//!   the app's [`Shutdown`](crate::serving::Shutdown) is triggered, so open streams end with
//!   their `shutdown` event. Without an extension the environment is frozen and later
//!   discarded without a signal.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::ConnectInfo;
use lambda_http::request::RequestContext;
use lambda_http::{RequestExt, tower::ServiceBuilder};

use super::Pikku;
use crate::serving::Shutdown;
use crate::startup::StartupError;

/// Why [`run`] returned.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The app's routes or settings were refused at startup.
    #[error("pikku: {0}")]
    Startup(#[from] StartupError),
    /// The Lambda runtime stopped: its environment variables are missing (not running in
    /// Lambda or an emulator), or the Runtime API failed.
    #[error("lambda runtime: {0}")]
    Runtime(lambda_http::Error),
}

/// Serves `pikku` as a Lambda function with streamed responses; returns only on errors.
///
/// Reads the Runtime API's address from the environment Lambda (or `cargo lambda watch`)
/// sets; `SIGTERM` triggers the app's shutdown signal.
pub async fn run<S: Send + Sync + 'static>(pikku: Pikku<S>) -> Result<(), LambdaError> {
    let shutdown = pikku.shutdown_handle();
    let router = pikku.try_router()?;
    run_router(router, shutdown).await
}

/// Like [`run`], for a router composed of Pikku's and others (e.g. nested under `/api`);
/// `shutdown` is triggered on `SIGTERM`.
pub async fn run_router(router: Router, shutdown: Shutdown) -> Result<(), LambdaError> {
    on_sigterm(shutdown);
    let service = ServiceBuilder::new()
        .map_request(to_axum as fn(lambda_http::Request) -> axum::extract::Request)
        .service(router);
    lambda_http::run_with_streaming_response(service)
        .await
        .map_err(LambdaError::Runtime)
}

/// Gives a Lambda request what the axum adapter reads off a connection: the client's IP as
/// `ConnectInfo` (port 0: the request context has no port).
fn to_axum(req: lambda_http::Request) -> axum::extract::Request {
    let peer = source_ip(&req);
    let mut req = req.map(axum::body::Body::new);
    if let Some(ip) = peer {
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(ip, 0)));
    }
    req
}

/// The `sourceIp` API Gateway or the function URL recorded (not a client-sent header).
fn source_ip(req: &lambda_http::Request) -> Option<IpAddr> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

fn on_sigterm(shutdown: Shutdown) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                if term.recv().await.is_some() {
                    tracing::info!(target: "pikku::lambda", "SIGTERM: ending open streams");
                    shutdown.trigger();
                }
            }
            Err(e) => {
                tracing::warn!(target: "pikku::lambda", "cannot listen for SIGTERM: {e}");
            }
        }
    });
    #[cfg(not(unix))]
    drop(shutdown);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function URL event (payload 2.0, as the AWS docs show it).
    const EVENT: &str = r#"{
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/stream/ticks",
        "rawQueryString": "n=3",
        "headers": {"host": "abc.lambda-url.eu-west-1.on.aws", "x-forwarded-for": "198.51.100.9"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.eu-west-1.on.aws",
            "domainPrefix": "abc",
            "http": {"method": "GET", "path": "/stream/ticks", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "curl"},
            "requestId": "id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Dec/2026:17:00:00 +0000",
            "timeEpoch": 1796403600000
        },
        "isBase64Encoded": false
    }"#;

    #[test]
    fn a_function_url_event_becomes_an_axum_request_with_peer_host_path_and_query() {
        let req = lambda_http::request::from_str(EVENT).unwrap();
        let req = to_axum(req);
        assert_eq!(req.uri().path(), "/stream/ticks");
        assert_eq!(req.uri().query(), Some("n=3"));
        assert_eq!(
            req.headers()[http::header::HOST],
            "abc.lambda-url.eu-west-1.on.aws"
        );
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().unwrap();
        // The request context's address, not the forwarded header's.
        assert_eq!(peer.0.ip().to_string(), "203.0.113.7");
    }
}
