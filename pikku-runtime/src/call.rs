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
use serde::de::DeserializeOwned;

use crate::context::Context;
use crate::error::PikkuError;
use crate::input::{self, InputPlan, RawInput};
use crate::sse;

/// One step of a generated handler's output.
///
/// The first step carries the response headers the function added through
/// [`Context::append_response_header`]: they are part of the call's result.
#[derive(Debug)]
///
/// The first steps are boxed so that a `Step` is as small as an `Event`: every event of a
/// stream is moved through the generator as a `Step`, and a header map and an error inline
/// made each of those moves a 200-byte copy.
pub enum Step {
    /// A stream starts: send the SSE headers, and these.
    Open(Box<HeaderMap>),
    /// A JSON answer (already serialized), or the error the function returned, with the
    /// headers to send.
    Json(Box<(Result<Bytes, PikkuError>, HeaderMap)>),
    /// The function failed before anything was sent, with the headers to send.
    Fail(Box<(PikkuError, HeaderMap)>),
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
pub trait SessionArg: Sized + Send + Sync + 'static {
    /// What the function borrows: `()` or `T`.
    type Target: Send + Sync + 'static;
    /// Takes the session the runtime resolved.
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError>;
    /// The session as the function borrows it.
    fn target(&self) -> &Self::Target;
}

impl SessionArg for () {
    type Target = ();
    fn take(_: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        Ok(())
    }
    fn target(&self) -> &() {
        self
    }
}

impl<T: Send + Sync + 'static> SessionArg for Arc<T> {
    type Target = T;
    fn target(&self) -> &T {
        self
    }
    fn take(session: Option<Arc<dyn Any + Send + Sync>>) -> Result<Self, PikkuError> {
        session
            .ok_or_else(|| PikkuError::unauthorized("a valid session is required"))?
            .downcast::<T>()
            .map_err(|_| PikkuError::internal("session type differs from the function's"))
    }
}

impl Call {
    /// The call's typed parts. Generic, so compiled once per function: it only calls the
    /// shared pieces (one downcast per services type, one session take per session type, one
    /// deserialization per input type); the input merging is not generic.
    pub(crate) fn prepare<S, I, U>(self) -> Result<Prepared<S, I, U>, PikkuError>
    where
        S: Send + Sync + 'static,
        I: DeserializeOwned,
        U: SessionArg,
    {
        let services = downcast_services::<S>(self.services)?;
        let input = input::from_value(input_value(self.input_plan, &self.raw, self.has_body)?)?;
        Ok(Prepared {
            services,
            input,
            session: U::take(self.session)?,
            ctx: self.ctx,
        })
    }
}

fn downcast_services<S: Send + Sync + 'static>(
    services: Arc<dyn Any + Send + Sync>,
) -> Result<Arc<S>, PikkuError> {
    services
        .downcast::<S>()
        .map_err(|_| PikkuError::internal("services type differs from the function's"))
}

/// The input as one JSON value: merged from the request, or `null` for a function without
/// input (`()` deserializes from it, so functions without input ignore the request's data).
fn input_value(
    plan: Option<&'static InputPlan>,
    raw: &RawInput,
    has_body: bool,
) -> Result<serde_json::Value, PikkuError> {
    match plan {
        Some(plan) => input::merge(plan, raw, has_body),
        None => Ok(serde_json::Value::Null),
    }
}

/// The steps of a call that failed before its function ran. Not generic: one type and one
/// vtable for every function's error path.
pub(crate) fn failed(e: PikkuError) -> Steps {
    Box::pin(futures_util::stream::once(std::future::ready(Step::Fail(
        Box::new((e, HeaderMap::new())),
    ))))
}

/// A stream starts, with the headers the function added.
pub(crate) fn open(ctx: &Context) -> Step {
    Step::Open(Box::new(ctx.take_response_headers()))
}

/// An error before anything was sent.
pub(crate) fn fail<E: Into<PikkuError>>(ctx: &Context, e: E) -> Step {
    Step::Fail(Box::new((e.into(), ctx.take_response_headers())))
}

/// A JSON answer from its serialization, with the headers the function added. The generic
/// wrappers in [`crate::checks`] only serialize; building the step is compiled once.
pub(crate) fn json_step(ctx: &Context, bytes: serde_json::Result<Vec<u8>>) -> Step {
    Step::Json(Box::new((
        bytes.map(Bytes::from).map_err(PikkuError::internal),
        ctx.take_response_headers(),
    )))
}

/// The error a fallible JSON function returned.
pub(crate) fn json_error(ctx: &Context, e: PikkuError) -> Step {
    Step::Json(Box::new((Err(e), ctx.take_response_headers())))
}

/// An encoded event, or `event: error` if encoding failed. Inlined into the generic
/// per-item wrappers: it runs once per event.
#[inline]
pub(crate) fn event_step(encoded: Result<Bytes, PikkuError>) -> Step {
    Step::Event(encoded.unwrap_or_else(|e| sse::encode_error(&e)))
}

/// A failed stream item: `event: error`.
pub(crate) fn event_error(e: PikkuError) -> Step {
    Step::Event(sse::encode_error(&e))
}

/// A pre-encoded event, sent as it is.
#[inline]
pub(crate) fn frame_raw<T>(item: sse::Frame<T>) -> Step {
    Step::Event(item.into_bytes())
}
