//! The load generator's scenarios: `ticks` (throughput), `idle` (connection scale), `fanout`
//! (publish to many subscribers of one topic) and `topics` (many topics, one subscriber and
//! one event each). Each is bounded in connections and time.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};

use crate::http1::{self, Head};
use crate::report::{Latency, Report};
use crate::sse::{SseParser, json_u64};
use crate::{now_us, self_cpu_seconds};

/// Where the load goes and where it comes from.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server (a loopback address).
    pub addr: SocketAddr,
    /// Source addresses to spread connections over (round-robin); empty: the kernel's choice.
    pub sources: Vec<IpAddr>,
    /// Connections being opened at once.
    pub connect_concurrency: usize,
    /// A `GET` answered on each connection before its stream is requested (as a page's
    /// `fetch` before its `EventSource` on the same keep-alive connection); `None`: none.
    pub get_first: Option<String>,
    /// Bytes of body sent with [`Target::get_first`], which a `GET` route does not read (0:
    /// none).
    pub first_body: usize,
    /// Streams requested over HTTP/1.0 (as nginx does upstream by default), with no
    /// [`Target::get_first`].
    pub http10: bool,
}

impl Target {
    /// A target on `addr` spreading over `n_sources` addresses 127.0.0.2, 127.0.0.3, ...
    ///
    /// Refuses non-loopback addresses: this harness only ever loads this machine.
    pub fn loopback(addr: SocketAddr, n_sources: u8) -> io::Result<Self> {
        if !addr.ip().is_loopback() {
            return Err(io::Error::other(format!(
                "{addr} is not a loopback address; the load generator only targets 127.0.0.0/8"
            )));
        }
        let sources = if addr.is_ipv4() {
            (0..n_sources)
                .map(|i| IpAddr::from([127, 0, 0, 2 + i.min(250)]))
                .collect()
        } else {
            Vec::new()
        };
        Ok(Self {
            addr,
            sources,
            connect_concurrency: 128,
            get_first: None,
            first_body: 0,
            http10: false,
        })
    }

    fn source(&self, i: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[i % self.sources.len()])
    }

    fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Opens stream `i` (from its round-robin source address): connects, sends
    /// [`Target::get_first`] and reads its answer if set, sends `GET path` and checks the
    /// answer is a 200 `text/event-stream`.
    pub async fn open(&self, i: usize, path: &str) -> io::Result<(TcpStream, Head)> {
        let mut s = http1::connect(self.addr, self.source(i)).await?;
        if let Some(first) = &self.get_first {
            let host = self.host();
            let opts = http1::RequestOptions {
                get_body: self.first_body,
                ..Default::default()
            };
            let head = http1::request_with(&mut s, "GET", first, &host, opts).await?;
            if head.status != 200 {
                return Err(io::Error::other(format!("{first}: status {}", head.status)));
            }
            http1::read_body(&mut s, head).await?;
        }
        let opts = http1::RequestOptions {
            accept_sse: true,
            http10: self.http10,
            ..Default::default()
        };
        let head = http1::request_with(&mut s, "GET", path, &self.host(), opts).await?;
        check_sse(&head)?;
        Ok((s, head))
    }
}

fn check_sse(head: &Head) -> io::Result<()> {
    if head.status != 200 {
        return Err(io::Error::other(format!("status {}", head.status)));
    }
    match head.content_type.as_deref() {
        Some(ct) if ct.starts_with("text/event-stream") => Ok(()),
        other => Err(io::Error::other(format!("content-type {other:?}"))),
    }
}

/// Per-stream counters.
#[derive(Debug, Default)]
struct StreamStats {
    /// The first `seq` this stream expects (its own topic's index in `topics`, else 0).
    first: u64,
    expected: u64,
    seen: Vec<u64>,
    distinct: u64,
    events: u64,
    other: u64,
    comments: u64,
    wire: u64,
    body: u64,
    malformed: u64,
    dup: u64,
    lat: Vec<u32>,
    clean_end: bool,
    error: Option<String>,
    last_event: Option<Instant>,
}

impl StreamStats {
    /// A stream expecting the events `seq` = `first .. first + expected`, once each.
    fn new(first: u64, expected: u64) -> Self {
        Self {
            first,
            expected,
            seen: vec![0; expected.div_ceil(64) as usize],
            lat: Vec::with_capacity(expected.min(1 << 20) as usize),
            ..Self::default()
        }
    }

    fn complete(&self) -> bool {
        self.distinct == self.expected && self.dup == 0
    }

    fn on_data(&mut self, data: &[u8], recv_us: u64) {
        self.events += 1;
        match (json_u64(data, b"\"seq\":"), json_u64(data, b"\"ts_us\":")) {
            (Some(seq), Some(ts)) if seq.wrapping_sub(self.first) < self.expected => {
                let at = seq - self.first;
                let (w, b) = ((at / 64) as usize, at % 64);
                if self.seen[w] & (1 << b) != 0 {
                    self.dup += 1;
                } else {
                    self.seen[w] |= 1 << b;
                    self.distinct += 1;
                }
                self.lat
                    .push(recv_us.saturating_sub(ts).min(u64::from(u32::MAX)) as u32);
            }
            _ => self.malformed += 1,
        }
    }
}

/// Reads an open stream until its body ends, it has every expected event
/// (`until_complete`), or it fails. Callers bound it in time.
async fn pump(
    stream: &mut TcpStream,
    head: Head,
    buf_cap: usize,
    until_complete: bool,
    stats: &mut StreamStats,
) {
    let mut parser = SseParser::new();
    let mut decoder = head.body;
    let mut buf = Vec::with_capacity(buf_cap);
    let mut chunk = head.leftover;
    let mut recv = now_us();
    loop {
        if !chunk.is_empty() {
            stats.wire += chunk.len() as u64;
            let before = stats.events + stats.other;
            let fed = decoder.feed(&chunk, &mut |body| {
                stats.body += body.len() as u64;
                parser.feed(body, &mut |ev| {
                    if ev.event_type.is_empty() || ev.event_type == b"message" {
                        stats.on_data(ev.data, recv);
                    } else {
                        stats.other += 1;
                    }
                });
            });
            if stats.events + stats.other != before {
                stats.last_event = Some(Instant::now());
            }
            // Kept current here: idle streams never leave this loop, they are cancelled.
            stats.comments = parser.comments;
            if let Err(e) = fed {
                stats.error = Some(e.to_string());
                break;
            }
        }
        if decoder.is_done() {
            stats.clean_end = true;
            break;
        }
        if until_complete && stats.distinct >= stats.expected {
            break;
        }
        buf.clear();
        match stream.read_buf(&mut buf).await {
            Ok(0) => {
                stats.error = Some("connection closed before the stream ended".into());
                break;
            }
            Ok(_) => {
                recv = now_us();
                std::mem::swap(&mut chunk, &mut buf);
            }
            Err(e) => {
                stats.error = Some(e.to_string());
                break;
            }
        }
    }
}

fn merge(report: &mut Report, all: Vec<StreamStats>) {
    let mut lat = Vec::new();
    for s in all {
        report.events += s.events;
        report.other_events += s.other;
        report.comments += s.comments;
        report.wire_bytes += s.wire;
        report.body_bytes += s.body;
        report.malformed += s.malformed;
        report.dup += s.dup;
        report.lost += s.expected - s.distinct.min(s.expected);
        report.expected += s.expected;
        report.complete_streams += usize::from(s.complete());
        report.clean_ends += usize::from(s.clean_end);
        if let Some(e) = s.error {
            report.note_error(e);
        }
        if lat.is_empty() {
            lat = s.lat;
        } else {
            lat.extend_from_slice(&s.lat);
        }
    }
    report.latency = Latency::of(&mut lat);
}

fn finish_rates(report: &mut Report, cpu0: f64) {
    if report.elapsed_s > 0.0 {
        report.events_per_s = report.events as f64 / report.elapsed_s;
        report.mb_per_s = report.wire_bytes as f64 / report.elapsed_s / 1e6;
        report.cpu_s = self_cpu_seconds() - cpu0;
        report.cpu_pct = 100.0 * report.cpu_s / report.elapsed_s;
    }
}

/// Opens `conns` streams of `GET /bench/ticks?n=N` at once and reads them to their end.
/// The window runs from the first request (connections are opened beforehand) to the last
/// stream's end.
pub async fn ticks(target: &Target, conns: usize, n: u64, timeout: Duration) -> Report {
    let mut report = Report {
        scenario: "ticks".into(),
        conns,
        ..Report::default()
    };
    let t_setup = Instant::now();
    let sem = Arc::new(Semaphore::new(target.connect_concurrency));
    let mut connecting = Vec::with_capacity(conns);
    for i in 0..conns {
        let (t, sem) = (target.clone(), sem.clone());
        connecting.push(tokio::spawn(async move {
            let _permit = sem.acquire().await;
            http1::connect(t.addr, t.source(i)).await
        }));
    }
    let mut streams = Vec::with_capacity(conns);
    for c in connecting {
        match c.await {
            Ok(Ok(s)) => streams.push(s),
            Ok(Err(e)) => {
                report.failed += 1;
                report.note_error(format!("connect: {e}"));
            }
            Err(e) => {
                report.failed += 1;
                report.note_error(format!("task: {e}"));
            }
        }
    }
    report.setup_s = t_setup.elapsed().as_secs_f64();
    let cpu0 = self_cpu_seconds();
    let t0 = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let path = format!("/bench/ticks?n={n}");
    let opened = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(streams.len());
    for mut s in streams {
        let (path, host, opened) = (path.clone(), target.host(), opened.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = StreamStats::new(0, n);
            let run = async {
                match http1::request(&mut s, "GET", &path, &host, true).await {
                    Ok(head) => match check_sse(&head) {
                        Ok(()) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            pump(&mut s, head, 64 * 1024, false, &mut stats).await;
                        }
                        Err(e) => stats.error = Some(e.to_string()),
                    },
                    Err(e) => stats.error = Some(e.to_string()),
                }
            };
            if tokio::time::timeout_at(deadline, run).await.is_err() {
                stats.error = Some("timed out".into());
            }
            (stats, Instant::now())
        }));
    }
    let mut all = Vec::with_capacity(tasks.len());
    let mut end = t0;
    for t in tasks {
        if let Ok((stats, at)) = t.await {
            end = end.max(at);
            all.push(stats);
        }
    }
    report.elapsed_s = (end - t0).as_secs_f64();
    report.opened = opened.load(Ordering::Relaxed);
    report.failed += conns - report.failed - report.opened;
    merge(&mut report, all);
    finish_rates(&mut report, cpu0);
    report
}

/// Streams opened by [`open_many`], reading in the background until stopped.
pub struct Held {
    tasks: Vec<tokio::task::JoinHandle<StreamStats>>,
    stop: watch::Sender<bool>,
    opened: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    errors: Arc<std::sync::Mutex<Vec<String>>>,
    /// When every stream had opened or failed.
    pub setup_s: f64,
}

impl Held {
    /// Streams open.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::Relaxed)
    }
    /// Streams that failed to open.
    pub fn failed(&self) -> usize {
        self.failed.load(Ordering::Relaxed)
    }

    /// Stops every stream and collects the counters into `report`.
    async fn finish(self, report: &mut Report) -> Vec<Option<Instant>> {
        let _ = self.stop.send(true);
        let mut all = Vec::with_capacity(self.tasks.len());
        let mut lasts = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            if let Ok(s) = t.await {
                lasts.push(s.last_event);
                all.push(s);
            }
        }
        report.opened = self.opened.load(Ordering::Relaxed);
        report.failed = self.failed.load(Ordering::Relaxed);
        if let Ok(errors) = self.errors.lock() {
            for e in errors.iter() {
                report.note_error(e.clone());
            }
        }
        merge(report, all);
        lasts
    }
}

/// Opens `conns` streams (bounded concurrency), stream `i` of `path(i)`, and waits until each
/// has opened (its response head arrived) or failed, or `setup_timeout` passes. Stream `i`
/// expects the events `seq` = `first .. first + count` where `(first, count) = expect(i)`, and
/// reads until it has them all (when `count > 0`), the stop signal, or `deadline`.
pub async fn open_many(
    target: &Target,
    conns: usize,
    path: impl Fn(usize) -> String,
    expect: impl Fn(usize) -> (u64, u64),
    buf_cap: usize,
    setup_timeout: Duration,
    deadline: tokio::time::Instant,
) -> Held {
    let t0 = Instant::now();
    let (stop, stop_rx) = watch::channel(false);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sem = Arc::new(Semaphore::new(target.connect_concurrency));
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let (t, sem, path) = (target.clone(), sem.clone(), path(i));
        let (opened, failed, errors) = (opened.clone(), failed.clone(), errors.clone());
        let mut stop = stop_rx.clone();
        let (first, expected) = expect(i);
        tasks.push(tokio::spawn(async move {
            let mut stats = StreamStats::new(first, expected);
            let permit = sem.acquire().await;
            let open = tokio::time::timeout_at(deadline, t.open(i, &path)).await;
            drop(permit);
            let (mut s, head) = match open {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut errs) = errors.lock() {
                        let e = format!("open: {e}");
                        if errs.len() < 5 && !errs.contains(&e) {
                            errs.push(e);
                        }
                    }
                    return stats;
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return stats;
                }
            };
            opened.fetch_add(1, Ordering::Relaxed);
            tokio::select! {
                _ = pump(&mut s, head, buf_cap, expected > 0, &mut stats) => {}
                _ = stop.wait_for(|v| *v) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    if expected > 0 { stats.error = Some("timed out".into()); }
                }
            }
            stats
        }));
    }
    let setup_deadline = Instant::now() + setup_timeout;
    while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < conns
        && Instant::now() < setup_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Held {
        tasks,
        stop,
        opened,
        failed,
        errors,
        setup_s: t0.elapsed().as_secs_f64(),
    }
}

/// Idle streams: opens them, then `on_ready` (the harness measures the server), then holds
/// them until `hold` resolves, and reports heartbeats seen.
pub async fn idle<F: std::future::Future<Output = ()>>(
    target: &Target,
    conns: usize,
    setup_timeout: Duration,
    on_ready: impl FnOnce(&Report) -> F,
) -> Report {
    let deadline = tokio::time::Instant::now() + setup_timeout + Duration::from_secs(600);
    let held = open_many(
        target,
        conns,
        |_| "/bench/idle".into(),
        |_| (0, 0),
        1024,
        setup_timeout,
        deadline,
    )
    .await;
    let mut report = Report {
        scenario: "idle".into(),
        conns,
        opened: held.opened(),
        failed: held.failed(),
        setup_s: held.setup_s,
        ..Report::default()
    };
    let cpu0 = self_cpu_seconds();
    let t0 = Instant::now();
    on_ready(&report).await;
    report.elapsed_s = t0.elapsed().as_secs_f64();
    held.finish(&mut report).await;
    report.cpu_s = self_cpu_seconds() - cpu0;
    if report.elapsed_s > 0.0 {
        report.cpu_pct = 100.0 * report.cpu_s / report.elapsed_s;
    }
    report
}

/// Fan-out: `subs` subscribers of `topic`, then one `POST /bench/publish?topic&n`, then
/// every subscriber reads until it has all `n` events or `timeout` passes.
pub async fn fanout(
    target: &Target,
    subs: usize,
    n: u64,
    topic: &str,
    setup_timeout: Duration,
    timeout: Duration,
) -> Report {
    let deadline = tokio::time::Instant::now() + setup_timeout + timeout;
    let path = format!("/bench/subscribe?topic={topic}");
    let held = open_many(
        target,
        subs,
        |_| path.clone(),
        |_| (0, n),
        8 * 1024,
        setup_timeout,
        deadline,
    )
    .await;
    let mut report = Report {
        scenario: "fanout".into(),
        conns: subs,
        setup_s: held.setup_s,
        ..Report::default()
    };
    let publish = format!("/bench/publish?topic={topic}&n={n}");
    deliver(target, held, &publish, deadline, &mut report).await;
    report
}

/// Many topics: `count` subscribers, subscriber `i` of topic `<prefix><i>`, then `on_ready`
/// (the harness reads the server's backend connections), then one
/// `POST /bench/publish-each?prefix&count`; subscriber `i` expects exactly the event with
/// `seq` = `i` (another topic's event counts as malformed) and reads until it has it or
/// `timeout` passes. `setup_s` is the time until every stream had its response head, i.e. its
/// subscription was in place.
pub async fn topics<F: std::future::Future<Output = ()>>(
    target: &Target,
    count: usize,
    prefix: &str,
    setup_timeout: Duration,
    timeout: Duration,
    on_ready: impl FnOnce(&Report) -> F,
) -> Report {
    let deadline = tokio::time::Instant::now() + setup_timeout + timeout;
    let held = open_many(
        target,
        count,
        |i| format!("/bench/subscribe?topic={prefix}{i}"),
        |i| (i as u64, 1),
        1024,
        setup_timeout,
        deadline,
    )
    .await;
    let mut report = Report {
        scenario: "topics".into(),
        conns: count,
        opened: held.opened(),
        failed: held.failed(),
        setup_s: held.setup_s,
        ..Report::default()
    };
    on_ready(&report).await;
    let publish = format!("/bench/publish-each?prefix={prefix}&count={count}");
    deliver(target, held, &publish, deadline, &mut report).await;
    report
}

/// The measured phase of `fanout` and `topics`: one POST of `publish_path`, then every stream
/// of `held` reads until it is complete or `deadline`; fills in the publish time, the window
/// from the publish to the last delivery, and the counters and rates.
async fn deliver(
    target: &Target,
    held: Held,
    publish_path: &str,
    deadline: tokio::time::Instant,
    report: &mut Report,
) {
    let cpu0 = self_cpu_seconds();
    let t0 = Instant::now();
    let publish = async {
        let mut s = http1::connect(target.addr, None).await?;
        let head = http1::request(&mut s, "POST", publish_path, &target.host(), false).await?;
        if head.status != 200 {
            return Err(io::Error::other(format!("status {}", head.status)));
        }
        Ok::<_, io::Error>(())
    };
    match tokio::time::timeout_at(deadline, publish).await {
        Ok(Ok(())) => report.publish_ms = t0.elapsed().as_secs_f64() * 1e3,
        Ok(Err(e)) => report.note_error(format!("publish: {e}")),
        Err(_) => report.note_error("publish: timed out".into()),
    }
    // Wait for every subscriber to finish on its own (complete) or the deadline.
    let mut tasks_done = false;
    while !tasks_done && tokio::time::Instant::now() < deadline {
        tasks_done = held.tasks.iter().all(|t| t.is_finished());
        if !tasks_done {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let lasts = held.finish(report).await;
    let end = lasts.into_iter().flatten().max().unwrap_or(t0).max(t0);
    report.elapsed_s = (end - t0).as_secs_f64();
    finish_rates(report, cpu0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_counts_only_its_own_range() {
        // Subscriber 7 of `topics`: exactly seq 7, once.
        let mut s = StreamStats::new(7, 1);
        s.on_data(br#"{"seq":6,"ts_us":1}"#, 2);
        s.on_data(br#"{"seq":8,"ts_us":1}"#, 2);
        assert!(!s.complete());
        s.on_data(br#"{"seq":7,"ts_us":1}"#, 5);
        assert!(s.complete());
        s.on_data(br#"{"seq":7,"ts_us":1}"#, 5);
        assert_eq!((s.distinct, s.dup, s.malformed), (1, 1, 2));
        assert!(!s.complete());
        assert_eq!(s.lat, [4, 4]);
        // A fan-out subscriber: 0 .. n.
        let mut s = StreamStats::new(0, 3);
        for seq in [0, 1, 2, 3] {
            s.on_data(format!(r#"{{"seq":{seq},"ts_us":1}}"#).as_bytes(), 1);
        }
        assert_eq!((s.distinct, s.malformed), (3, 1));
        assert!(s.complete());
    }
}
