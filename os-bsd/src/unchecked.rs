//! What the compiler cannot check: this crate's only `unsafe` code, each
//! claim with the argument that makes it sound.
//!
//! - [`ForkLocal`]: a value (the kqueue fd) that only the process that made
//!   it may drop, because no fork child inherits the kernel object behind
//!   it. Compiled on every target and unit-tested on Linux.
//! - `kevent`: the one system call rustix marks `unsafe`, and the
//!   `Send`/`Sync` of the buffer it fills (kqueue targets only).
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::mem::ManuallyDrop;

/// Where the current process's id comes from: `getpid` for the backend, a
/// stand-in in tests (which play a fork child by answering another id).
pub(crate) trait ProcessId {
    /// The calling process's id.
    fn current() -> i32;
}

/// A value made by one process that no fork child of it inherits: the
/// kqueue fd. In a child the fd *number* is closed (or by now names an
/// unrelated file the child opened), so the child must neither use nor
/// close it.
///
/// [`get`](Self::get) hands the value out without a check (the hot paths
/// check only when the kernel refuses the number, see the
/// [fork section](crate::kernels#fork-and-exec) of the kernel notes);
/// [`is_inherited`](Self::is_inherited) asks the process id; dropping
/// drops the value only in the process that made it, and leaks it (closes
/// nothing) in any other.
pub(crate) struct ForkLocal<F, P: ProcessId> {
    value: ManuallyDrop<F>,
    creator: i32,
    process: PhantomData<fn() -> P>,
}

impl<F, P: ProcessId> ForkLocal<F, P> {
    /// `value`, owned by the calling process (one `P::current()`).
    pub(crate) fn new(value: F) -> Self {
        Self {
            value: ManuallyDrop::new(value),
            creator: P::current(),
            process: PhantomData,
        }
    }

    /// The value, unchecked: in a fork child it is the parent's, unusable.
    #[inline]
    pub(crate) fn get(&self) -> &F {
        &self.value
    }

    /// True when the calling process is not the one that made the value
    /// (a fork child inherited it): one `P::current()`.
    pub(crate) fn is_inherited(&self) -> bool {
        P::current() != self.creator
    }
}

impl<F, P: ProcessId> Drop for ForkLocal<F, P> {
    /// Drops (closes) the value in the process that made it; in a fork
    /// child leaves it alone, so the number the child may have reused for
    /// one of its own files stays open.
    fn drop(&mut self) {
        if !self.is_inherited() {
            // SAFETY: `value` is dropped here, once: `drop` runs at most
            // once and nothing reads `value` after it.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
    }
}

impl<F: core::fmt::Debug, P: ProcessId> core::fmt::Debug for ForkLocal<F, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ForkLocal")
            .field("value", &*self.value)
            .field("creator", &self.creator)
            .finish()
    }
}

#[cfg(kqueue)]
pub(crate) use kevent::{EventBuffer, kevent};

#[cfg(kqueue)]
mod kevent {
    use core::mem::MaybeUninit;

    use rustix::event::Timespec;
    use rustix::event::kqueue::{self, Event};
    use rustix::fd::BorrowedFd;
    use rustix::io::Errno;

    /// `kevent(kq, changes, events, timeout)`: applies `changes`, then stores
    /// up to `events.len()` events (or receipts) and returns the part it
    /// filled.
    ///
    /// # References
    ///  - [Apple]
    ///  - [FreeBSD]
    ///  - [OpenBSD]
    ///  - [NetBSD]
    ///  - [DragonFly BSD]
    ///
    /// [Apple]: https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/kevent.2.html
    /// [FreeBSD]: https://man.freebsd.org/cgi/man.cgi?query=kevent&sektion=2
    /// [OpenBSD]: https://man.openbsd.org/kevent.2
    /// [NetBSD]: https://man.netbsd.org/kevent.2
    /// [DragonFly BSD]: https://man.dragonflybsd.org/?command=kevent&section=2
    #[inline]
    pub(crate) fn kevent<'a>(
        kq: BorrowedFd<'_>,
        changes: &[Event],
        events: &'a mut [MaybeUninit<Event>],
        timeout: Option<&Timespec>,
    ) -> Result<&'a mut [Event], Errno> {
        // SAFETY: rustix asks that the fds named by the events stay valid
        // while the kqueue uses them, so that the kqueue never acts on an fd
        // that was closed and reused. kqueue ties each filter to the
        // fd-table entry, not to the open file: closing an fd removes all of
        // its filters from every kqueue, so a registration never outlives
        // its fd and is never seen through a reused number. A change naming
        // a closed fd is refused in its receipt (`EBADF`, or `ENOENT` on
        // XNU). No memory is reached through these numbers; the buffers are
        // slices whose lengths rustix passes to the kernel.
        let (filled, _) = unsafe { kqueue::kevent_timespec(kq, changes, events, timeout)? };
        Ok(filled)
    }

    /// The wait buffer: room for `2 * E` kevents (a read and a write event
    /// for each of `E` fds), uninitialised until `kevent` fills it.
    pub(crate) struct EventBuffer<const E: usize>([[MaybeUninit<Event>; 2]; E]);

    impl<const E: usize> EventBuffer<E> {
        /// An unfilled buffer.
        pub(crate) const fn new() -> Self {
            Self([[const { MaybeUninit::uninit() }; 2]; E])
        }

        /// The whole buffer, for `kevent` to fill.
        pub(crate) fn as_uninit_mut(&mut self) -> &mut [MaybeUninit<Event>] {
            self.0.as_flattened_mut()
        }
    }

    // SAFETY: `struct kevent` is neither `Send` nor `Sync` only because its
    // `udata` field has a pointer type. This crate stores a token there (an
    // integer, without provenance), never an address, and never
    // dereferences it; the kernel treats it as opaque. So the buffer is
    // plain data that may move to another thread.
    unsafe impl<const E: usize> Send for EventBuffer<E> {}
    // SAFETY: as for `Send`; and `&EventBuffer` gives no access at all.
    unsafe impl<const E: usize> Sync for EventBuffer<E> {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A value that counts its drops (a stand-in for the kqueue fd: a drop
    /// is a `close`).
    struct Fd<'a>(&'a AtomicUsize);

    impl Drop for Fd<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The process that made the value.
    struct Parent;
    impl ProcessId for Parent {
        fn current() -> i32 {
            100
        }
    }

    /// Made in the parent, used in a fork child: the id changes after
    /// `new`, as `fork` changes it.
    struct AfterFork;
    static FORKED: AtomicUsize = AtomicUsize::new(0);
    impl ProcessId for AfterFork {
        fn current() -> i32 {
            if FORKED.load(Ordering::Relaxed) == 0 {
                100
            } else {
                101
            }
        }
    }

    #[test]
    fn the_creator_drops_the_value() {
        let closes = AtomicUsize::new(0);
        let local = ForkLocal::<_, Parent>::new(Fd(&closes));
        assert!(!local.is_inherited());
        assert_eq!(local.get().0.load(Ordering::Relaxed), 0);
        drop(local);
        assert_eq!(closes.load(Ordering::Relaxed), 1, "closed once");
    }

    /// The defect this guards against: a fork child dropping the inherited
    /// kqueue closed whatever file its number named in the child.
    #[test]
    fn a_fork_child_never_drops_the_inherited_value() {
        let closes = AtomicUsize::new(0);
        let local = ForkLocal::<_, AfterFork>::new(Fd(&closes));
        assert!(!local.is_inherited(), "the parent's own");
        FORKED.store(1, Ordering::Relaxed);
        assert!(local.is_inherited(), "the child's inherited copy");
        drop(local);
        assert_eq!(
            closes.load(Ordering::Relaxed),
            0,
            "the child closes nothing"
        );
        FORKED.store(0, Ordering::Relaxed);
    }
}
