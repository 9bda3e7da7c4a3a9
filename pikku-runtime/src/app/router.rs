//! The axum adapter: routes mounted on a `Router`, each request turned into a call of the
//! framework-independent pipeline.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams, Request};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use bytes::Bytes;

use crate::error::PikkuError;
use crate::input::RawInput;
use crate::registry::{Method, RouteDef};
use crate::serving::pipeline::{self, AppState};

pub(super) fn mount(state: Arc<AppState>, routes: &[&'static RouteDef]) -> Router {
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
            let res = not_allowed::<axum::body::Body>(&allow);
            async move { res }
        };
        router = router.route(path, mr.fallback(not_allowed));
    }
    router.fallback(|| async { not_found::<axum::body::Body>() })
}

/// The 405 of a known path asked with another method: the JSON error and `Allow` (shared by
/// the adapters). `allow` lists the path's methods, e.g. `"get, post"`.
pub(super) fn not_allowed<B: From<Bytes>>(allow: &str) -> http::Response<B> {
    let allow = allow.to_uppercase();
    let mut res =
        PikkuError::method_not_allowed(format!("method not allowed; this route accepts {allow}"))
            .to_response::<B>();
    if let Ok(v) = http::HeaderValue::try_from(allow) {
        res.headers_mut().insert(http::header::ALLOW, v);
    }
    res
}

/// The 413 of a body over the app's limit (shared by the adapters).
pub(super) fn body_too_large(limit: usize) -> PikkuError {
    PikkuError::payload_too_large(format!("request body is larger than {limit} bytes"))
}

/// The JSON 404 of a path no route matches (shared by the adapters).
pub(super) fn not_found<B: From<Bytes>>() -> http::Response<B> {
    PikkuError::not_found("no route matches this path").to_response()
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
                    body_too_large(state.body_limit)
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
    pipeline::handle(state, route, parts.headers, raw, peer)
        .await
        .map(axum::body::Body::new)
}
