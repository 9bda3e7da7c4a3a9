//! [`Pikku`]: an app's services, routes and settings, mounted on an axum [`Router`].

use std::any::TypeId;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::client_ts::{self, TsClientConfig, TsClientError};
use crate::cors::CorsConfig;
use crate::dispatch::{self, AppState};
use crate::error::PikkuError;
use crate::input::RawInput;
use crate::limits::{Limits, StreamLimiter};
use crate::metrics::Metrics;
use crate::openapi::{self, OpenApiConfig};
use crate::registry::{self, Method, RouteDef, StartupError};
use crate::session::{ErasedSessions, SessionService};
use crate::sse::SseConfig;

/// The command-line flag that writes the TypeScript client: see [`Pikku::handle_cli_args`].
pub const EMIT_TS_CLIENT_FLAG: &str = "--emit-ts-client";
const EMIT_TS_CLIENT_FLAG_EQ: &str = "--emit-ts-client=";

/// Default request body limit (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// An app: its services, the routes to serve, and how to serve them.
///
/// ```no_run
/// # use pikku::Pikku;
/// # struct Services;
/// # async fn run() -> std::io::Result<()> {
/// let pikku = Pikku::new(Services);              // every #[pikku_func] taking &Services
/// let shutdown = pikku.shutdown_handle();
/// let app = axum::Router::new()
///     .nest("/api", pikku.router())               // nests and merges like any Router
///     .route("/health", axum::routing::get(|| async { "ok" }));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// pikku::serve(listener, app, shutdown).await
/// # }
/// ```
pub struct Pikku<S> {
    services: Arc<S>,
    routes: Vec<&'static RouteDef>,
    explicit: bool,
    sse: SseConfig,
    sessions: Option<Arc<dyn ErasedSessions>>,
    shutdown: Shutdown,
    body_limit: usize,
    limits: Limits,
    metrics: Metrics,
    openapi: OpenApiConfig,
    cors: CorsConfig,
}

impl<S: Send + Sync + 'static> Pikku<S> {
    /// An app serving every `#[pikku_func]` in the binary whose services type is `S`.
    ///
    /// Logs (`tracing`, target `pikku::mount`) every route it mounts (`info`), every declared
    /// function it leaves out, naming both services types (`info`, or `warn` when the two
    /// types have the same name in different modules), and a `warn` pointing to the README's
    /// "Explicit registration" when it mounts none. SSE settings start from
    /// [`SseConfig::from_env`].
    pub fn new(services: S) -> Self {
        let routes = registry::select_for::<S>(registry::all_routes());
        Self::build(Arc::new(services), routes, false)
    }

    /// An app serving exactly `routes` (see [`routes!`](crate::routes)). Use it when the
    /// functions live in a library crate the binary does not otherwise reference: the linker
    /// may then drop that crate's `inventory` submissions, and `new` would not see them.
    pub fn with_routes(services: S, routes: Vec<&'static RouteDef>) -> Self {
        Self::build(Arc::new(services), routes, true)
    }

    fn build(services: Arc<S>, routes: Vec<&'static RouteDef>, explicit: bool) -> Self {
        Self {
            services,
            routes,
            explicit,
            sse: SseConfig::from_env(),
            sessions: None,
            shutdown: Shutdown::default(),
            body_limit: DEFAULT_BODY_LIMIT,
            limits: Limits::default(),
            metrics: Metrics::default(),
            openapi: OpenApiConfig::default(),
            cors: CorsConfig::new(),
        }
    }

    /// Sets the SSE behaviour (heartbeat, extra headers, retry hint).
    pub fn sse(mut self, cfg: SseConfig) -> Self {
        self.sse = cfg;
        self
    }

    /// Sets the session service that finds each request's session.
    pub fn sessions<T: SessionService>(mut self, sessions: T) -> Self {
        self.sessions = Some(Arc::new(sessions));
        self
    }

    /// Sets the request body limit in bytes (413 beyond it).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Caps concurrent streams (global, per client IP, per session).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The app's runtime counters.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Sets the OpenAPI document's `info` and where it and the docs page are served (by
    /// default `/openapi.json` and `/docs`; see [`OpenApiConfig`]).
    pub fn openapi(mut self, cfg: OpenApiConfig) -> Self {
        self.openapi = cfg;
        self
    }

    /// Lets browser pages of the listed origins call the app (CORS, answered by tower-http's
    /// `CorsLayer` before routing), and trusts them in the CSRF check of cookie sessions.
    /// By default no other origin is allowed.
    pub fn cors(mut self, cfg: CorsConfig) -> Self {
        self.cors = cfg;
        self
    }

    /// Uses `shutdown` as the app's shutdown signal (e.g. one shared by several apps).
    pub fn with_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The app's shutdown signal: triggering it ends every open stream.
    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// The app's services.
    pub fn services(&self) -> &Arc<S> {
        &self.services
    }

    /// The routes this app serves.
    pub fn routes(&self) -> &[&'static RouteDef] {
        &self.routes
    }

    /// The TypeScript client of this app's routes (see [`client_ts`](crate::client_ts)); its
    /// default base URL is the first of the OpenAPI config's `servers`, if any.
    pub fn typescript_client(&self) -> Result<String, TsClientError> {
        client_ts::typescript(
            &self.routes,
            &TsClientConfig {
                default_base_url: self.openapi.servers.first().cloned().unwrap_or_default(),
            },
        )
    }

    /// Runs Pikku's command-line commands, if the process was started with one; call it in
    /// `main` before serving, and exit when it returns `Ok(true)`:
    ///
    /// - `--emit-ts-client <path>` (or `--emit-ts-client=<path>`): writes the TypeScript
    ///   client of the app's routes ([`typescript_client`](Self::typescript_client)) to
    ///   `path`.
    ///
    /// Other arguments are left to the app. Returns `Ok(false)` when there was no command.
    ///
    /// ```no_run
    /// # struct Services;
    /// # fn main() -> std::io::Result<()> {
    /// let pikku = pikku::Pikku::new(Services);
    /// if pikku.handle_cli_args()? {
    ///     return Ok(()); // e.g. `cargo run -- --emit-ts-client web/pikku-fetch.gen.ts`
    /// }
    /// // ... serve
    /// # Ok(()) }
    /// ```
    pub fn handle_cli_args(&self) -> std::io::Result<bool> {
        self.handle_cli_args_from(std::env::args_os().skip(1))
    }

    /// [`handle_cli_args`](Self::handle_cli_args) with the given arguments (without the
    /// program name).
    pub fn handle_cli_args_from<A: Into<std::ffi::OsString>>(
        &self,
        args: impl IntoIterator<Item = A>,
    ) -> std::io::Result<bool> {
        let mut args = args.into_iter().map(Into::into);
        let mut target: Option<std::path::PathBuf> = None;
        while let Some(arg) = args.next() {
            let text = arg.to_string_lossy();
            if text == EMIT_TS_CLIENT_FLAG {
                let path = args.next().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{EMIT_TS_CLIENT_FLAG} needs a path"),
                    )
                })?;
                target = Some(path.into());
            } else if let Some(path) = text.strip_prefix(EMIT_TS_CLIENT_FLAG_EQ) {
                target = Some(path.into());
            }
        }
        let Some(path) = target else {
            return Ok(false);
        };
        let ts = self.typescript_client().map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, ts)?;
        eprintln!("pikku: wrote the TypeScript client to {}", path.display());
        Ok(true)
    }

    /// Checks the routes (duplicates, path params, sessions) and mounts them on a `Router`.
    pub fn try_router(self) -> Result<Router, StartupError> {
        registry::validate(&self.routes)?;
        openapi::check(&self.routes, &self.openapi)?;
        for r in &self.routes {
            if self.explicit && (r.services_type)() != TypeId::of::<S>() {
                return Err(StartupError::ServicesTypeMismatch {
                    function: r.fn_name,
                    at: registry::location(r),
                    expected: (r.services_type_name)(),
                    app: std::any::type_name::<S>(),
                });
            }
            if r.auth {
                let Some(sessions) = &self.sessions else {
                    return Err(StartupError::NoSessionService {
                        function: r.fn_name,
                        at: registry::location(r),
                    });
                };
                if r.session_type
                    .is_some_and(|t| t() != sessions.session_type())
                {
                    return Err(StartupError::SessionTypeMismatch {
                        function: r.fn_name,
                        at: registry::location(r),
                    });
                }
            }
        }
        let mut state = AppState {
            services: self.services,
            services_type: TypeId::of::<S>(),
            sse: self.sse,
            sessions: self.sessions,
            shutdown: self.shutdown.0.clone(),
            body_limit: self.body_limit,
            metrics: self.metrics,
            stream_limiter: StreamLimiter::new(self.limits),
            cors: self.cors.clone(),
            rate_limiters: Default::default(),
        };
        for r in &self.routes {
            state.add_rate_limit(r);
        }
        let state = Arc::new(state);
        let router = mount(state, &self.routes);
        let router = openapi::mount(router, &self.routes, &self.openapi);
        // Outermost, so preflights are answered before routing (and 404/405 carry the headers).
        Ok(match self.cors.layer() {
            Some(cors) => router.layer(cors),
            None => router,
        })
    }

    /// Like [`try_router`](Self::try_router), but panics with the startup error's message.
    ///
    /// # Panics
    /// At startup, when two functions share a method and route, a route's `{param}` is not
    /// in its input type, or auth routes have no session service.
    pub fn router(self) -> Router {
        match self.try_router() {
            Ok(r) => r,
            Err(e) => panic!("pikku: {e}"),
        }
    }
}

fn mount(state: Arc<AppState>, routes: &[&'static RouteDef]) -> Router {
    debug_assert!(
        routes
            .iter()
            .all(|r| (r.services_type)() == state.services_type)
    );
    let mut by_path: BTreeMap<&'static str, (MethodRouter, Vec<&'static str>)> = BTreeMap::new();
    for &route in routes {
        let st = state.clone();
        let handler = move |req: Request| {
            let st = st.clone();
            async move { adapt(&st, route, req).await }
        };
        let (mr, methods) = by_path
            .entry(route.path)
            .or_insert_with(|| (MethodRouter::new(), Vec::new()));
        *mr = std::mem::take(mr).on(filter(route.method), handler);
        methods.push(route.method.as_str());
    }
    let mut router = Router::new();
    for (path, (mr, methods)) in by_path {
        let allow = methods.join(", ");
        let not_allowed = move || {
            let allow = allow.clone();
            async move {
                let mut res = PikkuError::method_not_allowed(format!(
                    "method not allowed; this route accepts {}",
                    allow.to_uppercase()
                ))
                .into_response();
                if let Ok(v) = http::HeaderValue::try_from(allow.to_uppercase()) {
                    res.headers_mut().insert(http::header::ALLOW, v);
                }
                res
            }
        };
        router = router.route(path, mr.fallback(not_allowed));
    }
    router
        .fallback(|| async { PikkuError::not_found("no route matches this path").into_response() })
}

fn filter(m: Method) -> MethodFilter {
    match m {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Put => MethodFilter::PUT,
        Method::Patch => MethodFilter::PATCH,
        Method::Delete => MethodFilter::DELETE,
    }
}

/// The axum adapter: turns an axum request into the framework-independent call.
async fn adapt(state: &AppState, route: &'static RouteDef, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    // HTTP/2 carries the host as `:authority`, not `Host`; the CSRF same-origin check reads
    // `Host`.
    if !parts.headers.contains_key(http::header::HOST) {
        if let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::try_from(a.as_str()).ok())
        {
            parts.headers.insert(http::header::HOST, host);
        }
    }
    let path = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(params) => params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        Err(_) => {
            return PikkuError::bad_request("path params are not valid UTF-8").into_response();
        }
    };
    let body = if route.method.has_body() {
        match axum::body::to_bytes(body, state.body_limit).await {
            Ok(b) => b,
            Err(e) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                return if too_large {
                    PikkuError::payload_too_large(format!(
                        "request body is larger than {} bytes",
                        state.body_limit
                    ))
                } else {
                    PikkuError::bad_request("could not read the request body")
                }
                .into_response();
            }
        }
    } else {
        Bytes::new()
    };
    let raw = RawInput {
        path,
        query: parts.uri.query().map(str::to_owned),
        body,
    };
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    dispatch::handle(state, route, parts.headers, raw, peer)
        .await
        .map(axum::body::Body::new)
}

/// The shutdown signal of an app: trigger it (or send SIGTERM/ctrl-c to [`serve`](crate::serve)) and every
/// open stream ends with a final `event: shutdown` carrying a `retry:` hint.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(CancellationToken);

impl Shutdown {
    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.0.cancel();
    }
    /// Whether shutdown has started.
    pub fn is_triggered(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Resolves when shutdown starts.
    pub async fn triggered(&self) {
        self.0.cancelled().await
    }
}
