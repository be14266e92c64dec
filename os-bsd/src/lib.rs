//! # ioselect-bsd
//!
//! The kqueue backend of ioselect for macOS, iOS, FreeBSD, NetBSD, OpenBSD
//! and DragonFly. On other targets this crate is empty.
#![no_std]
#![deny(missing_docs)]
