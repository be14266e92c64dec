//! The fixed-capacity key table: Python's `get_map()`.

use core::marker::PhantomData;

use crate::{DataError, Error, Events, KeyMut, RawFd, SelectorKey, Token};

/// A link to a slot: its index + 1, so that 0 ends a chain (bucket chain or
/// free list) and an empty slot is all zero bytes (an empty table is zeroed
/// memory, not a pattern to copy: that matters for flash on a
/// microcontroller).
type Link = u32;

/// The end of a chain.
const END: Link = 0;

/// The link to slot `index` (below `MAX_CAPACITY`, so it does not wrap).
#[inline(always)]
const fn link(index: u32) -> Link {
    index + 1
}

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
/// bytes, rounded up to the alignment of its `u64` token and of `T`.
pub struct Slot<T> {
    key: Option<SelectorKey<T>>,
    /// The token of the slot's current registration (or of its last one,
    /// while vacant): its index and tag. An event that carries another
    /// token, one queued for an earlier registration of this slot, is
    /// recognised as stale.
    token: u64,
    /// Occupied: the next slot in the same bucket. Vacant: the next free
    /// slot. A [`Link`]: `END` ends both.
    next: Link,
    /// The first slot of bucket number *this slot's index*, or `END`.
    head: Link,
}

impl<T> Slot<T> {
    /// An empty slot. `const`, for arrays in a `static`:
    /// `[const { Slot::new() }; 1024]`.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            key: None,
            token: 0,
            next: END,
            head: END,
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
        f.debug_struct("Slot")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Memory a key table can live in: `[Slot<T>; N]` (inline), `&mut [Slot<T>]`
/// and `&mut [Slot<T>; N]` (a `static` array, memory on another stack), and
/// with the `std` feature `Box<[Slot<T>]>` and `Vec<Slot<T>>`.
///
/// Sealed: implemented for exactly these types, each of which gives one
/// view of one slice, so the table can trust that its slots stay where they
/// are and keep their number. Nothing to implement:
///
/// ```compile_fail
/// use ioselect_core::{Slot, Storage};
/// // Two views that could disagree: refused, the trait is sealed.
/// struct Two { a: [Slot<u8>; 4], b: [Slot<u8>; 1] }
/// impl Storage<u8> for Two {}
/// ```
pub trait Storage<T>: sealed::Slots<T> {}

impl<T, S: sealed::Slots<T> + ?Sized> Storage<T> for S {}

mod sealed {
    use super::Slot;

    /// The one view of a [`Storage`](super::Storage): its slots.
    pub trait Slots<T> {
        /// The number of slots when the type fixes it (an array): the
        /// table's sizes are then constants the compiler folds in.
        const FIXED: Option<usize> = None;
        fn slots(&self) -> &[Slot<T>];
        fn slots_mut(&mut self) -> &mut [Slot<T>];
    }

    /// `Slots` for a type that derefs to `[Slot<T>]`, one view for both.
    macro_rules! slots {
        ($([$($generics:tt)*] $storage:ty => $fixed:expr;)*) => {$(
            impl<$($generics)*> Slots<T> for $storage {
                const FIXED: Option<usize> = $fixed;
                #[inline(always)]
                fn slots(&self) -> &[Slot<T>] {
                    &self[..]
                }
                #[inline(always)]
                fn slots_mut(&mut self) -> &mut [Slot<T>] {
                    &mut self[..]
                }
            }
        )*};
    }

    slots! {
        [T, const N: usize] [Slot<T>; N] => Some(N);
        [T, const N: usize] &mut [Slot<T>; N] => Some(N);
        [T] &mut [Slot<T>] => None;
    }

    #[cfg(feature = "std")]
    slots! {
        [T] std::boxed::Box<[Slot<T>]> => None;
        [T] std::vec::Vec<Slot<T>> => None;
    }
}

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
/// A token is a slot index and a tag. Tags come from a table-wide 64-bit
/// counter of registrations, of which a token keeps the low 63 − `b` bits,
/// where `b` is the number of bits of the highest slot index, capacity − 1
/// (the top bit marks [reserved](Token::reserved) tokens, `b` bits hold the
/// index). So a stale token can only name the key that took its slot if
/// exactly a multiple of 2<sup>63 − b</sup> registrations happened while the
/// stale event waited: for a table of 65,536 keys, 2<sup>47</sup>
/// (1.4 × 10<sup>14</sup>) registrations, four years at a million per
/// second, and an event waits at
/// most one batch (or, on epoll, for as long as an fd closed while
/// registered lives on in a `dup`: see [`Error::StaleRegistration`]).
///
/// Memory: `capacity * size_of::<Slot<T>>()` for the slots (inline, or
/// wherever the storage lives) plus 40 bytes of bookkeeping on 64-bit
/// targets.
pub struct KeyMapIn<T, S: Storage<T>> {
    slots: S,
    /// Usable slots: `slots.len()`, between 1 and `MAX_CAPACITY`.
    cap: u32,
    /// Slots below this index have been used; the rest are fresh.
    used: u32,
    /// First vacant slot below `used`, or `END`.
    free: Link,
    len: u32,
    /// Bits of a token that hold the slot index.
    shift: u32,
    /// `(1 << shift) - 1`: a token's index bits.
    index_mask: u64,
    /// The tag the next registration gets: the count of registrations.
    next_tag: u64,
    _data: PhantomData<T>,
}

/// The most slots a table may have: their links (index + 1) are `u32`s.
const MAX_CAPACITY: usize = u32::MAX as usize - 1;

/// The bits a slot index takes: those of the highest index, `cap - 1`
/// (none for one slot). Tokens keep the index below `1 << bits`, the
/// smallest power of two not below `cap`; when `cap` is a power of two (an
/// inline table of 64 or 1024 slots), every masked index is in bounds and the
/// compiler drops the bounds check of [`KeyMapIn::slot_of`] (callgrind: 2
/// instructions an event). A reserved token ([`Token::INTERNAL`], all ones)
/// may name a slot by its index bits, but never matches a slot's token: those
/// are stored without the reserved bit.
const fn index_bits(cap: u32) -> u32 {
    u32::BITS - cap.saturating_sub(1).leading_zeros()
}

/// The slot a new key goes to, which [`KeyMapIn::vacancy`] took off the
/// free list (or from the fresh slots): [`KeyMapIn::insert`] fills it, or
/// [`KeyMapIn::give_back`] returns it, before the table changes otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vacancy {
    index: u32,
    bucket: u32,
    /// It was a fresh slot (`used` counted it), not a freed one.
    fresh: bool,
    /// The token the key will have.
    pub(crate) token: Token,
}

/// Where a registered key is, as [`KeyMapIn::lookup`] found it; valid until
/// the table changes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found {
    index: u32,
    /// The link to the slot before it in its bucket's chain, or `END` at
    /// the head.
    prev: Link,
    bucket: u32,
    /// The key's token.
    pub(crate) token: Token,
}

impl<T, const N: usize> KeyMapIn<T, [Slot<T>; N]> {
    /// An empty inline table. `const`, so a selector can live in a `static`.
    ///
    /// # Panics
    /// Fails to compile (a `const` assertion) when `N` is 0 or not below
    /// `u32::MAX`.
    #[must_use]
    pub const fn new() -> Self {
        const {
            assert!(N > 0, "capacity N must be at least 1");
            assert!(N <= MAX_CAPACITY, "capacity N must be below u32::MAX");
        }
        // `N <= MAX_CAPACITY < u32::MAX`: the assertion above.
        #[allow(clippy::cast_possible_truncation)]
        Self::empty([const { Slot::new() }; N], N as u32)
    }
}

impl<T, const N: usize> Default for KeyMapIn<T, [Slot<T>; N]> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S: Storage<T>> KeyMapIn<T, S> {
    /// The table over `slots`, which are `cap` empty slots.
    const fn empty(slots: S, cap: u32) -> Self {
        Self {
            slots,
            cap,
            used: 0,
            free: END,
            len: 0,
            shift: index_bits(cap),
            index_mask: (1u64 << index_bits(cap)) - 1,
            next_tag: 0,
            _data: PhantomData,
        }
    }

    /// An empty table in `storage`, holding at most as many keys as it has
    /// slots. Slots that hold keys (storage taken from an earlier table) are
    /// emptied, dropping those keys.
    ///
    /// O(capacity) time and O(1) stack, whatever the capacity.
    ///
    /// # Errors
    /// [`Error::InvalidCapacity`] when `storage` has no slots (a
    /// `Vec::with_capacity(n)` is empty: see [`Slot::new`]) or more than
    /// `u32::MAX - 1`; the storage comes back in the error.
    pub fn with_storage(mut storage: S) -> Result<Self, DataError<S>> {
        let cap = match Self::capacity_of(&storage) {
            Ok(cap) => cap,
            Err(error) => {
                return Err(DataError {
                    error,
                    data: storage,
                });
            }
        };
        for slot in storage.slots_mut() {
            slot.key = None;
            slot.next = END;
            slot.head = END;
        }
        Ok(Self::empty(storage, cap))
    }

    /// The capacity a table in `storage` has, or [`Error::InvalidCapacity`].
    pub(crate) fn capacity_of(storage: &S) -> Result<u32, Error> {
        let n = storage.slots().len();
        match u32::try_from(n) {
            Ok(cap) if cap > 0 && n <= MAX_CAPACITY => Ok(cap),
            _ => Err(Error::InvalidCapacity),
        }
    }

    /// The capacity: a constant for array storage (checked to fit when the
    /// table was made), else the field.
    #[inline(always)]
    fn cap(&self) -> u32 {
        match S::FIXED {
            // `N < u32::MAX`: `new` and `with_storage` refuse larger ones.
            #[allow(clippy::cast_possible_truncation)]
            Some(n) => n as u32,
            None => self.cap,
        }
    }

    /// Bits of a token that hold the slot index (see [`cap`](Self::cap)).
    #[inline(always)]
    fn shift(&self) -> u32 {
        match S::FIXED {
            #[allow(clippy::cast_possible_truncation)]
            Some(n) => index_bits(n as u32),
            None => self.shift,
        }
    }

    /// A token's index bits (see [`cap`](Self::cap)).
    #[inline(always)]
    fn index_mask(&self) -> u64 {
        match S::FIXED {
            #[allow(clippy::cast_possible_truncation)]
            Some(n) => (1u64 << index_bits(n as u32)) - 1,
            None => self.index_mask,
        }
    }

    /// The number of registered keys.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when no key is registered.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most keys the table can hold.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.cap() as usize
    }

    /// True when `fd` has a key.
    #[inline]
    #[must_use]
    pub fn contains(&self, fd: RawFd) -> bool {
        self.find(fd).is_ok()
    }

    /// The key of `fd`, or `None` when it is not registered.
    #[inline]
    #[must_use]
    pub fn get(&self, fd: RawFd) -> Option<&SelectorKey<T>> {
        let (index, _, _) = self.find(fd).ok()?;
        self.slots.slots()[index as usize].key.as_ref()
    }

    /// All keys, in no particular order. This walks the table: O(capacity
    /// used so far), not a hot-path operation.
    pub fn iter(&self) -> Iter<'_, T> {
        Iter {
            slots: self.slots.slots()[..self.used as usize].iter(),
            left: self.len(),
        }
    }

    #[inline]
    fn bucket(&self, fd: RawFd) -> u32 {
        // Fibonacci hashing, reduced to 0..cap by multiply-shift: spreads both
        // the dense small numbers the kernel hands out and strided ids a
        // bare-metal application may choose. The cast keeps fd's bits.
        #[allow(clippy::cast_sign_loss)]
        let h = (fd as u32).wrapping_mul(0x9E37_79B9);
        // Below `cap`, so it fits.
        #[allow(clippy::cast_possible_truncation)]
        let bucket = ((u64::from(h) * u64::from(self.cap())) >> 32) as u32;
        bucket
    }

    /// The slot of `fd`'s key, the link to the slot before it in the chain
    /// (`END` at the head) and the bucket, or `Err(bucket)` when `fd` has
    /// no key.
    #[inline]
    fn find(&self, fd: RawFd) -> Result<(u32, u32, u32), u32> {
        let bucket = self.bucket(fd);
        let slots = self.slots.slots();
        let mut prev = END;
        let mut at = slots[bucket as usize].head;
        // `END - 1` wraps to an index no table has: the end of the chain and
        // the bounds check are one test.
        while let Some(slot) = slots.get(at.wrapping_sub(1) as usize) {
            match &slot.key {
                Some(key) if key.fd == fd => return Ok((at - 1, prev, bucket)),
                _ => {
                    prev = at;
                    at = slot.next;
                }
            }
        }
        Err(bucket)
    }

    #[inline]
    fn token(&self, index: u32, tag: u64) -> Token {
        Token::key((tag << self.shift()) | u64::from(index))
    }

    /// The slot index a raw token names, if that registration is the
    /// current one of a key. `None` for a stale token (key gone, slot
    /// reused) and for a [reserved](Token::reserved) one.
    #[inline]
    pub(crate) fn slot_of(&self, raw: u64) -> Option<(usize, &SelectorKey<T>)> {
        // The cast keeps the index bits: as many as `cap - 1` has.
        #[allow(clippy::cast_possible_truncation)]
        let index = (raw & self.index_mask()) as usize;
        // Fresh slots (at `used` and above) and vacant ones have no key.
        let slot = self.slots.slots().get(index)?;
        // Tags are stored masked below the reserved bit, so a reserved
        // token's tag never matches; a vacant slot keeps its last tag.
        if slot.token != raw {
            return None;
        }
        slot.key.as_ref().map(|key| (index, key))
    }

    /// The key in slot `index`, with only its data mutable.
    #[inline]
    pub(crate) fn key_mut_at(&mut self, index: usize) -> Option<KeyMut<'_, T>> {
        self.slots
            .slots_mut()
            .get_mut(index)?
            .key
            .as_mut()
            .map(KeyMut::new)
    }

    /// The key of `fd`, with only its data mutable.
    #[inline]
    pub(crate) fn get_mut(&mut self, fd: RawFd) -> Option<KeyMut<'_, T>> {
        let (index, _, _) = self.find(fd).ok()?;
        self.key_mut_at(index as usize)
    }

    /// The key of a registered `fd` and where it is, decided as Python's
    /// `_fileobj_lookup` + `_fd_to_key` do: a negative fd is invalid, not
    /// just unknown.
    #[inline]
    pub(crate) fn lookup(&mut self, fd: RawFd) -> Result<(&mut SelectorKey<T>, Found), Error> {
        if fd < 0 {
            return Err(Error::InvalidFd);
        }
        let (index, prev, bucket) = self.find(fd).map_err(|_| Error::NotRegistered)?;
        let slot = &self.slots.slots()[index as usize];
        let token = Token::key(slot.token);
        let found = Found {
            index,
            prev,
            bucket,
            token,
        };
        match self.slots.slots_mut()[index as usize].key.as_mut() {
            Some(key) => Ok((key, found)),
            None => Err(Error::NotRegistered),
        }
    }

    /// The keys and their tokens, for rebuilding a kernel interest set.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&SelectorKey<T>, Token)> + '_ {
        self.slots.slots()[..self.used as usize]
            .iter()
            .filter_map(|slot| Some((slot.key.as_ref()?, Token::key(slot.token))))
    }

    /// Takes the slot a key for `fd` goes to and says the token it gets, or
    /// why it cannot be registered ([`Error::AlreadyRegistered`],
    /// [`Error::Full`], and then nothing changed). The slot is
    /// [inserted](Self::insert) or [given back](Self::give_back) next.
    #[inline]
    pub(crate) fn vacancy(&mut self, fd: RawFd) -> Result<Vacancy, Error> {
        let Err(bucket) = self.find(fd) else {
            return Err(Error::AlreadyRegistered);
        };
        let slots = self.slots.slots();
        let (index, fresh) = if let Some(slot) = slots.get(self.free.wrapping_sub(1) as usize) {
            let index = self.free - 1;
            self.free = slot.next;
            (index, false)
        } else if self.used < self.cap() {
            self.used += 1;
            (self.used - 1, true)
        } else {
            return Err(Error::Full);
        };
        let tag = self.next_tag & (u64::MAX >> (self.shift() + 1));
        Ok(Vacancy {
            index,
            bucket,
            fresh,
            token: self.token(index, tag),
        })
    }

    /// Returns the slot `vacancy` took (the kernel refused the key).
    #[cold]
    pub(crate) fn give_back(&mut self, at: Vacancy) {
        if at.fresh {
            self.used -= 1;
        } else {
            // The slot's `next` still links the rest of the free list.
            self.free = link(at.index);
        }
    }

    /// Enters the key of `fd` in the slot [`vacancy`](Self::vacancy) took.
    #[inline]
    pub(crate) fn insert(&mut self, at: Vacancy, fd: RawFd, events: Events, data: T) {
        let slots = self.slots.slots_mut();
        let index = at.index as usize;
        let head = slots[at.bucket as usize].head;
        let slot = &mut slots[index];
        debug_assert!(slot.key.is_none());
        slot.key = Some(SelectorKey { fd, events, data });
        slot.token = at.token.get();
        slot.next = head;
        slots[at.bucket as usize].head = link(at.index);
        self.next_tag = self.next_tag.wrapping_add(1);
        self.len += 1;
    }

    /// Removes the key [`lookup`](Self::lookup) found, the table unchanged
    /// since; `None` only if it was not there after all.
    #[inline]
    pub(crate) fn remove(&mut self, at: Found) -> Option<SelectorKey<T>> {
        let slots = self.slots.slots_mut();
        let index = at.index as usize;
        let key = slots[index].key.take()?;
        let next = slots[index].next;
        if at.prev == END {
            slots[at.bucket as usize].head = next;
        } else {
            slots[(at.prev - 1) as usize].next = next;
        }
        slots[index].next = self.free;
        self.free = link(at.index);
        self.len -= 1;
        Some(key)
    }

    /// Removes every key (dropping their data). O(capacity used so far).
    pub(crate) fn clear(&mut self) {
        let used = self.used as usize;
        for slot in &mut self.slots.slots_mut()[..used] {
            slot.key = None;
            slot.next = END;
            slot.head = END;
        }
        self.used = 0;
        self.free = END;
        self.len = 0;
    }

    /// The number of index bits of this table's tokens.
    #[cfg(test)]
    pub(crate) fn shift_for_tests(&self) -> u32 {
        self.shift
    }

    /// Test hook: sets the count of registrations, which tags them, so tests
    /// can start it near its wraps.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn set_next_tag(&mut self, tag: u64) {
        self.next_tag = tag;
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
