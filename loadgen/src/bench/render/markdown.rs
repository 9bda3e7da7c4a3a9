//! The results table as text: markdown for `results.md`, aligned plain text for the terminal.

use std::fmt::Write as _;

use crate::bench::table::Row;

/// The GitHub-flavoured markdown table of `rows`; the Node columns only when some row has a
/// Node cell, the plain Node.js ones only when some row has a plain cell (other rows show
/// `-`). A scenario's label is on its first row only.
pub fn markdown(rows: &[Row]) -> String {
    let with_node = rows.iter().any(|r| r.node.is_some());
    let with_plain = rows.iter().any(|r| r.plain.is_some());
    let line = |s: &mut String, cells: &[&str]| {
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    };
    // Every server's cell, then every ratio: the order the table had before plain Node.js.
    let layout = |cells: [&'static str; 4], node: [&'static str; 2], plain: [&'static str; 2]| {
        let mut v = vec![cells[0], cells[1], cells[2], cells[3]];
        v.extend(with_node.then_some(node[0]));
        v.extend(with_plain.then_some(plain[0]));
        v.push("Pikku / baseline");
        v.extend(with_node.then_some(node[1]));
        v.extend(with_plain.then_some(plain[1]));
        v.push("target");
        v
    };
    let head = layout(
        ["scenario", "metric", "Pikku", "axum baseline"],
        ["Pikku on Node", "Pikku / Node"],
        ["Node.js plain SSE", "Pikku / Node.js plain"],
    );
    let mut s = String::new();
    line(&mut s, &head);
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    let mut last = String::new();
    for r in rows {
        let sc = if r.scenario == last { "" } else { &r.scenario };
        let dash = || ("-".to_owned(), "-".to_owned());
        let (nc, nr) = r.node.clone().unwrap_or_else(dash);
        let (pc, pr) = r.plain.clone().unwrap_or_else(dash);
        let mut cells = vec![sc, &r.metric, &r.pikku, &r.baseline];
        cells.extend(with_node.then_some(nc.as_str()));
        cells.extend(with_plain.then_some(pc.as_str()));
        cells.push(&r.ratio);
        cells.extend(with_node.then_some(nr.as_str()));
        cells.extend(with_plain.then_some(pr.as_str()));
        cells.push(&r.target);
        line(&mut s, &cells);
        last = r.scenario.clone();
    }
    s
}

/// A column of the plain table: its heading and its cell in a row.
type Column = (&'static str, fn(&Row) -> String);

/// One half of an optional (cell, ratio) pair, `-` when absent.
fn half(p: &Option<(String, String)>, ratio: bool) -> String {
    p.as_ref().map_or_else(
        || "-".to_owned(),
        |(c, r)| if ratio { r.clone() } else { c.clone() },
    )
}

/// The same table as aligned plain text for the terminal: always with the Node columns, with
/// the plain Node.js ones when some row has a plain cell.
pub fn plain(rows: &[Row]) -> String {
    let mut cols: Vec<Column> = vec![
        ("scenario", |r| r.scenario.clone()),
        ("metric", |r| r.metric.clone()),
        ("Pikku", |r| r.pikku.clone()),
        ("baseline", |r| r.baseline.clone()),
        ("ratio", |r| r.ratio.clone()),
        ("Node", |r| half(&r.node, false)),
        ("ratio Node", |r| half(&r.node, true)),
    ];
    if rows.iter().any(|r| r.plain.is_some()) {
        cols.push(("Node plain", |r| half(&r.plain, false)));
        cols.push(("ratio plain", |r| half(&r.plain, true)));
    }
    let widths: Vec<usize> = cols
        .iter()
        .map(|(head, cell)| {
            rows.iter()
                .map(|r| cell(r).len())
                .fold(head.len(), usize::max)
        })
        .collect();
    // Scenario and metric left-aligned, figures right-aligned, the target as it comes.
    let line = |s: &mut String, cells: &[String], target: &str| {
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let _ = if i < 2 {
                write!(s, "{c:w$}  ")
            } else {
                write!(s, "{c:>w$}  ")
            };
        }
        let _ = writeln!(s, "{target}");
    };
    let mut s = String::new();
    let head: Vec<String> = cols.iter().map(|(h, _)| h.to_string()).collect();
    line(&mut s, &head, "target");
    let mut last = String::new();
    for r in rows {
        let mut cells: Vec<String> = cols.iter().map(|(_, cell)| cell(r)).collect();
        if r.scenario == last {
            cells[0].clear();
        }
        line(&mut s, &cells, &r.target);
        last = r.scenario.clone();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, metric: &str, cells: [&str; 3], node: Option<[&str; 2]>) -> Row {
        Row {
            scenario: scenario.into(),
            metric: metric.into(),
            pikku: cells[0].into(),
            baseline: cells[1].into(),
            ratio: cells[2].into(),
            node: node.map(|[c, r]| (c.into(), r.into())),
            plain: None,
            target: if metric == "events/s" {
                ">= 0.95x".into()
            } else {
                String::new()
            },
        }
    }

    fn ticks(node: bool) -> Vec<Row> {
        let n = |c, r| node.then_some([c, r]);
        vec![
            row(
                "1 connection x 200k events",
                "events/s",
                ["4.63M", "1.21M", "3.84x"],
                n("368k", "12.58x"),
            ),
            row(
                "1 connection x 200k events",
                "MB/s on the wire",
                ["215.2", "63.2", "3.40x"],
                n("19.3", "11.15x"),
            ),
            row(
                "fan-out 100 events to 1k subscribers (Redis)",
                "latency p99 ms",
                ["24.9", "34.8", "0.72x"],
                n("n/a (no Redis fan-out in @pikku/core)", "-"),
            ),
        ]
    }

    /// Taken from `benchmarks/results.md` (written by `bench-all` before it was split up).
    #[test]
    fn markdown_with_the_node_columns() {
        assert_eq!(
            markdown(&ticks(true)),
            "| scenario | metric | Pikku | axum baseline | Pikku on Node | Pikku / baseline | Pikku / Node | target |
|---|---|---|---|---|---|---|---|
| 1 connection x 200k events | events/s | 4.63M | 1.21M | 368k | 3.84x | 12.58x | >= 0.95x |
|  | MB/s on the wire | 215.2 | 63.2 | 19.3 | 3.40x | 11.15x |  |
| fan-out 100 events to 1k subscribers (Redis) | latency p99 ms | 24.9 | 34.8 | n/a (no Redis fan-out in @pikku/core) | 0.72x | - |  |
"
        );
    }

    #[test]
    fn markdown_without_the_node_columns() {
        assert_eq!(
            markdown(&ticks(false)),
            "| scenario | metric | Pikku | axum baseline | Pikku / baseline | target |
|---|---|---|---|---|---|
| 1 connection x 200k events | events/s | 4.63M | 1.21M | 3.84x | >= 0.95x |
|  | MB/s on the wire | 215.2 | 63.2 | 3.40x |  |
| fan-out 100 events to 1k subscribers (Redis) | latency p99 ms | 24.9 | 34.8 | 0.72x |  |
"
        );
    }

    #[test]
    fn rows_of_another_column_count_fill_in_dashes() {
        let mut rows = ticks(true);
        rows[1].node = None;
        assert!(
            markdown(&rows).contains("|  | MB/s on the wire | 215.2 | 63.2 | - | 3.40x | - |  |\n")
        );
    }

    /// The plain table always has the Node columns; lines without a target end in two spaces.
    #[test]
    fn plain_text_aligns_the_columns() {
        assert_eq!(
            plain(&ticks(false)),
            concat!(
                "scenario                                      metric            Pikku  baseline  ratio  Node  ratio Node  target\n",
                "1 connection x 200k events                    events/s          4.63M     1.21M  3.84x     -           -  >= 0.95x\n",
                "                                              MB/s on the wire  215.2      63.2  3.40x     -           -  \n",
                "fan-out 100 events to 1k subscribers (Redis)  latency p99 ms     24.9      34.8  0.72x     -           -  \n",
            )
        );
        let with_node = plain(&ticks(true));
        assert!(
            with_node.contains("  0.72x  n/a (no Redis fan-out in @pikku/core)           -  \n")
        );
        assert!(
            with_node
                .contains("  3.84x                                   368k      12.58x  >= 0.95x\n")
        );
    }

    /// Plain Node.js adds a cell and a ratio column after the Node ones; rows without a cell
    /// there (all but the idle rows) show `-`.
    #[test]
    fn the_plain_node_columns() {
        let mut rows = ticks(true);
        rows.push(Row {
            scenario: "10k idle streams".into(),
            metric: "server RSS per stream KiB".into(),
            pikku: "18.4".into(),
            baseline: "20.2".into(),
            ratio: "0.91x".into(),
            node: Some(("21.5".into(), "0.86x".into())),
            plain: Some(("9.2".into(), "2.00x".into())),
            target: "<= 1.1x".into(),
        });
        let md = markdown(&rows);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(
            lines[0],
            "| scenario | metric | Pikku | axum baseline | Pikku on Node | Node.js plain SSE | Pikku / baseline | Pikku / Node | Pikku / Node.js plain | target |"
        );
        assert_eq!(lines[1], "|---|---|---|---|---|---|---|---|---|---|");
        assert_eq!(
            lines[2],
            "| 1 connection x 200k events | events/s | 4.63M | 1.21M | 368k | - | 3.84x | 12.58x | - | >= 0.95x |"
        );
        assert_eq!(
            lines[5],
            "| 10k idle streams | server RSS per stream KiB | 18.4 | 20.2 | 21.5 | 9.2 | 0.91x | 0.86x | 2.00x | <= 1.1x |"
        );
        let text = plain(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("  Node  ratio Node  Node plain  ratio plain  target"));
        assert!(lines[1].ends_with("  368k      12.58x           -            -  >= 0.95x"));
        assert!(lines[4].ends_with("  21.5       0.86x         9.2        2.00x  <= 1.1x"));
    }
}
