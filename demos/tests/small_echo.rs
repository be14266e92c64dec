//! The small echo servers of the size comparison (`small_echo_ioselect`,
//! `small_echo_mio`) echo the same way, through the same client
//! (`echo_check`) that `static-check.sh` uses on their static builds.
#![cfg(target_os = "linux")]

mod util;

use std::process::Command;
use std::time::Duration;

use util::Proc;

const LIMIT: Duration = Duration::from_secs(30);

fn check(server: &str) {
    let mut proc = Proc::spawn(Command::new(server).args(["--port", "0"]));
    let line = proc.expect_line("listening on 127.0.0.1:", LIMIT);
    let port = line.rsplit(':').next().unwrap();
    // More clients than the 16 slots (the rest wait for a free slot), and
    // more data per client than the 4 KiB buffer (backpressure, half-close).
    for (clients, bytes) in [("40", "100000"), ("4", "2000000")] {
        let (status, out) = util::run(
            Command::new(env!("CARGO_BIN_EXE_echo_check")).args([
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
