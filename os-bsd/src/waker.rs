//! Waking a blocked `select` from another thread or a signal handler.

use ioselect_core::{OsError, Token};
use rustix::event::kqueue::{Event, EventFilter, EventFlags};
use rustix::fd::{AsFd, OwnedFd};

use crate::Kqueue;
use crate::kqueue::{apply_one, os_error, udata};

/// Wakes a `select` blocked on a [`Kqueue`] selector. Its wake-ups come
/// from the kqueue's own registration under [`Token::INTERNAL`], so they
/// end the wait but never show up as a key.
///
/// The registration belongs to the [`Kqueue`]: [`Kqueue::new`] makes it,
/// and nothing ever changes or removes it (no `unregister`, `modify` or
/// stale fd number can reach it). A waker holds duplicates of what it needs
/// and triggers that registration:
///
/// - macOS, iOS, FreeBSD, DragonFly: an `EVFILT_USER` event, added once
///   with `EV_CLEAR` (so one `select` consumes a wake-up). The waker holds a
///   `dup` of the kqueue fd; [`wake`](Self::wake) is one `kevent` call with
///   `NOTE_TRIGGER` and **without** `EV_CLEAR`: on FreeBSD and DragonFly an
///   `EV_CLEAR` in the trigger would reset the trigger it sets
///   (`filt_usertouch`), and the `select` would never wake.
/// - NetBSD, OpenBSD (no `EVFILT_USER` in rustix there): a non-blocking
///   pipe whose read end is in the kqueue, edge-triggered (`EV_CLEAR`), so
///   it never needs draining by the selector. The waker holds `dup`s of both
///   ends; [`wake`](Self::wake) writes one byte, and only when the pipe is
///   full drains it and writes again (as mio does).
///
/// `Send + Sync`: share it with other threads by reference (`&Waker`), in an
/// `Arc`, or in a `static`. `wake` is async-signal-safe: a `kevent`, or a
/// `write` and at worst `read`s and a `write`; no locks, no allocation. (Like
/// any syscall that can fail, it may change `errno`; a signal handler that
/// must preserve `errno` saves and restores it.)
///
/// The waker may outlive the selector. On Apple's OSes and FreeBSD-likes
/// its `dup` keeps the kernel's kqueue object alive after
/// [`Selector::close`](ioselect_core::Selector::close) (its wakes then
/// reach no one; the object goes when the last waker is dropped). On NetBSD
/// and OpenBSD the pipe lives on until the last waker is dropped.
///
/// ```
/// # #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd",
/// #           target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
/// # fn main() -> Result<(), ioselect_bsd::Error> {
/// use ioselect_bsd::DefaultSelector;
///
/// let mut sel = DefaultSelector::<(), 4>::open()?;
/// let waker = sel.waker()?;
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
    /// A waker for `kqueue`: duplicates of the fds it needs to trigger the
    /// kqueue's own wake-up registration (one or two `fcntl(F_DUPFD_CLOEXEC)`,
    /// no kernel registration). Any number of wakers may share a kqueue.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds.
    pub fn new<const E: usize>(kqueue: &Kqueue<E>) -> Result<Self, OsError> {
        Ok(Self {
            inner: kqueue.wake_source().waker(kqueue.as_fd())?,
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

pub(crate) use imp::Own;

impl AsFd for Waker {
    /// The fd the waker holds: its `dup` of the kqueue fd (Apple's OSes,
    /// FreeBSD, DragonFly) or of the wake-up pipe's read end (NetBSD,
    /// OpenBSD). No registration belongs to this number, so an
    /// `unregister` that names it (a stale key whose number the waker
    /// took) removes nothing of the selector's.
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Waker {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Waker");
    }
}

/// The `EVFILT_USER` event's `ident`. Its namespace is the kqueue's own
/// (per filter), apart from fd numbers, and the kqueue has only this one.
#[cfg(evfilt_user)]
const WAKE_IDENT: usize = 0;

/// `EventFlags` for a [`UserChange`](crate::wake::UserChange), with
/// `EV_RECEIPT`.
#[cfg(evfilt_user)]
fn user_flags(change: crate::wake::UserChange) -> EventFlags {
    let mut flags = EventFlags::RECEIPT;
    if change.add {
        flags |= EventFlags::ADD;
    }
    if change.clear {
        flags |= EventFlags::CLEAR;
    }
    flags
}

#[cfg(evfilt_user)]
mod imp {
    use super::*;
    use crate::wake::{USER_REGISTER, USER_TRIGGER, UserChange};
    use rustix::event::kqueue::{UserDefinedFlags, UserFlags};
    use rustix::fd::BorrowedFd;

    /// The kqueue's own part: its `EVFILT_USER` registration lives in the
    /// kqueue itself, nothing to hold.
    #[derive(Debug)]
    pub(crate) struct Own;

    impl Own {
        /// [`USER_REGISTER`] on `kq`: the only change with `EV_CLEAR`.
        pub(crate) fn register(kq: BorrowedFd<'_>) -> Result<Self, OsError> {
            apply_one(kq, event(USER_REGISTER))?;
            Ok(Self)
        }

        /// For a new handle `_kq` on the same kqueue (`Renew`): the
        /// `EVFILT_USER` event is the kqueue's, not an fd's, so it is there
        /// already.
        pub(crate) fn renew(&self, _kq: BorrowedFd<'_>) -> Result<Self, OsError> {
            Ok(Self)
        }

        /// A waker's part: a `dup` of the kqueue fd `kq`.
        pub(crate) fn waker(&self, kq: BorrowedFd<'_>) -> Result<Inner, OsError> {
            let kq = rustix::io::fcntl_dupfd_cloexec(kq, 0).map_err(os_error)?;
            Ok(Inner { kq })
        }
    }

    #[derive(Debug)]
    pub(crate) struct Inner {
        /// A `dup` of the kqueue fd: the same kqueue, kept open by the
        /// waker.
        kq: OwnedFd,
    }

    impl Inner {
        pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
            self.kq.as_fd()
        }

        /// [`USER_TRIGGER`]: `NOTE_TRIGGER`, no `EV_CLEAR`.
        pub(super) fn wake(&self) -> Result<(), OsError> {
            apply_one(self.kq.as_fd(), event(USER_TRIGGER))
        }
    }

    /// The `EVFILT_USER` change for `change`, tagged `Token::INTERNAL`.
    fn event(change: UserChange) -> Event {
        let fflags = if change.trigger {
            UserFlags::TRIGGER
        } else {
            UserFlags::empty()
        };
        Event::new(
            EventFilter::User {
                ident: WAKE_IDENT as _,
                flags: fflags,
                user_flags: UserDefinedFlags::new(0),
            },
            user_flags(change),
            udata(Token::INTERNAL),
        )
    }
}

#[cfg(not(evfilt_user))]
mod imp {
    use super::*;
    use rustix::fd::{AsRawFd, BorrowedFd};
    use rustix::io::Errno;
    use rustix::pipe::{PipeFlags, pipe_with};

    /// The kqueue's own part: the wake-up pipe, whose read end is in the
    /// kqueue from `Kqueue::new` on.
    #[derive(Debug)]
    pub(crate) struct Own {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Own {
        /// A non-blocking close-on-exec pipe, its read end added to `kq`
        /// with `EV_ADD | EV_CLEAR` under `Token::INTERNAL`: each write is
        /// a new edge (`filt_piperead` runs on every write), so the pipe
        /// never needs draining by the selector.
        pub(crate) fn register(kq: BorrowedFd<'_>) -> Result<Self, OsError> {
            let (read, write) =
                pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).map_err(os_error)?;
            Self::registered(kq, read, write)
        }

        /// For a new handle `kq` on the same kqueue (`Renew`): `dup`s of
        /// both ends, the read end's `dup` registered under its own number.
        /// The old handle's registration belongs to the old read end's
        /// number and goes when that is closed (`knote_fdclose`); this one
        /// stays.
        pub(crate) fn renew(&self, kq: BorrowedFd<'_>) -> Result<Self, OsError> {
            let read = rustix::io::fcntl_dupfd_cloexec(&self.read, 0).map_err(os_error)?;
            let write = rustix::io::fcntl_dupfd_cloexec(&self.write, 0).map_err(os_error)?;
            Self::registered(kq, read, write)
        }

        /// `read` added to `kq` as
        /// [`PIPE_REGISTER`](crate::wake::PIPE_REGISTER) says.
        fn registered(kq: BorrowedFd<'_>, read: OwnedFd, write: OwnedFd) -> Result<Self, OsError> {
            let (add, clear) = crate::wake::PIPE_REGISTER;
            let mut flags = EventFlags::RECEIPT;
            if add {
                flags |= EventFlags::ADD;
            }
            if clear {
                flags |= EventFlags::CLEAR;
            }
            apply_one(
                kq,
                Event::new(
                    EventFilter::Read(read.as_raw_fd()),
                    flags,
                    udata(Token::INTERNAL),
                ),
            )?;
            Ok(Self { read, write })
        }

        /// A waker's part: `dup`s of both ends (the duplicates share the
        /// pipe and its `O_NONBLOCK`, which belongs to the open file).
        pub(crate) fn waker(&self, _kq: BorrowedFd<'_>) -> Result<Inner, OsError> {
            Ok(Inner {
                read: rustix::io::fcntl_dupfd_cloexec(&self.read, 0).map_err(os_error)?,
                write: rustix::io::fcntl_dupfd_cloexec(&self.write, 0).map_err(os_error)?,
            })
        }
    }

    #[derive(Debug)]
    pub(crate) struct Inner {
        read: OwnedFd,
        write: OwnedFd,
    }

    impl Inner {
        /// The read end's `dup`, made first (so it takes the lowest free
        /// number).
        pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
            self.read.as_fd()
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
