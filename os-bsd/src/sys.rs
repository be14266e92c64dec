//! The one `unsafe` call of this crate: `kevent`.
#![allow(unsafe_code)]

use core::mem::MaybeUninit;

use rustix::event::Timespec;
use rustix::event::kqueue::{self, Event};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// `kevent(kq, changes, events, timeout)`: applies `changes`, then stores up
/// to `events.len()` events (or receipts) and returns the part it filled.
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
    // SAFETY: rustix asks that the fds named by the events stay valid while
    // the kqueue uses them, so that the kqueue never acts on an fd that was
    // closed and reused. kqueue ties each filter to the fd-table entry, not
    // to the open file: closing an fd removes all of its filters from every
    // kqueue, so a registration never outlives its fd and is never seen
    // through a reused number. A change naming a closed fd is refused with
    // `EBADF` in its receipt. No memory is reached through these numbers; the
    // buffers are slices whose lengths rustix passes to the kernel.
    let (filled, _) = unsafe { kqueue::kevent_timespec(kq, changes, events, timeout)? };
    Ok(filled)
}

/// The wait buffer: room for `2 * E` kevents (a read and a write event for
/// each of `E` fds), uninitialised until `kevent` fills it.
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
// integer, without provenance), never an address, and never dereferences
// it; the kernel treats it as opaque. So the buffer is plain data that may
// move to another thread.
unsafe impl<const E: usize> Send for EventBuffer<E> {}
// SAFETY: as for `Send`; and `&EventBuffer` gives no access at all.
unsafe impl<const E: usize> Sync for EventBuffer<E> {}
