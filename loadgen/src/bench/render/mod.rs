//! Rendering results: the table as markdown and plain text, the chart as SVG. Pure functions of
//! their inputs, so they are tested on fixed rows.

pub mod markdown;
pub mod svg;
