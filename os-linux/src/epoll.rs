//! The epoll backend.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use ioselect_core::{Backend, Error, Events, OpenBackend, OsError, RawFd, Renew, Token};
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::io::fcntl_dupfd_cloexec;
use rustix::time::{ClockId, Timespec, clock_gettime};

/// The longest single `epoll_wait` timeout: below `c_int::MAX` milliseconds,
/// so plain `epoll_pwait` is used on every kernel; longer waits loop.
const MAX_WAIT: Duration = Duration::from_secs(1_000_000);

/// An epoll instance with a fixed buffer of `E` events, implementing
/// [`Backend`]: Python's `select.epoll` as a selector backend.
///
/// [`DefaultSelector::open`](crate::DefaultSelector::open) makes one; or
/// make it with [`OpenBackend::open`] and hand it to
/// [`Selector::new`](ioselect_core::Selector::new).
/// If more than `E` fds are ready at once, the rest come in the next
/// `select` (readiness is level-triggered, and a pending wake-up stays
/// queued until reported). `E` must be at least 1, a compile-time check:
///
/// ```compile_fail
/// let _ = ioselect_linux::backend::Epoll::<0>::new();
/// ```
///
/// Each `Epoll` owns an `eventfd`, in its interest set from the start under
/// [`Token::INTERNAL`], that every [`Waker`](crate::Waker) made for it
/// writes to (through a `dup`). The application never sees that fd, so no
/// `register`, `modify` or `unregister` of an application's source, stale
/// or not, can reach the selector's own registration.
///
/// # References
///  - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
#[doc(alias = "epoll")]
pub struct Epoll<const E: usize = 256> {
    fd: OwnedFd,
    /// The wake-up eventfd, registered edge-triggered under `INTERNAL`.
    notify: OwnedFd,
    /// A [`Waker`](crate::Waker) was made for this epoll (or one it was
    /// renewed from): only then can a wait report the eventfd, and is the
    /// batch looked through for it. Set through `&self` (`Waker::new`).
    wakers: AtomicBool,
    events: [epoll::Event; E],
    /// Events the last wait stored.
    ready: usize,
    /// [`READINESS`], copied into each instance (see [`readiness`]).
    readiness: Readiness,
}

impl<const E: usize> Epoll<E> {
    /// `epoll_create1(EPOLL_CLOEXEC)`: a new epoll instance.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds, `ENOMEM`.
    ///
    /// # References
    ///  - [epoll_create1(2)](https://man7.org/linux/man-pages/man2/epoll_create1.2.html)
    #[doc(alias = "epoll_create1")]
    pub fn new() -> Result<Self, OsError> {
        let notify =
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(os_error)?;
        Self::with_notify(notify, false)
    }

    /// A new epoll instance watching `notify` (the wake-up eventfd), for
    /// which wakers were made (`wakers`) or not.
    fn with_notify(notify: OwnedFd, wakers: bool) -> Result<Self, OsError> {
        const EMPTY: epoll::Event = epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        const { assert!(E > 0, "an Epoll needs room for at least one event (E >= 1)") };
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(os_error)?;
        // Edge-triggered: every `wake` is an edge, and an edge not yet
        // reported stays on epoll's ready list. A wait that reports it reads
        // the counter back to 0 (`take_wake`).
        epoll::add(
            &fd,
            &notify,
            EventData::new_u64(Token::INTERNAL.get()),
            EventFlags::IN | EventFlags::ET,
        )
        .map_err(os_error)?;
        Ok(Self {
            fd,
            notify,
            wakers: AtomicBool::new(wakers),
            events: [EMPTY; E],
            ready: 0,
            readiness: READINESS,
        })
    }

    /// A new fd for the wake-up eventfd, for a `Waker`.
    pub(crate) fn waker_fd(&self) -> Result<OwnedFd, OsError> {
        let fd = fcntl_dupfd_cloexec(&self.notify, 0).map_err(os_error)?;
        self.wakers.store(true, Ordering::Relaxed);
        Ok(fd)
    }
}

impl<const E: usize> OpenBackend for Epoll<E> {
    fn open() -> Result<Self, OsError> {
        Self::new()
    }
}

impl<const E: usize> Renew for Epoll<E> {
    /// A new epoll instance watching (a `dup` of) the same wake-up eventfd,
    /// so the wakers made for this one wake the new one.
    fn renew(&self) -> Result<Self, OsError> {
        let notify = fcntl_dupfd_cloexec(&self.notify, 0).map_err(os_error)?;
        Self::with_notify(notify, self.wakers.load(Ordering::Relaxed))
    }
}

impl<const E: usize> AsFd for Epoll<E> {
    /// The epoll fd, to wait on it from another poller (it is readable
    /// while an event is ready), as Python's `EpollSelector.fileno()`.
    ///
    /// `epoll_ctl` on it voids the selector's promise that every event
    /// reaches the key it belongs to: a registration made there carries
    /// whatever `data` its caller chose, which the selector cannot tell from
    /// a key's token.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl<const E: usize> core::fmt::Debug for Epoll<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Epoll")
            .field("fd", &self.fd)
            .field("notify", &self.notify)
            .field("capacity", &E)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<const E: usize> defmt::Format for Epoll<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Epoll {{ fd: {=i32}, capacity: {=usize} }}",
            self.fd.as_raw_fd(),
            E
        );
    }
}

/// `Events` → epoll interest flags (level-triggered).
#[inline]
fn interest(events: Events) -> EventFlags {
    let mut flags = EventFlags::empty();
    if events.contains(Events::READ) {
        flags |= EventFlags::IN;
    }
    if events.contains(Events::WRITE) {
        flags |= EventFlags::OUT;
    }
    flags
}

/// epoll readiness → `Events`, as CPython's `EpollSelector.select` does it:
/// anything but `EPOLLIN` (`OUT`, `ERR`, `HUP`, …) counts as writable and
/// anything but `EPOLLOUT` (`IN`, `ERR`, `HUP`, `RDHUP`, …) as readable, so
/// errors and hang-ups reach whichever interest is registered.
///
/// One table load (callgrind: 3 instructions an event instead of 7): the
/// five low bits (`IN`, `PRI`, `OUT`, `ERR`, `HUP`) index [`READINESS`].
/// They are all epoll can report here. Linux's `fs/eventpoll.c` reports
/// `vfs_poll(file, pt) & epi->event.events` (`ep_item_poll`), and that
/// interest is what [`interest`] asked for (`IN`, `OUT`) plus
/// `EPOLLERR | EPOLLHUP`, which `do_epoll_ctl` adds on `EPOLL_CTL_ADD` and
/// `EPOLL_CTL_MOD`. The wake-up eventfd's `EPOLLET` is an input flag that
/// `vfs_poll` never returns. The build checks that those four flags are
/// among the five bits on the target; a debug build checks every event.
///
/// Each `Epoll` holds its own copy of the table (32 bytes), which the hot
/// path reads through `self`: x86-64 cannot index a table by its address
/// relative to the code, so a global one needs a register of its own in the
/// caller's event loop (callgrind: 3 instructions a select more, the
/// register and the spill it caused).
#[inline]
fn readiness(table: &Readiness, flags: EventFlags) -> Events {
    debug_assert!(
        flags.bits() <= READINESS_LAST,
        "epoll reported flags outside its interest"
    );
    table[(flags.bits() & READINESS_LAST) as usize]
}

/// The last index of [`READINESS`]: all five low bits.
const READINESS_LAST: u32 = 31;

// Every flag epoll reports here is one of the five low bits, on every
// target: a build where they are not fails here.
const _: () = assert!(
    (EventFlags::IN.bits()
        | EventFlags::OUT.bits()
        | EventFlags::ERR.bits()
        | EventFlags::HUP.bits())
        <= READINESS_LAST
);

/// A readiness table: `Events` by epoll's five low event bits.
type Readiness = [Events; READINESS_LAST as usize + 1];

/// [`readiness`] of every value of epoll's five low event bits, made by
/// CPython's rule.
const READINESS: Readiness = {
    let (in_, out) = (EventFlags::IN.bits(), EventFlags::OUT.bits());
    let mut table = [Events::empty(); READINESS_LAST as usize + 1];
    let mut flags = 0;
    while flags <= READINESS_LAST {
        let mut events = 0;
        if flags & !in_ != 0 {
            events |= Events::WRITE.bits();
        }
        if flags & !out != 0 {
            events |= Events::READ.bits();
        }
        table[flags as usize] = Events::from_bits_retain(events);
        flags += 1;
    }
    table
};

/// A rustix error as core's `OsError`.
#[inline]
pub(crate) fn os_error(e: Errno) -> OsError {
    OsError::from_raw(e.raw_os_error())
}

#[inline]
fn now() -> Duration {
    let t = clock_gettime(ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative.
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

#[inline]
fn timespec(d: Duration) -> Timespec {
    // `d <= MAX_WAIT`, so the seconds fit.
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// The crate's `unsafe`: what rustix cannot check for it.
#[allow(unsafe_code)]
mod unchecked {
    use super::Epoll;

    // SAFETY: `Epoll` holds an `OwnedFd` (Send + Sync) and a buffer of
    // `epoll::Event`s, which are `!Send`/`!Sync` only because rustix's
    // `EventData` union has a pointer variant. This backend never stores a
    // pointer in it: only `u64` tokens go in, and the kernel writes plain
    // bytes back. Moving or sharing those bytes between threads is sound, and
    // the kernel's epoll calls are themselves thread-safe.
    unsafe impl<const E: usize> Send for Epoll<E> {}
    // SAFETY: as for `Send`; `&Epoll` only reads the buffer (`event`) and
    // passes the fd to thread-safe syscalls (`epoll_ctl`, `epoll_wait`).
    unsafe impl<const E: usize> Sync for Epoll<E> {}

    /// `epoll_ctl(EPOLL_CTL_DEL)` of whatever `fd` names now, from `epoll`'s
    /// interest set; the outcome is not needed (see `delete_closed`).
    pub(super) fn delete_number(epoll: rustix::fd::BorrowedFd<'_>, fd: ioselect_core::RawFd) {
        if fd < 0 {
            return;
        }
        // SAFETY: the application says `fd` was closed, so the number may be
        // closed, or name another file by now; `borrow_raw`'s contract (the
        // fd stays open while borrowed) only decides which file the call
        // names. `EPOLL_CTL_DEL` looks the number up in this process's fd
        // table and the (file, number) pair up in this epoll's interest set,
        // and touches nothing else: on a closed number it fails with
        // `EBADF`, on a file not watched under this number with `ENOENT`.
        // Whatever file it names, its registration under this number is no
        // live key's (the table has no key for the number but the one being
        // removed) and not the selector's own (the caller skips the wake-up
        // eventfd). No memory is reached through the number, and the
        // borrow ends with the call.
        let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(fd) };
        let _ = rustix::event::epoll::delete(epoll, fd);
    }
}

impl<const E: usize> Backend for Epoll<E> {
    /// The caller's `BorrowedFd`: every `epoll_ctl` gets an fd the caller
    /// proves open for the call, none is made from a number.
    type Source<'a> = BorrowedFd<'a>;

    /// epoll watches open files: one closed while registered that lives on
    /// in a `dup` or a child stays watched under its old token, and only
    /// its closed number could name it to `epoll_ctl`.
    const REGISTRATIONS_OUTLIVE_FDS: bool = true;

    #[inline]
    fn fd(source: BorrowedFd<'_>) -> RawFd {
        source.as_raw_fd()
    }

    /// `epoll_ctl(EPOLL_CTL_ADD)`. When epoll already watches this open
    /// file under this number (`EEXIST`: the selector has no key for the
    /// number, so that is a registration left over from a key closed while
    /// registered, whose file came back under the same number), it is taken
    /// over with `EPOLL_CTL_MOD`: the new token and events, one call that
    /// touches no other registration. The number of the selector's own
    /// wake-up eventfd (which a caller can only name with `borrow_raw`) is
    /// refused with `EINVAL`, as epoll refuses an epoll fd watching itself:
    /// taken over, it would hand the wake-ups to a key, and that key's
    /// `unregister` would end them.
    #[doc(alias = "epoll_ctl")]
    #[inline]
    fn add(&mut self, fd: BorrowedFd<'_>, events: Events, token: Token) -> Result<(), OsError> {
        let data = EventData::new_u64(token.get());
        match epoll::add(&self.fd, fd, data, interest(events)) {
            Err(Errno::EXIST) => self.take_over(fd, events, token),
            result => result.map_err(os_error),
        }
    }

    /// `epoll_ctl(EPOLL_CTL_MOD)`: one call, so it either happens or not.
    #[doc(alias = "epoll_ctl")]
    #[inline]
    fn modify(
        &mut self,
        fd: BorrowedFd<'_>,
        _old: Events,
        new: Events,
        token: Token,
    ) -> Result<(), OsError> {
        epoll::modify(&self.fd, fd, EventData::new_u64(token.get()), interest(new))
            .map_err(os_error)
    }

    /// `epoll_ctl(EPOLL_CTL_DEL)`. `ENOENT` (the key's fd was closed and its
    /// number reused by this file, which is not in the set) means it is not
    /// watched, so it counts as success, as in Python.
    #[doc(alias = "epoll_ctl")]
    #[inline]
    fn delete(
        &mut self,
        fd: BorrowedFd<'_>,
        _events: Events,
        _token: Token,
    ) -> Result<(), OsError> {
        match epoll::delete(&self.fd, fd) {
            Ok(()) | Err(Errno::BADF | Errno::NOENT) => Ok(()),
            Err(e) => Err(os_error(e)),
        }
    }

    /// `epoll_wait`, rounding a timeout up to whole milliseconds, retrying
    /// on `EINTR` and on an early return with the time that is left.
    #[doc(alias = "epoll_wait")]
    #[doc(alias = "epoll_pwait")]
    #[inline]
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        // The two common cases stay small enough to inline into the caller's
        // event loop; see `wait_deadline` for why that matters.
        let result = match timeout {
            Some(t) if t.is_zero() => self.wait_once(Some(Duration::ZERO)),
            Some(t) => self.wait_deadline(t),
            None => loop {
                match self.wait_once(None) {
                    Ok(0) | Err(OsError::EINTR) => {}
                    result => break result,
                }
            },
        };
        match result {
            Ok(n) => {
                if n > 0 && *self.wakers.get_mut() {
                    self.take_wake(n);
                }
                // Stored after the wake-up is taken: the count then reaches
                // the selector's loop as the value `epoll_wait` returned,
                // not as a load (`take_wake`'s cold `drain_notify` is an
                // opaque call with `self`: for all the compiler knows, the
                // `AtomicBool` in it lets it write the count).
                self.ready = n;
                Ok(n)
            }
            Err(e) => {
                self.ready = 0;
                Err(Error::Os(e))
            }
        }
    }

    /// Removes the registration `fd` names, if any, unless it is the
    /// selector's own wake-up eventfd: an application that calls
    /// `unregister_closed` before `close` (or whose fd is still open after
    /// all) leaves nothing behind. A number that is closed while its open
    /// file lives on (a `dup`, a child) cannot name the registration: that
    /// one stays (`Error::StaleRegistration` from `select`).
    #[doc(alias = "epoll_ctl")]
    fn delete_closed(&mut self, fd: RawFd, _events: Events, _token: Token) {
        if fd != self.notify.as_raw_fd() {
            unchecked::delete_number(self.fd.as_fd(), fd);
        }
    }

    #[inline]
    fn batch_len(&self) -> usize {
        self.ready
    }

    #[inline]
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        if index >= self.ready {
            return None;
        }
        self.event_in_batch(index)
    }

    /// `event` without the check against the last count (the selector
    /// makes it): past that count, the buffer's older entries; past the
    /// buffer, an entry of it when its length is a power of two (the index
    /// is masked), `None` otherwise.
    #[inline]
    fn event_in_batch(&self, index: usize) -> Option<(u64, Events)> {
        // A power-of-two buffer keeps any index in it with a mask (one
        // instruction, no branch); otherwise the index is checked.
        let event = if E.is_power_of_two() {
            self.events.get(index & (E - 1))?
        } else {
            self.events.get(index)?
        };
        // Copy out of the (packed on x86_64) struct before use.
        let (flags, data) = (event.flags, event.data);
        Some((data.u64(), readiness(&self.readiness, flags)))
    }
}

impl<const E: usize> Epoll<E> {
    /// `EPOLL_CTL_MOD` of a registration `add` found left over (`EEXIST`),
    /// with the new token and events. `EEXIST` again if even that fails.
    #[cold]
    fn take_over(
        &mut self,
        fd: BorrowedFd<'_>,
        events: Events,
        token: Token,
    ) -> Result<(), OsError> {
        // The wake-up eventfd is always in the set, so its number ends up
        // here, never on the hot path.
        if fd.as_raw_fd() == self.notify.as_raw_fd() {
            return Err(OsError::EINVAL);
        }
        let data = EventData::new_u64(token.get());
        epoll::modify(&self.fd, fd, data, interest(events)).map_err(|_| OsError::EEXIST)
    }

    /// Consumes a wake-up the first `n` events report: reads the wake-up
    /// eventfd back to 0, so its counter is non-zero exactly while a wake is
    /// pending (a fresh epoll made by `renew` would otherwise report a wake
    /// nobody sent). A wake written after the read is a new edge and ends
    /// the next wait; one written between `epoll_wait` and the read is
    /// answered by this one.
    #[inline(always)]
    fn take_wake(&mut self, n: usize) {
        // `n <= E`: `epoll_wait` fills at most the buffer it is given.
        for event in &self.events[..n] {
            if ({ event.data }).u64() == Token::INTERNAL.get() {
                self.drain_notify();
                return;
            }
        }
    }

    #[cold]
    fn drain_notify(&self) {
        let mut count = [0u8; 8];
        loop {
            match rustix::io::read(&self.notify, &mut count) {
                Err(Errno::INTR) => {}
                // `EAGAIN`: another reader (none exists) took it; any other
                // error leaves at worst one early return of a renewed epoll.
                _ => return,
            }
        }
    }

    /// [`Backend::wait`] with a positive timeout: waits until the deadline,
    /// retrying on `EINTR` and on an early return with the time that is
    /// left.
    ///
    /// Kept out of line so that `wait` inlines for `None` and zero timeouts:
    /// then the `epoll_wait` syscall sits in the caller's own frame. That is
    /// measurable: on a machine that clears the return-stack predictor on
    /// kernel exit (the benchmarks' VM), every function return between the
    /// syscall and the caller's loop mispredicts, and one such return cost
    /// ~150 ns per select there (`tests/benches/select/`).
    #[inline(never)]
    fn wait_deadline(&mut self, timeout: Duration) -> Result<usize, OsError> {
        // `None` for "forever": a timeout too large to add to now. One clock
        // read: the first wait is the whole timeout, measured from it.
        let deadline = now().checked_add(timeout);
        let mut left = deadline.map(|_| timeout);
        loop {
            match self.wait_once(left) {
                Ok(0) | Err(OsError::EINTR) => {}
                result => return result,
            }
            if let Some(deadline) = deadline {
                let rest = deadline.saturating_sub(now());
                if rest.is_zero() {
                    return Ok(0);
                }
                left = Some(rest);
            }
        }
    }

    /// One `epoll_wait`; `EINTR` comes back as `OsError::EINTR`.
    #[inline]
    fn wait_once(&mut self, timeout: Option<Duration>) -> Result<usize, OsError> {
        let ts = timeout.map(|t| timespec(t.min(MAX_WAIT)));
        epoll::wait(&self.fd, &mut self.events[..], ts.as_ref()).map_err(os_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A selector (and its waker) may move to, or be shared with, another
    /// thread: the tokens in the event buffer are plain integers.
    #[test]
    fn epoll_is_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Epoll<1>>();
        send_sync::<Epoll>();
        send_sync::<crate::DefaultSelector<u32, 4>>();
        send_sync::<crate::LargeSelector<u32>>();
        send_sync::<crate::Waker>();
    }

    /// `batch_len` is the count the last wait returned (0 before any), and
    /// `event_in_batch` stays in the buffer whatever the index: a
    /// power-of-two buffer masks it (index `E` is entry 0), any other
    /// length answers `None` past its end.
    fn batch_len_and_event_in_batch<const E: usize>() {
        let mut epoll = Epoll::<E>::new().unwrap();
        assert_eq!(epoll.batch_len(), 0);
        let fds: [OwnedFd; 5] =
            core::array::from_fn(|_| eventfd(1, EventfdFlags::CLOEXEC).unwrap());
        for (i, fd) in (1..).zip(&fds) {
            epoll
                .add(fd.as_fd(), Events::READ, Token::reserved(i))
                .unwrap();
        }
        let n = epoll.wait(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(n, E.min(fds.len()));
        assert_eq!(epoll.batch_len(), n);
        for index in 0..n {
            assert!(epoll.event_in_batch(index).is_some());
            assert_eq!(epoll.event_in_batch(index), epoll.event(index));
        }
        let (wrap, last) = if E.is_power_of_two() {
            (epoll.event_in_batch(0), epoll.event_in_batch(E - 1))
        } else {
            (None, None)
        };
        assert_eq!(epoll.event_in_batch(E), wrap);
        assert_eq!(epoll.event_in_batch(usize::MAX), last);
        for (i, fd) in (1..).zip(&fds) {
            epoll
                .delete(fd.as_fd(), Events::READ, Token::reserved(i))
                .unwrap();
        }
        assert_eq!(epoll.wait(Some(Duration::ZERO)).unwrap(), 0);
        assert_eq!(epoll.batch_len(), 0);
    }

    #[test]
    fn batch_len_and_event_in_batch_power_of_two() {
        batch_len_and_event_in_batch::<4>();
        batch_len_and_event_in_batch::<1>();
    }

    #[test]
    fn batch_len_and_event_in_batch_other_lengths() {
        batch_len_and_event_in_batch::<3>();
        batch_len_and_event_in_batch::<6>();
    }

    /// `delete_closed` of the number of the selector's own wake-up eventfd
    /// (a stale key could only carry it through a bug elsewhere) leaves the
    /// wake-up registration alone.
    #[test]
    fn delete_closed_never_reaches_the_wake_registration() {
        let mut epoll = Epoll::<4>::new().unwrap();
        let notify = epoll.notify.as_raw_fd();
        epoll.delete_closed(notify, Events::READ, Token::reserved(1));
        let waker = crate::Waker::new(&epoll).unwrap();
        waker.wake().unwrap();
        let n = epoll.wait(Some(Duration::from_secs(5))).unwrap();
        assert_eq!(n, 1);
        assert_eq!(epoll.event(0).map(|e| e.0), Some(Token::INTERNAL.get()));
    }

    /// `register` of the number of the selector's own wake-up eventfd (a
    /// hostile or careless `borrow_raw`) is refused with `EINVAL`; the data
    /// comes back, the table is empty, and the kernel still reports wakes
    /// under the selector's own token, never as a key.
    #[test]
    #[allow(unsafe_code)]
    fn register_of_the_wake_eventfd_is_refused() {
        let epoll = Epoll::<4>::new().unwrap();
        let notify = epoll.notify.as_raw_fd();
        let waker = crate::Waker::new(&epoll).unwrap();
        let mut sel: ioselect_core::Selector<Epoll<4>, u32, 4> =
            ioselect_core::Selector::new(epoll);
        // SAFETY: the number is the selector's own eventfd, open for as long
        // as `sel` lives, which outlives this borrow.
        let own = unsafe { BorrowedFd::borrow_raw(notify) };
        let refused = sel.register(own, Events::READ, 7).unwrap_err();
        assert_eq!(refused.error, Error::Os(OsError::EINVAL));
        assert_eq!(refused.data, 7);
        assert!(sel.is_empty());
        for _ in 0..2 {
            waker.wake().unwrap();
            sel.select(Some(Duration::from_secs(5))).unwrap();
            // The wake ended the wait, under the selector's own token.
            assert_eq!(sel.backend().ready, 1);
            let token = sel.backend().event(0).map(|e| e.0);
            assert_eq!(token, Some(Token::INTERNAL.get()));
            assert!(sel.next_ready().is_none(), "a wake reported as a key");
            // The wake was consumed: the next select times out empty.
            sel.select(Some(Duration::ZERO)).unwrap();
            assert!(sel.next_ready().is_none());
            assert_eq!(sel.backend().ready, 0, "the wake-up came back");
        }
    }

    #[test]
    fn interest_mapping() {
        assert_eq!(interest(Events::READ), EventFlags::IN);
        assert_eq!(interest(Events::WRITE), EventFlags::OUT);
        assert_eq!(
            interest(Events::READ | Events::WRITE),
            EventFlags::IN | EventFlags::OUT
        );
    }

    /// CPython's rule, case by case, then the table for every flag set.
    #[test]
    fn readiness_mapping_matches_cpython() {
        let rw = Events::READ | Events::WRITE;
        assert_eq!(readiness(&READINESS, EventFlags::IN), Events::READ);
        assert_eq!(readiness(&READINESS, EventFlags::OUT), Events::WRITE);
        assert_eq!(readiness(&READINESS, EventFlags::IN | EventFlags::OUT), rw);
        assert_eq!(readiness(&READINESS, EventFlags::ERR), rw);
        assert_eq!(readiness(&READINESS, EventFlags::HUP), rw);
        assert_eq!(readiness(&READINESS, EventFlags::OUT | EventFlags::ERR), rw);
        // The table against CPython's two tests, for every flag set epoll
        // can report (the five low bits).
        for bits in 0..=READINESS_LAST {
            let mut events = Events::empty();
            if bits & !EventFlags::IN.bits() != 0 {
                events |= Events::WRITE;
            }
            if bits & !EventFlags::OUT.bits() != 0 {
                events |= Events::READ;
            }
            let flags = EventFlags::from_bits_retain(bits);
            assert_eq!(readiness(&READINESS, flags), events, "flags {bits:#x}");
        }
    }

    #[test]
    fn long_timeouts_are_capped_per_call() {
        let ts = timespec(Duration::MAX.min(MAX_WAIT));
        assert_eq!(ts.tv_sec, 1_000_000);
        let ms = ts.tv_sec * 1000 + (ts.tv_nsec + 999_999) / 1_000_000;
        assert!(ms < i64::from(i32::MAX));
    }
}
