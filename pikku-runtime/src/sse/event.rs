//! One event of a stream and its encoding on the wire.
//!
//! Encoding follows the WHATWG `text/event-stream` format: every field is written as
//! `field: value`, data is split into one `data:` line per line of the payload (CR, LF and
//! CRLF all end a line, so no payload can break framing), and an event ends with a blank line.
//! Fields that cannot be split (`id`, `event`) are validated when the [`Event`] is built.
//!
//! ```
//! use pikku::sse::Event;
//! let ev = Event::new(serde_json::json!({"n": 1})).with_id(7).unwrap().with_event("tick").unwrap();
//! assert_eq!(&ev.encode().unwrap()[..], b"id: 7\nevent: tick\ndata: {\"n\":1}\n\n");
//! assert!(Event::new(()).with_event("bad\nname").is_err());
//! ```

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::error::PikkuError;

/// The comment line sent when a stream has been idle for the heartbeat interval.
pub const HEARTBEAT_FRAME: &[u8] = b": ping\n\n";

/// An SSE event carrying typed data plus the optional `id`, `event` and `retry` fields.
///
/// Yield `Event<T>` items from a stream function to set these fields per item; plain `T`
/// items are sent as data-only events.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T> {
    data: T,
    id: Option<String>,
    event: Option<Cow<'static, str>>,
    retry: Option<Duration>,
}

/// Returned when an `id` or `event` value contains CR, LF or NUL, which SSE cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SSE `{field}` field must not contain CR, LF or NUL")]
pub struct InvalidEventField {
    field: &'static str,
}

impl From<InvalidEventField> for PikkuError {
    fn from(e: InvalidEventField) -> Self {
        PikkuError::internal(e)
    }
}

fn check_field(field: &'static str, v: &str) -> Result<(), InvalidEventField> {
    if v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
        Err(InvalidEventField { field })
    } else {
        Ok(())
    }
}

impl<T> Event<T> {
    /// A data-only event.
    pub fn new(data: T) -> Self {
        Self {
            data,
            id: None,
            event: None,
            retry: None,
        }
    }

    /// Sets the `id:` field (the value a reconnecting client sends back as `Last-Event-ID`).
    pub fn with_id(mut self, id: impl fmt::Display) -> Result<Self, InvalidEventField> {
        let id = id.to_string();
        check_field("id", &id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the `event:` field (the event type a browser dispatches on).
    pub fn with_event(
        mut self,
        event: impl Into<Cow<'static, str>>,
    ) -> Result<Self, InvalidEventField> {
        let event = event.into();
        check_field("event", &event)?;
        self.event = Some(event);
        Ok(self)
    }

    /// Sets the `retry:` field: how long a client waits before reconnecting.
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// The data.
    pub fn data(&self) -> &T {
        &self.data
    }
    /// The `id:` field, if set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
    /// The `event:` field, if set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }
}

impl<T> From<T> for Event<T> {
    fn from(data: T) -> Self {
        Event::new(data)
    }
}

impl<T: Serialize> Event<T> {
    /// Encodes the event as it goes on the wire (data as JSON).
    pub fn encode(&self) -> Result<Bytes, PikkuError> {
        encode_with(|buf| {
            write_field(buf, b"id", self.id.as_deref());
            write_field(buf, b"event", self.event.as_deref());
            if let Some(retry) = self.retry {
                let _ = writeln!(buf.writer(), "retry: {}", retry.as_millis());
            }
            write_json_data(buf, &self.data)
        })
    }
}

fn write_field(buf: &mut BytesMut, name: &[u8], value: Option<&str>) {
    if let Some(v) = value {
        buf.put_slice(name);
        buf.put_slice(b": ");
        buf.put_slice(v.as_bytes());
        buf.put_u8(b'\n');
    }
}

/// An event already encoded for the wire, typed by the data it carries.
///
/// The event hub encodes each published event once and hands every subscriber the same
/// bytes as a `Frame<T>`; yielding it sends those bytes as they are (no serialization per
/// subscriber). `T` only documents the data (OpenAPI, clients).
pub struct Frame<T> {
    bytes: Bytes,
    _data: std::marker::PhantomData<fn() -> T>,
}

impl<T> Frame<T> {
    /// Wraps bytes that are one or more complete SSE events.
    pub fn from_encoded(bytes: Bytes) -> Self {
        Self {
            bytes,
            _data: std::marker::PhantomData,
        }
    }
    /// The encoded bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
    /// The encoded bytes, owned.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }
}

impl<T> Clone for Frame<T> {
    fn clone(&self) -> Self {
        Self::from_encoded(self.bytes.clone())
    }
}

impl<T> fmt::Debug for Frame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&self.bytes).finish()
    }
}

/// Encodes an event with an optional `event:` name and a JSON payload that is already
/// serialized (`json` must be one line, as serde_json's compact output is).
pub fn encode_raw(id: Option<&str>, event: Option<&str>, json: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(json.len() + 32);
    write_field(&mut buf, b"id", id);
    write_field(&mut buf, b"event", event);
    write_data_lines(&mut buf, json);
    buf.freeze()
}

/// Encodes a data-only event whose data is `value` as JSON.
pub fn encode_json<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, PikkuError> {
    encode_with(|buf| write_json_data(buf, value))
}

/// Scratch buffers larger than this are not kept for the next event.
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
}

/// Encodes into this thread's scratch buffer, then copies the result into an exactly-sized
/// `Bytes`: one allocation per event. (`BytesMut::with_capacity(..).freeze()` costs two:
/// the buffer, and the shared header `Bytes` adds when length and capacity differ.)
fn encode_with(
    write: impl FnOnce(&mut BytesMut) -> Result<(), PikkuError>,
) -> Result<Bytes, PikkuError> {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let result = write(&mut buf).map(|()| Bytes::copy_from_slice(&buf));
            if buf.capacity() > SCRATCH_KEEP {
                *buf = BytesMut::new();
            }
            result
        }
        // Re-entered (a `Serialize` impl that encodes an event itself): a fresh buffer.
        Err(_) => {
            let mut buf = BytesMut::with_capacity(128);
            write(&mut buf)?;
            Ok(buf.freeze())
        }
    })
}

fn write_json_data<T: Serialize + ?Sized>(buf: &mut BytesMut, value: &T) -> Result<(), PikkuError> {
    let start = buf.len();
    buf.put_slice(b"data: ");
    serde_json::to_writer(buf.writer(), value).map_err(PikkuError::internal)?;
    // Compact serde_json output never holds a raw line break; a custom serializer might.
    if buf[start..].iter().any(|b| matches!(b, b'\r' | b'\n')) {
        let payload = buf.split_off(start + 6);
        buf.truncate(start);
        write_data_lines(buf, &payload);
    } else {
        buf.put_slice(b"\n\n");
    }
    Ok(())
}

/// Writes `payload` as `data:` lines (split on CR, LF and CRLF) and ends the event.
pub fn write_data_lines(buf: &mut BytesMut, payload: &[u8]) {
    let mut rest = payload;
    loop {
        let end = rest.iter().position(|b| matches!(b, b'\r' | b'\n'));
        buf.put_slice(b"data: ");
        match end {
            None => {
                buf.put_slice(rest);
                buf.put_u8(b'\n');
                break;
            }
            Some(i) => {
                buf.put_slice(&rest[..i]);
                buf.put_u8(b'\n');
                let skip = if rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[i + skip..];
            }
        }
    }
    buf.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_lines_split_on_every_line_ending() {
        let mut buf = BytesMut::new();
        write_data_lines(&mut buf, b"a\rb\nc\r\nd\n");
        assert_eq!(&buf[..], b"data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
    }

    #[test]
    fn json_data_is_one_line() {
        let b = encode_json(&serde_json::json!({"s": "x\ny"})).unwrap();
        assert_eq!(&b[..], b"data: {\"s\":\"x\\ny\"}\n\n");
    }

    #[test]
    fn invalid_fields_rejected_when_built() {
        assert!(Event::new(1).with_id("a\rb").is_err());
        assert!(Event::new(1).with_id("a\0b").is_err());
        assert!(Event::new(1).with_event("x\n").is_err());
        assert!(Event::new(1).with_id("ok-1").is_ok());
    }

    #[test]
    fn retry_is_written_in_millis() {
        let b = Event::new(1)
            .with_retry(Duration::from_secs(2))
            .encode()
            .unwrap();
        assert_eq!(&b[..], b"retry: 2000\ndata: 1\n\n");
    }
}
