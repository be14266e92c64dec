//! Write registrations the kernel refused because a pipe's reader is gone,
//! which the backend reports as writable itself, independent of the syscall.
//!
//! FreeBSD, DragonFly and OpenBSD refuse an `EVFILT_WRITE` add on a pipe
//! whose other end is closed with `EPIPE` (older OpenBSD with `EPERM`),
//! NetBSD with `EBADF` (their `pipe_kqfilter`); XNU accepts it and reports
//! the filter at once with `EV_EOF`. epoll accepts it too and reports
//! `EPOLLOUT | EPOLLERR` on every wait (the write itself then fails with
//! `EPIPE`). To give one program one outcome, the backend settles such an
//! add as registered and files the fd here; every `wait` then reports WRITE
//! for it, without blocking, until `modify` drops WRITE or `unregister`
//! removes the key. Nothing can make it writable or unwritable again: a
//! pipe's reader never comes back. Kernel notes: [dead
//! pipes](crate::kernels#dead-pipes).

use heapless::Vec;
use ioselect_core::{Events, OsError, RawFd};

use crate::plan::changes::EPIPE;

/// How many such registrations one backend holds at once. A pipe whose
/// reader is gone is an end-of-life condition, seen briefly before the
/// program unregisters and closes it; beyond this many at once, `register`
/// and `modify` answer the kernel's own errno.
pub(crate) const CAPACITY: usize = 8;

/// `EPERM`: 1 on every BSD and macOS.
const EPERM: OsError = OsError::EPERM;

/// What a kernel's `pipe_kqfilter` answers to an `EV_ADD` of
/// `EVFILT_WRITE` on a pipe whose reader is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PipeKqfilter {
    /// FreeBSD, DragonFly: `EPIPE`, which no other cause of a refused
    /// write-filter add gives. (XNU accepts the filter and fires it at once
    /// with `EV_EOF`, so no errno comes; this rule, which only reads
    /// `EPIPE`, serves it too.)
    Epipe,
    /// OpenBSD: `EPIPE`; older versions `1` (`EPERM`), which other files
    /// (devices without a write filter) can answer too, so it counts only
    /// for a pipe.
    EpipeOrEpermForPipes,
    /// NetBSD: `EBADF`, which also means "not an open fd", so it counts
    /// only for an fd that is open.
    EbadfForOpenFds,
}

impl PipeKqfilter {
    /// The rule of the kernel this crate is built for.
    pub(crate) const HERE: Self = if cfg!(target_os = "netbsd") {
        Self::EbadfForOpenFds
    } else if cfg!(target_os = "openbsd") {
        Self::EpipeOrEpermForPipes
    } else {
        Self::Epipe
    };

    /// True when `errno`, the refusal of an `EVFILT_WRITE` add, means "a
    /// pipe whose reader is gone" under this rule. `confirm` is asked only
    /// when the errno has another meaning too: whether the fd is open
    /// (NetBSD) or a pipe (OpenBSD's `EPERM`).
    pub(crate) fn reader_gone(self, errno: OsError, confirm: impl FnOnce() -> bool) -> bool {
        match self {
            _ if errno == EPIPE => true,
            Self::EpipeOrEpermForPipes => errno == EPERM && confirm(),
            Self::EbadfForOpenFds => errno == OsError::EBADF && confirm(),
            Self::Epipe => false,
        }
    }
}

/// The fds (with their raw tokens) whose WRITE readiness the backend reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerGone(Vec<(RawFd, u64), CAPACITY>);

impl PeerGone {
    /// An empty set.
    pub(crate) const fn new() -> Self {
        Self(Vec::new())
    }

    /// True when no fd is filed: the common case, checked first on every
    /// hot path so they cost nothing else.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when `fd` is filed.
    pub(crate) fn contains(&self, fd: RawFd) -> bool {
        self.0.iter().any(|&(f, _)| f == fd)
    }

    /// Files `fd` with `token` (replacing the token if `fd` is filed);
    /// hands the pair back when the set is full.
    pub(crate) fn insert(&mut self, fd: RawFd, token: u64) -> Result<(), (RawFd, u64)> {
        match self.0.iter_mut().find(|(f, _)| *f == fd) {
            Some(slot) => {
                slot.1 = token;
                Ok(())
            }
            None => self.0.push((fd, token)),
        }
    }

    /// Forgets `fd` (nothing if it is not filed).
    pub(crate) fn remove(&mut self, fd: RawFd) {
        if let Some(i) = self.0.iter().position(|&(f, _)| f == fd) {
            self.0.swap_remove(i);
        }
    }

    /// Adds WRITE for every filed token to a `wait`'s results: OR-ed into
    /// the entry of `merged` with the same token (which [`merge`] left
    /// sorted by token), else pushed to `extra` (cleared first). Each token
    /// thus still appears once.
    ///
    /// [`merge`]: crate::plan::ready::merge
    pub(crate) fn report(
        &self,
        merged: &mut [(u64, Events)],
        extra: &mut Vec<(u64, Events), CAPACITY>,
    ) {
        extra.clear();
        for &(_, token) in &self.0 {
            if let Ok(i) = merged.binary_search_by_key(&token, |e| e.0) {
                merged[i].1 |= Events::WRITE;
            } else {
                // `extra` has room for every filed token.
                let pushed = extra.push((token, Events::WRITE));
                debug_assert!(pushed.is_ok(), "extra holds CAPACITY entries");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Events = Events::READ;
    const W: Events = Events::WRITE;
    const EBADF: OsError = OsError::EBADF;

    #[test]
    fn insert_remove_contains() {
        let mut set = PeerGone::new();
        assert!(set.is_empty());
        assert_eq!(set.insert(5, 50), Ok(()));
        assert_eq!(set.insert(6, 60), Ok(()));
        // Re-filing an fd replaces its token, it does not add a second one.
        assert_eq!(set.insert(5, 51), Ok(()));
        assert!(set.contains(5) && set.contains(6) && !set.contains(7));
        set.remove(5);
        assert!(!set.contains(5) && set.contains(6));
        set.remove(7); // not filed: nothing
        set.remove(6);
        assert!(set.is_empty());
    }

    #[test]
    fn a_full_set_hands_the_fd_back() {
        let mut set = PeerGone::new();
        for fd in 0..CAPACITY as RawFd {
            assert_eq!(set.insert(fd, fd as u64), Ok(()));
        }
        assert_eq!(set.insert(100, 100), Err((100, 100)));
        // An fd already filed is still accepted.
        assert_eq!(set.insert(0, 7), Ok(()));
        set.remove(3);
        assert_eq!(set.insert(100, 100), Ok(()));
    }

    /// Every filed token is reported WRITE once: merged into the kernel's
    /// entry for it (a READ | WRITE key of a pipe's write end whose read
    /// filter fired) or as an entry of its own.
    #[test]
    fn report_merges_or_appends_write() {
        let mut set = PeerGone::new();
        assert_eq!(set.insert(10, 2), Ok(()));
        assert_eq!(set.insert(11, 9), Ok(()));
        let mut merged = [(1, R), (2, R), (5, W)];
        let mut extra = Vec::new();
        // Left over from an earlier wait: cleared.
        extra.push((77, R)).unwrap();
        set.report(&mut merged, &mut extra);
        assert_eq!(merged, [(1, R), (2, R | W), (5, W)]);
        assert_eq!(extra, [(9, W)]);

        PeerGone::new().report(&mut merged, &mut extra);
        assert!(extra.is_empty());
    }

    /// A full set and a full `extra`: every filed token still comes once.
    #[test]
    fn report_of_a_full_set() {
        let mut set = PeerGone::new();
        for fd in 0..CAPACITY as RawFd {
            set.insert(fd, 100 + fd as u64).unwrap();
        }
        let mut extra = Vec::new();
        set.report(&mut [], &mut extra);
        assert_eq!(extra.len(), CAPACITY);
    }

    #[test]
    fn each_kernel_s_answer_for_a_pipe_whose_reader_is_gone() {
        let never = || -> bool { panic!("not asked for this errno") };
        // FreeBSD, DragonFly: EPIPE only.
        assert!(PipeKqfilter::Epipe.reader_gone(EPIPE, never));
        assert!(!PipeKqfilter::Epipe.reader_gone(EPERM, never));
        assert!(!PipeKqfilter::Epipe.reader_gone(EBADF, never));
        // NetBSD: EBADF, for an fd that is open.
        let netbsd = PipeKqfilter::EbadfForOpenFds;
        assert!(netbsd.reader_gone(EBADF, || true));
        assert!(!netbsd.reader_gone(EBADF, || false), "a closed fd");
        assert!(netbsd.reader_gone(EPIPE, never));
        assert!(!netbsd.reader_gone(EPERM, never));
    }

    /// Older OpenBSD's `pipe_kqfilter` returns 1 (`EPERM`) for a pipe whose
    /// reader is gone; it used to fail the registration.
    #[test]
    fn older_openbsd_eperm_counts_for_pipes_only() {
        let openbsd = PipeKqfilter::EpipeOrEpermForPipes;
        assert!(openbsd.reader_gone(EPERM, || true));
        assert!(
            !openbsd.reader_gone(EPERM, || false),
            "a device, not a pipe"
        );
        assert!(openbsd.reader_gone(EPIPE, || panic!("EPIPE needs no check")));
        assert!(!openbsd.reader_gone(EBADF, || true));
    }
}
