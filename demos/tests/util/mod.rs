//! Helpers shared by the demo tests: child processes with deadlines.
#![allow(dead_code, unreachable_pub)]

/// Fault, load and soak helpers (`echod` /proc figures, limits, streams).
// Linux only, like the tests that use it (/proc figures, rlimit types).
#[cfg(target_os = "linux")]
pub mod fault;

/// Clients of `echod` shared by the `reliability_*.rs` tests: checked
/// echoes, floods, bad peers.
#[cfg(target_os = "linux")]
pub mod peer;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// A command that runs one of this package's programs at `path`: directly,
/// or under `IOSELECT_TEST_RUNNER` when that is set (an emulator and its
/// arguments, as `.ci/qemu-user.sh` sets it: `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`). Tests that run under QEMU's user-mode emulation
/// cannot start a program of their own architecture directly: the host
/// kernel does not know how to run it.
pub fn program(path: &str) -> Command {
    let runner = std::env::var("IOSELECT_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(emulator) => {
            let mut cmd = Command::new(emulator);
            cmd.args(words).arg(path);
            cmd
        }
        None => Command::new(path),
    }
}

/// A child process whose stdout lines arrive on a channel, killed on drop.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
        let lines = pipe_lines(child.stdout.take().expect("stdout is piped"));
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line of stdout, waiting at most `limit`.
    pub fn line(&mut self, limit: Duration) -> Option<String> {
        let l = self.lines.recv_timeout(limit).ok()?;
        self.seen.push(l.clone());
        Some(l)
    }

    /// Waits for a line starting with `prefix` (at most `limit`).
    pub fn expect_line(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.line(left) {
                Some(l) if l.starts_with(prefix) => return l,
                Some(_) => {}
                None => panic!(
                    "no line starting with {prefix:?} within {limit:?}; saw {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the exit (at most `limit`; killed and panics after that)
    /// and returns the status with all the rest of stdout.
    pub fn finish(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let status = wait_with_deadline(&mut self.child, limit);
        // The pipe closes at exit: collect the rest.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(l);
        }
        let seen = std::mem::take(&mut self.seen);
        (status, seen)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn pipe_lines(out: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for `child` at most `limit`; kills it and panics after that.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child {} did not exit within {limit:?}", child.id());
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion (at most `limit`), returning status and stdout.
pub fn run(cmd: &mut Command, limit: Duration) -> (ExitStatus, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let status = wait_with_deadline(&mut child, limit);
    (status, reader.join().expect("reader thread"))
}

/// True when `python3` runs here.
pub fn have_python() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}
