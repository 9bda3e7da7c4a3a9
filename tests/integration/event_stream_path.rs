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

/// Everything the server sends until it closes the connection (bounded by `secs`).
async fn read_to_close(conn: &mut TcpStream, secs: u64) -> String {
    let mut all = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(secs), conn.read_to_end(&mut all)).await;
    assert!(read.is_ok(), "the server closed the connection in time");
    String::from_utf8(all).unwrap()
}

#[tokio::test]
async fn a_stream_is_chunked_ended_and_its_connection_closed() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(STREAM_REQUEST.as_bytes()).await.unwrap();
    let raw = read_to_close(&mut conn, 5).await;
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
    assert_eq!(
        events,
        "id: 1\ndata: {\"n\":1}\n\nid: 2\nevent: special\nretry: 2500\ndata: {\"n\":2}\n\nid: 3\ndata: {\"n\":3}\n\n"
    );
}

#[tokio::test]
async fn a_refused_stream_gets_a_complete_response_with_its_length() {
    let (app, ..) = fixtures::app();
    let srv = TestServer::pikku(app).await;
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(b"GET /t/missing/0 HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut conn, 5).await;
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
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(
        format!("{STREAM_REQUEST}GET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let raw = read_to_close(&mut conn, 5).await;
    assert_eq!(raw.matches("HTTP/1.1 200 OK").count(), 2, "{raw}");
    assert!(raw.contains("id: 3\n"), "{raw}");
    // Without `Accept: text/event-stream`, a stream keeps its connection for the next request.
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(
        b"GET /t/events HTTP/1.1\r\nHost: t\r\n\r\nGET /t/thing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let raw = read_to_close(&mut conn, 5).await;
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
    // An HTTP/1.0 client gets a body it can read (hyper's answer, no chunking).
    let mut conn = TcpStream::connect(srv.addr).await.unwrap();
    conn.write_all(b"GET /t/events HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        .await
        .unwrap();
    let raw = read_to_close(&mut conn, 5).await;
    assert!(raw.starts_with("HTTP/1.0 200 OK"), "{raw}");
    assert!(
        !raw.to_ascii_lowercase().contains("transfer-encoding"),
        "{raw}"
    );
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
