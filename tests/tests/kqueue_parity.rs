//! Same program, same results on epoll and kqueue: each test here would
//! catch one defect that the kqueue backend had on a real kernel, and pins
//! what epoll does, so it runs unchanged on Linux, macOS and FreeBSD. The
//! kernel facts behind each are cited in `os-bsd/KERNELS.md`. The tests of
//! kqueue's own rules (`rebuild`, `fork`) are in `mod kqueue_only` at the
//! end.
//!
//! Every test holds `serial()`: one installs a signal handler, and the
//! others should not have their `select`s interrupted by it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::thread::JoinHandleExt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ioselect_tests::{
    Bound, DefaultSelector, Events, PATIENCE, RW, Waker, Watchdog, fd_of, install_handler,
    select_ready, serial, socketpair, tcp_pair,
};

type Sel = DefaultSelector<&'static str, 8>;

const WAKES: usize = 1_000;

/// 1,000 wakes in a row, each sent while the `select` blocks (or about
/// to), each must end exactly that `select` (a waker whose trigger the
/// kernel resets in the same call, as FreeBSD's `filt_usertouch` does for
/// an `EVFILT_USER` trigger with `EV_CLEAR`, loses them all).
#[test]
fn thousand_wakes_from_another_thread_each_end_a_blocking_select() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (idle, _peer) = socketpair();
    sel.register(idle.as_fd(), Events::READ, "idle").unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    let _dog = Watchdog::new("select(None) waiting for wake n of 1000", PATIENCE * 6);
    let (go, rounds) = mpsc::channel::<usize>();
    thread::scope(|s| {
        s.spawn(|| {
            for round in rounds {
                // Give the selecting thread time to block in the kernel; a
                // wake sent before it does must end its select just the same.
                if round % 2 == 0 {
                    thread::sleep(Duration::from_micros(100));
                }
                waker.wake().unwrap();
            }
        });
        for round in 0..WAKES {
            go.send(round).unwrap();
            let ready = select_ready(&mut sel, None);
            assert!(ready.is_empty(), "wake {round}: {ready:?}");
        }
        drop(go);
    });
    // Each wake was used up by its own select: nothing is left pending.
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

/// The waker a signal handler uses: a `static`, so the handler reaches it.
static HANDLER_WAKER: OnceLock<Waker> = OnceLock::new();
static HANDLER_WAKES: AtomicUsize = AtomicUsize::new(0);
static HANDLER_ERRORS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn wake_from_handler(_: libc::c_int) {
    // Async-signal-safe: an atomic load, one kevent (or eventfd/pipe
    // write), atomics.
    if let Some(waker) = HANDLER_WAKER.get() {
        match waker.wake() {
            Ok(()) => HANDLER_WAKES.fetch_add(1, Ordering::Relaxed),
            Err(_) => HANDLER_ERRORS.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// The same 1,000 wakes, each from a signal handler running on the
/// selecting thread itself: the signal interrupts the kernel's wait
/// (`EINTR`, no `SA_RESTART`), the handler wakes, and the retried wait must
/// see the wake-up at once.
#[test]
fn thousand_wakes_from_a_signal_handler_each_end_a_blocking_select() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (idle, _peer) = socketpair();
    sel.register(idle.as_fd(), Events::READ, "idle").unwrap();
    assert!(
        HANDLER_WAKER
            .set(Waker::new(sel.backend()).unwrap())
            .is_ok(),
        "only this test sets HANDLER_WAKER"
    );
    install_handler(libc::SIGUSR1, wake_from_handler);
    let _dog = Watchdog::new("select(None) waiting for a handler's wake", PATIENCE * 6);
    let (go, rounds) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<usize>();
    let selecting = thread::spawn(move || {
        for round in 0..WAKES {
            go.send(()).unwrap();
            let ready = select_ready(&mut sel, None);
            assert!(ready.is_empty(), "wake {round}: {ready:?}");
            done.send(round).unwrap();
        }
        sel
    });
    for round in 0..WAKES {
        rounds.recv().expect("the selecting thread stopped");
        thread::sleep(Duration::from_micros(100));
        // Signal until this round's select has returned (one signal is
        // enough; more only if the thread had not blocked yet, whose wake is
        // pending then and ends the select the same way).
        let mut bound = Bound::new("signal the selecting thread", 10_000);
        loop {
            // SAFETY: the thread is not joined yet, so its pthread_t is valid.
            let rc = unsafe { libc::pthread_kill(selecting.as_pthread_t() as _, libc::SIGUSR1) };
            assert_eq!(rc, 0, "pthread_kill");
            match finished.recv_timeout(Duration::from_millis(50)) {
                Ok(r) => {
                    assert_eq!(r, round);
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bound.tick(),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("the selecting thread died in round {round}")
                }
            }
        }
    }
    let mut sel = selecting.join().expect("selecting thread panicked");
    assert!(HANDLER_WAKES.load(Ordering::SeqCst) >= WAKES);
    assert_eq!(HANDLER_ERRORS.load(Ordering::SeqCst), 0);
    // No wake-up is left over beyond what the handlers sent after the last
    // select returned: at most one pending, then a select waits its time.
    let _ = select_ready(&mut sel, Some(Duration::ZERO));
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

/// A connected stream socket of either kind.
trait Stream: AsFd + AsRawFd {
    /// `shutdown(SHUT_WR)`.
    fn shut_wr(&self);
}

impl Stream for UnixStream {
    fn shut_wr(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

impl Stream for TcpStream {
    fn shut_wr(&self) {
        self.shutdown(Shutdown::Write).unwrap();
    }
}

/// After its own `shutdown(SHUT_WR)` a socket registered for READ | WRITE
/// is writable (the write filter fires with `EV_EOF`; epoll: `EPOLLOUT`)
/// and has nothing to read until the peer sends. The old mapping of
/// `EV_EOF` to READ | WRITE reported READ on every select.
fn shutdown_wr_reports_no_read_until_the_peer_sends<S: Stream>(ours: &S, peer: &S)
where
    for<'a> &'a S: Read + Write,
{
    let mut sel = Sel::open().unwrap();
    let fd = fd_of(ours);
    sel.register(ours.as_fd(), RW, "ours").unwrap();
    ours.shut_wr();
    for _ in 0..3 {
        assert_eq!(
            select_ready(&mut sel, Some(PATIENCE)),
            [(fd, Events::WRITE, "ours")],
            "WRITE only: nothing to read yet"
        );
    }
    // The peer sees our end of file, and can still send.
    let mut buf = [0u8; 8];
    let mut bound = Bound::new("the peer waits for our end of file", 100_000);
    loop {
        match { peer }.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => panic!("unexpected {n} bytes"),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                bound.tick();
                thread::sleep(Duration::from_micros(100));
            }
            Err(e) => panic!("peer read: {e}"),
        }
    }
    { peer }.write_all(b"x").unwrap();
    let mut bound = Bound::new("our read readiness", 100_000);
    loop {
        let ready = select_ready(&mut sel, Some(PATIENCE));
        assert_eq!(ready.len(), 1, "{ready:?}");
        if ready[0].1 == RW {
            break;
        }
        // The byte may still be in flight on TCP: WRITE alone meanwhile.
        assert_eq!(ready[0].1, Events::WRITE);
        bound.tick();
        thread::sleep(Duration::from_micros(100));
    }
    assert_eq!({ ours }.read(&mut buf).unwrap(), 1);
    sel.unregister(ours.as_fd()).unwrap();
}

#[test]
fn after_its_own_shutdown_wr_a_unix_socket_reports_no_read_until_the_peer_sends() {
    let _serial = serial();
    let (a, b) = socketpair();
    shutdown_wr_reports_no_read_until_the_peer_sends(&a, &b);
}

#[test]
fn after_its_own_shutdown_wr_a_tcp_socket_reports_no_read_until_the_peer_sends() {
    let _serial = serial();
    let (client, server) = tcp_pair();
    shutdown_wr_reports_no_read_until_the_peer_sends(&client, &server);
}

/// A pipe whose reader is gone: FreeBSD, DragonFly and OpenBSD refuse its
/// `EVFILT_WRITE` with `EPIPE`, NetBSD with `EBADF`; epoll (and XNU)
/// accept it and report it writable, and the write then fails with
/// `EPIPE`. Every backend must give epoll's answer, on every select, until
/// the key goes.
#[test]
fn a_pipe_whose_reader_closed_registers_for_write_and_reports_write() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (other, _other_peer) = socketpair();
    sel.register(other.as_fd(), Events::READ, "idle").unwrap();
    let (reader, mut writer) = std::io::pipe().unwrap();
    drop(reader);
    let fd = fd_of(&writer);
    sel.register(writer.as_fd(), Events::WRITE, "pipe").unwrap();
    assert_eq!(sel.get_key(fd).map(|k| k.events()), Some(Events::WRITE));
    for _ in 0..3 {
        // A blocking select returns for it at once.
        let start = Instant::now();
        assert_eq!(select_ready(&mut sel, None), [(fd, Events::WRITE, "pipe")]);
        assert!(start.elapsed() < PATIENCE);
    }
    // Writable, and the write says why (Rust ignores SIGPIPE).
    let e = writer.write(b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    // Unregister removes it: the next select waits its whole timeout.
    assert_eq!(sel.unregister(writer.as_fd()).unwrap().into_data(), "pipe");
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
    // And it registers again, as often as asked.
    sel.register(writer.as_fd(), Events::WRITE, "again")
        .unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(PATIENCE)),
        [(fd, Events::WRITE, "again")]
    );
    sel.unregister(writer.as_fd()).unwrap();
}

/// The same pipe among live keys: its WRITE comes together with the other
/// keys' readiness, each key once, and a live pipe is unaffected.
#[test]
fn a_dead_pipe_is_reported_alongside_other_ready_keys() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    sel.register(writer.as_fd(), Events::WRITE, "dead").unwrap();
    let (live_reader, live_writer) = std::io::pipe().unwrap();
    sel.register(live_writer.as_fd(), Events::WRITE, "live")
        .unwrap();
    (&b).write_all(b"x").unwrap();
    let mut want = vec![
        (fd_of(&a), Events::READ, "a"),
        (fd_of(&writer), Events::WRITE, "dead"),
        (fd_of(&live_writer), Events::WRITE, "live"),
    ];
    want.sort_by_key(|r| r.0);
    assert_eq!(select_ready(&mut sel, Some(PATIENCE)), want);
    // Once unregistered, the dead pipe is no longer reported; the others
    // still are.
    sel.unregister(writer.as_fd()).unwrap();
    want.retain(|r| r.0 != fd_of(&writer));
    assert_eq!(select_ready(&mut sel, Some(PATIENCE)), want);
    drop(live_reader);
}

/// The dead pipe's key survives `rebuild` (the backend files it again) and
/// goes with `unregister_closed` (the backend forgets it): no report is
/// left behind for a number the table no longer has.
#[test]
fn a_dead_pipe_through_rebuild_and_unregister_closed() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let fd = fd_of(&writer);
    sel.register(writer.as_fd(), Events::WRITE, "dead").unwrap();
    sel.rebuild(|_| Some(writer.as_fd())).unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(PATIENCE)),
        [(fd, Events::WRITE, "dead")]
    );
    drop(writer);
    assert_eq!(sel.unregister_closed(fd).unwrap().into_data(), "dead");
    let start = Instant::now();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());
    assert!(start.elapsed() >= Duration::from_millis(20));
}

/// kqueue's own rules, which epoll has no counterpart for.
#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
mod kqueue_only {
    use super::*;
    use ioselect_tests::Error;
    use std::os::fd::BorrowedFd;

    /// `EV_ADD` of `EVFILT_READ` for `fd` with `udata`, straight into the
    /// kqueue `kq`: a registration the selector's table does not know.
    fn raw_add_read(kq: BorrowedFd<'_>, fd: i32, udata: usize) {
        // SAFETY: a zeroed `struct kevent` is valid; the fields set are the
        // ones `EV_SET` sets.
        let mut change: libc::kevent = unsafe { std::mem::zeroed() };
        change.ident = fd as _;
        change.filter = libc::EVFILT_READ as _;
        change.flags = libc::EV_ADD as _;
        change.udata = udata as _;
        // SAFETY: one change, no event list, a valid kqueue fd.
        let n = unsafe {
            libc::kevent(
                kq.as_raw_fd(),
                &change,
                1,
                std::ptr::null_mut(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(n, 0, "{}", std::io::Error::last_os_error());
    }

    /// How many events the kqueue `kq` has pending (a zero-timeout poll).
    fn raw_pending(kq: BorrowedFd<'_>) -> i32 {
        // SAFETY: zeroed `struct kevent`s and `timespec` are valid.
        let mut events: [libc::kevent; 8] = unsafe { std::mem::zeroed() };
        let zero: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: room for 8 events, a valid kqueue fd.
        let n = unsafe {
            libc::kevent(
                kq.as_raw_fd(),
                std::ptr::null(),
                0,
                events.as_mut_ptr(),
                8,
                &zero,
            )
        };
        assert!(n >= 0, "{}", std::io::Error::last_os_error());
        n
    }

    /// `rebuild` starts a truly fresh kqueue: a registration the table does
    /// not know (what a failed undo would leave) stays behind with the old
    /// one. (When `renew` was a `dup` of the same kqueue, it stayed and
    /// fired in every `select`.)
    #[test]
    fn rebuild_leaves_a_registration_the_table_does_not_know_behind() {
        let _serial = serial();
        let mut sel = Sel::open().unwrap();
        let (a, b) = socketpair();
        let (x, y) = socketpair();
        sel.register(a.as_fd(), Events::READ, "a").unwrap();
        raw_add_read(sel.backend().as_fd(), x.as_raw_fd(), 0xdead);
        (&y).write_all(b"x").unwrap();
        assert_eq!(raw_pending(sel.backend().as_fd()), 1, "the stranger fires");
        sel.rebuild(|_| Some(a.as_fd())).unwrap();
        assert_eq!(
            raw_pending(sel.backend().as_fd()),
            0,
            "only the table's keys"
        );
        (&b).write_all(b"y").unwrap();
        assert_eq!(
            select_ready(&mut sel, Some(PATIENCE)),
            [(fd_of(&a), Events::READ, "a")]
        );
    }

    /// A failed `rebuild` (no source for the second key) leaves the live
    /// kqueue as it was: both keys are still reported, and a waker made
    /// before it still wakes the selector.
    #[test]
    fn a_failed_rebuild_keeps_every_registration_and_the_waker() {
        let _serial = serial();
        let mut sel = Sel::open().unwrap();
        let waker = Waker::new(sel.backend()).unwrap();
        let (a, b) = socketpair();
        let (c, d) = socketpair();
        sel.register(a.as_fd(), Events::READ, "a").unwrap();
        sel.register(c.as_fd(), Events::READ, "c").unwrap();
        let failed = sel.rebuild(|key| (key.fd() == fd_of(&a)).then(|| a.as_fd()));
        assert_eq!(failed, Err(Error::InvalidFd));
        (&b).write_all(b"x").unwrap();
        (&d).write_all(b"x").unwrap();
        let mut want = vec![
            (fd_of(&a), Events::READ, "a"),
            (fd_of(&c), Events::READ, "c"),
        ];
        want.sort_by_key(|r| r.0);
        assert_eq!(select_ready(&mut sel, Some(PATIENCE)), want);
        sel.unregister(a.as_fd()).unwrap();
        sel.unregister(c.as_fd()).unwrap();
        waker.wake().unwrap();
        let start = Instant::now();
        assert!(select_ready(&mut sel, Some(PATIENCE)).is_empty());
        assert!(start.elapsed() < PATIENCE, "woken");
    }

    /// A waker holds no kqueue (its fd is the wake-up pipe's read end), so
    /// closing the selector closes its kqueue and every registration at
    /// once, waker or not.
    #[test]
    fn a_live_waker_holds_no_kqueue() {
        let _serial = serial();
        let sel = Sel::open().unwrap();
        let waker = Waker::new(sel.backend()).unwrap();
        // SAFETY: a zeroed `struct stat` is valid; `fstat` fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and a `stat` to fill.
        assert_eq!(
            unsafe { libc::fstat(waker.as_fd().as_raw_fd(), &mut st) },
            0
        );
        assert_eq!(
            st.st_mode & libc::S_IFMT,
            libc::S_IFIFO,
            "a pipe, not a kqueue"
        );
        sel.close();
        waker.wake().unwrap(); // reaches no one, fails nothing
    }

    /// What the child of a `fork` checks, without allocating or panicking
    /// (another thread may have held the allocator's lock at the fork):
    /// the exit code says which check failed.
    fn child(mut sel: Sel, kq: i32, a: &UnixStream) -> i32 {
        // SAFETY: plain fcntl/open/dup2 calls on numbers, no memory shared.
        unsafe {
            // No kernel copies a kqueue into a fork child.
            if libc::fcntl(kq, libc::F_GETFD) != -1 {
                return 10;
            }
            // The number is the next file's: make it /dev/null's.
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
            if null < 0 || libc::dup2(null, kq) != kq {
                return 11;
            }
        }
        if sel.select(Some(Duration::ZERO)) != Err(Error::Forked) {
            return 12;
        }
        if sel.rebuild(|_| Some(a.as_fd())).is_err() {
            return 13;
        }
        // Dropping the inherited kqueue left /dev/null open.
        // SAFETY: fcntl on a number.
        if unsafe { libc::fcntl(kq, libc::F_GETFD) } == -1 {
            return 14;
        }
        // The rebuilt selector works: the parent's byte is there to read.
        if sel.select(Some(PATIENCE)).is_err() {
            return 15;
        }
        match sel.next_ready() {
            Some((key, ready)) if key.fd() == fd_of(a) && ready == Events::READ => {}
            _ => return 16,
        }
        // A waker made in the child wakes the child's selector.
        let Ok(waker) = Waker::new(sel.backend()) else {
            return 17;
        };
        if sel.unregister(a.as_fd()).is_err() || waker.wake().is_err() {
            return 18;
        }
        let start = Instant::now();
        if sel.select(Some(PATIENCE)).is_err() || start.elapsed() >= PATIENCE {
            return 19;
        }
        drop(sel);
        0
    }

    /// After `fork` the child's inherited selector neither closes nor uses
    /// the number its kqueue had (which the child's next file takes):
    /// `select` fails with `Error::Forked`, dropping closes nothing, and
    /// `rebuild` gives the child a working selector. The parent's is
    /// untouched.
    #[test]
    fn a_fork_child_neither_closes_nor_uses_the_parents_kqueue() {
        let _serial = serial();
        let mut sel = Sel::open().unwrap();
        let (a, b) = socketpair();
        sel.register(a.as_fd(), Events::READ, "a").unwrap();
        (&b).write_all(b"x").unwrap();
        let kq = sel.backend().as_fd().as_raw_fd();
        // SAFETY: the child calls only `child` and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "{}", std::io::Error::last_os_error());
        if pid == 0 {
            let code = child(sel, kq, &a);
            // SAFETY: ends the child without running the parent's atexit
            // handlers or the test harness.
            unsafe { libc::_exit(code) }
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(libc::WIFEXITED(status), "status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "the child's failed check");
        assert_eq!(
            select_ready(&mut sel, Some(PATIENCE)),
            [(fd_of(&a), Events::READ, "a")]
        );
    }
}
