//! Same program, same results on epoll and kqueue (issue 10): each test
//! here would catch one defect that the kqueue backend had on a real
//! kernel, and pins what epoll does, so it runs unchanged on Linux, macOS
//! and FreeBSD. The kernel facts behind each are cited in
//! `os-bsd/KERNELS.md`.
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

/// FreeBSD and DragonFly lost every wake of the old waker (its trigger
/// carried `EV_CLEAR`, which `filt_usertouch` applies after setting the
/// trigger): 1,000 wakes in a row, each sent while the `select` blocks
/// (or about to), each must end exactly that `select`.
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
