//! The route descriptors `#[pikku_func]` emits, how they are collected, and the startup checks.
//!
//! Each annotated function becomes one `static` [`RouteDef`] and one `inventory::submit!` of
//! it, so [`Pikku::new`](crate::Pikku::new) finds every route with no wiring. The descriptor is
//! also reachable by name (`my_fn::route()`), for explicit registration with
//! [`routes!`](crate::routes) when a crate's submissions would otherwise be dropped by the
//! linker (see the README, "Explicit registration").

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::dispatch::{Call, Steps};
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
    /// How the input is read off a request; built on first use.
    pub input_plan: Option<fn() -> InputPlan>,
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
    /// The input plan, built once.
    pub(crate) fn plan(&self) -> &InputPlan {
        self.__plan
            .get_or_init(|| self.input_plan.map(|f| f()).unwrap_or_default())
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
                at(r)
            );
            mounted.push(r);
            continue;
        }
        let theirs = (r.services_type_name)();
        let msg = format!(
            "not mounted: `{}` ({}, {} {}) takes services `&{theirs}`, but this app was built with `Pikku::new({app_type})`; if it belongs to this app, change its first parameter to `&{app_type}`",
            r.fn_name,
            at(r),
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

/// A problem found when mounting routes. Reported at startup, naming the declarations.
///
/// It prints (with `{}` and with `{:?}`) as one paragraph that names the function, where it is
/// declared and the fix, so `main() -> Result<(), Box<dyn std::error::Error>>` can
/// `pikku.try_router()?` and show a readable message.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartupError {
    /// Two functions on the same method and route.
    #[error(
        "two functions are declared on {method} {path}: `{first}` ({first_at}) and `{second}` ({second_at}); give one of them another route or method"
    )]
    DuplicateRoute {
        /// Method.
        method: &'static str,
        /// Route.
        path: &'static str,
        /// First function.
        first: &'static str,
        /// Where it is.
        first_at: String,
        /// Second function.
        second: &'static str,
        /// Where it is.
        second_at: String,
    },
    /// A `{param}` of the route is not a field of the input type.
    #[error(
        "route {path} of `{function}` ({at}) has the param `{{{param}}}`, but its input type has no field `{param}` (as serialized); add the field or rename the param"
    )]
    MissingPathParam {
        /// Route.
        path: &'static str,
        /// Function.
        function: &'static str,
        /// Where it is.
        at: String,
        /// The param.
        param: &'static str,
    },
    /// A route needs a session but the app has no session service.
    #[error(
        "`{function}` ({at}) requires auth but the app has no session service; add one with `.sessions(...)` or declare `auth = false`"
    )]
    NoSessionService {
        /// Function.
        function: &'static str,
        /// Where it is.
        at: String,
    },
    /// A session function's session type differs from the app's session service.
    #[error(
        "`{function}` ({at}) takes a session of another type than the app's session service produces"
    )]
    SessionTypeMismatch {
        /// Function.
        function: &'static str,
        /// Where it is.
        at: String,
    },
    /// An explicitly registered route takes another services type.
    #[error(
        "`{function}` ({at}) takes services of type `&{expected}`, but the app was built with `Pikku::with_routes({app}, ...)`; change the function's first parameter to `&{app}` or leave it out of `routes![...]`"
    )]
    ServicesTypeMismatch {
        /// Function.
        function: &'static str,
        /// Where it is.
        at: String,
        /// The type the function takes.
        expected: &'static str,
        /// The services type of the app.
        app: &'static str,
    },
    /// A path of the OpenAPI document or docs page is invalid or taken by a route.
    #[error(
        "the OpenAPI/docs path `{path}` {problem}; choose another in `OpenApiConfig`, or `None` to turn it off"
    )]
    DocsPath {
        /// The configured path.
        path: String,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Debug for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pikku: {self}")
    }
}

fn at(r: &RouteDef) -> String {
    format!("{}:{}", r.source.0, r.source.1)
}

/// Checks a set of routes for the errors that can only be seen once all are known.
pub fn validate(routes: &[&'static RouteDef]) -> Result<(), StartupError> {
    let mut seen: BTreeMap<(&str, Method), &RouteDef> = BTreeMap::new();
    for r in routes {
        if let Some(first) = seen.insert((r.path, r.method), r) {
            return Err(StartupError::DuplicateRoute {
                method: r.method.as_str(),
                path: r.path,
                first: first.fn_name,
                first_at: at(first),
                second: r.fn_name,
                second_at: at(r),
            });
        }
        if !r.path_params.is_empty() {
            let plan = r.plan();
            for p in r.path_params {
                if !plan.properties().iter().any(|f| f == p) {
                    return Err(StartupError::MissingPathParam {
                        path: r.path,
                        function: r.fn_name,
                        at: at(r),
                        param: p,
                    });
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn location(r: &RouteDef) -> String {
    at(r)
}

/// A JSON route without input or handler, for unit tests of route readers.
#[cfg(test)]
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
        input_plan: None,
        output_schema: None,
        item_schema: None,
        fallible_items: false,
        handler: |_| unreachable!("test routes are not served"),
        source: ("test.rs", 1),
        __plan: OnceLock::new(),
    }
}
