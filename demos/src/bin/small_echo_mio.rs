//! `small_echo_ioselect`'s twin on mio, for the size comparison: the same
//! behaviour (16 clients, 4 KiB buffers, backpressure, half-close), the
//! same output (`listening on 127.0.0.1:P`), mio's API.
//!
//! `small_echo_mio [--port P]`. Runs until killed.

use std::io::{self, ErrorKind, Read, Write};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const CONNS: usize = 16;
const BUF: usize = 4096;
const LISTENER: Token = Token(usize::MAX);

struct Conn {
    stream: Option<TcpStream>,
    buf: [u8; BUF],
    start: usize,
    end: usize,
    eof: bool,
    interest: Option<Interest>,
}

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = match (args.next().as_deref(), args.next()) {
        (None, _) => 0,
        (Some("--port"), Some(p)) => p.parse().map_err(io::Error::other)?,
        _ => return Err(io::Error::other("usage: small_echo_mio [--port P]")),
    };
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into())?;
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(CONNS + 1);
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: [Conn; CONNS] = std::array::from_fn(|_| Conn {
        stream: None,
        buf: [0; BUF],
        start: 0,
        end: 0,
        eof: false,
        interest: None,
    });
    let (mut listening, mut resting) = (true, false);
    println!("listening on {}", listener.local_addr()?);

    loop {
        poll.poll(&mut events, resting.then_some(Duration::from_millis(100)))?;
        // Set when the listener is paused for an error in this round: it
        // comes back only after the next (100 ms) poll.
        let mut paused_now = false;
        for event in &events {
            if event.token() != LISTENER {
                serve(&poll, &mut conns[event.token().0], event.token());
                continue;
            }
            // Edge-triggered: accept until `WouldBlock` (or no room).
            loop {
                let Some(free) = conns.iter().position(|c| c.stream.is_none()) else {
                    let _ = poll.registry().deregister(&mut listener);
                    listening = false;
                    break;
                };
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        if poll
                            .registry()
                            .register(&mut stream, Token(free), Interest::READABLE)
                            .is_ok()
                        {
                            let c = &mut conns[free];
                            c.stream = Some(stream);
                            (c.start, c.end, c.eof, c.interest) =
                                (0, 0, false, Some(Interest::READABLE));
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                        ) => {}
                    Err(_) => {
                        let _ = poll.registry().deregister(&mut listener);
                        (listening, resting, paused_now) = (false, true, true);
                        break;
                    }
                }
            }
        }
        if !listening && !paused_now && conns.iter().any(|c| c.stream.is_none()) {
            resting = false;
            listening = poll
                .registry()
                .register(&mut listener, LISTENER, Interest::READABLE)
                .is_ok();
        }
    }
}

/// mio's readiness is edge-triggered: read and write until `WouldBlock`
/// (or the buffer is full) on every event.
fn serve(poll: &Poll, c: &mut Conn, token: Token) {
    let Some(stream) = c.stream.as_mut() else {
        return;
    };
    let mut broken = false;
    let mut blocked_read = c.eof;
    loop {
        let mut progress = false;
        while !blocked_read {
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
                    blocked_read = true;
                }
                Ok(n) => {
                    c.end += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => blocked_read = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    broken = true;
                    blocked_read = true;
                }
            }
        }
        let mut blocked_write = false;
        while !broken && !blocked_write && c.start < c.end {
            match stream.write(&c.buf[c.start..c.end]) {
                Ok(n) => {
                    c.start += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => blocked_write = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => broken = true,
            }
        }
        if c.start == c.end {
            (c.start, c.end) = (0, 0);
        }
        // Room again after writing: read more, unless reading blocked.
        if broken || blocked_write || blocked_read || !progress {
            break;
        }
    }
    let want = match (!c.eof && (c.end < BUF || c.start > 0), c.start < c.end) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    };
    let rearmed = match want {
        Some(w) if !broken => {
            want == c.interest || poll.registry().reregister(stream, token, w).is_ok()
        }
        _ => false,
    };
    if rearmed {
        c.interest = want;
    } else {
        // Reset, or half-closed with everything echoed: done.
        let _ = poll.registry().deregister(stream);
        c.stream = None;
    }
}
