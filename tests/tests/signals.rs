//! Signals during a blocking `select` (CPython's
//! `test_select_interrupt_noraise`, PEP 475): handlers are installed
//! without `SA_RESTART`, so the kernel's wait fails with `EINTR`; `select`
//! must retry with the time that is left, never report an error, and never
//! return before its timeout. And the `Waker` called from a signal handler.
//!
//! Every test holds `serial()`: handlers and timers are process-wide.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::thread::JoinHandleExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ioselect_tests::{
    Bound, DefaultSelector, Events, PATIENCE, RawFd, Waker, Watchdog, fd_of, install_handler,
    serial, socketpair,
};

type Sel = DefaultSelector<&'static str, 8>;

/// `ITIMER_REAL` of `<sys/time.h>`: 0 on every Linux architecture (the
/// libc crate does not define it for Android, whose bionic has it).
#[cfg(target_os = "android")]
const ITIMER_REAL: libc::c_int = 0;
#[cfg(not(target_os = "android"))]
const ITIMER_REAL: libc::c_int = libc::ITIMER_REAL;

/// Signals handled so far (by any thread).
static HITS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    HITS.fetch_add(1, Ordering::Relaxed);
}

/// What the selecting thread saw.
struct Outcome {
    sel: Sel,
    ready: Vec<(RawFd, Events)>,
    elapsed: Duration,
    /// Signals handled while `select` ran.
    hits: usize,
}

/// Runs `select(timeout)` on `sel` in a new thread while this thread sends
/// it `signal` every 200 µs until it is done (bounded by `PATIENCE`).
fn select_under_storm(mut sel: Sel, timeout: Option<Duration>, signal: libc::c_int) -> Outcome {
    let handle = thread::spawn(move || {
        let hits_before = HITS.load(Ordering::SeqCst);
        let start = Instant::now();
        let result = sel.select(timeout);
        let elapsed = start.elapsed();
        let hits = HITS.load(Ordering::SeqCst) - hits_before;
        result.expect("select must not fail on EINTR");
        let mut ready = Vec::new();
        while let Some((key, mask)) = sel.next_ready() {
            ready.push((key.fd(), mask));
        }
        Outcome {
            sel,
            ready,
            elapsed,
            hits,
        }
    });
    let start = Instant::now();
    while !handle.is_finished() && start.elapsed() < PATIENCE * 2 {
        // SAFETY: the thread is not joined yet, so its pthread_t is valid.
        let rc = unsafe { libc::pthread_kill(handle.as_pthread_t() as _, signal) };
        assert_eq!(rc, 0, "pthread_kill");
        thread::sleep(Duration::from_micros(200));
    }
    handle.join().expect("selecting thread panicked")
}

#[test]
fn signal_storm_never_errors_nor_ends_a_timeout_early() {
    let _serial = serial();
    install_handler(libc::SIGALRM, count_signal);
    let mut sel = Sel::open().unwrap();
    let (a, _b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "idle").unwrap();
    let mut total_hits = 0;
    for timeout in [
        Duration::from_nanos(1),
        Duration::from_micros(500),
        Duration::from_micros(1500),
        Duration::from_millis(50),
        Duration::from_millis(200),
    ] {
        let out = select_under_storm(sel, Some(timeout), libc::SIGALRM);
        assert!(out.ready.is_empty(), "{timeout:?}: {:?}", out.ready);
        assert!(
            out.elapsed >= timeout,
            "select({timeout:?}) under signals returned after {:?}",
            out.elapsed
        );
        total_hits += out.hits;
        sel = out.sel;
    }
    // The signals did arrive while select was waiting.
    assert!(total_hits > 0, "no signal landed during select");
}

#[test]
fn signals_during_select_none_then_data() {
    let _serial = serial();
    install_handler(libc::SIGALRM, count_signal);
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let _dog = Watchdog::new("select(None) under signals", PATIENCE * 3);
    let writer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(100));
        (&b).write_all(b"x").unwrap();
        b
    });
    let out = select_under_storm(sel, None, libc::SIGALRM);
    let _b = writer.join().unwrap();
    assert_eq!(out.ready, [(fd_of(&a), Events::READ)]);
    assert!(out.hits > 0, "no signal landed during select(None)");
}

#[test]
fn process_wide_interval_timer_during_select() {
    // SIGALRM from setitimer goes to whichever thread the kernel picks; the
    // selecting thread (this one) often is. Whoever gets it, select neither
    // fails nor returns early.
    let _serial = serial();
    install_handler(libc::SIGALRM, count_signal);
    let mut sel = Sel::open().unwrap();
    let (a, _b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "idle").unwrap();
    let every = libc::timeval {
        tv_sec: 0,
        tv_usec: 1000,
    };
    let timer = libc::itimerval {
        it_interval: every,
        it_value: every,
    };
    let hits_before = HITS.load(Ordering::SeqCst);
    // SAFETY: valid itimerval, no old value requested.
    let rc = unsafe { libc::setitimer(ITIMER_REAL, &timer, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    let mut results = Vec::new();
    for ms in [5, 20, 60] {
        let timeout = Duration::from_millis(ms);
        let start = Instant::now();
        let result = sel.select(Some(timeout));
        results.push((timeout, result, start.elapsed()));
    }
    let off = libc::itimerval {
        it_interval: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        it_value: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
    };
    // SAFETY: as above; a zero it_value disarms the timer.
    let rc = unsafe { libc::setitimer(ITIMER_REAL, &off, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    for (timeout, result, elapsed) in results {
        assert_eq!(result, Ok(()), "{timeout:?}");
        assert!(elapsed >= timeout, "{timeout:?} returned after {elapsed:?}");
    }
    assert!(sel.next_ready().is_none());
    assert!(
        HITS.load(Ordering::SeqCst) > hits_before,
        "the timer never fired"
    );
}

/// The waker a signal handler uses: a `static`, so the handler reaches it.
static WAKER: OnceLock<Waker> = OnceLock::new();
static WAKES: AtomicUsize = AtomicUsize::new(0);
static WAKE_ERRORS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn wake_from_handler(_: libc::c_int) {
    // Async-signal-safe: an atomic load, one eventfd/pipe write, atomics.
    if let Some(waker) = WAKER.get() {
        match waker.wake() {
            Ok(()) => WAKES.fetch_add(1, Ordering::Relaxed),
            Err(_) => WAKE_ERRORS.fetch_add(1, Ordering::Relaxed),
        };
    }
}

#[test]
fn waker_called_from_a_signal_handler_ends_select_none() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (a, _b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "idle").unwrap();
    assert!(
        WAKER.set(Waker::new(sel.backend()).unwrap()).is_ok(),
        "only this test sets WAKER"
    );
    install_handler(libc::SIGUSR2, wake_from_handler);
    let _dog = Watchdog::new("select(None) woken from a signal handler", PATIENCE * 3);
    let handle = thread::spawn(move || {
        let result = sel.select(None);
        let keys = std::iter::from_fn(|| sel.next_ready().map(|(k, _)| k.fd())).count();
        (result, keys)
    });
    // One signal, once the thread has had time to block; a few more only if
    // it has not returned after a while (a signal sent before it blocked
    // still wakes it: the wake-up stays pending).
    thread::sleep(Duration::from_millis(30));
    let mut bound = Bound::new("signal the selecting thread", 200);
    while !handle.is_finished() {
        bound.tick();
        // SAFETY: the thread is not joined yet, so its pthread_t is valid.
        let rc = unsafe { libc::pthread_kill(handle.as_pthread_t() as _, libc::SIGUSR2) };
        assert_eq!(rc, 0);
        thread::sleep(Duration::from_millis(20));
    }
    let (result, keys) = handle.join().unwrap();
    assert_eq!(result, Ok(()));
    assert_eq!(keys, 0, "the wake-up must not come out as a key");
    // Only the handler's wake can end a select(None) over an idle key.
    assert!(WAKES.load(Ordering::SeqCst) > 0);
    assert_eq!(WAKE_ERRORS.load(Ordering::SeqCst), 0);
}
