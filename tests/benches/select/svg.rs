//! The chart (select.svg) of the median ratios to the floor.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;

use crate::report::index;
use crate::timing::Row;
use crate::workloads::Tables;

/// A horizontal bar chart of the median ratios to the floor, by hand.
pub(crate) fn svg(t: &Tables) -> String {
    struct Group<'a> {
        title: String,
        bars: Vec<(&'a str, f64, f64)>,
    }
    let colors = |name: &str| match name {
        "ioselect" => "#1f77b4",
        "raw epoll ET" => "#7f7f7f",
        "mio" => "#2ca02c",
        "polling" => "#d62728",
        _ => "#000000",
    };
    let mut groups = Vec::new();
    let mut add = |prefix: &str, rows: &[Row], pairs: &[(&'static str, &'static str)]| {
        for r in rows {
            let bars = pairs
                .iter()
                .map(|&(name, floor)| {
                    let i = index(r, name);
                    (name, r.ratio(i, index(r, floor)).1, r.median_ns(i))
                })
                .collect();
            let label = r.label.split_once(' ').map_or(r.label.as_str(), |x| x.1);
            groups.push(Group {
                title: format!("{prefix} {label}"),
                bars,
            });
        }
    };
    add(
        "A select",
        &t.steady,
        &[("ioselect", "raw epoll"), ("polling", "raw epoll")],
    );
    add(
        "B wake+select",
        &t.wake,
        &[
            ("ioselect", "raw epoll"),
            ("polling", "raw epoll"),
            ("mio", "raw epoll ET"),
        ],
    );
    add(
        "C churn,",
        &t.churn,
        &[
            ("ioselect", "raw epoll"),
            ("mio", "raw epoll"),
            ("polling", "raw epoll"),
        ],
    );
    let max = groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.1))
        .fold(1.5f64, f64::max);
    let max = (max * 2.0).ceil() / 2.0;
    let (left, width, bar_h) = (240.0, 560.0, 11.0);
    let x = |v: f64| left + v / max * width;
    let height: f64 = groups
        .iter()
        .map(|g| g.bars.len() as f64 * bar_h + 10.0)
        .sum::<f64>()
        + 90.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="10">"#,
        w = left + width + 120.0
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="16" font-size="13">Cost relative to the floor measured in the same round (1.0 = raw epoll; mio in B: raw edge-triggered epoll)</text>"#
    );
    let top = 40.0;
    for v in (0..=(max * 2.0) as usize).map(|i| i as f64 / 2.0) {
        let _ = writeln!(
            s,
            r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle">{v:.1}×</text>"##,
            x(v),
            height - 40.0,
            height - 28.0
        );
    }
    for (v, c) in [(1.0, "#000"), (1.05, "#999")] {
        let _ = writeln!(
            s,
            r#"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="{c}" stroke-dasharray="3,2"/>"#,
            x(v),
            height - 40.0
        );
    }
    let mut y = top;
    for g in &groups {
        let _ = writeln!(
            s,
            r#"<text x="{0}" y="{1}" text-anchor="end">{2}</text>"#,
            left - 6.0,
            y + bar_h,
            g.title
        );
        for &(name, ratio, ns) in &g.bars {
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{y}" width="{0:.1}" height="{1}" fill="{2}"/><text x="{3:.1}" y="{4}">{ratio:.2}× ({ns:.0} ns)</text>"#,
                x(ratio) - left,
                bar_h - 2.0,
                colors(name),
                x(ratio) + 4.0,
                y + bar_h - 3.0
            );
            y += bar_h;
        }
        y += 10.0;
    }
    let mut lx = left;
    for name in ["ioselect", "polling", "mio"] {
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="{0}" width="10" height="10" fill="{1}"/><text x="{2}" y="{3}">{name}</text>"#,
            height - 16.0,
            colors(name),
            lx + 14.0,
            height - 7.0
        );
        lx += 90.0;
    }
    let _ = writeln!(s, "</svg>");
    s
}
