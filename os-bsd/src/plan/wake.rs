//! The wake-up pipe, independent of the syscalls: how a kqueue watches its
//! read end, what one wake writes, and when the selector reads it back.
//!
//! Every selector owns a non-blocking pipe whose read end each of its
//! kqueues watches with `EVFILT_READ` and `EV_CLEAR`; a `Waker` holds
//! `dup`s of both ends (the read end so that a wake never raises
//! `SIGPIPE`). The pipe, not the kqueue, is the wake-up source so that it
//! outlives a kqueue: a
//! [rebuild](ioselect_core::SelectorIn::rebuild) registers the same pipe in
//! a fresh kqueue, and wakers made before it wake the new one. (A kqueue's
//! own `EVFILT_USER` event can be triggered only through a descriptor of
//! that kqueue, which a waker made earlier does not have.) Kernel notes:
//! [wake-up](crate::kernels#wake-up).
//!
//! The protocol: a wake writes a byte ([`wake`]); a `select` whose batch
//! holds the pipe's event reads the pipe empty ([`consume`]). So the pipe
//! holds bytes exactly while a wake-up is pending, and registering its read
//! end in a fresh kqueue fires at once if, and only if, one is: a rebuild
//! neither loses a pending wake-up nor makes one nobody sent.
//!
//! The unit tests run this protocol against a model of the kernels' pipe
//! and `EV_CLEAR` rules.

/// How a kqueue watches the pipe's read end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// `EV_CLEAR`: every write after the last delivery is one new event, so
    /// a wake that comes between a delivery and the read that consumes it
    /// still ends the next `select` (an extra wake-up, never a lost one).
    Edge,
    /// No `EV_CLEAR`: fires while the pipe holds a byte. A wake between a
    /// delivery and the read would be read with it and lost. (Only the
    /// tests use it, to show what `Edge` prevents.)
    #[cfg_attr(not(test), allow(dead_code))]
    Level,
}

/// The registration every kqueue of a selector makes for the read end.
pub(crate) const READ_END: Trigger = Trigger::Edge;

/// How one non-blocking write of a byte went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// The byte is in the pipe.
    Byte,
    /// The pipe is full (`EAGAIN`).
    Full,
}

/// The write end of the wake-up pipe (a waker's).
pub(crate) trait WriteEnd {
    /// The error of a failed write.
    type Error;
    /// Writes one byte without blocking (`EINTR` retried).
    fn write_byte(&self) -> Result<Written, Self::Error>;
}

/// The read end of the wake-up pipe (the selector's).
pub(crate) trait ReadEnd {
    /// The error of a failed read.
    type Error;
    /// Reads without blocking until the pipe is empty (`EINTR` retried).
    fn drain(&self) -> Result<(), Self::Error>;
}

/// One wake: a byte written. A full pipe holds wake-ups nobody consumed
/// yet, so the next `select` returns anyway: nothing more to do.
pub(crate) fn wake<W: WriteEnd>(pipe: &W) -> Result<(), W::Error> {
    pipe.write_byte().map(|_| ())
}

/// After a `wait` whose batch held the pipe's event (`woken`): the wake-ups
/// are consumed, so the pipe is read empty. Nothing to do otherwise.
pub(crate) fn consume<R: ReadEnd>(pipe: &R, woken: bool) -> Result<(), R::Error> {
    if woken { pipe.drain() } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A model of a pipe with `capacity` bytes and the read-end knotes of up
    /// to two kqueues (an old one and the one `rebuild` made), following
    /// `pipe_write` → `pipeselwakeup` → `KNOTE` (every write activates each
    /// read-end knote, since the buffer then holds data), the attach of a
    /// new knote (active at once if the pipe holds data) and `kqueue_scan`
    /// (an `EV_CLEAR` knote is deactivated when delivered; a level one is
    /// delivered while the pipe holds data).
    struct Model {
        capacity: usize,
        bytes: Cell<usize>,
        /// Per kqueue: `None` when it does not watch the pipe, else whether
        /// its knote is active.
        knotes: [Cell<Option<bool>>; 2],
        trigger: Trigger,
    }

    impl Model {
        fn new(capacity: usize, trigger: Trigger) -> Self {
            Self {
                capacity,
                bytes: Cell::new(0),
                knotes: [Cell::new(Some(false)), Cell::new(None)],
                trigger,
            }
        }

        /// `EV_ADD` of the read end in kqueue `kq`.
        fn register(&self, kq: usize) {
            self.knotes[kq].set(Some(self.bytes.get() > 0));
        }

        /// `kevent` on kqueue `kq`: is the wake-up event delivered?
        fn scan(&self, kq: usize) -> bool {
            let knote = &self.knotes[kq];
            let Some(active) = knote.get() else {
                return false;
            };
            match self.trigger {
                Trigger::Edge => {
                    knote.set(Some(false));
                    active
                }
                Trigger::Level => self.bytes.get() > 0,
            }
        }

        /// A `select` on kqueue `kq`: the scan, then [`consume`].
        fn select(&self, kq: usize) -> bool {
            let woken = self.scan(kq);
            consume(self, woken).unwrap();
            woken
        }
    }

    impl WriteEnd for Model {
        type Error = ();

        fn write_byte(&self) -> Result<Written, ()> {
            if self.bytes.get() == self.capacity {
                return Ok(Written::Full);
            }
            self.bytes.set(self.bytes.get() + 1);
            for knote in &self.knotes {
                if knote.get().is_some() {
                    knote.set(Some(true));
                }
            }
            Ok(Written::Byte)
        }
    }

    impl ReadEnd for Model {
        type Error = ();

        fn drain(&self) -> Result<(), ()> {
            self.bytes.set(0);
            Ok(())
        }
    }

    /// Every wake ends exactly one select, 1,000 in a row, and leaves the
    /// pipe empty.
    #[test]
    fn every_wake_is_one_event() {
        let pipe = Model::new(16, READ_END);
        assert!(!pipe.select(0), "registered, not woken");
        for i in 0..1000 {
            wake(&pipe).unwrap();
            assert!(pipe.select(0), "wake {i} lost");
            assert!(!pipe.select(0), "wake {i} delivered twice");
            assert_eq!(pipe.bytes.get(), 0);
        }
    }

    /// Wakes before a select merge into one event (as epoll's eventfd
    /// waker's do), however many: a full pipe is a pending wake-up.
    #[test]
    fn wakes_between_two_selects_are_one_event() {
        let pipe = Model::new(4, READ_END);
        for _ in 0..10 {
            wake(&pipe).unwrap();
        }
        assert!(pipe.select(0));
        assert!(!pipe.select(0));
        wake(&pipe).unwrap();
        assert!(pipe.select(0), "a drained pipe takes wakes again");
    }

    /// A wake between a select's delivery and its read: read with the
    /// earlier byte, yet the knote it activated ends the next select.
    #[test]
    fn a_wake_during_the_read_back_is_not_lost() {
        let pipe = Model::new(4, READ_END);
        wake(&pipe).unwrap();
        assert!(pipe.scan(0));
        wake(&pipe).unwrap(); // after the delivery, before the read
        consume(&pipe, true).unwrap();
        assert!(pipe.select(0), "the late wake ends the next select");
        // A level-triggered read end would have lost it.
        let level = Model::new(4, Trigger::Level);
        wake(&level).unwrap();
        assert!(level.scan(0));
        wake(&level).unwrap();
        consume(&level, true).unwrap();
        assert!(!level.select(0), "lost");
    }

    /// `rebuild` after a consumed wake-up: the fresh kqueue's registration
    /// does not fire (no wake-up nobody sent); a waker made before it wakes
    /// the fresh kqueue.
    #[test]
    fn rebuild_after_a_consumed_wake_fires_nothing() {
        let pipe = Model::new(4, READ_END);
        wake(&pipe).unwrap();
        assert!(pipe.select(0));
        pipe.register(1); // the fresh kqueue
        pipe.knotes[0].set(None); // the old one is closed
        assert!(!pipe.select(1), "no wake-up nobody sent");
        wake(&pipe).unwrap();
        assert!(pipe.select(1));
        assert!(!pipe.select(1));
    }

    /// `rebuild` with a wake-up pending: the fresh kqueue returns for it,
    /// once. A failed `rebuild` (the fresh kqueue dropped) leaves it
    /// pending in the old one.
    #[test]
    fn a_pending_wake_survives_rebuild_and_a_failed_one() {
        let pipe = Model::new(4, READ_END);
        wake(&pipe).unwrap();
        wake(&pipe).unwrap();
        pipe.register(1);
        pipe.knotes[1].set(None); // failed: the fresh kqueue is dropped
        assert!(pipe.select(0), "still pending in the old kqueue");
        wake(&pipe).unwrap();
        pipe.register(1);
        pipe.knotes[0].set(None); // succeeded
        assert!(pipe.select(1));
        assert!(!pipe.select(1));
    }

    /// A failed write is the wake's error; a failed read the select's.
    #[test]
    fn failures_are_reported() {
        struct Broken;
        impl WriteEnd for Broken {
            type Error = &'static str;
            fn write_byte(&self) -> Result<Written, &'static str> {
                Err("EBADF")
            }
        }
        impl ReadEnd for Broken {
            type Error = &'static str;
            fn drain(&self) -> Result<(), &'static str> {
                Err("EIO")
            }
        }
        assert_eq!(wake(&Broken), Err("EBADF"));
        assert_eq!(consume(&Broken, true), Err("EIO"));
        assert_eq!(consume(&Broken, false), Ok(()), "nothing read");
    }
}
