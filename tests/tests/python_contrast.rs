//! Where Python's `selectors` loses state on bad input, and ioselect does not.
//!
//! Each case runs the same misuse against CPython's `DefaultSelector` (when
//! `python3` is installed) and against ours, and checks both outcomes: the
//! Python side documents the README's comparison table with a measured
//! result, the Rust side proves ours keeps the selector and the kernel as
//! they were. Linux only: the Python side is `EpollSelector` there.
#![cfg(target_os = "linux")]

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use ioselect_linux::{DefaultSelector, Error, Events, OsError};
use ioselect_tests::dup2;

/// Serialises the tests of this file: one closes an fd behind the selector's
/// back, and a parallel test must not reuse that number before the check.
static FD_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    FD_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs a Python snippet and returns its stdout, or `None` (with the reason
/// printed) when there is no `python3`.
fn python(script: &str) -> Option<String> {
    match Command::new("python3").arg("-c").arg(script).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "python failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8(out.stdout).expect("utf-8"))
        }
        Err(e) => {
            println!("skipping the Python half: python3 not runnable ({e})");
            None
        }
    }
}

/// A socket pair whose `a` end has pending data, so READ is ready.
fn readable_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socketpair");
    std::io::Write::write_all(&mut &b, b"x").expect("write");
    (a, b)
}

/// After a refused call: the key is as it was, and a real select still
/// reports it with its old events.
fn assert_intact(sel: &mut DefaultSelector<&'static str, 8>, fd: i32, events: Events, data: &str) {
    let key = sel.get_key(fd).expect("key kept");
    assert_eq!((key.fd(), key.events(), *key.data()), (fd, events, data));
    assert_eq!(sel.map().len(), 1);
    sel.select(Some(Duration::from_secs(5))).expect("select");
    let (key, mask) = sel.next_ready().expect("still watched by the kernel");
    assert_eq!((key.fd(), mask), (fd, events & Events::READ));
    assert!(sel.next_ready().is_none());
}

#[test]
fn modify_with_empty_or_unknown_events() {
    let _serial = serial();
    // CPython 3.11: SelectSelector drops the key (it unregisters, then the
    // re-register raises); Poll/EpollSelector accept 0 and 4 and store a key
    // that waits for nothing.
    if let Some(out) = python(
        "import selectors, socket\n\
         for cls in (selectors.SelectSelector, selectors.EpollSelector):\n\
         \x20   for ev in (0, 4):\n\
         \x20       a, b = socket.socketpair(); sel = cls(); sel.register(a, selectors.EVENT_READ)\n\
         \x20       try:\n\
         \x20           sel.modify(a, ev); r = 'accepted events=%d' % sel.get_key(a).events\n\
         \x20       except ValueError:\n\
         \x20           r = 'ValueError registered=%s' % (a.fileno() in sel.get_map())\n\
         \x20       print(cls.__name__, ev, r)\n",
    ) {
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines.contains(&"SelectSelector 0 ValueError registered=False"),
            "{out}"
        );
        assert!(
            lines.contains(&"EpollSelector 0 accepted events=0"),
            "{out}"
        );
        assert!(
            lines.contains(&"EpollSelector 4 accepted events=4"),
            "{out}"
        );
    }

    let (a, _b) = readable_pair();
    let fd = a.as_raw_fd();
    let mut sel = DefaultSelector::<&'static str, 8>::open().expect("open");
    sel.register(a.as_fd(), Events::READ, "a")
        .expect("register");
    for bad in [
        Events::empty(),
        Events::from_bits_retain(4),
        Events::from_bits_retain(0xff),
    ] {
        assert_eq!(sel.modify_events(a.as_fd(), bad), Err(Error::InvalidEvents));
        let e = sel
            .modify(a.as_fd(), bad, "new")
            .expect_err("invalid events");
        assert_eq!((e.error, e.data), (Error::InvalidEvents, "new"));
        assert_intact(&mut sel, fd, Events::READ, "a");
    }
}

#[test]
fn modify_refused_by_the_kernel() {
    let _serial = serial();
    // CPython: a failed epoll modify unregisters the key, then raises. The
    // fd was closed behind the selector's back and its number reused by
    // another socket, which epoll does not watch: ENOENT. (A closed number
    // that nothing reuses, CPython's EBADF, cannot be passed to ours at all:
    // `modify` takes a `BorrowedFd`, an open fd.)
    if let Some(out) = python(
        "import selectors, socket, os\n\
         a, b = socket.socketpair(); c, d = socket.socketpair()\n\
         sel = selectors.EpollSelector()\n\
         sel.register(a, selectors.EVENT_READ); fd = a.fileno()\n\
         os.close(fd); os.dup2(c.fileno(), fd)\n\
         try:\n\
         \x20   sel.modify(fd, selectors.EVENT_WRITE)\n\
         except OSError as e:\n\
         \x20   print('errno', e.errno, 'registered', fd in sel.get_map())\n",
    ) {
        assert_eq!(out.trim(), "errno 2 registered False");
    }

    // Ours: the same refusal keeps the key with its old events and data, and
    // unregister still works.
    let (a, _b) = UnixStream::pair().expect("socketpair");
    let (c, _d) = UnixStream::pair().expect("socketpair");
    let fd = a.as_raw_fd();
    let mut sel = DefaultSelector::<&'static str, 8>::open().expect("open");
    sel.register(a.as_fd(), Events::READ, "a")
        .expect("register");
    drop(a); // closed behind the selector's back
    let reused = dup2(&c, fd).expect("dup2"); // the number now names `c`'s socket
    let e = sel
        .modify(reused.as_fd(), Events::WRITE, "b")
        .expect_err("kernel refuses");
    assert_eq!((e.error, e.data), (Error::Os(OsError::ENOENT), "b"));
    let key = sel.get_key(fd).expect("key kept");
    assert_eq!((key.events(), *key.data()), (Events::READ, "a"));
    let key = sel
        .unregister(reused.as_fd())
        .expect("unregister of a reused number succeeds");
    assert_eq!(*key.data(), "a");
    assert!(sel.map().is_empty());
}

#[test]
fn register_refused_by_the_kernel_leaves_nothing_behind() {
    let _serial = serial();
    // Both refuse a regular file with EPERM; neither keeps a key. Ours also
    // hands the data back.
    if let Some(out) = python(
        "import selectors\n\
         f = open('/proc/self/stat'); sel = selectors.EpollSelector()\n\
         try:\n\
         \x20   sel.register(f, selectors.EVENT_READ)\n\
         except PermissionError as e:\n\
         \x20   print('errno', e.errno, 'registered', f.fileno() in sel.get_map())\n",
    ) {
        assert_eq!(out.trim(), "errno 1 registered False");
    }
    let file = std::fs::File::open("/proc/self/stat").expect("open");
    let mut sel = DefaultSelector::<&'static str, 8>::open().expect("open");
    let e = sel
        .register(file.as_fd(), Events::READ, "file")
        .expect_err("EPERM");
    assert_eq!((e.error, e.data), (Error::Os(OsError::EPERM), "file"));
    assert!(sel.map().is_empty() && sel.get_key(file.as_raw_fd()).is_none());
}
