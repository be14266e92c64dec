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

/// A registered key as [`Selector::next_ready`](crate::Selector::next_ready)
/// and [`Selector::get_key_mut`](crate::Selector::get_key_mut) hand it out:
/// the fd and events to read, the data to read and change.
///
/// Nothing else can change through it: the key cannot be replaced or moved,
/// so the table always agrees with the kernel.
///
/// ```
/// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
/// # static R: SoftReadiness<8> = SoftReadiness::new();
/// # let mut sel: Selector<SoftBackend<'static, 8>, u32, 4> = Selector::new(SoftBackend::new(&R));
/// sel.register(1, Events::READ, 1)?;
/// *sel.get_key_mut(1).unwrap().data_mut() = 10;
/// assert_eq!(sel.get_key(1).map(|k| *k.data()), Some(10));
/// # Ok::<(), ioselect_core::Error>(())
/// ```
///
/// Overwriting a key with another one does not compile:
///
/// ```compile_fail
/// # use ioselect_core::{Events, Selector, SoftBackend, SoftReadiness};
/// # static R: SoftReadiness<8> = SoftReadiness::new();
/// # let mut sel: Selector<SoftBackend<'static, 8>, u32, 4> = Selector::new(SoftBackend::new(&R));
/// sel.register(1, Events::READ, 1)?;
/// sel.register(2, Events::READ, 2)?;
/// let two = sel.get_key(2).unwrap().clone();
/// *sel.get_key_mut(1).unwrap() = two;
/// # Ok::<(), ioselect_core::Error>(())
/// ```
#[derive(Debug)]
pub struct KeyMut<'a, T> {
    // Private: only the accessors below reach the key, and none of them
    // can replace it or change its fd or events.
    key: &'a mut SelectorKey<T>,
}

impl<'a, T> KeyMut<'a, T> {
    #[inline]
    pub(crate) fn new(key: &'a mut SelectorKey<T>) -> Self {
        Self { key }
    }

    /// The registered file descriptor.
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.key.fd
    }

    /// The events this key is registered for.
    #[inline]
    pub fn events(&self) -> Events {
        self.key.events
    }

    /// The user data.
    #[inline]
    pub fn data(&self) -> &T {
        &self.key.data
    }

    /// Mutable access to the user data.
    #[inline]
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.key.data
    }

    /// The mutable data, for as long as the key was borrowed.
    #[inline]
    pub fn into_data_mut(self) -> &'a mut T {
        &mut self.key.data
    }
}

/// The opaque tag a backend stores with each kernel registration and hands
/// back with each readiness event.
///
/// It packs a slot index of the key table and a tag that numbers the
/// registration, so an event that was queued for a key which has since been
/// unregistered (and whose slot or fd number may be in use again) is
/// recognised as stale and never delivered (see
/// [`KeyMapIn`](crate::KeyMapIn) for how long that holds). Backends store and
/// return it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Token(pub u64);

impl Token {
    /// A token that never names a key. Backends use it for their own internal
    /// registrations (a waker, say); the selector skips its events.
    pub const INTERNAL: Self = Self(u64::MAX);
}
