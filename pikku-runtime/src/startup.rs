//! Startup validation: every check that needs all of an app's routes and settings, in one place.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::fmt;

use crate::registry::{Method, RouteDef, location};

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
    /// A path the app serves itself (the OpenAPI document, the docs page) is invalid or
    /// taken by a route.
    #[error(
        "the path `{path}` of the {what} {problem}; choose another in {setting}, or `None` to turn it off"
    )]
    ReservedPath {
        /// The configured path.
        path: String,
        /// What the app serves there, e.g. `OpenAPI document`.
        what: &'static str,
        /// Where it is configured, e.g. `` `OpenApiConfig` ``.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl fmt::Debug for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pikku: {self}")
    }
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
                first_at: location(first),
                second: r.fn_name,
                second_at: location(r),
            });
        }
        if !r.path_params.is_empty() {
            let plan = r.plan();
            for p in r.path_params {
                if !plan.properties().iter().any(|f| f == p) {
                    return Err(StartupError::MissingPathParam {
                        path: r.path,
                        function: r.fn_name,
                        at: location(r),
                        param: p,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A path the app serves besides its routes.
pub(crate) struct ReservedPath<'a> {
    pub path: &'a str,
    pub what: &'static str,
    pub setting: &'static str,
}

/// What the app was built with, as the checks need it.
pub(crate) struct AppShape<'a> {
    /// Routes must take these services (explicit registration): type and its name.
    pub services: Option<(TypeId, &'static str)>,
    /// The session type of the app's session service, if it has one.
    pub session_type: Option<TypeId>,
    /// Paths the app serves itself.
    pub reserved: Vec<ReservedPath<'a>>,
}

/// Checks an app's routes against each other and against the app.
pub(crate) fn check(routes: &[&'static RouteDef], app: &AppShape<'_>) -> Result<(), StartupError> {
    validate(routes)?;
    check_reserved(routes, &app.reserved)?;
    for r in routes {
        if let Some((services, name)) = app.services {
            if (r.services_type)() != services {
                return Err(StartupError::ServicesTypeMismatch {
                    function: r.fn_name,
                    at: location(r),
                    expected: (r.services_type_name)(),
                    app: name,
                });
            }
        }
        if r.auth {
            let Some(session_type) = app.session_type else {
                return Err(StartupError::NoSessionService {
                    function: r.fn_name,
                    at: location(r),
                });
            };
            if r.session_type.is_some_and(|t| t() != session_type) {
                return Err(StartupError::SessionTypeMismatch {
                    function: r.fn_name,
                    at: location(r),
                });
            }
        }
    }
    Ok(())
}

/// Checks the paths the app serves itself against each other and the app's routes.
fn check_reserved(
    routes: &[&'static RouteDef],
    reserved: &[ReservedPath<'_>],
) -> Result<(), StartupError> {
    for (i, p) in reserved.iter().enumerate() {
        let problem = |problem: String| StartupError::ReservedPath {
            path: p.path.to_owned(),
            what: p.what,
            setting: p.setting,
            problem,
        };
        if !p.path.starts_with('/') {
            return Err(problem("does not start with `/`".into()));
        }
        if p.path.contains(['{', '}', '*']) {
            return Err(problem("may not contain `{`, `}` or `*`".into()));
        }
        if let Some(r) = routes.iter().find(|r| r.path == p.path) {
            return Err(problem(format!(
                "is also the route of `{}` ({})",
                r.fn_name,
                location(r)
            )));
        }
        if let Some(other) = reserved[..i].iter().find(|o| o.path == p.path) {
            return Err(problem(format!(
                "is configured for both the {} and the {}",
                other.what, p.what
            )));
        }
    }
    Ok(())
}
