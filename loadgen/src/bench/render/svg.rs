//! The chart: a hand-written SVG of side-by-side bars, one panel per metric.

use std::fmt::Write as _;

/// A bar chart panel: groups of (label, one value per series) values.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The metric (`Throughput`, ...).
    pub title: String,
    /// Its unit and direction (`M events/s, higher is better`).
    pub unit: String,
    /// The bar groups: a label and one value per series (`None`: n/a).
    pub groups: Vec<(String, Vec<Option<f64>>)>,
}

/// A bar's value label: three significant digits or fewer.
fn bar_label(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A hand-written SVG of side-by-side bars, one panel per metric; `series` are (label, colour).
pub fn svg(panels: &[Panel], series: &[(&str, &str)], subtitle: &str) -> String {
    let pw = 300.0;
    let ph = 260.0;
    let top = 70.0;
    let width = pw * panels.len() as f64 + 20.0;
    let height = top + ph + 10.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">Pikku vs hand-written axum SSE{} (same run)</text>\n\
         <text x=\"10\" y=\"40\" fill=\"#555\">{}</text>\n",
        if series.len() > 2 {
            " and Pikku on Node"
        } else {
            ""
        },
        esc(subtitle)
    );
    let mut lx = 10.0;
    for (label, color) in series {
        let _ = writeln!(
            s,
            "<rect x=\"{lx}\" y=\"48\" width=\"12\" height=\"12\" fill=\"{color}\"/><text x=\"{}\" y=\"58\">{}</text>",
            lx + 16.0,
            esc(label)
        );
        lx += 30.0 + 7.0 * label.len() as f64;
    }
    for (pi, p) in panels.iter().enumerate() {
        let x0 = 10.0 + pi as f64 * pw;
        let base_y = top + ph - 30.0;
        let chart_h = ph - 70.0;
        // The scale follows Pikku and the baseline; a bar far beyond them (Node's, often 10-20x)
        // is cut at the top with a break mark and its value, so the other two stay readable.
        let top_of = |n: usize| {
            p.groups
                .iter()
                .flat_map(|(_, vs)| vs.iter().take(n).map(|v| v.unwrap_or(0.0)))
                .fold(0.0_f64, f64::max)
        };
        let max = if top_of(series.len()) > 3.0 * top_of(2) {
            1.5 * top_of(2)
        } else {
            top_of(series.len())
        }
        .max(1e-9);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\n<line x1=\"{}\" y1=\"{base_y}\" x2=\"{}\" y2=\"{base_y}\" stroke=\"#333\"/>",
            x0 + 5.0,
            top + 10.0,
            esc(&format!("{} ({})", p.title, p.unit)),
            x0 + 5.0,
            x0 + pw - 15.0
        );
        let gw = (pw - 30.0) / p.groups.len().max(1) as f64;
        for (gi, (label, vs)) in p.groups.iter().enumerate() {
            let gx = x0 + 10.0 + gi as f64 * gw;
            let bw = (gw - 20.0) / series.len().max(1) as f64;
            for (bi, (v, (_, color))) in vs.iter().zip(series).enumerate() {
                let bx = gx + 5.0 + bi as f64 * bw;
                match v {
                    Some(v) => {
                        let cut = *v > max;
                        let h = chart_h * v.min(max) / max;
                        if cut {
                            let y = base_y - h + 12.0;
                            let _ = writeln!(
                                s,
                                "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"/><path d=\"M{bx:.1} {:.1} L{:.1} {y:.1}\" stroke=\"white\" stroke-width=\"4\"/>",
                                base_y - h,
                                bw - 2.0,
                                y + 6.0,
                                bx + bw - 2.0
                            );
                        }
                        let _ = writeln!(
                            s,
                            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"{}\">{}</text>",
                            base_y - h,
                            bw - 2.0,
                            if cut { "none" } else { color },
                            bx + bw / 2.0 - 1.0,
                            // Neighbouring labels of narrow bars alternate heights.
                            base_y - h - 3.0 - if bw < 30.0 && bi % 2 == 1 { 10.0 } else { 0.0 },
                            if bw < 30.0 { 9 } else { 10 },
                            esc(&bar_label(*v))
                        );
                    }
                    None => {
                        let _ = writeln!(
                            s,
                            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#a00\">n/a</text>",
                            bx + bw / 2.0,
                            base_y - 4.0
                        );
                    }
                }
            }
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
                gx + gw / 2.0 - 5.0,
                base_y + 16.0,
                esc(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fanout_panel() -> Panel {
        Panel {
            title: "Fan-out p99".into(),
            unit: "ms, lower is better".into(),
            groups: vec![
                ("1k".into(), vec![Some(33.8), Some(86.4), Some(752.1)]),
                ("1k Redis".into(), vec![Some(24.9), Some(0.5), None]),
            ],
        }
    }

    /// Taken from the output of `bench-all` before it was split up: a third bar far beyond the
    /// other two is cut (white break mark, outline, its value), a missing one reads n/a, and
    /// text is escaped.
    #[test]
    fn one_panel_with_a_cut_bar_and_a_missing_one() {
        let series = [
            ("Pikku", "#1b9e77"),
            ("axum <baseline>", "#9e9e9e"),
            ("Node", "#d95f02"),
        ];
        let expected = r##"<svg xmlns="http://www.w3.org/2000/svg" width="320" height="340" viewBox="0 0 320 340" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="22" font-size="16" font-weight="bold">Pikku vs hand-written axum SSE and Pikku on Node (same run)</text>
<text x="10" y="40" fill="#555">quick mode &amp; more</text>
<rect x="10" y="48" width="12" height="12" fill="#1b9e77"/><text x="26" y="58">Pikku</text>
<rect x="75" y="48" width="12" height="12" fill="#9e9e9e"/><text x="91" y="58">axum &lt;baseline&gt;</text>
<rect x="210" y="48" width="12" height="12" fill="#d95f02"/><text x="226" y="58">Node</text>
<text x="15" y="80" font-weight="bold">Fan-out p99 (ms, lower is better)</text>
<line x1="15" y1="300" x2="295" y2="300" stroke="#333"/>
<rect x="25.0" y="250.4" width="36.3" height="49.6" fill="#1b9e77"/><text x="43.2" y="247.4" text-anchor="middle" font-size="10">33.8</text>
<rect x="63.3" y="173.3" width="36.3" height="126.7" fill="#9e9e9e"/><text x="81.5" y="170.3" text-anchor="middle" font-size="10">86.4</text>
<rect x="101.7" y="110.0" width="36.3" height="190.0" fill="#d95f02"/><path d="M101.7 128.0 L138.0 122.0" stroke="white" stroke-width="4"/>
<rect x="101.7" y="110.0" width="36.3" height="190.0" fill="none"/><text x="119.8" y="107.0" text-anchor="middle" font-size="10">752</text>
<text x="82.5" y="316.0" text-anchor="middle" font-size="11">1k</text>
<rect x="160.0" y="263.5" width="36.3" height="36.5" fill="#1b9e77"/><text x="178.2" y="260.5" text-anchor="middle" font-size="10">24.9</text>
<rect x="198.3" y="299.3" width="36.3" height="0.7" fill="#9e9e9e"/><text x="216.5" y="296.3" text-anchor="middle" font-size="10">0.50</text>
<text x="255.8" y="296.0" text-anchor="middle" font-size="10" fill="#a00">n/a</text>
<text x="217.5" y="316.0" text-anchor="middle" font-size="11">1k Redis</text>
</svg>
"##;
        assert_eq!(
            svg(&[fanout_panel()], &series, "quick mode & more"),
            expected
        );
    }

    #[test]
    fn two_series_have_the_two_column_title_and_no_cut() {
        let s = svg(
            &[fanout_panel(), fanout_panel()],
            &[("Pikku", "#1b9e77"), ("axum baseline", "#9e9e9e")],
            "",
        );
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"620\""));
        assert!(s.contains(">Pikku vs hand-written axum SSE (same run)</text>"));
        assert!(!s.contains("<path"), "no bar is cut with two series");
        assert!(!s.contains("n/a"), "the third values are not drawn");
    }

    #[test]
    fn bar_labels_keep_three_digits() {
        assert_eq!(bar_label(752.1), "752");
        assert_eq!(bar_label(33.84), "33.8");
        assert_eq!(bar_label(0.5), "0.50");
    }
}
