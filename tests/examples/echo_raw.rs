//! Benchmark peer: the echo server on a hand-written rustix epoll loop
//! (level-triggered, like ioselect), with echod's connection logic
//! (`common/mod.rs`). `echo_raw [--port P]`.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op.
#[cfg(target_os = "linux")]
mod common;

#[cfg(target_os = "linux")]
mod imp {
    use super::common;

    use std::os::fd::{AsFd, BorrowedFd};

    use common::{ACCEPT_BATCH, BUF, Conn};
    use rustix::event::epoll::{self, EventData, EventFlags};

    const LISTENER: u64 = u64::MAX;

    fn flags((read, write): (bool, bool)) -> EventFlags {
        let mut f = EventFlags::empty();
        if read {
            f |= EventFlags::IN;
        }
        if write {
            f |= EventFlags::OUT;
        }
        f
    }

    pub(super) fn main() {
        let listener = common::listener(common::port());
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
        epoll::add(&ep, &listener, EventData::new_u64(LISTENER), EventFlags::IN).expect("add");
        let (mut conns, mut slab, mut free) = Conn::table();
        let empty = epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        let mut events = vec![empty; 256];
        loop {
            let n = match epoll::wait(&ep, &mut events[..], None) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("epoll_wait: {e}"),
            };
            for e in &events[..n] {
                let (ready, data) = (e.flags, e.data.u64());
                if data == LISTENER {
                    for _ in 0..ACCEPT_BATCH {
                        let Some(&slot) = free.last() else { break };
                        let Some(fd) = common::accept(&listener) else {
                            break;
                        };
                        epoll::add(
                            &ep,
                            &fd,
                            EventData::new_u64(u64::from(slot)),
                            EventFlags::IN,
                        )
                        .expect("add");
                        free.pop();
                        let c = &mut conns[slot as usize];
                        c.fd = Some(fd);
                        (c.start, c.end, c.eof, c.interest) = (0, 0, false, (true, false));
                        (c.unread, c.guesses) = (false, common::Guesses::default());
                        continue;
                    }
                    continue;
                }
                let slot = data as usize;
                let c = &mut conns[slot];
                // As CPython and ioselect: anything but OUT counts as readable.
                let readable = !(ready - EventFlags::OUT).is_empty();
                let buf = &mut slab[slot * BUF..][..BUF];
                match c.serve(buf, readable) {
                    Some(want) if want == c.interest => {}
                    Some(want) => {
                        let fd: BorrowedFd<'_> = c.fd.as_ref().expect("open").as_fd();
                        epoll::modify(&ep, fd, EventData::new_u64(data), flags(want))
                            .expect("modify");
                        c.interest = want;
                    }
                    None => {
                        if let Some(fd) = c.fd.take() {
                            let _ = epoll::delete(&ep, &fd);
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
