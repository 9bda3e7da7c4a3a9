//! Property tests (proptest) of the parsers and encoders a request or payload can reach:
//! any payload survives SSE framing through a spec-compliant parser; input decoding and
//! `Last-Event-ID` handling never panic and answer 4xx for anything they cannot use.

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use pikku::input::{InputPlan, RawInput, decode};
use pikku::sse::{Event, encode_raw};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

fn parse_all(wire: Bytes) -> Vec<eventsource_stream::Event> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async move {
        futures_util::stream::iter([Ok::<_, std::convert::Infallible>(wire)])
            .eventsource()
            .map(|e| e.expect("valid SSE"))
            .collect()
            .await
    })
}

/// What a spec parser makes of data lines: CRLF and CR end lines like LF.
fn normalize(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
struct Payload {
    text: String,
    n: i64,
    tags: Vec<String>,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    /// Typed data (any strings, with any control characters) round-trips through the JSON
    /// `data:` line and a spec parser unchanged; ids and event names round-trip too.
    #[test]
    fn typed_events_round_trip(text in any::<String>(), n in any::<i64>(), tags in proptest::collection::vec(any::<String>(), 0..4),
                               id in "[^\r\n\0]{0,40}", name in "[a-zA-Z][a-zA-Z0-9_-]{0,20}") {
        let payload = Payload { text, n, tags };
        let wire = Event::new(&payload).with_id(&id).unwrap().with_event(name.clone()).unwrap().encode().unwrap();
        let events = parse_all(wire);
        prop_assert_eq!(events.len(), 1);
        let got: Payload = serde_json::from_str(&events[0].data).unwrap();
        prop_assert_eq!(got, payload);
        prop_assert_eq!(&events[0].event, &name);
        prop_assert_eq!(&events[0].id, &id);
    }

    /// Raw multi-line data cannot break framing: one event, its lines intact.
    #[test]
    fn raw_data_cannot_break_framing(data in "[^\0]{0,200}") {
        let wire = encode_raw(Some("7"), None, data.as_bytes());
        let events = parse_all(wire);
        prop_assert_eq!(events.len(), 1);
        prop_assert_eq!(&events[0].data, &normalize(&data));
        prop_assert_eq!(&events[0].id, "7");
    }

    /// Ids and event names with line breaks or NUL are refused when the event is built.
    #[test]
    fn breaking_fields_are_refused(prefix in ".{0,10}", bad in "[\r\n\0]", suffix in ".{0,10}") {
        let field = format!("{prefix}{bad}{suffix}");
        prop_assert!(Event::new(1).with_id(&field).is_err());
        prop_assert!(Event::new(1).with_event(field).is_err());
    }

    /// Any query string, path value and body either decodes or is a 400/422 — never a panic.
    #[test]
    fn input_decoding_never_panics(query in ".{0,80}", path in ".{0,20}", body in proptest::collection::vec(any::<u8>(), 0..80)) {
        let plan = InputPlan::of::<Payload>();
        let raw = RawInput { path: vec![("text".into(), path)], query: Some(query), body: Bytes::from(body) };
        if let Err(e) = decode::<Payload>(&plan, &raw, true) {
            prop_assert!(matches!(e.status().as_u16(), 400 | 422), "{e}");
        }
    }

    /// Any JSON body shape against a typed input: decodes or 4xx naming a field.
    #[test]
    fn json_bodies_decode_or_name_the_field(v in any_json()) {
        let plan = InputPlan::of::<Payload>();
        let raw = RawInput { path: vec![], query: None, body: Bytes::from(v.to_string()) };
        match decode::<Payload>(&plan, &raw, true) {
            Ok(_) => {}
            Err(e) => prop_assert!(matches!(e.status().as_u16(), 400 | 422)),
        }
    }

    /// `Last-Event-ID` of any shape is either a usable resume point or absent.
    #[test]
    fn last_event_id_of_any_shape(raw in ".{0,300}") {
        if let Some(id) = pikku::LastEventId::parse(&raw) {
            let max = if id.as_str().starts_with(pikku::context::COMPOSITE_ID_PREFIX) {
                pikku::context::MAX_COMPOSITE_LAST_EVENT_ID_LEN
            } else {
                pikku::context::MAX_LAST_EVENT_ID_LEN
            };
            prop_assert!(id.as_str().len() <= max);
            let _ = id.as_u64();
        }
    }
}

fn any_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,10}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("text".to_string()),
                    Just("n".to_string()),
                    Just("tags".to_string()),
                    ".{0,5}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}
