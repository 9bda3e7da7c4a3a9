//! Serving one call of a declared function, independent of the web framework.
//!
//! The generated handler turns a [`Call`] into a stream of [`Step`]s: first `Open` (a stream
//! starts), `Json` (a JSON answer) or `Fail` (an error before anything was sent), then, for
//! streams, one `Frame` per encoded event. The runtime reads the first step to choose the
//! response and hands the rest to [`SseBody`]. One protocol serves JSON, stream and
//! either-routes, and lets a generator borrow the services it runs with.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use futures_util::{FutureExt as _, Stream, StreamExt as _};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::context::Context;
use crate::cors::CorsConfig;
use crate::error::PikkuError;
use crate::input::{self, RawInput};
use crate::limits::{RouteRateLimiter, StreamLimiter, StreamPermit};
use crate::metrics::Metrics;
use crate::registry::{ResponseKind, RouteDef};
use crate::session::{ErasedSessions, SESSION_COOKIE, token_from_headers};
use crate::session_end::SessionEnd;
use crate::sse::{self, Event, SseBody, SseConfig};

/// One step of a generated handler's output.
#[derive(Debug)]
pub enum Step {
    /// A stream starts: send the SSE headers.
    Open,
    /// A JSON answer (already serialized), or the error the function returned.
    Json(Result<Bytes, PikkuError>),
    /// The function failed before anything was sent.
    Fail(PikkuError),
    /// One encoded SSE event.
    Frame(Bytes),
}

/// A generated handler's output.
pub type Steps = Pin<Box<dyn Stream<Item = Step> + Send>>;

/// One call of a function, as the runtime hands it to the generated handler.
pub struct Call {
    pub(crate) route: &'static RouteDef,
    pub(crate) services: Arc<dyn Any + Send + Sync>,
    pub(crate) session: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) raw: RawInput,
    pub(crate) ctx: Context,
}

/// What a generated handler's body receives: typed services, input, session and context.
pub struct Prepared<S, I, U> {
    /// The app's services.
    pub services: Arc<S>,
    /// The decoded input (`()` for functions without one).
    pub input: I,
    /// The session (`()` for functions without one).
    pub session: U,
    /// The request context.
    pub ctx: Context,
}

/// How a session parameter is taken from a call: `()` for none, `Arc<T>` for a session `T`.
pub trait SessionArg: Sized + Send + 'static {
    /// Takes the session the runtime resolved.
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError>;
}

impl SessionArg for () {
    fn take(_: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        Ok(())
    }
}

impl<T: Send + Sync + 'static> SessionArg for Arc<T> {
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        session
            .ok_or_else(|| PikkuError::unauthorized("a valid session is required"))?
            .downcast::<T>()
            .map_err(|_| PikkuError::internal("session type differs from the function's"))
    }
}

impl Call {
    fn prepare<S, I, U>(self) -> Result<Prepared<S, I, U>, PikkuError>
    where
        S: Send + Sync + 'static,
        I: DeserializeOwned,
        U: SessionArg,
    {
        let services = self
            .services
            .downcast::<S>()
            .map_err(|_| PikkuError::internal("services type differs from the function's"))?;
        let input = if self.route.input_schema.is_some() {
            input::decode(self.route.plan(), &self.raw, self.route.method.has_body())?
        } else {
            // `()` deserializes from null: functions without input ignore the request's data.
            serde_json::from_value(serde_json::Value::Null).map_err(PikkuError::internal)?
        };
        Ok(Prepared {
            services,
            input,
            session: U::take(self.session)?,
            ctx: self.ctx,
        })
    }
}

/// Runs a generated handler body with the call's typed parts (generated code calls this).
pub fn run<S, I, U, St, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> St,
    S: Send + Sync + 'static,
    I: DeserializeOwned,
    U: SessionArg,
    St: Stream<Item = Step> + Send + 'static,
{
    match call.prepare::<S, I, U>() {
        Ok(p) => Box::pin(body(p)),
        Err(e) => Box::pin(futures_util::stream::once(async move { Step::Fail(e) })),
    }
}

/// [`run`] for a function that answers once (JSON): `body` is a future of its one step.
pub fn run_once<S, I, U, Fut, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> Fut,
    S: Send + Sync + 'static,
    I: DeserializeOwned,
    U: SessionArg,
    Fut: Future<Output = Step> + Send + 'static,
{
    run(call, |p| futures_util::stream::once(body(p)))
}

/// A JSON answer.
pub fn json<T: Serialize>(value: &T) -> Step {
    Step::Json(
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(PikkuError::internal),
    )
}

/// A JSON answer from a fallible function.
pub fn json_result<T: Serialize, E: Into<PikkuError>>(value: Result<T, E>) -> Step {
    match value {
        Ok(v) => json(&v),
        Err(e) => Step::Json(Err(e.into())),
    }
}

/// An error before anything was sent.
pub fn fail<E: Into<PikkuError>>(e: E) -> Step {
    Step::Fail(e.into())
}

/// A data-only event.
pub fn frame<T: Serialize>(item: &T) -> Step {
    Step::Frame(sse::encode_json(item).unwrap_or_else(|e| sse::encode_error(&e)))
}

/// An event with fields.
pub fn frame_event<T: Serialize>(item: &Event<T>) -> Step {
    Step::Frame(item.encode().unwrap_or_else(|e| sse::encode_error(&e)))
}

/// A pre-encoded event, sent as it is.
pub fn frame_raw<T>(item: sse::Frame<T>) -> Step {
    Step::Frame(item.into_bytes())
}

/// A fallible pre-encoded event.
pub fn frame_raw_result<T, E: Into<PikkuError>>(item: Result<sse::Frame<T>, E>) -> Step {
    match item {
        Ok(v) => frame_raw(v),
        Err(e) => Step::Frame(sse::encode_error(&e.into())),
    }
}

/// A fallible item: `Err` becomes `event: error`.
pub fn frame_result<T: Serialize, E: Into<PikkuError>>(item: Result<T, E>) -> Step {
    match item {
        Ok(v) => frame(&v),
        Err(e) => Step::Frame(sse::encode_error(&e.into())),
    }
}

/// A fallible event item.
pub fn frame_event_result<T: Serialize, E: Into<PikkuError>>(item: Result<Event<T>, E>) -> Step {
    match item {
        Ok(v) => frame_event(&v),
        Err(e) => Step::Frame(sse::encode_error(&e.into())),
    }
}

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
    /// The allowed cross-origin origins (trusted by the CSRF check too).
    pub cors: CorsConfig,
    /// Rate limiters by route (keyed by the descriptor's address).
    pub rate_limiters: HashMap<usize, RouteRateLimiter>,
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
}

/// The response body: a complete buffer or an event stream.
pub enum PikkuBody {
    /// A complete body.
    Full(Option<Bytes>),
    /// An event stream.
    Sse(Box<SseBody>),
}

impl http_body::Body for PikkuBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            PikkuBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(http_body::Frame::data(b)))),
            PikkuBody::Sse(s) => Pin::new(s.as_mut()).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, PikkuBody::Full(None))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            PikkuBody::Full(Some(b)) => http_body::SizeHint::with_exact(b.len() as u64),
            PikkuBody::Full(None) => http_body::SizeHint::with_exact(0),
            PikkuBody::Sse(_) => http_body::SizeHint::default(),
        }
    }
}

impl From<Bytes> for PikkuBody {
    fn from(b: Bytes) -> Self {
        PikkuBody::Full(Some(b))
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
    let span = tracing::info_span!(
        "pikku",
        route = route.path,
        method = route.method.as_str(),
        // Quoted (Debug), so no value can pass for other fields in text logs.
        request_id = ?request_id
    );
    app.metrics.request();
    let mut res = serve(
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

async fn serve(
    app: &AppState,
    route: &'static RouteDef,
    headers: http::HeaderMap,
    raw: RawInput,
    peer: Option<IpAddr>,
    request_id: String,
    span: tracing::Span,
) -> http::Response<PikkuBody> {
    if let Some(limiter) = app.rate_limiters.get(&route_key(route)) {
        if let Err(e) = limiter.check(peer) {
            app.metrics.rejected();
            return e.to_response();
        }
    }
    if let Err(e) = crate::csrf::check(route.method, &headers, &app.cors) {
        app.metrics.rejected();
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
            .or_else(|| token_from_headers(headers, SESSION_COOKIE))
            .filter(|_| route.auth);
        app.stream_limiter.acquire(peer, credential).map(Some)
    };
    let mut permit = None;
    if route.response == ResponseKind::Stream {
        match acquire(&headers) {
            Ok(p) => permit = p,
            Err(e) => {
                app.metrics.rejected();
                return e.to_response();
            }
        }
    }
    let either_credential = (route.response == ResponseKind::Either).then(|| acquire(&headers));
    let ctx = Context::new(
        request_id,
        headers,
        app.shutdown.clone(),
        app.metrics.clone(),
    );
    let extra_headers = ctx.response_headers();
    let call = Call {
        route,
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
    if let (Ok(Some(Step::Open)), Some(acquired)) = (&first, either_credential) {
        match acquired {
            Ok(p) => permit = p,
            Err(e) => {
                app.metrics.rejected();
                return e.to_response();
            }
        }
    }
    let session_end = session_end.filter(|_| matches!(first, Ok(Some(Step::Open))));
    let mut res = respond(app, route, first, steps, permit, session_end, span);
    if let Ok(mut extra) = extra_headers.lock() {
        // `drain` names a header once for all its values.
        let mut current = None;
        for (name, value) in extra.drain() {
            if name.is_some() {
                current = name;
            }
            if let Some(name) = &current {
                res.headers_mut().append(name.clone(), value);
            }
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
        Ok(Some(Step::Open)) => {
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
                app.metrics.clone(),
                permit,
                session_end,
                span,
            );
            let mut res = http::Response::new(PikkuBody::Sse(Box::new(body)));
            app.sse.apply_headers(res.headers_mut());
            res
        }
        Ok(Some(Step::Json(Ok(bytes)))) => {
            let mut res = http::Response::new(PikkuBody::from(bytes));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        }
        Ok(Some(Step::Json(Err(e)) | Step::Fail(e))) => {
            if e.status().is_server_error() {
                tracing::error!(parent: &span, error = %e, "function failed");
            }
            e.to_response()
        }
        Ok(Some(Step::Frame(_)) | None) => {
            PikkuError::internal("handler produced no response").to_response()
        }
        Err(panic) => {
            app.metrics.panic();
            tracing::error!(parent: &span, panic = %sse::panic_message(&panic), "function panicked");
            PikkuError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal server error",
            )
            .to_response()
        }
    }
}

impl ResponseKind {
    /// Whether the route may answer with an event stream.
    pub fn may_stream(self) -> bool {
        matches!(self, ResponseKind::Stream | ResponseKind::Either)
    }
}
