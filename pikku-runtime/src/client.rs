//! A typed Rust client of Pikku functions (cargo feature `client`).
//!
//! With the feature on, `#[pikku_func]` also gives each function typed calls next to its
//! `route()` (servers built without the feature get none of this):
//!
//! | the function | generated | returns |
//! |---|---|---|
//! | `response = "json"` | `f::call(&client, input)` | `impl Future<Output = Result<Out, ClientError>>` |
//! | `response = "stream"` | `f::call(&client, input)` | [`ClientStream<Item>`] (a `Stream<Item = Result<Item, ClientError>>`) |
//! | `Reply<Out, S>` | `f::call` (JSON) and `f::stream` | both of the above |
//!
//! each also as `f::call_with(&client, input, CallOptions)` (`stream_with` for `Reply`), for a
//! `Last-Event-ID` to resume from or extra headers. Functions without an input take none:
//! `ready::call(&client)`.
//!
//! ```no_run
//! use pikku::client::Client;
//! use pikku::prelude::*;
//!
//! pub struct Services;
//! #[derive(Serialize, Deserialize, JsonSchema)]
//! pub struct UpdatesQuery { interval_ms: Option<u64> }
//! #[derive(Debug, Serialize, Deserialize, JsonSchema)]
//! pub struct Update { count: u64 }
//!
//! #[pikku_func(route = "/stream/updates", response = "stream", auth = false)]
//! async fn stream_updates(_: &Services, input: UpdatesQuery) -> impl Stream<Item = Update> {
//!     stream! { yield Update { count: 1 }; }
//! }
//!
//! # async fn run() -> Result<(), pikku::client::ClientError> {
//! let client = Client::new("http://127.0.0.1:3000")?;
//! let mut updates = stream_updates::call(&client, UpdatesQuery { interval_ms: Some(500) });
//! while let Some(update) = updates.next().await {
//!     println!("{:?}", update?); // dropping `updates` closes the connection
//! }
//! # Ok(()) }
//! ```
//!
//! # Requests
//!
//! The input is serialized to a JSON object: `{param}` fields fill the path; for GET and DELETE
//! the other fields are the query string (arrays as repeated keys, `null`s left out), otherwise
//! the JSON body — what the server's input decoding reads. Session functions are called with
//! the client's headers: set its token with [`Client::bearer`].
//!
//! # Streams
//!
//! A [`ClientStream`] connects when first polled and reads the `text/event-stream` with
//! `sse-stream` (a spec-compliant parser that also reports `retry:`-only blocks, which the
//! runtime's `SseConfig::retry` prelude is). Then:
//!
//! - items are the `data` of each event, decoded as `T`; a malformed one is an
//!   `Err(ClientError::Decode)` item and the stream goes on;
//! - `event: error` is an `Err(ClientError::Stream(body))` item and `event: gap` an
//!   `Err(ClientError::Gap(gap))` item: neither ends the stream (the server decides; when it
//!   ends the stream, the client reconnects as below). Stop by dropping the stream;
//! - `event: shutdown` and `event: close` are not items: they announce the end of the
//!   connection, after which the client reconnects;
//! - when the connection ends (cleanly, a network error, or no bytes at all — not even a
//!   `: ping` — for the heartbeat timeout, 45 s by default), it reconnects after the `retry:`
//!   the server last sent (1 s until it sends one), sending `Last-Event-ID`: the id of the last
//!   event that had one. While connecting keeps failing (network errors, 408, 429, 5xx), the
//!   delay doubles up to [`Client::max_retry`], and honours `Retry-After`;
//! - an answer of 401, 403, 422 or another 4xx is a final `Err(ClientError::Http)` item with
//!   the server's error body; 204 ends the stream (as for `EventSource`);
//! - dropping the stream closes its connection at once.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::registry::RouteDef;

/// The reconnection delay until the server sends `retry:`.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);
/// The largest delay between failing connection attempts.
pub const DEFAULT_MAX_RETRY: Duration = Duration::from_secs(30);
/// How long a stream may stay silent before the client reconnects: 3× the server's default
/// heartbeat.
pub const DEFAULT_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(45);
/// The smallest delay between failing connection attempts, whatever `retry:` said.
const MIN_FAILURE_DELAY: Duration = Duration::from_millis(250);

/// The JSON error body of the server's HTTP errors: `{"error", "message", "status", "field"?}`.
pub use crate::error::ErrorBody;
use crate::sse::ReservedEvent;
/// The data of an `event: error` or `event: session_end`: `{"error", "message"}`.
pub use crate::sse::StreamError;
/// The data of an `event: gap`: events after the resume point could not be replayed.
pub use crate::sse::StreamGap as Gap;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status and this body.
    #[error("{status} {}: {}", body.error, body.message)]
    Http {
        /// The status.
        status: StatusCode,
        /// The server's error body.
        body: ErrorBody,
    },
    /// An `event: error` of a stream (not final: the stream goes on).
    #[error("stream error {}: {}", .0.error, .0.message)]
    Stream(StreamError),
    /// An `event: gap` of a stream (not final): events were missed.
    #[error("stream gap ({}, {:?} missed)", .0.reason, .0.missed)]
    Gap(Gap),
    /// The request could not be sent or its answer not read (JSON calls; streams reconnect).
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// An answer or event was not the JSON of the expected type.
    #[error("decoding {what}: {source}")]
    Decode {
        /// What was decoded.
        what: String,
        /// Why it failed.
        source: serde_json::Error,
    },
    /// The input or a setting cannot make a request (e.g. a missing path param).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The server answered with another content type than the call expects.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// Per-call settings: a resume point and extra headers.
#[derive(Debug, Clone, Default)]
pub struct CallOptions {
    /// Resume a stream after this event id (`Last-Event-ID` of the first connection).
    pub last_event_id: Option<String>,
    /// Extra headers of this call, over the client's.
    pub headers: HeaderMap,
}

impl CallOptions {
    /// Resumes after `id`.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }
}

/// A client of a Pikku app: base URL, headers, and the stream settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    headers: HeaderMap,
    retry: Duration,
    max_retry: Duration,
    heartbeat_timeout: Option<Duration>,
}

impl Client {
    /// A client of the app at `base_url` (e.g. `http://127.0.0.1:3000`, or `.../api` when
    /// the router is nested).
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        let base = base_url.into().trim_end_matches('/').to_owned();
        reqwest::Url::parse(&base)
            .map_err(|e| ClientError::Invalid(format!("base URL `{base}`: {e}")))?;
        Ok(Self {
            http: reqwest::Client::new(),
            base,
            headers: HeaderMap::new(),
            retry: DEFAULT_RETRY,
            max_retry: DEFAULT_MAX_RETRY,
            heartbeat_timeout: Some(DEFAULT_HEARTBEAT_TIMEOUT),
        })
    }

    /// Uses `http` to send requests (its TLS, proxy and timeout settings; set no overall
    /// timeout on a client that reads streams).
    pub fn with_http_client(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request (session functions).
    pub fn bearer(self, token: &str) -> Result<Self, ClientError> {
        self.header(AUTHORIZATION.as_str(), &format!("Bearer {token}"))
    }

    /// Sends a header with every request.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self, ClientError> {
        let name = HeaderName::try_from(name)
            .map_err(|e| ClientError::Invalid(format!("header name `{name}`: {e}")))?;
        let value = HeaderValue::try_from(value)
            .map_err(|e| ClientError::Invalid(format!("header `{name}`: {e}")))?;
        self.headers.insert(name, value);
        Ok(self)
    }

    /// The reconnection delay of streams until the server sends `retry:` (default 1 s).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.retry = delay;
        self
    }

    /// The largest delay between failing connection attempts (default 30 s).
    pub fn max_retry(mut self, delay: Duration) -> Self {
        self.max_retry = delay;
        self
    }

    /// Reconnect a stream that receives nothing (not even a `: ping`) for this long (default
    /// 45 s); `None` waits forever.
    pub fn heartbeat_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.heartbeat_timeout = timeout;
        self
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Calls a JSON route with `input` (what the generated `f::call` does).
    pub async fn json<I, O>(
        &self,
        route: &RouteDef,
        input: &I,
        options: CallOptions,
    ) -> Result<O, ClientError>
    where
        I: Serialize + ?Sized,
        O: DeserializeOwned,
    {
        let prepared = PreparedRequest::new(self, route, input)?;
        let res = prepared
            .request(self, &options.headers, "application/json", None)?
            .send()
            .await?;
        if !res.status().is_success() {
            return Err(http_error(res).await);
        }
        if is_event_stream(res.headers()) {
            return Err(ClientError::Unexpected(format!(
                "{} answered with a stream; call its stream method",
                route.fn_name
            )));
        }
        let bytes = res.bytes().await?;
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"null")
        } else {
            bytes
        };
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            what: format!("the answer of {}", route.fn_name),
            source,
        })
    }

    /// Opens a stream route with `input` (what the generated `f::call` of a stream function
    /// does). Nothing is sent until the stream is first polled.
    pub fn stream<I, T>(&self, route: &RouteDef, input: &I, options: CallOptions) -> ClientStream<T>
    where
        I: Serialize + ?Sized,
        T: DeserializeOwned + Send + 'static,
    {
        let last_id = Arc::new(Mutex::new(
            options.last_event_id.clone().filter(|s| !s.is_empty()),
        ));
        let inner = match PreparedRequest::new(self, route, input) {
            Ok(prepared) => run_stream(self.clone(), prepared, options, last_id.clone()).boxed(),
            Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
        };
        ClientStream { inner, last_id }
    }
}

/// The method, URL and body of a call.
#[derive(Debug, Clone)]
struct PreparedRequest {
    name: &'static str,
    method: http::Method,
    url: String,
    body: Option<Bytes>,
}

impl PreparedRequest {
    fn new<I: Serialize + ?Sized>(
        client: &Client,
        route: &RouteDef,
        input: &I,
    ) -> Result<Self, ClientError> {
        let invalid = |m: String| ClientError::Invalid(format!("{}: {m}", route.fn_name));
        let mut fields = match serde_json::to_value(input)
            .map_err(|e| invalid(format!("the input does not serialize: {e}")))?
        {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => {
                return Err(invalid(format!(
                    "the input must serialize to a JSON object, not {other}"
                )));
            }
        };
        let mut path = String::with_capacity(route.path.len());
        let mut rest = route.path;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .map(|c| open + c)
                .ok_or_else(|| invalid(format!("unbalanced braces in {}", route.path)))?;
            path.push_str(&rest[..open]);
            let name = &rest[open + 1..close];
            let value = match fields.remove(name) {
                Some(Value::String(s)) => s,
                Some(Value::Null) | None => {
                    return Err(invalid(format!("the path param `{name}` is missing")));
                }
                Some(other) => other.to_string(),
            };
            path.extend(form_urlencoded::byte_serialize(value.as_bytes()).map(|s| {
                // A path segment: spaces are %20, not `+`.
                if s == "+" { "%20" } else { s }
            }));
            rest = &rest[close + 1..];
        }
        path.push_str(rest);
        let mut url = format!("{}{}", client.base, path);
        let body = if route.method.has_body() {
            Some(Bytes::from(
                serde_json::to_vec(&fields).map_err(|e| invalid(e.to_string()))?,
            ))
        } else {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &fields {
                let values: &[Value] = match v {
                    Value::Array(items) => items,
                    other => std::slice::from_ref(other),
                };
                for v in values {
                    match v {
                        Value::Null => {}
                        Value::String(s) => {
                            query.append_pair(k, s);
                        }
                        other => {
                            query.append_pair(k, &other.to_string());
                        }
                    }
                }
            }
            let query = query.finish();
            if !query.is_empty() {
                url.push('?');
                url.push_str(&query);
            }
            None
        };
        Ok(Self {
            name: route.fn_name,
            method: route.method.as_http(),
            url,
            body,
        })
    }

    fn request(
        &self,
        client: &Client,
        extra: &HeaderMap,
        accept: &'static str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let mut headers = client.headers.clone();
        for (k, v) in extra {
            headers.insert(k.clone(), v.clone());
        }
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        if let Some(id) = last_event_id {
            let value = HeaderValue::try_from(id)
                .map_err(|e| ClientError::Invalid(format!("Last-Event-ID `{id}`: {e}")))?;
            headers.insert(HeaderName::from_static("last-event-id"), value);
        }
        let mut req = client
            .http
            .request(self.method.clone(), &self.url)
            .headers(headers);
        if let Some(body) = &self.body {
            req = req
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        Ok(req)
    }
}

fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/event-stream"))
}

async fn http_error(res: reqwest::Response) -> ClientError {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
        error: "http_error".into(),
        message: if text.is_empty() {
            status.canonical_reason().unwrap_or("error").into()
        } else {
            text
        },
        status: status.as_u16(),
        field: None,
    });
    ClientError::Http { status, body }
}

fn retry_after(headers: &HeaderMap) -> Duration {
    headers
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or_default()
}

/// Why a connection's byte stream ended early (the transport error of the SSE parser).
#[derive(Debug, thiserror::Error)]
enum Dropped {
    #[error("no bytes within the heartbeat timeout")]
    Heartbeat,
    #[error("connection lost: {0}")]
    Network(reqwest::Error),
}

/// A stream of a stream route's items, reconnecting as the [module docs](self#streams) say.
/// Dropping it closes the connection.
pub struct ClientStream<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send>>,
    last_id: Arc<Mutex<Option<String>>>,
}

impl<T> ClientStream<T> {
    /// The id of the last event received that had one: where a reconnection resumes (pass it
    /// as [`CallOptions::last_event_id`] to resume in another stream).
    pub fn last_event_id(&self) -> Option<String> {
        self.last_id.lock().ok().and_then(|id| id.clone())
    }
}

impl<T> Stream for ClientStream<T> {
    type Item = Result<T, ClientError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> std::fmt::Debug for ClientStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientStream")
            .field("last_event_id", &self.last_event_id())
            .finish_non_exhaustive()
    }
}

/// `fut`, or `None` after `limit` (never, without a limit).
async fn within<F: std::future::Future>(limit: Option<Duration>, fut: F) -> Option<F::Output> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, fut).await.ok(),
        None => Some(fut.await),
    }
}

fn run_stream<T>(
    client: Client,
    prepared: PreparedRequest,
    options: CallOptions,
    last_id: Arc<Mutex<Option<String>>>,
) -> impl Stream<Item = Result<T, ClientError>> + Send
where
    T: DeserializeOwned + Send + 'static,
{
    let get_id = {
        let last_id = last_id.clone();
        move || last_id.lock().ok().and_then(|id| id.clone())
    };
    let set_id = move |id: String| {
        if let Ok(mut slot) = last_id.lock() {
            *slot = Some(id).filter(|s| !s.is_empty());
        }
    };
    async_stream::stream! {
        let heartbeat = client.heartbeat_timeout;
        let mut retry = client.retry;
        let mut failures: u32 = 0;
        loop {
            // One connection.
            let mut established = false;
            let mut wait_at_least = Duration::ZERO;
            let req = match prepared.request(&client, &options.headers, "text/event-stream", get_id().as_deref()) {
                Ok(req) => req,
                Err(e) => {
                    yield Err(e);
                    return;
                }
            };
            match within(heartbeat, req.send()).await {
                Some(Ok(res)) if res.status() == StatusCode::NO_CONTENT => return,
                Some(Ok(res)) if !res.status().is_success() => {
                    let status = res.status();
                    let retryable = status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS
                        || status.is_server_error();
                    if !retryable {
                        yield Err(http_error(res).await);
                        return;
                    }
                    wait_at_least = retry_after(res.headers());
                    tracing::debug!(route = prepared.name, %status, "stream refused; retrying");
                }
                Some(Ok(res)) if !is_event_stream(res.headers()) => {
                    yield Err(ClientError::Unexpected(format!(
                        "{} answered with {:?}, not a stream",
                        prepared.name,
                        res.headers().get(CONTENT_TYPE)
                    )));
                    return;
                }
                Some(Ok(res)) => {
                    established = true;
                    let bytes = async_stream::stream! {
                        let mut body = res.bytes_stream();
                        loop {
                            match within(heartbeat, body.next()).await {
                                Some(Some(Ok(chunk))) => yield Ok::<Bytes, Dropped>(chunk),
                                Some(Some(Err(e))) => {
                                    yield Err(Dropped::Network(e));
                                    break;
                                }
                                Some(None) => break,
                                None => {
                                    yield Err(Dropped::Heartbeat);
                                    break;
                                }
                            }
                        }
                    };
                    let mut events = std::pin::pin!(sse_stream::SseByteStream::new(bytes));
                    while let Some(event) = events.next().await {
                        let event = match event {
                            Ok(event) => event,
                            Err(e) => {
                                tracing::debug!(route = prepared.name, error = %e, "stream dropped; reconnecting");
                                break;
                            }
                        };
                        if let Some(ms) = event.retry {
                            retry = Duration::from_millis(ms);
                        }
                        if let Some(id) = event.id {
                            set_id(id);
                        }
                        let Some(data) = event.data.filter(|d| !d.is_empty()) else {
                            continue;
                        };
                        let what = || format!("an event of {}", prepared.name);
                        match event.event.as_deref().and_then(ReservedEvent::from_name) {
                            Some(ReservedEvent::Error) => yield Err(match serde_json::from_str::<StreamError>(&data) {
                                Ok(body) => ClientError::Stream(body),
                                Err(source) => ClientError::Decode { what: what(), source },
                            }),
                            Some(ReservedEvent::Gap) => yield Err(match serde_json::from_str::<Gap>(&data) {
                                Ok(gap) => ClientError::Gap(gap),
                                Err(source) => ClientError::Decode { what: what(), source },
                            }),
                            // The stream ends; the connection's end makes the client reconnect.
                            Some(ReservedEvent::Shutdown | ReservedEvent::Close) => {}
                            // The session expired or was revoked: reconnecting with the same
                            // credentials cannot work, so the stream ends with the reason.
                            Some(ReservedEvent::SessionEnd) => {
                                yield Err(match serde_json::from_str::<StreamError>(&data) {
                                    Ok(body) => ClientError::Stream(body),
                                    Err(source) => ClientError::Decode { what: what(), source },
                                });
                                return;
                            }
                            None => yield serde_json::from_str::<T>(&data)
                                .map_err(|source| ClientError::Decode { what: what(), source }),
                        }
                    }
                }
                Some(Err(e)) => {
                    tracing::debug!(route = prepared.name, error = %e, "stream connection failed; retrying");
                }
                None => {
                    tracing::debug!(route = prepared.name, "no answer within the heartbeat timeout; retrying");
                }
            }
            failures = if established { 0 } else { failures.saturating_add(1) };
            let delay = if failures == 0 {
                retry
            } else {
                let base = retry.max(MIN_FAILURE_DELAY);
                base.saturating_mul(1u32 << (failures - 1).min(16)).min(client.max_retry)
            };
            tokio::time::sleep(delay.max(wait_at_least)).await;
        }
    }
}

/// The methods `#[pikku_func]` adds to a function's struct with the `client` feature; see the
/// [module docs](crate::client). Expands to nothing without the feature.
///
/// The bounds are written `for<'__pikku>`-quantified so a function whose input is not
/// `Serialize` (or output not `Deserialize`) still compiles: only calling it is an error.
#[doc(hidden)]
#[macro_export]
macro_rules! __pikku_client_methods {
    ([$($vis:tt)*] json, $name:ident, ($($input:ty)?), $out:ty) => {
        $crate::__pikku_client_methods!(@json [$($vis)*] call, call_with, $name, ($($input)?), $out);
    };
    ([$($vis:tt)*] stream, $name:ident, ($($input:ty)?), $item:ty) => {
        $crate::__pikku_client_methods!(@stream [$($vis)*] call, call_with, $name, ($($input)?), $item);
    };
    ([$($vis:tt)*] either, $name:ident, ($($input:ty)?), $out:ty, $item:ty) => {
        $crate::__pikku_client_methods!(@json [$($vis)*] call, call_with, $name, ($($input)?), $out);
        $crate::__pikku_client_methods!(@stream [$($vis)*] stream, stream_with, $name, ($($input)?), $item);
    };
    (@json [$($vis:tt)*] $call:ident, $call_with:ident, $name:ident, ($input:ty), $out:ty) => {
        /// Calls this function on the server `client` points at.
        #[allow(dead_code)]
        $($vis)* fn $call(
            client: &$crate::client::Client,
            input: $input,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<$out, $crate::client::ClientError>> + '_
        where
            for<'__pikku> $input: $crate::__private::Serialize,
            for<'__pikku> $out: $crate::__private::DeserializeOwned,
        {
            Self::$call_with(client, input, ::core::default::Default::default())
        }
        /// Like `call`, with per-call options.
        #[allow(dead_code)]
        $($vis)* fn $call_with(
            client: &$crate::client::Client,
            input: $input,
            options: $crate::client::CallOptions,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<$out, $crate::client::ClientError>> + '_
        where
            for<'__pikku> $input: $crate::__private::Serialize,
            for<'__pikku> $out: $crate::__private::DeserializeOwned,
        {
            async move { client.json::<$input, $out>(Self::route(), &input, options).await }
        }
    };
    (@json [$($vis:tt)*] $call:ident, $call_with:ident, $name:ident, (), $out:ty) => {
        /// Calls this function on the server `client` points at.
        #[allow(dead_code)]
        $($vis)* fn $call(
            client: &$crate::client::Client,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<$out, $crate::client::ClientError>> + '_
        where
            for<'__pikku> $out: $crate::__private::DeserializeOwned,
        {
            Self::$call_with(client, ::core::default::Default::default())
        }
        /// Like `call`, with per-call options.
        #[allow(dead_code)]
        $($vis)* fn $call_with(
            client: &$crate::client::Client,
            options: $crate::client::CallOptions,
        ) -> impl ::core::future::Future<Output = ::core::result::Result<$out, $crate::client::ClientError>> + '_
        where
            for<'__pikku> $out: $crate::__private::DeserializeOwned,
        {
            async move { client.json::<(), $out>(Self::route(), &(), options).await }
        }
    };
    (@stream [$($vis:tt)*] $call:ident, $call_with:ident, $name:ident, ($input:ty), $item:ty) => {
        /// Opens this function's stream on the server `client` points at.
        #[allow(dead_code)]
        $($vis)* fn $call(
            client: &$crate::client::Client,
            input: $input,
        ) -> $crate::client::ClientStream<$item>
        where
            for<'__pikku> $input: $crate::__private::Serialize,
            for<'__pikku> $item: $crate::__private::DeserializeOwned + ::core::marker::Send + 'static,
        {
            Self::$call_with(client, input, ::core::default::Default::default())
        }
        /// Like `call`, with per-call options (e.g. a `Last-Event-ID` to resume from).
        #[allow(dead_code)]
        $($vis)* fn $call_with(
            client: &$crate::client::Client,
            input: $input,
            options: $crate::client::CallOptions,
        ) -> $crate::client::ClientStream<$item>
        where
            for<'__pikku> $input: $crate::__private::Serialize,
            for<'__pikku> $item: $crate::__private::DeserializeOwned + ::core::marker::Send + 'static,
        {
            client.stream::<$input, $item>(Self::route(), &input, options)
        }
    };
    (@stream [$($vis:tt)*] $call:ident, $call_with:ident, $name:ident, (), $item:ty) => {
        /// Opens this function's stream on the server `client` points at.
        #[allow(dead_code)]
        $($vis)* fn $call(client: &$crate::client::Client) -> $crate::client::ClientStream<$item>
        where
            for<'__pikku> $item: $crate::__private::DeserializeOwned + ::core::marker::Send + 'static,
        {
            Self::$call_with(client, ::core::default::Default::default())
        }
        /// Like `call`, with per-call options (e.g. a `Last-Event-ID` to resume from).
        #[allow(dead_code)]
        $($vis)* fn $call_with(
            client: &$crate::client::Client,
            options: $crate::client::CallOptions,
        ) -> $crate::client::ClientStream<$item>
        where
            for<'__pikku> $item: $crate::__private::DeserializeOwned + ::core::marker::Send + 'static,
        {
            client.stream::<(), $item>(Self::route(), &(), options)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Method;

    fn route(method: Method, path: &'static str) -> RouteDef {
        crate::registry::test_route(method, path, "f")
    }

    #[test]
    fn inputs_fill_the_path_then_the_query_or_the_body() {
        let client = Client::new("http://h:1/api/").unwrap();
        let input =
            serde_json::json!({"userId": "a b/é", "n": 3, "tags": ["x", "y"], "none": null});
        let p = PreparedRequest::new(&client, &route(Method::Get, "/users/{userId}/x"), &input)
            .unwrap();
        assert_eq!(
            p.url,
            "http://h:1/api/users/a%20b%2F%C3%A9/x?n=3&tags=x&tags=y"
        );
        assert!(p.body.is_none());
        let p = PreparedRequest::new(&client, &route(Method::Post, "/users/{userId}/x"), &input)
            .unwrap();
        assert_eq!(p.url, "http://h:1/api/users/a%20b%2F%C3%A9/x");
        let body: Value = serde_json::from_slice(p.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"n": 3, "tags": ["x", "y"], "none": null})
        );
        let missing = PreparedRequest::new(&client, &route(Method::Get, "/users/{userId}"), &());
        assert!(matches!(missing, Err(ClientError::Invalid(m)) if m.contains("userId")));
        assert!(Client::new("not a url").is_err());
    }
}
