//! Behind a reverse proxy: the per-IP stream caps and `rate_limit`s count the client the proxy
//! names in `X-Forwarded-For` (or, when the app says so, RFC 7239 `Forwarded`), but only when
//! the connection comes from a trusted proxy.
//!
//! The first tests play the proxy themselves (a client on 127.0.0.1 sending the header); the
//! last put a real nginx in front of the server, with clients on different loopback addresses.

use std::net::IpAddr;
use std::time::Duration;

use pikku::{ForwardedHeader, Limits, TrustedProxies};

use crate::fixtures;
use crate::support::*;

fn capped(proxies: &str) -> pikku::Pikku<fixtures::TestServices> {
    let (app, ..) = fixtures::app();
    app.limits(Limits {
        max_streams_per_ip: Some(1),
        ..Limits::default()
    })
    .trusted_proxies(TrustedProxies::parse(proxies).unwrap())
}

/// Trusts `proxies`, reading the client from RFC 7239 `Forwarded`.
fn reading_forwarded(proxies: &str) -> TrustedProxies {
    TrustedProxies::parse(proxies)
        .unwrap()
        .header(ForwardedHeader::Forwarded)
}

async fn stream_for(srv: &TestServer, forwarded_for: &str) -> reqwest::Response {
    client()
        .get(srv.url("/t/guarded?every_ms=1000"))
        .header("x-forwarded-for", forwarded_for)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn per_ip_caps_count_the_client_a_trusted_proxy_names() {
    let srv = TestServer::pikku(capped("127.0.0.1, ::1")).await;
    let a = stream_for(&srv, "203.0.113.1").await;
    assert_eq!(a.status(), 200);
    // Another client through the same proxy has a place of its own.
    let b = stream_for(&srv, "203.0.113.2").await;
    assert_eq!(b.status(), 200, "a second client behind the proxy");
    // The first client's second stream is over its cap...
    assert_eq!(stream_for(&srv, "203.0.113.1").await.status(), 429);
    // ... also when it writes another address into the header itself: the proxy appends the
    // real one, and only that is believed.
    let spoofed = stream_for(&srv, "198.51.100.9, 203.0.113.1").await;
    assert_eq!(spoofed.status(), 429, "what the client wrote is ignored");
    drop((a, b));
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address() {
    // Only 10.0.0.0/8 is trusted; this client connects from loopback.
    let srv = TestServer::pikku(capped("10.0.0.0/8")).await;
    let a = stream_for(&srv, "203.0.113.1").await;
    assert_eq!(a.status(), 200);
    let b = stream_for(&srv, "203.0.113.2").await;
    assert_eq!(b.status(), 429, "counted as its own peer address");
    drop(a);
}

#[tokio::test]
async fn rate_limits_count_each_forwarded_client() {
    let (app, ..) = fixtures::app();
    let app = app.trusted_proxies(TrustedProxies::parse("127.0.0.1, ::1").unwrap());
    let srv = TestServer::pikku(app).await;
    let hit = |ip: &'static str| {
        client()
            .get(srv.url("/t/limited"))
            .header("x-forwarded-for", ip)
            .send()
    };
    // `/t/limited` allows 3 requests a second per client.
    for _ in 0..3 {
        assert_eq!(hit("203.0.113.1").await.unwrap().status(), 200);
    }
    assert_eq!(hit("203.0.113.1").await.unwrap().status(), 429);
    assert_eq!(
        hit("203.0.113.2").await.unwrap().status(),
        200,
        "another client behind the proxy has its own quota"
    );
}

#[tokio::test]
async fn functions_see_the_client_in_their_context() {
    let ip_seen = |srv: &TestServer, forwarded_for: &'static str| {
        let req = client()
            .get(srv.url("/t/client-ip"))
            .header("x-forwarded-for", forwarded_for)
            .send();
        async move {
            let v: serde_json::Value = req.await.unwrap().json().await.unwrap();
            v["ip"].as_str().unwrap_or_default().to_owned()
        }
    };
    let (app, ..) = fixtures::app();
    let direct = TestServer::pikku(app).await;
    assert_eq!(ip_seen(&direct, "203.0.113.1").await, "127.0.0.1");
    let behind = TestServer::pikku(capped("127.0.0.1")).await;
    assert_eq!(ip_seen(&behind, "203.0.113.1").await, "203.0.113.1");
}

/// nginx as the deployment guide configures it (`proxy_set_header X-Forwarded-For
/// $proxy_add_x_forwarded_for`), in front of a server that trusts it. Two clients on different
/// loopback addresses each get their one stream; a third stream of the first is refused.
#[tokio::test]
async fn behind_nginx_each_client_has_its_own_cap() {
    let Some(nginx) = Nginx::find() else {
        panic!("nginx is missing: install Debian's `nginx` package (.ci/run does)");
    };
    let srv = TestServer::pikku(capped("127.0.0.1")).await;
    let proxy = nginx.start(&srv.url(""), Names::XForwardedFor).await;
    let from = |local: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::from(local))
            .build()
            .unwrap()
    };
    let url = format!("{}/t/guarded?every_ms=1000", proxy.url);
    // A client's own header is kept by nginx but sits left of the address nginx appends.
    let open = |c: reqwest::Client| {
        let url = url.clone();
        async move {
            c.get(url)
                .header("x-forwarded-for", "198.51.100.9")
                .send()
                .await
                .unwrap()
        }
    };
    let a = open(from([127, 0, 0, 2])).await;
    assert_eq!(a.status(), 200);
    let b = open(from([127, 0, 0, 3])).await;
    assert_eq!(b.status(), 200, "another client through nginx");
    let again = open(from([127, 0, 0, 2])).await;
    assert_eq!(again.status(), 429, "127.0.0.2's second stream");
    drop((a, b));
    // Without trusting nginx, both clients are nginx's address: the second is refused.
    let direct = TestServer::pikku(capped("")).await;
    let proxy2 = nginx.start(&direct.url(""), Names::XForwardedFor).await;
    let url2 = format!("{}/t/guarded?every_ms=1000", proxy2.url);
    let a = from([127, 0, 0, 2]).get(&url2).send().await.unwrap();
    assert_eq!(a.status(), 200);
    let b = from([127, 0, 0, 3]).get(&url2).send().await.unwrap();
    assert_eq!(
        b.status(),
        429,
        "one cap for everyone behind an untrusted proxy"
    );
    drop((a, b));
    drop((proxy, proxy2));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn with_forwarded_chosen_the_rfc7239_client_counts_and_x_forwarded_for_does_not() {
    let app = capped("127.0.0.1, ::1").trusted_proxies(reading_forwarded("127.0.0.1, ::1"));
    let srv = TestServer::pikku(app).await;
    // Every request also carries the same `X-Forwarded-For`: were it read, all of them would
    // be one client and the second stream would be refused.
    let open = |forwarded: &'static str| {
        client()
            .get(srv.url("/t/guarded?every_ms=1000"))
            .header("forwarded", forwarded)
            .header("x-forwarded-for", "198.51.100.9")
            .send()
    };
    let a = open("for=203.0.113.1;proto=http").await.unwrap();
    assert_eq!(a.status(), 200);
    let b = open("for=\"[2001:db8::2]:4711\"").await.unwrap();
    assert_eq!(b.status(), 200, "another client by its `for`");
    let again = open("for=1.1.1.1, for=203.0.113.1").await.unwrap();
    assert_eq!(again.status(), 429, "203.0.113.1's second stream");
    drop((a, b));

    let (app, ..) = fixtures::app();
    let app = app.trusted_proxies(reading_forwarded("127.0.0.1"));
    let srv = TestServer::pikku(app).await;
    let seen = |forwarded: &'static str| {
        client()
            .get(srv.url("/t/client-ip"))
            .header("forwarded", forwarded)
            .header("x-forwarded-for", "198.51.100.9")
            .send()
    };
    let v: serde_json::Value = seen("for=203.0.113.1").await.unwrap().json().await.unwrap();
    assert_eq!(v["ip"], "203.0.113.1");
    // `for=unknown`: no address, so the proxy that passed it on is the client.
    let v: serde_json::Value = seen("for=unknown").await.unwrap().json().await.unwrap();
    assert_eq!(v["ip"], "127.0.0.1");
}

/// The env names the header, in the demo's own process: its login rate limit (10 a second per
/// client) counts the client `Forwarded` names. Every request carries a different
/// `X-Forwarded-For`, so were that read instead, none would be refused.
#[tokio::test]
async fn the_demo_reads_the_header_its_env_names() {
    let demo = DemoProcess::start(&[
        ("PIKKU_TRUSTED_PROXIES", "127.0.0.1, ::1"),
        ("PIKKU_TRUSTED_PROXIES_HEADER", "forwarded"),
    ])
    .await;
    let login = |forwarded: &str, i: usize| {
        client()
            .post(demo.url("/auth/login"))
            .header("forwarded", forwarded.to_owned())
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&serde_json::json!({ "userId": "alice" }))
            .send()
    };
    // Four times the burst at once: whatever refills while they arrive, some are over it.
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..40).map(|i| login("for=203.0.113.1", i)))
            .await
            .into_iter()
            .map(|r| r.unwrap().status().as_u16())
            .collect();
    assert!(
        statuses.contains(&429),
        "one client over its limit: {statuses:?}"
    );
    assert!(
        statuses.iter().filter(|s| **s != 429).count() >= 10,
        "{statuses:?}"
    );
    let other = login("for=203.0.113.2", 99).await.unwrap();
    assert_ne!(other.status(), 429, "another client has its own limit");
}

/// nginx writing RFC 7239 `Forwarded` (the two `map`s of the deployment guide; it has no
/// variable of its own for it) in front of a server that reads that header. The clients also
/// send an `X-Forwarded-For`, which this nginx passes on untouched: the server ignores it.
#[tokio::test]
async fn behind_nginx_writing_forwarded_each_client_has_its_own_cap() {
    let Some(nginx) = Nginx::find() else {
        panic!("nginx is missing: install Debian's `nginx` package (.ci/run does)");
    };
    let app = capped("127.0.0.1").trusted_proxies(reading_forwarded("127.0.0.1"));
    let srv = TestServer::pikku(app).await;
    let proxy = nginx.start(&srv.url(""), Names::Forwarded).await;
    let url = format!("{}/t/guarded?every_ms=1000", proxy.url);
    let open = |local: [u8; 4], own: &'static str| {
        let c = reqwest::Client::builder()
            .local_address(IpAddr::from(local))
            .build()
            .unwrap();
        let url = url.clone();
        async move {
            c.get(url)
                .header("forwarded", own)
                .header("x-forwarded-for", "198.51.100.9")
                .send()
                .await
                .unwrap()
        }
    };
    // A client's own `Forwarded` (here with a quote left open) sits left of nginx's element.
    let a = open([127, 0, 0, 2], "for=198.51.100.9").await;
    assert_eq!(a.status(), 200);
    let b = open([127, 0, 0, 3], "for=\"198.51.100.9").await;
    assert_eq!(b.status(), 200, "another client through nginx");
    let again = open([127, 0, 0, 2], "for=198.51.100.10").await;
    assert_eq!(again.status(), 429, "127.0.0.2's second stream");
    drop((a, b, proxy));
    tokio::time::sleep(Duration::from_millis(10)).await;
}

/// The header the nginx in front names the client in.
#[derive(Clone, Copy)]
enum Names {
    /// `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`.
    XForwardedFor,
    /// `Forwarded`, the client's header with `for=<peer>` appended, as the README shows.
    Forwarded,
}

/// The nginx binary, and running copies of it with a config of their own.
struct Nginx {
    bin: std::path::PathBuf,
}

struct RunningNginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Drop for RunningNginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Nginx {
    fn find() -> Option<Self> {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(std::path::PathBuf::from)
            .find(|p| p.exists())
            .map(|bin| Self { bin })
    }

    /// Starts nginx in the foreground on a free loopback port, proxying to `upstream`
    /// (`http://127.0.0.1:port`) over HTTP/1.1 with buffering off, as for any SSE server,
    /// naming the client as `names` says.
    async fn start(&self, upstream: &str, names: Names) -> RunningNginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("pikku-nginx-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let (maps, set_header) = match names {
            Names::XForwardedFor => (
                "",
                "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            ),
            // The README's maps.
            Names::Forwarded => (
                "map $remote_addr $forwarded_for {\n\
                 \x20   ~:      \"for=\\\"[$remote_addr]\\\"\";\n\
                 \x20   default \"for=$remote_addr\";\n}\n\
                 map $http_forwarded $proxy_add_forwarded {\n\
                 \x20   \"\"      $forwarded_for;\n\
                 \x20   default \"$http_forwarded, $forwarded_for\";\n}\n",
                "proxy_set_header Forwarded $proxy_add_forwarded;",
            ),
        };
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             \x20 fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
             {maps}\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n\
             \x20     proxy_pass {upstream};\n      proxy_http_version 1.1;\n      proxy_buffering off;\n\
             \x20     {set_header}\n    }}\n  }}\n}}\n",
            dir = dir.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = std::process::Command::new(&self.bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let running = RunningNginx {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return running;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "nginx did not listen on {port}: {}",
            std::fs::read_to_string(running.dir.join("logs/error.log")).unwrap_or_default()
        );
    }
}
