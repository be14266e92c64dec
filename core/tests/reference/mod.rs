//! The reference model of the selector's rules, shared by the property test
//! (`core/tests/model.rs`, proptest) and the fuzz target
//! (`tests/fuzz/src/lib.rs`, cargo-fuzz), which include this file: one set of
//! rules, two generators.
//!
//! [`Op`] is one selector call (or a change of the software world);
//! [`apply`] runs it on the real selector over `SoftBackend` and on the
//! [`Model`], and returns both [`Outcome`]s; [`check_state`] compares
//! everything observable afterwards. The model relies on one documented
//! property of `SoftBackend`: `wait` reports ready sources in ascending fd
//! order, so the model knows which pending events `next_ready` has passed.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use ioselect_core::{
    DataError, Error, Events, OsError, RawFd, Selector, SoftBackend, SoftReadiness,
};

/// Software sources `0..M`; fds from `M` on are "not open" (EBADF).
pub const M: usize = 8;
/// Key table capacity: small, so `Full` comes often.
pub const N: usize = 4;

/// The selector under test.
pub type Sel<'r> = Selector<SoftBackend<'r, M>, u32, N>;

/// One step.
#[derive(Debug, Clone)]
pub enum Op {
    Register(RawFd, u8, u32),
    ModifyEvents(RawFd, u8),
    ModifyData(RawFd, u32),
    Modify(RawFd, u8, u32),
    Unregister(RawFd),
    /// The application closed the fd: `unregister_closed`.
    UnregisterClosed(RawFd),
    /// `rebuild` with every key's source (`true`), or with none (`false`:
    /// refused unless the table is empty).
    Rebuild(bool),
    /// Sets the readiness of a source to exactly these bits (unknown ones
    /// included: a kernel may report more than was asked for).
    SetReady(RawFd, u8),
    /// Arms `fail_next` with this errno.
    Fail(i32),
    Select(Option<Duration>),
    /// One `next_ready`, so registrations change in the middle of a batch.
    Next,
    /// One `next_ready` that writes this value into the key's data through
    /// the `KeyMut` it hands out.
    NextSet(u32),
    /// `next_ready` until the batch is done.
    Drain,
}

/// The result of one operation, in a form both sides produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
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

    fn unit(r: Result<(), Error>) -> Self {
        r.map_or_else(Self::Err, |()| Self::Ok)
    }
}

/// How pending events were skipped, counted, to prove a generator reaches
/// each kind of stale event.
#[derive(Debug, Default, Clone)]
pub struct Skipped {
    /// Pending events skipped because their key was unregistered.
    pub stale_gone: usize,
    /// Pending events skipped because their fd was registered again.
    pub stale_reused: usize,
    /// Pending events skipped because a modify removed the ready events.
    pub masked_away: usize,
    /// Events delivered with a mask narrower than the raw readiness.
    pub narrowed: usize,
}

/// The reference model: what the selector and the kernel should hold.
#[derive(Default)]
pub struct Model {
    /// fd → (events, data, registration id)
    pub keys: BTreeMap<RawFd, (Events, u32, u64)>,
    next_id: u64,
    fail: Option<OsError>,
    pub ready: [u8; M],
    /// The batch of the last select: (fd, registration id, raw readiness),
    /// in the backend's order.
    batch: Vec<(RawFd, u64, u8)>,
    cursor: usize,
    pub skipped: Skipped,
}

fn valid(bits: u8) -> bool {
    matches!(bits, 1..=3)
}

impl Model {
    /// A kernel call: fails if a failure is armed (and disarms it).
    fn kernel(&mut self) -> Result<(), Error> {
        self.fail.take().map_or(Ok(()), |e| Err(Error::Os(e)))
    }

    fn register(&mut self, fd: RawFd, bits: u8, data: u32) -> Outcome {
        let events = Events::from_bits_retain(bits);
        // Python's order: events, then the fd, then duplicates.
        let err = if !valid(bits) {
            Error::InvalidEvents
        } else if fd < 0 {
            Error::InvalidFd
        } else if self.keys.contains_key(&fd) {
            Error::AlreadyRegistered
        } else if self.keys.len() == N {
            Error::Full
        } else if let Err(e) = self.kernel() {
            // `SoftBackend` answers EEXIST only for a source it still
            // watches, which the table always knows; an injected EEXIST is
            // read as the kernel keeping a closed fd's registration.
            if e == Error::Os(OsError::EEXIST) {
                Error::StaleRegistration
            } else {
                e
            }
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
        if !valid(bits) {
            return Err(Error::InvalidEvents);
        }
        let events = Events::from_bits_retain(bits);
        if old != events {
            // Only a real change asks the kernel.
            self.kernel()?;
            if let Some(key) = self.keys.get_mut(&fd) {
                key.0 = events;
            }
        }
        Ok(())
    }

    fn modify_data(&mut self, fd: RawFd, data: u32) -> Outcome {
        match (self.lookup(fd), self.keys.get_mut(&fd)) {
            (Ok(_), Some(key)) => Outcome::OkData(std::mem::replace(&mut key.1, data)),
            (Err(e), _) => Outcome::ErrData(e, data),
            (Ok(_), None) => unreachable!("lookup found it"),
        }
    }

    fn modify(&mut self, fd: RawFd, bits: u8, data: u32) -> Outcome {
        match self.modify_events(fd, bits) {
            Ok(()) => self.modify_data(fd, data),
            Err(e) => Outcome::ErrData(e, data),
        }
    }

    fn remove(&mut self, fd: RawFd) -> Outcome {
        match self.keys.remove(&fd) {
            Some((events, data, _)) => Outcome::OkKey(fd, events, data),
            None => unreachable!("looked up first"),
        }
    }

    fn unregister(&mut self, fd: RawFd) -> Outcome {
        if let Err(e) = self.lookup(fd) {
            return Outcome::Err(e);
        }
        if let Err(e) = self.kernel() {
            return Outcome::Err(e);
        }
        self.remove(fd)
    }

    /// No kernel call: an armed failure stays armed.
    fn unregister_closed(&mut self, fd: RawFd) -> Outcome {
        match self.lookup(fd) {
            Err(e) => Outcome::Err(e),
            Ok(_) => self.remove(fd),
        }
    }

    /// A fresh backend: the keys stay, the batch goes, and so does a failure
    /// armed on the old backend. Refused (nothing changes) when a key gets
    /// no source.
    fn rebuild(&mut self, sources: bool) -> Outcome {
        if !sources && !self.keys.is_empty() {
            return Outcome::Err(Error::InvalidFd);
        }
        self.fail = None;
        self.batch.clear();
        self.cursor = 0;
        Outcome::Ok
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

    fn next(&mut self) -> Option<(RawFd, Events, u32)> {
        while let Some(&(fd, id, ready)) = self.batch.get(self.cursor) {
            self.cursor += 1;
            match self.keys.get(&fd) {
                None => self.skipped.stale_gone += 1,
                Some(&(_, _, now)) if now != id => self.skipped.stale_reused += 1,
                Some(&(events, data, _)) => {
                    let mask = Events::from_bits_retain(ready & events.bits());
                    if mask.is_empty() {
                        self.skipped.masked_away += 1;
                        continue;
                    }
                    if mask.bits() != ready {
                        self.skipped.narrowed += 1;
                    }
                    return Some((fd, mask, data));
                }
            }
        }
        None
    }

    /// `next` that then sets the key's data.
    fn next_set(&mut self, value: u32) -> Option<(RawFd, Events, u32)> {
        let got = self.next()?;
        if let Some(key) = self.keys.get_mut(&got.0) {
            key.1 = value;
        }
        Some(got)
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

/// Applies `op` to both sides and returns both outcomes: (real, expected).
pub fn apply(
    sel: &mut Sel<'_>,
    r: &SoftReadiness<M>,
    model: &mut Model,
    op: &Op,
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
            Outcome::unit(sel.modify_events(fd, Events::from_bits_retain(bits))),
            Outcome::unit(model.modify_events(fd, bits)),
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
        Op::UnregisterClosed(fd) => (
            sel.unregister_closed(fd).map_or_else(Outcome::Err, |k| {
                Outcome::OkKey(k.fd(), k.events(), *k.data())
            }),
            model.unregister_closed(fd),
        ),
        Op::Rebuild(sources) => (
            Outcome::unit(sel.rebuild(|key| sources.then_some(key.fd()))),
            model.rebuild(sources),
        ),
        Op::SetReady(fd, bits) => {
            r.clear(fd, Events::from_bits_retain(0xff));
            r.set(fd, Events::from_bits_retain(bits));
            if let Some(slot) = usize::try_from(fd)
                .ok()
                .and_then(|i| model.ready.get_mut(i))
            {
                // One flag per (source, event): other bits are not kept.
                *slot = bits & Events::all().bits();
            }
            (Outcome::Done, Outcome::Done)
        }
        Op::Fail(errno) => {
            sel.backend().fail_next(OsError::from_raw(errno));
            model.fail = Some(OsError::from_raw(errno));
            (Outcome::Done, Outcome::Done)
        }
        Op::Select(timeout) => (Outcome::unit(sel.select(timeout)), model.select()),
        Op::Next => (Outcome::Ready(real_next(sel)), Outcome::Ready(model.next())),
        Op::NextSet(value) => (
            Outcome::Ready(sel.next_ready().map(|(mut key, mask)| {
                let got = (key.fd(), mask, *key.data());
                *key.data_mut() = value;
                got
            })),
            Outcome::Ready(model.next_set(value)),
        ),
        Op::Drain => {
            let mut real = Vec::new();
            while let Some(e) = real_next(sel) {
                real.push(e);
                assert!(real.len() <= M, "batch longer than the number of sources");
            }
            let mut expected = Vec::new();
            while let Some(e) = model.next() {
                expected.push(e);
            }
            (Outcome::Drained(real), Outcome::Drained(expected))
        }
    }
}

/// Everything observable must match the model: the map view, `get_key`,
/// `contains`, the "kernel's" interest and the readiness, for every fd
/// around the sources and the extremes.
pub fn check_state(sel: &Sel<'_>, r: &SoftReadiness<M>, model: &Model) -> Result<(), String> {
    fn eq<T: PartialEq + std::fmt::Debug>(what: &str, real: T, want: T) -> Result<(), String> {
        if real == want {
            Ok(())
        } else {
            Err(format!("{what}: selector {real:?}, model {want:?}"))
        }
    }
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
    eq("map view", &keys, &expected)?;
    eq("map iter len", sel.map().iter().len(), expected.len())?;
    eq("map len", sel.map().len(), expected.len())?;
    eq("len", sel.len(), expected.len())?;
    eq("is_empty", sel.is_empty(), expected.is_empty())?;
    for fd in (-4..M as RawFd + 4).chain([i32::MIN, i32::MAX]) {
        let want = model.keys.get(&fd).map(|&(e, d, _)| (e, d));
        let what = format!("fd {fd}");
        eq(
            &what,
            sel.get_key(fd).map(|k| (k.events(), *k.data())),
            want,
        )?;
        eq(&what, sel.get_key(fd).map(|k| k.fd()), want.map(|_| fd))?;
        eq(&what, sel.contains(fd), want.is_some())?;
        eq(&what, sel.map().contains(fd), want.is_some())?;
        eq(&what, sel.backend().interest(fd), model.interest(fd))?;
        if let Some(&bits) = usize::try_from(fd).ok().and_then(|i| model.ready.get(i)) {
            eq(&what, r.get(fd).bits(), bits)?;
        }
    }
    Ok(())
}

/// Runs `ops` on a fresh selector and model, checking each step; ends with
/// a `select` that shows an armed failure is the same on both sides.
pub fn run(ops: &[Op], mut each: impl FnMut(&Op, &Outcome)) -> Result<Skipped, String> {
    let r = SoftReadiness::<M>::new();
    let mut sel: Sel<'_> = Selector::new(SoftBackend::new(&r));
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let (real, expected) = apply(&mut sel, &r, &mut model, op);
        if real != expected {
            return Err(format!(
                "step {step}: {op:?}: selector {real:?}, model {expected:?}"
            ));
        }
        each(op, &real);
        check_state(&sel, &r, &model).map_err(|e| format!("step {step}: {op:?}: {e}"))?;
    }
    let expected = model.select();
    let real = Outcome::unit(sel.select(Some(Duration::ZERO)));
    if real != expected {
        return Err(format!(
            "final select: selector {real:?}, model {expected:?}"
        ));
    }
    Ok(model.skipped)
}
