//! The results table as text: markdown for `results.md`, aligned plain text for the terminal.

use std::fmt::Write as _;

use crate::bench::table::Row;

/// The GitHub-flavoured markdown table of `rows` (the Node columns only when some row has a
/// Node cell); a scenario's label on its first row only.
pub fn markdown(rows: &[Row]) -> String {
    let with_node = rows.iter().any(|r| r.node.is_some());
    let mut s = String::from(if with_node {
        "| scenario | metric | Pikku | axum baseline | Pikku on Node | Pikku / baseline | Pikku / Node | target |\n|---|---|---|---|---|---|---|---|\n"
    } else {
        "| scenario | metric | Pikku | axum baseline | Pikku / baseline | target |\n|---|---|---|---|---|---|\n"
    });
    let mut last = String::new();
    for r in rows {
        let sc = if r.scenario == last { "" } else { &r.scenario };
        if with_node {
            let (nc, nr) = r.node.clone().unwrap_or_else(|| ("-".into(), "-".into()));
            let _ = writeln!(
                s,
                "| {sc} | {} | {} | {} | {nc} | {} | {nr} | {} |",
                r.metric, r.pikku, r.baseline, r.ratio, r.target
            );
        } else {
            let _ = writeln!(
                s,
                "| {sc} | {} | {} | {} | {} | {} |",
                r.metric, r.pikku, r.baseline, r.ratio, r.target
            );
        }
        last = r.scenario.clone();
    }
    s
}

/// The same table as aligned plain text for the terminal (always with the Node columns).
pub fn plain(rows: &[Row]) -> String {
    let w = |f: &dyn Fn(&Row) -> &str, min: usize| {
        rows.iter().map(|r| f(r).len()).max().unwrap_or(0).max(min)
    };
    let node_cell = |r: &Row| r.node.as_ref().map_or("-", |n| n.0.as_str()).to_owned();
    let node_ratio = |r: &Row| r.node.as_ref().map_or("-", |n| n.1.as_str()).to_owned();
    let (w0, w1, w2, w3, w4) = (
        w(&|r| &r.scenario, 8),
        w(&|r| &r.metric, 6),
        w(&|r| &r.pikku, 5),
        w(&|r| &r.baseline, 8),
        w(&|r| &r.ratio, 5),
    );
    let w5 = rows
        .iter()
        .map(|r| node_cell(r).len())
        .max()
        .unwrap_or(0)
        .max(4);
    let w6 = rows
        .iter()
        .map(|r| node_ratio(r).len())
        .max()
        .unwrap_or(0)
        .max(10);
    let mut s = format!(
        "{:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {:>w6$}  target\n",
        "scenario", "metric", "Pikku", "baseline", "ratio", "Node", "ratio Node"
    );
    let mut last = String::new();
    for r in rows {
        let sc = if r.scenario == last { "" } else { &r.scenario };
        let _ = writeln!(
            s,
            "{sc:w0$}  {:w1$}  {:>w2$}  {:>w3$}  {:>w4$}  {:>w5$}  {:>w6$}  {}",
            r.metric,
            r.pikku,
            r.baseline,
            r.ratio,
            node_cell(r),
            node_ratio(r),
            r.target
        );
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
}
