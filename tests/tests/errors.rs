//! Bad input to the library: every misuse gets a typed error, the data
//! comes back, and the selector and the kernel are unchanged, checked after
//! each call with `get_key`, the map view and an actual `select` (see
//! `ioselect_tests::state`). Cases that depend on fd numbers being closed or
//! reused live in `fds.rs`.

use std::io::Write;
use std::os::unix::net::UnixStream;

use ioselect_tests::{
    DefaultSelector, Error, Events, OsError, RW, RawFd, State, assert_unchanged, fd_of, socketpair,
    state,
};

type Sel = DefaultSelector<&'static str, 8>;

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
    sel.register(fd_of(&a), Events::READ, "a").unwrap();
    sel.register(fd_of(&b), Events::WRITE, "b").unwrap();
    sel.register(fd_of(&c), Events::READ, "c").unwrap();
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
    let fds = [fd_of(&f.a), fd_of(&f.b), fd_of(&f.c)];
    for fd in fds {
        for events in [Events::READ, Events::WRITE, RW] {
            let e = f.sel.register(fd, events, "again").unwrap_err();
            assert_eq!((e.error, e.data), (Error::AlreadyRegistered, "again"));
            assert_unchanged(&mut f.sel, &f.before);
        }
    }
}

#[test]
fn register_negative_fd() {
    let mut f = fixture();
    for fd in [-1, -10, RawFd::MIN] {
        let e = f.sel.register(fd, Events::READ, "neg").unwrap_err();
        assert_eq!((e.error, e.data), (Error::InvalidFd, "neg"));
        assert_unchanged(&mut f.sel, &f.before);
    }
}

#[test]
fn register_never_opened_fd() {
    // Far above any fd this process opens (and above the usual rlimit).
    let mut f = fixture();
    for fd in [100_000, RawFd::MAX] {
        let e = f.sel.register(fd, Events::READ, "ghost").unwrap_err();
        assert_eq!(
            (e.error, e.data),
            (Error::Os(OsError::EBADF), "ghost"),
            "fd {fd}"
        );
        assert!(f.sel.get_key(fd).is_none());
        assert_unchanged(&mut f.sel, &f.before);
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
        let e = f.sel.register(fd_of(&file), events, "file").unwrap_err();
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
        let e = f.sel.register(fd_of(&e1), events, "bad").unwrap_err();
        assert_eq!(
            (e.error, e.data),
            (Error::InvalidEvents, "bad"),
            "{events:?}"
        );
        assert_unchanged(&mut f.sel, &f.before);
    }
    // The kernel never saw it: registering properly works.
    f.sel.register(fd_of(&e1), Events::WRITE, "e1").unwrap();
}

#[test]
fn modify_empty_or_unknown_events_keeps_the_key() {
    // Python's `modify` with invalid events loses the registration; ours
    // keeps it, with the old events and the old data.
    let mut f = fixture();
    let fd = fd_of(&f.a);
    for bits in [0u8, 4, 8, 0x10, 0x80, 0xff, 0x05] {
        let events = Events::from_bits_retain(bits);
        assert_eq!(
            f.sel.modify_events(fd, events).unwrap_err(),
            Error::InvalidEvents
        );
        assert_unchanged(&mut f.sel, &f.before);
        let e = f.sel.modify(fd, events, "new").unwrap_err();
        assert_eq!((e.error, e.data), (Error::InvalidEvents, "new"));
        assert_unchanged(&mut f.sel, &f.before);
    }
}

#[test]
fn modify_and_unregister_unknown_fd() {
    let mut f = fixture();
    let (x, _y) = socketpair();
    // As in Python, a negative fd is invalid (ValueError) rather than unknown.
    for (fd, expected) in [
        (fd_of(&x), Error::NotRegistered),
        (100_000, Error::NotRegistered),
        (-1, Error::InvalidFd),
    ] {
        assert_eq!(f.sel.modify_events(fd, Events::READ).unwrap_err(), expected);
        // The fd is looked up before the events are checked, as in Python.
        assert_eq!(
            f.sel.modify_events(fd, Events::empty()).unwrap_err(),
            expected
        );
        let e = f.sel.modify(fd, Events::READ, "m").unwrap_err();
        assert_eq!((e.error, e.data), (expected, "m"));
        let e = f.sel.modify_data(fd, "d").unwrap_err();
        assert_eq!((e.error, e.data), (expected, "d"));
        assert_eq!(f.sel.unregister(fd).unwrap_err(), expected);
        assert!(f.sel.get_key(fd).is_none());
        assert_unchanged(&mut f.sel, &f.before);
    }
}

#[test]
fn unregister_twice() {
    let mut f = fixture();
    let key = f.sel.unregister(fd_of(&f.c)).unwrap();
    assert_eq!(*key.data(), "c");
    let after_one = state(&mut f.sel);
    assert_eq!(
        f.sel.unregister(fd_of(&f.c)).unwrap_err(),
        Error::NotRegistered
    );
    assert_unchanged(&mut f.sel, &after_one);
}

#[test]
fn full_table_hands_the_data_back_and_keeps_the_kernel_clean() {
    let mut sel = DefaultSelector::<u32, 4>::open().unwrap();
    let pairs: Vec<_> = (0..3).map(|_| socketpair()).collect();
    let fds: Vec<RawFd> = pairs
        .iter()
        .flat_map(|(a, b)| [fd_of(a), fd_of(b)])
        .collect();
    for (i, &fd) in fds[..4].iter().enumerate() {
        sel.register(fd, Events::WRITE, i as u32).unwrap();
    }
    let before = state(&mut sel);
    assert_eq!(before.ready.len(), 4);
    for (i, &fd) in fds[4..].iter().enumerate() {
        let e = sel.register(fd, Events::WRITE, 100 + i as u32).unwrap_err();
        assert_eq!((e.error, e.data), (Error::Full, 100 + i as u32));
        assert!(sel.get_key(fd).is_none());
        assert_unchanged(&mut sel, &before);
    }
    // Full still reports the other errors first.
    let e = sel.register(fds[0], Events::WRITE, 9).unwrap_err();
    assert_eq!(e.error, Error::AlreadyRegistered);
    // The refused fd never reached the kernel: once there is room, it
    // registers (an epoll `EEXIST` would say otherwise) and is reported.
    sel.unregister(fds[0]).unwrap();
    sel.register(fds[4], Events::WRITE, 4).unwrap();
    let ready = state(&mut sel).ready;
    let mut want = vec![fds[1], fds[2], fds[3], fds[4]];
    want.sort(); // `state` sorts by fd; numbers need not grow
    assert_eq!(ready.iter().map(|r| r.0).collect::<Vec<_>>(), want);
}

#[test]
fn full_table_of_one() {
    let mut sel = DefaultSelector::<(), 1>::open().unwrap();
    let (a, b) = socketpair();
    sel.register(fd_of(&a), Events::WRITE, ()).unwrap();
    let before = state(&mut sel);
    assert_eq!(
        sel.register(fd_of(&b), Events::WRITE, ())
            .unwrap_err()
            .error,
        Error::Full
    );
    assert_unchanged(&mut sel, &before);
}

#[test]
fn errors_convert_and_display() {
    let mut f = fixture();
    // `DataError<T>` converts into `Error` with `?`, and both into
    // `Box<dyn std::error::Error + Send + Sync>`.
    fn again(sel: &mut Sel, fd: RawFd) -> Result<(), Error> {
        sel.register(fd, Events::READ, "x")?;
        Ok(())
    }
    fn boxed(sel: &mut Sel, fd: RawFd) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        sel.register(fd, Events::READ, "x").map_err(Error::from)?;
        Ok(())
    }
    assert_eq!(
        again(&mut f.sel, fd_of(&f.a)),
        Err(Error::AlreadyRegistered)
    );
    let e = boxed(&mut f.sel, 100_000).unwrap_err();
    assert!(e.to_string().contains('9'), "{e}"); // "os error 9"
    let os = Error::Os(OsError::EBADF);
    assert_eq!(
        std::io::Error::from_raw_os_error(OsError::EBADF.raw()).kind(),
        std::io::Error::from_raw_os_error(libc::EBADF).kind()
    );
    assert!(std::error::Error::source(&os).is_some());
    assert!(std::error::Error::source(&Error::Full).is_none());
    for e in [
        Error::AlreadyRegistered,
        Error::NotRegistered,
        Error::InvalidEvents,
        Error::InvalidFd,
        Error::Full,
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
