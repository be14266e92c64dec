//! Registrations the kernel keeps for keys the table no longer has: their
//! events are never delivered, and `select` reports them instead of
//! returning at once, empty, over and over (a busy loop that looks like a
//! stream of timeouts).
//!
//! The software backend never keeps such a registration; [`Lingering`] does,
//! as epoll does for a file closed while registered whose open file lives on
//! in a `dup`.

use std::collections::BTreeMap;

use super::*;
use crate::Renew;

/// A software backend that cannot forget a closed fd's registration: after
/// `delete_closed(fd)` it goes on reporting it, ready for everything, under
/// the old token, on every wait.
struct Lingering<'r> {
    inner: SoftBackend<'r, M>,
    tokens: BTreeMap<RawFd, Token>,
    ghosts: Vec<u64>,
    /// Events of the last wait: the inner backend's, then the ghosts.
    inner_count: usize,
    /// The last wait's count (ghosts added since do not count).
    count: usize,
}

impl<'r> Lingering<'r> {
    fn new(r: &'r SoftReadiness<M>) -> Self {
        Self {
            inner: SoftBackend::new(r),
            tokens: BTreeMap::new(),
            ghosts: Vec::new(),
            inner_count: 0,
            count: 0,
        }
    }
}

impl Backend for Lingering<'_> {
    type Source<'a> = RawFd;
    const REGISTRATIONS_OUTLIVE_FDS: bool = true;
    fn fd(source: RawFd) -> RawFd {
        source
    }
    fn add(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.inner.add(fd, events, token)?;
        self.tokens.insert(fd, token);
        Ok(())
    }
    fn modify(&mut self, fd: RawFd, old: Events, new: Events, token: Token) -> Result<(), OsError> {
        self.inner.modify(fd, old, new, token)
    }
    fn delete(&mut self, fd: RawFd, events: Events, token: Token) -> Result<(), OsError> {
        self.tokens.remove(&fd);
        self.inner.delete(fd, events, token)
    }
    fn delete_closed(&mut self, fd: RawFd, events: Events, token: Token) {
        self.inner.delete_closed(fd, events, token);
        if let Some(token) = self.tokens.remove(&fd) {
            self.ghosts.push(token.get());
        }
    }
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.inner_count = self.inner.wait(timeout)?;
        self.count = self.inner_count + self.ghosts.len();
        Ok(self.count)
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        match index.checked_sub(self.inner_count) {
            None => self.inner.event(index),
            Some(i) => self.ghosts.get(i).map(|&raw| (raw, RW)),
        }
    }
    fn batch_len(&self) -> usize {
        self.count
    }
}

impl Renew for Lingering<'_> {
    /// A fresh kernel object: the ghosts stay behind with the old one.
    fn renew(&self) -> Result<Self, OsError> {
        Ok(Self {
            inner: self.inner.renew()?,
            tokens: BTreeMap::new(),
            ghosts: Vec::new(),
            inner_count: 0,
            count: 0,
        })
    }
}

type LSel<'r> = Selector<Lingering<'r>, u32, 8>;

fn delivered(sel: &mut LSel<'_>) -> Vec<(RawFd, u32)> {
    core::iter::from_fn(|| sel.next_ready().map(|(k, _)| (k.fd(), *k.data()))).collect()
}

#[test]
fn a_lingering_registration_is_reported_not_spun_on() {
    let r = SoftReadiness::new();
    let mut sel: LSel<'_> = Selector::new(Lingering::new(&r));
    sel.register(3, RW, 3).unwrap();
    sel.register(4, Events::READ, 4).unwrap();
    // The application closed fd 3 while registered; a dup keeps its file.
    sel.unregister_closed(3).unwrap();
    r.set(4, Events::READ);
    // The batch holds fd 4's event and the ghost: fd 4's is delivered, the
    // ghost never.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(delivered(&mut sel), [(4, 4)]);
    // The next select says so, without waiting; the one after waits again
    // (the ghost ends it at once), and so on: never a silent empty batch.
    for _ in 0..3 {
        assert_eq!(
            sel.select(Some(Duration::ZERO)),
            Err(Error::StaleRegistration)
        );
        sel.select(Some(Duration::ZERO)).unwrap();
        assert_eq!(delivered(&mut sel), [(4, 4)]);
    }
    // `rebuild` leaves the ghost behind: from then on nothing is reported.
    sel.rebuild(|key| Some(key.fd())).unwrap();
    r.clear(4, Events::READ);
    for _ in 0..3 {
        sel.select(Some(Duration::ZERO)).unwrap();
        assert_eq!(delivered(&mut sel), []);
    }
    assert_eq!(sel.len(), 1);
}

#[test]
fn a_batch_left_unread_is_looked_at_too() {
    let r = SoftReadiness::new();
    let mut sel: LSel<'_> = Selector::new(Lingering::new(&r));
    sel.register(3, RW, 3).unwrap();
    sel.unregister_closed(3).unwrap();
    sel.select(Some(Duration::ZERO)).unwrap();
    // No `next_ready`: the application selects again at once.
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::StaleRegistration)
    );
}

/// An event of a key unregistered after the `select` that reported it is
/// stale in the ordinary way: dropped, and not reported as a lingering
/// registration.
#[test]
fn keys_removed_mid_batch_are_not_reported() {
    let r = SoftReadiness::new();
    let mut sel: LSel<'_> = Selector::new(Lingering::new(&r));
    for fd in [1, 2, 5] {
        sel.register(fd, RW, fd as u32).unwrap();
        r.set(fd, RW);
    }
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.unregister(2).unwrap();
    sel.unregister_closed(5).unwrap();
    // Slot of fd 2 taken again at once: its event stays stale.
    sel.register(6, RW, 6).unwrap();
    assert_eq!(delivered(&mut sel), [(1, 1)]);
    sel.unregister(1).unwrap();
    sel.unregister(6).unwrap();
    // fd 5's ghost came after its key went, in a later wait: that one is
    // reported, once.
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(delivered(&mut sel), []);
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::StaleRegistration)
    );
}

/// A lingering registration met in a batch is reported even when a key is
/// removed after it was met: the removal only stops the look for one, it
/// does not forget one found.
#[test]
fn a_removal_after_a_stale_event_keeps_the_report() {
    let r = SoftReadiness::new();
    let mut sel: LSel<'_> = Selector::new(Lingering::new(&r));
    for fd in [3, 4, 5] {
        sel.register(fd, Events::READ, fd as u32).unwrap();
    }
    sel.unregister_closed(3).unwrap();
    r.set(4, Events::READ);
    r.set(5, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(delivered(&mut sel), [(4, 4), (5, 5)]);
    // The ghost of 3 was met; then the application lets 4 and 5 go.
    sel.unregister(4).unwrap();
    assert_eq!(sel.unregister_closed(5).map(|k| *k.data()), Ok(5));
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::StaleRegistration)
    );
    // Reported once: the next select waits (the ghosts end it at once).
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(delivered(&mut sel), []);
    assert!(sel.is_empty());
}

/// Reserved tokens (a backend's own registrations: a waker's) are never a
/// stale registration, whatever else happened.
#[test]
fn reserved_tokens_are_never_reported() {
    let r = SoftReadiness::<M>::new();
    struct Waking<'r>(SoftBackend<'r, M>, usize);
    impl Backend for Waking<'_> {
        // Watching for stale registrations, which reserved tokens are not.
        const REGISTRATIONS_OUTLIVE_FDS: bool = true;
        forward_registrations!(0);
        fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
            self.1 = self.0.wait(timeout)?;
            Ok(self.1 + 2)
        }
        fn event(&self, index: usize) -> Option<(u64, Events)> {
            match index.checked_sub(self.1) {
                None => self.0.event(index),
                Some(0) => Some((Token::INTERNAL.get(), Events::READ)),
                Some(1) => Some((Token::reserved(0).get(), RW)),
                Some(_) => None,
            }
        }
        fn batch_len(&self) -> usize {
            self.1 + 2
        }
    }
    let mut sel: Selector<Waking<'_>, u32, 4> = Selector::new(Waking(SoftBackend::new(&r), 0));
    sel.register(0, Events::READ, 0).unwrap();
    r.set(0, Events::READ);
    for _ in 0..3 {
        sel.select(Some(Duration::ZERO)).unwrap();
        assert_eq!(sel.next_ready().map(|(k, _)| k.fd()), Some(0));
        assert!(sel.next_ready().is_none());
    }
}

/// A test hook must not change what a type is: with `testing` on (as in
/// these tests) the software backend and a selector over it stay `Send` and
/// `Sync`.
#[test]
fn the_testing_feature_keeps_the_auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SoftBackend<'static, 8>>();
    send_sync::<Selector<SoftBackend<'static, 8>, u32, 4>>();
}
