//! Waking a blocked `select` from another thread or a signal handler.

use ioselect_core::OsError;
use rustix::fd::{AsFd, BorrowedFd};

use crate::Kqueue;
use crate::kqueue::wake::WakePipe;

/// Wakes a `select` blocked on a [`Kqueue`] selector. Its wake-ups end the
/// wait but never show up as a key.
///
/// The wake-up source belongs to the selector: a non-blocking pipe that
/// [`Kqueue::new`] makes, whose read end every kqueue of the selector
/// watches (`EVFILT_READ` with `EV_CLEAR`) under an internal token. No
/// `unregister`, `modify` or stale fd number can reach that registration.
/// A waker holds `dup`s of both ends; [`wake`](Self::wake) writes one
/// byte, and a `select` that the byte ends reads the pipe empty again, so
/// wakes before one `select` merge into one wake-up. (A full pipe holds
/// wake-ups not consumed yet: the write is then skipped.)
///
/// The pipe outlives a kqueue: [`rebuild`](ioselect_core::SelectorIn::rebuild)
/// registers it in the fresh kqueue, so a waker made before a rebuild
/// wakes the selector after it (kernel notes:
/// [wake-up](crate::kernels#wake-up)).
///
/// `Send + Sync`: share it with other threads by reference (`&Waker`), in an
/// `Arc`, or in a `static`. `wake` is async-signal-safe: one `write`; no
/// locks, no allocation. (Like any syscall that can fail, it may change
/// `errno`; a signal handler that must preserve `errno` saves and restores
/// it.)
///
/// The waker may outlive the selector: the pipe lives on until the last
/// waker is dropped, and its wakes then reach no one. Closing the selector
/// closes its kqueue at once, with every registration in it.
///
/// After `fork`, a waker in the child holds the child's copies of the pipe
/// (pipes are inherited): it still wakes the selector it was made for, the
/// parent's. The child's inherited selector gets a pipe of its own when it
/// is rebuilt; make the child's wakers after that.
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
///  - [pipe(2)](https://man.openbsd.org/pipe.2)
///  - [FreeBSD kevent(2), `EV_CLEAR`](https://man.freebsd.org/cgi/man.cgi?query=kevent&sektion=2)
#[derive(Debug)]
pub struct Waker {
    /// `dup`s of the selector's wake-up pipe's ends.
    pipe: WakePipe,
}

impl Waker {
    /// A waker for `kqueue`: `dup`s of both ends of its wake-up pipe (two
    /// `fcntl(F_DUPFD_CLOEXEC)`, no kernel registration). Any number of
    /// wakers may share a kqueue.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds.
    pub fn new<const E: usize>(kqueue: &Kqueue<E>) -> Result<Self, OsError> {
        Ok(Self {
            pipe: kqueue.wake_pipe().dup()?,
        })
    }

    /// Wakes the selector: its current or next `select` returns, with no key
    /// for this wake-up. Async-signal-safe.
    ///
    /// # Errors
    /// Only an unexpected kernel error.
    pub fn wake(&self) -> Result<(), OsError> {
        self.pipe.wake()
    }
}

impl AsFd for Waker {
    /// The waker's `dup` of the wake-up pipe's read end. No registration
    /// belongs to this number, so an `unregister` that names it (a stale key
    /// whose number the waker took) removes nothing of the selector's.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.pipe.read_end()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Waker {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Waker");
    }
}
