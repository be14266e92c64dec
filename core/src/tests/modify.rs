//! `unregister` and `modify` of unknown fds, and `modify` of events and data.

use super::*;

// --- unregister / modify of unknown fds -------------------------------------

#[test]
fn unknown_fd_is_not_registered() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, Events::WRITE, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [5, 0, M as RawFd, 1000] {
        assert_eq!(sel.unregister(fd).err(), Some(Error::NotRegistered));
        assert_eq!(
            sel.modify_events(fd, Events::READ),
            Err(Error::NotRegistered)
        );
        assert_eq!(
            data_err(sel.modify(fd, Events::READ, 9)),
            (Error::NotRegistered, 9)
        );
        assert_eq!(data_err(sel.modify_data(fd, 8)), (Error::NotRegistered, 8));
        assert!(sel.get_key(fd).is_none());
        assert!(sel.get_key_mut(fd).is_none());
        assert!(!sel.contains(fd));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // An fd that was registered is unknown again after unregister.
    let key = sel.unregister(3).unwrap();
    assert_eq!((key.fd(), key.events(), *key.data()), (3, Events::READ, 1));
    let after = snapshot(&mut sel, &r);
    assert_eq!(after.keys, [(4, Events::WRITE, 2)]);
    assert_eq!(sel.unregister(3).err(), Some(Error::NotRegistered));
    assert_eq!(data_err(sel.modify(3, RW, 7)), (Error::NotRegistered, 7));
    assert_eq!(data_err(sel.modify_data(3, 7)), (Error::NotRegistered, 7));
    assert_eq!(sel.modify_events(3, RW), Err(Error::NotRegistered));
    assert!(sel.get_key(3).is_none());
    assert_eq!(snapshot(&mut sel, &r), after);
}

// --- modify ---------------------------------------------------------------

#[test]
fn modify_events_data_and_both() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, Events::READ, 2).unwrap();

    sel.modify_events(3, RW).unwrap();
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 1))
    );
    assert_eq!(sel.backend().interest(3), Some(RW));

    assert_eq!(sel.modify_data(3, 11).unwrap(), 1);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 11))
    );

    assert_eq!(sel.modify(3, Events::WRITE, 12).unwrap(), 11);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((Events::WRITE, 12))
    );
    assert_eq!(sel.backend().interest(3), Some(Events::WRITE));

    // Data through the key itself.
    *sel.get_key_mut(4).unwrap().data_mut() = 22;
    let snap = snapshot(&mut sel, &r);
    assert_eq!(snap.keys, [(3, Events::WRITE, 12), (4, Events::READ, 22)]);

    r.set(3, RW);
    r.set(4, RW);
    assert_eq!(
        select_now(&mut sel),
        [(3, Events::WRITE, 12), (4, Events::READ, 22)]
    );
}

#[test]
fn modify_invalid_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, RW, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for (i, events) in invalid_masks().into_iter().enumerate() {
        for fd in [3, 4] {
            assert_eq!(
                sel.modify_events(fd, events),
                Err(Error::InvalidEvents),
                "{events:?}"
            );
            assert_eq!(snapshot(&mut sel, &r), before);
            let (error, data) = data_err(sel.modify(fd, events, 100 + i as u32));
            assert_eq!((error, data), (Error::InvalidEvents, 100 + i as u32));
            assert_eq!(snapshot(&mut sel, &r), before);
        }
    }
}

#[test]
fn modify_with_same_events_makes_no_backend_call() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, RW, 1).unwrap();
    sel.backend().fail_next(OsError::ENOMEM);
    // Had any of these called the backend, they would have failed.
    sel.modify_events(3, RW).unwrap();
    assert_eq!(sel.modify(3, RW, 2).unwrap(), 1);
    assert_eq!(sel.modify_data(3, 3).unwrap(), 2);
    assert_eq!(
        sel.get_key(3).map(|k| (k.events(), *k.data())),
        Some((RW, 3))
    );
    // The injected failure is still pending: the next real call gets it.
    assert_eq!(
        sel.modify_events(3, Events::READ),
        Err(Error::Os(OsError::ENOMEM))
    );
    assert_eq!(sel.get_key(3).map(|k| k.events()), Some(RW));
    assert_eq!(sel.backend().interest(3), Some(RW));
    // And it was consumed by that call.
    sel.modify_events(3, Events::READ).unwrap();
    assert_eq!(sel.backend().interest(3), Some(Events::READ));
}
