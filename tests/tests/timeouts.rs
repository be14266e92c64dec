//! Timeouts: `None` blocks, zero polls, a positive timeout never returns
//! early (whatever its size, down to 1 ns), `Duration::MAX` neither
//! overflows nor errors, and running out of time is an empty result.
//!
//! Only lower bounds are asserted: a loaded machine may return late, never
//! early.

use std::io::Write;
use std::os::fd::AsFd;
use std::thread;
use std::time::{Duration, Instant};

use ioselect_tests::{
    DefaultSelector, Events, PATIENCE, Waker, Watchdog, fd_of, select_ready, socketpair,
};

type Sel = DefaultSelector<&'static str, 8>;

const DURATIONS: [Duration; 6] = [
    Duration::from_nanos(1),
    Duration::from_micros(1),
    Duration::from_micros(500),
    Duration::from_micros(1500),
    Duration::from_millis(10),
    Duration::from_millis(50),
];

#[track_caller]
fn assert_times_out(sel: &mut Sel, timeout: Duration) {
    let start = Instant::now();
    let ready = select_ready(sel, Some(timeout));
    let elapsed = start.elapsed();
    assert!(ready.is_empty(), "{timeout:?}: {ready:?}");
    assert!(
        elapsed >= timeout,
        "select({timeout:?}) returned early, after {elapsed:?}"
    );
}

#[test]
fn empty_selector_timeout_never_returns_early() {
    // CPython's test_empty_select_timeout (https://bugs.python.org/issue23009,
    // https://bugs.python.org/issue29255).
    let mut sel = Sel::open().unwrap();
    for timeout in DURATIONS {
        assert_times_out(&mut sel, timeout);
    }
}

#[test]
fn timeout_with_idle_keys_never_returns_early() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    let (c, _d) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    sel.register(c.as_fd(), Events::READ, "c").unwrap();
    for timeout in DURATIONS {
        assert_times_out(&mut sel, timeout);
    }
    // Several in a row at sub-millisecond sizes: each waits its whole time.
    for _ in 0..20 {
        assert_times_out(&mut sel, Duration::from_micros(300));
    }
    drop(b);
}

#[test]
fn zero_polls() {
    let mut sel = Sel::open().unwrap();
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    sel.register(b.as_fd(), Events::WRITE, "b").unwrap();
    for _ in 0..100 {
        assert_eq!(
            select_ready(&mut sel, Some(Duration::ZERO)),
            [(fd_of(&b), Events::WRITE, "b")]
        );
    }
}

#[test]
fn a_ready_fd_ends_any_timeout_at_once() {
    let mut sel = Sel::open().unwrap();
    let (_a, b) = socketpair();
    sel.register(b.as_fd(), Events::WRITE, "b").unwrap();
    let huge = [
        None,
        Some(Duration::MAX),
        Some(Duration::from_secs(u64::MAX)),
        Some(Duration::new(u64::MAX / 2, 999_999_999)),
        Some(Duration::from_secs(1 << 40)),
        Some(Duration::from_secs(i32::MAX as u64 / 1000 + 1)), // ms overflow an int
        Some(Duration::from_millis(i32::MAX as u64 + 1)),
        Some(Duration::from_nanos(1)),
    ];
    for timeout in huge {
        assert_eq!(
            select_ready(&mut sel, timeout),
            [(fd_of(&b), Events::WRITE, "b")],
            "{timeout:?}"
        );
    }
}

#[test]
fn duration_max_blocks_until_woken() {
    let mut sel = Sel::open().unwrap();
    let (a, _b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let _dog = Watchdog::new("select(Duration::MAX)", PATIENCE * 3);
    let start = Instant::now();
    let ready = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(30));
            waker.wake().unwrap();
        });
        select_ready(&mut sel, Some(Duration::MAX))
    });
    assert!(ready.is_empty(), "{ready:?}");
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn none_blocks_until_ready() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let _dog = Watchdog::new("select(None)", PATIENCE * 3);
    let start = Instant::now();
    let ready = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(30));
            (&b).write_all(b"x").unwrap();
        });
        select_ready(&mut sel, None)
    });
    assert_eq!(ready, [(fd_of(&a), Events::READ, "a")]);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn readiness_arriving_mid_timeout_ends_the_wait() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let ready = thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(20));
            (&b).write_all(b"x").unwrap();
        });
        select_ready(&mut sel, Some(PATIENCE))
    });
    assert_eq!(ready, [(fd_of(&a), Events::READ, "a")]);
}
