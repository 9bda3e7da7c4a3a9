//! Serving the Prometheus exposition on the axum router.

use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderValue, header};

use crate::error::PikkuError;
use crate::prometheus::{CONTENT_TYPE, Exporter};

/// Mounts `GET path` answering with `exporter`'s text (other methods: 405).
pub(crate) fn mount(router: Router, path: &str, exporter: Exporter) -> Router {
    let exporter = Arc::new(exporter);
    let handler = get(move || {
        let exporter = exporter.clone();
        async move { respond(&exporter) }
    })
    .fallback(|| async {
        let mut res = PikkuError::method_not_allowed("method not allowed; this route accepts GET")
            .into_response();
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        res
    });
    router.route(path, handler)
}

fn respond(exporter: &Exporter) -> Response {
    match exporter.render() {
        Ok(text) => {
            let mut res = text.into_response();
            let headers = res.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            res
        }
        Err(e) => PikkuError::internal(format!("rendering the metrics: {e}")).into_response(),
    }
}
