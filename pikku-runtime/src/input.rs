//! Builds a function's typed input from the request: path params, query string and JSON body.
//!
//! The three sources are merged into one JSON object, as Pikku does: the body's fields first,
//! then the query string, then path params (the route matched on them, so they win). Query and
//! path values arrive as text; they are coerced to the type the input's JSON schema gives the
//! field (integer, number, boolean, or an array of those for repeated keys), the way Pikku's
//! validator coerces them. Deserialization errors name the field (`serde_path_to_error`).

use std::collections::HashMap;

use bytes::Bytes;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::PikkuError;
use crate::schema::Defs;

/// The raw parts of a request a function's input is built from.
#[derive(Debug, Default, Clone)]
pub struct RawInput {
    /// Decoded path params, in route order.
    pub path: Vec<(String, String)>,
    /// The raw query string (without `?`).
    pub query: Option<String>,
    /// The request body (empty for GET).
    pub body: Bytes,
}

/// What a query/path value is coerced to, read from the input type's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scalar {
    Integer,
    Number,
    Boolean,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FieldKind {
    scalar: Scalar,
    array: bool,
}

/// Per input type: how each top-level property is coerced. Built once per route.
#[derive(Debug, Default)]
pub struct InputPlan {
    fields: HashMap<String, FieldKind>,
    properties: Vec<String>,
}

impl InputPlan {
    /// Reads the plan off `T`'s JSON schema (for tests and tools; routes use
    /// [`InputPlan::from_schema_fn`] with their descriptor's schema function).
    pub fn of<T: JsonSchema>() -> Self {
        Self::from_schema_fn(|g| g.subschema_for::<T>())
    }

    /// Reads the plan off the schema a descriptor's schema function builds.
    ///
    /// Not generic: the runtime builds the plan from the route's `input_schema` pointer, so
    /// no per-type plan code is compiled into every `#[pikku_func]` crate.
    pub fn from_schema_fn(schema_fn: fn(&mut SchemaGenerator) -> Schema) -> Self {
        // The default generator writes named schemas under `$defs`, which `Defs::of_root`
        // reads; the input's own schema may be one of them (a `$ref`).
        let mut generator = SchemaGenerator::default();
        let schema = schema_fn(&mut generator);
        let mut root = Map::new();
        root.insert(
            "$defs".to_owned(),
            Value::Object(generator.take_definitions(true)),
        );
        Self::from_schema(&schema, &Value::Object(root))
    }

    /// `schema`, whose `$ref`s point into `root`'s `$defs`.
    fn from_schema(schema: &Schema, root: &Value) -> Self {
        let mut plan = InputPlan::default();
        let defs = Defs::of_root(root);
        let Some(obj) = defs.resolve(schema.as_value()) else {
            return plan;
        };
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (name, prop) in props {
                plan.properties.push(name.clone());
                plan.fields.insert(name.clone(), field_kind(defs, prop));
            }
        }
        plan
    }

    /// The names of the input's top-level properties (as serialized).
    pub fn properties(&self) -> &[String] {
        &self.properties
    }

    fn coerce(&self, key: &str, raw: &str) -> Value {
        let kind = self.fields.get(key).copied().unwrap_or(FieldKind {
            scalar: Scalar::Other,
            array: false,
        });
        coerce_scalar(kind.scalar, raw)
    }

    fn is_array(&self, key: &str) -> bool {
        self.fields.get(key).is_some_and(|k| k.array)
    }
}

fn field_kind(defs: Defs<'_>, prop: &Value) -> FieldKind {
    let Some(obj) = defs.resolve(prop) else {
        return FieldKind {
            scalar: Scalar::Other,
            array: false,
        };
    };
    // `Option<T>` appears as `type: [T, "null"]` or `anyOf: [T, {type: null}]`.
    if let Some(Value::Array(alts)) = obj.get("anyOf").or_else(|| obj.get("oneOf")) {
        let non_null: Vec<&Value> = alts
            .iter()
            .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [only] = non_null[..] {
            return field_kind(defs, only);
        }
    }
    match primary_type(obj) {
        Some("array") => {
            let item = obj
                .get("items")
                .map(|i| field_kind(defs, i).scalar)
                .unwrap_or(Scalar::Other);
            FieldKind {
                scalar: item,
                array: true,
            }
        }
        Some(t) => FieldKind {
            scalar: scalar_of(t),
            array: false,
        },
        None => FieldKind {
            scalar: Scalar::Other,
            array: false,
        },
    }
}

fn primary_type(obj: &Map<String, Value>) -> Option<&str> {
    match obj.get("type")? {
        Value::String(s) => Some(s),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    }
}

fn scalar_of(t: &str) -> Scalar {
    match t {
        "integer" => Scalar::Integer,
        "number" => Scalar::Number,
        "boolean" => Scalar::Boolean,
        _ => Scalar::Other,
    }
}

fn coerce_scalar(scalar: Scalar, raw: &str) -> Value {
    let parsed = match scalar {
        Scalar::Integer => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<u64>().map(Value::from))
            .ok(),
        Scalar::Number => raw
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Scalar::Boolean => match raw {
            "true" | "1" => Some(Value::Bool(true)),
            "false" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        Scalar::Other => None,
    };
    // Left as text when it does not parse: deserialization then names the field and the type.
    parsed.unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// Decodes `T` from the request's parts, merged as described in the module docs.
///
/// Malformed JSON is a 400; a value that does not fit `T` is a 422 naming the field.
pub fn decode<T: DeserializeOwned>(
    plan: &InputPlan,
    raw: &RawInput,
    has_body: bool,
) -> Result<T, PikkuError> {
    from_value(merge(plan, raw, has_body)?)
}

/// The request's parts merged into one JSON value (the generic [`decode`] only deserializes
/// it, so the merging is compiled once, not once per input type).
pub(crate) fn merge(plan: &InputPlan, raw: &RawInput, has_body: bool) -> Result<Value, PikkuError> {
    let mut merged = Map::new();
    if has_body && !raw.body.iter().all(u8::is_ascii_whitespace) {
        let body: Value = serde_json::from_slice(&raw.body)
            .map_err(|e| PikkuError::bad_request(format!("request body is not valid JSON: {e}")))?;
        match body {
            Value::Object(map) => merged = map,
            // A non-object body is the whole input when nothing else contributes.
            other if raw.path.is_empty() && raw.query.as_deref().unwrap_or("").is_empty() => {
                return Ok(other);
            }
            _ => {
                return Err(PikkuError::bad_request(
                    "request body must be a JSON object when the route also has path or query params",
                ));
            }
        }
    }
    if let Some(q) = raw.query.as_deref() {
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            let value = plan.coerce(&k, &v);
            if plan.is_array(&k) {
                match merged
                    .entry(k.into_owned())
                    .or_insert_with(|| Value::Array(vec![]))
                {
                    Value::Array(items) => items.push(value),
                    slot => *slot = Value::Array(vec![value]),
                }
            } else {
                merged.insert(k.into_owned(), value);
            }
        }
    }
    for (k, v) in &raw.path {
        merged.insert(k.clone(), plan.coerce(k, v));
    }
    Ok(Value::Object(merged))
}

impl RawInput {
    /// Takes the query parameter `key` off the query string: returns its (first) decoded
    /// value and leaves the other parameters as they were sent, so a runtime parameter (the
    /// stream routes' `lastEventId`) never reaches an input type that refuses unknown fields.
    pub fn take_query_param(&mut self, key: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        let is_key = |pair: &str| {
            form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_some_and(|(k, _)| k == key)
        };
        // Most requests do not carry it: look before building a new query string.
        if !query.split('&').any(is_key) {
            return None;
        }
        let mut value = None;
        let mut rest = String::with_capacity(query.len());
        for pair in query.split('&') {
            let mut parsed = form_urlencoded::parse(pair.as_bytes());
            match parsed.next() {
                Some((k, v)) if k == key => {
                    if value.is_none() {
                        value = Some(v.into_owned());
                    }
                }
                _ => {
                    if !pair.is_empty() {
                        if !rest.is_empty() {
                            rest.push('&');
                        }
                        rest.push_str(pair);
                    }
                }
            }
        }
        if value.is_some() {
            self.query = Some(rest);
        }
        value
    }
}

/// Deserializes the merged input; the error mapping is a separate, non-generic function so
/// each input type compiles only the deserialization.
pub(crate) fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, PikkuError> {
    serde_path_to_error::deserialize(value).map_err(input_error)
}

/// A deserialization error as a 422 naming the field.
fn input_error(err: serde_path_to_error::Error<serde_json::Error>) -> PikkuError {
    {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        // serde reports a missing field on its parent; name the field itself.
        let field = missing_field(&inner)
            .map(|f| {
                if path == "." {
                    f.to_string()
                } else {
                    format!("{path}.{f}")
                }
            })
            .unwrap_or(path);
        PikkuError::unprocessable(format!("invalid input at `{field}`: {inner}")).with_field(field)
    }
}

fn missing_field(msg: &str) -> Option<&str> {
    msg.strip_prefix("missing field `")?.split('`').next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Q {
        user_id: String,
        interval_ms: Option<u64>,
        realtime: Option<bool>,
        #[serde(default)]
        tags: Vec<u32>,
    }

    fn raw(path: &[(&str, &str)], query: &str, body: &str) -> RawInput {
        RawInput {
            path: path
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            query: Some(query.to_string()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn coerces_query_and_path_by_schema() {
        let plan = InputPlan::of::<Q>();
        let q: Q = decode(
            &plan,
            &raw(
                &[("userId", "42")],
                "intervalMs=250&realtime=true&tags=1&tags=2",
                "",
            ),
            false,
        )
        .unwrap();
        assert_eq!(
            q,
            Q {
                user_id: "42".into(),
                interval_ms: Some(250),
                realtime: Some(true),
                tags: vec![1, 2]
            }
        );
    }

    #[test]
    fn path_params_win_over_body() {
        let plan = InputPlan::of::<Q>();
        let q: Q = decode(
            &plan,
            &raw(&[("userId", "a")], "", r#"{"userId":"b"}"#),
            true,
        )
        .unwrap();
        assert_eq!(q.user_id, "a");
    }

    #[test]
    fn wrong_type_names_the_field() {
        let plan = InputPlan::of::<Q>();
        let e = decode::<Q>(
            &plan,
            &raw(&[("userId", "a")], "intervalMs=soon", ""),
            false,
        )
        .unwrap_err();
        assert_eq!(e.status(), 422);
        assert_eq!(e.field(), Some("intervalMs"));
    }

    #[test]
    fn missing_field_is_named() {
        let plan = InputPlan::of::<Q>();
        let e = decode::<Q>(&plan, &raw(&[], "", ""), false).unwrap_err();
        assert_eq!(e.field(), Some("userId"));
    }

    #[test]
    fn a_taken_query_param_leaves_the_rest_as_sent() {
        let mut r = raw(&[], "a=1&lastEventId=abc-3&b=x%20y&lastEventId=later", "");
        assert_eq!(r.take_query_param("lastEventId").as_deref(), Some("abc-3"));
        assert_eq!(r.query.as_deref(), Some("a=1&b=x%20y"));
        let mut r = raw(&[], "lastEvent%49d=earliest", "");
        assert_eq!(
            r.take_query_param("lastEventId").as_deref(),
            Some("earliest")
        );
        assert_eq!(r.query.as_deref(), Some(""));
        let mut r = raw(&[], "a=1", "");
        assert_eq!(r.take_query_param("lastEventId"), None);
        assert_eq!(r.query.as_deref(), Some("a=1"));
    }

    #[test]
    fn malformed_json_is_400() {
        let plan = InputPlan::of::<Q>();
        let e = decode::<Q>(&plan, &raw(&[], "", "{nope"), true).unwrap_err();
        assert_eq!(e.status(), 400);
    }
}
