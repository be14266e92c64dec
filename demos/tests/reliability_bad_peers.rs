//! Reliability of `echod` on loopback against bad peers: resets
//! mid-transfer, half-close, silence, one-byte stalls, floods. Prints its
//! figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` runs more rounds of bad peers.
#![cfg(target_os = "linux")]

mod util;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};

use util::fault::{Echod, clock_hz, fill_stream, long, round_trip, shutdown_summary, splitmix};
use util::peer::{Faults, bad_peer, drain_checked, fill_until_blocked, run_seed, serial};

#[test]
fn bad_peers_cost_only_their_own_slot() {
    let _serial = serial();
    let seed = run_seed();
    let rounds = if long() { 40 } else { 4 };
    let per_kind = 4;
    let mut echod = Echod::start(&["--max-conns", "512"]);
    let idle_fds = echod.fd_count();
    let rss_start = echod.rss_kib();
    let mut rss_max = rss_start;
    let mut steady = echod.connect();
    let faults = Faults::default();
    let mut worst = Duration::ZERO;
    let mut trips = 0u64;
    let mut msg = vec![0u8; 1024];
    for round in 0..rounds {
        thread::scope(|s| {
            let handles: Vec<_> = (0..8 * per_kind)
                .map(|k| {
                    let (port, f) = (echod.port, &faults);
                    let peer_seed = splitmix(seed ^ (round << 32) ^ k);
                    s.spawn(move || bad_peer(port, k, peer_seed, f))
                })
                .collect();
            let deadline = Instant::now() + Duration::from_secs(60);
            // The steady client keeps being served, promptly, meanwhile.
            while !handles.iter().all(|h| h.is_finished()) {
                assert!(Instant::now() < deadline, "bad peers still running");
                fill_stream(seed, trips * 1024, &mut msg);
                worst = worst.max(round_trip(&mut steady, &msg));
                trips += 1;
                if trips.is_multiple_of(16) {
                    rss_max = rss_max.max(echod.rss_kib());
                }
                thread::sleep(Duration::from_millis(2));
            }
            for h in handles {
                h.join().expect("bad peer");
            }
        });
        echod.assert_alive();
    }
    // Every bad peer is gone: the server holds the steady connection only.
    let fds = echod.wait_fds(idle_fds + 1, Duration::from_secs(5));
    assert_eq!(fds, idle_fds + 1, "echod leaked fds (idle {idle_fds})");

    // Now park one of each stalling kind and check that the server idles.
    let staller = echod.connect();
    (&staller).write_all(b"x").unwrap();
    let silent = echod.connect();
    let flooder = echod.connect();
    let flooded = fill_until_blocked(&flooder, seed, 0, 64 << 20, Duration::from_secs(5));
    let half = echod.connect();
    let half_sent = fill_until_blocked(&half, seed ^ 1, 0, 1 << 20, Duration::from_secs(5));
    half.shutdown(Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(200));
    let hz = clock_hz();
    let before = echod.cpu_ticks();
    let t = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let used = echod.cpu_ticks() - before;
    let wall = t.elapsed();
    assert!(
        (used as f64) < 0.2 * wall.as_secs_f64() * hz as f64,
        "echod used {used} ticks ({hz}/s) in {wall:?} with stalled peers parked"
    );
    round_trip(&mut steady, b"still served");
    let mut b = [0u8; 1];
    (&staller).read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    flooder.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        drain_checked(&flooder, seed, 0, Duration::from_secs(20)),
        flooded
    );
    assert_eq!(
        drain_checked(&half, seed ^ 1, 0, Duration::from_secs(20)),
        half_sent
    );
    drop((staller, silent));
    rss_max = rss_max.max(echod.rss_kib());
    // Fixed buffers: whatever the peers did, the server's memory is its
    // start-up size plus the slab pages of the slots that were in use.
    assert!(
        rss_max < rss_start + 16 * 1024,
        "RSS grew from {rss_start} KiB to {rss_max} KiB"
    );
    let out = echod.stop();
    let summary = shutdown_summary(&out);
    assert!(summary.contains(" 0 accept errors"), "{summary}");
    println!(
        "bad peers: {} faults survived in {rounds} rounds (reset mid-echo {}, half-close then RST {}, \
         half-close then close unread {}, silent {}, one-byte stall {}, flood without reading {} \
         ({} bytes, all echoed back), RST at once {}, close at once {}); steady client {trips} round \
         trips, worst {worst:?}; parked stallers cost {used} ticks in {wall:?} ({hz}/s); \
         RSS {rss_start} -> max {rss_max} KiB; fds back to idle+1 = {fds}; echod: {summary}",
        faults.total(),
        faults.reset_mid_echo.get(),
        faults.half_close_then_reset.get(),
        faults.half_close_then_close_unread.get(),
        faults.silent.get(),
        faults.one_byte_stall.get(),
        faults.flood.get(),
        faults.flood_bytes.get(),
        faults.reset_at_once.get(),
        faults.close_at_once.get(),
    );
    assert!(worst < Duration::from_secs(2), "worst round trip {worst:?}");
}
