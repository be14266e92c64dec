//! `Selector::open` and `const` construction.

use super::*;

// --- Selector::open ------------------------------------------------------------

std::thread_local! {
    static OPEN_FAILS: Cell<Option<OsError>> = const { Cell::new(None) };
}
static OPEN_READY: SoftReadiness<M> = SoftReadiness::new();

/// A backend that opens without arguments, like epoll and kqueue do.
struct Openable(SoftBackend<'static, M>);

impl crate::OpenBackend for Openable {
    fn open() -> Result<Self, OsError> {
        match OPEN_FAILS.with(Cell::take) {
            Some(e) => Err(e),
            None => Ok(Self(SoftBackend::new(&OPEN_READY))),
        }
    }
}

impl Backend for Openable {
    forward_registrations!(0);
    fn wait(&mut self, timeout: Option<Duration>) -> Result<usize, Error> {
        self.0.wait(timeout)
    }
    fn event(&self, index: usize) -> Option<(u64, Events)> {
        self.0.event(index)
    }
    fn batch_len(&self) -> usize {
        self.0.batch_len()
    }
}

#[test]
fn open_creates_the_backend_or_reports_why_not() {
    const EMFILE: OsError = OsError::from_raw(24);
    OPEN_FAILS.with(|f| f.set(Some(EMFILE)));
    let failed = Selector::<Openable, u32, 4>::open();
    assert_eq!(failed.err(), Some(Error::Os(EMFILE)));

    let mut sel = Selector::<Openable, u32, 4>::open().unwrap();
    assert!(sel.is_empty());
    sel.register(6, Events::READ, 60).unwrap();
    OPEN_READY.set(6, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data())),
        Some((6, Events::READ, 60))
    );
    sel.close();
}

// --- const construction --------------------------------------------------------

static STATIC_READY: SoftReadiness<4> = SoftReadiness::new();
/// Built at compile time: `Selector::new`, `SoftBackend::new` and
/// `SoftReadiness::new` are `const`. (`SoftBackend` is not `Sync`, and a
/// selector needs `&mut` anyway, so a `static` one lives in a mutex.)
static STATIC_SEL: std::sync::Mutex<Selector<SoftBackend<'static, 4>, u8, 4>> =
    std::sync::Mutex::new(Selector::new(SoftBackend::new(&STATIC_READY)));

const fn assert_send<T: Send>() {}
const fn assert_sync<T: Sync>() {}
const _: () = {
    assert_send::<Selector<SoftBackend<'static, 4>, u8, 4>>();
    assert_sync::<SoftReadiness<4>>();
    assert_send::<DataError<u8>>();
    assert_sync::<Error>();
    assert_sync::<SelectorKey<u8>>();
};

#[test]
fn selector_in_a_static() {
    let mut sel = STATIC_SEL.lock().unwrap();
    assert!(sel.is_empty());
    sel.register(2, Events::READ, 7).unwrap();
    STATIC_READY.set(2, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m, *k.data())),
        Some((2, Events::READ, 7))
    );
    sel.unregister(2).unwrap();
    STATIC_READY.clear(2, Events::READ);

    // A `const fn`: the `static` above is evaluated at compile time (a
    // `const { }` block here would need rustc 1.88 for the reference to a
    // `static` with interior mutability; the MSRV is 1.85).
    let mut local: Selector<SoftBackend<'static, 4>, u8, 2> =
        Selector::new(SoftBackend::new(&STATIC_READY));
    local.register(3, Events::WRITE, 1).unwrap();
    local.register(1, Events::WRITE, 2).unwrap();
    assert_eq!(
        data_err(local.register(0, Events::WRITE, 3)),
        (Error::Full, 3)
    );
}
