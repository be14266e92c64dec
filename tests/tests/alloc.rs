//! No heap on the hot paths: a counting `#[global_allocator]` proves that
//! `register`, `modify`, `unregister`, `select` + `next_ready` (with events
//! ready) and `Waker::wake` make zero allocations; and a counting backend
//! shows, without any timing, that the work of those calls does not grow
//! with the number of registered fds.
//!
//! Allocations are counted per thread, so the test harness and other tests
//! running in parallel do not disturb the count.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ioselect_tests::{
    Backend, DefaultSelector, Error, Events, OpenBackend, OsBackend, OsError, RW, RawFd, Selector,
    Token, Waker, fd_of, raise_nofile, socketpair,
};

struct Counting;

thread_local! {
    /// Heap operations (alloc, alloc_zeroed, realloc, dealloc) of this thread.
    static HEAP_OPS: Cell<usize> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the thread-local may be gone while a thread shuts down.
    let _ = HEAP_OPS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` unchanged; counting touches only
// a const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`; `ptr` came from `System` through us.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result and the heap operations it made on this
/// thread.
fn heap_ops<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = HEAP_OPS.with(Cell::get);
    let r = f();
    let after = HEAP_OPS.with(Cell::get);
    (r, after - before)
}

#[derive(Clone, Copy)]
struct Handler(fn(RawFd, Events) -> usize);

fn on_event(fd: RawFd, _mask: Events) -> usize {
    fd as usize
}

#[test]
fn the_counter_counts() {
    let (b, n) = heap_ops(|| Box::new(42u64));
    assert!(n >= 1, "a Box must count");
    let ((), n) = heap_ops(|| drop(b));
    assert!(n >= 1, "freeing a Box must count");
    let (v, n) = heap_ops(|| Vec::<u8>::with_capacity(100));
    assert!(n >= 1);
    drop(v);
    let ((), n) = heap_ops(|| ());
    assert_eq!(n, 0);
}

#[test]
fn register_modify_unregister_do_not_allocate() {
    const PAIRS: usize = 16;
    let mut sel = DefaultSelector::<Handler, 64>::open().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| socketpair()).collect();
    let socks: Vec<&UnixStream> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
    // Open, never registered: for the error paths.
    let (stranger, _peer) = socketpair();
    // Warm up: one full round outside the count.
    for s in &socks {
        sel.register(s.as_fd(), Events::READ, Handler(on_event))
            .unwrap();
    }
    for s in &socks {
        sel.unregister(s.as_fd()).unwrap();
    }

    let (results, n) = heap_ops(|| {
        let mut ok = 0usize;
        for _round in 0..3 {
            for s in &socks {
                ok += sel
                    .register(s.as_fd(), Events::READ, Handler(on_event))
                    .is_ok() as usize;
            }
            for s in &socks {
                let fd = fd_of(*s);
                ok += sel.modify_events(s.as_fd(), Events::WRITE).is_ok() as usize;
                ok += sel.modify_events(s.as_fd(), Events::WRITE).is_ok() as usize; // same
                ok += sel.modify_data(fd, Handler(on_event)).is_ok() as usize;
                ok += sel.modify(s.as_fd(), RW, Handler(on_event)).is_ok() as usize;
                ok += sel.get_key(fd).is_some() as usize;
                ok += sel.get_key_mut(fd).is_some() as usize;
            }
            // The error paths do not allocate either.
            ok += sel
                .register(socks[0].as_fd(), Events::READ, Handler(on_event))
                .is_err() as usize;
            ok += sel
                .register(socks[0].as_fd(), Events::empty(), Handler(on_event))
                .is_err() as usize;
            ok += sel.unregister(stranger.as_fd()).is_err() as usize;
            ok += sel.unregister_closed(100_000).is_err() as usize;
            ok += sel.map().iter().count() / socks.len();
            for s in &socks {
                ok += sel.unregister(s.as_fd()).is_ok() as usize;
            }
        }
        ok
    });
    assert_eq!(
        results,
        3 * (socks.len() * 8 + 5),
        "every call did what it should"
    );
    assert_eq!(n, 0, "{n} heap operations in register/modify/unregister");
}

#[test]
fn select_and_next_ready_with_events_ready_do_not_allocate() {
    const PAIRS: usize = 16;
    let mut sel = DefaultSelector::<Handler, 64>::open().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| socketpair()).collect();
    for (a, b) in &pairs {
        sel.register(a.as_fd(), Events::READ, Handler(on_event))
            .unwrap();
        sel.register(b.as_fd(), Events::WRITE, Handler(on_event))
            .unwrap();
        (&*b).write_all(b"ready").unwrap();
    }
    // Warm up.
    sel.select(Some(Duration::from_secs(5))).unwrap();
    while sel.next_ready().is_some() {}

    let (delivered, n) = heap_ops(|| {
        let mut delivered = 0usize;
        for _ in 0..10 {
            sel.select(Some(Duration::from_secs(5))).unwrap();
            while let Some((key, mask)) = sel.next_ready() {
                let Handler(callback) = *key.data();
                delivered += callback(key.fd(), mask).min(1);
            }
        }
        // Also zero, finite and absent timeouts.
        sel.select(Some(Duration::ZERO)).unwrap();
        while sel.next_ready().is_some() {}
        sel.select(None).unwrap();
        while sel.next_ready().is_some() {}
        delivered
    });
    // All 32 fds are ready every time (the readers' data is never read).
    assert_eq!(delivered, 10 * 2 * PAIRS);
    assert_eq!(n, 0, "{n} heap operations in select/next_ready");

    // A select that times out allocates nothing either.
    let (c, _d) = socketpair();
    let mut idle = DefaultSelector::<Handler, 4>::open().unwrap();
    idle.register(c.as_fd(), Events::READ, Handler(on_event))
        .unwrap();
    let (timeouts, n) = heap_ops(|| {
        let mut empty = 0;
        for t in [1_000, 500_000, 2_000_000] {
            idle.select(Some(Duration::from_nanos(t))).unwrap();
            empty += idle.next_ready().is_none() as usize;
        }
        empty
    });
    assert_eq!(timeouts, 3);
    assert_eq!(n, 0);
}

#[test]
fn handlers_changing_the_selector_mid_batch_do_not_allocate() {
    let mut sel = DefaultSelector::<Handler, 64>::open().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..8).map(|_| socketpair()).collect();
    for (a, _) in &pairs {
        sel.register(a.as_fd(), Events::WRITE, Handler(on_event))
            .unwrap();
    }
    let (handled, n) = heap_ops(|| {
        sel.select(Some(Duration::from_secs(5))).unwrap();
        let mut handled = 0;
        while let Some((key, _)) = sel.next_ready() {
            let fd = key.fd();
            let sock = pairs
                .iter()
                .map(|(a, _)| a)
                .find(|a| fd_of(*a) == fd)
                .unwrap();
            // Unregister this one and re-register it: the rest of the batch
            // goes on, and stale events are dropped.
            let key = sel.unregister(sock.as_fd()).unwrap();
            sel.register(sock.as_fd(), key.events(), key.into_data())
                .unwrap();
            handled += 1;
        }
        handled
    });
    assert!(handled >= 1);
    assert_eq!(n, 0);
}

#[test]
fn waker_does_not_allocate() {
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    waker.wake().unwrap();
    sel.select(Some(Duration::ZERO)).unwrap();
    let (ok, n) = heap_ops(|| {
        let mut ok = 0;
        for _ in 0..100 {
            ok += waker.wake().is_ok() as usize;
        }
        sel.select(None).unwrap();
        ok + sel.next_ready().is_none() as usize
    });
    assert_eq!(ok, 101);
    assert_eq!(n, 0);
}

/// A backend that forwards to the platform's and counts its calls.
struct CountingBackend<B> {
    inner: B,
    calls: usize,
    events_read: Cell<usize>,
}

impl<B: Backend> Backend for CountingBackend<B> {
    type Source<'a> = B::Source<'a>;
    fn fd(source: Self::Source<'_>) -> RawFd {
        B::fd(source)
    }
    fn add(&mut self, fd: Self::Source<'_>, events: Events, token: Token) -> Result<(), OsError> {
        self.calls += 1;
        self.inner.add(fd, events, token)
    }
    fn modify(
        &mut self,
        fd: Self::Source<'_>,
        old: Events,
        new: Events,
        token: Token,
    ) -> Result<(), OsError> {
        self.calls += 1;
        self.inner.modify(fd, old, new, token)
    }
    fn delete(
        &mut self,
        fd: Self::Source<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError> {
        self.calls += 1;
        self.inner.delete(fd, events, token)
    }
    fn delete_closed(&mut self, fd: RawFd, events: Events, token: Token) {
        self.calls += 1;
        self.inner.delete_closed(fd, events, token);
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.calls += 1;
        self.inner.wait(timeout)
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        self.events_read.set(self.events_read.get() + 1);
        self.inner.event(index)
    }
    fn batch_len(&self) -> usize {
        self.inner.batch_len()
    }
}

type Counted<const N: usize> = Selector<CountingBackend<OsBackend<N>>, usize, N>;

fn counted<const N: usize>() -> Counted<N> {
    Selector::new(CountingBackend {
        inner: <OsBackend<N> as OpenBackend>::open().unwrap(),
        calls: 0,
        events_read: Cell::new(0),
    })
}

/// What one round of operations on one fd costs, in backend calls, event
/// reads and heap operations, with `registered` other fds idle in the
/// selector.
fn cost_with<const N: usize>(registered: usize) -> (usize, usize, usize) {
    let mut sel = counted::<N>();
    let idle: Vec<(UnixStream, UnixStream)> = (0..registered).map(|_| socketpair()).collect();
    for (i, (a, _)) in idle.iter().enumerate() {
        sel.register(a.as_fd(), Events::READ, i).unwrap();
    }
    let (hot, peer) = socketpair();
    (&peer).write_all(b"x").unwrap();
    let calls0 = sel.backend().calls;
    let reads0 = sel.backend().events_read.get();
    let (delivered, heap) = heap_ops(|| {
        let fd = hot.as_fd();
        sel.register(fd, Events::WRITE, usize::MAX).unwrap();
        sel.modify_events(fd, Events::READ).unwrap();
        sel.modify_events(fd, Events::READ).unwrap(); // same events: no call
        sel.modify(fd, RW, usize::MAX).unwrap();
        // Refused in core, before the kernel. (A negative fd, which used to
        // be refused by `register` here, can no longer be named by a
        // `BorrowedFd`; the number path refuses it.)
        assert!(sel.register(fd, Events::READ, 0).is_err());
        assert!(sel.unregister_closed(-1).is_err());
        assert!(sel.modify_events(fd, Events::empty()).is_err());
        sel.select(Some(Duration::from_secs(5))).unwrap();
        let mut delivered = 0;
        while let Some((key, _)) = sel.next_ready() {
            assert_eq!(*key.data(), usize::MAX, "only the hot fd is ready");
            delivered += 1;
        }
        sel.unregister(fd).unwrap();
        delivered
    });
    assert_eq!(delivered, 1);
    (
        sel.backend().calls - calls0,
        sel.backend().events_read.get() - reads0,
        heap,
    )
}

/// The same operations cost the same with 0, 100 and 1000 other fds
/// registered: one backend call per register/modify/unregister/select, none
/// for refused calls or unchanged events, one event read per kernel event
/// (never a walk over the keys), and no heap.
#[test]
fn hot_path_work_does_not_grow_with_registered_fds() {
    raise_nofile(4096).unwrap();
    let small = cost_with::<1100>(0);
    let medium = cost_with::<1100>(100);
    let large = cost_with::<1100>(1000);
    // register + modify + modify + select + unregister = 5 backend calls;
    // the select's batch has the one ready fd, read once (plus the end).
    assert_eq!(small.0, 5, "backend calls");
    assert!(small.1 <= 2, "event reads: {}", small.1);
    assert_eq!(small.2, 0, "heap operations");
    assert_eq!(medium, small);
    assert_eq!(large, small);
}
