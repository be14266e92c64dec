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
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    /// The events this key is registered for.
    #[inline]
    #[must_use]
    pub fn events(&self) -> Events {
        self.events
    }

    /// The user data given at registration (or by a later `modify`).
    #[inline]
    #[must_use]
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
    #[must_use]
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
    #[must_use]
    pub fn fd(&self) -> RawFd {
        self.key.fd
    }

    /// The events this key is registered for.
    #[inline]
    #[must_use]
    pub fn events(&self) -> Events {
        self.key.events
    }

    /// The user data.
    #[inline]
    #[must_use]
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
    #[must_use]
    pub fn into_data_mut(self) -> &'a mut T {
        &mut self.key.data
    }
}

/// The opaque tag a backend stores with each kernel registration; the raw
/// value ([`get`](Self::get)) comes back with each readiness event.
///
/// A token made by the selector packs a slot index of the key table and a
/// tag that numbers the registration, so an event that was queued for a key
/// which has since been unregistered (and whose slot or fd number may be in
/// use again) is recognised as stale and never delivered (see
/// [`KeyMapIn`](crate::KeyMapIn) for how long that holds).
///
/// Only the selector makes tokens that name keys: there is no public
/// constructor for them, so no caller can register a file under another
/// key's token through a [`Backend`](crate::Backend) (see
/// [`SelectorIn::new`](crate::SelectorIn::new)). Anyone may make a
/// [`reserved`](Self::reserved) token, which never names a key: for a
/// backend's own registrations (a waker's, [`Token::INTERNAL`]) and for
/// tests of a backend on its own.
///
/// ```compile_fail
/// // A key's token cannot be made up outside the selector.
/// let forged = ioselect_core::Token(0);
/// ```
///
/// ```
/// use ioselect_core::Token;
/// let own = Token::reserved(7);
/// assert!(own.is_reserved() && Token::INTERNAL.is_reserved());
/// assert_ne!(own, Token::reserved(8));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Token(u64);

impl Token {
    /// The bit set in every [`reserved`](Self::reserved) token and in no
    /// token the selector makes for a key.
    const RESERVED: u64 = 1 << 63;

    /// The reserved token backends use for their own registrations (a
    /// waker's); the selector never delivers its events.
    pub const INTERNAL: Self = Self(u64::MAX);

    /// A token that never names a key, numbered `n` (only the low 63 bits of
    /// `n` count): the selector drops every event that carries it.
    #[inline]
    #[must_use]
    pub const fn reserved(n: u64) -> Self {
        Self(n | Self::RESERVED)
    }

    /// True for a [`reserved`](Self::reserved) token, which names no key.
    #[inline]
    #[must_use]
    pub const fn is_reserved(self) -> bool {
        Self::is_raw_reserved(self.0)
    }

    /// True when the raw value `raw` is that of a reserved token.
    #[inline]
    pub(crate) const fn is_raw_reserved(raw: u64) -> bool {
        raw & Self::RESERVED != 0
    }

    /// The raw value a backend stores in the kernel (epoll's `data`,
    /// kqueue's `udata`) and hands back from
    /// [`Backend::event`](crate::Backend::event), unchanged.
    #[inline]
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A key's token: the selector's alone. `raw` never has the reserved
    /// bit (the key table keeps tags below it).
    #[inline]
    pub(crate) const fn key(raw: u64) -> Self {
        Self(raw)
    }
}
