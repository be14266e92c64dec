//! Bad input to the library: every misuse gets a typed error, the data
//! comes back, and the selector and the kernel are unchanged, checked after
//! each call with `get_key`, the map view and an actual `select` (see
//! `ioselect_tests::state`). Cases that depend on fd numbers being closed or
//! reused live in `fds.rs`.
//!
//! The OS backends take a `BorrowedFd` for every call that reaches the
//! kernel, so a negative fd or one that names nothing cannot be handed to
//! them at all (I/O safety). Those misuses are checked on the number path
//! that remains: the software backend's (same key table, same rules; see
//! [`soft_fixture`]), and the calls that take a number on every backend
//! (`get_key`, `modify_data`, `unregister_closed`).

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ioselect_tests::{
    DefaultSelector, Error, Events, OsError, RW, RawFd, Selector, SoftBackend, SoftReadiness,
    State, assert_unchanged, fd_of, socketpair, state,
};

type Sel = DefaultSelector<&'static str, 8>;

/// Sources of the software backend: `0..M`; a number from `M` on names
/// nothing (`EBADF`), like an fd that was never opened.
const M: usize = 8;
type Soft<'r> = Selector<SoftBackend<'r, M>, &'static str, 8>;

/// The software twin of [`fixture`]: `0` READ and readable, `1` WRITE and
/// writable, `2` READ and not readable.
fn soft_fixture(r: &SoftReadiness<M>) -> Soft<'_> {
    let mut sel: Soft<'_> = Selector::new(SoftBackend::new(r));
    sel.register(0, Events::READ, "a").unwrap();
    sel.register(1, Events::WRITE, "b").unwrap();
    sel.register(2, Events::READ, "c").unwrap();
    r.set(0, Events::READ);
    r.set(1, Events::WRITE);
    assert_eq!(
        soft_state(&mut sel).2,
        [(0, Events::READ), (1, Events::WRITE)]
    );
    sel
}

/// What a [`Soft`] selector shows: its keys, the backend's interest in
/// every source, and what a zero-timeout `select` reports.
type SoftState = (
    Vec<(RawFd, Events, &'static str)>,
    Vec<Option<Events>>,
    Vec<(RawFd, Events)>,
);

fn soft_state(sel: &mut Soft<'_>) -> SoftState {
    let mut keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), *k.data()))
        .collect();
    keys.sort_by_key(|k| k.0);
    let interest = (0..M as RawFd)
        .map(|fd| sel.backend().interest(fd))
        .collect();
    sel.select(Some(Duration::ZERO)).unwrap();
    let mut ready = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        ready.push((key.fd(), mask));
    }
    (keys, interest, ready)
}

/// A selector with three keys in known states: `a` READ and readable, `b`
/// WRITE and writable, `c` READ and not readable.
struct Fixture {
    sel: Sel,
    a: UnixStream,
    b: UnixStream,
    c: UnixStream,
    _d: UnixStream,
    before: State<&'static str>,
}

fn fixture() -> Fixture {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    let (c, d) = socketpair();
    (&b).write_all(b"pending").unwrap();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    sel.register(b.as_fd(), Events::WRITE, "b").unwrap();
    sel.register(c.as_fd(), Events::READ, "c").unwrap();
    let before = state(&mut sel);
    // The fixture is what it claims to be.
    assert_eq!(before.keys.len(), 3);
    let mut want = vec![
        (fd_of(&a), Events::READ, "a"),
        (fd_of(&b), Events::WRITE, "b"),
    ];
    want.sort_by_key(|r| r.0); // as `state` sorts; numbers need not grow
    assert_eq!(before.ready, want);
    Fixture {
        sel,
        a,
        b,
        c,
        _d: d,
        before,
    }
}

#[test]
fn register_twice() {
    let mut f = fixture();
    for s in [&f.a, &f.b, &f.c] {
        for events in [Events::READ, Events::WRITE, RW] {
            let e = f.sel.register(s.as_fd(), events, "again").unwrap_err();
            assert_eq!((e.error, e.data), (Error::AlreadyRegistered, "again"));
            assert_unchanged(&mut f.sel, &f.before);
        }
    }
}

/// On the software backend: a negative fd cannot be named on the OS
/// backends (no `BorrowedFd` is negative).
#[test]
fn register_negative_fd() {
    let r = SoftReadiness::<M>::new();
    let mut sel = soft_fixture(&r);
    let before = soft_state(&mut sel);
    for fd in [-1, -10, RawFd::MIN] {
        let e = sel.register(fd, Events::READ, "neg").unwrap_err();
        assert_eq!((e.error, e.data), (Error::InvalidFd, "neg"));
        assert_eq!(soft_state(&mut sel), before);
    }
}

/// On the software backend: a number that names nothing (an fd never
/// opened) cannot be named on the OS backends.
#[test]
fn register_never_opened_fd() {
    let r = SoftReadiness::<M>::new();
    let mut sel = soft_fixture(&r);
    let before = soft_state(&mut sel);
    for fd in [M as RawFd, 100_000, RawFd::MAX] {
        let e = sel.register(fd, Events::READ, "ghost").unwrap_err();
        assert_eq!(
            (e.error, e.data),
            (Error::Os(OsError::EBADF), "ghost"),
            "fd {fd}"
        );
        assert!(sel.get_key(fd).is_none());
        assert_eq!(soft_state(&mut sel), before);
    }
}

#[test]
#[cfg_attr(
    any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "netbsd",
        target_os = "openbsd",
        target_os = "dragonfly"
    ),
    ignore = "kqueue accepts regular files (EVFILT_READ reports them readable); only epoll refuses them"
)]
fn register_regular_file_is_eperm() {
    let mut f = fixture();
    let path = std::env::temp_dir().join(format!("ioselect-regular-{}", std::process::id()));
    let file = std::fs::File::create(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    for events in [Events::READ, Events::WRITE, RW] {
        let e = f.sel.register(file.as_fd(), events, "file").unwrap_err();
        assert_eq!((e.error, e.data), (Error::Os(OsError::EPERM), "file"));
        assert!(f.sel.get_key(fd_of(&file)).is_none());
        assert_unchanged(&mut f.sel, &f.before);
    }
}

#[test]
fn register_empty_or_unknown_events() {
    let mut f = fixture();
    let (e1, _e2) = socketpair();
    let mut masks = vec![Events::empty()];
    masks.extend((2..8).map(|bit| Events::from_bits_retain(1 << bit)));
    masks.push(Events::from_bits_retain(0xff));
    masks.push(Events::from_bits_retain(Events::READ.bits() | 0x80));
    for events in masks {
        let e = f.sel.register(e1.as_fd(), events, "bad").unwrap_err();
        assert_eq!(
            (e.error, e.data),
            (Error::InvalidEvents, "bad"),
            "{events:?}"
        );
        assert_unchanged(&mut f.sel, &f.before);
    }
    // The kernel never saw it: registering properly works.
    f.sel.register(e1.as_fd(), Events::WRITE, "e1").unwrap();
}

#[test]
fn modify_empty_or_unknown_events_keeps_the_key() {
    // Python's `modify` with invalid events loses the registration; ours
    // keeps it, with the old events and the old data.
    let mut f = fixture();
    for bits in [0u8, 4, 8, 0x10, 0x80, 0xff, 0x05] {
        let events = Events::from_bits_retain(bits);
        assert_eq!(
            f.sel.modify_events(f.a.as_fd(), events).unwrap_err(),
            Error::InvalidEvents
        );
        assert_unchanged(&mut f.sel, &f.before);
        let e = f.sel.modify(f.a.as_fd(), events, "new").unwrap_err();
        assert_eq!((e.error, e.data), (Error::InvalidEvents, "new"));
        assert_unchanged(&mut f.sel, &f.before);
    }
}

#[test]
fn modify_and_unregister_unknown_fd() {
    let mut f = fixture();
    let (x, _y) = socketpair();
    // An open fd that is not registered, through every call.
    assert_eq!(
        f.sel.modify_events(x.as_fd(), Events::READ).unwrap_err(),
        Error::NotRegistered
    );
    // The fd is looked up before the events are checked, as in Python.
    assert_eq!(
        f.sel.modify_events(x.as_fd(), Events::empty()).unwrap_err(),
        Error::NotRegistered
    );
    let e = f.sel.modify(x.as_fd(), Events::READ, "m").unwrap_err();
    assert_eq!((e.error, e.data), (Error::NotRegistered, "m"));
    assert_eq!(
        f.sel.unregister(x.as_fd()).unwrap_err(),
        Error::NotRegistered
    );
    assert_unchanged(&mut f.sel, &f.before);
    // The calls that take a number. As in Python, a negative fd is invalid
    // (ValueError) rather than unknown.
    for (fd, expected) in [
        (fd_of(&x), Error::NotRegistered),
        (100_000, Error::NotRegistered),
        (-1, Error::InvalidFd),
    ] {
        let e = f.sel.modify_data(fd, "d").unwrap_err();
        assert_eq!((e.error, e.data), (expected, "d"));
        assert_eq!(f.sel.unregister_closed(fd).unwrap_err(), expected);
        assert!(f.sel.get_key(fd).is_none() && !f.sel.contains(fd));
        assert_unchanged(&mut f.sel, &f.before);
    }
    // The kernel calls with numbers that no `BorrowedFd` can carry: on the
    // software backend.
    let r = SoftReadiness::<M>::new();
    let mut sel = soft_fixture(&r);
    let before = soft_state(&mut sel);
    for (fd, expected) in [
        (3, Error::NotRegistered),
        (100_000, Error::NotRegistered),
        (-1, Error::InvalidFd),
    ] {
        assert_eq!(sel.modify_events(fd, Events::READ).unwrap_err(), expected);
        assert_eq!(
            sel.modify_events(fd, Events::empty()).unwrap_err(),
            expected
        );
        let e = sel.modify(fd, Events::READ, "m").unwrap_err();
        assert_eq!((e.error, e.data), (expected, "m"));
        let e = sel.modify_data(fd, "d").unwrap_err();
        assert_eq!((e.error, e.data), (expected, "d"));
        assert_eq!(sel.unregister(fd).unwrap_err(), expected);
        assert_eq!(sel.unregister_closed(fd).unwrap_err(), expected);
        assert!(sel.get_key(fd).is_none());
        assert_eq!(soft_state(&mut sel), before);
    }
}

#[test]
fn unregister_twice() {
    let mut f = fixture();
    let key = f.sel.unregister(f.c.as_fd()).unwrap();
    assert_eq!(*key.data(), "c");
    let after_one = state(&mut f.sel);
    assert_eq!(
        f.sel.unregister(f.c.as_fd()).unwrap_err(),
        Error::NotRegistered
    );
    assert_unchanged(&mut f.sel, &after_one);
}

#[test]
fn full_table_hands_the_data_back_and_keeps_the_kernel_clean() {
    let mut sel = DefaultSelector::<u32, 4>::open().unwrap();
    let pairs: Vec<_> = (0..3).map(|_| socketpair()).collect();
    let socks: Vec<&UnixStream> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
    let fds: Vec<RawFd> = socks.iter().map(|s| fd_of(*s)).collect();
    for (i, s) in socks[..4].iter().enumerate() {
        sel.register(s.as_fd(), Events::WRITE, i as u32).unwrap();
    }
    let before = state(&mut sel);
    assert_eq!(before.ready.len(), 4);
    for (i, s) in socks[4..].iter().enumerate() {
        let e = sel
            .register(s.as_fd(), Events::WRITE, 100 + i as u32)
            .unwrap_err();
        assert_eq!((e.error, e.data), (Error::Full, 100 + i as u32));
        assert!(sel.get_key(fd_of(*s)).is_none());
        assert_unchanged(&mut sel, &before);
    }
    // Full still reports the other errors first.
    let e = sel
        .register(socks[0].as_fd(), Events::WRITE, 9)
        .unwrap_err();
    assert_eq!(e.error, Error::AlreadyRegistered);
    // The refused fd never reached the kernel: once there is room, it
    // registers (an epoll `EEXIST` would say otherwise) and is reported.
    sel.unregister(socks[0].as_fd()).unwrap();
    sel.register(socks[4].as_fd(), Events::WRITE, 4).unwrap();
    let ready = state(&mut sel).ready;
    let mut want = vec![fds[1], fds[2], fds[3], fds[4]];
    want.sort(); // `state` sorts by fd; numbers need not grow
    assert_eq!(ready.iter().map(|r| r.0).collect::<Vec<_>>(), want);
}

#[test]
fn full_table_of_one() {
    let mut sel = DefaultSelector::<(), 1>::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::WRITE, ()).unwrap();
    let before = state(&mut sel);
    assert_eq!(
        sel.register(b.as_fd(), Events::WRITE, ())
            .unwrap_err()
            .error,
        Error::Full
    );
    assert_unchanged(&mut sel, &before);
}

#[test]
fn errors_convert_and_display() {
    let mut f = fixture();
    // `DataError<T>` converts into `Error` with `?`, both into
    // `Box<dyn std::error::Error + Send + Sync>`, and (the `std` feature)
    // into `std::io::Error`.
    fn again(sel: &mut Sel, fd: BorrowedFd<'_>) -> Result<(), Error> {
        sel.register(fd, Events::READ, "x")?;
        Ok(())
    }
    fn boxed(
        sel: &mut Sel,
        fd: BorrowedFd<'_>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        sel.register(fd, Events::READ, "x").map_err(Error::from)?;
        Ok(())
    }
    fn io(sel: &mut Sel, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        sel.register(fd, Events::READ, "x")?;
        Ok(())
    }
    assert_eq!(
        again(&mut f.sel, f.a.as_fd()),
        Err(Error::AlreadyRegistered)
    );
    let e = boxed(&mut f.sel, f.a.as_fd()).unwrap_err();
    assert_eq!(e.to_string(), Error::AlreadyRegistered.to_string());
    let e = io(&mut f.sel, f.a.as_fd()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
    assert_eq!(
        e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()),
        Some(&Error::AlreadyRegistered)
    );
    // An OS error displays as std does ("Bad file descriptor (os error
    // 9)"), has no `source()` (the message is already its own), and turns
    // into the same `io::Error`, errno kept.
    let os = Error::Os(OsError::EBADF);
    let std_ebadf = std::io::Error::from_raw_os_error(libc::EBADF);
    assert_eq!(OsError::EBADF.raw(), libc::EBADF);
    assert_eq!(os.to_string(), std_ebadf.to_string());
    assert_eq!(OsError::EBADF.to_string(), std_ebadf.to_string());
    assert!(os.to_string().ends_with("(os error 9)"), "{os}");
    assert!(std::error::Error::source(&os).is_none());
    assert!(std::error::Error::source(&Error::Full).is_none());
    let as_io = std::io::Error::from(os);
    assert_eq!(
        (as_io.raw_os_error(), as_io.kind()),
        (Some(libc::EBADF), std_ebadf.kind())
    );
    for e in [
        Error::AlreadyRegistered,
        Error::NotRegistered,
        Error::InvalidEvents,
        Error::InvalidFd,
        Error::Full,
        Error::StaleRegistration,
        Error::NoClock,
        Error::InvalidCapacity,
        Error::Forked,
        os,
    ] {
        assert!(!e.to_string().is_empty());
    }
    assert_unchanged(&mut f.sel, &f.before);
}

#[test]
fn os_error_constants_match_the_platform() {
    for (ours, libc_value) in [
        (OsError::EPERM, libc::EPERM),
        (OsError::ENOENT, libc::ENOENT),
        (OsError::EINTR, libc::EINTR),
        (OsError::EBADF, libc::EBADF),
        (OsError::ENOMEM, libc::ENOMEM),
        (OsError::EEXIST, libc::EEXIST),
        (OsError::EINVAL, libc::EINVAL),
    ] {
        assert_eq!(ours.raw(), libc_value);
    }
}
