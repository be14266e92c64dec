//! The smallest useful echo server on ioselect with `std`, for the size
//! comparison with the same server on mio (`small_echo_mio`) and without
//! libc (`demos/nolibc`): the three behave the same.
//!
//! `small_echo_ioselect [--port P]`: 127.0.0.1:P, prints `listening on
//! 127.0.0.1:P`, 16 clients at once with 4 KiB buffers each, backpressure
//! (a client that does not read is not read), half-close (all data echoed
//! before the close). Runs until killed.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use ioselect_demos::io_error;
use ioselect_demos::platform::{DefaultSelector, Events};

const CONNS: usize = 16;
const BUF: usize = 4096;
const LISTENER: usize = usize::MAX;

type Sel = DefaultSelector<usize, { CONNS + 1 }>;

struct Conn {
    stream: Option<TcpStream>,
    buf: [u8; BUF],
    start: usize,
    end: usize,
    eof: bool,
    interest: Events,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match (args.next().as_deref(), args.next()) {
        (None, _) => 0,
        (Some("--port"), Some(p)) => p.parse().map_err(io::Error::other)?,
        _ => return Err(io::Error::other("usage: small_echo_ioselect [--port P]")),
    };
    let listener = TcpListener::bind(std::net::SocketAddr::from(([127, 0, 0, 1], port)))?;
    listener.set_nonblocking(true)?;
    let mut sel = Sel::open().map_err(io_error)?;
    sel.register(listener.as_fd(), Events::READ, LISTENER)
        .map_err(|e| io_error(e.error))?;
    let mut conns: [Conn; CONNS] = std::array::from_fn(|_| Conn {
        stream: None,
        buf: [0; BUF],
        start: 0,
        end: 0,
        eof: false,
        interest: Events::READ,
    });
    let (mut listening, mut resting) = (true, false);
    println!("listening on {}", listener.local_addr()?);

    loop {
        sel.select(resting.then_some(Duration::from_millis(100)))
            .map_err(io_error)?;
        // Set when the listener is paused for an error in this round: it
        // comes back only after the next (100 ms) select.
        let mut paused_now = false;
        while let Some((key, mask)) = sel.next_ready() {
            let slot = *key.data();
            if slot != LISTENER {
                serve(&mut sel, &mut conns[slot], mask);
                continue;
            }
            let Some(free) = conns.iter().position(|c| c.stream.is_none()) else {
                let _ = sel.unregister(listener.as_fd());
                listening = false;
                continue;
            };
            match listener.accept() {
                Ok((stream, _)) => {
                    if stream.set_nonblocking(true).is_ok()
                        && sel.register(stream.as_fd(), Events::READ, free).is_ok()
                    {
                        let c = &mut conns[free];
                        c.stream = Some(stream);
                        (c.start, c.end, c.eof, c.interest) = (0, 0, false, Events::READ);
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock
                            | ErrorKind::Interrupted
                            | ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    let _ = sel.unregister(listener.as_fd());
                    (listening, resting, paused_now) = (false, true, true);
                }
            }
        }
        if !listening && !paused_now && conns.iter().any(|c| c.stream.is_none()) {
            resting = false;
            listening = sel
                .register(listener.as_fd(), Events::READ, LISTENER)
                .is_ok();
        }
    }
}

fn serve(sel: &mut Sel, c: &mut Conn, mask: Events) {
    let Some(stream) = c.stream.as_mut() else {
        return;
    };
    let mut broken = false;
    if mask.contains(Events::READ) && !c.eof {
        loop {
            if c.end == BUF {
                if c.start == 0 {
                    break;
                }
                c.buf.copy_within(c.start..c.end, 0);
                (c.end, c.start) = (c.end - c.start, 0);
            }
            match stream.read(&mut c.buf[c.end..]) {
                Ok(0) => {
                    c.eof = true;
                    break;
                }
                Ok(n) => c.end += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
    }
    while !broken && c.start < c.end {
        match stream.write(&c.buf[c.start..c.end]) {
            Ok(n) => c.start += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => broken = true,
        }
    }
    if c.start == c.end {
        (c.start, c.end) = (0, 0);
    }
    let mut want = Events::empty();
    if !c.eof && (c.end < BUF || c.start > 0) {
        want |= Events::READ;
    }
    if c.start < c.end {
        want |= Events::WRITE;
    }
    let fd = stream.as_fd();
    if broken || want.is_empty() {
        let _ = sel.unregister(fd);
        c.stream = None;
    } else if want != c.interest {
        if sel.modify_events(fd, want).is_ok() {
            c.interest = want;
        } else {
            let _ = sel.unregister(fd);
            c.stream = None;
        }
    }
}
