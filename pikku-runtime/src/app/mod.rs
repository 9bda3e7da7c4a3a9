//! [`Pikku`]: an app's services, routes and settings, mounted on an axum [`Router`].

use std::any::TypeId;
use std::sync::Arc;

use axum::Router;

use crate::cors::CorsConfig;
use crate::metrics::Metrics;
#[cfg(feature = "openapi")]
use crate::openapi::OpenApiConfig;
use crate::registry::{self, RouteDef};
use crate::serving::limits::StreamLimiter;
use crate::serving::pipeline::AppState;
use crate::serving::{Limits, Shutdown, SseConfig, TrustedProxies};
use crate::session::{ErasedSessions, SessionService};
use crate::startup::{self, AppShape, StartupError};

#[cfg(feature = "actix")]
mod actix;
#[cfg(feature = "ts-client")]
mod cli;
#[cfg(feature = "openapi")]
mod docs;
#[cfg(feature = "lambda")]
pub mod lambda;
#[cfg(feature = "prometheus")]
mod metrics_route;
mod router;

#[cfg(feature = "ts-client")]
pub use cli::EMIT_TS_CLIENT_FLAG;

/// Default request body limit (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// A checked app, ready for an adapter to mount: the shared state, the routes and the
/// settings the adapter applies itself.
struct Prepared {
    state: Arc<AppState>,
    routes: Vec<&'static RouteDef>,
    #[cfg(feature = "openapi")]
    openapi: OpenApiConfig,
    // Each adapter applies it its own way (around the router, around each answer).
    cors: CorsConfig,
    /// `GET /metrics` (axum only for now), with the hub whose gauges it adds.
    #[cfg(feature = "prometheus")]
    metrics_endpoint: Option<(String, Option<Arc<dyn crate::event_hub::EventHub>>)>,
}

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
    trusted_proxies: TrustedProxies,
    metrics: Metrics,
    #[cfg(feature = "openapi")]
    openapi: OpenApiConfig,
    cors: CorsConfig,
    /// Where `GET` serves the Prometheus exposition, and the hub it also reports on.
    #[cfg(feature = "prometheus")]
    metrics_endpoint: Option<(String, Option<Arc<dyn crate::event_hub::EventHub>>)>,
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
            trusted_proxies: TrustedProxies::from_env(),
            metrics: Metrics::default(),
            #[cfg(feature = "openapi")]
            openapi: OpenApiConfig::default(),
            cors: CorsConfig::new(),
            #[cfg(feature = "prometheus")]
            metrics_endpoint: None,
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

    /// The reverse proxies whose `X-Forwarded-For` (or, by
    /// [`TrustedProxies::header`], `Forwarded`) names the client, for the per-IP stream caps
    /// and `rate_limit`s (behind a proxy every connection is the proxy's). Default:
    /// [`TrustedProxies::from_env`] (`PIKKU_TRUSTED_PROXIES`,
    /// `PIKKU_TRUSTED_PROXIES_HEADER`), none when unset.
    ///
    /// ```
    /// # struct Services;
    /// use pikku::{Pikku, TrustedProxies};
    /// // nginx on this host forwards every request.
    /// let pikku = Pikku::new(Services).trusted_proxies(TrustedProxies::parse("127.0.0.1, ::1")?);
    /// # Ok::<(), pikku::TrustedProxiesError>(())
    /// ```
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The app's runtime counters.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// Serves the app's counters at `GET path` in the Prometheus text format (off by
    /// default; see [`prometheus`](crate::prometheus) for the metrics). The path is checked
    /// at startup like the docs paths: no route may use it.
    ///
    /// ```
    /// # struct Services;
    /// let router = pikku::Pikku::new(Services).metrics_endpoint("/metrics").router();
    /// ```
    #[cfg(feature = "prometheus")]
    pub fn metrics_endpoint(mut self, path: impl Into<String>) -> Self {
        let hub = self.metrics_endpoint.take().and_then(|(_, hub)| hub);
        self.metrics_endpoint = Some((path.into(), hub));
        self
    }

    /// Also reports `hub`'s live subscriptions and health on the metrics endpoint (which
    /// [`metrics_endpoint`](Self::metrics_endpoint) turns on; `/metrics` when not set).
    #[cfg(feature = "prometheus")]
    pub fn metrics_hub(mut self, hub: Arc<dyn crate::event_hub::EventHub>) -> Self {
        let path = self
            .metrics_endpoint
            .take()
            .map_or_else(|| "/metrics".to_owned(), |(path, _)| path);
        self.metrics_endpoint = Some((path, Some(hub)));
        self
    }

    /// Sets the OpenAPI document's `info` and where it and the docs page are served (by
    /// default `/openapi.json` and `/docs`; see [`OpenApiConfig`]).
    #[cfg(feature = "openapi")]
    pub fn openapi(mut self, cfg: OpenApiConfig) -> Self {
        self.openapi = cfg;
        self
    }

    /// Lets browser pages of the listed origins call the app (CORS, answered by tower-http's
    /// `CorsLayer` before routing, or around each answer of the actix-web adapter), and
    /// trusts them in the CSRF check of cookie sessions.
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

    /// Checks the routes (duplicates, path params, sessions) and mounts them on a `Router`.
    pub fn try_router(self) -> Result<Router, StartupError> {
        let Prepared {
            state,
            routes,
            #[cfg(feature = "openapi")]
            openapi,
            cors,
            #[cfg(feature = "prometheus")]
            metrics_endpoint,
        } = self.prepare()?;
        let router = router::mount(state.clone(), &routes);
        #[cfg(feature = "openapi")]
        let router = docs::mount(router, &routes, &openapi);
        #[cfg(feature = "prometheus")]
        let router = match metrics_endpoint {
            Some((path, hub)) => {
                let mut exporter = crate::prometheus::Exporter::new(state.metrics.clone());
                if let Some(hub) = hub {
                    exporter = exporter.with_hub(hub);
                }
                metrics_route::mount(router, &path, exporter)
            }
            None => router,
        };
        // Outermost, so preflights are answered before routing (and 404/405 carry the headers).
        Ok(match cors.layer() {
            Some(cors) => router.layer(cors),
            None => router,
        })
    }

    /// The startup check and the state every route shares: one step for every adapter, so
    /// axum and actix-web serve the same checked app.
    fn prepare(self) -> Result<Prepared, StartupError> {
        #[cfg_attr(
            not(any(feature = "openapi", feature = "prometheus")),
            allow(unused_mut)
        )]
        let mut reserved = Vec::new();
        #[cfg(feature = "prometheus")]
        if let Some((path, _)) = &self.metrics_endpoint {
            reserved.push(startup::ReservedPath {
                path,
                what: "metrics endpoint",
                setting: "`Pikku::metrics_endpoint`",
            });
        }
        #[cfg(feature = "openapi")]
        {
            let setting = "`OpenApiConfig`";
            if let Some(path) = &self.openapi.json_path {
                reserved.push(startup::ReservedPath {
                    path,
                    what: "OpenAPI document",
                    setting,
                });
            }
            if let Some(path) = &self.openapi.docs_path {
                reserved.push(startup::ReservedPath {
                    path,
                    what: "docs page",
                    setting,
                });
            }
        }
        let shape = AppShape {
            services: self
                .explicit
                .then(|| (TypeId::of::<S>(), std::any::type_name::<S>())),
            session_type: self.sessions.as_ref().map(|s| s.session_type()),
            reserved,
        };
        startup::check(&self.routes, &shape)?;
        let mut state = AppState {
            services: self.services,
            services_type: TypeId::of::<S>(),
            sse: self.sse,
            sessions: self.sessions,
            shutdown: self.shutdown.0.clone(),
            body_limit: self.body_limit,
            metrics: self.metrics.clone(),
            stream_limiter: StreamLimiter::new(self.limits),
            trusted_proxies: self.trusted_proxies,
            cors: self.cors.clone(),
            rate_limiters: Default::default(),
            route_metrics: Default::default(),
        };
        for r in &self.routes {
            state.add_rate_limit(r);
            state.add_route_metrics(r);
        }
        Ok(Prepared {
            state: Arc::new(state),
            routes: self.routes,
            #[cfg(feature = "openapi")]
            openapi: self.openapi,
            cors: self.cors,
            #[cfg(feature = "prometheus")]
            metrics_endpoint: self.metrics_endpoint,
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
