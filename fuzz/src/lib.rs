//! The fuzzing harness of ioselect-core: bytes → a sequence of selector
//! operations (`register`, `modify_events`, `modify_data`, `modify`,
//! `unregister`, `unregister_closed`, `select`, `next_ready`, readiness
//! changes, injected kernel failures), run on `Selector<SoftBackend>` and on
//! a plain reference model.
//! After every operation the results, the map view, `get_key`/`contains` of
//! every fd and the backend's interest must agree; any difference panics.
//!
//! The model follows the rules of `core/tests/model.rs` (the proptest model
//! test), which documents them; libFuzzer adds coverage guidance on top.

use std::collections::BTreeMap;
use std::time::Duration;

use ioselect_core::{Error, Events, OsError, RawFd, Selector, SoftBackend, SoftReadiness};

/// Software sources `0..M`; fds from `M` on are "not open" (EBADF).
const M: usize = 12;
/// Key table capacity, below `M` so that `Full` happens.
const N: usize = 6;

type Sel<'r> = Selector<SoftBackend<'r, M>, u8, N>;

/// What a call returned, in a form both sides produce.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    OkData(u8),
    OkKey(RawFd, Events, u8),
    Err(Error),
    ErrData(Error, u8),
    Ready(Option<(RawFd, Events, u8)>),
    Done,
}

#[derive(Default)]
struct Model {
    /// fd → (events, data, registration id)
    keys: BTreeMap<RawFd, (Events, u8, u64)>,
    next_id: u64,
    fail: Option<OsError>,
    ready: [u8; M],
    /// The last select's batch: (fd, registration id, raw readiness), in
    /// ascending fd order (SoftBackend's documented order).
    batch: Vec<(RawFd, u64, u8)>,
    cursor: usize,
}

fn valid(bits: u8) -> bool {
    matches!(bits, 1..=3)
}

impl Model {
    fn kernel(&mut self) -> Result<(), Error> {
        self.fail.take().map_or(Ok(()), |e| Err(Error::Os(e)))
    }

    fn lookup(&self, fd: RawFd) -> Result<(Events, u8), Error> {
        if fd < 0 {
            return Err(Error::InvalidFd);
        }
        self.keys
            .get(&fd)
            .map(|&(e, d, _)| (e, d))
            .ok_or(Error::NotRegistered)
    }

    fn register(&mut self, fd: RawFd, bits: u8, data: u8) -> Outcome {
        let err = if !valid(bits) {
            Error::InvalidEvents
        } else if fd < 0 {
            Error::InvalidFd
        } else if self.keys.contains_key(&fd) {
            Error::AlreadyRegistered
        } else if self.keys.len() == N {
            Error::Full
        } else if let Err(e) = self.kernel() {
            // The kernel's EEXIST for an fd the table does not know is a
            // registration kept for a key closed while registered.
            if e == Error::Os(OsError::EEXIST) {
                Error::StaleRegistration
            } else {
                e
            }
        } else if fd >= M as RawFd {
            Error::Os(OsError::EBADF)
        } else {
            self.next_id += 1;
            self.keys
                .insert(fd, (Events::from_bits_retain(bits), data, self.next_id));
            return Outcome::Ok;
        };
        Outcome::ErrData(err, data)
    }

    fn modify_events(&mut self, fd: RawFd, bits: u8) -> Result<(), Error> {
        let (old, _) = self.lookup(fd)?;
        if !valid(bits) {
            return Err(Error::InvalidEvents);
        }
        let events = Events::from_bits_retain(bits);
        if old != events {
            self.kernel()?;
            if let Some(k) = self.keys.get_mut(&fd) {
                k.0 = events;
            }
        }
        Ok(())
    }

    fn modify_data(&mut self, fd: RawFd, data: u8) -> Outcome {
        match self.lookup(fd) {
            Ok((_, old)) => {
                if let Some(k) = self.keys.get_mut(&fd) {
                    k.1 = data;
                }
                Outcome::OkData(old)
            }
            Err(e) => Outcome::ErrData(e, data),
        }
    }

    fn unregister(&mut self, fd: RawFd) -> Outcome {
        if let Err(e) = self.lookup(fd).and_then(|_| self.kernel()) {
            return Outcome::Err(e);
        }
        match self.keys.remove(&fd) {
            Some((e, d, _)) => Outcome::OkKey(fd, e, d),
            None => unreachable!("looked up above"),
        }
    }

    /// `unregister_closed`: the table only, no kernel call (an armed
    /// failure stays armed).
    fn unregister_closed(&mut self, fd: RawFd) -> Outcome {
        if let Err(e) = self.lookup(fd) {
            return Outcome::Err(e);
        }
        match self.keys.remove(&fd) {
            Some((e, d, _)) => Outcome::OkKey(fd, e, d),
            None => unreachable!("looked up above"),
        }
    }

    fn select(&mut self) -> Outcome {
        self.batch.clear();
        self.cursor = 0;
        if let Err(e) = self.kernel() {
            return Outcome::Err(e);
        }
        for (&fd, &(events, _, id)) in self.keys.range(0..M as RawFd) {
            let ready = self.ready[fd as usize];
            if ready & events.bits() != 0 {
                self.batch.push((fd, id, ready));
            }
        }
        Outcome::Ok
    }

    fn next(&mut self) -> Option<(RawFd, Events, u8)> {
        while let Some(&(fd, id, ready)) = self.batch.get(self.cursor) {
            self.cursor += 1;
            if let Some(&(events, data, now)) = self.keys.get(&fd)
                && now == id
            {
                let mask = Events::from_bits_retain(ready & events.bits());
                if !mask.is_empty() {
                    return Some((fd, mask, data));
                }
            }
        }
        None
    }
}

fn fd_of(b: u8) -> RawFd {
    match b {
        0..=223 => RawFd::from(b) % (M as RawFd + 3),
        224..=239 => -RawFd::from(b - 223),
        240..=247 => RawFd::MIN,
        _ => RawFd::MAX - RawFd::from(b - 248),
    }
}

fn events_of(b: u8) -> u8 {
    if b < 192 { b % 3 + 1 } else { b }
}

fn apply(sel: &mut Sel<'_>, r: &SoftReadiness<M>, model: &mut Model, op: [u8; 4]) {
    let [code, a, b, c] = op;
    let (fd, bits, data) = (fd_of(a), events_of(b), c);
    let (real, expected) = match code % 12 {
        0..=2 => (
            match sel.register(fd, Events::from_bits_retain(bits), data) {
                Ok(()) => Outcome::Ok,
                Err(e) => Outcome::ErrData(e.error, e.data),
            },
            model.register(fd, bits, data),
        ),
        3 => (
            sel.modify_events(fd, Events::from_bits_retain(bits))
                .map_or_else(Outcome::Err, |()| Outcome::Ok),
            model
                .modify_events(fd, bits)
                .map_or_else(Outcome::Err, |()| Outcome::Ok),
        ),
        4 => (
            match sel.modify_data(fd, data) {
                Ok(old) => Outcome::OkData(old),
                Err(e) => Outcome::ErrData(e.error, e.data),
            },
            model.modify_data(fd, data),
        ),
        5 => (
            match sel.modify(fd, Events::from_bits_retain(bits), data) {
                Ok(old) => Outcome::OkData(old),
                Err(e) => Outcome::ErrData(e.error, e.data),
            },
            match model.modify_events(fd, bits) {
                Ok(()) => model.modify_data(fd, data),
                Err(e) => Outcome::ErrData(e, data),
            },
        ),
        6 => (
            sel.unregister(fd).map_or_else(Outcome::Err, |k| {
                Outcome::OkKey(k.fd(), k.events(), *k.data())
            }),
            model.unregister(fd),
        ),
        7 => {
            // Readiness: any bits, unknown ones included.
            r.clear(fd, Events::from_bits_retain(0xff));
            r.set(fd, Events::from_bits_retain(b));
            if let Some(slot) = usize::try_from(fd)
                .ok()
                .and_then(|i| model.ready.get_mut(i))
            {
                *slot = b;
            }
            (Outcome::Done, Outcome::Done)
        }
        8 => {
            let errno = [1, 9, 12, 22, 2, 17][usize::from(b % 6)];
            sel.backend().fail_next(OsError::from_raw(errno));
            model.fail = Some(OsError::from_raw(errno));
            (Outcome::Done, Outcome::Done)
        }
        9 => {
            let timeout = match b % 4 {
                0 => Some(Duration::ZERO),
                1 => Some(Duration::from_nanos(1)),
                2 => Some(Duration::MAX),
                _ => None,
            };
            (
                sel.select(timeout)
                    .map_or_else(Outcome::Err, |()| Outcome::Ok),
                model.select(),
            )
        }
        11 if b < 64 => (
            sel.unregister_closed(fd).map_or_else(Outcome::Err, |k| {
                Outcome::OkKey(k.fd(), k.events(), *k.data())
            }),
            model.unregister_closed(fd),
        ),
        _ => (
            Outcome::Ready(
                sel.next_ready()
                    .map(|(key, mask)| (key.fd(), mask, *key.data())),
            ),
            Outcome::Ready(model.next()),
        ),
    };
    assert_eq!(real, expected, "op {op:?} (fd {fd}, events {bits:#x})");
}

fn check(sel: &Sel<'_>, model: &Model) {
    let mut keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), *k.data()))
        .collect();
    keys.sort_unstable();
    let want: Vec<_> = model
        .keys
        .iter()
        .map(|(&fd, &(e, d, _))| (fd, e, d))
        .collect();
    assert_eq!(keys, want, "map view");
    assert_eq!(sel.len(), want.len());
    for fd in (-2..M as RawFd + 3).chain([RawFd::MIN, RawFd::MAX]) {
        let k = model.keys.get(&fd).map(|&(e, d, _)| (e, d));
        assert_eq!(sel.get_key(fd).map(|k| (k.events(), *k.data())), k);
        assert_eq!(sel.contains(fd), k.is_some());
        let interest = if (0..M as RawFd).contains(&fd) {
            k.map(|k| k.0)
        } else {
            None
        };
        assert_eq!(sel.backend().interest(fd), interest, "interest of {fd}");
    }
}

/// Runs the operations encoded in `data`; panics when the selector and the
/// model disagree.
pub fn run(data: &[u8]) {
    let r = SoftReadiness::<M>::new();
    let mut sel: Sel<'_> = Selector::new(SoftBackend::new(&r));
    let mut model = Model::default();
    // Four bytes an operation (a short tail is ignored).
    for chunk in data.chunks_exact(4) {
        apply(
            &mut sel,
            &r,
            &mut model,
            [chunk[0], chunk[1], chunk[2], chunk[3]],
        );
        check(&sel, &model);
    }
}

#[cfg(test)]
mod tests {
    /// A smoke run without libFuzzer (`cargo test` here): pseudo-random
    /// operation sequences through [`super::run`], which panics on any
    /// difference from the model.
    #[test]
    fn random_sequences_agree_with_the_model() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut data = [0u8; 512];
        for _ in 0..5_000 {
            for b in data.iter_mut() {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            super::run(&data);
        }
    }
}
