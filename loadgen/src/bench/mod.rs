//! `bench-all` as a library: the `bench-all` binary parses its flags and calls [`all::run`].
//!
//! The modules, lowest first; each uses only modules above it in this list:
//!
//! - [`options`]: the command line.
//! - [`scenarios`]: the scenario table (ids, sizes, the fd cap).
//! - [`record`]: what a run records, and `results.json` read back.
//! - [`stats`]: complete runs, medians, ratios.
//! - [`table`]: the rows and their cells.
//! - [`render`]: markdown, plain text and SVG.
//! - [`results`]: from runs to rows, panels and the `results.md` body.
//! - [`host`]: the machine and toolchain lines.
//! - [`servers`]: starting and stopping the servers under test.
//! - [`orchestrate`]: running rows and rounds, alternating the servers.
//! - [`all`]: the whole run, options in, files out.

pub mod all;
pub mod host;
pub mod options;
pub mod orchestrate;
pub mod record;
pub mod render;
pub mod results;
pub mod scenarios;
pub mod servers;
pub mod stats;
pub mod table;
