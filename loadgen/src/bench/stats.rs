//! Statistics over rounds: which runs count (complete ones), the median run by a scenario's
//! primary metric, and ratios between columns.

use super::record::Run;
use super::scenarios::{Kind, Scenario};

/// Whether a run delivered everything it should have, once: only those compete for the median
/// (a fan-out round whose publish failed has no late events, so a fine-looking p99).
pub fn complete(sc: &Scenario, r: &Run) -> bool {
    let Some(rep) = r.report.as_ref() else {
        return false;
    };
    let once = rep.errors.is_empty() && rep.lost == 0 && rep.dup == 0 && rep.malformed == 0;
    match sc.kind {
        Kind::Ticks { conns, n } => once && rep.events == conns as u64 * n,
        Kind::Idle { conns, .. } => rep.errors.is_empty() && rep.opened == conns,
        Kind::Fanout { .. } | Kind::Topics { .. } => once && rep.complete_streams == rep.conns,
    }
}

/// The scenario's primary metric, oriented so that larger is better (for the median).
pub fn primary(sc: &Scenario, r: &Run) -> Option<f64> {
    let rep = r.report.as_ref()?;
    Some(match sc.kind {
        Kind::Ticks { .. } => rep.events_per_s,
        Kind::Idle { .. } => -r.rss_per_stream_kib,
        Kind::Fanout { .. } | Kind::Topics { .. } => -(rep.latency.p99_us as f64),
    })
}

/// The median complete run by the primary metric (the lower middle of an even count); the
/// first run when none is complete (its table cells then show what went wrong). The run
/// returned carries `rounds_ok`: (complete, all) of `runs`.
pub fn median_run(sc: &Scenario, runs: &[&Run]) -> Option<Run> {
    let mut ok: Vec<&Run> = runs
        .iter()
        .copied()
        .filter(|r| complete(sc, r) && primary(sc, r).is_some())
        .collect();
    let shown = (ok.len(), runs.len());
    let pick = |r: &Run| Run {
        rounds_ok: shown,
        ..r.clone()
    };
    if ok.is_empty() {
        return runs.first().map(|r| pick(r));
    }
    ok.sort_by(|a, b| {
        primary(sc, a)
            .partial_cmp(&primary(sc, b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    Some(pick(ok[(ok.len() - 1) / 2]))
}

/// `a / b` as a table cell (`"1.23x"`), `"-"` when `b` is not positive or `a` not finite.
pub fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}x", a / b)
    } else {
        "-".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::ServerKind;
    use crate::bench::scenarios::Opening;
    use crate::report::Report;

    fn ticks() -> Scenario {
        Scenario {
            id: "multi",
            label: "2 connections x 10 events".into(),
            kind: Kind::Ticks { conns: 2, n: 10 },
        }
    }

    fn run(round: usize, events: u64, events_per_s: f64) -> Run {
        let mut r = Run::na(ServerKind::Pikku, "multi", round, String::new());
        r.note = None;
        r.report = Some(Report {
            events,
            events_per_s,
            ..Report::default()
        });
        r
    }

    #[test]
    fn complete_means_everything_once() {
        let sc = ticks();
        assert!(complete(&sc, &run(0, 20, 1.0)));
        assert!(!complete(&sc, &run(0, 19, 1.0)));
        let mut dup = run(0, 20, 1.0);
        dup.report.as_mut().unwrap().dup = 1;
        assert!(!complete(&sc, &dup));
        assert!(!complete(
            &sc,
            &Run::na(ServerKind::Pikku, "multi", 0, "x".into())
        ));
        let idle = Scenario {
            id: "idle10k",
            label: String::new(),
            kind: Kind::Idle {
                asked: 5,
                conns: 3,
                opening: Opening::Fresh,
            },
        };
        let mut held = run(0, 0, 0.0);
        held.report.as_mut().unwrap().opened = 3;
        assert!(complete(&idle, &held));
    }

    #[test]
    fn the_median_is_of_complete_runs_by_the_primary_metric() {
        let sc = ticks();
        let runs = [
            run(0, 20, 3.0),
            run(1, 20, 1.0),
            run(2, 5, 100.0),
            run(3, 20, 2.0),
        ];
        let refs: Vec<&Run> = runs.iter().collect();
        let m = median_run(&sc, &refs).unwrap();
        assert_eq!((m.round, m.rounds_ok), (3, (3, 4)));
        // An even count shows the lower middle.
        let m = median_run(&sc, &refs[..2]).unwrap();
        assert_eq!((m.round, m.rounds_ok), (1, (2, 2)));
    }

    #[test]
    fn lower_is_better_metrics_are_negated() {
        let idle = Scenario {
            id: "idle10k",
            label: String::new(),
            kind: Kind::Idle {
                asked: 1,
                conns: 1,
                opening: Opening::Fresh,
            },
        };
        let mut r = run(0, 0, 0.0);
        r.rss_per_stream_kib = 18.5;
        assert_eq!(primary(&idle, &r), Some(-18.5));
    }

    #[test]
    fn with_no_complete_run_the_first_is_shown() {
        let sc = ticks();
        let failed = Run::na(ServerKind::Pikku, "multi", 0, "server exited".into());
        let short = run(1, 3, 9.0);
        let m = median_run(&sc, &[&failed, &short]).unwrap();
        assert_eq!(m.note.as_deref(), Some("server exited"));
        assert_eq!(m.rounds_ok, (0, 2));
        assert!(median_run(&sc, &[]).is_none());
    }

    #[test]
    fn ratios() {
        assert_eq!(ratio(3.0, 2.0), "1.50x");
        assert_eq!(ratio(1.0, 3.0), "0.33x");
        assert_eq!(ratio(1.0, 0.0), "-");
        assert_eq!(ratio(f64::NAN, 1.0), "-");
        assert_eq!(ratio(f64::INFINITY, 1.0), "-");
    }
}
