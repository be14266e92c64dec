//! The floor: a hand-written rustix epoll loop, level- or edge-triggered
//! (and its A/A control copy).
#![cfg(target_os = "linux")]

use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use rustix::event::epoll::{self, EventData, EventFlags};

use crate::subject::Subject;

/// The floor: `epoll_wait` into a buffer of `capacity` events and a walk over
/// them, nothing else. `ET`: edge-triggered registrations (mio's floor).
pub(crate) struct Raw<const ET: bool> {
    /// The A/A control copy (its name differs).
    pub(crate) control: bool,
    ep: OwnedFd,
    buf: Vec<epoll::Event>,
    fds: Vec<Rc<OwnedFd>>,
}

impl<const ET: bool> Raw<ET> {
    pub(crate) fn flags() -> EventFlags {
        if ET {
            EventFlags::IN | EventFlags::ET
        } else {
            EventFlags::IN
        }
    }
    pub(crate) fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
        let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
        for (i, fd) in fds.iter().enumerate() {
            epoll::add(&ep, fd, EventData::new_u64(i as u64), Self::flags()).expect("epoll_ctl");
        }
        let empty = epoll::Event {
            flags: EventFlags::empty(),
            data: EventData::new_u64(0),
        };
        Self {
            control: false,
            ep,
            buf: vec![empty; capacity],
            fds,
        }
    }
    #[inline]
    pub(crate) fn wait(&mut self, timeout: Option<&rustix::time::Timespec>) -> usize {
        loop {
            match epoll::wait(&self.ep, &mut self.buf[..], timeout) {
                Ok(n) => return n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("epoll_wait: {e}"),
            }
        }
    }
}

impl<const ET: bool> Subject for Raw<ET> {
    fn name(&self) -> &'static str {
        match (ET, self.control) {
            (true, _) => "raw epoll ET",
            (false, false) => "raw epoll",
            (false, true) => "raw epoll #2",
        }
    }
    fn fds(&self) -> &[Rc<OwnedFd>] {
        &self.fds
    }
    #[inline(always)]
    fn select_one(&mut self) -> (usize, u64) {
        let n = self.wait(None);
        let mut acc = 0u64;
        for e in &self.buf[..n] {
            let (flags, data) = (e.flags, e.data);
            acc = acc.wrapping_add(data.u64() ^ u64::from(flags.bits()));
        }
        (n, acc)
    }
    fn ready_keys(&mut self, timeout: Duration) -> Vec<u64> {
        let ts = rustix::time::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let n = self.wait(Some(&ts));
        let mut keys: Vec<u64> = self.buf[..n]
            .iter()
            .map(|e| {
                let (flags, data) = (e.flags, e.data);
                assert_eq!(flags, EventFlags::IN);
                data.u64()
            })
            .collect();
        keys.sort_unstable();
        keys
    }
    #[inline(always)]
    fn churn_one(&mut self, fd: BorrowedFd<'_>) {
        epoll::add(&self.ep, fd, EventData::new_u64(u64::MAX), Self::flags()).expect("add");
        epoll::delete(&self.ep, fd).expect("delete");
    }
    fn watch(&mut self, fd: BorrowedFd<'_>, on: bool) {
        if on {
            epoll::add(&self.ep, fd, EventData::new_u64(u64::MAX), Self::flags()).expect("add");
        } else {
            epoll::delete(&self.ep, fd).expect("delete");
        }
    }
    #[inline(always)]
    fn modify_one(&mut self, fd: BorrowedFd<'_>) {
        let data = EventData::new_u64(u64::MAX);
        let et = Self::flags() - EventFlags::IN;
        epoll::modify(&self.ep, fd, data, EventFlags::OUT | et).expect("modify");
        epoll::modify(&self.ep, fd, data, EventFlags::IN | et).expect("modify");
    }
}
