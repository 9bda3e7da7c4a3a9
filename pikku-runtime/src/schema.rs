//! Reading generated JSON schemas: shared by input decoding ([`crate::input`]) and the OpenAPI
//! document ([`crate::openapi`]), which find named schemas under different paths.

use schemars::SchemaGenerator;
use serde_json::{Map, Value};

use crate::registry::{ResponseKind, RouteDef};

/// The schemas one route documents, generated into one generator (its definitions become
/// shared components): the input, the JSON output (json/either routes) and the stream item
/// (stream/either routes).
#[derive(Debug, Clone)]
pub(crate) struct RouteSchemas {
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub item: Option<Value>,
}

impl RouteSchemas {
    pub(crate) fn generate(route: &RouteDef, generator: &mut SchemaGenerator) -> Self {
        let mut gen_opt = |f: Option<crate::registry::SchemaFn>| f.map(|f| f(generator).to_value());
        Self {
            input: gen_opt(route.input_schema),
            output: gen_opt(
                route
                    .output_schema
                    .filter(|_| route.response != ResponseKind::Stream),
            ),
            item: gen_opt(
                route
                    .item_schema
                    .filter(|_| route.response != ResponseKind::Json),
            ),
        }
    }
}

/// The named schemas a local `$ref` can point to, and the prefix such refs carry
/// (`#/$defs/` in a root schema, `#/components/schemas/` in an OpenAPI document).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defs<'a> {
    prefix: &'a str,
    map: Option<&'a Map<String, Value>>,
}

impl<'a> Defs<'a> {
    /// Definitions named by refs starting with `prefix`.
    pub(crate) fn new(prefix: &'a str, map: Option<&'a Map<String, Value>>) -> Self {
        Self { prefix, map }
    }

    /// The `$defs` of a root schema, as `schemars` writes them by default.
    pub(crate) fn of_root(root: &'a Value) -> Self {
        Self::new("#/$defs/", root.get("$defs").and_then(Value::as_object))
    }

    /// The schema object `schema` is, following a local `$ref` to the definition it names.
    /// `None` for boolean schemas and refs that point elsewhere.
    pub(crate) fn resolve(&self, schema: &'a Value) -> Option<&'a Map<String, Value>> {
        let obj = schema.as_object()?;
        match obj.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix(self.prefix)?;
                self.map?.get(name)?.as_object()
            }
            None => Some(obj),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_refs_under_its_prefix_only() {
        let root = json!({"$defs": {"A": {"type": "object"}}});
        let defs = Defs::of_root(&root);
        let a = json!({"$ref": "#/$defs/A"});
        assert_eq!(defs.resolve(&a), root["$defs"]["A"].as_object());
        let elsewhere = json!({"$ref": "#/components/schemas/A"});
        assert_eq!(defs.resolve(&elsewhere), None);
        let inline = json!({"type": "string"});
        assert_eq!(defs.resolve(&inline), inline.as_object());
        assert_eq!(defs.resolve(&json!(true)), None);
    }
}
