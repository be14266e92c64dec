//! Unit tests of the selector's rules (docs/semantics.md) with the
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

/// The registration half of a test backend that wraps a `SoftBackend` in
/// field `$inner` (`0`, `inner`): sources are raw fds, and `add`, `modify`
/// and `delete` go to the wrapped backend. The test writes the rest.
macro_rules! forward_registrations {
    ($inner:tt) => {
        type Source<'a> = RawFd;
        fn fd(source: RawFd) -> RawFd {
            source
        }
        fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
            self.$inner.add(fd, events, token)
        }
        fn modify(
            &mut self,
            fd: RawFd,
            old: Events,
            new: Events,
            token: Token,
        ) -> Result<(), OsError> {
            self.$inner.modify(fd, old, new, token)
        }
        fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
            self.$inner.delete(fd, events, token)
        }
    };
}

mod construction;
#[cfg(feature = "defmt")]
mod defmt_format;
mod events;
mod failures;
mod handlers;
mod invariants;
mod map;
mod modify;
mod register;
mod select;
mod soft;
mod stale;
