//! 100,000 concurrent idle SSE streams on one box (issue #17): several bench-app instances
//! sharing the Redis hub, streams opened from several client processes, RSS per stream, idle
//! CPU, a heartbeat on every stream, and one notification that must reach exactly its user's
//! stream through another instance. The logic is in [`loadgen::hundred_k`].
//!
//! ```text
//! cargo build --release --example bench -p pikku-suite
//! cargo run --release -p loadgen --bin hundred-k -- [--streams 100000] [--instances 6] [--json]
//! ```
//!
//! Prints a markdown table; exits non-zero when a check fails.

use std::process::ExitCode;

use loadgen::hundred_k::{self, Mode};

fn main() -> ExitCode {
    let mode = match hundred_k::parse(std::env::args().skip(1)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("hundred-k: {e}");
            return ExitCode::from(2);
        }
    };
    // One thread: the coordinator mostly waits, a worker's streams are idle, and children
    // tied to the spawning thread (PR_SET_PDEATHSIG) must be spawned by a thread that lives.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hundred-k: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match mode {
        Mode::Help => {
            println!("{}", hundred_k::USAGE);
            ExitCode::SUCCESS
        }
        Mode::Worker(w) => match rt.block_on(hundred_k::worker(w)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hundred-k worker: {e}");
                ExitCode::FAILURE
            }
        },
        Mode::Run(o) => match rt.block_on(hundred_k::run(&o)) {
            Ok(out) => {
                println!("{}", out.markdown());
                if o.json {
                    println!("{}", serde_json::to_string(&out).unwrap_or_default());
                }
                if out.passed() {
                    ExitCode::SUCCESS
                } else {
                    eprintln!("hundred-k: a check failed");
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("hundred-k: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
