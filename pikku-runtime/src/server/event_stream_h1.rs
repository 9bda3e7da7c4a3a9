//! HTTP/1.1 event streams served without hyper's per-connection buffers.
//!
//! An idle `EventSource` is what a stream server mostly holds, and for each one hyper keeps
//! an 8 KiB read buffer, an 8 KiB write buffer and its connection state for as long as the
//! stream lasts, though after the response head a stream only ever writes body chunks. So
//! the first request of a connection is read here: when it is an event-stream request
//! (`GET`, HTTP/1.1 or 1.0, `Accept: text/event-stream`, no body, no upgrade) it goes through
//! the router as usual, and the response is written from its body frames straight to the
//! socket with chunked framing (HTTP/1.0: none, the close ends the body) and `connection:
//! close`: the connection ends with the response. A stream's cost is then its task, its body
//! and the socket.
//!
//! Anything else (other requests, HTTP/2 with prior knowledge, a head that does not parse)
//! goes to hyper with the bytes read so far put back in front ([`Rewind`]), so hyper sees
//! the connection exactly as the client sent it. On an HTTP/1.1 connection hyper serves,
//! where each request ends is followed ([`request_end`], [`chunk_size_line`]) and the start of
//! the next one is looked at ([`peek`]) before hyper reads it; an event-stream request there
//! makes the server shut hyper down once the exchange before it is over and answer the
//! request here. So an `EventSource` a browser opens on a keep-alive
//! connection its page's `fetch` used first is served here too.
//!
//! A client going away is seen as the end of its side of the socket (or a failed write),
//! and drops the body, hence the generator, as hyper does.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tower::Service as _;

/// Most bytes of a request head read here: as much as hyper would accept (the server's
/// buffer limit), so what this module refuses hyper refuses too.
pub(super) const HEAD_MAX: usize = super::CONNECTION_BUFFER_MAX;

/// Most header lines of a request read here (hyper's default is 100); a longer head goes
/// to hyper.
const HEADERS_MAX: usize = 64;

/// Bytes a client may send while its event stream runs (it has nothing to send on a
/// `connection: close` exchange) before the connection is closed.
const UNEXPECTED_INPUT_MAX: usize = 64 * 1024;

/// Most bytes of ready body frames written at once: the server's buffer bound, as hyper
/// would queue them.
const WRITE_BATCH_MAX: usize = super::CONNECTION_BUFFER_MAX;

/// Most extra frames in one write (a `writev` takes at most 1,024 slices).
const WRITE_BATCH_FRAMES: usize = 16;

/// What the first bytes of a connection turned out to be.
pub(super) enum FirstRequest {
    /// An event-stream request, to be answered here.
    EventStream(Box<Request<Body>>),
    /// Anything else: hyper's, starting with these bytes.
    Other(Bytes),
    /// The client closed the connection (or it failed) before a request head arrived.
    Closed,
}

/// Reads until it is known whether the connection's first request is an event-stream
/// request. Stops at the first bytes that rule it out, so hyper gets HTTP/2 and other
/// requests as early as it would have.
pub(super) async fn read_first_request<I>(io: &mut I) -> FirstRequest
where
    I: AsyncRead + Unpin,
{
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() == buf.capacity() {
            if buf.len() >= HEAD_MAX {
                return FirstRequest::Other(buf.into());
            }
            buf.reserve(buf.len().min(HEAD_MAX - buf.len()));
        }
        match io.read_buf(&mut buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return FirstRequest::Closed,
            Ok(0) | Err(_) => return FirstRequest::Other(buf.into()),
            Ok(_) => {}
        }
        match peek(&buf) {
            Parsed::Partial => continue,
            Parsed::EventStream(req) => return FirstRequest::EventStream(req),
            Parsed::Other | Parsed::Upgrade => return FirstRequest::Other(buf.into()),
        }
    }
}

/// What the start of a request is: an event-stream request (complete, nothing after it),
/// something else, or not known yet. Only a `GET` is parsed.
pub(super) fn peek(buf: &[u8]) -> Parsed {
    let prefix = buf.len().min(4);
    if buf[..prefix] != b"GET "[..prefix] {
        return Parsed::Other;
    }
    parse(buf)
}

/// Whether `read` starts with a complete HTTP/1.1 request head that is not an upgrade: such a
/// connection is served by hyper's HTTP/1.1 connection, with this module watching for a later
/// event-stream request on it.
pub(super) fn http1_head(read: &[u8]) -> bool {
    let mut lines = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Request::new(&mut lines);
    matches!(head.parse(read), Ok(httparse::Status::Complete(_)))
        && head.version == Some(1)
        && !head
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
}

/// What a request head turned out to be.
pub(super) enum Parsed {
    /// More bytes are needed to tell.
    Partial,
    /// An event-stream request, to be answered here.
    EventStream(Box<Request<Body>>),
    /// A complete `GET` head asking for an upgrade (WebSocket, say): hyper's, with upgrades.
    Upgrade,
    /// Anything else: hyper's.
    Other,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut lines = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Request::new(&mut lines);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if head
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        return Parsed::Upgrade;
    }
    // Bytes after the head would be a pipelined request; hyper serves those.
    if len != buf.len() || head.method != Some("GET") {
        return Parsed::Other;
    }
    let version = match head.version {
        Some(1) => http::Version::HTTP_11,
        // A proxy's default upstream protocol (nginx's `proxy_http_version`), for one.
        Some(0) => http::Version::HTTP_10,
        _ => return Parsed::Other,
    };
    let Some(path) = head.path else {
        return Parsed::Other;
    };
    // Most requests are not streams: tell so before building a header map.
    let accepts_events = head
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("accept") && accepts_event_stream(h.value));
    if !accepts_events {
        return Parsed::Other;
    }
    let mut headers = HeaderMap::with_capacity(head.headers.len());
    for line in head.headers.iter() {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(line.name.as_bytes()),
            HeaderValue::from_bytes(line.value),
        ) else {
            return Parsed::Other;
        };
        headers.append(name, value);
    }
    if !is_event_stream_request(&headers) {
        return Parsed::Other;
    }
    let mut req = Request::new(Body::empty());
    match path.parse() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return Parsed::Other,
    }
    *req.method_mut() = Method::GET;
    *req.version_mut() = version;
    *req.headers_mut() = headers;
    Parsed::EventStream(Box::new(req))
}

/// Where a request that starts a buffer ends, as hyper reads it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum RequestEnd {
    /// The head is not complete yet.
    Partial,
    /// The head is `head` bytes long and a `content-length` body of `body` bytes follows
    /// (0 without one): the next request starts right after.
    Known { head: usize, body: u64 },
    /// The head is `head` bytes long and a chunked body follows (`transfer-encoding:
    /// chunked`): the next request starts after its last chunk and trailers.
    Chunked { head: usize },
    /// Not followed here: an upgrade, `CONNECT`, another transfer coding, or a head that
    /// does not parse the way it must for hyper to serve it.
    Unknown,
}

/// Where the request at the start of `buf` ends: so the bytes that start the next one are
/// known even when nobody reads this one's body (hyper then drains it).
pub(super) fn request_end(buf: &[u8]) -> RequestEnd {
    let mut lines = [httparse::EMPTY_HEADER; HEADERS_MAX];
    let mut head = httparse::Request::new(&mut lines);
    let len = match head.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return RequestEnd::Partial,
        Err(_) => return RequestEnd::Unknown,
    };
    if head.method == Some("CONNECT") {
        return RequestEnd::Unknown;
    }
    let mut body = None;
    let mut chunked = false;
    for line in head.headers.iter() {
        let name = line.name;
        if name.eq_ignore_ascii_case("upgrade") {
            return RequestEnd::Unknown;
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            // One `chunked` line only: a list, or a second line, is hyper's to judge.
            if chunked || !line.value.eq_ignore_ascii_case(b"chunked") {
                return RequestEnd::Unknown;
            }
            chunked = true;
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            // Only plain digits, all lines the same: anything else hyper refuses (and closes
            // the connection) or reads in a way not followed here.
            let Some(n) = digits(line.value) else {
                return RequestEnd::Unknown;
            };
            if body.is_some_and(|b| b != n) {
                return RequestEnd::Unknown;
            }
            body = Some(n);
        }
    }
    match (chunked, body) {
        (false, body) => RequestEnd::Known {
            head: len,
            body: body.unwrap_or(0),
        },
        (true, None) => RequestEnd::Chunked { head: len },
        // Both framings at once: not guessed at here.
        (true, Some(_)) => RequestEnd::Unknown,
    }
}

/// Where one piece of a chunked body ends, read from its start.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ChunkEnd {
    /// More bytes are needed.
    Partial,
    /// A chunk-size line of `line` bytes (its extensions and CRLF included) opening a chunk
    /// of `size` data bytes (then a CRLF); `size` 0 is the last chunk.
    Size { line: usize, size: u64 },
    /// The trailer section after the last chunk, `len` bytes up to its empty line.
    Trailers { len: usize },
    /// Not valid chunked framing (hyper refuses it).
    Invalid,
}

/// Most bytes of a chunk-size line (extensions included) followed here.
const CHUNK_LINE_MAX: usize = 4096;

/// The chunk-size line at the start of `buf`: hex digits, optional whitespace and
/// extensions, CRLF, as hyper's decoder reads it.
pub(super) fn chunk_size_line(buf: &[u8]) -> ChunkEnd {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        if buf.len() >= CHUNK_LINE_MAX || buf.contains(&b'\n') {
            return ChunkEnd::Invalid;
        }
        return ChunkEnd::Partial;
    };
    let line = &buf[..end];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 16 || line.contains(&b'\n') {
        return ChunkEnd::Invalid;
    }
    let rest = &line[digits..];
    let after_ws = rest.iter().skip_while(|b| matches!(b, b' ' | b'\t'));
    if !(rest.is_empty() || after_ws.clone().next().is_none_or(|b| *b == b';')) {
        return ChunkEnd::Invalid;
    }
    let Ok(size) = u64::from_str_radix(&String::from_utf8_lossy(&line[..digits]), 16) else {
        return ChunkEnd::Invalid;
    };
    ChunkEnd::Size {
        line: end + 2,
        size,
    }
}

/// The trailer section at the start of `buf` (after the last chunk's size line): header
/// lines up to an empty line.
pub(super) fn chunk_trailers(buf: &[u8]) -> ChunkEnd {
    if buf.starts_with(b"\r\n") {
        return ChunkEnd::Trailers { len: 2 };
    }
    match buf.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => ChunkEnd::Trailers { len: at + 4 },
        None if buf.len() >= HEAD_MAX => ChunkEnd::Invalid,
        None => ChunkEnd::Partial,
    }
}

/// A decimal number of at most 19 digits (so it fits a `u64`).
fn digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Whether a request has no body (so the bytes after its head start the next request).
pub(super) fn no_body(headers: &HeaderMap) -> bool {
    headers.get(header::TRANSFER_ENCODING).is_none()
        && headers
            .get_all(header::CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes() == b"0")
}

/// Whether an `Accept` value lists `text/event-stream`.
fn accepts_event_stream(value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|v| {
        v.split(',').any(|t| {
            t.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
    })
}

/// `Accept: text/event-stream`, and nothing that makes the exchange more than one response:
/// no body, no upgrade, no `Expect`.
fn is_event_stream_request(headers: &HeaderMap) -> bool {
    let accepts_events = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| accepts_event_stream(v.as_bytes()));
    accepts_events
        && no_body(headers)
        && !headers.contains_key(header::UPGRADE)
        && !headers.contains_key(header::EXPECT)
}

/// Answers `req` on `io` and closes the connection: the router's response head, then its
/// body as chunks (or with a length, when the body is complete; to an HTTP/1.0 client, which
/// has no chunked coding, as it comes, ended by the close) until the body ends or the client
/// goes away.
pub(super) async fn serve<I>(mut io: I, req: Box<Request<Body>>, router: Router, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let mut req = *req;
    let http10 = req.version() == http::Version::HTTP_10;
    req.extensions_mut().insert(ConnectInfo(peer));
    // A Router is always ready: calling it without `poll_ready` is fine.
    let res = match router.clone().call(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    };
    if let Err(e) = write_response(&mut io, res, http10).await {
        tracing::debug!(%peer, error = %e, "event stream ended by the connection");
    }
    let _ = io.shutdown().await;
}

async fn write_response<I>(io: &mut I, res: Response<Body>, http10: bool) -> io::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let (parts, mut body) = res.into_parts();
    let bodiless = parts.status.is_informational()
        || parts.status == StatusCode::NO_CONTENT
        || parts.status == StatusCode::NOT_MODIFIED;
    let length = body.size_hint().exact();
    // HTTP/1.0 has no transfer codings (RFC 9112 §6.1): without a length, the close ends the
    // body, as hyper does.
    let chunked = !bodiless && length.is_none() && !http10;
    let head = encode_head(
        &parts,
        if bodiless { None } else { length },
        chunked,
        http10,
    );
    io.write_all(&head).await?;
    io.flush().await?;
    drop(head);
    if bodiless {
        return Ok(());
    }
    let mut unexpected = 0;
    loop {
        let next = std::future::poll_fn(|cx| {
            if let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(cx) {
                return Poll::Ready(Ok(frame));
            }
            poll_client_gone(Pin::new(&mut *io), cx, &mut unexpected).map(Err)
        })
        .await;
        match next {
            Ok(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                // Frames the body has ready now leave in the same write, as hyper queues
                // them: a fast producer pays one syscall per `WRITE_BATCH_MAX`, not per frame.
                let mut batch = Batch::new(data);
                let mut ended = None;
                while batch.len < WRITE_BATCH_MAX && batch.more.len() < WRITE_BATCH_FRAMES {
                    let ready = std::future::poll_fn(|cx| {
                        Poll::Ready(match Pin::new(&mut body).poll_frame(cx) {
                            Poll::Ready(frame) => Some(frame),
                            Poll::Pending => None,
                        })
                    })
                    .await;
                    match ready {
                        Some(Some(Ok(frame))) => {
                            if let Ok(data) = frame.into_data() {
                                batch.push(data);
                            }
                        }
                        Some(None) => {
                            ended = Some(Ok(()));
                            break;
                        }
                        Some(Some(Err(e))) => {
                            ended = Some(Err(e));
                            break;
                        }
                        None => break,
                    }
                }
                write_batch(io, batch, chunked).await?;
                match ended {
                    None => io.flush().await?,
                    Some(Ok(())) => {
                        if chunked {
                            io.write_all(b"0\r\n\r\n").await?;
                        }
                        return io.flush().await;
                    }
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            }
            Ok(None) => {
                if chunked {
                    io.write_all(b"0\r\n\r\n").await?;
                }
                return io.flush().await;
            }
            // A failed body cannot be finished correctly: closing without the last chunk
            // tells the client the response is incomplete, as hyper does.
            Ok(Some(Err(e))) => return Err(io::Error::other(e)),
            Err(gone) => return Err(gone),
        }
    }
}

/// Ready with the reason once the client's side of the connection has ended. Bytes the
/// client sends meanwhile are discarded, up to [`UNEXPECTED_INPUT_MAX`].
fn poll_client_gone<I>(
    mut io: Pin<&mut I>,
    cx: &mut Context<'_>,
    seen: &mut usize,
) -> Poll<io::Error>
where
    I: AsyncRead,
{
    let mut scratch = [0u8; 256];
    loop {
        let mut buf = ReadBuf::new(&mut scratch);
        match io.as_mut().poll_read(cx, &mut buf) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(e),
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                return Poll::Ready(io::ErrorKind::UnexpectedEof.into());
            }
            Poll::Ready(Ok(())) => {
                *seen += buf.filled().len();
                if *seen > UNEXPECTED_INPUT_MAX {
                    return Poll::Ready(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "client kept sending during an event stream",
                    ));
                }
            }
        }
    }
}

fn encode_head(
    parts: &http::response::Parts,
    length: Option<u64>,
    chunked: bool,
    http10: bool,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256);
    // An HTTP/1.0 client is answered in its own version, as hyper does.
    head.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Unknown")
            .as_bytes(),
    );
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // Framing is this module's to say.
        if matches!(
            *name,
            header::CONNECTION | header::TRANSFER_ENCODING | header::CONTENT_LENGTH
        ) {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if !parts.headers.contains_key(header::DATE) {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    } else if let Some(n) = length {
        head.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}

/// Body frames that leave in one chunk.
struct Batch {
    first: Bytes,
    /// Allocated only when a second frame was ready at once.
    more: Vec<Bytes>,
    len: usize,
}

impl Batch {
    fn new(first: Bytes) -> Self {
        Self {
            len: first.len(),
            first,
            more: Vec::new(),
        }
    }

    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.len += data.len();
            self.more.push(data);
        }
    }
}

/// Writes `batch` as one chunk (size line, the frames, CRLF), or its frames alone when the
/// body is not chunked, with one `writev` where the transport allows, without copying the
/// frames.
async fn write_batch<I>(io: &mut I, batch: Batch, chunked: bool) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    if batch.len == 0 {
        return Ok(());
    }
    if !chunked {
        if batch.more.is_empty() {
            return io.write_all(&batch.first).await;
        }
        let mut parts = Vec::with_capacity(batch.more.len() + 1);
        parts.push(IoSlice::new(&batch.first));
        parts.extend(batch.more.iter().map(|b| IoSlice::new(b)));
        return write_all_vectored(io, &mut parts).await;
    }
    let mut size = [0u8; 18];
    let size_len = {
        use std::io::Write as _;
        let mut cursor = io::Cursor::new(&mut size[..]);
        write!(cursor, "{:x}\r\n", batch.len)?;
        cursor.position() as usize
    };
    if batch.more.is_empty() {
        let mut parts = [
            IoSlice::new(&size[..size_len]),
            IoSlice::new(&batch.first),
            IoSlice::new(b"\r\n"),
        ];
        return write_all_vectored(io, &mut parts).await;
    }
    let mut parts = Vec::with_capacity(batch.more.len() + 3);
    parts.push(IoSlice::new(&size[..size_len]));
    parts.push(IoSlice::new(&batch.first));
    parts.extend(batch.more.iter().map(|b| IoSlice::new(b)));
    parts.push(IoSlice::new(b"\r\n"));
    write_all_vectored(io, &mut parts).await
}

async fn write_all_vectored<I>(io: &mut I, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    while !bufs.is_empty() {
        let n = io.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// An IO that yields `prefix` before reading from `inner`: gives hyper the bytes already
/// read while deciding who serves the connection.
pub(super) struct Rewind<I> {
    prefix: Bytes,
    inner: I,
}

impl<I> Rewind<I> {
    pub(super) fn new(prefix: Bytes, inner: I) -> Self {
        Self { prefix, inner }
    }

    /// The bytes not read yet, and the connection.
    pub(super) fn into_parts(self) -> (Bytes, I) {
        (self.prefix, self.inner)
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Rewind<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let head = self.prefix.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Rewind<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(head: &str) -> &'static str {
        match parse(head.as_bytes()) {
            Parsed::Partial => "partial",
            Parsed::EventStream(_) => "event stream",
            Parsed::Other | Parsed::Upgrade => "other",
        }
    }

    #[test]
    fn where_a_request_ends_is_found_from_its_head_as_hyper_reads_it() {
        let end = |head: &str| request_end(head.as_bytes());
        let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            end(get),
            RequestEnd::Known {
                head: get.len(),
                body: 0
            }
        );
        // What follows the head is not looked at.
        assert_eq!(
            end(&format!("{get}GET /next")),
            RequestEnd::Known {
                head: get.len(),
                body: 0
            }
        );
        assert_eq!(end("GET / HTTP/1.1\r\nHost: a\r\n"), RequestEnd::Partial);
        let post = "POST / HTTP/1.1\r\nContent-Length: 12\r\ncontent-length: 12\r\n\r\n";
        assert_eq!(
            end(post),
            RequestEnd::Known {
                head: post.len(),
                body: 12
            }
        );
        let chunked = "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n";
        assert_eq!(
            end(chunked),
            RequestEnd::Chunked {
                head: chunked.len()
            }
        );
        // Anything hyper reads otherwise (or refuses) is not followed.
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            "POST / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        ] {
            assert_eq!(end(head), RequestEnd::Unknown, "{head:?}");
        }
    }

    #[test]
    fn chunk_size_lines_and_trailers_are_read_as_hyper_reads_them() {
        let line = |s: &str| chunk_size_line(s.as_bytes());
        assert_eq!(line("5\r\nhello"), ChunkEnd::Size { line: 3, size: 5 });
        assert_eq!(line("1F\r\n"), ChunkEnd::Size { line: 4, size: 31 });
        assert_eq!(
            line("a ; name=\"v\"\r\n"),
            ChunkEnd::Size { line: 14, size: 10 }
        );
        assert_eq!(line("a\t\r\n"), ChunkEnd::Size { line: 4, size: 10 });
        assert_eq!(line("0\r\n"), ChunkEnd::Size { line: 3, size: 0 });
        assert_eq!(line("5"), ChunkEnd::Partial);
        assert_eq!(line("5;ext\r"), ChunkEnd::Partial);
        for bad in [
            "\r\n",
            "x\r\n",
            "5 5\r\n",
            "5\n",
            "5;a\nb\r\n",
            "11112222333344445\r\n",
        ] {
            assert_eq!(line(bad), ChunkEnd::Invalid, "{bad:?}");
        }
        assert_eq!(line(&"5;".repeat(3000)), ChunkEnd::Invalid);
        let trailers = |s: &str| chunk_trailers(s.as_bytes());
        assert_eq!(trailers("\r\nGET /"), ChunkEnd::Trailers { len: 2 });
        assert_eq!(
            trailers("A: 1\r\nB: 2\r\n\r\nGET /"),
            ChunkEnd::Trailers { len: 14 }
        );
        assert_eq!(trailers("A: 1\r\n"), ChunkEnd::Partial);
        assert_eq!(trailers(""), ChunkEnd::Partial);
    }

    #[test]
    fn only_bodiless_gets_that_accept_event_streams_are_taken() {
        let get =
            |headers: &str| decide(&format!("GET /s?x=1 HTTP/1.1\r\nHost: a\r\n{headers}\r\n"));
        assert_eq!(get("Accept: text/event-stream\r\n"), "event stream");
        assert_eq!(
            get("accept: application/json, Text/Event-Stream;q=0.9\r\n"),
            "event stream"
        );
        assert_eq!(
            get("Accept: text/event-stream\r\nContent-Length: 0\r\n"),
            "event stream"
        );
        assert_eq!(get(""), "other");
        assert_eq!(get("Accept: */*\r\n"), "other");
        assert_eq!(get("Accept: text/event-streams\r\n"), "other");
        assert_eq!(
            get("Accept: text/event-stream\r\nContent-Length: 3\r\n"),
            "other"
        );
        assert_eq!(
            get("Accept: text/event-stream\r\nTransfer-Encoding: chunked\r\n"),
            "other"
        );
        assert_eq!(
            get("Accept: text/event-stream\r\nUpgrade: websocket\r\n"),
            "other"
        );
        assert_eq!(
            get("Accept: text/event-stream\r\nExpect: 100-continue\r\n"),
            "other"
        );
        assert_eq!(
            decide("GET /s HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n"),
            "event stream"
        );
        assert_eq!(
            decide("GET /s HTTP/2.0\r\nAccept: text/event-stream\r\n\r\n"),
            "other"
        );
        assert_eq!(
            decide("POST /s HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n"),
            "other"
        );
        assert_eq!(decide("GET /s HTTP/1.1\r\nAccept: text/ev"), "partial");
        assert_eq!(decide("GET /s HTTP/1.1\r\nBad Header\r\n\r\n"), "other");
    }

    /// What `write_response` sends for a body of two frames of unknown length.
    async fn written(http10: bool) -> String {
        let frames = futures_util::stream::iter([
            Ok::<_, std::convert::Infallible>(Bytes::from_static(b"data: 1\n\n")),
            Ok(Bytes::from_static(b"data: 2\n\n")),
        ]);
        let res = Response::new(Body::from_stream(frames));
        let (mut server, mut client) = tokio::io::duplex(4096);
        write_response(&mut server, res, http10).await.unwrap();
        drop(server);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn an_http10_client_gets_the_frames_unchunked_in_its_version() {
        let out = written(true).await;
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert_eq!(body, "data: 1\n\ndata: 2\n\n");
        let out = written(false).await;
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(body.ends_with("0\r\n\r\n"), "{body}");
        assert!(body.contains("data: 2\n\n"), "{body}");
    }

    #[test]
    fn a_request_that_takes_the_path_keeps_its_target_and_headers() {
        let Parsed::EventStream(req) =
            parse(b"GET /s HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n")
        else {
            panic!("not taken");
        };
        assert_eq!(req.version(), http::Version::HTTP_10);
        let Parsed::EventStream(req) =
            parse(b"GET /users/7/events?lastEventId=4 HTTP/1.1\r\nAccept: text/event-stream\r\nLast-Event-ID: 3\r\n\r\n")
        else {
            panic!("not taken");
        };
        assert_eq!(req.uri(), "/users/7/events?lastEventId=4");
        assert_eq!(req.headers()["last-event-id"], "3");
        assert_eq!(req.version(), http::Version::HTTP_11);
    }

    #[test]
    fn peek_tells_other_methods_at_once_and_http1_head_refuses_upgrades_and_partials() {
        assert!(matches!(peek(b"P"), Parsed::Other));
        assert!(matches!(peek(b"GE"), Parsed::Partial));
        assert!(matches!(
            peek(b"GET /s HTTP/1.1\r\nAccept: application/json\r\n\r\n"),
            Parsed::Other
        ));
        assert!(http1_head(
            b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
        ));
        assert!(!http1_head(b"GET /a HTTP/1.1\r\nHost: a\r\n"));
        assert!(!http1_head(b"GET /a HTTP/1.0\r\n\r\n"));
        assert!(!http1_head(
            b"GET /ws HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
        ));
        assert!(!http1_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
    }

    #[tokio::test]
    async fn rewind_yields_what_was_read_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b" world").await.unwrap();
        drop(client);
        let mut io = Rewind::new(Bytes::from_static(b"hello"), server);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "hello world");
    }
}
