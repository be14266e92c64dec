//! # ioselect-core
//!
//! The allocation-free, `no_std` heart of ioselect: Python's `selectors` API
//! over a fixed-capacity key table, generic over a kernel [`Backend`].
//!
//! - [`Events`]: the `READ`/`WRITE` mask (Python's `EVENT_READ`/`EVENT_WRITE`).
//! - [`SelectorKey`]: fd, registered events and your data.
//! - [`Selector`]: `register`, `unregister`, `modify`, `select`, `get_key`,
//!   the [`map`](Selector::map) view and `close`, holding at most `N` keys.
//! - [`Backend`]: what an OS crate implements (`ioselect-linux`: epoll,
//!   `ioselect-bsd`: kqueue); [`SoftBackend`] is one with no OS at all.
//! - [`Platform`]: what a microcontroller supplies so that a [`SoftBackend`]
//!   waits as a kernel does (a clock, and a sleep that cannot miss an
//!   interrupt); `demos/firmware` runs it on QEMU's Cortex-M3, Cortex-M0 and
//!   RV32 machines.
//!
//! Core has no `unsafe`, no heap, no OS dependency, and builds for bare-metal
//! targets, including those without compare-and-swap (`thumbv6m-none-eabi`,
//! `riscv32imc-unknown-none-elf`). All policy (duplicates, unknown fds, invalid masks, capacity,
//! stale events) is decided here, before any kernel call, so every backend
//! behaves the same.
//!
//! ## Dependencies
//! - [`bitflags`](https://docs.rs/bitflags): the [`Events`] mask.
//! - [`defmt`](https://docs.rs/defmt) (optional): `defmt::Format` for the
//!   public types and debug logs of refused calls, for embedded users.
//!
//! Nothing else: the key table is a hash table written for its one job (slot
//! indices that never move, so tokens stay valid), not a general container,
//! so [`heapless`](https://docs.rs/heapless) is only a test dependency here;
//! the kqueue backend uses it for its change lists. The OS crates reach the
//! kernel through [`rustix`](https://docs.rs/rustix).
//!
//! ## Feature flags
//! | feature | effect |
//! |---|---|
//! | `defmt` | `defmt::Format` for the public types, and debug logging of refused calls through defmt |
//! | `std` | `?` from [`Error`], [`OsError`] and [`DataError`] into `std::io::Error` (with the matching `io::ErrorKind`), the platform's message in [`OsError`]'s `Display`, and `Box<[Slot<T>]>`/`Vec<Slot<T>>` as [`Storage`] |
//! | `testing` | hooks for tests (fault injection in [`SoftBackend`], the registration counter); not part of the API, and may change in any release; it changes no type's auto traits |
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]
#![allow(
    clippy::inline_always,
    reason = "each `inline(always)` keeps a hot path's work in the caller's frame; measured with callgrind (tests/bench/results/instructions.md)"
)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

#[cfg(feature = "std")]
extern crate std;

#[macro_use]
mod log;

mod backend;
mod error;
mod events;
mod key;
mod map;
mod os;
mod platform;
mod selector;
mod soft;

#[cfg(feature = "defmt")]
mod defmt;

pub use backend::{Backend, OpenBackend, Renew};
pub use error::{DataError, Error, OsError};
pub use events::Events;
pub use key::{KeyMut, SelectorKey, Token};
pub use map::{Iter, KeyMap, KeyMapIn, Slot, Storage};
pub use platform::{Platform, Poll};
pub use selector::{Selector, SelectorIn};
pub use soft::{SoftBackend, SoftReadiness};

/// A file descriptor number, as the kernel and Python's `fileno()` give it.
///
/// Core knows no OS, so this is the plain C `int`. The key table files keys
/// under it; the OS crates take a `BorrowedFd` for every call that reaches
/// the kernel, and the number only where none does
/// ([`Selector::get_key`], [`Selector::unregister_closed`], …). For
/// [`SoftBackend`] it numbers a software source.
pub type RawFd = i32;

#[cfg(test)]
mod tests;
