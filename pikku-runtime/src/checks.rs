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
use crate::input::InputPlan;
use crate::registry::SchemaFn;
use crate::sse::Event;

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
pub fn schema_of<T: PikkuSchema>(g: &mut SchemaGenerator) -> Schema {
    crate::registry::schema_of::<T>(g)
}

/// The schema function and input plan of an input type, for descriptors. One function for
/// both, so a missing `JsonSchema` is reported once.
pub const fn input_fns<T: PikkuSchema>() -> (SchemaFn, fn() -> InputPlan) {
    (crate::registry::schema_of::<T>, InputPlan::of::<T>)
}

/// [`call::run`], with the input bound spelled for users.
pub fn run<S, I, U, St, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> St,
    S: Send + Sync + 'static,
    I: PikkuInput,
    U: SessionArg,
    St: Stream<Item = Step> + Send + 'static,
{
    call::run(call, body)
}

/// [`call::run_once`], with the input bound spelled for users.
pub fn run_once<S, I, U, Fut, F>(call: Call, body: F) -> Steps
where
    F: FnOnce(Prepared<S, I, U>) -> Fut,
    S: Send + Sync + 'static,
    I: PikkuInput,
    U: SessionArg,
    Fut: Future<Output = Step> + Send + 'static,
{
    call::run_once(call, body)
}

/// [`call::json`].
pub fn json<T: PikkuOutput>(ctx: &Context, value: &T) -> Step {
    call::json(ctx, value)
}

/// [`call::json_result`].
pub fn json_result<T: PikkuOutput, E: Into<PikkuError>>(
    ctx: &Context,
    value: Result<T, E>,
) -> Step {
    call::json_result(ctx, value)
}

/// [`call::frame`].
pub fn frame<T: PikkuOutput>(item: &T) -> Step {
    call::frame(item)
}

/// [`call::frame_event`].
pub fn frame_event<T: PikkuOutput>(item: &Event<T>) -> Step {
    call::frame_event(item)
}

/// [`call::frame_result`].
pub fn frame_result<T: PikkuOutput, E: Into<PikkuError>>(item: Result<T, E>) -> Step {
    call::frame_result(item)
}

/// [`call::frame_event_result`].
pub fn frame_event_result<T: PikkuOutput, E: Into<PikkuError>>(item: Result<Event<T>, E>) -> Step {
    call::frame_event_result(item)
}
