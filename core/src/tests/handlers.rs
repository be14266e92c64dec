//! The seed's callback server: handlers that register, unregister and modify mid-batch, and stale events.

use super::*;

// --- the seed's callback server, and handlers changing the selector ---------------

type CbSel<'r> = Selector<SoftBackend<'r, M>, Cb, 8>;

/// The key's data: a plain `fn` pointer (and an argument for it). A struct,
/// because a type alias cannot name itself.
#[derive(Clone, Copy)]
struct Cb {
    f: for<'r> fn(&mut CbSel<'r>, RawFd, Events, u32),
    arg: u32,
}

std::thread_local! {
    static CALLS: RefCell<Vec<(&'static str, RawFd, Events, u32)>> =
        const { RefCell::new(Vec::new()) };
}

fn called(name: &'static str, fd: RawFd, mask: Events, arg: u32) {
    CALLS.with(|c| c.borrow_mut().push((name, fd, mask, arg)));
}

fn take_calls() -> Vec<(&'static str, RawFd, Events, u32)> {
    CALLS.with(|c| core::mem::take(&mut *c.borrow_mut()))
}

/// One `select(0)` and every handler of its batch; returns the number of
/// events delivered.
fn dispatch(sel: &mut CbSel<'_>) -> usize {
    sel.select(Some(Duration::ZERO)).unwrap();
    let mut n = 0;
    let mut seen = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        let (fd, cb) = (key.fd(), *key.data());
        assert!(key.events().contains(mask) && !mask.is_empty());
        assert!(!seen.contains(&fd), "fd {fd} delivered twice in one batch");
        seen.push(fd);
        (cb.f)(sel, fd, mask, cb.arg);
        n += 1;
    }
    n
}

fn log_only(_: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
    called("log", fd, mask, arg);
}

/// The handler of a registration made mid-batch.
fn fresh(_: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
    called("fresh", fd, mask, arg);
}

/// Unregisters the fd in `arg` (its peer), whichever of the two runs first.
fn unregister_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("unregister_peer", fd, mask, peer);
    if sel.contains(peer as RawFd) {
        sel.unregister(peer as RawFd).unwrap();
    }
}

#[test]
fn unregistered_mid_batch_is_never_delivered() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: unregister_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: unregister_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1);
    let (_, first, mask, peer) = calls[0];
    assert_eq!(mask, Events::READ);
    assert!(sel.contains(first) && !sel.contains(peer as RawFd));
    assert_eq!(sel.backend().interest(peer as RawFd), None);
}

/// The first handler of a batch unregisters fd 4 (or 5, if it is 4 itself)
/// and registers that fd number again: with the software backend's
/// ascending order, the stale event sits in the middle of the batch.
fn unregister_middle(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, reuse: u32) {
    let first = CALLS.with(|c| c.borrow().is_empty());
    called("unregister_middle", fd, mask, reuse);
    if first {
        let victim = if fd == 4 { 5 } else { 4 };
        let key = sel.unregister(victim).unwrap();
        if reuse == 1 {
            sel.register(victim, key.events(), Cb { f: fresh, arg: 999 })
                .unwrap();
        }
    }
}

#[test]
fn stale_event_in_the_middle_of_a_batch_does_not_end_it() {
    for reuse in [0, 1] {
        take_calls();
        let r = SoftReadiness::new();
        let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
        for fd in 0..8 {
            sel.register(
                fd,
                Events::READ,
                Cb {
                    f: unregister_middle,
                    arg: reuse,
                },
            )
            .unwrap();
            r.set(fd, Events::READ);
        }
        // Every fd but the victim is delivered, before and after its slot.
        assert_eq!(dispatch(&mut sel), 7, "reuse={reuse}");
        let calls = take_calls();
        let victim = if calls[0].1 == 4 { 5 } else { 4 };
        let mut fds: Vec<RawFd> = calls.iter().map(|c| c.1).collect();
        fds.sort_unstable();
        let expect: Vec<RawFd> = (0..8).filter(|&fd| fd != victim).collect();
        assert_eq!(fds, expect, "reuse={reuse}");
        assert!(calls.iter().all(|c| c.0 == "unregister_middle"));
        assert_eq!(sel.contains(victim), reuse == 1);
    }
}

/// Unregisters its peer and registers the same fd number again, with a
/// handler that must not see this batch's old event.
fn reuse_peer_fd(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("reuse_peer_fd", fd, mask, peer);
    let peer = peer as RawFd;
    if sel.get_key(peer).is_some_and(|k| k.data().arg != 999) {
        let old = sel.unregister(peer).unwrap();
        // Same fd, same events: only the registration is new.
        sel.register(peer, old.events(), Cb { f: fresh, arg: 999 })
            .unwrap();
    }
}

#[test]
fn fd_reused_mid_batch_does_not_get_the_old_event() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        RW,
        Cb {
            f: reuse_peer_fd,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        RW,
        Cb {
            f: reuse_peer_fd,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "reuse_peer_fd");
    let reused = calls[0].3 as RawFd;
    assert_eq!(
        sel.get_key(reused).map(|k| (k.events(), k.data().arg)),
        Some((RW, 999))
    );
    assert_eq!(sel.backend().interest(reused), Some(RW));
    // The new registration is delivered from the next select on (the fd is
    // still ready): only the new handler runs for it.
    r.clear(calls[0].1, RW);
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls(), [("fresh", reused, RW, 999)]);
}

/// Unregisters its peer and registers a different fd, which takes the
/// peer's slot in the table.
fn replace_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("replace_peer", fd, mask, peer);
    if sel.contains(peer as RawFd) {
        sel.unregister(peer as RawFd).unwrap();
        sel.register(9, Events::READ, Cb { f: fresh, arg: 9 })
            .unwrap();
    }
}

#[test]
fn slot_reused_mid_batch_does_not_get_the_old_event() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: replace_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: replace_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    r.set(9, Events::READ); // ready, but not part of this batch
    assert_eq!(dispatch(&mut sel), 1);
    let calls = take_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(sel.contains(9));
    assert_eq!(sel.len(), 2);
}

#[test]
fn unregister_then_register_same_fd_many_times_mid_batch() {
    // Every round of unregister + register bumps the slot's generation; the
    // old event must stay stale however many rounds there were.
    fn churn(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
        called("churn", fd, mask, peer);
        let peer = peer as RawFd;
        if sel.get_key(peer).is_some_and(|k| k.data().arg != 999) {
            for _ in 0..100 {
                let key = sel.unregister(peer).unwrap();
                sel.register(peer, key.events(), Cb { f: fresh, arg: 999 })
                    .unwrap();
            }
        }
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(3, Events::READ, Cb { f: churn, arg: 4 })
        .unwrap();
    sel.register(4, Events::READ, Cb { f: churn, arg: 3 })
        .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls().len(), 1);
}

/// Narrows its peer's events from READ|WRITE to READ.
fn narrow_peer(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
    called("narrow_peer", fd, mask, peer);
    // Only the first of the two handlers to run narrows.
    if sel.get_key(fd).is_some_and(|k| k.events() == RW) {
        sel.modify(
            peer as RawFd,
            Events::READ,
            Cb {
                f: log_only,
                arg: peer,
            },
        )
        .unwrap();
    }
}

#[test]
fn modify_mid_batch_masks_pending_readiness() {
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        RW,
        Cb {
            f: narrow_peer,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        RW,
        Cb {
            f: narrow_peer,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(dispatch(&mut sel), 2);
    let calls = take_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    let (name, first, mask, peer) = calls[0];
    assert_eq!((name, mask), ("narrow_peer", RW));
    // The pending event of the peer comes with its new mask and new data.
    assert_eq!(calls[1], ("log", peer as RawFd, Events::READ, peer));
    assert_eq!(sel.get_key(first).map(|k| k.events()), Some(RW));
    assert_eq!(sel.backend().interest(peer as RawFd), Some(Events::READ));
}

#[test]
fn modify_mid_batch_to_events_not_ready_drops_the_pending_event() {
    fn to_write(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, peer: u32) {
        called("to_write", fd, mask, peer);
        if sel
            .get_key(peer as RawFd)
            .is_some_and(|k| k.events() == Events::READ)
        {
            sel.modify_events(peer as RawFd, Events::WRITE).unwrap();
        }
        // Narrow itself too, so the peer's handler (if it runs) leaves it.
        sel.modify_events(fd, Events::WRITE).unwrap();
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(
        3,
        Events::READ,
        Cb {
            f: to_write,
            arg: 4,
        },
    )
    .unwrap();
    sel.register(
        4,
        Events::READ,
        Cb {
            f: to_write,
            arg: 3,
        },
    )
    .unwrap();
    r.set(3, Events::READ);
    r.set(4, Events::READ);
    // The peer was READ-ready, but is now registered for WRITE only.
    assert_eq!(dispatch(&mut sel), 1);
    assert_eq!(take_calls().len(), 1);
    assert_eq!(sel.backend().interest(3), Some(Events::WRITE));
    assert_eq!(sel.backend().interest(4), Some(Events::WRITE));
}

#[test]
fn handler_registering_a_new_fd_mid_batch() {
    fn spawn(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, arg: u32) {
        called("spawn", fd, mask, arg);
        sel.register(arg as RawFd, Events::READ, Cb { f: log_only, arg })
            .unwrap();
        sel.unregister(fd).unwrap();
    }
    take_calls();
    let r = SoftReadiness::new();
    let mut sel: CbSel<'_> = Selector::new(SoftBackend::new(&r));
    sel.register(1, Events::READ, Cb { f: spawn, arg: 10 })
        .unwrap();
    sel.register(2, Events::READ, Cb { f: spawn, arg: 11 })
        .unwrap();
    for fd in [1, 2, 10, 11] {
        r.set(fd, Events::READ);
    }
    // The new fds were not watched when the batch was taken.
    assert_eq!(dispatch(&mut sel), 2);
    let mut calls = take_calls();
    calls.sort_unstable_by_key(|c| c.1);
    assert_eq!(
        calls,
        [
            ("spawn", 1, Events::READ, 10),
            ("spawn", 2, Events::READ, 11)
        ]
    );
    assert_eq!(dispatch(&mut sel), 2);
    let mut calls = take_calls();
    calls.sort_unstable_by_key(|c| c.1);
    assert_eq!(
        calls,
        [("log", 10, Events::READ, 10), ("log", 11, Events::READ, 11)]
    );
}

// The echo server of the seed (selectors_echo_server.py) on software sources.

/// A simulated network: connections waiting to be accepted, each with the
/// chunks its client sends (then end of file).
#[derive(Default)]
struct World {
    backlog: VecDeque<(RawFd, Vec<&'static [u8]>)>,
    inbox: BTreeMap<RawFd, VecDeque<&'static [u8]>>,
    pending_echo: BTreeMap<RawFd, Vec<u8>>,
    echoed: BTreeMap<RawFd, Vec<u8>>,
    closed: Vec<RawFd>,
}

std::thread_local! {
    static WORLD: RefCell<World> = RefCell::new(World::default());
    static KEEP_RUNNING: Cell<bool> = const { Cell::new(true) };
}

static ECHO_READY: SoftReadiness<M> = SoftReadiness::new();
const LISTENER: RawFd = 1;

fn accept(sel: &mut CbSel<'_>, fd: RawFd, mask: Events, _: u32) {
    called("accept", fd, mask, 0);
    assert_eq!((fd, mask), (LISTENER, Events::READ));
    let (conn, chunks, more) = WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let (conn, chunks) = w.backlog.pop_front().expect("accept without a connection");
        (conn, chunks, !w.backlog.is_empty())
    });
    if !more {
        ECHO_READY.clear(LISTENER, Events::READ);
    }
    // A new socket: readable (data or EOF) and writable.
    WORLD.with(|w| w.borrow_mut().inbox.insert(conn, chunks.into()));
    ECHO_READY.set(conn, RW);
    sel.register(conn, Events::READ, Cb { f: read, arg: 0 })
        .unwrap();
}

fn read(sel: &mut CbSel<'_>, conn: RawFd, mask: Events, _: u32) {
    called("read", conn, mask, 0);
    // Registered for READ only: the WRITE readiness is masked away.
    assert_eq!(mask, Events::READ);
    let chunk = WORLD.with(|w| w.borrow_mut().inbox.get_mut(&conn).unwrap().pop_front());
    match chunk {
        Some(data) => {
            WORLD.with(|w| w.borrow_mut().pending_echo.insert(conn, data.to_vec()));
            // Switch this key to writing, events and data at once.
            let old = sel.modify(conn, Events::WRITE, Cb { f: write, arg: 0 });
            assert!(old.is_ok());
        }
        None => {
            // EOF: unregister itself and close.
            let key = sel.unregister(conn).unwrap();
            assert_eq!(key.events(), Events::READ);
            ECHO_READY.clear(conn, RW);
            let last = WORLD.with(|w| {
                let mut w = w.borrow_mut();
                w.closed.push(conn);
                w.backlog.is_empty() && w.inbox.len() == w.closed.len()
            });
            if last {
                // Change another key: the listener stops accepting.
                sel.modify_data(LISTENER, Cb { f: fresh, arg: 1 }).unwrap();
                KEEP_RUNNING.with(|k| k.set(false));
            }
        }
    }
}

fn write(sel: &mut CbSel<'_>, conn: RawFd, mask: Events, _: u32) {
    called("write", conn, mask, 0);
    // Still readable (the next chunk or EOF waits), but registered for WRITE.
    assert_eq!(mask, Events::WRITE);
    WORLD.with(|w| {
        let mut w = w.borrow_mut();
        let data = w.pending_echo.remove(&conn).unwrap();
        w.echoed.entry(conn).or_default().extend_from_slice(&data);
    });
    sel.modify_events(conn, Events::READ).unwrap();
    sel.modify_data(conn, Cb { f: read, arg: 0 }).unwrap();
}

#[test]
fn seed_echo_server_with_fn_pointer_callbacks() {
    take_calls();
    KEEP_RUNNING.with(|k| k.set(true));
    WORLD.with(|w| {
        *w.borrow_mut() = World {
            backlog: [
                (5, std::vec![&b"hello"[..], &b" world"[..]]),
                (6, std::vec![&b"x"[..]]),
                (7, Vec::new()),
            ]
            .into(),
            ..World::default()
        };
    });
    ECHO_READY.set(LISTENER, Events::READ);
    let mut sel: CbSel<'static> = Selector::new(SoftBackend::new(&ECHO_READY));
    sel.register(LISTENER, Events::READ, Cb { f: accept, arg: 0 })
        .unwrap();

    let mut rounds = 0;
    while KEEP_RUNNING.with(Cell::get) {
        rounds += 1;
        assert!(rounds < 50, "the server did not finish");
        assert!(
            dispatch(&mut sel) > 0,
            "nothing ready, but the server is not done"
        );
    }

    WORLD.with(|w| {
        let w = w.borrow();
        assert_eq!(
            w.echoed.get(&5).map(Vec::as_slice),
            Some(&b"hello world"[..])
        );
        assert_eq!(w.echoed.get(&6).map(Vec::as_slice), Some(&b"x"[..]));
        assert_eq!(w.echoed.get(&7), None);
        let mut closed = w.closed.clone();
        closed.sort_unstable();
        assert_eq!(closed, [5, 6, 7]);
        assert!(w.pending_echo.is_empty());
    });
    // Only the listener is left, with the data the last handler gave it.
    let keys: Vec<_> = sel
        .map()
        .iter()
        .map(|k| (k.fd(), k.events(), k.data().arg))
        .collect();
    assert_eq!(keys, [(LISTENER, Events::READ, 1)]);
    for fd in [5, 6, 7] {
        assert_eq!(sel.backend().interest(fd), None);
    }
    // Per connection the handlers ran in order: accept, then read/write
    // alternating, then the final read that saw EOF; nothing after close.
    let calls = take_calls();
    for (conn, expect) in [
        (5, &["read", "write", "read", "write", "read"][..]),
        (6, &["read", "write", "read"][..]),
        (7, &["read"][..]),
    ] {
        let got: Vec<&str> = calls.iter().filter(|c| c.1 == conn).map(|c| c.0).collect();
        assert_eq!(got, expect, "fd {conn}");
    }
    assert_eq!(calls.iter().filter(|c| c.0 == "accept").count(), 3);
    sel.close();
}
