//! Property test: random sequences of `register`, `modify_events`,
//! `modify_data`, `modify`, `unregister`, `select` and `next_ready`, with
//! random readiness and injected kernel failures, run against the selector
//! over `SoftBackend` and against a plain reference model (a `BTreeMap`).
//!
//! After every operation the result (kind, error, returned data or key), the
//! whole map view, `get_key`/`contains` of every fd and the "kernel's"
//! interest (`SoftBackend::interest`) must agree with the model; every event
//! handed out must be the one the model expects.
//!
//! The default case count (proptest's 256, or `PROPTEST_CASES`) is quick
//! enough for CI. The long "fuzz" run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p ioselect-core --test model --release
//! ```
//!
//! The model relies on one documented property of `SoftBackend`: `wait`
//! reports ready sources in ascending fd order. The model uses that order to
//! know which pending events `next_ready` has already passed.

use std::collections::BTreeMap;
use std::time::Duration;

use ioselect_core::{
    DataError, Error, Events, OsError, RawFd, Selector, SoftBackend, SoftReadiness,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;

/// Software sources `0..M`; fds from `M` on are "not open" (EBADF).
const M: usize = 8;
/// Key table capacity: small, so `Full` comes often.
const N: usize = 4;

type Sel<'r> = Selector<SoftBackend<'r, M>, u32, N>;

#[derive(Debug, Clone)]
enum Op {
    Register(RawFd, u8, u32),
    ModifyEvents(RawFd, u8),
    ModifyData(RawFd, u32),
    Modify(RawFd, u8, u32),
    Unregister(RawFd),
    /// Sets the readiness of a source to exactly these bits (unknown ones
    /// included: a kernel may report more than was asked for).
    SetReady(RawFd, u8),
    /// Arms `fail_next` with this errno.
    Fail(i32),
    Select(Option<Duration>),
    /// One `next_ready`, so registrations change in the middle of a batch.
    Next,
    /// `next_ready` until the batch is done.
    Drain,
}

fn fd() -> impl Strategy<Value = RawFd> {
    prop_oneof![
        8 => 0..M as RawFd,
        1 => -3..0,
        1 => prop_oneof![Just(i32::MIN), M as RawFd..M as RawFd + 3],
    ]
}

fn events() -> impl Strategy<Value = u8> {
    prop_oneof![6 => 1u8..=3, 1 => Just(0u8), 1 => any::<u8>()]
}

fn data() -> impl Strategy<Value = u32> {
    0u32..1000
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (fd(), events(), data()).prop_map(|(f, e, d)| Op::Register(f, e, d)),
        2 => (fd(), events()).prop_map(|(f, e)| Op::ModifyEvents(f, e)),
        2 => (fd(), data()).prop_map(|(f, d)| Op::ModifyData(f, d)),
        2 => (fd(), events(), data()).prop_map(|(f, e, d)| Op::Modify(f, e, d)),
        3 => fd().prop_map(Op::Unregister),
        4 => (0..M as RawFd + 1, any::<u8>()).prop_map(|(f, b)| Op::SetReady(f, b)),
        1 => prop_oneof![Just(12), Just(22), Just(1), Just(9)].prop_map(Op::Fail),
        3 => prop_oneof![
            Just(Some(Duration::ZERO)),
            Just(Some(Duration::from_millis(1))),
            Just(Some(Duration::MAX)),
            Just(None),
        ]
        .prop_map(Op::Select),
        4 => Just(Op::Next),
        1 => Just(Op::Drain),
    ]
}

/// Single operations, and the pair a handler does to reuse an fd number
/// (unregister, register again), which makes stale events likely.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let step = prop_oneof![
        12 => op().prop_map(|o| vec![o]),
        1 => (fd(), events(), data())
            .prop_map(|(f, e, d)| vec![Op::Unregister(f), Op::Register(f, e, d)]),
    ];
    prop::collection::vec(step, 1..100).prop_map(|v| v.concat())
}

/// The result of one operation, in a form both sides produce.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Ok,
    /// `modify`/`modify_data`: the old data.
    OkData(u32),
    /// `unregister`: the removed key.
    OkKey(RawFd, Events, u32),
    Err(Error),
    /// A failed call that hands the data back.
    ErrData(Error, u32),
    /// `next_ready`: `(fd, mask, data)` or the end of the batch.
    Ready(Option<(RawFd, Events, u32)>),
    /// Everything `next_ready` gave until the end of the batch.
    Drained(Vec<(RawFd, Events, u32)>),
    /// `SetReady`, `Fail`: not selector calls.
    Done,
}

impl Outcome {
    fn of<T>(r: Result<T, DataError<u32>>, ok: impl FnOnce(T) -> Self) -> Self {
        match r {
            Ok(v) => ok(v),
            Err(e) => Self::ErrData(e.error, e.data),
        }
    }
}

/// What happened, counted over a run, to prove the generator reaches every
/// rule (see `generator_reaches_every_rule`).
#[derive(Debug, Default)]
struct Tally {
    outcomes: BTreeMap<String, usize>,
    /// Pending events skipped because their key was unregistered.
    stale_gone: usize,
    /// Pending events skipped because their fd was registered again.
    stale_reused: usize,
    /// Pending events skipped because a modify removed the ready events.
    masked_away: usize,
    /// Events delivered with a mask narrower than the raw readiness.
    narrowed: usize,
}

impl Tally {
    fn count(&mut self, op: &Op, outcome: &Outcome) {
        let op = format!("{op:?}");
        let op = op.split('(').next().unwrap_or_default();
        let what = match outcome {
            Outcome::Err(e) | Outcome::ErrData(e, _) => format!("{e:?}"),
            Outcome::Ready(Some(_)) => "Some".into(),
            Outcome::Ready(None) => "None".into(),
            Outcome::Drained(v) if !v.is_empty() => "some".into(),
            other => format!("{other:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .into(),
        };
        *self.outcomes.entry(format!("{op} {what}")).or_default() += 1;
    }
}

/// The reference model: what the selector and the kernel should hold.
#[derive(Default)]
struct Model {
    /// fd → (events, data, registration id)
    keys: BTreeMap<RawFd, (Events, u32, u64)>,
    next_id: u64,
    fail: Option<OsError>,
    ready: [u8; M],
    /// The batch of the last select: (fd, registration id, raw readiness),
    /// in the backend's order.
    batch: Vec<(RawFd, u64, u8)>,
    cursor: usize,
}

impl Model {
    /// A kernel call: fails if a failure is armed (and disarms it).
    fn kernel(&mut self) -> Result<(), Error> {
        self.fail.take().map_or(Ok(()), |e| Err(Error::Os(e)))
    }

    fn register(&mut self, fd: RawFd, bits: u8, data: u32) -> Outcome {
        let events = Events::from_bits_retain(bits);
        // Python's order: events, then the fd, then duplicates.
        let err = if !matches!(bits, 1..=3) {
            Error::InvalidEvents
        } else if fd < 0 {
            Error::InvalidFd
        } else if self.keys.contains_key(&fd) {
            Error::AlreadyRegistered
        } else if self.keys.len() == N {
            Error::Full
        } else if let Err(e) = self.kernel() {
            e
        } else if fd >= M as RawFd {
            Error::Os(OsError::EBADF)
        } else {
            self.next_id += 1;
            self.keys.insert(fd, (events, data, self.next_id));
            return Outcome::Ok;
        };
        Outcome::ErrData(err, data)
    }

    /// Python's `_fileobj_lookup` + `_fd_to_key`: negative is invalid.
    fn lookup(&self, fd: RawFd) -> Result<(Events, u32), Error> {
        if fd < 0 {
            return Err(Error::InvalidFd);
        }
        self.keys
            .get(&fd)
            .map(|&(e, d, _)| (e, d))
            .ok_or(Error::NotRegistered)
    }

    fn modify_events(&mut self, fd: RawFd, bits: u8) -> Result<(), Error> {
        // The fd is looked up before the events are checked, as in Python.
        let (old, _) = self.lookup(fd)?;
        if !matches!(bits, 1..=3) {
            return Err(Error::InvalidEvents);
        }
        let events = Events::from_bits_retain(bits);
        if old != events {
            // Only a real change asks the kernel.
            self.kernel()?;
            self.keys.get_mut(&fd).unwrap().0 = events;
        }
        Ok(())
    }

    fn modify_data(&mut self, fd: RawFd, data: u32) -> Outcome {
        match self.lookup(fd) {
            Ok(_) => Outcome::OkData(std::mem::replace(
                &mut self.keys.get_mut(&fd).unwrap().1,
                data,
            )),
            Err(e) => Outcome::ErrData(e, data),
        }
    }

    fn modify(&mut self, fd: RawFd, bits: u8, data: u32) -> Outcome {
        match self.modify_events(fd, bits) {
            Ok(()) => self.modify_data(fd, data),
            Err(e) => Outcome::ErrData(e, data),
        }
    }

    fn unregister(&mut self, fd: RawFd) -> Outcome {
        if let Err(e) = self.lookup(fd) {
            return Outcome::Err(e);
        }
        if let Err(e) = self.kernel() {
            return Outcome::Err(e);
        }
        let (events, data, _) = self.keys.remove(&fd).unwrap();
        Outcome::OkKey(fd, events, data)
    }

    fn select(&mut self) -> Outcome {
        self.batch.clear();
        self.cursor = 0;
        if let Err(e) = self.kernel() {
            return Outcome::Err(e);
        }
        for (fd, &(events, _, id)) in self.keys.range(0..M as RawFd) {
            let ready = self.ready[*fd as usize];
            if ready & events.bits() != 0 {
                self.batch.push((*fd, id, ready));
            }
        }
        Outcome::Ok
    }

    fn next(&mut self, tally: &mut Tally) -> Option<(RawFd, Events, u32)> {
        while let Some(&(fd, id, ready)) = self.batch.get(self.cursor) {
            self.cursor += 1;
            match self.keys.get(&fd) {
                None => tally.stale_gone += 1,
                Some(&(_, _, now)) if now != id => tally.stale_reused += 1,
                Some(&(events, data, _)) => {
                    let mask = Events::from_bits_retain(ready & events.bits());
                    if mask.is_empty() {
                        tally.masked_away += 1;
                        continue;
                    }
                    if mask.bits() != ready {
                        tally.narrowed += 1;
                    }
                    return Some((fd, mask, data));
                }
            }
        }
        None
    }

    fn interest(&self, fd: RawFd) -> Option<Events> {
        if (0..M as RawFd).contains(&fd) {
            self.keys.get(&fd).map(|k| k.0)
        } else {
            None
        }
    }
}

fn real_next(sel: &mut Sel<'_>) -> Option<(RawFd, Events, u32)> {
    sel.next_ready()
        .map(|(key, mask)| (key.fd(), mask, *key.data()))
}

/// Applies `op` to both sides and returns both outcomes.
fn apply(
    sel: &mut Sel<'_>,
    r: &SoftReadiness<M>,
    model: &mut Model,
    op: &Op,
    tally: &mut Tally,
) -> (Outcome, Outcome) {
    match *op {
        Op::Register(fd, bits, data) => (
            Outcome::of(
                sel.register(fd, Events::from_bits_retain(bits), data),
                |()| Outcome::Ok,
            ),
            model.register(fd, bits, data),
        ),
        Op::ModifyEvents(fd, bits) => (
            sel.modify_events(fd, Events::from_bits_retain(bits))
                .map_or_else(Outcome::Err, |()| Outcome::Ok),
            model
                .modify_events(fd, bits)
                .map_or_else(Outcome::Err, |()| Outcome::Ok),
        ),
        Op::ModifyData(fd, data) => (
            Outcome::of(sel.modify_data(fd, data), Outcome::OkData),
            model.modify_data(fd, data),
        ),
        Op::Modify(fd, bits, data) => (
            Outcome::of(
                sel.modify(fd, Events::from_bits_retain(bits), data),
                Outcome::OkData,
            ),
            model.modify(fd, bits, data),
        ),
        Op::Unregister(fd) => (
            sel.unregister(fd).map_or_else(Outcome::Err, |k| {
                Outcome::OkKey(k.fd(), k.events(), *k.data())
            }),
            model.unregister(fd),
        ),
        Op::SetReady(fd, bits) => {
            r.clear(fd, Events::from_bits_retain(0xff));
            r.set(fd, Events::from_bits_retain(bits));
            if let Some(slot) = usize::try_from(fd)
                .ok()
                .and_then(|i| model.ready.get_mut(i))
            {
                *slot = bits;
            }
            (Outcome::Done, Outcome::Done)
        }
        Op::Fail(errno) => {
            sel.backend().fail_next(OsError::from_raw(errno));
            model.fail = Some(OsError::from_raw(errno));
            (Outcome::Done, Outcome::Done)
        }
        Op::Select(timeout) => (
            sel.select(timeout)
                .map_or_else(Outcome::Err, |()| Outcome::Ok),
            model.select(),
        ),
        Op::Next => (
            Outcome::Ready(real_next(sel)),
            Outcome::Ready(model.next(tally)),
        ),
        Op::Drain => {
            let mut real = Vec::new();
            while let Some(e) = real_next(sel) {
                real.push(e);
                assert!(real.len() <= M, "batch longer than the number of sources");
            }
            let mut expected = Vec::new();
            while let Some(e) = model.next(tally) {
                expected.push(e);
            }
            (Outcome::Drained(real), Outcome::Drained(expected))
        }
    }
}

/// Everything observable must match the model.
fn check_state(sel: &Sel<'_>, r: &SoftReadiness<M>, model: &Model) -> Result<(), TestCaseError> {
    let mut keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), *k.data()))
        .collect();
    keys.sort_unstable();
    let expected: Vec<_> = model
        .keys
        .iter()
        .map(|(&fd, &(e, d, _))| (fd, e, d))
        .collect();
    prop_assert_eq!(&keys, &expected);
    prop_assert_eq!(sel.map().iter().len(), expected.len());
    prop_assert_eq!(sel.map().len(), expected.len());
    prop_assert_eq!(sel.len(), expected.len());
    prop_assert_eq!(sel.is_empty(), expected.is_empty());
    for fd in (-4..M as RawFd + 4).chain([i32::MIN, i32::MAX]) {
        let want = model.keys.get(&fd).map(|&(e, d, _)| (e, d));
        prop_assert_eq!(
            sel.get_key(fd).map(|k| (k.events(), *k.data())),
            want,
            "get_key({})",
            fd
        );
        prop_assert_eq!(sel.get_key(fd).map(|k| k.fd()), want.map(|_| fd));
        prop_assert_eq!(sel.contains(fd), want.is_some(), "contains({})", fd);
        prop_assert_eq!(sel.map().contains(fd), want.is_some());
        prop_assert_eq!(
            sel.backend().interest(fd),
            model.interest(fd),
            "interest({})",
            fd
        );
        if let Some(&bits) = usize::try_from(fd).ok().and_then(|i| model.ready.get(i)) {
            prop_assert_eq!(r.get(fd).bits(), bits);
        }
    }
    Ok(())
}

fn run(ops: &[Op], tally: &mut Tally) -> Result<(), TestCaseError> {
    let r = SoftReadiness::<M>::new();
    let mut sel: Sel<'_> = Selector::new(SoftBackend::new(&r));
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let (real, expected) = apply(&mut sel, &r, &mut model, op, tally);
        prop_assert_eq!(&real, &expected, "step {}: {:?}", step, op);
        tally.count(op, &real);
        check_state(&sel, &r, &model)?;
    }
    // The armed failure, if any, is the same on both sides: the next kernel
    // call gets it.
    let expected = model.select();
    prop_assert_eq!(
        sel.select(Some(Duration::ZERO))
            .map_or_else(Outcome::Err, |()| Outcome::Ok),
        expected
    );
    Ok(())
}

proptest! {
    #[test]
    fn selector_matches_model(ops in ops()) {
        run(&ops, &mut Tally::default())?;
    }
}

/// The property above is only as good as its generator: run a fixed,
/// seeded set of cases and check that every rule was reached, each error of
/// each call, and each kind of stale event.
#[test]
fn generator_reaches_every_rule() {
    let mut runner = TestRunner::deterministic();
    let mut tally = Tally::default();
    for _ in 0..300 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        run(&ops, &mut tally).unwrap();
    }
    let expected = [
        "Register Ok",
        "Register AlreadyRegistered",
        "Register InvalidEvents",
        "Register InvalidFd",
        "Register Full",
        "Register Os(OsError(12))",
        "Register Os(OsError(9))",
        "ModifyEvents Ok",
        "ModifyEvents InvalidEvents",
        "ModifyEvents NotRegistered",
        "ModifyEvents InvalidFd",
        "ModifyEvents Os(OsError(22))",
        "ModifyData OkData",
        "ModifyData NotRegistered",
        "ModifyData InvalidFd",
        "Modify OkData",
        "Modify InvalidEvents",
        "Modify NotRegistered",
        "Modify InvalidFd",
        "Modify Os(OsError(1))",
        "Unregister OkKey",
        "Unregister NotRegistered",
        "Unregister InvalidFd",
        "Unregister Os(OsError(12))",
        "Select Ok",
        "Select Os(OsError(22))",
        "Next Some",
        "Next None",
        "Drain some",
    ];
    for what in expected {
        assert!(
            tally.outcomes.get(what).is_some_and(|&n| n > 0),
            "never reached: {what}\n{tally:#?}"
        );
    }
    assert!(tally.stale_gone > 0, "{tally:#?}");
    assert!(tally.stale_reused > 0, "{tally:#?}");
    assert!(tally.masked_away > 0, "{tally:#?}");
    assert!(tally.narrowed > 0, "{tally:#?}");
}
