//! Reliability of `echod` on loopback with payloads of 1 byte to 64 MiB,
//! concurrently. Prints its figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` adds more 64 MiB payloads.
#![cfg(target_os = "linux")]

mod util;

use std::thread;
use std::time::Instant;

use util::fault::{Echod, long, splitmix};
use util::peer::{Echoed, echo_checked, run_seed, serial};

#[test]
fn payloads_from_1_byte_to_64_mib_concurrently() {
    let _serial = serial();
    let seed = run_seed();
    let mut sizes: Vec<u64> = vec![
        1,
        2,
        3,
        255,
        4095,
        4096,
        4097,
        16_383,
        16_384,
        16_385,
        65_537,
        (1 << 20) + 7,
        (8 << 20) - 1,
        64 << 20,
    ];
    if long() {
        sizes.extend([64 << 20, 64 << 20, 64 << 20, 33 << 20]);
    }
    let echod = Echod::start(&["--threads", "2"]);
    let t = Instant::now();
    let results: Vec<(u64, Echoed, Echoed)> = thread::scope(|s| {
        let handles: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &len)| {
                let conn = echod.connect();
                s.spawn(move || {
                    let (sent, got) = echo_checked(conn, splitmix(seed ^ i as u64), len);
                    (len, sent, got)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("payload"))
            .collect()
    });
    let elapsed = t.elapsed();
    let mut total = 0;
    for (len, sent, got) in &results {
        assert_eq!(sent.len, *len);
        assert_eq!(sent, got, "{len}-byte payload");
        total += len;
    }
    echod.stop();
    println!(
        "payloads: {} concurrent connections, 1 B to 64 MiB ({:?}), {total} bytes echoed in \
         {elapsed:?}, every FNV-1a checksum equal, 0 bytes lost",
        sizes.len(),
        sizes
    );
}
