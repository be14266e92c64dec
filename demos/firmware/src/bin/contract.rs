//! The waiting contract on a real (emulated) machine, with real interrupts:
//!
//! 1. the seed's pattern: handlers stored as key data that register,
//!    unregister and modify while a batch is handled, readiness from the
//!    timer and the software interrupt;
//! 2. `select(None)` never returns an empty batch;
//! 3. a timed `select` never returns early by the platform's clock;
//! 4. thousands of interrupts timed to land between the selector's scan and
//!    its sleep: none missed, bounded latency, one pass each;
//!    and the control: the naive idle hook (check, then `wfi`, interrupts
//!    enabled) misses them;
//! 5. the number of sleeps (idle-loop passes) per `select` is bounded;
//! 6. a timed `select` on a platform without a clock is `Error::NoClock`;
//! 7. a `select` inside a critical section leaves interrupts masked (the
//!    control: the sleep that enabled them unconditionally is caught);
//! 8. (lm3s6965evb) the UART's receive errors are decoded from the data
//!    register, each kind counted (QEMU's UART produces only a break, which
//!    the `echo` test sends; the other kinds are decoded from words made up
//!    here);
//! 9. the clock runs past each wrap of its counters: a timed `select` across
//!    each returns on time, neither hangs nor returns early (last: it moves
//!    the clock forward by up to 584 years).
//!
//! Lines ending in `[measured]` carry figures that move with code size; the
//! runner's comparison with `expected/*.log` leaves them out. Any failed
//! check panics: the panic handler logs it and exits with status 1.
#![no_std]
#![no_main]

use core::cell::Cell;
use core::mem::size_of;
use core::sync::atomic::Ordering;
use core::time::Duration;

use defmt::{assert, assert_eq, info};
use ioselect_core::Error;
use ioselect_firmware::{
    self as fw, CLOCK_WRAPS, Careless, Events, Idle, MACHINE, Naive, Platform, READY, RawFd,
    SLEEPS, SOFT, SOFT_IRQS, SOURCES, Selector, SoftBackend, TIMER, TIMER_EVERY,
};

const MS: Duration = Duration::from_millis(1);
/// A wake-up the sleep did not miss comes within this; a missed one waits
/// for the next 1 ms tick.
const LATE: Duration = Duration::from_micros(250);
const STORM: u32 = 10_000;

fn us(d: Duration) -> u32 {
    d.as_micros() as u32
}

fn sleeps() -> u32 {
    SLEEPS.load(Ordering::Relaxed)
}

/// Delivers the current batch, returns `(events, fds seen as a bit set)`.
fn drain<P: Platform, T, const N: usize>(
    sel: &mut Selector<SoftBackend<'static, SOURCES, P>, T, N>,
) -> (u32, u32) {
    let (mut n, mut fds) = (0, 0);
    while let Some((key, _)) = sel.next_ready() {
        n += 1;
        fds |= 1 << key.fd();
    }
    (n, fds)
}

// --- 1. the seed's pattern ----------------------------------------------------

type SeedSel = Selector<SoftBackend<'static, SOURCES, Idle>, Handler, SOURCES>;

/// A callback stored as the key's data, as the seed's server does.
#[derive(Clone, Copy)]
struct Handler(fn(&mut SeedSel, RawFd, Events, &mut Seen));

#[derive(Default)]
struct Seen {
    accepts: u32,
    reads: u32,
}

/// The timer plays the listening socket: each tick "accepts" the software
/// source, registering it with its own handler, and triggers its interrupt.
fn accept(sel: &mut SeedSel, fd: RawFd, _mask: Events, seen: &mut Seen) {
    READY.clear(fd, Events::READ);
    seen.accepts += 1;
    info!("accept(timer) #{=u32}", seen.accepts);
    if sel.register(SOFT, Events::READ, Handler(read)).is_err() {
        panic!("register soft");
    }
    fw::pend_soft();
    if seen.accepts == 3 {
        // The handler replaces itself, as `modify` with new data does.
        if sel.modify(fd, Events::READ, Handler(last_accept)).is_err() {
            panic!("modify timer");
        }
        info!("    next accept is the last");
    }
}

fn last_accept(sel: &mut SeedSel, fd: RawFd, _mask: Events, seen: &mut Seen) {
    READY.clear(fd, Events::READ);
    seen.accepts += 1;
    info!("accept(timer) #{=u32}: closing the listener", seen.accepts);
    if sel.unregister(fd).is_err() {
        panic!("unregister timer");
    }
}

fn read(sel: &mut SeedSel, fd: RawFd, mask: Events, seen: &mut Seen) {
    READY.clear(fd, Events::READ);
    seen.reads += 1;
    assert!(mask == Events::READ);
    info!("read(soft)");
    info!(
        "    received interrupt #{=u32}",
        SOFT_IRQS.load(Ordering::Relaxed)
    );
    info!("    closing");
    if sel.unregister(fd).is_err() {
        panic!("unregister soft");
    }
}

fn seed_pattern() {
    info!("1. the seed's pattern: handlers as key data");
    TIMER_EVERY.store(2, Ordering::Relaxed);
    let mut sel: SeedSel = Selector::new(SoftBackend::with_platform(&READY, Idle));
    let mut seen = Seen::default();
    if sel.register(TIMER, Events::READ, Handler(accept)).is_err() {
        panic!("register timer");
    }
    let mut selects = 0;
    while !sel.is_empty() {
        info!("waiting for I/O");
        selects += 1;
        assert!(selects < 100);
        if sel.select(Some(10 * MS)).is_err() {
            panic!("select");
        }
        while let Some((key, mask)) = sel.next_ready() {
            let (fd, Handler(callback)) = (key.fd(), *key.data());
            callback(&mut sel, fd, mask, &mut seen);
        }
    }
    TIMER_EVERY.store(0, Ordering::Relaxed);
    READY.clear(TIMER, Events::READ);
    info!(
        "shutting down: {=u32} accepts, {=u32} reads",
        seen.accepts, seen.reads
    );
    assert_eq!((seen.accepts, seen.reads), (4, 3));
}

// --- 2, 3, 5. select(None), timed selects, passes per select ------------------------

fn never_empty_never_early() {
    type Sel = Selector<SoftBackend<'static, SOURCES, Idle>, u32, SOURCES>;
    let mut sel: Sel = Selector::new(SoftBackend::with_platform(&READY, Idle));
    assert!(sel.register(TIMER, Events::READ, 0).is_ok());
    assert!(sel.register(SOFT, Events::READ, 1).is_ok()); // never ready here

    info!("2. select(None) returns only with an event (timer every 3 ms, 1 ms ticks between)");
    let every = 3;
    TIMER_EVERY.store(every, Ordering::Relaxed);
    let calls = 300;
    let (mut empty, mut most) = (0, 0);
    for _ in 0..calls {
        let before = sleeps();
        assert!(sel.select(None).is_ok());
        let (n, _) = drain(&mut sel);
        if n == 0 {
            empty += 1;
        }
        READY.clear(TIMER, Events::READ);
        most = most.max(sleeps() - before);
    }
    TIMER_EVERY.store(0, Ordering::Relaxed);
    info!("    {=u32} calls, {=u32} empty", calls, empty);
    info!(
        "5. passes per select(None): at most {=u32} (the ticks up to the event)",
        most
    );
    assert_eq!(empty, 0);
    assert!(most <= every);

    info!("3. a timed select never returns early (nothing ready)");
    for t in [
        Duration::from_nanos(1),
        Duration::from_micros(10),
        Duration::from_micros(999),
        MS,
        Duration::from_micros(2_500),
        50 * MS,
    ] {
        let before = sleeps();
        let start = fw::now();
        assert!(sel.select(Some(t)).is_ok());
        let took = fw::now() - start;
        let passes = sleeps() - before;
        let (n, _) = drain(&mut sel);
        assert_eq!(n, 0);
        let ns = t.as_nanos() as u64;
        assert!(
            took >= t,
            "select({=u64} ns) returned after {=u32} us",
            ns,
            us(took)
        );
        // Late by at most the tick that ends the last sleep.
        assert!(took < t + MS + LATE);
        let ticks = t.as_nanos().div_ceil(MS.as_nanos()) as u32;
        assert!(passes <= ticks + 1);
        info!("    select({=u64} ns): 0 events, not early", ns);
        info!(
            "    select({=u64} ns) took {=u32} us in {=u32} passes [measured]",
            ns,
            us(took),
            passes
        );
    }

    info!("3. a timed select returns with the event before its deadline");
    TIMER_EVERY.store(5, Ordering::Relaxed);
    let start = fw::now();
    assert!(sel.select(Some(50 * MS)).is_ok());
    let took = fw::now() - start;
    let (n, fds) = drain(&mut sel);
    assert_eq!((n, fds), (1, 1 << TIMER));
    assert!(took <= 5 * MS + LATE);
    TIMER_EVERY.store(0, Ordering::Relaxed);
    READY.clear(TIMER, Events::READ);
    info!(
        "    select(50 ms): the timer's event [measured: {=u32} us]",
        us(took)
    );
}

// --- 4. interrupts between the scan and the sleep ---------------------------------

/// Wraps a platform to trigger the software interrupt in the window a lost
/// wake-up comes from: after the backend's scan and before the sleep masks
/// interrupts (`masked == false`: the handler runs at once), or after the
/// check, with interrupts masked (`true`: it is pending when `wfi` runs).
struct Racy<P> {
    inner: P,
    masked: Cell<bool>,
    pended_at: Cell<Duration>,
}

impl<P: Platform> Platform for Racy<P> {
    fn now(&self) -> Option<Duration> {
        self.inner.now()
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        let at = &self.pended_at;
        if self.masked.get() {
            self.inner.sleep(deadline, || {
                let ready = woken();
                if !ready {
                    at.set(fw::now());
                    fw::pend_soft();
                }
                ready
            });
        } else {
            at.set(fw::now());
            fw::pend_soft();
            self.inner.sleep(deadline, woken);
        }
    }
}

/// `rounds` selects, each woken only by an interrupt landing in the window;
/// returns (late ones, the largest latency, the most passes).
fn storm<P: Platform>(platform: P, rounds: u32, alternate: bool) -> (u32, Duration, u32) {
    let racy = Racy {
        inner: platform,
        masked: Cell::new(true),
        pended_at: Cell::new(Duration::ZERO),
    };
    let mut sel: Selector<SoftBackend<'static, SOURCES, Racy<P>>, u32, SOURCES> =
        Selector::new(SoftBackend::with_platform(&READY, racy));
    assert!(sel.register(SOFT, Events::READ, 1).is_ok());
    let (mut late, mut worst, mut most) = (0, Duration::ZERO, 0);
    let irqs = SOFT_IRQS.load(Ordering::Relaxed);
    for i in 0..rounds {
        sel.backend()
            .platform()
            .masked
            .set(!alternate || i % 2 == 1);
        let before = sleeps();
        assert!(sel.select(None).is_ok());
        let latency = fw::now() - sel.backend().platform().pended_at.get();
        let (n, fds) = drain(&mut sel);
        assert_eq!((n, fds), (1, 1 << SOFT));
        READY.clear(SOFT, Events::READ);
        if latency > LATE {
            late += 1;
            defmt::debug!(
                "late round {=u32} masked {=bool}: pended at {=u64} ns, now {=u64} ns",
                i,
                sel.backend().platform().masked.get(),
                sel.backend().platform().pended_at.get().as_nanos() as u64,
                fw::now().as_nanos() as u64
            );
        }
        worst = worst.max(latency);
        most = most.max(sleeps() - before);
    }
    assert_eq!(SOFT_IRQS.load(Ordering::Relaxed) - irqs, rounds);
    (late, worst, most)
}

fn lost_wake_ups() {
    info!(
        "4. {=u32} interrupts between the scan and the sleep (half before the mask, half while masked)",
        STORM
    );
    let (late, worst, most) = storm(Idle, STORM, true);
    info!(
        "    {=u32} late (over {=u32} us), at most {=u32} pass per select",
        late,
        us(LATE),
        most
    );
    info!("    worst latency {=u32} us [measured]", us(worst));
    assert_eq!(late, 0);
    assert!(worst <= LATE);
    assert_eq!(most, 1);

    let rounds = 200;
    info!(
        "4. control: the naive idle hook (check, then wfi, interrupts enabled), {=u32} rounds",
        rounds
    );
    let (late, worst, _) = storm(Naive, rounds, false);
    info!(
        "    late: {=u32} of {=u32}, worst latency {=u32} us [measured]",
        late,
        rounds,
        us(worst)
    );
    // The test can fail: the broken hook sleeps through each of them until
    // the next tick.
    assert!(late > rounds / 2);
    info!("    the broken hook is caught: more than half late");
}

// --- 6. no clock -------------------------------------------------------------------

struct Clockless;

impl Platform for Clockless {
    fn now(&self) -> Option<Duration> {
        None
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        Idle.sleep(deadline, woken);
    }
}

fn no_clock() {
    info!("6. a timed select on a platform without a clock");
    let mut sel: Selector<SoftBackend<'static, SOURCES, Clockless>, u32, SOURCES> =
        Selector::new(SoftBackend::with_platform(&READY, Clockless));
    assert!(sel.register(SOFT, Events::READ, 1).is_ok());
    assert!(sel.select(Some(MS)) == Err(Error::NoClock));
    fw::pend_soft();
    // Even with an event ready: the answer does not depend on luck.
    assert!(sel.select(Some(MS)) == Err(Error::NoClock));
    assert!(READY.get(SOFT) == Events::READ);
    assert!(sel.select(Some(Duration::ZERO)).is_ok());
    assert_eq!(drain(&mut sel), (1, 1 << SOFT));
    assert!(sel.select(None).is_ok());
    assert_eq!(drain(&mut sel), (1, 1 << SOFT));
    READY.clear(SOFT, Events::READ);
    info!("    Err(NoClock); select(0) and select(None) work");
}

// --- 7. select inside a critical section ------------------------------------------

/// Wraps a platform for a `select` inside a critical section: the first
/// sleep really sleeps (`wfi`, ended by the software interrupt, pending
/// while masked: its handler cannot run); the second finds the source
/// ready (set by the thread). Records whether interrupts were enabled after
/// any sleep.
struct Masked<P> {
    inner: P,
    calls: u32,
    unmasked: bool,
}

impl<P: Platform> Platform for Masked<P> {
    fn now(&self) -> Option<Duration> {
        self.inner.now()
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        self.calls += 1;
        if self.calls == 1 {
            self.inner.sleep(deadline, || {
                let ready = woken();
                if !ready {
                    fw::pend_soft();
                }
                ready
            });
        } else {
            READY.set(SOFT, Events::READ);
            self.inner.sleep(deadline, woken);
        }
        self.unmasked |= fw::interrupts_enabled();
    }
}

/// One `select(None)` inside a critical section through `platform`; returns
/// (sleeps, interrupts enabled after a sleep, enabled after the select,
/// software interrupts handled inside, events).
fn select_masked<P: Platform>(platform: P) -> (u32, bool, bool, u32, u32) {
    let masked = Masked {
        inner: platform,
        calls: 0,
        unmasked: false,
    };
    let mut sel: Selector<SoftBackend<'static, SOURCES, Masked<P>>, u32, SOURCES> =
        Selector::new(SoftBackend::with_platform(&READY, masked));
    assert!(sel.register(SOFT, Events::READ, 1).is_ok());
    let irqs = SOFT_IRQS.load(Ordering::Relaxed);
    let (after, inside, events) = critical_section::with(|_| {
        assert!(!fw::interrupts_enabled());
        assert!(sel.select(None).is_ok());
        let (n, _) = drain(&mut sel);
        (
            fw::interrupts_enabled(),
            SOFT_IRQS.load(Ordering::Relaxed) - irqs,
            n,
        )
    });
    READY.clear(SOFT, Events::READ);
    let p = sel.backend().platform();
    (p.calls, p.unmasked, after, inside, events)
}

fn masked_select() {
    info!("7. a select inside a critical section leaves interrupts masked");
    let irqs = SOFT_IRQS.load(Ordering::Relaxed);
    let (calls, unmasked, after, inside, events) = select_masked(Idle);
    assert_eq!((calls, events), (2, 1));
    assert!(!unmasked && !after);
    assert_eq!(inside, 0);
    // Out of the critical section, the pending software interrupt is handled.
    assert_eq!(SOFT_IRQS.load(Ordering::Relaxed) - irqs, 1);
    assert!(fw::interrupts_enabled());
    info!("    2 sleeps (one in wfi), 1 event, masked throughout; the handler ran after");

    info!("7. control: the sleep that enabled interrupts whatever it found");
    let (_, unmasked, after, inside, _) = select_masked(Careless);
    assert!(unmasked && after && inside == 1);
    assert!(fw::interrupts_enabled());
    info!("    caught: interrupts enabled inside the critical section, the handler ran there");
}

// --- 8. UART receive errors ------------------------------------------------------

#[cfg(machine = "lm3s6965evb")]
fn uart_errors() {
    use fw::uart::{RxErrors, decode};
    info!("8. UART receive errors: the error bits of data register words");
    let mut e = RxErrors::default();
    assert_eq!(decode(0x41, &mut e), Some(0x41));
    assert_eq!(decode(0xff, &mut e), Some(0xff));
    assert!(e.is_empty());
    // Overrun: the byte is good; bytes after it were lost.
    assert_eq!(decode(0x800 | 0x42, &mut e), Some(0x42));
    let want = RxErrors {
        overrun: 1,
        ..RxErrors::default()
    };
    assert_eq!(e, want);
    // Break, parity, framing: not data.
    assert_eq!(decode(0x400, &mut e), None);
    assert_eq!(decode(0x200 | 0x43, &mut e), None);
    assert_eq!(decode(0x100 | 0x44, &mut e), None);
    let want = RxErrors {
        overrun: 1,
        brk: 1,
        parity: 1,
        framing: 1,
    };
    assert_eq!(e, want);
    // All four at once count once each.
    assert_eq!(decode(0xf00 | 0x45, &mut e), None);
    let want = RxErrors {
        overrun: 2,
        brk: 2,
        parity: 2,
        framing: 2,
    };
    assert_eq!(e, want);
    info!("    overrun keeps its byte; break, parity and framing drop theirs; each counted");
}

// --- 9. the clock past its wraps --------------------------------------------------

fn clock_wraps() {
    info!("9. the clock past each wrap of its counters (a timed select across each)");
    let mut sel: Selector<SoftBackend<'static, SOURCES, Idle>, u32, SOURCES> =
        Selector::new(SoftBackend::with_platform(&READY, Idle));
    assert!(sel.register(SOFT, Events::READ, 1).is_ok()); // never ready here
    let t = 10 * MS;
    for (name, at) in CLOCK_WRAPS {
        fw::skip_clock_to(at - 3 * MS);
        let start = fw::now();
        assert!(start < at && start + 4 * MS > at);
        let before = sleeps();
        assert!(sel.select(Some(t)).is_ok());
        let end = fw::now();
        let took = end - start;
        assert_eq!(drain(&mut sel), (0, 0));
        assert!(end > at);
        assert!(
            took >= t,
            "select(10 ms) across {=str} returned after {=u32} us",
            name,
            us(took)
        );
        assert!(took < t + MS + LATE);
        assert!(sleeps() - before <= 11);
        info!("    across {=str}: select(10 ms) returned on time", name);
        info!(
            "    across {=str}: took {=u32} us, clock at {=u64} s [measured]",
            name,
            us(took),
            end.as_secs()
        );
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    fw::init();
    info!("ioselect-core contract on {=str}", MACHINE);
    let backend = size_of::<SoftBackend<'static, 8, Idle>>();
    let selector = size_of::<Selector<SoftBackend<'static, 8, Idle>, Handler, 8>>();
    info!(
        "size_of: SoftBackend<8> {=usize} B, Selector<SoftBackend<8>, Handler, 8> {=usize} B [measured]",
        backend, selector
    );
    // At most half of the 344 B it took with 24 B per interest entry.
    assert!(backend <= 172);
    info!("SoftBackend<8> is at most half of the 344 B it was with an entry per interest");
    seed_pattern();
    never_empty_never_early();
    lost_wake_ups();
    no_clock();
    masked_select();
    #[cfg(machine = "lm3s6965evb")]
    uart_errors();
    clock_wraps();
    info!("all contract checks passed");
    fw::exit(0)
}
