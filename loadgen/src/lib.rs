//! The benchmark harness of Pikku for Rust (issue #7).
//!
//! - `loadgen` (binary): the SSE load generator. Many concurrent connections spread over
//!   127.0.0.x source addresses, a spec-compliant incremental parser ([`sse`]), events/s,
//!   MB/s, latency percentiles from each event's `ts_us`, lost/duplicate counts, and its own
//!   CPU use. Scenarios are in [`scenario`].
//! - `baseline` (binary): the same routes written by hand with axum's `Sse` and
//!   `tokio::sync::broadcast`, the reference.
//! - `bench-all` (binary): runs every scenario against the bench app
//!   (`examples/bench.rs`) and the baseline, alternating, and writes the table and chart; a
//!   thin binary over [`bench`](mod@bench) (options, servers, rounds, statistics, rendering).
//! - `compile-cost` (binary): build time of 200 annotated functions against 200 plain axum
//!   handlers.
//! - `hundred-k` (binary): 100,000 idle streams over several instances sharing the Redis
//!   hub, opened from several client processes ([`hundred_k`]).
//!
//! All traffic goes to loopback addresses; every loop is bounded in count and time.

#![warn(missing_docs)]

pub mod bench;
pub mod http1;
pub mod hundred_k;
pub mod report;
pub mod scenario;
pub mod sse;

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (the clock the bench servers stamp `ts_us` with).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// CPU time (user + system) this process has used, in seconds.
pub fn self_cpu_seconds() -> f64 {
    rusage_cpu_seconds(libc::RUSAGE_SELF)
}

/// CPU time (user + system) of this process's waited-for children and their descendants
/// (e.g. cargo and the compilers it ran), in seconds.
pub fn children_cpu_seconds() -> f64 {
    rusage_cpu_seconds(libc::RUSAGE_CHILDREN)
}

fn rusage_cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// CPU time process `pid` has used, in seconds: the sum of its threads' on-CPU time from
/// `/proc/<pid>/task/*/schedstat` (nanoseconds), or `utime + stime` from `/proc/<pid>/stat`
/// (clock ticks, 10 ms) when schedstat is unavailable.
pub fn proc_cpu_seconds(pid: u32) -> Option<f64> {
    let from_schedstat = || -> Option<f64> {
        let mut ns: u64 = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let path = task.ok()?.path().join("schedstat");
            let line = std::fs::read_to_string(path).ok()?;
            ns += line.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        (ns > 0).then(|| ns as f64 / 1e9)
    };
    if let Some(s) = from_schedstat() {
        return Some(s);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line: 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some((utime + stime) / hz)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Raises this process's open-files soft limit to its hard limit; returns the new limit.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}
