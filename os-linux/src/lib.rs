//! # ioselect-linux
//!
//! Python's `selectors` for Linux and Android, over epoll: register a socket
//! with an event mask and your data, `select`, and handle each ready key.
//! No heap, no libc requirement (every syscall through rustix), and
//! `#![no_std]` with the `std` feature off.
//!
//! **Start with [`DefaultSelector`]**: `DefaultSelector::<T, N>::open()` holds
//! at most `N` keys carrying your `T`, inline. For tables too large for the
//! stack, [`LargeSelector`] keeps the table where you put it. Both take a
//! `BorrowedFd` (`sock.as_fd()`) for every call that reaches the kernel, and
//! the fd's number where none does. [`Waker`] wakes a blocked `select` from
//! another thread or a signal handler. That is the whole API a program
//! needs; [`backend`] has the parts for code generic over backends.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::fd::AsFd;
//! use std::os::unix::net::UnixStream;
//! use std::time::Duration;
//! use ioselect_linux::{DefaultSelector, Events};
//!
//! fn main() -> std::io::Result<()> {
//!     let mut sel = DefaultSelector::<&str, 16>::open()?;
//!     let (mut a, mut b) = UnixStream::pair()?;
//!     sel.register(a.as_fd(), Events::READ, "a")?;
//!     b.write_all(b"ping")?;
//!     sel.select(Some(Duration::from_secs(1)))?;
//!     let (key, mask) = sel.next_ready().expect("a is readable");
//!     assert_eq!((*key.data(), mask), ("a", Events::READ));
//!     let mut buf = [0; 4];
//!     a.read_exact(&mut buf)?;
//!     sel.unregister(a.as_fd())?;
//!     Ok(())
//! }
//! ```
//!
//! # Keys that own their sockets
//! Python's keys hold their file objects; here a key's data may own its
//! socket too. [`register_with`](DefaultSelector::register_with),
//! [`modify_events_with`](DefaultSelector::modify_events_with) and
//! [`unregister_with`](DefaultSelector::unregister_with) name the socket
//! through the key's data (`register(stream.as_fd(), .., stream)` cannot
//! compile: the socket is borrowed for the call). While a key handed out by
//! [`next_ready`](DefaultSelector::next_ready) lives, the selector is
//! borrowed: **copy what you need out of the key (its fd, a handler, an
//! index), let it go, then call the selector.** A callback stored in a key,
//! as PyMOTW's selectors echo server does, needs a struct around the function pointer
//! (`struct Handler(fn(&mut Sel, ..))`: a type alias cannot name itself).
//! `examples/owned_keys.rs` is that echo server built this way, with
//! a waker thread asking for shutdown:
//!
//! ```no_run
#![doc = include_str!("../examples/owned_keys.rs")]
//! ```
//!
//! # I/O safety
//! Every call that reaches the kernel (`register`, `modify`,
//! `modify_events`, `unregister`) takes a `BorrowedFd`, so the caller proves
//! the fd open for the call. Calls that only read or change the key table
//! take the number (`get_key`, `modify_data`, `contains`).
//! [`unregister_closed`](DefaultSelector::unregister_closed) takes the
//! number of an fd the application closed (or is about to close): it is the
//! one place that names an fd to the kernel by number, and only to remove
//! whatever epoll still holds under it.
//!
//! # Feature flags
//! | feature | effect |
//! |---|---|
//! | `std` (default) | rustix's `std`: `BorrowedFd`/`AsFd` are `std::os::fd`'s, so `sock.as_fd()` works as it is; `?` into `std::io::Error`; [`LargeSelector::with_capacity`] |
//! | `defmt` | `defmt::Format` for the public types; refused calls logged at debug level |
//! | `testing` | test hooks of `ioselect-core` (not part of the API) |
//!
//! # Dependencies
//! [`rustix`](https://docs.rs/rustix) for every syscall (`epoll_*`,
//! `eventfd`, `read`/`write` of the wake-up eventfd, `clock_gettime`),
//! `ioselect-core` for the key table and the rules (with
//! [`bitflags`](https://docs.rs/bitflags) for [`Events`]), and optionally
//! [`defmt`](https://docs.rs/defmt).
//!
//! # Platform notes
//! - Readiness is level-triggered, like Python's selectors.
//! - `EPOLLERR`, `EPOLLHUP` and `EPOLLRDHUP` are reported the way Python
//!   reports them: as readiness on the registered interests, so a reader sees
//!   end of file (or the error) on its next read and a writer the error on
//!   its next write.
//! - epoll watches open file *descriptions*. Unregister an fd before closing
//!   it. One closed while registered is unregistered with
//!   [`unregister_closed`](DefaultSelector::unregister_closed); if its open
//!   file lives on in a `dup` or a child process, epoll keeps watching it
//!   under the old key's token and no `epoll_ctl` can name it any more: the
//!   selector never delivers its events, and the `select` after a wait one
//!   of them ended returns [`Error::StaleRegistration`] instead of spinning.
//!   [`rebuild`](DefaultSelector::rebuild) moves the keys to a fresh epoll
//!   instance, which leaves it behind. The same open file registered again
//!   under the same number takes the left-over registration over.
//! - `epoll_ctl` on the selector's own fd (its `AsFd`) voids the promise
//!   that every event reaches the key it belongs to: the selector cannot
//!   tell a made-up registration's `data` from a key's token.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
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

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod waker;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use waker::Waker;

/// The parts under the selector types, for code generic over backends or
/// that drives epoll itself: the [`Epoll`] backend and
/// `ioselect-core`'s generic selector and traits. A program needs none of
/// it: [`DefaultSelector`] and [`LargeSelector`] wrap these.
///
/// Bare-metal programs (readiness from interrupt handlers) use
/// `ioselect-core` itself: its `SoftBackend`, `SoftReadiness` and
/// `Platform`.
pub mod backend {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub use crate::epoll::Epoll;
    pub use ioselect_core::{
        Backend, KeyMap, OpenBackend, Renew, Selector, SelectorIn, Storage, Token,
    };
}

#[cfg(any(target_os = "linux", target_os = "android"))]
use epoll::Epoll;

#[cfg(any(target_os = "linux", target_os = "android"))]
ioselect_core::__os_selectors! {
    krate: "ioselect_linux",
    backend: Epoll,
    python: "epoll (Python's `selectors.EpollSelector`)",
    waker: Waker,
    fd: rustix::fd::BorrowedFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl<T, const N: usize> rustix::fd::AsFd for DefaultSelector<T, N> {
    /// The epoll fd, to wait on from another poller (readable while an
    /// event is ready), as Python's `fileno()`. `epoll_ctl` on it voids the
    /// promise that every event reaches its key.
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.backend().as_fd()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl<T, S: ioselect_core::Storage<T>, const E: usize> rustix::fd::AsFd for LargeSelector<T, S, E> {
    /// The epoll fd, as [`DefaultSelector`]'s.
    fn as_fd(&self) -> rustix::fd::BorrowedFd<'_> {
        self.backend().as_fd()
    }
}
