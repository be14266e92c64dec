//! The waiting contract ([`Platform`]) with a simulated machine: a clock,
//! timer interrupts scheduled at given times, and interrupts that land in the
//! window a lost wake-up comes from (after the backend's scan, before or
//! during its sleep).

extern crate std;

use core::cell::{Cell, RefCell};
use core::time::Duration;
use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use crate::{Error, Events, Platform, RawFd, Selector, SoftBackend, SoftReadiness};

const M: usize = 8;
const MS: Duration = Duration::from_millis(1);

/// An interrupt handler's effect: set `fd` ready for `events`.
type Irq = (RawFd, Events);

/// A single-core machine: interrupts run only while unmasked.
struct Machine<'r> {
    readiness: &'r SoftReadiness<M>,
    clock: Option<Cell<Duration>>,
    /// Timer interrupts, in time order.
    timers: RefCell<VecDeque<(Duration, Irq)>>,
    /// Interrupts that land after the backend's scan, before it masks
    /// interrupts in `sleep` (they run at once).
    before_mask: RefCell<VecDeque<Irq>>,
    /// Interrupts that become pending while `sleep` has them masked, after
    /// the check (`wfi` then returns at once; they run on unmasking).
    while_masked: RefCell<VecDeque<Irq>>,
    /// A periodic tick that ends every sleep (spurious wake-ups).
    tick: Option<Duration>,
    sleeps: Cell<u32>,
    /// Sleeps the check cut short (it saw readiness with interrupts masked).
    checked: Cell<u32>,
}

impl<'r> Machine<'r> {
    fn new(readiness: &'r SoftReadiness<M>) -> Self {
        Self {
            readiness,
            clock: Some(Cell::new(Duration::ZERO)),
            timers: RefCell::default(),
            before_mask: RefCell::default(),
            while_masked: RefCell::default(),
            tick: None,
            sleeps: Cell::new(0),
            checked: Cell::new(0),
        }
    }

    fn at(&self, when: Duration, fd: RawFd, events: Events) {
        let mut timers = self.timers.borrow_mut();
        let i = timers.partition_point(|t| t.0 <= when);
        timers.insert(i, (when, (fd, events)));
    }

    fn time(&self) -> Duration {
        self.clock.as_ref().map_or(Duration::ZERO, Cell::get)
    }

    fn run(&self, (fd, events): Irq) {
        self.readiness.set(fd, events);
    }
}

/// The platform the backend owns: a handle on the machine.
struct Sim<'m, 'r>(&'m Machine<'r>);

impl Platform for Sim<'_, '_> {
    fn now(&self) -> Option<Duration> {
        self.0.clock.as_ref().map(Cell::get)
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        let m = self.0;
        m.sleeps.set(m.sleeps.get() + 1);
        assert!(m.sleeps.get() < 10_000, "the backend spins");
        if let Some(irq) = m.before_mask.borrow_mut().pop_front() {
            m.run(irq);
        }
        // Interrupts masked from here.
        if woken() {
            m.checked.set(m.checked.get() + 1);
            return;
        }
        let pending = m.while_masked.borrow_mut().pop_front();
        if let Some(irq) = pending {
            // `wfi` returns at once for a pending interrupt; it runs when
            // interrupts are unmasked.
            m.run(irq);
            return;
        }
        // Sleep until the next timer interrupt, the tick or the deadline.
        let now = m.time();
        let next_timer = m.timers.borrow().front().map(|t| t.0);
        let next_tick = m.tick.map(|t| now + t);
        let wake = [next_timer, next_tick, deadline]
            .into_iter()
            .flatten()
            .min();
        let wake = wake.expect("slept with nothing to wake it: a lost wake-up");
        if let Some(clock) = &m.clock {
            clock.set(wake.max(now));
        }
        let mut timers = m.timers.borrow_mut();
        while timers.front().is_some_and(|t| t.0 <= wake) {
            let (_, irq) = timers.pop_front().unwrap_or_else(|| unreachable!());
            m.run(irq);
        }
    }
}

type Sel<'m, 'r> = Selector<SoftBackend<'r, M, Sim<'m, 'r>>, u32, M>;

fn selector<'m, 'r>(r: &'r SoftReadiness<M>, m: &'m Machine<'r>) -> Sel<'m, 'r> {
    Selector::new(SoftBackend::with_platform(r, Sim(m)))
}

fn batch<B: crate::Backend, const N: usize>(sel: &mut Selector<B, u32, N>) -> Vec<(RawFd, Events)> {
    let mut out = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        out.push((key.fd(), mask));
    }
    out
}

#[test]
fn select_none_returns_only_with_an_event() {
    let r = SoftReadiness::new();
    let m = Machine::new(&r);
    let mut sel = selector(&r, &m);
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::READ, 2).unwrap();
    // Interrupts that end a sleep but make nothing watched ready.
    m.at(MS, 5, Events::READ); // not registered
    m.at(2 * MS, 1, Events::WRITE); // registered for READ only
    m.at(3 * MS, 2, Events::READ);
    sel.select(None).unwrap();
    assert_eq!(batch(&mut sel), [(2, Events::READ)]);
    assert_eq!(m.time(), 3 * MS);
    // One sleep per interrupt: no pass without one.
    assert_eq!(m.sleeps.get(), 3);
}

#[test]
fn select_none_with_spurious_wake_ups_still_waits_for_an_event() {
    let r = SoftReadiness::new();
    let mut m = Machine::new(&r);
    m.tick = Some(MS);
    let m = m;
    let mut sel = selector(&r, &m);
    sel.register(3, Events::WRITE, 3).unwrap();
    m.at(Duration::from_micros(9_500), 3, Events::WRITE);
    sel.select(None).unwrap();
    assert_eq!(batch(&mut sel), [(3, Events::WRITE)]);
    assert_eq!(m.time(), Duration::from_micros(9_500));
    assert_eq!(m.sleeps.get(), 10, "nine ticks and the interrupt");
}

#[test]
fn a_timed_select_never_returns_early() {
    let r = SoftReadiness::new();
    for tick in [
        None,
        Some(MS),
        Some(Duration::from_micros(333)),
        Some(7 * MS),
    ] {
        let mut m = Machine::new(&r);
        m.tick = tick;
        let m = m;
        let mut sel = selector(&r, &m);
        sel.register(1, Events::READ, 1).unwrap();
        m.at(MS, 6, Events::READ); // an interrupt for nothing watched
        let start = m.time();
        sel.select(Some(50 * MS)).unwrap();
        assert_eq!(batch(&mut sel), [], "{tick:?}");
        assert!(
            m.time() - start >= 50 * MS,
            "{tick:?}: early, {:?}",
            m.time()
        );
        // Bounded passes: the ticks and the interrupt, no spinning.
        let ticks = tick.map_or(0, |t| (50 * MS).div_duration_f64(t).ceil() as u32);
        assert!(m.sleeps.get() <= ticks + 2, "{tick:?}: {}", m.sleeps.get());
        r.clear(6, Events::READ);
    }
}

#[test]
fn a_timed_select_returns_with_the_event_before_its_deadline() {
    let r = SoftReadiness::new();
    let m = Machine::new(&r);
    let mut sel = selector(&r, &m);
    sel.register(4, Events::READ, 4).unwrap();
    m.at(20 * MS, 4, Events::READ);
    sel.select(Some(50 * MS)).unwrap();
    assert_eq!(batch(&mut sel), [(4, Events::READ)]);
    assert_eq!(m.time(), 20 * MS);
    // Duration::MAX does not overflow the deadline: it is "forever".
    r.clear(4, Events::READ);
    m.at(Duration::from_secs(100_000), 4, Events::READ);
    sel.select(Some(Duration::MAX)).unwrap();
    assert_eq!(batch(&mut sel), [(4, Events::READ)]);
    assert_eq!(m.time(), Duration::from_secs(100_000));
}

#[test]
fn a_sub_tick_timeout_still_waits_its_whole_time() {
    let r = SoftReadiness::new();
    let mut m = Machine::new(&r);
    m.tick = Some(MS);
    let m = m;
    let mut sel = selector(&r, &m);
    sel.register(1, Events::READ, 1).unwrap();
    m.clock.as_ref().unwrap().set(Duration::from_nanos(1_234));
    sel.select(Some(Duration::from_nanos(1))).unwrap();
    assert!(m.time() >= Duration::from_nanos(1_235));
    assert_eq!(batch(&mut sel), []);
}

#[test]
fn interrupts_between_the_scan_and_the_sleep_are_never_missed() {
    // Thousands of interrupts, each landing in the lost wake-up window:
    // half after the scan and before the mask, half while masked after the
    // check. No timer is scheduled: a missed one would sleep forever (the
    // machine panics) instead of being seen, and none may cost time.
    static R: SoftReadiness<M> = SoftReadiness::new();
    let m = Machine::new(&R);
    let mut sel = selector(&R, &m);
    for fd in 0..4 {
        sel.register(fd, Events::READ | Events::WRITE, fd as u32)
            .unwrap();
    }
    let rounds = 5_000;
    for i in 0..rounds {
        let irq = (
            (i % 4) as RawFd,
            if i % 3 == 0 {
                Events::WRITE
            } else {
                Events::READ
            },
        );
        if i % 2 == 0 {
            m.before_mask.borrow_mut().push_back(irq);
        } else {
            m.while_masked.borrow_mut().push_back(irq);
        }
        let sleeps = m.sleeps.get();
        sel.select(None).unwrap();
        assert_eq!(batch(&mut sel), [irq], "round {i}");
        assert_eq!(m.sleeps.get() - sleeps, 1, "round {i}: one pass");
        R.clear(irq.0, irq.1);
    }
    assert_eq!(
        m.time(),
        Duration::ZERO,
        "no interrupt waited for a later one"
    );
    assert_eq!(m.checked.get(), rounds / 2);
}

#[test]
fn a_timed_select_without_a_clock_is_a_typed_error() {
    let r = SoftReadiness::new();
    let mut m = Machine::new(&r);
    m.clock = None;
    let m = m;
    let mut sel = selector(&r, &m);
    sel.register(1, Events::READ, 1).unwrap();
    // Decided before anything is looked at: the same answer when something
    // is ready, so a program cannot pass its tests by luck.
    for ready in [false, true] {
        if ready {
            r.set(1, Events::READ);
        }
        for t in [Duration::from_nanos(1), MS, Duration::MAX] {
            assert_eq!(sel.select(Some(t)), Err(Error::NoClock));
            assert_eq!(batch(&mut sel), []);
            assert_eq!(sel.backend().interest(1), Some(Events::READ));
            assert_eq!(r.get(1), if ready { Events::READ } else { Events::empty() });
        }
    }
    assert_eq!(m.sleeps.get(), 0);
    // Polls and untimed selects work.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(batch(&mut sel), [(1, Events::READ)]);
    r.clear(1, Events::READ);
    m.before_mask.borrow_mut().push_back((1, Events::READ));
    sel.select(None).unwrap();
    assert_eq!(batch(&mut sel), [(1, Events::READ)]);
}

#[test]
fn a_poll_never_sleeps() {
    let r = SoftReadiness::new();
    let m = Machine::new(&r);
    let mut sel = selector(&r, &m);
    sel.register(1, Events::READ, 1).unwrap();
    m.at(MS, 1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(batch(&mut sel), []);
    assert_eq!(m.sleeps.get(), 0);
}

#[test]
fn events_of_a_batch_follow_delete_add_and_modify() {
    let r = SoftReadiness::new();
    let m = Machine::new(&r);
    let mut sel = selector(&r, &m);
    for fd in 0..4 {
        sel.register(fd, Events::READ | Events::WRITE, fd as u32)
            .unwrap();
        r.set(fd, Events::READ | Events::WRITE);
    }
    sel.select(None).unwrap();
    let (first, _) = sel.next_ready().map(|(k, m)| (k.fd(), m)).unwrap();
    assert_eq!(first, 0);
    sel.unregister(1).unwrap(); // its event is dropped
    sel.unregister(2).unwrap();
    sel.register(2, Events::READ, 22).unwrap(); // a new key: the old event is not its
    sel.modify_events(3, Events::WRITE).unwrap(); // same key: masked by the new events
    assert_eq!(batch(&mut sel), [(3, Events::WRITE)]);
    // The next batch sees the new registration.
    sel.select(None).unwrap();
    assert_eq!(
        batch(&mut sel),
        [
            (0, Events::READ | Events::WRITE),
            (2, Events::READ),
            (3, Events::WRITE)
        ]
    );
}

#[test]
fn set_and_clear_of_one_event_leave_the_other() {
    let r = SoftReadiness::<M>::new();
    r.set(2, Events::READ | Events::WRITE);
    r.clear(2, Events::WRITE); // the thread
    r.set(2, Events::READ); // an interrupt
    assert_eq!(r.get(2), Events::READ);
    r.set(2, Events::WRITE);
    r.clear(2, Events::READ);
    assert_eq!(r.get(2), Events::WRITE);
    // Out of range and unknown bits are ignored.
    r.set(M as RawFd, Events::READ);
    r.set(-1, Events::READ);
    r.set(3, Events::from_bits_retain(4));
    assert_eq!(r.get(M as RawFd), Events::empty());
    assert_eq!(r.get(3), Events::empty());
}

#[test]
fn compact_layout() {
    // 12 per source (token halves, interest, fired), 2 per batch slot, the
    // readiness reference and the test hook; the platform here is a
    // reference too.
    let per_source = 12 + 2;
    let words = 3 * core::mem::size_of::<usize>();
    assert_eq!(core::mem::size_of::<crate::soft::Entry>(), 12);
    assert!(
        core::mem::size_of::<SoftBackend<'static, 8>>() <= 8 * per_source + words + 8,
        "{}",
        core::mem::size_of::<SoftBackend<'static, 8>>()
    );
}

/// A real second thread plays the interrupt handler: it sets readiness and
/// then unparks the selecting thread. The platform's check runs before
/// `park`, whose token makes an unpark that came first end the park at
/// once: the same guarantee as masked `wfi`.
#[test]
fn readiness_set_by_another_thread_wakes_the_select() {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::thread::{self, Thread};
    use std::time::Instant;

    struct Parking(Instant);
    impl Platform for Parking {
        fn now(&self) -> Option<Duration> {
            Some(self.0.elapsed())
        }
        fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
            if woken() {
                return;
            }
            match deadline {
                Some(d) => thread::park_timeout(d.saturating_sub(self.0.elapsed())),
                None => thread::park(),
            }
        }
    }

    static R: SoftReadiness<M> = SoftReadiness::new();
    static SEEN: AtomicU32 = AtomicU32::new(0);
    let rounds = 3_000;
    let main: Thread = thread::current();
    let mut sel: Selector<SoftBackend<'static, M, Parking>, u32, M> =
        Selector::new(SoftBackend::with_platform(&R, Parking(Instant::now())));
    sel.register(1, Events::READ, 1).unwrap();
    let setter = thread::spawn(move || {
        for i in 0..rounds {
            // Wait (bounded) until the selector consumed the last one.
            let start = Instant::now();
            while SEEN.load(Ordering::Acquire) < i {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "select stuck at {i}"
                );
                thread::yield_now();
            }
            R.set(1, Events::READ);
            main.unpark();
        }
    });
    for i in 0..rounds {
        // A generous bound: a missed wake-up would hit it.
        sel.select(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(batch(&mut sel), [(1, Events::READ)], "round {i}");
        R.clear(1, Events::READ);
        SEEN.store(i + 1, Ordering::Release);
    }
    setter.join().unwrap();
}

/// A backend of 40 sources, few of them watched: the scan and the check
/// before a sleep skip the unwatched ones, and miss none of the others.
const WIDE: usize = 40;

/// A platform whose "interrupt" lands between the backend's scan and its
/// masked check: it sets `fd` ready for `events`, then records what the
/// check said. A sleep the check does not end lasts to the deadline.
struct LateIrq<'r> {
    readiness: &'r SoftReadiness<WIDE>,
    clock: Cell<Duration>,
    irq: Cell<Option<(RawFd, Events)>>,
    checks: RefCell<Vec<bool>>,
}

impl LateIrq<'_> {
    /// No select of the test sleeps more than twice.
    const SPINS: usize = 100;
}

impl Platform for &LateIrq<'_> {
    fn now(&self) -> Option<Duration> {
        Some(self.clock.get())
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        if let Some((fd, events)) = self.irq.take() {
            self.readiness.set(fd, events);
        }
        let woke = woken();
        self.checks.borrow_mut().push(woke);
        assert!(
            self.checks.borrow().len() < LateIrq::SPINS,
            "the backend spins"
        );
        if !woke {
            let deadline = deadline.expect("slept forever with nothing to wake it");
            self.clock.set(deadline);
        }
    }
}

#[test]
fn the_check_before_a_sleep_sees_only_watched_readiness() {
    let r = SoftReadiness::<WIDE>::new();
    let late = LateIrq {
        readiness: &r,
        clock: Cell::new(Duration::ZERO),
        irq: Cell::new(None),
        checks: RefCell::default(),
    };
    let mut sel: Selector<SoftBackend<'_, WIDE, &LateIrq<'_>>, u32, WIDE> =
        Selector::new(SoftBackend::with_platform(&r, &late));
    sel.register(3, Events::READ, 3).unwrap();
    sel.register(35, Events::READ, 35).unwrap();
    // Unwatched (36), and not watched for that event (35's WRITE): the
    // check says no and the select times out; 35's READ: yes, and the
    // select returns it.
    for (fd, events, expected) in [
        (36, Events::READ, vec![]),
        (35, Events::WRITE, vec![]),
        (35, Events::READ, vec![(35, Events::READ)]),
    ] {
        late.checks.borrow_mut().clear();
        late.irq.set(Some((fd, events)));
        sel.select(Some(Duration::from_secs(1))).unwrap();
        let woke = !expected.is_empty();
        assert_eq!(*late.checks.borrow(), [woke], "{fd} {events:?}");
        assert_eq!(batch(&mut sel), expected);
        r.clear(fd, events);
    }
}

proptest::proptest! {
    /// Any sequence of registrations, changes and readiness over 40
    /// sources (and numbers out of range): every call fails exactly when a
    /// model says it must, and every batch is the model's, in ascending
    /// order, each masked by its registration.
    #[test]
    fn batches_follow_a_model_over_40_sources(
        ops in proptest::collection::vec((0u8..6, -1i32..WIDE as i32 + 2, 0u8..4), 1..300)
    ) {
        let r = SoftReadiness::<WIDE>::new();
        let mut sel: Selector<SoftBackend<'_, WIDE>, u32, WIDE> =
            Selector::new(SoftBackend::new(&r));
        let mut interest: [Option<Events>; WIDE] = [None; WIDE];
        let mut ready = [Events::empty(); WIDE];
        for (op, fd, bits) in ops {
            let events = Events::from_bits_retain(bits);
            let slot = usize::try_from(fd).ok().filter(|&i| i < WIDE);
            let watched = slot.and_then(|i| interest[i]);
            match op {
                0 => {
                    let ok = sel.register(fd, events, 0).is_ok();
                    let expect = slot.is_some() && watched.is_none() && !events.is_empty();
                    proptest::prop_assert_eq!(ok, expect, "register {} {:?}", fd, events);
                    if let (true, Some(i)) = (ok, slot) {
                        interest[i] = Some(events);
                    }
                }
                1 => {
                    let ok = sel.unregister(fd).is_ok();
                    proptest::prop_assert_eq!(ok, watched.is_some(), "unregister {}", fd);
                    if let (true, Some(i)) = (ok, slot) {
                        interest[i] = None;
                    }
                }
                2 => {
                    let ok = sel.modify_events(fd, events).is_ok();
                    let expect = watched.is_some() && !events.is_empty();
                    proptest::prop_assert_eq!(ok, expect, "modify {} {:?}", fd, events);
                    if let (true, Some(i)) = (ok, slot) {
                        interest[i] = Some(events);
                    }
                }
                3 => {
                    r.set(fd, events);
                    if let Some(i) = slot {
                        ready[i] |= events;
                    }
                }
                _ => {
                    r.clear(fd, events);
                    if let Some(i) = slot {
                        ready[i] -= events;
                    }
                }
            }
            for (i, want) in interest.iter().enumerate() {
                proptest::prop_assert_eq!(sel.backend().interest(i as RawFd), *want);
            }
            sel.select(Some(Duration::ZERO)).unwrap();
            let expected: Vec<(RawFd, Events)> = (0..WIDE)
                .filter_map(|i| {
                    let mask = ready[i] & interest[i]?;
                    (!mask.is_empty()).then_some((i as RawFd, mask))
                })
                .collect();
            proptest::prop_assert_eq!(batch(&mut sel), expected);
        }
    }
}
