//! CPython's `Lib/test/test_selectors.py` (`BaseSelectorTestCase`), ported
//! to the platform's `DefaultSelector` over real socketpairs.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ioselect_tests::{
    Bound, DefaultSelector, Error, Events, RW, RawFd, Selector, SoftBackend, SoftReadiness, fd_of,
    select_ready, socketpair, state,
};

type Sel<T> = DefaultSelector<T, 64>;

#[test]
fn register() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, _wr) = socketpair();
    sel.register(rd.as_fd(), Events::READ, "data").unwrap();
    let key = sel.get_key(fd_of(&rd)).unwrap();
    assert_eq!(key.fd(), fd_of(&rd));
    assert_eq!(key.events(), Events::READ);
    assert_eq!(*key.data(), "data");

    // An unknown event (Python: 999999), an invalid fd (Python: -10),
    // twice: each refused with its own error, the data handed back.
    let e = sel
        .register(rd.as_fd(), Events::from_bits_retain(0xf0), "x")
        .unwrap_err();
    assert_eq!((e.error, e.data), (Error::InvalidEvents, "x"));
    // A negative fd (Python: -10) cannot even be named on the OS backends:
    // they take a `BorrowedFd`, open by construction. The number path, the
    // software backend's, still refuses it.
    let r = SoftReadiness::<8>::new();
    let mut soft: Selector<SoftBackend<'_, 8>, &str, 4> = Selector::new(SoftBackend::new(&r));
    let e = soft.register(-10, Events::READ, "y").unwrap_err();
    assert_eq!((e.error, e.data), (Error::InvalidFd, "y"));
    assert!(soft.is_empty());
    let e = sel.register(rd.as_fd(), Events::READ, "z").unwrap_err();
    assert_eq!((e.error, e.data), (Error::AlreadyRegistered, "z"));
    // The key is the original one.
    assert_eq!(*sel.get_key(fd_of(&rd)).unwrap().data(), "data");
    assert_eq!(sel.len(), 1);
}

#[test]
fn unregister() {
    let mut sel = Sel::<u32>::open().unwrap();
    let (rd, wr) = socketpair();
    sel.register(rd.as_fd(), Events::READ, 7).unwrap();
    let key = sel.unregister(rd.as_fd()).unwrap();
    assert_eq!(
        (key.fd(), key.events(), key.into_data()),
        (fd_of(&rd), Events::READ, 7)
    );
    // An fd that is open but was never registered (Python: 999999, which
    // names no file here; an open one is what a `BorrowedFd` can name).
    assert_eq!(
        sel.unregister(wr.as_fd()).unwrap_err(),
        Error::NotRegistered
    );
    // By number: a key for a closed fd, which there is not.
    assert_eq!(
        sel.unregister_closed(999_999).unwrap_err(),
        Error::NotRegistered
    );
    assert_eq!(
        sel.unregister(rd.as_fd()).unwrap_err(),
        Error::NotRegistered
    );
    assert!(sel.is_empty());
    // The kernel forgot it too: registering again works.
    sel.register(rd.as_fd(), Events::READ, 8).unwrap();
}

#[test]
fn modify_events_only() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, _wr) = socketpair();
    let fd = fd_of(&rd);
    sel.register(rd.as_fd(), Events::READ, "d").unwrap();
    // Nothing to read: not ready.
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
    sel.modify_events(rd.as_fd(), Events::WRITE).unwrap();
    let key = sel.get_key(fd).unwrap();
    assert_eq!((key.events(), *key.data()), (Events::WRITE, "d"));
    // The kernel follows: now writable.
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd, Events::WRITE, "d")]
    );
    sel.modify_events(rd.as_fd(), RW).unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd, Events::WRITE, "d")]
    );
    sel.modify_events(rd.as_fd(), Events::READ).unwrap();
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
}

#[test]
fn modify_data_only() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, _wr) = socketpair();
    let fd = fd_of(&rd);
    sel.register(rd.as_fd(), Events::WRITE, "d1").unwrap();
    assert_eq!(sel.modify_data(fd, "d2").unwrap(), "d1");
    let key = sel.get_key(fd).unwrap();
    assert_eq!((key.events(), *key.data()), (Events::WRITE, "d2"));
    // Through the key as well.
    *sel.get_key_mut(fd).unwrap().data_mut() = "d3";
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd, Events::WRITE, "d3")]
    );
    // Unknown fd: the data comes back.
    let e = sel.modify_data(999_999, "lost?").unwrap_err();
    assert_eq!((e.error, e.data), (Error::NotRegistered, "lost?"));
}

#[test]
fn modify_both() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, wr) = socketpair();
    let fd = fd_of(&rd);
    sel.register(rd.as_fd(), Events::READ, "d1").unwrap();
    assert_eq!(sel.modify(rd.as_fd(), Events::WRITE, "d2").unwrap(), "d1");
    let key = sel.get_key(fd).unwrap();
    assert_eq!((key.events(), *key.data()), (Events::WRITE, "d2"));
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd, Events::WRITE, "d2")]
    );
    // Python's `modify(rd, EVENT_READ, d3)` on an unknown fd: KeyError
    // (here an open fd that is not registered).
    let e = sel.modify(wr.as_fd(), Events::READ, "d3").unwrap_err();
    assert_eq!((e.error, e.data), (Error::NotRegistered, "d3"));
}

#[test]
fn modify_with_the_same_events_changes_only_the_data() {
    // Python's "modify uses a shortcut" (no unregister + register).
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, wr) = socketpair();
    let fd = fd_of(&rd);
    sel.register(rd.as_fd(), Events::READ, "d1").unwrap();
    assert_eq!(sel.modify(rd.as_fd(), Events::READ, "d2").unwrap(), "d1");
    sel.modify_events(rd.as_fd(), Events::READ).unwrap();
    (&wr).write_all(b"x").unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(Duration::from_secs(5))),
        [(fd, Events::READ, "d2")]
    );
}

#[test]
fn get_key() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, _wr) = socketpair();
    sel.register(rd.as_fd(), Events::READ, "data").unwrap();
    let key = sel.get_key(fd_of(&rd)).unwrap().clone();
    assert_eq!(sel.map().get(fd_of(&rd)), Some(&key));
    // An unknown fd is an answer, not an error.
    assert!(sel.get_key(999_999).is_none());
    assert!(sel.get_key(-1).is_none());
}

#[test]
fn map_view() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, wr) = socketpair();
    assert!(sel.map().is_empty());
    assert_eq!(sel.map().len(), 0);
    assert_eq!(sel.map().iter().count(), 0);
    assert_eq!(sel.map().capacity(), 64);

    sel.register(rd.as_fd(), Events::READ, "r").unwrap();
    let map = sel.map();
    assert!(map.contains(fd_of(&rd)));
    assert!(!map.contains(fd_of(&wr)));
    assert!(map.get(fd_of(&wr)).is_none());
    assert_eq!(map.len(), 1);
    let fds: Vec<RawFd> = map.iter().map(|k| k.fd()).collect();
    assert_eq!(fds, [fd_of(&rd)]);
    assert_eq!(*map.get(fd_of(&rd)).unwrap().data(), "r");

    sel.register(wr.as_fd(), Events::WRITE, "w").unwrap();
    // `&KeyMap` is IntoIterator; the iterator knows its length.
    let mut seen: Vec<(RawFd, Events, &str)> = Vec::new();
    for key in sel.map() {
        seen.push((key.fd(), key.events(), *key.data()));
    }
    seen.sort();
    let mut want = vec![
        (fd_of(&rd), Events::READ, "r"),
        (fd_of(&wr), Events::WRITE, "w"),
    ];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(sel.map().iter().len(), 2);
    // `state` cross-checks every accessor.
    assert_eq!(state(&mut sel).keys, want);

    sel.unregister(rd.as_fd()).unwrap();
    assert!(!sel.map().contains(fd_of(&rd)));
    assert_eq!(sel.map().len(), 1);
}

#[test]
fn select_reports_only_what_is_ready() {
    // Python's test_select: rd (nothing to read) and wr (writable) →
    // exactly [(wr_key, EVENT_WRITE)].
    let mut sel = Sel::<&str>::open().unwrap();
    let (rd, wr) = socketpair();
    sel.register(rd.as_fd(), Events::READ, "rd").unwrap();
    sel.register(wr.as_fd(), Events::WRITE, "wr").unwrap();
    assert_eq!(
        select_ready(&mut sel, None),
        [(fd_of(&wr), Events::WRITE, "wr")]
    );
}

#[test]
fn one_result_per_fd_with_merged_events() {
    let mut sel = Sel::<&str>::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), RW, "a").unwrap();
    (&b).write_all(b"ping").unwrap();
    // `select_ready` asserts that no fd comes twice.
    let ready = select_ready(&mut sel, Some(Duration::from_secs(5)));
    assert_eq!(ready, [(fd_of(&a), RW, "a")]);
}

#[test]
fn ready_events_are_masked_by_the_registered_events() {
    // Readable and writable, but registered for READ only: READ only.
    let mut sel = Sel::<()>::open().unwrap();
    let (a, b) = socketpair();
    (&b).write_all(b"ping").unwrap();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    assert_eq!(
        select_ready(&mut sel, Some(Duration::from_secs(5))),
        [(fd_of(&a), Events::READ, ())]
    );
}

#[test]
fn empty_select_returns_nothing() {
    let mut sel = Sel::<()>::open().unwrap();
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
    assert!(select_ready(&mut sel, Some(Duration::from_millis(10))).is_empty());
    assert!(sel.next_ready().is_none());
}

#[test]
fn unhanded_events_of_a_batch_are_dropped_by_the_next_select() {
    let mut sel = Sel::<u8>::open().unwrap();
    let pairs: Vec<_> = (0..4).map(|_| socketpair()).collect();
    for (i, (a, _)) in pairs.iter().enumerate() {
        sel.register(a.as_fd(), Events::WRITE, i as u8).unwrap();
    }
    sel.select(Some(Duration::ZERO)).unwrap();
    assert!(sel.next_ready().is_some());
    // A new select starts a new batch: all four again, level-triggered.
    assert_eq!(select_ready(&mut sel, Some(Duration::ZERO)).len(), 4);
    assert!(sel.next_ready().is_none());
}

/// Python's `test_selector`, in both directions: `PAIRS` socketpairs, a
/// message written on every end and read on every other end, each verified,
/// every end unregistered once done. Handlers modify and unregister while a
/// batch is being handed out.
#[test]
fn select_over_many_socketpairs_until_drained() {
    const PAIRS: usize = 24;
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct End {
        pair: usize,
        side: usize,
    }
    fn message(from: End) -> Vec<u8> {
        format!("pair {:02} from side {} .", from.pair, from.side).into_bytes()
    }

    let mut sel = Sel::<End>::open().unwrap();
    let mut socks: HashMap<RawFd, UnixStream> = HashMap::new();
    for pair in 0..PAIRS {
        let (a, b) = socketpair();
        for (side, s) in [a, b].into_iter().enumerate() {
            sel.register(s.as_fd(), RW, End { pair, side }).unwrap();
            socks.insert(fd_of(&s), s);
        }
    }
    assert_eq!(sel.len(), 2 * PAIRS);

    let mut sent = [[false; 2]; PAIRS];
    let mut received: Vec<[Vec<u8>; 2]> = vec![[Vec::new(), Vec::new()]; PAIRS];
    let msg_len = message(End { pair: 0, side: 0 }).len();
    let mut bound = Bound::new("drain socketpairs", 10_000);
    while !sel.is_empty() {
        bound.tick();
        sel.select(Some(Duration::from_secs(5))).unwrap();
        while let Some((key, mask)) = sel.next_ready() {
            let (fd, end) = (key.fd(), *key.data());
            let sock = socks.get_mut(&fd).unwrap();
            // Drops `done` from the key's events; unregisters when none is left.
            let finish = |sel: &mut Sel<End>, sock: BorrowedFd<'_>, done: Events| {
                let left = sel.get_key(fd).unwrap().events() - done;
                if left.is_empty() {
                    sel.unregister(sock).map(drop)
                } else {
                    sel.modify_events(sock, left)
                }
            };
            if mask.contains(Events::WRITE) {
                assert!(!sent[end.pair][end.side], "{end:?} written twice");
                sock.write_all(&message(end)).unwrap();
                sent[end.pair][end.side] = true;
                finish(&mut sel, sock.as_fd(), Events::WRITE).unwrap();
            }
            if mask.contains(Events::READ) {
                let got = &mut received[end.pair][end.side];
                let mut buf = [0u8; 64];
                match sock.read(&mut buf) {
                    Ok(0) => panic!("{end:?}: unexpected EOF"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{end:?}: {e}"),
                }
                if got.len() >= msg_len {
                    finish(&mut sel, sock.as_fd(), Events::READ).unwrap();
                }
            }
        }
    }
    for pair in 0..PAIRS {
        for side in 0..2 {
            assert!(sent[pair][side]);
            let from = End {
                pair,
                side: 1 - side,
            };
            assert_eq!(received[pair][side], message(from), "{pair}/{side}");
        }
    }
}

#[test]
fn close_with_keys_registered_leaves_the_fds_open() {
    let mut sel = Sel::<()>::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    sel.register(b.as_fd(), Events::WRITE, ()).unwrap();
    sel.close();
    // The sockets are the application's: still usable, and a new selector
    // can take them.
    (&a).write_all(b"still open").unwrap();
    let mut buf = [0u8; 16];
    let mut bound = Bound::new("read after close", 1000);
    let n = loop {
        bound.tick();
        match (&b).read(&mut buf) {
            Ok(n) => break n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(&buf[..n], b"still open");
    let mut sel = Sel::<()>::open().unwrap();
    sel.register(a.as_fd(), Events::READ, ()).unwrap();
    sel.register(b.as_fd(), Events::WRITE, ()).unwrap();
}

#[test]
fn drop_releases_like_close() {
    let (a, _b) = socketpair();
    for _ in 0..3 {
        let mut sel = Sel::<()>::open().unwrap();
        sel.register(a.as_fd(), Events::WRITE, ()).unwrap();
        assert_eq!(
            select_ready(&mut sel, Some(Duration::ZERO)),
            [(fd_of(&a), Events::WRITE, ())]
        );
        // dropped here with the key registered
    }
}

#[test]
fn two_selectors_watch_the_same_fd_independently() {
    let mut s1 = Sel::<&str>::open().unwrap();
    let mut s2 = Sel::<&str>::open().unwrap();
    let (a, b) = socketpair();
    s1.register(a.as_fd(), Events::READ, "s1").unwrap();
    s2.register(a.as_fd(), Events::WRITE, "s2").unwrap();
    (&b).write_all(b"x").unwrap();
    assert_eq!(
        select_ready(&mut s1, Some(Duration::from_secs(5))),
        [(fd_of(&a), Events::READ, "s1")]
    );
    assert_eq!(
        select_ready(&mut s2, Some(Duration::ZERO)),
        [(fd_of(&a), Events::WRITE, "s2")]
    );
    s1.unregister(a.as_fd()).unwrap();
    assert_eq!(select_ready(&mut s2, Some(Duration::ZERO)).len(), 1);
}
