//! The fixed-capacity key table: Python's `get_map()`.

use core::marker::PhantomData;

use crate::{Error, Events, KeyMut, RawFd, SelectorKey, Token};

/// End of a chain (bucket chain or free list).
const NIL: u32 = u32::MAX;

/// One entry of a key table's storage: room for one key, and the head of
/// one hash bucket.
///
/// A table of capacity `n` is `n` slots. They live inline in a
/// [`KeyMap<T, N>`] (and so in a [`Selector<B, T, N>`](crate::Selector)), or in
/// memory the application provides ([`KeyMapIn`] over `&mut [Slot<T>]`,
/// `Box<[Slot<T>]>`, a `static` array, …), so a table of any size can be
/// built without ever passing through the stack; see
/// [`SelectorIn::with_storage`](crate::SelectorIn::with_storage).
///
/// The only way to make one is [`Slot::new`] (or [`Slot::EMPTY`]): an empty
/// slot. `size_of::<Slot<T>>()` is `size_of::<Option<SelectorKey<T>>>() + 16`
/// bytes, rounded up to the alignment of `T`.
pub struct Slot<T> {
    key: Option<SelectorKey<T>>,
    /// The tag of the slot's current registration (or of its last one, while
    /// vacant), masked to the bits a token has for it: tokens carry it, so that an event queued for an earlier
    /// registration of this slot is recognised as stale.
    tag: u64,
    /// Occupied: the next slot in the same bucket. Vacant: the next free
    /// slot. `NIL` ends both.
    next: u32,
    /// The first slot of bucket number *this slot's index*, or `NIL`.
    head: u32,
}

impl<T> Slot<T> {
    /// An empty slot. `const`, for arrays in a `static`:
    /// `[const { Slot::new() }; 1024]`.
    #[inline]
    pub const fn new() -> Self {
        Self {
            key: None,
            tag: 0,
            next: NIL,
            head: NIL,
        }
    }

    /// An empty slot, as a constant: `[Slot::EMPTY; 1024]`.
    pub const EMPTY: Self = Self::new();
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Slot").field("key", &self.key).finish()
    }
}

/// Memory a key table can live in: anything that is a slice of [`Slot`]s,
/// mutably: `[Slot<T>; N]` (inline), `&mut [Slot<T>]`, `Box<[Slot<T>]>`,
/// `Vec<Slot<T>>`. Implemented for every such type; nothing to implement.
pub trait Storage<T>: AsRef<[Slot<T>]> + AsMut<[Slot<T>]> {}

impl<T, S: AsRef<[Slot<T>]> + AsMut<[Slot<T>]> + ?Sized> Storage<T> for S {}

/// The selector's key table: at most `N` keys, inline. See [`KeyMapIn`].
pub type KeyMap<T, const N: usize> = KeyMapIn<T, [Slot<T>; N]>;

/// The selector's key table over storage `S`: looked up by fd (hashing) or by
/// [`Token`] (direct index), with no heap.
///
/// `register`, `unregister`, `modify` and lookups are expected O(1): a chained
/// hash table with as many buckets as slots, whose slot indices never move,
/// so a token stays valid for as long as its key is registered. The table is
/// the read-only map view that [`Selector::map`](crate::Selector::map)
/// returns (Python's `get_map()`).
///
/// # Tokens never name a later key
/// A token is a slot index and a tag from a table-wide 64-bit counter that
/// counts registrations; its top `b` bits, where `b` is the number of bits
/// of the capacity, are dropped to make room for the index. So a stale token
/// can only name the key that took its slot if exactly a multiple of
/// 2<sup>64 − b</sup> registrations happened while the stale event waited:
/// for a table of 65,536 keys, 2<sup>47</sup> (1.4 × 10<sup>14</sup>)
/// registrations, four and a half years at a million per second, and an
/// event waits at most one batch (or, on epoll, for as long as an fd closed
/// while registered lives on in a `dup`: see
/// [`Error::StaleRegistration`]).
///
/// Memory: `capacity * size_of::<Slot<T>>()` for the slots (inline, or
/// wherever the storage lives) plus 40 bytes of bookkeeping on 64-bit
/// targets.
pub struct KeyMapIn<T, S: Storage<T>> {
    slots: S,
    /// Usable slots: `slots.len()`, at most `NIL - 1`.
    cap: u32,
    /// Slots below this index have been used; the rest are fresh.
    used: u32,
    /// First vacant slot below `used`, or `NIL`.
    free: u32,
    len: u32,
    /// Bits of a token that hold the slot index.
    shift: u32,
    /// `(1 << shift) - 1`: a token's index bits.
    index_mask: u64,
    /// The tag of the next registration (a registration counter).
    serial: u64,
    _data: PhantomData<T>,
}

/// The number of bits of `cap`: tokens keep the index below `1 << bits`, and
/// `1 << bits > cap`, so [`Token::INTERNAL`] (all ones) never names a slot.
const fn index_bits(cap: u32) -> u32 {
    u32::BITS - cap.leading_zeros()
}

impl<T, const N: usize> KeyMapIn<T, [Slot<T>; N]> {
    /// An empty inline table. `const`, so a selector can live in a `static`.
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
            slots: [const { Slot::new() }; N],
            cap: N as u32,
            used: 0,
            free: NIL,
            len: 0,
            shift: index_bits(N as u32),
            index_mask: (1u64 << index_bits(N as u32)) - 1,
            serial: 0,
            _data: PhantomData,
        }
    }
}

impl<T, const N: usize> Default for KeyMapIn<T, [Slot<T>; N]> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: Storage<T>> KeyMapIn<T, S> {
    /// An empty table in `storage`, holding at most `storage.as_ref().len()`
    /// keys (at most `u32::MAX - 1`). Slots that hold keys (storage taken
    /// from an earlier table) are emptied, dropping those keys.
    ///
    /// O(capacity) time and O(1) stack, whatever the capacity.
    pub fn with_storage(mut storage: S) -> Self {
        let slots = storage.as_mut();
        let cap = u32::try_from(slots.len()).unwrap_or(NIL - 1).min(NIL - 1);
        for slot in slots.iter_mut() {
            slot.key = None;
            slot.next = NIL;
            slot.head = NIL;
        }
        Self {
            slots: storage,
            cap,
            used: 0,
            free: NIL,
            len: 0,
            shift: index_bits(cap),
            index_mask: (1u64 << index_bits(cap)) - 1,
            serial: 0,
            _data: PhantomData,
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

    /// The most keys the table can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap as usize
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
        self.slots.as_ref()[index as usize].key.as_ref()
    }

    /// All keys, in no particular order. This walks the table: O(capacity
    /// used so far), not a hot-path operation.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            slots: self.slots.as_ref()[..self.used as usize].iter(),
            left: self.len(),
        }
    }

    #[inline]
    fn bucket(&self, fd: RawFd) -> usize {
        // Fibonacci hashing, reduced to 0..cap by multiply-shift: spreads both
        // the dense small numbers the kernel hands out and strided ids a
        // bare-metal application may choose.
        let h = (fd as u32).wrapping_mul(0x9E37_79B9);
        ((u64::from(h) * u64::from(self.cap)) >> 32) as usize
    }

    #[inline]
    fn find(&self, fd: RawFd) -> Option<u32> {
        let slots = self.slots.as_ref();
        let mut i = slots.get(self.bucket(fd))?.head;
        while i != NIL {
            let slot = &slots[i as usize];
            match &slot.key {
                Some(key) if key.fd == fd => return Some(i),
                _ => i = slot.next,
            }
        }
        None
    }

    #[inline]
    fn token(&self, index: u32, tag: u64) -> Token {
        Token((tag << self.shift) | u64::from(index))
    }

    /// The slot a token names, if that registration is still the current one.
    #[inline]
    pub(crate) fn slot_of(&self, token: Token) -> Option<(usize, &SelectorKey<T>)> {
        let index = (token.0 & self.index_mask) as usize;
        // Fresh slots (at `used` and above) and vacant ones have no key.
        let slot = self.slots.as_ref().get(index)?;
        // Tags are stored masked; a vacant slot keeps its last tag.
        if slot.tag != token.0 >> self.shift {
            return None;
        }
        slot.key.as_ref().map(|key| (index, key))
    }

    /// The key in slot `index`, with only its data mutable.
    #[inline]
    pub(crate) fn key_mut_at(&mut self, index: usize) -> Option<KeyMut<'_, T>> {
        self.slots
            .as_mut()
            .get_mut(index)?
            .key
            .as_mut()
            .map(KeyMut::new)
    }

    /// The key a token names, if that registration is still the current one.
    #[cfg(test)]
    pub(crate) fn by_token(&self, token: Token) -> Option<&SelectorKey<T>> {
        self.slot_of(token).map(|(_, key)| key)
    }

    /// Mutable [`by_token`](Self::by_token): only the data is mutable.
    #[cfg(test)]
    pub(crate) fn by_token_mut(&mut self, token: Token) -> Option<KeyMut<'_, T>> {
        let (index, _) = self.slot_of(token)?;
        self.key_mut_at(index)
    }

    /// The key of `fd`, with only its data mutable.
    #[inline]
    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<KeyMut<'_, T>> {
        let index = self.find(fd)?;
        self.slots.as_mut()[index as usize]
            .key
            .as_mut()
            .map(KeyMut::new)
    }

    /// The key of a registered `fd` and its token, decided as Python's
    /// `_fileobj_lookup` + `_fd_to_key` do: a negative fd is invalid, not
    /// just unknown.
    #[inline]
    pub(crate) fn lookup(&mut self, fd: RawFd) -> Result<(&mut SelectorKey<T>, Token), Error> {
        if fd < 0 {
            return Err(Error::InvalidFd);
        }
        let index = self.find(fd).ok_or(Error::NotRegistered)?;
        let tag = self.slots.as_ref()[index as usize].tag;
        let token = self.token(index, tag);
        match self.slots.as_mut()[index as usize].key.as_mut() {
            Some(key) => Ok((key, token)),
            None => Err(Error::NotRegistered),
        }
    }

    /// The keys and their tokens, for rebuilding a kernel interest set.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&SelectorKey<T>, Token)> + '_ {
        self.slots.as_ref()[..self.used as usize]
            .iter()
            .enumerate()
            .filter_map(move |(i, slot)| {
                let key = slot.key.as_ref()?;
                Some((key, self.token(i as u32, slot.tag)))
            })
    }

    /// The token the next `insert` will use, or `None` when the table is full.
    /// Changes nothing.
    #[inline]
    pub(crate) fn vacant_token(&self) -> Option<Token> {
        let index = if self.free != NIL {
            self.free
        } else if self.used < self.cap {
            self.used
        } else {
            return None;
        };
        Some(self.token(index, self.serial & (u64::MAX >> self.shift)))
    }

    /// Inserts a key for an fd that is not registered, at the slot
    /// `vacant_token` named. The caller checked both.
    #[inline]
    pub(crate) fn insert(&mut self, fd: RawFd, events: Events, data: T) -> Result<Token, T> {
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.slots.as_ref()[index as usize].next;
            index
        } else if self.used < self.cap {
            self.used += 1;
            self.used - 1
        } else {
            return Err(data);
        };
        let bucket = self.bucket(fd);
        let tag = self.serial & (u64::MAX >> self.shift);
        self.serial = self.serial.wrapping_add(1);
        let slots = self.slots.as_mut();
        let head = slots[bucket].head;
        let slot = &mut slots[index as usize];
        slot.key = Some(SelectorKey { fd, events, data });
        slot.tag = tag;
        slot.next = head;
        slots[bucket].head = index;
        self.len += 1;
        Ok(self.token(index, tag))
    }

    /// Removes the key of `fd`, if any.
    #[inline]
    pub(crate) fn remove(&mut self, fd: RawFd) -> Option<SelectorKey<T>> {
        let bucket = self.bucket(fd);
        let free = self.free;
        let slots = self.slots.as_mut();
        let mut prev = NIL;
        let mut i = slots.get(bucket)?.head;
        while i != NIL {
            let slot = &slots[i as usize];
            let next = slot.next;
            if slot.key.as_ref().is_some_and(|k| k.fd == fd) {
                if prev == NIL {
                    slots[bucket].head = next;
                } else {
                    slots[prev as usize].next = next;
                }
                let slot = &mut slots[i as usize];
                slot.next = free;
                let key = slot.key.take();
                self.free = i;
                self.len -= 1;
                return key;
            }
            prev = i;
            i = next;
        }
        None
    }

    /// Removes every key (dropping their data). O(capacity used so far).
    pub(crate) fn clear(&mut self) {
        let used = self.used as usize;
        for slot in &mut self.slots.as_mut()[..used] {
            slot.key = None;
            slot.next = NIL;
            slot.head = NIL;
        }
        self.used = 0;
        self.free = NIL;
        self.len = 0;
    }

    /// Test hook: the tag counter, so tests can start it near its wrap.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn set_serial(&mut self, serial: u64) {
        self.serial = serial;
    }
}

impl<T, S: Storage<T>> Drop for KeyMapIn<T, S> {
    /// Drops the keys' data even when the storage is borrowed and outlives
    /// the table.
    fn drop(&mut self) {
        if core::mem::needs_drop::<T>() {
            self.clear();
        }
    }
}

impl<T: core::fmt::Debug, S: Storage<T>> core::fmt::Debug for KeyMapIn<T, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|k| (k.fd, k)))
            .finish()
    }
}

impl<'a, T, S: Storage<T>> IntoIterator for &'a KeyMapIn<T, S> {
    type Item = &'a SelectorKey<T>;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the keys of a [`KeyMapIn`].
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
        let index = |t: Token| t.0 & ((1 << m.shift) - 1);
        assert_eq!(index(t1), index(t0));
        assert_ne!(t1, t0);
        assert!(m.by_token_mut(t0).is_none());
        assert_eq!(m.by_token_mut(t1).map(|k| *k.data()), Some(2));
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
        assert!(m.by_token_mut(Token(1)).is_none());
    }
}
