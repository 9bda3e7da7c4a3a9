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
mod signature;

/// Declares a Pikku function: an HTTP route answering with JSON or Server-Sent Events.
///
/// ```ignore
/// /// Stream live updates
/// #[pikku_func(route = "/stream/updates", method = "get", response = "stream", auth = false, tags = ["streaming"])]
/// async fn stream_updates(services: &Services) -> impl Stream<Item = Update> { stream! { ... } }
/// ```
///
/// Keys: `route` (required, `{param}` segments), `method` (`"get"` default, `"post"`,
/// `"put"`, `"patch"`, `"delete"`), `response` (`"json"` default, or `"stream"`), `auth`
/// (default `true`), `tags`, `summary` and `description` (default: the doc comment),
/// `operation_id` (default: the function's name), `heartbeat_ms` (per-route heartbeat).
#[proc_macro_attribute]
pub fn pikku_func(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(attr.into(), item.into()).into()
}

/// Emits `impl Name { ... }` with the items `#[pikku_func]` put in the struct's
/// `#[__pikku_route(...)]` attribute. Not a public API.
///
/// `#[pikku_func]` emits one item next to the function (the route struct) and lets this derive
/// add the `impl`: on a function inside an `impl` block, where a struct is not allowed, the
/// compiler then reports that one item, and the derive never runs.
#[doc(hidden)]
#[proc_macro_derive(__PikkuRoute, attributes(__pikku_route))]
pub fn pikku_route_impl(item: TokenStream) -> TokenStream {
    emit::route_impl(item.into()).into()
}

/// The expansion, on `proc_macro2` tokens so it can be tested and snapshotted.
fn expand(
    attr: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let f: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let msg = format!("`#[pikku_func]` goes on an `async fn`: {e}");
            return syn::Error::new(e.span(), msg).to_compile_error();
        }
    };
    let mut errors = errors::Errors::default();
    let args = args::parse(attr, &mut errors);
    let shape = signature::analyse(&f, &args, &mut errors);
    let bare_yield = body::check_bare_yield(&f, &mut errors);
    match (errors.finish(), shape) {
        (Ok(()), Some(shape)) => emit::emit(&f, &args, &shape),
        (Err(e), _) => {
            // Keep the function so its body still type-checks and the only errors are ours.
            let err = e.to_compile_error();
            let f = if bare_yield {
                body::wrap_body_in_stream(&f)
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
