//! The chart (echo.svg).
#![cfg(target_os = "linux")]

use std::fmt::Write as _;

use crate::load::Load;
use crate::stats::Row;

/// Two horizontal bar charts by hand: server CPU per message (ratio to the
/// raw epoll server) and messages/s, per workload and server.
pub(crate) fn svg(rows: &[Row], names: &[&str]) -> String {
    let colors = [
        "#7f7f7f", "#bcbd22", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#e377c2", "#8c564b",
        "#9467bd",
    ];
    let (left, width, bar_h): (f64, f64, f64) = (190.0, 300.0, 10.0);
    let group_h = names.len() as f64 * bar_h + 8.0;
    let height = rows.len() as f64 * group_h + 80.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="9">"#,
        (left + 2.0 * width + 380.0).max(left + names.len() as f64 * 150.0)
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="14" font-size="12">Echo servers: server CPU per message (per MB for bulk), ratio to raw epoll — and messages/s (MB/s)</text>"#
    );
    let max_ratio = rows
        .iter()
        .flat_map(|r| (0..names.len()).map(move |i| r.cpu_ratio(i, 0).1))
        .filter(|v| v.is_finite())
        .fold(1.5f64, f64::max)
        .min(20.0);
    let x2 = left + width + 120.0;
    let mut y = 36.0;
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="30">server CPU per message, ratio to raw epoll (log scale, 0.5× to {max_ratio:.1}×; dashed: 1×)</text><text x="{x2}" y="30">rate, relative to the fastest server in the row</text>"#
    );
    let lx =
        |v: f64| left + (v.max(1e-3).ln() - 0.5f64.ln()) / (max_ratio.ln() - 0.5f64.ln()) * width;
    for r in rows {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + bar_h,
            r.label
        );
        let best = (0..names.len()).map(|i| r.rate(i)).fold(0.0f64, f64::max);
        for (i, n) in names.iter().enumerate() {
            let ratio = r.cpu_ratio(i, 0).1;
            let rate = r.rate(i);
            let unit = if matches!(r.load, Load::Stream(_)) {
                "MB/s"
            } else {
                "msg/s"
            };
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{ratio:.2}×</text><rect x="{x2}" y="{y}" width="{:.1}" height="{}" fill="{}"/><text x="{:.1}" y="{}">{rate:.0} {unit} ({n})</text>"#,
                (lx(ratio) - left).max(1.0),
                bar_h - 2.0,
                colors[i % colors.len()],
                lx(ratio).max(left) + 3.0,
                y + bar_h - 3.0,
                rate / best.max(1e-9) * width,
                bar_h - 2.0,
                colors[i % colors.len()],
                x2 + rate / best.max(1e-9) * width + 3.0,
                y + bar_h - 3.0
            );
            y += bar_h;
        }
        y += 8.0;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{0}" x2="{0}" y1="34" y2="{1}" stroke="#000" stroke-dasharray="3,2"/>"##,
        lx(1.0),
        y
    );
    let mut lxp = left;
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<rect x="{lxp}" y="{}" width="9" height="9" fill="{}"/><text x="{}" y="{}">{n}</text>"#,
            height - 20.0,
            colors[i % colors.len()],
            lxp + 12.0,
            height - 12.0
        );
        lxp += 150.0;
    }
    let _ = writeln!(s, "</svg>");
    s
}
