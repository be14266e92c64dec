//! Benchmark peer: the echo server on mio 1 (edge-triggered), with echod's
//! connection logic (`common/mod.rs`). mio's idiom: each connection is
//! registered once for both readable and writable and never re-registered;
//! on every event the connection is pumped until it can make no progress
//! (an edge comes only once). `echo_mio [--port P]`.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op.
#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod imp {
    use super::common;

    use std::os::fd::AsRawFd;

    use common::{ACCEPT_BATCH, BUF, Conn};
    use mio::unix::SourceFd;
    use mio::{Events, Interest, Poll, Token};

    const LISTENER: Token = Token(usize::MAX);

    pub(super) fn main() {
        let listener = common::listener(common::port());
        let mut poll = Poll::new().expect("poll");
        poll.registry()
            .register(
                &mut SourceFd(&listener.as_raw_fd()),
                LISTENER,
                Interest::READABLE,
            )
            .expect("register");
        let (mut conns, mut slab, mut free) = Conn::table();
        let mut events = Events::with_capacity(256);
        loop {
            match poll.poll(&mut events, None) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("poll: {e}"),
            }
            for ev in events.iter() {
                if ev.token() == LISTENER {
                    // Edge-triggered: accept until none is pending (in batches
                    // of 64 like the others, but no edge would come for the
                    // rest, so keep going while slots are free).
                    while let Some(&slot) = free.last() {
                        let Some(fd) = common::accept(&listener) else {
                            break;
                        };
                        poll.registry()
                            .register(
                                &mut SourceFd(&fd.as_raw_fd()),
                                Token(slot as usize),
                                Interest::READABLE | Interest::WRITABLE,
                            )
                            .expect("register");
                        free.pop();
                        let c = &mut conns[slot as usize];
                        c.fd = Some(fd);
                        (c.start, c.end, c.eof, c.interest) = (0, 0, false, (true, true));
                    }
                    let _ = ACCEPT_BATCH;
                    continue;
                }
                let slot = ev.token().0;
                let c = &mut conns[slot];
                let buf = &mut slab[slot * BUF..][..BUF];
                // Pump until stuck: when reading stopped only because the
                // buffer was full and writing then made room, read again (no new
                // edge will come for data already waiting).
                let done = loop {
                    match c.pump(buf, true) {
                        None => break true,
                        Some(_) if c.stopped_full && (c.end < BUF || c.start > 0) => {}
                        Some(_) => break false,
                    }
                };
                if done {
                    if let Some(fd) = c.fd.take() {
                        let _ = poll.registry().deregister(&mut SourceFd(&fd.as_raw_fd()));
                    }
                    free.push(slot as u32);
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn main() {
    imp::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("this benchmark needs Linux");
}
