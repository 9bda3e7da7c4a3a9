//! The route descriptors `#[pikku_func]` emits, and how they are collected.
//!
//! Each annotated function becomes one `static` [`RouteDef`] and one `inventory::submit!` of
//! it, so [`Pikku::new`](crate::Pikku::new) finds every route with no wiring. The descriptor is
//! also reachable by name (`my_fn::route()`), for explicit registration with
//! [`routes!`](crate::routes) when a crate's submissions would otherwise be dropped by the
//! linker (see the README, "Explicit registration").

use std::any::TypeId;
use std::fmt;
use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::call::{Call, Steps};
use crate::input::InputPlan;

/// HTTP methods a Pikku function can be declared on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
}

impl Method {
    /// The method as `http` knows it.
    pub fn as_http(self) -> http::Method {
        match self {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        }
    }
    /// Lower-case name, as written in the attribute and in OpenAPI.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Put => "put",
            Method::Patch => "patch",
            Method::Delete => "delete",
        }
    }
    /// Whether the JSON body contributes to the input.
    pub fn has_body(self) -> bool {
        !matches!(self, Method::Get | Method::Delete)
    }
}

/// What a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKind {
    /// `application/json`
    Json,
    /// `text/event-stream`
    Stream,
    /// Either, decided at run time (a function returning [`Reply`](crate::Reply)).
    Either,
}

/// A per-route request rate: `count` requests per `per`, per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period.
    pub count: u32,
    /// The period.
    pub per: RatePer,
}

/// The period of a [`RateLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePer {
    /// Per second (`"10/s"`).
    Second,
    /// Per minute (`"10/m"`).
    Minute,
    /// Per hour (`"10/h"`).
    Hour,
}

/// Builds a JSON schema of some type into a generator (component schemas go to its `$defs`).
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema function of `T`, for descriptors.
pub fn schema_of<T: JsonSchema>(g: &mut SchemaGenerator) -> Schema {
    g.subschema_for::<T>()
}

/// Everything known about one declared function. Emitted by `#[pikku_func]`; not meant to be
/// written by hand, but readable by tools (OpenAPI, client generators).
pub struct RouteDef {
    /// The HTTP method.
    pub method: Method,
    /// The route, with `{param}` segments.
    pub path: &'static str,
    /// The `{param}` names of `path`, in order.
    pub path_params: &'static [&'static str],
    /// The Rust function's name.
    pub fn_name: &'static str,
    /// OpenAPI `operationId` (default: the function's name).
    pub operation_id: &'static str,
    /// Short summary (default: first line of the doc comment).
    pub summary: Option<&'static str>,
    /// Long description (default: the rest of the doc comment).
    pub description: Option<&'static str>,
    /// OpenAPI tags.
    pub tags: &'static [&'static str],
    /// Whether a valid session is required.
    pub auth: bool,
    /// JSON, stream, or either.
    pub response: ResponseKind,
    /// Per-route heartbeat override in milliseconds (`Some(0)`: none).
    pub heartbeat_ms: Option<u64>,
    /// Per-route request rate limit (`rate_limit = "10/s"`).
    pub rate_limit: Option<RateLimit>,
    /// The services type the function takes.
    pub services_type: fn() -> TypeId,
    /// Its name, for error messages.
    pub services_type_name: fn() -> &'static str,
    /// The session type, for session functions.
    pub session_type: Option<fn() -> TypeId>,
    /// Schema of the input type, if the function takes one.
    pub input_schema: Option<SchemaFn>,
    /// Schema of the JSON output (json / either routes).
    pub output_schema: Option<SchemaFn>,
    /// Schema of one stream item's data (stream / either routes).
    pub item_schema: Option<SchemaFn>,
    /// Whether stream items may be errors (`Result` items).
    pub fallible_items: bool,
    /// The generated handler.
    pub handler: fn(Call) -> Steps,
    /// Where it was declared (`file!()`, `line!()`), for startup errors.
    pub source: (&'static str, u32),
    #[doc(hidden)]
    pub __plan: OnceLock<InputPlan>,
}

impl RouteDef {
    /// How the input is read off a request: built once, from the input's schema (one
    /// non-generic function for every route, rather than one per input type).
    pub(crate) fn plan(&self) -> &InputPlan {
        self.__plan.get_or_init(|| {
            self.input_schema
                .map(InputPlan::from_schema_fn)
                .unwrap_or_default()
        })
    }
}

impl fmt::Debug for RouteDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteDef")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("fn_name", &self.fn_name)
            .field("auth", &self.auth)
            .field("response", &self.response)
            .finish_non_exhaustive()
    }
}

#[cfg(any(feature = "openapi", feature = "ts-client"))]
/// The schemas one route documents, generated into one generator (its definitions become
/// shared components): the input, the JSON output (json/either routes) and the stream item
/// (stream/either routes).
#[derive(Debug, Clone)]
pub(crate) struct RouteSchemas {
    pub input: Option<serde_json::Value>,
    pub output: Option<serde_json::Value>,
    pub item: Option<serde_json::Value>,
}

#[cfg(any(feature = "openapi", feature = "ts-client"))]
impl RouteSchemas {
    pub(crate) fn generate(route: &RouteDef, generator: &mut SchemaGenerator) -> Self {
        let mut gen_opt = |f: Option<SchemaFn>| f.map(|f| f(generator).to_value());
        Self {
            input: gen_opt(route.input_schema),
            output: gen_opt(
                route
                    .output_schema
                    .filter(|_| route.response != ResponseKind::Stream),
            ),
            item: gen_opt(
                route
                    .item_schema
                    .filter(|_| route.response != ResponseKind::Json),
            ),
        }
    }
}

/// What `inventory` collects: a pointer to a route's static descriptor.
pub struct RegisteredRoute(pub &'static RouteDef);

inventory::collect!(RegisteredRoute);

/// Every route declared with `#[pikku_func]` in the binary, in a stable order (path, method).
pub fn all_routes() -> Vec<&'static RouteDef> {
    let mut routes: Vec<_> = inventory::iter::<RegisteredRoute>
        .into_iter()
        .map(|r| r.0)
        .collect();
    routes.sort_by(|a, b| (a.path, a.method).cmp(&(b.path, b.method)));
    routes
}

/// Where the README explains explicit registration; named by the startup warning when an app
/// mounts no route.
pub(crate) const EXPLICIT_REGISTRATION_DOCS: &str =
    "README.md, \"Registration and mounting\" > \"Explicit registration\"";

/// The routes of `all` whose services type is `S` (by `TypeId`), logging the choice: every
/// mounted route at `info`, every other declared function with both services types (`info`,
/// or `warn` when the two types share their last path segment, which is usually a mistake),
/// and a `warn` naming the README's "Explicit registration" section when nothing is mounted.
pub(crate) fn select_for<S: 'static>(all: Vec<&'static RouteDef>) -> Vec<&'static RouteDef> {
    let want = TypeId::of::<S>();
    let app_type = std::any::type_name::<S>();
    let declared = all.len();
    let mut mounted = Vec::new();
    for r in all {
        if (r.services_type)() == want {
            tracing::info!(
                target: "pikku::mount",
                "mounted {} {} -> `{}` ({})",
                r.method.as_str().to_uppercase(),
                r.path,
                r.fn_name,
                location(r)
            );
            mounted.push(r);
            continue;
        }
        let theirs = (r.services_type_name)();
        let msg = format!(
            "not mounted: `{}` ({}, {} {}) takes services `&{theirs}`, but this app was built with `Pikku::new({app_type})`; if it belongs to this app, change its first parameter to `&{app_type}`",
            r.fn_name,
            location(r),
            r.method.as_str().to_uppercase(),
            r.path,
        );
        if last_segment(theirs) == last_segment(app_type) {
            tracing::warn!(target: "pikku::mount", "{msg}");
        } else {
            tracing::info!(target: "pikku::mount", "{msg}");
        }
    }
    if mounted.is_empty() {
        tracing::warn!(
            target: "pikku::mount",
            "no route mounted for services `{app_type}` ({declared} `#[pikku_func]` function(s) declared in this binary, none taking `&{app_type}`); if your functions live in a library crate, the linker may have dropped them: list them with `Pikku::with_routes(services, pikku::routes![...])` (see {EXPLICIT_REGISTRATION_DOCS})"
        );
    }
    mounted
}

/// `a::b::Services` -> `Services` (generic arguments kept).
fn last_segment(type_name: &str) -> &str {
    let head = type_name.split('<').next().unwrap_or(type_name);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    &type_name[start..]
}

/// A list of routes by function name, for explicit registration.
///
/// Each path names a `#[pikku_func]` function that is visible where the macro is used (a
/// private function of another module is refused, at its name, with the fix: make it `pub` or
/// `pub(crate)`).
///
/// ```ignore
/// let app = Pikku::with_routes(services, pikku::routes![stream_updates, api::get_data]);
/// ```
#[macro_export]
macro_rules! routes {
    ($($($seg:ident)::+),* $(,)?) => {
        ::std::vec![$($crate::__private::route_of!($($seg)::+)),*]
    };
}

/// Where a route is declared, `file:line`, for startup errors.
pub(crate) fn location(r: &RouteDef) -> String {
    format!("{}:{}", r.source.0, r.source.1)
}

/// A JSON route without input or handler, for unit tests of route readers.
#[cfg(test)]
#[cfg_attr(
    not(any(feature = "openapi", feature = "ts-client", feature = "client")),
    allow(dead_code)
)]
pub(crate) fn test_route(method: Method, path: &'static str, fn_name: &'static str) -> RouteDef {
    RouteDef {
        method,
        path,
        path_params: &[],
        fn_name,
        operation_id: fn_name,
        summary: None,
        description: None,
        tags: &[],
        auth: false,
        response: ResponseKind::Json,
        heartbeat_ms: None,
        rate_limit: None,
        services_type: TypeId::of::<()>,
        services_type_name: std::any::type_name::<()>,
        session_type: None,
        input_schema: None,
        output_schema: None,
        item_schema: None,
        fallible_items: false,
        handler: |_| unreachable!("test routes are not served"),
        source: ("test.rs", 1),
        __plan: OnceLock::new(),
    }
}
