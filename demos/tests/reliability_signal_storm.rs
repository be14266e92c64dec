//! Reliability of `echod` on loopback under signal storms (SIGUSR1 to its
//! workers, SIGSTOP/SIGCONT) during blocking selects, quiet and busy.
//! Prints its figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` runs 30-second signal storms.
#![cfg(target_os = "linux")]

mod util;

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use util::fault::{
    Echod, blocked_in, connect, long, round_trip, send_signal, shutdown_summary, splitmix,
};
use util::peer::{Count, echo_checked, run_seed, serial};

/// Sizes for the storm's checked echoes.
const STORM_SIZES: [u64; 7] = [1, 100, 4096, 16_385, 300_000, 1 << 20, 8 << 20];

/// Runs idle-timeout probes against echod on `port` while `storm` runs in
/// another thread, until the storm ends; when `busy`, also checked echoes of
/// every size and a latency probe. Returns (echoes, bytes, worst round trip,
/// idle closes seen).
///
/// Without `busy`, an idle peer is all the server has: its selects block
/// for their whole 1 s timeout, and the storm interrupts them thousands of
/// times; a select that restarted its full timeout on EINTR would never
/// time out, and the idle peer would never be closed.
fn under_storm(
    port: u16,
    seed: u64,
    busy: bool,
    storm: impl FnOnce() + Send,
) -> (u64, u64, Duration, Vec<Duration>) {
    let done = AtomicBool::new(false);
    let echoes = Count::default();
    let bytes = Count::default();
    let mut idles = Vec::new();
    let mut worst = Duration::ZERO;
    thread::scope(|s| {
        let storm = s.spawn(|| {
            storm();
            done.store(true, Ordering::SeqCst);
        });
        // Checked echoes of every size, concurrently, again and again.
        let sizes: &[u64] = if busy { &STORM_SIZES } else { &[] };
        let echo_threads: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let (done, echoes, bytes) = (&done, &echoes, &bytes);
                s.spawn(move || {
                    for round in 0..1000u64 {
                        if done.load(Ordering::SeqCst) && round > 0 {
                            break;
                        }
                        let seed = splitmix(seed ^ ((i as u64) << 40) ^ round);
                        let (sent, got) = echo_checked(connect(port), seed, len);
                        assert_eq!(sent, got, "{len}-byte echo under the storm");
                        echoes.add(1);
                        bytes.add(len);
                    }
                })
            })
            .collect();
        // Idle peers: the server's 1 s idle timeout must still close them,
        // not before 1 s and not much after (sweeps are 1 s apart).
        let idle = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(Ordering::SeqCst) && seen.len() < 100 {
                let s = connect(port);
                let t = Instant::now();
                let mut b = [0u8; 1];
                let n = (&s).read(&mut b).expect("EOF from the idle timeout");
                assert_eq!(n, 0);
                seen.push(t.elapsed());
            }
            seen
        });
        // A latency probe.
        let mut probe = busy.then(|| connect(port));
        let mut k = 0u64;
        while let Some(probe) = probe.as_mut()
            && !done.load(Ordering::SeqCst)
            && k < 1_000_000
        {
            worst = worst.max(round_trip(probe, &k.to_le_bytes()));
            k += 1;
            thread::sleep(Duration::from_millis(1));
        }
        storm.join().expect("storm");
        for t in echo_threads {
            t.join().expect("echo under the storm");
        }
        idles = idle.join().expect("idle probe");
    });
    (echoes.get(), bytes.get(), worst, idles)
}

#[test]
fn signal_storm_during_blocking_selects() {
    let _serial = serial();
    let seed = run_seed();
    let storm_for = Duration::from_secs(if long() { 30 } else { 3 });
    let stop_for = Duration::from_secs(if long() { 10 } else { 2 });
    let quiet_for = Duration::from_secs(if long() { 10 } else { 4 });
    let mut echod = Echod::start(&["--threads", "2", "--idle-timeout", "1", "--catch-sigusr1"]);
    let pid = echod.pid();
    let tids = echod.worker_tids();
    assert_eq!(tids.len(), 2, "two worker threads");
    // SIGUSR1 is caught (SigCgt has bit 10 - 1).
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let caught_mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap();
    assert_ne!(
        caught_mask & (1 << (libc::SIGUSR1 - 1)),
        0,
        "SigCgt {caught_mask:x}"
    );
    // The system call an idle worker blocks in: its selector's wait.
    // (/proc says "running" while the thread happens to run: look again.)
    let wait_nr = (0..200)
        .find_map(|_| {
            thread::sleep(Duration::from_millis(10));
            blocked_in(pid, tids[0])
        })
        .expect("an idle worker is blocked in a system call");

    let sent = Count::default();
    let in_wait = Count::default();
    let samples = Count::default();
    // SIGUSR1 to each worker thread every 100 µs (a process-directed signal
    // would mostly go to the main thread, which only waits for the workers).
    let usr1_storm = |length: Duration| {
        let (tids, sent, in_wait, samples) = (&tids, &sent, &in_wait, &samples);
        move || {
            let t = Instant::now();
            let mut i = 0u64;
            while t.elapsed() < length {
                for &tid in tids {
                    // SAFETY: tgkill takes plain integers; `tid` is a thread
                    // of our child `pid`, which has not been waited for.
                    let r = unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                    assert_eq!(r, 0, "tgkill: {}", std::io::Error::last_os_error());
                    sent.add(1);
                }
                if i.is_multiple_of(10) {
                    for &tid in tids {
                        samples.add(1);
                        if blocked_in(pid, tid) == Some(wait_nr) {
                            in_wait.add(1);
                        }
                    }
                }
                i += 1;
                thread::sleep(Duration::from_micros(100));
            }
        }
    };
    // SIGSTOP/SIGCONT every 100 µs. No handler needed: on Linux an epoll
    // wait of a process that was stopped and resumed fails with EINTR.
    let stops = Count::default();
    let stop_storm = |length: Duration| {
        let stops = &stops;
        move || {
            let t = Instant::now();
            while t.elapsed() < length {
                send_signal(pid, libc::SIGSTOP);
                thread::sleep(Duration::from_micros(100));
                send_signal(pid, libc::SIGCONT);
                stops.add(1);
                thread::sleep(Duration::from_micros(100));
            }
        }
    };
    // Never before the 1 s timeout. A quiet worker sweeps after each 1 s
    // select timeout, so by 2 s (plus slack): a select that restarted its
    // full timeout on each EINTR would not return before the quiet storm
    // (4 s) ended. A busy one sweeps after the first select to return a
    // second after the last sweep, also by about 2 s, but on two cores
    // shared with the busy clients it can be late: there the bound only
    // says the timeout was not lost.
    let check_idles = |what: &str, idles: &[Duration], quiet: bool| {
        assert!(!idles.is_empty(), "{what}: no idle peer was closed");
        let most = Duration::from_millis(if quiet { 2500 } else { 6000 });
        for d in idles {
            assert!(
                *d >= Duration::from_secs(1) && *d < most,
                "{what}: idle timeout of 1 s closed after {d:?}: {idles:?}"
            );
        }
    };

    // 1. Quiet: the workers block in select with a 1 s timeout.
    let (_, _, _, idles) = under_storm(echod.port, seed, false, usr1_storm(quiet_for));
    echod.assert_alive();
    check_idles("quiet SIGUSR1 storm", &idles, true);
    assert!(
        in_wait.get() > 0,
        "the workers were never seen in their wait"
    );
    println!(
        "SIGUSR1 storm, quiet server ({quiet_for:?}, one per worker every 100 µs): {} signals \
         sent, workers blocked in syscall {wait_nr} at {} of {} samples; the 1 s idle timeout \
         closed idle peers after {idles:?}",
        sent.get(),
        in_wait.get(),
        samples.get()
    );
    // 2. Busy: checked echoes of 1 B to 8 MiB, a latency probe.
    let (echoes, bytes, worst, idles) = under_storm(echod.port, seed, true, usr1_storm(storm_for));
    echod.assert_alive();
    check_idles("busy SIGUSR1 storm", &idles, false);
    assert!(worst < Duration::from_secs(1), "worst round trip {worst:?}");
    println!(
        "SIGUSR1 storm, busy server ({storm_for:?}): {} signals sent in all; {echoes} checked \
         echoes ({bytes} bytes, 0 lost), worst round trip {worst:?}; idle peers closed after \
         {idles:?}",
        sent.get()
    );
    // 3. and 4. The same with SIGSTOP/SIGCONT.
    let (_, _, _, idles) = under_storm(echod.port, seed, false, stop_storm(quiet_for));
    echod.assert_alive();
    check_idles("quiet SIGSTOP/SIGCONT storm", &idles, true);
    let quiet_stops = stops.get();
    let (echoes2, bytes2, worst2, idles2) =
        under_storm(echod.port, seed ^ 2, true, stop_storm(stop_for));
    echod.assert_alive();
    check_idles("busy SIGSTOP/SIGCONT storm", &idles2, false);
    assert!(
        worst2 < Duration::from_secs(2),
        "worst round trip {worst2:?}"
    );
    println!(
        "SIGSTOP/SIGCONT storm: quiet server ({quiet_for:?}) {quiet_stops} stop/continue pairs, \
         idle peers closed after {idles:?}; busy server ({stop_for:?}) {} pairs, {echoes2} \
         checked echoes ({bytes2} bytes, 0 lost), worst round trip {worst2:?}, idle peers closed \
         after {idles2:?}",
        stops.get() - quiet_stops
    );

    let out = echod.stop();
    let caught: u64 = out
        .iter()
        .find_map(|l| l.strip_prefix("caught ")?.strip_suffix(" SIGUSR1"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no SIGUSR1 count: {out:#?}"));
    let summary = shutdown_summary(&out);
    assert!(summary.contains(" 0 accept errors"), "{summary}");
    // Standard signals do not queue: a few merge while one is pending.
    assert!(
        caught >= 1000 && caught <= sent.get(),
        "caught {caught} of {} SIGUSR1",
        sent.get()
    );
    println!("echod caught {caught} SIGUSR1 and exited cleanly: {summary}");
}
