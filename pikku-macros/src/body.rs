//! Checks of the function's body that the compiler reports poorly on its own.

use syn::ExprYield;
use syn::visit::Visit;

use crate::args::CratePath;
use crate::errors::Errors;
use crate::item::FnItem;

/// A `yield` outside `stream!`/`try_stream!` (macro bodies are not parsed, so every `yield`
/// the visitor sees is bare). Stable Rust rejects it (E0658, "yield syntax is experimental")
/// without saying what to write instead; this adds the rewrite. Returns whether one was found.
pub fn check_bare_yield(f: &FnItem, errors: &mut Errors) -> bool {
    if !f.body_mentions("yield") {
        return false;
    }
    let Some(block) = f.parse_block() else {
        return false;
    };
    let mut finder = FirstYield(None);
    finder.visit_block(&block);
    let Some(span) = finder.0 else {
        return false;
    };
    let name = &f.sig.ident;
    errors.push(syn::Error::new(
        span,
        format!(
            "`yield` only works inside `stream!` or `try_stream!` (stable Rust has no generators)\n\
             help: build the stream in the body and return it: `async fn {name}(..) -> impl Stream<Item = T> {{ stream! {{ ... yield item; ... }} }}` (`try_stream!` to use `?`, with `Stream<Item = Result<T, E>>`; both are in `pikku::prelude`)"
        ),
    ));
    true
}

/// The function with its body inside `stream! { ... }`: what the user meant, so the only errors
/// left are the `yield` one and rustc's feature gate (not "async coroutines are not supported").
pub fn wrap_body_in_stream(f: FnItem, krate: &CratePath) -> FnItem {
    let span = f.body.span();
    let k = krate.at(span);
    let stmts = f.body_tokens();
    let mut body = proc_macro2::Group::new(
        proc_macro2::Delimiter::Brace,
        quote::quote_spanned! {span=> #k::stream! { #stmts } },
    );
    body.set_span(span);
    FnItem { body, ..f }
}

struct FirstYield(Option<proc_macro2::Span>);

impl<'ast> Visit<'ast> for FirstYield {
    fn visit_expr_yield(&mut self, y: &'ast ExprYield) {
        if self.0.is_none() {
            self.0 = Some(y.yield_token.span);
        }
    }
    // A nested item's body is its own.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}
