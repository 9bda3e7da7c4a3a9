//! The layering rule of `src/lib.rs`'s docs, checked on the source: a module names only
//! modules of its own layer or below (`crate::...` paths outside comments), and the modules
//! of one layer import each other without a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every top-level module and its layer, as `lib.rs` lists them. The hub and the Rust client
/// sit beside the layers, on top of what they use.
const LAYERS: &[(&str, u8)] = &[
    ("error", 1),
    ("metrics", 1),
    ("sse", 2),
    ("schema", 3),
    ("input", 3),
    ("context", 4),
    ("call", 4),
    ("checks", 4),
    ("invoke", 4),
    ("registry", 4),
    ("reply", 4),
    ("session", 5),
    ("cors", 5),
    ("csrf", 5),
    ("content_type", 5),
    ("event_hub", 5),
    ("client", 5),
    ("serving", 6),
    ("startup", 7),
    ("openapi", 8),
    ("client_ts", 8),
    // The adapters live inside `app`: router.rs (axum), actix.rs (actix-web), docs.rs.
    ("prometheus", 8),
    ("app", 9),
    ("server", 9),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The top-level module a file of `src/` belongs to (`None` for `lib.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_owned())
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a line of code names as `crate::<module>` (comments left out).
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `$crate::` is a macro's path to this crate as seen from its caller.
        let is_dollar = i > 0 && rest.as_bytes()[i - 1] == b'$';
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !is_dollar && !name.is_empty() {
            out.push(name);
        }
    }
    // `use crate::{a, b::c}` lists modules inside braces.
    if let Some(list) = code.trim_start().strip_prefix("use crate::{") {
        out.extend(
            list.split([',', '}'])
                .map(|s| s.trim().split("::").next().unwrap_or("").to_owned())
                .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                .filter(|s| !s.is_empty()),
        );
    }
    out
}

#[test]
fn modules_import_only_their_layer_and_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut upward = Vec::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let from_layer =
            layer(&from).unwrap_or_else(|| panic!("module `{from}` has no layer in LAYERS"));
        let text = std::fs::read_to_string(file).unwrap();
        let mut in_tests = false;
        for line in text.lines() {
            // Unit tests may use anything (they are not part of the layering).
            if line.starts_with("#[cfg(test)]") {
                in_tests = true;
            }
            let trimmed = line.trim_start();
            if in_tests || trimmed.starts_with("//") {
                continue;
            }
            for to in named_modules(line) {
                // Items of lib.rs itself (re-exports like `crate::Pikku`) are not modules.
                let Some(to_layer) = layer(&to) else { continue };
                if to == from {
                    continue;
                }
                if to_layer > from_layer {
                    upward.push(format!(
                        "{}: `{from}` (layer {from_layer}) imports `{to}` (layer {to_layer})",
                        file.display()
                    ));
                }
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that run upward:\n{}",
        upward.join("\n")
    );

    // No circle: a depth-first search that never meets a module on its own path.
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import circle: {} -> {m}", path[i..].join(" -> "));
        }
        path.push(m.to_owned());
        for next in edges.get(m).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for m in edges.keys() {
        visit(m, &edges, &mut Vec::new(), &mut done);
    }
    assert!(
        edges.len() > 10,
        "the scan found too few imports: {edges:?}"
    );
}

#[test]
fn the_scan_sees_braced_and_nested_paths() {
    assert_eq!(
        named_modules("use crate::{error::PikkuError, sse};"),
        ["error", "sse"]
    );
    assert_eq!(
        named_modules("    let x = crate::registry::all_routes(); // crate::app"),
        ["registry"]
    );
    assert!(named_modules("client: &$crate::client::Client,").is_empty());
}
