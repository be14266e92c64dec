//! Reliability of `echod` on loopback over a bounded soak of mixed clients
//! (short- and long-lived, bad and idle peers): RSS and open fds stay flat.
//! Prints its figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` runs a 2-minute soak.
#![cfg(target_os = "linux")]

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;
use std::time::Instant;

use util::fault::{Echod, fill_stream, long, round_trip, shutdown_summary, splitmix};
use util::peer::{Count, Faults, bad_peer, echo_checked, run_seed, serial};

/// Totals of the soak's clients.
#[derive(Default)]
struct Soak {
    connections: Count,
    bytes: Count,
    faults: Count,
}

/// One soak client of `kind` looping until `stop`; every echo is checked.
fn soak_client(port: u16, kind: u64, seed: u64, stop: &AtomicBool, tally: &Soak) {
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        tally.connections.add(1);
        s
    };
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) && n < 1_000_000 {
        n += 1;
        let seed = splitmix(seed ^ n);
        match kind {
            // Short-lived: one payload, half-close, echo to EOF.
            0 | 1 => {
                let len = seed % (256 * 1024) + 1;
                let (sent, got) = echo_checked(connect(), seed, len);
                assert_eq!(sent, got);
                tally.bytes.add(len);
            }
            // Long-lived: many small round trips on one connection.
            2 | 3 => {
                let mut s = connect();
                let mut msg = vec![0u8; 4096];
                for r in 0..200u64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let len = (splitmix(seed ^ r) % 4096 + 1) as usize;
                    fill_stream(seed, r * 4096, &mut msg[..len]);
                    round_trip(&mut s, &msg[..len]);
                    tally.bytes.add(len as u64);
                    thread::sleep(Duration::from_millis(2));
                }
            }
            // Bad peers, in turn.
            4 => {
                let f = Faults::default();
                bad_peer(port, n, seed, &f);
                tally.faults.add(f.total());
                tally.bytes.add(f.flood_bytes.get());
                tally.connections.add(1);
            }
            // Idle peers that the idle timeout closes.
            _ => {
                let s = connect();
                let mut b = [0u8; 1];
                assert_eq!((&s).read(&mut b).expect("idle close"), 0);
                tally.faults.add(1);
            }
        }
    }
}

#[test]
fn soak_mixed_clients_rss_and_fds_stay_flat() {
    let _serial = serial();
    let seed = run_seed();
    let run = Duration::from_secs(if long() { 120 } else { 12 });
    let every = Duration::from_secs(1);
    let mut echod = Echod::start(&[
        "--threads",
        "2",
        "--max-conns",
        "256",
        "--idle-timeout",
        "2",
    ]);
    let idle_fds = echod.fd_count();
    let idle_rss = echod.rss_kib();
    let stop = AtomicBool::new(false);
    let tally = Soak::default();
    let mut series: Vec<(Duration, u64, usize)> = Vec::new();
    let t = Instant::now();
    thread::scope(|s| {
        let port = echod.port;
        let clients: Vec<_> = (0..6u64)
            .map(|kind| {
                let (stop, tally) = (&stop, &tally);
                s.spawn(move || soak_client(port, kind, splitmix(seed ^ kind), stop, tally))
            })
            .collect();
        while t.elapsed() < run {
            thread::sleep(every);
            series.push((t.elapsed(), echod.rss_kib(), echod.fd_count()));
            if clients.iter().any(|c| c.is_finished()) {
                break;
            }
        }
        stop.store(true, Ordering::SeqCst);
        for c in clients {
            c.join().expect("soak client");
        }
    });
    echod.assert_alive();
    let fds_end = echod.wait_fds(idle_fds, Duration::from_secs(10));
    let rss_end = echod.rss_kib();
    let elapsed = t.elapsed();

    println!("soak: {elapsed:?}, samples every {every:?} (t, RSS KiB, open fds):");
    for (at, rss, fds) in &series {
        println!(
            "soak:   t={:6.1}s rss={rss} KiB fds={fds}",
            at.as_secs_f64()
        );
    }
    println!(
        "soak: idle before: rss={idle_rss} KiB fds={idle_fds}; idle after: rss={rss_end} KiB \
         fds={fds_end}; {} connections, {} bytes echoed and checked, 0 lost, {} bad peers survived",
        tally.connections.get(),
        tally.bytes.get(),
        tally.faults.get()
    );

    assert!(series.len() >= 4, "too few samples: {series:?}");
    assert_eq!(
        fds_end, idle_fds,
        "fds after the soak (idle before: {idle_fds})"
    );
    // First half against second half (the first and last minute of the
    // long run): neither memory nor fds creep up.
    let half = series.len() / 2;
    let (first, last) = series.split_at(half);
    let max_rss = |s: &[(Duration, u64, usize)]| s.iter().map(|x| x.1).max().unwrap_or(0);
    let max_fds = |s: &[(Duration, u64, usize)]| s.iter().map(|x| x.2).max().unwrap_or(0);
    let tolerance = 2048.max(max_rss(first) / 20);
    assert!(
        max_rss(last) <= max_rss(first) + tolerance,
        "RSS crept: first half max {} KiB, second half max {} KiB",
        max_rss(first),
        max_rss(last)
    );
    assert!(
        rss_end <= max_rss(first) + tolerance,
        "RSS after {rss_end} KiB"
    );
    // The clients hold at most a few dozen connections at once.
    assert!(
        max_fds(last) <= idle_fds + 64 && max_fds(first) <= idle_fds + 64,
        "fds: first half max {}, second half max {} (idle {idle_fds})",
        max_fds(first),
        max_fds(last)
    );
    assert!(tally.connections.get() > 10 && tally.faults.get() > 0);
    let out = echod.stop();
    let summary = shutdown_summary(&out);
    assert!(summary.contains(" 0 accept errors"), "{summary}");
    println!("soak: echod: {summary}");
}
