//! Benchmark peer: the echo server on polling 3 in level mode, with echod's
//! connection logic (`common/mod.rs`). `echo_polling [--port P]`.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op.
#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod imp {
    use super::common;

    use std::os::fd::{AsFd, AsRawFd};

    use common::{ACCEPT_BATCH, BUF, Conn};
    use polling::{Event, Events, PollMode, Poller};

    // polling reserves `usize::MAX` for itself.
    const LISTENER: usize = usize::MAX - 1;

    fn event(key: usize, (read, write): (bool, bool)) -> Event {
        let mut e = Event::none(key);
        e.readable = read;
        e.writable = write;
        e
    }

    pub(super) fn main() {
        let listener = common::listener(common::port());
        let poller = Poller::new().expect("poller");
        // SAFETY: the listener lives until the end of `main`, after the poller
        // (declared later, dropped first).
        unsafe {
            poller.add_with_mode(
                listener.as_raw_fd(),
                Event::readable(LISTENER),
                PollMode::Level,
            )
        }
        .expect("add");
        let (mut conns, mut slab, mut free) = Conn::table();
        let mut events = Events::with_capacity(std::num::NonZeroUsize::new(256).expect("256"));
        loop {
            events.clear();
            match poller.wait(&mut events, None) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("wait: {e}"),
            }
            for ev in events.iter() {
                if ev.key == LISTENER {
                    for _ in 0..ACCEPT_BATCH {
                        let Some(&slot) = free.last() else { break };
                        let Some(fd) = common::accept(&listener) else {
                            break;
                        };
                        // SAFETY: deleted from the poller before it is closed
                        // (below, where the connection ends).
                        unsafe {
                            poller.add_with_mode(
                                fd.as_raw_fd(),
                                Event::readable(slot as usize),
                                PollMode::Level,
                            )
                        }
                        .expect("add");
                        free.pop();
                        let c = &mut conns[slot as usize];
                        c.fd = Some(fd);
                        (c.start, c.end, c.eof, c.interest) = (0, 0, false, (true, false));
                        (c.unread, c.guesses) = (false, common::Guesses::default());
                    }
                    continue;
                }
                let slot = ev.key;
                let c = &mut conns[slot];
                // polling reports hang-ups and errors as readable too.
                let buf = &mut slab[slot * BUF..][..BUF];
                match c.serve(buf, ev.readable) {
                    Some(want) if want == c.interest => {}
                    Some(want) => {
                        let fd = c.fd.as_ref().expect("open").as_fd();
                        poller
                            .modify_with_mode(fd, event(slot, want), PollMode::Level)
                            .expect("modify");
                        c.interest = want;
                    }
                    None => {
                        if let Some(fd) = c.fd.take() {
                            let _ = poller.delete(&fd);
                        }
                        free.push(slot as u32);
                    }
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
