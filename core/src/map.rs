//! The fixed-capacity key table: Python's `get_map()`.

use heapless::Vec;

use crate::{Error, Events, RawFd, SelectorKey, Token};

/// End of a chain (bucket chain or free list).
const NIL: u32 = u32::MAX;

struct Slot<T> {
    key: Option<SelectorKey<T>>,
    /// Bumped every time the slot is vacated, so old tokens go stale.
    generation: u32,
    /// Occupied: next slot in the same bucket. Vacant: next free slot.
    next: u32,
}

/// The selector's key table: at most `N` keys, looked up by fd (hashing) or by
/// [`Token`] (direct index), with no heap.
///
/// `register`, `unregister`, `modify` and lookups are expected O(1): the table
/// is a chained hash table with `N` buckets for at most `N` keys, and a slab of
/// `N` slots whose indices never move, so a token stays valid for as long as
/// its key is registered. The table is the read-only map view that
/// [`Selector::map`](crate::Selector::map) returns (Python's `get_map()`).
///
/// Memory: `N * (size_of::<SelectorKey<T>>() + 12)` bytes, roughly, inline.
pub struct KeyMap<T, const N: usize> {
    slots: Vec<Slot<T>, N>,
    /// Bucket → first slot of its chain.
    heads: [u32; N],
    /// First vacant slot below `slots.len()`, or `NIL`.
    free: u32,
    len: u32,
}

impl<T, const N: usize> KeyMap<T, N> {
    /// An empty table. `const`, so a selector can live in a `static`.
    ///
    /// # Panics
    /// Fails to compile (a `const` assertion) when `N` is 0 or not below
    /// `u32::MAX`.
    pub const fn new() -> Self {
        const {
            assert!(N > 0, "capacity N must be at least 1");
            assert!(N < u32::MAX as usize, "capacity N must be below u32::MAX");
        }
        Self {
            slots: Vec::new(),
            heads: [NIL; N],
            free: NIL,
            len: 0,
        }
    }

    /// The number of registered keys.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no key is registered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most keys the table can hold: `N`.
    #[inline]
    pub const fn capacity(&self) -> usize {
        N
    }

    /// True when `fd` has a key.
    #[inline]
    pub fn contains(&self, fd: RawFd) -> bool {
        self.find(fd).is_some()
    }

    /// The key of `fd`, or `None` when it is not registered.
    #[inline]
    pub fn get(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        let index = self.find(fd)?;
        self.slots[index as usize].key.as_ref()
    }

    /// All keys, in no particular order. This walks the table: O(capacity
    /// used so far), not a hot-path operation.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            slots: self.slots.iter(),
            left: self.len(),
        }
    }

    #[inline]
    fn bucket(fd: RawFd) -> usize {
        // Fibonacci hashing, reduced to 0..N by multiply-shift: spreads both
        // the dense small numbers the kernel hands out and strided ids a
        // bare-metal application may choose.
        let h = (fd as u32).wrapping_mul(0x9E37_79B9);
        ((u64::from(h) * N as u64) >> 32) as usize
    }

    #[inline]
    fn find(&self, fd: RawFd) -> Option<u32> {
        let mut i = self.heads[Self::bucket(fd)];
        while i != NIL {
            let slot = &self.slots[i as usize];
            match &slot.key {
                Some(key) if key.fd == fd => return Some(i),
                _ => i = slot.next,
            }
        }
        None
    }

    /// The key a token names, if that registration is still the current one.
    #[inline]
    pub(crate) fn by_token(&self, token: Token) -> Option<&SelectorKey<T>> {
        let slot = self.slots.get(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.key.as_ref()
    }

    /// Mutable [`by_token`](Self::by_token).
    #[inline]
    pub(crate) fn by_token_mut(&mut self, token: Token) -> Option<&mut SelectorKey<T>> {
        let slot = self.slots.get_mut(token.index() as usize)?;
        if slot.generation != token.generation() {
            return None;
        }
        slot.key.as_mut()
    }

    /// The key of `fd` and its token.
    #[inline]
    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<(&mut SelectorKey<T>, Token)> {
        let index = self.find(fd)?;
        let slot = &mut self.slots[index as usize];
        let token = Token::new(index, slot.generation);
        slot.key.as_mut().map(|key| (key, token))
    }

    /// The key of a registered `fd` and its token, decided as Python's
    /// `_fileobj_lookup` + `_fd_to_key` do: a negative fd is invalid, not
    /// just unknown.
    #[inline]
    pub(crate) fn lookup(&mut self, fd: RawFd) -> Result<(&mut SelectorKey<T>, Token), Error> {
        if fd < 0 {
            return Err(Error::InvalidFd);
        }
        self.get_mut(fd).ok_or(Error::NotRegistered)
    }

    /// The token the next `insert` will use, or `None` when the table is full.
    /// Changes nothing.
    #[inline]
    pub(crate) fn vacant_token(&self) -> Option<Token> {
        if self.free != NIL {
            Some(Token::new(
                self.free,
                self.slots[self.free as usize].generation,
            ))
        } else if !self.slots.is_full() {
            // `slots.len() < N < u32::MAX`: fits.
            Some(Token::new(self.slots.len() as u32, 0))
        } else {
            None
        }
    }

    /// Inserts a key for an fd that is not registered, at the slot
    /// `vacant_token` named. The caller checked both.
    #[inline]
    pub(crate) fn insert(&mut self, fd: RawFd, events: Events, data: T) -> Result<Token, T> {
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.slots[index as usize].next;
            index
        } else {
            // `slots.len() < N < u32::MAX`: fits.
            let index = self.slots.len() as u32;
            if self
                .slots
                .push(Slot {
                    key: None,
                    generation: 0,
                    next: NIL,
                })
                .is_err()
            {
                return Err(data);
            }
            index
        };
        let bucket = Self::bucket(fd);
        let slot = &mut self.slots[index as usize];
        slot.key = Some(SelectorKey { fd, events, data });
        slot.next = self.heads[bucket];
        self.heads[bucket] = index;
        self.len += 1;
        Ok(Token::new(index, slot.generation))
    }

    /// Removes the key of `fd`, if any.
    #[inline]
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<SelectorKey<T>> {
        let bucket = Self::bucket(fd);
        let mut prev = NIL;
        let mut i = self.heads[bucket];
        while i != NIL {
            let slot = &self.slots[i as usize];
            let next = slot.next;
            if slot.key.as_ref().is_some_and(|k| k.fd == fd) {
                if prev == NIL {
                    self.heads[bucket] = next;
                } else {
                    self.slots[prev as usize].next = next;
                }
                let slot = &mut self.slots[i as usize];
                slot.generation = slot.generation.wrapping_add(1);
                slot.next = self.free;
                self.free = i;
                self.len -= 1;
                return slot.key.take();
            }
            prev = i;
            i = next;
        }
        None
    }
}

impl<T, const N: usize> Default for KeyMap<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: core::fmt::Debug, const N: usize> core::fmt::Debug for KeyMap<T, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|k| (k.fd, k)))
            .finish()
    }
}

impl<'a, T, const N: usize> IntoIterator for &'a KeyMap<T, N> {
    type Item = &'a SelectorKey<T>;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the keys of a [`KeyMap`].
pub struct Iter<'a, T> {
    slots: core::slice::Iter<'a, Slot<T>>,
    left: usize,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a SelectorKey<T>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let key = self.slots.by_ref().find_map(|s| s.key.as_ref())?;
        self.left -= 1;
        Some(key)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_find_remove_reuse() {
        let mut m: KeyMap<u32, 4> = KeyMap::new();
        let t0 = m.vacant_token().unwrap();
        assert_eq!(m.insert(10, Events::READ, 1).ok(), Some(t0));
        assert_eq!(m.get(10).map(|k| k.data), Some(1));
        assert!(m.contains(10) && !m.contains(11));
        let key = m.remove(10).unwrap();
        assert_eq!((key.fd, key.events, key.data), (10, Events::READ, 1));
        assert!(m.remove(10).is_none());
        // The slot is reused with a new generation: the old token is stale.
        let t1 = m.insert(10, Events::WRITE, 2).ok().unwrap();
        assert_eq!(t1.index(), t0.index());
        assert_ne!(t1, t0);
        assert!(m.by_token_mut(t0).is_none());
        assert_eq!(m.by_token_mut(t1).map(|k| k.data), Some(2));
    }

    #[test]
    fn full_then_free() {
        let mut m: KeyMap<(), 3> = KeyMap::new();
        for fd in [7, 8, 9] {
            assert!(m.vacant_token().is_some());
            m.insert(fd, Events::READ, ()).ok().unwrap();
        }
        assert!(m.vacant_token().is_none());
        assert_eq!(m.len(), 3);
        m.remove(8).unwrap();
        assert!(m.vacant_token().is_some());
        m.insert(100, Events::READ, ()).ok().unwrap();
        let mut fds: heapless::Vec<RawFd, 3> = m.iter().map(|k| k.fd).collect();
        fds.sort_unstable();
        assert_eq!(&fds[..], &[7, 9, 100]);
    }

    #[test]
    fn colliding_fds_chain() {
        // With one bucket everything collides; removal from the middle, the
        // head and the tail of a chain must keep the others reachable.
        let mut m: KeyMap<i32, 1> = KeyMap::new();
        m.insert(1, Events::READ, 1).ok().unwrap();
        assert!(m.vacant_token().is_none());
        let mut m: KeyMap<i32, 8> = KeyMap::new();
        for fd in 0..8 {
            m.insert(fd * 8, Events::READ, fd).ok().unwrap();
        }
        for fd in [3, 0, 7] {
            assert_eq!(m.remove(fd * 8).map(|k| k.data), Some(fd));
        }
        for fd in [1, 2, 4, 5, 6] {
            assert_eq!(m.get(fd * 8).map(|k| k.data), Some(fd));
        }
        assert_eq!(m.iter().len(), 5);
    }

    #[test]
    fn stale_token_beyond_slots() {
        let mut m: KeyMap<(), 2> = KeyMap::new();
        assert!(m.by_token_mut(Token::INTERNAL).is_none());
        assert!(m.by_token_mut(Token::new(1, 0)).is_none());
    }
}
