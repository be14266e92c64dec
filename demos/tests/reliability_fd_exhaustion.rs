//! Reliability of `echod` on loopback when it runs out of file
//! descriptors under a storm of connects. Prints its figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` makes the connect storm last longer.
#![cfg(target_os = "linux")]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use util::fault::{Echod, clock_hz, fd_numbers, long, round_trip, shutdown_summary};
use util::peer::serial;

#[test]
fn out_of_fds_under_a_connect_storm() {
    let _serial = serial();
    const NOFILE: usize = 64;
    let secs = if long() { 20 } else { 2 };
    // The limit is set from outside (soft and hard, before exec), not with
    // echod's own --nofile.
    let mut echod = Echod::start_with(&["--max-conns", "512"], Some(NOFILE as u64));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", echod.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().collect::<Vec<_>>()[3..5],
        ["64", "64"],
        "{line}"
    );
    // The limit bounds fd numbers: inherited fds numbered above it (a
    // jobserver's pipe, say) take no room.
    let below = |pid| {
        fd_numbers(pid)
            .into_iter()
            .filter(|&n| n < NOFILE as i32)
            .count()
    };
    let idle_fds = below(echod.pid());
    let room = NOFILE - idle_fds;

    // Take every fd the server has, and then some.
    let mut held = Vec::new();
    let mut rejected_at_fill = 0;
    for i in 0..(room + 30) {
        let mut s = echod.connect();
        s.write_all(&[i as u8]).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(1) => {
                assert_eq!(b[0], i as u8);
                held.push(s);
            }
            Ok(0) => rejected_at_fill += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => rejected_at_fill += 1,
            other => panic!("client {i}: {other:?}"),
        }
    }
    assert_eq!(held.len(), room, "idle fds {idle_fds}, limit {NOFILE}");
    // The last rejection closes the spare fd, accepts and closes the
    // connection (which the client saw above), then reopens the spare: wait
    // (bounded) for that reopen before checking that every fd is in use.
    let settle = Instant::now() + Duration::from_secs(5);
    while below(echod.pid()) < NOFILE && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(below(echod.pid()), NOFILE);

    // A storm of connects while out of fds: 10 every 5 ms, each held 50 ms.
    // The held clients keep being served; the server must not spin.
    let hz = clock_hz();
    let before = echod.cpu_ticks();
    let t = Instant::now();
    let mut knocks = std::collections::VecDeque::new();
    let mut knocked = 0u64;
    let mut worst = Duration::ZERO;
    let mut k = 0usize;
    while t.elapsed() < Duration::from_secs(secs) {
        for _ in 0..10 {
            knocks.push_back((Instant::now(), echod.connect()));
            knocked += 1;
        }
        while knocks
            .front()
            .is_some_and(|(at, _)| at.elapsed() > Duration::from_millis(50))
        {
            knocks.pop_front();
        }
        let i = k % held.len();
        worst = worst.max(round_trip(&mut held[i], &[k as u8; 100]));
        k += 1;
        thread::sleep(Duration::from_millis(5));
    }
    let used = echod.cpu_ticks() - before;
    let wall = t.elapsed();
    drop(knocks);
    echod.assert_alive();
    let cpu = used as f64 / hz as f64 / wall.as_secs_f64();
    assert!(
        cpu < 0.2,
        "echod used {used} ticks ({hz}/s) in {wall:?} out of fds: {:.0}%",
        cpu * 100.0
    );
    assert!(worst < Duration::from_secs(1), "worst round trip {worst:?}");

    // Free half the fds: new clients are served again.
    let freed = held.len() / 2;
    held.truncate(held.len() - freed);
    thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut fresh: Vec<TcpStream> = Vec::new();
    for i in 0..freed - 2 {
        let mut s = echod.connect();
        round_trip(&mut s, format!("recovered {i}").as_bytes());
        fresh.push(s);
    }
    let recovery = t.elapsed();
    for s in held.iter_mut().chain(fresh.iter_mut()) {
        round_trip(s, b"all still served");
    }
    let out = echod.stop();
    let summary = shutdown_summary(&out);
    assert!(!summary.contains(" 0 rejected"), "{summary}");
    println!(
        "out of fds: RLIMIT_NOFILE {NOFILE} (set before exec), {} connections held, \
         {rejected_at_fill} turned away at the limit, {knocked} connects knocked in {wall:?} while out \
         of fds, echod CPU {used} ticks ({hz}/s) = {:.1}% of wall; held clients' worst round trip \
         {worst:?}; after freeing {freed} fds, {} new clients served in {recovery:?}; echod: {summary}",
        room,
        cpu * 100.0,
        freed - 2,
    );
}
