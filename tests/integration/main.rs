//! One integration-test binary: real servers on loopback ports, consumed by a spec-compliant
//! SSE parser (`eventsource-stream`) and raw reads where the wire bytes matter.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/demo.rs"]
mod demo;

mod fixtures;
mod support;

mod demo_app;
mod input;
mod openapi;
mod registration;
mod sse;
mod ui;
