//! ioselect's `DefaultSelector` as a measured implementation.
#![cfg(target_os = "linux")]

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use ioselect_linux::{DefaultSelector, Events};

use crate::subject::Subject;

/// ioselect's `DefaultSelector` (epoll, level-triggered), capacity and event
/// buffer `C`; each key's data is its index.
pub(crate) struct Ioselect<const C: usize> {
    pub(crate) sel: Box<DefaultSelector<u32, C>>,
    fds: Vec<Rc<OwnedFd>>,
}

impl<const C: usize> Ioselect<C> {
    pub(crate) fn new(fds: Vec<Rc<OwnedFd>>) -> Self {
        let mut sel = Box::new(DefaultSelector::<u32, C>::open().expect("open"));
        for (i, fd) in fds.iter().enumerate() {
            sel.register(fd.as_fd(), Events::READ, i as u32)
                .expect("register");
        }
        Self { sel, fds }
    }
}

impl<const C: usize> Subject for Ioselect<C> {
    fn name(&self) -> &'static str {
        "ioselect"
    }
    fn fds(&self) -> &[Rc<OwnedFd>] {
        &self.fds
    }
    #[inline(always)]
    fn select_one(&mut self) -> (usize, u64) {
        self.sel.select(None).expect("select");
        let (mut n, mut acc) = (0, 0u64);
        while let Some((key, mask)) = self.sel.next_ready() {
            n += 1;
            acc = acc.wrapping_add(u64::from(*key.data()) ^ u64::from(mask.bits()));
        }
        (n, acc)
    }
    fn ready_keys(&mut self, timeout: Duration) -> Vec<u64> {
        self.sel.select(Some(timeout)).expect("select");
        let mut keys = Vec::new();
        while let Some((key, mask)) = self.sel.next_ready() {
            assert_eq!(mask, Events::READ);
            keys.push(u64::from(*key.data()));
        }
        keys.sort_unstable();
        keys
    }
    #[inline(always)]
    fn churn_one(&mut self, fd: BorrowedFd<'_>) {
        self.sel
            .register(fd, Events::READ, u32::MAX)
            .expect("register");
        self.sel.unregister(fd).expect("unregister");
    }
    fn watch(&mut self, fd: BorrowedFd<'_>, on: bool) {
        if on {
            self.sel
                .register(fd, Events::READ, u32::MAX)
                .expect("register");
        } else {
            self.sel.unregister(fd).expect("unregister");
        }
    }
    #[inline(always)]
    fn modify_one(&mut self, fd: BorrowedFd<'_>) {
        self.sel.modify_events(fd, Events::WRITE).expect("modify");
        self.sel.modify_events(fd, Events::READ).expect("modify");
    }
}
