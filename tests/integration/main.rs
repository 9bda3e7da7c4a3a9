//! One integration-test binary: real servers on loopback ports, consumed by a spec-compliant
//! SSE parser (`eventsource-stream`) and raw reads where the wire bytes matter.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/demo.rs"]
mod demo;

mod fixtures;
mod fuzz;
mod support;

mod adapters;
mod clients;
mod demo_app;
mod docs_page;
mod event_stream_path;
mod http2;
mod hub_suite;
mod input;
mod lambda;
mod multi_topic;
mod notifications;
mod openapi;
mod pg_hub;
mod proxy;
mod readme;
// Kept as the README shows them (the README's own line breaks), so not reformatted.
#[rustfmt::skip]
mod readme_blocks;
mod registration;
mod reliability;
mod resume_metrics;
mod rooms;
mod scale_out;
mod security;
mod sse;
mod ui;
