//! Parsing and validating the attribute's `key = value` list. Every problem is collected, so
//! one compile shows all of them.

use proc_macro2::Span;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

use crate::errors::Errors;

/// The keys the attribute accepts.
pub const KEYS: &[&str] = &[
    "route",
    "method",
    "response",
    "auth",
    "tags",
    "summary",
    "description",
    "operation_id",
    "heartbeat_ms",
    "permissions",
    "rate_limit",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKey {
    Json,
    Stream,
}

/// The validated attribute.
#[derive(Debug)]
pub struct Args {
    pub route: Option<LitStr>,
    pub path_params: Vec<String>,
    pub method: Method,
    pub response: Option<(ResponseKey, Span)>,
    pub auth: Option<(bool, Span)>,
    pub tags: Vec<String>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub operation_id: Option<String>,
    pub heartbeat_ms: Option<u64>,
    /// `(count, per)` of `rate_limit = "10/s"`; per is `Second`, `Minute` or `Hour`.
    pub rate_limit: Option<(u32, &'static str)>,
    /// Paths of permission functions, checked in order.
    pub permissions: Vec<syn::Path>,
    pub permissions_span: Option<Span>,
}

impl Args {
    /// `auth`, defaulting to true as in Pikku.
    pub fn auth(&self) -> bool {
        self.auth.is_none_or(|(a, _)| a)
    }
}

pub fn parse(attr: proc_macro2::TokenStream, errors: &mut Errors) -> Args {
    let mut args = Args {
        route: None,
        path_params: Vec::new(),
        method: Method::Get,
        response: None,
        auth: None,
        tags: Vec::new(),
        summary: None,
        description: None,
        operation_id: None,
        heartbeat_ms: None,
        permissions: Vec::new(),
        permissions_span: None,
        rate_limit: None,
    };
    let metas = match syn::parse::Parser::parse2(
        Punctuated::<Meta, Token![,]>::parse_terminated,
        attr.clone(),
    ) {
        Ok(m) => m,
        Err(e) => {
            errors.push(syn::Error::new(
                e.span(),
                format!(
                    "{e}\nhelp: write the attribute as `#[pikku_func(route = \"/path\", ...)]`"
                ),
            ));
            return args;
        }
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let Meta::NameValue(nv) = meta else {
            errors.push(syn::Error::new(
                meta.span(),
                "expected `key = value`\nhelp: e.g. `route = \"/stream/updates\"` or `auth = false`",
            ));
            continue;
        };
        let key = nv
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        if seen.contains(&key) {
            errors.push(syn::Error::new(
                nv.path.span(),
                format!("`{key}` is given twice; keep one"),
            ));
            continue;
        }
        seen.push(key.clone());
        let value = &nv.value;
        match key.as_str() {
            "route" => {
                if let Some(lit) = string(value, "route", errors) {
                    args.path_params = check_route(&lit, errors);
                    args.route = Some(lit);
                }
            }
            "method" => {
                if let Some(lit) = string(value, "method", errors) {
                    args.method = match lit.value().to_ascii_lowercase().as_str() {
                        "get" => Method::Get,
                        "post" => Method::Post,
                        "put" => Method::Put,
                        "patch" => Method::Patch,
                        "delete" => Method::Delete,
                        other => {
                            errors.push(syn::Error::new(
                                lit.span(),
                                format!(
                                    "unknown method `{other}`\nhelp: use one of \"get\", \"post\", \"put\", \"patch\", \"delete\""
                                ),
                            ));
                            Method::Get
                        }
                    };
                }
            }
            "response" => {
                if let Some(lit) = string(value, "response", errors) {
                    match lit.value().as_str() {
                        "json" => args.response = Some((ResponseKey::Json, lit.span())),
                        "stream" => args.response = Some((ResponseKey::Stream, lit.span())),
                        other => errors.push(syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown response type `{other}`\nhelp: use \"json\" (the default) or \"stream\" (Server-Sent Events); return `Reply<T, S>` to choose at run time"
                            ),
                        )),
                    }
                }
            }
            "auth" => {
                if let Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) = value
                {
                    args.auth = Some((b.value, b.span()));
                } else {
                    errors.push(syn::Error::new(
                        value.span(),
                        "`auth` takes `true` or `false`",
                    ));
                }
            }
            "tags" => {
                if let Expr::Array(arr) = value {
                    for el in &arr.elems {
                        if let Some(lit) = string(el, "tags", errors) {
                            args.tags.push(lit.value());
                        }
                    }
                } else {
                    errors.push(syn::Error::new(
                        value.span(),
                        "`tags` takes a list of strings\nhelp: e.g. `tags = [\"streaming\"]`",
                    ));
                }
            }
            "summary" => args.summary = string(value, "summary", errors).map(|l| l.value()),
            "description" => {
                args.description = string(value, "description", errors).map(|l| l.value())
            }
            "operation_id" => {
                if let Some(lit) = string(value, "operation_id", errors) {
                    let v = lit.value();
                    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        errors.push(syn::Error::new(
                            lit.span(),
                            "`operation_id` must be non-empty ASCII letters, digits and `_`",
                        ));
                    }
                    args.operation_id = Some(v);
                }
            }
            "heartbeat_ms" => {
                if let Expr::Lit(ExprLit {
                    lit: Lit::Int(i), ..
                }) = value
                {
                    match i.base10_parse::<u64>() {
                        Ok(v) => args.heartbeat_ms = Some(v),
                        Err(e) => errors.push(e),
                    }
                } else {
                    errors.push(syn::Error::new(
                        value.span(),
                        "`heartbeat_ms` takes an integer (milliseconds; 0 turns heartbeats off)",
                    ));
                }
            }
            "rate_limit" => {
                if let Some(lit) = string(value, "rate_limit", errors) {
                    match parse_rate(&lit.value()) {
                        Some(rate) => args.rate_limit = Some(rate),
                        None => errors.push(syn::Error::new(
                            lit.span(),
                            "`rate_limit` is `\"<count>/<s|m|h>\"` with a count above 0\nhelp: e.g. `rate_limit = \"10/s\"` (10 requests a second per client)",
                        )),
                    }
                }
            }
            "permissions" => {
                args.permissions_span = Some(nv.path.span());
                let Expr::Array(arr) = value else {
                    errors.push(syn::Error::new(
                        value.span(),
                        "`permissions` takes a list of function paths\nhelp: e.g. `permissions = [is_owner]`, with `async fn is_owner(services: &S, input: &I, session: &U) -> bool` (generic over `I` to share it between routes)",
                    ));
                    continue;
                };
                for el in &arr.elems {
                    match el {
                        Expr::Path(p) if p.qself.is_none() => args.permissions.push(p.path.clone()),
                        other => errors.push(syn::Error::new(
                            other.span(),
                            "a permission is named by the path of an `async fn(&S, &I, &U) -> bool`",
                        )),
                    }
                }
            }
            _ => {
                let hint = closest(&key)
                    .map(|k| format!("did you mean `{k}`?"))
                    .unwrap_or_else(|| format!("accepted keys: {}", KEYS.join(", ")));
                errors.push(syn::Error::new(
                    nv.path.span(),
                    format!("unknown key `{key}`\nhelp: {hint}"),
                ));
            }
        }
    }
    if args.route.is_none() {
        errors.push(syn::Error::new(
            Span::call_site(),
            "missing `route`\nhelp: add e.g. `route = \"/stream/updates\"`",
        ));
    }
    args
}

fn parse_rate(v: &str) -> Option<(u32, &'static str)> {
    let (count, per) = v.split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => "Second",
        "m" | "min" | "minute" => "Minute",
        "h" | "hour" => "Hour",
        _ => return None,
    };
    Some((count, per))
}

fn string(value: &Expr, key: &str, errors: &mut Errors) -> Option<LitStr> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Str(s), ..
    }) = value
    {
        Some(s.clone())
    } else {
        errors.push(syn::Error::new(
            value.span(),
            format!("`{key}` takes a string literal"),
        ));
        None
    }
}

/// Checks the route's syntax and returns its `{param}` names.
fn check_route(lit: &LitStr, errors: &mut Errors) -> Vec<String> {
    let route = lit.value();
    let mut params = Vec::new();
    if !route.starts_with('/') {
        errors.push(syn::Error::new(
            lit.span(),
            format!("a route starts with `/`\nhelp: write \"/{route}\""),
        ));
        return params;
    }
    for segment in route.split('/').skip(1) {
        if segment.starts_with('{') && segment.ends_with('}') && segment.len() > 2 {
            let name = &segment[1..segment.len() - 1];
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!(
                        "`{{{name}}}` is not a valid path param\nhelp: a param is a name of letters, digits and `_`, e.g. `{{userId}}`"
                    ),
                ));
            } else if params.iter().any(|p| p == name) {
                errors.push(syn::Error::new(
                    lit.span(),
                    format!("the path param `{{{name}}}` appears twice"),
                ));
            } else {
                params.push(name.to_string());
            }
        } else if segment.contains(['{', '}']) {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "malformed segment `{segment}`\nhelp: a path param is a whole segment, e.g. `/users/{{userId}}`"
                ),
            ));
        } else if segment.contains(['?', '#', ':', '*']) {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "`{segment}` is not a plain path segment\nhelp: use `{{name}}` for params; query params come from the input type"
                ),
            ));
        }
    }
    params
}

fn closest(key: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (levenshtein(key, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
