//! The key table on its own: insertion, lookup, removal, bucket chains and
//! the tokens it hands out.

use crate::map::KeyMap;
use crate::{Error, Events, RawFd, Token};

/// Inserts a key for `fd` where the table says, returning its token.
fn insert<T, const N: usize>(m: &mut KeyMap<T, N>, fd: RawFd, events: Events, data: T) -> Token {
    let at = m.vacancy(fd).unwrap();
    m.insert(at, fd, events, data);
    at.token
}

/// Removes the key of `fd`, if any.
fn remove<T, const N: usize>(m: &mut KeyMap<T, N>, fd: RawFd) -> Option<T> {
    let (_, at) = m.lookup(fd).ok()?;
    m.remove(at).map(|key| key.data)
}

#[test]
fn insert_find_remove_reuse() {
    let mut m: KeyMap<u32, 4> = KeyMap::new();
    let t0 = insert(&mut m, 10, Events::READ, 1);
    assert_eq!(m.get(10).map(|k| k.data), Some(1));
    assert!(m.contains(10) && !m.contains(11));
    assert_eq!(
        m.lookup(10).map(|(k, at)| (k.events, at.token)),
        Ok((Events::READ, t0))
    );
    assert_eq!(remove(&mut m, 10), Some(1));
    assert_eq!(m.lookup(10).map(|_| ()), Err(Error::NotRegistered));
    assert_eq!(m.lookup(-1).map(|_| ()), Err(Error::InvalidFd));
    // The slot is reused with a new tag: the old token is stale.
    let t1 = insert(&mut m, 10, Events::WRITE, 2);
    let index = |t: Token| t.get() & ((1 << m.shift_for_tests()) - 1);
    assert_eq!(index(t1), index(t0));
    assert_ne!(t1, t0);
    assert!(m.slot_of(t0.get()).is_none());
    assert_eq!(m.slot_of(t1.get()).map(|(_, k)| k.data), Some(2));
}

#[test]
fn full_then_free() {
    let mut m: KeyMap<(), 3> = KeyMap::new();
    for fd in [7, 8, 9] {
        insert(&mut m, fd, Events::READ, ());
    }
    assert_eq!(m.vacancy(10).unwrap_err(), Error::Full);
    // A registered fd is reported as such before the table is found full.
    assert_eq!(m.vacancy(8).unwrap_err(), Error::AlreadyRegistered);
    assert_eq!(m.len(), 3);
    assert_eq!(remove(&mut m, 8), Some(()));
    insert(&mut m, 100, Events::READ, ());
    let mut fds: heapless::Vec<RawFd, 3> = m.iter().map(|k| k.fd).collect();
    fds.sort_unstable();
    assert_eq!(&fds[..], &[7, 9, 100]);
}

#[test]
fn colliding_fds_chain() {
    // With one bucket everything collides; removal from the middle, the
    // head and the tail of a chain must keep the others reachable.
    let mut m: KeyMap<i32, 1> = KeyMap::new();
    insert(&mut m, 1, Events::READ, 1);
    assert_eq!(m.vacancy(2).unwrap_err(), Error::Full);
    let mut m: KeyMap<i32, 8> = KeyMap::new();
    for fd in 0..8 {
        insert(&mut m, fd * 8, Events::READ, fd);
    }
    for fd in [3, 0, 7] {
        assert_eq!(remove(&mut m, fd * 8), Some(fd));
    }
    for fd in [1, 2, 4, 5, 6] {
        assert_eq!(m.get(fd * 8).map(|k| k.data), Some(fd));
    }
    assert_eq!(m.iter().len(), 5);
    // Freed slots are taken again, and every chain stays whole.
    for fd in [100, 101, 102] {
        insert(&mut m, fd, Events::WRITE, fd);
    }
    assert_eq!(m.vacancy(103).unwrap_err(), Error::Full);
    for fd in [8, 16, 32, 40, 48, 100, 101, 102] {
        assert_eq!(m.get(fd).map(|k| k.fd), Some(fd));
    }
}

/// Tokens name only their keys: past the slots, with another tag, or
/// reserved, they name nothing.
#[test]
fn tokens_beyond_the_slots_name_nothing() {
    // Three slots: two index bits, so index 3 is beyond them.
    let mut m: KeyMap<(), 3> = KeyMap::new();
    for fd in 0..3 {
        insert(&mut m, fd, Events::READ, ());
    }
    assert!(m.slot_of(Token::INTERNAL.get()).is_none());
    assert!(m.slot_of(Token::reserved(0).get()).is_none());
    // Index 3 is beyond the three slots; tag 0 is the first key's.
    assert!(m.slot_of(3).is_none());
    assert!(m.slot_of(u64::MAX >> 1).is_none());
    // The keys' own tokens (tag << 2 | index) do name them.
    for (raw, fd) in [(0, 0), (1 << 2 | 1, 1), (2 << 2 | 2, 2)] {
        assert_eq!(m.slot_of(raw).map(|(_, k)| k.fd), Some(fd));
    }
    // Two slots: one index bit, so every index names a slot, and only the
    // tag (and the reserved bit) tells a key's token from any other.
    let mut m: KeyMap<(), 2> = KeyMap::new();
    insert(&mut m, 0, Events::READ, ());
    insert(&mut m, 1, Events::READ, ());
    assert_eq!(m.slot_of(0).map(|(_, k)| k.fd), Some(0));
    assert_eq!(m.slot_of(1 << 1 | 1).map(|(_, k)| k.fd), Some(1));
    // Tag 1 at index 0, tag 0 at index 1: each slot's other tag.
    assert!(m.slot_of(1 << 1).is_none());
    assert!(m.slot_of(1).is_none());
    assert!(m.slot_of(Token::INTERNAL.get()).is_none());
    assert!(m.slot_of(Token::reserved(0).get()).is_none());
    assert!(m.slot_of(Token::reserved(1).get()).is_none());
    assert!(m.slot_of(u64::MAX >> 1).is_none());
}
