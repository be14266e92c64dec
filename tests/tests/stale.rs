//! Registrations the kernel keeps for keys the table no longer has, on the
//! platform's kernel backend: `unregister_closed` of an fd that is still
//! open leaves nothing behind; the same open file registered again under its
//! number takes a left-over registration over; one that nothing can remove
//! (epoll, a file closed while registered whose open file lives on in a
//! `dup`) is reported by `select` instead of ending every wait in silence;
//! and `rebuild` neither keeps it nor makes a wake-up nobody sent.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ioselect_tests::{DefaultSelector, Error, Events, Waker, dup_at_least, serial, socketpair};

/// A pipe, both ends non-blocking: (read end, write end).
fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    let (r, w) = (OwnedFd::from(r), OwnedFd::from(w));
    for end in [&r, &w] {
        rustix::io::ioctl_fionbio(end, true).expect("O_NONBLOCK");
    }
    (r, w)
}

/// `select(Some(t))` ends with no key and no sooner than `t`: nothing ended
/// the wait.
fn assert_quiet<T, const N: usize>(sel: &mut DefaultSelector<T, N>, t: Duration) {
    let start = Instant::now();
    sel.select(Some(t)).unwrap();
    assert!(sel.next_ready().is_none(), "a key was delivered");
    let took = start.elapsed();
    assert!(took >= t, "the wait ended after {took:?}, before {t:?}");
}

/// Called just before `close` (or with the fd open after all),
/// `unregister_closed` removes the kernel's registration too: the next
/// select waits its whole timeout, and the fd can be registered again.
#[test]
fn unregister_closed_of_an_open_fd_leaves_nothing_behind() {
    let _serial = serial();
    let mut sel = DefaultSelector::<&str, 4>::open().unwrap();
    let (a, _peer) = socketpair(); // always writable
    let n = a.as_raw_fd();
    sel.register(a.as_fd(), Events::READ | Events::WRITE, "a")
        .unwrap();
    assert_eq!(sel.unregister_closed(n).unwrap().into_data(), "a");
    assert_quiet(&mut sel, Duration::from_millis(200));
    assert_quiet(&mut sel, Duration::from_millis(50));
    sel.register(a.as_fd(), Events::WRITE, "again").unwrap();
    sel.select(Some(Duration::from_secs(5))).unwrap();
    let (key, mask) = sel.next_ready().unwrap();
    assert_eq!((*key.data(), mask), ("again", Events::WRITE));
}

/// epoll watches open files: an fd closed while registered, whose file
/// lives on in a `dup`, stays in epoll's set under the old key's token, and
/// only the closed number could name it to `epoll_ctl`. Its events are never
/// delivered; `select` says so, once per wait it ended, instead of returning
/// at once, empty, tens of thousands of times a second. `rebuild` leaves it
/// behind.
#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "kqueue drops an fd's filters when the fd closes: nothing lingers"
)]
fn a_file_closed_while_registered_that_lives_on_is_reported_not_spun_on() {
    let _serial = serial();
    let mut sel = DefaultSelector::<&str, 8>::open().unwrap();
    let (keep_r, keep_w) = pipe();
    sel.register(keep_r.as_fd(), Events::READ, "keep").unwrap();
    let (r, w) = pipe();
    let n = r.as_raw_fd();
    sel.register(r.as_fd(), Events::READ, "pipe").unwrap();
    let alive = dup_at_least(&r, 0).unwrap(); // the open file lives on
    drop(r);
    assert_eq!(sel.unregister_closed(n).unwrap().into_data(), "pipe");
    rustix::io::write(&w, b"x").unwrap();

    // The wait it ends is empty; the next select reports it without
    // waiting; and so on, every other select, never a silent stream of
    // empty batches.
    let start = Instant::now();
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let outcome = sel.select(Some(Duration::from_secs(5)));
        assert!(sel.next_ready().is_none());
        outcomes.push(outcome);
    }
    assert!(start.elapsed() < Duration::from_secs(4), "a wait ran out");
    assert_eq!(
        outcomes,
        [
            Ok(()),
            Err(Error::StaleRegistration),
            Ok(()),
            Err(Error::StaleRegistration),
            Ok(()),
            Err(Error::StaleRegistration)
        ]
    );
    // The live key is served all the while.
    rustix::io::write(&keep_w, b"k").unwrap();
    sel.select(Some(Duration::from_secs(5))).unwrap();
    let (key, mask) = sel.next_ready().unwrap();
    assert_eq!((*key.data(), mask), ("keep", Events::READ));
    let mut buf = [0u8; 8];
    rustix::io::read(&keep_r, &mut buf).unwrap();

    // The way out: a fresh epoll with exactly the table's keys.
    let _ = sel.select(Some(Duration::ZERO));
    sel.rebuild(|key| (key.fd() == keep_r.as_raw_fd()).then(|| keep_r.as_fd()))
        .unwrap();
    assert_quiet(&mut sel, Duration::from_millis(200));
    assert_quiet(&mut sel, Duration::from_millis(50));
    assert_eq!(sel.len(), 1);
    drop(alive);
}

/// The open file of a registration left over (closed while registered, its
/// file alive in a `dup`) comes back under the same number and is
/// registered again: the kernel's left-over registration is taken over by
/// the new key (same number, same file: no other key is touched), instead
/// of a refusal that only `rebuild` could get out of.
#[test]
#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "kqueue drops an fd's filters when the fd closes: nothing lingers"
)]
fn the_same_file_back_under_its_number_takes_the_registration_over() {
    let _serial = serial();
    let mut sel = DefaultSelector::<&str, 8>::open().unwrap();
    let (other_r, other_w) = pipe();
    sel.register(other_r.as_fd(), Events::READ, "other")
        .unwrap();
    let (r, w) = pipe();
    let n = r.as_raw_fd();
    sel.register(r.as_fd(), Events::READ, "old").unwrap();
    let alive = dup_at_least(&r, 0).unwrap();
    drop(r);
    sel.unregister_closed(n).unwrap();
    // The same open file, under the same number again.
    let again = dup_at_least(&alive, n).unwrap();
    assert_eq!(again.as_raw_fd(), n);
    sel.register(again.as_fd(), Events::WRITE | Events::READ, "again")
        .unwrap();
    rustix::io::write(&w, b"x").unwrap();
    rustix::io::write(&other_w, b"y").unwrap();
    for _ in 0..3 {
        sel.select(Some(Duration::from_secs(5))).unwrap();
        let mut got: Vec<_> =
            std::iter::from_fn(|| sel.next_ready().map(|(k, m)| (*k.data(), m))).collect();
        got.sort_unstable();
        assert_eq!(got, [("again", Events::READ), ("other", Events::READ)]);
    }
    // The key is an ordinary one: it goes with `unregister`, and then
    // nothing is left of it.
    sel.unregister(again.as_fd()).unwrap();
    sel.unregister(other_r.as_fd()).unwrap();
    assert_quiet(&mut sel, Duration::from_millis(100));
    drop(alive);
}

/// A wake-up that a select consumed is gone: the fresh kernel object of
/// `rebuild` does not see it again (a timed select after `rebuild` used to
/// return empty after microseconds, which is how a timeout looks, early).
#[test]
fn rebuild_makes_no_wake_nobody_sent() {
    let _serial = serial();
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let (a, _peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    for _ in 0..3 {
        waker.wake().unwrap();
        sel.select(Some(Duration::from_secs(5))).unwrap();
        assert!(sel.next_ready().is_none());
        sel.rebuild(|_| Some(a.as_fd())).unwrap();
        assert_quiet(&mut sel, Duration::from_millis(150));
    }
}

/// A wake-up still pending when the selector is rebuilt is not lost: the
/// next select returns for it, once.
#[test]
fn a_pending_wake_survives_rebuild() {
    let _serial = serial();
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let (a, _peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    waker.wake().unwrap();
    waker.wake().unwrap();
    sel.rebuild(|_| Some(a.as_fd())).unwrap();
    let start = Instant::now();
    sel.select(Some(Duration::from_secs(5))).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the wake was lost"
    );
    assert!(sel.next_ready().is_none());
    assert_quiet(&mut sel, Duration::from_millis(100));
}

/// A socket of the table written to while registered: data that is ready
/// still reaches its key after all of the above (a sanity check that the
/// wake-up draining reads only the selector's own eventfd).
#[test]
fn draining_a_wake_touches_no_key() {
    let _serial = serial();
    let mut sel = DefaultSelector::<u8, 4>::open().unwrap();
    let (a, peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, 1).unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    (&peer).write_all(b"z").unwrap();
    waker.wake().unwrap();
    for _ in 0..3 {
        sel.select(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(
            sel.next_ready().map(|(k, m)| (*k.data(), m)),
            Some((1, Events::READ))
        );
    }
}
