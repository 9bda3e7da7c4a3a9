//! Test servers and SSE clients.

use std::net::SocketAddr;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures_util::{Stream, StreamExt};
use pikku::Shutdown;

/// A server on a free loopback port, shut down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    pub async fn start(router: axum::Router, shutdown: Shutdown) -> Self {
        Self::start_with(router, shutdown, pikku::ServeConfig::default()).await
    }

    /// [`TestServer::start`] with chosen connection settings (the 2 s shutdown deadline kept).
    pub async fn start_with(
        router: axum::Router,
        shutdown: Shutdown,
        cfg: pikku::ServeConfig,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = shutdown.clone();
        let cfg = cfg.shutdown_deadline(Duration::from_secs(2));
        let task = tokio::spawn(async move { pikku::serve_with(listener, router, s, cfg).await });
        Self {
            addr,
            shutdown,
            task,
        }
    }

    pub async fn pikku<S: Send + Sync + 'static>(app: pikku::Pikku<S>) -> Self {
        let shutdown = app.shutdown_handle();
        Self::start(app.router(), shutdown).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers shutdown and waits for the server to return.
    pub async fn stop(self) -> std::io::Result<()> {
        self.shutdown.trigger();
        let Self { task, .. } = self;
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("server stops within 5 s")
            .expect("server task did not panic")
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

pub async fn get(url: &str) -> reqwest::Response {
    client().get(url).send().await.unwrap()
}

/// Parsed events of a streaming response.
pub fn events(res: reqwest::Response) -> impl Stream<Item = Event> + Unpin {
    Box::pin(
        res.bytes_stream()
            .eventsource()
            .map(|e| e.expect("valid SSE")),
    )
}

/// The next event, failing the test after `secs` seconds.
pub async fn next_event(s: &mut (impl Stream<Item = Event> + Unpin), secs: u64) -> Option<Event> {
    tokio::time::timeout(Duration::from_secs(secs), s.next())
        .await
        .expect("an event (or the end) in time")
}

/// Reads raw body bytes until `pred` holds for all that was read, or `secs` pass.
pub async fn read_until(
    res: &mut reqwest::Response,
    secs: u64,
    pred: impl Fn(&str) -> bool,
) -> String {
    let mut all = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !pred(&all) {
        match tokio::time::timeout_at(deadline, res.chunk()).await {
            Ok(Ok(Some(chunk))) => all.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
        }
    }
    all
}

/// Polls `cond` every 10 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn json(e: &Event) -> serde_json::Value {
    serde_json::from_str(&e.data)
        .unwrap_or_else(|err| panic!("event data {:?} is JSON: {err}", e.data))
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The demo example binary, which `cargo test` builds.
pub fn demo_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let demo = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join("demo");
    assert!(
        demo.exists(),
        "cargo test builds the demo example at {}",
        demo.display()
    );
    demo
}

/// The demo example binary (built by `cargo test`), running as its own process.
pub struct DemoProcess {
    pub child: tokio::process::Child,
    pub base: String,
}

impl DemoProcess {
    /// Starts the demo on a free loopback port with `envs`, and waits until it answers.
    pub async fn start(envs: &[(&str, &str)]) -> Self {
        Self::start_with(envs, std::process::Stdio::inherit()).await
    }

    /// Like `start`, with the child's stderr going to `stderr`.
    pub async fn start_with(envs: &[(&str, &str)], stderr: std::process::Stdio) -> Self {
        Self::start_at(free_port(), envs, stderr).await
    }

    /// Like `start_with`, on `port` (e.g. to restart an instance where it was).
    pub async fn start_at(port: u16, envs: &[(&str, &str)], stderr: std::process::Stdio) -> Self {
        Self::start_example("demo", "/health/ready", port, envs, stderr).await
    }

    /// Starts the example binary `name` on `port`, waiting until `ready_path` answers.
    pub async fn start_example(
        name: &str,
        ready_path: &str,
        port: u16,
        envs: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> Self {
        let demo = demo_binary().with_file_name(name);
        assert!(
            demo.exists(),
            "cargo test builds the {name} example at {}",
            demo.display()
        );
        let mut cmd = tokio::process::Command::new(&demo);
        cmd.env("PIKKU_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stderr(stderr)
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if client()
                .get(format!("{base}{ready_path}"))
                .send()
                .await
                .is_ok()
            {
                return Self { child, base };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{name} did not start on {base}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// Sends SIGTERM and waits until the process has exited.
    pub async fn stop(mut self) {
        self.terminate();
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the demo exits within 10 s")
            .unwrap();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("running");
        std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .unwrap();
    }
}

/// Logs in to the demo (`POST /auth/login`) at `base` and returns the bearer token.
pub async fn demo_login(base: &str, user: &str) -> String {
    let res = client()
        .post(format!("{base}/auth/login"))
        .json(&serde_json::json!({"userId": user}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "login as {user}");
    let body: serde_json::Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

/// Publishes a notification to `user` through the demo at `base`; returns its id.
pub async fn demo_notify(base: &str, token: &str, user: &str, message: &str) -> String {
    let res = client()
        .post(format!("{base}/users/{user}/notifications"))
        .bearer_auth(token)
        .json(&serde_json::json!({"type": "info", "message": message}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    body["id"].as_str().unwrap().to_string()
}

/// Reads a stream to its end; returns the last event.
pub async fn last_event(mut ev: impl Stream<Item = Event> + Unpin, secs: u64) -> Option<Event> {
    let mut last = None;
    while let Some(e) = next_event(&mut ev, secs).await {
        last = Some(e);
    }
    last
}

/// The resident set size of process `pid`, in KiB (from `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}
