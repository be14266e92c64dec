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
//! let mut sel = DefaultSelector::<&str, 16>::open()?;
//! let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
//! # use std::os::fd::AsRawFd;
//! sel.register(a.as_raw_fd(), Events::WRITE, "a")?;
//! sel.select(Some(Duration::from_secs(1)))?;
//! let (key, mask) = sel.next_ready().expect("a socket is writable");
//! assert_eq!((*key.data(), mask), ("a", Events::WRITE));
//! # Ok::<(), ioselect_linux::Error>(())
//! ```
//!
//! # Platform notes
//! - Readiness is level-triggered, like Python's selectors.
//! - `EPOLLERR`, `EPOLLHUP` and `EPOLLRDHUP` are reported the way Python
//!   reports them: as readiness on the registered interests, so a reader sees
//!   end of file (or the error) on its next read and a writer the error on
//!   its next write.
//! - epoll watches open file *descriptions*. Close an fd only after
//!   unregistering it: an fd closed while registered can still be
//!   unregistered (and is), but if the description lives on in a `dup` or a
//!   child process, the kernel keeps reporting it; the selector drops those
//!   events as stale, yet they still wake `select`.
#![no_std]
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
/// `N` keys carrying data `T`. Its wait buffer holds `N` events, so one
/// `select` can report every registered fd.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type EpollSelector<T, const N: usize> = Selector<Epoll<N>, T, N>;

/// The best selector for this platform: [`EpollSelector`] (Python's
/// `selectors.DefaultSelector`). `ioselect_bsd::DefaultSelector` is the same
/// API over kqueue.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub type DefaultSelector<T, const N: usize> = EpollSelector<T, N>;
