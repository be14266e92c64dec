//! `SelectorKey` and `Token`.

use crate::{Events, RawFd};

/// What the selector knows about one registered file descriptor: Python's
/// `SelectorKey(fileobj, fd, events, data)`.
///
/// The fd and events can only be changed through the selector
/// ([`modify`](crate::Selector::modify)), so they always match what the kernel
/// watches; the data is yours to read and change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SelectorKey<T> {
    pub(crate) fd: RawFd,
    pub(crate) events: Events,
    pub(crate) data: T,
}

impl<T> SelectorKey<T> {
    /// The registered file descriptor.
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The events this key is registered for.
    #[inline]
    pub fn events(&self) -> Events {
        self.events
    }

    /// The user data given at registration (or by a later `modify`).
    #[inline]
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Mutable access to the user data.
    #[inline]
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.data
    }

    /// Consumes the key, returning its data.
    #[inline]
    pub fn into_data(self) -> T {
        self.data
    }
}

/// The opaque tag a backend stores with each kernel registration and hands
/// back with each readiness event.
///
/// It packs a slot index of the key table and that slot's generation, so an
/// event that was queued for a key which has since been unregistered (and
/// whose slot or fd number may be in use again) is recognised as stale and
/// never delivered. Backends store and return it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Token(pub u64);

impl Token {
    /// A token that never names a key. Backends use it for their own internal
    /// registrations (a waker, say); the selector skips its events.
    pub const INTERNAL: Self = Self(u64::MAX);

    #[inline]
    pub(crate) const fn new(index: u32, generation: u32) -> Self {
        Self(((generation as u64) << 32) | index as u64)
    }

    #[inline]
    pub(crate) const fn index(self) -> u32 {
        self.0 as u32
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}
