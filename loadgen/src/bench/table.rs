//! The table: one row per metric of a scenario, with every server's cell and the ratios, as
//! text cells ready for rendering.

use super::record::Run;
use super::scenarios::{Backend, Kind, Scenario};
use super::stats::ratio;
use crate::report::{CompileCost, Report};

/// One table row: a metric of every server.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario's label (the renderers show it on its first row only).
    pub scenario: String,
    /// What the row measures, with its unit.
    pub metric: String,
    /// Pikku's cell.
    pub pikku: String,
    /// The axum baseline's cell.
    pub baseline: String,
    /// Pikku / baseline.
    pub ratio: String,
    /// Pikku on Node's cell and Pikku's ratio to it, where that column ran.
    pub node: Option<(String, String)>,
    /// Plain Node.js's cell and Pikku's ratio to it, in the idle rows where that column ran.
    pub plain: Option<(String, String)>,
    /// What Pikku should reach (`>= 0.95x`, ...), or a note.
    pub target: String,
}

/// A rate or count in at most four significant characters: `4.63M`, `368k`, `512`, `3.14`.
pub fn fmt_num(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Microseconds as milliseconds with one decimal.
pub fn ms(us: u64) -> String {
    format!("{:.1}", us as f64 / 1000.0)
}

/// A row's value for the ratio columns, from a run and its load-generator report.
type Val<'a> = &'a dyn Fn(&Run, &Report) -> f64;
/// A row's cell text, from a run and its load-generator report.
type Show<'a> = &'a dyn Fn(&Run, &Report) -> String;

/// The rows of one scenario from the median run of each server (`None`: no run). `nd` (Pikku
/// on Node) and `pl` (plain Node.js) are `None` when that column was not run at all (for this
/// scenario), `Some(None)` when it ran and has no run here.
pub fn rows_for(
    sc: &Scenario,
    pk: Option<&Run>,
    bl: Option<&Run>,
    nd: Option<Option<&Run>>,
    pl: Option<Option<&Run>>,
) -> Vec<Row> {
    let pair = |r: Option<&Run>| r.and_then(|run| run.report.clone().map(|rep| (run.clone(), rep)));
    let na = |r: Option<&Run>| {
        r.and_then(|r| r.note.clone())
            .unwrap_or_else(|| "n/a".into())
    };
    let (pp, bp) = (pair(pk), pair(bl));
    let np = nd.map(pair);
    let plp = pl.map(pair);
    let mut rows = Vec::new();
    // `value` feeds the ratio (when `target` asks for one or `with_ratio`), `show` the cells.
    let mut row = |metric: &str, value: Option<Val<'_>>, show: Show<'_>, target: &str| {
        let cell = |r: Option<&Run>, p: &Option<(Run, Report)>| match p {
            Some((run, rep)) => show(run, rep),
            None => na(r),
        };
        let ratio_to = |other: &Option<(Run, Report)>| match (value, &pp, other) {
            (Some(v), Some((a, ar)), Some((b, br))) => ratio(v(a, ar), v(b, br)),
            _ => "-".into(),
        };
        rows.push(Row {
            scenario: sc.label.clone(),
            metric: metric.into(),
            pikku: cell(pk, &pp),
            baseline: cell(bl, &bp),
            ratio: ratio_to(&bp),
            node: match (&nd, &np) {
                (Some(r), Some(p)) => Some((cell(*r, p), ratio_to(p))),
                _ => None,
            },
            plain: match (&pl, &plp) {
                (Some(r), Some(p)) => Some((cell(*r, p), ratio_to(p))),
                _ => None,
            },
            target: target.into(),
        });
    };
    let latencies = |_: &Run, r: &Report| {
        format!(
            "{} / {} / {}",
            ms(r.latency.p50_us),
            ms(r.latency.p99_us),
            ms(r.latency.max_us)
        )
    };
    let loadgen_cpu = |_: &Run, r: &Report| format!("{:.0}%", r.cpu_pct);
    let rounds = |run: &Run| format!("{}/{}", run.rounds_ok.0, run.rounds_ok.1);
    match sc.kind {
        Kind::Ticks { conns, n } => {
            let expected = conns as u64 * n;
            row(
                "events/s",
                Some(&|_, r| r.events_per_s),
                &|_, r| fmt_num(r.events_per_s),
                ">= 0.95x",
            );
            row(
                "MB/s on the wire",
                Some(&|_, r| r.mb_per_s),
                &|_, r| format!("{:.1}", r.mb_per_s),
                "",
            );
            row("latency p50 / p99 / max ms", None, &latencies, "");
            row(
                "received of expected; lost / dup / malformed; complete rounds",
                None,
                &|run, r| {
                    format!(
                        "{}/{expected}; {} / {} / {}; {}",
                        r.events,
                        r.lost,
                        r.dup,
                        r.malformed,
                        rounds(run)
                    )
                },
                "all, once",
            );
            row(
                "server CPU s per M events",
                Some(&|run, r| run.server_cpu_s / (r.events as f64 / 1e6).max(1e-9)),
                &|run, r| {
                    format!(
                        "{:.2}",
                        run.server_cpu_s / (r.events as f64 / 1e6).max(1e-9)
                    )
                },
                "",
            );
            row("loadgen CPU (% of a core)", None, &loadgen_cpu, "");
        }
        Kind::Idle { asked, conns, .. } => {
            row(
                "streams held",
                None,
                &|run, r| format!("{} of {asked} ({} server fds)", r.opened, run.server_fds),
                if asked > conns { "fd-capped" } else { "" },
            );
            row(
                "server RSS per stream KiB",
                Some(&|run, _| run.rss_per_stream_kib),
                &|run, _| format!("{:.1}", run.rss_per_stream_kib),
                "<= 1.1x",
            );
            row(
                "server RSS before -> after MiB",
                None,
                &|run, _| {
                    format!(
                        "{:.0} -> {:.0}",
                        run.rss_before_kib as f64 / 1024.0,
                        run.rss_after_kib as f64 / 1024.0
                    )
                },
                "",
            );
            row(
                "time to open all s",
                None,
                &|_, r| format!("{:.1}", r.setup_s),
                "",
            );
        }
        Kind::Fanout { subs, .. } => {
            row("latency p50 / p99 / max ms", None, &latencies, "");
            row(
                "latency p99 ms",
                Some(&|_, r| r.latency.p99_us as f64),
                &|_, r| ms(r.latency.p99_us),
                if subs >= 10_000 { "<= 1.0x" } else { "" },
            );
            row(
                "subscribers with every event once; lost / dup; complete rounds",
                None,
                &|run, r| {
                    format!(
                        "{}/{}; {} / {}; {}",
                        r.complete_streams,
                        r.conns,
                        r.lost,
                        r.dup,
                        rounds(run)
                    )
                },
                "all; 0 / 0",
            );
            row(
                "publish request took / all delivered after ms",
                None,
                &|_, r| format!("{:.0} / {:.0}", r.publish_ms, r.elapsed_s * 1e3),
                "",
            );
            row(
                "deliveries/s",
                Some(&|_, r| r.events_per_s),
                &|_, r| fmt_num(r.events_per_s),
                "",
            );
            row(
                "server CPU s",
                Some(&|run, _| run.server_cpu_s),
                &|run, _| format!("{:.2}", run.server_cpu_s),
                "",
            );
            row("loadgen CPU (% of a core)", None, &loadgen_cpu, "");
        }
        Kind::Topics { backend, .. } => {
            row(
                "time to subscribe all s",
                Some(&|_, r| r.setup_s),
                &|_, r| format!("{:.1}", r.setup_s),
                "",
            );
            row("latency p50 / p99 / max ms", None, &latencies, "");
            row(
                "latency p99 ms",
                Some(&|_, r| r.latency.p99_us as f64),
                &|_, r| ms(r.latency.p99_us),
                "",
            );
            row(
                "subscribers with their own event once; lost / dup / other topic's or malformed; complete rounds",
                None,
                &|run, r| {
                    format!(
                        "{}/{}; {} / {} / {}; {}",
                        r.complete_streams,
                        r.conns,
                        r.lost,
                        r.dup,
                        r.malformed,
                        rounds(run)
                    )
                },
                "all; 0 / 0 / 0",
            );
            row(
                "publish request took / all delivered after ms",
                None,
                &|_, r| format!("{:.0} / {:.0}", r.publish_ms, r.elapsed_s * 1e3),
                "",
            );
            if backend != Backend::Embedded {
                row(
                    "server connections to the backend, before -> all subscribed",
                    None,
                    &|run, _| {
                        run.backend_conns
                            .map_or("-".into(), |c| format!("{} -> {}", c.before, c.subscribed))
                    },
                    "",
                );
            }
            row(
                "server CPU s",
                Some(&|run, _| run.server_cpu_s),
                &|run, _| format!("{:.2}", run.server_cpu_s),
                "",
            );
            row(
                "server peak RSS MiB",
                Some(&|run, _| run.server_peak_rss_kib as f64),
                &|run, _| format!("{:.0}", run.server_peak_rss_kib as f64 / 1024.0),
                "",
            );
            row("loadgen CPU (% of a core)", None, &loadgen_cpu, "");
        }
    }
    rows
}

/// The compile-cost rows (Pikku against axum; no Node cell).
pub fn compile_rows(c: &CompileCost) -> Vec<Row> {
    // CPU figures and the crate with the same derives are absent from older results.
    [
        (
            "cargo build of the crate (deps built) s",
            Some(c.pikku_build_s),
            Some(c.axum_build_s),
        ),
        (
            "incremental rebuild after touching one fn s",
            Some(c.pikku_incremental_s),
            Some(c.axum_incremental_s),
        ),
        (
            "cargo build CPU s (user + sys)",
            c.pikku_build_cpu_s,
            c.axum_build_cpu_s,
        ),
        (
            "incremental rebuild CPU s",
            c.pikku_incremental_cpu_s,
            c.axum_incremental_cpu_s,
        ),
        // The same, against axum whose types derive `JsonSchema` too: what is left is Pikku's.
        (
            "cargo build s, vs axum + the same JsonSchema derives",
            Some(c.pikku_build_s),
            c.axum_schemas_build_s,
        ),
        (
            "incremental rebuild s, vs axum + the same JsonSchema derives",
            Some(c.pikku_incremental_s),
            c.axum_schemas_incremental_s,
        ),
    ]
    .into_iter()
    .filter_map(|(m, a, b)| Some((m, a?, b?)))
    .map(|(metric, a, b)| Row {
        scenario: format!("compile: {} functions", c.functions),
        metric: metric.into(),
        pikku: format!("{a:.1}"),
        baseline: format!("{b:.1}"),
        ratio: ratio(a, b),
        node: None,
        plain: None,
        target: "reported".into(),
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::ServerKind;
    use crate::bench::scenarios::Opening;

    #[test]
    fn numbers_keep_four_characters() {
        assert_eq!(fmt_num(4_634_000.0), "4.63M");
        assert_eq!(fmt_num(368_400.0), "368k");
        assert_eq!(fmt_num(10_000.0), "10k");
        assert_eq!(fmt_num(9_999.4), "9999");
        assert_eq!(fmt_num(99.994), "99.99");
        assert_eq!(ms(4_708), "4.7");
        assert_eq!(ms(11_257_449), "11257.4");
    }

    fn idle_run(server: ServerKind, before: u64, after: u64, opened: usize) -> Run {
        let mut r = Run::na(server, "idle10k", 0, String::new());
        r.note = None;
        r.rss_before_kib = before;
        r.rss_after_kib = after;
        r.rss_per_stream_kib = (after - before) as f64 / opened as f64;
        r.server_fds = opened + 12;
        r.rounds_ok = (1, 1);
        r.report = Some(Report {
            opened,
            setup_s: 0.52,
            ..Report::default()
        });
        r
    }

    fn idle() -> Scenario {
        Scenario {
            id: "idle50k",
            label: "50k idle streams (capped at 19500: fd limit)".into(),
            kind: Kind::Idle {
                asked: 50_000,
                conns: 19_500,
                opening: Opening::Fresh,
            },
        }
    }

    fn cells(r: &Row) -> [&str; 4] {
        [&r.metric, &r.pikku, &r.baseline, &r.ratio]
    }

    /// Cells as in `benchmarks/results.md` (written by `bench-all` before it was split up).
    #[test]
    fn idle_rows() {
        let pk = idle_run(ServerKind::Pikku, 6_144, 364_954, 19_500);
        let bl = idle_run(ServerKind::Baseline, 5_120, 399_020, 19_500);
        let rows = rows_for(&idle(), Some(&pk), Some(&bl), None, None);
        let got: Vec<_> = rows.iter().map(cells).collect();
        assert_eq!(
            got,
            [
                [
                    "streams held",
                    "19500 of 50000 (19512 server fds)",
                    "19500 of 50000 (19512 server fds)",
                    "-"
                ],
                ["server RSS per stream KiB", "18.4", "20.2", "0.91x"],
                [
                    "server RSS before -> after MiB",
                    "6 -> 356",
                    "5 -> 390",
                    "-"
                ],
                ["time to open all s", "0.5", "0.5", "-"],
            ]
        );
        let targets: Vec<_> = rows.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["fd-capped", "<= 1.1x", "", ""]);
        assert!(
            rows.iter()
                .all(|r| r.node.is_none() && r.scenario == idle().label)
        );
    }

    #[test]
    fn a_server_that_did_not_run_shows_its_note() {
        let pk = idle_run(ServerKind::Pikku, 6_144, 364_954, 19_500);
        let failed = Run::na(ServerKind::PikkuNode, "idle50k", 0, "server exited".into());
        // The Node column ran and failed, and the baseline has no run at all.
        let rows = rows_for(&idle(), Some(&pk), None, Some(Some(&failed)), None);
        assert_eq!(rows[1].baseline, "n/a");
        assert_eq!(rows[1].ratio, "-");
        assert_eq!(
            rows[1].node,
            Some(("server exited".to_owned(), "-".to_owned()))
        );
        // The Node column ran but this scenario has no Node run.
        let rows = rows_for(&idle(), Some(&pk), None, Some(None), None);
        assert_eq!(rows[1].node, Some(("n/a".to_owned(), "-".to_owned())));
    }

    /// The measurement of `benchmarks/results.json`.
    fn cost(cpu: bool) -> CompileCost {
        CompileCost {
            functions: 200,
            pikku_build_s: 13.505297,
            axum_build_s: 9.531999574,
            pikku_incremental_s: 3.074645465,
            axum_incremental_s: 1.761986352,
            pikku_build_cpu_s: cpu.then_some(18.488978),
            axum_build_cpu_s: cpu.then_some(12.572022),
            pikku_incremental_cpu_s: cpu.then_some(3.405222),
            axum_incremental_cpu_s: cpu.then_some(1.960921),
            axum_schemas_build_s: None,
            axum_schemas_incremental_s: None,
            axum_schemas_build_cpu_s: None,
            axum_schemas_incremental_cpu_s: None,
            samples: 3,
            note: String::new(),
        }
    }

    /// As in `benchmarks/results.md`; runs recorded before CPU was measured have two rows.
    #[test]
    fn compile_rows_with_and_without_cpu() {
        let rows = compile_rows(&cost(true));
        let got: Vec<_> = rows.iter().map(cells).collect();
        assert_eq!(
            got,
            [
                [
                    "cargo build of the crate (deps built) s",
                    "13.5",
                    "9.5",
                    "1.42x"
                ],
                [
                    "incremental rebuild after touching one fn s",
                    "3.1",
                    "1.8",
                    "1.74x"
                ],
                ["cargo build CPU s (user + sys)", "18.5", "12.6", "1.47x"],
                ["incremental rebuild CPU s", "3.4", "2.0", "1.74x"],
            ]
        );
        assert!(
            rows.iter()
                .all(|r| r.scenario == "compile: 200 functions" && r.target == "reported")
        );
        assert_eq!(compile_rows(&cost(false)).len(), 2);
    }

    /// With the axum crate whose types derive `JsonSchema` too, two more rows compare with it.
    #[test]
    fn compile_rows_against_axum_with_the_same_derives() {
        let c = CompileCost {
            axum_schemas_build_s: Some(11.25),
            axum_schemas_incremental_s: Some(2.4),
            ..cost(false)
        };
        let rows = compile_rows(&c);
        let got: Vec<_> = rows.iter().map(cells).collect();
        assert_eq!(
            got[2..],
            [
                [
                    "cargo build s, vs axum + the same JsonSchema derives",
                    "13.5",
                    "11.2",
                    "1.20x"
                ],
                [
                    "incremental rebuild s, vs axum + the same JsonSchema derives",
                    "3.1",
                    "2.4",
                    "1.28x"
                ],
            ]
        );
    }
}
