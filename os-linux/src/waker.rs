//! Waking a blocked `select` from another thread or a signal handler.

use ioselect_core::OsError;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::Epoll;
use crate::epoll::os_error;

/// Wakes a `select` blocked on an [`Epoll`] selector: it writes to the
/// `eventfd` the `Epoll` keeps in its interest set under
/// [`Token::INTERNAL`](ioselect_core::Token::INTERNAL), so its wake-ups end
/// the wait but never show up as a key.
///
/// `Send + Sync`: share it with other threads by reference (`&Waker`), in an
/// `Arc`, or in a `static`. [`wake`](Self::wake) is async-signal-safe (one
/// `write`, at worst a `read` and a `write`, no locks, no allocation), so a
/// signal handler may call it. The waker holds its own `dup` of the eventfd:
/// it stays valid after the selector is gone (waking nobody), and dropping
/// it never touches the selector's registration. Any number of wakers may
/// be made for one selector; they all wake it.
///
/// ```
/// use core::time::Duration;
/// use ioselect_linux::DefaultSelector;
///
/// let mut sel = DefaultSelector::<(), 4>::open()?;
/// let waker = sel.waker()?;
/// std::thread::scope(|s| {
///     s.spawn(|| waker.wake().unwrap());
///     sel.select(None) // returns once woken
/// })?;
/// assert!(sel.next_ready().is_none()); // the wake-up is not a key
/// # Ok::<(), ioselect_linux::Error>(())
/// ```
///
/// # References
///  - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A waker for `epoll`: a `dup` (close-on-exec) of its wake-up eventfd.
    ///
    /// # Errors
    /// `EMFILE`/`ENFILE` when out of fds.
    #[doc(alias = "eventfd")]
    pub fn new<const E: usize>(epoll: &Epoll<E>) -> Result<Self, OsError> {
        Ok(Self {
            fd: epoll.waker_fd()?,
        })
    }

    /// Wakes the selector: its current or next `select` returns, with no key
    /// for this wake-up. Async-signal-safe.
    ///
    /// # Errors
    /// Only an unexpected kernel error from `write`.
    pub fn wake(&self) -> Result<(), OsError> {
        let one = 1u64.to_ne_bytes();
        match rustix::io::write(&self.fd, &one) {
            Ok(_) => Ok(()),
            // The counter is at its maximum (after 2^64 - 2 wakes): reset it
            // and write again, so the wake still makes an edge.
            Err(Errno::AGAIN) => {
                let mut drain = [0u8; 8];
                match rustix::io::read(&self.fd, &mut drain) {
                    Ok(_) | Err(Errno::AGAIN) => {}
                    Err(e) => return Err(os_error(e)),
                }
                rustix::io::write(&self.fd, &one)
                    .map(|_| ())
                    .map_err(os_error)
            }
            Err(e) => Err(os_error(e)),
        }
    }
}

impl AsFd for Waker {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Waker {
    fn format(&self, f: defmt::Formatter<'_>) {
        use rustix::fd::AsRawFd;
        defmt::write!(f, "Waker {{ fd: {=i32} }}", self.fd.as_raw_fd());
    }
}
