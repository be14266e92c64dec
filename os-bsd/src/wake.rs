//! The kevent changes of the wake-up source, independent of the syscall:
//! which flags the registration and the trigger carry.
//!
//! Compiled on every target (and unit-tested on Linux against models of the
//! kernels' `filt_usertouch`); the `waker` module turns these into
//! `struct kevent`s. See `KERNELS.md`, section 7.

/// The flags of one `EVFILT_USER` change (`EV_RECEIPT` is always added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserChange {
    /// `EV_ADD`.
    pub(crate) add: bool,
    /// `EV_CLEAR`.
    pub(crate) clear: bool,
    /// `NOTE_TRIGGER` in `fflags`.
    pub(crate) trigger: bool,
}

/// The registration, made once by `Kqueue::new`: `EV_ADD | EV_CLEAR`, not
/// triggered. `EV_CLEAR` on the knote makes each delivery reset the trigger
/// (FreeBSD `filt_usertouch(EVENT_PROCESS)`, XNU `filt_userprocess`), so
/// one `select` consumes one wake-up.
#[cfg_attr(not(evfilt_user), allow(dead_code))]
pub(crate) const USER_REGISTER: UserChange = UserChange {
    add: true,
    clear: true,
    trigger: false,
};

/// A wake: `NOTE_TRIGGER` with `EV_ADD` (idempotent on the existing event,
/// as mio does) and **no** `EV_CLEAR`. FreeBSD's and DragonFly's
/// `filt_usertouch(EVENT_REGISTER)` set the trigger for `NOTE_TRIGGER` and
/// then, if the change itself carries `EV_CLEAR`, reset it at once; the
/// wake would be lost and a blocked `select` never return.
#[cfg_attr(not(evfilt_user), allow(dead_code))]
pub(crate) const USER_TRIGGER: UserChange = UserChange {
    add: true,
    clear: false,
    trigger: true,
};

/// The registration of the wake-up pipe's read end (NetBSD, OpenBSD):
/// `EV_ADD | EV_CLEAR` of `EVFILT_READ`, so each write is one new event and
/// the selector never drains the pipe. `(add, clear)`.
#[cfg_attr(evfilt_user, allow(dead_code))]
pub(crate) const PIPE_REGISTER: (bool, bool) = (true, true);

#[cfg(test)]
mod tests {
    use super::*;

    /// Which `filt_usertouch` a model follows.
    #[derive(Clone, Copy, Debug)]
    enum Kernel {
        /// FreeBSD `sys/kern/kern_event.c`, DragonFly the same, NetBSD the
        /// same: `EVENT_REGISTER` sets `kn_hookid = 1` for `NOTE_TRIGGER`,
        /// then `if (kev->flags & EV_CLEAR) kn_hookid = 0`.
        FreeBsd,
        /// XNU `bsd/kern/kern_event.c`: `filt_usertouch` sets `kn_hook32`
        /// for `NOTE_TRIGGER` and never looks at the change's `EV_CLEAR`.
        Xnu,
    }

    /// A model of one `EVFILT_USER` knote: `(registered with EV_CLEAR,
    /// triggered)`.
    #[derive(Clone, Copy, Debug, Default)]
    struct Knote {
        exists: bool,
        clear: bool,
        hook: bool,
    }

    impl Knote {
        /// `kqueue_register` of `change` (attach or touch).
        fn register(&mut self, kernel: Kernel, change: UserChange) {
            if !self.exists {
                assert!(change.add, "ENOENT: no knote and no EV_ADD");
                // filt_userattach: the trigger as asked, flags kept.
                *self = Self {
                    exists: true,
                    clear: change.clear,
                    hook: change.trigger,
                };
                return;
            }
            // EVENT_REGISTER touch.
            if change.trigger {
                self.hook = true;
            }
            if matches!(kernel, Kernel::FreeBsd) && change.clear {
                self.hook = false;
            }
        }

        /// `kqueue_scan`: is the event delivered? (`EVENT_PROCESS` then
        /// resets the trigger of an `EV_CLEAR` knote.)
        fn scan(&mut self) -> bool {
            let fired = self.hook;
            if fired && self.clear {
                self.hook = false;
            }
            fired
        }
    }

    #[test]
    fn the_wake_change_carries_no_ev_clear() {
        let expected_trigger = UserChange {
            add: true,
            clear: false,
            trigger: true,
        };
        assert_eq!(
            USER_TRIGGER, expected_trigger,
            "EV_CLEAR in a trigger loses the wake on FreeBSD"
        );
        let expected_register = UserChange {
            add: true,
            clear: true,
            trigger: false,
        };
        assert_eq!(USER_REGISTER, expected_register);
        assert_eq!(PIPE_REGISTER, (true, true));
    }

    /// With our changes, every wake is delivered exactly once on both
    /// kernels' rules: 1,000 in a row, as the integration test does.
    #[test]
    fn every_wake_ends_one_select_on_every_kernel() {
        for kernel in [Kernel::FreeBsd, Kernel::Xnu] {
            let mut kn = Knote::default();
            kn.register(kernel, USER_REGISTER);
            assert!(!kn.scan(), "{kernel:?}: registered untriggered");
            for i in 0..1000 {
                kn.register(kernel, USER_TRIGGER);
                assert!(kn.scan(), "{kernel:?}: wake {i} lost");
                assert!(!kn.scan(), "{kernel:?}: wake {i} delivered twice");
            }
        }
    }

    /// The defect this guards against: a trigger with `EV_CLEAR` (the
    /// original waker) is lost on FreeBSD and works on XNU only.
    #[test]
    fn a_trigger_with_ev_clear_is_lost_on_freebsd() {
        let with_clear = UserChange {
            clear: true,
            ..USER_TRIGGER
        };
        let mut kn = Knote::default();
        kn.register(Kernel::FreeBsd, USER_REGISTER);
        kn.register(Kernel::FreeBsd, with_clear);
        assert!(!kn.scan());
        let mut kn = Knote::default();
        kn.register(Kernel::Xnu, USER_REGISTER);
        kn.register(Kernel::Xnu, with_clear);
        assert!(kn.scan());
    }
}
