//! The attribute's `key = value` list, in two steps: [`parse`] reads what the user wrote into
//! [`RawArgs`] (literals with their spans; syntax errors reported), and [`RawArgs::validate`]
//! checks the values into a [`RouteSpec`], which holds only valid values. Every problem of one
//! attribute is collected, so one compile shows all of them, in the order the keys are written.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitBool, LitInt, LitStr, Meta, Token};

use crate::errors::{AFTER_ATTRIBUTE, Errors};

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
    "crate",
];

/// The attribute as written: each key's literal with its span, not yet checked.
#[derive(Default)]
pub struct RawArgs {
    /// `route = "/path/{param}"`.
    pub route: Option<LitStr>,
    /// `method = "get"`.
    pub method: Option<LitStr>,
    /// `response = "json" | "stream"`.
    pub response: Option<LitStr>,
    /// `auth = true | false`.
    pub auth: Option<LitBool>,
    /// `tags = ["a", "b"]`.
    pub tags: Vec<LitStr>,
    /// `summary = "..."`.
    pub summary: Option<LitStr>,
    /// `description = "..."`.
    pub description: Option<LitStr>,
    /// `operation_id = "..."`.
    pub operation_id: Option<LitStr>,
    /// `heartbeat_ms = 15000`.
    pub heartbeat_ms: Option<LitInt>,
    /// `rate_limit = "10/s"`.
    pub rate_limit: Option<LitStr>,
    /// `permissions = [a, b::c]`: the key's span and the paths read from the list.
    pub permissions: Option<(Span, Vec<syn::Path>)>,
    /// `crate = "path::to::pikku"`.
    pub krate: Option<LitStr>,
    /// Each `key = value`'s key, by its index in the attribute (empty when it is not one), so
    /// validation errors sort where the key is written.
    pub written: Vec<String>,
}

/// The HTTP method of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET` (the default).
    Get,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The variant's name in the runtime's `Method`.
    pub fn variant(self) -> &'static str {
        match self {
            Method::Get => "Get",
            Method::Post => "Post",
            Method::Put => "Put",
            Method::Patch => "Patch",
            Method::Delete => "Delete",
        }
    }
}

/// The `response` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseKey {
    /// `"json"`: one JSON answer.
    Json,
    /// `"stream"`: Server-Sent Events.
    Stream,
}

/// A validated `rate_limit = "<count>/<s|m|h>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (above 0).
    pub count: u32,
    /// The period: the variant's name in the runtime's `RatePer` (`Second`, `Minute`, `Hour`).
    pub per: &'static str,
}

/// The path generated code names the runtime by: `::pikku`, or the `crate = "..."` key's.
#[derive(Debug, Clone)]
pub struct CratePath(TokenStream);

impl Default for CratePath {
    fn default() -> Self {
        CratePath(quote!(::pikku))
    }
}

impl CratePath {
    /// The path with every token at `span`, so code spanned at a user's type stays spanned
    /// there whatever the path (errors keep their location).
    pub fn at(&self, span: Span) -> TokenStream {
        respan(self.0.clone(), span)
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.extend(self.at(Span::call_site()));
    }
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let TokenTree::Group(g) = &tt {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

/// The validated attribute: only valid values.
///
/// A value that failed validation is left at its default (its error is recorded), so the
/// signature is still checked against the rest and one compile shows every problem; nothing is
/// emitted from a spec whose attribute had errors.
#[derive(Debug)]
pub struct RouteSpec {
    /// The route, e.g. `/users/{userId}`.
    pub path: String,
    /// Its `{param}` names, in order.
    pub path_params: Vec<String>,
    /// Where the route is written (signature errors about its params point there).
    pub path_span: Option<Span>,
    /// The HTTP method.
    pub method: Method,
    /// The `response` key, if given.
    pub response: Option<ResponseKey>,
    /// Whether the route needs a session (default `true`).
    pub auth: bool,
    /// Where `auth = ...` is written (the session error points there).
    pub auth_span: Option<Span>,
    /// OpenAPI tags.
    pub tags: Vec<String>,
    /// OpenAPI summary (default: the doc comment's first paragraph).
    pub summary: Option<String>,
    /// OpenAPI description (default: the doc comment's rest).
    pub description: Option<String>,
    /// OpenAPI operation id (default: the function's name).
    pub operation_id: Option<String>,
    /// Per-route heartbeat, in milliseconds.
    pub heartbeat_ms: Option<u64>,
    /// Requests per client per period.
    pub rate_limit: Option<RateLimit>,
    /// Paths of permission functions, checked in order.
    pub permissions: Vec<syn::Path>,
    /// Where `permissions` is written (the missing-session error points there).
    pub permissions_span: Option<Span>,
    /// The runtime's path in generated code.
    pub krate: CratePath,
}

impl Default for RouteSpec {
    fn default() -> Self {
        RouteSpec {
            path: String::new(),
            path_params: Vec::new(),
            path_span: None,
            method: Method::Get,
            response: None,
            auth: true,
            auth_span: None,
            tags: Vec::new(),
            summary: None,
            description: None,
            operation_id: None,
            heartbeat_ms: None,
            rate_limit: None,
            permissions: Vec::new(),
            permissions_span: None,
            krate: CratePath::default(),
        }
    }
}

/// Reads the attribute's list. `None` when the list itself is unreadable (reported): there is
/// nothing to validate then.
pub fn parse(attr: TokenStream, errors: &mut Errors) -> Option<RawArgs> {
    errors.at(0);
    let metas =
        match syn::parse::Parser::parse2(Punctuated::<Meta, Token![,]>::parse_terminated, attr) {
            Ok(m) => m,
            Err(e) => {
                errors.push(syn::Error::new(
                    e.span(),
                    format!(
                        "{e}\nhelp: write the attribute as `#[pikku_func(route = \"/path\", ...)]`"
                    ),
                ));
                errors.at(AFTER_ATTRIBUTE);
                return None;
            }
        };
    let mut raw = RawArgs::default();
    for (position, meta) in metas.into_iter().enumerate() {
        errors.at(position);
        let Meta::NameValue(nv) = meta else {
            raw.written.push(String::new());
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
        let seen = raw.written.contains(&key);
        raw.written.push(key.clone());
        if seen {
            errors.push(syn::Error::new(
                nv.path.span(),
                format!("`{key}` is given twice; keep one"),
            ));
            continue;
        }
        raw.read(&key, &nv, errors);
    }
    errors.at(AFTER_ATTRIBUTE);
    Some(raw)
}

impl RawArgs {
    /// Stores one `key = value`, checking only the value's syntax (string, list, ...).
    fn read(&mut self, key: &str, nv: &syn::MetaNameValue, errors: &mut Errors) {
        let value = &nv.value;
        match key {
            "route" => self.route = string(value, key, errors),
            "method" => self.method = string(value, key, errors),
            "response" => self.response = string(value, key, errors),
            "summary" => self.summary = string(value, key, errors),
            "description" => self.description = string(value, key, errors),
            "operation_id" => self.operation_id = string(value, key, errors),
            "rate_limit" => self.rate_limit = string(value, key, errors),
            "crate" => self.krate = string(value, key, errors),
            "auth" => match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => self.auth = Some(b.clone()),
                _ => errors.push(syn::Error::new(
                    value.span(),
                    "`auth` takes `true` or `false`",
                )),
            },
            "heartbeat_ms" => match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Int(i), ..
                }) => self.heartbeat_ms = Some(i.clone()),
                _ => errors.push(syn::Error::new(
                    value.span(),
                    "`heartbeat_ms` takes an integer (milliseconds; 0 turns heartbeats off)",
                )),
            },
            "tags" => match value {
                Expr::Array(arr) => {
                    self.tags = arr
                        .elems
                        .iter()
                        .filter_map(|el| string(el, key, errors))
                        .collect();
                }
                _ => errors.push(syn::Error::new(
                    value.span(),
                    "`tags` takes a list of strings\nhelp: e.g. `tags = [\"streaming\"]`",
                )),
            },
            "permissions" => self.permissions = Some((nv.path.span(), permissions(value, errors))),
            _ => {
                let hint = closest(key)
                    .map(|k| format!("did you mean `{k}`?"))
                    .unwrap_or_else(|| format!("accepted keys: {}", KEYS.join(", ")));
                errors.push(syn::Error::new(
                    nv.path.span(),
                    format!("unknown key `{key}`\nhelp: {hint}"),
                ));
            }
        }
    }

    /// Checks every value; each invalid one is reported and left at its default.
    pub fn validate(self, errors: &mut Errors) -> RouteSpec {
        let mut spec = RouteSpec::default();
        if let Some(lit) = &self.route {
            errors.at(self.position("route"));
            spec.path_params = route_params(lit, errors);
            spec.path = lit.value();
            spec.path_span = Some(lit.span());
        }
        if let Some(lit) = &self.method {
            errors.at(self.position("method"));
            spec.method = method(lit, errors).unwrap_or(Method::Get);
        }
        if let Some(lit) = &self.response {
            errors.at(self.position("response"));
            spec.response = response(lit, errors);
        }
        if let Some(b) = &self.auth {
            spec.auth = b.value;
            spec.auth_span = Some(b.span());
        }
        spec.tags = self.tags.iter().map(LitStr::value).collect();
        spec.summary = self.summary.as_ref().map(LitStr::value);
        spec.description = self.description.as_ref().map(LitStr::value);
        if let Some(lit) = &self.operation_id {
            errors.at(self.position("operation_id"));
            spec.operation_id = operation_id(lit, errors);
        }
        if let Some(i) = &self.heartbeat_ms {
            errors.at(self.position("heartbeat_ms"));
            spec.heartbeat_ms = i.base10_parse::<u64>().map_err(|e| errors.push(e)).ok();
        }
        if let Some(lit) = &self.rate_limit {
            errors.at(self.position("rate_limit"));
            spec.rate_limit = rate_limit(lit, errors);
        }
        if let Some((span, paths)) = &self.permissions {
            spec.permissions = paths.clone();
            spec.permissions_span = Some(*span);
        }
        if let Some(lit) = &self.krate {
            errors.at(self.position("crate"));
            spec.krate = crate_path(lit, errors).unwrap_or_default();
        }
        if self.route.is_none() {
            errors.at(self.written.len());
            errors.push(syn::Error::new(
                Span::call_site(),
                "missing `route`\nhelp: add e.g. `route = \"/stream/updates\"`",
            ));
        }
        errors.at(AFTER_ATTRIBUTE);
        spec
    }

    /// Where `key` is written in the attribute (its first occurrence: the one kept).
    fn position(&self, key: &str) -> usize {
        self.written
            .iter()
            .position(|k| k == key)
            .unwrap_or(self.written.len())
    }
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

/// The paths of `permissions = [...]`; anything else in the list is reported.
fn permissions(value: &Expr, errors: &mut Errors) -> Vec<syn::Path> {
    let Expr::Array(arr) = value else {
        errors.push(syn::Error::new(
            value.span(),
            "`permissions` takes a list of function paths\nhelp: e.g. `permissions = [is_owner]`, with `async fn is_owner(services: &S, input: &I, session: &U) -> bool` (generic over `I` to share it between routes)",
        ));
        return Vec::new();
    };
    let mut paths = Vec::new();
    for el in &arr.elems {
        match el {
            Expr::Path(p) if p.qself.is_none() => paths.push(p.path.clone()),
            other => errors.push(syn::Error::new(
                other.span(),
                "a permission is named by the path of an `async fn(&S, &I, &U) -> bool`",
            )),
        }
    }
    paths
}

fn method(lit: &LitStr, errors: &mut Errors) -> Option<Method> {
    Some(match lit.value().to_ascii_lowercase().as_str() {
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
            return None;
        }
    })
}

fn response(lit: &LitStr, errors: &mut Errors) -> Option<ResponseKey> {
    match lit.value().as_str() {
        "json" => Some(ResponseKey::Json),
        "stream" => Some(ResponseKey::Stream),
        other => {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "unknown response type `{other}`\nhelp: use \"json\" (the default) or \"stream\" (Server-Sent Events); return `Reply<T, S>` to choose at run time"
                ),
            ));
            None
        }
    }
}

fn operation_id(lit: &LitStr, errors: &mut Errors) -> Option<String> {
    let v = lit.value();
    if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        errors.push(syn::Error::new(
            lit.span(),
            "`operation_id` must be non-empty ASCII letters, digits and `_`",
        ));
        return None;
    }
    Some(v)
}

fn rate_limit(lit: &LitStr, errors: &mut Errors) -> Option<RateLimit> {
    let rate = parse_rate(&lit.value());
    if rate.is_none() {
        errors.push(syn::Error::new(
            lit.span(),
            "`rate_limit` is `\"<count>/<s|m|h>\"` with a count above 0\nhelp: e.g. `rate_limit = \"10/s\"` (10 requests a second per client)",
        ));
    }
    rate
}

fn parse_rate(v: &str) -> Option<RateLimit> {
    let (count, per) = v.split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => "Second",
        "m" | "min" | "minute" => "Minute",
        "h" | "hour" => "Hour",
        _ => return None,
    };
    Some(RateLimit { count, per })
}

/// `crate = "a::b"`: a plain path (no generic arguments), used in place of `::pikku`.
fn crate_path(lit: &LitStr, errors: &mut Errors) -> Option<CratePath> {
    match lit.parse::<syn::Path>() {
        Ok(path) if path.segments.iter().all(|s| s.arguments.is_none()) => {
            Some(CratePath(path.into_token_stream()))
        }
        _ => {
            errors.push(syn::Error::new(
                lit.span(),
                format!(
                    "`crate` takes the path the pikku crate is reachable at, not `{}`\nhelp: e.g. `crate = \"my_reexport::pikku\"` when `my_reexport` has `pub use pikku;` (the default is `::pikku`)",
                    lit.value()
                ),
            ));
            None
        }
    }
}

/// Checks the route's syntax and returns its `{param}` names.
fn route_params(lit: &LitStr, errors: &mut Errors) -> Vec<String> {
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
