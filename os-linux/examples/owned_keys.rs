//! PyMOTW's selectors echo server (`selectors_echo_server.py`), with keys that
//! own their sockets: each key's data is the socket and the callback that
//! handles it. A client thread sends its message, reads the echo, and
//! asks the server to shut down through a Waker; the server closes cleanly.
//!
//!     cargo run -p ioselect-linux --example owned_keys
//!
//! The one rule the borrow checker enforces: copy what you need out of the
//! key (its fd, its callback), let the key go, then call the selector.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ioselect_linux::{DefaultSelector, Events, Waker};

/// The socket a key owns.
enum Socket {
    Listener(TcpListener),
    Stream(TcpStream),
}

impl Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Listener(l) => l.as_fd(),
            Socket::Stream(s) => s.as_fd(),
        }
    }
}

/// A callback as key data. A type alias cannot name itself
/// (`type Sel = DefaultSelector<(Socket, fn(&mut Sel, ..))>` is a cycle,
/// E0391), so the function pointer is wrapped in a struct, which may.
#[derive(Clone, Copy)]
struct Handler(fn(&mut Sel, RawFd, Events) -> io::Result<()>);

/// What a key holds: its socket and what to do when it is ready.
struct Key {
    socket: Socket,
    on_ready: Handler,
}

type Sel = DefaultSelector<Key, 16>;

/// The Python server's `accept(sock, mask)`.
fn accept(sel: &mut Sel, fd: RawFd, _mask: Events) -> io::Result<()> {
    // Borrow the listener from its key just for the `accept`; the borrow
    // ends before the selector is called again.
    let accepted = match sel.get_key(fd).map(|key| &key.data().socket) {
        Some(Socket::Listener(listener)) => listener.accept(),
        _ => return Ok(()),
    };
    let (stream, addr) = match accepted {
        Ok(pair) => pair,
        Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
        Err(e) => return Err(e),
    };
    println!("accept({addr})");
    stream.set_nonblocking(true)?;
    let key = Key {
        socket: Socket::Stream(stream),
        on_ready: Handler(read),
    };
    // The key owns the stream: the kernel is handed a borrow of it.
    sel.register_with(Events::READ, key, |key| key.socket.as_fd())?;
    Ok(())
}

/// The Python server's `read(connection, mask)`: echo, or unregister and close at end
/// of file.
fn read(sel: &mut Sel, fd: RawFd, _mask: Events) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    let got = match sel.get_key(fd).map(|key| &key.data().socket) {
        Some(Socket::Stream(stream)) => {
            let peer = stream.peer_addr()?;
            println!("read({peer})");
            match (&*stream).read(&mut buf) {
                Ok(n) => {
                    if n > 0 {
                        println!("  received {:?}", String::from_utf8_lossy(&buf[..n]));
                        // As the Python server's `sendall`: a short message fits the
                        // socket's buffer.
                        (&*stream).write_all(&buf[..n])?;
                    }
                    n
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(_) => 0, // reset: close it like end of file
            }
        }
        _ => return Ok(()),
    };
    if got == 0 {
        println!("  closing");
        // The key gives the stream back; dropping it closes the socket,
        // after it left the selector.
        let key = sel.unregister_with(fd, |key| key.socket.as_fd())?;
        drop(key.into_data());
    }
    Ok(())
}

/// The Python server's loop, until the waker asks it to stop.
fn serve(mut sel: Sel, stop: &AtomicBool) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Acquire) {
        if Instant::now() > deadline {
            return Err(io::Error::new(ErrorKind::TimedOut, "no shutdown came"));
        }
        println!("waiting for I/O");
        sel.select(Some(Duration::from_secs(1)))?;
        while let Some((key, mask)) = sel.next_ready() {
            // Copy the fd and the callback out; the key goes out of scope
            // here, so the callback may use the selector.
            let (fd, Handler(callback)) = (key.fd(), key.data().on_ready);
            callback(&mut sel, fd, mask)?;
        }
    }
    println!("shutting down");
    sel.close(); // drops every key, closing the sockets the keys own
    Ok(())
}

/// The Python client: sends its message, reads the echo back, then asks the
/// server to stop.
fn client(addr: std::net::SocketAddr, waker: Waker, stop: &AtomicBool) -> io::Result<Vec<u8>> {
    let message = b"This is the message.  It will be repeated.";
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(message)?;
    let mut echoed = vec![0u8; message.len()];
    stream.read_exact(&mut echoed)?;
    stream.shutdown(Shutdown::Write)?;
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest)?; // the server closes its end
    stop.store(true, Ordering::Release);
    waker.wake()?;
    Ok(echoed)
}

fn run() -> io::Result<Vec<u8>> {
    let mut sel = Sel::open()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    println!("starting up on {addr}");
    let key = Key {
        socket: Socket::Listener(listener),
        on_ready: Handler(accept),
    };
    sel.register_with(Events::READ, key, |key| key.socket.as_fd())?;

    let stop = AtomicBool::new(false);
    let waker = sel.waker()?;
    thread::scope(|s| {
        let client = s.spawn(|| client(addr, waker, &stop));
        let served = serve(sel, &stop);
        let echoed = client
            .join()
            .map_err(|_| io::Error::other("client panicked"))?;
        served.and(echoed)
    })
}

fn main() -> io::Result<()> {
    let echoed = run()?;
    println!("client got {:?}", String::from_utf8_lossy(&echoed));
    Ok(())
}

#[test]
fn the_echo_server_with_owned_keys_echoes_and_shuts_down() {
    let echoed = run().expect("the example runs");
    assert_eq!(echoed, b"This is the message.  It will be repeated.");
}
