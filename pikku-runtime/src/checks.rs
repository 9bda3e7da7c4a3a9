//! The trait bounds of the code `#[pikku_func]` generates, written so a missing derive is
//! reported on the user's type with a message that names the derive (as axum's
//! `#[debug_handler]` does with spanned assertions).
//!
//! Each trait is implemented for every type that has the real bound, so it costs nothing; its
//! `#[diagnostic::on_unimplemented]` is what the compiler shows when the bound is missing. The
//! generated code calls the functions below with their path spanned at the user's type, so
//! the error points there and not at the attribute or at the runtime's internals.

use futures_util::Stream;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;

use crate::call::{self, Call, Prepared, SessionArg, Step, Steps};
use crate::context::Context;
use crate::error::PikkuError;
use crate::sse::{self, Event};

/// The input of a Pikku function: read from the path, the query and the JSON body.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the input of a Pikku function: it does not implement `Deserialize`",
    label = "add `#[derive(Deserialize)]` to `{Self}`",
    note = "an input is read from the path, the query string and the JSON body: derive `Deserialize` and `JsonSchema` (both in `pikku::prelude`)"
)]
pub trait PikkuInput: DeserializeOwned {}
impl<T: DeserializeOwned> PikkuInput for T {}

/// A type described in the OpenAPI document (inputs, outputs, stream items).
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no JSON Schema: it does not implement `JsonSchema`",
    label = "add `#[derive(JsonSchema)]` to `{Self}`",
    note = "inputs, outputs and stream items are described in the OpenAPI document: derive `JsonSchema` (`pikku::prelude::JsonSchema`, from `schemars`)"
)]
pub trait PikkuSchema: JsonSchema {}
impl<T: JsonSchema + ?Sized> PikkuSchema for T {}

/// An output or stream item: sent as JSON.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be sent by a Pikku function: it does not implement `Serialize`",
    label = "add `#[derive(Serialize)]` to `{Self}`",
    note = "outputs and stream items are sent as JSON: derive `Serialize` and `JsonSchema` (both in `pikku::prelude`)"
)]
pub trait PikkuOutput: Serialize {}
impl<T: Serialize + ?Sized> PikkuOutput for T {}

/// The schema function of an output or item type, for descriptors.
///
/// It is also the input's schema function: the runtime reads the input plan off it (see
/// [`InputPlan::from_schema_fn`](crate::input::InputPlan::from_schema_fn)).
pub fn schema_of<T: PikkuSchema>(g: &mut SchemaGenerator) -> Schema {
    // Not through `registry::schema_of`: one instance per type, not two.
    g.subschema_for::<T>()
}

/// Runs a generated handler body with the call's typed parts: the body's stream of steps, or
/// the one failure step if the call cannot be prepared (services, input or session).
///
/// This is the only generic layer per function (no wrapper around a `call::` function), so
/// each `#[pikku_func]` compiles one instance of it.
pub fn run<S, I, U, St, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> St,
    S: Send + Sync + 'static,
    I: PikkuInput,
    U: SessionArg,
    St: Stream<Item = Step> + Send + 'static,
{
    match call.prepare::<S, I, U>() {
        Ok(p) => Box::pin(body(p)),
        Err(e) => call::failed(e),
    }
}

/// [`run`] for a function that answers once (JSON): `body` is a future of its one step.
pub fn run_once<S, I, U, Fut, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> Fut,
    S: Send + Sync + 'static,
    I: PikkuInput,
    U: SessionArg,
    Fut: Future<Output = Step> + Send + 'static,
{
    match call.prepare::<S, I, U>() {
        Ok(p) => Box::pin(futures_util::stream::once(body(p))),
        Err(e) => call::failed(e),
    }
}

/// A JSON answer, with the headers the function added.
pub fn json<T: PikkuOutput>(ctx: &Context, value: &T) -> Step {
    call::json_step(ctx, serde_json::to_vec(value))
}

/// A JSON answer from a fallible function.
pub fn json_result<T: PikkuOutput, E: Into<PikkuError>>(
    ctx: &Context,
    value: Result<T, E>,
) -> Step {
    match value {
        Ok(v) => call::json_step(ctx, serde_json::to_vec(&v)),
        Err(e) => call::json_error(ctx, e.into()),
    }
}

/// A data-only event.
pub fn frame<T: PikkuOutput>(item: &T) -> Step {
    call::event_step(sse::encode_json(item))
}

/// An event with fields.
pub fn frame_event<T: PikkuOutput>(item: &Event<T>) -> Step {
    call::event_step(item.encode())
}

/// A fallible item: `Err` becomes `event: error`.
pub fn frame_result<T: PikkuOutput, E: Into<PikkuError>>(item: Result<T, E>) -> Step {
    match item {
        Ok(v) => call::event_step(sse::encode_json(&v)),
        Err(e) => call::event_error(e.into()),
    }
}

/// A fallible event item.
pub fn frame_event_result<T: PikkuOutput, E: Into<PikkuError>>(item: Result<Event<T>, E>) -> Step {
    match item {
        Ok(v) => call::event_step(v.encode()),
        Err(e) => call::event_error(e.into()),
    }
}
