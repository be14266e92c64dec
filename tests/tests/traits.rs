//! Compile-time `Send`/`Sync`/`'static` assertions: this file only builds
//! if they hold. (The negative cases, a selector with `!Send` data staying
//! on its thread, are `compile_fail` doc tests in `tests/src/lib.rs`.)

use std::fmt::Debug;
use std::rc::Rc;

use ioselect_tests::{
    DataError, DefaultSelector, Error, Events, KeyMap, OsBackend, OsError, SelectorKey, Token,
    Waker,
};

const fn send<T: Send>() {}
const fn sync<T: Sync>() {}
const fn error<T: std::error::Error + Send + Sync + 'static>() {}
const fn value<
    T: Copy + Clone + Debug + PartialEq + Eq + std::hash::Hash + Send + Sync + 'static,
>() {
}
const fn unpin<T: Unpin>() {}

type Callback = fn(i32, Events);

const _: () = {
    // The selector moves to another thread whenever its data can.
    send::<DefaultSelector<u64, 8>>();
    send::<DefaultSelector<Callback, 64>>();
    send::<DefaultSelector<String, 1>>();
    send::<DefaultSelector<std::sync::Arc<std::sync::Mutex<u8>>, 4>>();
    // And can be shared (behind a lock, or read-only) when its data can.
    sync::<DefaultSelector<u64, 8>>();
    unpin::<DefaultSelector<u64, 8>>();

    // The kernel backend itself.
    send::<OsBackend<1>>();
    send::<OsBackend<256>>();
    sync::<OsBackend<256>>();

    // The waker is shared between threads and used from signal handlers.
    send::<Waker>();
    sync::<Waker>();

    // Error types work with `Box<dyn Error + Send + Sync>` and `anyhow`.
    error::<Error>();
    error::<OsError>();
    error::<DataError<u64>>();
    error::<DataError<Callback>>();
    // `DataError<T>` is an error whatever `T` is, and as `Send` as `T`.
    send::<DataError<String>>();
    sync::<DataError<String>>();

    // The small value types.
    value::<Events>();
    value::<Error>();
    value::<OsError>();
    value::<Token>();

    // Keys and the map view.
    send::<SelectorKey<u64>>();
    sync::<SelectorKey<u64>>();
    send::<KeyMap<u64, 8>>();
    sync::<KeyMap<u64, 8>>();
};

/// `DataError` is an error even with data that is neither `Send` nor
/// `Debug`: it never prints the data.
#[test]
fn data_error_with_any_data_is_an_error() {
    struct Opaque(#[allow(dead_code)] Rc<u8>);
    let e = DataError {
        error: Error::Full,
        data: Opaque(Rc::new(1)),
    };
    let as_error: &dyn std::error::Error = &e;
    assert_eq!(as_error.to_string(), Error::Full.to_string());
    assert!(format!("{e:?}").contains("Full"));
    let (error, Opaque(rc)) = e.into_parts();
    assert_eq!((error, *rc), (Error::Full, 1));
}

/// A selector really is usable from another thread, and comes back.
#[test]
fn selector_moves_between_threads() {
    let (a, _b) = ioselect_tests::socketpair();
    let mut sel = DefaultSelector::<String, 4>::open().unwrap();
    sel.register(std::os::fd::AsFd::as_fd(&a), Events::WRITE, "a".to_string())
        .unwrap();
    let sel = std::thread::spawn(move || {
        let ready = ioselect_tests::select_ready(&mut sel, Some(std::time::Duration::ZERO));
        assert_eq!(ready.len(), 1);
        sel
    })
    .join()
    .unwrap();
    assert_eq!(sel.len(), 1);
}
