//! What breaks when an epoll library meets another machine: 32-bit `usize`
//! and `time_t`, big-endian byte order, and the per-architecture layout of
//! `struct epoll_event` (packed to 12 bytes on x86_64, 12 on i686 by its
//! 4-byte alignment of `u64`, 16 on arm64, armv7, riscv64 and s390x).
//! `.ci/qemu-user.sh` runs these on arm64, armv7, i686, riscv64 and s390x
//! (big-endian) under QEMU, and `cargo test` on the host.
//!
//! Each token a test makes travels through the kernel and back: the tag in
//! its top bits and the slot index in its bottom bits are chosen so that a
//! truncation to 32 bits, swapped halves or swapped bytes would name no key
//! (the event is then dropped as stale) or the wrong one.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use ioselect_tests::{
    DefaultSelector, Events, LargeSelector, PATIENCE, RW, Slot, Waker, Watchdog, raise_nofile,
    serial, socketpair,
};

/// A selector with its table on the heap and room for 64 events a wait.
type Large = LargeSelector<u32, Box<[Slot<u32>]>, 64>;

/// Selects until `want` keys have been reported, at most `PATIENCE` and
/// 10,000 selects; returns each key's (data, events), in order of data.
fn collect(sel: &mut Large, want: usize) -> Vec<(u32, Events)> {
    let start = Instant::now();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..10_000 {
        sel.select(Some(PATIENCE)).unwrap();
        while let Some((key, mask)) = sel.next_ready() {
            seen.insert(*key.data(), mask);
        }
        if seen.len() >= want || start.elapsed() > PATIENCE {
            break;
        }
    }
    seen.into_iter().collect()
}

/// The registration counter at the top of its range and across its wrap to
/// zero, on the kernel: four registrations whose tags are the largest three
/// a token holds and then 0, all ready in one batch with a wake-up; each
/// event reaches its own key with its own data and mask.
#[test]
fn tokens_at_the_tag_wrap_round_trip_through_the_kernel() {
    let _serial = serial();
    let mut sel = DefaultSelector::<u64, 8>::open().unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..4).map(|_| socketpair()).collect();
    sel.set_next_tag(u64::MAX - 2);
    let masks = [Events::READ, Events::WRITE, RW, Events::READ];
    for (i, ((a, _), events)) in pairs.iter().zip(masks).enumerate() {
        // Data with every byte different, high bits set.
        let data = 0xF1E2_D3C4_B5A6_9780 | i as u64;
        sel.register(a.as_fd(), events, data).unwrap();
    }
    for (_, peer) in &pairs {
        (&*peer).write_all(b"x").unwrap();
    }
    waker.wake().unwrap();
    let mut got = Vec::new();
    sel.select(Some(PATIENCE)).unwrap();
    while let Some((key, mask)) = sel.next_ready() {
        got.push((key.fd(), *key.data(), mask));
    }
    got.sort();
    let mut want: Vec<_> = pairs
        .iter()
        .zip(masks)
        .enumerate()
        .map(|(i, ((a, _), events))| (a.as_raw_fd(), 0xF1E2_D3C4_B5A6_9780 | i as u64, events))
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// Tokens whose eight bytes all differ (tag counter 0x0102_0304_0506_0708
/// and up): an event whose token came back with its bytes or its 32-bit
/// halves swapped (a big-endian or 32-bit slip in the event buffer) would
/// name no key, and be dropped. Each key also keeps its data of every width.
#[test]
fn tokens_with_distinct_bytes_and_data_of_every_width_round_trip() {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    struct Wide {
        a: u8,
        b: u16,
        c: u32,
        d: u64,
        e: u128,
    }
    let _serial = serial();
    let mut sel = DefaultSelector::<Wide, 8>::open().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..6).map(|_| socketpair()).collect();
    sel.set_next_tag(0x0102_0304_0506_0708);
    let wide = |i: usize| Wide {
        a: 0x80 | i as u8,
        b: 0x8182 + i as u16,
        c: 0x8384_8586 + i as u32,
        d: 0x8788_898A_8B8C_8D8E + i as u64,
        e: 0x8F90_9192_9394_9596_9798_999A_9B9C_9D9E + i as u128,
    };
    for (i, (a, peer)) in pairs.iter().enumerate() {
        sel.register(a.as_fd(), Events::READ, wide(i)).unwrap();
        (&*peer).write_all(b"x").unwrap();
    }
    let mut got = Vec::new();
    sel.select(Some(PATIENCE)).unwrap();
    while let Some((key, mask)) = sel.next_ready() {
        got.push((key.fd(), *key.data(), mask));
    }
    got.sort();
    let want: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (a.as_raw_fd(), wide(i), Events::READ))
        .collect();
    assert_eq!(got, want);
}

/// Full tables whose capacities sit on both sides of a bit boundary of the
/// slot index (1,024 keys: 10 index bits, the last index 0b11_1111_1111;
/// 1,025 keys: 11 bits, the last index 0b100_0000_0000), with the
/// registration counter set so that the last
/// registration's tag fills every tag bit: every key, up to the last slot,
/// gets its events through the kernel, 64 at a time.
#[test]
fn full_tables_at_an_index_bit_boundary_deliver_every_key() {
    let _serial = serial();
    let have = raise_nofile(4096).unwrap();
    assert!(
        have >= 1100,
        "RLIMIT_NOFILE is {have}: too low for 1,025 keys"
    );
    let (a, peer) = socketpair();
    (&peer).write_all(b"x").unwrap();
    for cap in [1024usize, 1025] {
        let mut sel = Large::with_capacity(cap).unwrap();
        let bits = usize::BITS - (cap - 1).leading_zeros();
        // A token keeps 63 - bits bits of the count as its tag (its top bit
        // is never a key's): the last registration's tag is all ones.
        sel.set_next_tag((u64::MAX >> (bits + 1)) - cap as u64 + 1);
        let fds: Vec<OwnedFd> = (0..cap)
            .map(|_| a.as_fd().try_clone_to_owned().unwrap())
            .collect();
        for (i, fd) in fds.iter().enumerate() {
            sel.register(fd.as_fd(), Events::READ, i as u32).unwrap();
        }
        let got = collect(&mut sel, cap);
        assert_eq!(got.len(), cap, "capacity {cap}: keys missing");
        for (i, (data, mask)) in got.iter().enumerate() {
            assert_eq!((*data, *mask), (i as u32, Events::READ), "capacity {cap}");
        }
        // The counter has wrapped: the next registration's tag is 0 and it
        // too reaches its key.
        sel.unregister(fds[cap - 1].as_fd()).unwrap();
        sel.register(fds[cap - 1].as_fd(), Events::READ, u32::MAX)
            .unwrap();
        let got = collect(&mut sel, cap);
        assert_eq!(
            got.last(),
            Some(&(u32::MAX, Events::READ)),
            "capacity {cap}"
        );
    }
}

/// Timeouts around the edges of 32-bit time: `i32::MAX` milliseconds (the
/// largest `epoll_wait` takes), one more, 2^32 ms + 5 ms and 2^32 s + 5 ms
/// (which a truncation to 32 bits turns into 5 ms), 2^31 s (a 32-bit
/// `time_t`'s overflow) and `Duration::MAX`. Nothing is ready and a waker
/// fires after 100 ms: each select must return after the wake, never before
/// (early means the timeout was cut short on the way to the kernel).
#[test]
fn timeouts_at_the_edges_of_32_bit_time_wait_for_the_wake() {
    let _serial = serial();
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let (a, _peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let ms = |n: u64| Duration::from_millis(n);
    for timeout in [
        ms(i32::MAX as u64),
        ms(i32::MAX as u64 + 1),
        ms(u32::MAX as u64 + 6),
        Duration::new(1 << 32, 5_000_000),
        Duration::new(1 << 31, 0),
        Duration::new(u64::from(u32::MAX), 999_999_999),
        Duration::MAX,
    ] {
        let _dog = Watchdog::new("select with a 32-bit edge timeout", PATIENCE * 3);
        let (woke, returned) = thread::scope(|s| {
            let wake = s.spawn(|| {
                thread::sleep(ms(100));
                let at = Instant::now();
                waker.wake().unwrap();
                at
            });
            sel.select(Some(timeout)).unwrap();
            let returned = Instant::now();
            (wake.join().unwrap(), returned)
        });
        assert!(sel.next_ready().is_none(), "{timeout:?}: nothing was ready");
        assert!(
            returned >= woke,
            "select({timeout:?}) returned {:?} before the wake",
            woke - returned
        );
    }
}

/// Timeouts of a few nanoseconds past a millisecond boundary wait at least
/// that long: the conversion to `epoll_wait`'s milliseconds rounds up, on
/// 32-bit `time_t` and `long` too.
#[test]
fn nanoseconds_past_a_millisecond_are_waited_for() {
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let (a, _peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    for timeout in [
        Duration::from_nanos(1),
        Duration::new(0, 1_000_001),
        Duration::new(0, 999_999_999),
        Duration::new(1, 1),
    ] {
        let start = Instant::now();
        sel.select(Some(timeout)).unwrap();
        let elapsed = start.elapsed();
        assert!(sel.next_ready().is_none(), "{timeout:?}");
        assert!(
            elapsed >= timeout,
            "select({timeout:?}) returned after {elapsed:?}"
        );
    }
}

/// The largest capacities on a 32-bit target: a table of more slots than
/// the address space holds (`isize::MAX` bytes, about 89 million slots of
/// `u32` data) is refused with `InvalidCapacity`, as `u32::MAX - 1` and
/// above are, never a panic ("capacity overflow") or an abort in the
/// allocator. On 64-bit targets every capacity below `u32::MAX` fits the
/// address space, and one as large would really be allocated.
#[test]
#[cfg_attr(
    target_pointer_width = "64",
    ignore = "64-bit: every capacity below u32::MAX fits the address space"
)]
fn capacities_past_the_address_space_are_refused() {
    let slot = std::mem::size_of::<Slot<u32>>();
    let first_too_big = isize::MAX as usize / slot + 1;
    for capacity in [
        first_too_big,
        first_too_big + 1,
        usize::MAX / slot + 1,
        u32::MAX as usize - 1,
        u32::MAX as usize,
        usize::MAX,
    ] {
        assert!(
            matches!(
                LargeSelector::<u32>::with_capacity(capacity),
                Err(ioselect_tests::Error::InvalidCapacity)
            ),
            "capacity {capacity}"
        );
    }
}
