//! The whole `bench-all` run, options in, files out: build, prepare the Node column, run the
//! rounds (or read a previous `results.json`), then write `results.md`, `chart.svg` and
//! `results.json` and print the table.

use std::path::PathBuf;
use std::time::Instant;

use super::host::{machine, rustc_version};
use super::options::Opts;
use super::orchestrate::{compile_cost, run_rounds};
use super::record::{Previous, Run};
use super::render::markdown::plain;
use super::results::{Header, chart, columns, panels, results_md, summarise};
use super::scenarios::{FD_RESERVE, scenarios};
use super::servers::{describe_node_plain, paths, prepare_node};

/// Runs `bench-all` as `o` asks; `command` is the command line, recorded in the results.
pub async fn run(mut o: Opts, command: &str) -> Result<(), String> {
    let p = paths()?;
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| p.root.join("target"));
    if o.out.as_os_str().is_empty() {
        o.out = target.join("bench-all");
    }
    o.logs = target.join("bench-all").join("logs");
    for d in [&o.out, &o.logs] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let started = Instant::now();
    let previous: Option<Previous> = match &o.from_json {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let prev: Previous =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            o.quick = prev.mode == "quick";
            o.rounds = prev.rounds;
            o.build = false;
            Some(prev)
        }
        None => None,
    };
    if o.build {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        eprintln!("== building the bench app, baseline and load generator (release)");
        let status = std::process::Command::new(cargo)
            .current_dir(&p.root)
            .args([
                "build",
                "--release",
                "-p",
                "pikku-suite",
                "--example",
                "bench",
            ])
            .args(["-p", "loadgen", "--bins"])
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build failed".into());
        }
    }
    let mut node_ran = None;
    if o.node && previous.is_none() {
        match prepare_node(&p.node_server) {
            Ok(d) => {
                eprintln!("== Pikku on Node: {d}");
                node_ran = Some(d);
            }
            Err(why) => {
                eprintln!("== no Pikku-on-Node column: {why}");
                o.node = false;
            }
        }
    }
    // Plain Node.js needs only `node`, so it runs even where the npm install failed.
    let mut plain_ran = None;
    if o.node_plain && previous.is_none() {
        match describe_node_plain(&p.node_plain_server) {
            Ok(d) => {
                eprintln!("== Node.js plain SSE (idle rows): {d}");
                plain_ran = Some(d);
            }
            Err(why) => {
                eprintln!("== no plain Node.js column: {why}");
                o.node_plain = false;
            }
        }
    }
    for b in [&p.bench_app, &p.baseline, &p.loadgen] {
        if previous.is_none() && !b.exists() {
            return Err(format!(
                "{} is missing (build it, or drop --no-build)",
                b.display()
            ));
        }
    }
    let nofile = crate::raise_nofile();
    let stream_cap = previous
        .as_ref()
        .and_then(|p| p.stream_cap)
        .unwrap_or_else(|| nofile.saturating_sub(FD_RESERVE).max(100) as usize);
    let mut list = scenarios(&o, stream_cap);
    if let Some(prev) = &previous {
        // Rows added since that run have no figures there: they are left out, not shown n/a.
        list.retain(|s| prev.runs.iter().any(|r| r.scenario == s.id));
    }
    let mode = if o.quick { "quick" } else { "full" };
    eprintln!(
        "== {} scenarios x {} round(s), {mode} mode; stream cap {stream_cap} per process (open-files limit {nofile})",
        list.len(),
        o.rounds
    );
    let (runs, compile): (Vec<Run>, _) = match &previous {
        Some(prev) => (prev.runs.clone(), prev.compile.clone()),
        None => {
            let runs = run_rounds(&p, &o, &list).await;
            let compile = if o.compile && p.compile_cost.exists() {
                compile_cost(&p).await?
            } else {
                None
            };
            (runs, compile)
        }
    };
    let summary = summarise(&list, &runs, compile.as_ref());
    let kinds = columns(summary.with_node);
    let panels = panels(&list, &summary.medians, kinds, stream_cap);
    let machine = match &o.from_json {
        Some(path) => std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["machine"].as_str().map(str::to_owned))
            .unwrap_or_else(machine),
        None => machine(),
    };
    let command = match &previous {
        Some(prev) => prev.command.clone().unwrap_or_else(|| "bench-all".into()),
        None => command.to_owned(),
    };
    let subtitle = format!("{mode} mode, {} round(s), median; {machine}", o.rounds);
    let chart = chart(&panels, kinds, &subtitle);
    let node_desc = match &previous {
        Some(prev) => prev.node.clone(),
        None => node_ran.filter(|_| summary.with_node),
    };
    let plain_desc = match &previous {
        Some(prev) => prev.node_plain.clone(),
        None => plain_ran.filter(|_| summary.with_plain),
    };
    let md = results_md(
        &Header {
            machine: &machine,
            toolchain: &rustc_version(),
            node: node_desc.as_deref(),
            node_plain: plain_desc.as_deref(),
            command: &command,
            rebuilt: previous.is_some(),
            mode,
            rounds: o.rounds,
            threads: o.threads,
        },
        &summary.rows,
    );
    let write = |name: &str, body: &str| {
        let path = o.out.join(name);
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("results.md", &md)?;
    write("chart.svg", &chart)?;
    let mut json = serde_json::json!({
        "machine": machine, "mode": mode, "rounds": o.rounds, "runs": runs, "compile": compile,
        "stream_cap": stream_cap, "command": command, "node": node_desc,
    });
    // Only where it ran, so runs without it read and write as they did before it existed.
    if let Some(d) = &plain_desc {
        json["node_plain"] = d.as_str().into();
    }
    write(
        "results.json",
        &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    println!("\n{}", plain(&summary.rows));
    println!(
        "wrote {}/{{results.md,results.json,chart.svg}} in {:.0} s",
        o.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
