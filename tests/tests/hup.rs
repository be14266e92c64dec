//! Hang-ups and errors (epoll's `EPOLLHUP`/`EPOLLERR`/`EPOLLRDHUP`, kqueue's
//! `EV_EOF`/`EV_ERROR`) surface as Python surfaces them: as readiness on
//! the registered interests, so a reader sees end of file (or the error) on
//! its next read, and a writer the error on its next write.

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::time::Duration;

use ioselect_tests::{
    Bound, DefaultSelector, Events, RW, fd_of, linger_zero, select_ready, socketpair, tcp_pair,
    wait_for,
};

type Sel = DefaultSelector<&'static str, 8>;

/// Reads until end of file or an error, bounded: `Ok(total bytes)` at EOF.
fn read_to_eof(mut s: impl Read) -> std::io::Result<usize> {
    let mut total = 0;
    let mut buf = [0u8; 4096];
    let mut bound = Bound::new("read to EOF", 100_000);
    loop {
        bound.tick();
        match s.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes until the kernel refuses, bounded: the error.
fn write_until_error(mut s: impl Write) -> std::io::Error {
    let mut bound = Bound::new("write until error", 100_000);
    loop {
        bound.tick();
        match s.write(&[0u8; 1024]) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(e) => return e,
        }
    }
}

fn is_peer_gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
    )
}

#[test]
fn unix_peer_closed_reader_sees_read_then_eof() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    assert!(select_ready(&mut sel, Some(Duration::ZERO)).is_empty());
    drop(b);
    assert_eq!(wait_for(&mut sel, fd_of(&a), Events::READ), Events::READ);
    assert_eq!(read_to_eof(&a).unwrap(), 0);
    // Level-triggered: still reported until unregistered.
    assert_eq!(
        select_ready(&mut sel, Some(Duration::ZERO)),
        [(fd_of(&a), Events::READ, "a")]
    );
}

#[test]
fn unix_peer_closed_with_data_pending_reader_gets_the_data_then_eof() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::READ, "a").unwrap();
    (&b).write_all(b"last words").unwrap();
    drop(b);
    wait_for(&mut sel, fd_of(&a), Events::READ);
    assert_eq!(read_to_eof(&a).unwrap(), 10);
}

#[test]
fn unix_peer_closed_writer_sees_write_then_the_error() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), Events::WRITE, "a").unwrap();
    drop(b);
    assert_eq!(wait_for(&mut sel, fd_of(&a), Events::WRITE), Events::WRITE);
    let e = write_until_error(&a);
    assert!(is_peer_gone(&e), "{e}");
}

#[test]
fn unix_peer_closed_rw_key_reports_both() {
    let mut sel = Sel::open().unwrap();
    let (a, b) = socketpair();
    sel.register(a.as_fd(), RW, "a").unwrap();
    drop(b);
    assert_eq!(wait_for(&mut sel, fd_of(&a), Events::READ), RW);
}

#[test]
fn tcp_peer_closed_reader_sees_read_then_eof() {
    let mut sel = Sel::open().unwrap();
    let (client, server) = tcp_pair();
    sel.register(server.as_fd(), Events::READ, "server")
        .unwrap();
    assert!(select_ready(&mut sel, Some(Duration::from_millis(5))).is_empty());
    drop(client);
    assert_eq!(
        wait_for(&mut sel, fd_of(&server), Events::READ),
        Events::READ
    );
    assert_eq!(read_to_eof(&server).unwrap(), 0);
}

#[test]
fn tcp_half_close_reader_sees_eof_and_can_still_write() {
    let mut sel = Sel::open().unwrap();
    let (client, server) = tcp_pair();
    sel.register(server.as_fd(), Events::READ, "server")
        .unwrap();
    (&client).write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    wait_for(&mut sel, fd_of(&server), Events::READ);
    assert_eq!(read_to_eof(&server).unwrap(), 7);
    // The other direction is open.
    sel.modify_events(server.as_fd(), Events::WRITE).unwrap();
    wait_for(&mut sel, fd_of(&server), Events::WRITE);
    (&server).write_all(b"reply").unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    client.set_nonblocking(false).unwrap();
    client
        .set_read_timeout(Some(ioselect_tests::PATIENCE))
        .unwrap();
    let mut got = Vec::new();
    (&client).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"reply");
}

/// The peer closed (FIN): still writable; the first write provokes an RST,
/// after which the key reports WRITE (the error) and the write fails.
#[test]
fn tcp_peer_closed_writer_sees_write_then_the_error() {
    let mut sel = Sel::open().unwrap();
    let (client, server) = tcp_pair();
    sel.register(server.as_fd(), Events::WRITE, "server")
        .unwrap();
    drop(client);
    assert_eq!(
        wait_for(&mut sel, fd_of(&server), Events::WRITE),
        Events::WRITE
    );
    let e = write_until_error(&server);
    assert!(is_peer_gone(&e), "{e}");
    // After the error the key still reports WRITE, so a writer is not stuck.
    assert_eq!(
        wait_for(&mut sel, fd_of(&server), Events::WRITE),
        Events::WRITE
    );
}

/// The peer reset the connection (SO_LINGER 0): a WRITE key reports WRITE
/// and the write fails; a READ key reports READ and the read fails or sees
/// EOF.
#[test]
fn tcp_reset_reaches_reader_and_writer() {
    for events in [Events::READ, Events::WRITE, RW] {
        let mut sel = Sel::open().unwrap();
        let (client, server) = tcp_pair();
        (&client).write_all(b"in flight").unwrap();
        linger_zero(&client).unwrap();
        drop(client); // RST
        sel.register(server.as_fd(), events, "server").unwrap();
        let want = if events.contains(Events::READ) {
            Events::READ
        } else {
            Events::WRITE
        };
        let mask = wait_for(&mut sel, fd_of(&server), want);
        assert_eq!(mask, events, "an RST is readiness for every interest");
        if events.contains(Events::READ) {
            match read_to_eof(&server) {
                Ok(_) => {}
                Err(e) => assert!(is_peer_gone(&e), "{e}"),
            }
        }
        if events.contains(Events::WRITE) {
            let e = write_until_error(&server);
            assert!(is_peer_gone(&e), "{e}");
        }
    }
}

/// A socket whose peer reset, among other, idle keys: only its key is
/// reported.
#[test]
fn hangup_is_reported_only_for_its_own_key() {
    let mut sel = Sel::open().unwrap();
    let (_idle_client, idle) = tcp_pair();
    let (client, server) = tcp_pair();
    sel.register(idle.as_fd(), Events::READ, "idle").unwrap();
    sel.register(server.as_fd(), Events::READ, "server")
        .unwrap();
    linger_zero(&client).unwrap();
    drop(client);
    wait_for(&mut sel, fd_of(&server), Events::READ);
    let ready = select_ready(&mut sel, Some(Duration::ZERO));
    assert_eq!(ready, [(fd_of(&server), Events::READ, "server")]);
}
