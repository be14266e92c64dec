//! The markdown report (select.md): the tables, the machine, the verdicts.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;

use ioselect_linux::{DefaultSelector, LargeSelector};

use crate::timing::{Opts, Row};
use crate::workloads::Tables;

pub(crate) fn cell(row: &Row, i: usize, floor: usize) -> String {
    let ns = row.median_ns(i);
    if i == floor {
        return format!("{ns:.0}");
    }
    let (lo, mid, hi) = row.ratio(i, floor);
    format!("{ns:.0} ({mid:.2}× [{lo:.2}–{hi:.2}])")
}

pub(crate) fn index(row: &Row, name: &str) -> usize {
    row.names.iter().position(|n| *n == name).expect("subject")
}

pub(crate) fn split_label(label: &str) -> (String, String) {
    // "A N=64 K=1" → ("64", "1")
    let mut n = String::new();
    let mut k = String::new();
    for part in label.split(' ') {
        if let Some(v) = part.strip_prefix("N=") {
            n = v.to_string();
        } else if let Some(v) = part.strip_prefix("K=") {
            k = v.to_string();
        }
    }
    if label.contains("shared") {
        k.push_str(" (fds shared by the subjects)");
    }
    (n, k)
}

pub(crate) fn shell(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn machine() -> String {
    let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    format!(
        "{} CPUs ({}), Linux {}, {}; load average at start: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu.trim(),
        shell("uname -r"),
        shell("rustc --version"),
        shell("cut -d' ' -f1-3 /proc/loadavg"),
    )
}

/// Worst median ratio of `name` to `floor` over `rows`, with its row.
pub(crate) fn worst(rows: &[Row], name: &str, floor: &str) -> Option<(f64, String)> {
    rows.iter()
        .map(|r| (r.ratio(index(r, name), index(r, floor)).1, r.label.clone()))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// One table of a per-fd operation (churn, modify) against the number of
/// other registered fds, in ns per pair with ratios to raw epoll.
fn per_fd_table(md: &mut String, title: &str, rows: &[Row]) {
    let _ = writeln!(md, "\n### {title} (ns per pair)\n");
    let _ = writeln!(
        md,
        "| others registered | raw epoll (floor), ns | ioselect | mio | polling (level) |"
    );
    let _ = writeln!(md, "|--:|--:|--:|--:|--:|");
    for r in rows {
        let f = index(r, "raw epoll");
        let bg = r.label.split(' ').nth(1).unwrap_or("?");
        let _ = writeln!(
            md,
            "| {bg} | {} | {} | {} | {} |",
            cell(r, f, f),
            cell(r, index(r, "ioselect"), f),
            cell(r, index(r, "mio"), f),
            cell(r, index(r, "polling"), f)
        );
    }
}

pub(crate) fn markdown(t: &Tables, opts: &Opts, date: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## Select cost and registration churn\n");
    let _ = writeln!(
        md,
        "Measured {date} on {}. `cargo bench -p ioselect-tests --bench select`; {} interleaved rounds of ~{} ms batches (at least {} operations) per row. \
     Cells: median ns per operation over the rounds, then (median [p25–p75]) over the rounds of the ratio to the floor timed in the same round. \
     Each subject has its own eventfds, epoll instance and an event buffer of N.\n",
        machine(),
        opts.rounds,
        opts.batch.as_millis(),
        crate::timing::MIN_OPS
    );
    let _ = writeln!(
        md,
        "### A. One select returning K level-triggered events (N registered, K ready and never read)\n"
    );
    let _ = writeln!(
        md,
        "| N | K | raw epoll (floor), ns | ioselect | polling (level) | raw epoll #2 (A/A control) |"
    );
    let _ = writeln!(md, "|--:|--:|--:|--:|--:|--:|");
    for r in &t.steady {
        let (n, k) = split_label(&r.label);
        let f = index(r, "raw epoll");
        let _ = writeln!(
            md,
            "| {n} | {k} | {} | {} | {} | {} |",
            cell(r, f, f),
            cell(r, index(r, "ioselect"), f),
            cell(r, index(r, "polling"), f),
            cell(r, index(r, "raw epoll #2"), f)
        );
    }
    let _ = writeln!(
        md,
        "\nmio has no row here: it is edge-triggered only, so an fd that stays ready is reported once; see B.\n"
    );
    let _ = writeln!(
        md,
        "### B. K eventfd writes (new edges), then one select returning the K events\n"
    );
    let _ = writeln!(
        md,
        "| N | K | raw epoll (floor), ns | raw epoll ET (mio's floor), ns | ioselect | polling (level) | mio (ratio to raw ET) | raw epoll #2 (A/A control) |"
    );
    let _ = writeln!(md, "|--:|--:|--:|--:|--:|--:|--:|--:|");
    for r in &t.wake {
        let (n, k) = split_label(&r.label);
        let f = index(r, "raw epoll");
        let fe = index(r, "raw epoll ET");
        let _ = writeln!(
            md,
            "| {n} | {k} | {} | {} | {} | {} | {} | {} |",
            cell(r, f, f),
            cell(r, fe, f),
            cell(r, index(r, "ioselect"), f),
            cell(r, index(r, "polling"), f),
            cell(r, index(r, "mio"), fe),
            cell(r, index(r, "raw epoll #2"), f)
        );
    }
    per_fd_table(
        &mut md,
        "C. Registration churn: register + unregister of one fd",
        &t.churn,
    );
    per_fd_table(
        &mut md,
        "D. Interest change: modify one fd from READ to WRITE and back",
        &t.modify,
    );
    let _ = writeln!(
        md,
        "\n### Size of the selector (`size_of`, bytes: all of its memory, no heap)\n"
    );
    let _ = writeln!(md, "| type | bytes |\n|---|--:|");
    for (name, bytes) in [
        (
            "DefaultSelector<u32, 16>",
            size_of::<DefaultSelector<u32, 16>>(),
        ),
        (
            "DefaultSelector<u32, 64>",
            size_of::<DefaultSelector<u32, 64>>(),
        ),
        (
            "DefaultSelector<u32, 1024>",
            size_of::<DefaultSelector<u32, 1024>>(),
        ),
        (
            "DefaultSelector<u32, 4096>",
            size_of::<DefaultSelector<u32, 4096>>(),
        ),
        (
            "LargeSelector<u32, Box<[Slot<u32>]>, 4096> (echod's: the table on the heap, the events inline)",
            size_of::<LargeSelector<u32, Box<[ioselect_linux::Slot<u32>]>, 4096>>(),
        ),
        (
            "DefaultSelector<(), 64>",
            size_of::<DefaultSelector<(), 64>>(),
        ),
        (
            "DefaultSelector<usize, 64>",
            size_of::<DefaultSelector<usize, 64>>(),
        ),
        (
            "DefaultSelector<[u8; 32], 64>",
            size_of::<DefaultSelector<[u8; 32], 64>>(),
        ),
    ] {
        let _ = writeln!(md, "| `{name}` | {bytes} |");
    }
    let _ = writeln!(
        md,
        "\n### Targets, judged on the median paired ratios above\n"
    );
    let mut target = |what: &str, rows: &[Row], name: &str, floor: &str, bound: f64| {
        if let Some((w, at)) = worst(rows, name, floor) {
            let verdict = if w <= bound { "met" } else { "**missed**" };
            let _ = writeln!(
                md,
                "- {what}: worst {name}/{floor} = {w:.3} at {at} (bound {bound:.2}): {verdict}"
            );
        }
    };
    target(
        "select, steady (A), within 5% of the floor",
        &t.steady,
        "ioselect",
        "raw epoll",
        1.05,
    );
    target(
        "select, wake (B), within 5% of the floor",
        &t.wake,
        "ioselect",
        "raw epoll",
        1.05,
    );
    target(
        "churn (C), within 10% of the floor",
        &t.churn,
        "ioselect",
        "raw epoll",
        1.10,
    );
    for (what, rows) in [("A", &t.steady), ("B", &t.wake)] {
        if let Some((w, at)) = worst(rows, "ioselect", "polling") {
            let _ = writeln!(
                md,
                "- select ({what}) below polling's at every (N, K): worst ioselect/polling = {w:.3} at {at}: {}",
                if w < 1.0 { "met" } else { "**missed**" }
            );
        }
    }
    if let Some((w, at)) = worst(&t.wake, "ioselect", "mio") {
        let _ = writeln!(
            md,
            "- select (B) within 5% of mio's: worst ioselect/mio = {w:.3} at {at}: {}",
            if w <= 1.05 { "met" } else { "**missed**" }
        );
    }
    md
}
