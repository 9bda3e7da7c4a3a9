//! Compile cost of the DSL: writes three crates into a temporary directory — 200 functions
//! annotated with `#[pikku_func]`, the same 200 functions as plain axum handlers, and those
//! axum handlers with their types also deriving `JsonSchema` (what the Pikku crate's types
//! derive for the OpenAPI document, so the part of the cost that is the derives' is seen) —
//! then times `cargo build` (debug) of each crate with its dependencies already built, and
//! the incremental rebuild after changing one function. Prints one JSON line.
//!
//! ```sh
//! cargo run --release -p loadgen --bin compile-cost -- [--functions 200] [--samples 3] [--keep]
//! ```
//!
//! The generated crates are never committed; they live in `$TMPDIR/pikku-compile-cost-<pid>`
//! (removed afterwards unless `--keep`). Built artifacts go to `<target>/compile-cost`, so the
//! dependencies are compiled once and reused by later runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const PER_MODULE: usize = 20;

/// The measured crates, in the order of the timings.
const CRATES: [&str; 3] = ["gen-pikku", "gen-axum", "gen-axum-schemas"];

use loadgen::report::CompileCost;

fn module_pikku(m: usize, n: usize) -> String {
    let mut s = String::from("use pikku::prelude::*;\nuse crate::Services;\n\n");
    for i in 0..n {
        let f = m * PER_MODULE + i;
        let _ = write!(
            s,
            "#[derive(Debug, Deserialize, JsonSchema)]\npub struct In{f} {{ pub a: u64, pub b: Option<String> }}\n\
             #[derive(Debug, Serialize, JsonSchema)]\npub struct Out{f} {{ pub v: u64, pub s: String }}\n\n"
        );
        if i % 4 == 0 {
            let _ = write!(
                s,
                "/// Stream {f}\n#[pikku_func(route = \"/m{m}/f{f}/stream\", response = \"stream\", auth = false)]\n\
                 pub async fn f{f}(_services: &Services, input: In{f}) -> impl Stream<Item = Out{f}> {{\n\
                 \x20   stream! {{ for v in 0..input.a {{ yield Out{f} {{ v: v + EDIT{f}, s: input.b.clone().unwrap_or_default() }}; }} }}\n}}\n\n"
            );
        } else {
            let method = if i % 2 == 0 { "post" } else { "get" };
            let _ = write!(
                s,
                "/// Function {f}\n#[pikku_func(route = \"/m{m}/f{f}\", method = \"{method}\", auth = false)]\n\
                 pub async fn f{f}(_services: &Services, input: In{f}) -> Result<Out{f}, PikkuError> {{\n\
                 \x20   Ok(Out{f} {{ v: input.a + EDIT{f}, s: input.b.unwrap_or_default() }})\n}}\n\n"
            );
        }
        let _ = writeln!(s, "const EDIT{f}: u64 = 0;\n");
    }
    s
}

/// `schemas`: the types also derive `JsonSchema`, as the Pikku crate's do.
fn module_axum(m: usize, n: usize, schemas: bool) -> String {
    let schema = if schemas {
        ", schemars::JsonSchema"
    } else {
        ""
    };
    let mut s = String::from(
        "use std::sync::Arc;\nuse axum::extract::{Json, Query, State};\nuse axum::response::sse::{Event, KeepAlive, Sse};\n\
         use axum::routing::{get, post};\nuse axum::Router;\nuse futures_util::Stream;\nuse serde::{Deserialize, Serialize};\n\
         use crate::Services;\n\n",
    );
    let mut routes =
        String::from("pub fn routes() -> Router<Arc<Services>> {\n    Router::new()\n");
    for i in 0..n {
        let f = m * PER_MODULE + i;
        let _ = write!(
            s,
            "#[derive(Debug, Deserialize{schema})]\npub struct In{f} {{ pub a: u64, pub b: Option<String> }}\n\
             #[derive(Debug, Serialize{schema})]\npub struct Out{f} {{ pub v: u64, pub s: String }}\n\n"
        );
        if i % 4 == 0 {
            let _ = write!(
                s,
                "/// Stream {f}\npub async fn f{f}(State(_services): State<Arc<Services>>, Query(input): Query<In{f}>) -> Sse<impl Stream<Item = Result<Event, axum::Error>>> {{\n\
                 \x20   Sse::new(async_stream::stream! {{ for v in 0..input.a {{ yield Event::default().json_data(Out{f} {{ v: v + EDIT{f}, s: input.b.clone().unwrap_or_default() }}); }} }}).keep_alive(KeepAlive::default())\n}}\n\n"
            );
            let _ = writeln!(routes, "        .route(\"/m{m}/f{f}/stream\", get(f{f}))");
        } else if i % 2 == 0 {
            let _ = write!(
                s,
                "/// Function {f}\npub async fn f{f}(State(_services): State<Arc<Services>>, Json(input): Json<In{f}>) -> Json<Out{f}> {{\n\
                 \x20   Json(Out{f} {{ v: input.a + EDIT{f}, s: input.b.unwrap_or_default() }})\n}}\n\n"
            );
            let _ = writeln!(routes, "        .route(\"/m{m}/f{f}\", post(f{f}))");
        } else {
            let _ = write!(
                s,
                "/// Function {f}\npub async fn f{f}(State(_services): State<Arc<Services>>, Query(input): Query<In{f}>) -> Json<Out{f}> {{\n\
                 \x20   Json(Out{f} {{ v: input.a + EDIT{f}, s: input.b.unwrap_or_default() }})\n}}\n\n"
            );
            let _ = writeln!(routes, "        .route(\"/m{m}/f{f}\", get(f{f}))");
        }
        let _ = writeln!(s, "const EDIT{f}: u64 = 0;\n");
    }
    routes.push_str("}\n");
    s + &routes
}

fn write(path: &Path, body: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, body).map_err(|e| format!("{}: {e}", path.display()))
}

fn generate(dir: &Path, root: &Path, functions: usize) -> Result<(), String> {
    let modules = functions.div_ceil(PER_MODULE);
    let runtime = root.join("pikku-runtime");
    write(
        &dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"gen-pikku\", \"gen-axum\", \"gen-axum-schemas\"]\nresolver = \"3\"\n",
    )?;
    // Same dependency versions as the project.
    if let Ok(lock) = std::fs::read_to_string(root.join("Cargo.lock")) {
        write(&dir.join("Cargo.lock"), &lock)?;
    }
    write(
        &dir.join("gen-pikku/Cargo.toml"),
        &format!(
            "[package]\nname = \"gen-pikku\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n\
             pikku-runtime = {{ path = {:?} }}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nschemars = \"1\"\n\
             tokio = {{ version = \"1\", features = [\"full\"] }}\naxum = \"0.8\"\n",
            runtime.display().to_string()
        ),
    )?;
    for (krate, extra) in [("gen-axum", ""), ("gen-axum-schemas", "schemars = \"1\"\n")] {
        write(
            &dir.join(krate).join("Cargo.toml"),
            &format!(
                "[package]\nname = \"{krate}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n\
                 axum = \"0.8\"\nserde = {{ version = \"1\", features = [\"derive\"] }}\ntokio = {{ version = \"1\", features = [\"full\"] }}\n\
                 async-stream = \"0.3\"\nfutures-util = \"0.3\"\n{extra}"
            ),
        )?;
    }
    let mut pikku_main = String::new();
    let mut axum_main = String::from("use std::sync::Arc;\n");
    let mut merge = String::new();
    for m in 0..modules {
        let n = PER_MODULE.min(functions - m * PER_MODULE);
        write(
            &dir.join(format!("gen-pikku/src/m{m}.rs")),
            &module_pikku(m, n),
        )?;
        write(
            &dir.join(format!("gen-axum/src/m{m}.rs")),
            &module_axum(m, n, false),
        )?;
        write(
            &dir.join(format!("gen-axum-schemas/src/m{m}.rs")),
            &module_axum(m, n, true),
        )?;
        let _ = writeln!(pikku_main, "mod m{m};");
        let _ = writeln!(axum_main, "mod m{m};");
        let _ = writeln!(merge, "        .merge(m{m}::routes())");
    }
    pikku_main.push_str(
        "\n/// The services.\npub struct Services;\n\n#[tokio::main]\nasync fn main() {\n    \
         let router: axum::Router = pikku::Pikku::new(Services).router();\n    let _ = router;\n}\n",
    );
    let _ = write!(
        axum_main,
        "\n/// The services.\npub struct Services;\n\n#[tokio::main]\nasync fn main() {{\n    \
         let router: axum::Router = axum::Router::new()\n{merge}        .with_state(Arc::new(Services));\n    let _ = router;\n}}\n"
    );
    write(&dir.join("gen-pikku/src/main.rs"), &pikku_main)?;
    write(&dir.join("gen-axum/src/main.rs"), &axum_main)?;
    write(&dir.join("gen-axum-schemas/src/main.rs"), &axum_main)?;
    Ok(())
}

/// One timed cargo run: wall seconds, and CPU seconds (user + system of cargo and every
/// compiler it waited for), which a shared box's other load disturbs far less.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

fn cargo(dir: &Path, target: &Path, args: &[&str]) -> Result<Timing, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cpu0 = loadgen::children_cpu_seconds();
    let t = Instant::now();
    let out = Command::new(cargo)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        .args(args)
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Timing {
        wall: t.elapsed().as_secs_f64(),
        cpu: loadgen::children_cpu_seconds() - cpu0,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn run() -> Result<CompileCost, String> {
    let mut functions = 200usize;
    let mut samples = 3usize;
    let mut keep = false;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--functions" => {
                functions = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--functions N")?;
            }
            "--samples" => {
                samples = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--samples N")?;
            }
            "--keep" => keep = true,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let functions = functions.clamp(1, 2000);
    let samples = samples.clamp(1, 10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("compile-cost");
    let dir = std::env::temp_dir().join(format!("pikku-compile-cost-{}", std::process::id()));
    generate(&dir, &root, functions)?;
    eprintln!(
        "compile-cost: crates in {}, target {}",
        dir.display(),
        target.display()
    );
    let warm = cargo(
        &dir,
        &target,
        &[
            "build",
            "-q",
            "-p",
            "gen-pikku",
            "-p",
            "gen-axum",
            "-p",
            "gen-axum-schemas",
        ],
    )?;
    eprintln!(
        "compile-cost: first build with dependencies {:.1} s",
        warm.wall
    );
    // Samples alternate between the crates, so a change in the box's load hits both alike.
    let mut t: [[Vec<Timing>; 2]; 3] = Default::default(); // [crate][full, incremental]
    for sample in 0..samples {
        for (k, krate) in CRATES.into_iter().enumerate() {
            let m0 = dir.join(krate).join("src/m0.rs");
            cargo(&dir, &target, &["clean", "-q", "-p", krate])?;
            t[k][0].push(cargo(&dir, &target, &["build", "-q", "-p", krate])?);
            // Change one function (its constant), as an edit would.
            let src = std::fs::read_to_string(&m0).map_err(|e| e.to_string())?;
            let edited = src.replacen(
                "const EDIT1: u64 = ",
                &format!("const EDIT1: u64 = {} + ", sample + 1),
                1,
            );
            write(&m0, &edited)?;
            t[k][1].push(cargo(&dir, &target, &["build", "-q", "-p", krate])?);
        }
    }
    for (k, krate) in CRATES.into_iter().enumerate() {
        let show = |v: &[Timing]| {
            v.iter()
                .map(|t| format!("{:.1} ({:.1} CPU)", t.wall, t.cpu))
                .collect::<Vec<_>>()
                .join(", ")
        };
        eprintln!(
            "compile-cost: {krate}: full [{}] s, incremental [{}] s",
            show(&t[k][0]),
            show(&t[k][1])
        );
    }
    let wall = |v: &[Timing]| median(v.iter().map(|t| t.wall).collect());
    let cpu = |v: &[Timing]| Some(median(v.iter().map(|t| t.cpu).collect()));
    let result = CompileCost {
        functions,
        pikku_build_s: wall(&t[0][0]),
        axum_build_s: wall(&t[1][0]),
        pikku_incremental_s: wall(&t[0][1]),
        axum_incremental_s: wall(&t[1][1]),
        pikku_build_cpu_s: cpu(&t[0][0]),
        axum_build_cpu_s: cpu(&t[1][0]),
        pikku_incremental_cpu_s: cpu(&t[0][1]),
        axum_incremental_cpu_s: cpu(&t[1][1]),
        axum_schemas_build_s: Some(wall(&t[2][0])),
        axum_schemas_incremental_s: Some(wall(&t[2][1])),
        axum_schemas_build_cpu_s: cpu(&t[2][0]),
        axum_schemas_incremental_cpu_s: cpu(&t[2][1]),
        samples,
        note: "debug profile; dependencies already built; incremental = one function's body \
               changed; CPU = user + system time of cargo and the compilers it ran"
            .into(),
    };
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(result)
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(r) => {
            println!("{}", serde_json::to_string(&r).unwrap_or_default());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("compile-cost: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
