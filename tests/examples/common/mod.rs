#![allow(dead_code)] // not every peer uses every item
//! What the benchmark's peer echo servers share with each other and with
//! `echod` (demos/src/bin/echod.rs), so that only the poller differs: one
//! listening socket, a fixed table of connections each with a fixed 16 KiB
//! buffer allocated at start-up, accept batches of 64, and echod's
//! serving loop (`Conn::serve`: read and echo while that makes progress; a
//! short read means drained; see echod's `serve` and `Guesses`). The
//! edge-triggered mio server keeps the read-until-`EAGAIN` loop that mio's
//! documentation asks for (`Conn::pump`).
//!
//! Usage of every peer: `echo_X [--port P]`; prints `listening on ADDR`,
//! then serves until killed.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, accept_with, bind, listen, recv,
    send, socket_with, sockopt,
};

/// Bytes of buffer per connection (as echod).
pub(crate) const BUF: usize = 16 * 1024;
/// Most connections (as echod's default `--max-conns`).
pub(crate) const MAX_CONNS: usize = 1024;
/// Connections accepted per listener event (as echod).
pub(crate) const ACCEPT_BATCH: usize = 64;

/// `--port P` (default 0: any free port).
pub(crate) fn port() -> u16 {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (Some("--port"), Some(p)) => p.parse().expect("--port P"),
        (None, _) => 0,
        _ => panic!("usage: {} [--port P]", env!("CARGO_CRATE_NAME")),
    }
}

/// A non-blocking listening socket on 127.0.0.1:`port`, announced on stdout.
pub(crate) fn listener(port: u16) -> OwnedFd {
    let fd = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )
    .expect("socket");
    sockopt::set_socket_reuseaddr(&fd, true).expect("SO_REUSEADDR");
    bind(
        &fd,
        &SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
    )
    .expect("bind");
    listen(&fd, 1024).expect("listen");
    let addr = SocketAddr::try_from(rustix::net::getsockname(&fd).expect("getsockname"))
        .expect("inet address");
    let mut out = std::io::stdout();
    writeln!(out, "listening on {addr}").expect("stdout");
    out.flush().expect("stdout");
    fd
}

/// Most read-and-echo passes per event in `Conn::serve` (as echod).
pub(crate) const PASSES: usize = 64;

/// Accepts one pending connection, non-blocking; `None` when none is
/// pending (or it was aborted meanwhile: the caller just tries again later).
pub(crate) fn accept(listener: &OwnedFd) -> Option<OwnedFd> {
    loop {
        match accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok(fd) => return Some(fd),
            Err(Errno::INTR | Errno::CONNABORTED | Errno::PROTO) => {}
            Err(_) => return None,
        }
    }
}

/// One connection: bytes `start..end` of its buffer are read, not yet echoed.
pub(crate) struct Conn {
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The peer sent its end of file.
    pub(crate) eof: bool,
    /// What the poller watches for: (read, write).
    pub(crate) interest: (bool, bool),
    /// As echod, which keeps it for its idle timeout.
    pub(crate) last_active: Instant,
    /// The last `pump` stopped reading because the buffer was full, not
    /// because the socket had nothing more (an edge-triggered server must
    /// read again once there is room: no new edge will come for that data).
    pub(crate) stopped_full: bool,
    /// The last read filled its room and a guess for more is due (`serve`).
    pub(crate) unread: bool,
    pub(crate) guesses: Guesses,
}

/// echod's `Guesses`: after a guessed read that found nothing, the next 1,
/// 2, 4, ... up to `MAX_BACKOFF` full reads do not guess.
pub(crate) struct Guesses {
    skip: u8,
    backoff: u8,
}

/// As echod's.
pub(crate) const MAX_BACKOFF: u8 = 64;

/// A new connection starts as if a guess had just missed at the longest
/// wait: most peers send requests, not streams, and a stream gets past the
/// first `MAX_BACKOFF` full reads (1 MiB) in no time.
impl Default for Guesses {
    fn default() -> Self {
        Guesses {
            skip: MAX_BACKOFF,
            backoff: MAX_BACKOFF,
        }
    }
}

impl Guesses {
    pub(crate) fn may_hold_more(&mut self) -> bool {
        if self.skip == 0 {
            true
        } else {
            self.skip -= 1;
            false
        }
    }

    pub(crate) fn hit(&mut self) {
        self.backoff = 0;
    }

    pub(crate) fn missed(&mut self) {
        self.backoff = self.backoff.saturating_mul(2).clamp(1, MAX_BACKOFF);
        self.skip = self.backoff;
    }
}

impl Conn {
    pub(crate) fn table() -> (Vec<Conn>, Vec<u8>, Vec<u32>) {
        let now = Instant::now();
        let conns = (0..MAX_CONNS)
            .map(|_| Conn {
                fd: None,
                start: 0,
                end: 0,
                eof: false,
                interest: (true, false),
                last_active: now,
                stopped_full: false,
                unread: false,
                guesses: Guesses::default(),
            })
            .collect();
        // `calloc`-backed, like echod's: untouched pages cost nothing.
        let slab = vec![0u8; MAX_CONNS * BUF];
        let free = (0..MAX_CONNS as u32).rev().collect();
        (conns, slab, free)
    }

    /// echod's `serve` (demos/src/bin/echod.rs, which explains it): passes of
    /// one read and writes until all is echoed or the socket would block,
    /// repeated while the read filled its room (and `Guesses` agrees) and
    /// nothing is stuck, at most `PASSES` times. Returns the interest wanted next, or `None` when
    /// the connection is done and must be closed.
    pub(crate) fn serve(&mut self, buf: &mut [u8], readable: bool) -> Option<(bool, bool)> {
        let fd = self.fd.as_ref()?;
        self.last_active = Instant::now();
        let mut read = readable || self.unread;
        let mut guess = !readable;
        for _ in 0..PASSES {
            if read && !self.eof {
                if self.end == BUF && self.start > 0 {
                    buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
                if self.end < BUF {
                    let offered = BUF - self.end;
                    match recv(fd, &mut buf[self.end..], RecvFlags::empty()) {
                        Ok((0, _)) => {
                            self.eof = true;
                            self.unread = false;
                        }
                        Ok((n, _)) => {
                            self.end += n;
                            if guess {
                                self.guesses.hit();
                            }
                            self.unread = n == offered && self.guesses.may_hold_more();
                        }
                        Err(Errno::AGAIN) => {
                            self.unread = false;
                            if guess {
                                self.guesses.missed();
                            }
                        }
                        Err(Errno::INTR) => self.unread = true,
                        Err(_) => return None,
                    }
                }
            }
            let mut blocked = false;
            while self.start < self.end {
                match send(fd, &buf[self.start..self.end], SendFlags::NOSIGNAL) {
                    Ok(n) => self.start += n,
                    Err(Errno::AGAIN) => {
                        blocked = true;
                        break;
                    }
                    Err(Errno::INTR) => {}
                    Err(_) => return None,
                }
            }
            if self.start == self.end {
                self.start = 0;
                self.end = 0;
            }
            if blocked || !self.unread || self.eof {
                break;
            }
            read = true;
            guess = true;
        }
        if self.eof && self.end == 0 {
            return None;
        }
        let read = !self.eof && (self.end < BUF || self.start > 0);
        let write = self.start < self.end;
        Some((read, write))
    }

    /// The read-until-`EAGAIN` loop (mio's idiom): reads what fits (when `readable`), echoes what the
    /// peer takes. Returns the interest wanted next, or `None` when the
    /// connection is done (reset, or half-closed with everything echoed)
    /// and must be closed.
    pub(crate) fn pump(&mut self, buf: &mut [u8], readable: bool) -> Option<(bool, bool)> {
        let fd = self.fd.as_ref()?;
        self.last_active = Instant::now();
        self.stopped_full = false;
        if readable && !self.eof {
            loop {
                if self.end == BUF {
                    if self.start == 0 {
                        self.stopped_full = true;
                        break; // full: backpressure
                    }
                    buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                }
                match recv(fd, &mut buf[self.end..], RecvFlags::empty()) {
                    Ok((0, _)) => {
                        self.eof = true;
                        break;
                    }
                    Ok((n, _)) => self.end += n,
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(_) => return None,
                }
            }
        }
        while self.start < self.end {
            match send(fd, &buf[self.start..self.end], SendFlags::NOSIGNAL) {
                Ok(n) => self.start += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(_) => return None,
            }
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.eof && self.end == 0 {
            return None;
        }
        let read = !self.eof && (self.end < BUF || self.start > 0);
        let write = self.start < self.end;
        Some((read, write))
    }
}
