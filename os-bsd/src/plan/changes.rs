//! kqueue change lists, independent of the syscall: which filters an events
//! transition adds, deletes and checks, how each receipt is judged, and what
//! undoes the part of a change list that was applied when another part
//! failed.
//!
//! The kqueue side translates [`Change`]s into `struct kevent`s. The kernel
//! behaviour each rule relies on: [changes](crate::kernels#changes),
//! [receipts](crate::kernels#receipts) and [fd
//! filters](crate::kernels#fd-filters) in the kernel notes.

use heapless::Vec;
use ioselect_core::{Events, OsError};

/// `EPIPE`: 32 on Linux, macOS and every BSD.
pub(crate) const EPIPE: OsError = OsError::from_raw(32);

/// A receipt's `data` as an errno; one that does not fit an `i32` is no
/// success either (`EINVAL`).
pub(crate) fn errno_of(data: i64) -> OsError {
    OsError::from_raw(i32::try_from(data).unwrap_or(OsError::EINVAL.raw()))
}

/// A kqueue filter this crate registers for a file descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Filter {
    /// `EVFILT_READ`.
    Read,
    /// `EVFILT_WRITE`.
    Write,
}

impl Filter {
    /// Both filters, with the event bit each one watches.
    const ALL: [(Self, Events); 2] = [(Self::Read, Events::READ), (Self::Write, Events::WRITE)];
}

/// What a change does to its filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `EV_ADD`: start watching.
    Add,
    /// `EV_DELETE` that forgives a missing filter: `unregister`, and the
    /// undo of an add. A filter that is already gone (closing the fd
    /// dropped it) counts as deleted.
    DeleteIfPresent,
    /// `EV_DELETE` of a filter that must still be there: `modify` dropping
    /// an event. A filter that is gone means the fd was closed (and its
    /// number maybe reused) while registered, which epoll reports as
    /// `EBADF`/`ENOENT` from `EPOLL_CTL_MOD`; kqueue does too then.
    Delete,
    /// `EV_ENABLE` without `EV_ADD` by `modify`, for a filter it keeps:
    /// changes nothing (the filter is enabled, its `udata`, `fflags` and
    /// `data` are rewritten with the values it was added with), but answers
    /// `ENOENT` (or `EBADF`) when the filter is gone, so a `modify` of an
    /// fd closed while registered fails as epoll's does instead of silently
    /// adding a filter to whatever file now has the number (kernel notes:
    /// [fd filters](crate::kernels#fd-filters)).
    Check,
}

/// One entry of a change list: one operation on one filter of the fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) filter: Filter,
    pub(crate) op: Op,
}

impl Change {
    /// The change that undoes this one once applied (`None` for a check,
    /// which changes nothing).
    #[must_use]
    pub(crate) const fn undo(self) -> Option<Self> {
        let op = match self.op {
            Op::Add => Op::DeleteIfPresent,
            Op::DeleteIfPresent | Op::Delete => Op::Add,
            Op::Check => return None,
        };
        Some(Self {
            filter: self.filter,
            op,
        })
    }
}

/// The change list of one call for one fd: at most one change per filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Changes(Vec<Change, 2>);

impl Changes {
    /// No changes.
    pub(crate) const EMPTY: Self = Self(Vec::new());

    /// `register`: `EV_ADD` of each filter `events` has.
    #[must_use]
    pub(crate) fn add(events: Events) -> Self {
        Self::build(Events::empty(), events, Op::DeleteIfPresent, None)
    }

    /// `unregister`: [`Op::DeleteIfPresent`] of each filter `events` has.
    #[must_use]
    pub(crate) fn delete(events: Events) -> Self {
        Self::build(events, Events::empty(), Op::DeleteIfPresent, None)
    }

    /// `modify` from `old` to `new`: `EV_ADD` of the filters only `new` has,
    /// [`Op::Delete`] of the ones only `old` has, [`Op::Check`] of the ones
    /// both have, so the call fails when the registration is gone (as
    /// epoll's `EPOLL_CTL_MOD` does) and touches nothing that stays.
    #[must_use]
    pub(crate) fn modify(old: Events, new: Events) -> Self {
        Self::build(old, new, Op::Delete, Some(Op::Check))
    }

    fn build(old: Events, new: Events, delete: Op, keep: Option<Op>) -> Self {
        let mut changes = Self::EMPTY;
        for (filter, bit) in Filter::ALL {
            let op = match (old.contains(bit), new.contains(bit)) {
                (false, true) => Some(Op::Add),
                (true, false) => Some(delete),
                (true, true) => keep,
                (false, false) => None,
            };
            if let Some(op) = op {
                changes.push(Change { filter, op });
            }
        }
        changes
    }

    /// The changes, in order.
    #[must_use]
    pub(crate) fn as_slice(&self) -> &[Change] {
        &self.0
    }

    /// Appends `change`. A list holds one change per filter and there are
    /// two filters, so it cannot be full: every caller adds each filter at
    /// most once. A third change would be a bug, and the assertion makes it
    /// fail in tests (library code does not panic in release builds).
    fn push(&mut self, change: Change) {
        let pushed = self.0.push(change);
        debug_assert!(pushed.is_ok(), "a change list holds one change per filter");
    }
}

/// How the kernel answered one change, from its `EV_RECEIPT` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `data == 0`: the change was made.
    Applied,
    /// An [`Op::DeleteIfPresent`] of a filter that is not there: nothing
    /// was changed, and nothing needs to be.
    AlreadyGone,
    /// An `EV_ADD` of `EVFILT_WRITE` refused with this errno because the
    /// pipe's reader is gone (see
    /// [`PipeKqfilter`](crate::plan::peer_gone::PipeKqfilter)). Nothing was
    /// changed in the kernel; the backend treats the fd as registered and
    /// always writable, as epoll does (kernel notes: [dead
    /// pipes](crate::kernels#dead-pipes)).
    PeerGone(OsError),
    /// The change was refused with this errno; nothing was changed.
    Failed(OsError),
}

impl Verdict {
    /// Judges the receipt of `change`, whose `data` field is `errno` (0 for
    /// success). `peer_gone` says whether an errno of an `EVFILT_WRITE`
    /// add means "the pipe's reader is gone" on this kernel for this fd.
    #[must_use]
    pub(crate) fn of(change: Change, errno: i64, peer_gone: impl Fn(OsError) -> bool) -> Self {
        if errno == 0 {
            return Self::Applied;
        }
        let error = errno_of(errno);
        match (change.op, change.filter, error) {
            // `EBADF`: the fd is closed: closing an fd removes all of its
            // kqueue filters (knote_fdclose), so an unregister has nothing
            // left to do (Python's `unregister` of a closed fd succeeds the
            // same way). `ENOENT`: the fd has no such filter: it was closed
            // (which removed its filters; XNU answers a closed fd this way
            // too) and its number possibly reused by a file that was never
            // added; either way the filter is gone.
            (Op::DeleteIfPresent, _, OsError::EBADF | OsError::ENOENT) => Self::AlreadyGone,
            (Op::Add, Filter::Write, e) if peer_gone(e) => Self::PeerGone(e),
            (_, _, error) => Self::Failed(error),
        }
    }
}

/// A change list that was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// The changes that undo it (for a caller that must still back out).
    pub(crate) undo: Changes,
    /// The `EVFILT_WRITE` add was refused with [`Verdict::PeerGone`], with
    /// this errno: the kernel holds no write filter, and the backend
    /// reports WRITE itself.
    pub(crate) write_peer_gone: Option<OsError>,
}

impl Settled {
    /// An empty change list, settled.
    pub(crate) const NOTHING: Self = Self {
        undo: Changes::EMPTY,
        write_peer_gone: None,
    };
}

/// A change list that failed: the error to report, and the changes that
/// undo the applied part, so the kernel is as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) error: OsError,
    pub(crate) undo: Changes,
}

/// Settles a submitted change list from its receipts, each `(filter,
/// errno)`: `Ok` when every change was applied, was a delete of something
/// already gone, or was a write-filter add refused because the pipe's
/// reader is gone; otherwise the first refusal and the undo of every change
/// that was applied.
///
/// A change without a receipt counts as applied. Every kernel this crate
/// supports honours `EV_RECEIPT` and returns one entry per change (kernel
/// notes: [receipts](crate::kernels#receipts)); reading silence as success
/// only matters for a kernel that reports refusals alone (OpenBSD before
/// 2018, say), and is what mio does too.
pub(crate) fn settle(
    changes: &Changes,
    receipts: &[(Filter, i64)],
    peer_gone: impl Fn(OsError) -> bool,
) -> Result<Settled, Failure> {
    let mut error = None;
    let mut undo = Changes::EMPTY;
    let mut write_peer_gone = None;
    for &change in changes.as_slice() {
        let verdict = receipts
            .iter()
            .find(|(filter, _)| *filter == change.filter)
            .map_or(Verdict::Applied, |&(_, errno)| {
                Verdict::of(change, errno, &peer_gone)
            });
        match verdict {
            Verdict::Applied => {
                if let Some(u) = change.undo() {
                    undo.push(u);
                }
            }
            Verdict::AlreadyGone => {}
            Verdict::PeerGone(errno) => write_peer_gone = Some(errno),
            Verdict::Failed(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        None => Ok(Settled {
            undo,
            write_peer_gone,
        }),
        Some(error) => Err(Failure { error, undo }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Events = Events::READ;
    const W: Events = Events::WRITE;
    const RW: Events = Events::READ.union(Events::WRITE);
    const NONE: Events = Events::empty();
    const ENOMEM: i64 = 12;
    const EINVAL: i64 = 22;
    const EBADF: i64 = 9;
    const ENOENT: i64 = 2;
    const EPIPE_RAW: i64 = 32;

    fn ch(filter: Filter, op: Op) -> Change {
        Change { filter, op }
    }

    /// FreeBSD, DragonFly, OpenBSD: `pipe_kqfilter` answers `EPIPE`.
    fn epipe(e: OsError) -> bool {
        e == EPIPE
    }

    /// NetBSD for an fd known to be open: `pipe_kqfilter` answers `EBADF`.
    fn netbsd_open_fd(e: OsError) -> bool {
        e == EPIPE || e == OsError::EBADF
    }

    /// A third change used to be dropped without a word; it is a bug, and
    /// now fails loudly (in tests and debug builds).
    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "one change per filter")]
    fn a_third_change_fails_loudly() {
        let mut changes = Changes::add(RW);
        changes.push(ch(Filter::Read, Op::Check));
    }

    #[test]
    fn register_adds_each_requested_filter() {
        assert_eq!(Changes::add(R).as_slice(), [ch(Filter::Read, Op::Add)]);
        assert_eq!(Changes::add(W).as_slice(), [ch(Filter::Write, Op::Add)]);
        assert_eq!(
            Changes::add(RW).as_slice(),
            [ch(Filter::Read, Op::Add), ch(Filter::Write, Op::Add)]
        );
    }

    #[test]
    fn unregister_deletes_each_registered_filter() {
        assert_eq!(
            Changes::delete(R).as_slice(),
            [ch(Filter::Read, Op::DeleteIfPresent)]
        );
        assert_eq!(
            Changes::delete(RW).as_slice(),
            [
                ch(Filter::Read, Op::DeleteIfPresent),
                ch(Filter::Write, Op::DeleteIfPresent)
            ]
        );
    }

    #[test]
    fn modify_removes_adds_and_checks_what_it_keeps() {
        assert_eq!(
            Changes::modify(R, W).as_slice(),
            [ch(Filter::Read, Op::Delete), ch(Filter::Write, Op::Add)]
        );
        assert_eq!(
            Changes::modify(R, RW).as_slice(),
            [ch(Filter::Read, Op::Check), ch(Filter::Write, Op::Add)]
        );
        assert_eq!(
            Changes::modify(RW, W).as_slice(),
            [ch(Filter::Read, Op::Delete), ch(Filter::Write, Op::Check)]
        );
        assert_eq!(
            Changes::modify(RW, R).as_slice(),
            [ch(Filter::Read, Op::Check), ch(Filter::Write, Op::Delete)]
        );
        // From nothing (a write filter the kernel never held, see
        // `PeerGone`) it is an add.
        assert_eq!(
            Changes::modify(NONE, R).as_slice(),
            [ch(Filter::Read, Op::Add)]
        );
    }

    /// Applying a transition and then the undo of all of it gives back the
    /// old set, for every pair of masks: the model of the rollback.
    #[test]
    fn undo_of_a_whole_transition_restores_the_old_events() {
        fn apply(mut set: Events, changes: &[Change]) -> Events {
            for c in changes {
                let bit = match c.filter {
                    Filter::Read => R,
                    Filter::Write => W,
                };
                match c.op {
                    Op::Add => set |= bit,
                    Op::DeleteIfPresent | Op::Delete => set -= bit,
                    Op::Check => assert!(set.contains(bit), "check of an absent filter"),
                }
            }
            set
        }
        for old in [NONE, R, W, RW] {
            for new in [NONE, R, W, RW] {
                let changes = Changes::modify(old, new);
                assert_eq!(apply(old, changes.as_slice()), new);
                let mut undo = Changes::EMPTY;
                for c in changes.as_slice() {
                    if let Some(u) = c.undo() {
                        undo.push(u);
                    }
                }
                assert_eq!(apply(new, undo.as_slice()), old, "{old:?} -> {new:?}");
            }
        }
    }

    #[test]
    fn unregister_excuses_only_a_filter_that_is_gone() {
        let del = ch(Filter::Read, Op::DeleteIfPresent);
        assert_eq!(Verdict::of(del, 0, epipe), Verdict::Applied);
        assert_eq!(Verdict::of(del, EBADF, epipe), Verdict::AlreadyGone);
        assert_eq!(
            Verdict::of(ch(Filter::Write, Op::DeleteIfPresent), ENOENT, epipe),
            Verdict::AlreadyGone
        );
        // Other errnos of deletes are real failures.
        assert_eq!(
            Verdict::of(del, ENOMEM, epipe),
            Verdict::Failed(OsError::ENOMEM)
        );
        // An errno that does not fit an i32 still fails, it is not success.
        assert_eq!(
            Verdict::of(ch(Filter::Read, Op::Add), i64::MAX, epipe),
            Verdict::Failed(OsError::EINVAL)
        );
    }

    /// epoll's `EPOLL_CTL_MOD` of an fd closed while registered fails with
    /// `EBADF` (or `ENOENT` once the number names another file); kqueue's
    /// modify must too, whether it removes or keeps a filter.
    #[test]
    fn modify_of_a_gone_registration_fails_like_epoll() {
        for op in [Op::Delete, Op::Check] {
            for filter in [Filter::Read, Filter::Write] {
                assert_eq!(
                    Verdict::of(ch(filter, op), EBADF, epipe),
                    Verdict::Failed(OsError::EBADF)
                );
                assert_eq!(
                    Verdict::of(ch(filter, op), ENOENT, epipe),
                    Verdict::Failed(OsError::ENOENT)
                );
            }
        }
        // READ -> READ|WRITE of a closed-and-reused number: the check of
        // READ says ENOENT, the add of WRITE went through and is undone.
        let failure = settle(
            &Changes::modify(R, RW),
            &[(Filter::Read, ENOENT), (Filter::Write, 0)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::ENOENT);
        assert_eq!(
            failure.undo.as_slice(),
            [ch(Filter::Write, Op::DeleteIfPresent)]
        );
    }

    /// FreeBSD/DragonFly/OpenBSD `pipe_kqfilter`: `EPIPE` for `EVFILT_WRITE`
    /// once the reader is gone. epoll accepts the fd and reports it
    /// writable, so the add is settled as registered, with no undo.
    #[test]
    fn epipe_from_a_write_filter_add_is_registered_and_writable() {
        assert_eq!(
            Verdict::of(ch(Filter::Write, Op::Add), EPIPE_RAW, epipe),
            Verdict::PeerGone(EPIPE)
        );
        assert_eq!(
            settle(&Changes::add(W), &[(Filter::Write, EPIPE_RAW)], epipe),
            Ok(Settled {
                undo: Changes::EMPTY,
                write_peer_gone: Some(EPIPE),
            })
        );
        // READ | WRITE of a pipe's write end: the read filter is there (and
        // its undo is known, should the backend have no room to file the
        // fd), the write filter is the backend's.
        assert_eq!(
            settle(
                &Changes::add(RW),
                &[(Filter::Read, 0), (Filter::Write, EPIPE_RAW)],
                epipe
            ),
            Ok(Settled {
                undo: Changes::delete(R),
                write_peer_gone: Some(EPIPE),
            })
        );
        // Only the write filter's add: EPIPE on anything else is an error.
        assert_eq!(
            Verdict::of(ch(Filter::Read, Op::Add), EPIPE_RAW, epipe),
            Verdict::Failed(EPIPE)
        );
        // And a real failure next to it still fails the whole call.
        let failure = settle(
            &Changes::add(RW),
            &[(Filter::Read, ENOMEM), (Filter::Write, EPIPE_RAW)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert!(failure.undo.as_slice().is_empty());
    }

    /// NetBSD's `pipe_kqfilter` answers `EBADF` instead; only for an fd
    /// known to be open does that mean the reader is gone.
    #[test]
    fn netbsd_ebadf_of_an_open_fd_is_registered_and_writable() {
        assert_eq!(
            Verdict::of(ch(Filter::Write, Op::Add), EBADF, netbsd_open_fd),
            Verdict::PeerGone(OsError::EBADF)
        );
        assert_eq!(
            settle(&Changes::add(W), &[(Filter::Write, EBADF)], netbsd_open_fd)
                .map(|s| s.write_peer_gone),
            Ok(Some(OsError::EBADF)),
            "the kernel's own errno, should it have to be reported"
        );
        // The same errno elsewhere (a closed fd) stays an error.
        assert_eq!(
            Verdict::of(ch(Filter::Write, Op::Add), EBADF, epipe),
            Verdict::Failed(OsError::EBADF)
        );
    }

    #[test]
    fn settle_succeeds_when_all_applied_or_gone() {
        let changes = Changes::delete(RW);
        let ok = Ok(Settled {
            undo: Changes::EMPTY,
            write_peer_gone: None,
        });
        assert_eq!(
            settle(&changes, &[(Filter::Read, 0), (Filter::Write, 0)], epipe),
            Ok(Settled {
                undo: Changes::add(RW),
                write_peer_gone: None,
            })
        );
        assert_eq!(
            settle(
                &changes,
                &[(Filter::Read, ENOENT), (Filter::Write, 0)],
                epipe
            ),
            Ok(Settled {
                undo: Changes::add(W),
                write_peer_gone: None,
            })
        );
        // Receipts may come back in any order: they are matched by filter.
        assert_eq!(
            settle(
                &changes,
                &[(Filter::Write, ENOENT), (Filter::Read, EBADF)],
                epipe
            ),
            ok
        );
    }

    #[test]
    fn register_with_one_refused_filter_undoes_the_other() {
        let changes = Changes::add(RW);
        let failure = settle(
            &changes,
            &[(Filter::Read, 0), (Filter::Write, ENOMEM)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(
            failure.undo.as_slice(),
            [ch(Filter::Read, Op::DeleteIfPresent)]
        );

        let failure = settle(
            &changes,
            &[(Filter::Read, EBADF), (Filter::Write, EBADF)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::EBADF);
        assert!(failure.undo.as_slice().is_empty());
    }

    #[test]
    fn modify_with_a_refused_part_undoes_the_applied_part() {
        // READ -> WRITE: the delete of READ went through, the add of WRITE
        // was refused: READ must be added back.
        let changes = Changes::modify(R, W);
        let failure = settle(
            &changes,
            &[(Filter::Read, 0), (Filter::Write, ENOMEM)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(failure.undo.as_slice(), [ch(Filter::Read, Op::Add)]);

        // The add of WRITE went through, the delete of READ failed: WRITE
        // must be deleted again.
        let failure = settle(
            &changes,
            &[(Filter::Read, EINVAL), (Filter::Write, 0)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::EINVAL);
        assert_eq!(
            failure.undo.as_slice(),
            [ch(Filter::Write, Op::DeleteIfPresent)]
        );

        // A check that passed needs no undo.
        let failure = settle(
            &Changes::modify(RW, R),
            &[(Filter::Read, 0), (Filter::Write, ENOMEM)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert!(failure.undo.as_slice().is_empty());
    }

    /// A kernel that reports only refusals: a change with no entry was
    /// applied, and is undone if another one was refused.
    #[test]
    fn a_change_without_a_receipt_was_applied() {
        let changes = Changes::add(RW);
        assert_eq!(
            settle(&changes, &[], epipe).map(|s| s.write_peer_gone),
            Ok(None)
        );
        let failure = settle(&changes, &[(Filter::Write, ENOMEM)], epipe).unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(
            failure.undo.as_slice(),
            [ch(Filter::Read, Op::DeleteIfPresent)]
        );
    }

    #[test]
    fn the_first_refusal_is_reported() {
        let changes = Changes::add(RW);
        let failure = settle(
            &changes,
            &[(Filter::Write, EINVAL), (Filter::Read, ENOMEM)],
            epipe,
        )
        .unwrap_err();
        assert_eq!(
            failure.error,
            OsError::ENOMEM,
            "READ comes first in the list"
        );
    }
}
