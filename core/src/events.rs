//! The event mask: what a key waits for, and what `select` reports.

bitflags::bitflags! {
    /// A set of I/O events: what a key is registered for, and what
    /// [`Selector::select`](crate::Selector::select) reports ready.
    ///
    /// The bit values are Python's `selectors.EVENT_READ` (1) and
    /// `selectors.EVENT_WRITE` (2).
    ///
    /// A mask built with [`Events::from_bits_retain`] may carry bits that are
    /// not defined here; registering or modifying with such a mask, or with an
    /// empty one, fails with [`Error::InvalidEvents`](crate::Error::InvalidEvents).
    ///
    /// ```
    /// use ioselect_core::Events;
    /// let both = Events::READ | Events::WRITE;
    /// assert_eq!(both.bits(), 3);
    /// assert!(both.contains(Events::WRITE));
    /// assert!(!Events::from_bits_retain(4).is_valid());
    /// ```
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub struct Events: u8 {
        /// The file descriptor is readable (or at end of file, or in error).
        const READ = 1;
        /// The file descriptor is writable (or in error).
        const WRITE = 2;
    }
}

impl Events {
    /// True when the mask is non-empty and holds only [`READ`](Self::READ) and
    /// [`WRITE`](Self::WRITE): the masks that `register` and `modify` accept.
    #[inline]
    #[must_use]
    pub const fn is_valid(self) -> bool {
        !self.is_empty() && Self::all().contains(self)
    }
}
