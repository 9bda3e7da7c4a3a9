//! The actix-web adapter (feature `actix`): the same checked app as the axum router, mounted
//! on an actix-web `App` through [`Pikku::actix_config`], each request turned into a call of
//! the framework-independent pipeline.
//!
//! actix-web 4 speaks `http` 0.2 while the pipeline speaks `http` 1, so methods, headers and
//! statuses cross over as bytes; a value one side refuses is left out, never unwrapped.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::{HttpRequest, HttpResponse, guard, web};
use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, Map, Ready};
use futures_util::{FutureExt as _, StreamExt as _};
use tower::{Layer as _, Service};
use tower_http::cors::CorsLayer;

use super::{Pikku, Prepared, router};
use crate::error::PikkuError;
use crate::input::RawInput;
use crate::registry::{Method, RouteDef};
use crate::serving::PikkuBody;
use crate::serving::pipeline::{self, AppState};
use crate::startup::StartupError;

impl<S: Send + Sync + 'static> Pikku<S> {
    /// Checks the app like [`try_router`](Self::try_router) (the same startup check, the same
    /// shared state) and returns its routes, `/openapi.json`, `/docs` and the JSON 404 as an
    /// actix-web configuration: `App::new().configure(config)`. The function is `Clone +
    /// Send`, as `HttpServer::new`'s factory (one `App` per worker) needs.
    ///
    /// The configuration sets the app's default service (the JSON 404), so configure it on
    /// the `App` itself, not inside a scope that has other routes after it. [`Pikku::cors`]
    /// applies as on axum (the same tower-http CORS rules around every answer of the
    /// configuration, preflights included).
    ///
    /// Serve it with `h1_allow_half_closed(false)`: actix-web otherwise notices a client that
    /// went away only at the stream's next write (the next event or heartbeat), and the
    /// generator's cleanup waits until then. The app's [`Shutdown`](crate::Shutdown) ends
    /// open streams with `event: shutdown`; trigger it before stopping the server.
    ///
    /// ```no_run
    /// # use pikku::Pikku;
    /// # use pikku::actix_web::{App, HttpServer};
    /// # struct Services;
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let config = Pikku::new(Services).try_actix_config()?;
    /// let server = HttpServer::new(move || App::new().configure(config.clone()))
    ///     .h1_allow_half_closed(false)
    ///     .bind("127.0.0.1:3000")?
    ///     .run();
    /// # drop(server); Ok(())
    /// # }
    /// ```
    pub fn try_actix_config(
        self,
    ) -> Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static, StartupError> {
        let Prepared {
            state,
            routes,
            #[cfg(feature = "openapi")]
            openapi,
            cors,
            #[cfg(feature = "prometheus")]
            metrics_endpoint,
        } = self.prepare()?;
        #[cfg(feature = "prometheus")]
        if let Some((path, _)) = metrics_endpoint {
            // Not mounted here yet: say so rather than answer 404 silently.
            tracing::warn!(%path, "the metrics endpoint is served by the axum router only; on actix-web, serve `pikku::prometheus::Exporter::render` yourself");
        }
        let shared = Shared {
            state,
            cors: cors.layer(),
        };
        #[cfg(feature = "openapi")]
        let pages = Arc::new(crate::openapi::DocsPages::new(&routes, &openapi));
        let by_path = group(&routes);
        Ok(move |cfg: &mut web::ServiceConfig| {
            for (path, routes) in &by_path {
                cfg.service(resource(&shared, path, routes));
            }
            #[cfg(feature = "openapi")]
            docs(cfg, &shared, &pages, &openapi);
            cfg.default_service(fixed(&shared, router::not_found));
        })
    }

    /// Like [`try_actix_config`](Self::try_actix_config), but panics with the startup error's
    /// message.
    ///
    /// # Panics
    /// At startup, for the same errors as [`router`](Self::router).
    pub fn actix_config(self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        match self.try_actix_config() {
            Ok(c) => c,
            Err(e) => panic!("pikku: {e}"),
        }
    }
}

/// The routes by path, in a stable order (one actix resource per path).
fn group(routes: &[&'static RouteDef]) -> BTreeMap<&'static str, Vec<&'static RouteDef>> {
    let mut by_path: BTreeMap<&'static str, Vec<&'static RouteDef>> = BTreeMap::new();
    for &r in routes {
        by_path.entry(r.path).or_default().push(r);
    }
    by_path
}

/// What every handler of the configuration shares.
#[derive(Clone)]
struct Shared {
    state: Arc<AppState>,
    /// The app's CORS rules, applied around every answer (as the axum router's outer layer).
    cors: Option<CorsLayer>,
}

/// One path's resource: a route per method (actix's `{param}` is Pikku's), and the 405 with
/// `Allow` for the other methods.
fn resource(shared: &Shared, path: &str, routes: &[&'static RouteDef]) -> actix_web::Resource {
    let mut res = web::resource(path);
    for &route in routes {
        let sh = shared.clone();
        let handler = move |req: HttpRequest, payload: web::Payload| {
            let sh = sh.clone();
            async move {
                let state = &sh.state;
                let req = &req;
                with_cors(sh.cors.as_ref(), req, move |headers| {
                    adapt(state, route, req, headers, payload)
                })
                .await
            }
        };
        res = res.route(web::route().guard(method_guard(route.method)).to(handler));
    }
    let allow = routes
        .iter()
        .map(|r| r.method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    res.default_service(fixed(shared, move || router::not_allowed(&allow)))
}

/// A handler answering `page()` whatever the request (404, 405, the docs).
fn fixed(
    shared: &Shared,
    page: impl Fn() -> http::Response<PikkuBody> + Clone + 'static,
) -> actix_web::Route {
    let cors = shared.cors.clone();
    web::to(move |req: HttpRequest| {
        let (cors, page) = (cors.clone(), page.clone());
        async move { with_cors(cors.as_ref(), &req, move |_| std::future::ready(page())).await }
    })
}

/// The OpenAPI document and the docs page, whichever are on.
#[cfg(feature = "openapi")]
fn docs(
    cfg: &mut web::ServiceConfig,
    shared: &Shared,
    pages: &Arc<crate::openapi::DocsPages>,
    openapi: &crate::openapi::OpenApiConfig,
) {
    if let Some(path) = &openapi.json_path {
        let pages = pages.clone();
        cfg.service(get_only(shared, path, move || {
            super::docs::json_page(&pages)
        }));
    }
    if let Some(path) = &openapi.docs_path {
        let pages = pages.clone();
        cfg.service(get_only(shared, path, move || {
            super::docs::html_page(&pages)
        }));
    }
}

/// A GET-only resource answering with `page` (the OpenAPI document, the docs page).
#[cfg(feature = "openapi")]
fn get_only(
    shared: &Shared,
    path: &str,
    page: impl Fn() -> http::Response<PikkuBody> + Clone + 'static,
) -> actix_web::Resource {
    web::resource(path)
        .route(fixed(shared, page).guard(method_guard(Method::Get)))
        .default_service(fixed(shared, super::docs::get_only_response))
}

/// GET routes answer HEAD too, as axum's do (the body is not sent).
fn method_guard(m: Method) -> guard::AnyGuard {
    match m {
        Method::Get => guard::Any(guard::Get()).or(guard::Head()),
        Method::Post => guard::Any(guard::Post()),
        Method::Put => guard::Any(guard::Put()),
        Method::Patch => guard::Any(guard::Patch()),
        Method::Delete => guard::Any(guard::Delete()),
    }
}

/// The request's headers in `http` 1 types.
fn headers_of(req: &HttpRequest) -> http::HeaderMap {
    let mut headers = http::HeaderMap::with_capacity(req.headers().len());
    for (name, value) in req.headers() {
        // Both sides validated these bytes already; a pair one side refuses is dropped.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    // The CSRF same-origin check reads `Host`; an absolute-form request line carries it in
    // the URI instead.
    if !headers.contains_key(http::header::HOST) {
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| http::HeaderValue::from_bytes(a.as_str().as_bytes()).ok())
        {
            headers.insert(http::header::HOST, host);
        }
    }
    headers
}

/// Answers `req` with `answer(headers)`, inside the app's CORS rules when it has any: the
/// same tower-http service as the axum router's layer, so preflights and the headers of
/// every answer (404 and 405 included) are the same on both adapters.
async fn with_cors<F, Fut>(
    cors: Option<&CorsLayer>,
    req: &HttpRequest,
    answer: F,
) -> HttpResponse<PikkuBody>
where
    F: FnOnce(http::HeaderMap) -> Fut,
    Fut: Future<Output = http::Response<PikkuBody>>,
{
    let headers = headers_of(req);
    let method = http::Method::from_bytes(req.method().as_str().as_bytes());
    let (Some(cors), Ok(method)) = (cors, method) else {
        return to_actix(answer(headers).await);
    };
    let mut request = http::Request::new(());
    *request.method_mut() = method;
    *request.headers_mut() = headers;
    let mut svc = cors.layer(Answer(Some(answer)));
    // `Answer` is always ready, and so is the CORS service around it.
    if let Err(e) = std::future::poll_fn(|cx| svc.poll_ready(cx)).await {
        match e {}
    }
    match svc.call(request).await {
        Ok(res) => to_actix(res),
        Err(e) => match e {},
    }
}

/// The inner service of [`with_cors`]: the answer, called at most once (one request).
struct Answer<F>(Option<F>);

type AnswerFuture<Fut> = Either<
    Map<Fut, fn(http::Response<PikkuBody>) -> Result<http::Response<PikkuBody>, Infallible>>,
    Ready<Result<http::Response<PikkuBody>, Infallible>>,
>;

impl<F, Fut> Service<http::Request<()>> for Answer<F>
where
    F: FnOnce(http::HeaderMap) -> Fut,
    Fut: Future<Output = http::Response<PikkuBody>>,
{
    type Response = http::Response<PikkuBody>;
    type Error = Infallible;
    type Future = AnswerFuture<Fut>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        match self.0.take() {
            Some(answer) => {
                let ok: fn(_) -> _ = Ok;
                Either::Left(answer(req.into_parts().0.headers).map(ok))
            }
            // Never: `with_cors` calls it once.
            None => Either::Right(futures_util::future::ready(Ok(PikkuError::internal(
                "a CORS request was answered twice",
            )
            .to_response()))),
        }
    }
}

/// The actix-web adapter: turns an actix request into the framework-independent call.
async fn adapt(
    state: &AppState,
    route: &'static RouteDef,
    req: &HttpRequest,
    headers: http::HeaderMap,
    payload: web::Payload,
) -> http::Response<PikkuBody> {
    let mut path = Vec::new();
    for (name, value) in req.match_info().iter() {
        // actix leaves `%`, `/` and `+` encoded in the matched segment; decode fully, as axum
        // does.
        match percent_encoding::percent_decode_str(value).decode_utf8() {
            Ok(v) => path.push((name.to_owned(), v.into_owned())),
            Err(_) => {
                return PikkuError::bad_request("path params are not valid UTF-8").to_response();
            }
        }
    }
    let body = if route.method.has_body() {
        match read_body(payload, state.body_limit).await {
            Ok(b) => b,
            Err(e) => return e.to_response(),
        }
    } else {
        Bytes::new()
    };
    let raw = RawInput {
        path,
        query: req.uri().query().map(str::to_owned),
        body,
    };
    let peer = req.peer_addr().map(|a| a.ip());
    pipeline::handle(state, route, headers, raw, peer).await
}

/// The request body, at most `limit` bytes (413 beyond it, as on axum).
async fn read_body(mut payload: web::Payload, limit: usize) -> Result<Bytes, PikkuError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|_| PikkuError::bad_request("could not read the request body"))?;
        if buf.len() + chunk.len() > limit {
            return Err(router::body_too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The pipeline's response as actix-web's: status and headers by bytes, the body as it is
/// (`PikkuBody` is an actix `MessageBody`, so dropping the response drops the generator).
fn to_actix(res: http::Response<PikkuBody>) -> HttpResponse<PikkuBody> {
    let (parts, body) = res.into_parts();
    let status = actix_web::http::StatusCode::from_u16(parts.status.as_u16())
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = HttpResponse::with_body(status, body);
    let headers = out.headers_mut();
    for (name, value) in &parts.headers {
        if let (Ok(n), Ok(v)) = (
            actix_web::http::header::HeaderName::from_bytes(name.as_str().as_bytes()),
            actix_web::http::header::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    out
}

impl MessageBody for PikkuBody {
    type Error = std::convert::Infallible;

    /// Exact for complete bodies (actix sends `Content-Length`), a stream (chunked) for SSE.
    fn size(&self) -> BodySize {
        match self {
            PikkuBody::Full(Some(b)) => BodySize::Sized(b.len() as u64),
            PikkuBody::Full(None) => BodySize::Sized(0),
            PikkuBody::Sse(_) => BodySize::Stream,
        }
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self;
        loop {
            return match http_body::Body::poll_frame(this.as_mut(), cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => Poll::Ready(Some(Ok(data))),
                    // Pikku sends no trailers; anything but data is skipped.
                    Err(_) => continue,
                },
                Poll::Ready(Some(Err(e))) => match e {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        match self {
            PikkuBody::Full(b) => Ok(b.unwrap_or_default()),
            sse => Err(sse),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_bodies_have_their_exact_size_and_pass_as_bytes() {
        let body = PikkuBody::from(Bytes::from_static(b"{\"ok\":true}"));
        assert_eq!(MessageBody::size(&body), BodySize::Sized(11));
        assert_eq!(
            body.try_into_bytes().ok(),
            Some(Bytes::from_static(b"{\"ok\":true}"))
        );
        let empty = PikkuBody::default();
        assert_eq!(MessageBody::size(&empty), BodySize::Sized(0));
        assert_eq!(empty.try_into_bytes().ok(), Some(Bytes::new()));
    }

    #[test]
    fn statuses_and_headers_cross_over_by_bytes() {
        let mut res = PikkuError::method_not_allowed("no").to_response::<PikkuBody>();
        res.headers_mut().append(
            http::header::SET_COOKIE,
            http::HeaderValue::from_static("a=1"),
        );
        res.headers_mut().append(
            http::header::SET_COOKIE,
            http::HeaderValue::from_static("b=2"),
        );
        let out = to_actix(res);
        assert_eq!(out.status().as_u16(), 405);
        assert_eq!(out.headers().get_all("set-cookie").count(), 2);
        assert_eq!(
            out.headers().get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/json"[..])
        );
    }
}
