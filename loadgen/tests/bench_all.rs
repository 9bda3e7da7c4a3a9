//! `bench-all --from-json` rebuilds `results.md`, `chart.svg`, `results.json` and the plain
//! table on stdout from a previous run without running anything, so the whole reporting path
//! can be pinned byte for byte: the expected files in `tests/data/bench-all/` were written by
//! `bench-all` itself (before it was split into library modules) from the same inputs.
//!
//! - `full-node`: a full-mode run with all three columns, the fd-capped idle row, Redis rows
//!   Node cannot run (notes in the cells) and compile cost (two rounds of the published run).
//! - `quick-no-node`: a quick run without the Node column, `--only single,idle10k`.
//! - `quick-node-plain`: `--only idle10k` with both Node columns, Pikku on Node and plain
//!   Node.js (added after the split, so these expected files are the split code's own output;
//!   its figures come from a debug build on a busy machine and mean nothing).
//! - `quick-hub-rows`: the event hub rows added later (fan-out through NATS and PostgreSQL,
//!   the many-topics rows of every backend with the server's backend connections), from a
//!   release run on a busy machine (the split code's own output; `--from-json` keeps only the
//!   rows the input has figures for).

use std::path::{Path, PathBuf};
use std::process::Command;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/bench-all")
        .join(name)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The toolchain line is the one line `--from-json` measures afresh (`rustc --version`).
fn without_toolchain(md: &str) -> String {
    md.lines()
        .map(|l| {
            if l.starts_with("Toolchain: ") {
                "Toolchain: (any)"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rebuilds_byte_for_byte(case: &str, extra: &[&str]) {
    let out = std::env::temp_dir().join(format!("bench-all-test-{case}-{}", std::process::id()));
    let input = data(&format!("{case}.json"));
    let run = Command::new(env!("CARGO_BIN_EXE_bench-all"))
        .arg("--from-json")
        .arg(&input)
        .args(extra)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run bench-all");
    assert!(
        run.status.success(),
        "bench-all failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        without_toolchain(&read(&out.join("results.md"))),
        without_toolchain(&read(&data(&format!("{case}.results.md")))),
        "{case}: results.md"
    );
    assert_eq!(
        read(&out.join("chart.svg")),
        read(&data(&format!("{case}.chart.svg"))),
        "{case}: chart.svg"
    );
    // The input was itself written by bench-all: rewriting it changes nothing.
    assert_eq!(
        read(&out.join("results.json")),
        read(&input),
        "{case}: results.json"
    );
    // The last line says where the files went and how long it took.
    let stdout = String::from_utf8_lossy(&run.stdout);
    let (table, last) = stdout.trim_end().rsplit_once('\n').expect("two parts");
    assert!(last.starts_with("wrote "), "{case}: last line {last:?}");
    assert_eq!(
        format!("{table}\n"),
        read(&data(&format!("{case}.stdout"))),
        "{case}: the plain table on stdout"
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn from_json_rebuilds_a_full_run_with_the_node_column() {
    rebuilds_byte_for_byte("full-node", &[]);
}

#[test]
fn from_json_rebuilds_a_quick_run_of_two_rows() {
    rebuilds_byte_for_byte("quick-no-node", &["--only", "single,idle10k"]);
}

#[test]
fn from_json_rebuilds_the_idle_row_with_plain_node() {
    rebuilds_byte_for_byte("quick-node-plain", &["--only", "idle10k"]);
}

#[test]
fn from_json_rebuilds_the_event_hub_rows() {
    rebuilds_byte_for_byte("quick-hub-rows", &[]);
}
