//! The seed's callback server (PyMOTW `selectors_echo_server.py`), end to
//! end on loopback TCP: the key's data is a plain `fn` pointer; `accept`
//! registers each new connection, the connection handler modifies its key
//! when output is pending and unregisters it on end of file, all while the
//! batch of ready events is being handed out. Clients verify every byte.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::thread;
use std::time::Duration;

use ioselect_tests::{Bound, DefaultSelector, Events, PATIENCE, RW, RawFd};

type Sel = DefaultSelector<Handler, 64>;

/// The callback stored as a key's data. A struct, because a type alias
/// cannot name itself (`fn(&mut Server, ..)` inside `Sel`).
#[derive(Clone, Copy)]
struct Handler(fn(&mut Server, RawFd, Events));

struct Conn {
    stream: TcpStream,
    /// Echo bytes not yet written back.
    out: Vec<u8>,
    eof: bool,
}

struct Server {
    sel: Sel,
    listener: TcpListener,
    conns: HashMap<RawFd, Conn>,
    accepted: usize,
    closed: usize,
    echoed: usize,
}

fn accept(srv: &mut Server, _fd: RawFd, _mask: Events) {
    loop {
        match srv.listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true).unwrap();
                let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
                srv.sel
                    .register(stream.as_fd(), Events::READ, Handler(connection))
                    .unwrap_or_else(|e| panic!("register {fd}: {e}"));
                let old = srv.conns.insert(
                    fd,
                    Conn {
                        stream,
                        out: Vec::new(),
                        eof: false,
                    },
                );
                assert!(old.is_none(), "fd {fd} reused while still open");
                srv.accepted += 1;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn connection(srv: &mut Server, fd: RawFd, mask: Events) {
    let conn = srv
        .conns
        .get_mut(&fd)
        .unwrap_or_else(|| panic!("event for fd {fd} that has no connection"));
    if mask.contains(Events::READ) {
        let mut buf = [0u8; 16 * 1024];
        match conn.stream.read(&mut buf) {
            Ok(0) => conn.eof = true,
            Ok(n) => conn.out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read {fd}: {e}"),
        }
    }
    if mask.contains(Events::WRITE) || !conn.out.is_empty() {
        match conn.stream.write(&conn.out) {
            Ok(n) => {
                conn.out.drain(..n);
                srv.echoed += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("write {fd}: {e}"),
        }
    }
    if conn.eof && conn.out.is_empty() {
        // Python's `read` callback: unregister, then close.
        srv.sel.unregister(conn.stream.as_fd()).unwrap();
        srv.conns.remove(&fd); // closes the socket
        srv.closed += 1;
        return;
    }
    let want = match (conn.eof, conn.out.is_empty()) {
        (false, true) => Events::READ,
        (false, false) => RW,
        (true, _) => Events::WRITE,
    };
    if srv.sel.get_key(fd).unwrap().events() != want {
        srv.sel.modify_events(conn.stream.as_fd(), want).unwrap();
    }
}

/// A client: sends `payload`, half-closes, reads the echo to EOF.
fn client(addr: SocketAddr, payload: Vec<u8>) -> Vec<u8> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    let reader = s.try_clone().unwrap();
    let echo = thread::spawn(move || {
        let mut got = Vec::new();
        (&reader).read_to_end(&mut got).unwrap();
        got
    });
    (&s).write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    echo.join().unwrap()
}

fn payload(client: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .wrapping_add(client as u32) as u8
        })
        .collect()
}

#[test]
fn callback_echo_server_on_loopback() {
    const CLIENTS: usize = 16;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut srv = Server {
        sel: Sel::open().unwrap(),
        listener,
        conns: HashMap::new(),
        accepted: 0,
        closed: 0,
        echoed: 0,
    };
    srv.sel
        .register(srv.listener.as_fd(), Events::READ, Handler(accept))
        .unwrap();

    // Sizes from empty to larger than the socket buffers, so writes block
    // and the handler has to switch its key to WRITE and back.
    let sizes: Vec<usize> = (0..CLIENTS).map(|i| [0, 1, 1000, 300_000][i % 4]).collect();
    let clients: Vec<_> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| thread::spawn(move || client(addr, payload(i, len))))
        .collect();

    let mut bound = Bound::new("echo server loop", 1_000_000);
    while srv.closed < CLIENTS {
        bound.tick();
        srv.sel.select(Some(Duration::from_millis(100))).unwrap();
        while let Some((key, mask)) = srv.sel.next_ready() {
            let (fd, Handler(callback)) = (key.fd(), *key.data());
            callback(&mut srv, fd, mask);
        }
    }

    let mut total = 0;
    for (i, c) in clients.into_iter().enumerate() {
        let got = c.join().unwrap();
        assert_eq!(got.len(), sizes[i], "client {i}");
        assert!(got == payload(i, sizes[i]), "client {i}: bytes differ");
        total += sizes[i];
    }
    assert_eq!(srv.accepted, CLIENTS);
    assert_eq!(srv.echoed, total);
    assert!(srv.conns.is_empty());
    // Only the listener is left.
    assert_eq!(srv.sel.len(), 1);
    assert!(
        srv.sel
            .contains(std::os::fd::AsRawFd::as_raw_fd(&srv.listener))
    );
    srv.sel.close();
}
