//! Shared helpers of the integration tests: the one module every file in
//! `tests/tests/` uses (as mio's `tests/util`), so no helper is copied twice.
//!
//! This is also the **only** place that knows the platform: it picks the
//! backend crate once (epoll on Linux, kqueue on macOS and the BSDs) and
//! re-exports its API, so every test runs unchanged on every platform. A test
//! that cannot hold on some OS says so with
//! `#[cfg_attr(target_os = "...", ignore = "why")]`, never by skipping itself.
//!
//! What the tests may not do, by construction of these helpers: loop without
//! a bound (see [`Bound`], [`Watchdog`]), assert a tight upper bound on time,
//! or race other tests of the same binary for fd numbers or process-wide
//! state (see [`serial`]).
//!
//! # What the type system already rules out
//! A closed selector cannot be used (Python raises `RuntimeError`; here
//! `close` consumes it):
//! ```compile_fail
//! use ioselect_tests::DefaultSelector;
//! let sel = DefaultSelector::<(), 4>::open().unwrap();
//! sel.close();
//! let _ = sel.get_key(0); // use after move
//! ```
//! A selector whose data is not `Send` does not cross threads:
//! ```compile_fail
//! use ioselect_tests::DefaultSelector;
//! let sel = DefaultSelector::<std::rc::Rc<u8>, 4>::open().unwrap();
//! std::thread::spawn(move || drop(sel));
//! ```
//! The map view is read-only (Python: `TypeError` on `del keys[fd]`):
//! ```compile_fail
//! use ioselect_tests::DefaultSelector;
//! let mut sel = DefaultSelector::<(), 4>::open().unwrap();
//! let map = sel.map();
//! map.remove(0);
//! ```
//! A number cannot be handed to the kernel through an OS backend (I/O
//! safety: `register`, `modify`, `modify_events` and `unregister` take a
//! `BorrowedFd`, so a closed or never-opened fd cannot even be named; the
//! key of an fd closed while registered goes with `unregister_closed(fd)`):
//! ```compile_fail
//! use ioselect_tests::{DefaultSelector, Events};
//! let mut sel = DefaultSelector::<u8, 4>::open().unwrap();
//! sel.register(100_000, Events::READ, 1).unwrap();
//! ```
//! The same four snippets compile once the misuse is removed:
//! ```
//! use std::os::fd::AsFd;
//! use ioselect_tests::{DefaultSelector, Events};
//! let mut sel = DefaultSelector::<u8, 4>::open().unwrap();
//! assert!(sel.get_key(0).is_none());
//! assert!(sel.map().get(0).is_none());
//! let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
//! sel.register(a.as_fd(), Events::READ, 1).unwrap();
//! std::thread::spawn(move || sel.close()).join().unwrap();
//! ```

use std::fmt::Debug;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, mpsc};
use std::time::{Duration, Instant};

/// The platform's backend crate: `ioselect_linux` (epoll) here.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use ioselect_linux as os;

/// The platform's backend crate: `ioselect_bsd` (kqueue) here.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub use ioselect_bsd as os;

pub use ioselect_core::{SoftBackend, SoftReadiness};
pub use os::backend::{Backend, KeyMap, OpenBackend, Selector, SelectorIn, Token};
pub use os::{
    DataError, DefaultSelector, Error, Events, KeyMut, LargeSelector, OsError, RawFd, SelectorKey,
    Slot, Waker,
};

/// The platform's backend type under `DefaultSelector<_, N>`: `Epoll<N>`.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type OsBackend<const N: usize> = os::backend::Epoll<N>;

/// The platform's backend type under `DefaultSelector<_, N>`: `Kqueue<N>`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub type OsBackend<const N: usize> = os::backend::Kqueue<N>;

/// How long a test waits for something that must happen (a readiness, a
/// wake-up) before it fails. Generous on purpose: it bounds a broken test,
/// it does not measure anything.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// `READ | WRITE`.
pub const RW: Events = Events::READ.union(Events::WRITE);

/// The fd number of anything that has one.
pub fn fd_of(x: &impl AsRawFd) -> RawFd {
    x.as_raw_fd()
}

/// A connected, non-blocking Unix stream socket pair.
pub fn socketpair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A connected, non-blocking TCP pair on loopback (client, server side).
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    client.set_nonblocking(true).expect("nonblocking");
    server.set_nonblocking(true).expect("nonblocking");
    (client, server)
}

/// One ready key of a `select` batch, copied out: fd, reported events, data.
pub type Ready<T> = (RawFd, Events, T);

/// Runs one `select(timeout)` and collects the whole batch, sorted by fd.
///
/// Checks the batch invariants on the way: every fd at most once, every
/// mask non-empty and within the key's registered events.
pub fn select_ready<T: Clone, const N: usize>(
    sel: &mut DefaultSelector<T, N>,
    timeout: Option<Duration>,
) -> Vec<Ready<T>> {
    sel.select(timeout).expect("select");
    drain(sel)
}

/// Collects what is left of the current batch (after `select`), with the
/// checks of [`select_ready`].
pub fn drain<T: Clone, const N: usize>(sel: &mut DefaultSelector<T, N>) -> Vec<Ready<T>> {
    let mut out: Vec<Ready<T>> = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        assert!(!mask.is_empty(), "empty mask for fd {}", key.fd());
        assert!(
            key.events().contains(mask),
            "fd {}: reported {mask:?} outside registered {:?}",
            key.fd(),
            key.events()
        );
        assert!(
            out.iter().all(|r| r.0 != key.fd()),
            "fd {} twice in one batch",
            key.fd()
        );
        out.push((key.fd(), mask, key.data().clone()));
    }
    out.sort_by_key(|r| r.0);
    out
}

/// Selects (up to [`PATIENCE`] in total) until `fd` is reported with at
/// least `want`, and returns the events it was reported with. Other fds'
/// readiness in between is tolerated (as mio's `expect_events` does).
///
/// # Panics
/// When `fd` is not reported with `want` in time.
pub fn wait_for<T: Clone, const N: usize>(
    sel: &mut DefaultSelector<T, N>,
    fd: RawFd,
    want: Events,
) -> Events {
    let start = Instant::now();
    loop {
        let ready = select_ready(sel, Some(Duration::from_millis(100)));
        if let Some(&(_, mask, _)) = ready.iter().find(|r| r.0 == fd)
            && mask.contains(want)
        {
            return mask;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "fd {fd} not reported with {want:?} within {PATIENCE:?}"
        );
    }
}

/// Everything a test can observe of a selector: its keys (through every
/// accessor, cross-checked) and what a zero-timeout `select` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State<T> {
    /// `(fd, events, data)` of every key, sorted by fd.
    pub keys: Vec<(RawFd, Events, T)>,
    /// What `select(Some(ZERO))` reports, sorted by fd.
    pub ready: Vec<Ready<T>>,
}

/// Observes `sel`: see [`State`]. Asserts that `len`, `is_empty`,
/// `contains`, `get_key`, `map().get` and `map().iter()` agree.
pub fn state<T: Clone + Debug + PartialEq, const N: usize>(
    sel: &mut DefaultSelector<T, N>,
) -> State<T> {
    let mut keys: Vec<(RawFd, Events, T)> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), k.data().clone()))
        .collect();
    keys.sort_by_key(|k| k.0);
    assert_eq!(sel.len(), keys.len(), "len vs iter");
    assert_eq!(sel.map().len(), keys.len(), "map().len vs iter");
    assert_eq!(sel.map().iter().len(), keys.len(), "ExactSizeIterator");
    assert_eq!(sel.is_empty(), keys.is_empty());
    for (fd, events, data) in &keys {
        assert!(
            sel.contains(*fd) && sel.map().contains(*fd),
            "contains {fd}"
        );
        let key = sel.get_key(*fd).expect("get_key of an iterated key");
        assert_eq!((key.fd(), key.events(), key.data()), (*fd, *events, data));
        let key = sel.map().get(*fd).expect("map().get of an iterated key");
        assert_eq!((key.fd(), key.events(), key.data()), (*fd, *events, data));
    }
    let ready = select_ready(sel, Some(Duration::ZERO));
    State { keys, ready }
}

/// Asserts that `sel` shows exactly `before` (see [`state`]): what every
/// failed call must leave behind.
#[track_caller]
pub fn assert_unchanged<T: Clone + Debug + PartialEq, const N: usize>(
    sel: &mut DefaultSelector<T, N>,
    before: &State<T>,
) {
    let now = state(sel);
    assert_eq!(&now, before, "the selector changed");
}

/// The process-wide lock for tests of one test binary that depend on fd
/// numbers (closing one and expecting it to stay closed, or to be reused)
/// or on process-wide state (signal handlers, rlimits). Every test of such
/// a binary takes it, so none of them opens an fd while another counts on
/// a number. Poisoning is ignored: the failing test already reported.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The selector's own kernel object (epoll or kqueue fd), through its
/// `AsFd`.
pub fn selector_fd<T, const N: usize>(sel: &DefaultSelector<T, N>) -> RawFd {
    rustix::fd::AsRawFd::as_raw_fd(&rustix::fd::AsFd::as_fd(sel))
}

/// True when `fd` is an open file descriptor (`fcntl(F_GETFD)`).
pub fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the descriptor flags; any int is allowed.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `fcntl(F_DUPFD_CLOEXEC)`: a duplicate of `fd` numbered `min` or above
/// (the lowest free one), owned.
pub fn dup_at_least(fd: &impl AsRawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor; no memory involved.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by fcntl and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// `dup2(from, to)`, closing what `to` named. Only under [`serial`], when
/// `to` is known to be free or owned by the test.
///
/// # Panics
/// When `from` already is `to` (two owners of one fd).
pub fn dup2(from: &impl AsRawFd, to: RawFd) -> io::Result<OwnedFd> {
    assert_ne!(from.as_raw_fd(), to, "dup2 onto itself");
    // SAFETY: dup2 makes `to` a new descriptor for `from`'s description; the
    // caller holds `serial()` and knows `to` is free or its own.
    let new = unsafe { libc::dup2(from.as_raw_fd(), to) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new == to` now names a descriptor that only this value owns.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want` (capped at the hard
/// limit) and returns the soft limit now in force.
// `rlim_t` is `u64` on Linux and macOS but `i64` on FreeBSD: the casts are
// needed there.
#[allow(clippy::unnecessary_cast)]
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let want = want as libc::rlim_t;
    if lim.rlim_cur >= want {
        return Ok(lim.rlim_cur as u64);
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit with cur <= max.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur as u64)
}

/// Sets `SO_LINGER` to zero seconds, so closing `s` sends an RST.
pub fn linger_zero(s: &TcpStream) -> io::Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid `linger` and its exact size are passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Installs `handler` for `signal` **without** `SA_RESTART`, so a blocking
/// call it interrupts fails with `EINTR`, the case the selector must retry.
pub fn install_handler(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: an all-zero sigaction is valid (empty mask, no flags).
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = handler as usize;
    action.sa_flags = 0; // no SA_RESTART, no SA_SIGINFO
    // SAFETY: `action.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&raw mut action.sa_mask) };
    // SAFETY: `action` is initialised; the handler is an `extern "C" fn`
    // that the caller keeps async-signal-safe.
    let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "sigaction: {}", io::Error::last_os_error());
}

/// Ends the process with a message when a test blocks longer than `limit`
/// (a `select(None)` that is never woken, say): a hang becomes a failure.
/// Dropping the watchdog disarms it.
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    /// Arms a watchdog for `what`.
    pub fn new(what: &'static str, limit: Duration) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        std::thread::spawn(move || {
            if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                eprintln!("watchdog: `{what}` still blocked after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Self { _disarm: tx }
    }
}

/// A bound on a loop, in iterations and in time: `tick` panics past either.
#[derive(Debug)]
pub struct Bound {
    start: Instant,
    limit: Duration,
    left: usize,
    what: &'static str,
}

impl Bound {
    /// At most `iterations` ticks and [`PATIENCE`].
    pub fn new(what: &'static str, iterations: usize) -> Self {
        Self {
            start: Instant::now(),
            limit: PATIENCE,
            left: iterations,
            what,
        }
    }

    /// Counts one iteration.
    ///
    /// # Panics
    /// When the loop ran out of iterations or time.
    #[track_caller]
    pub fn tick(&mut self) {
        assert!(self.left > 0, "{}: too many iterations", self.what);
        self.left -= 1;
        assert!(
            self.start.elapsed() < self.limit,
            "{}: still looping after {:?}",
            self.what,
            self.limit
        );
    }
}

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
