//! The TypeScript client of an app's routes: one self-contained module (`pikku-fetch.gen.ts`).
//!
//! [`typescript`] writes, from the route descriptors `#[pikku_func]` emits:
//! - the types of every input, output and stream item, from their JSON Schemas (made by the
//!   generator the OpenAPI document uses, so the names are the document's components): objects
//!   become interfaces, `oneOf`/`anyOf`/`enum`/`const` unions, `null` in a type `| null`,
//!   arrays `T[]`, maps (`additionalProperties`) `Record<string, T>`, integers and numbers
//!   `number` (beware: JavaScript numbers are exact up to 2^53);
//! - `createClient({ baseUrl, headers, fetch })`, returning a `PikkuClient` (an interface
//!   generated with it) with one method per operation, named in camelCase after the Rust function
//!   (`stream_updates` → `streamUpdates`); a function that takes no input gets
//!   `(options?)`, the others `(input, options?)` (with `input` optional when none of its
//!   fields is required). JSON operations return `Promise<Output>`; stream operations a
//!   `PikkuStream<Item>` (an `AsyncIterable`); a `Reply` operation (`/data`) has both: `getData`
//!   (JSON) and `getDataStream`;
//! - the same operations as top-level functions, bound to a default client whose base URL is
//!   the configured default (the page's own origin unless set): `import { streamUpdates } from
//!   './pikku-fetch.gen'` works in a browser as is; `setDefaultClient` replaces it;
//! - the types of the reserved events' data (`PikkuStreamErrorBody`, `PikkuShutdown`,
//!   `PikkuGap`) and of the HTTP error body (`PikkuHttpErrorBody`; `PikkuErrorBody` is either),
//!   from the JSON Schemas of their Rust definitions ([`crate::sse::StreamError`], ...), and
//!   the reserved event names (`ReservedEvent`), from [`ReservedEvent`];
//! - the runtime (`runtime.ts` beside this file, emitted verbatim): the `fetch`-based SSE
//!   client with its spec-compliant parser, reconnection honouring `retry:` and sending
//!   `Last-Event-ID`, heartbeat timeout, cancellation, and typed errors.
//!
//! The output depends only on the routes and the config: types and operations are sorted, so
//! regenerating an unchanged app writes the same bytes.
//!
//! Apps write it with `--emit-ts-client <path>` ([`Pikku::handle_cli_args`](crate::Pikku::handle_cli_args)).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::error::ErrorBody;
use crate::registry::{ResponseKind, RouteDef, RouteSchemas};
use crate::schema::{COMPONENTS_PREFIX, Defs, components_generator};
use crate::sse::{ReservedEvent, StreamError, StreamGap, StreamShutdown};

/// The runtime part of every generated client.
const RUNTIME: &str = include_str!("runtime.ts");

/// The reserved event names as a TypeScript constant the runtime switches on, written from
/// [`ReservedEvent`] so the two clients and the server cannot disagree.
fn reserved_events_ts() -> String {
    let mut out = String::from(
        "/** The events the server sends itself (never items of a stream). */\nexport const ReservedEvent = {\n",
    );
    for e in ReservedEvent::ALL {
        let key = match e {
            ReservedEvent::SessionEnd => "sessionEnd",
            other => other.name(),
        };
        let _ = writeln!(
            out,
            "  /** {} */\n  {key}: {},",
            e.description(),
            json_string(e.name())
        );
    }
    out.push_str("} as const;\n\n");
    out
}

/// The TypeScript names of the reserved events' payloads (and of the HTTP error body the
/// runtime reads with them), beside their Rust types' schema names and what the type is to a
/// client. Their fields come from the Rust definitions: see [`reserved_payloads_ts`].
const RESERVED_PAYLOADS: &[(&str, &str, &str)] = &[
    (
        "StreamError",
        "PikkuStreamErrorBody",
        "The data of an `event: error` (a failed item, or the function failed) and of an `event: session_end`.",
    ),
    (
        "StreamShutdown",
        "PikkuShutdown",
        "The data of an `event: shutdown` or `event: close`: why the stream ended.",
    ),
    ("StreamGap", "PikkuGap", "The data of an `event: gap`."),
    (
        "ErrorBody",
        "PikkuHttpErrorBody",
        "The JSON body of every error answer: `{\"error\", \"message\", \"status\", \"field\"?}`.",
    ),
];

/// The types of the reserved events' data, written from the JSON Schemas of their Rust
/// definitions ([`StreamError`], [`StreamShutdown`], [`StreamGap`], and [`ErrorBody`]) by the
/// conversion the app's own types go through, so a field added in Rust appears here.
fn reserved_payloads_ts() -> String {
    let mut generator = components_generator();
    generator.subschema_for::<StreamError>();
    generator.subschema_for::<StreamShutdown>();
    generator.subschema_for::<StreamGap>();
    generator.subschema_for::<ErrorBody>();
    let definitions = generator.take_definitions(true);
    let names: BTreeMap<String, String> = RESERVED_PAYLOADS
        .iter()
        .map(|(schema, ts, _)| ((*schema).to_owned(), (*ts).to_owned()))
        .collect();
    let types = Types { names: &names };
    let mut out = String::from(
        "// ---------------------------------------------------------------------------------------------\n\
         // The data of the events the server sends itself, from their Rust definitions (pikku::sse).\n\n",
    );
    for (schema_name, ts_name, what) in RESERVED_PAYLOADS {
        // Every entry is one of the types generated above; a missing one writes nothing
        // rather than a wrong type (and the tests fail).
        if let Some(schema) = definitions.get(*schema_name) {
            write_type(&mut out, ts_name, schema, Some(what), &types);
        }
    }
    out.push_str(
        "/** The error of an answer or of a stream: an error answer's body (`PikkuHttpErrorBody`), or\n\
         \x20*  the data of `event: error` and `event: session_end` (`PikkuStreamErrorBody`, no `status`). */\n\
         export type PikkuErrorBody = PikkuStreamErrorBody & Partial<PikkuHttpErrorBody>;\n\n",
    );
    out
}

/// Writes `schema` as the exported type `name`: an interface for a plain object, otherwise a
/// type alias. `what` is its doc, the schema's description when `None`.
fn write_type(out: &mut String, name: &str, schema: &Value, what: Option<&str>, types: &Types<'_>) {
    doc(
        out,
        "",
        what.or_else(|| schema.get("description").and_then(Value::as_str)),
    );
    let plain_object = schema.get("type").and_then(Value::as_str) == Some("object")
        && schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| !p.is_empty())
        && !["oneOf", "anyOf", "allOf", "enum", "const"]
            .iter()
            .any(|k| schema.get(*k).is_some())
        && !matches!(schema.get("additionalProperties"), Some(Value::Object(_)));
    if plain_object {
        let _ = writeln!(out, "export interface {name} {}\n", types.expr(schema, 0));
    } else {
        let expr = types.expr(schema, 0);
        let sep = if expr.starts_with('\n') { "" } else { " " };
        let _ = writeln!(out, "export type {name} ={sep}{expr};\n");
    }
}

/// The names the runtime exports (and the generated glue); a schema may not take them.
const RESERVED_TYPE_NAMES: &[&str] = &[
    "PikkuCallOptions",
    "PikkuStreamOptions",
    "PikkuHeaders",
    "PikkuClientConfig",
    "PikkuErrorBody",
    "PikkuStreamErrorBody",
    "PikkuShutdown",
    "PikkuGap",
    "PikkuHttpErrorBody",
    "PikkuReconnect",
    "PikkuClientError",
    "PikkuHttpError",
    "PikkuStreamError",
    "PikkuGapError",
    "PikkuOperation",
    "PikkuSseEvent",
    "PikkuSseParser",
    "PikkuStream",
    "PikkuTransport",
    "PikkuClient",
    "OPERATIONS",
    "DEFAULT_BASE_URL",
];

/// JavaScript's reserved words: a top-level function named so gets a trailing `_`.
const JS_RESERVED: &[&str] = &[
    "arguments",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "eval",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "implements",
    "import",
    "in",
    "instanceof",
    "interface",
    "let",
    "new",
    "null",
    "package",
    "private",
    "protected",
    "public",
    "return",
    "static",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "yield",
];

/// Settings of the generated client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TsClientConfig {
    /// The base URL of the default client (the top-level functions): `""` (the default) means
    /// the page's own origin; e.g. `"/api"` when the router is nested there.
    pub default_base_url: String,
}

/// Why a client could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TsClientError {
    /// Two operations would get the same method name.
    #[error(
        "`{first}` ({first_at}) and `{second}` ({second_at}) would both be `{name}` in the TypeScript client; rename one of the functions"
    )]
    NameClash {
        /// The method name.
        name: String,
        /// First function.
        first: &'static str,
        /// Where it is.
        first_at: String,
        /// Second function.
        second: &'static str,
        /// Where it is.
        second_at: String,
    },
    /// A schema's name is taken by the client's runtime, or two schemas map to one name.
    #[error(
        "the schema `{schema}` would be the TypeScript type `{name}`, which {problem}; rename the Rust type (or set `#[schemars(rename = \"...\")]`)"
    )]
    TypeName {
        /// The schema's name.
        schema: String,
        /// Its TypeScript name.
        name: String,
        /// What is wrong.
        problem: String,
    },
}

/// `stream_updates` → `streamUpdates`.
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// A schema name as a TypeScript identifier (`Wrapper<String>` → `Wrapper_String_`).
fn type_ident(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

fn property_key(name: &str) -> String {
    if is_identifier(name) {
        name.to_owned()
    } else {
        json_string(name)
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn doc(out: &mut String, indent: &str, text: Option<&str>) {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return;
    };
    let text = text.replace("*/", "*\\/");
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() == 1 {
        let _ = writeln!(out, "{indent}/** {} */", lines[0]);
    } else {
        let _ = writeln!(out, "{indent}/**");
        for l in lines {
            let _ = writeln!(
                out,
                "{indent} *{}{}",
                if l.is_empty() { "" } else { " " },
                l
            );
        }
        let _ = writeln!(out, "{indent} */");
    }
}

/// Turns JSON Schemas into TypeScript type expressions.
struct Types<'a> {
    names: &'a BTreeMap<String, String>,
}

impl Types<'_> {
    fn reference(&self, r: &str) -> String {
        r.strip_prefix(COMPONENTS_PREFIX)
            .and_then(|name| self.names.get(name))
            .cloned()
            .unwrap_or_else(|| "unknown".into())
    }

    /// The type of `schema`, laid out for a position indented by `indent` spaces.
    fn expr(&self, schema: &Value, indent: usize) -> String {
        let obj = match schema {
            Value::Bool(true) => return "unknown".into(),
            Value::Bool(false) => return "never".into(),
            Value::Object(o) => o,
            _ => return "unknown".into(),
        };
        if let Some(r) = obj.get("$ref").and_then(Value::as_str) {
            return self.reference(r);
        }
        if let Some(c) = obj.get("const") {
            return literal(c);
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            return union(values.iter().map(literal).collect(), indent);
        }
        let mut parts = Vec::new();
        if let Some(types) = obj.get("type") {
            let types: Vec<&str> = match types {
                Value::String(t) => vec![t.as_str()],
                Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let members = types
                .into_iter()
                .map(|t| self.of_type(t, obj, indent))
                .collect();
            parts.push(union(members, indent));
        } else if obj.contains_key("properties") || obj.contains_key("additionalProperties") {
            parts.push(self.object(obj, indent));
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(variants)) = obj.get(key) {
                let members = variants.iter().map(|v| self.expr(v, indent)).collect();
                parts.push(union(members, indent));
            }
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            parts.extend(all.iter().map(|v| self.expr(v, indent)));
        }
        match parts.len() {
            0 => "unknown".into(),
            1 => parts.remove(0),
            _ => parts
                .into_iter()
                .map(|p| parenthesize(&p))
                .collect::<Vec<_>>()
                .join(" & "),
        }
    }

    fn of_type(&self, t: &str, obj: &Map<String, Value>, indent: usize) -> String {
        match t {
            "string" => "string".into(),
            "integer" | "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                if let Some(Value::Array(prefix)) = obj.get("prefixItems") {
                    let mut items: Vec<String> =
                        prefix.iter().map(|p| self.expr(p, indent)).collect();
                    match obj.get("items") {
                        Some(Value::Bool(false)) | None => {}
                        Some(rest) => {
                            items.push(format!("...{}[]", parenthesize(&self.expr(rest, indent))))
                        }
                    }
                    format!("[{}]", items.join(", "))
                } else {
                    let item = obj
                        .get("items")
                        .map(|i| self.expr(i, indent))
                        .unwrap_or_else(|| "unknown".into());
                    format!("{}[]", parenthesize(&item))
                }
            }
            "object" => self.object(obj, indent),
            _ => "unknown".into(),
        }
    }

    fn object(&self, obj: &Map<String, Value>, indent: usize) -> String {
        let props = obj.get("properties").and_then(Value::as_object);
        let extra = match obj.get("additionalProperties") {
            None | Some(Value::Bool(true)) => Some("unknown".to_owned()),
            Some(Value::Bool(false)) => None,
            Some(s) => Some(self.expr(s, indent + 2)),
        };
        let props = match props {
            Some(p) if !p.is_empty() => p,
            _ => {
                return format!(
                    "Record<string, {}>",
                    extra.unwrap_or_else(|| "never".into())
                );
            }
        };
        let required: BTreeSet<&str> = obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let pad = " ".repeat(indent + 2);
        let mut out = String::from("{\n");
        for (name, schema) in props {
            doc(
                &mut out,
                &pad,
                schema.get("description").and_then(Value::as_str),
            );
            let optional = if required.contains(name.as_str()) {
                ""
            } else {
                "?"
            };
            let _ = writeln!(
                out,
                "{pad}{}{optional}: {};",
                property_key(name),
                self.expr(schema, indent + 2)
            );
        }
        // Only an explicit map schema: open objects (no `additionalProperties`) stay closed in
        // TypeScript, where extra fields are allowed anyway.
        if let Some(Value::Object(_)) = obj.get("additionalProperties") {
            if let Some(extra) = extra {
                let _ = writeln!(out, "{pad}[key: string]: {extra};");
            }
        }
        out.push_str(&" ".repeat(indent));
        out.push('}');
        out
    }
}

fn literal(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) | Value::Null => v.to_string(),
        _ => "unknown".into(),
    }
}

/// `A | B`, deduplicated; laid out one member per line when a member spans lines.
fn union(members: Vec<String>, indent: usize) -> String {
    let mut seen = BTreeSet::new();
    let members: Vec<String> = members
        .into_iter()
        .filter(|m| seen.insert(m.clone()))
        .collect();
    match members.len() {
        0 => "never".into(),
        1 => members.into_iter().next().unwrap_or_default(),
        _ if members.iter().any(|m| m.contains('\n')) => {
            let pad = " ".repeat(indent + 2);
            members
                .iter()
                .map(|m| format!("\n{pad}| {}", m.replace('\n', "\n  ")))
                .collect()
        }
        _ => members.join(" | "),
    }
}

/// Wraps a union or intersection in parentheses (for `T[]` and `A & B`).
fn parenthesize(t: &str) -> String {
    let trimmed = t.trim_start();
    let top_level = {
        let mut depth = 0i32;
        let mut found = false;
        let mut in_str = false;
        let mut prev = ' ';
        for c in trimmed.chars() {
            match c {
                '"' if prev != '\\' => in_str = !in_str,
                '{' | '(' | '[' | '<' if !in_str => depth += 1,
                '}' | ')' | ']' | '>' if !in_str => depth -= 1,
                '|' | '&' if !in_str && depth == 0 => found = true,
                _ => {}
            }
            prev = c;
        }
        found
    };
    if top_level {
        format!("({})", trimmed)
    } else {
        t.to_owned()
    }
}

/// One operation's method in the client.
struct Op {
    route: &'static RouteDef,
    /// Method name.
    name: String,
    stream: bool,
    input: Option<String>,
    input_optional: bool,
    result: String,
}

/// Generates the TypeScript client of `routes` (e.g. [`Pikku::routes`](crate::Pikku::routes)).
///
/// ```
/// let ts = pikku::client_ts::typescript(&[], &Default::default()).unwrap();
/// assert!(ts.contains("export function createClient("));
/// ```
pub fn typescript(
    routes: &[&'static RouteDef],
    cfg: &TsClientConfig,
) -> Result<String, TsClientError> {
    let mut routes = routes.to_vec();
    routes.sort_by(|a, b| (a.fn_name, a.path, a.method).cmp(&(b.fn_name, b.path, b.method)));

    let mut generator = components_generator();
    let schemas: Vec<RouteSchemas> = routes
        .iter()
        .map(|r| RouteSchemas::generate(r, &mut generator))
        .collect();
    let definitions = generator.take_definitions(true);

    // Schema names → TypeScript names, checked for clashes.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for schema in definitions.keys() {
        let name = type_ident(schema);
        let problem = if RESERVED_TYPE_NAMES.contains(&name.as_str()) {
            Some("the client's runtime exports".to_owned())
        } else {
            taken
                .get(&name)
                .map(|other| format!("the schema `{other}` is also written as"))
        };
        if let Some(problem) = problem {
            return Err(TsClientError::TypeName {
                schema: schema.clone(),
                name,
                problem,
            });
        }
        taken.insert(name.clone(), schema.clone());
        names.insert(schema.clone(), name);
    }
    let types = Types { names: &names };
    let defs = Defs::new(COMPONENTS_PREFIX, Some(&definitions));

    // Operations, with their method names checked for clashes.
    let mut ops: Vec<Op> = Vec::new();
    let mut by_name: BTreeMap<String, &'static RouteDef> = BTreeMap::new();
    for (route, s) in routes.iter().zip(&schemas) {
        let base = camel_case(route.fn_name);
        let input = s.input.as_ref().map(|i| types.expr(i, 0));
        let input_optional = s.input.as_ref().is_none_or(|i| {
            defs.resolve(i)
                .and_then(|o| o.get("required"))
                .and_then(Value::as_array)
                .is_none_or(|r| r.is_empty())
        });
        let unknown = || "unknown".to_owned();
        let mut push = |name: String, stream: bool, result: String| {
            if let Some(first) = by_name.insert(name.clone(), route) {
                return Err(TsClientError::NameClash {
                    name,
                    first: first.fn_name,
                    first_at: crate::registry::location(first),
                    second: route.fn_name,
                    second_at: crate::registry::location(route),
                });
            }
            ops.push(Op {
                route,
                name,
                stream,
                input: input.clone(),
                input_optional,
                result,
            });
            Ok(())
        };
        let output = s.output.as_ref().map(|o| types.expr(o, 0));
        let item = s.item.as_ref().map(|i| types.expr(i, 0));
        match route.response {
            ResponseKind::Json => push(base, false, output.unwrap_or_else(unknown))?,
            ResponseKind::Stream => push(base, true, item.unwrap_or_else(unknown))?,
            ResponseKind::Either => {
                push(base.clone(), false, output.unwrap_or_else(unknown))?;
                push(format!("{base}Stream"), true, item.unwrap_or_else(unknown))?;
            }
        }
    }
    ops.sort_by(|a, b| a.name.cmp(&b.name));

    let mut out = String::new();
    out.push_str(
        "// Generated by Pikku for Rust from the app's #[pikku_func] routes. Do not edit:\n\
         // regenerate it by running the app with `--emit-ts-client <path of this file>`.\n",
    );
    out.push_str("/* eslint-disable */\n\n");

    out.push_str(
        "// ---------------------------------------------------------------------------------------------\n\
         // Types, from the JSON Schemas of the inputs, outputs and stream items.\n\n",
    );
    for (schema_name, schema) in &definitions {
        write_type(&mut out, &names[schema_name], schema, None, &types);
    }

    out.push_str(&reserved_payloads_ts());
    out.push_str(&reserved_events_ts());
    out.push_str(RUNTIME);
    out.push('\n');

    out.push_str(
        "// ---------------------------------------------------------------------------------------------\n\
         // The operations.\n\n",
    );
    let _ = writeln!(
        out,
        "/** The base URL of the default client (\"\": the page's own origin). */\n\
         export const DEFAULT_BASE_URL = {};\n",
        json_string(&cfg.default_base_url)
    );
    out.push_str("/** Every operation's method and route. */\nexport const OPERATIONS = {\n");
    let mut seen_routes = BTreeSet::new();
    for op in &ops {
        let r = op.route;
        if !seen_routes.insert(r.fn_name) {
            continue;
        }
        let _ = writeln!(
            out,
            "  {}: {{ name: {}, method: {}, path: {}, body: {} }},",
            r.fn_name,
            json_string(r.fn_name),
            json_string(&r.method.as_str().to_uppercase()),
            json_string(r.path),
            r.method.has_body(),
        );
    }
    out.push_str("} as const satisfies Record<string, PikkuOperation>;\n\n");

    // The client interface.
    out.push_str(
        "/** A client of the app: one method per operation. */\nexport interface PikkuClient {\n",
    );
    for op in &ops {
        doc(&mut out, "  ", Some(&op_doc(op)));
        let _ = writeln!(out, "  {}({}): {};", op.name, params(op), returns(op));
    }
    out.push_str("}\n\n");

    // createClient.
    out.push_str(
        "/** A client of the app at `config.baseUrl`, sending `config.headers` with every request. */\n\
         export function createClient(config: PikkuClientConfig = {}): PikkuClient {\n\
         \x20 const t = new PikkuTransport(config, DEFAULT_BASE_URL);\n\
         \x20 return {\n",
    );
    for op in &ops {
        let kind = if op.stream { "stream" } else { "json" };
        let descriptor = format!("OPERATIONS.{}", op.route.fn_name);
        let (args, input) = if op.input.is_some() {
            ("input, options", "input")
        } else {
            ("options", "undefined")
        };
        let _ = writeln!(
            out,
            "    {}: ({args}) => t.{kind}<{}>({descriptor}, {input}, options),",
            op.name,
            strip_leading_newline(&op.result),
        );
    }
    out.push_str("  };\n}\n\n");

    // The default client and the top-level functions.
    out.push_str(
        "let defaultClientInstance: PikkuClient | undefined;\n\n\
         /** The client the top-level functions use: `createClient()` (the default base URL) until\n\
         \x20*  `setDefaultClient` replaces it. */\n\
         export function defaultClient(): PikkuClient {\n\
         \x20 if (defaultClientInstance === undefined) defaultClientInstance = createClient();\n\
         \x20 return defaultClientInstance;\n\
         }\n\n\
         /** Makes `client` the one the top-level functions use. */\n\
         export function setDefaultClient(client: PikkuClient): void {\n\
         \x20 defaultClientInstance = client;\n\
         }\n",
    );
    for op in &ops {
        let fn_name = if JS_RESERVED.contains(&op.name.as_str()) {
            format!("{}_", op.name)
        } else {
            op.name.clone()
        };
        let args = if op.input.is_some() {
            "input, options"
        } else {
            "options"
        };
        out.push('\n');
        doc(&mut out, "", Some(&op_doc(op)));
        let _ = writeln!(
            out,
            "export function {fn_name}({}): {} {{\n  return defaultClient().{}({args});\n}}",
            params(op),
            returns(op),
            op.name,
        );
    }
    Ok(out)
}

fn strip_leading_newline(t: &str) -> String {
    t.trim_start().to_owned()
}

fn params(op: &Op) -> String {
    let options = if op.stream {
        "PikkuStreamOptions"
    } else {
        "PikkuCallOptions"
    };
    match &op.input {
        Some(input) => format!(
            "input{}: {}, options?: {options}",
            if op.input_optional { "?" } else { "" },
            strip_leading_newline(input)
        ),
        None => format!("options?: {options}"),
    }
}

fn returns(op: &Op) -> String {
    let result = strip_leading_newline(&op.result);
    if op.stream {
        format!("PikkuStream<{result}>")
    } else {
        format!("Promise<{result}>")
    }
}

fn op_doc(op: &Op) -> String {
    let r = op.route;
    let mut text = String::new();
    if let Some(s) = r.summary {
        text.push_str(s);
        text.push_str("\n\n");
    }
    if let Some(d) = r.description {
        text.push_str(d);
        text.push_str("\n\n");
    }
    let _ = write!(
        text,
        "`{} {}`{}{}",
        r.method.as_str().to_uppercase(),
        r.path,
        match (r.response, op.stream) {
            (ResponseKind::Either, true) => ", answered as a stream",
            (ResponseKind::Either, false) => ", answered as JSON",
            _ => "",
        },
        if r.auth {
            "; needs a session (`Authorization: Bearer` header or the session cookie)."
        } else {
            "."
        }
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(schema: Value) -> String {
        let names = BTreeMap::from([("Update".to_owned(), "Update".to_owned())]);
        Types { names: &names }.expr(&schema, 0)
    }

    #[test]
    fn reserved_event_names_come_from_the_rust_definition() {
        let out = typescript(&[], &TsClientConfig::default()).unwrap();
        let start = out.find("export const ReservedEvent = {").unwrap();
        let block = &out[start..start + out[start..].find("} as const;").unwrap()];
        let names: Vec<&str> = block
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_suffix("\",")?
                    .rsplit_once(": \"")
                    .map(|(_, n)| n)
            })
            .collect();
        let rust: Vec<&str> = ReservedEvent::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names, rust);
        // The runtime switches on the constant, never on a name of its own.
        for name in rust {
            assert!(
                !RUNTIME.contains(&format!("case '{name}'")),
                "runtime.ts spells `{name}` itself"
            );
        }
        assert!(RUNTIME.contains("case ReservedEvent.sessionEnd:"));
    }

    /// The fields of `export interface <name>` in `out`, each with whether it is optional.
    fn interface_fields(out: &str, name: &str) -> BTreeMap<String, bool> {
        let head = format!("export interface {name} {{\n");
        let start = out
            .find(&head)
            .unwrap_or_else(|| panic!("no `{name}` interface in the client"))
            + head.len();
        let body = &out[start..start + out[start..].find("\n}\n").unwrap_or(0)];
        body.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("  ")?;
                if l.starts_with([' ', '/', '*']) {
                    return None;
                }
                let (key, _) = l.split_once(':')?;
                Some((key.trim_end_matches('?').to_owned(), key.ends_with('?')))
            })
            .collect()
    }

    #[test]
    fn reserved_payload_fields_come_from_the_rust_definitions() {
        let out = typescript(&[], &TsClientConfig::default()).unwrap();
        // The schemas of the Rust types, made apart from the generator: each field, and
        // whether it may be absent, must be in the TypeScript type of the same payload.
        let rust = [
            ("PikkuStreamErrorBody", schemars::schema_for!(StreamError)),
            ("PikkuShutdown", schemars::schema_for!(StreamShutdown)),
            ("PikkuGap", schemars::schema_for!(StreamGap)),
            ("PikkuHttpErrorBody", schemars::schema_for!(ErrorBody)),
        ];
        for (ts_name, schema) in rust {
            let schema = serde_json::to_value(schema).unwrap();
            let required: BTreeSet<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let want: BTreeMap<String, bool> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .map(|k| (k.clone(), !required.contains(k.as_str())))
                .collect();
            assert!(!want.is_empty(), "{ts_name}");
            assert_eq!(interface_fields(&out, ts_name), want, "{ts_name}");
            // Written once, by the generator: the runtime has no copy of its own.
            assert!(
                !RUNTIME.contains(&format!("interface {ts_name} ")),
                "runtime.ts defines {ts_name} itself"
            );
        }
        assert!(out.contains(
            "export type PikkuErrorBody = PikkuStreamErrorBody & Partial<PikkuHttpErrorBody>;"
        ));
        assert!(!RUNTIME.contains("interface PikkuErrorBody"));
    }

    #[test]
    fn camel_cases_rust_names() {
        assert_eq!(camel_case("stream_updates"), "streamUpdates");
        assert_eq!(camel_case("ready"), "ready");
        assert_eq!(camel_case("_private_thing"), "privateThing");
        assert_eq!(camel_case("get_v2_data"), "getV2Data");
    }

    #[test]
    fn schemas_become_types() {
        assert_eq!(ts(json!({"type": ["integer", "null"]})), "number | null");
        assert_eq!(ts(json!({"$ref": "#/components/schemas/Update"})), "Update");
        assert_eq!(ts(json!({"enum": ["a", "b", 1]})), "\"a\" | \"b\" | 1");
        assert_eq!(ts(json!({"const": "x"})), "\"x\"");
        assert_eq!(
            ts(json!({"type": "array", "items": {"type": ["string", "null"]}})),
            "(string | null)[]"
        );
        assert_eq!(
            ts(json!({"type": "object", "additionalProperties": {"type": "integer"}})),
            "Record<string, number>"
        );
        assert_eq!(
            ts(json!({"anyOf": [{"$ref": "#/components/schemas/Update"}, {"type": "null"}]})),
            "Update | null"
        );
        assert_eq!(
            ts(
                json!({"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}], "items": false})
            ),
            "[string, number]"
        );
        assert_eq!(ts(json!(true)), "unknown");
        assert_eq!(
            ts(
                json!({"type": "object", "properties": {"a-b": {"type": "string", "description": "x */ y"}}, "required": ["a-b"]})
            ),
            "{\n  /** x *\\/ y */\n  \"a-b\": string;\n}"
        );
    }

    #[test]
    fn type_names_are_identifiers() {
        assert_eq!(type_ident("Wrapper<String>"), "Wrapper_String_");
        assert_eq!(type_ident("1x"), "_1x");
    }

    #[test]
    fn two_functions_of_one_name_are_an_error_naming_both() {
        use crate::registry::{Method, test_route};
        let a: &'static RouteDef = Box::leak(Box::new(test_route(Method::Get, "/a", "get_item")));
        let b: &'static RouteDef = Box::leak(Box::new(test_route(Method::Get, "/b", "get_item")));
        let err = typescript(&[a, b], &TsClientConfig::default()).unwrap_err();
        assert!(
            matches!(&err, TsClientError::NameClash { name, .. } if name == "getItem"),
            "{err}"
        );
        // Routes come in any order; the output does not depend on it.
        let c: &'static RouteDef = Box::leak(Box::new(test_route(Method::Post, "/c", "delete")));
        let one = typescript(&[a, c], &TsClientConfig::default()).unwrap();
        assert_eq!(
            one,
            typescript(&[c, a], &TsClientConfig::default()).unwrap()
        );
        // A JavaScript reserved word is a method name, and a top-level function with a `_`.
        assert!(one.contains("  delete(options?: PikkuCallOptions): Promise<unknown>;"));
        assert!(one.contains("export function delete_(options?: PikkuCallOptions)"));
    }

    #[test]
    fn empty_app_has_the_runtime_and_a_client() {
        let out = typescript(&[], &TsClientConfig::default()).unwrap();
        assert!(out.contains("export class PikkuSseParser"));
        assert!(out.contains("export interface PikkuClient {\n}"));
    }
}
