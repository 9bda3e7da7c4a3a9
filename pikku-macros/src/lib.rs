//! The `#[pikku_func]` attribute of Pikku for Rust.
//!
//! This crate only parses, validates and emits: every behaviour lives in `pikku-runtime`
//! (crate name `pikku`), which re-exports the attribute. See its docs for the signature
//! convention and the keys.

use proc_macro::TokenStream;

mod args;
mod body;
mod emit;
mod errors;
mod item;
mod signature;

/// Declares a Pikku function: an HTTP route answering with JSON or Server-Sent Events.
///
/// ```ignore
/// /// Stream live updates
/// #[pikku_func(route = "/stream/updates", method = "get", response = "stream", auth = false, tags = ["streaming"])]
/// async fn stream_updates(services: &Services) -> impl Stream<Item = Update> { stream! { ... } }
/// ```
///
/// The signature is `async fn name(services: &S [, input: I] [, session: &U] [, ctx: &Context])`.
///
/// Keys (only `route` is required):
///
/// - `route = "/users/{userId}"`: the path; each `{param}` segment fills a field of the input.
/// - `method`: `"get"` (default), `"post"`, `"put"`, `"patch"` or `"delete"`, in any case.
/// - `response`: `"json"` (default) or `"stream"` (Server-Sent Events); a function returning
///   `Reply<T, S>` chooses at run time.
/// - `auth`: `true` (default: requests need a valid session) or `false`.
/// - `tags = ["a", "b"]`: OpenAPI tags.
/// - `summary`, `description`: OpenAPI texts; default: the doc comment's first paragraph, and
///   the rest.
/// - `operation_id`: OpenAPI `operationId` (ASCII letters, digits, `_`); default: the
///   function's name.
/// - `heartbeat_ms`: this route's heartbeat interval in milliseconds (`0`: none); default: the
///   app's setting.
/// - `permissions = [is_owner, checks::active]`: `async fn(&S, &I, &U) -> bool` checks run in
///   order before the function (which must take a session); the first `false` answers 403.
/// - `rate_limit = "10/s"`: requests per client IP, per second (`s`), minute (`m`) or hour
///   (`h`); 429 beyond it.
/// - `crate = "my_reexport::pikku"`: the path generated code names pikku by (default
///   `::pikku`), for crates that re-export pikku to users who do not depend on it.
#[proc_macro_attribute]
pub fn pikku_func(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// Emits `impl Name { ... }` with the items `#[pikku_func]` put in the struct's
/// `#[__pikku_route(...)]` attribute. Not a public API.
///
/// `#[pikku_func]` emits one item next to the function (the route struct) and lets this derive
/// add the `impl`: on a function inside an `impl` block, where a struct is not allowed, the
/// compiler then reports that one item, and the derive never runs. (A method taking `self`, or
/// a function naming `Self`, is reported by `#[pikku_func]` itself and gets no struct.)
#[doc(hidden)]
#[proc_macro_derive(__PikkuRoute, attributes(__pikku_route))]
pub fn pikku_route_impl(item: TokenStream) -> TokenStream {
    emit::route_impl(item.into()).into()
}

/// One path of `routes![...]`: its route, after checking that the function is visible where
/// it is named (a private one is an error saying to make it `pub`). Not a public API.
#[doc(hidden)]
#[proc_macro]
pub fn __route_of(path: TokenStream) -> TokenStream {
    emit::route_of(path.into()).into()
}

/// The expansion, on `proc_macro2` tokens so it can be tested and snapshotted.
fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let f = match item::FnItem::parse(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("`#[pikku_func]` goes on an `async fn`: {e}");
            return syn::Error::new(e.span(), msg).to_compile_error();
        }
    };
    let mut errors = errors::Errors::default();
    // An unreadable attribute is reported; the signature is still checked, against defaults.
    let spec = match args::parse(attr, &mut errors) {
        Some(raw) => raw.validate(&mut errors),
        None => args::RouteSpec::default(),
    };
    let shape = signature::analyse(&f, &spec, &mut errors);
    let bare_yield = body::check_bare_yield(&f, &mut errors);
    match (errors.finish(), shape) {
        (Ok(()), Some(shape)) => emit::emit(item, &f, &spec, &shape),
        (Err(e), _) => {
            // Keep the function so its body still type-checks and the only errors are ours.
            let err = e.to_compile_error();
            let f = if bare_yield {
                body::wrap_body_in_stream(f, &spec.krate)
            } else {
                f
            };
            quote::quote!(#f #err)
        }
        (Ok(()), None) => quote::quote!(#f),
    }
}

#[cfg(test)]
mod tests;
