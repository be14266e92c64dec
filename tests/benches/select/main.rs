//! Benchmark: the cost of one `select` and of one register + unregister
//! pair, for ioselect's epoll selector against a hand-written rustix epoll
//! loop (the floor), mio and polling.
//!
//! ```text
//! cargo bench -p ioselect-tests --bench select              # full run, writes tests/bench/results/
//! cargo bench -p ioselect-tests --bench select -- --quick   # smoke: runs and verifies, judges nothing
//! ```
//!
//! Method. Every implementation gets its own `N` eventfds (level-triggered
//! readiness stays while nobody reads, so "K ready" is a steady state), its
//! own epoll instance and an event buffer of `N`. The `K` ready fds are spread
//! over the `N` (every `N/K`-th). One *batch* times `iters` consecutive
//! operations of one implementation; a *round* runs one batch of each
//! implementation in a fresh random order. Batches are timed in thread CPU
//! time, so a batch preempted by another process is not charged for the
//! wait. A second, identical raw epoll loop (`raw epoll #2`, an A/A control)
//! shows how far two equal loops land apart. Reported: the median over rounds of ns per operation, and the median
//! (with the 25th–75th percentile) over rounds of the ratio to the floor
//! *measured in the same round*, so slow drifts of a shared machine cancel.
//! Every select's event count is checked against `K` inside the timed loop,
//! and before timing each implementation's ready set is compared with the
//! expected one, key by key.
//!
//! Three tables:
//! - **A: steady readiness.** One select returning the K level-triggered
//!   events, and a walk of them reading each key's data and mask. mio is
//!   edge-triggered only: a never-read fd is reported once, so it has no
//!   figure here.
//! - **B: wake + select.** Write to each of the K eventfds (a new edge), then
//!   one select returning the K events. Every implementation pays the same
//!   writes, so mio can be compared with the others and with a raw
//!   edge-triggered epoll loop, its own floor.
//! - **C: churn.** Register and unregister one fd, with 0 or 1024 other fds
//!   registered.
//!
//! Files: subject.rs (what every implementation offers), ioselect.rs,
//! floor.rs (the raw epoll loops), peers.rs (mio, polling), timing.rs,
//! workloads.rs (the tables' rows), report.rs (select.md), svg.rs
//! (select.svg); this file: the command line and `--profile`.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op (each
// module is `#![cfg(target_os = "linux")]`).
mod floor;
mod ioselect;
mod peers;
mod report;
mod subject;
mod svg;
mod timing;
mod workloads;

#[cfg(target_os = "linux")]
mod imp {
    use std::hint::black_box;
    use std::os::fd::AsFd;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::floor::Raw;
    use crate::ioselect::Ioselect;
    use crate::peers::{Mio, Polling};
    use crate::report::{markdown, shell};
    use crate::subject::{Subject, eventfd_rc, eventfds, wake};
    use crate::svg::svg;
    use crate::timing::Opts;
    use crate::workloads::{Tables, churn_row, select_rows};

    fn raise_nofile(want: u64) {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let cur = getrlimit(Resource::Nofile);
        let hard = cur.maximum.unwrap_or(u64::MAX);
        let target = if hard >= want { want } else { hard };
        let new = rustix::process::Rlimit {
            current: Some(target.max(cur.current.unwrap_or(0))),
            maximum: cur.maximum.map(|m| m.max(want)),
        };
        // Raising the hard limit needs privilege; fall back to the soft limit.
        if setrlimit(Resource::Nofile, new).is_err() {
            let _ = setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(target),
                    maximum: cur.maximum,
                },
            );
        }
    }

    /// `--profile SUBJECT OP OPS`: `OPS` operations of one subject, untimed and
    /// with no timeouts (rustix's vDSO lookup does not run under valgrind), for
    /// `valgrind --tool=callgrind`. The difference of the instruction counts of
    /// two runs with different `OPS`, divided by the difference of `OPS`, is the
    /// user-space instructions per operation, free of start-up and of noise.
    /// SUBJECT: `raw`, `ioselect`, `mio`, `polling`; OP: `select` (N = K = 1,
    /// level-triggered; not for mio), `wake` (one write + select, N = K = 1),
    /// `churn` (register + unregister).
    fn profile(mut args: impl Iterator<Item = String>) {
        let subject = args.next().expect("--profile SUBJECT OP OPS");
        let op = args.next().expect("--profile SUBJECT OP OPS");
        let ops: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .expect("--profile SUBJECT OP OPS");
        // Capacity 2: one fd to select, room for the churned one.
        let mut s: Box<dyn Subject> = match subject.as_str() {
            "raw" => Box::new(Raw::<false>::new(eventfds(1), 2)),
            "ioselect" => Box::new(Ioselect::<2>::new(eventfds(1))),
            "mio" => Box::new(Mio::new(eventfds(1), 2)),
            "polling" => Box::new(Polling::new(eventfds(1), 2)),
            other => panic!("unknown subject {other}"),
        };
        let churned = eventfd_rc();
        match op.as_str() {
            "select" => {
                wake(&s.fds()[0]);
                black_box(s.select_batch(ops, 1));
            }
            "wake" => {
                black_box(s.wake_batch(ops, &[0]));
            }
            "churn" => s.churn_batch(ops, churned.as_fd()),
            other => panic!("unknown op {other}"),
        }
    }

    pub(super) fn main() {
        let mut opts = Opts {
            quick: false,
            rounds: 31,
            batch: Duration::from_millis(5),
            out: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results")),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.quick = true;
                    opts.rounds = 3;
                    opts.batch = Duration::from_micros(300);
                    opts.out = None;
                }
                "--rounds" => {
                    opts.rounds = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--rounds N")
                }
                "--batch-ms" => {
                    opts.batch = Duration::from_millis(
                        args.next()
                            .and_then(|v| v.parse().ok())
                            .expect("--batch-ms N"),
                    )
                }
                "--out" => opts.out = args.next().map(PathBuf::from),
                "--no-out" => opts.out = None,
                "--profile" => return profile(args),
                // `cargo bench` passes `--bench`; ignore it and test-name filters.
                _ => {}
            }
        }
        // 5 subjects × 8192 eventfds each.
        raise_nofile(65536);
        let date = shell("date -u '+%Y-%m-%d %H:%M UTC'");
        let started = Instant::now();
        let mut t = Tables {
            steady: Vec::new(),
            wake: Vec::new(),
            churn: Vec::new(),
            modify: Vec::new(),
        };
        eprintln!(
            "select bench ({} rounds, {:?} batches)",
            opts.rounds, opts.batch
        );
        select_rows::<1>(&[1], &opts, &mut t);
        select_rows::<64>(&[1, 64], &opts, &mut t);
        if !opts.quick {
            select_rows::<1024>(&[1, 64, 1024], &opts, &mut t);
            select_rows::<8192>(&[1, 64, 8192], &opts, &mut t);
        }
        churn_row::<2048>(0, &opts, &mut t);
        churn_row::<2048>(if opts.quick { 64 } else { 1024 }, &opts, &mut t);
        let md = markdown(&t, &opts, &date);
        println!("{md}");
        eprintln!("select bench took {:.1} s", started.elapsed().as_secs_f64());
        if opts.quick {
            println!(
                "quick mode: harness ran and every check passed; the figures above judge nothing"
            );
        }
        if let Some(dir) = &opts.out {
            std::fs::create_dir_all(dir).expect("results dir");
            std::fs::write(dir.join("select.md"), &md).expect("write select.md");
            std::fs::write(dir.join("select.svg"), svg(&t)).expect("write select.svg");
            eprintln!("wrote {}/select.{{md,svg}}", dir.display());
        }
    }
}

#[cfg(target_os = "linux")]
fn main() {
    imp::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("this benchmark needs Linux");
}
