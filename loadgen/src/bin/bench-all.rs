//! Runs every benchmark scenario against the Pikku bench app (`examples/bench.rs`), the
//! hand-written axum baseline and, where Node is installed, Pikku's own TypeScript runtime
//! (`loadgen/node-pikku`, npm `@pikku/core`) and, in the idle rows, plain Node.js
//! (`loadgen/node-plain`, `node:http` only), alternating, and prints a table of them all plus
//! ratios. Writes `results.md`, `results.json` and `chart.svg` to `--out` (default
//! `target/bench-all`).
//!
//! ```sh
//! cargo run --release -p loadgen --bin bench-all -- --quick   # < 2 minutes once built
//! cargo run --release -p loadgen --bin bench-all             # full: 3 rounds, capped 50k, compile cost
//! ```
//!
//! Flags: `--quick`, `--rounds N`, `--out DIR`, `--no-build`, `--only a,b` (scenario ids),
//! `--redis URL` (default `redis://127.0.0.1:6379`), `--no-compile`, `--no-node` (skip both
//! Node columns), `--threads N`
//! (load-generator worker threads), `--from-json FILE` (rebuild the table and chart from a
//! previous run's `results.json`, running nothing).
//!
//! The work is done by the library's [`loadgen::bench`] modules; this binary parses the flags
//! and calls [`loadgen::bench::all::run`].

use loadgen::bench::{all, options::Opts};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match Opts::parse(args.iter().skip(1).cloned()) {
        Ok(o) => all::run(o, &args.join(" ")).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-all: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
