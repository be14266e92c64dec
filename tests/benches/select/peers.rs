//! The peers: mio and polling as measured implementations.
#![cfg(target_os = "linux")]

use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use crate::subject::Subject;

/// mio 1.x (`Poll`, edge-triggered).
pub(crate) struct Mio {
    poll: mio::Poll,
    events: mio::Events,
    fds: Vec<Rc<OwnedFd>>,
}

impl Mio {
    pub(crate) fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
        let poll = mio::Poll::new().expect("mio::Poll");
        for (i, fd) in fds.iter().enumerate() {
            poll.registry()
                .register(
                    &mut mio::unix::SourceFd(&fd.as_raw_fd()),
                    mio::Token(i),
                    mio::Interest::READABLE,
                )
                .expect("register");
        }
        Self {
            poll,
            events: mio::Events::with_capacity(capacity),
            fds,
        }
    }
}

impl Subject for Mio {
    fn name(&self) -> &'static str {
        "mio"
    }
    fn fds(&self) -> &[Rc<OwnedFd>] {
        &self.fds
    }
    #[inline(always)]
    fn select_one(&mut self) -> (usize, u64) {
        self.poll.poll(&mut self.events, None).expect("poll");
        let (mut n, mut acc) = (0, 0u64);
        for ev in self.events.iter() {
            n += 1;
            acc = acc.wrapping_add(ev.token().0 as u64 ^ u64::from(ev.is_readable()));
        }
        (n, acc)
    }
    fn ready_keys(&mut self, timeout: Duration) -> Vec<u64> {
        self.poll
            .poll(&mut self.events, Some(timeout))
            .expect("poll");
        let mut keys: Vec<u64> = self
            .events
            .iter()
            .map(|ev| {
                assert!(ev.is_readable() && !ev.is_writable());
                ev.token().0 as u64
            })
            .collect();
        keys.sort_unstable();
        keys
    }
    #[inline(always)]
    fn churn_one(&mut self, fd: BorrowedFd<'_>) {
        let raw = fd.as_raw_fd();
        let registry = self.poll.registry();
        registry
            .register(
                &mut mio::unix::SourceFd(&raw),
                mio::Token(usize::MAX - 1),
                mio::Interest::READABLE,
            )
            .expect("register");
        registry
            .deregister(&mut mio::unix::SourceFd(&raw))
            .expect("deregister");
    }
    fn watch(&mut self, fd: BorrowedFd<'_>, on: bool) {
        let raw = fd.as_raw_fd();
        let registry = self.poll.registry();
        if on {
            registry
                .register(
                    &mut mio::unix::SourceFd(&raw),
                    mio::Token(usize::MAX - 1),
                    mio::Interest::READABLE,
                )
                .expect("register");
        } else {
            registry
                .deregister(&mut mio::unix::SourceFd(&raw))
                .expect("deregister");
        }
    }
    #[inline(always)]
    fn modify_one(&mut self, fd: BorrowedFd<'_>) {
        let raw = fd.as_raw_fd();
        let registry = self.poll.registry();
        let token = mio::Token(usize::MAX - 1);
        registry
            .reregister(
                &mut mio::unix::SourceFd(&raw),
                token,
                mio::Interest::WRITABLE,
            )
            .expect("reregister");
        registry
            .reregister(
                &mut mio::unix::SourceFd(&raw),
                token,
                mio::Interest::READABLE,
            )
            .expect("reregister");
    }
}

/// polling 3.x in level mode (`PollMode::Level`).
pub(crate) struct Polling {
    poller: polling::Poller,
    events: polling::Events,
    fds: Vec<Rc<OwnedFd>>,
}

impl Polling {
    pub(crate) fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
        let poller = polling::Poller::new().expect("Poller");
        for (i, fd) in fds.iter().enumerate() {
            // SAFETY: every fd stays open as long as it is registered: the
            // poller holds an `Rc` of each in `fds`, and drops `poller` (its
            // epoll fd, which drops all registrations) before `fds` (fields
            // drop in declaration order).
            unsafe {
                poller
                    .add_with_mode(
                        fd.as_raw_fd(),
                        polling::Event::readable(i),
                        polling::PollMode::Level,
                    )
                    .expect("add");
            }
        }
        let capacity = NonZeroUsize::new(capacity).expect("capacity > 0");
        Self {
            poller,
            events: polling::Events::with_capacity(capacity),
            fds,
        }
    }
}

impl Subject for Polling {
    fn name(&self) -> &'static str {
        "polling"
    }
    fn fds(&self) -> &[Rc<OwnedFd>] {
        &self.fds
    }
    #[inline(always)]
    fn select_one(&mut self) -> (usize, u64) {
        self.events.clear();
        self.poller.wait(&mut self.events, None).expect("wait");
        let (mut n, mut acc) = (0, 0u64);
        for ev in self.events.iter() {
            n += 1;
            acc = acc.wrapping_add(ev.key as u64 ^ u64::from(ev.readable));
        }
        (n, acc)
    }
    fn ready_keys(&mut self, timeout: Duration) -> Vec<u64> {
        self.events.clear();
        self.poller
            .wait(&mut self.events, Some(timeout))
            .expect("wait");
        let mut keys: Vec<u64> = self
            .events
            .iter()
            .map(|ev| {
                assert!(ev.readable && !ev.writable);
                ev.key as u64
            })
            .collect();
        keys.sort_unstable();
        keys
    }
    #[inline(always)]
    fn churn_one(&mut self, fd: BorrowedFd<'_>) {
        // SAFETY: the fd is deleted again right below, before the caller can
        // close it.
        unsafe {
            self.poller
                .add_with_mode(
                    fd.as_raw_fd(),
                    polling::Event::readable(usize::MAX - 1),
                    polling::PollMode::Level,
                )
                .expect("add");
        }
        self.poller.delete(fd).expect("delete");
    }
    fn watch(&mut self, fd: BorrowedFd<'_>, on: bool) {
        if on {
            // SAFETY: unregistered again (`on == false`) before the caller
            // closes the fd.
            unsafe {
                self.poller
                    .add_with_mode(
                        fd.as_raw_fd(),
                        polling::Event::readable(usize::MAX - 1),
                        polling::PollMode::Level,
                    )
                    .expect("add");
            }
        } else {
            self.poller.delete(fd).expect("delete");
        }
    }
    #[inline(always)]
    fn modify_one(&mut self, fd: BorrowedFd<'_>) {
        let key = usize::MAX - 1;
        self.poller
            .modify_with_mode(fd, polling::Event::writable(key), polling::PollMode::Level)
            .expect("modify");
        self.poller
            .modify_with_mode(fd, polling::Event::readable(key), polling::PollMode::Level)
            .expect("modify");
    }
}
