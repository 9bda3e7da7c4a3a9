//! From runs to results: the median run of each scenario and server, the table rows, the
//! chart's panels, and the bodies of `results.md` and `results.json`.

use std::collections::BTreeMap;

use super::record::{Run, ServerKind};
use super::render::markdown::markdown;
use super::render::svg::{Panel, svg};
use super::scenarios::{Kind, Scenario};
use super::stats::median_run;
use super::table::{Row, compile_rows, rows_for};
use crate::report::CompileCost;

/// The median run of each (scenario id, server) that has one.
pub type Medians<'a> = BTreeMap<(&'a str, ServerKind), Run>;

/// The table of a whole run.
#[derive(Debug, Clone)]
pub struct Summary<'a> {
    /// Every scenario's rows, then the compile-cost rows.
    pub rows: Vec<Row>,
    /// The runs the rows show.
    pub medians: Medians<'a>,
    /// Whether the Node column ran (some run is Pikku on Node's).
    pub with_node: bool,
    /// Whether the plain Node.js column ran (some run is its; idle rows only).
    pub with_plain: bool,
}

/// The rows of every scenario of `list` from the median of its `runs` per server, then the
/// compile-cost rows. Plain Node.js has cells in the idle rows only.
pub fn summarise<'a>(
    list: &'a [Scenario],
    runs: &[Run],
    compile: Option<&CompileCost>,
) -> Summary<'a> {
    let with_node = runs.iter().any(|r| r.server == ServerKind::PikkuNode);
    let with_plain = runs.iter().any(|r| r.server == ServerKind::NodePlain);
    let mut rows = Vec::new();
    let mut medians: Medians<'a> = BTreeMap::new();
    for sc in list {
        let pick = |k: ServerKind| {
            let of: Vec<&Run> = runs
                .iter()
                .filter(|r| r.scenario == sc.id && r.server == k)
                .collect();
            median_run(sc, &of)
        };
        let (pk, bl, nd, pl) = (
            pick(ServerKind::Pikku),
            pick(ServerKind::Baseline),
            pick(ServerKind::PikkuNode),
            pick(ServerKind::NodePlain),
        );
        let idle = matches!(sc.kind, Kind::Idle { .. });
        rows.extend(rows_for(
            sc,
            pk.as_ref(),
            bl.as_ref(),
            with_node.then_some(nd.as_ref()),
            (with_plain && idle).then_some(pl.as_ref()),
        ));
        for (kind, r) in [
            (ServerKind::Pikku, pk),
            (ServerKind::Baseline, bl),
            (ServerKind::PikkuNode, nd),
            (ServerKind::NodePlain, pl),
        ] {
            if let Some(r) = r {
                medians.insert((sc.id, kind), r);
            }
        }
    }
    if let Some(c) = compile {
        rows.extend(compile_rows(c));
    }
    Summary {
        rows,
        medians,
        with_node,
        with_plain,
    }
}

/// The chart's series: (label, colour), in column order.
pub const SERIES: [(&str, &str); 3] = [
    ("Pikku", "#1b9e77"),
    ("axum baseline", "#9e9e9e"),
    ("Pikku on Node (@pikku/core)", "#d95f02"),
];

/// The servers shown, in column order.
pub fn columns(with_node: bool) -> &'static [ServerKind] {
    if with_node {
        &[
            ServerKind::Pikku,
            ServerKind::Baseline,
            ServerKind::PikkuNode,
        ]
    } else {
        &[ServerKind::Pikku, ServerKind::Baseline]
    }
}

/// The chart's panels (throughput, fan-out p99, many-topics p99, RSS per idle stream) for the
/// scenarios of `list`; panels with no scenario are left out.
pub fn panels(
    list: &[Scenario],
    medians: &Medians<'_>,
    kinds: &[ServerKind],
    stream_cap: usize,
) -> Vec<Panel> {
    let get = |id: &str, k: ServerKind| medians.get(&(id, k)).and_then(|r| r.report.clone());
    let rss = |id: &str, k: ServerKind| {
        medians
            .get(&(id, k))
            .filter(|r| r.report.is_some())
            .map(|r| r.rss_per_stream_kib)
    };
    let thr = |id: &str, k| get(id, k).map(|r| r.events_per_s / 1e6);
    let p99 = |id: &str, k| get(id, k).map(|r| r.latency.p99_us as f64 / 1e3);
    let has = |id: &str| list.iter().any(|s| s.id == id);
    let each = |f: &dyn Fn(ServerKind) -> Option<f64>| kinds.iter().map(|&k| f(k)).collect();
    let mut panels = vec![Panel {
        title: "Throughput".into(),
        unit: "M events/s, higher is better".into(),
        groups: ["single", "multi"]
            .into_iter()
            .filter(|id| has(id))
            .map(|id| {
                let label = if id == "single" {
                    "1 conn"
                } else {
                    "100 conns"
                };
                (label.to_owned(), each(&|k| thr(id, k)))
            })
            .collect(),
    }];
    panels.push(Panel {
        title: "Fan-out p99".into(),
        unit: "ms, lower is better".into(),
        groups: [
            ("fanout1k", "1k"),
            ("fanout10k", "10k"),
            ("fanout1k-redis", "1k Redis"),
            ("fanout10k-redis", "10k Redis"),
            ("fanout1k-nats", "1k NATS"),
            ("fanout10k-nats", "10k NATS"),
            ("fanout1k-pg", "1k PG"),
            ("fanout10k-pg", "10k PG"),
        ]
        .into_iter()
        .filter(|(id, _)| has(id))
        .map(|(id, l)| (l.to_owned(), each(&|k| p99(id, k))))
        .collect(),
    });
    panels.push(Panel {
        title: "Many topics p99".into(),
        unit: "ms, lower is better".into(),
        groups: [
            ("topics10k", "embedded"),
            ("topics10k-redis", "Redis"),
            ("topics10k-nats", "NATS"),
            ("topics10k-pg", "PG"),
        ]
        .into_iter()
        .filter(|(id, _)| has(id))
        .map(|(id, l)| (l.to_owned(), each(&|k| p99(id, k))))
        .collect(),
    });
    panels.push(Panel {
        title: "RSS per idle stream".into(),
        unit: "KiB, lower is better".into(),
        groups: [
            ("idle10k", "10k".to_owned()),
            (
                "idle50k",
                format!("{}k (50k capped)", stream_cap as f64 / 1000.0),
            ),
        ]
        .into_iter()
        .filter(|(id, _)| has(id))
        .map(|(id, l)| (l.to_owned(), each(&|k| rss(id, k))))
        .collect(),
    });
    panels.retain(|p| !p.groups.is_empty());
    panels
}

/// The chart: `panels` with the series of `kinds`, `subtitle` under the title.
pub fn chart(panels: &[Panel], kinds: &[ServerKind], subtitle: &str) -> String {
    svg(panels, &SERIES[..kinds.len()], subtitle)
}

/// What `results.md` says above the table.
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// The machine line ([`super::host::machine`], or the previous run's).
    pub machine: &'a str,
    /// `rustc --version`.
    pub toolchain: &'a str,
    /// What the Node column ran, when it ran.
    pub node: Option<&'a str>,
    /// What the plain Node.js column ran, when it ran.
    pub node_plain: Option<&'a str>,
    /// The command line of the run.
    pub command: &'a str,
    /// Rebuilt with `--from-json` rather than run.
    pub rebuilt: bool,
    /// `quick` or `full`.
    pub mode: &'a str,
    /// Rounds per server.
    pub rounds: usize,
    /// Load-generator worker threads.
    pub threads: usize,
}

/// The body of `results.md`: the header lines, then the markdown table of `rows`.
pub fn results_md(h: &Header<'_>, rows: &[Row]) -> String {
    let rebuilt = if h.rebuilt {
        " (table and chart rebuilt from its results.json with --from-json)"
    } else {
        ""
    };
    let node_line = [
        ("Pikku on Node", h.node),
        ("Node.js plain SSE", h.node_plain),
    ]
    .into_iter()
    .filter_map(|(name, d)| Some(format!("\n\n{name}: {}", d?)))
    .collect::<String>();
    format!(
        "Machine: {}\n\nToolchain: {}{node_line}\n\nCommand: `{}`{rebuilt} ({} mode, {} round(s) per server, alternating; median run shown; load generator on {} worker threads)\n\n{}",
        h.machine,
        h.toolchain,
        h.command,
        h.mode,
        h.rounds,
        h.threads,
        markdown(rows)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::options::Opts;
    use crate::bench::scenarios::scenarios;
    use crate::report::Report;

    fn ticks_run(server: ServerKind, round: usize, events_per_s: f64) -> Run {
        let mut r = Run::na(server, "single", round, String::new());
        r.note = None;
        r.report = Some(Report {
            conns: 1,
            events: 200_000,
            events_per_s,
            ..Report::default()
        });
        r
    }

    fn quick_single() -> Vec<Scenario> {
        let o = Opts::parse(["--quick", "--only", "single"].map(String::from)).unwrap();
        scenarios(&o, 19_500)
    }

    #[test]
    fn medians_rows_and_the_throughput_panel() {
        let list = quick_single();
        let runs = [
            ticks_run(ServerKind::Pikku, 0, 4e6),
            ticks_run(ServerKind::Baseline, 0, 1e6),
            ticks_run(ServerKind::Baseline, 1, 2e6),
            ticks_run(ServerKind::Pikku, 1, 5e6),
            ticks_run(ServerKind::Pikku, 2, 6e6),
        ];
        let s = summarise(&list, &runs, None);
        assert!(!s.with_node);
        assert_eq!(s.rows.len(), 6);
        assert_eq!(
            (&*s.rows[0].pikku, &*s.rows[0].baseline, &*s.rows[0].ratio),
            ("5.00M", "1.00M", "5.00x")
        );
        assert_eq!(s.medians[&("single", ServerKind::Pikku)].round, 1);
        assert_eq!(s.medians[&("single", ServerKind::Pikku)].rounds_ok, (3, 3));
        let kinds = columns(s.with_node);
        assert_eq!(kinds, [ServerKind::Pikku, ServerKind::Baseline]);
        // Only the throughput panel has a scenario; the others are left out.
        assert_eq!(
            panels(&list, &s.medians, kinds, 19_500),
            [Panel {
                title: "Throughput".into(),
                unit: "M events/s, higher is better".into(),
                groups: vec![("1 conn".into(), vec![Some(5.0), Some(1.0)])],
            }]
        );
    }

    /// The header as `bench-all` wrote it before it was split up.
    #[test]
    fn results_md_header() {
        let h = Header {
            machine: "AMD EPYC, 2 cores",
            toolchain: "rustc 1.95.0",
            node: Some("`loadgen/node-pikku/server.mjs`"),
            node_plain: None,
            command: "target/release/bench-all --out benchmarks",
            rebuilt: true,
            mode: "full",
            rounds: 3,
            threads: 2,
        };
        assert_eq!(
            results_md(&h, &[]),
            "Machine: AMD EPYC, 2 cores\n\nToolchain: rustc 1.95.0\n\nPikku on Node: `loadgen/node-pikku/server.mjs`\n\nCommand: `target/release/bench-all --out benchmarks` (table and chart rebuilt from its results.json with --from-json) (full mode, 3 round(s) per server, alternating; median run shown; load generator on 2 worker threads)\n\n| scenario | metric | Pikku | axum baseline | Pikku / baseline | target |\n|---|---|---|---|---|---|\n"
        );
        let fresh = results_md(
            &Header {
                node: None,
                rebuilt: false,
                ..h
            },
            &[],
        );
        assert!(fresh.starts_with("Machine: AMD EPYC, 2 cores\n\nToolchain: rustc 1.95.0\n\nCommand: `target/release/bench-all --out benchmarks` (full mode, 3 round(s)"));
    }

    fn idle_run(server: ServerKind, per_stream: f64) -> Run {
        let mut r = Run::na(server, "idle10k", 0, String::new());
        r.note = None;
        r.rss_per_stream_kib = per_stream;
        r.report = Some(Report {
            conns: 10_000,
            opened: 10_000,
            ..Report::default()
        });
        r
    }

    #[test]
    fn plain_node_has_cells_in_the_idle_rows_only() {
        let o = Opts::parse(["--quick", "--only", "single,idle10k"].map(String::from)).unwrap();
        let list = scenarios(&o, 19_500);
        let runs = [
            ticks_run(ServerKind::Pikku, 0, 4e6),
            ticks_run(ServerKind::Baseline, 0, 1e6),
            idle_run(ServerKind::Pikku, 18.0),
            idle_run(ServerKind::Baseline, 20.0),
            idle_run(ServerKind::NodePlain, 9.0),
        ];
        let s = summarise(&list, &runs, None);
        assert!(s.with_plain && !s.with_node);
        let (ticks, idle) = s.rows.split_at(6);
        assert!(ticks.iter().all(|r| r.plain.is_none() && r.node.is_none()));
        assert_eq!(idle[1].metric, "server RSS per stream KiB");
        assert_eq!(idle[1].plain, Some(("9.0".into(), "2.00x".into())));
        assert_eq!(
            s.medians[&("idle10k", ServerKind::NodePlain)].rounds_ok,
            (1, 1)
        );
        // The chart keeps its series: plain Node.js is a table column only.
        assert_eq!(columns(s.with_node).len(), 2);
    }
}
