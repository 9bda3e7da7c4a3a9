//! One integration-test binary: real servers on loopback ports, consumed by a spec-compliant
//! SSE parser (`eventsource-stream`) and raw reads where the wire bytes matter.

#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/demo.rs"]
mod demo;

mod fixtures;
mod fuzz;
mod support;

mod clients;
mod demo_app;
mod hub_suite;
mod input;
mod notifications;
mod openapi;
mod pg_hub;
mod registration;
mod reliability;
mod scale_out;
mod sse;
mod ui;
