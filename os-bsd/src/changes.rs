//! kqueue change lists, independent of the syscall: which filters an events
//! transition adds and deletes, how each receipt is judged, and what undoes
//! the part of a change list that was applied when another part failed.
//!
//! Compiled on every target (and unit-tested on Linux); the `kqueue` module
//! translates [`Change`]s into `struct kevent`s.

use ioselect_core::{Events, OsError};

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
    /// `EV_ADD`.
    Add,
    /// `EV_DELETE`.
    Delete,
}

/// One entry of a change list: add or delete one filter of the fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) filter: Filter,
    pub(crate) op: Op,
}

impl Change {
    /// The change that undoes this one.
    #[must_use]
    pub(crate) const fn undo(self) -> Self {
        let op = match self.op {
            Op::Add => Op::Delete,
            Op::Delete => Op::Add,
        };
        Self {
            filter: self.filter,
            op,
        }
    }
}

/// The change list of one call for one fd: at most one change per filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Changes {
    items: [Change; 2],
    len: usize,
}

impl Changes {
    /// No changes.
    pub(crate) const EMPTY: Self = Self {
        items: [Change {
            filter: Filter::Read,
            op: Op::Add,
        }; 2],
        len: 0,
    };

    /// The changes that take an fd watched for `old` to being watched for
    /// `new`: `EV_ADD` for the filters only `new` has, `EV_DELETE` for the
    /// filters only `old` has, nothing for the ones both have (so `modify`
    /// touches only the filters that change). `add` is `transition(empty,
    /// events)`, `delete` is `transition(events, empty)`.
    #[must_use]
    pub(crate) fn transition(old: Events, new: Events) -> Self {
        let mut changes = Self::EMPTY;
        for (filter, bit) in Filter::ALL {
            match (old.contains(bit), new.contains(bit)) {
                (false, true) => changes.push(Change {
                    filter,
                    op: Op::Add,
                }),
                (true, false) => changes.push(Change {
                    filter,
                    op: Op::Delete,
                }),
                _ => {}
            }
        }
        changes
    }

    /// The changes, in order.
    #[must_use]
    pub(crate) fn as_slice(&self) -> &[Change] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// True when there is nothing to change.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `change`; there is room for one per filter, and callers add
    /// each filter at most once.
    fn push(&mut self, change: Change) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = change;
            self.len += 1;
        }
    }
}

/// How the kernel answered one change, from its `EV_RECEIPT` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `data == 0`: the change was made.
    Applied,
    /// A delete of a filter that is not there: nothing was changed, and
    /// nothing needs to be.
    AlreadyGone,
    /// The change was refused with this errno; nothing was changed.
    Failed(OsError),
}

impl Verdict {
    /// Judges the receipt of `change`, whose `data` field is `errno` (0 for
    /// success). Only named errnos of deletes are ignored.
    #[must_use]
    pub(crate) fn of(change: Change, errno: i64) -> Self {
        if errno == 0 {
            return Self::Applied;
        }
        let error = OsError::from_raw(i32::try_from(errno).unwrap_or(OsError::EINVAL.raw()));
        match (change.op, error) {
            // The fd is closed. Closing an fd removes all of its kqueue
            // filters, so the delete has nothing left to do (Python's
            // `unregister` of a closed fd succeeds the same way).
            (Op::Delete, OsError::EBADF) => Self::AlreadyGone,
            // The fd has no such filter: it was closed (which removed its
            // filters) and its number possibly reused by a new file that was
            // never added; either way the filter is gone.
            (Op::Delete, OsError::ENOENT) => Self::AlreadyGone,
            (_, error) => Self::Failed(error),
        }
    }
}

/// A change list that failed: the error to report, and the changes that
/// undo the applied part, so the kernel is as it was before the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) error: OsError,
    pub(crate) undo: Changes,
}

/// Settles a submitted change list from its receipts, each `(filter,
/// errno)`: `Ok` when every change was applied or was a delete of something
/// already gone; otherwise the first refusal and the undo of every change
/// that was applied.
///
/// A change without a receipt counts as applied. Kernels that honour
/// `EV_RECEIPT` return one for every change; a kernel that ignores the
/// flag (OpenBSD's did, as of 2018) returns an `EV_ERROR` entry only for
/// the changes it refused, so silence means success there (mio reads
/// receipts the same way).
pub(crate) fn settle(changes: &Changes, receipts: &[(Filter, i64)]) -> Result<(), Failure> {
    let mut error = None;
    let mut undo = Changes::EMPTY;
    for &change in changes.as_slice() {
        let verdict = receipts
            .iter()
            .find(|(filter, _)| *filter == change.filter)
            .map_or(Verdict::Applied, |&(_, errno)| Verdict::of(change, errno));
        match verdict {
            Verdict::Applied => undo.push(change.undo()),
            Verdict::AlreadyGone => {}
            Verdict::Failed(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        None => Ok(()),
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

    fn add(filter: Filter) -> Change {
        Change {
            filter,
            op: Op::Add,
        }
    }

    fn del(filter: Filter) -> Change {
        Change {
            filter,
            op: Op::Delete,
        }
    }

    #[test]
    fn register_adds_each_requested_filter() {
        assert_eq!(Changes::transition(NONE, R).as_slice(), [add(Filter::Read)]);
        assert_eq!(
            Changes::transition(NONE, W).as_slice(),
            [add(Filter::Write)]
        );
        assert_eq!(
            Changes::transition(NONE, RW).as_slice(),
            [add(Filter::Read), add(Filter::Write)]
        );
    }

    #[test]
    fn unregister_deletes_each_registered_filter() {
        assert_eq!(Changes::transition(R, NONE).as_slice(), [del(Filter::Read)]);
        assert_eq!(
            Changes::transition(RW, NONE).as_slice(),
            [del(Filter::Read), del(Filter::Write)]
        );
    }

    #[test]
    fn modify_touches_only_the_filters_that_change() {
        assert_eq!(
            Changes::transition(R, W).as_slice(),
            [del(Filter::Read), add(Filter::Write)]
        );
        assert_eq!(Changes::transition(R, RW).as_slice(), [add(Filter::Write)]);
        assert_eq!(Changes::transition(RW, W).as_slice(), [del(Filter::Read)]);
        assert_eq!(Changes::transition(RW, R).as_slice(), [del(Filter::Write)]);
        for events in [R, W, RW] {
            assert!(Changes::transition(events, events).is_empty(), "{events:?}");
        }
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
                    Op::Delete => set -= bit,
                }
            }
            set
        }
        for old in [NONE, R, W, RW] {
            for new in [NONE, R, W, RW] {
                let changes = Changes::transition(old, new);
                assert_eq!(apply(old, changes.as_slice()), new);
                let mut undo = Changes::EMPTY;
                for c in changes.as_slice() {
                    undo.push(c.undo());
                }
                assert_eq!(apply(new, undo.as_slice()), old, "{old:?} -> {new:?}");
            }
        }
    }

    #[test]
    fn verdicts_ignore_only_named_errnos_of_deletes() {
        let (ebadf, enoent) = (
            i64::from(OsError::EBADF.raw()),
            i64::from(OsError::ENOENT.raw()),
        );
        assert_eq!(Verdict::of(add(Filter::Read), 0), Verdict::Applied);
        assert_eq!(Verdict::of(del(Filter::Read), 0), Verdict::Applied);
        assert_eq!(Verdict::of(del(Filter::Read), ebadf), Verdict::AlreadyGone);
        assert_eq!(
            Verdict::of(del(Filter::Write), enoent),
            Verdict::AlreadyGone
        );
        // An add is never excused: a closed fd cannot be registered.
        assert_eq!(
            Verdict::of(add(Filter::Read), ebadf),
            Verdict::Failed(OsError::EBADF)
        );
        assert_eq!(
            Verdict::of(add(Filter::Write), enoent),
            Verdict::Failed(OsError::ENOENT)
        );
        // Other errnos of deletes are real failures.
        assert_eq!(
            Verdict::of(del(Filter::Read), 12),
            Verdict::Failed(OsError::ENOMEM)
        );
        // An errno that does not fit an i32 still fails, it is not success.
        assert_eq!(
            Verdict::of(add(Filter::Read), i64::MAX),
            Verdict::Failed(OsError::EINVAL)
        );
    }

    #[test]
    fn settle_succeeds_when_all_applied_or_gone() {
        let changes = Changes::transition(RW, NONE);
        let enoent = i64::from(OsError::ENOENT.raw());
        assert_eq!(
            settle(&changes, &[(Filter::Read, 0), (Filter::Write, 0)]),
            Ok(())
        );
        assert_eq!(
            settle(&changes, &[(Filter::Read, enoent), (Filter::Write, 0)]),
            Ok(())
        );
        // Receipts may come back in any order: they are matched by filter.
        assert_eq!(
            settle(&changes, &[(Filter::Write, enoent), (Filter::Read, 9)]),
            Ok(())
        );
    }

    #[test]
    fn register_with_one_refused_filter_undoes_the_other() {
        let changes = Changes::transition(NONE, RW);
        let failure = settle(&changes, &[(Filter::Read, 0), (Filter::Write, 12)]).unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(failure.undo.as_slice(), [del(Filter::Read)]);

        let failure = settle(&changes, &[(Filter::Read, 9), (Filter::Write, 9)]).unwrap_err();
        assert_eq!(failure.error, OsError::EBADF);
        assert!(failure.undo.is_empty());
    }

    #[test]
    fn modify_with_a_refused_part_undoes_the_applied_part() {
        // READ -> WRITE: the delete of READ went through, the add of WRITE
        // was refused: READ must be added back.
        let changes = Changes::transition(R, W);
        let failure = settle(&changes, &[(Filter::Read, 0), (Filter::Write, 12)]).unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(failure.undo.as_slice(), [add(Filter::Read)]);

        // The add of WRITE went through, the delete of READ failed with an
        // unexpected errno: WRITE must be deleted again.
        let failure = settle(&changes, &[(Filter::Read, 22), (Filter::Write, 0)]).unwrap_err();
        assert_eq!(failure.error, OsError::EINVAL);
        assert_eq!(failure.undo.as_slice(), [del(Filter::Write)]);

        // Modify of a closed fd: the delete is excused, the add is not, and
        // nothing was applied, so nothing is undone.
        let failure = settle(&changes, &[(Filter::Read, 9), (Filter::Write, 9)]).unwrap_err();
        assert_eq!(failure.error, OsError::EBADF);
        assert!(failure.undo.is_empty());
    }

    /// A kernel without `EV_RECEIPT` answers only refusals: a change with
    /// no entry was applied, and is undone if another one was refused.
    #[test]
    fn a_change_without_a_receipt_was_applied() {
        let changes = Changes::transition(NONE, RW);
        assert_eq!(settle(&changes, &[]), Ok(()));
        let failure = settle(&changes, &[(Filter::Write, 12)]).unwrap_err();
        assert_eq!(failure.error, OsError::ENOMEM);
        assert_eq!(failure.undo.as_slice(), [del(Filter::Read)]);
    }

    #[test]
    fn the_first_refusal_is_reported() {
        let changes = Changes::transition(NONE, RW);
        let failure = settle(&changes, &[(Filter::Write, 22), (Filter::Read, 12)]).unwrap_err();
        assert_eq!(
            failure.error,
            OsError::ENOMEM,
            "READ comes first in the list"
        );
    }
}
