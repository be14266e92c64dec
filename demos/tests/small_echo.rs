//! The small echo servers of the size comparison (`small_echo_ioselect`,
//! `small_echo_mio`) echo the same way, through the same client
//! (`echo_check`) that `static-check.sh` uses on their static builds.
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::thread;
use std::time::Duration;

use rustix::process::{Pid, Resource, Rlimit, prlimit, setrlimit};

use util::Proc;

const LIMIT: Duration = Duration::from_secs(30);

fn check(server: &str) {
    let mut proc = Proc::spawn(util::program(server).args(["--port", "0"]));
    let line = proc.expect_line("listening on 127.0.0.1:", LIMIT);
    let port = line.rsplit(':').next().unwrap();
    // More clients than the 16 slots (the rest wait for a free slot), and
    // more data per client than the 4 KiB buffer (backpressure, half-close).
    for (clients, bytes) in [("40", "100000"), ("4", "2000000")] {
        let (status, out) = util::run(
            util::program(env!("CARGO_BIN_EXE_echo_check")).args([
                "--port",
                port,
                "--clients",
                clients,
                "--bytes",
                bytes,
            ]),
            LIMIT,
        );
        assert!(status.success(), "{server}: {status} {out}");
        assert_eq!(
            out.trim(),
            format!("echo_check: {clients} clients x {bytes} bytes echoed")
        );
    }
}

#[test]
fn small_echo_ioselect_echoes() {
    check(env!("CARGO_BIN_EXE_small_echo_ioselect"));
}

#[test]
fn small_echo_mio_echoes() {
    check(env!("CARGO_BIN_EXE_small_echo_mio"));
}

/// CPU time (user + system) of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Out of fds: with RLIMIT_NOFILE at `idle_fds`, exactly the fds the server
/// holds when idle, a pending connection makes every `accept` fail with
/// EMFILE while the listener stays readable. The server must rest (under 20%
/// of a CPU over a second), and serve the client once the limit is raised.
fn rests_when_out_of_fds(server: &str, idle_fds: u64) {
    let mut cmd = util::program(server);
    cmd.args(["--port", "0"]);
    // SAFETY: `setrlimit` is one system call, async-signal-safe, and
    // touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(move || {
            let limit = Rlimit {
                current: Some(idle_fds),
                maximum: Some(64),
            };
            setrlimit(Resource::Nofile, limit).map_err(std::io::Error::from)
        });
    }
    let mut proc = Proc::spawn(&mut cmd);
    let line = proc.expect_line("listening on 127.0.0.1:", LIMIT);
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.set_read_timeout(Some(LIMIT)).unwrap();
    client.write_all(b"out of fds").unwrap();
    thread::sleep(Duration::from_millis(200));

    // SAFETY: `sysconf` has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let before = cpu_ticks(proc.pid());
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(proc.pid()) - before;
    assert!(
        used * 10 < hz * 2,
        "{server}: {used} ticks ({hz}/s) in a second out of fds"
    );

    let pid = Pid::from_raw(proc.pid() as i32).unwrap();
    let limit = Rlimit {
        current: Some(64),
        maximum: Some(64),
    };
    prlimit(Some(pid), Resource::Nofile, limit).unwrap();
    let mut got = [0u8; 10];
    client
        .read_exact(&mut got)
        .expect("served after the limit went up");
    assert_eq!(&got, b"out of fds");
}

#[test]
fn small_echo_ioselect_rests_when_out_of_fds() {
    // 6: stdio, the listener, the epoll fd and the eventfd every `Epoll`
    // owns from `open()` on (for its wakers), though this server makes none.
    rests_when_out_of_fds(env!("CARGO_BIN_EXE_small_echo_ioselect"), 6);
}

#[test]
fn small_echo_mio_rests_when_out_of_fds() {
    // 5: stdio, the listener and the epoll fd (mio's `Poll` opens no
    // eventfd until a `Waker` is made, and this server makes none).
    rests_when_out_of_fds(env!("CARGO_BIN_EXE_small_echo_mio"), 5);
}
