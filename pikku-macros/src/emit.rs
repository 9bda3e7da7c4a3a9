//! Emitting the route: a static descriptor, a module naming it, an `inventory` submission, and a
//! handler that is a thin call into `pikku::__private`. All behaviour lives in the runtime.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, Type};

use crate::args::{Args, Method};
use crate::signature::{Item, Output, Param, Shape, Wrap};

pub fn emit(f: &ItemFn, args: &Args, shape: &Shape) -> TokenStream {
    let rt = quote!(::pikku::__private);
    let name = &f.sig.ident;
    let vis = &f.vis;
    let name_str = name.to_string();
    let route = args.route.as_ref().map(|r| r.value()).unwrap_or_default();
    let path_params = &args.path_params;
    let method = format_ident!(
        "{}",
        match args.method {
            Method::Get => "Get",
            Method::Post => "Post",
            Method::Put => "Put",
            Method::Patch => "Patch",
            Method::Delete => "Delete",
        }
    );
    let (doc_summary, doc_description) = doc_comment(f);
    let summary = option_str(args.summary.clone().or(doc_summary));
    let description = option_str(args.description.clone().or(doc_description));
    let operation_id = args
        .operation_id
        .clone()
        .unwrap_or_else(|| name_str.clone());
    let tags = &args.tags;
    let auth = args.auth();
    let heartbeat = match args.heartbeat_ms {
        Some(ms) => quote!(::core::option::Option::Some(#ms)),
        None => quote!(::core::option::Option::None),
    };
    let rate_limit = match args.rate_limit {
        Some((count, per)) => {
            let per = format_ident!("{per}");
            quote!(::core::option::Option::Some(#rt::RateLimit { count: #count, per: #rt::RatePer::#per }))
        }
        None => quote!(::core::option::Option::None),
    };
    let services = &shape.services;
    let input_ty: Type = shape
        .input()
        .cloned()
        .unwrap_or_else(|| syn::parse_quote!(()));
    let session_arg: Type = match shape.session() {
        Some(t) => syn::parse_quote_spanned!(t.span()=> ::std::sync::Arc<#t>),
        None => syn::parse_quote!(()),
    };
    let session_type = match shape.session() {
        Some(t) => quote!(::core::option::Option::Some(#rt::type_id::<#t>)),
        None => quote!(::core::option::Option::None),
    };
    let (input_schema, input_plan) = match shape.input() {
        Some(t) => (
            quote_spanned!(t.span()=> ::core::option::Option::Some(::pikku::__private::input_fns::<#t>().0)),
            quote_spanned!(t.span()=> ::core::option::Option::Some(::pikku::__private::input_fns::<#t>().1)),
        ),
        None => (
            quote!(::core::option::Option::None),
            quote!(::core::option::Option::None),
        ),
    };
    let call_args = shape.params.iter().map(|p| match p {
        Param::Input(_) => quote!(__p.input),
        Param::Session(_) => quote!(&*__p.session),
        Param::Context => quote!(&__p.ctx),
    });
    let schema = |t: &Type| quote_spanned!(t.span()=> ::core::option::Option::Some(::pikku::__private::schema_of::<#t>));
    let none = quote!(::core::option::Option::None);
    let (kind, output_schema, item_schema, fallible_items, body) = match &shape.output {
        Output::Json { ty, fallible } => (
            quote!(Json),
            schema(ty),
            none.clone(),
            false,
            json_body(ty, *fallible),
        ),
        Output::Stream { item, fallible } => (
            quote!(Stream),
            none.clone(),
            schema(&item.data),
            item.fallible,
            {
                let unwrap = unwrap_fallible(*fallible);
                let events = stream_events(item, quote!(__out));
                quote!(#unwrap #events)
            },
        ),
        Output::Either {
            json,
            item,
            fallible,
        } => (
            quote!(Either),
            schema(json),
            schema(&item.data),
            item.fallible,
            {
                let unwrap = unwrap_fallible(*fallible);
                let events = stream_events(item, quote!(__s));
                let json_fn = quote_spanned!(json.span()=> ::pikku::__private::json);
                quote! {
                    #unwrap
                    match __out {
                        ::pikku::Reply::Json(__v) => yield #json_fn(&__v),
                        ::pikku::Reply::Stream(__s) => { #events }
                    }
                }
            },
        ),
    };
    // Each check runs before the function; the first refusal answers 403.
    // JSON functions answer once: a plain `async` block (`run_once`) costs the compiler far
    // less than a `stream!` generator, and 3 of 4 functions in a typical API are JSON.
    let once = matches!(shape.output, Output::Json { .. });
    let permission_checks = args.permissions.iter().map(|p| {
        let name = p.to_token_stream().to_string().replace(' ', "");
        let refuse = if once {
            quote!(return #rt::fail(#rt::forbidden(#name));)
        } else {
            quote!(yield #rt::fail(#rt::forbidden(#name)); return;)
        };
        quote_spanned! {p.span()=>
            if !#p(&*__p.services, &__p.input, &*__p.session).await {
                #refuse
            }
        }
    });
    let permission_checks = quote!(#(#permission_checks)*);
    // The call into the runtime is spanned at the input type (its literal tokens, not the
    // user's code inside), so a missing `Deserialize` is reported there.
    let input_span = shape.input().map_or_else(Span::call_site, |t| t.span());
    let handler_body = if once {
        quote_spanned! {input_span=>
            ::pikku::__private::run_once(__call, |__p: ::pikku::__private::Prepared<#services, #input_ty, #session_arg>| async move {
                #permission_checks
                let __out = #name(&*__p.services #(, #call_args)*).await;
                #body
            })
        }
    } else {
        quote_spanned! {input_span=>
            ::pikku::__private::run(__call, |__p: ::pikku::__private::Prepared<#services, #input_ty, #session_arg>| {
                ::pikku::__private::stream! {
                    #permission_checks
                    let __out = #name(&*__p.services #(, #call_args)*).await;
                    #body
                }
            })
        }
    };
    let mod_doc =
        format!("The route of [`{name_str}()`](fn@{name_str}), for explicit registration.");
    let route_doc = format!("The route descriptor of [`{name_str}()`](fn@super::{name_str}).");
    // Typed client calls (`f::call(&client, input)`), expanded by the runtime only when its
    // `client` feature is on.
    let client_input = shape.input().map(|t| quote!(#t));
    let client_methods = match &shape.output {
        Output::Json { ty, .. } => quote!(json, #name, (#client_input), #ty),
        Output::Stream { item, .. } => {
            let data = &item.data;
            quote!(stream, #name, (#client_input), #data)
        }
        Output::Either { json, item, .. } => {
            let data = &item.data;
            quote!(either, #name, (#client_input), #json, #data)
        }
    };
    // Only a `pub` function's route struct is documented (its doc links to the function).
    let hidden = match vis {
        syn::Visibility::Public(_) => quote!(),
        _ => quote!(#[doc(hidden)]),
    };
    let services_span = services.span();
    let services_check = quote_spanned! {services_span=>
        #rt::type_id::<#services>
    };

    // A braced struct lives in the type namespace only, so it can share the function's name
    // (`my_fn::route()`), and it works where a module would not (inside fn bodies). It is `pub`
    // whatever the function's visibility: `routes![f]` names the function first, so a private
    // one is refused as a *function*, not as this struct.
    //
    // The struct is the only item next to the function: its `impl` (holding the descriptor,
    // its `inventory` submission and the client calls) comes from a derive on it. On a
    // function inside an `impl` block, where a struct is not allowed, the compiler reports that
    // one item, at the attribute ("struct is not supported in `trait`s or `impl`s"), instead
    // of an error per generated item.
    let route_items = quote! {
        #[doc = #route_doc]
        pub fn route() -> &'static #rt::RouteDef {
            static ROUTE: #rt::RouteDef = #rt::RouteDef {
                method: #rt::Method::#method,
                path: #route,
                path_params: &[#(#path_params),*],
                fn_name: #name_str,
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
                input_plan: #input_plan,
                output_schema: #output_schema,
                item_schema: #item_schema,
                fallible_items: #fallible_items,
                handler: {
                    fn __pikku_handler(__call: #rt::Call) -> #rt::Steps {
                        #handler_body
                    }
                    __pikku_handler
                },
                source: (::core::file!(), ::core::line!()),
                __plan: #rt::OnceLock::new(),
            };
            #rt::inventory::submit! { #rt::RegisteredRoute(&ROUTE) }
            &ROUTE
        }

        #rt::client_methods! { [#vis] #client_methods }
    };
    let route_struct = quote_spanned! {Span::call_site()=>
        #[doc = #mod_doc]
        #hidden
        #[allow(non_camel_case_types)]
        #[derive(::pikku::__private::RouteImpl)]
        #[__pikku_route(#route_items)]
        pub struct #name {}
    };
    quote! {
        #f

        #route_struct
    }
}

/// What `#[derive(RouteImpl)]` emits: `impl Name { <the tokens of #[__pikku_route(...)]> }`.
pub fn route_impl(item: TokenStream) -> TokenStream {
    let input: syn::DeriveInput = match syn::parse2(item) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let name = &input.ident;
    let items = input.attrs.iter().find_map(|a| match &a.meta {
        syn::Meta::List(l) if l.path.is_ident("__pikku_route") => Some(&l.tokens),
        _ => None,
    });
    match items {
        Some(items) => quote_spanned! {Span::call_site()=> impl #name { #items } },
        None => TokenStream::new(),
    }
}

// Calls are spanned at the user's type, so a missing `Serialize` points there.
fn json_body(ty: &Type, fallible: bool) -> TokenStream {
    if fallible {
        let f = quote_spanned!(ty.span()=> ::pikku::__private::json_result);
        quote!(#f(__out))
    } else {
        let f = quote_spanned!(ty.span()=> ::pikku::__private::json);
        quote!(#f(&__out))
    }
}

fn unwrap_fallible(fallible: bool) -> TokenStream {
    if fallible {
        quote! {
            let __out = match __out {
                ::core::result::Result::Ok(__v) => __v,
                ::core::result::Result::Err(__e) => {
                    yield ::pikku::__private::fail(__e);
                    return;
                }
            };
        }
    } else {
        quote!()
    }
}

fn stream_events(item: &Item, stream: TokenStream) -> TokenStream {
    let span = item.data.span();
    let frame = match (item.wrap, item.fallible) {
        (Wrap::Plain, false) => quote_spanned!(span=> ::pikku::__private::frame(&__item)),
        (Wrap::Event, false) => quote_spanned!(span=> ::pikku::__private::frame_event(&__item)),
        (Wrap::Frame, false) => quote_spanned!(span=> ::pikku::__private::frame_raw(__item)),
        (Wrap::Plain, true) => quote_spanned!(span=> ::pikku::__private::frame_result(__item)),
        (Wrap::Event, true) => {
            quote_spanned!(span=> ::pikku::__private::frame_event_result(__item))
        }
        (Wrap::Frame, true) => quote_spanned!(span=> ::pikku::__private::frame_raw_result(__item)),
    };
    quote! {
        yield ::pikku::__private::Step::Open;
        for await __item in #stream {
            yield #frame;
        }
    }
}

fn option_str(s: Option<String>) -> TokenStream {
    match s {
        Some(s) => quote!(::core::option::Option::Some(#s)),
        None => quote!(::core::option::Option::None),
    }
}

/// The doc comment as (summary: first paragraph, description: the rest).
fn doc_comment(f: &ItemFn) -> (Option<String>, Option<String>) {
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
