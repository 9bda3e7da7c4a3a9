//! The scenario table: which rows `bench-all` runs, with what sizes, capped by the open-files
//! limit.

use super::options::Opts;

/// Descriptors a process keeps for itself (listener, runtime, logs) beyond its streams.
pub const FD_RESERVE: u64 = 500;

/// What a scenario measures, with its sizes.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Throughput: `conns` streams of `n` events each.
    Ticks {
        /// Concurrent streams.
        conns: usize,
        /// Events per stream.
        n: u64,
    },
    /// Memory: `conns` idle streams held (`asked` before the fd cap).
    Idle {
        /// Streams the row is named after.
        asked: usize,
        /// Streams actually opened (`asked`, capped).
        conns: usize,
    },
    /// Latency: `n` events published once to `subs` subscribers.
    Fanout {
        /// Subscribers (capped).
        subs: usize,
        /// Events published.
        n: u64,
        /// Through the Redis event hub rather than the embedded one.
        redis: bool,
    },
}

/// One row group of the table.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The id `--only` picks by (`single`, `idle10k`, `fanout10k-redis`, ...).
    pub id: &'static str,
    /// The table's scenario column.
    pub label: String,
    /// What it measures.
    pub kind: Kind,
}

/// The scenarios `o` asks for (quick mode leaves out the 50k idle row), with stream counts
/// capped at `stream_cap`.
pub fn scenarios(o: &Opts, stream_cap: usize) -> Vec<Scenario> {
    let mut v = vec![
        Scenario {
            id: "single",
            label: "1 connection x 200k events".into(),
            kind: Kind::Ticks {
                conns: 1,
                n: 200_000,
            },
        },
        Scenario {
            id: "multi",
            label: "100 connections x 5k events".into(),
            kind: Kind::Ticks {
                conns: 100,
                n: 5_000,
            },
        },
        Scenario {
            id: "idle10k",
            label: "10k idle streams".into(),
            kind: Kind::Idle {
                asked: 10_000,
                conns: 10_000.min(stream_cap),
            },
        },
    ];
    if !o.quick {
        v.push(Scenario {
            id: "idle50k",
            label: format!("50k idle streams (capped at {stream_cap}: fd limit)"),
            kind: Kind::Idle {
                asked: 50_000,
                conns: 50_000.min(stream_cap),
            },
        });
    }
    for (id, subs, redis) in [
        ("fanout1k", 1_000, false),
        ("fanout10k", 10_000, false),
        ("fanout1k-redis", 1_000, true),
        ("fanout10k-redis", 10_000, true),
    ] {
        v.push(Scenario {
            id,
            label: format!(
                "fan-out 100 events to {}k subscribers ({})",
                subs / 1000,
                if redis { "Redis" } else { "embedded hub" }
            ),
            kind: Kind::Fanout {
                subs: subs.min(stream_cap),
                n: 100,
                redis,
            },
        });
    }
    if let Some(only) = &o.only {
        v.retain(|s| only.iter().any(|o| o == s.id));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(args: &[&str], cap: usize) -> Vec<&'static str> {
        let o = Opts::parse(args.iter().map(|a| a.to_string())).unwrap();
        scenarios(&o, cap).iter().map(|s| s.id).collect()
    }

    #[test]
    fn full_mode_has_the_capped_50k_row_and_quick_mode_not() {
        let full = [
            "single",
            "multi",
            "idle10k",
            "idle50k",
            "fanout1k",
            "fanout10k",
            "fanout1k-redis",
            "fanout10k-redis",
        ];
        assert_eq!(ids(&[], 19_500), full);
        let quick: Vec<_> = full.into_iter().filter(|id| *id != "idle50k").collect();
        assert_eq!(ids(&["--quick"], 19_500), quick);
        assert_eq!(
            ids(&["--only", "fanout1k,single"], 19_500),
            ["single", "fanout1k"]
        );
    }

    #[test]
    fn stream_counts_are_capped() {
        let o = Opts::parse(Vec::new()).unwrap();
        let list = scenarios(&o, 5_000);
        let idle50k = list.iter().find(|s| s.id == "idle50k").unwrap();
        assert_eq!(idle50k.label, "50k idle streams (capped at 5000: fd limit)");
        assert!(matches!(
            idle50k.kind,
            Kind::Idle {
                asked: 50_000,
                conns: 5_000
            }
        ));
        let fan = list.iter().find(|s| s.id == "fanout10k-redis").unwrap();
        assert_eq!(fan.label, "fan-out 100 events to 10k subscribers (Redis)");
        assert!(matches!(
            fan.kind,
            Kind::Fanout {
                subs: 5_000,
                n: 100,
                redis: true
            }
        ));
    }
}
