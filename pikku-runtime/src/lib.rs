//! # Pikku for Rust
//!
//! Typed real-time streams over HTTP from one attribute. Write a generator-style async
//! function, annotate it with [`#[pikku_func]`](macro@pikku_func), and [`Pikku::new`] mounts it
//! on an axum `Router` as a Server-Sent Events endpoint (or a JSON one) with correct framing,
//! ids, heartbeats, error events and cleanup when the client goes away.
//!
//! ```
//! use pikku::prelude::*;
//! use std::time::Duration;
//!
//! pub struct Services;
//!
//! #[derive(Serialize, JsonSchema)]
//! pub struct Update { count: u64 }
//!
//! /// Stream live updates
//! #[pikku_func(route = "/stream/updates", response = "stream", auth = false, tags = ["streaming"])]
//! async fn stream_updates(_services: &Services) -> impl Stream<Item = Update> {
//!     stream! {
//!         for count in 1..=3 {
//!             yield Update { count };
//!             tokio::time::sleep(Duration::from_millis(10)).await;
//!         }
//!     }
//! }
//!
//! let router: axum::Router = Pikku::new(Services).router();
//! ```
//!
//! ## Function signatures
//!
//! `async fn name(services: &S [, input: I] [, session: &U] [, ctx: &Context]) -> R`
//!
//! - `services: &S` — the app's services, always first (Pikku's `services`).
//! - `input: I` — by value; `I: Deserialize + JsonSchema`, filled from path params, query and
//!   (for POST/PUT/PATCH) the JSON body. Omit it when the function takes no input.
//! - `session: &U` — makes it a session function (Pikku's `pikkuFunc`): it needs `auth = true`
//!   (the default) and receives the session the app's [`SessionService`] found.
//! - `ctx: &Context` — request id, `Last-Event-ID`, headers, shutdown signal.
//!
//! `R` is, by `response`:
//! - `"json"` (default): `T` or `Result<T, E>` with `T: Serialize + JsonSchema`,
//!   `E: Into<PikkuError>`;
//! - `"stream"`: `impl Stream<Item = X>` or `Result<impl Stream<Item = X>, E>`, where `X` is
//!   `T`, `Event<T>`, `Result<T, E>` or `Result<Event<T>, E>`;
//! - [`Reply<T, impl Stream<Item = X>>`](Reply) (or a `Result` of it): JSON or stream, chosen
//!   at run time.
//!
//! ## OpenAPI
//!
//! Every app also serves an OpenAPI 3.1 document of its routes at `/openapi.json` and a
//! self-contained docs page at `/docs`, where stream operations can be connected to live; see
//! [`openapi`] and [`Pikku::openapi`] (feature `openapi`).
//!
//! ## Layers
//!
//! The crate is built in layers; a module imports only from its own layer's lower modules and
//! from the layers below it, never from above:
//!
//! 1. **Foundation**: [`error`] (the error type and its HTTP body), [`metrics`] (counters).
//! 2. **Wire format**: [`sse`] (an event, its encoding, the reserved events and their data).
//! 3. **Schemas and input**: `schema` (the JSON Schema generator and lookups), [`input`]
//!    (reading a function's input off a request).
//! 4. **Routes and calls**: [`context`] (what a function sees of its request), [`registry`]
//!    (the route descriptors `#[pikku_func]` emits, collected with `inventory`), [`call`]
//!    (the protocol between the runtime and generated handlers), [`Reply`].
//! 5. **Sessions and request policies**: [`session`], [`cors`], [`csrf`], [`content_type`].
//! 6. **Serving** ([`serving`]): limits, the request pipeline and the response body, on `http`
//!    types only.
//! 7. **Startup validation**: one check of all routes and settings ([`StartupError`]).
//! 8. **Describing**: [`openapi`] (the document and the docs page), [`client_ts`] (the
//!    TypeScript client) and `prometheus` (the counters as Prometheus text); they read route
//!    descriptors and counters and never import serving or axum.
//! 9. **The app**: [`Pikku`] (the axum router, the actix-web configuration, `/docs`, the
//!    command line), [`server`] and `lambda` (the router as an AWS Lambda function, feature
//!    `lambda`).
//!
//! Beside them, each on the layers it needs: [`event_hub`] (publish/subscribe with resume) and
//! `client` (the typed Rust client, feature `client`).
//!
//! ## Features
//!
//! - `openapi` (default): `/openapi.json`, `/docs` and [`openapi::document`].
//! - `ts-client` (default): the TypeScript client generator and `--emit-ts-client`.
//! - `jwt`: `session::JwtSessions`, signed session tokens.
//! - `redis`, `nats`, `postgres`: event hub backends (the embedded hub needs no feature).
//! - `client`: the typed Rust client (`f::call(&client, input)` beside every function).
//! - `tls`: HTTPS in [`serve`] (rustls; HTTP/2 and HTTP/1.1 by ALPN).
//! - `actix`: the actix-web adapter, `Pikku::actix_config` for `App::configure` (the same
//!   routes, pipeline and startup check as the axum router).
//! - `prometheus`: `GET /metrics` in the Prometheus text format
//!   (`Pikku::metrics_endpoint`, the `prometheus` module).
//! - `lambda`: `lambda::run`, the app as an AWS Lambda function with streamed responses.
//!
//! Without default features the core (routes, SSE, sessions through your own
//! [`SessionService`], limits, the embedded hub) builds on its own.
//!
//! ## Security defaults
//!
//! [`serve`] closes connections that do not send a request head in time (and idle keep-alive
//! connections); JSON-body routes answer 415 to bodies not declared as JSON; unsafe requests
//! authenticated by cookie (and logins) from foreign origins are refused ([`csrf`]); CORS is
//! off until [`Pikku::cors`] lists origins ([`cors`]); session streams end when their session
//! expires or is revoked ([`session::Revocations`]). The repository's `docs/security.md` has
//! the threat model and the test of each defence.

#![warn(missing_docs)]

// 1. Foundation
pub mod error;
pub mod metrics;
// 2. Wire format
pub mod sse;
// 3. Schemas and input
pub mod input;
mod schema;
// 4. Routes and calls
pub mod call;
#[doc(hidden)]
pub mod checks;
pub mod context;
// The generic half of every generated handler (used through `__private`).
#[doc(hidden)]
pub mod invoke;
pub mod registry;
mod reply;
// 5. Sessions and request policies
pub mod content_type;
pub mod cors;
pub mod csrf;
pub mod session;
// 6. Serving
pub mod serving;
// 7. Startup validation
mod startup;
// 8. Describing
#[cfg(feature = "ts-client")]
pub mod client_ts;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "prometheus")]
pub mod prometheus;
// 9. The app
mod app;
pub mod server;
// Beside the layers
#[cfg(feature = "client")]
pub mod client;
pub mod event_hub;

/// The `actix-web` crate of the actix-web adapter (feature `actix`), so apps name the same
/// version.
#[cfg(feature = "actix")]
pub use actix_web;
#[cfg(feature = "ts-client")]
pub use app::EMIT_TS_CLIENT_FLAG;
#[cfg(feature = "lambda")]
pub use app::lambda;
pub use app::{DEFAULT_BODY_LIMIT, Pikku};
pub use async_stream::{stream, try_stream};
/// The `axum` crate Pikku mounts on (so apps name the same version).
pub use axum;
pub use context::{Context, LastEventId};
pub use cors::CorsConfig;
pub use error::{PikkuError, Result};
pub use event_hub::{EventHub, EventHubExt, MemoryHub};
/// The `http` crate of Pikku's types (headers, status codes), e.g. `pikku::http::header::SET_COOKIE`.
pub use http;
pub use metrics::{Metrics, MetricsSnapshot, RouteMetrics};
#[cfg(feature = "openapi")]
pub use openapi::OpenApiConfig;
pub use pikku_macros::pikku_func;
pub use registry::{Method, ResponseKind, RouteDef};
pub use reply::Reply;
pub use server::{
    CONNECTION_BUFFER_MAX, DEFAULT_SHUTDOWN_DEADLINE, ServeConfig, serve, serve_with,
    serve_with_deadline,
};
#[cfg(feature = "tls")]
pub use server::{TlsConfig, TlsError};
pub use serving::{
    ForwardedHeader, Limits, Shutdown, SseConfig, TrustedProxies, TrustedProxiesError,
};
pub use session::SessionService;
pub use sse::{Event, Frame};
pub use startup::StartupError;

/// Without the `client` feature, `#[pikku_func]`'s client calls expand to nothing.
#[cfg(not(feature = "client"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __pikku_client_methods {
    ($($anything:tt)*) => {};
}

/// What a module declaring Pikku functions usually needs.
pub mod prelude {
    pub use crate::{
        Context, Event, EventHub, EventHubExt, Frame, LastEventId, Pikku, PikkuError, Reply,
        SseConfig, pikku_func, stream, try_stream,
    };
    pub use futures_util::{Stream, StreamExt};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Used by the code `#[pikku_func]` generates. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::{Call, Steps};
    pub use crate::checks::schema_of;
    pub use crate::input::InputPlan;
    pub use crate::invoke::{
        Ctx, Data, Either, Evented, Fallible, FallibleEither, Framed, In, Plain, Ses, TryItem,
        check, prepare, run_json, run_stream,
    };
    pub use crate::registry::{
        Method, RateLimit, RatePer, RegisteredRoute, ResponseKind, RouteDef,
    };
    pub use inventory;
    pub use serde::Serialize;
    pub use serde::de::DeserializeOwned;

    /// The typed client calls of a function (`f::call`, ...): see [`crate::client`]. Expands
    /// to nothing without the `client` feature, so servers pay nothing for it.
    pub use crate::__pikku_client_methods as client_methods;
    /// The derive that adds a route struct's `impl` (see `#[pikku_func]`'s expansion).
    pub use pikku_macros::__PikkuRoute as RouteImpl;
    /// One path of `routes![...]`: its route, refusing a function not visible there.
    pub use pikku_macros::__route_of as route_of;
    pub use std::sync::OnceLock;

    /// `TypeId::of`, as a fn pointer for descriptors.
    pub fn type_id<T: 'static>() -> std::any::TypeId {
        std::any::TypeId::of::<T>()
    }
    /// `type_name`, as a fn pointer for descriptors.
    pub fn type_name<T: ?Sized>() -> &'static str {
        std::any::type_name::<T>()
    }
}
