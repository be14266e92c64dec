//! System calls per message: counted with `perf stat` or `strace -c -f`,
//! attached to a running server only while it serves a fixed number of
//! messages; the table, and the bound echod is held to.
#![cfg(target_os = "linux")]

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::load::{Load, Plan, drive};
use crate::server::Server;

/// System calls by kind over one counted window.
#[derive(Default, Clone, Copy)]
pub(crate) struct Calls {
    /// `epoll_wait`, `epoll_pwait`, `epoll_pwait2` (and `poll`/`select`).
    wait: u64,
    /// `read`, `readv`, `recvfrom`, `recvmsg`, `recvmmsg`.
    read: u64,
    /// Of those, the ones that failed (`EAGAIN`: nothing to read).
    read_failed: u64,
    /// `write`, `writev`, `sendto`, `sendmsg`, `sendmmsg`.
    write: u64,
    ctl: u64,
    /// Everything else (`futex` for tokio's threads, ...).
    other: u64,
}

impl Calls {
    pub(crate) fn total(&self) -> u64 {
        self.wait + self.read + self.write + self.ctl + self.other
    }

    /// Parses `strace -c`'s table: `% time  seconds  usecs/call  calls
    /// [errors]  syscall`.
    pub(crate) fn parse(text: &str) -> Calls {
        let mut c = Calls::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if !(5..=6).contains(&f.len()) || f[0].parse::<f64>().is_err() {
                continue;
            }
            let name = f[f.len() - 1];
            let (Ok(calls), errors) = (
                f[3].parse::<u64>(),
                if f.len() == 6 {
                    f[4].parse::<u64>().unwrap_or(0)
                } else {
                    0
                },
            ) else {
                continue;
            };
            match name {
                "total" => {}
                "epoll_wait" | "epoll_pwait" | "epoll_pwait2" | "poll" | "ppoll" | "select"
                | "pselect6" => c.wait += calls,
                "read" | "readv" | "recvfrom" | "recvmsg" | "recvmmsg" => {
                    c.read += calls;
                    c.read_failed += errors;
                }
                "write" | "writev" | "sendto" | "sendmsg" | "sendmmsg" => c.write += calls,
                "epoll_ctl" => c.ctl += calls,
                _ => c.other += calls,
            }
        }
        c
    }

    /// Parses `perf stat -x,`: `count,,event,...` per event (see
    /// `Tracer::attach` for the events).
    pub(crate) fn parse_perf(text: &str) -> Option<Calls> {
        let mut c = Calls::default();
        let mut total = None;
        for line in text.lines() {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 3 {
                continue;
            }
            let Ok(n) = f[0].trim().parse::<u64>() else {
                continue;
            };
            let ev = f[2].trim();
            if ev == "raw_syscalls:sys_enter" {
                total = Some(n);
            } else if let Some(name) = ev.strip_prefix("syscalls:sys_enter_") {
                if PERF_WAIT.contains(&name) {
                    c.wait += n;
                } else if PERF_READ.contains(&name) {
                    c.read += n;
                } else if PERF_WRITE.contains(&name) {
                    c.write += n;
                } else if name == "epoll_ctl" {
                    c.ctl += n;
                }
            } else if ev.starts_with("syscalls:sys_exit_") {
                c.read_failed += n;
            }
        }
        c.other = total?.saturating_sub(c.wait + c.read + c.write + c.ctl);
        Some(c)
    }
}

/// What counts the system calls.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// `perf stat` on the kernel's syscall tracepoints: counting costs the
    /// server next to nothing, so it runs as it does untimed.
    Perf,
    /// `strace -c -f` (when perf cannot count tracepoints here): stops
    /// the server at every call, which changes its timing (see the notes).
    Strace,
}

pub(crate) const PERF_WAIT: &[&str] = &["epoll_wait", "epoll_pwait", "epoll_pwait2"];
pub(crate) const PERF_READ: &[&str] = &["read", "readv", "recvfrom", "recvmsg"];
pub(crate) const PERF_WRITE: &[&str] = &["write", "writev", "sendto", "sendmsg"];

impl Counter {
    /// `ECHO_COUNTER=strace|perf`, else perf if it can count the syscall
    /// tracepoints here, else strace.
    pub(crate) fn pick() -> Counter {
        match std::env::var("ECHO_COUNTER").as_deref() {
            Ok("strace") => return Counter::Strace,
            Ok("perf") => return Counter::Perf,
            _ => {}
        }
        let perf_works = Command::new("perf")
            .args([
                "stat",
                "-x,",
                "-o",
                "/dev/null",
                "-e",
                "raw_syscalls:sys_enter",
                "--",
                "true",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if perf_works {
            Counter::Perf
        } else {
            Counter::Strace
        }
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Counter::Perf => {
                "`perf stat` on the kernel's syscall tracepoints (`raw_syscalls:sys_enter` for the total, \
                 `syscalls:sys_enter_*` by kind, `syscalls:sys_exit_*` filtered on `ret == -11` for the reads that found nothing), \
                 attached to the running server's threads and enabled only while it served a fixed amount \
                 (`perf stat -D -1 --control`). Counting in the kernel barely slows the server, so it keeps its untraced timing"
            }
            Counter::Strace => {
                "`strace -c -f` (perf could not count tracepoints here), attached to the running server's threads only while it served \
                 a fixed amount. strace stops the server at every call, several times slower than untraced, so more events wait \
                 for each `epoll_wait` and a read after a write may find the next message already there: `epoll_wait` and failed-read \
                 figures are lower here than in the timed runs"
            }
        }
    }
}

/// A counter attached to a server for one counted window.
pub(crate) struct Tracer {
    child: Child,
    out: PathBuf,
    /// perf's control and acknowledgement FIFOs (ours to write and read).
    fifos: Option<(std::fs::File, BufReader<std::fs::File>, PathBuf, PathBuf)>,
}

impl Tracer {
    pub(crate) fn attach(counter: Counter, pid: u32) -> Tracer {
        let tag = format!("{}-{pid}", std::process::id());
        let out = std::env::temp_dir().join(format!("ioselect-bench-count-{tag}"));
        match counter {
            Counter::Strace => {
                let mut child = Command::new("strace")
                    .args(["-c", "-f", "-o"])
                    .arg(&out)
                    .args(["-p", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("strace (tests/bench/run.sh installs it)");
                // strace says "Process N attached [with K threads]" once
                // every thread is traced.
                let mut err = BufReader::new(child.stderr.take().expect("stderr"));
                let mut line = String::new();
                loop {
                    line.clear();
                    let n = err.read_line(&mut line).expect("strace stderr");
                    assert!(n > 0, "strace exited before attaching");
                    if line.contains("attached") {
                        break;
                    }
                }
                // Keep reading its stderr so it never blocks on a full pipe.
                std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
                Tracer {
                    child,
                    out,
                    fifos: None,
                }
            }
            Counter::Perf => {
                let ctl = std::env::temp_dir().join(format!("ioselect-bench-ctl-{tag}"));
                let ack = std::env::temp_dir().join(format!("ioselect-bench-ack-{tag}"));
                for f in [&ctl, &ack] {
                    let _ = std::fs::remove_file(f);
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        f,
                        rustix::fs::FileType::Fifo,
                        rustix::fs::Mode::from_raw_mode(0o600),
                        0,
                    )
                    .expect("mkfifo");
                }
                let mut events: Vec<String> = vec!["-e".into(), "raw_syscalls:sys_enter".into()];
                for name in PERF_WAIT
                    .iter()
                    .chain(PERF_READ)
                    .chain(PERF_WRITE)
                    .chain(&["epoll_ctl"])
                {
                    events.push("-e".into());
                    events.push(format!("syscalls:sys_enter_{name}"));
                }
                for name in PERF_READ {
                    events.push("-e".into());
                    events.push(format!("syscalls:sys_exit_{name}"));
                    events.push("--filter".into());
                    events.push("ret == -11".into());
                }
                let child = Command::new("perf")
                    .args(["stat", "-x,", "-D", "-1", "-o"])
                    .arg(&out)
                    .arg("--control")
                    .arg(format!("fifo:{},{}", ctl.display(), ack.display()))
                    .args(&events)
                    .args(["-p", &pid.to_string()])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("perf");
                // Read-write opens of a FIFO never block on Linux.
                let open = |p: &Path| {
                    std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(p)
                        .expect("open FIFO")
                };
                let mut t = Tracer {
                    child,
                    out,
                    fifos: Some((open(&ctl), BufReader::new(open(&ack)), ctl, ack)),
                };
                t.control("enable");
                t
            }
        }
    }

    /// Sends perf a command and waits for its acknowledgement.
    pub(crate) fn control(&mut self, cmd: &str) {
        use std::io::Write as _;
        let Some((ctl, ack, ..)) = self.fifos.as_mut() else {
            return;
        };
        writeln!(ctl, "{cmd}").expect("perf control");
        let mut line = String::new();
        ack.read_line(&mut line).expect("perf ack");
        // perf writes "ack\n" with its C string's NUL.
        let got = line.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        assert_eq!(got, "ack", "perf answered {line:?} to {cmd}");
    }

    pub(crate) fn detach(mut self, name: &str) -> Calls {
        self.control("disable");
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
        let status = self.child.wait().expect("counter");
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let _ = std::fs::remove_file(&self.out);
        if let Some((_, _, ctl, ack)) = &self.fifos {
            let _ = std::fs::remove_file(ctl);
            let _ = std::fs::remove_file(ack);
            Calls::parse_perf(&text)
                .unwrap_or_else(|| panic!("{name}: perf stat gave no counts ({status}): {text:?}"))
        } else {
            assert!(
                text.contains("total"),
                "{name}: strace gave no summary ({status}): {text:?}"
            );
            Calls::parse(&text)
        }
    }
}

/// Runs `load` on `server` under a `Plan::Counted`, with the counter
/// attached to the server (all its threads) for the counted part only.
pub(crate) fn count_calls(
    counter: Counter,
    server: &Server,
    conns: usize,
    load: Load,
    warm: u64,
    count: u64,
    pattern: &[u8],
) -> Calls {
    let mut tracer: Option<Tracer> = None;
    let mut result = None;
    let mut hook = |start: bool| {
        if start {
            tracer = Some(Tracer::attach(counter, server.child.id()));
        } else if let Some(t) = tracer.take() {
            result = Some(t.detach(server.name));
        }
    };
    let plan = Plan::Counted {
        warm,
        count,
        hook: &mut hook,
    };
    drive(server, conns, load, plan, pattern);
    result.expect("counted window")
}

/// Counts every server's system calls on every workload (`count_calls`)
/// and checks echod's bound: on ping-pong, echod makes no more system
/// calls per message than the raw epoll server (all of them at one
/// connection, where the count is exact; reads, writes and `epoll_ctl` at
/// more, where how many events one `epoll_wait` returns depends on
/// timing). Returns the markdown and whether the bound held.
pub(crate) fn syscalls(
    servers: &[Server],
    workloads: &[(String, usize, Load)],
    pattern: &[u8],
    quick: bool,
) -> (String, bool) {
    let counter = Counter::pick();
    // (warm, counted) units per connection.
    let amount = |c: usize, load: Load| -> (u64, u64) {
        match (load, c, quick) {
            (Load::Stream(_), _, true) => (1 << 20, 16 << 20),
            (Load::Stream(_), _, false) => (4 << 20, 64 << 20),
            (_, 1, true) => (50, 500),
            (_, 1, false) => (100, 2000),
            (_, c, true) => (5, (1280 / c as u64).max(2)),
            (_, c, false) => (5, (4000 / c as u64).max(4)),
        }
    };
    let mut md = String::from("### System calls per message\n\n");
    let _ = writeln!(
        md,
        "Counted with {}. Each connection first does a few messages (or MB) and everything comes back; counting starts; each connection \
         does N more and everything comes back; counting stops. Nothing here is timed, and the timed rounds run with no counter attached. \
         Per message for ping-pong (N per connection × C connections), per MB (10^6 bytes) for the stream. \
         \"read\" counts `read`/`readv`/`recvfrom`/`recvmsg` (failed: those that found nothing, `EAGAIN`), \"write\" `write`/`writev`/`sendto`/`sendmsg`, \
         \"epoll_wait\" also `epoll_pwait`/`epoll_pwait2`; \"other\" is everything else (tokio's threads: `futex`). Where the server \
         waits for each message (one connection) the counts are exact; where events pile up (64 and 1000 connections, the stream), \
         how many one `epoll_wait` returns, and how often a read finds nothing, depend on timing.\n",
        counter.describe()
    );
    let _ = writeln!(
        md,
        "| workload | N | server | epoll_wait | read (failed) | write | epoll_ctl | other | total |"
    );
    let _ = writeln!(md, "|---|--:|---|--:|--:|--:|--:|--:|--:|");
    let raw = servers.iter().position(|s| s.name == "raw epoll");
    let io = servers.iter().position(|s| s.name == "ioselect echod");
    let mut verdicts = String::new();
    let mut ok = true;
    for (label, c, load) in workloads {
        let (warm, count) = amount(*c, *load);
        let per = match load {
            Load::PingPong(_) => (*c as u64 * count) as f64,
            Load::Stream(_) => count as f64 / 1e6,
        };
        let mut got = Vec::new();
        for srv in servers {
            let calls = count_calls(counter, srv, *c, *load, warm, count, pattern);
            let f = |v: u64| v as f64 / per;
            let dec = if matches!(load, Load::Stream(_)) {
                1
            } else {
                3
            };
            let n = match load {
                Load::PingPong(_) => format!("{count}"),
                Load::Stream(_) => format!("{} MiB", count >> 20),
            };
            let _ = writeln!(
                md,
                "| {label} | {n} | {} | {:.dec$} | {:.dec$} ({:.dec$}) | {:.dec$} | {:.dec$} | {:.dec$} | **{:.dec$}** |",
                srv.name,
                f(calls.wait),
                f(calls.read),
                f(calls.read_failed),
                f(calls.write),
                f(calls.ctl),
                f(calls.other),
                f(calls.total())
            );
            got.push(calls);
        }
        if let (Load::PingPong(_), Some(r), Some(i)) = (load, raw, io) {
            let (what, a, b) = if *c == 1 {
                ("all system calls", got[i].total(), got[r].total())
            } else {
                let rwc = |k: &Calls| k.read + k.write + k.ctl;
                ("reads + writes + epoll_ctl", rwc(&got[i]), rwc(&got[r]))
            };
            let (a, b) = (a as f64 / per, b as f64 / per);
            // Slack for the call strace interrupts when it attaches.
            let held = a <= b + 0.01;
            ok &= held;
            let _ = writeln!(
                verdicts,
                "- {label}: {what} per message, echod {a:.3}, raw epoll {b:.3}: {}",
                if held { "ok" } else { "**FAILED**" }
            );
        }
    }
    if !verdicts.is_empty() {
        let _ = writeln!(
            md,
            "\nBound (`tests/bench/run.sh --quick` fails without it): on ping-pong, echod makes no more system calls per message than the raw epoll server.\n"
        );
        md.push_str(&verdicts);
    }
    (md, ok)
}
