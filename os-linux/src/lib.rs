//! # ioselect-linux
//!
//! The epoll backend of ioselect: Python's `selectors.EpollSelector`, with no
//! heap, no libc requirement and no `std`.
//!
//! This crate re-exports all of [`ioselect_core`], so a Linux program depends
//! on this one crate:
//!
//! ```
//! use core::time::Duration;
//! use ioselect_linux::{DefaultSelector, Events};
//!
//! use std::os::fd::AsFd;
//!
//! fn main() -> std::io::Result<()> {
//!     let mut sel = DefaultSelector::<&str, 16>::open()?;
//!     let (a, _b) = std::os::unix::net::UnixStream::pair()?;
//!     sel.register(a.as_fd(), Events::WRITE, "a")?;
//!     sel.select(Some(Duration::from_secs(1)))?;
//!     let (key, mask) = sel.next_ready().expect("a socket is writable");
//!     assert_eq!((*key.data(), mask), ("a", Events::WRITE));
//!     sel.unregister(a.as_fd())?;
//!     Ok(())
//! }
//! ```
//!
//! # I/O safety
//! Every call that reaches the kernel (`register`, `modify`,
//! `modify_events`, `unregister`) takes a `BorrowedFd`, so the caller proves
//! the fd open for the call, and the crate never makes a `BorrowedFd` out of
//! a number. Calls that only read or change the key table take the number
//! (`get_key`, `modify_data`, `contains`), and
//! [`unregister_closed`](Selector::unregister_closed) removes the key of an
//! fd the application already closed without any kernel call.
//!
//! # Feature flags
//! | feature | effect |
//! |---|---|
//! | `std` (default) | rustix's `std`: `BorrowedFd`/`AsFd` are `std::os::fd`'s, so `sock.as_fd()` works as it is; `?` into `std::io::Error` (core's `std`) |
//! | `defmt` | `defmt::Format` for the public types |
//!
//! # Platform notes
//! - Readiness is level-triggered, like Python's selectors.
//! - `EPOLLERR`, `EPOLLHUP` and `EPOLLRDHUP` are reported the way Python
//!   reports them: as readiness on the registered interests, so a reader sees
//!   end of file (or the error) on its next read and a writer the error on
//!   its next write.
//! - epoll watches open file *descriptions*. Unregister an fd before closing
//!   it. One closed while registered is unregistered with
//!   [`unregister_closed`](Selector::unregister_closed), but if its open file
//!   lives on in a `dup` or a child process, epoll keeps reporting it under
//!   the old key's token: the selector drops those events as stale, yet they
//!   end every `select` (a busy loop while that file is ready), and
//!   registering that same open file again under that number fails with
//!   [`Error::StaleRegistration`]. No `epoll_ctl` can remove it without the
//!   original fd; [`SelectorIn::rebuild`] moves the keys to a fresh epoll
//!   instance, which leaves it behind.
#![no_std]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub use ioselect_core::*;

#[cfg(any(target_os = "linux", target_os = "android"))]
mod epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
mod waker;

#[cfg(any(target_os = "linux", target_os = "android"))]
pub use epoll::Epoll;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub use waker::Waker;

/// A selector over epoll: Python's `selectors.EpollSelector`, with at most
/// `N` keys carrying data `T`, all inline. Its wait buffer holds `N` events,
/// so one `select` reports every ready key, except when a wake-up is pending
/// too: then one key's event comes with the next `select`. For large `N`,
/// see [`SelectorIn::open_in`] (the table in memory you provide, O(1)
/// stack).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type EpollSelector<T, const N: usize> = Selector<Epoll<N>, T, N>;

/// The best selector for this platform: [`EpollSelector`] (Python's
/// `selectors.DefaultSelector`). `ioselect_bsd::DefaultSelector` is the same
/// API over kqueue.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type DefaultSelector<T, const N: usize> = EpollSelector<T, N>;
