//! Benchmark: echo servers side by side, driven by one Rust load
//! generator.
//!
//! ```text
//! tests/bench/run.sh            # builds the servers, then runs this (and the select bench)
//! cargo bench -p ioselect-tests --bench echo [-- --quick]
//! ```
//!
//! Servers: ioselect's `echod` (demos), and the peers with echod's
//! connection logic on a raw rustix epoll loop (twice: the second copy is an
//! A/A control), mio and polling (`tests/examples/echo_*.rs`) and on
//! Python's `selectors` (`tests/bench/echo_selectors.py`), and a plain tokio
//! server (`echo_tokio.rs`) on the current-thread runtime and on the
//! multi-thread runtime with 1 and 2 workers. Each is started once, pinned
//! to the last CPU; the load generator pins itself to CPU 0.
//!
//! Workloads: C connections (1, 64, 1000) each doing ping-pong with S-byte
//! messages (64 B, 16 KiB): send a message, wait for all of it to come back,
//! send the next; and one connection streaming (bulk) with at most 4 MiB
//! in flight. Every byte that comes back is compared with what was sent (a
//! per-connection pseudo-random stream). Per run: messages/s (or MB/s), the
//! round-trip times' p50 and p99, and the server's CPU time (user + system,
//! from `/proc/PID/task/*/schedstat`, ns) per message (or per MB). Runs are
//! interleaved: a round is `--slices` passes, each running every server once
//! in a fresh random order, and a server's round figure is its total over
//! them; reported are medians over rounds and the median [p25–p75] of the
//! per-round ratios of server CPU to the raw epoll server's.
//!
//! Before the timed rounds, each server's system calls by kind are counted
//! over a fixed number of messages (`perf stat` on the syscall tracepoints,
//! or `strace -c -f`), and the run fails if echod makes more per message
//! than the raw epoll server on ping-pong.
//!
//! On a 2-core machine the load generator and the server saturate both cores
//! between them, so messages/s mostly measures the load generator; the
//! server's CPU per message is the figure that tells servers apart.
//!
//! Files: stream.rs (the bytes sent), server.rs, load.rs (the load
//! generator), calls.rs (system calls per message), stats.rs, report.rs
//! (echo.md), scaling.rs (--threads 1 against 2), svg.rs (echo.svg); this
//! file: the command line and the order of the runs.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op (each
// module is `#![cfg(target_os = "linux")]`).
mod calls;
mod load;
mod report;
mod scaling;
mod server;
mod stats;
mod stream;
mod svg;

#[cfg(target_os = "linux")]
mod imp {
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use crate::calls::syscalls;
    use crate::load::{Load, Plan, Run, drive};
    use crate::report::{stripped_size, summary, targets};
    use crate::scaling::scaling;
    use crate::server::Server;
    use crate::stats::{Row, shell};
    use crate::stream::pattern;
    use crate::svg::svg;

    pub(crate) struct Opts {
        quick: bool,
        pub(crate) rounds: usize,
        /// Timed runs per server per round (`Run::add`ed up).
        slices: usize,
        pub(crate) warmup: Duration,
        pub(crate) time: Duration,
        out: Option<PathBuf>,
        scaling: bool,
        /// Count system calls (before the timed rounds).
        syscalls: bool,
        /// Only count system calls: no timed rounds.
        syscalls_only: bool,
    }

    pub(super) fn main() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .to_path_buf();
        let mut opts = Opts {
            quick: false,
            rounds: 7,
            slices: 5,
            warmup: Duration::from_millis(100),
            time: Duration::from_millis(300),
            out: Some(root.join("tests/bench/results")),
            scaling: true,
            syscalls: true,
            syscalls_only: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.quick = true;
                    opts.rounds = 1;
                    opts.slices = 1;
                    opts.warmup = Duration::from_millis(20);
                    opts.time = Duration::from_millis(100);
                    opts.out = None;
                    opts.scaling = false;
                }
                "--rounds" => {
                    opts.rounds = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--rounds N")
                }
                "--slices" => {
                    opts.slices = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--slices N")
                }
                "--warmup-ms" => {
                    opts.warmup = Duration::from_millis(
                        args.next()
                            .and_then(|v| v.parse().ok())
                            .expect("--warmup-ms N"),
                    )
                }
                "--time-ms" => {
                    opts.time = Duration::from_millis(
                        args.next()
                            .and_then(|v| v.parse().ok())
                            .expect("--time-ms N"),
                    )
                }
                "--no-out" => opts.out = None,
                "--no-syscalls" => opts.syscalls = false,
                "--syscalls-only" => {
                    opts.syscalls_only = true;
                    opts.scaling = false;
                }
                "--out" => opts.out = args.next().map(PathBuf::from),
                _ => {} // `cargo bench` passes `--bench`
            }
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or(root.join("target"), PathBuf::from)
            .join("release");
        let bin = |p: &str| {
            let path = target.join(p);
            assert!(
                path.exists(),
                "{} is missing: run tests/bench/run.sh (or cargo build --release -p ioselect-demos --bin echod and -p ioselect-tests --examples)",
                path.display()
            );
            path.to_string_lossy().into_owned()
        };
        let python = root
            .join("tests/bench/echo_selectors.py")
            .to_string_lossy()
            .into_owned();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let server_cpu = (cpus > 1).then_some(cpus - 1);
        if cpus > 1 {
            let mut set = rustix::thread::CpuSet::new();
            set.set(0);
            rustix::thread::sched_setaffinity(None, &set).expect("pin the load generator to CPU 0");
        }
        let date = shell("date -u '+%Y-%m-%d %H:%M UTC'");
        let load_at_start = shell("cut -d' ' -f1-3 /proc/loadavg");
        let pattern = pattern();
        let started = Instant::now();

        let specs: Vec<(&'static str, Vec<String>)> = vec![
            ("raw epoll", vec![bin("examples/echo_raw")]),
            // The A/A control: a second copy of the same server.
            ("raw epoll (A/A)", vec![bin("examples/echo_raw")]),
            (
                "ioselect echod",
                vec![
                    bin("echod"),
                    "--port".into(),
                    "0".into(),
                    "--count-allocs".into(),
                ],
            ),
            ("mio", vec![bin("examples/echo_mio")]),
            ("polling", vec![bin("examples/echo_polling")]),
            (
                "tokio current-thread",
                vec![
                    bin("examples/echo_tokio"),
                    "--runtime".into(),
                    "current".into(),
                ],
            ),
            (
                "tokio multi-thread, 1 worker",
                vec![
                    bin("examples/echo_tokio"),
                    "--runtime".into(),
                    "multi".into(),
                    "--workers".into(),
                    "1".into(),
                ],
            ),
            (
                "tokio multi-thread, 2 workers",
                vec![
                    bin("examples/echo_tokio"),
                    "--runtime".into(),
                    "multi".into(),
                    "--workers".into(),
                    "2".into(),
                ],
            ),
            ("Python selectors", vec!["python3".into(), python]),
        ];
        // ECHO_EXTRA=name=/path/to/server,...: more servers (experiments).
        let mut specs = specs;
        for extra in std::env::var("ECHO_EXTRA").unwrap_or_default().split(',') {
            if let Some((name, path)) = extra.split_once('=') {
                let name: &'static str = Box::leak(name.to_string().into_boxed_str());
                specs.push((name, vec![path.to_string()]));
            }
        }
        // ECHO_ONLY=a,b: only the servers whose name contains a or b (debugging).
        let only = std::env::var("ECHO_ONLY").unwrap_or_default();
        let mut servers: Vec<Server> = specs
            .iter()
            .filter(|(name, _)| only.split(',').any(|o| name.contains(o)))
            .map(|(name, argv)| Server::start(name, argv, server_cpu))
            .collect();
        let mut workloads: Vec<(String, usize, Load)> = Vec::new();
        let conns: &[usize] = if opts.quick { &[1, 64] } else { &[1, 64, 1000] };
        for &c in conns {
            for s in [64usize, 16 * 1024] {
                let size = if s == 64 {
                    "64 B".to_string()
                } else {
                    "16 KiB".to_string()
                };
                workloads.push((format!("C={c} S={size}"), c, Load::PingPong(s)));
            }
        }
        workloads.push((
            "bulk stream, 1 connection".to_string(),
            1,
            Load::Stream(4 << 20),
        ));
        // ECHO_LOAD=substring: only the workloads whose label contains it.
        let only_load = std::env::var("ECHO_LOAD").unwrap_or_default();
        workloads.retain(|w| w.0.contains(only_load.as_str()));

        // System calls by kind, per message (per MB for the stream), counted
        // before the timed rounds; and the bound `run.sh --quick` enforces.
        let (calls_md, calls_ok) = if opts.syscalls {
            syscalls(&servers, &workloads, &pattern, opts.quick)
        } else {
            (String::new(), true)
        };
        if !calls_md.is_empty() {
            eprintln!("{calls_md}");
        }
        let timed: &[(String, usize, Load)] = if opts.syscalls_only { &[] } else { &workloads };

        eprintln!(
            "echo bench: {} servers, {} workloads, {} rounds of {} passes of {:?} (server on CPU {:?}, load generator on CPU 0)",
            servers.len(),
            workloads.len(),
            opts.rounds,
            opts.slices,
            opts.time,
            server_cpu
        );
        let mut rows = Vec::new();
        let mut stalls: Vec<String> = Vec::new();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for (label, c, load) in timed {
            let mut runs = vec![Vec::new(); servers.len()];
            let mut order: Vec<usize> = (0..servers.len()).collect();
            for _ in 0..opts.rounds {
                // A round is `slices` passes over every server, each pass in
                // a fresh random order; each server's round figure is its
                // total over them, so a burst of load elsewhere on the
                // machine lands on every server alike.
                let mut round = vec![Run::default(); servers.len()];
                for _ in 0..opts.slices {
                    for j in (1..order.len()).rev() {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        order.swap(j, (seed % (j as u64 + 1)) as usize);
                    }
                    for &s in &order {
                        let plan = Plan::Timed {
                            warmup: opts.warmup,
                            time: opts.time,
                        };
                        let mut run = drive(&servers[s], *c, *load, plan, &pattern);
                        // A window with no echo at all: reported, kept in the
                        // round's total (its CPU and time count), and run
                        // once more so that the round has messages.
                        if run.units == 0 {
                            eprintln!(
                                "  {label}: {}: nothing echoed in one window",
                                servers[s].name
                            );
                            stalls.push(format!("{} ({label})", servers[s].name));
                            let plan = Plan::Timed {
                                warmup: opts.warmup,
                                time: opts.time,
                            };
                            run.add(drive(&servers[s], *c, *load, plan, &pattern));
                        }
                        round[s].add(run);
                    }
                }
                for (s, run) in round.into_iter().enumerate() {
                    assert!(
                        run.units > 0,
                        "{}: nothing echoed in a round",
                        servers[s].name
                    );
                    runs[s].push(run);
                }
            }
            let row = Row {
                label: label.clone(),
                load: *load,
                runs,
            };
            eprint!("  {label:<28}");
            for (s, srv) in servers.iter().enumerate() {
                eprint!(" | {} {:.0}/s {:.0} ns", srv.name, row.rate(s), row.cpu(s));
            }
            eprintln!();
            rows.push(row);
        }

        // Footprint: peak RSS (after everything, so after the 1000-connection
        // runs), echod's allocations after start-up, binary sizes.
        let rss: Vec<u64> = servers.iter().map(Server::peak_rss_kib).collect();
        let names: Vec<&str> = servers.iter().map(|s| s.name).collect();
        let mut tails = Vec::new();
        for s in servers.drain(..) {
            tails.push(s.stop());
        }
        let at = |name: &str| names.iter().position(|n| *n == name);
        let allocs = at("ioselect echod")
            .and_then(|i| {
                tails[i]
                    .lines()
                    .find_map(|l| l.strip_prefix("allocations after start-up: "))
            })
            .map(str::to_string);
        let _ = tails.len();

        let scaling = if opts.scaling {
            Some(scaling(&bin("echod"), &pattern, &opts))
        } else {
            None
        };

        let mut md = String::new();
        let _ = writeln!(md, "## Echo servers\n");
        let _ = writeln!(
            md,
            "Measured {date} on {} CPUs ({}), Linux {}; load average at start: {load_at_start}. `cargo bench -p ioselect-tests --bench echo`; \
         {} rounds per cell, each of {} interleaved passes over the servers (a fresh random order each) of {:.2} s per server after {:.2} s warm-up, \
         a server's round figure its total over the passes; server pinned to CPU {}, load generator to CPU 0; medians over rounds. \
         Every echoed byte was checked.\n",
            cpus,
            shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"),
            shell("uname -r"),
            opts.rounds,
            opts.slices,
            opts.time.as_secs_f64(),
            opts.warmup.as_secs_f64(),
            server_cpu.map_or("(any)".to_string(), |c| c.to_string())
        );
        let _ = writeln!(
            md,
            "Server CPU per message is the figure to compare servers by (the load generator, on the other core, limits messages/s). \
         Cells: server CPU ns per message (ratio to the raw epoll server, median [p25–p75] of the per-round ratios); messages/s; RTT p50 / p99 in µs.\n"
        );
        let _ = write!(md, "| workload |");
        for n in &names {
            let _ = write!(md, " {n} |");
        }
        let _ = writeln!(md);
        let _ = writeln!(md, "|---|{}", "--:|".repeat(names.len()));
        for r in &rows {
            let _ = write!(md, "| {} |", r.label);
            for s in 0..names.len() {
                match r.load {
                    Load::PingPong(_) => {
                        let (lo, mid, hi) = r.cpu_ratio(s, 0);
                        let _ = write!(
                            md,
                            " **{:.0} ns/msg** ({mid:.2}× [{lo:.2}–{hi:.2}])<br>{:.0} msg/s<br>{:.0} / {:.0} µs |",
                            r.cpu(s),
                            r.rate(s),
                            r.rtt(s, 0.5),
                            r.rtt(s, 0.99)
                        );
                    }
                    Load::Stream(_) => {
                        let (lo, mid, hi) = r.cpu_ratio(s, 0);
                        let _ = write!(
                            md,
                            " **{:.2} ms/MB** ({mid:.2}× [{lo:.2}–{hi:.2}])<br>{:.0} MB/s |",
                            r.cpu(s),
                            r.rate(s)
                        );
                    }
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(
            md,
            "\nAt C = 1 the server blocks in `epoll_wait` after every message, so its CPU per message is mostly the kernel's \
         sleep and wake-up path (compare C = 64, where it rarely sleeps); that part varies from round to round (see the p25–p75)."
        );
        if !stalls.is_empty() {
            let _ = writeln!(
                md,
                "\nTimed windows in which a server echoed nothing at all (kept in its round's total, and one more window run): {}.",
                stalls.join(", ")
            );
        }
        if !rows.is_empty() {
            md.push_str(&summary(&rows, &names));
            md.push_str(&targets(&rows, &names));
        }
        md.push_str(&calls_md);
        let _ = writeln!(md, "\n### Footprint\n");
        let _ = writeln!(
            md,
            "| server | peak RSS (VmHWM, after all runs incl. 1000 connections) | stripped binary |"
        );
        let _ = writeln!(md, "|---|--:|--:|");
        for (i, n) in names.iter().enumerate() {
            let file = match *n {
                "raw epoll" => Some("examples/echo_raw"),
                "ioselect echod" => Some("echod"),
                "mio" => Some("examples/echo_mio"),
                "polling" => Some("examples/echo_polling"),
                n if n.starts_with("raw epoll") => Some("examples/echo_raw"),
                n if n.starts_with("tokio") => Some("examples/echo_tokio"),
                _ => None,
            };
            let size = file.map_or("(Python)".to_string(), |f| stripped_size(&target.join(f)));
            let _ = writeln!(md, "| {n} | {} KiB | {size} |", rss[i]);
        }
        let _ = writeln!(
            md,
            "\nechod's heap allocations after start-up, over all the runs above (its `--count-allocs`): {}\n",
            allocs.as_deref().unwrap_or("(not reported)")
        );
        if let Some(s) = &scaling {
            md.push_str(s);
        }
        println!("{md}");
        eprintln!("echo bench took {:.1} s", started.elapsed().as_secs_f64());
        if opts.quick {
            println!(
                "quick mode: every server ran every workload and echoed every byte correctly; the figures judge nothing"
            );
        }
        if let Some(dir) = &opts.out {
            std::fs::create_dir_all(dir).expect("results dir");
            std::fs::write(dir.join("echo.md"), &md).expect("write echo.md");
            std::fs::write(dir.join("echo.svg"), svg(&rows, &names)).expect("write echo.svg");
            eprintln!("wrote {}/echo.{{md,svg}}", dir.display());
        }
        if !calls_ok {
            eprintln!(
                "echo bench: FAILED: echod makes more system calls per message than the raw epoll server on ping-pong (see above)"
            );
            std::process::exit(1);
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
