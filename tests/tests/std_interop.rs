//! A Rust user's first hour. `?` from every call into
//! `std::io::Result`, with the right `io::ErrorKind`; OS errors printed as std
//! prints them, once; `DataError` into error-report types; std's `AsFd` on
//! the backend types; and the I/O-safe entry points.

use std::error::Error as _;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use ioselect_tests::{DataError, DefaultSelector, Error, Events, OsError, Waker, socketpair};

/// The whole life of a selector in an `io::Result` function, `?` everywhere.
fn echo_once() -> io::Result<Vec<u8>> {
    use std::io::{Read, Write};
    let mut sel = DefaultSelector::<&'static str, 4>::open()?;
    let (mut a, mut b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a")?;
    sel.modify(a.as_fd(), Events::READ | Events::WRITE, "a")?;
    sel.modify_events(a.as_fd(), Events::READ)?;
    sel.modify_data(a.as_raw_fd(), "a2")?;
    b.write_all(b"ping")?;
    sel.select(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    while let Some((key, mask)) = sel.next_ready() {
        assert_eq!((*key.data(), mask), ("a2", Events::READ));
        let mut buf = [0u8; 16];
        let n = a.read(&mut buf)?;
        got.extend_from_slice(&buf[..n]);
    }
    sel.unregister(a.as_fd())?;
    Ok(got)
}

#[test]
fn question_mark_into_io_result_from_every_call() {
    assert_eq!(echo_once().unwrap(), b"ping");
}

#[test]
fn io_error_kinds() {
    let (a, _b) = socketpair();
    let mut sel = DefaultSelector::<u32, 1>::open().unwrap();
    let kind = |e: Error| io::Error::from(e).kind();
    assert_eq!(kind(Error::AlreadyRegistered), io::ErrorKind::AlreadyExists);
    assert_eq!(kind(Error::StaleRegistration), io::ErrorKind::AlreadyExists);
    assert_eq!(kind(Error::NotRegistered), io::ErrorKind::NotFound);
    assert_eq!(kind(Error::InvalidEvents), io::ErrorKind::InvalidInput);
    assert_eq!(kind(Error::InvalidFd), io::ErrorKind::InvalidInput);
    assert_eq!(kind(Error::Full), io::ErrorKind::OutOfMemory);
    assert_eq!(kind(Error::NoClock), io::ErrorKind::Unsupported);
    assert_eq!(kind(Error::InvalidCapacity), io::ErrorKind::InvalidInput);
    assert_eq!(kind(Error::Forked), io::ErrorKind::Other);
    for e in [Error::Full, Error::NotRegistered, Error::Os(OsError::EBADF)] {
        assert_eq!(e.kind(), kind(e));
    }

    // From real calls, through `?`.
    fn unregister(
        sel: &mut DefaultSelector<u32, 1>,
        fd: std::os::fd::BorrowedFd<'_>,
    ) -> io::Result<()> {
        sel.unregister(fd)?;
        Ok(())
    }
    let e = unregister(&mut sel, a.as_fd()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    // The typed error is still inside.
    let inner = e.get_ref().and_then(|r| r.downcast_ref::<Error>());
    assert_eq!(inner, Some(&Error::NotRegistered));

    fn register(
        sel: &mut DefaultSelector<u32, 1>,
        fd: std::os::fd::BorrowedFd<'_>,
        events: Events,
    ) -> io::Result<()> {
        sel.register(fd, events, 0)?;
        Ok(())
    }
    let e = register(&mut sel, a.as_fd(), Events::empty()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    register(&mut sel, a.as_fd(), Events::READ).unwrap();
    let e = register(&mut sel, a.as_fd(), Events::READ).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    let (c, _d) = socketpair();
    let e = register(&mut sel, c.as_fd(), Events::READ).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::OutOfMemory, "{e}");
    assert_eq!(sel.len(), 1);
}

/// An OS error becomes the same `io::Error` std would give, and prints as
/// std prints it.
#[test]
fn os_errors_print_like_std_and_once() {
    let os = OsError::EBADF;
    let std_text = io::Error::from_raw_os_error(9).to_string();
    assert_eq!(os.to_string(), std_text);
    assert!(std_text.contains("os error 9"), "{std_text}");
    let e = io::Error::from(Error::Os(os));
    assert_eq!(e.raw_os_error(), Some(9));
    assert_eq!(e.to_string(), std_text);

    // A report that walks the chain (`source()`) shows the OS error once.
    let err = Error::Os(os);
    let mut chain = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let report = chain.join(": ");
    assert_eq!(report.matches("os error 9").count(), 1, "{report}");
    let data_err = DataError {
        error: err,
        data: 1u8,
    };
    assert!(data_err.source().is_none());
    assert_eq!(data_err.to_string(), std_text);
}

#[test]
fn data_error_into_error_reports() {
    // Box<dyn Error> needs `T: 'static`; `Send + Sync` for anyhow.
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (a, _b) = socketpair();
        let mut sel = DefaultSelector::<String, 2>::open()?;
        sel.register(a.as_fd(), Events::READ, "one".to_string())?;
        sel.register(a.as_fd(), Events::READ, "two".to_string())?;
        Ok(())
    }
    let e = boxed().unwrap_err();
    assert_eq!(e.to_string(), Error::AlreadyRegistered.to_string());
    let e = e.downcast::<DataError<String>>().unwrap();
    assert_eq!(e.data, "two");

    // Data that is not `'static`: `.map_err(Error::from)`, as the docs say.
    fn borrowed(name: &str) -> Result<(), Box<dyn std::error::Error>> {
        let (a, _b) = socketpair();
        let mut sel = DefaultSelector::<&str, 2>::open()?;
        sel.register(a.as_fd(), Events::READ, name)
            .map_err(Error::from)?;
        sel.register(a.as_fd(), Events::READ, name)
            .map_err(Error::from)?;
        Ok(())
    }
    let e = borrowed(&String::from("x")).unwrap_err();
    assert_eq!(e.downcast_ref::<Error>(), Some(&Error::AlreadyRegistered));

    // And straight into io::Error, for any T.
    fn io_result(name: &str) -> io::Result<()> {
        let (a, _b) = socketpair();
        let mut sel = DefaultSelector::<&str, 2>::open()?;
        sel.register(a.as_fd(), Events::READ, name)?;
        sel.register(a.as_fd(), Events::READ, name)?;
        Ok(())
    }
    let e = io_result(&String::from("y")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
}

/// std's `AsFd` (not rustix's stand-in) on the backend and the waker (epoll
/// and kqueue alike).
#[test]
fn backend_and_waker_implement_std_as_fd() {
    fn std_fd(x: &impl std::os::fd::AsFd) -> i32 {
        x.as_fd().as_raw_fd()
    }
    let sel = DefaultSelector::<(), 2>::open().unwrap();
    let waker = Waker::new(sel.backend()).unwrap();
    assert!(std_fd(sel.backend()) >= 0);
    assert!(std_fd(&waker) >= 0);
    assert_ne!(std_fd(sel.backend()), std_fd(&waker));
}

/// Data that owns its socket: moved into the key while the kernel gets a
/// borrow of it, and unregistered or changed by number, the source taken
/// from the data. The I/O-safe API without a second table of sockets.
#[test]
fn data_that_owns_its_socket() -> io::Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    /// The key's socket, and a spare one that is not registered.
    #[derive(Debug)]
    struct Conn {
        sock: UnixStream,
        spare: UnixStream,
    }
    // Named functions (or closures written in the call) get the signature
    // `for<'d> Fn(&'d Conn) -> BorrowedFd<'d>`; a closure stored in a `let`
    // first would not.
    fn sock(c: &Conn) -> std::os::fd::BorrowedFd<'_> {
        c.sock.as_fd()
    }
    fn spare(c: &Conn) -> std::os::fd::BorrowedFd<'_> {
        c.spare.as_fd()
    }
    let mut sel = DefaultSelector::<Conn, 4>::open()?;
    let (a, mut b) = socketpair();
    let (spare_sock, _spare_peer) = socketpair();
    let fd = a.as_raw_fd();
    let conn = Conn {
        sock: a,
        spare: spare_sock,
    };
    sel.register_with(Events::READ, conn, sock)?;
    b.write_all(b"hi")?;
    sel.select(Some(Duration::from_secs(5)))?;
    let mut got = [0u8; 2];
    {
        let (mut key, mask) = sel.next_ready().expect("readable");
        assert_eq!((key.fd(), mask), (fd, Events::READ));
        key.data_mut().sock.read_exact(&mut got)?;
    }
    assert_eq!(&got, b"hi");
    sel.modify_events_with(fd, Events::WRITE, |c| c.sock.as_fd())?;
    assert_eq!(sel.get_key(fd).map(|k| k.events()), Some(Events::WRITE));
    // A source of another fd than the key's is refused; nothing changes.
    assert_eq!(
        sel.unregister_with(fd, spare).unwrap_err(),
        Error::InvalidFd
    );
    assert_eq!(
        sel.modify_events_with(fd, Events::READ, spare).unwrap_err(),
        Error::InvalidFd
    );
    assert_eq!(sel.get_key(fd).map(|k| k.events()), Some(Events::WRITE));
    sel.select(Some(Duration::from_secs(5)))?;
    assert_eq!(
        sel.next_ready().map(|(k, m)| (k.fd(), m)),
        Some((fd, Events::WRITE))
    );
    let conn = sel.unregister_with(fd, sock)?.into_data();
    assert!(sel.is_empty());
    // The socket came back out, open and usable.
    (&conn.sock).write_all(b"!")?;
    let mut one = [0u8; 1];
    b.read_exact(&mut one)?;
    assert_eq!(&one, b"!");
    // Registering data whose source is already registered hands it back.
    let (x, _y) = socketpair();
    let (z, _w) = socketpair();
    sel.register_with(Events::READ, conn, sock)?;
    let dup = Conn { sock: x, spare: z };
    let refused = sel.register_with(Events::empty(), dup, sock).unwrap_err();
    assert_eq!(refused.error, Error::InvalidEvents);
    assert_eq!(sel.len(), 1);
    Ok(())
}
