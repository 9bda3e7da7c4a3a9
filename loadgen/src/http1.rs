//! A minimal HTTP/1.1 client for the load generator: one request per connection, the
//! response head parsed with `httparse`, and the body decoded incrementally (chunked,
//! `Content-Length`, or until close). Hand-written so the generator stays cheap per byte and
//! can pick its source address (spreading connections over 127.0.0.x to pass the 64k
//! ports of one source address).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Opens a TCP connection to `dst`, from `src` (port chosen at connect time) when given.
pub async fn connect(dst: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    let sock = match dst {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = src {
        // Let connect() pick the port by the full 4-tuple, so a source address is not
        // limited to one connection per ephemeral port across all destinations.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = sock.connect(dst).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A response head and the body bytes that arrived with it.
#[derive(Debug)]
pub struct Head {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// How the body is framed.
    pub body: BodyDecoder,
    /// Body bytes read together with the head.
    pub leftover: Vec<u8>,
}

/// Sends one request and reads the response head.
pub async fn request(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    accept_sse: bool,
) -> io::Result<Head> {
    let opts = RequestOptions {
        accept_sse,
        ..RequestOptions::default()
    };
    request_with(stream, method, path, host, opts).await
}

/// What a request sends beyond its method, target and host.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOptions {
    /// `Accept: text/event-stream` (and `Cache-Control: no-cache`), as `EventSource` sends.
    pub accept_sse: bool,
    /// A `GET` carrying a body of this many bytes (`x`s, with their length) when not 0: a body
    /// the server's `GET` route does not read.
    pub get_body: usize,
    /// HTTP/1.0 instead of HTTP/1.1.
    pub http10: bool,
}

/// [`request`] with all of [`RequestOptions`].
pub async fn request_with(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    opts: RequestOptions,
) -> io::Result<Head> {
    let RequestOptions {
        accept_sse,
        get_body,
        http10,
    } = opts;
    let version = if http10 { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut req = format!("{method} {path} {version}\r\nHost: {host}\r\n");
    if accept_sse {
        req.push_str("Accept: text/event-stream\r\nCache-Control: no-cache\r\n");
    }
    // An empty JSON object rather than no body: @pikku/core (the Node column) answers 422 to
    // a POST without a content type.
    let body = if method != "GET" {
        req.push_str("Content-Type: application/json\r\nContent-Length: 2\r\n");
        "{}".to_string()
    } else if get_body > 0 {
        req.push_str(&format!("Content-Length: {get_body}\r\n"));
        "x".repeat(get_body)
    } else {
        String::new()
    };
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.len() > 64 * 1024 {
            return Err(io::Error::other("response head over 64 KiB"));
        }
        let n = stream.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the response head",
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut res = httparse::Response::new(&mut headers);
        match res.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = res.code.unwrap_or(0);
                let mut content_type = None;
                let mut chunked = false;
                let mut length = None;
                for h in res.headers.iter() {
                    let v = String::from_utf8_lossy(h.value);
                    if h.name.eq_ignore_ascii_case("content-type") {
                        content_type = Some(v.into_owned());
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                        chunked = v.to_ascii_lowercase().contains("chunked");
                    } else if h.name.eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse::<u64>().ok();
                    }
                }
                let body = if chunked {
                    BodyDecoder::Chunked(Chunked::Size {
                        value: 0,
                        in_ext: false,
                    })
                } else if let Some(n) = length {
                    BodyDecoder::Length(n)
                } else {
                    BodyDecoder::Close
                };
                let leftover = buf.split_off(len);
                return Ok(Head {
                    status,
                    content_type,
                    body,
                    leftover,
                });
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(io::Error::other(format!("bad response head: {e}"))),
        }
    }
}

/// Chunked transfer-coding decoder states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line (hex digits, then optional extensions).
    Size {
        /// The size read so far.
        value: u64,
        /// Inside `;extensions`.
        in_ext: bool,
    },
    /// Inside chunk data.
    Data(u64),
    /// After chunk data, before its CRLF.
    DataEnd,
    /// Trailer lines after the last chunk; `blank` while the current line is empty.
    Trailer {
        /// The current trailer line has no content yet.
        blank: bool,
    },
    /// The body is complete.
    Done,
}

/// Reads the rest of a response's body (which must have a length or be chunked), so the
/// connection can carry the next request.
pub async fn read_body(stream: &mut TcpStream, head: Head) -> io::Result<()> {
    let mut body = head.body;
    if body == BodyDecoder::Close {
        return Err(io::Error::other(
            "a body delimited by close ends its connection",
        ));
    }
    body.feed(&head.leftover, &mut |_| {})?;
    let mut buf = [0u8; 4096];
    while !body.is_done() {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.feed(&buf[..n], &mut |_| {})?;
    }
    Ok(())
}

/// Decodes a response body incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDecoder {
    /// `Transfer-Encoding: chunked`.
    Chunked(Chunked),
    /// `Content-Length` bytes remaining.
    Length(u64),
    /// Until the connection closes.
    Close,
}

impl BodyDecoder {
    /// Whether the body is complete (a close-delimited body never is, until EOF).
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            BodyDecoder::Chunked(Chunked::Done) | BodyDecoder::Length(0)
        )
    }

    /// Decodes `input`, passing body bytes to `out`. Errors on malformed chunking.
    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) -> io::Result<()> {
        match self {
            BodyDecoder::Close => {
                out(input);
                Ok(())
            }
            BodyDecoder::Length(rem) => {
                let n = (*rem).min(input.len() as u64) as usize;
                out(&input[..n]);
                *rem -= n as u64;
                Ok(())
            }
            BodyDecoder::Chunked(state) => {
                while !input.is_empty() {
                    match state {
                        Chunked::Size { value, in_ext } => {
                            let b = input[0];
                            input = &input[1..];
                            match b {
                                b'\n' => {
                                    *state = if *value == 0 {
                                        Chunked::Trailer { blank: true }
                                    } else {
                                        Chunked::Data(*value)
                                    };
                                }
                                b'\r' => {}
                                _ if *in_ext => {}
                                b';' | b' ' | b'\t' => *in_ext = true,
                                _ => {
                                    let d = (b as char).to_digit(16).ok_or_else(|| {
                                        io::Error::other("bad chunk size in response body")
                                    })?;
                                    *value = value
                                        .checked_mul(16)
                                        .and_then(|v| v.checked_add(u64::from(d)))
                                        .ok_or_else(|| io::Error::other("chunk size overflow"))?;
                                }
                            }
                        }
                        Chunked::Data(rem) => {
                            let n = (*rem).min(input.len() as u64) as usize;
                            out(&input[..n]);
                            input = &input[n..];
                            *rem -= n as u64;
                            if *rem == 0 {
                                *state = Chunked::DataEnd;
                            }
                        }
                        Chunked::DataEnd => {
                            let b = input[0];
                            input = &input[1..];
                            match b {
                                b'\r' => {}
                                b'\n' => {
                                    *state = Chunked::Size {
                                        value: 0,
                                        in_ext: false,
                                    }
                                }
                                _ => return Err(io::Error::other("missing CRLF after chunk")),
                            }
                        }
                        Chunked::Trailer { blank } => {
                            let b = input[0];
                            input = &input[1..];
                            match b {
                                b'\r' => {}
                                b'\n' if *blank => *state = Chunked::Done,
                                b'\n' => *blank = true,
                                _ => *blank = false,
                            }
                        }
                        Chunked::Done => return Ok(()),
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_at_every_split() {
        let wire: &[u8] = b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-t: 1\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = BodyDecoder::Chunked(Chunked::Size {
                value: 0,
                in_ext: false,
            });
            let mut body = Vec::new();
            let (a, b) = wire.split_at(split);
            d.feed(a, &mut |x| body.extend_from_slice(x)).unwrap();
            d.feed(b, &mut |x| body.extend_from_slice(x)).unwrap();
            assert_eq!(body, b"hello world", "split {split}");
            assert!(d.is_done());
        }
    }
}
