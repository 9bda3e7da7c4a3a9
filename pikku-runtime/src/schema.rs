//! Generating and reading JSON schemas: the generator of the documents, and named-schema
//! lookup shared by input decoding ([`crate::input`]) and the describers, which find named
//! schemas under different paths.

#[cfg(any(feature = "openapi", feature = "ts-client"))]
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

#[cfg(any(feature = "openapi", feature = "ts-client"))]
/// Where component schemas live in an OpenAPI document; the generator writes its `$ref`s
/// with this prefix.
pub(crate) const COMPONENTS_PREFIX: &str = "#/components/schemas/";

#[cfg(any(feature = "openapi", feature = "ts-client"))]
/// The one schema generator of the OpenAPI document and the TypeScript client, so their
/// types match: JSON Schema 2020-12, definitions under `#/components/schemas/`, no `$schema`.
pub(crate) fn components_generator() -> schemars::SchemaGenerator {
    SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = COMPONENTS_PREFIX.trim_start_matches('#').into();
            s.meta_schema = None;
        })
        .into_generator()
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
