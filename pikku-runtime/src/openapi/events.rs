//! The schema of one event of a stream: an item, or one of the reserved events.

use serde_json::{Value, json};

use crate::sse::{ReservedEvent, ReservedPayload};

use super::JSON;

/// The schemas of the reserved events' payloads, as the document's generator placed them.
pub(super) struct PayloadSchemas<'a> {
    pub error: &'a Value,
    pub shutdown: &'a Value,
    pub gap: &'a Value,
}

impl PayloadSchemas<'_> {
    fn of(&self, payload: ReservedPayload) -> &Value {
        match payload {
            ReservedPayload::StreamError => self.error,
            ReservedPayload::StreamShutdown => self.shutdown,
            ReservedPayload::StreamGap => self.gap,
        }
    }
}

/// The schema of one event of a stream whose items have schema `item`.
pub(super) fn event_schema(item: &Value, payloads: &PayloadSchemas<'_>) -> Value {
    let data = |schema: &Value| {
        json!({
            "type": "string",
            "contentMediaType": JSON,
            "contentSchema": schema,
        })
    };
    let reserved_names: Vec<&str> = ReservedEvent::ALL.iter().map(|e| e.name()).collect();
    let mut variants = vec![json!({
        "title": "item",
        "description": "An item of the stream.",
        "properties": {
            "event": { "not": { "enum": reserved_names } },
            "data": data(item),
        },
    })];
    variants.extend(ReservedEvent::ALL.iter().map(|e| {
        json!({
            "title": e.name(),
            "description": e.description(),
            "properties": {
                "event": { "const": e.name() },
                "data": data(payloads.of(e.payload())),
            },
            "required": ["event"],
        })
    }));
    json!({
        "type": "object",
        "description": "One Server-Sent Event of a stream, with the fields of the SSE wire format.",
        "properties": {
            "id": { "type": "string", "description": "The event id, if the item set one." },
            "event": { "type": "string", "description": "The event name; absent for plain items." },
            "retry": { "type": "integer", "minimum": 0, "description": "Reconnection delay hint in milliseconds." },
            "data": { "type": "string", "description": "The payload, as JSON text." },
        },
        "required": ["data"],
        "oneOf": variants,
    })
}
