//! # ioselect-bsd
//!
//! The kqueue backend of ioselect for macOS, iOS, FreeBSD, DragonFly, NetBSD
//! and OpenBSD (exactly the targets where `rustix::event::kqueue` exists):
//! Python's `selectors.KqueueSelector`, with no heap and no `std`. On other
//! targets the backend is absent and only the core re-exports remain.
//!
//! This crate exports the same names as `ioselect-linux` (the selector types,
//! [`Events`], [`Error`], the key types, the [`backend`] module), so after
//! one `cfg` that picks the crate, code is the same as with `ioselect-linux`:
//!
//! ```
//! # #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd",
//! #           target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd"))]
//! # fn main() -> Result<(), ioselect_bsd::Error> {
//! use core::time::Duration;
//! use ioselect_bsd::{DefaultSelector, Events};
//!
//! use std::os::fd::AsFd;
//!
//! let mut sel = DefaultSelector::<&str, 16>::open()?;
//! let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
//! sel.register(a.as_fd(), Events::READ | Events::WRITE, "a")?;
//! sel.select(Some(Duration::from_secs(1)))?;
//! // kqueue reports the write filter alone here; read and write of one fd
//! // would come merged, once.
//! let (key, mask) = sel.next_ready().expect("a socket is writable");
//! assert_eq!((*key.data(), mask), ("a", Events::WRITE));
//! assert!(sel.next_ready().is_none());
//! # Ok(())
//! # }
//! # #[cfg(not(any(target_os = "macos", target_os = "ios", target_os = "freebsd",
//! #               target_os = "dragonfly", target_os = "netbsd", target_os = "openbsd")))]
//! # fn main() {}
//! ```
//!
//! # Platform notes
//! Every kernel behaviour relied on below is cited, per kernel, in the
//! [kernel notes](kernels).
//! - Readiness is level-triggered, like Python's selectors.
//! - `EVFILT_READ` is READ and `EVFILT_WRITE` is WRITE, whatever their
//!   flags, as in CPython's `KqueueSelector`. `EV_EOF` on one filter is
//!   that direction's end: after its own `shutdown(SHUT_WR)` a socket's
//!   write filter fires with `EV_EOF` and the key gets WRITE, no READ, as
//!   with epoll. A hang-up or socket error fires both filters, so a key
//!   registered for both gets both, as with `EPOLLHUP`/`EPOLLERR`.
//! - Unlike Python's `KqueueSelector`, which can return one key twice in a
//!   `select` (once per filter), each fd comes at most once, its read and
//!   write readiness merged.
//! - A pipe (or FIFO) whose reader is gone registers for WRITE and is
//!   reported writable, as with epoll, although FreeBSD, DragonFly and
//!   OpenBSD refuse its `EVFILT_WRITE` with `EPIPE` (older OpenBSD:
//!   `EPERM`; NetBSD: `EBADF`): the backend reports WRITE for it itself (at
//!   most 8 such keys at once).
//! - `modify` of an fd that was closed while registered fails with `EBADF`
//!   on the BSDs (`ENOENT` once the number names another file, and always
//!   on XNU), as epoll's does.
//! - kqueue ties registrations to fds, not open files: closing an fd drops
//!   its filters, and `unregister` of a closed fd succeeds.
//! - `close` (or drop) of the selector closes the kqueue fd, and with it every
//!   registration. The `Waker`'s wake-up source is a pipe that the
//!   selector and its wakers share, so a live waker keeps no kqueue alive;
//!   `rebuild` moves the keys and the wake-up pipe
//!   to a fresh kqueue, and wakers made before it wake the new one.
//! - After `fork` the child has no copy of the kqueue (no kernel copies
//!   one): dropping the inherited selector there closes nothing, a
//!   `select` fails with [`Error::Forked`], and `rebuild` gives the child a
//!   fresh kqueue and wake-up pipe.
//! - On the BSDs the kqueue fd is made close-on-exec by a second call after
//!   `kqueue()` (rustix 1.x has no `kqueue1`/`kqueuex`); XNU makes every
//!   kqueue close-on-exec itself. See `Kqueue::new`.
//!
//! # Portability
//! 64-bit targets only: the selector's 64-bit [`Token`](backend::Token) travels in kevent's
//! pointer-sized `udata`. Change lists ask for a receipt per change
//! (`EV_RECEIPT`), which every supported kernel honours (OpenBSD's since
//! 2018 at the latest), so a `register`/`modify`/`unregister` call never
//! takes a pending event away from the next `select`. Only macOS and
//! FreeBSD run the test suite (in GitHub Actions); the other BSDs are
//! type-checked only.
//!
//! # Layout and dependencies
//! - `plan` (private, every target, unit-tested on Linux):
//!   the syscall-free decisions: change lists and their receipts,
//!   readiness, timeouts, dead pipes, the wake-up protocol.
//! - The kqueue side (kqueue targets only): `Kqueue`, `Waker`, and the
//!   `kevent` plumbing under them; its only `unsafe` code (the `kevent`
//!   call, the `Send`/`Sync` of its buffer, and the kqueue fd that a fork
//!   child must not close) is fenced in one private module, `unchecked`.
//!
//! Packages: [rustix](https://docs.rs/rustix) makes every system call
//! (`kqueue`, `kevent`, `pipe`, `fcntl`, `fstat`, `getpid`, `read`,
//! `write`, `clock_gettime`); [heapless](https://docs.rs/heapless) gives
//! the fixed-capacity lists (a change list, its receipts, the dead pipes)
//! without a heap; bitflags reaches this crate only through
//! `ioselect-core`'s [`Events`]; [defmt](https://docs.rs/defmt) (feature
//! `defmt`) formats the public types for embedded logging.
#![no_std]
#![deny(missing_docs)]
#![allow(
    clippy::inline_always,
    reason = "each `inline(always)` keeps a hot path's work in the caller's frame; measured with callgrind (tests/bench/results/instructions.md)"
)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "std")]
extern crate std;

pub use ioselect_core::{
    DataError, Error, Events, Iter, KeyMapIn, KeyMut, OsError, RawFd, SelectorKey, Slot,
};

#[cfg(all(kqueue, not(target_pointer_width = "64")))]
compile_error!(
    "ioselect-bsd needs 64-bit pointers: the selector's 64-bit Token is stored in kevent's \
     pointer-sized udata"
);

// The parts that need no syscall, on every target (and tested on Linux).
#[cfg_attr(not(kqueue), allow(dead_code))]
mod plan;
#[cfg_attr(not(kqueue), allow(dead_code))]
mod unchecked;

#[cfg(not(kqueue))]
mod elsewhere;
#[cfg(kqueue)]
mod kqueue;

/// The kernel notes: what this backend submits to each kernel's `kevent`,
/// what it reads back, and the kernel source that backs each rule, kernel
/// by kernel (XNU, FreeBSD, DragonFly, NetBSD, OpenBSD).
pub mod kernels {
    #![doc = include_str!("../KERNELS.md")]
}

#[cfg(not(kqueue))]
#[doc(hidden)]
pub use elsewhere::{DefaultSelector, LargeSelector};
#[cfg(kqueue)]
pub use kqueue::Waker;

/// The parts under the selector types, for code generic over backends or
/// that drives kqueue itself: the `Kqueue` backend (on kqueue targets) and
/// `ioselect-core`'s generic selector and traits. A program needs none of
/// it: `DefaultSelector` and `LargeSelector` wrap these.
///
/// Bare-metal programs (readiness from interrupt handlers) use
/// `ioselect-core` itself: its `SoftBackend`, `SoftReadiness` and
/// `Platform`.
pub mod backend {
    #[cfg(kqueue)]
    pub use crate::kqueue::Kqueue;
    pub use ioselect_core::{
        Backend, KeyMap, OpenBackend, Renew, Selector, SelectorIn, Storage, Token,
    };
}

#[cfg(kqueue)]
use kqueue::Kqueue;

#[cfg(kqueue)]
ioselect_core::__os_selectors! {
    krate: "ioselect_bsd",
    backend: Kqueue,
    python: "kqueue (Python's `selectors.KqueueSelector`)",
    waker: Waker,
    fd: rustix::fd::BorrowedFd,
}

#[cfg(kqueue)]
impl<T, const N: usize> rustix::fd::AsFd for DefaultSelector<T, N> {
    /// The kqueue fd, to wait on from another poller (readable while an
    /// event is ready), as Python's `fileno()`. `kevent` changes on it void
    /// the promise that every event reaches its key.
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.backend().as_fd()
    }
}

#[cfg(kqueue)]
impl<T, S: ioselect_core::Storage<T>, const E: usize> rustix::fd::AsFd for LargeSelector<T, S, E> {
    /// The kqueue fd, as [`DefaultSelector`]'s.
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.backend().as_fd()
    }
}

// The selector, its backend and the waker cross threads (checked whenever
// this crate is type-checked for a kqueue target).
#[cfg(kqueue)]
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Kqueue>();
    send_sync::<DefaultSelector<(), 1>>();
    send_sync::<Waker>();
};
