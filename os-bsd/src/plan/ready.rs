//! Returned kevents → readiness, independent of the syscall: the
//! `native → Events` mapping and the merge into one result per fd.
//!
//! The kqueue side reads the fields out of each `struct kevent` and calls
//! these.

use ioselect_core::{Events, Token};

use crate::plan::changes::Filter;

/// The raw value of [`Token::INTERNAL`], as kevent's `udata` returns it.
const INTERNAL: u64 = Token::INTERNAL.get();

/// The readiness one returned kevent reports: `filter` is `None` for a filter
/// this crate does not register, `eof`
/// is its `EV_EOF` flag.
///
/// `EVFILT_READ` is [`Events::READ`] and `EVFILT_WRITE` is
/// [`Events::WRITE`], whatever the flags say, as in CPython's
/// `KqueueSelector`. `EV_EOF` describes one direction only: the write
/// filter sets it once the socket cannot send any more (our own
/// `shutdown(SHUT_WR)`: FreeBSD and XNU `filt_sowrite`), the read filter
/// once the peer stopped sending. Widening it to READ | WRITE would report
/// READ with nothing to read where epoll reports only `EPOLLOUT`. A hang-up
/// or a socket error still reaches both interests, because both filters
/// fire for it (each sets `EV_EOF`, or returns true on `so_error`), and an
/// fd registered for both gets both, as with epoll's `EPOLLHUP`/`EPOLLERR`.
/// Kernel notes: [readiness](crate::kernels#readiness).
#[must_use]
pub(crate) fn readiness(filter: Option<Filter>, eof: bool) -> Events {
    match (filter, eof) {
        (Some(Filter::Read), _) => Events::READ,
        (Some(Filter::Write), _) => Events::WRITE,
        (None, _) => Events::empty(),
    }
}

/// What [`merge`] found in one batch of returned events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merged {
    /// How many results it wrote to the front of `out`.
    pub(crate) count: usize,
    /// The batch held the wake-up pipe's event ([`Token::INTERNAL`]): a
    /// wake-up to consume (see [`crate::plan::wake`]).
    pub(crate) woken: bool,
}

/// Merges returned events into one `(token, events)` per token, written to
/// the front of `out`.
///
/// kqueue reports `EVFILT_READ` and `EVFILT_WRITE` of one fd as two events;
/// the selector wants one per fd. `raw` is sorted by token in place (no heap,
/// O(n log n)) and each run of equal tokens is OR-ed together. Events tagged
/// [`Token::INTERNAL`] (the waker) and events with no readiness are dropped:
/// their only job was to end the wait. When `out` is full the remaining runs
/// are dropped too; readiness is level-triggered, so they come again in the
/// next wait.
pub(crate) fn merge<E>(
    raw: &mut [E],
    read: impl Fn(&E) -> (u64, Events),
    out: &mut [(u64, Events)],
) -> Merged {
    raw.sort_unstable_by_key(|e| read(e).0);
    // `INTERNAL` is the largest token: it sorts last.
    let woken = raw.last().is_some_and(|e| read(e).0 == INTERNAL);
    let mut count = 0;
    let mut run: Option<(u64, Events)> = None;
    for (token, events) in raw.iter().map(&read) {
        if token == INTERNAL || events.is_empty() {
            continue;
        }
        match &mut run {
            Some((t, e)) if *t == token => *e |= events,
            _ => {
                // Nested, not a let chain: the MSRV is 1.85.
                if let Some(done) = run.replace((token, events)) {
                    if !emit(out, &mut count, done) {
                        return Merged { count, woken };
                    }
                }
            }
        }
    }
    if let Some(done) = run {
        emit(out, &mut count, done);
    }
    Merged { count, woken }
}

/// Writes `item` at `out[*count]` and counts it; false when `out` is full.
fn emit(out: &mut [(u64, Events)], count: &mut usize, item: (u64, Events)) -> bool {
    match out.get_mut(*count) {
        Some(slot) => {
            *slot = item;
            *count += 1;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Events = Events::READ;
    const W: Events = Events::WRITE;
    const RW: Events = Events::READ.union(Events::WRITE);

    /// A stand-in for `struct kevent`: token (`udata`), filter, `EV_EOF`.
    type Raw = (u64, Option<Filter>, bool);

    fn read(raw: &Raw) -> (u64, Events) {
        (raw.0, readiness(raw.1, raw.2))
    }

    /// Merges `raw` into an output of `M` slots; returns the used part.
    fn merged<const M: usize>(raw: &mut [Raw]) -> Out<M> {
        let mut out = [(0, Events::empty()); M];
        let n = merge(raw, read, &mut out).count;
        Out(out, n)
    }

    struct Out<const M: usize>([(u64, Events); M], usize);

    impl<const M: usize> Out<M> {
        fn as_slice(&self) -> &[(u64, Events)] {
            &self.0[..self.1]
        }
    }

    #[test]
    fn filter_mapping() {
        assert_eq!(readiness(Some(Filter::Read), false), R);
        assert_eq!(readiness(Some(Filter::Write), false), W);
        // Filters this crate does not register carry no readiness.
        assert_eq!(readiness(None, false), Events::empty());
        assert_eq!(readiness(None, true), Events::empty());
    }

    /// `filt_sowrite` sets `EV_EOF` after our own `shutdown(SHUT_WR)`; epoll
    /// reports only `EPOLLOUT` then. EOF on one filter is that direction.
    #[test]
    fn eof_on_the_write_filter_alone_is_write_only() {
        assert_eq!(readiness(Some(Filter::Write), true), W);
        assert_eq!(readiness(Some(Filter::Read), true), R);
    }

    #[test]
    fn read_and_write_of_one_fd_become_one_result() {
        let mut raw = [
            (7, Some(Filter::Read), false),
            (3, Some(Filter::Write), false),
            (7, Some(Filter::Write), false),
        ];
        let out = merged::<4>(&mut raw);
        assert_eq!(out.as_slice(), [(3, W), (7, RW)]);
    }

    #[test]
    fn every_token_appears_once_with_the_union_of_its_events() {
        // 40 events over 8 tokens in a scrambled order (no two adjacent).
        let mut raw = [(0, None, false); 40];
        for (i, slot) in raw.iter_mut().enumerate() {
            let token = ((i * 5) % 8) as u64;
            let filter = if i % 3 == 0 {
                Filter::Write
            } else {
                Filter::Read
            };
            *slot = (token, Some(filter), false);
        }
        let expected: [(u64, Events); 8] = core::array::from_fn(|t| {
            let mut events = Events::empty();
            for i in 0..40 {
                if (i * 5) % 8 == t {
                    events |= if i % 3 == 0 { W } else { R };
                }
            }
            (t as u64, events)
        });
        let out = merged::<16>(&mut raw);
        assert_eq!(out.as_slice(), expected);
    }

    #[test]
    fn eof_is_reported_per_filter_and_merged_per_fd() {
        let mut raw = [
            // Our shutdown(SHUT_WR): only the write filter fires, with EOF.
            (1, Some(Filter::Write), true),
            // A hang-up: both filters fire, both with EOF.
            (2, Some(Filter::Read), true),
            (2, Some(Filter::Write), true),
            // The peer stopped sending: the read filter, with EOF.
            (3, Some(Filter::Read), true),
        ];
        let out = merged::<4>(&mut raw);
        assert_eq!(out.as_slice(), [(1, W), (2, RW), (3, R)]);
    }

    #[test]
    fn internal_and_empty_events_are_dropped() {
        let mut raw = [
            (INTERNAL, None, false),
            (5, Some(Filter::Read), false),
            (INTERNAL, Some(Filter::Read), false),
            (6, None, false),
        ];
        let out = merged::<4>(&mut raw);
        assert_eq!(out.as_slice(), [(5, R)]);

        let mut mixed = [(INTERNAL, None, false), (5, Some(Filter::Read), false)];
        let mut out = [(0, Events::empty()); 4];
        assert_eq!(
            merge(&mut mixed, read, &mut out),
            Merged {
                count: 1,
                woken: true
            },
            "the wake-up is noticed, and not a result"
        );
        let mut plain = [(5, Some(Filter::Read), false)];
        assert!(!merge(&mut plain, read, &mut out).woken);
        let mut only_waker = [(INTERNAL, None, false)];
        assert_eq!(merged::<4>(&mut only_waker).as_slice(), []);
        assert_eq!(merged::<4>(&mut []).as_slice(), []);
    }

    #[test]
    fn a_full_output_keeps_the_first_runs_whole() {
        let mut raw = [
            (3, Some(Filter::Read), false),
            (1, Some(Filter::Read), false),
            (2, Some(Filter::Write), false),
            (1, Some(Filter::Write), false),
            (2, Some(Filter::Read), false),
        ];
        let out = merged::<2>(&mut raw);
        // Token 3 is left for the next wait; 1 and 2 are complete.
        assert_eq!(out.as_slice(), [(1, RW), (2, RW)]);
        let mut raw = [(9, Some(Filter::Read), false)];
        assert_eq!(merged::<0>(&mut raw).as_slice(), []);
    }
}
