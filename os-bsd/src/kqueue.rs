//! The kqueue backend.

use core::ffi::c_void;
use core::mem::MaybeUninit;
use core::time::Duration;

use ioselect_core::{Backend, Error, Events, OpenBackend, OsError, RawFd, Renew, Token};
use rustix::event::Timespec;
use rustix::event::kqueue::{self, Event, EventFilter, EventFlags};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, FdFlags};
use rustix::time::{ClockId, clock_gettime};

use crate::changes::{Change, Changes, EPIPE, Failure, Filter, Op, Settled, settle};
use crate::peer_gone::{self, PeerGone};
use crate::sys;
use crate::timeout::{Deadline, Sleep};

/// A kqueue with a fixed buffer for the read and write events of `E` file
/// descriptors, implementing [`Backend`]: Python's `select.kqueue` as a
/// selector backend.
///
/// Create it with [`Selector::open`](ioselect_core::Selector::open) through
/// [`DefaultSelector`](crate::DefaultSelector), or with [`Kqueue::new`] (or
/// [`OpenBackend::open`]) and [`Selector::new`](ioselect_core::Selector::new).
///
/// - Each registration is one `EVFILT_READ` and/or one `EVFILT_WRITE` filter,
///   level-triggered. `register`, `modify` and `unregister` each make one
///   `kevent` call with one change list; `modify` adds and deletes only the
///   filters that differ and checks the ones it keeps. Every change asks for
///   a receipt (`EV_RECEIPT`) that is checked on its own; when part of a
///   list fails, the applied part is undone, so the kernel is as before the
///   call. What each kernel does with each change: `KERNELS.md` beside this
///   crate's `Cargo.toml`.
/// - A pipe (or FIFO) whose reader is gone registers for WRITE and is
///   reported writable on every `select`, as with epoll, although FreeBSD,
///   DragonFly and OpenBSD refuse its `EVFILT_WRITE` (`EPIPE`; NetBSD:
///   `EBADF`): the backend reports it itself, for up to 8 such keys at
///   once (`KERNELS.md`, section 6).
/// - kqueue reports read and write readiness of one fd as two events; `wait`
///   merges them, so each fd comes once per `select`.
/// - The buffer holds `2 * E` kevents: both filters of `E` fds. The
///   selector aliases use `E = N`, so one `select` can report every
///   registered fd. With a smaller `E`, the fds that do not fit come in the
///   next `select` (readiness is level-triggered).
///
/// # Memory
/// Inline, no heap: `2 * E` `struct kevent`s (32 bytes each on macOS, 64 on
/// FreeBSD) plus `16 * E` bytes of merged results, plus under 300 bytes for the
/// pipes whose reader is gone. On NetBSD and OpenBSD, two more fds (the
/// wake-up pipe).
///
/// # References
///  - [Apple]
///  - [FreeBSD]
///  - [OpenBSD]
///  - [NetBSD]
///  - [DragonFly BSD]
///
/// [Apple]: https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/kqueue.2.html
/// [FreeBSD]: https://man.freebsd.org/cgi/man.cgi?query=kqueue&sektion=2
/// [OpenBSD]: https://man.openbsd.org/kqueue.2
/// [NetBSD]: https://man.netbsd.org/kqueue.2
/// [DragonFly BSD]: https://man.dragonflybsd.org/?command=kqueue&section=2
#[doc(alias = "kqueue")]
pub struct Kqueue<const E: usize = 256> {
    fd: OwnedFd,
    /// The kqueue's own wake-up registration (see [`Waker`](crate::Waker)),
    /// made by [`Kqueue::new`] and never changed or removed.
    wake: crate::waker::Own,
    /// What `kevent` returned: up to one read and one write event per fd.
    raw: sys::EventBuffer<E>,
    /// The merged events of the last `wait`: `ready[..len]`, then
    /// `extra[..extra_len]`.
    ready: [(u64, Events); E],
    len: usize,
    /// Write registrations the kernel refused because a pipe's reader is
    /// gone, reported as writable by `wait` itself.
    peer_gone: PeerGone,
    /// WRITE of the `peer_gone` fds that the kernel reported nothing for.
    extra: [(u64, Events); peer_gone::CAPACITY],
    extra_len: usize,
}

impl<const E: usize> Kqueue<E> {
    /// `kqueue()`, then `FD_CLOEXEC`, then the registration of its own
    /// wake-up source: a new kqueue.
    ///
    /// # Portability
    /// The kqueue fd gets `FD_CLOEXEC` by a second call, so an `exec` by
    /// another thread of this process between the two can carry it into
    /// the new program. NetBSD (`kqueue1(O_CLOEXEC)`) and FreeBSD 14+
    /// (`kqueuex(KQUEUE_CLOEXEC)`) can do it in one call, but rustix 1.x
    /// offers only `kqueue()`, and this crate makes no raw syscalls. A
    /// `fork` does not widen the window on FreeBSD, NetBSD and DragonFly,
    /// whose `fork` copies no kqueue into the child. The wake-up pipe of
    /// NetBSD and OpenBSD is made close-on-exec atomically (`pipe2`). See
    /// `KERNELS.md`, section 9.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds, `ENOMEM`.
    ///
    /// # Panics
    /// Fails to compile (a `const` assertion) when `E` is 0 or `2 * E` does
    /// not fit a C `int`.
    #[doc(alias = "kqueue")]
    pub fn new() -> Result<Self, OsError> {
        const {
            assert!(E > 0, "the event buffer E must hold at least 1 fd");
            assert!(E <= (i32::MAX / 2) as usize, "2 * E must fit a C int");
        }
        let fd = kqueue::kqueue().map_err(os_error)?;
        rustix::io::fcntl_setfd(&fd, FdFlags::CLOEXEC).map_err(os_error)?;
        let wake = crate::waker::Own::register(fd.as_fd())?;
        Ok(Self::from_parts(fd, wake))
    }

    /// A backend over the kqueue `fd` whose wake-up source is `wake`, with
    /// empty buffers.
    fn from_parts(fd: OwnedFd, wake: crate::waker::Own) -> Self {
        Self {
            fd,
            wake,
            raw: sys::EventBuffer::new(),
            ready: [(Token::INTERNAL.get(), Events::empty()); E],
            len: 0,
            peer_gone: PeerGone::new(),
            extra: [(Token::INTERNAL.get(), Events::empty()); peer_gone::CAPACITY],
            extra_len: 0,
        }
    }

    /// The kqueue's own wake-up source, for [`Waker::new`](crate::Waker::new).
    pub(crate) fn wake_source(&self) -> &crate::waker::Own {
        &self.wake
    }

    /// Makes the changes of `changes` for `fd` with one `kevent` call, and
    /// undoes the applied part if another part fails. `token` is the
    /// registration's token, which an undone delete is added back with.
    /// `open` says whether `fd` is open (asked only on NetBSD, whose
    /// `pipe_kqfilter` answers `EBADF` for a pipe whose reader is gone).
    fn submit(
        &self,
        fd: RawFd,
        changes: &Changes,
        token: Token,
        open: impl Fn() -> bool,
    ) -> Result<Settled, OsError> {
        // FreeBSD, DragonFly, OpenBSD `pipe_kqfilter`: EPIPE; NetBSD:
        // EBADF, which also means "closed fd", hence the check. XNU accepts
        // the filter (see KERNELS.md, section 6).
        let peer_gone = |e: OsError| {
            e == EPIPE || (cfg!(target_os = "netbsd") && e == OsError::EBADF && open())
        };
        match self.apply(fd, changes, token, peer_gone) {
            Ok(settled) => Ok(settled),
            Err(failure) => {
                self.undo(fd, &failure.undo, token);
                Err(failure.error)
            }
        }
    }

    /// Best effort: if the undo fails too, the kernel refused to restore a
    /// state it held a moment ago; the caller still learns the first error,
    /// which is what failed.
    fn undo(&self, fd: RawFd, undo: &Changes, token: Token) {
        let _ = self.apply(fd, undo, token, |_| false);
    }

    /// Files `fd` as a write end whose reader is gone after `settled`, or
    /// unfiles it; when the set is full, undoes `settled` and answers the
    /// kernel's errno, so the kernel and the key are as before.
    fn track(&mut self, fd: RawFd, token: Token, settled: Settled) -> Result<(), OsError> {
        match settled.write_peer_gone {
            None => {
                if !self.peer_gone.is_empty() {
                    self.peer_gone.remove(fd);
                }
                Ok(())
            }
            Some(errno) => {
                if self.peer_gone.insert(fd, token.get()) {
                    Ok(())
                } else {
                    self.undo(fd, &settled.undo, token);
                    Err(errno)
                }
            }
        }
    }

    /// The events the kernel holds filters for, of a key of `fd`
    /// registered for `events`: WRITE is the backend's own for an fd filed
    /// in `peer_gone`.
    fn in_kernel(&self, fd: RawFd, events: Events) -> Events {
        if !self.peer_gone.is_empty() && self.peer_gone.contains(fd) {
            events - Events::WRITE
        } else {
            events
        }
    }

    /// One `kevent` call with `changes` for `fd`, each with `EV_RECEIPT`,
    /// settled receipt by receipt.
    fn apply(
        &self,
        fd: RawFd,
        changes: &Changes,
        token: Token,
        peer_gone: impl Fn(OsError) -> bool,
    ) -> Result<Settled, Failure> {
        if changes.is_empty() {
            return Ok(Settled::NOTHING);
        }
        let changes_slice = changes.as_slice();
        let udata = udata(token);
        let mut native = [Event::new(EventFilter::Read(fd), EventFlags::empty(), udata); 2];
        for (slot, change) in native.iter_mut().zip(changes_slice) {
            *slot = kevent_change(fd, *change, udata);
        }
        let native = native.get(..changes_slice.len()).unwrap_or(&[]);
        // Room for exactly one receipt per change, so kevent has no room to
        // return (and consume) a pending event as well: with receipts in
        // the list it returns without scanning (kqueue_kevent: `nerrors`).
        let mut buf = [const { MaybeUninit::<Event>::uninit() }; 2];
        let buf = buf.get_mut(..native.len()).unwrap_or(&mut []);
        let read = |returned: &[Event]| {
            let mut receipts = [(Filter::Read, 0i64); 2];
            let mut count = 0;
            for ev in returned {
                let filter = match ev.filter() {
                    EventFilter::Read(ident) if ident == fd => Filter::Read,
                    EventFilter::Write(ident) if ident == fd => Filter::Write,
                    _ => continue,
                };
                // A receipt has `EV_ERROR` set and the errno (0: success) in
                // `data`.
                if !ev.flags().contains(EventFlags::ERROR) {
                    continue;
                }
                if let Some(slot) = receipts.get_mut(count) {
                    *slot = (filter, ev.data());
                    count += 1;
                }
            }
            (receipts, count)
        };
        match submit_changes(self.fd.as_fd(), native, buf, read) {
            Ok((receipts, count)) => {
                settle(changes, receipts.get(..count).unwrap_or(&[]), peer_gone)
            }
            // The call as a whole was refused (a bad kqueue fd, a bad
            // address, a change list too long): per-change errors go into
            // receipts, so none of the changes was made and there is
            // nothing to undo.
            Err(e) => Err(Failure {
                error: os_error(e),
                undo: Changes::EMPTY,
            }),
        }
    }
}

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
fn submit_changes<R>(
    kq: BorrowedFd<'_>,
    changes: &[Event],
    receipts: &mut [MaybeUninit<Event>],
    read: impl FnOnce(&[Event]) -> R,
) -> Result<R, Errno> {
    loop {
        match sys::kevent(kq, changes, receipts, Some(&POLL)) {
            Ok(filled) => return Ok(read(filled)),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// A [`Change`] for `fd` as a `struct kevent`, with `EV_RECEIPT`. `fflags`
/// and `data` are 0, in adds and checks alike, so a check rewrites them
/// with the values they already have.
fn kevent_change(fd: RawFd, change: Change, udata: *mut c_void) -> Event {
    let filter = match change.filter {
        Filter::Read => EventFilter::Read(fd),
        Filter::Write => EventFilter::Write(fd),
    };
    let flags = match change.op {
        Op::Add => EventFlags::ADD,
        Op::Delete | Op::Remove => EventFlags::DELETE,
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

/// The token in a returned event's `udata`.
#[inline]
fn token_of(ev: &Event) -> u64 {
    // Lossless: `usize` is 64 bits here.
    ev.udata().addr() as u64
}

/// A returned event → its token and readiness.
#[inline]
fn readiness_of(ev: &Event) -> (u64, Events) {
    let filter = match ev.filter() {
        EventFilter::Read(_) => Some(Filter::Read),
        EventFilter::Write(_) => Some(Filter::Write),
        _ => None,
    };
    let events = crate::ready::readiness(filter, ev.flags().contains(EventFlags::EOF));
    (token_of(ev), events)
}

/// One `struct kevent` with `EV_RECEIPT` on `kq`, checked: the wake-up
/// source's registration and the waker's trigger.
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
        Some(errno) => Err(OsError::from_raw(
            i32::try_from(errno).unwrap_or(OsError::EINVAL.raw()),
        )),
        // No receipt: a kernel that reports only refusals (see
        // `changes::settle`).
        None => Ok(()),
    }
}

/// A rustix error as core's `OsError`.
#[inline]
pub(crate) fn os_error(e: Errno) -> OsError {
    OsError::from_raw(e.raw_os_error())
}

/// Now, on the monotonic clock.
#[inline]
fn now() -> Duration {
    let t = clock_gettime(ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative.
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// A sleep (at most `timeout::MAX_SLEEP`, 10⁸ s) as a `timespec`.
#[inline]
fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

impl<const E: usize> OpenBackend for Kqueue<E> {
    /// [`Kqueue::new`].
    fn open() -> Result<Self, OsError> {
        Self::new()
    }
}

impl<const E: usize> Backend for Kqueue<E> {
    /// The caller's `BorrowedFd`: kevent names fds by number, and this proves
    /// the number is the caller's open fd for the call.
    type Source<'a> = BorrowedFd<'a>;

    #[inline]
    fn fd(source: BorrowedFd<'_>) -> RawFd {
        source.as_raw_fd()
    }

    /// `EV_ADD` of `EVFILT_READ` and/or `EVFILT_WRITE`, in one `kevent`
    /// call. If one filter is refused, the other is deleted again. An
    /// `EVFILT_WRITE` refused because the fd is a pipe whose reader is gone
    /// counts as registered: `wait` reports the fd writable, as epoll does
    /// (`KERNELS.md`, section 6).
    #[doc(alias = "kevent")]
    fn add(&mut self, source: BorrowedFd<'_>, events: Events, token: Token) -> Result<(), OsError> {
        let fd = source.as_raw_fd();
        let settled = self.submit(fd, &Changes::add(events), token, || fd_is_open(source))?;
        self.track(fd, token, settled)
    }

    /// `EV_ADD` of the filters only `new` has, `EV_DELETE` of the ones only
    /// `old` has, and `EV_ENABLE` (a no-op check) of the ones both have, in
    /// one `kevent` call. The check makes a `modify` of an fd whose
    /// registration is gone (closed while registered, the number reused)
    /// fail with `ENOENT`, as epoll's `EPOLL_CTL_MOD` does (`KERNELS.md`,
    /// section 4). If part of it is refused, the applied part is undone.
    #[doc(alias = "kevent")]
    fn modify(
        &mut self,
        source: BorrowedFd<'_>,
        old: Events,
        new: Events,
        token: Token,
    ) -> Result<(), OsError> {
        let fd = source.as_raw_fd();
        let old = self.in_kernel(fd, old);
        let settled = self.submit(fd, &Changes::modify(old, new), token, || fd_is_open(source))?;
        self.track(fd, token, settled)
    }

    /// `EV_DELETE` of the registered filters, in one `kevent` call. A receipt
    /// of `EBADF` (the fd was closed, which removed its filters) or `ENOENT`
    /// (the filter is gone: closed, number maybe reused) means the filter is
    /// not watched, so it counts as success, as in Python. If one filter's
    /// delete is refused otherwise, the other is added back with `token`, so
    /// the kernel is as before.
    #[doc(alias = "kevent")]
    fn delete(
        &mut self,
        source: BorrowedFd<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError> {
        let fd = source.as_raw_fd();
        let events = self.in_kernel(fd, events);
        self.submit(fd, &Changes::delete(events), token, || true)?;
        if !self.peer_gone.is_empty() {
            self.peer_gone.remove(fd);
        }
        Ok(())
    }

    /// The application closed `fd` while registered: the kernel dropped its
    /// filters with it (`knote_fdclose`); only the backend's own record of
    /// a pipe whose reader is gone is left to drop. No kernel call.
    fn delete_closed(&mut self, fd: RawFd, _events: Events, _token: Token) {
        if !self.peer_gone.is_empty() {
            self.peer_gone.remove(fd);
        }
    }

    /// `kevent` with an empty change list into the buffer, then the merge.
    /// No rounding: the timeout is passed as a `timespec`. An early return
    /// or `EINTR` waits again for the time that is left on the monotonic
    /// clock; sleeps longer than 10⁸ s are split; `Duration::MAX` is
    /// "forever". While a write end whose reader is gone is registered for
    /// WRITE, it is ready: the wait only polls, and reports it.
    #[doc(alias = "kevent")]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.len = 0;
        self.extra_len = 0;
        if !self.peer_gone.is_empty() {
            return self.poll_with_peer_gone();
        }
        let start = now();
        let deadline = Deadline::new(start, timeout);
        let mut sleep = deadline.sleep(start).timeout();
        loop {
            let ts = sleep.map(timespec);
            match sys::kevent(self.fd.as_fd(), &[], self.raw.as_uninit_mut(), ts.as_ref()) {
                // Any event ends the wait, even if the merge drops it (the
                // waker's): a wake-up is an empty batch.
                Ok(events) if !events.is_empty() => {
                    self.len = crate::ready::merge(events, readiness_of, &mut self.ready);
                    return Ok(self.len);
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(Error::Os(os_error(e))),
            }
            match deadline.sleep(now()) {
                Sleep::Expired => return Ok(0),
                next => sleep = next.timeout(),
            }
        }
    }

    #[inline]
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        match index.checked_sub(self.len) {
            None => self.ready.get(index).copied(),
            Some(i) => self.extra.get(..self.extra_len)?.get(i).copied(),
        }
    }
}

impl<const E: usize> Kqueue<E> {
    /// `wait` while some fd is filed in `peer_gone`: one `kevent` that does
    /// not sleep, its events merged, and WRITE for every filed fd.
    fn poll_with_peer_gone(&mut self) -> Result<usize, Error> {
        let zero = timespec(Duration::ZERO);
        let events = loop {
            match sys::kevent(self.fd.as_fd(), &[], self.raw.as_uninit_mut(), Some(&zero)) {
                Ok(events) => break events,
                Err(Errno::INTR) => {}
                Err(e) => return Err(Error::Os(os_error(e))),
            }
        };
        self.len = crate::ready::merge(events, readiness_of, &mut self.ready);
        let merged = self.ready.get_mut(..self.len).unwrap_or(&mut []);
        self.extra_len = self.peer_gone.report(merged, &mut self.extra);
        Ok(self.len + self.extra_len)
    }
}

/// True when `fd` is an open file descriptor (`fcntl(F_GETFD)`): asked on
/// NetBSD only, after its `pipe_kqfilter` answered `EBADF`, which means
/// either "not an open fd" or "a pipe whose reader is gone". A
/// `BorrowedFd` is open by its contract; the call keeps the answer honest
/// for one obtained with `borrow_raw` of a closed number.
fn fd_is_open(fd: BorrowedFd<'_>) -> bool {
    rustix::io::fcntl_getfd(fd).is_ok()
}

impl<const E: usize> Renew for Kqueue<E> {
    /// A new handle on **the same** kqueue (a `dup` of its fd), with its own
    /// wake-up registration, so every [`Waker`](crate::Waker) made for this
    /// one wakes the new one.
    ///
    /// [`Selector::rebuild`](ioselect_core::SelectorIn::rebuild) asks for a
    /// fresh kernel object to leave behind registrations of files the table
    /// no longer has. A kqueue never holds such registrations: its filters
    /// belong to fd numbers and die when the fd is closed (`knote_fdclose`),
    /// so the kqueue's fd filters are always exactly the table's keys, and
    /// the `EV_ADD`s of `rebuild` refresh them in place (same token, same
    /// filters). A new kqueue would gain nothing and would lose the
    /// `EVFILT_USER` event the wakers trigger, which cannot move between
    /// kqueues. On NetBSD and OpenBSD the new handle registers its own `dup`
    /// of the wake-up pipe's read end, so the wake-ups survive when the old
    /// handle (and its registration) is dropped. See `KERNELS.md`, section 7.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds; the registration's refusal.
    fn renew(&self) -> Result<Self, OsError> {
        let fd = rustix::io::fcntl_dupfd_cloexec(&self.fd, 0).map_err(os_error)?;
        let wake = self.wake.renew(fd.as_fd())?;
        Ok(Self::from_parts(fd, wake))
    }
}

impl<const E: usize> AsFd for Kqueue<E> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<const E: usize> core::fmt::Debug for Kqueue<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", &self.fd)
            .field("capacity", &E)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const E: usize> defmt::Format for Kqueue<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        use rustix::fd::AsRawFd;
        defmt::write!(
            f,
            "Kqueue {{ fd: {=i32}, capacity: {=usize} }}",
            self.fd.as_raw_fd(),
            E
        );
    }
}
