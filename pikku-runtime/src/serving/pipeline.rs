//! The request pipeline: one request to a route, from its headers and raw input to the
//! response (rate limit, CSRF, content type, session, stream limits, the function).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::{FutureExt as _, StreamExt as _};
use http::{HeaderValue, header};
use tokio_util::sync::CancellationToken;

use super::body::{PikkuBody, SseBody, panic_message};
use super::client_ip::TrustedProxies;
use super::config::SseConfig;
use super::limits::{RouteRateLimiter, StreamLimiter, StreamPermit};
use crate::call::{Call, Step, Steps};
use crate::context::{Context, LAST_EVENT_ID_QUERY};
use crate::cors::CorsConfig;
use crate::error::PikkuError;
use crate::input::RawInput;
use crate::metrics::Metrics;
use crate::registry::{ResponseKind, RouteDef};
use crate::session::ErasedSessions;
use crate::session::end::SessionEnd;

/// What every route of an app shares.
pub(crate) struct AppState {
    pub services: Arc<dyn Any + Send + Sync>,
    pub services_type: TypeId,
    pub sse: SseConfig,
    pub sessions: Option<Arc<dyn ErasedSessions>>,
    pub shutdown: CancellationToken,
    pub body_limit: usize,
    pub metrics: Metrics,
    pub stream_limiter: StreamLimiter,
    /// Whose `X-Forwarded-For` (or `Forwarded`) names the client that the per-IP limits count.
    pub trusted_proxies: TrustedProxies,
    /// The allowed cross-origin origins (trusted by the CSRF check too).
    pub cors: CorsConfig,
    /// Rate limiters by route (keyed by the descriptor's address).
    pub rate_limiters: HashMap<usize, RouteRateLimiter>,
    /// Each route's counters (also counting into `metrics`), keyed like `rate_limiters`.
    pub route_metrics: HashMap<usize, Metrics>,
}

fn route_key(route: &'static RouteDef) -> usize {
    route as *const RouteDef as usize
}

impl AppState {
    pub(crate) fn add_rate_limit(&mut self, route: &'static RouteDef) {
        if let Some(limiter) = route.rate_limit.and_then(RouteRateLimiter::new) {
            self.rate_limiters.insert(route_key(route), limiter);
        }
    }

    pub(crate) fn add_route_metrics(&mut self, route: &'static RouteDef) {
        let metrics = self.metrics.for_route(route.method.as_str(), route.path);
        self.route_metrics.insert(route_key(route), metrics);
    }

    /// The route's counters (the app's alone for a route mounted without them).
    fn metrics_of(&self, route: &'static RouteDef) -> &Metrics {
        self.route_metrics
            .get(&route_key(route))
            .unwrap_or(&self.metrics)
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

/// The client's `x-request-id` when it is 1-128 characters of `A-Z a-z 0-9 . _ : -`;
/// otherwise a generated one. Anything else (spaces, `=`, quotes, control characters) could
/// forge fields in logs and headers downstream, so it is replaced, not echoed.
fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed)))
}

/// Serves one request to `route`: session, input, the function, and the response.
pub(crate) async fn handle(
    app: &AppState,
    route: &'static RouteDef,
    headers: http::HeaderMap,
    raw: RawInput,
    peer: Option<IpAddr>,
) -> http::Response<PikkuBody> {
    let request_id = request_id(&headers);
    let peer = app.trusted_proxies.client_ip(peer, &headers);
    let span = tracing::info_span!(
        "pikku",
        route = route.path,
        method = route.method.as_str(),
        // Quoted (Debug), so no value can pass for other fields in text logs.
        request_id = ?request_id
    );
    app.metrics_of(route).request();
    let mut res = run(
        app,
        route,
        headers,
        raw,
        peer,
        request_id.clone(),
        span.clone(),
    )
    .await;
    if let Ok(v) = HeaderValue::try_from(request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

/// A stream route's `lastEventId` query parameter (a first connection's resume point),
/// taken off the query so the function's input never sees it, unless that input declares a
/// field of the name (then it sees it too).
fn resume_query(route: &'static RouteDef, raw: &mut RawInput) -> Option<String> {
    if !route.response.may_stream() {
        return None;
    }
    let declared = route.input_schema.is_some()
        && route
            .plan()
            .properties()
            .iter()
            .any(|p| p == LAST_EVENT_ID_QUERY);
    if declared {
        raw.clone().take_query_param(LAST_EVENT_ID_QUERY)
    } else {
        raw.take_query_param(LAST_EVENT_ID_QUERY)
    }
}

async fn run(
    app: &AppState,
    route: &'static RouteDef,
    headers: http::HeaderMap,
    mut raw: RawInput,
    peer: Option<IpAddr>,
    request_id: String,
    span: tracing::Span,
) -> http::Response<PikkuBody> {
    if let Some(limiter) = app.rate_limiters.get(&route_key(route)) {
        if let Err(e) = limiter.check(peer) {
            app.metrics_of(route).rejected();
            return e.to_response();
        }
    }
    if let Err(e) = crate::csrf::check(route.method, &headers, &app.cors) {
        app.metrics_of(route).rejected();
        tracing::info!(parent: &span, origin = ?headers.get(header::ORIGIN), "refused a cross-origin request");
        return e.to_response();
    }
    if route.method.has_body() && route.input_schema.is_some() {
        if let Err(e) = crate::content_type::require_json(&headers, raw.body.is_empty()) {
            return e.to_response();
        }
    }
    let mut session_info = crate::session::SessionInfo::default();
    // A session stream ends with its session: at expiry, or when its identity is revoked.
    // Watched from right after the session was verified, so no revocation falls in between.
    let mut session_end = None;
    let session = if route.auth {
        let Some(sessions) = &app.sessions else {
            // Caught at startup; kept as a guard for hand-built states.
            return PikkuError::unauthorized("no session service").to_response();
        };
        match sessions.resolve(&headers).await {
            Ok(Some(s)) => {
                if route.response.may_stream() {
                    session_info = sessions.info(&headers, &*s);
                    let watch = sessions
                        .revocations()
                        .zip(session_info.identity.as_deref())
                        .and_then(|(r, id)| r.watch(id));
                    session_end = SessionEnd::new(session_info.expires_at, watch);
                }
                Some(s)
            }
            Ok(None) => {
                return PikkuError::unauthorized("a valid session is required").to_response();
            }
            Err(e) => return e.to_response(),
        }
    } else {
        None
    };
    // Stream routes take their place under the limits before the function runs; either-routes
    // when they turn out to stream. Sessions count by identity (one user, however many
    // logins), falling back to the credential.
    let acquire = |headers: &http::HeaderMap| {
        if app.stream_limiter.is_unlimited() {
            return Ok(None);
        }
        let credential = session_info
            .identity
            .as_deref()
            .or_else(|| app.sessions.as_ref()?.credential(headers))
            .filter(|_| route.auth);
        app.stream_limiter.acquire(peer, credential).map(Some)
    };
    let mut permit = None;
    if route.response == ResponseKind::Stream {
        match acquire(&headers) {
            Ok(p) => permit = p,
            Err(e) => {
                app.metrics_of(route).rejected();
                return e.to_response();
            }
        }
    }
    let either_credential = (route.response == ResponseKind::Either).then(|| acquire(&headers));
    let query_last_event_id = resume_query(route, &mut raw);
    let ctx = Context::new(
        request_id,
        headers,
        peer,
        query_last_event_id.as_deref(),
        app.shutdown.clone(),
        app.metrics_of(route).clone(),
    );
    let call = Call {
        input_plan: route.input_schema.map(|_| route.plan()),
        has_body: route.method.has_body(),
        services: app.services.clone(),
        session,
        raw,
        ctx,
    };
    let mut steps = (route.handler)(call);
    let first = {
        let _enter = span.enter();
        AssertUnwindSafe(steps.next()).catch_unwind()
    }
    .await;
    if let (Ok(Some(Step::Open(_))), Some(acquired)) = (&first, either_credential) {
        match acquired {
            Ok(p) => permit = p,
            Err(e) => {
                app.metrics_of(route).rejected();
                return e.to_response();
            }
        }
    }
    let session_end = session_end.filter(|_| matches!(first, Ok(Some(Step::Open(_)))));
    respond(app, route, first, steps, permit, session_end, span)
}

/// Adds the headers a function set to its response.
fn with_headers<B>(mut res: http::Response<B>, added: http::HeaderMap) -> http::Response<B> {
    // `into_iter` names a header once for all its values.
    let mut current = None;
    for (name, value) in added {
        if name.is_some() {
            current = name;
        }
        if let Some(name) = &current {
            res.headers_mut().append(name.clone(), value);
        }
    }
    res
}

fn respond(
    app: &AppState,
    route: &'static RouteDef,
    first: Result<Option<Step>, Box<dyn Any + Send>>,
    steps: Steps,
    permit: Option<StreamPermit>,
    session_end: Option<SessionEnd>,
    span: tracing::Span,
) -> http::Response<PikkuBody> {
    match first {
        Ok(Some(Step::Open(added))) => {
            tracing::debug!(parent: &span, "stream opened");
            let heartbeat = match route.heartbeat_ms {
                Some(0) => None,
                Some(ms) => Some(std::time::Duration::from_millis(ms)),
                None => app.sse.heartbeat_interval(),
            };
            let body = SseBody::new(
                steps,
                &app.sse,
                heartbeat,
                Some(app.shutdown.clone()),
                app.metrics_of(route).clone(),
                permit,
                session_end,
                span,
            );
            let mut res = http::Response::new(PikkuBody::Sse(Box::new(body)));
            app.sse.apply_headers(res.headers_mut());
            with_headers(res, *added)
        }
        Ok(Some(Step::Json(answer))) => match *answer {
            (Ok(bytes), added) => {
                let mut res = http::Response::new(PikkuBody::from(bytes));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                with_headers(res, added)
            }
            (Err(e), added) => failed(e, added, &span),
        },
        Ok(Some(Step::Fail(failure))) => {
            let (e, added) = *failure;
            failed(e, added, &span)
        }
        Ok(Some(Step::Event(_)) | None) => {
            PikkuError::internal("handler produced no response").to_response()
        }
        Err(panic) => {
            app.metrics_of(route).panic();
            tracing::error!(parent: &span, panic = %panic_message(&panic), "function panicked");
            PikkuError::internal_logged().to_response()
        }
    }
}

/// The response to an error the function returned (logged when it is the server's fault).
fn failed(
    e: PikkuError,
    added: http::HeaderMap,
    span: &tracing::Span,
) -> http::Response<PikkuBody> {
    if e.status().is_server_error() {
        tracing::error!(parent: span, error = %e, "function failed");
    }
    with_headers(e.to_response(), added)
}

impl ResponseKind {
    /// Whether the route may answer with an event stream.
    pub fn may_stream(self) -> bool {
        matches!(self, ResponseKind::Stream | ResponseKind::Either)
    }
}
