//! `Events` values and `register`: every refusal, in Python's order of checks.

use super::*;

// --- Events ---------------------------------------------------------------

#[test]
fn events_have_python_values() {
    // selectors.EVENT_READ == 1, selectors.EVENT_WRITE == 2
    assert_eq!(Events::READ.bits(), 1);
    assert_eq!(Events::WRITE.bits(), 2);
    assert_eq!(Events::all().bits(), 3);
    assert_eq!(Events::from_bits(3), Some(RW));
    assert_eq!(Events::from_bits(4), None);
    assert!(!Events::empty().is_valid());
    assert!(RW.is_valid());
    // The registered mask is reported back with the same values.
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    sel.register(3, Events::from_bits(3).unwrap(), 0).unwrap();
    assert_eq!(sel.get_key(3).unwrap().events().bits(), 3);
}

// --- register ---------------------------------------------------------------

#[test]
fn register_and_get_key() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    assert!(sel.is_empty());
    sel.register(3, Events::READ, 30).unwrap();
    sel.register(0, Events::WRITE, 0).unwrap();
    sel.register(7, RW, 70).unwrap();
    let key = sel.get_key(7).unwrap();
    assert_eq!((key.fd(), key.events(), *key.data()), (7, RW, 70));
    assert_eq!(sel.backend().interest(3), Some(Events::READ));
    assert_eq!(sel.backend().interest(0), Some(Events::WRITE));
    assert_eq!(sel.backend().interest(7), Some(RW));
    assert_eq!(sel.backend().interest(4), None);
    assert_eq!(sel.len(), 3);
    let snap = snapshot(&mut sel, &r);
    assert_eq!(
        snap.keys,
        [(0, Events::WRITE, 0), (3, Events::READ, 30), (7, RW, 70)]
    );
}

#[test]
fn register_twice_is_already_registered_with_data_back() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    sel.register(4, RW, 2).unwrap();
    let before = snapshot(&mut sel, &r);
    for events in [Events::READ, Events::WRITE, RW] {
        let (error, data) = data_err(sel.register(3, events, 99));
        assert_eq!((error, data), (Error::AlreadyRegistered, 99));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // Python checks the events before the duplicate.
    let (error, data) = data_err(sel.register(3, Events::empty(), 98));
    assert_eq!((error, data), (Error::InvalidEvents, 98));
    assert_eq!(snapshot(&mut sel, &r), before);
}

#[test]
fn register_invalid_events() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for (i, events) in invalid_masks().into_iter().enumerate() {
        let (error, data) = data_err(sel.register(5, events, i as u32));
        assert_eq!(
            (error, data),
            (Error::InvalidEvents, i as u32),
            "{events:?}"
        );
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    for bits in 0..=u8::MAX {
        let events = Events::from_bits_retain(bits);
        if !matches!(bits, 1..=3) {
            assert_eq!(
                sel.register(6, events, 0).map_err(|e| e.error),
                Err(Error::InvalidEvents)
            );
        }
    }
    assert_eq!(snapshot(&mut sel, &r), before);
}

#[test]
fn register_negative_fd_is_invalid_fd() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [-1, -2, -100, i32::MIN] {
        let (error, data) = data_err(sel.register(fd, Events::READ, 7));
        assert_eq!((error, data), (Error::InvalidFd, 7));
        assert_eq!(snapshot(&mut sel, &r), before);
        // Every call that takes an fd says so, as Python's `_fileobj_lookup`
        // does (ValueError), before anything else.
        assert_eq!(sel.unregister(fd).err(), Some(Error::InvalidFd));
        assert_eq!(sel.modify_events(fd, Events::READ), Err(Error::InvalidFd));
        assert_eq!(
            sel.modify_events(fd, Events::empty()),
            Err(Error::InvalidFd)
        );
        let (error, data) = data_err(sel.modify_data(fd, 9));
        assert_eq!((error, data), (Error::InvalidFd, 9));
        assert!(sel.get_key(fd).is_none());
        assert_eq!(snapshot(&mut sel, &r), before);
    }
}

#[test]
fn register_fd_the_kernel_refuses_is_os_error() {
    // SoftBackend has sources 0..M only: M and above are "not open" (EBADF).
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 8> = new_sel(&r);
    sel.register(3, Events::READ, 1).unwrap();
    let before = snapshot(&mut sel, &r);
    for fd in [M as RawFd, M as RawFd + 1, i32::MAX] {
        let (error, data) = data_err(sel.register(fd, Events::READ, 5));
        assert_eq!((error, data), (Error::Os(OsError::EBADF), 5));
        assert_eq!(snapshot(&mut sel, &r), before);
    }
}

#[test]
fn full_table_hands_data_back() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    for fd in [2, 4, 6, 8] {
        sel.register(fd, Events::READ, fd as u32 * 10).unwrap();
    }
    let before = snapshot(&mut sel, &r);
    assert_eq!(before.len, 4);
    let (error, data) = data_err(sel.register(9, RW, 90));
    assert_eq!((error, data), (Error::Full, 90));
    assert_eq!(snapshot(&mut sel, &r), before);
    // The other errors keep their meaning when the table is full.
    assert_eq!(
        data_err(sel.register(4, RW, 1)),
        (Error::AlreadyRegistered, 1)
    );
    assert_eq!(
        data_err(sel.register(9, Events::empty(), 2)),
        (Error::InvalidEvents, 2)
    );
    assert_eq!(
        data_err(sel.register(-1, Events::READ, 3)),
        (Error::InvalidFd, 3)
    );
    assert_eq!(snapshot(&mut sel, &r), before);
    // Full is decided before the kernel is asked: an armed failure stays.
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(data_err(sel.register(9, RW, 4)), (Error::Full, 4));
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::Os(OsError::ENOMEM))
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    // Room again after an unregister; the freed slot works like any other.
    let key = sel.unregister(6).unwrap();
    assert_eq!(
        (key.fd(), key.events(), key.into_data()),
        (6, Events::READ, 60)
    );
    sel.register(9, RW, 90).unwrap();
    assert_eq!(
        data_err(sel.register(6, Events::READ, 60)),
        (Error::Full, 60)
    );
    let snap = snapshot(&mut sel, &r);
    assert_eq!(
        snap.keys,
        [
            (2, Events::READ, 20),
            (4, Events::READ, 40),
            (8, Events::READ, 80),
            (9, RW, 90)
        ]
    );
}

#[test]
fn capacity_one() {
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 1> = new_sel(&r);
    sel.register(0, Events::READ, 1).unwrap();
    assert_eq!(data_err(sel.register(1, Events::READ, 2)), (Error::Full, 2));
    sel.unregister(0).unwrap();
    sel.register(1, Events::WRITE, 3).unwrap();
    r.set(1, RW);
    assert_eq!(select_now(&mut sel), [(1, Events::WRITE, 3)]);
}
