//! Invariants no safe call can break. Keys handed out mutably let
//! the data change and nothing else; tokens never name a later key in
//! practice (the tag counter is started near its wraps to cross them
//! quickly); a key closed while registered is unregistered without touching
//! the backend; large tables live in storage the caller provides.

use super::*;
use crate::{KeyMapIn, Renew, SelectorIn, Slot};

/// The bits of a token that hold the tag, for a table of `cap` slots.
/// The bits of a tag a token keeps: 64 less the reserved bit and the index
/// bits.
fn tag_bits(cap: u32) -> u32 {
    63 - (u32::BITS - (cap - 1).leading_zeros())
}

#[test]
fn a_key_mut_changes_the_data_and_nothing_else() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    sel.register(1, Events::READ, 10).unwrap();
    sel.register(2, RW, 20).unwrap();
    let before = snapshot(&mut sel, &r);
    {
        let mut a = sel.get_key_mut(1).unwrap();
        assert_eq!((a.fd(), a.events(), *a.data()), (1, Events::READ, 10));
        *a.data_mut() = 11;
    }
    r.set(2, Events::WRITE);
    sel.select(Some(Duration::ZERO)).unwrap();
    let (b, mask) = sel.next_ready().unwrap();
    assert_eq!((b.fd(), b.events(), mask), (2, RW, Events::WRITE));
    *b.into_data_mut() = 21;
    r.clear(2, RW);
    let after = snapshot(&mut sel, &r);
    // Only the data moved: same fds, same events, same kernel interest.
    let strip = |s: &Snapshot| s.keys.iter().map(|k| (k.0, k.1)).collect::<Vec<_>>();
    assert_eq!(strip(&before), strip(&after));
    assert_eq!(after.keys, [(1, Events::READ, 11), (2, RW, 21)]);
    // Unregister, register again: the table agrees with the kernel.
    assert_eq!(sel.unregister(1).unwrap().into_data(), 11);
    sel.register(1, Events::WRITE, 12).unwrap();
    snapshot(&mut sel, &r);
}

/// The old token layout kept 32 bits of per-slot generation: the 2^32nd
/// registration of a slot matched a stale token. Now the tag is 63 bits
/// less the index bits, counted table-wide.
#[test]
fn a_stale_event_does_not_reach_a_key_2_pow_32_registrations_later() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.set_next_tag(u64::from(u32::MAX) - 1);
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    r.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    // Mid-batch: fd 1 goes, and fd 2 takes its slot 2^32 registrations later.
    sel.unregister(1).unwrap();
    sel.set_next_tag(u64::from(u32::MAX) - 1 + (1 << 32));
    sel.register(2, Events::READ, 2).unwrap();
    assert!(
        sel.next_ready().is_none(),
        "the stale event of fd 1 reached fd 2"
    );
    assert_eq!(select_now(&mut sel), [(2, Events::READ, 2)]);
}

/// Crossing the tag's own wrap boundary (`2^(63 - b)` for `b` index bits)
/// within one batch, with churn on the slot: never a stale delivery. And the
/// documented bound is exact: only a registration exactly a multiple of
/// `2^(63 - b)` later could match, and neither one registration fewer nor
/// half as many do.
/// For one slot (no index bits: the tag is the whole token), three (two
/// bits, one index past the slots) and eight (three bits, every index a
/// slot).
#[test]
fn crossing_the_tag_wrap_mid_batch_never_delivers_a_stale_event() {
    crossing_the_tag_wrap::<1>();
    crossing_the_tag_wrap::<3>();
    crossing_the_tag_wrap::<8>();
}

fn crossing_the_tag_wrap<const N: usize>() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, N> = new_sel(&r);
    let period: u64 = 1 << tag_bits(N as u32);
    sel.set_next_tag(period - 3);
    sel.register(1, Events::READ, 1).unwrap(); // tag period - 3
    r.set(1, Events::READ);
    r.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.unregister(1).unwrap();
    // Churn one slot across the wrap: tags period - 2 .. period + 5.
    for i in 0..8 {
        sel.register(2, Events::READ, 100 + i).unwrap();
        sel.unregister(2).unwrap();
    }
    sel.register(2, Events::READ, 2).unwrap();
    assert!(sel.next_ready().is_none(), "capacity {N}");
    assert_eq!(select_now(&mut sel), [(2, Events::READ, 2)], "capacity {N}");

    // The bound: a stale token of tag t matches the slot's tag t + period,
    // and not t + period - 1, nor t + period / 2 (nor, shown above,
    // t + 1 .. t + 8): the fd a stale event of fd 1 (tag 5) reaches once fd
    // 2 takes the slot `later` registrations after it.
    let stale_reaches = |later: u64| {
        let mut sel: Sel<'_, N> = new_sel(&r);
        sel.set_next_tag(5);
        sel.register(1, Events::READ, 1).unwrap();
        sel.select(Some(Duration::ZERO)).unwrap();
        sel.unregister(1).unwrap();
        sel.set_next_tag(5 + later);
        sel.register(2, Events::READ, 2).unwrap();
        sel.next_ready().map(|(k, _)| k.fd())
    };
    assert_eq!(stale_reaches(period - 1), None, "capacity {N}");
    assert_eq!(stale_reaches(period / 2), None, "capacity {N}: half");
    assert_eq!(
        stale_reaches(period),
        Some(2),
        "capacity {N}: the documented bound is 2^(63 - b) registrations, exactly"
    );
}

#[test]
fn reserved_tokens_never_name_a_slot_at_any_capacity() {
    for cap in [1usize, 2, 3, 7, 8, 9, 255, 256, 1000] {
        let slots: Vec<Slot<u32>> = core::iter::repeat_with(Slot::new).take(cap).collect();
        let mut m = KeyMapIn::with_storage(slots).unwrap();
        let mut tokens = Vec::new();
        for fd in 0..cap as RawFd {
            let at = m.vacancy(fd).unwrap();
            tokens.push(at.token);
            m.insert(at, fd, Events::READ, 0);
        }
        assert!(m.slot_of(Token::INTERNAL.get()).is_none(), "cap {cap}");
        assert_eq!(m.vacancy(cap as RawFd).unwrap_err(), Error::Full);
        for token in tokens {
            assert!(!token.is_reserved());
            assert!(m.slot_of(token.get()).is_some());
            // The same index and tag with the reserved bit: no key.
            assert!(m.slot_of(Token::reserved(token.get()).get()).is_none());
        }
    }
}

#[test]
fn unregister_closed_forgets_the_key_and_the_backend_state() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    sel.register(3, RW, 30).unwrap();
    sel.register(4, Events::READ, 40).unwrap();
    // An injected failure shows no backend call is made: it stays armed.
    sel.backend().fail_next(OsError::EBADF);
    let key = sel.unregister_closed(3).unwrap();
    assert_eq!((key.fd(), key.events(), key.into_data()), (3, RW, 30));
    assert_eq!(sel.backend().interest(3), None);
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::Os(OsError::EBADF))
    );
    let s = snapshot(&mut sel, &r);
    assert_eq!(s.keys, [(4, Events::READ, 40)]);
    // Errors: as unregister's, with nothing changed.
    assert_eq!(sel.unregister_closed(3).unwrap_err(), Error::NotRegistered);
    assert_eq!(sel.unregister_closed(-1).unwrap_err(), Error::InvalidFd);
    assert_eq!(snapshot(&mut sel, &r), s);
}

#[test]
fn rebuild_moves_every_key_to_a_fresh_backend() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    for fd in [1, 5, 9] {
        sel.register(fd, RW, fd as u32 * 10).unwrap();
    }
    sel.unregister(5).unwrap();
    let before = snapshot(&mut sel, &r);
    sel.rebuild(|key| Some(key.fd())).unwrap();
    assert_eq!(snapshot(&mut sel, &r), before);
    // Refused: a key without a source, or a source of another fd; the old
    // backend stays, with every key.
    assert_eq!(sel.rebuild(|_| None), Err(Error::InvalidFd));
    assert_eq!(sel.rebuild(|key| Some(key.fd() + 1)), Err(Error::InvalidFd));
    assert_eq!(snapshot(&mut sel, &r), before);
    // Refused after some keys went to the fresh backend: those are dropped
    // with it, and the old backend keeps every key.
    let mut calls = 0;
    let refused = sel.rebuild(|key| {
        calls += 1;
        (calls == 1).then_some(key.fd())
    });
    assert_eq!((refused, calls), (Err(Error::InvalidFd), 2));
    assert_eq!(snapshot(&mut sel, &r), before);
    // A fresh backend watches nothing, over the same readiness.
    let fresh = sel.backend().renew().unwrap();
    assert_eq!((fresh.interest(1), fresh.interest(9)), (None, None));
    assert_eq!(sel.backend().interest(1), Some(RW));
}

#[test]
fn table_in_caller_storage_of_any_size() {
    let r: SoftReadiness<M> = SoftReadiness::new();
    let slots: Vec<Slot<u32>> = core::iter::repeat_with(Slot::new).take(3).collect();
    let mut sel = SelectorIn::with_storage(SoftBackend::new(&r), slots).unwrap();
    assert_eq!(sel.map().capacity(), 3);
    for fd in 0..3 {
        sel.register(fd, Events::READ, fd as u32).unwrap();
    }
    assert_eq!(data_err(sel.register(3, Events::READ, 3)), (Error::Full, 3));
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let got: Vec<_> =
        core::iter::from_fn(|| sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data()))).collect();
    assert_eq!(got, [(1, Events::READ, 1)]);
    r.clear(1, Events::READ);

    // Borrowed storage, reused: the old keys' data is dropped when the
    // selector goes, and a new table over the same memory starts empty.
    let drops = std::rc::Rc::new(());
    let mut memory: [Slot<std::rc::Rc<()>>; 4] = [const { Slot::new() }; 4];
    {
        let mut sel = SelectorIn::with_storage(SoftBackend::new(&r), &mut memory[..]).unwrap();
        sel.register(1, Events::READ, drops.clone()).unwrap();
        sel.register(2, Events::READ, drops.clone()).unwrap();
        assert_eq!(std::rc::Rc::strong_count(&drops), 3);
    }
    assert_eq!(std::rc::Rc::strong_count(&drops), 1);
    let sel = SelectorIn::with_storage(SoftBackend::new(&r), &mut memory[..]).unwrap();
    assert!(sel.is_empty());
}

/// Storage without slots is refused with a clear error, not taken as a
/// table that is always full; the backend and the storage come back. The
/// first thing a user tries, `Vec::with_capacity(n)`, is such storage.
#[test]
fn empty_storage_is_refused_and_handed_back() {
    let r: SoftReadiness<M> = SoftReadiness::new();
    let mut none: [Slot<u32>; 0] = [];
    let refused = SelectorIn::with_storage(SoftBackend::new(&r), &mut none[..]).unwrap_err();
    assert_eq!(refused.error, Error::InvalidCapacity);
    let refused =
        SelectorIn::with_storage(SoftBackend::new(&r), Vec::<Slot<u32>>::with_capacity(64))
            .unwrap_err();
    let (error, (backend, storage)) = refused.into_parts();
    assert_eq!(error, Error::InvalidCapacity);
    assert_eq!(storage.capacity(), 64, "the same Vec comes back");
    // The backend is whole: it still makes a selector.
    let slots: Vec<Slot<u32>> = core::iter::repeat_with(Slot::new).take(2).collect();
    let mut sel = SelectorIn::with_storage(backend, slots).unwrap();
    sel.register(1, Events::READ, 1).unwrap();
    assert_eq!(sel.map().capacity(), 2);
    // The table alone refuses it too.
    let refused =
        KeyMapIn::<u32, _>::with_storage(std::boxed::Box::<[Slot<u32>]>::from([])).unwrap_err();
    assert_eq!(refused.error, Error::InvalidCapacity);
}

/// A table of 65,536 keys built and used on a thread with a 64 KiB stack:
/// the storage is never on the stack, even in a debug build.
#[test]
fn large_table_on_a_small_stack() {
    static R: SoftReadiness<M> = SoftReadiness::new();
    let worker = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(|| {
            let slots: Vec<Slot<u64>> = core::iter::repeat_with(Slot::new).take(65_536).collect();
            let mut sel = SelectorIn::with_storage(SoftBackend::new(&R), slots).unwrap();
            for fd in 0..M as RawFd {
                sel.register(fd, Events::READ, fd as u64).unwrap();
            }
            R.set(7, Events::READ);
            sel.select(Some(Duration::ZERO)).unwrap();
            let got = sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data()));
            (sel.map().capacity(), sel.len(), got)
        })
        .unwrap();
    assert_eq!(
        worker.join().unwrap(),
        (65_536, M, Some((7, Events::READ, 7)))
    );
}

/// The memory figures the docs give.
#[test]
fn slot_sizes_are_as_documented() {
    use core::mem::size_of;
    assert_eq!(
        size_of::<Slot<u64>>(),
        size_of::<Option<SelectorKey<u64>>>() + 16
    );
    #[cfg(target_pointer_width = "64")]
    assert_eq!(size_of::<Slot<u64>>(), 40);
    #[cfg(target_pointer_width = "64")]
    {
        // The bookkeeping beside the slots: 40 bytes, as `KeyMapIn`'s docs say.
        assert_eq!(size_of::<crate::KeyMap<u64, 4>>(), 4 * 40 + 40);
        assert_eq!(size_of::<KeyMapIn<u64, &mut [Slot<u64>]>>(), 16 + 40);
    }
}

/// A `static` selector: built at compile time, no stack at all.
#[test]
fn static_selector() {
    static R: SoftReadiness<M> = SoftReadiness::new();
    static SEL: std::sync::Mutex<Selector<SoftBackend<'static, M>, u32, 4096>> =
        std::sync::Mutex::new(Selector::new(SoftBackend::new(&R)));
    let mut sel = SEL.lock().unwrap();
    sel.register(2, Events::WRITE, 2).unwrap();
    R.set(2, Events::WRITE);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(drain(&mut sel), [(2, Events::WRITE, 2)]);
}
