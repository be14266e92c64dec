//! Helpers for the fault, load and soak tests: an `echod` child with its
//! /proc figures (RSS, open fds, CPU time, threads), resource limits,
//! deterministic byte streams and checksums.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use super::Proc;

/// How long echod gets to start and to stop.
pub const START_LIMIT: Duration = Duration::from_secs(20);

/// True when the long variants are asked for (`IOSELECT_LONG=1`).
pub fn long() -> bool {
    std::env::var("IOSELECT_LONG").is_ok_and(|v| v == "1")
}

/// A running echod, killed on drop if still running.
pub struct Echod {
    pub proc: Proc,
    pub port: u16,
}

impl Echod {
    /// Starts `echod --port 0 ARGS` and waits for `listening on`.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, None)
    }

    /// As [`start`](Self::start), with the child's `RLIMIT_NOFILE` (soft and
    /// hard) set to `nofile` before `exec` when given.
    pub fn start_with(args: &[&str], nofile: Option<u64>) -> Self {
        let mut cmd = super::program(env!("CARGO_BIN_EXE_echod"));
        cmd.args(["--port", "0"]).args(args);
        if let Some(limit) = nofile {
            // rlim_t is 32 bits on 32-bit targets: a larger limit saturates.
            let limit = libc::rlim_t::try_from(limit).unwrap_or(libc::rlim_t::MAX);
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            // SAFETY: the closure runs in the child between fork and exec and
            // calls only `setrlimit`, which is async-signal-safe; `lim` is a
            // plain value copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut proc = Proc::spawn(&mut cmd);
        let line = proc.expect_line("listening on ", START_LIMIT);
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        assert_ne!(port, 0, "{line}");
        Self { proc, port }
    }

    /// A blocking client with read and write timeouts.
    pub fn connect(&self) -> TcpStream {
        connect(self.port)
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid() as i32
    }

    /// Panics when echod has exited.
    pub fn assert_alive(&mut self) {
        if let Some(status) = self.proc.child.try_wait().expect("try_wait") {
            panic!("echod exited: {status}; output {:?}", self.proc.seen);
        }
    }

    /// Sends `signal` to the whole process.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// SIGTERM, then the exit status must be 0; returns the output lines.
    pub fn stop(mut self) -> Vec<String> {
        self.assert_alive();
        self.signal(libc::SIGTERM);
        let (status, lines) = self.proc.finish(START_LIMIT);
        assert!(status.success(), "echod exited with {status}: {lines:#?}");
        lines
    }

    /// CPU time (user + system) used so far, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        cpu_ticks(self.pid())
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn fd_count(&self) -> usize {
        fd_count(self.pid())
    }

    /// Thread ids other than the main thread's (echod's workers).
    pub fn worker_tids(&self) -> Vec<i32> {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .expect("/proc/PID/task")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|&tid| tid != self.pid())
            .collect()
    }

    /// Waits (at most `limit`) until the open-fd count is `want`; returns the
    /// last count seen.
    pub fn wait_fds(&self, want: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let n = self.fd_count();
            if n == want || Instant::now() >= deadline {
                return n;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// echod's closing `shutting down: ...` line among the lines it printed
/// (what [`Echod::stop`] returns); panics without one.
pub fn shutdown_summary(out: &[String]) -> &str {
    out.iter()
        .find(|l| l.starts_with("shutting down"))
        .expect("summary")
}

/// A blocking loopback client of `port` with read and write timeouts.
pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to echod");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Sends `signal` to process `pid` (a child of ours not yet waited for).
pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: `kill` takes plain integers; callers pass our own child, which
    // has not been waited for yet (so its pid cannot have been reused).
    let r = unsafe { libc::kill(pid, signal) };
    assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
}

/// CPU time (user + system) process `pid` used so far, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of process `pid` (entries of /proc/PID/fd).
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count()
}

/// The numbers of the open file descriptors of process `pid`.
pub fn fd_numbers(pid: i32) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// The system call thread `tid` of process `pid` is blocked in, if any
/// (from /proc/PID/task/TID/syscall; `None` while it runs).
pub fn blocked_in(pid: i32, tid: i32) -> Option<i64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    s.split(' ').next()?.trim().parse().ok()
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
pub fn clock_hz() -> u64 {
    // SAFETY: `sysconf` has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// Raises this process's `RLIMIT_NOFILE` (soft, and hard when allowed) to at
/// least `want`; returns the soft limit now in force. Children inherit it.
#[allow(
    clippy::useless_conversion,
    reason = "rlim_t is u64 here, u32 on 32-bit targets"
)]
pub fn raise_nofile(want: u64) -> u64 {
    // rlim_t is 32 bits on 32-bit targets: a larger limit saturates.
    let want = libc::rlim_t::try_from(want).unwrap_or(libc::rlim_t::MAX);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable `rlimit`.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if lim.rlim_cur >= want {
        return u64::from(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: want,
        rlim_max: lim.rlim_max.max(want),
    };
    // SAFETY: `raised` is a valid `rlimit`. Raising the hard limit needs
    // CAP_SYS_RESOURCE; without it this fails and we fall back below.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
        return u64::from(want);
    }
    let soft = libc::rlimit {
        rlim_cur: lim.rlim_max,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: as above; the soft limit may always go up to the hard one.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
    // SAFETY: `lim` is a valid, writable `rlimit`.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    u64::from(lim.rlim_cur)
}

/// SplitMix64: a good 64-bit mix, used as a counter-based generator.
pub fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Byte `idx` of the stream named `seed`: random-looking, and computable at
/// any offset, so writers and checkers need no copy of the data.
pub fn stream_byte(seed: u64, idx: u64) -> u8 {
    (splitmix(seed ^ (idx / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93)) >> ((idx % 8) * 8)) as u8
}

/// Fills `buf` with bytes `at..at + buf.len()` of stream `seed`.
pub fn fill_stream(seed: u64, at: u64, buf: &mut [u8]) {
    let mut i = 0;
    let mut idx = at;
    // Head up to a multiple of 8, then whole words.
    while i < buf.len() && !idx.is_multiple_of(8) {
        buf[i] = stream_byte(seed, idx);
        i += 1;
        idx += 1;
    }
    while buf.len() - i >= 8 {
        let w = splitmix(seed ^ (idx / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93));
        buf[i..i + 8].copy_from_slice(&w.to_le_bytes());
        i += 8;
        idx += 8;
    }
    while i < buf.len() {
        buf[i] = stream_byte(seed, idx);
        i += 1;
        idx += 1;
    }
}

/// Index of the first byte of `got` that is not bytes `at..` of stream
/// `seed`, if any.
pub fn check_stream(seed: u64, at: u64, got: &[u8]) -> Option<usize> {
    let mut want = vec![0u8; got.len()];
    fill_stream(seed, at, &mut want);
    got.iter().zip(&want).position(|(a, b)| a != b)
}

/// 64-bit FNV-1a, fed in pieces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xCBF2_9CE4_8422_2325)
    }
}

impl Fnv {
    pub fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01B3);
        }
    }
}

/// One round trip of `data` on a blocking connection; returns how long it
/// took. Panics if the echo differs.
pub fn round_trip(s: &mut TcpStream, data: &[u8]) -> Duration {
    let t = Instant::now();
    s.write_all(data).expect("send");
    let mut got = vec![0; data.len()];
    s.read_exact(&mut got).expect("echo");
    assert_eq!(got, data, "echo differs");
    t.elapsed()
}

/// Resets `s` (SO_LINGER 0, then close): the peer gets RST, not FIN.
pub fn reset(s: TcpStream) {
    rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(s);
}
