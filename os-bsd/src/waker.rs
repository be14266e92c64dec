//! Waking a blocked `select` from another thread or a signal handler.

use ioselect_core::{OsError, Token};
use rustix::event::kqueue::{Event, EventFilter, EventFlags};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};

use crate::Kqueue;
use crate::kqueue::{apply_one, os_error, udata};

/// Wakes a `select` blocked on a [`Kqueue`] selector. Its wake-ups are
/// registered under [`Token::INTERNAL`], so they end the wait but never show
/// up as a key.
///
/// - macOS, iOS, FreeBSD, DragonFly: an `EVFILT_USER` event (`EV_CLEAR`) on
///   a `dup` of the kqueue fd; [`wake`](Self::wake) is one `kevent` call with
///   `NOTE_TRIGGER`.
/// - NetBSD, OpenBSD (no `EVFILT_USER` in rustix there): a non-blocking
///   pipe whose read end is in the kqueue, edge-triggered (`EV_CLEAR`), so
///   it never needs draining by the selector; [`wake`](Self::wake) writes one
///   byte, and only when the pipe is full drains it and writes again (as
///   mio does).
///
/// `Send + Sync`: share it with other threads by reference (`&Waker`), in an
/// `Arc`, or in a `static`. `wake` is async-signal-safe: a `kevent`, or a
/// `write` and at worst `read`s and a `write`; no locks, no allocation. (Like
/// any syscall that can fail, it may change `errno`; a signal handler that
/// must preserve `errno` saves and restores it.)
///
/// The waker holds its own fds, so it may outlive the selector (its wakes
/// then reach no one). Dropping it removes its registration.
///
/// ```
/// # #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd",
/// #           target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
/// # fn main() -> Result<(), ioselect_bsd::Error> {
/// use ioselect_bsd::{DefaultSelector, Waker};
///
/// let mut sel = DefaultSelector::<(), 4>::open()?;
/// let waker = Waker::new(sel.backend())?;
/// std::thread::scope(|s| {
///     s.spawn(|| waker.wake().unwrap());
///     sel.select(None) // returns once woken
/// })?;
/// assert!(sel.next_ready().is_none()); // the wake-up is not a key
/// # Ok(())
/// # }
/// # #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd",
/// #               target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd")))]
/// # fn main() {}
/// ```
///
/// # References
///  - [FreeBSD kevent(2), `EVFILT_USER`](https://man.freebsd.org/cgi/man.cgi?query=kevent&sektion=2)
///  - [pipe(2)](https://man.openbsd.org/pipe.2)
#[derive(Debug)]
pub struct Waker {
    inner: imp::Inner,
}

impl Waker {
    /// Registers a new waker with `kqueue`.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds, `ENOMEM`, or the kernel's refusal
    /// of the registration.
    pub fn new<const E: usize>(kqueue: &Kqueue<E>) -> Result<Self, OsError> {
        Ok(Self {
            inner: imp::Inner::new(kqueue)?,
        })
    }

    /// Wakes the selector: its current or next `select` returns, with no key
    /// for this wake-up. Async-signal-safe.
    ///
    /// # Errors
    /// Only an unexpected kernel error.
    #[doc(alias = "NOTE_TRIGGER")]
    pub fn wake(&self) -> Result<(), OsError> {
        self.inner.wake()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Waker {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Waker");
    }
}

#[cfg(evfilt_user)]
mod imp {
    use super::*;
    use rustix::event::kqueue::{UserDefinedFlags, UserFlags};

    #[derive(Debug)]
    pub(super) struct Inner {
        /// A `dup` of the kqueue fd: the same kqueue, kept open by the
        /// waker. Its number, unique while it is open, is the `ident` of the
        /// waker's `EVFILT_USER` event, so wakers of one kqueue never share
        /// one.
        kq: OwnedFd,
    }

    impl Inner {
        pub(super) fn new<const E: usize>(kqueue: &Kqueue<E>) -> Result<Self, OsError> {
            let kq = rustix::io::fcntl_dupfd_cloexec(kqueue, 0).map_err(os_error)?;
            let inner = Self { kq };
            apply_one(
                inner.kq.as_fd(),
                inner.event(UserFlags::empty(), EventFlags::ADD | EventFlags::CLEAR),
            )?;
            Ok(inner)
        }

        pub(super) fn wake(&self) -> Result<(), OsError> {
            // `EV_ADD` again (idempotent) as mio does, so a trigger can
            // never miss its event.
            apply_one(
                self.kq.as_fd(),
                self.event(UserFlags::TRIGGER, EventFlags::ADD | EventFlags::CLEAR),
            )
        }

        fn event(&self, fflags: UserFlags, flags: EventFlags) -> Event {
            Event::new(
                EventFilter::User {
                    ident: self.kq.as_raw_fd() as _,
                    flags: fflags,
                    user_flags: UserDefinedFlags::new(0),
                },
                flags | EventFlags::RECEIPT,
                udata(Token::INTERNAL),
            )
        }
    }

    impl Drop for Inner {
        fn drop(&mut self) {
            // An `EVFILT_USER` event is not tied to an fd, so closing `kq`
            // would leave it in the kqueue. Nothing to do if this fails: the
            // event only ends waits, and dies with the kqueue.
            let _ = apply_one(
                self.kq.as_fd(),
                self.event(UserFlags::empty(), EventFlags::DELETE),
            );
        }
    }
}

#[cfg(not(evfilt_user))]
mod imp {
    use super::*;
    use rustix::io::Errno;
    use rustix::pipe::{PipeFlags, pipe_with};

    #[derive(Debug)]
    pub(super) struct Inner {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Inner {
        pub(super) fn new<const E: usize>(kqueue: &Kqueue<E>) -> Result<Self, OsError> {
            let (read, write) =
                pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(os_error)?;
            // Closing `read` (on drop) removes this registration.
            apply_one(
                kqueue.as_fd(),
                Event::new(
                    EventFilter::Read(read.as_raw_fd()),
                    EventFlags::ADD | EventFlags::CLEAR | EventFlags::RECEIPT,
                    udata(Token::INTERNAL),
                ),
            )?;
            Ok(Self { read, write })
        }

        pub(super) fn wake(&self) -> Result<(), OsError> {
            match self.write_byte() {
                // Full: earlier wakes are pending (the selector never reads
                // the pipe). Drain it and write again, so this wake is a new
                // edge; concurrent wakes each end with a write, so the pipe
                // is never left empty by a drain.
                Err(Errno::AGAIN) => {
                    self.drain()?;
                    match self.write_byte() {
                        // Refilled meanwhile by other wakes: they are edges.
                        Ok(()) | Err(Errno::AGAIN) => Ok(()),
                        Err(e) => Err(os_error(e)),
                    }
                }
                result => result.map_err(os_error),
            }
        }

        fn write_byte(&self) -> Result<(), Errno> {
            loop {
                match rustix::io::write(&self.write, &[1]) {
                    Err(Errno::INTR) => {}
                    result => return result.map(|_| ()),
                }
            }
        }

        fn drain(&self) -> Result<(), OsError> {
            let mut buf = [0u8; 256];
            loop {
                match rustix::io::read(&self.read, &mut buf) {
                    Ok(0) | Err(Errno::AGAIN) => return Ok(()),
                    Ok(_) | Err(Errno::INTR) => {}
                    Err(e) => return Err(os_error(e)),
                }
            }
        }
    }
}
