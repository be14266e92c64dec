//! `select` and `next_ready`: masking, one event per fd, timeouts, events that name no key.

use super::*;

// --- select -------------------------------------------------------------------

#[test]
fn select_masks_readiness_by_registered_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::WRITE, 2).unwrap();
    sel.register(3, RW, 3).unwrap();
    sel.register(4, Events::READ, 4).unwrap();
    // Ready for everything, plus bits no one can register for.
    for fd in 0..M as RawFd {
        r.set(fd, Events::from_bits_retain(0xff));
    }
    assert_eq!(
        select_now(&mut sel),
        [
            (1, Events::READ, 1),
            (2, Events::WRITE, 2),
            (3, RW, 3),
            (4, Events::READ, 4)
        ]
    );
    // Readiness only outside the interest is never delivered.
    for fd in 0..M as RawFd {
        r.clear(fd, Events::from_bits_retain(0xff));
    }
    r.set(1, Events::WRITE);
    r.set(2, Events::READ);
    r.set(4, Events::from_bits_retain(0xfc));
    r.set(3, Events::WRITE);
    r.set(5, RW); // not registered
    assert_eq!(select_now(&mut sel), [(3, Events::WRITE, 3)]);
    // Level-triggered: still ready, so delivered again; once cleared, not.
    assert_eq!(select_now(&mut sel), [(3, Events::WRITE, 3)]);
    r.clear(3, RW);
    assert_eq!(select_now(&mut sel), []);
}

#[test]
fn each_fd_at_most_once_per_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 16> = new_sel(&r);
    for fd in 0..M as RawFd {
        sel.register(fd, RW, fd as u32).unwrap();
        r.set(fd, RW);
    }
    sel.select(None).unwrap();
    let mut seen = [0u8; M];
    while let Some((key, mask)) = sel.next_ready() {
        assert_eq!(mask, RW, "read and write merged into one event");
        seen[key.fd() as usize] += 1;
    }
    assert_eq!(seen, [1; M]);
    // The batch is done: it stays done until the next select.
    assert!(sel.next_ready().is_none());
    assert!(sel.next_ready().is_none());
}

#[test]
fn timeout_with_nothing_ready_is_an_empty_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, RW, 1).unwrap();
    r.set(2, RW); // ready, but not registered
    for timeout in [
        Some(Duration::ZERO),
        Some(Duration::from_nanos(1)),
        Some(Duration::from_millis(10)),
        Some(Duration::MAX),
        None, // SoftBackend::new (platform Poll) never waits: returns empty
    ] {
        assert_eq!(sel.select(timeout), Ok(()), "{timeout:?}");
        assert!(sel.next_ready().is_none(), "{timeout:?}");
    }
    // An empty selector too.
    let mut empty: Sel<'_, 8> = new_sel(&r);
    assert_eq!(empty.select(Some(Duration::ZERO)), Ok(()));
    assert!(empty.next_ready().is_none());
}

#[test]
fn a_new_select_replaces_the_rest_of_the_batch() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::READ, 2).unwrap();
    r.set(1, Events::READ);
    r.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let (first, _) = sel.next_ready().map(|(k, m)| (k.fd(), m)).unwrap();
    r.clear(1, Events::READ);
    r.clear(2, Events::READ);
    // Nothing ready now: the old batch's rest is dropped, not delivered.
    assert!([1, 2].contains(&first));
    assert_eq!(select_now(&mut sel), []);
}

#[test]
fn next_ready_gives_mutable_data() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let (mut key, _) = sel.next_ready().unwrap();
    *key.data_mut() += 41;
    assert_eq!(sel.get_key(1).map(|k| *k.data()), Some(42));
    assert_eq!(select_now(&mut sel), [(1, Events::READ, 42)]);
}

// Waiting with a platform (clock, check-then-sleep): see `core/src/tests/soft.rs`.

// --- Token::INTERNAL and other events that name no key ---------------------------

/// SoftBackend plus extra events that name no user key: a backend's internal
/// waker, tokens out of range, and slots `event` has nothing for.
struct Noisy<'r> {
    inner: SoftBackend<'r, M>,
    count: usize,
}

const NOISE: usize = 3;

impl Backend for Noisy<'_> {
    type Source<'a> = RawFd;
    fn fd(source: RawFd) -> RawFd {
        source
    }
    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        assert_ne!(
            token,
            Token::INTERNAL,
            "the selector handed out the internal token"
        );
        self.inner.add(fd, events, token)
    }
    fn modify(&mut self, fd: RawFd, old: Events, new: Events, token: Token) -> Result<(), OsError> {
        self.inner.modify(fd, old, new, token)
    }
    fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.inner.delete(fd, events, token)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.count = self.inner.wait(timeout)? + 2 * NOISE;
        Ok(self.count)
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        // Noise first, then the real events, then more noise.
        match index {
            0 => Some((Token::INTERNAL.get(), RW)),
            // A reserved token whose index bits name a used slot.
            1 => Some((Token::reserved(0).get(), RW)),
            2 => None,
            i if i < self.count - NOISE => self.inner.event(i - NOISE),
            i if i == self.count - 3 => Some((Token::INTERNAL.get(), Events::READ)),
            i if i == self.count - 2 => Some((Token::reserved(u64::MAX >> 1).get(), Events::WRITE)),
            _ => None,
        }
    }
    fn batch_len(&self) -> usize {
        self.count
    }
}

#[test]
fn reserved_tokens_are_skipped() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<Noisy<'_>, u32, 8> = Selector::new(Noisy {
        inner: SoftBackend::new(&r),
        count: 0,
    });
    // Nothing registered: only noise, none of it delivered.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert!(sel.next_ready().is_none());

    sel.register(0, RW, 100).unwrap();
    sel.register(5, Events::READ, 105).unwrap();
    r.set(0, RW);
    r.set(5, RW);
    sel.select(Some(Duration::ZERO)).unwrap();
    let mut got = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        got.push((key.fd(), mask, *key.data()));
    }
    got.sort_unstable();
    assert_eq!(got, [(0, RW, 100), (5, Events::READ, 105)]);
}
