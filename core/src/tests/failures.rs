//! Kernel refusals (fault injection): each leaves the table and the "kernel" as they were.

use super::*;

// --- kernel failures ---------------------------------------------------------

/// A selector with a few keys, some ready, to inject failures into.
fn populated(r: &SoftReadiness<M>) -> Sel<'_, 8> {
    let mut sel = new_sel(r);
    sel.register(1, Events::READ, 10).unwrap();
    sel.register(2, Events::WRITE, 20).unwrap();
    sel.register(3, RW, 30).unwrap();
    r.set(1, Events::READ);
    r.set(3, Events::WRITE);
    sel
}

#[test]
fn kernel_failure_in_register_changes_nothing() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);
    for errno in [OsError::ENOMEM, OsError::EPERM, OsError::EBADF] {
        sel.backend().fail_next(errno);
        assert_eq!(
            data_err(sel.register(5, Events::READ, 50)),
            (Error::Os(errno), 50)
        );
        assert_eq!(snapshot(&mut sel, &r), before);
    }
    // The failure was consumed: the same call now works.
    sel.register(5, Events::READ, 50).unwrap();
    assert_eq!(sel.get_key(5).map(|k| *k.data()), Some(50));
}

#[test]
fn kernel_failure_in_modify_keeps_old_events_and_old_data() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);

    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(sel.modify_events(1, RW), Err(Error::Os(OsError::ENOMEM)));
    assert_eq!(snapshot(&mut sel, &r), before);

    // Unlike Python, which unregisters the key when the kernel refuses.
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(
        data_err(sel.modify(1, RW, 99)),
        (Error::Os(OsError::ENOMEM), 99)
    );
    assert_eq!(
        sel.get_key(1).map(|k| (k.events(), *k.data())),
        Some((Events::READ, 10))
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    sel.backend().fail_next(OsError::EINVAL);
    assert_eq!(
        data_err(sel.modify(3, Events::READ, 98)),
        (Error::Os(OsError::EINVAL), 98)
    );
    assert_eq!(snapshot(&mut sel, &r), before);

    // Consumed: the same calls now work.
    assert_eq!(sel.modify(1, RW, 99).unwrap(), 10);
    assert_eq!(sel.backend().interest(1), Some(RW));
}

#[test]
fn kernel_failure_in_unregister_keeps_the_key() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);
    sel.backend().fail_next(OsError::ENOMEM);
    assert_eq!(sel.unregister(2).err(), Some(Error::Os(OsError::ENOMEM)));
    assert_eq!(snapshot(&mut sel, &r), before);
    let key = sel.unregister(2).unwrap();
    assert_eq!(
        (key.fd(), key.events(), *key.data()),
        (2, Events::WRITE, 20)
    );
    assert_eq!(sel.backend().interest(2), None);
}

#[test]
fn kernel_failure_in_select_changes_nothing_and_empties_the_batch() {
    let r = SoftReadiness::new();
    let mut sel = populated(&r);
    let before = snapshot(&mut sel, &r);

    // A pending batch with events not handed out yet.
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.backend().fail_next(OsError::EINVAL);
    assert_eq!(
        sel.select(Some(Duration::ZERO)),
        Err(Error::Os(OsError::EINVAL))
    );
    // The failed select left no batch behind, old or new.
    assert!(sel.next_ready().is_none());
    assert_eq!(snapshot(&mut sel, &r), before);
    // And the next select works and delivers.
    assert_eq!(
        select_now(&mut sel),
        [(1, Events::READ, 10), (3, Events::WRITE, 30)]
    );
}

/// A backend whose event buffer survives a failed `wait` (the contract does
/// not promise that `event` returns `None` after an error).
struct KeepsBuffer<'r> {
    inner: SoftBackend<'r, M>,
    fail_wait: Cell<bool>,
}

impl Backend for KeepsBuffer<'_> {
    forward_registrations!(inner);
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        if self.fail_wait.get() {
            Err(Error::Os(OsError::EINVAL))
        } else {
            self.inner.wait(timeout)
        }
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        self.inner.event(index)
    }
    /// The last successful wait's count, kept through a failed one.
    fn batch_len(&self) -> usize {
        self.inner.batch_len()
    }
}

/// A careless backend: `batch_len` one more than the count its `wait`
/// returned (and than `event` answers for).
struct Miscounts<'r>(SoftBackend<'r, M>);

impl Backend for Miscounts<'_> {
    forward_registrations!(0);
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.0.wait(timeout)
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        self.0.event(index)
    }
    fn batch_len(&self) -> usize {
        self.0.batch_len() + 1
    }
}

/// A debug build stops a backend whose `batch_len` is not its wait's count
/// at the `select` that meets it.
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "Backend::batch_len must answer the count wait returned")]
fn a_miscounting_backend_is_caught_in_debug_builds() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<Miscounts<'_>, u32, 4> = Selector::new(Miscounts(SoftBackend::new(&r)));
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    let _ = sel.select(Some(Duration::ZERO));
}

/// In a release build the same backend costs nothing worse than a skipped
/// index: the event past its count is `None`, and no key gets a phantom
/// event.
#[test]
#[cfg(not(debug_assertions))]
fn a_miscounting_backend_delivers_no_phantom_in_release_builds() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<Miscounts<'_>, u32, 4> = Selector::new(Miscounts(SoftBackend::new(&r)));
    sel.register(1, Events::READ, 1).unwrap();
    sel.register(2, Events::READ, 2).unwrap();
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    let got: Vec<_> = core::iter::from_fn(|| sel.next_ready().map(|(k, m)| (k.fd(), m))).collect();
    assert_eq!(got, [(1, Events::READ)]);
}

#[test]
fn failed_select_never_replays_the_old_batch() {
    let r = SoftReadiness::<M>::new();
    let mut sel: Selector<KeepsBuffer<'_>, u32, 4> = Selector::new(KeepsBuffer {
        inner: SoftBackend::new(&r),
        fail_wait: Cell::new(false),
    });
    sel.register(1, Events::READ, 1).unwrap();
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m)),
        Some((1, Events::READ))
    );
    assert!(sel.next_ready().is_none());
    // The backend still holds that event, but the selector must not hand it
    // out again: the failed select has an empty batch.
    sel.select(Some(Duration::ZERO)).unwrap();
    sel.next_ready().unwrap();
    assert!(sel.backend().event(0).is_some());
    // Fail with the previous batch both fully and partly handed out.
    let mut sel2: Selector<KeepsBuffer<'_>, u32, 4> = Selector::new(KeepsBuffer {
        inner: SoftBackend::new(&r),
        fail_wait: Cell::new(false),
    });
    sel2.register(1, Events::READ, 1).unwrap();
    sel2.select(Some(Duration::ZERO)).unwrap();
    for sel in [&mut sel, &mut sel2] {
        sel.backend().fail_wait.set(true);
        assert_eq!(
            sel.select(Some(Duration::ZERO)),
            Err(Error::Os(OsError::EINVAL))
        );
        assert!(sel.next_ready().is_none());
    }
}

#[test]
fn errors_convert_and_display() {
    let os = OsError::from_raw(12);
    assert_eq!(os, OsError::ENOMEM);
    assert_eq!(os.raw(), 12);
    assert_eq!(os.to_string(), os_text(12));
    assert_eq!(Error::from(os), Error::Os(os));
    assert_eq!(Error::Os(os).to_string(), os_text(12));

    let all = [
        Error::AlreadyRegistered,
        Error::NotRegistered,
        Error::InvalidEvents,
        Error::InvalidFd,
        Error::Full,
        Error::StaleRegistration,
        Error::NoClock,
        Error::InvalidCapacity,
        Error::Forked,
        Error::Os(OsError::EBADF),
    ];
    let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
    for (i, t) in texts.iter().enumerate() {
        assert!(!t.is_empty());
        assert!(
            texts[i + 1..].iter().all(|u| u != t),
            "duplicate message {t:?}"
        );
    }
    // The OS error is in the message, so no source repeats it (anyhow's
    // `{:#}` prints each link of the chain).
    for e in all {
        assert!(core::error::Error::source(&e).is_none(), "{e:?}");
    }
    assert_eq!(Error::Os(OsError::EBADF).to_string(), os_text(9));
}

#[test]
fn data_error_display_debug_from() {
    // No Debug or Display needed on the data.
    struct Opaque(u8);
    let e = DataError {
        error: Error::Full,
        data: Opaque(7),
    };
    assert_eq!(e.to_string(), Error::Full.to_string());
    let debug = format!("{e:?}");
    assert!(debug.starts_with("DataError"), "{debug}");
    assert!(debug.contains("Full"), "{debug}");
    assert!(core::error::Error::source(&e).is_none());

    let e = DataError {
        error: Error::Os(OsError::ENOMEM),
        data: Opaque(8),
    };
    assert!(core::error::Error::source(&e).is_none());
    assert_eq!(e.to_string(), os_text(12));
    let (error, Opaque(data)) = e.into_parts();
    assert_eq!((error, data), (Error::Os(OsError::ENOMEM), 8));

    // `?` turns it into an Error when the data is not needed.
    fn register_twice(sel: &mut Sel<'_, 4>) -> Result<(), Error> {
        sel.register(1, Events::READ, 1)?;
        sel.register(1, Events::READ, 2)?;
        Ok(())
    }
    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    assert_eq!(register_twice(&mut sel), Err(Error::AlreadyRegistered));
    assert_eq!(
        Error::from(DataError {
            error: Error::InvalidFd,
            data: ()
        }),
        Error::InvalidFd
    );
}

/// How an `OsError` prints: std's text with the `std` feature (which a
/// workspace build turns on through the OS crates), `os error N` without.
fn os_text(errno: i32) -> String {
    #[cfg(feature = "std")]
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    #[cfg(not(feature = "std"))]
    let text = format!("os error {errno}");
    assert!(
        text.ends_with(&format!("os error {errno}"))
            || text.ends_with(&format!("os error {errno})")),
        "{text}"
    );
    text
}
