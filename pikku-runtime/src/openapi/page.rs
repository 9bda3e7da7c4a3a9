//! The docs page: the document and a self-contained HTML page that renders it.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{OpenApiConfig, document};
use crate::registry::RouteDef;

/// The docs page; `/*PIKKU_DOCS*/` is replaced by its data (document and paths) when served.
const DOCS_HTML: &str = include_str!("docs.html");
const DOCS_PLACEHOLDER: &str = "/*PIKKU_DOCS*/";
/// The docs page's `Content-Security-Policy`: it runs only its own inline script and talks only to its own origin.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The JSON document and the docs page of a set of routes, each built on first use and then
/// kept: what the `/openapi.json` and `/docs` handlers serve.
pub struct DocsPages {
    routes: Vec<&'static RouteDef>,
    cfg: OpenApiConfig,
    doc: OnceLock<Result<Value, String>>,
    json: OnceLock<Result<Bytes, String>>,
    html: OnceLock<Result<Bytes, String>>,
}

impl DocsPages {
    /// The pages of `routes` under `cfg` (nothing is built yet).
    pub fn new(routes: &[&'static RouteDef], cfg: &OpenApiConfig) -> Self {
        Self {
            routes: routes.to_vec(),
            cfg: cfg.clone(),
            doc: OnceLock::new(),
            json: OnceLock::new(),
            html: OnceLock::new(),
        }
    }

    /// The document, built once for both pages.
    fn doc(&self) -> Result<&Value, String> {
        self.doc
            .get_or_init(|| {
                document(&self.routes, &self.cfg)
                    .to_json()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The document as pretty JSON (or why it could not be built).
    pub fn json(&self) -> &Result<Bytes, String> {
        self.json.get_or_init(|| {
            serde_json::to_vec_pretty(self.doc()?)
                .map(Bytes::from)
                .map_err(|e| e.to_string())
        })
    }

    /// The docs page (or why it could not be built).
    pub fn html(&self) -> &Result<Bytes, String> {
        self.html.get_or_init(|| {
            let data = json!({
                "docsPath": self.cfg.docs_path,
                "jsonPath": self.cfg.json_path,
                "document": self.doc()?,
            });
            let page = DOCS_HTML.replacen(DOCS_PLACEHOLDER, &script_safe_json(&data), 1);
            Ok(Bytes::from(page))
        })
    }
}

/// JSON that can sit inside a `<script>` element: `<`, `>` and `&` only occur in JSON strings,
/// where their `\u` escapes mean the same, so no `</script>` can end the element early.
fn script_safe_json(value: &Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_safe_json_cannot_close_the_script_element() {
        let v = json!({"d": "</script><script>alert(1)</script> & more"});
        let s = script_safe_json(&v);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }

    #[test]
    fn docs_template_has_its_placeholder() {
        assert_eq!(DOCS_HTML.matches(DOCS_PLACEHOLDER).count(), 1);
    }
}
