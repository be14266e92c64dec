//! The scaling run: echod --threads 1 against --threads 2.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;

use crate::imp::Opts;
use crate::load::{Load, Plan, Run, drive};
use crate::server::Server;
use crate::stats::Row;

/// The scaling run: echod --threads 1 against --threads 2, neither pinned
/// (nor the load generator), C = 64, 64 B messages.
pub(crate) fn scaling(echod: &str, pattern: &[u8], opts: &Opts) -> String {
    let mut all = rustix::thread::CpuSet::new();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for i in 0..cpus {
        all.set(i);
    }
    rustix::thread::sched_setaffinity(None, &all).expect("unpin");
    let mut md = String::from(
        "\n### Scaling: echod --threads 2 against --threads 1 (C=64, 64 B; nothing pinned)\n\n",
    );
    md.push_str(
        "| echod | messages/s | server CPU ns/msg | RTT p50 / p99 µs |\n|---|--:|--:|--:|\n",
    );
    let mut results: Vec<(usize, Vec<Run>)> = vec![(1, Vec::new()), (2, Vec::new())];
    let servers: Vec<Server> = [1, 2]
        .iter()
        .map(|t| {
            Server::start(
                "echod",
                &[
                    echod.to_string(),
                    "--port".into(),
                    "0".into(),
                    "--threads".into(),
                    t.to_string(),
                ],
                None,
            )
        })
        .collect();
    for _ in 0..opts.rounds {
        for (i, s) in servers.iter().enumerate() {
            let plan = Plan::Timed {
                warmup: opts.warmup,
                time: opts.time,
            };
            results[i]
                .1
                .push(drive(s, 64, Load::PingPong(64), plan, pattern));
        }
    }
    for s in servers {
        s.stop();
    }
    for (threads, runs) in &results {
        let row = Row {
            label: String::new(),
            load: Load::PingPong(64),
            runs: vec![runs.clone()],
        };
        let _ = writeln!(
            md,
            "| --threads {threads} | {:.0} | {:.0} | {:.0} / {:.0} |",
            row.rate(0),
            row.cpu(0),
            row.rtt(0, 0.5),
            row.rtt(0, 0.99)
        );
    }
    md
}
