//! The reserved events of a stream: their names and the types of their data, defined once.
//!
//! The encoder, the event hub, the OpenAPI document, the Rust client and the generated
//! TypeScript client all take the names and payloads from here, so they cannot drift apart.
//!
//! ```
//! use pikku::sse::ReservedEvent;
//! assert_eq!(ReservedEvent::from_name("gap"), Some(ReservedEvent::Gap));
//! assert!(ReservedEvent::from_name("tick").is_none());
//! ```

use bytes::Bytes;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::event::encode_raw;
use crate::error::PikkuError;

/// An `event:` name the runtime sends itself; items of a stream never use these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReservedEvent {
    /// A failed item (the stream goes on), or the generator panicked (the stream ends).
    /// Data: [`StreamError`].
    Error,
    /// The server is shutting down; the stream ends (with `retry: 1000`).
    /// Data: [`StreamShutdown`].
    Shutdown,
    /// The stream reached its maximum lifetime and ends (with `retry: 0`): reconnect now.
    /// Data: [`StreamShutdown`].
    Close,
    /// Events were missed (resume point expired or unknown, or the subscriber lagged); the
    /// stream goes on. Data: [`StreamGap`].
    Gap,
    /// The stream's session expired (`session_expired`) or was revoked (`session_revoked`);
    /// the stream ends: log in again before reconnecting. Data: [`StreamError`].
    SessionEnd,
}

impl ReservedEvent {
    /// Every reserved event, in the order documents list them.
    pub const ALL: [ReservedEvent; 5] = [
        ReservedEvent::Error,
        ReservedEvent::Shutdown,
        ReservedEvent::Close,
        ReservedEvent::Gap,
        ReservedEvent::SessionEnd,
    ];

    /// The `event:` field's value.
    pub const fn name(self) -> &'static str {
        match self {
            ReservedEvent::Error => "error",
            ReservedEvent::Shutdown => "shutdown",
            ReservedEvent::Close => "close",
            ReservedEvent::Gap => "gap",
            ReservedEvent::SessionEnd => "session_end",
        }
    }

    /// The reserved event of an `event:` value, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    /// What the event means to a client (for documents and generated clients).
    pub const fn description(self) -> &'static str {
        match self {
            ReservedEvent::Error => {
                "A failed item (the stream goes on), or the function panicked (the stream ends)."
            }
            ReservedEvent::Shutdown => {
                "The server is shutting down; the stream ends (with `retry: 1000`)."
            }
            ReservedEvent::Close => {
                "The stream reached its maximum lifetime and ends (with `retry: 0`): reconnect now."
            }
            ReservedEvent::Gap => {
                "Events were missed (resume point expired or unknown, or the subscriber lagged); the stream goes on."
            }
            ReservedEvent::SessionEnd => {
                "The stream's session expired (`session_expired`) or was revoked (`session_revoked`); the stream ends: log in again before reconnecting."
            }
        }
    }

    /// Whether the stream ends after this event.
    pub const fn ends_stream(self) -> bool {
        !matches!(self, ReservedEvent::Error | ReservedEvent::Gap)
    }

    /// The payload type's name (its OpenAPI component).
    pub const fn payload(self) -> ReservedPayload {
        match self {
            ReservedEvent::Error | ReservedEvent::SessionEnd => ReservedPayload::StreamError,
            ReservedEvent::Shutdown | ReservedEvent::Close => ReservedPayload::StreamShutdown,
            ReservedEvent::Gap => ReservedPayload::StreamGap,
        }
    }
}

/// Which payload type a [`ReservedEvent`] carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservedPayload {
    /// [`StreamError`].
    StreamError,
    /// [`StreamShutdown`].
    StreamShutdown,
    /// [`StreamGap`].
    StreamGap,
}

/// The data of an `event: error` in a stream (unlike an HTTP error body, without `status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamError {
    /// Machine-readable code, e.g. `internal` or `conflict`.
    pub error: String,
    /// Human-readable message.
    pub message: String,
}

/// The data of the final `event: shutdown` of a stream (with `retry: 1000`): the server is
/// going away; reconnect, elsewhere if need be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamShutdown {
    /// Why the stream ended.
    pub reason: String,
}

/// The data of an `event: gap` of a hub-fed stream: events were missed (the resume point left
/// the replay window or is unknown, or the subscriber lagged); delivery goes on after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamGap {
    /// `expired`, `unknown_id`, `lagged` or `reset`.
    pub reason: String,
    /// How many events were missed, when known.
    pub missed: Option<u64>,
}

/// Why a stream missed events (the `reason` of a [`StreamGap`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    /// The events after the resume point left the replay window (trimmed by count, age or
    /// the byte budget) before they could be delivered.
    Expired,
    /// The resume point is not a position of this topic (garbage, or ahead of the topic).
    UnknownId,
    /// The subscriber fell behind and events were skipped (skip policy).
    Lagged,
    /// The topic's history was lost since the resume point (it expired entirely, the backend
    /// restarted without persistence or its data was deleted): a new epoch began.
    Reset,
}

impl GapReason {
    /// The reason as it appears in an `event: gap`'s data.
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::Expired => "expired",
            GapReason::UnknownId => "unknown_id",
            GapReason::Lagged => "lagged",
            GapReason::Reset => "reset",
        }
    }
}

/// Encodes a reserved event: `event: <name>`, an optional `retry:`, and `data` as JSON.
pub fn encode_reserved<T: Serialize>(
    event: ReservedEvent,
    retry_ms: Option<u64>,
    data: &T,
) -> Bytes {
    // The payload types are plain structs of strings and numbers: they always serialize.
    let json = serde_json::to_vec(data).unwrap_or_default();
    match retry_ms {
        None => encode_raw(None, Some(event.name()), &json),
        Some(ms) => {
            let head = encode_raw(None, Some(event.name()), &json);
            // `retry:` goes between the event name and the data, as a browser reads it anywhere.
            let split = head
                .iter()
                .position(|&b| b == b'\n')
                .map_or(head.len(), |i| i + 1);
            let mut out = Vec::with_capacity(head.len() + 16);
            out.extend_from_slice(&head[..split]);
            out.extend_from_slice(format!("retry: {ms}\n").as_bytes());
            out.extend_from_slice(&head[split..]);
            Bytes::from(out)
        }
    }
}

/// An `event: error` whose data is the error's code and message. Sent for `Err` items.
pub fn encode_error(err: &PikkuError) -> Bytes {
    encode_reserved(
        ReservedEvent::Error,
        None,
        &StreamError {
            error: err.code().to_owned(),
            message: err.message().to_owned(),
        },
    )
}

/// An `event: gap`.
pub fn encode_gap(reason: GapReason, missed: Option<u64>) -> Bytes {
    encode_reserved(
        ReservedEvent::Gap,
        None,
        &StreamGap {
            reason: reason.as_str().to_owned(),
            missed,
        },
    )
}

/// The frame sent to every open stream when the server shuts down: tells the client to
/// reconnect (to another instance) after a short pause.
pub fn shutdown_frame() -> Bytes {
    encode_reserved(
        ReservedEvent::Shutdown,
        Some(1000),
        &StreamShutdown {
            reason: "server shutting down".into(),
        },
    )
}

/// The frame that ends a stream at its maximum lifetime: the client reconnects at once.
pub fn lifetime_frame() -> Bytes {
    encode_reserved(
        ReservedEvent::Close,
        Some(0),
        &StreamShutdown {
            reason: "maximum stream lifetime reached".into(),
        },
    )
}

/// The last event of a stream whose session ended: `code` is `session_expired` or
/// `session_revoked`.
pub fn session_end_frame(code: &str, message: &str) -> Bytes {
    encode_reserved(
        ReservedEvent::SessionEnd,
        None,
        &StreamError {
            error: code.to_owned(),
            message: message.to_owned(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_keep_their_wire_form() {
        assert_eq!(
            &shutdown_frame()[..],
            b"event: shutdown\nretry: 1000\ndata: {\"reason\":\"server shutting down\"}\n\n"
        );
        assert_eq!(
            &lifetime_frame()[..],
            b"event: close\nretry: 0\ndata: {\"reason\":\"maximum stream lifetime reached\"}\n\n"
        );
        assert_eq!(
            &encode_gap(GapReason::Expired, Some(2))[..],
            b"event: gap\ndata: {\"reason\":\"expired\",\"missed\":2}\n\n"
        );
        assert_eq!(
            &session_end_frame("session_expired", "the session expired; log in again")[..],
            b"event: session_end\ndata: {\"error\":\"session_expired\",\"message\":\"the session expired; log in again\"}\n\n"
        );
    }

    #[test]
    fn error_event_has_json_body() {
        let b = encode_error(&PikkuError::bad_request("nope"));
        assert_eq!(
            &b[..],
            b"event: error\ndata: {\"error\":\"bad_request\",\"message\":\"nope\"}\n\n"
        );
    }

    #[test]
    fn names_round_trip() {
        for e in ReservedEvent::ALL {
            assert_eq!(ReservedEvent::from_name(e.name()), Some(e));
        }
    }
}
