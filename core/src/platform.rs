//! The waiting contract between [`SoftBackend`](crate::SoftBackend) and the
//! machine it runs on: a monotonic clock, and a sleep that cannot miss a
//! wake-up.

use core::time::Duration;

/// What a bare-metal platform supplies so that a
/// [`SoftBackend`](crate::SoftBackend) waits the way a kernel does:
/// `select(None)` returns only with at least one event, and `select(Some(t))`
/// returns no earlier than `t` by [`now`](Self::now), without spinning.
///
/// # The lost wake-up, and how `sleep` avoids it
/// Readiness is set by interrupt handlers ([`SoftReadiness::set`](crate::SoftReadiness::set)).
/// When the backend finds nothing ready and then sleeps, an interrupt that
/// lands *between* its look and the sleep would be seen only at the next,
/// unrelated interrupt. So the backend never sleeps by itself: it hands
/// [`sleep`](Self::sleep) a check, `woken`, and the platform must
///
/// 1. note whether interrupts are enabled, and mask them (enter a critical
///    section),
/// 2. call `woken()`; if it returns `true`, restore the state noted and
///    return at once,
/// 3. otherwise sleep so that an interrupt which became pending after step 1
///    still ends the sleep, then restore the state noted (if interrupts were
///    enabled, the handler runs now) and return.
///
/// On Cortex-M: read PRIMASK, `cpsid i`, check, `wfi`, and `cpsie i` only if
/// PRIMASK was clear (`wfi` wakes on a pending interrupt even while PRIMASK
/// masks it). On RISC-V: read `mstatus.MIE`, clear it, check, `wfi`, and set
/// it only if it was set (`wfi` wakes on an interrupt pending and enabled in
/// `mie`, whatever `mstatus.MIE` says). A platform built on `wfe` instead has
/// its handlers execute `sev` after `set`.
///
/// `sleep` may return early (any interrupt, a spurious wake-up): the backend
/// looks again, and sleeps again until something it watches is ready or the
/// deadline has passed by [`now`](Self::now). Each return should come from
/// an interrupt or the deadline, never from a busy loop, so the number of
/// passes per `select` stays bounded by the interrupts that arrive.
///
/// # Entered with interrupts masked
/// `sleep` may be entered with interrupts masked: a `select` inside a
/// critical section, or from a handler whose priority masks the sources'
/// interrupts. It must leave them masked: never enable interrupts it did
/// not find enabled (that would break the caller's critical section). Such a
/// `select` sees only readiness that needs no handler to run: set before,
/// or set by the thread itself. A pending interrupt still ends `wfi`, but
/// its handler cannot run: a `select(None)` waiting for that handler does
/// not return, and a timed `select` on a clock that a tick interrupt
/// advances may never see its deadline pass (it spins through `wfi`, which
/// the pending tick keeps ending). Poll there with
/// `select(Some(Duration::ZERO))`, as kernel code polls in atomic context.
///
/// # One core
/// The masked check in step 2 excludes interrupt handlers on *this* core
/// only. On a multi-core part, a source may be set from another core at
/// any moment, also between the check and the sleep; that core must then
/// wake this one: `sev` on Cortex-M with a `wfe`-based sleep, or an
/// inter-processor interrupt (an IPI; on RISC-V, the other hart's `msip`).
/// [`SoftReadiness::set`](crate::SoftReadiness::set) only stores the flags:
/// it wakes no core, so the code that calls it on another core sends the
/// wake-up after it.
///
/// # Without a clock
/// A platform whose [`now`](Self::now) returns `None` cannot honour a
/// positive timeout: `select(Some(t))` with `t > 0` fails with
/// [`Error::NoClock`](crate::Error::NoClock), whatever is ready, rather than
/// returning early. `select(None)` and `select(Some(Duration::ZERO))` work.
///
/// # Example
/// A Cortex-M platform (as `demos/firmware` has it) is, in outline:
///
/// ```text
/// fn sleep(&mut self, _deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
///     let enabled = cortex_m::register::primask::read().is_active();
///     cortex_m::interrupt::disable();
///     if !woken() { cortex_m::asm::wfi(); }
///     if enabled { unsafe { cortex_m::interrupt::enable() } }
/// }
/// ```
///
/// On a host, with a thread in the role of the interrupt handler: `park`'s
/// token plays the pending interrupt (an `unpark` that comes after the check
/// and before the `park` still ends it).
///
/// ```
/// use core::time::Duration;
/// use std::time::Instant;
/// use ioselect_core::{Events, Platform, Selector, SoftBackend, SoftReadiness};
///
/// struct Parking(Instant);
///
/// impl Platform for Parking {
///     fn now(&self) -> Option<Duration> {
///         Some(self.0.elapsed())
///     }
///     fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
///         if woken() {
///             return;
///         }
///         match deadline {
///             Some(d) => std::thread::park_timeout(d.saturating_sub(self.0.elapsed())),
///             None => std::thread::park(),
///         }
///     }
/// }
///
/// static READY: SoftReadiness<4> = SoftReadiness::new();
/// let mut sel: Selector<SoftBackend<'static, 4, Parking>, &str, 4> =
///     Selector::new(SoftBackend::with_platform(&READY, Parking(Instant::now())));
/// sel.register(1, Events::READ, "one")?;
///
/// // Nothing ready: a timed select waits its whole time, never less.
/// let start = Instant::now();
/// sel.select(Some(Duration::from_millis(20)))?;
/// assert!(sel.next_ready().is_none());
/// assert!(start.elapsed() >= Duration::from_millis(20));
///
/// // The "interrupt": another thread sets readiness, then wakes the selector.
/// let selecting = std::thread::current();
/// let isr = std::thread::spawn(move || {
///     READY.set(1, Events::READ);
///     selecting.unpark();
/// });
/// sel.select(None)?; // returns only with an event
/// assert_eq!(sel.next_ready().map(|(key, _)| *key.data()), Some("one"));
/// isr.join().unwrap();
/// # Ok::<(), ioselect_core::Error>(())
/// ```
pub trait Platform {
    /// Monotonic time since a fixed point of the platform's choice (boot,
    /// say), or `None` when the platform has no clock. It never goes back.
    fn now(&self) -> Option<Duration>;

    /// Sleeps until an interrupt, or until `deadline` by [`now`](Self::now)
    /// (`None`: no deadline), unless `woken()`, called with interrupts
    /// masked, returns `true`; see the trait's documentation for the steps.
    /// Returns with interrupts enabled or masked as it found them.
    /// A platform with a clock arranges a wake-up (a timer interrupt) no
    /// later than shortly after `deadline`.
    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool);
}

/// No platform: the backend never waits. `wait` reports what is ready at
/// that moment, whatever the timeout, and may return no events for
/// `select(None)`.
///
/// It is [`SoftBackend::new`](crate::SoftBackend::new)'s platform, for host
/// tests and models that set readiness themselves between two calls. It is
/// not a [`Platform`]: no platform can make a backend return from
/// `select(None)` without an event. A microcontroller gives its own
/// [`Platform`] with
/// [`SoftBackend::with_platform`](crate::SoftBackend::with_platform).
///
/// No platform can claim to be one:
///
/// ```compile_fail
/// use core::time::Duration;
/// struct Liar;
/// impl ioselect_core::Platform for Liar {
///     fn now(&self) -> Option<Duration> { None }
///     fn sleep(&mut self, _: Option<Duration>, _: impl FnOnce() -> bool) {}
///     const POLL_ONLY: bool = true; // not a member of the trait
/// }
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Poll;

pub(crate) use waiting::Waiting;

mod waiting {
    use core::time::Duration;

    use super::{Platform, Poll};

    /// How a [`SoftBackend`](crate::SoftBackend) waits: through a
    /// [`Platform`], or never ([`Poll`]). Sealed: only core implements it,
    /// so only [`Poll`] can make a backend that never waits.
    pub trait Waiting {
        /// True for [`Poll`] alone.
        const NEVER_WAITS: bool;
        /// [`Platform::now`].
        fn now(&self) -> Option<Duration>;
        /// [`Platform::sleep`].
        fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool);
    }

    impl Waiting for Poll {
        const NEVER_WAITS: bool = true;
        fn now(&self) -> Option<Duration> {
            None
        }
        fn sleep(&mut self, _deadline: Option<Duration>, _woken: impl FnOnce() -> bool) {}
    }

    impl<P: Platform> Waiting for P {
        const NEVER_WAITS: bool = false;
        #[inline]
        fn now(&self) -> Option<Duration> {
            Platform::now(self)
        }
        #[inline]
        fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
            Platform::sleep(self, deadline, woken);
        }
    }
}
