//! Tests that depend on fd numbers: closed fds, numbers reused behind the
//! selector's back, numbers above 1024, the selector's own fd. Every test
//! here holds `serial()`, so no other test of this binary opens an fd while
//! one counts on a number staying closed or being reused.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ioselect_tests::{
    Bound, DefaultSelector, Error, Events, OsError, RW, RawFd, Selector, SoftBackend,
    SoftReadiness, assert_unchanged, drain, dup_at_least, dup2, fd_of, is_open, raise_nofile,
    select_ready, selector_fd, serial, socketpair, state, wait_for,
};

type Sel = DefaultSelector<&'static str, 16>;

/// Closes `s` and returns its (now free) number.
fn close<S: Into<OwnedFd>>(s: S) -> RawFd {
    let fd: OwnedFd = s.into();
    let n = fd.as_raw_fd();
    drop(fd);
    assert!(!is_open(n));
    n
}

/// A closed fd can no longer be handed to the OS backends at all: they
/// take a `BorrowedFd`, which only an open fd gives (I/O safety; see the
/// `compile_fail` example in `ioselect_tests`). The number path, the
/// software backend's, still answers a number that names no source with
/// `EBADF`, and changes neither the table nor its interest set.
#[test]
fn register_closed_fd_is_ebadf() {
    let r = SoftReadiness::<8>::new();
    let mut sel: Selector<SoftBackend<'_, 8>, &str, 4> = Selector::new(SoftBackend::new(&r));
    sel.register(3, Events::WRITE, "keep").unwrap();
    let closed = 8; // outside the backend's sources 0..8: names nothing
    let e = sel.register(closed, Events::READ, "closed").unwrap_err();
    assert_eq!((e.error, e.data), (Error::Os(OsError::EBADF), "closed"));
    assert!(sel.get_key(closed).is_none() && !sel.contains(closed));
    assert_eq!(sel.len(), 1);
    assert_eq!(*sel.get_key(3).unwrap().data(), "keep");
    assert_eq!(sel.backend().interest(3), Some(Events::WRITE));
    assert_eq!(sel.backend().interest(closed), None);
}

/// Python's `test_unregister_after_fd_close` and `..._after_socket_close`:
/// a closed fd cannot be named by a `BorrowedFd` any more, so its key goes
/// with `unregister_closed`, by number, without a kernel call.
#[test]
fn unregister_after_the_fd_was_closed() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (rd, wr) = socketpair();
    let (r, w) = (fd_of(&rd), fd_of(&wr));
    sel.register(rd.as_fd(), Events::READ, "r").unwrap();
    sel.register(wr.as_fd(), Events::WRITE, "w").unwrap();
    close(rd);
    close(wr);
    let key = sel.unregister_closed(r).unwrap();
    assert_eq!(
        (key.fd(), key.events(), *key.data()),
        (r, Events::READ, "r")
    );
    let key = sel.unregister_closed(w).unwrap();
    assert_eq!(
        (key.fd(), key.events(), *key.data()),
        (w, Events::WRITE, "w")
    );
    assert!(sel.is_empty() && sel.map().iter().next().is_none());
    assert!(select_ready(&mut sel, Some(Duration::from_millis(1))).is_empty());
    assert_eq!(sel.unregister_closed(r).unwrap_err(), Error::NotRegistered);
}

/// Python's `test_unregister_after_fd_close_and_reuse`: the numbers name
/// other sockets by the time they are unregistered, so `unregister` is
/// handed the new sockets (the kernel does not watch them: `ENOENT`,
/// which counts as success) and removes the old keys.
#[test]
fn unregister_after_close_and_reuse() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (rd, wr) = socketpair();
    let (r, w) = (fd_of(&rd), fd_of(&wr));
    sel.register(rd.as_fd(), Events::READ, "r").unwrap();
    sel.register(wr.as_fd(), Events::WRITE, "w").unwrap();
    let (rd2, wr2) = socketpair();
    close(rd);
    close(wr);
    let r_again = dup2(&rd2, r).unwrap();
    let w_again = dup2(&wr2, w).unwrap();
    assert_eq!(sel.unregister(r_again.as_fd()).unwrap().into_data(), "r");
    assert_eq!(sel.unregister(w_again.as_fd()).unwrap().into_data(), "w");
    assert!(sel.is_empty());
    // The new sockets behind the numbers register normally.
    sel.register(r_again.as_fd(), Events::READ, "r2").unwrap();
    sel.register(w_again.as_fd(), Events::WRITE, "w2").unwrap();
    (&wr2).write_all(b"x").unwrap();
    let ready = wait_for(&mut sel, r, Events::READ);
    assert_eq!(ready, Events::READ);
    drop((r_again, w_again));
}

/// An fd closed while registered, its number reused by a new socket before
/// `unregister`: the new socket does not inherit the old key, no stale event
/// reaches it, a `modify` that the kernel refuses leaves the old key, and
/// after `unregister` the new socket registers normally.
#[test]
fn closed_while_registered_then_number_reused() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (old, old_peer) = socketpair();
    let n = fd_of(&old);
    sel.register(old.as_fd(), Events::READ, "old").unwrap();
    // Opened before the close, so it cannot take the number itself.
    let (fresh, fresh_peer) = socketpair();
    close(old);
    drop(old_peer);

    let reused = dup2(&fresh, n).unwrap();
    drop(fresh); // `n` is now the only fd of the new socket
    let reused = UnixStream::from(reused);
    assert_eq!(reused.as_raw_fd(), n);
    let before = state(&mut sel);
    assert_eq!(before.keys, [(n, Events::READ, "old")]);

    // The new socket is readable, but it is not registered: nothing.
    (&fresh_peer).write_all(b"new data").unwrap();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(20))).is_empty());

    // Registering the number again: the old key is still there.
    let e = sel
        .register(reused.as_fd(), Events::READ, "new")
        .unwrap_err();
    assert_eq!((e.error, e.data), (Error::AlreadyRegistered, "new"));
    assert_unchanged(&mut sel, &before);

    // Unregister (of the new socket, the only one the number names) returns
    // the old key; then the new socket registers and gets its own events
    // with its own data.
    assert_eq!(sel.unregister(reused.as_fd()).unwrap().into_data(), "old");
    sel.register(reused.as_fd(), Events::READ, "new").unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(Duration::from_secs(5))),
        [(n, Events::READ, "new")]
    );
    let mut buf = [0u8; 16];
    assert_eq!((&reused).read(&mut buf).unwrap(), 8);
}

/// The same, but the old socket lives on in a `dup`, so the kernel keeps
/// reporting it under the old registration: those events are stale and
/// must never reach the new key. On epoll, where that registration cannot
/// be removed any more (its number names the new socket), `select` says so
/// with `StaleRegistration` after each wait it ended; kqueue dropped it with
/// the close.
#[test]
fn stale_kernel_events_of_a_duplicated_fd_never_reach_the_new_key() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (old, old_peer) = socketpair();
    let n = fd_of(&old);
    sel.register(old.as_fd(), Events::READ, "old").unwrap();
    let old_dup = dup_at_least(&old, 0).unwrap(); // keeps the description alive
    let (fresh, fresh_peer) = socketpair();
    close(old);

    let reused = dup2(&fresh, n).unwrap();
    drop(fresh);
    assert_eq!(sel.unregister(reused.as_fd()).unwrap().into_data(), "old");
    sel.register(reused.as_fd(), Events::READ, "new").unwrap();

    // Only the old description is readable. On epoll it is still in the
    // interest set under the old token; whatever the kernel reports, no key
    // may come out of it.
    (&old_peer).write_all(b"stale").unwrap();
    let linux = cfg!(any(target_os = "linux", target_os = "android"));
    let mut reported = 0;
    for _ in 0..4 {
        match sel.select(Some(Duration::from_millis(10))) {
            Ok(()) => assert!(drain(&mut sel).is_empty()),
            Err(e) => {
                assert_eq!(e, Error::StaleRegistration);
                reported += 1;
            }
        }
    }
    assert_eq!(reported, if linux { 2 } else { 0 });
    // Now the new socket: reported, with the new data, in the first batch
    // that is not a report of the stale registration.
    (&fresh_peer).write_all(b"fresh").unwrap();
    let mut batches = Vec::new();
    for _ in 0..2 {
        match sel.select(Some(Duration::from_secs(5))) {
            Ok(()) => batches.push(drain(&mut sel)),
            Err(e) => assert_eq!(e, Error::StaleRegistration),
        }
    }
    assert_eq!(batches[0], [(n, Events::READ, "new")]);
    drop((reused, old_dup));
}

/// After the number was closed and reused, a `modify` reaches a kernel that
/// does not know the new socket (`ENOENT`), and the old key (events and
/// data) stays as it was. epoll: the new file was never added; kqueue: the
/// close dropped the number's filters, and `modify` checks the filters it
/// keeps (`EV_ENABLE` without `EV_ADD`, os-bsd/KERNELS.md section 4).
#[test]
fn modify_of_a_reused_number_is_refused_and_keeps_the_old_key() {
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (old, _old_peer) = socketpair();
    let n = fd_of(&old);
    sel.register(old.as_fd(), Events::READ, "old").unwrap();
    let (fresh, _fresh_peer) = socketpair();
    close(old);
    let reused = dup2(&fresh, n).unwrap();
    let before = state(&mut sel);
    let e = sel.modify(reused.as_fd(), RW, "new").unwrap_err();
    assert_eq!((e.error, e.data), (Error::Os(OsError::ENOENT), "new"));
    assert_eq!(
        sel.modify_events(reused.as_fd(), Events::WRITE)
            .unwrap_err(),
        Error::Os(OsError::ENOENT)
    );
    assert_unchanged(&mut sel, &before);
    assert_eq!(sel.unregister(reused.as_fd()).unwrap().into_data(), "old");
    drop(reused);
}

/// A `modify` that the kernel refuses keeps the old key, hands the new data
/// back, and leaves the other keys alone. It used to be provoked on epoll by
/// closing the fd first (`EBADF`); a closed fd can no longer be named (the
/// calls take a `BorrowedFd`), so the refusal is injected into the software
/// backend here (`modify_of_a_reused_number_is_refused_and_keeps_the_old_key`
/// is epoll's own refusal). What is still possible on epoll for a key whose
/// fd was closed, the number path, follows.
#[test]
fn failed_kernel_modify_keeps_the_old_key() {
    let r = SoftReadiness::<8>::new();
    let mut soft: Selector<SoftBackend<'_, 8>, &'static str, 4> =
        Selector::new(SoftBackend::new(&r));
    soft.register(1, Events::WRITE, "other").unwrap();
    soft.register(2, Events::READ, "old").unwrap();
    let keys = |sel: &Selector<SoftBackend<'_, 8>, &'static str, 4>| {
        let mut keys: Vec<_> = sel
            .map()
            .iter()
            .map(|k| (k.fd(), k.events(), *k.data()))
            .collect();
        keys.sort_by_key(|k| k.0);
        let interest: Vec<_> = (0..8).map(|fd| sel.backend().interest(fd)).collect();
        (keys, interest)
    };
    let before = keys(&soft);
    soft.backend().fail_next(OsError::EBADF);
    let e = soft.modify(2, Events::WRITE, "new").unwrap_err();
    assert_eq!((e.error, e.data), (Error::Os(OsError::EBADF), "new"));
    assert_eq!(keys(&soft), before);
    soft.backend().fail_next(OsError::EBADF);
    assert_eq!(
        soft.modify_events(2, RW).unwrap_err(),
        Error::Os(OsError::EBADF)
    );
    assert_eq!(keys(&soft), before);
    // Same events: no kernel call, so the data change succeeds, and the
    // armed failure is still armed: it hits the next kernel call, an
    // `unregister`, which keeps the key when it fails.
    soft.backend().fail_next(OsError::EBADF);
    assert_eq!(soft.modify(2, Events::READ, "same").unwrap(), "old");
    assert_eq!(soft.unregister(2).unwrap_err(), Error::Os(OsError::EBADF));
    assert_eq!(soft.get_key(2).map(|k| *k.data()), Some("same"));
    // And it can still be unregistered.
    assert_eq!(soft.unregister(2).unwrap().into_data(), "same");

    // On epoll: the fd closed while registered. Its data can still change
    // (no kernel call), the other key is untouched, and the key goes with
    // `unregister_closed`.
    let _serial = serial();
    let mut sel = Sel::open().unwrap();
    let (other, _other_peer) = socketpair();
    sel.register(other.as_fd(), Events::WRITE, "other").unwrap();
    let (a, _b) = socketpair();
    let n = fd_of(&a);
    sel.register(a.as_fd(), Events::READ, "old").unwrap();
    close(a);
    assert_eq!(sel.modify_data(n, "same").unwrap(), "old");
    assert_eq!(sel.unregister_closed(n).unwrap().into_data(), "same");
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd_of(&other), Events::WRITE, "other")]
    );
}

/// CPython's `test_above_fd_setsize`, at the numbers that break `select(2)`:
/// fds above 1024 register, report in both directions and unregister.
#[test]
fn fds_above_1024() {
    let _serial = serial();
    let limit = raise_nofile(4200).unwrap();
    assert!(limit >= 4200, "RLIMIT_NOFILE hard limit too low: {limit}");
    let mut sel = DefaultSelector::<usize, 16>::open().unwrap();
    let mut ends: Vec<UnixStream> = Vec::new();
    let mut low_peers: Vec<UnixStream> = Vec::new();
    for min in [1025, 1500, 4000] {
        let (a, b) = socketpair();
        let high_a = UnixStream::from(dup_at_least(&a, min).unwrap());
        let high_b = UnixStream::from(dup_at_least(&b, min + 50).unwrap());
        assert!(fd_of(&high_a) >= min && fd_of(&high_b) >= min + 50);
        drop((a, b));
        ends.push(high_a);
        ends.push(high_b);
    }
    // A low one in the same selector.
    let (low, low_peer) = socketpair();
    ends.push(low);
    low_peers.push(low_peer);

    for (i, s) in ends.iter().enumerate() {
        sel.register(s.as_fd(), RW, i).unwrap();
    }
    // All writable; none readable.
    let ready = select_ready(&mut sel, Some(Duration::from_secs(5)));
    assert_eq!(ready.len(), ends.len());
    assert!(ready.iter().all(|r| r.1 == Events::WRITE));
    // Each high pair talks both ways.
    for pair in 0..3 {
        let (x, y) = (&ends[2 * pair], &ends[2 * pair + 1]);
        for (from, to) in [(x, y), (y, x)] {
            (&*from).write_all(b"high").unwrap();
            let mask = wait_for(&mut sel, fd_of(to), Events::READ);
            assert_eq!(mask, RW);
            let mut buf = [0u8; 8];
            assert_eq!((&*to).read(&mut buf).unwrap(), 4);
            assert_eq!(&buf[..4], b"high");
        }
    }
    for s in &ends {
        sel.modify_events(s.as_fd(), Events::READ).unwrap();
    }
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
    for (i, s) in ends.iter().enumerate() {
        assert_eq!(sel.unregister(s.as_fd()).unwrap().into_data(), i);
    }
    assert!(sel.is_empty());
}

/// Many fds at once, numbered past 1024, all reported by one select.
#[test]
fn many_fds_reported_together() {
    let _serial = serial();
    const PAIRS: usize = 600; // 1200 fds: numbers pass 1024
    raise_nofile(4200).unwrap();
    let mut sel = DefaultSelector::<usize, 1300>::open().unwrap();
    let pairs: Vec<(UnixStream, UnixStream)> = (0..PAIRS).map(|_| socketpair()).collect();
    let mut max_fd = 0;
    for (i, (a, b)) in pairs.iter().enumerate() {
        sel.register(a.as_fd(), Events::READ, i).unwrap();
        sel.register(b.as_fd(), Events::WRITE, i).unwrap();
        max_fd = max_fd.max(fd_of(a)).max(fd_of(b));
    }
    assert!(max_fd > 1024, "max fd {max_fd}");
    let ready = select_ready(&mut sel, Some(Duration::from_secs(5)));
    assert_eq!(ready.len(), PAIRS, "all writers, no reader");
    assert!(ready.iter().all(|r| r.1 == Events::WRITE));
    for (_, b) in &pairs {
        (&*b).write_all(b"!").unwrap();
    }
    // Readers become ready (allow a few selects for delivery).
    let mut seen = std::collections::HashSet::new();
    let mut bound = Bound::new("many readers", 100);
    while seen.len() < PAIRS {
        bound.tick();
        for (fd, mask, i) in select_ready(&mut sel, Some(Duration::from_millis(100))) {
            if mask == Events::READ {
                assert_eq!(fd, fd_of(&pairs[i].0));
                seen.insert(i);
            }
        }
    }
}

/// The open fds numbered below 8192: under `serial()`, every fd this
/// process holds (the tests that go higher close theirs before they end).
fn open_fds() -> Vec<RawFd> {
    (0..8192).filter(|&n| is_open(n)).collect()
}

/// `close` (and drop) release the kernel object: the selector's own fd is
/// closed, and so is every other fd it opened (epoll: the eventfd every
/// `Epoll` owns from `open()` on); the registered fds stay open.
#[test]
fn close_releases_the_selector_fd() {
    let _serial = serial();
    let (a, b) = socketpair();
    for consume in [true, false] {
        let before = open_fds();
        let mut sel = Sel::open().unwrap();
        let own = selector_fd(&sel);
        assert!(is_open(own));
        let with_selector = open_fds();
        assert!(with_selector.contains(&own) && with_selector.len() > before.len());
        sel.register(a.as_fd(), Events::READ, "a").unwrap();
        sel.register(b.as_fd(), Events::WRITE, "b").unwrap();
        if consume {
            sel.close();
        } else {
            drop(sel);
        }
        assert!(!is_open(own), "selector fd {own} still open");
        assert_eq!(open_fds(), before, "fds the selector opened are still open");
        assert!(is_open(fd_of(&a)) && is_open(fd_of(&b)));
    }
    // The sockets still work.
    (&b).write_all(b"ok").unwrap();
    let mut buf = [0u8; 2];
    let mut bound = Bound::new("read after close", 1000);
    loop {
        bound.tick();
        match (&a).read(&mut buf) {
            Ok(n) => {
                assert_eq!(&buf[..n], b"ok");
                break;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// While a batch is handed out, a handler unregisters another ready fd,
/// closes it and registers a new socket under the same number (with new
/// data, not ready): the rest of the batch must not deliver the old
/// socket's event against the new key. Likewise for a key unregistered
/// without reuse, and one modified to no longer include what was ready.
#[test]
fn stale_events_within_a_batch_never_reach_a_new_key() {
    let _serial = serial();
    for case in ["reuse", "unregister", "modify"] {
        let mut sel = Sel::open().unwrap();
        let (a, a_peer) = socketpair();
        let (b, b_peer) = socketpair();
        let (spare, _spare_peer) = socketpair(); // the new socket, not ready
        (&a_peer).write_all(b"a").unwrap();
        (&b_peer).write_all(b"b").unwrap();
        let (fa, fb) = (fd_of(&a), fd_of(&b));
        sel.register(a.as_fd(), Events::READ, "a").unwrap();
        sel.register(b.as_fd(), Events::READ, "b").unwrap();
        // Both ready in one batch (level-triggered: retry until they are).
        let mut bound = Bound::new("both ready", 1000);
        while select_ready(&mut sel, Some(Duration::from_millis(10))).len() < 2 {
            bound.tick();
        }
        sel.select(Some(Duration::from_secs(5))).unwrap();
        let mut delivered = Vec::new();
        let mut socks = std::collections::HashMap::from([(fa, a), (fb, b)]);
        let mut reused = None;
        while let Some((key, mask)) = sel.next_ready() {
            let (fd, data) = (key.fd(), *key.data());
            delivered.push((fd, mask, data));
            if delivered.len() > 1 {
                continue;
            }
            let other = if fd == fa { fb } else { fa };
            match case {
                "reuse" => {
                    sel.unregister(socks[&other].as_fd()).unwrap();
                    // Close the other socket; its number now names `spare`.
                    close(socks.remove(&other).unwrap());
                    let new = reused.insert(dup2(&spare, other).unwrap());
                    sel.register(new.as_fd(), Events::READ, "new").unwrap();
                }
                "unregister" => {
                    sel.unregister(socks[&other].as_fd()).unwrap();
                }
                _ => {
                    sel.modify_events(socks[&other].as_fd(), Events::WRITE)
                        .unwrap();
                }
            }
        }
        // Only the first event: the other one is stale (unregistered, or its
        // number belongs to a new key that is not ready), or masked away
        // (the batch held READ for it; the key now wants WRITE only).
        assert_eq!(delivered.len(), 1, "{case}: {delivered:?}");
        assert!(delivered.iter().all(|d| d.2 != "new"), "{case}");
        drop(reused);
    }
}
