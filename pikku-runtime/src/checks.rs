//! The trait bounds of the code `#[pikku_func]` generates, written so a missing derive is
//! reported on the user's type with a message that names the derive (as axum's
//! `#[debug_handler]` does with spanned assertions).
//!
//! Each trait is implemented for every type that has the real bound, so it costs nothing; its
//! `#[diagnostic::on_unimplemented]` is what the compiler shows when the bound is missing. The
//! generated code calls the runtime with paths spanned at the user's type (its `invoke`
//! module), so the error points there and not at the attribute or the runtime.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
