//! Describing an app: its OpenAPI document and a self-contained docs page.
//!
//! [`document`] builds an OpenAPI 3.1 document from the route descriptors `#[pikku_func]`
//! emits; [`Pikku`](crate::Pikku) serves it at `GET /openapi.json` and a docs page at
//! `GET /docs` (both paths set by [`OpenApiConfig`], either can be turned off). Both are built
//! on the first request and then served from memory. Neither is listed in the document.
//!
//! # What the document says
//!
//! - One operation per route: `operationId`, `summary`/`description` (from the doc comment or
//!   the attribute), `tags`.
//! - Parameters from the input type's schema: `{param}` segments as `in: path` parameters;
//!   on GET and DELETE every other top-level field is an `in: query` parameter. On POST, PUT
//!   and PATCH the other fields are the JSON request body (the query string may still fill
//!   them at run time, as the runtime merges body < query < path; the document lists each field
//!   once, in the body). Stream and `Reply` routes also list the optional `lastEventId` query
//!   parameter: a first connection's resume point (see [`crate::context`]).
//! - `200` responses: `application/json` with the output schema; streams as
//!   `text/event-stream` (see below); `Reply` routes list both content types.
//! - Error responses with the shared [`ErrorBody`] schema, shared as
//!   `components/responses`: `400` and `422` for routes with an input, `401` for
//!   `auth = true` routes, `403` for those and for unsafe methods (the CSRF check), `413` for
//!   routes that read a body,
//!   `415` for routes that read a JSON body, `429`, `500` and `503` everywhere.
//! - `auth = true` routes require the `bearerAuth` (`Authorization: Bearer`) or the
//!   `sessionCookie` scheme (a cookie, `pikku_session` by default; browsers' `EventSource`
//!   cannot set headers); `auth = false` routes carry `security: []`.
//!
//! All schemas come from one `schemars` generator set to JSON Schema 2020-12 (the dialect of
//! OpenAPI 3.1) with `#/components/schemas/` as its definitions path, so a type used by
//! several routes is one component that they `$ref`. The one generator uses schemars'
//! deserialize contract, the one input decoding uses: output schemas therefore describe what a
//! client can read back into the same Rust types. Paths, components and tags are sorted.
//!
//! # Streams
//!
//! A stream's media type describes one event: an object with the SSE fields `id`, `event`,
//! `retry` and `data`, where `data` is a JSON text (`contentMediaType: application/json`)
//! whose `contentSchema` is the item's schema. A `oneOf` tells the three kinds apart: items
//! (any `event` but the reserved names), `event: error` (a [`StreamError`], sent for `Err`
//! items and when a generator panics), the final `event: shutdown` ([`StreamShutdown`]),
//! `event: close` at a stream's maximum lifetime, `event: gap` ([`StreamGap`]), and
//! `event: session_end` (a [`StreamError`] body) when the stream's session expires or is revoked.
//! That event schema is a component named after the item type (`UpdateEvent` for a stream of
//! `Update`s), shared by every stream of that type.
//!
//! OpenAPI 3.2 gives a sequential media type's per-item schema as `itemSchema`; 3.1 has no such
//! field, and a 3.1 validator rejects it (the 3.1 schema closes the Media Type Object with
//! `unevaluatedProperties: false`). So the document comes in two flavours ([`SpecVersion`]):
//! - [`SpecVersion::V3_1`] (the default, what 3.1 tools read): the event schema is the media
//!   type's `schema`, the form SSE-aware 3.1 tools (and generators) read;
//! - [`SpecVersion::V3_2`]: `openapi: 3.2.0`, the event schema as `itemSchema` and, for tools
//!   that only know 3.1, also as `schema`.
//!
//! # The object model
//!
//! The document is typed with [`aide`]'s `openapi` module (re-exported as [`model`]). Three
//! maintained crates were weighed:
//! - `utoipa` 5 models OpenAPI 3.1, but its schemas are its own typed `Schema` enum: a schemars
//!   schema would have to be converted, losing keywords it has no field for (`not`,
//!   `unevaluatedProperties`, `$ref` siblings, ...);
//! - `oas3` 0.21 models 3.1 with typed schemas too (same loss), and writes every extension with
//!   an `x-` prefix, so `itemSchema` cannot be added to its media types;
//! - `aide`'s model is OpenAPI 3.1 whose Schema Objects *are* `schemars::Schema` values, so
//!   schemars' output goes in verbatim, and its extension maps are written as they are, which
//!   carries `itemSchema`. Its schemars-1 line is a pre-release (0.16.0-alpha), hence the exact
//!   version pin in `Cargo.toml`; only the model is used (no default features).
//!
//! Two small gaps of that model are filled, each at one place: an operation's `security: []`
//! is written through its extension map (the model's `security` list is skipped when empty, so
//! it cannot say "no authentication"), and the `openapi` version is set after serializing (the
//! model always writes `3.1.0`), see [`Document::to_json`].

use std::collections::{BTreeMap, BTreeSet};

use aide::openapi::{
    ApiKeyLocation, Components, Header, HeaderStyle, Info, MediaType, OpenApi, Operation,
    Parameter, ParameterData, ParameterSchemaOrContent, PathItem, PathStyle, Paths, QueryStyle,
    ReferenceOr, RequestBody, Response, Responses, SchemaObject, SecurityRequirement,
    SecurityScheme, Server, StatusCode, Tag,
};
use indexmap::IndexMap;
use schemars::Schema;
use serde_json::{Map, Value, json};

use crate::context::LAST_EVENT_ID_QUERY;
use crate::error::ErrorBody;
use crate::registry::RouteSchemas;
use crate::registry::{Method, ResponseKind, RouteDef};
use crate::schema::{COMPONENTS_PREFIX, Defs, components_generator};
use crate::sse::{StreamError, StreamGap, StreamShutdown};

mod events;
mod page;

pub use page::{DOCS_CSP, DocsPages};

/// The OpenAPI object model the document is built with (`aide`'s `openapi` module).
pub use aide::openapi as model;

/// Name of the bearer-token security scheme.
pub const BEARER_SCHEME: &str = "bearerAuth";
/// Name of the session-cookie security scheme.
pub const COOKIE_SCHEME: &str = "sessionCookie";
/// The session cookie's default name.
pub const DEFAULT_SESSION_COOKIE: &str = crate::session::SESSION_COOKIE;

pub(crate) const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

/// Which OpenAPI version the document is written as. See the [module docs](self#streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpecVersion {
    /// OpenAPI 3.1.0: streams' event schema as the media type's `schema`.
    #[default]
    V3_1,
    /// OpenAPI 3.2.0: streams' event schema as `itemSchema`, and also as `schema`.
    V3_2,
}

impl SpecVersion {
    /// The `openapi` field's value.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V3_1 => "3.1.0",
            SpecVersion::V3_2 => "3.2.0",
        }
    }
}

/// How an app describes itself, and where it serves its document and docs page.
///
/// ```
/// use pikku::openapi::OpenApiConfig;
/// let cfg = OpenApiConfig {
///     title: "Updates API".into(),
///     version: "1.2.0".into(),
///     description: Some("Live updates over Server-Sent Events.".into()),
///     docs_path: None, // JSON only
///     ..OpenApiConfig::default()
/// };
/// assert_eq!(cfg.json_path.as_deref(), Some("/openapi.json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiConfig {
    /// `info.title` (default `"Pikku API"`).
    pub title: String,
    /// `info.version`: the version of *your* API (default `"0.1.0"`).
    pub version: String,
    /// `info.description` (Markdown allowed by OpenAPI; the docs page shows it as text).
    pub description: Option<String>,
    /// Where the JSON document is served (default `/openapi.json`); `None` turns it off.
    pub json_path: Option<String>,
    /// Where the docs page is served (default `/docs`); `None` turns it off. The page carries
    /// the document inline, so it works with `json_path: None` too.
    pub docs_path: Option<String>,
    /// `servers[].url`: where the API is, e.g. `"/api"` when the router is nested there.
    /// Empty (the default) means the document's own origin and `/`.
    pub servers: Vec<String>,
    /// The cookie the `sessionCookie` scheme names (default `pikku_session`).
    pub session_cookie: String,
    /// The OpenAPI version written (default 3.1).
    pub spec_version: SpecVersion,
}

impl Default for OpenApiConfig {
    fn default() -> Self {
        Self {
            title: "Pikku API".into(),
            version: "0.1.0".into(),
            description: None,
            json_path: Some("/openapi.json".into()),
            docs_path: Some("/docs".into()),
            servers: Vec::new(),
            session_cookie: DEFAULT_SESSION_COOKIE.into(),
            spec_version: SpecVersion::V3_1,
        }
    }
}

impl OpenApiConfig {
    /// Serves neither the document nor the docs page.
    pub fn disabled() -> Self {
        Self {
            json_path: None,
            docs_path: None,
            ..Self::default()
        }
    }
}

/// A generated document: the typed OpenAPI model and the version it is written as.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document. Its `openapi` field is not written as is: see [`Document::to_json`].
    pub openapi: OpenApi,
    /// The version written, which also decided where stream item schemas are.
    pub spec_version: SpecVersion,
}

impl Document {
    /// The document as JSON.
    pub fn to_json(&self) -> serde_json::Result<Value> {
        let mut value = serde_json::to_value(&self.openapi)?;
        // The model always writes "3.1.0"; a 3.2 document (with `itemSchema`) must say 3.2.
        if let Some(obj) = value.as_object_mut() {
            obj.insert("openapi".into(), self.spec_version.as_str().into());
        }
        Ok(value)
    }

    /// The document as pretty-printed JSON bytes, as `GET /openapi.json` serves it.
    pub fn to_json_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec_pretty(&self.to_json()?)
    }
}

/// The schemas one route needs, generated before the components are known.
struct Generated {
    route: &'static RouteDef,
    schemas: RouteSchemas,
}

/// Builds the document of `routes` (e.g. [`Pikku::routes`](crate::Pikku::routes)).
///
/// ```
/// let cfg = pikku::openapi::OpenApiConfig::default();
/// let doc = pikku::openapi::document(&pikku::registry::all_routes(), &cfg);
/// assert_eq!(doc.to_json().unwrap()["openapi"], "3.1.0");
/// ```
pub fn document(routes: &[&'static RouteDef], cfg: &OpenApiConfig) -> Document {
    let mut routes = routes.to_vec();
    routes.sort_by(|a, b| (a.path, a.method).cmp(&(b.path, b.method)));

    let mut generator = components_generator();
    let error_body = generator.subschema_for::<ErrorBody>();
    let any_stream = routes.iter().any(|r| r.response != ResponseKind::Json);
    let stream_schemas = any_stream.then(|| {
        (
            generator.subschema_for::<StreamError>(),
            generator.subschema_for::<StreamShutdown>(),
            generator.subschema_for::<StreamGap>(),
        )
    });
    let generated: Vec<Generated> = routes
        .iter()
        .map(|&route| Generated {
            route,
            schemas: RouteSchemas::generate(route, &mut generator),
        })
        .collect();
    let mut definitions = generator.take_definitions(true);

    // One event schema per item schema, as a component the stream media types `$ref`.
    let mut event_refs: Vec<Option<Value>> = Vec::with_capacity(generated.len());
    let mut event_names: BTreeMap<String, String> = BTreeMap::new();
    for g in &generated {
        let event_ref = match (&g.schemas.item, &stream_schemas) {
            (Some(item), Some((error, shutdown, gap))) => {
                let payloads = events::PayloadSchemas {
                    error: error.as_value(),
                    shutdown: shutdown.as_value(),
                    gap: gap.as_value(),
                };
                let schema = events::event_schema(item, &payloads);
                let key = schema.to_string();
                let name = match event_names.get(&key) {
                    Some(name) => name.clone(),
                    None => {
                        let name = unused_name(&definitions, &event_schema_name(g));
                        definitions.insert(name.clone(), schema);
                        event_names.insert(key, name.clone());
                        name
                    }
                };
                Some(json!({ "$ref": format!("{COMPONENTS_PREFIX}{name}") }))
            }
            _ => None,
        };
        event_refs.push(event_ref);
    }
    let defs = Defs::new(COMPONENTS_PREFIX, Some(&definitions));

    let mut paths: BTreeMap<&str, PathItem> = BTreeMap::new();
    let mut tags = BTreeSet::new();
    for (g, event_ref) in generated.iter().zip(&event_refs) {
        tags.extend(g.route.tags.iter().copied());
        let op = operation(g, defs, event_ref.as_ref());
        let item = paths.entry(g.route.path).or_default();
        let slot = match g.route.method {
            Method::Get => &mut item.get,
            Method::Post => &mut item.post,
            Method::Put => &mut item.put,
            Method::Patch => &mut item.patch,
            Method::Delete => &mut item.delete,
        };
        *slot = Some(op);
    }

    let mut schemas: Vec<(String, Value)> = definitions.into_iter().collect();
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    let components = Components {
        schemas: schemas
            .into_iter()
            .map(|(name, schema)| (name, schema_object(schema)))
            .collect(),
        responses: error_responses(&error_body),
        security_schemes: security_schemes(cfg),
        ..Components::default()
    };

    let mut openapi = OpenApi {
        info: Info {
            title: cfg.title.clone(),
            version: cfg.version.clone(),
            description: cfg.description.clone(),
            ..Info::default()
        },
        servers: cfg
            .servers
            .iter()
            .map(|url| Server {
                url: url.clone(),
                ..Server::default()
            })
            .collect(),
        paths: Some(Paths {
            paths: paths
                .into_iter()
                .map(|(p, item)| (p.to_owned(), ReferenceOr::Item(item)))
                .collect(),
            ..Paths::default()
        }),
        components: Some(components),
        tags: tags
            .into_iter()
            .map(|name| Tag {
                name: name.to_owned(),
                ..Tag::default()
            })
            .collect(),
        ..OpenApi::default()
    };
    if cfg.spec_version == SpecVersion::V3_2 {
        add_item_schemas(&mut openapi);
    }
    Document {
        openapi,
        spec_version: cfg.spec_version,
    }
}

fn schema_object(json_schema: impl Into<Value>) -> SchemaObject {
    let value = json_schema.into();
    // Every generated schema is an object or a boolean; anything else would be a bug upstream.
    let json_schema = Schema::try_from(value).unwrap_or_else(|_| Schema::default());
    SchemaObject {
        json_schema,
        external_docs: None,
        example: None,
    }
}

/// `UpdateEvent` for a stream of `Update`s; for items without a named schema, after the
/// operation (`stream_ticks` → `StreamTicksEvent`).
fn event_schema_name(g: &Generated) -> String {
    let item_name = g
        .schemas
        .item
        .as_ref()
        .and_then(|i| i.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(COMPONENTS_PREFIX));
    let base = match item_name {
        Some(name) => name.to_owned(),
        None => g
            .route
            .operation_id
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect(),
    };
    format!("{base}Event")
}

/// `name`, or `name2`, `name3`... if a component has that name already.
fn unused_name(definitions: &Map<String, Value>, name: &str) -> String {
    if !definitions.contains_key(name) {
        return name.to_owned();
    }
    (2..)
        .map(|i| format!("{name}{i}"))
        .find(|n| !definitions.contains_key(n))
        .unwrap_or_else(|| name.to_owned())
}

fn operation(g: &Generated, defs: Defs<'_>, event_ref: Option<&Value>) -> Operation {
    let route = g.route;
    let mut op = Operation {
        tags: route.tags.iter().map(|t| (*t).to_owned()).collect(),
        summary: route.summary.map(str::to_owned),
        description: route.description.map(str::to_owned),
        operation_id: Some(route.operation_id.to_owned()),
        ..Operation::default()
    };

    // Input: path params, then query params (GET/DELETE) or the JSON body.
    let input = g.schemas.input.as_ref();
    let object = input.and_then(|i| defs.resolve(i));
    let properties = object
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object);
    let required: BTreeSet<&str> = object
        .and_then(|o| o.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for name in route.path_params {
        let schema = properties.and_then(|p| p.get(*name));
        op.parameters.push(ReferenceOr::Item(Parameter::Path {
            parameter_data: parameter_data(name, schema, true),
            style: PathStyle::default(),
        }));
    }
    let others = properties
        .into_iter()
        .flatten()
        .filter(|(name, _)| !route.path_params.contains(&name.as_str()));
    if route.method.has_body() {
        if let Some(input) = input {
            op.request_body =
                request_body(input, object, route.path_params, &required).map(ReferenceOr::Item);
        }
    } else {
        for (name, schema) in others {
            op.parameters.push(ReferenceOr::Item(Parameter::Query {
                parameter_data: parameter_data(
                    name,
                    Some(schema),
                    required.contains(name.as_str()),
                ),
                allow_reserved: false,
                style: QueryStyle::default(),
                allow_empty_value: None,
            }));
        }
    }

    // Stream routes take a first connection's resume point from the query (the runtime
    // reserves the name unless the input declares it, which is then listed above).
    let declared = properties.is_some_and(|p| p.contains_key(LAST_EVENT_ID_QUERY));
    if route.response.may_stream() && !declared {
        op.parameters.push(ReferenceOr::Item(Parameter::Query {
            parameter_data: ParameterData {
                description: Some(LAST_EVENT_ID_DESCRIPTION.to_owned()),
                ..parameter_data(LAST_EVENT_ID_QUERY, None, false)
            },
            allow_reserved: false,
            style: QueryStyle::default(),
            allow_empty_value: None,
        }));
    }

    // Responses.
    let mut ok = Response {
        description: match route.response {
            ResponseKind::Json => "The result, as JSON.".into(),
            ResponseKind::Stream => stream_description(route),
            ResponseKind::Either => format!(
                "The result as JSON, or a stream of Server-Sent Events: the function decides per \
                 request. {}",
                stream_description(route)
            ),
        },
        ..Response::default()
    };
    if let Some(output) = &g.schemas.output {
        ok.content.insert(
            JSON.into(),
            MediaType {
                schema: Some(schema_object(output.clone())),
                ..MediaType::default()
            },
        );
    }
    if let Some(event_ref) = event_ref {
        ok.content.insert(
            EVENT_STREAM.into(),
            MediaType {
                schema: Some(schema_object(event_ref.clone())),
                ..MediaType::default()
            },
        );
    }
    let mut responses: IndexMap<StatusCode, ReferenceOr<Response>> = IndexMap::new();
    responses.insert(StatusCode::Code(200), ReferenceOr::Item(ok));
    for (code, name, _) in ERROR_RESPONSES {
        let applies = match code {
            400 | 422 => route.input_schema.is_some(),
            401 => route.auth,
            // Refused permissions, and the CSRF check of unsafe methods.
            403 => route.auth || route.method != Method::Get,
            413 => route.method.has_body(),
            415 => route.method.has_body() && route.input_schema.is_some(),
            _ => true,
        };
        if applies {
            responses.insert(
                StatusCode::Code(*code),
                ReferenceOr::ref_(&format!("#/components/responses/{name}")),
            );
        }
    }
    op.responses = Some(Responses {
        responses,
        ..Responses::default()
    });

    // Security: either scheme satisfies an auth route; public routes say so explicitly.
    if route.auth {
        op.security = [BEARER_SCHEME, COOKIE_SCHEME]
            .into_iter()
            .map(|scheme| SecurityRequirement::from([(scheme.to_owned(), Vec::new())]))
            .collect();
    } else {
        // The model skips an empty `security` list; written here, it overrides any top-level
        // requirement as OpenAPI intends (`security: []`: no authentication).
        op.extensions.insert("security".into(), json!([]));
    }
    op
}

/// What the document says of a stream route's `lastEventId` query parameter.
const LAST_EVENT_ID_DESCRIPTION: &str = "Resume after this event id on the first connection, \
    for clients that cannot send the `Last-Event-ID` header (a browser's `EventSource`); the \
    header wins when both are sent. `earliest` (or `0`) asks for everything the stream still \
    keeps. Reserved on stream routes: it never reaches the function's input.";

fn parameter_data(name: &str, schema: Option<&Value>, required: bool) -> ParameterData {
    let schema = schema.cloned().unwrap_or(json!({"type": "string"}));
    ParameterData {
        name: name.to_owned(),
        description: schema
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        required,
        deprecated: None,
        format: ParameterSchemaOrContent::Schema(schema_object(schema)),
        example: None,
        examples: IndexMap::new(),
        explode: None,
        extensions: IndexMap::new(),
    }
}

/// The JSON body of a POST/PUT/PATCH route: the input without the fields path params fill.
fn request_body(
    input: &Value,
    object: Option<&Map<String, Value>>,
    path_params: &[&str],
    required: &BTreeSet<&str>,
) -> Option<RequestBody> {
    let (schema, body_required) = match object {
        Some(obj) if !path_params.is_empty() => {
            let mut body = obj.clone();
            if let Some(Value::Object(props)) = body.get_mut("properties") {
                props.retain(|k, _| !path_params.contains(&k.as_str()));
                if props.is_empty() {
                    return None;
                }
            }
            if let Some(Value::Array(req)) = body.get_mut("required") {
                req.retain(|k| !k.as_str().is_some_and(|k| path_params.contains(&k)));
                if req.is_empty() {
                    body.remove("required");
                }
            }
            let body_required = required.iter().any(|r| !path_params.contains(r));
            (Value::Object(body), body_required)
        }
        _ => (input.clone(), !required.is_empty()),
    };
    let mut content = IndexMap::new();
    content.insert(
        JSON.into(),
        MediaType {
            schema: Some(schema_object(schema)),
            ..MediaType::default()
        },
    );
    Some(RequestBody {
        description: None,
        content,
        required: body_required,
        ..RequestBody::default()
    })
}

fn stream_description(route: &RouteDef) -> String {
    let errors = if route.fallible_items {
        "Items can fail: a failed item is an `event: error` and the stream goes on."
    } else {
        "An `event: error` ends the stream if the function panics."
    };
    format!(
        "A stream of Server-Sent Events (`text/event-stream`): each item is one event whose \
         `data` is JSON. {errors} When the server shuts down, the stream ends with \
         `event: shutdown`; at its maximum lifetime, with `event: close`; when its session \
         expires or is revoked, with `event: session_end`. Missed events are \
         announced by `event: gap`. Idle streams carry `: ping` comments. Reconnecting clients \
         send `Last-Event-ID`."
    )
}

/// OpenAPI 3.2: each stream media type also gets its event schema as `itemSchema`.
fn add_item_schemas(openapi: &mut OpenApi) {
    let Some(paths) = &mut openapi.paths else {
        return;
    };
    let operations = paths
        .paths
        .values_mut()
        .filter_map(ReferenceOr::as_item_mut)
        .flat_map(|item| {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
        })
        .flatten();
    for op in operations {
        let responses = op
            .responses
            .iter_mut()
            .flat_map(|r| r.responses.values_mut());
        for response in responses.filter_map(ReferenceOr::as_item_mut) {
            if let Some(media) = response.content.get_mut(EVENT_STREAM) {
                if let Some(schema) = &media.schema {
                    let item = schema.json_schema.as_value().clone();
                    media.extensions.insert("itemSchema".into(), item);
                }
            }
        }
    }
}

/// `(status, component name, description)` of the shared error responses.
const ERROR_RESPONSES: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "Malformed request, e.g. a body that is not JSON.",
    ),
    (401, "Unauthorized", "No valid session."),
    (
        403,
        "Forbidden",
        "The session may not do this, or (unsafe methods) a cookie-authenticated or login request came from an origin the app does not allow.",
    ),
    (
        413,
        "PayloadTooLarge",
        "The request body is larger than the app's limit.",
    ),
    (
        415,
        "UnsupportedMediaType",
        "The request body is not declared as JSON (`Content-Type: application/json`).",
    ),
    (
        422,
        "UnprocessableEntity",
        "The input does not fit the input type; `field` names the offending field.",
    ),
    (
        429,
        "TooManyRequests",
        "Too many requests; `Retry-After` says when to try again.",
    ),
    (
        500,
        "InternalServerError",
        "Internal error; details are logged, not sent.",
    ),
    (
        503,
        "ServiceUnavailable",
        "The server cannot take this now (e.g. it holds as many streams as it can, or a backing service such as the event hub is down); `Retry-After` says when to try again.",
    ),
];

fn error_responses(error_body: &Schema) -> IndexMap<String, ReferenceOr<Response>> {
    let mut responses = IndexMap::new();
    for (code, name, description) in ERROR_RESPONSES {
        let mut content = IndexMap::new();
        content.insert(
            JSON.to_owned(),
            MediaType {
                schema: Some(schema_object(error_body.clone())),
                ..MediaType::default()
            },
        );
        let mut headers = IndexMap::new();
        if matches!(*code, 429 | 503) {
            headers.insert(
                "Retry-After".to_owned(),
                ReferenceOr::Item(Header {
                    description: Some("Seconds to wait before retrying.".into()),
                    style: HeaderStyle::default(),
                    required: false,
                    deprecated: None,
                    format: ParameterSchemaOrContent::Schema(schema_object(
                        json!({"type": "integer", "minimum": 0}),
                    )),
                    example: None,
                    examples: IndexMap::new(),
                    extensions: IndexMap::new(),
                }),
            );
        }
        responses.insert(
            (*name).to_owned(),
            ReferenceOr::Item(Response {
                description: (*description).to_owned(),
                headers,
                content,
                ..Response::default()
            }),
        );
    }
    responses
}

fn security_schemes(cfg: &OpenApiConfig) -> IndexMap<String, ReferenceOr<SecurityScheme>> {
    let mut schemes = IndexMap::new();
    schemes.insert(
        BEARER_SCHEME.to_owned(),
        ReferenceOr::Item(SecurityScheme::Http {
            scheme: "bearer".into(),
            bearer_format: None,
            description: Some("A session token: `Authorization: Bearer <token>`.".into()),
            extensions: IndexMap::new(),
        }),
    );
    schemes.insert(
        COOKIE_SCHEME.to_owned(),
        ReferenceOr::Item(SecurityScheme::ApiKey {
            location: ApiKeyLocation::Cookie,
            name: cfg.session_cookie.clone(),
            description: Some(
                "A session cookie; what browsers' `EventSource` sends, as it cannot set headers."
                    .into(),
            ),
            extensions: IndexMap::new(),
        }),
    );
    schemes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_use_the_openapi_path() {
        let doc = document(&[], &OpenApiConfig::default()).to_json().unwrap();
        let schemas = &doc["components"]["schemas"];
        assert!(schemas["ErrorBody"].is_object(), "{doc:#}");
        let ok = &doc["components"]["responses"]["BadRequest"]["content"][JSON]["schema"];
        assert_eq!(ok["$ref"], "#/components/schemas/ErrorBody");
    }
}
