//! The `Waker`: ends a blocked `select` from another thread, its wake-ups
//! never appear as keys, and a wake-up is used up by one `select`. (From a
//! signal handler: `signals.rs`.)

use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ioselect_tests::{
    DefaultSelector, Events, PATIENCE, Waker, Watchdog, fd_of, select_ready, socketpair,
};

type Sel = DefaultSelector<&'static str, 8>;

#[test]
fn wakes_a_blocking_select_from_another_thread() {
    let mut sel = Sel::open().unwrap();
    let (a, _b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "idle").unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let _dog = Watchdog::new("select(None) waiting for the waker", PATIENCE * 3);
    for round in 0..5 {
        let start = Instant::now();
        let ready = thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(10));
                waker.wake().unwrap();
            });
            select_ready(&mut sel, None)
        });
        assert!(ready.is_empty(), "round {round}: {ready:?}");
        assert!(start.elapsed() >= Duration::from_millis(10));
    }
}

#[test]
fn wake_before_select_ends_the_next_select_once() {
    let mut sel = Sel::open().unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let _dog = Watchdog::new("select(None) after an earlier wake", PATIENCE * 3);
    waker.wake().unwrap();
    assert!(select_ready(&mut sel, None).is_empty());
    // Used up: the next select waits its whole timeout.
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn many_wakes_coalesce() {
    let mut sel = Sel::open().unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    for _ in 0..10_000 {
        waker.wake().unwrap();
    }
    let _dog = Watchdog::new("select(None) after many wakes", PATIENCE * 3);
    assert!(select_ready(&mut sel, None).is_empty());
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn wakeups_never_appear_as_keys() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    let (c, _d) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    sel.register(c.as_fd(), Events::READ, "c").unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    (&b).write_all(b"x").unwrap();
    waker.wake().unwrap();
    // Exactly the one ready key, never anything for the waker.
    assert_eq!(
        select_ready(&mut sel, Some(PATIENCE)),
        [(fd_of(&a), Events::READ, "a")]
    );
    // The map knows nothing of the waker either.
    assert_eq!(sel.len(), 2);
    assert_eq!(sel.map().iter().count(), 2);
}

#[test]
fn shared_by_many_threads() {
    let mut sel = Sel::open().unwrap();
    let waker = Arc::new(Waker::new(sel.backend()).unwrap());
    let _dog = Watchdog::new("select(None) with waking threads", PATIENCE * 3);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let waker = Arc::clone(&waker);
            thread::spawn(move || {
                for _ in 0..100 {
                    waker.wake().unwrap();
                }
            })
        })
        .collect();
    // Every select(None) returns (the watchdog says otherwise): the first
    // on the threads' wakes, each later one on the wake after the previous.
    for _ in 0..10 {
        assert!(select_ready(&mut sel, None).is_empty());
        waker.wake().unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn dropping_the_waker_leaves_the_selector_working() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    waker.wake().unwrap();
    drop(waker);
    // A wake before the drop may or may not still end this select; either
    // way no key comes out of it.
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    (&b).write_all(b"x").unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(PATIENCE)),
        [(fd_of(&a), Events::READ, "a")]
    );
    // And a later select times out normally.
    let (c, _d) = socketpair();
    sel.unregister(a.as_fd()).unwrap();
    sel.register(c.as_fd(), Events::READ, "c").unwrap();
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn two_wakers_on_one_selector() {
    let mut sel = Sel::open().unwrap();
    let w1 = Waker::new(sel.backend()).unwrap();
    let w2 = Waker::new(sel.backend()).unwrap();
    let _dog = Watchdog::new("select(None) with two wakers", PATIENCE * 3);
    w1.wake().unwrap();
    assert!(select_ready(&mut sel, None).is_empty());
    w2.wake().unwrap();
    assert!(select_ready(&mut sel, None).is_empty());
}
