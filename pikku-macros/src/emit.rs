//! Emitting the route: a struct named like the function, whose `impl` (added by a derive) holds
//! the static descriptor with its `inventory` submission, a handler that is a thin call into
//! `pikku::__private`, and the typed client calls. All behaviour lives in the runtime.
//!
//! Spans: runtime calls that can fail to type-check are spanned at the user's type they are
//! about (so a missing `Serialize` points there); everything else is at the call site.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use crate::args::{CratePath, RateLimit, RouteSpec};
use crate::item::FnItem;
use crate::signature::{Item, Output, Param, Shape, Wrap};

/// The function, unchanged, followed by its route struct.
///
/// `item` is the function's tokens as written: re-emitted as they are (the same tokens `f`
/// was parsed from), which is cheaper for the compiler than printing `f`'s syntax tree back.
pub fn emit(item: TokenStream, f: &FnItem, spec: &RouteSpec, shape: &Shape) -> TokenStream {
    let descriptor = descriptor(f, spec, shape);
    let client_calls = client_calls(f, spec, shape);
    let probe = visibility_probe(f);
    let route_struct = route_struct(f, spec, quote!(#descriptor #client_calls #probe));
    quote! {
        #item

        #route_struct
    }
}

/// `pub struct name {}`, carrying the items of its `impl` for the derive to emit.
///
/// A braced struct lives in the type namespace only, so it can share the function's name
/// (`my_fn::route()`), and it works where a module would not (inside fn bodies). It is `pub`
/// whatever the function's visibility: `routes![f]` refuses a function that is not visible
/// through the struct's [`visibility_probe`], which has the function's visibility.
///
/// The struct is the only item next to the function: its `impl` comes from a derive on it. On
/// a function inside an `impl` block, where a struct is not allowed, the compiler reports that
/// one item, at the attribute ("struct is not supported in `trait`s or `impl`s"), instead of
/// an error per generated item. That is only for the functions the macro cannot tell apart
/// from free ones: a method taking `self`, or a function naming `Self`, gets the macro's own
/// error and no struct.
fn route_struct(f: &FnItem, spec: &RouteSpec, impl_items: TokenStream) -> TokenStream {
    let krate = &spec.krate;
    let name = &f.sig.ident;
    let doc = format!("The route of [`{name}()`](fn@{name}), for explicit registration.");
    // Only a `pub` function's route struct is documented (its doc links to the function).
    let hidden = match f.vis {
        syn::Visibility::Public(_) => quote!(),
        _ => quote!(#[doc(hidden)]),
    };
    quote_spanned! {Span::call_site()=>
        #[doc = #doc]
        #hidden
        #[allow(non_camel_case_types)]
        #[derive(#krate::__private::RouteImpl)]
        #[__pikku_route(#impl_items)]
        pub struct #name {}
    }
}

/// `pub fn route() -> &'static RouteDef`: the static descriptor, submitted to `inventory` so
/// `Pikku::new` finds it.
fn descriptor(f: &FnItem, spec: &RouteSpec, shape: &Shape) -> TokenStream {
    let krate = &spec.krate;
    let rt = quote!(#krate::__private);
    let name = f.sig.ident.to_string();
    let doc = format!("The route descriptor of [`{name}()`](fn@super::{name}).");
    let method = format_ident!("{}", spec.method.variant());
    let path = &spec.path;
    let path_params = &spec.path_params;
    let operation_id = spec.operation_id.clone().unwrap_or_else(|| name.clone());
    let (doc_summary, doc_description) = doc_comment(f);
    let summary = option_str(spec.summary.clone().or(doc_summary));
    let description = option_str(spec.description.clone().or(doc_description));
    let tags = &spec.tags;
    let auth = spec.auth;
    let heartbeat = match spec.heartbeat_ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let rate_limit = rate_limit(spec.rate_limit, &rt);
    let services = &shape.services;
    let services_check = quote_spanned! {services.span()=>
        #rt::type_id::<#services>
    };
    let session_type = match shape.session() {
        Some(t) => quote!(::core::option::Option::Some(#rt::type_id::<#t>)),
        None => quote!(::core::option::Option::None),
    };
    let input_schema = input_schema(shape, krate);
    let (kind, output_schema, item_schema, fallible_items) = response_fields(shape, krate);
    let handler = handler(f, spec, shape);
    quote! {
        #[doc = #doc]
        pub fn route() -> &'static #rt::RouteDef {
            static ROUTE: #rt::RouteDef = #rt::RouteDef {
                method: #rt::Method::#method,
                path: #path,
                path_params: &[#(#path_params),*],
                fn_name: #name,
                operation_id: #operation_id,
                summary: #summary,
                description: #description,
                tags: &[#(#tags),*],
                auth: #auth,
                response: #rt::ResponseKind::#kind,
                heartbeat_ms: #heartbeat,
                rate_limit: #rate_limit,
                services_type: #services_check,
                services_type_name: #rt::type_name::<#services>,
                session_type: #session_type,
                input_schema: #input_schema,
                output_schema: #output_schema,
                item_schema: #item_schema,
                fallible_items: #fallible_items,
                handler: #handler,
                source: (::core::file!(), ::core::line!()),
                __plan: #rt::OnceLock::new(),
            };
            #rt::inventory::submit! { #rt::RegisteredRoute(&ROUTE) }
            &ROUTE
        }
    }
}

fn rate_limit(rate: Option<RateLimit>, rt: &TokenStream) -> TokenStream {
    match rate {
        Some(RateLimit { count, per }) => {
            let per = format_ident!("{per}");
            quote!(::core::option::Option::Some(#rt::RateLimit { count: #count, per: #rt::RatePer::#per }))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// The input's schema function (the runtime also reads the input plan off it), spanned at
/// the input type so a missing `JsonSchema` is reported there.
fn input_schema(shape: &Shape, krate: &CratePath) -> TokenStream {
    match shape.input() {
        Some(t) => {
            let k = krate.at(t.span());
            quote_spanned!(t.span()=> ::core::option::Option::Some(#k::__private::schema_of::<#t>))
        }
        None => quote!(::core::option::Option::None),
    }
}

/// `(kind, output_schema, item_schema, fallible_items)` of the descriptor.
fn response_fields(
    shape: &Shape,
    krate: &CratePath,
) -> (TokenStream, TokenStream, TokenStream, bool) {
    let schema = |t: &Type| {
        let k = krate.at(t.span());
        quote_spanned!(t.span()=> ::core::option::Option::Some(#k::__private::schema_of::<#t>))
    };
    let none = quote!(::core::option::Option::None);
    match &shape.output {
        Output::Json { ty, .. } => (quote!(Json), schema(ty), none.clone(), false),
        Output::Stream { item, .. } => (
            quote!(Stream),
            none.clone(),
            schema(&item.data),
            item.fallible,
        ),
        Output::Either { json, item, .. } => (
            quote!(Either),
            schema(json),
            schema(&item.data),
            item.fallible,
        ),
    }
}

/// The descriptor's `handler`: a plain `fn` the runtime calls per request.
fn handler(f: &FnItem, spec: &RouteSpec, shape: &Shape) -> TokenStream {
    let krate = &spec.krate;
    let rt = quote!(#krate::__private);
    let run = run_call(f, spec, shape);
    quote! {
        {
            fn __pikku_handler(__call: #rt::Call) -> #rt::Steps {
                #run
            }
            __pikku_handler
        }
    }
}

/// The handler's body: one call into the runtime's `run_json` or `run_stream`, which prepare
/// the call (services, input, session), run the permission checks, call the function and turn
/// its output into steps. The expansion names the function and, as marker types, where its
/// parameters go, what it returns and how its stream items are sent; it holds no `async` block
/// or generator, which the compiler would check again on every build of the user's crate.
fn run_call(f: &FnItem, spec: &RouteSpec, shape: &Shape) -> TokenStream {
    let name = &f.sig.ident;
    let services = &shape.services;
    let input_ty: Type = shape
        .input()
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(()));
    let session_arg: Type = match shape.session() {
        Some(t) => syn::parse_quote_spanned!(t.span()=> ::std::sync::Arc<#t>),
        None => syn::parse_quote!(()),
    };
    let krate = &spec.krate;
    let rt = quote!(#krate::__private);
    let params = shape.params.iter().map(|p| match p {
        Param::Input(_) => quote!(#rt::In),
        Param::Session(_) => quote!(#rt::Ses),
        Param::Context => quote!(#rt::Ctx),
    });
    let params = quote!((#(#params,)*));
    let checks = permission_checks(spec, &rt, services, &input_ty, shape.session());
    let fallible = |f: bool| {
        if f {
            quote!(#rt::Fallible)
        } else {
            quote!(#rt::Plain)
        }
    };
    // Two calls, each spanned at the user's type its bounds check, so a missing derive is
    // reported there: `prepare` at the input (`Deserialize`), `run_*` at the output or item
    // (`Serialize`).
    let input_span = shape.input().map_or_else(Span::call_site, |t| t.span());
    let k = krate.at(input_span);
    let prepared = quote_spanned! {input_span=>
        #k::__private::prepare::<#services, #input_ty, #session_arg>(__call)
    };
    let (run, span, m, w) = match &shape.output {
        Output::Json { ty, fallible: m } => (quote!(run_json), ty.span(), fallible(*m), None),
        Output::Stream { item, fallible: m } => (
            quote!(run_stream),
            item.data.span(),
            fallible(*m),
            Some(item_marker(item, &rt)),
        ),
        Output::Either { item, fallible, .. } => {
            let m = if *fallible {
                quote!(#rt::FallibleEither)
            } else {
                quote!(#rt::Either)
            };
            (
                quote!(run_stream),
                item.data.span(),
                m,
                Some(item_marker(item, &rt)),
            )
        }
    };
    let k = krate.at(span);
    let w = w.map(|w| quote_spanned!(span=> #w, _,));
    // The function's name, located at the output: a bound its output fails is reported there.
    let mut name = name.clone();
    name.set_span(name.span().located_at(span));
    quote_spanned! {span=>
        #k::__private::#run::<#services, #input_ty, #session_arg, #params, _, #m, #w _>(#prepared, #checks, #name)
    }
}

/// How the runtime sends a stream item: its wrapping, and whether it is a `Result`.
fn item_marker(item: &Item, rt: &TokenStream) -> TokenStream {
    let w = match item.wrap {
        Wrap::Plain => quote!(#rt::Data),
        Wrap::Event => quote!(#rt::Evented),
        Wrap::Frame => quote!(#rt::Framed),
    };
    if item.fallible {
        quote!(#rt::TryItem<#w>)
    } else {
        w
    }
}

/// The permission checks as the runtime's list: `(check, "name", rest)`, `()` at the end. The
/// first refusal answers 403.
fn permission_checks(
    spec: &RouteSpec,
    rt: &TokenStream,
    services: &Type,
    input_ty: &Type,
    session: Option<&Type>,
) -> TokenStream {
    let session_ty = session.map_or_else(|| quote!(()), |t| quote!(#t));
    spec.permissions.iter().rev().fold(quote!(()), |rest, p| {
        let name = p.to_token_stream().to_string().replace(' ', "");
        quote_spanned!(p.span()=> (#rt::check::<#services, #input_ty, #session_ty, _>(#p), #name, #rest))
    })
}

/// Typed client calls (`f::call(&client, input)`), expanded by the runtime only when its
/// `client` feature is on.
fn client_calls(f: &FnItem, spec: &RouteSpec, shape: &Shape) -> TokenStream {
    let krate = &spec.krate;
    let rt = quote!(#krate::__private);
    let vis = &f.vis;
    let name = &f.sig.ident;
    let input = shape.input().map(|t| quote!(#t));
    let client_methods = match &shape.output {
        Output::Json { ty, .. } => quote!(json, #name, (#input), #ty),
        Output::Stream { item, .. } => {
            let data = &item.data;
            quote!(stream, #name, (#input), #data)
        }
        Output::Either { json, item, .. } => {
            let data = &item.data;
            quote!(either, #name, (#input), #json, #data)
        }
    };
    quote! {
        #rt::client_methods! { [#vis] #client_methods }
    }
}

/// A method as visible as the function, for `routes![f]` to check that the function is visible
/// where it is named (see [`route_of`]).
fn visibility_probe(f: &FnItem) -> TokenStream {
    let vis = &f.vis;
    quote! {
        #[doc(hidden)]
        #[allow(dead_code)]
        #vis fn __pikku_visible(&self) -> bool {
            true
        }
    }
}

/// What `routes![a::f]` expands to for one path: `a::f::route()`, after checking that the
/// function is visible here.
///
/// The route struct is `pub` whatever the function's visibility, so the check calls the
/// struct's [`visibility_probe`]: where that method is not visible, method lookup skips it and
/// finds the fallback trait's, whose return type fails a bound worded for the user. Every token
/// is spanned at the function's name, so the error points there.
pub fn route_of(input: TokenStream) -> TokenStream {
    let path: syn::Path = match syn::parse2(input) {
        Ok(p) => p,
        Err(e) => return e.to_compile_error(),
    };
    let span = path
        .segments
        .last()
        .map_or_else(Span::call_site, |s| s.ident.span());
    quote_spanned! {span=>
        {
            #[allow(dead_code)]
            struct __PikkuPrivate;
            #[allow(dead_code)]
            trait __PikkuProbe {
                fn __pikku_visible(&self) -> __PikkuPrivate {
                    __PikkuPrivate
                }
            }
            impl<T> __PikkuProbe for T {}
            #[diagnostic::on_unimplemented(
                message = "`routes![]` cannot name the route of `{Self}`: the function is private here\nhelp: make the function `pub` (or `pub(crate)`) so `routes![]` can name its route",
                label = "private function"
            )]
            trait __PikkuVisible<T> {}
            // Two impls, so the compiler takes `T` from the argument, not from the one impl.
            impl<R> __PikkuVisible<bool> for R {}
            impl<R> __PikkuVisible<u8> for R {}
            fn __pikku_check<R: __PikkuVisible<T>, T>(_: T) {}
            __pikku_check::<#path, _>(#path {}.__pikku_visible());
            #path::route()
        }
    }
}

/// What `#[derive(RouteImpl)]` emits: `impl Name { <the tokens of #[__pikku_route(...)]> }`.
///
/// Reads only the item's top-level tokens (`#`, `[...]`, `struct`, the name): the attribute's
/// contents, most of the expansion, are handed back as one group without being walked or
/// parsed, so every function's descriptor does not cross the compiler's macro interface
/// token by token a second time.
pub fn route_impl(item: TokenStream) -> TokenStream {
    use proc_macro2::{Delimiter, TokenTree};
    let mut items = None;
    let mut name = None;
    let mut after_struct = false;
    for tt in item {
        match tt {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket && items.is_none() => {
                let mut inner = g.stream().into_iter();
                if let (Some(TokenTree::Ident(path)), Some(TokenTree::Group(list))) =
                    (inner.next(), inner.next())
                {
                    if path == "__pikku_route" {
                        items = Some(list.stream());
                    }
                }
            }
            TokenTree::Ident(i) if after_struct => {
                name = Some(i);
                break;
            }
            TokenTree::Ident(i) if i == "struct" => after_struct = true,
            _ => {}
        }
    }
    match (name, items) {
        (Some(name), Some(items)) => quote_spanned! {Span::call_site()=> impl #name { #items } },
        _ => TokenStream::new(),
    }
}

fn option_str(s: Option<String>) -> TokenStream {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

/// The doc comment as (summary: first paragraph, description: the rest).
fn doc_comment(f: &FnItem) -> (Option<String>, Option<String>) {
    let lines: Vec<String> = f
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let text = lines.join("\n");
    let text = text.trim();
    if text.is_empty() {
        return (None, None);
    }
    match text.split_once("\n\n") {
        Some((first, rest)) => (
            Some(first.replace('\n', " ")),
            Some(rest.trim().to_string()).filter(|s| !s.is_empty()),
        ),
        None => (Some(text.replace('\n', " ")), None),
    }
}
