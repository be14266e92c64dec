//! The kqueue backend: [`Kqueue`], its [`Waker`], and the `kevent`
//! plumbing under them. Built only for kqueue targets; the decisions it
//! carries out are planned in [`crate::plan`].

mod kevent;
mod wake;
mod waker;

use core::mem::MaybeUninit;
use core::time::Duration;

use ioselect_core::{Backend, Error, Events, OpenBackend, OsError, RawFd, Renew, Token};
use rustix::event::Timespec;
use rustix::event::kqueue::{self, Event, EventFilter, EventFlags};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::time::{ClockId, clock_gettime};

use self::kevent::{kevent_change, os_error, readiness_of, submit_changes, udata};
use self::wake::WakePipe;
pub use self::waker::Waker;
use crate::plan::changes::{Changes, Failure, Filter, Settled, settle};
use crate::plan::peer_gone::{self, PeerGone, PipeKqfilter};
use crate::plan::ready::merge;
use crate::plan::timeout::{Deadline, Sleep};
use crate::unchecked::{self, EventBuffer, ForkLocal, ProcessId};

/// A kqueue with a fixed buffer for the read and write events of `E` file
/// descriptors, implementing [`Backend`]: Python's `select.kqueue` as a
/// selector backend.
///
/// [`DefaultSelector::open`](crate::DefaultSelector::open) makes one; or
/// make it with [`Kqueue::new`] (or [`OpenBackend::open`]) and hand it to
/// [`Selector::new`](ioselect_core::Selector::new).
///
/// - Each registration is one `EVFILT_READ` and/or one `EVFILT_WRITE` filter,
///   level-triggered. `register`, `modify` and `unregister` each make one
///   `kevent` call with one change list; `modify` adds and deletes only the
///   filters that differ and checks the ones it keeps. Every change asks for
///   a receipt (`EV_RECEIPT`) that is checked on its own; when part of a
///   list fails, the applied part is undone, so the kernel is as before the
///   call. What each kernel does with each change: the [kernel
///   notes](crate::kernels).
/// - A pipe (or FIFO) whose reader is gone registers for WRITE and is
///   reported writable on every `select`, as with epoll, although FreeBSD,
///   DragonFly and OpenBSD refuse its `EVFILT_WRITE` (`EPIPE`; older
///   OpenBSD `EPERM`; NetBSD `EBADF`): the backend reports it itself, for up
///   to 8 such keys at once ([dead pipes](crate::kernels#dead-pipes)).
/// - kqueue reports read and write readiness of one fd as two events; `wait`
///   merges them, so each fd comes once per `select`.
/// - The buffer holds `2 * E` kevents: both filters of `E` fds. The
///   `DefaultSelector<T, N>` uses `E = N`, so one `select` can report every
///   registered fd. With a smaller `E`, the fds that do not fit come in the
///   next `select` (readiness is level-triggered).
/// - The kqueue belongs to the process that made it: no kernel copies a
///   kqueue into a fork child. In a child, dropping the inherited backend
///   closes nothing, a `select` that the kernel refuses fails with
///   [`Error::Forked`], and [`rebuild`](ioselect_core::SelectorIn::rebuild)
///   gives the child a fresh kqueue ([fork and
///   exec](crate::kernels#fork-and-exec)).
///
/// # Memory
/// Inline, no heap: `2 * E` `struct kevent`s (32 bytes each on macOS, 64 on
/// FreeBSD) plus `16 * E` bytes of merged results, plus under 300 bytes for the
/// pipes whose reader is gone. Three fds: the kqueue and the wake-up pipe.
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
    /// The kqueue: dropped (closed) only by the process that made it.
    fd: ForkLocal<OwnedFd, Getpid>,
    /// The selector's wake-up pipe, its read end registered in `fd` by
    /// [`Kqueue::new`] (or `renew`) and never changed or removed.
    wake: WakePipe,
    /// What `kevent` returned: up to one read and one write event per fd.
    raw: EventBuffer<E>,
    /// The merged events of the last `wait`: `ready[..len]`, then `extra`.
    ready: [(u64, Events); E],
    len: usize,
    /// Write registrations the kernel refused because a pipe's reader is
    /// gone, reported as writable by `wait` itself.
    peer_gone: PeerGone,
    /// WRITE of the `peer_gone` fds that the kernel reported nothing for.
    extra: heapless::Vec<(u64, Events), { peer_gone::CAPACITY }>,
}

/// `getpid()`, for [`ForkLocal`]: a system call on FreeBSD, NetBSD and
/// OpenBSD; a read of libc's cache on macOS and DragonFly ([fork and
/// exec](crate::kernels#fork-and-exec)).
struct Getpid;

impl ProcessId for Getpid {
    fn current() -> i32 {
        rustix::process::getpid().as_raw_nonzero().get()
    }
}

impl<const E: usize> Kqueue<E> {
    /// `kqueue()` (then `FD_CLOEXEC` on the BSDs), the wake-up pipe and its
    /// registration: a new kqueue.
    ///
    /// # Portability
    /// On the BSDs the kqueue fd gets `FD_CLOEXEC` by a second call, so an
    /// `exec` by another thread of this process between the two can carry
    /// it into the new program. NetBSD (`kqueue1(O_CLOEXEC)`) and FreeBSD
    /// 14+ (`kqueuex(KQUEUE_CLOEXEC)`) can do it in one call, but rustix 1.x
    /// offers only `kqueue()`, and this crate makes no raw syscalls. XNU
    /// makes every kqueue close-on-exec itself. The wake-up pipe is
    /// close-on-exec atomically on the BSDs (`pipe2`); Apple's OSes have no
    /// `pipe2`, so there it takes `pipe` and `fcntl`s, with the same window.
    /// See [fork and exec](crate::kernels#fork-and-exec).
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
        let fd = new_kqueue()?;
        let wake = WakePipe::new()?;
        wake.register(fd.get().as_fd())?;
        Ok(Self::from_parts(fd, wake))
    }

    /// A backend over the kqueue `fd` whose wake-up pipe `wake` is
    /// registered in it, with empty buffers.
    fn from_parts(fd: ForkLocal<OwnedFd, Getpid>, wake: WakePipe) -> Self {
        Self {
            fd,
            wake,
            raw: EventBuffer::new(),
            ready: [(Token::INTERNAL.get(), Events::empty()); E],
            len: 0,
            peer_gone: PeerGone::new(),
            extra: heapless::Vec::new(),
        }
    }

    /// The kqueue fd, unchecked (see [`ForkLocal`]).
    #[inline]
    fn kq(&self) -> BorrowedFd<'_> {
        self.fd.get().as_fd()
    }

    /// The selector's wake-up pipe, for [`Waker::new`].
    pub(crate) fn wake_pipe(&self) -> &WakePipe {
        &self.wake
    }

    /// A `kevent` call refused as a whole: [`Error::Forked`] in a fork
    /// child, where the kqueue's number is closed (or names another file);
    /// else the errno. The process id is asked here only, on this error
    /// path, never on the hot paths.
    fn refused(&self, e: Errno) -> Error {
        if self.fd.is_inherited() {
            Error::Forked
        } else {
            Error::Os(os_error(e))
        }
    }

    /// Makes the changes of `changes` for `fd` with one `kevent` call, and
    /// undoes the applied part if another part fails. `token` is the
    /// registration's token, which an undone delete is added back with.
    fn submit(
        &self,
        fd: BorrowedFd<'_>,
        changes: &Changes,
        token: Token,
    ) -> Result<Settled, OsError> {
        // A refused write-filter add may mean "the pipe's reader is gone";
        // each kernel's answer: `PipeKqfilter`.
        let peer_gone = |e: OsError| PipeKqfilter::HERE.reader_gone(e, || confirm_reader_gone(fd));
        let raw = fd.as_raw_fd();
        match self.apply(raw, changes, token, peer_gone) {
            Ok(settled) => Ok(settled),
            Err(failure) => {
                self.undo(raw, &failure.undo, token);
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
            Some(errno) => match self.peer_gone.insert(fd, token.get()) {
                Ok(()) => Ok(()),
                Err(_) => {
                    self.undo(fd, &settled.undo, token);
                    Err(errno)
                }
            },
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
        let changes_slice = changes.as_slice();
        let n = changes_slice.len();
        if n == 0 {
            return Ok(Settled::NOTHING);
        }
        let udata = udata(token);
        let mut native = [Event::new(EventFilter::Read(fd), EventFlags::empty(), udata); 2];
        for (slot, change) in native.iter_mut().zip(changes_slice) {
            *slot = kevent_change(fd, *change, udata);
        }
        // A change list holds at most one change per filter: `n <= 2`.
        let native = &native[..n];
        // Room for exactly one receipt per change, so kevent has no room to
        // return (and consume) a pending event as well: with receipts in
        // the list it returns without scanning (kqueue_kevent: `nerrors`).
        let mut buf = [const { MaybeUninit::<Event>::uninit() }; 2];
        let read = |returned: &[Event]| {
            let mut receipts = heapless::Vec::<(Filter, i64), 2>::new();
            for ev in returned {
                let filter = match ev.filter() {
                    EventFilter::Read(ident) if ident == fd => Filter::Read,
                    EventFilter::Write(ident) if ident == fd => Filter::Write,
                    _ => continue,
                };
                // A receipt has `EV_ERROR` set and the errno (0: success) in
                // `data`.
                if ev.flags().contains(EventFlags::ERROR) {
                    // At most one receipt per change comes back (the buffer
                    // has room for no more).
                    let pushed = receipts.push((filter, ev.data()));
                    debug_assert!(pushed.is_ok(), "one receipt per change");
                }
            }
            receipts
        };
        match submit_changes(self.kq(), native, &mut buf[..n], read) {
            Ok(receipts) => settle(changes, &receipts, peer_gone),
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

/// Asked only after a write-filter add was refused with an errno that means
/// "a pipe whose reader is gone" on this kernel and something else too:
/// NetBSD's `EBADF` (or "not an open fd": is it open? `fcntl(F_GETFD)`) and
/// older OpenBSD's `EPERM` (or "a file without a write filter": is it a
/// pipe? `fstat`). A `BorrowedFd` is open by its contract; the call keeps
/// the answer honest for one obtained with `borrow_raw` of a closed number.
fn confirm_reader_gone(fd: BorrowedFd<'_>) -> bool {
    if cfg!(target_os = "openbsd") {
        rustix::fs::fstat(fd).is_ok_and(|st| {
            rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Fifo
        })
    } else {
        rustix::io::fcntl_getfd(fd).is_ok()
    }
}

/// `kqueue()`, close-on-exec, owned by the calling process.
fn new_kqueue() -> Result<ForkLocal<OwnedFd, Getpid>, OsError> {
    let fd = ForkLocal::new(kqueue::kqueue().map_err(os_error)?);
    // XNU's `kqueue()` sets close-on-exec (and close-on-fork) itself.
    #[cfg(not(target_vendor = "apple"))]
    rustix::io::fcntl_setfd(fd.get(), rustix::io::FdFlags::CLOEXEC).map_err(os_error)?;
    Ok(fd)
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
    /// ([dead pipes](crate::kernels#dead-pipes)).
    ///
    /// The read end of the selector's own wake-up pipe (which a caller can
    /// only name with `borrow_raw`) is refused with `EINVAL`. Every kernel
    /// looks knotes up by (fd, filter) ([fd filters](crate::kernels#fd-filters)),
    /// so the `EV_ADD` would reach the wake-up knote itself rather than make
    /// a new one (FreeBSD's `kqueue_register` rewrites its `udata` from the
    /// change, handing the wake-ups to the key), and the key's `unregister`
    /// would `EV_DELETE` it, ending the wake-ups on every kernel.
    #[doc(alias = "kevent")]
    fn add(&mut self, source: BorrowedFd<'_>, events: Events, token: Token) -> Result<(), OsError> {
        if source.as_raw_fd() == self.wake.read_fd() {
            return Err(OsError::EINVAL);
        }
        let settled = self.submit(source, &Changes::add(events), token)?;
        self.track(source.as_raw_fd(), token, settled)
    }

    /// `EV_ADD` of the filters only `new` has, `EV_DELETE` of the ones only
    /// `old` has, and `EV_ENABLE` (a no-op check) of the ones both have, in
    /// one `kevent` call. The check makes a `modify` of an fd whose
    /// registration is gone (closed while registered, the number reused)
    /// fail with `ENOENT` (`EBADF` for a closed fd on the BSDs), as epoll's
    /// `EPOLL_CTL_MOD` does ([fd filters](crate::kernels#fd-filters)). If
    /// part of it is refused, the applied part is undone.
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
        let settled = self.submit(source, &Changes::modify(old, new), token)?;
        self.track(fd, token, settled)
    }

    /// `EV_DELETE` of the registered filters, in one `kevent` call. A receipt
    /// of `EBADF` (the fd was closed, which removed its filters) or `ENOENT`
    /// (the filter is gone: closed, number maybe reused; XNU's answer for a
    /// closed fd too) means the filter is not watched, so it counts as
    /// success, as in Python. If one filter's delete is refused otherwise,
    /// the other is added back with `token`, so the kernel is as before.
    #[doc(alias = "kevent")]
    fn delete(
        &mut self,
        source: BorrowedFd<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError> {
        let fd = source.as_raw_fd();
        let events = self.in_kernel(fd, events);
        self.submit(source, &Changes::delete(events), token)?;
        if !self.peer_gone.is_empty() {
            self.peer_gone.remove(fd);
        }
        Ok(())
    }

    /// The application says it closed `fd` while registered: `EV_DELETE` of
    /// its filters by number, in one `kevent` call, errors ignored. If it
    /// did close it, the kernel dropped the filters with it
    /// (`knote_fdclose`) and the call answers `EBADF` (`ENOENT` on XNU, or
    /// when the number names another file by now); if the fd is open still,
    /// its filters go, so no event of a key the table no longer has is left
    /// behind. No other registration can be touched: the table had no other
    /// key under this number, and the wake-up pipe's number is never
    /// deleted. The backend's own record of a pipe whose reader is gone is
    /// dropped too.
    #[doc(alias = "kevent")]
    fn delete_closed(&mut self, fd: RawFd, events: Events, token: Token) {
        if fd != self.wake.read_fd() {
            let events = self.in_kernel(fd, events);
            let _ = self.apply(fd, &Changes::delete(events), token, |_| false);
        }
        if !self.peer_gone.is_empty() {
            self.peer_gone.remove(fd);
        }
    }

    /// `kevent` with an empty change list into the buffer, then the merge.
    /// No rounding: the timeout is passed as a `timespec`. An early return
    /// or `EINTR` waits again for the time that is left on the monotonic
    /// clock; sleeps longer than 10⁸ s are split; `Duration::MAX` is
    /// "forever". While a write end whose reader is gone is registered for
    /// WRITE, it is ready: the wait only polls, and reports it. In a fork
    /// child the kernel refuses the inherited kqueue's number, and the wait
    /// fails with [`Error::Forked`].
    #[doc(alias = "kevent")]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.len = 0;
        self.extra.clear();
        if !self.peer_gone.is_empty() {
            return self.poll_with_peer_gone();
        }
        let start = now();
        let deadline = Deadline::new(start, timeout);
        let mut sleep = deadline.sleep(start).timeout();
        loop {
            let ts = sleep.map(timespec);
            let kq = self.fd.get().as_fd();
            match unchecked::kevent(kq, &[], self.raw.as_uninit_mut(), ts.as_ref()) {
                // Any event ends the wait, even if the merge drops it (the
                // wake-up pipe's): a wake-up is an empty batch.
                Ok(events) if !events.is_empty() => {
                    let merged = merge(events, readiness_of, &mut self.ready);
                    self.len = merged.count;
                    self.wake.consume(merged.woken).map_err(Error::Os)?;
                    return Ok(self.len);
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(self.refused(e)),
            }
            match deadline.sleep(now()) {
                Sleep::Expired => return Ok(0),
                next => sleep = next.timeout(),
            }
        }
    }

    #[inline]
    fn batch_len(&self) -> usize {
        self.len + self.extra.len()
    }

    #[inline]
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        match index.checked_sub(self.len) {
            None => self.ready.get(index).copied(),
            Some(i) => self.extra.get(i).copied(),
        }
    }
}

impl<const E: usize> Kqueue<E> {
    /// `wait` while some fd is filed in `peer_gone`: one `kevent` that does
    /// not sleep, its events merged, and WRITE for every filed fd.
    fn poll_with_peer_gone(&mut self) -> Result<usize, Error> {
        let zero = timespec(Duration::ZERO);
        let events = loop {
            let kq = self.fd.get().as_fd();
            match unchecked::kevent(kq, &[], self.raw.as_uninit_mut(), Some(&zero)) {
                Ok(events) => break events,
                Err(Errno::INTR) => {}
                Err(e) => return Err(self.refused(e)),
            }
        };
        let merged = merge(events, readiness_of, &mut self.ready);
        self.len = merged.count;
        self.wake.consume(merged.woken).map_err(Error::Os)?;
        // `merge` wrote at most `ready.len()` entries.
        self.peer_gone
            .report(&mut self.ready[..self.len], &mut self.extra);
        Ok(self.len + self.extra.len())
    }
}

impl<const E: usize> Renew for Kqueue<E> {
    /// A fresh kqueue, with the selector's wake-up pipe registered in it:
    /// what [`Selector::rebuild`](ioselect_core::SelectorIn::rebuild)
    /// fills with the keys. Nothing is shared with this kqueue, so a
    /// failed rebuild, which drops the fresh one, leaves this one and its
    /// registrations as they were; a successful one drops this one, and
    /// nothing of it is left (no waker holds a kqueue).
    ///
    /// The fresh kqueue registers `dup`s of the wake-up pipe's ends (the
    /// registration belongs to the read end's number, and this backend's
    /// goes when it is dropped), so every [`Waker`] made for this backend
    /// wakes the new one. In a fork child (this kqueue is the parent's) the
    /// fresh kqueue gets a pipe of its own instead, so the child's wakes
    /// and the parent's stay apart; the inherited kqueue number is neither
    /// used nor closed. See [wake-up](crate::kernels#wake-up) and [fork and
    /// exec](crate::kernels#fork-and-exec).
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds; the registration's refusal.
    fn renew(&self) -> Result<Self, OsError> {
        let fd = new_kqueue()?;
        let wake = if self.fd.is_inherited() {
            WakePipe::new()?
        } else {
            self.wake.dup()?
        };
        wake.register(fd.get().as_fd())?;
        Ok(Self::from_parts(fd, wake))
    }
}

impl<const E: usize> AsFd for Kqueue<E> {
    /// The kqueue fd (in a fork child: the parent's number, not open here).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.kq()
    }
}

impl<const E: usize> core::fmt::Debug for Kqueue<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Kqueue")
            .field("fd", self.fd.get())
            .field("capacity", &E)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<const E: usize> defmt::Format for Kqueue<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Kqueue {{ fd: {=i32}, capacity: {=usize} }}",
            self.kq().as_raw_fd(),
            E
        );
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    /// `register` of the number of the selector's own wake-up pipe (a
    /// hostile or careless `borrow_raw`) is refused with `EINVAL`; the data
    /// comes back, the table is empty, and wakes still end a `select`
    /// without being reported as a key.
    #[test]
    #[allow(unsafe_code)]
    fn register_of_the_wake_pipe_is_refused() {
        let kq = Kqueue::<4>::new().unwrap();
        let own_fd = kq.wake.read_fd();
        let waker = crate::Waker::new(&kq).unwrap();
        let mut sel: ioselect_core::Selector<Kqueue<4>, u32, 4> = ioselect_core::Selector::new(kq);
        // SAFETY: the number is the selector's own pipe, open for as long as
        // `sel` lives, which outlives this borrow.
        let own = unsafe { BorrowedFd::borrow_raw(own_fd) };
        let refused = sel.register(own, Events::READ, 7).unwrap_err();
        assert_eq!(refused.error, Error::Os(OsError::EINVAL));
        assert_eq!(refused.data, 7);
        assert!(sel.is_empty());
        for _ in 0..2 {
            waker.wake().unwrap();
            let start = std::time::Instant::now();
            sel.select(Some(Duration::from_secs(10))).unwrap();
            // The wake ended the wait (10 s would be a lost wake-up).
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the wake was lost"
            );
            assert!(sel.next_ready().is_none(), "a wake reported as a key");
        }
    }
}
