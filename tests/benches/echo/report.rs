//! The markdown report (echo.md): the short table, the targets, binary sizes.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use crate::load::Load;
use crate::stats::Row;

/// The short table (README.md): each server's CPU per message (per MB
/// for the stream) as a ratio to the raw epoll server's, median
/// [p25–p75] of the per-round ratios, and the raw server's own figure.
pub(crate) fn summary(rows: &[Row], names: &[&str]) -> String {
    let Some(raw) = names.iter().position(|n| *n == "raw epoll") else {
        return String::new();
    };
    let mut md = String::from(
        "\n### Summary: server CPU per message (per MB for the stream), ratio to the raw epoll server, median [p25–p75] over rounds\n\n| workload | raw epoll |",
    );
    let others: Vec<usize> = (0..names.len()).filter(|&s| s != raw).collect();
    for &s in &others {
        let _ = write!(md, " {} |", names[s]);
    }
    let _ = writeln!(md, "\n|---|--:|{}", "--:|".repeat(others.len()));
    for r in rows {
        let own = match r.load {
            Load::PingPong(_) => format!("{:.0} ns", r.cpu(raw)),
            Load::Stream(_) => format!("{:.2} ms/MB", r.cpu(raw)),
        };
        let _ = write!(md, "| {} | {own} |", r.label);
        for &s in &others {
            let (lo, mid, hi) = r.cpu_ratio(s, raw);
            let _ = write!(md, " {mid:.2}× [{lo:.2}–{hi:.2}] |");
        }
        let _ = writeln!(md);
    }
    md
}

/// The targets (echod against the raw epoll server, mio and tokio), judged
/// on this run's per-round ratios of server CPU per message (per MB for the
/// stream).
pub(crate) fn targets(rows: &[Row], names: &[&str]) -> String {
    let at = |name: &str| names.iter().position(|n| *n == name);
    let mut md =
        String::from("\n### Targets, on server CPU per message (per MB for the stream)\n\n");
    let (Some(raw), Some(io)) = (at("raw epoll"), at("ioselect echod")) else {
        md.push_str("(not judged: the raw epoll server or echod did not run)\n");
        return md;
    };
    let tokios: Vec<usize> = (0..names.len())
        .filter(|&i| names[i].starts_with("tokio"))
        .collect();
    for r in rows {
        let mut items = Vec::new();
        let mut all = true;
        let (_, to_raw, _) = r.cpu_ratio(io, raw);
        match r.load {
            Load::PingPong(_) => {
                let ok = to_raw <= 1.02;
                all &= ok;
                items.push(format!("echod/raw {to_raw:.3} (bound 1.02{})", mark(ok)));
            }
            Load::Stream(_) => {
                if let Some(mio) = at("mio") {
                    let (_, to_mio, _) = r.cpu_ratio(io, mio);
                    let ok = to_mio <= 1.0;
                    all &= ok;
                    items.push(format!("echod/mio {to_mio:.3} (bound 1.00{})", mark(ok)));
                }
                items.push(format!("echod/raw {to_raw:.3}"));
            }
        }
        for &t in &tokios {
            let (_, v, _) = r.cpu_ratio(io, t);
            let ok = v < 1.0;
            all &= ok;
            items.push(format!("echod/{} {v:.3} (bound < 1{})", names[t], mark(ok)));
        }
        // Resolution: every ratio to the raw server spans at most 5%
        // between its p25 and p75, and the A/A control's lies within 1 ± 5%.
        let mut wide = Vec::new();
        for s in (0..names.len()).filter(|&s| s != raw) {
            let (lo, _, hi) = r.cpu_ratio(s, raw);
            // Relative: 1.70–1.78 spans as much as 0.97–1.02.
            if hi > lo * 1.05 {
                wide.push(format!("{} {lo:.2}–{hi:.2}", names[s]));
            }
        }
        let ok = wide.is_empty();
        all &= ok;
        items.push(if ok {
            "every p25–p75 within 5%".to_string()
        } else {
            format!("p25–p75 wider than 5%: {} (**missed**)", wide.join(", "))
        });
        if let Some(aa) = at("raw epoll (A/A)") {
            // Two copies of one server: what is within this is noise.
            let (lo, mid, hi) = r.cpu_ratio(aa, raw);
            let ok = lo >= 0.95 && hi <= 1.05;
            all &= ok;
            items.push(format!(
                "A/A {mid:.3} [{lo:.3}–{hi:.3}]{}",
                if ok {
                    " within 1 ± 5%"
                } else {
                    " not within 1 ± 5% (**missed**)"
                }
            ));
        }
        let _ = writeln!(
            md,
            "- {}: {}: {}",
            r.label,
            items.join("; "),
            if all { "all met" } else { "**not all met**" }
        );
    }
    md
}

pub(crate) fn mark(ok: bool) -> &'static str {
    if ok { ": met" } else { ": **missed**" }
}

pub(crate) fn stripped_size(path: &Path) -> String {
    let tmp = std::env::temp_dir().join(format!("ioselect-bench-strip-{}", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&tmp)
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    let size = if ok {
        std::fs::metadata(&tmp)
            .map(|m| format!("{} KiB", m.len() / 1024))
            .unwrap_or_default()
    } else {
        "(strip failed)".to_string()
    };
    let _ = std::fs::remove_file(&tmp);
    size
}
