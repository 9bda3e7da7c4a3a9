//! Reading the function's signature: which parameter is what, and what it returns.
//!
//! The convention: `async fn name(services: &S [, input: I] [, session: &U] [, ctx: &Context])`.
//! The first parameter is the services; a by-value parameter is the input; a reference whose
//! type is named `Context` is the request context; any other reference is the session.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{FnArg, GenericArgument, PathArguments, ReturnType, Type, TypeParamBound};

use crate::item::FnItem;

use crate::args::{ResponseKey, RouteSpec};
use crate::errors::Errors;

/// One parameter after the services, in the user's order.
#[derive(Debug, Clone)]
pub enum Param {
    /// The input (by value): query, path params and body.
    Input(Type),
    /// The session (`&U`, any reference not named `Context`).
    Session(Type),
    /// The request context (`&Context`).
    Context,
}

/// How a stream item is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrap {
    /// `T`: serialized as data.
    Plain,
    /// `Event<T>`: with `id`/`event`/`retry`.
    Event,
    /// `Frame<T>`: already encoded (event hub fan-out).
    Frame,
}

/// How a stream item becomes an event.
#[derive(Debug, Clone)]
pub struct Item {
    /// The item's data type (what is serialized).
    pub data: Type,
    /// What wraps the data.
    pub wrap: Wrap,
    /// Items are `Result<_, E>`.
    pub fallible: bool,
}

/// What the function returns.
// Built once per macro call: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Output {
    /// One JSON answer of `ty` (`fallible`: returned in a `Result`).
    Json {
        /// The answer's type.
        ty: Type,
        /// The function returns `Result<ty, E>`.
        fallible: bool,
    },
    /// A stream of events.
    Stream {
        /// How each item becomes an event.
        item: Item,
        /// The function returns `Result<stream, E>`.
        fallible: bool,
    },
    /// `Reply<T, S>`: JSON or a stream, chosen at run time.
    Either {
        /// The JSON answer's type.
        json: Type,
        /// How each stream item becomes an event.
        item: Item,
        /// The function returns `Result<Reply<..>, E>`.
        fallible: bool,
    },
}

/// The function's signature, read by the convention.
#[derive(Debug)]
pub struct Shape {
    /// The services type (the first parameter's referent).
    pub services: Type,
    /// The parameters after the services, in order.
    pub params: Vec<Param>,
    /// What it returns.
    pub output: Output,
}

impl Shape {
    /// The input type, if the function takes one.
    pub fn input(&self) -> Option<&Type> {
        self.params.iter().find_map(|p| match p {
            Param::Input(t) => Some(t),
            _ => None,
        })
    }
    /// The session type, if the function takes one.
    pub fn session(&self) -> Option<&Type> {
        self.params.iter().find_map(|p| match p {
            Param::Session(t) => Some(t),
            _ => None,
        })
    }
}

/// Reads the signature and checks it against the attribute; `None` when it cannot be read.
pub fn analyse(f: &FnItem, spec: &RouteSpec, errors: &mut Errors) -> Option<Shape> {
    let sig = &f.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            "a Pikku function must be `async fn`\nhelp: add `async` before `fn`",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "a Pikku function cannot be generic: its route needs one concrete input and output type",
        ));
    }
    let mut inputs = sig.inputs.iter().peekable();
    // A method is reported once; the rest is read as the free function it should be.
    match inputs.peek() {
        Some(FnArg::Receiver(r)) => {
            errors.push(method_error(r));
            inputs.next();
        }
        _ => check_no_self_type(f, errors),
    }
    let services = match inputs.next() {
        Some(FnArg::Typed(pt)) => match &*pt.ty {
            Type::Reference(r) if r.mutability.is_none() => Some((*r.elem).clone()),
            other => {
                errors.push(syn::Error::new(
                    other.span(),
                    "the first parameter is the app's services, taken by shared reference\nhelp: write it as `services: &Services`",
                ));
                None
            }
        },
        Some(FnArg::Receiver(r)) => {
            errors.push(method_error(r));
            None
        }
        None => {
            errors.push(syn::Error::new(
                sig.paren_token.span.join(),
                "a Pikku function takes the app's services first\nhelp: add a first parameter `services: &Services`",
            ));
            None
        }
    };

    let mut params = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pt) = arg else { continue };
        match &*pt.ty {
            Type::Reference(r) => {
                if r.mutability.is_some() {
                    errors.push(syn::Error::new(
                        r.span(),
                        "parameters are taken by shared reference (`&T`), not `&mut T`",
                    ));
                } else if last_ident(&r.elem).as_deref() == Some("Context") {
                    push_unique(&mut params, Param::Context, pt.span(), "a context", errors);
                } else {
                    if !spec.auth {
                        let at = spec.auth_span.unwrap_or_else(|| pt.span());
                        let mut e = syn::Error::new(
                            pt.span(),
                            "a session parameter needs an authenticated route, but this one is `auth = false`\nhelp: remove `auth = false` (routes require auth by default) or remove this parameter",
                        );
                        e.combine(syn::Error::new(at, "`auth = false` is set here"));
                        errors.push(e);
                    }
                    push_unique(
                        &mut params,
                        Param::Session((*r.elem).clone()),
                        pt.span(),
                        "a session",
                        errors,
                    );
                }
            }
            ty => push_unique(
                &mut params,
                Param::Input(ty.clone()),
                pt.span(),
                "an input",
                errors,
            ),
        }
    }

    if !spec.path_params.is_empty() && !params.iter().any(|p| matches!(p, Param::Input(_))) {
        if let Some(span) = spec.path_span {
            errors.push(syn::Error::new(
                span,
                format!(
                    "this route has path params ({}) but the function takes no input to put them in\nhelp: add an input parameter whose type has {} field(s), e.g. `input: MyInput`",
                    spec.path_params
                        .iter()
                        .map(|p| format!("`{{{p}}}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    spec.path_params
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }

    if let Some(span) = spec.permissions_span {
        if !params.iter().any(|p| matches!(p, Param::Session(_))) {
            errors.push(syn::Error::new(
                span,
                "permission checks receive the session, but this function takes none\nhelp: add a `session: &YourSession` parameter",
            ));
        }
    }

    let output = output(&sig.output, spec, errors);
    Some(Shape {
        services: services?,
        params,
        output: output?,
    })
}

fn method_error(r: &syn::Receiver) -> syn::Error {
    syn::Error::new(
        r.self_token.span,
        "`#[pikku_func]` goes on a free function, and this one takes `self`: functions in `impl` blocks are not supported\nhelp: move it out of the `impl` block, as a free function taking `services: &Services` first",
    )
}

/// `Self` in the signature or body (outside nested items) means the function is in an `impl` or
/// `trait` block. Reporting it here replaces rustc's error about the route struct, which cannot
/// go there; an associated function that names neither `self` nor `Self` looks exactly like a
/// free function to the macro, so that one is still rustc's.
fn check_no_self_type(f: &FnItem, errors: &mut Errors) {
    let mut finder = FirstSelfType(None);
    finder.visit_signature(&f.sig);
    if finder.0.is_none() && f.body_mentions("Self") {
        if let Some(block) = f.parse_block() {
            finder.visit_block(&block);
        }
    }
    if let Some(span) = finder.0 {
        errors.push(syn::Error::new(
            span,
            "`#[pikku_func]` goes on a free function, and `Self` here means this one is in an `impl` block: functions in `impl` blocks are not supported\nhelp: move it out of the `impl` block, as a free function, and name the type instead of `Self`",
        ));
    }
}

struct FirstSelfType(Option<Span>);

impl<'ast> Visit<'ast> for FirstSelfType {
    fn visit_path(&mut self, p: &'ast syn::Path) {
        match p.segments.first() {
            Some(seg) if self.0.is_none() && seg.ident == "Self" => self.0 = Some(seg.ident.span()),
            _ => syn::visit::visit_path(self, p),
        }
    }
    // A nested item has its own `Self`.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn push_unique(params: &mut Vec<Param>, p: Param, span: Span, what: &str, errors: &mut Errors) {
    let dup = params
        .iter()
        .any(|q| std::mem::discriminant(q) == std::mem::discriminant(&p));
    if dup {
        errors.push(syn::Error::new(
            span,
            format!(
                "the function already takes {what} parameter\nhelp: the signature is `(services: &S [, input: I] [, session: &U] [, ctx: &Context])`; put all input fields in one type"
            ),
        ));
    } else {
        params.push(p);
    }
}

fn output(ret: &ReturnType, spec: &RouteSpec, errors: &mut Errors) -> Option<Output> {
    let ty: Type = match ret {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    let (inner, fallible) = match result_ok(&ty) {
        Some(ok) => (ok, true),
        None => (ty.clone(), false),
    };
    let response = spec.response;
    if let Some((json, stream)) = reply_args(&inner) {
        let item = match stream_item(&stream) {
            Some(item) => item,
            None => {
                errors.push(syn::Error::new(
                    stream.span(),
                    "the second type of `Reply<T, S>` is the stream: write `impl Stream<Item = T>`",
                ));
                return None;
            }
        };
        return Some(Output::Either {
            json,
            item: classify_item(item),
            fallible,
        });
    }
    match (response, stream_item(&inner)) {
        (Some(ResponseKey::Stream), Some(item)) => Some(Output::Stream {
            item: classify_item(item),
            fallible,
        }),
        (Some(ResponseKey::Stream), None) => {
            errors.push(syn::Error::new(
                ret_span(ret),
                "`response = \"stream\"` needs the function to return a stream\nhelp: return `impl Stream<Item = T>` and build it with `stream! { ... yield item; ... }`",
            ));
            None
        }
        (_, Some(_)) => {
            errors.push(syn::Error::new(
                ret_span(ret),
                "this function returns a stream but its route answers with JSON\nhelp: add `response = \"stream\"` to the attribute",
            ));
            None
        }
        (_, None) => Some(Output::Json {
            ty: inner,
            fallible,
        }),
    }
}

fn ret_span(ret: &ReturnType) -> Span {
    match ret {
        ReturnType::Default => Span::call_site(),
        ReturnType::Type(_, ty) => ty.span(),
    }
}

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    last_segment(ty).map(|s| s.ident.to_string())
}

fn type_args(seg: &syn::PathSegment) -> Vec<Type> {
    match &seg.arguments {
        PathArguments::AngleBracketed(a) => a
            .args
            .iter()
            .filter_map(|g| match g {
                GenericArgument::Type(t) => Some(t.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// `Result<T, E>` (or a one-argument `Result<T>` alias) → `T`.
fn result_ok(ty: &Type) -> Option<Type> {
    let seg = last_segment(ty)?;
    if seg.ident != "Result" {
        return None;
    }
    type_args(seg).into_iter().next()
}

fn reply_args(ty: &Type) -> Option<(Type, Type)> {
    let seg = last_segment(ty)?;
    if seg.ident != "Reply" {
        return None;
    }
    let mut a = type_args(seg).into_iter();
    Some((a.next()?, a.next()?))
}

/// `impl Stream<Item = X>`, `Pin<Box<dyn Stream<Item = X> + ..>>` or `BoxStream<'_, X>` → `X`.
fn stream_item(ty: &Type) -> Option<Type> {
    let bounds = match ty {
        Type::ImplTrait(t) => &t.bounds,
        Type::TraitObject(t) => &t.bounds,
        Type::Paren(p) => return stream_item(&p.elem),
        Type::Path(_) => {
            let seg = last_segment(ty)?;
            return match seg.ident.to_string().as_str() {
                "BoxStream" | "LocalBoxStream" => type_args(seg).into_iter().next(),
                "Pin" | "Box" => type_args(seg).first().and_then(stream_item),
                _ => None,
            };
        }
        _ => return None,
    };
    bounds.iter().find_map(|b| match b {
        TypeParamBound::Trait(t) => {
            let seg = t.path.segments.last()?;
            if seg.ident != "Stream" {
                return None;
            }
            match &seg.arguments {
                PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                    GenericArgument::AssocType(at) if at.ident == "Item" => Some(at.ty.clone()),
                    _ => None,
                }),
                _ => None,
            }
        }
        _ => None,
    })
}

fn classify_item(item: Type) -> Item {
    let (inner, fallible) = match result_ok(&item) {
        Some(ok) => (ok, true),
        None => (item, false),
    };
    if let Some(seg) = last_segment(&inner) {
        let wrap = match seg.ident.to_string().as_str() {
            "Event" => Some(Wrap::Event),
            "Frame" => Some(Wrap::Frame),
            _ => None,
        };
        if let (Some(wrap), Some(data)) = (wrap, type_args(seg).into_iter().next()) {
            return Item {
                data,
                wrap,
                fallible,
            };
        }
    }
    Item {
        data: inner,
        wrap: Wrap::Plain,
        fallible,
    }
}
