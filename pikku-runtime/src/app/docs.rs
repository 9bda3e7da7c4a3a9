//! Serving the OpenAPI document and the docs page on the axum router.

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
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
            get_only(get(move || async move {
                page_response(pages.json(), "application/json")
            })),
        );
    }
    if let Some(path) = &cfg.docs_path {
        router = router.route(
            path,
            get_only(get(move || async move {
                let mut res = page_response(pages.html(), "text/html; charset=utf-8");
                res.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(DOCS_CSP),
                );
                res
            })),
        );
    }
    router
}

fn page_response(body: &Result<Bytes, String>, content_type: &'static str) -> Response {
    match body {
        Ok(bytes) => {
            let mut res = bytes.clone().into_response();
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            res
        }
        Err(e) => {
            PikkuError::internal(format!("building the OpenAPI document: {e}")).into_response()
        }
    }
}

fn get_only(handler: MethodRouter) -> MethodRouter {
    handler.fallback(|| async {
        let mut res = PikkuError::method_not_allowed("method not allowed; this route accepts GET")
            .into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        res
    })
}
