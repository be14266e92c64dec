//! Unit tests of the selector's rules (issue 2, "Semantics") with the
//! software backend: no OS, deterministic.
//!
//! Every error path is checked with [`Snapshot`]: the key table (`get_key`,
//! `contains`, the map view), the "kernel" (`SoftBackend::interest`) and what
//! an actual `select` delivers must be exactly as before the failed call.

extern crate std;

use core::cell::{Cell, RefCell};
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::format;
use std::string::{String, ToString};
use std::vec::Vec;

use crate::{
    Backend, DataError, Error, Events, OsError, RawFd, Selector, SelectorKey, SoftBackend,
    SoftReadiness, Token,
};

/// Number of software sources: fds `0..M` exist, `M..` are "not open".
const M: usize = 16;
const RW: Events = Events::READ.union(Events::WRITE);

type Sel<'r, const N: usize> = Selector<SoftBackend<'r, M>, u32, N>;

fn new_sel<const N: usize>(r: &SoftReadiness<M>) -> Sel<'_, N> {
    Selector::new(SoftBackend::new(r))
}

/// Every fd the snapshot looks at: negatives, all sources, and beyond.
fn probe_fds() -> impl Iterator<Item = RawFd> {
    [i32::MIN, -2, -1]
        .into_iter()
        .chain(0..M as RawFd + 3)
        .chain([1000, i32::MAX])
}

/// Takes the rest of the current batch, checking each fd comes at most once.
fn drain<const N: usize>(sel: &mut Sel<'_, N>) -> Vec<(RawFd, Events, u32)> {
    let mut out = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        assert!(!mask.is_empty(), "empty mask delivered for fd {}", key.fd());
        assert!(
            key.events().contains(mask),
            "mask {mask:?} outside {:?}",
            key.events()
        );
        out.push((key.fd(), mask, *key.data()));
    }
    let mut fds: Vec<RawFd> = out.iter().map(|e| e.0).collect();
    fds.sort_unstable();
    fds.dedup();
    assert_eq!(
        fds.len(),
        out.len(),
        "an fd was delivered twice in one batch: {out:?}"
    );
    out.sort_unstable();
    out
}

/// `select(0)` and the delivered `(fd, mask, data)` set, sorted.
fn select_now<const N: usize>(sel: &mut Sel<'_, N>) -> Vec<(RawFd, Events, u32)> {
    sel.select(Some(Duration::ZERO)).unwrap();
    drain(sel)
}

/// One probed fd: `get_key` (events, data), `contains`, kernel interest.
type Lookup = (RawFd, Option<(Events, u32)>, bool, Option<Events>);

/// Everything observable about a selector.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    /// `map().iter()`, sorted.
    keys: Vec<(RawFd, Events, u32)>,
    len: usize,
    /// Per probed fd: `get_key`, `contains`, the kernel's interest.
    lookups: Vec<Lookup>,
    /// What a `select` delivers when every source is ready for everything.
    selected: Vec<(RawFd, Events, u32)>,
}

/// Takes a [`Snapshot`] and checks that table and kernel agree. The
/// readiness is restored afterwards. Consumes an armed `fail_next` (through
/// `select`), so take snapshots only when none is armed.
fn snapshot<const N: usize>(sel: &mut Sel<'_, N>, r: &SoftReadiness<M>) -> Snapshot {
    let mut keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), *k.data()))
        .collect();
    keys.sort_unstable();
    assert_eq!(sel.map().iter().len(), keys.len());
    assert_eq!(sel.map().len(), keys.len());
    assert_eq!(sel.len(), keys.len());
    assert_eq!(sel.is_empty(), keys.is_empty());
    assert_eq!(sel.map().is_empty(), keys.is_empty());
    assert_eq!(sel.map().capacity(), N);
    assert!(keys.len() <= N);
    assert_eq!(sel.map().into_iter().count(), keys.len());

    let lookups: Vec<_> = probe_fds()
        .map(|fd| {
            let key = sel.get_key(fd).map(|k| {
                assert_eq!(k.fd(), fd);
                (k.events(), *k.data())
            });
            let contains = sel.contains(fd);
            assert_eq!(
                contains,
                key.is_some(),
                "contains({fd}) disagrees with get_key"
            );
            assert_eq!(sel.map().contains(fd), contains);
            assert_eq!(sel.map().get(fd).map(|k| (k.events(), *k.data())), key);
            let interest = sel.backend().interest(fd);
            // The kernel watches exactly the registered fds, for their events.
            assert_eq!(
                interest,
                key.map(|k| k.0),
                "kernel and table disagree on fd {fd}"
            );
            (fd, key, contains, interest)
        })
        .collect();
    for &(fd, events, data) in &keys {
        assert!(
            lookups
                .iter()
                .any(|l| l.0 == fd && l.1 == Some((events, data)))
        );
    }

    let saved: Vec<Events> = (0..M as RawFd).map(|fd| r.get(fd)).collect();
    for fd in 0..M as RawFd {
        r.set(fd, RW);
    }
    let selected = select_now(sel);
    for (fd, events) in (0..M as RawFd).zip(saved) {
        r.clear(fd, Events::all());
        r.set(fd, events);
    }
    // Every key is ready for all its events, with its own data: the kernel
    // tokens still name the right keys.
    assert_eq!(selected, keys);
    Snapshot {
        len: keys.len(),
        keys,
        lookups,
        selected,
    }
}

/// Invalid masks: empty, unknown bits alone, and unknown bits with known ones.
fn invalid_masks() -> [Events; 7] {
    [
        Events::empty(),
        Events::from_bits_retain(4),
        Events::from_bits_retain(0xff),
        Events::from_bits_retain(0x80),
        Events::from_bits_retain(5),
        Events::from_bits_retain(6),
        Events::from_bits_retain(7),
    ]
}

fn data_err<T>(r: Result<impl core::fmt::Debug, DataError<T>>) -> (Error, T) {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.into_parts(),
    }
}

// --- Events ---------------------------------------------------------------

#[test]
fn events_have_python_values() {
    // selectors.EVENT_READ == 1, selectors.EVENT_WRITE == 2
    assert_eq!(Events::READ.bits(), 1);
    assert_eq!(Events::WRITE.bits(), 2);
    assert_eq!(Events::all().bits(), 3);
    assert_eq!(Events::from_bits(3), Some(RW));
    assert_eq!(Events::from_bits(4), None);
    assert!(!Events::empty().is_valid());
    assert!(RW.is_valid());
    // The registered mask is reported back with the same values.
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    sel.register(3, Events::from_bits(3).unwrap(), 0).unwrap();
    assert_eq!(sel.get_key(3).unwrap().events().bits(), 3);
}

// --- register ---------------------------------------------------------------

#[test]
fn register_and_get_key() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    assert!(sel.is_empty());
    sel.register(3, Events::READ, 30).unwrap();
    sel.register(0, Events::WRITE, 0).unwrap();
    sel.register(7, RW, 70).unwrap();
    let key = sel.get_key(7).unwrap();
    assert_eq!((key.fd(), key.events(), *key.data()), (7, RW, 70));
    assert_eq!(sel.backend().interest(3), Some(Events::READ));
    assert_eq!(sel.backend().interest(0), Some(Events::WRITE));
    assert_eq!(sel.backend().interest(7), Some(RW));
    assert_eq!(sel.backend().interest(4), None);
    assert_eq!(sel.len(), 3);
    let snap = snapshot(&mut sel, &r);
    assert_eq!(
        snap.keys,
        [(0, Events::WRITE, 0), (3, Events::READ, 30), (7, RW, 70)]
    );
}

#[test]
fn register_twice_is_already_registered_with_data_back() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, RW, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for events in [Events::READ, Events::WRITE, RW] {
        let (error, data) = data_err(sel.register(3, events, 99));
        assert_eq!((error, data), (Error::AlreadyRegistered, 99));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // Python checks the events before the duplicate.
    let (error, data) = data_err(sel.register(3, Events::empty(), 98));
    assert_eq!((error, data), (Error::InvalidEvents, 98));
    assert_eq!(snapshot(&mut sel, &r), before);
}

#[test]
fn register_invalid_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for (i, events) in invalid_masks().into_iter().enumerate() {
        let (error, data) = data_err(sel.register(5, events, i as u32));
        assert_eq!(
            (error, data),
            (Error::InvalidEvents, i as u32),
            "{events:?}"
        );
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    for bits in 0..=u8::MAX {
        let events = Events::from_bits_retain(bits);
        if !matches!(bits, 1..=3) {
            assert_eq!(
                sel.register(6, events, 0).map_err(|e| e.error),
                Err(Error::InvalidEvents)
            );
        }
    }
    assert_eq!(snapshot(&mut sel, &r), before);
}

#[test]
fn register_negative_fd_is_invalid_fd() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [-1, -2, -100, i32::MIN] {
        let (error, data) = data_err(sel.register(fd, Events::READ, 7));
        assert_eq!((error, data), (Error::InvalidFd, 7));
        assert_eq!(snapshot(&mut sel, &r), before);
        // Every call that takes an fd says so, as Python's `_fileobj_lookup`
        // does (ValueError), before anything else.
        assert_eq!(sel.unregister(fd).err(), Some(Error::InvalidFd));
        assert_eq!(sel.modify_events(fd, Events::READ), Err(Error::InvalidFd));
        assert_eq!(
            sel.modify_events(fd, Events::empty()),
            Err(Error::InvalidFd)
        );
        let (error, data) = data_err(sel.modify_data(fd, 9));
        assert_eq!((error, data), (Error::InvalidFd, 9));
        assert!(sel.get_key(fd).is_none());
        assert_eq!(snapshot(&mut sel, &r), before);
    }
}

#[test]
fn register_fd_the_kernel_refuses_is_os_error() {
    // SoftBackend has sources 0..M only: M and above are "not open" (EBADF).
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [M as RawFd, M as RawFd + 1, i32::MAX] {
        let (error, data) = data_err(sel.register(fd, Events::READ, 5));
        assert_eq!((error, data), (Error::Os(OsError::EBADF), 5));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
}

#[test]
fn full_table_hands_data_back() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    for fd in [2, 4, 6, 8] {
        sel.register(fd, Events::READ, fd as u32 * 10).unwrap();
    }
    let before = snapshot(&mut sel, &r);
    assert_eq!(before.len, 4);
    let (error, data) = data_err(sel.register(9, RW, 90));
    assert_eq!((error, data), (Error::Full, 90));
    assert_eq!(snapshot(&mut sel, &r), before);
    // The other errors keep their meaning when the table is full.
    assert_eq!(
        data_err(sel.register(4, RW, 1)),
        (Error::AlreadyRegistered, 1)
    );
    assert_eq!(
        data_err(sel.register(9, Events::empty(), 2)),
        (Error::InvalidEvents, 2)
    );
    assert_eq!(
        data_err(sel.register(-1, Events::READ, 3)),
        (Error::InvalidFd, 3)
    );
    assert_eq!(snapshot(&mut sel, &r), before);
    // Full is decided before the kernel is asked: an armed failure stays.
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(data_err(sel.register(9, RW, 4)), (Error::Full, 4));
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::Os(OsError::ENOMEM))
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    // Room again after an unregister; the freed slot works like any other.
    let key = sel.unregister(6).unwrap();
    assert_eq!(
        (key.fd(), key.events(), key.into_data()),
        (6, Events::READ, 60)
    );
    sel.register(9, RW, 90).unwrap();
    assert_eq!(
        data_err(sel.register(6, Events::READ, 60)),
        (Error::Full, 60)
    );
    let snap = snapshot(&mut sel, &r);
    assert_eq!(
        snap.keys,
        [
            (2, Events::READ, 20),
            (4, Events::READ, 40),
            (8, Events::READ, 80),
            (9, RW, 90)
        ]
    );
}

#[test]
fn capacity_one() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 1> = new_sel(&r);
    sel.register(0, Events::READ, 1).unwrap();
    assert_eq!(data_err(sel.register(1, Events::READ, 2)), (Error::Full, 2));
    sel.unregister(0).unwrap();
    sel.register(1, Events::WRITE, 3).unwrap();
    r.set(1, RW);
    assert_eq!(select_now(&mut sel), [(1, Events::WRITE, 3)]);
}

// --- unregister / modify of unknown fds -------------------------------------

#[test]
fn unknown_fd_is_not_registered() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, Events::WRITE, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [5, 0, M as RawFd, 1000] {
        assert_eq!(sel.unregister(fd).err(), Some(Error::NotRegistered));
        assert_eq!(
            sel.modify_events(fd, Events::READ),
            Err(Error::NotRegistered)
        );
        assert_eq!(
            data_err(sel.modify(fd, Events::READ, 9)),
            (Error::NotRegistered, 9)
        );
        assert_eq!(data_err(sel.modify_data(fd, 8)), (Error::NotRegistered, 8));
        assert!(sel.get_key(fd).is_none());
        assert!(sel.get_key_mut(fd).is_none());
        assert!(!sel.contains(fd));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // An fd that was registered is unknown again after unregister.
    let key = sel.unregister(3).unwrap();
    assert_eq!((key.fd(), key.events(), *key.data()), (3, Events::READ, 1));
    let after = snapshot(&mut sel, &r);
    assert_eq!(after.keys, [(4, Events::WRITE, 2)]);
    assert_eq!(sel.unregister(3).err(), Some(Error::NotRegistered));
    assert_eq!(data_err(sel.modify(3, RW, 7)), (Error::NotRegistered, 7));
    assert_eq!(data_err(sel.modify_data(3, 7)), (Error::NotRegistered, 7));
    assert_eq!(sel.modify_events(3, RW), Err(Error::NotRegistered));
    assert!(sel.get_key(3).is_none());
    assert_eq!(snapshot(&mut sel, &r), after);
}

// --- modify ---------------------------------------------------------------

#[test]
fn modify_events_data_and_both() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, Events::READ, 2).unwrap();

    sel.modify_events(3, RW).unwrap();
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 1))
    );
    assert_eq!(sel.backend().interest(3), Some(RW));

    assert_eq!(sel.modify_data(3, 11).unwrap(), 1);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 11))
    );

    assert_eq!(sel.modify(3, Events::WRITE, 12).unwrap(), 11);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((Events::WRITE, 12))
    );
    assert_eq!(sel.backend().interest(3), Some(Events::WRITE));

    // Data through the key itself.
    *sel.get_key_mut(4).unwrap().data_mut() = 22;
    let snap = snapshot(&mut sel, &r);
    assert_eq!(snap.keys, [(3, Events::WRITE, 12), (4, Events::READ, 22)]);

    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(
        select_now(&mut sel),
        [(3, Events::WRITE, 12), (4, Events::READ, 22)]
    );
}

#[test]
fn modify_invalid_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, RW, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for (i, events) in invalid_masks().into_iter().enumerate() {
        for fd in [3, 4] {
            assert_eq!(
                sel.modify_events(fd, events),
                Err(Error::InvalidEvents),
                "{events:?}"
            );
            assert_eq!(snapshot(&mut sel, &r), before);
            let (error, data) = data_err(sel.modify(fd, events, 100 + i as u32));
            assert_eq!((error, data), (Error::InvalidEvents, 100 + i as u32));
            assert_eq!(snapshot(&mut sel, &r), before);
        }
    }
}

#[test]
fn modify_with_same_events_makes_no_backend_call() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, RW, 1).unwrap();
    sel.backend().fail_next(OsError::ENOMEM);
    // Had any of these called the backend, they would have failed.
    sel.modify_events(3, RW).unwrap();
    assert_eq!(sel.modify(3, RW, 2).unwrap(), 1);
    assert_eq!(sel.modify_data(3, 3).unwrap(), 2);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 3))
    );
    // The injected failure is still pending: the next real call gets it.
    assert_eq!(
        sel.modify_events(3, Events::READ),
        Err(Error::Os(OsError::ENOMEM))
    );
    assert_eq!(sel.get_key(3).map(|k| k.events()), Some(RW));
    assert_eq!(sel.backend().interest(3), Some(RW));
    // And it was consumed by that call.
    sel.modify_events(3, Events::READ).unwrap();
    assert_eq!(sel.backend().interest(3), Some(Events::READ));
}

// --- kernel failures ---------------------------------------------------------

/// A selector with a few keys, some ready, to inject failures into.
fn populated(r: &SoftReadiness<M>) -> Sel<'_, 8> {
    let mut sel = new_sel(r);
    sel.register(1, Events::READ, 10).unwrap();
    sel.register(2, Events::WRITE, 20).unwrap();
    sel.register(3, RW, 30).unwrap();
    r.set(1, Events::READ);
    r.set(3, Events::WRITE);
    sel
}

#[test]
fn kernel_failure_in_register_changes_nothing() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);
    for errno in [OsError::ENOMEM, OsError::EPERM, OsError::EBADF] {
        sel.backend().fail_next(errno);
        assert_eq!(
            data_err(sel.register(5, Events::READ, 50)),
            (Error::Os(errno), 50)
        );
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // The failure was consumed: the same call now works.
    sel.register(5, Events::READ, 50).unwrap();
    assert_eq!(sel.get_key(5).map(|k| *k.data()), Some(50));
}

#[test]
fn kernel_failure_in_modify_keeps_old_events_and_old_data() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);

    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(sel.modify_events(1, RW), Err(Error::Os(OsError::ENOMEM)));
    assert_eq!(snapshot(&mut sel, &r), before);

    // Unlike Python, which unregisters the key when the kernel refuses.
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(
        data_err(sel.modify(1, RW, 99)),
        (Error::Os(OsError::ENOMEM), 99)
    );
    assert_eq!(
        sel.get_key(1).map(|k| (k.events(), *k.data())),
        Some((Events::READ, 10))
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    sel.backend().fail_next(OsError::EINVAL);
    assert_eq!(
        data_err(sel.modify(3, Events::READ, 98)),
        (Error::Os(OsError::EINVAL), 98)
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    // Consumed: the same calls now work.
    assert_eq!(sel.modify(1, RW, 99).unwrap(), 10);
    assert_eq!(sel.backend().interest(1), Some(RW));
}

#[test]
fn kernel_failure_in_unregister_keeps_the_key() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(sel.unregister(2).err(), Some(Error::Os(OsError::ENOMEM)));
    assert_eq!(snapshot(&mut sel, &r), before);
    let key = sel.unregister(2).unwrap();
    assert_eq!(
        (key.fd(), key.events(), *key.data()),
        (2, Events::WRITE, 20)
    );
    assert_eq!(sel.backend().interest(2), None);
}

#[test]
fn kernel_failure_in_select_changes_nothing_and_empties_the_batch() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);

    // A pending batch with events not handed out yet.
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.backend().fail_next(OsError::EINVAL);
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::Os(OsError::EINVAL))
    );
    // The failed select left no batch behind, old or new.
    assert!(sel.next_ready().is_none());
    assert_eq!(snapshot(&mut sel, &r), before);
    // And the next select works and delivers.
    assert_eq!(
        select_now(&mut sel),
        [(1, Events::READ, 10), (3, Events::WRITE, 30)]
    );
}

/// A backend whose event buffer survives a failed `wait` (the contract does
/// not promise that `event` returns `None` after an error).
struct KeepsBuffer<'r> {
    inner: SoftBackend<'r, M>,
    fail_wait: Cell<bool>,
}

impl Backend for KeepsBuffer<'_> {
    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.inner.add(fd, events, token)
    }
    fn modify(&mut self, fd: RawFd, old: Events, new: Events, token: Token) -> Result<(), OsError> {
        self.inner.modify(fd, old, new, token)
    }
    fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.inner.delete(fd, events, token)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, OsError> {
        if self.fail_wait.get() {
            Err(OsError::EINVAL)
        } else {
            self.inner.wait(timeout)
        }
    }
    fn event(&self, index: usize) -> Option<(Token, Events)> {
        self.inner.event(index)
    }
}

#[test]
fn failed_select_never_replays_the_old_batch() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<KeepsBuffer<'_>, u32, 4> = Selector::new(KeepsBuffer {
        inner: SoftBackend::new(&r),
        fail_wait: Cell::new(false),
    });
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m)),
        Some((1, Events::READ))
    );
    assert!(sel.next_ready().is_none());
    // The backend still holds that event, but the selector must not hand it
    // out again: the failed select has an empty batch.
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.next_ready().unwrap();
    assert!(sel.backend().event(0).is_some());
    // Fail with the previous batch both fully and partly handed out.
    let mut sel2: Selector<KeepsBuffer<'_>, u32, 4> = Selector::new(KeepsBuffer {
        inner: SoftBackend::new(&r),
        fail_wait: Cell::new(false),
    });
    sel2.register(1, Events::READ, 1).unwrap();
    sel2.select(Some(Duration::ZERO)).unwrap();
    for sel in [&mut sel, &mut sel2] {
        sel.backend().fail_wait.set(true);
        assert_eq!(
            sel.select(Some(Duration::ZERO)),
            Err(Error::Os(OsError::EINVAL))
        );
        assert!(sel.next_ready().is_none());
    }
}

#[test]
fn errors_convert_and_display() {
    let os = OsError::from_raw(12);
    assert_eq!(os, OsError::ENOMEM);
    assert_eq!(os.raw(), 12);
    assert_eq!(os.to_string(), "os error 12");
    assert_eq!(Error::from(os), Error::Os(os));
    assert_eq!(Error::Os(os).to_string(), "os error 12");

    let all = [
        Error::AlreadyRegistered,
        Error::NotRegistered,
        Error::InvalidEvents,
        Error::InvalidFd,
        Error::Full,
        Error::Os(OsError::EBADF),
    ];
    let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(!t.is_empty());
        assert!(
            texts[i + 1..].iter().all(|u| u != t),
            "duplicate message {t:?}"
        );
    }
    for e in all {
        let source = core::error::Error::source(&e);
        assert_eq!(source.is_some(), matches!(e, Error::Os(_)), "{e:?}");
    }
    let source = core::error::Error::source(&Error::Os(OsError::EBADF)).unwrap();
    assert_eq!(source.to_string(), "os error 9");
}

#[test]
fn data_error_display_debug_from() {
    // No Debug or Display needed on the data.
    struct Opaque(u8);
    let e = DataError {
        error: Error::Full,
        data: Opaque(7),
    };
    assert_eq!(e.to_string(), Error::Full.to_string());
    let debug = format!("{e:?}");
    assert!(debug.starts_with("DataError"), "{debug}");
    assert!(debug.contains("Full"), "{debug}");
    assert!(core::error::Error::source(&e).is_none());

    let e = DataError {
        error: Error::Os(OsError::ENOMEM),
        data: Opaque(8),
    };
    assert_eq!(
        core::error::Error::source(&e).unwrap().to_string(),
        "os error 12"
    );
    let (error, Opaque(data)) = e.into_parts();
    assert_eq!((error, data), (Error::Os(OsError::ENOMEM), 8));

    // `?` turns it into an Error when the data is not needed.
    fn register_twice(sel: &mut Sel<'_, 4>) -> Result<(), Error> {
        sel.register(1, Events::READ, 1)?;
        sel.register(1, Events::READ, 2)?;
        Ok(())
    }
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    assert_eq!(register_twice(&mut sel), Err(Error::AlreadyRegistered));
    assert_eq!(
        Error::from(DataError {
            error: Error::InvalidFd,
            data: ()
        }),
        Error::InvalidFd
    );
}

// --- select -------------------------------------------------------------------

#[test]
fn select_masks_readiness_by_registered_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::WRITE, 2).unwrap();
    sel.register(3, RW, 3).unwrap();
    sel.register(4, Events::READ, 4).unwrap();
    // Ready for everything, plus bits no one can register for.
    for fd in 0..M as RawFd {
        r.set(fd, Events::from_bits_retain(0xff));
    }
    assert_eq!(
        select_now(&mut sel),
        [
            (1, Events::READ, 1),
            (2, Events::WRITE, 2),
            (3, RW, 3),
            (4, Events::READ, 4)
        ]
    );
    // Readiness only outside the interest is never delivered.
    for fd in 0..M as RawFd {
        r.clear(fd, Events::from_bits_retain(0xff));
    }
    r.set(1, Events::WRITE);
    r.set(2, Events::READ);
    r.set(4, Events::from_bits_retain(0xfc));
    r.set(3, Events::WRITE);
    r.set(5, RW); // not registered
    assert_eq!(select_now(&mut sel), [(3, Events::WRITE, 3)]);
    // Level-triggered: still ready, so delivered again; once cleared, not.
    assert_eq!(select_now(&mut sel), [(3, Events::WRITE, 3)]);
    r.clear(3, RW);
    assert_eq!(select_now(&mut sel), []);
}

#[test]
fn each_fd_at_most_once_per_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 16> = new_sel(&r);
    for fd in 0..M as RawFd {
        sel.register(fd, RW, fd as u32).unwrap();
        r.set(fd, RW);
    }
    sel.select(None).unwrap();
    let mut seen = [0u8; M];
    while let Some((key, mask)) = sel.next_ready() {
        assert_eq!(mask, RW, "read and write merged into one event");
        seen[key.fd() as usize] += 1;
    }
    assert_eq!(seen, [1; M]);
    // The batch is done: it stays done until the next select.
    assert!(sel.next_ready().is_none());
    assert!(sel.next_ready().is_none());
}

#[test]
fn timeout_with_nothing_ready_is_an_empty_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, RW, 1).unwrap();
    r.set(2, RW); // ready, but not registered
    for timeout in [
        Some(Duration::ZERO),
        Some(Duration::from_nanos(1)),
        Some(Duration::from_millis(10)),
        Some(Duration::MAX),
        None, // SoftBackend without an idle hook cannot sleep: returns empty
    ] {
        assert_eq!(sel.select(timeout), Ok(()), "{timeout:?}");
        assert!(sel.next_ready().is_none(), "{timeout:?}");
    }
    // An empty selector too.
    let mut empty: Sel<'_, 8> = new_sel(&r);
    assert_eq!(empty.select(Some(Duration::ZERO)), Ok(()));
    assert!(empty.next_ready().is_none());
}

#[test]
fn a_new_select_replaces_the_rest_of_the_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::READ, 2).unwrap();
    r.set(1, Events::READ);
    r.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let (first, _) = sel.next_ready().map(|(k, m)| (k.fd(), m)).unwrap();
    r.clear(1, Events::READ);
    r.clear(2, Events::READ);
    // Nothing ready now: the old batch's rest is dropped, not delivered.
    assert!([1, 2].contains(&first));
    assert_eq!(select_now(&mut sel), []);
}

#[test]
fn next_ready_gives_mutable_data() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let (key, _) = sel.next_ready().unwrap();
    *key.data_mut() += 41;
    assert_eq!(sel.get_key(1).map(|k| *k.data()), Some(42));
    assert_eq!(select_now(&mut sel), [(1, Events::READ, 42)]);
}

// --- idle hook -----------------------------------------------------------------

std::thread_local! {
    static IDLE_CALLS: RefCell<Vec<Option<Duration>>> = const { RefCell::new(Vec::new()) };
}

#[test]
fn idle_hook_is_called_with_the_timeout_when_nothing_is_ready() {
    fn idle(timeout: Option<Duration>) {
        IDLE_CALLS.with(|c| c.borrow_mut().push(timeout));
    }
    fn calls() -> Vec<Option<Duration>> {
        IDLE_CALLS.with(|c| core::mem::take(&mut *c.borrow_mut()))
    }
    calls();
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<_, u32, 8> = Selector::new(SoftBackend::new(&r).with_idle(idle));
    sel.register(1, Events::READ, 1).unwrap();

    sel.select(Some(Duration::from_millis(5))).unwrap();
    assert!(sel.next_ready().is_none());
    assert_eq!(calls(), [Some(Duration::from_millis(5))]);
    sel.select(None).unwrap();
    assert_eq!(calls(), [None]);
    sel.select(Some(Duration::MAX)).unwrap();
    assert_eq!(calls(), [Some(Duration::MAX)]);
    // A poll never idles.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(calls(), []);
    // Ready for something not registered: still idle.
    r.set(1, Events::WRITE);
    sel.select(Some(Duration::from_secs(1))).unwrap();
    assert!(sel.next_ready().is_none());
    assert_eq!(calls(), [Some(Duration::from_secs(1))]);
    // Something ready: no idling.
    r.set(1, Events::READ);
    sel.select(None).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m)),
        Some((1, Events::READ))
    );
    assert_eq!(calls(), []);
}

#[test]
fn idle_hook_readiness_is_seen_by_the_same_select() {
    // The hook plays the interrupt that arrives while the CPU sleeps.
    static READY: SoftReadiness<M> = SoftReadiness::new();
    fn interrupt(_: Option<Duration>) {
        READY.set(4, Events::READ);
    }
    let mut sel: Selector<_, u32, 8> = Selector::new(SoftBackend::new(&READY).with_idle(interrupt));
    sel.register(4, Events::READ, 44).unwrap();
    assert_eq!(READY.get(4), Events::empty());
    sel.select(None).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data())),
        Some((4, Events::READ, 44))
    );
    assert!(sel.next_ready().is_none());
}

// --- Token::INTERNAL and other events that name no key ---------------------------

/// SoftBackend plus extra events that name no user key: a backend's internal
/// waker, tokens out of range, and slots `event` has nothing for.
struct Noisy<'r> {
    inner: SoftBackend<'r, M>,
    count: usize,
}

const NOISE: usize = 3;

impl Backend for Noisy<'_> {
    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        assert_ne!(
            token,
            Token::INTERNAL,
            "the selector handed out the internal token"
        );
        self.inner.add(fd, events, token)
    }
    fn modify(&mut self, fd: RawFd, old: Events, new: Events, token: Token) -> Result<(), OsError> {
        self.inner.modify(fd, old, new, token)
    }
    fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.inner.delete(fd, events, token)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, OsError> {
        self.count = self.inner.wait(timeout)? + 2 * NOISE;
        Ok(self.count)
    }
    fn event(&self, index: usize) -> Option<(Token, Events)> {
        // Noise first, then the real events, then more noise.
        match index {
            0 => Some((Token::INTERNAL, RW)),
            1 => Some((Token(u64::from(u32::MAX - 1)), RW)), // slot index never used
            2 => None,
            i if i < self.count - NOISE => self.inner.event(i - NOISE),
            i if i == self.count - 3 => Some((Token::INTERNAL, Events::READ)),
            i if i == self.count - 2 => Some((Token::INTERNAL, Events::WRITE)),
            _ => None,
        }
    }
}

#[test]
fn internal_and_unknown_tokens_are_skipped() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<Noisy<'_>, u32, 8> = Selector::new(Noisy {
        inner: SoftBackend::new(&r),
        count: 0,
    });
    // Nothing registered: only noise, none of it delivered.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert!(sel.next_ready().is_none());

    sel.register(0, RW, 100).unwrap();
    sel.register(5, Events::READ, 105).unwrap();
    r.set(0, RW);
    r.set(5, RW);
    sel.select(Some(Duration::ZERO)).unwrap();
    let mut got = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        got.push((key.fd(), mask, *key.data()));
    }
    got.sort_unstable();
    assert_eq!(got, [(0, RW, 100), (5, Events::READ, 105)]);
}

// --- the seed's callback server, and handlers changing the selector ---------------

type CbSel<'r> = Selector<SoftBackend<'r, M>, Cb, 8>;

/// The key's data: a plain `fn` pointer (and an argument for it). A struct,
/// because a type alias cannot name itself.
#[derive(Clone, Copy)]
struct Cb {
    f: for<'r> fn(&mut CbSel<'r>, RawFd, Events, u32),
    arg: u32,
}

std::thread_local! {
    static CALLS: RefCell<Vec<(&'static str, RawFd, Events, u32)>> =
        const { RefCell::new(Vec::new()) };
}

fn called(name: &'static str, fd: RawFd, mask: Events, arg: u32) {
    CALLS.with(|c| c.borrow_mut().push((name, fd, mask, arg)));
}

fn take_calls() -> Vec<(&'static str, RawFd, Events, u32)> {
    CALLS.with(|c| core::mem::take(&mut *c.borrow_mut()))
}

/// One `select(0)` and every handler of its batch; returns the number of
/// events delivered.
fn dispatch(sel: &mut CbSel<'_>) -> usize {
    sel.select(Some(Duration::ZERO)).unwrap();
    let mut n = 0;
    let mut seen = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        let (fd, cb) = (key.fd(), *key.data());
        assert!(key.events().contains(mask) && !mask.is_empty());
        assert!(!seen.contains(&fd), "fd {fd} delivered twice in one batch");
        seen.push(fd);
        (cb.f)(sel, fd, mask, cb.arg);
        n += 1;
    }
    n
}

fn log_only(_: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
    called("log", fd, mask, arg);
}

/// The handler of a registration made mid-batch.
fn fresh(_: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
    called("fresh", fd, mask, arg);
}

/// Unregisters the fd in `arg` (its peer), whichever of the two runs first.
fn unregister_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("unregister_peer", fd, mask, peer);
    if sel.contains(peer as RawFd) {
        sel.unregister(peer as RawFd).unwrap();
    }
}

#[test]
fn unregistered_mid_batch_is_never_delivered() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: unregister_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: unregister_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1);
    let (_, first, mask, peer) = calls[0];
    assert_eq!(mask, Events::READ);
    assert!(sel.contains(first) && !sel.contains(peer as RawFd));
    assert_eq!(sel.backend().interest(peer as RawFd), None);
}

/// The first handler of a batch unregisters fd 4 (or 5, if it is 4 itself)
/// and registers that fd number again: with the software backend's
/// ascending order, the stale event sits in the middle of the batch.
fn unregister_middle(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, reuse: u32) {
    let first = CALLS.with(|c| c.borrow().is_empty());
    called("unregister_middle", fd, mask, reuse);
    if first {
        let victim = if fd == 4 { 5 } else { 4 };
        let key = sel.unregister(victim).unwrap();
        if reuse == 1 {
            sel.register(victim, key.events(), Cb { f: fresh, arg: 999 })
                .unwrap();
        }
    }
}

#[test]
fn stale_event_in_the_middle_of_a_batch_does_not_end_it() {
    for reuse in [0, 1] {
        take_calls();
        let r = SoftReadiness::new();
        let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
        for fd in 0..8 {
            sel.register(
                fd,
                Events::READ,
                Cb {
                    f: unregister_middle,
                    arg: reuse,
                },
            )
            .unwrap();
            r.set(fd, Events::READ);
        }
        // Every fd but the victim is delivered, before and after its slot.
        assert_eq!(dispatch(&mut sel), 7, "reuse={reuse}");
        let calls = take_calls();
        let victim = if calls[0].1 == 4 { 5 } else { 4 };
        let mut fds: Vec<RawFd> = calls.iter().map(|c| c.1).collect();
        fds.sort_unstable();
        let expect: Vec<RawFd> = (0..8).filter(|&fd| fd != victim).collect();
        assert_eq!(fds, expect, "reuse={reuse}");
        assert!(calls.iter().all(|c| c.0 == "unregister_middle"));
        assert_eq!(sel.contains(victim), reuse == 1);
    }
}

/// Unregisters its peer and registers the same fd number again, with a
/// handler that must not see this batch's old event.
fn reuse_peer_fd(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("reuse_peer_fd", fd, mask, peer);
    let peer = peer as RawFd;
    if sel.get_key(peer).is_some_and(|k| k.data().arg != 999) {
        let old = sel.unregister(peer).unwrap();
        // Same fd, same events: only the registration is new.
        sel.register(peer, old.events(), Cb { f: fresh, arg: 999 })
            .unwrap();
    }
}

#[test]
fn fd_reused_mid_batch_does_not_get_the_old_event() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        RW,
        Cb {
            f: reuse_peer_fd,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        RW,
        Cb {
            f: reuse_peer_fd,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "reuse_peer_fd");
    let reused = calls[0].3 as RawFd;
    assert_eq!(
        sel.get_key(reused).map(|k| (k.events(), k.data().arg)),
        Some((RW, 999))
    );
    assert_eq!(sel.backend().interest(reused), Some(RW));
    // The new registration is delivered from the next select on (the fd is
    // still ready): only the new handler runs for it.
    r.clear(calls[0].1, RW);
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls(), [("fresh", reused, RW, 999)]);
}

/// Unregisters its peer and registers a different fd, which takes the
/// peer's slot in the table.
fn replace_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("replace_peer", fd, mask, peer);
    if sel.contains(peer as RawFd) {
        sel.unregister(peer as RawFd).unwrap();
        sel.register(9, Events::READ, Cb { f: fresh, arg: 9 })
            .unwrap();
    }
}

#[test]
fn slot_reused_mid_batch_does_not_get_the_old_event() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: replace_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: replace_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    r.set(9, Events::READ); // ready, but not part of this batch
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(sel.contains(9));
    assert_eq!(sel.len(), 2);
}

#[test]
fn unregister_then_register_same_fd_many_times_mid_batch() {
    // Every round of unregister + register bumps the slot's generation; the
    // old event must stay stale however many rounds there were.
    fn churn(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
        called("churn", fd, mask, peer);
        let peer = peer as RawFd;
        if sel.get_key(peer).is_some_and(|k| k.data().arg != 999) {
            for _ in 0..100 {
                let key = sel.unregister(peer).unwrap();
                sel.register(peer, key.events(), Cb { f: fresh, arg: 999 })
                    .unwrap();
            }
        }
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(3, Events::READ, Cb { f: churn, arg: 4 })
        .unwrap();
    sel.register(4, Events::READ, Cb { f: churn, arg: 3 })
        .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls().len(), 1);
}

/// Narrows its peer's events from READ|WRITE to READ.
fn narrow_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("narrow_peer", fd, mask, peer);
    // Only the first of the two handlers to run narrows.
    if sel.get_key(fd).is_some_and(|k| k.events() == RW) {
        sel.modify(
            peer as RawFd,
            Events::READ,
            Cb {
                f: log_only,
                arg: peer,
            },
        )
        .unwrap();
    }
}

#[test]
fn modify_mid_batch_masks_pending_readiness() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        RW,
        Cb {
            f: narrow_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        RW,
        Cb {
            f: narrow_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(dispatch(&mut sel), 2);
    let calls = take_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (name, first, mask, peer) = calls[0];
    assert_eq!((name, mask), ("narrow_peer", RW));
    // The pending event of the peer comes with its new mask and new data.
    assert_eq!(calls[1], ("log", peer as RawFd, Events::READ, peer));
    assert_eq!(sel.get_key(first).map(|k| k.events()), Some(RW));
    assert_eq!(sel.backend().interest(peer as RawFd), Some(Events::READ));
}

#[test]
fn modify_mid_batch_to_events_not_ready_drops_the_pending_event() {
    fn to_write(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
        called("to_write", fd, mask, peer);
        if sel
            .get_key(peer as RawFd)
            .is_some_and(|k| k.events() == Events::READ)
        {
            sel.modify_events(peer as RawFd, Events::WRITE).unwrap();
        }
        // Narrow itself too, so the peer's handler (if it runs) leaves it.
        sel.modify_events(fd, Events::WRITE).unwrap();
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: to_write,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: to_write,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    // The peer was READ-ready, but is now registered for WRITE only.
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls().len(), 1);
    assert_eq!(sel.backend().interest(3), Some(Events::WRITE));
    assert_eq!(sel.backend().interest(4), Some(Events::WRITE));
}

#[test]
fn handler_registering_a_new_fd_mid_batch() {
    fn spawn(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
        called("spawn", fd, mask, arg);
        sel.register(arg as RawFd, Events::READ, Cb { f: log_only, arg })
            .unwrap();
        sel.unregister(fd).unwrap();
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(1, Events::READ, Cb { f: spawn, arg: 10 })
        .unwrap();
    sel.register(2, Events::READ, Cb { f: spawn, arg: 11 })
        .unwrap();
    for fd in [1, 2, 10, 11] {
        r.set(fd, Events::READ);
    }
    // The new fds were not watched when the batch was taken.
    assert_eq!(dispatch(&mut sel), 2);
    let mut calls = take_calls();
    calls.sort_unstable_by_key(|c| c.1);
    assert_eq!(
        calls,
        [
            ("spawn", 1, Events::READ, 10),
            ("spawn", 2, Events::READ, 11)
        ]
    );
    assert_eq!(dispatch(&mut sel), 2);
    let mut calls = take_calls();
    calls.sort_unstable_by_key(|c| c.1);
    assert_eq!(
        calls,
        [("log", 10, Events::READ, 10), ("log", 11, Events::READ, 11)]
    );
}

// The echo server of the seed (selectors_echo_server.py) on software sources.

/// A simulated network: connections waiting to be accepted, each with the
/// chunks its client sends (then end of file).
#[derive(Default)]
struct World {
    backlog: VecDeque<(RawFd, Vec<&'static [u8]>)>,
    inbox: BTreeMap<RawFd, VecDeque<&'static [u8]>>,
    pending_echo: BTreeMap<RawFd, Vec<u8>>,
    echoed: BTreeMap<RawFd, Vec<u8>>,
    closed: Vec<RawFd>,
}

std::thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::default());
    static KEEP_RUNNING: Cell<bool> = const { Cell::new(true) };
}

static ECHO_READY: SoftReadiness<M> = SoftReadiness::new();
const LISTENER: RawFd = 1;

fn accept(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, _: u32) {
    called("accept", fd, mask, 0);
    assert_eq!((fd, mask), (LISTENER, Events::READ));
    let (conn, chunks, more) = WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let (conn, chunks) = w.backlog.pop_front().expect("accept without a connection");
        (conn, chunks, !w.backlog.is_empty())
    });
    if !more {
        ECHO_READY.clear(LISTENER, Events::READ);
    }
    // A new socket: readable (data or EOF) and writable.
    WORLD.with(|w| w.borrow_mut().inbox.insert(conn, chunks.into()));
    ECHO_READY.set(conn, RW);
    sel.register(conn, Events::READ, Cb { f: read, arg: 0 })
        .unwrap();
}

fn read(sel: &mut CbSel<'_>, conn: RawFd, mask: Events, _: u32) {
    called("read", conn, mask, 0);
    // Registered for READ only: the WRITE readiness is masked away.
    assert_eq!(mask, Events::READ);
    let chunk = WORLD.with(|w| w.borrow_mut().inbox.get_mut(&conn).unwrap().pop_front());
    match chunk {
        Some(data) => {
            WORLD.with(|w| w.borrow_mut().pending_echo.insert(conn, data.to_vec()));
            // Switch this key to writing, events and data at once.
            let old = sel.modify(conn, Events::WRITE, Cb { f: write, arg: 0 });
            assert!(old.is_ok());
        }
        None => {
            // EOF: unregister itself and close.
            let key = sel.unregister(conn).unwrap();
            assert_eq!(key.events(), Events::READ);
            ECHO_READY.clear(conn, RW);
            let last = WORLD.with(|w| {
                let mut w = w.borrow_mut();
                w.closed.push(conn);
                w.backlog.is_empty() && w.inbox.len() == w.closed.len()
            });
            if last {
                // Change another key: the listener stops accepting.
                sel.modify_data(LISTENER, Cb { f: fresh, arg: 1 }).unwrap();
                KEEP_RUNNING.with(|k| k.set(false));
            }
        }
    }
}

fn write(sel: &mut CbSel<'_>, conn: RawFd, mask: Events, _: u32) {
    called("write", conn, mask, 0);
    // Still readable (the next chunk or EOF waits), but registered for WRITE.
    assert_eq!(mask, Events::WRITE);
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let data = w.pending_echo.remove(&conn).unwrap();
        w.echoed.entry(conn).or_default().extend_from_slice(&data);
    });
    sel.modify_events(conn, Events::READ).unwrap();
    sel.modify_data(conn, Cb { f: read, arg: 0 }).unwrap();
}

#[test]
fn seed_echo_server_with_fn_pointer_callbacks() {
    take_calls();
    KEEP_RUNNING.with(|k| k.set(true));
    WORLD.with(|w| {
        *w.borrow_mut() = World {
            backlog: [
                (5, std::vec![&b"hello"[..], &b" world"[..]]),
                (6, std::vec![&b"x"[..]]),
                (7, Vec::new()),
            ]
            .into(),
            ..World::default()
        };
    });
    ECHO_READY.set(LISTENER, Events::READ);
    let mut sel: CbSel<'static> = Selector::new(SoftBackend::new(&ECHO_READY));
    sel.register(LISTENER, Events::READ, Cb { f: accept, arg: 0 })
        .unwrap();

    let mut rounds = 0;
    while KEEP_RUNNING.with(Cell::get) {
        rounds += 1;
        assert!(rounds < 50, "the server did not finish");
        assert!(
            dispatch(&mut sel) > 0,
            "nothing ready, but the server is not done"
        );
    }

    WORLD.with(|w| {
        let w = w.borrow();
        assert_eq!(
            w.echoed.get(&5).map(Vec::as_slice),
            Some(&b"hello world"[..])
        );
        assert_eq!(w.echoed.get(&6).map(Vec::as_slice), Some(&b"x"[..]));
        assert_eq!(w.echoed.get(&7), None);
        let mut closed = w.closed.clone();
        closed.sort_unstable();
        assert_eq!(closed, [5, 6, 7]);
        assert!(w.pending_echo.is_empty());
    });
    // Only the listener is left, with the data the last handler gave it.
    let keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), k.data().arg))
        .collect();
    assert_eq!(keys, [(LISTENER, Events::READ, 1)]);
    for fd in [5, 6, 7] {
        assert_eq!(sel.backend().interest(fd), None);
    }
    // Per connection the handlers ran in order: accept, then read/write
    // alternating, then the final read that saw EOF; nothing after close.
    let calls = take_calls();
    for (conn, expect) in [
        (5, &["read", "write", "read", "write", "read"][..]),
        (6, &["read", "write", "read"][..]),
        (7, &["read"][..]),
    ] {
        let got: Vec<&str> = calls.iter().filter(|c| c.1 == conn).map(|c| c.0).collect();
        assert_eq!(got, expect, "fd {conn}");
    }
    assert_eq!(calls.iter().filter(|c| c.0 == "accept").count(), 3);
    sel.close();
}

// --- Selector::open ------------------------------------------------------------

std::thread_local! {
    static OPEN_FAILS: Cell<Option<OsError>> = const { Cell::new(None) };
}
static OPEN_READY: SoftReadiness<M> = SoftReadiness::new();

/// A backend that opens without arguments, like epoll and kqueue do.
struct Openable(SoftBackend<'static, M>);

impl crate::OpenBackend for Openable {
    fn open() -> Result<Self, OsError> {
        match OPEN_FAILS.with(Cell::take) {
            Some(e) => Err(e),
            None => Ok(Self(SoftBackend::new(&OPEN_READY))),
        }
    }
}

impl Backend for Openable {
    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.0.add(fd, events, token)
    }
    fn modify(&mut self, fd: RawFd, old: Events, new: Events, token: Token) -> Result<(), OsError> {
        self.0.modify(fd, old, new, token)
    }
    fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.0.delete(fd, events, token)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, OsError> {
        self.0.wait(timeout)
    }
    fn event(&self, index: usize) -> Option<(Token, Events)> {
        self.0.event(index)
    }
}

#[test]
fn open_creates_the_backend_or_reports_why_not() {
    const EMFILE: OsError = OsError::from_raw(24);
    OPEN_FAILS.with(|f| f.set(Some(EMFILE)));
    let failed = Selector::<Openable, u32, 4>::open();
    assert_eq!(failed.err(), Some(Error::Os(EMFILE)));

    let mut sel = Selector::<Openable, u32, 4>::open().unwrap();
    assert!(sel.is_empty());
    sel.register(6, Events::READ, 60).unwrap();
    OPEN_READY.set(6, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data())),
        Some((6, Events::READ, 60))
    );
    sel.close();
}

// --- const construction --------------------------------------------------------

static STATIC_READY: SoftReadiness<4> = SoftReadiness::new();
/// Built at compile time: `Selector::new`, `SoftBackend::new` and
/// `SoftReadiness::new` are `const`. (`SoftBackend` is not `Sync`, and a
/// selector needs `&mut` anyway, so a `static` one lives in a mutex.)
static STATIC_SEL: std::sync::Mutex<Selector<SoftBackend<'static, 4>, u8, 4>> =
    std::sync::Mutex::new(Selector::new(SoftBackend::new(&STATIC_READY)));

const fn assert_send<T: Send>() {}
const fn assert_sync<T: Sync>() {}
const _: () = {
    assert_send::<Selector<SoftBackend<'static, 4>, u8, 4>>();
    assert_sync::<SoftReadiness<4>>();
    assert_send::<DataError<u8>>();
    assert_sync::<Error>();
    assert_sync::<SelectorKey<u8>>();
};

#[test]
fn selector_in_a_static() {
    let mut sel = STATIC_SEL.lock().unwrap();
    assert!(sel.is_empty());
    sel.register(2, Events::READ, 7).unwrap();
    STATIC_READY.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data())),
        Some((2, Events::READ, 7))
    );
    sel.unregister(2).unwrap();
    STATIC_READY.clear(2, Events::READ);

    // Evaluated at compile time.
    let mut local: Selector<SoftBackend<'static, 4>, u8, 2> =
        const { Selector::new(SoftBackend::new(&STATIC_READY)) };
    local.register(3, Events::WRITE, 1).unwrap();
    local.register(1, Events::WRITE, 2).unwrap();
    assert_eq!(
        data_err(local.register(0, Events::WRITE, 3)),
        (Error::Full, 3)
    );
}

// --- defmt ----------------------------------------------------------------------

/// `defmt::Format` of the public types, through defmt's host test mode
/// (the `unstable-test` feature of the dev-dependency): the encoded bytes
/// land in a thread-local buffer. In that mode each interned string is a
/// fresh 2-byte index, so these tests check the structure and the argument
/// bytes of each encoding, not the format strings' text.
#[cfg(feature = "defmt")]
mod defmt_format {
    use super::*;

    /// What `{}` of `value` encodes: its tag (2 bytes), then its data.
    fn encode<F: defmt::Format + ?Sized>(value: &F) -> Vec<u8> {
        defmt::export::fetch_bytes();
        defmt::export::fmt(value);
        defmt::export::fetch_bytes()
    }

    /// A hand-written impl's own bytes: between the tag and the 2-byte
    /// terminator that defmt adds around it.
    fn written<F: defmt::Format + ?Sized>(value: &F) -> Vec<u8> {
        let bytes = encode(value);
        assert!(bytes.len() >= 4 && bytes.ends_with(&[0, 0]), "{bytes:?}");
        bytes[2..bytes.len() - 2].to_vec()
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn events_by_name_and_unknown_bits_in_hex() {
        // One interned string each: "READ", "WRITE", "READ | WRITE", "(empty)".
        for events in [Events::READ, Events::WRITE, RW, Events::empty()] {
            assert_eq!(written(&events).len(), 2, "{events:?}");
        }
        // Unknown bits alone: "{=u8:#x}" and the byte.
        let bytes = written(&Events::from_bits_retain(0x80));
        assert_eq!((bytes.len(), bytes[2]), (3, 0x80));
        // Known and unknown: the name, then " | {=u8:#x}" and only the
        // unknown bits.
        let bytes = written(&Events::from_bits_retain(0x85));
        assert_eq!((bytes.len(), bytes[4]), (5, 0x84));
        let bytes = written(&Events::from_bits_retain(0xff));
        assert_eq!((bytes.len(), bytes[4]), (5, 0xfc));
    }

    #[test]
    fn errors_and_keys_carry_their_values() {
        let os = OsError::from_raw(0x1122_3344);
        assert!(contains(&encode(&os), &0x1122_3344i32.to_le_bytes()));
        assert!(contains(
            &encode(&Error::Os(os)),
            &0x1122_3344i32.to_le_bytes()
        ));
        // Unit variants differ in their discriminant.
        let unit = [
            Error::AlreadyRegistered,
            Error::NotRegistered,
            Error::InvalidEvents,
            Error::InvalidFd,
            Error::Full,
        ]
        .map(|e| encode(&e));
        for (i, a) in unit.iter().enumerate() {
            for b in &unit[i + 1..] {
                assert_ne!(a[2..], b[2..]);
            }
        }
        // DataError prints the error, not the data (T need not be Format).
        struct NotFormat(u32);
        let e = DataError {
            error: Error::Os(os),
            data: NotFormat(0xDEAD_BEEF),
        };
        let bytes = written(&e);
        assert!(contains(&bytes, &0x1122_3344i32.to_le_bytes()));
        assert!(!contains(&bytes, &e.data.0.to_le_bytes()));

        let key = SelectorKey {
            fd: 0x0A0B_0C0D,
            events: RW,
            data: 0x5566_7788u32,
        };
        let bytes = encode(&key);
        assert!(contains(&bytes, &0x0A0B_0C0Di32.to_le_bytes()));
        assert!(contains(&bytes, &0x5566_7788u32.to_le_bytes()));

        let token = Token(0x0102_0304_0506_0708);
        assert!(contains(&encode(&token), &token.0.to_le_bytes()));
    }

    #[test]
    fn refused_calls_log_at_debug_level() {
        // Whether defmt's debug level is compiled in for this crate is
        // decided by DEFMT_LOG at compile time (default: error only). A
        // probe in this crate tells, and the selector must agree with it.
        defmt::export::fetch_bytes();
        defmt::debug!("probe");
        let debug_on = !defmt::export::fetch_bytes().is_empty();

        let r = SoftReadiness::new();
        let mut sel: Sel<'_, 4> = new_sel(&r);
        sel.register(1, Events::READ, 1).unwrap();
        assert!(
            defmt::export::fetch_bytes().is_empty(),
            "a successful call logged"
        );
        let (error, _) = data_err(sel.register(1, Events::READ, 2));
        assert_eq!(error, Error::AlreadyRegistered);
        let logged = defmt::export::fetch_bytes();
        // A DEFMT_LOG with module paths (`ioselect_core::tests=debug`) can
        // set the probe's module and the selector's apart: compare only
        // when the level is the same for the whole crate.
        if option_env!("DEFMT_LOG").is_none_or(|v| !v.contains("::")) {
            assert_eq!(!logged.is_empty(), debug_on, "{logged:?}");
        }
        if !logged.is_empty() {
            // "register fd={} failed: {}": the fd as i32, then the error.
            assert!(contains(&logged, &1i32.to_le_bytes()));
        }
    }
}
