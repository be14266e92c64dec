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
