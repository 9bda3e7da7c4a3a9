//! Serving the OpenAPI document and the docs page on the axum router (the responses are
//! shared with the actix-web adapter).

use std::sync::Arc;

use axum::Router;
use axum::routing::{MethodRouter, get};
use bytes::Bytes;
use http::{HeaderValue, header};

use crate::error::PikkuError;
use crate::openapi::{DOCS_CSP, DocsPages, OpenApiConfig};
use crate::registry::RouteDef;

/// Mounts the document and the docs page (whichever are on) on `router`.
pub(crate) fn mount(router: Router, routes: &[&'static RouteDef], cfg: &OpenApiConfig) -> Router {
    let pages = Arc::new(DocsPages::new(routes, cfg));
    let mut router = router;
    if let Some(path) = &cfg.json_path {
        let pages = pages.clone();
        router = router.route(
            path,
            get_only(get(
                move || async move { json_page::<axum::body::Body>(&pages) },
            )),
        );
    }
    if let Some(path) = &cfg.docs_path {
        router = router.route(
            path,
            get_only(get(
                move || async move { html_page::<axum::body::Body>(&pages) },
            )),
        );
    }
    router
}

/// The OpenAPI document's response (shared by the adapters).
pub(super) fn json_page<B: From<Bytes>>(pages: &DocsPages) -> http::Response<B> {
    page_response(pages.json(), "application/json")
}

/// The docs page's response, with its Content-Security-Policy (shared by the adapters).
pub(super) fn html_page<B: From<Bytes>>(pages: &DocsPages) -> http::Response<B> {
    let mut res = page_response(pages.html(), "text/html; charset=utf-8");
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    res
}

/// The 405 of the document and the page, which answer GET only (shared by the adapters).
pub(super) fn get_only_response<B: From<Bytes>>() -> http::Response<B> {
    let mut res = PikkuError::method_not_allowed("method not allowed; this route accepts GET")
        .to_response::<B>();
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    res
}

fn page_response<B: From<Bytes>>(
    body: &Result<Bytes, String>,
    content_type: &'static str,
) -> http::Response<B> {
    match body {
        Ok(bytes) => {
            let mut res = http::Response::new(B::from(bytes.clone()));
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            res
        }
        Err(e) => PikkuError::internal(format!("building the OpenAPI document: {e}")).to_response(),
    }
}

fn get_only(handler: MethodRouter) -> MethodRouter {
    handler.fallback(|| async { get_only_response::<axum::body::Body>() })
}
