//! The server's own HTTP/1.1 event-stream path, on the wire: what it answers itself, what it
//! leaves to hyper, and how it ends.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures;
use crate::support::*;

const STREAM_REQUEST: &str =
    "GET /t/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n";

/// The fixture stream's three events, as sent.
const EVENTS: &str = "id: 1\ndata: {\"n\":1}\n\nid: 2\nevent: special\nretry: 2500\ndata: {\"n\":2}\n\nid: 3\ndata: {\"n\":3}\n\n";

/// Everything the server sends until it closes the connection (bounded by `secs`).
async fn read_to_close(conn: &mut TcpStream, secs: u64) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(secs), conn.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the server closed the connection in time");
    String::from_utf8(all).unwrap()
}

/// Sends `request` on a new connection to `addr` and returns everything the server sends
/// until it closes the connection (bounded by 5 s).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(request).await.unwrap();
    read_to_close(&mut conn, 5).await
}

#[tokio::test]
async fn a_stream_is_chunked_ended_and_its_connection_closed() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let raw = exchange(srv.addr, STREAM_REQUEST.as_bytes()).await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let head = head.to_ascii_lowercase();
    for line in [
        "content-type: text/event-stream",
        "transfer-encoding: chunked",
        "connection: close",
        "cache-control: no-cache",
        "date: ",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    assert!(!head.contains("content-length"), "{head}");
    assert!(
        body.ends_with("0\r\n\r\n"),
        "the last chunk ends the body: {body:?}"
    );
    // De-chunked, the body is the stream's three events.
    let mut events = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            break;
        }
        events.push_str(&after[..size]);
        assert_eq!(&after[size..size + 2], "\r\n");
        rest = &after[size + 2..];
    }
    assert_eq!(events, EVENTS);
}

#[tokio::test]
async fn a_refused_stream_gets_a_complete_response_with_its_length() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let raw = exchange(
        srv.addr,
        b"GET /t/missing/0 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .expect("a length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length);
    assert!(body.contains("\"not_found\""), "{body}");
}

#[tokio::test]
async fn requests_it_does_not_answer_are_hyper_s_byte_for_byte() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    // Two pipelined requests in one write, the first an event stream: hyper answers both.
    let raw = exchange(
        srv.addr,
        format!("{STREAM_REQUEST}GET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await;
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert!(raw.contains("id: 3\n"), "{raw}");
    // Without `Accept: text/event-stream`, a stream keeps its connection for the next request.
    let raw = exchange(srv.addr, b"GET /t/events HTTP/1.1\r\nHost: t\r\n\r\nGET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",).await;
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    // A request head sent a byte at a time still reaches the path.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    for b in STREAM_REQUEST.bytes() {
        conn.write_all(&[b]).await.unwrap();
    }
    let raw = read_to_close(&mut conn, 5).await;
    assert!(
        raw.to_ascii_lowercase().contains("connection: close"),
        "{raw}"
    );
    assert!(raw.contains("id: 3\n"), "{raw}");
}

#[tokio::test]
async fn an_http10_stream_is_served_here_unchunked_until_the_close() {
    // What a proxy on its default HTTP/1.0 upstream (nginx) sends: no `Host`, no keep-alive.
    let request = b"GET /t/events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n";
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let raw = exchange(srv.addr, request).await;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.0 200 ok\r\n"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(!head.contains("transfer-encoding"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert_eq!(body, EVENTS, "the events as sent, ended by the close");
    // Served here, not by hyper: this path always says `connection: close`; hyper, answering
    // HTTP/1.0 (whose default is to close), does not.
    assert!(head.contains("connection: close"), "{head}");
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let cfg = pikku::ServeConfig::default().direct_event_streams(false);
    let hyper = TestServer::start_with(app.router(), shutdown, cfg).await;
    let raw = exchange(hyper.addr, request).await;
    let (hyper_head, hyper_body) = raw.split_once("\r\n\r\n").unwrap();
    let hyper_head = hyper_head.to_ascii_lowercase();
    assert!(
        hyper_head.starts_with("http/1.0 200 ok\r\n"),
        "{hyper_head}"
    );
    assert!(!hyper_head.contains("connection: close"), "{hyper_head}");
    assert_eq!(hyper_body, body, "the same body as hyper's");
}

#[tokio::test]
async fn a_client_that_keeps_sending_during_its_stream_is_disconnected() {
    let (app, cleanups, _) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(
        b"GET /t/guarded?every_ms=100 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut first = [0u8; 512];
    let n = conn.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    // A few bytes are tolerated; a flood of them is not.
    conn.write_all(b"\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cleanups.load(Ordering::SeqCst), 0, "still streaming");
    let junk = vec![b'x'; 128 * 1024];
    let _ = conn.write_all(&junk).await;
    assert!(
        eventually(Duration::from_secs(2), || cleanups.load(Ordering::SeqCst)
            == 1)
        .await,
        "the stream was ended and its generator dropped"
    );
}

/// A connection to `addr` that has had one kept-alive exchange: `GET /t/thing`, answered.
async fn after_one_get(addr: std::net::SocketAddr) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /t/thing HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let res = read_response(&mut conn).await;
    assert!(res.ends_with("{\"n\":1}"), "{res}");
    conn
}

/// One complete response with a `content-length` body, read off a kept-alive connection.
async fn read_response(conn: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !raw.ends_with(b"\r\n\r\n") {
            assert_eq!(
                conn.read(&mut byte).await.unwrap(),
                1,
                "the connection stayed open"
            );
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .expect("a content-length")
            .trim()
            .parse()
            .unwrap();
        let mut body = vec![0u8; length];
        conn.read_exact(&mut body).await.unwrap();
        raw.extend_from_slice(&body);
    })
    .await;
    assert!(read.is_ok(), "a whole response in time");
    String::from_utf8(raw).unwrap()
}

#[tokio::test]
async fn a_stream_on_a_connection_its_page_used_before_is_served_here_too() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    // Two requests kept alive (hyper's answers, with their lengths and no `connection: close`)...
    for _ in 0..2 {
        conn.write_all(b"GET /t/thing HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let res = read_response(&mut conn).await;
        assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
        assert!(res.ends_with("{\"n\":1}"), "{res}");
        assert!(
            !res.to_ascii_lowercase().contains("connection: close"),
            "{res}"
        );
    }
    // ...then an `EventSource` on the same connection: answered by this path, which closes
    // the connection after the stream (hyper would keep it open).
    conn.write_all(STREAM_REQUEST.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut conn, 5).await;
    let head = raw.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(head.contains("connection: close"), "{raw}");
    assert!(head.contains("transfer-encoding: chunked"), "{raw}");
    assert!(
        raw.contains("id: 3\n") && raw.ends_with("0\r\n\r\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn after_a_body_read_to_its_end_a_stream_is_served_here_and_otherwise_by_hyper() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    // A POST whose JSON body the function reads: a stream after it is answered here.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    let body = r#"{"note":"hi"}"#;
    let post = format!(
        "POST /t/echo/u1 HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(post.as_bytes()).await.unwrap();
    let res = read_response(&mut conn).await;
    assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
    assert!(res.contains("\"note\":\"hi\""), "{res}");
    conn.write_all(STREAM_REQUEST.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut conn, 5).await;
    let head = raw.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{raw}");
    assert!(raw.contains("id: 3\n"), "{raw}");
    // A body nobody reads (a function without input) that looks like a stream request, sent
    // after the response: it is a body, never answered as a request, whatever it looks like.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(
        format!(
            "GET /t/thing HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            STREAM_REQUEST.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let res = read_response(&mut conn).await;
    assert!(res.ends_with("{\"n\":1}"), "{res}");
    let _ = conn.write_all(STREAM_REQUEST.as_bytes()).await;
    let _ = conn
        .write_all(b"GET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let raw = read_to_close(&mut conn, 5).await;
    assert!(
        !raw.contains("event-stream") && !raw.contains("id: 1"),
        "{raw}"
    );
    // A request asking to close gets its answer, then the server closes the connection.
    let raw = exchange(
        srv.addr,
        b"GET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        raw.starts_with("HTTP/1.1 200 OK\r\n") && raw.ends_with("{\"n\":1}"),
        "{raw}"
    );
}

#[tokio::test]
async fn a_later_request_head_sent_slowly_is_cut_off_at_the_header_timeout() {
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cfg = pikku::ServeConfig::default().header_read_timeout(Some(Duration::from_millis(500)));
    let server = tokio::spawn(pikku::serve_with(
        listener,
        app.router(),
        shutdown.clone(),
        cfg,
    ));
    let conn = after_one_get(addr).await;
    // The next head trickles in and never ends: the server stops waiting for it.
    let (mut rd, mut wr) = conn.into_split();
    let trickle = tokio::spawn(async move {
        for b in b"GET /t/thing HTTP/1.1\r\nX-Slow: " {
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(2), rd.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "closed within the timeout, not after the 3 s trickle"
    );
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    trickle.abort();
    shutdown.trigger();
    let _ = server.await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_kept_alive_connection_between_requests() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = after_one_get(srv.addr).await;
    // The connection now waits for its next request; shutdown closes it at once (the test
    // server's deadline for open connections is 2 s).
    let t0 = std::time::Instant::now();
    srv.stop().await.unwrap();
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    let rest = read_to_close(&mut conn, 2).await;
    assert_eq!(rest, "");
}

#[tokio::test]
async fn an_upgrade_requested_after_a_request_on_the_same_connection_still_upgrades() {
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let srv = TestServer::start(with_echo_upgrade(app.router()), shutdown).await;
    let mut conn = after_one_get(srv.addr).await;
    upgrades_to_echo(&mut conn).await;
}

#[tokio::test]
async fn later_requests_sent_a_byte_at_a_time_are_told_apart() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = after_one_get(srv.addr).await;
    for b in STREAM_REQUEST.bytes() {
        conn.write_all(&[b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let raw = read_to_close(&mut conn, 5).await;
    let head = raw.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.contains("connection: close"), "{raw}");
    assert!(raw.contains("id: 3\n"), "{raw}");
    // Any other request sent so is hyper's, byte for byte, and the connection stays usable.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    for _ in 0..2 {
        for b in b"GET /t/thing HTTP/1.1\r\nHost: t\r\n\r\n" {
            conn.write_all(&[*b]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let res = read_response(&mut conn).await;
        assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
        assert!(res.ends_with("{\"n\":1}"), "{res}");
    }
}

/// After a request whose body the handler did not read (hyper drains it and keeps the
/// connection), the server still knows where the next request starts, so an upgrade asked
/// for on the same connection is handed to hyper's connection with upgrades.
#[tokio::test]
async fn an_upgrade_after_a_request_whose_body_was_not_read_still_upgrades() {
    upgrade_after_an_unread_body(pikku::ServeConfig::default()).await;
}

/// With every request left to hyper, the same upgrade works too.
#[tokio::test]
async fn without_the_direct_path_an_upgrade_after_an_unread_body_upgrades() {
    upgrade_after_an_unread_body(pikku::ServeConfig::default().direct_event_streams(false)).await;
}

async fn upgrade_after_an_unread_body(cfg: pikku::ServeConfig) {
    let srv = with_an_ignoring_route(cfg).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(b"POST /t/ignore HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let res = read_response(&mut conn).await;
    assert!(res.ends_with("ok"), "{res}");
    upgrades_to_echo(&mut conn).await;
}

/// The fixture app with `POST /t/ignore` (answers without reading its request's body) and
/// the echo upgrade route, served with `cfg`.
async fn with_an_ignoring_route(cfg: pikku::ServeConfig) -> TestServer {
    let (app, ..) = fixtures::app();
    let shutdown = app.shutdown_handle();
    let router =
        with_echo_upgrade(app.router()).route("/t/ignore", axum::routing::post(|| async { "ok" }));
    TestServer::start_with(router, shutdown, cfg).await
}

/// Sends a request whose body nobody reads (`body` as is, after a head with `framing`) and
/// reads its answer: the connection is kept for the next request.
async fn after_an_unread_body(srv: &TestServer, framing: &str, body: &str) -> TcpStream {
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(format!("POST /t/ignore HTTP/1.1\r\nHost: t\r\n{framing}\r\n{body}").as_bytes())
        .await
        .unwrap();
    let res = read_response(&mut conn).await;
    assert!(res.ends_with("ok"), "{res}");
    conn
}

/// Asserts that the stream requested on `conn` is answered by this path (which closes the
/// connection after it; hyper would have kept it open).
async fn stream_is_served_here(conn: &mut TcpStream) {
    conn.write_all(STREAM_REQUEST.as_bytes()).await.unwrap();
    let raw = read_to_close(conn, 5).await;
    let head = raw.split_once("\r\n\r\n").unwrap().0.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(head.contains("connection: close"), "{raw}");
    assert!(raw.contains("id: 3\n"), "{raw}");
}

#[tokio::test]
async fn after_a_body_nobody_read_a_stream_is_still_served_here() {
    let srv = with_an_ignoring_route(pikku::ServeConfig::default()).await;
    let mut conn = after_an_unread_body(&srv, "Content-Length: 5\r\n", "hello").await;
    stream_is_served_here(&mut conn).await;
    // (Hyper keeps a connection whose unread body it can drain at once: here the chunk the
    // handler was offered, then the last chunk and the trailers.)
    let chunked = "5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n";
    let mut conn = after_an_unread_body(&srv, "Transfer-Encoding: chunked\r\n", chunked).await;
    stream_is_served_here(&mut conn).await;
}

#[tokio::test]
async fn an_upgrade_after_a_chunked_body_nobody_read_still_upgrades() {
    let srv = with_an_ignoring_route(pikku::ServeConfig::default()).await;
    let chunked = "4\r\nabcd\r\n0\r\n\r\n";
    let mut conn = after_an_unread_body(&srv, "Transfer-Encoding: chunked\r\n", chunked).await;
    upgrades_to_echo(&mut conn).await;
}

/// A body that nobody reads and that looks like an event-stream request (sent with its head,
/// as one `Content-Length` body or as chunks) is counted as the body it is: the request after
/// it is the one answered.
#[tokio::test]
async fn an_unread_body_that_looks_like_a_stream_request_is_never_answered_as_one() {
    let srv = with_an_ignoring_route(pikku::ServeConfig::default()).await;
    let chunked = format!(
        "{:x}\r\n{STREAM_REQUEST}\r\n0\r\n\r\n",
        STREAM_REQUEST.len()
    );
    for (framing, body) in [
        (
            format!("Content-Length: {}\r\n", STREAM_REQUEST.len()),
            STREAM_REQUEST.to_string(),
        ),
        ("Transfer-Encoding: chunked\r\n".to_string(), chunked),
    ] {
        let mut conn = after_an_unread_body(&srv, &framing, &body).await;
        conn.write_all(b"GET /t/thing HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let res = read_response(&mut conn).await;
        assert!(res.starts_with("HTTP/1.1 200 OK\r\n"), "{res}");
        assert!(res.ends_with("{\"n\":1}"), "{res}");
    }
}

/// A stream requested right behind another request, in the same write (pipelined), waits for
/// that request's answer and is then served here.
#[tokio::test]
async fn a_pipelined_stream_request_is_served_here_after_the_answer_before_it() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let raw = exchange(
        srv.addr,
        format!("GET /t/thing HTTP/1.1\r\nHost: t\r\n\r\n{STREAM_REQUEST}").as_bytes(),
    )
    .await;
    let (first, stream) = raw
        .split_once("{\"n\":1}")
        .expect("the first answer, whole");
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{raw}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{raw}"
    );
    let head = stream
        .split_once("\r\n\r\n")
        .unwrap()
        .0
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{raw}");
    assert!(head.contains("connection: close"), "{raw}");
    assert!(
        stream.contains("id: 3\n") && stream.ends_with("0\r\n\r\n"),
        "{raw}"
    );
}

/// `router` with `GET /t/upgrade`: a route of the app's own (as a WebSocket route would be)
/// that upgrades the connection to an echo protocol.
fn with_echo_upgrade(router: axum::Router) -> axum::Router {
    router.route(
        "/t/upgrade",
        axum::routing::get(|mut req: axum::extract::Request| async move {
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on.await else { return };
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let mut buf = [0u8; 64];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
            axum::response::Response::builder()
                .status(101)
                .header("connection", "upgrade")
                .header("upgrade", "echo")
                .body(axum::body::Body::empty())
                .unwrap()
        }),
    )
}

/// Requests the upgrade on `conn`, expects the `101`, then the echo of what it sends.
async fn upgrades_to_echo(conn: &mut TcpStream) {
    conn.write_all(
        b"GET /t/upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    conn.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut echoed))
        .await
        .expect("the upgraded connection echoes")
        .unwrap();
    assert_eq!(&echoed, b"ping");
}
