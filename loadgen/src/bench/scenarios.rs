//! The scenario table: which rows `bench-all` runs, with what sizes, capped by the open-files
//! limit.

use super::options::Opts;

/// Descriptors a process keeps for itself (listener, runtime, logs) beyond its streams.
pub const FD_RESERVE: u64 = 500;

/// The event hub a scenario's server runs with (`PIKKU_EVENT_HUB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// In-process (the default: `PIKKU_EVENT_HUB` unset).
    Embedded,
    /// Redis pub/sub (`--redis URL`).
    Redis,
    /// NATS JetStream (`--nats URL`).
    Nats,
    /// PostgreSQL `LISTEN`/`NOTIFY` (`--postgres URL`).
    Postgres,
}

impl Backend {
    /// How the table's scenario labels name it.
    pub fn label(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded hub",
            Backend::Redis => "Redis",
            Backend::Nats => "NATS",
            Backend::Postgres => "PostgreSQL",
        }
    }

    /// The URL `o` gives it; `None` for the embedded hub.
    pub fn url(self, o: &Opts) -> Option<&str> {
        match self {
            Backend::Embedded => None,
            Backend::Redis => Some(&o.redis),
            Backend::Nats => Some(&o.nats),
            Backend::Postgres => Some(&o.postgres),
        }
    }
}

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
        /// How each stream is requested.
        opening: Opening,
    },
    /// Latency: `n` events published once to `subs` subscribers.
    Fanout {
        /// Subscribers (capped).
        subs: usize,
        /// Events published.
        n: u64,
        /// The event hub the server publishes through.
        backend: Backend,
    },
    /// Many topics: `topics` subscribers with a topic each, then one event to every topic
    /// (`POST /bench/publish-each`).
    Topics {
        /// Topics, one subscriber each (capped).
        topics: usize,
        /// The event hub the server publishes through.
        backend: Backend,
    },
}

/// How an idle row's streams are requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opening {
    /// As a new HTTP/1.1 connection's first request.
    Fresh,
    /// On a keep-alive connection that first answered a `GET` (a page's `fetch` before its
    /// `EventSource`).
    AfterGet,
    /// As [`Opening::AfterGet`], that `GET` carrying a 64-byte body its route does not read.
    AfterUnreadBody,
    /// Over HTTP/1.0, a connection's only request (a proxy's default upstream protocol).
    Http10,
}

impl Opening {
    /// The `loadgen idle` flags that make it.
    pub fn loadgen_args(self) -> &'static [&'static str] {
        // A one-event stream asked for without `Accept: text/event-stream`: a plain chunked
        // response, which every server here has.
        match self {
            Opening::Fresh => &[],
            Opening::AfterGet => &["--get-first", "/bench/ticks?n=1"],
            Opening::AfterUnreadBody => &["--get-first", "/bench/ticks?n=1", "--first-body", "64"],
            Opening::Http10 => &["--http10"],
        }
    }

    /// Whether a `GET` is answered on the connection first (plain Node.js serves only the
    /// idle route, so it cannot).
    pub fn gets_first(self) -> bool {
        matches!(self, Opening::AfterGet | Opening::AfterUnreadBody)
    }
}

impl Kind {
    /// The event hub the row's server runs with (`Embedded` for rows without one).
    pub fn backend(&self) -> Backend {
        match self {
            Kind::Fanout { backend, .. } | Kind::Topics { backend, .. } => *backend,
            Kind::Ticks { .. } | Kind::Idle { .. } => Backend::Embedded,
        }
    }
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
                opening: Opening::Fresh,
            },
        },
        Scenario {
            id: "idle10k-reused",
            label: "10k idle streams, each after a GET on its connection".into(),
            kind: Kind::Idle {
                asked: 10_000,
                conns: 10_000.min(stream_cap),
                opening: Opening::AfterGet,
            },
        },
        Scenario {
            id: "idle10k-unread-body",
            label: "10k idle streams, each after a GET whose body was not read".into(),
            kind: Kind::Idle {
                asked: 10_000,
                conns: 10_000.min(stream_cap),
                opening: Opening::AfterUnreadBody,
            },
        },
        Scenario {
            id: "idle10k-http10",
            label: "10k idle streams over HTTP/1.0".into(),
            kind: Kind::Idle {
                asked: 10_000,
                conns: 10_000.min(stream_cap),
                opening: Opening::Http10,
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
                opening: Opening::Fresh,
            },
        });
    }
    use Backend::*;
    for (id, subs, backend) in [
        ("fanout1k", 1_000, Embedded),
        ("fanout10k", 10_000, Embedded),
        ("fanout1k-redis", 1_000, Redis),
        ("fanout10k-redis", 10_000, Redis),
        ("fanout1k-nats", 1_000, Nats),
        ("fanout10k-nats", 10_000, Nats),
        ("fanout1k-pg", 1_000, Postgres),
        ("fanout10k-pg", 10_000, Postgres),
    ] {
        v.push(Scenario {
            id,
            label: format!(
                "fan-out 100 events to {}k subscribers ({})",
                subs / 1000,
                backend.label()
            ),
            kind: Kind::Fanout {
                subs: subs.min(stream_cap),
                n: 100,
                backend,
            },
        });
    }
    for (id, backend) in [
        ("topics10k", Embedded),
        ("topics10k-redis", Redis),
        ("topics10k-nats", Nats),
        ("topics10k-pg", Postgres),
    ] {
        let topics = 10_000;
        let capped = if topics > stream_cap {
            format!(", capped at {stream_cap}: fd limit")
        } else {
            String::new()
        };
        v.push(Scenario {
            id,
            label: format!(
                "{}k topics, 1 subscriber and 1 event each ({}{capped})",
                topics / 1000,
                backend.label()
            ),
            kind: Kind::Topics {
                topics: topics.min(stream_cap),
                backend,
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
            "idle10k-reused",
            "idle10k-unread-body",
            "idle10k-http10",
            "idle50k",
            "fanout1k",
            "fanout10k",
            "fanout1k-redis",
            "fanout10k-redis",
            "fanout1k-nats",
            "fanout10k-nats",
            "fanout1k-pg",
            "fanout10k-pg",
            "topics10k",
            "topics10k-redis",
            "topics10k-nats",
            "topics10k-pg",
        ];
        assert_eq!(ids(&[], 19_500), full);
        let quick: Vec<_> = full.into_iter().filter(|id| *id != "idle50k").collect();
        assert_eq!(ids(&["--quick"], 19_500), quick);
        assert_eq!(
            ids(&["--only", "fanout1k,single"], 19_500),
            ["single", "fanout1k"]
        );
        // The ids of the verification run in BENCHMARKS.md, each picked by `--only`.
        let hub_rows = [
            "fanout1k-nats",
            "fanout1k-pg",
            "fanout10k-pg",
            "topics10k",
            "topics10k-redis",
            "topics10k-nats",
            "topics10k-pg",
        ];
        assert_eq!(
            ids(&["--quick", "--only", &hub_rows.join(",")], 19_500),
            hub_rows
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
                conns: 5_000,
                opening: Opening::Fresh
            }
        ));
        let fan = list.iter().find(|s| s.id == "fanout10k-redis").unwrap();
        assert_eq!(fan.label, "fan-out 100 events to 10k subscribers (Redis)");
        assert!(matches!(
            fan.kind,
            Kind::Fanout {
                subs: 5_000,
                n: 100,
                backend: Backend::Redis
            }
        ));
        let pg = list.iter().find(|s| s.id == "fanout1k-pg").unwrap();
        assert_eq!(
            pg.label,
            "fan-out 100 events to 1k subscribers (PostgreSQL)"
        );
        assert_eq!(pg.kind.backend(), Backend::Postgres);
        let topics = list.iter().find(|s| s.id == "topics10k-nats").unwrap();
        assert_eq!(
            topics.label,
            "10k topics, 1 subscriber and 1 event each (NATS, capped at 5000: fd limit)"
        );
        assert!(matches!(
            topics.kind,
            Kind::Topics {
                topics: 5_000,
                backend: Backend::Nats
            }
        ));
        let uncapped = scenarios(&o, 19_500);
        let topics = uncapped.iter().find(|s| s.id == "topics10k").unwrap();
        assert_eq!(
            topics.label,
            "10k topics, 1 subscriber and 1 event each (embedded hub)"
        );
    }
}
