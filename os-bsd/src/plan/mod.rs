//! The syscall-free half of the backend: what each `kevent` call contains
//! and how its answers are read. Compiled on every target and unit-tested
//! on Linux; the kqueue side turns these plans into
//! `struct kevent`s and system calls.
//!
//! - [`changes`]: the change list of `register`, `modify` and `unregister`,
//!   how each receipt is judged, and the undo of a partly applied list;
//! - [`ready`]: returned kevents → readiness, merged per fd;
//! - [`timeout`]: how long each `kevent` of a `select` may sleep;
//! - [`peer_gone`]: pipes whose reader is gone, reported writable;
//! - [`wake`]: the wake-up pipe's registration and a wake's writes.

pub(crate) mod changes;
pub(crate) mod peer_gone;
pub(crate) mod ready;
pub(crate) mod timeout;
pub(crate) mod wake;
