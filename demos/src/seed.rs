//! The echo server and client of Python's `selectors` documentation
//! (PyMOTW-3, "selectors — I/O Multiplexing Abstractions"), written the way
//! the Python programs are written, line for line where Rust allows.
//!
//! - [`EchoServer`]: the selector key of each socket carries a callback as
//!   its data; the loop prints `waiting for I/O`, selects with a one-second
//!   timeout and calls `callback(fd, mask)` for each ready key. It shuts down
//!   after its (first) client disconnects.
//! - [`run_client`]: registers its socket for `READ | WRITE`, checks the
//!   mask, sends the two messages (popped from the end of its list), then
//!   `modify`s the key to `READ` only, and stops once everything it sent has
//!   come back (or the server closed).
//!
//! Both print what the Python programs print (`accept(('127.0.0.1', 59850))`,
//! `  received b'This is the message. It will be repeated.'`) to a writer of
//! the caller's choice. As in the Python programs, an unexpected socket
//! error ends the program with that error.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use crate::io_error;
use crate::platform::{DefaultSelector, Events, RawFd};
use crate::py::{addr_repr, bytes_repr};

/// Where a transcript goes: stdout for the binaries, a buffer for `together`.
pub type Output = Box<dyn Write + Send>;

/// The default port of the seed's programs.
pub const DEFAULT_PORT: u16 = 10000;

/// The messages the client sends, in list order: it pops from the end, so
/// `This is the message. ` goes first.
pub const OUTGOING: [&[u8]; 2] = [b"It will be repeated.", b"This is the message. "];

/// `host` resolved the way a Python `AF_INET` socket does: its first IPv4
/// address (`localhost` is `127.0.0.1`).
///
/// # Errors
/// The resolver's error, or `AddrNotAvailable` when `host` has no IPv4
/// address.
pub fn resolve_v4(host: &str, port: u16) -> io::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no IPv4 address"))
}

/// The server's callback: the data of every key (Python's `key.data`).
#[derive(Clone, Copy)]
pub struct Callback(pub fn(&mut EchoServer, RawFd, Events) -> io::Result<()>);

/// The server's selector: the seed's `mysel`.
pub type ServerSelector = DefaultSelector<Callback, 16>;

/// The seed's echo server (`selectors_echo_server.py`).
pub struct EchoServer {
    mysel: ServerSelector,
    server: TcpListener,
    connections: HashMap<RawFd, TcpStream>,
    keep_running: bool,
    out: Output,
}

macro_rules! say {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*)?
    };
}

/// Callback for read events.
fn read(s: &mut EchoServer, connection: RawFd, _mask: Events) -> io::Result<()> {
    let conn = s
        .connections
        .get_mut(&connection)
        .ok_or_else(|| io::Error::other("callback for an unknown connection"))?;
    let client_address = conn.peer_addr()?;
    say!(s.out, "read({})", addr_repr(client_address));
    let mut buf = [0u8; 1024];
    let n = conn.read(&mut buf)?;
    let data = &buf[..n];
    if !data.is_empty() {
        // A readable client socket has data
        say!(s.out, "  received {}", bytes_repr(data));
        conn.write_all(data)?;
    } else {
        // Interpret empty result as closed connection
        say!(s.out, "  closing");
        s.mysel.unregister(conn.as_fd()).map_err(io_error)?;
        s.connections.remove(&connection);
        // Tell the main loop to stop
        s.keep_running = false;
    }
    Ok(())
}

/// Callback for new connections.
fn accept(s: &mut EchoServer, _sock: RawFd, _mask: Events) -> io::Result<()> {
    let (new_connection, addr) = s.server.accept()?;
    say!(s.out, "accept({})", addr_repr(addr));
    new_connection.set_nonblocking(true)?;
    let fd = new_connection.as_raw_fd();
    s.mysel
        .register(new_connection.as_fd(), Events::READ, Callback(read))
        .map_err(|e| io_error(e.error))?;
    s.connections.insert(fd, new_connection);
    Ok(())
}

impl EchoServer {
    /// Binds and listens on `(host, port)` and registers the listening
    /// socket with the `accept` callback. Prints
    /// `starting up on HOST port PORT` with the port actually bound (so
    /// `port` 0 shows the one the kernel chose).
    ///
    /// # Errors
    /// Resolution, `bind`, `listen` or selector errors.
    pub fn bind(host: &str, port: u16, mut out: Output) -> io::Result<Self> {
        let server = TcpListener::bind(resolve_v4(host, port)?)?;
        server.set_nonblocking(true)?;
        let port = server.local_addr()?.port();
        say!(out, "starting up on {} port {}", host, port);
        let mut mysel = ServerSelector::open().map_err(io_error)?;
        mysel
            .register(server.as_fd(), Events::READ, Callback(accept))
            .map_err(|e| io_error(e.error))?;
        Ok(Self {
            mysel,
            server,
            connections: HashMap::new(),
            keep_running: true,
            out,
        })
    }

    /// The port the server listens on.
    ///
    /// # Errors
    /// `getsockname` failing.
    pub fn port(&self) -> io::Result<u16> {
        Ok(self.server.local_addr()?.port())
    }

    /// The seed's main loop, until the client has disconnected.
    ///
    /// # Errors
    /// Any socket or selector error, as Python would raise it.
    pub fn run(mut self) -> io::Result<()> {
        while self.keep_running {
            say!(self.out, "waiting for I/O");
            self.mysel
                .select(Some(Duration::from_secs(1)))
                .map_err(io_error)?;
            while let Some((key, mask)) = self.mysel.next_ready() {
                let (fd, Callback(callback)) = (key.fd(), *key.data());
                callback(&mut self, fd, mask)?;
            }
        }
        say!(self.out, "shutting down");
        self.mysel.close();
        self.out.flush()
    }
}

/// The seed's echo client (`selectors_echo_client.py`): connects to
/// `(host, port)`, sends [`OUTGOING`] and reads the echo.
///
/// # Errors
/// Any socket or selector error, as Python would raise it.
pub fn run_client(host: &str, port: u16, mut out: Output) -> io::Result<()> {
    let mut mysel = DefaultSelector::<(), 4>::open().map_err(io_error)?;
    let mut keep_running = true;
    let mut outgoing: Vec<&[u8]> = OUTGOING.to_vec();
    let mut bytes_sent = 0usize;
    let mut bytes_received = 0usize;

    // Connecting is a blocking operation, so set the socket non-blocking
    // after it returns.
    say!(out, "connecting to {} port {}", host, port);
    let mut sock = TcpStream::connect(resolve_v4(host, port)?)?;
    sock.set_nonblocking(true)?;

    // Watch for when the socket is ready to send data as well as when there
    // is data to read.
    mysel
        .register(sock.as_fd(), Events::READ | Events::WRITE, ())
        .map_err(|e| io_error(e.error))?;

    while keep_running {
        say!(out, "waiting for I/O");
        mysel
            .select(Some(Duration::from_secs(1)))
            .map_err(io_error)?;
        while let Some((key, mask)) = mysel.next_ready() {
            // The only key is the socket's (Python's `key.fileobj`).
            debug_assert_eq!(key.fd(), sock.as_raw_fd());
            let client_address = sock.peer_addr()?;
            say!(out, "client({})", addr_repr(client_address));

            if mask.contains(Events::READ) {
                say!(out, "  ready to read");
                let mut buf = [0u8; 1024];
                let n = sock.read(&mut buf)?;
                let data = &buf[..n];
                if !data.is_empty() {
                    // A readable client socket has data
                    say!(out, "  received {}", bytes_repr(data));
                    bytes_received += data.len();
                }
                // Interpret an empty result as a closed connection, and also
                // stop once everything sent has come back.
                keep_running =
                    !(data.is_empty() || (outgoing.is_empty() && bytes_received == bytes_sent));
            }

            if mask.contains(Events::WRITE) {
                say!(out, "  ready to write");
                match outgoing.pop() {
                    None => {
                        // We are out of messages, so we no longer need to
                        // write anything. Change our registration to let us
                        // keep reading responses from the server.
                        say!(out, "  switching to read-only");
                        mysel
                            .modify(sock.as_fd(), Events::READ, ())
                            .map_err(|e| io_error(e.error))?;
                    }
                    Some(next_msg) => {
                        // Send the next message.
                        say!(out, "  sending {}", bytes_repr(next_msg));
                        sock.write_all(next_msg)?;
                        bytes_sent += next_msg.len();
                    }
                }
            }
        }
    }

    say!(out, "shutting down");
    mysel.unregister(sock.as_fd()).map_err(io_error)?;
    drop(sock);
    mysel.close();
    out.flush()
}
