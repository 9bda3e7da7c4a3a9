//! The Server-Sent Events wire format: one event and its encoding, and the reserved events the
//! runtime sends itself (`error`, `shutdown`, `close`, `gap`, `session_end`) with their data
//! types.
//!
//! Everything that writes or reads a stream (the response body, the event hub, the OpenAPI
//! document, the Rust and TypeScript clients) takes the format from here.

mod event;
mod reserved;

pub use event::{
    Event, Frame, HEARTBEAT_FRAME, InvalidEventField, encode_json, encode_raw, write_data_lines,
};
pub use reserved::{
    GapReason, ReservedEvent, ReservedPayload, StreamError, StreamGap, StreamShutdown,
    encode_error, encode_gap, encode_reserved, lifetime_frame, session_end_frame, shutdown_frame,
};
