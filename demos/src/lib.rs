//! Shared pieces of the ioselect demo programs.
//!
//! - [`seed`]: the selectors echo server and client of Python's `selectors`
//!   documentation (PyMOTW), in Rust on the platform's `DefaultSelector`.
//! - [`py`]: Python-style text (`repr` of bytes and of socket addresses), so
//!   the transcripts read like the Python originals.
//! - [`args`]: the tiny command-line parser the binaries share.
//!
//! The platform's selector crate is chosen once, here, as [`platform`]:
//! `ioselect-linux` (epoll) on Linux, `ioselect-bsd` (kqueue) on macOS and
//! the BSDs. Both have the same API.

#[cfg(target_os = "linux")]
pub use ioselect_linux as platform;

#[cfg(any(
    target_vendor = "apple",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
))]
pub use ioselect_bsd as platform;

pub mod args;
pub mod py;
pub mod seed;

/// A selector error as an `io::Error` (the OS errno kept when there is one).
pub fn io_error(e: ioselect_core::Error) -> std::io::Error {
    match e {
        ioselect_core::Error::Os(os) => std::io::Error::from_raw_os_error(os.raw()),
        other => std::io::Error::other(other),
    }
}
