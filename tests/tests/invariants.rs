//! Invariants on the platform's kernel backend: stale tokens across the tag
//! wrap, the selector's own waker out of reach of a stale `unregister`, an
//! fd closed while registered whose open file lives on in a `dup`
//! (`StaleRegistration`, `rebuild`), the backend types' edges, tables larger
//! than the stack, and the size of one batch.

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use ioselect_tests::{Backend, SelectorIn, Slot};
use ioselect_tests::{DefaultSelector, Error, Events, OsBackend, Waker, serial, socketpair};

/// A wake 50 ms from now, from another thread, ends a blocking `select`.
fn assert_woken<T, const N: usize>(sel: &mut DefaultSelector<T, N>, waker: &Waker) {
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            waker.wake().unwrap();
        });
        let start = Instant::now();
        sel.select(Some(Duration::from_secs(5))).unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "the wake was lost"
        );
    });
}

/// A stale event queued before a slot changed hands 2^32 registrations
/// later is not delivered to the new key (the old 32-bit generations were).
#[test]
fn stale_event_across_2_pow_32_registrations_on_the_kernel() {
    let _serial = serial();
    let mut sel = DefaultSelector::<u32, 8>::open().unwrap();
    let (a, peer_a) = socketpair();
    let (b, peer_b) = socketpair();
    sel.set_next_tag(u64::from(u32::MAX) - 1);
    sel.register(a.as_fd(), Events::READ, 1).unwrap();
    (&peer_a).write_all(b"x").unwrap();
    (&peer_b).write_all(b"y").unwrap();
    sel.select(Some(Duration::from_secs(5))).unwrap();
    // Mid-batch: a goes; b takes its slot 2^32 registrations later.
    sel.unregister(a.as_fd()).unwrap();
    sel.set_next_tag(u64::from(u32::MAX) - 1 + (1 << 32));
    sel.register(b.as_fd(), Events::READ, 2).unwrap();
    assert!(sel.next_ready().is_none(), "a's event reached b");
    sel.select(Some(Duration::from_secs(5))).unwrap();
    let (key, mask) = sel.next_ready().unwrap();
    assert_eq!(
        (key.fd(), *key.data(), mask),
        (b.as_raw_fd(), 2, Events::READ)
    );
}

/// Register fd N, close it, make a waker (its dup may land on N), then
/// unregister N in both ways: the waker keeps working.
#[test]
fn a_stale_unregister_never_removes_the_selectors_own_waker() {
    let _serial = serial();
    let mut sel = DefaultSelector::<(), 8>::open().unwrap();
    let (a, _peer) = socketpair();
    let n = a.as_raw_fd();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    drop(a);
    let waker = Waker::new(sel.backend()).unwrap();
    // The lowest free number: the one just closed, on every kernel here.
    assert_eq!(
        waker.as_fd().as_raw_fd(),
        n,
        "the waker's fd took the number"
    );
    // Unregister through the number the waker now holds: the key goes, the
    // selector's own registration stays (it is not on this fd).
    sel.unregister(waker.as_fd()).unwrap();
    assert!(sel.is_empty());
    assert_woken(&mut sel, &waker);
    // unregister_closed makes no kernel call at all.
    let (c, _peer) = socketpair();
    sel.register(c.as_fd(), Events::READ, ()).unwrap();
    let m = c.as_raw_fd();
    drop(c);
    let waker2 = Waker::new(sel.backend()).unwrap();
    assert_eq!(waker2.as_fd().as_raw_fd(), m);
    sel.unregister_closed(m).unwrap();
    assert_woken(&mut sel, &waker2);
}

/// A waker made before `rebuild` wakes the rebuilt selector.
#[test]
fn wakers_survive_rebuild() {
    let _serial = serial();
    let mut sel = DefaultSelector::<(), 4>::open().unwrap();
    let (a, _peer) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    sel.rebuild(|_| Some(a.as_fd())).unwrap();
    assert_eq!(sel.len(), 1);
    assert_woken(&mut sel, &waker);
    // Refusals leave the selector as it was.
    assert_eq!(sel.rebuild(|_| None), Err(Error::InvalidFd));
    let (b, _peer_b) = socketpair();
    assert_eq!(sel.rebuild(|_| Some(b.as_fd())), Err(Error::InvalidFd));
    assert_eq!(sel.len(), 1);
    (&_peer).write_all(b"z").unwrap();
    sel.select(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m)),
        Some((a.as_raw_fd(), Events::READ))
    );
}

/// `Backend::event` promises `None` at and past the last wait's count,
/// which `batch_len` answers; `event_in_batch` only stays within its
/// buffer.
#[test]
fn event_past_the_last_count_is_none() {
    use ioselect_tests::OpenBackend;
    let _serial = serial();
    let mut backend = OsBackend::<4>::open().unwrap();
    let (a, peer) = socketpair();
    let (b, _peer_b) = socketpair();
    backend
        .add(
            a.as_fd(),
            Events::READ | Events::WRITE,
            ioselect_tests::Token::reserved(1),
        )
        .unwrap();
    backend
        .add(b.as_fd(), Events::WRITE, ioselect_tests::Token::reserved(2))
        .unwrap();
    // Before any wait the batch is empty; after one, `batch_len` is the
    // count the wait returned (the selector reads it there).
    assert_eq!(backend.batch_len(), 0);
    let n = backend.wait(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(n, 2);
    assert_eq!(backend.batch_len(), 2);
    assert!(backend.event(1).is_some());
    // Only b is ready now: the buffer's second entry is old data.
    backend
        .delete(
            a.as_fd(),
            Events::READ | Events::WRITE,
            ioselect_tests::Token::reserved(1),
        )
        .unwrap();
    let n = backend.wait(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(n, 1);
    assert_eq!(backend.batch_len(), 1);
    assert_eq!(
        backend.event(0).map(|e| e.0),
        Some(ioselect_tests::Token::reserved(2).get())
    );
    assert_eq!(backend.event(1), None);
    assert_eq!(backend.event(4), None);
    assert_eq!(backend.event(usize::MAX), None);
    // `event_in_batch` may skip the count: below it, the same event;
    // past it, and past the buffer, an entry of the buffer (one of the
    // first wait's events, or one never written, token 0) or `None`,
    // never a panic. (epoll's power-of-two buffer masks the index: index 4
    // of 4 entries is entry 0.)
    assert_eq!(backend.event_in_batch(0), backend.event(0));
    let first = [1, 2].map(|n| ioselect_tests::Token::reserved(n).get());
    for index in [1, 2, 3, 4, 5, usize::MAX] {
        let past = backend.event_in_batch(index);
        assert!(
            past.is_none_or(|(t, _)| t == 0 || first.contains(&t)),
            "{index}: {past:?}"
        );
    }
    drop(peer);
}

/// A 65,536-key selector opened in a debug build on a thread with a 64 KiB
/// stack, then used: the table lives in memory the caller provides.
#[test]
fn a_65536_key_selector_on_a_64_kib_stack() {
    let _serial = serial();
    let worker = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let table: Vec<Slot<u64>> = std::iter::repeat_with(Slot::new).take(65_536).collect();
            let mut sel = SelectorIn::<OsBackend<64>, u64, _>::open_in(table).unwrap();
            let pairs: Vec<_> = (0..100).map(|_| socketpair()).collect();
            for (i, (a, _)) in pairs.iter().enumerate() {
                sel.register(a.as_fd(), Events::READ, i as u64).unwrap();
            }
            (&pairs[42].1).write_all(b"!").unwrap();
            sel.select(Some(Duration::from_secs(5))).unwrap();
            let got = sel.next_ready().map(|(k, m)| (*k.data(), m));
            (sel.map().capacity(), sel.len(), got)
        })
        .unwrap();
    assert_eq!(
        worker.join().unwrap(),
        (65_536, 100, Some((42, Events::READ)))
    );
}

/// The large-table route by its own name: `LargeSelector::with_capacity`
/// on a 64 KiB stack in a debug build (a `DefaultSelector` of 8,192 `u64`
/// keys is ~400 KB inline, several copies of it on the stack), with an event
/// buffer sized apart from the table; refused capacities say why.
#[test]
fn large_selector_by_name_on_a_64_kib_stack() {
    use ioselect_tests::LargeSelector;
    let _serial = serial();
    let worker = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let mut sel = LargeSelector::<u64, _, 16>::with_capacity(65_536).unwrap();
            let pairs: Vec<_> = (0..40).map(|_| socketpair()).collect();
            for (i, (a, _)) in pairs.iter().enumerate() {
                sel.register(a.as_fd(), Events::WRITE, i as u64).unwrap();
            }
            // 40 writable keys, 16 events per select: batches of at most 16,
            // and every key comes within a few selects (the kernel moves a
            // reported level-triggered key to the back of its ready list).
            let mut seen = std::collections::BTreeSet::new();
            let mut largest = 0;
            for _ in 0..10 {
                sel.select(Some(Duration::from_secs(5))).unwrap();
                let mut batch = 0;
                while let Some((key, _)) = sel.next_ready() {
                    seen.insert(*key.data());
                    batch += 1;
                }
                largest = largest.max(batch);
                if seen.len() == 40 {
                    break;
                }
            }
            (sel.capacity(), sel.len(), seen.len(), largest)
        })
        .unwrap();
    assert_eq!(worker.join().unwrap(), (65_536, 40, 40, 16));
    for refused in [0, usize::MAX] {
        assert_eq!(
            LargeSelector::<u8>::with_capacity(refused).unwrap_err(),
            Error::InvalidCapacity
        );
    }
}

#[cfg_attr(
    not(any(target_os = "linux", target_os = "android")),
    ignore = "kqueue's wait merges a wake-up away: it never takes a key's place"
)]
/// One wait reports at most the buffer's `E` events, and a pending wake-up
/// takes room too: with `E` keys ready and a wake pending, something waits
/// for the next select, and nothing is lost (the docs promise this, no more).
#[test]
fn a_full_batch_with_a_wake_pending_loses_nothing() {
    use ioselect_tests::{OpenBackend, Token};
    let _serial = serial();
    let mut backend = OsBackend::<2>::open().unwrap();
    let (a, _pa) = socketpair();
    let (b, _pb) = socketpair();
    backend
        .add(a.as_fd(), Events::WRITE, Token::reserved(1))
        .unwrap();
    backend
        .add(b.as_fd(), Events::WRITE, Token::reserved(2))
        .unwrap();
    let waker = Waker::new(&backend).unwrap();
    waker.wake().unwrap();
    let first = backend.wait(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first, 2, "the buffer holds two events");
    let tokens: Vec<u64> = (0..first)
        .filter_map(|i| backend.event(i))
        .map(|e| e.0)
        .collect();
    // Whatever was left out comes next: the keys (level-triggered) while
    // registered, the wake-up once. Take the keys away and look.
    backend
        .delete(a.as_fd(), Events::WRITE, Token::reserved(1))
        .unwrap();
    backend
        .delete(b.as_fd(), Events::WRITE, Token::reserved(2))
        .unwrap();
    let start = Instant::now();
    let second = backend.wait(Some(Duration::from_millis(300))).unwrap();
    let later: Vec<u64> = (0..second)
        .filter_map(|i| backend.event(i))
        .map(|e| e.0)
        .collect();
    let wakes = tokens
        .iter()
        .chain(&later)
        .filter(|t| **t == Token::INTERNAL.get())
        .count();
    assert_eq!(wakes, 1, "first {tokens:?}, then {later:?}");
    if !tokens.contains(&Token::INTERNAL.get()) {
        assert!(
            start.elapsed() < Duration::from_millis(250),
            "the pending wake waited"
        );
    }
}
