//! What a load-generator run reports (one JSON object on its last stdout line).

use serde::{Deserialize, Serialize};

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
}

impl Latency {
    /// Exact percentiles of `samples` (sorted in place).
    pub fn of(samples: &mut [u32]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            u64::from(samples[i])
        };
        Self {
            count: samples.len() as u64,
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: u64::from(samples[samples.len() - 1]),
        }
    }
}

/// The outcome of one scenario run by the load generator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Report {
    /// `ticks`, `idle` or `fanout`.
    pub scenario: String,
    /// Streams asked for.
    pub conns: usize,
    /// Streams that answered 200 with `text/event-stream`.
    pub opened: usize,
    /// Streams that failed to connect or open.
    pub failed: usize,
    /// Up to five distinct error messages.
    pub errors: Vec<String>,
    /// Data events (`message` type) received.
    pub events: u64,
    /// Events of other types (`error`, `gap`, `shutdown`, ...).
    pub other_events: u64,
    /// Comment lines (heartbeats).
    pub comments: u64,
    /// Bytes read from the sockets (after the response heads).
    pub wire_bytes: u64,
    /// Event-stream bytes (after de-chunking).
    pub body_bytes: u64,
    /// The measured window: first request to last event (ticks), publish to last delivery
    /// (fan-out), or the hold time (idle).
    pub elapsed_s: f64,
    /// `events / elapsed_s`.
    pub events_per_s: f64,
    /// `wire_bytes / elapsed_s`, in MB (10^6) per second.
    pub mb_per_s: f64,
    /// Delivery latency: arrival time minus the event's `ts_us`.
    pub latency: Latency,
    /// Deliveries expected (streams × events).
    pub expected: u64,
    /// Expected deliveries that never arrived.
    pub lost: u64,
    /// Deliveries of an event a stream had already received.
    pub dup: u64,
    /// Data events without a readable `seq`/`ts_us`, or with a `seq` out of range.
    pub malformed: u64,
    /// Streams that received every expected event exactly once.
    pub complete_streams: usize,
    /// Streams whose body ended properly (ticks).
    pub clean_ends: usize,
    /// Time to open all streams, in seconds.
    pub setup_s: f64,
    /// Time the publish request took, in milliseconds (fan-out).
    pub publish_ms: f64,
    /// CPU the load generator used during the measured window, in seconds.
    pub cpu_s: f64,
    /// That CPU as a percentage of one core over the window.
    pub cpu_pct: f64,
    /// Worker threads of the load generator.
    pub threads: usize,
}

impl Report {
    /// Records an error message, keeping up to five distinct ones.
    pub fn note_error(&mut self, e: String) {
        if self.errors.len() < 5 && !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }
}

/// What `compile-cost` measures and `bench-all` reads back (the last line of its output).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CompileCost {
    /// Annotated functions in each generated crate.
    pub functions: usize,
    /// Clean build of the Pikku crate, seconds.
    pub pikku_build_s: f64,
    /// Clean build of the plain axum crate, seconds.
    pub axum_build_s: f64,
    /// Rebuild of the Pikku crate after touching one function, seconds.
    pub pikku_incremental_s: f64,
    /// Rebuild of the axum crate after touching one handler, seconds.
    pub axum_incremental_s: f64,
    /// CPU seconds (user + system of cargo and rustc) of the clean Pikku build.
    #[serde(default)]
    pub pikku_build_cpu_s: Option<f64>,
    /// CPU seconds of the clean axum build.
    #[serde(default)]
    pub axum_build_cpu_s: Option<f64>,
    /// CPU seconds of the Pikku rebuild after touching one function.
    #[serde(default)]
    pub pikku_incremental_cpu_s: Option<f64>,
    /// CPU seconds of the axum rebuild after touching one handler.
    #[serde(default)]
    pub axum_incremental_cpu_s: Option<f64>,
    /// Clean build of the axum crate whose types also derive `JsonSchema` (as the Pikku
    /// crate's do), seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axum_schemas_build_s: Option<f64>,
    /// Its rebuild after touching one handler, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axum_schemas_incremental_s: Option<f64>,
    /// CPU seconds of its clean build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axum_schemas_build_cpu_s: Option<f64>,
    /// CPU seconds of its rebuild after touching one handler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axum_schemas_incremental_cpu_s: Option<f64>,
    /// Samples per figure.
    pub samples: usize,
    /// How it was measured.
    pub note: String,
}
