//! What one run of one scenario against one server records, and the `results.json` a whole
//! `bench-all` run leaves behind (read back by `--from-json`).

use serde::{Deserialize, Serialize};

use crate::report::{CompileCost, Report};

/// A column of the table: the server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum ServerKind {
    /// The Pikku bench app (`examples/bench.rs`).
    Pikku,
    /// The hand-written axum server (`baseline` binary).
    Baseline,
    /// Pikku's TypeScript runtime (npm `@pikku/core`) on Node: `loadgen/node-pikku/server.mjs`.
    PikkuNode,
    /// Idle streams on plain Node.js (`node:http`, no framework): `loadgen/node-plain/server.mjs`,
    /// the idle rows' memory floor for Node.
    NodePlain,
}

impl ServerKind {
    /// The column heading and progress-line name.
    pub fn label(self) -> &'static str {
        match self {
            ServerKind::Pikku => "Pikku",
            ServerKind::Baseline => "axum baseline",
            ServerKind::PikkuNode => "Pikku on Node",
            ServerKind::NodePlain => "Node.js plain",
        }
    }

    /// The short name in server log file names.
    pub fn slug(self) -> &'static str {
        match self {
            ServerKind::Pikku => "pikku",
            ServerKind::Baseline => "baseline",
            ServerKind::PikkuNode => "node",
            ServerKind::NodePlain => "node-plain",
        }
    }
}

/// One run of one scenario against one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// The server measured.
    pub server: ServerKind,
    /// The scenario id.
    pub scenario: String,
    /// The round, from 0.
    pub round: usize,
    /// `None` when the scenario could not run (the reason is in `note`).
    pub report: Option<Report>,
    /// Why there is no report.
    pub note: Option<String>,
    /// CPU seconds the server used during the measured window.
    pub server_cpu_s: f64,
    /// Server RSS before the idle streams opened, KiB.
    pub rss_before_kib: u64,
    /// Server RSS with the idle streams open, KiB.
    pub rss_after_kib: u64,
    /// Descriptors the server held with the idle streams open.
    pub server_fds: usize,
    /// `(rss_after_kib - rss_before_kib) / streams opened`.
    pub rss_per_stream_kib: f64,
    /// The server's peak RSS (`VmHWM`) after a fan-out, KiB.
    pub server_peak_rss_kib: u64,
    /// Connections the server held to its event hub's backend (many-topics rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_conns: Option<BackendConns>,
    /// Of this scenario's rounds on this server: (complete, all); set on the median shown.
    #[serde(skip)]
    pub rounds_ok: (usize, usize),
}

impl Run {
    /// A run with nothing measured yet, or that could not run (`note` says why).
    pub fn na(server: ServerKind, scenario: &str, round: usize, note: String) -> Self {
        Self {
            server,
            scenario: scenario.into(),
            round,
            report: None,
            note: Some(note),
            server_cpu_s: 0.0,
            rss_before_kib: 0,
            rss_after_kib: 0,
            server_fds: 0,
            rss_per_stream_kib: 0.0,
            server_peak_rss_kib: 0,
            backend_conns: None,
            rounds_ok: (0, 0),
        }
    }
}

/// TCP connections a server held to its event hub's backend (to the backend URL's port,
/// counted from `/proc`), before its streams opened and with all of them subscribed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendConns {
    /// After the warm-up, before the measured streams opened.
    pub before: usize,
    /// With every measured stream subscribed (its own topic each).
    pub subscribed: usize,
}

/// A previous run, as `results.json` holds it.
#[derive(Debug, Deserialize)]
pub struct Previous {
    /// `quick` or `full`.
    pub mode: String,
    /// Rounds per server and scenario.
    pub rounds: usize,
    /// Every run of every round.
    pub runs: Vec<Run>,
    /// The compile-cost measurement, if it ran.
    pub compile: Option<CompileCost>,
    /// Streams per process the fd limit allowed.
    #[serde(default)]
    pub stream_cap: Option<usize>,
    /// The command line of that run.
    #[serde(default)]
    pub command: Option<String>,
    /// What the Node column ran (`prepare_node`), when it ran.
    #[serde(default)]
    pub node: Option<String>,
    /// What the plain Node.js column ran (`describe_node_plain`), when it ran.
    #[serde(default)]
    pub node_plain: Option<String>,
}
