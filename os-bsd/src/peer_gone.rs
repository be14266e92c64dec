//! Write registrations the kernel refused because a pipe's reader is gone,
//! which the backend reports as writable itself, independent of the syscall.
//!
//! FreeBSD, DragonFly and OpenBSD refuse an `EVFILT_WRITE` add on a pipe
//! whose other end is closed with `EPIPE`, NetBSD with `EBADF` (their
//! `pipe_kqfilter`); XNU accepts it and reports the filter at once with
//! `EV_EOF`. epoll accepts it too and reports `EPOLLOUT | EPOLLERR` on
//! every wait (the write itself then fails with `EPIPE`). To give one
//! program one outcome, the backend settles such an add as registered and
//! files the fd here; every `wait` then reports WRITE for it, without
//! blocking, until `modify` drops WRITE or `unregister` removes the key.
//! Nothing can make it writable or unwritable again: a pipe's reader never
//! comes back. See `KERNELS.md`, section 6.
//!
//! Compiled on every target (and unit-tested on Linux).

use ioselect_core::{Events, RawFd};

/// How many such registrations one backend holds at once. A pipe whose
/// reader is gone is an end-of-life condition, seen briefly before the
/// program unregisters and closes it; beyond this many at once, `register`
/// and `modify` answer the kernel's own `EPIPE` (NetBSD: `EBADF`).
pub(crate) const CAPACITY: usize = 8;

/// The fds (with their tokens) whose WRITE readiness the backend reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerGone {
    items: [(RawFd, u64); CAPACITY],
    len: usize,
}

impl PeerGone {
    /// An empty set.
    pub(crate) const fn new() -> Self {
        Self {
            items: [(-1, 0); CAPACITY],
            len: 0,
        }
    }

    /// True when no fd is filed: the common case, checked first on every
    /// hot path so they cost nothing else.
    #[inline]
    pub(crate) const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when `fd` is filed.
    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        self.as_slice().iter().any(|&(f, _)| f == fd)
    }

    /// Files `fd` with `token` (replacing the token if `fd` is filed);
    /// false when the set is full.
    #[must_use]
    pub(crate) fn insert(&mut self, fd: RawFd, token: u64) -> bool {
        if let Some(slot) = self
            .items
            .get_mut(..self.len)
            .and_then(|s| s.iter_mut().find(|(f, _)| *f == fd))
        {
            slot.1 = token;
            return true;
        }
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = (fd, token);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// Forgets `fd` (nothing if it is not filed).
    pub(crate) fn remove(&mut self, fd: RawFd) {
        if let Some(i) = self.as_slice().iter().position(|&(f, _)| f == fd) {
            self.len -= 1;
            self.items.swap(i, self.len);
        }
    }

    fn as_slice(&self) -> &[(RawFd, u64)] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// Adds WRITE for every filed token to a `wait`'s results: OR-ed into
    /// the entry of `merged` with the same token (which [`merge`] left
    /// sorted by token), else written to `extra`. Returns how many entries
    /// of `extra` it wrote. Each token thus still appears once.
    ///
    /// [`merge`]: crate::ready::merge
    pub(crate) fn report(
        &self,
        merged: &mut [(u64, Events)],
        extra: &mut [(u64, Events); CAPACITY],
    ) -> usize {
        let mut n = 0;
        for &(_, token) in self.as_slice() {
            match merged.binary_search_by_key(&token, |e| e.0) {
                Ok(i) => {
                    if let Some(e) = merged.get_mut(i) {
                        e.1 |= Events::WRITE;
                    }
                }
                Err(_) => {
                    if let Some(slot) = extra.get_mut(n) {
                        *slot = (token, Events::WRITE);
                        n += 1;
                    }
                }
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Events = Events::READ;
    const W: Events = Events::WRITE;

    #[test]
    fn insert_remove_contains() {
        let mut set = PeerGone::new();
        assert!(set.is_empty());
        assert!(set.insert(5, 50));
        assert!(set.insert(6, 60));
        // Re-filing an fd replaces its token, it does not add a second one.
        assert!(set.insert(5, 51));
        assert!(set.contains(5) && set.contains(6) && !set.contains(7));
        set.remove(5);
        assert!(!set.contains(5) && set.contains(6));
        set.remove(7); // not filed: nothing
        set.remove(6);
        assert!(set.is_empty());
    }

    #[test]
    fn a_full_set_refuses_more() {
        let mut set = PeerGone::new();
        for fd in 0..CAPACITY as RawFd {
            assert!(set.insert(fd, fd as u64));
        }
        assert!(!set.insert(100, 100));
        // An fd already filed is still accepted.
        assert!(set.insert(0, 7));
        set.remove(3);
        assert!(set.insert(100, 100));
    }

    /// Every filed token is reported WRITE once: merged into the kernel's
    /// entry for it (a READ | WRITE key of a pipe's write end whose read
    /// filter fired) or as an entry of its own.
    #[test]
    fn report_merges_or_appends_write() {
        let mut set = PeerGone::new();
        assert!(set.insert(10, 2));
        assert!(set.insert(11, 9));
        let mut merged = [(1, R), (2, R), (5, W)];
        let mut extra = [(0, Events::empty()); CAPACITY];
        let n = set.report(&mut merged, &mut extra);
        assert_eq!(merged, [(1, R), (2, R | W), (5, W)]);
        assert_eq!(&extra[..n], [(9, W)]);

        let n = PeerGone::new().report(&mut merged, &mut extra);
        assert_eq!(n, 0);
    }
}
