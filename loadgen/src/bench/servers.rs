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

impl Server {
    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// The event hub a server is started with: `PIKKU_EVENT_HUB` and, when set,
/// `PIKKU_EVENT_HUB_PREFIX` (the backend's key, subject or table prefix).
#[derive(Debug, Clone, PartialEq)]
pub struct HubEnv {
    /// The backend's URL.
    pub url: String,
    /// The hub's prefix; `None` leaves the backend's default.
    pub prefix: Option<String>,
}

/// Starts a `kind` server on `port` (with event hub `hub`, if any; stderr to `log`) and waits
/// until it accepts connections. `Err` is the note for the table cell: a backend that is
/// unavailable, a server that exited, or one that never listened. Which servers can run which
/// rows at all is decided before (`orchestrate::not_run`).
pub async fn start_server(
    p: &Paths,
    kind: ServerKind,
    port: u16,
    hub: Option<&HubEnv>,
    log: &Path,
) -> Result<Server, String> {
    let (bin, args): (&Path, &[&Path]) = match kind {
        ServerKind::Pikku => (&p.bench_app, &[]),
        ServerKind::Baseline => (&p.baseline, &[]),
        ServerKind::PikkuNode => (Path::new("node"), &[p.node_server.as_path()]),
        ServerKind::NodePlain => (Path::new("node"), &[p.node_plain_server.as_path()]),
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(bin);
    cmd.args(args).env("NODE_ENV", "production");
    cmd.env("PIKKU_ADDR", addr.to_string())
        .env("PIKKU_SSE_HEARTBEAT_MS", "15000")
        .env("RUST_LOG", "warn")
        .env_remove("PIKKU_EVENT_HUB")
        .env_remove("PIKKU_EVENT_HUB_PREFIX");
    if let Some(hub) = hub {
        cmd.env("PIKKU_EVENT_HUB", &hub.url);
        if let Some(prefix) = &hub.prefix {
            cmd.env("PIKKU_EVENT_HUB_PREFIX", prefix);
        }
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

/// The TCP port of a backend URL (`scheme://[user[:pass]@]host[:port][/...]`), or the
/// scheme's default port (Redis 6379, NATS 4222, PostgreSQL 5432).
pub fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    // An IPv6 host is bracketed; its port, if any, follows the bracket.
    let port = match host_port.rsplit_once(']') {
        Some((_, tail)) => tail.strip_prefix(':'),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    match port {
        Some(p) => p.parse().ok(),
        None => match scheme {
            "redis" | "rediss" => Some(6379),
            "nats" => Some(4222),
            "postgres" | "postgresql" => Some(5432),
            _ => None,
        },
    }
}

/// Which end of a connection [`conns_on_port`] matches the port on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The process's own port (a server's accepted connections).
    Local,
    /// The peer's port (a client's connections to a backend).
    Remote,
}

/// Established TCP connections process `pid` holds to remote port `port`: see
/// [`conns_on_port`]. Exact for one process, unlike a backend's own client count, which every
/// other client of a shared server moves too.
pub fn conns_to_port(pid: u32, port: u16) -> usize {
    conns_on_port(pid, port, End::Remote)
}

/// Established TCP connections process `pid` holds with `port` at `end`: its socket
/// descriptors (`/proc/<pid>/fd`) matched by inode against `/proc/<pid>/net/tcp{,6}`. Exact
/// once its connections stop changing (the tables are not read atomically).
pub fn conns_on_port(pid: u32, port: u16, end: End) -> usize {
    let inodes: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let target = std::fs::read_link(e.path()).ok()?;
            let t = target.to_str()?;
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .map(|table| count_in_tcp_table(&table, port, end, &inodes))
        .sum()
}

/// Sockets of a `/proc/net/tcp` table in state ESTABLISHED (`01`) with `port` at `end` whose
/// inode is one of `inodes`, each once (the kernel prints the table a chunk per read, so a
/// socket can appear twice while connections come and go).
fn count_in_tcp_table(
    table: &str,
    port: u16,
    end: End,
    inodes: &std::collections::HashSet<u64>,
) -> usize {
    let want = format!(":{port:04X}");
    let column = match end {
        End::Local => 1,
        End::Remote => 2,
    };
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let inode: u64 = f.get(9)?.parse().ok()?;
            (f[column].ends_with(&want) && f[3] == "01" && inodes.contains(&inode)).then_some(inode)
        })
        .collect::<std::collections::HashSet<_>>()
        .len()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_ports() {
        assert_eq!(url_port("redis://127.0.0.1:6380"), Some(6380));
        assert_eq!(url_port("redis://127.0.0.1"), Some(6379));
        assert_eq!(url_port("nats://127.0.0.1:4222"), Some(4222));
        assert_eq!(
            url_port("postgres://postgres@127.0.0.1:5433/test"),
            Some(5433)
        );
        assert_eq!(url_port("postgres://u:p@db/test?sslmode=off"), Some(5432));
        assert_eq!(url_port("redis://[::1]:7000"), Some(7000));
        assert_eq!(url_port("memory"), None);
    }

    #[test]
    fn established_sockets_of_the_process_to_the_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9C40 0100007F:18EB 01 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 20 4 30 10 -1
   1: 0100007F:9C41 0100007F:18EB 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1
   2: 0100007F:9C42 0100007F:18EB 06 00000000:00000000 00:00000000 00000000  1000        0 333 1 0 20 4 30 10 -1
   3: 0100007F:9C43 0100007F:1538 01 00000000:00000000 00:00000000 00000000  1000        0 444 1 0 20 4 30 10 -1
";
        let ours: std::collections::HashSet<u64> = [111, 333, 444].into();
        // 6379 = 0x18EB: 111 (ours, established); 222 is another process's, 333 is closing.
        assert_eq!(count_in_tcp_table(table, 6379, End::Remote, &ours), 1);
        assert_eq!(count_in_tcp_table(table, 5432, End::Remote, &ours), 1);
        assert_eq!(count_in_tcp_table(table, 4222, End::Remote, &ours), 0);
    }

    /// A server's accepted connections: matched on the local port, each socket once even
    /// when the table lists it twice; listening sockets (`0A`) are not connections.
    #[test]
    fn established_sockets_of_the_process_on_its_own_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:9077 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 0100007F:9077 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1
   1: 0100007F:9077 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1
   2: 0100007F:9077 0100007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 1005 1 0 20 4 30 10 -1
";
        let ours: std::collections::HashSet<u64> = [1001, 1003].into();
        assert_eq!(count_in_tcp_table(table, 0x9077, End::Local, &ours), 1);
        assert_eq!(count_in_tcp_table(table, 0x9077, End::Remote, &ours), 0);
    }

    #[test]
    fn this_process_connection_is_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let before = conns_to_port(std::process::id(), port);
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _server = listener.accept().unwrap();
        assert_eq!(conns_to_port(std::process::id(), port), before + 1);
    }
}
