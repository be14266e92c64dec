//! The `kevent` plumbing under the backend and the wake-up pipe: change
//! lists submitted with room for their receipts, one checked change,
//! tokens in `udata`, errnos as core's `OsError`. The one `unsafe` call is
//! [`crate::unchecked::kevent`].

use core::ffi::c_void;
use core::mem::MaybeUninit;

use ioselect_core::{Events, OsError, RawFd, Token};
use rustix::event::Timespec;
use rustix::event::kqueue::{Event, EventFilter, EventFlags};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::plan::changes::{Change, Filter, Op, errno_of};
use crate::unchecked;

/// A zero timeout: change-list calls never wait. (Their receipts fill the
/// event list, so kevent returns without scanning anyway.)
const POLL: Timespec = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// `kevent` with a change list and room for its receipts, never waiting.
///
/// `EINTR` is retried: it cannot really happen (the receipts fill the event
/// list, so kevent returns without sleeping), and FreeBSD documents that
/// when it does, all changes were applied; making the same changes again is
/// harmless (`EV_ADD` of an existing filter updates it, `EV_DELETE` of a
/// deleted one answers `ENOENT`, which a delete treats as done).
pub(crate) fn submit_changes<R>(
    kq: BorrowedFd<'_>,
    changes: &[Event],
    receipts: &mut [MaybeUninit<Event>],
    read: impl FnOnce(&[Event]) -> R,
) -> Result<R, Errno> {
    loop {
        match unchecked::kevent(kq, changes, receipts, Some(&POLL)) {
            Ok(filled) => return Ok(read(filled)),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// One `struct kevent` with `EV_RECEIPT` on `kq`, checked: the wake-up
/// pipe's registration.
pub(crate) fn apply_one(kq: BorrowedFd<'_>, change: Event) -> Result<(), OsError> {
    let mut buf = [const { MaybeUninit::<Event>::uninit() }; 1];
    // The receipt's errno if there is one (`EV_ERROR` set), else `None`.
    let read = |returned: &[Event]| {
        returned
            .first()
            .filter(|r| r.flags().contains(EventFlags::ERROR))
            .map(Event::data)
    };
    match submit_changes(kq, &[change], &mut buf, read).map_err(os_error)? {
        Some(0) => Ok(()),
        Some(errno) => Err(errno_of(errno)),
        // No receipt: a kernel that reports only refusals (see
        // `plan::changes::settle`).
        None => Ok(()),
    }
}

/// A [`Change`] for `fd` as a `struct kevent`, with `EV_RECEIPT`. `fflags`
/// and `data` are 0, in adds and checks alike, so a check rewrites them
/// with the values they already have.
pub(crate) fn kevent_change(fd: RawFd, change: Change, udata: *mut c_void) -> Event {
    let filter = match change.filter {
        Filter::Read => EventFilter::Read(fd),
        Filter::Write => EventFilter::Write(fd),
    };
    let flags = match change.op {
        Op::Add => EventFlags::ADD,
        Op::DeleteIfPresent | Op::Delete => EventFlags::DELETE,
        Op::Check => EventFlags::ENABLE,
    };
    Event::new(filter, flags | EventFlags::RECEIPT, udata)
}

/// A token as kevent's `udata`: a pointer-sized integer the kernel hands
/// back unchanged (never dereferenced; no provenance).
#[inline]
pub(crate) fn udata(token: Token) -> *mut c_void {
    // Lossless: the crate only builds for 64-bit pointers (see lib.rs).
    core::ptr::without_provenance_mut(token.get() as usize)
}

/// The raw token in a returned event's `udata`.
#[inline]
fn token_of(ev: &Event) -> u64 {
    // Lossless: `usize` is 64 bits here.
    ev.udata().addr() as u64
}

/// A returned event → its token and readiness.
#[inline]
pub(crate) fn readiness_of(ev: &Event) -> (u64, Events) {
    let filter = match ev.filter() {
        EventFilter::Read(_) => Some(Filter::Read),
        EventFilter::Write(_) => Some(Filter::Write),
        _ => None,
    };
    let events = crate::plan::ready::readiness(filter, ev.flags().contains(EventFlags::EOF));
    (token_of(ev), events)
}

/// A rustix error as core's `OsError`.
#[inline]
pub(crate) fn os_error(e: Errno) -> OsError {
    OsError::from_raw(e.raw_os_error())
}
