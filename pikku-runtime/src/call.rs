//! The call protocol between the runtime and the code `#[pikku_func]` generates.
//!
//! The generated handler turns a [`Call`] into a stream of [`Step`]s: first `Open` (a stream
//! starts), `Json` (a JSON answer) or `Fail` (an error before anything was sent), then, for
//! streams, one `Event` per encoded event. The runtime reads the first step to choose the
//! response and hands the rest to [`SseBody`](crate::serving::SseBody). One protocol serves JSON, stream and
//! either-routes, and lets a generator borrow the services it runs with.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::PikkuError;
use crate::input::{self, InputPlan, RawInput};
use crate::sse::{self, Event};

/// One step of a generated handler's output.
///
/// The first step carries the response headers the function added through
/// [`Context::append_response_header`]: they are part of the call's result.
#[derive(Debug)]
pub enum Step {
    /// A stream starts: send the SSE headers, and these.
    Open(HeaderMap),
    /// A JSON answer (already serialized), or the error the function returned, with the
    /// headers to send.
    Json(Result<Bytes, PikkuError>, HeaderMap),
    /// The function failed before anything was sent.
    Fail(PikkuError, HeaderMap),
    /// One encoded SSE event.
    Event(Bytes),
}

/// A generated handler's output.
pub type Steps = Pin<Box<dyn Stream<Item = Step> + Send>>;

/// One call of a function, as the runtime hands it to the generated handler.
pub struct Call {
    /// How to read the function's input off the request (`None`: it takes no input).
    pub(crate) input_plan: Option<&'static InputPlan>,
    /// Whether the request's JSON body contributes to the input.
    pub(crate) has_body: bool,
    pub(crate) services: Arc<dyn Any + Send + Sync>,
    pub(crate) session: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) raw: RawInput,
    pub(crate) ctx: Context,
}

/// What a generated handler's body receives: typed services, input, session and context.
pub struct Prepared<S, I, U> {
    /// The app's services.
    pub services: Arc<S>,
    /// The decoded input (`()` for functions without one).
    pub input: I,
    /// The session (`()` for functions without one).
    pub session: U,
    /// The request context.
    pub ctx: Context,
}

/// How a session parameter is taken from a call: `()` for none, `Arc<T>` for a session `T`.
pub trait SessionArg: Sized + Send + 'static {
    /// Takes the session the runtime resolved.
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError>;
}

impl SessionArg for () {
    fn take(_: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        Ok(())
    }
}

impl<T: Send + Sync + 'static> SessionArg for Arc<T> {
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        session
            .ok_or_else(|| PikkuError::unauthorized("a valid session is required"))?
            .downcast::<T>()
            .map_err(|_| PikkuError::internal("session type differs from the function's"))
    }
}

impl Call {
    fn prepare<S, I, U>(self) -> Result<Prepared<S, I, U>, PikkuError>
    where
        S: Send + Sync + 'static,
        I: DeserializeOwned,
        U: SessionArg,
    {
        let services = self
            .services
            .downcast::<S>()
            .map_err(|_| PikkuError::internal("services type differs from the function's"))?;
        let input = if let Some(plan) = self.input_plan {
            input::decode(plan, &self.raw, self.has_body)?
        } else {
            // `()` deserializes from null: functions without input ignore the request's data.
            serde_json::from_value(serde_json::Value::Null).map_err(PikkuError::internal)?
        };
        Ok(Prepared {
            services,
            input,
            session: U::take(self.session)?,
            ctx: self.ctx,
        })
    }
}

/// Runs a generated handler body with the call's typed parts (generated code calls this).
pub fn run<S, I, U, St, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> St,
    S: Send + Sync + 'static,
    I: DeserializeOwned,
    U: SessionArg,
    St: Stream<Item = Step> + Send + 'static,
{
    match call.prepare::<S, I, U>() {
        Ok(p) => Box::pin(body(p)),
        Err(e) => Box::pin(futures_util::stream::once(async move {
            Step::Fail(e, HeaderMap::new())
        })),
    }
}

/// [`run`] for a function that answers once (JSON): `body` is a future of its one step.
pub fn run_once<S, I, U, Fut, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> Fut,
    S: Send + Sync + 'static,
    I: DeserializeOwned,
    U: SessionArg,
    Fut: Future<Output = Step> + Send + 'static,
{
    run(call, |p| futures_util::stream::once(body(p)))
}

/// A stream starts, with the headers the function added.
pub fn open(ctx: &Context) -> Step {
    Step::Open(ctx.take_response_headers())
}

/// A JSON answer, with the headers the function added.
pub fn json<T: Serialize>(ctx: &Context, value: &T) -> Step {
    Step::Json(
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(PikkuError::internal),
        ctx.take_response_headers(),
    )
}

/// A JSON answer from a fallible function.
pub fn json_result<T: Serialize, E: Into<PikkuError>>(ctx: &Context, value: Result<T, E>) -> Step {
    match value {
        Ok(v) => json(ctx, &v),
        Err(e) => Step::Json(Err(e.into()), ctx.take_response_headers()),
    }
}

/// An error before anything was sent.
pub fn fail<E: Into<PikkuError>>(ctx: &Context, e: E) -> Step {
    Step::Fail(e.into(), ctx.take_response_headers())
}

/// A data-only event.
pub fn frame<T: Serialize>(item: &T) -> Step {
    Step::Event(sse::encode_json(item).unwrap_or_else(|e| sse::encode_error(&e)))
}

/// An event with fields.
pub fn frame_event<T: Serialize>(item: &Event<T>) -> Step {
    Step::Event(item.encode().unwrap_or_else(|e| sse::encode_error(&e)))
}

/// A pre-encoded event, sent as it is.
pub fn frame_raw<T>(item: sse::Frame<T>) -> Step {
    Step::Event(item.into_bytes())
}

/// A fallible pre-encoded event.
pub fn frame_raw_result<T, E: Into<PikkuError>>(item: Result<sse::Frame<T>, E>) -> Step {
    match item {
        Ok(v) => frame_raw(v),
        Err(e) => Step::Event(sse::encode_error(&e.into())),
    }
}

/// A fallible item: `Err` becomes `event: error`.
pub fn frame_result<T: Serialize, E: Into<PikkuError>>(item: Result<T, E>) -> Step {
    match item {
        Ok(v) => frame(&v),
        Err(e) => Step::Event(sse::encode_error(&e.into())),
    }
}

/// A fallible event item.
pub fn frame_event_result<T: Serialize, E: Into<PikkuError>>(item: Result<Event<T>, E>) -> Step {
    match item {
        Ok(v) => frame_event(&v),
        Err(e) => Step::Event(sse::encode_error(&e.into())),
    }
}
