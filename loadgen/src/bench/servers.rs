//! Starting and stopping the servers under test (the Pikku bench app, the axum baseline and
//! Pikku on Node) and finding the programs `bench-all` runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::record::ServerKind;

/// Where the workspace and the programs `bench-all` starts are.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root.
    pub root: PathBuf,
    /// The Pikku bench app (`examples/bench.rs`), next to this executable.
    pub bench_app: PathBuf,
    /// The axum baseline server.
    pub baseline: PathBuf,
    /// `loadgen/node-pikku/server.mjs`.
    pub node_server: PathBuf,
    /// `loadgen/node-plain/server.mjs`.
    pub node_plain_server: PathBuf,
    /// The load generator.
    pub loadgen: PathBuf,
    /// The compile-cost measurement.
    pub compile_cost: PathBuf,
}

/// The paths for the build profile this executable belongs to (its siblings in the target
/// dir) and the workspace this crate is in.
pub fn paths() -> Result<Paths, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let dir = exe.parent().ok_or("no exe dir")?.to_path_buf();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no workspace root")?
        .to_path_buf();
    Ok(Paths {
        root: root.clone(),
        bench_app: dir.join("examples").join("bench"),
        baseline: dir.join("baseline"),
        node_server: root.join("loadgen").join("node-pikku").join("server.mjs"),
        node_plain_server: root.join("loadgen").join("node-plain").join("server.mjs"),
        loadgen: dir.join("loadgen"),
        compile_cost: dir.join("compile-cost"),
    })
}

/// A started server, killed when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Its process id (for CPU, RSS and descriptor readings).
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// Starts a `kind` server on `port` (with event hub `hub`, if any; stderr to `log`) and waits
/// until it accepts connections. `Err` is the note for the table cell: a backend the server
/// cannot use, a server that exited, or one that never listened.
pub async fn start_server(
    p: &Paths,
    kind: ServerKind,
    port: u16,
    hub: Option<&str>,
    log: &Path,
) -> Result<Server, String> {
    let (bin, args): (&Path, &[&Path]) = match kind {
        ServerKind::Pikku => (&p.bench_app, &[]),
        ServerKind::Baseline => (&p.baseline, &[]),
        ServerKind::PikkuNode if hub.is_some() => {
            // @pikku/core fans SSE out through its in-process LocalEventHubService only;
            // @pikku/redis 0.12 stores serverless channel subscriptions, it is no pub/sub.
            return Err("n/a (no Redis fan-out in @pikku/core)".into());
        }
        ServerKind::PikkuNode => (Path::new("node"), &[p.node_server.as_path()]),
        // It serves the idle route only, so it never runs with an event hub.
        ServerKind::NodePlain if hub.is_some() => return Err("n/a (idle rows only)".into()),
        ServerKind::NodePlain => (Path::new("node"), &[p.node_plain_server.as_path()]),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(bin);
    cmd.args(args).env("NODE_ENV", "production");
    cmd.env("PIKKU_ADDR", addr.to_string())
        .env("PIKKU_SSE_HEARTBEAT_MS", "15000")
        .env("RUST_LOG", "warn")
        .env_remove("PIKKU_EVENT_HUB");
    if let Some(url) = hub {
        cmd.env("PIKKU_EVENT_HUB", url);
    }
    spawn_listening(cmd, addr, log, kind.label()).await
}

/// Spawns `cmd` (a server told to listen on `addr`; stderr to `log`, killed when dropped) and
/// waits until it accepts connections. `label` names it in the note printed when its event hub
/// is unavailable. Shared with the `hundred-k` run, which sets its own environment.
pub async fn spawn_listening(
    mut cmd: Command,
    addr: SocketAddr,
    log: &Path,
    label: &str,
) -> Result<Server, String> {
    let log_file = std::fs::File::create(log).map_err(|e| format!("log: {e}"))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("spawn {:?}: {e}", cmd.as_std().get_program()))?;
    let pid = child.id().ok_or("no pid")?;
    let t0 = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let line = log.lines().last().unwrap_or("").trim().to_owned();
            return Err(if line.contains("event hub unavailable") {
                eprintln!("   ({label} exited: {line})");
                "n/a (backend unavailable)".to_owned()
            } else {
                format!("server exited ({status}): {line}")
            });
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(Server { child, pid, addr });
        }
        if t0.elapsed() > Duration::from_secs(15) {
            return Err("server did not start listening within 15 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a server: SIGTERM, then a kill after 5 s.
pub async fn stop_server(mut s: Server) {
    // SAFETY: signalling our own child by pid.
    unsafe {
        libc::kill(s.pid as libc::pid_t, libc::SIGTERM);
    }
    if tokio::time::timeout(Duration::from_secs(5), s.child.wait())
        .await
        .is_err()
    {
        let _ = s.child.kill().await;
    }
}

/// A loopback port nobody listens on (the kernel's pick), for the next server.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Open descriptors of process `pid` (0 when unreadable).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Checks `node`, installs `loadgen/node-pikku`'s pinned `@pikku/core` (`npm ci`) once, and
/// says what the Node column runs: the installed @pikku/core (not the pinned one: a stale
/// install says so) and Node's version.
pub fn prepare_node(server: &Path) -> Result<String, String> {
    let dir = server.parent().ok_or("no node-pikku dir")?;
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node: {e}"))?;
    let package = dir.join("node_modules/@pikku/core/package.json");
    if !package.exists() {
        let status = std::process::Command::new("npm")
            .current_dir(dir)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .status()
            .map_err(|e| format!("npm: {e}"))?;
        if !status.success() {
            return Err(format!("npm ci in {} failed", dir.display()));
        }
    }
    let core = std::fs::read_to_string(&package)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(version unknown)".into());
    Ok(format!(
        "`loadgen/node-pikku/server.mjs`, npm @pikku/core {core} on Node {}",
        String::from_utf8_lossy(&node.stdout).trim()
    ))
}

/// Says what the plain Node.js column runs: the server and Node's version (`Err` when `node`
/// cannot be run). It has no dependencies, so there is nothing to install.
pub fn describe_node_plain(server: &Path) -> Result<String, String> {
    if !server.exists() {
        return Err(format!("{} is missing", server.display()));
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node: {e}"))?;
    Ok(format!(
        "`loadgen/node-plain/server.mjs` (`node:http` only) on Node {}",
        String::from_utf8_lossy(&node.stdout).trim()
    ))
}
