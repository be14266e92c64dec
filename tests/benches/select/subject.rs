//! The interface every measured implementation offers, and the eventfds
//! they register.
#![cfg(target_os = "linux")]

use std::os::fd::{BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use rustix::event::{EventfdFlags, eventfd};

/// One implementation with its own registered eventfds.
pub(crate) trait Subject {
    fn name(&self) -> &'static str;
    /// Its registered fds, index = key.
    fn fds(&self) -> &[Rc<OwnedFd>];
    /// One select with no timeout, walking the events: (count, checksum).
    /// Every implementation marks it `#[inline(always)]`, so that the
    /// harness adds no call of its own around the library's code (a
    /// function return right after a syscall is expensive on the benchmark
    /// VM: see the os-linux `Epoll::wait_deadline` note).
    fn select_one(&mut self) -> (usize, u64);
    /// One select with `timeout`; the keys it reported, sorted.
    fn ready_keys(&mut self, timeout: Duration) -> Vec<u64>;
    /// Registers `fd` (not otherwise registered) for reading, then
    /// unregisters it.
    fn churn_one(&mut self, fd: BorrowedFd<'_>);
    /// Registers `fd` for reading (set-up for `modify_one`), or unregisters it.
    fn watch(&mut self, fd: BorrowedFd<'_>, on: bool);
    /// Changes the interest of the watched `fd` to writing, then back.
    fn modify_one(&mut self, fd: BorrowedFd<'_>);

    /// `iters` selects, each checked to report `expect` events.
    fn select_batch(&mut self, iters: u64, expect: usize) -> u64 {
        let mut acc = 0u64;
        for _ in 0..iters {
            let (n, sum) = self.select_one();
            assert_eq!(n, expect, "{}: select reported {n} events", self.name());
            acc = acc.wrapping_add(sum);
        }
        acc
    }

    /// `iters` times: one write to each of the `ready` fds, then one select,
    /// checked to report them all.
    fn wake_batch(&mut self, iters: u64, ready: &[usize]) -> u64 {
        let mut acc = 0u64;
        for _ in 0..iters {
            for &i in ready {
                wake(&self.fds()[i]);
            }
            let (n, sum) = self.select_one();
            assert_eq!(
                n,
                ready.len(),
                "{}: select reported {n} events",
                self.name()
            );
            acc = acc.wrapping_add(sum);
        }
        acc
    }

    fn churn_batch(&mut self, iters: u64, fd: BorrowedFd<'_>) {
        for _ in 0..iters {
            self.churn_one(fd);
        }
    }

    fn modify_batch(&mut self, iters: u64, fd: BorrowedFd<'_>) {
        for _ in 0..iters {
            self.modify_one(fd);
        }
    }
}

/// Makes an eventfd readable (or, if it is, signals a new edge).
#[inline]
pub(crate) fn wake(fd: &OwnedFd) {
    let n = rustix::io::write(fd, &1u64.to_ne_bytes()).expect("eventfd write");
    assert_eq!(n, 8);
}

pub(crate) fn eventfd_rc() -> Rc<OwnedFd> {
    Rc::new(eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).expect("eventfd"))
}

pub(crate) fn eventfds(n: usize) -> Vec<Rc<OwnedFd>> {
    (0..n).map(|_| eventfd_rc()).collect()
}

/// The fds of one subject: key `i` is `ready`'s own (or shared) fd when `i`
/// is in `ready`, else the next fd of `pool` (never-ready fds, shared by all
/// subjects: nothing ever writes to them, so sharing them changes no
/// subject's work).
pub(crate) fn fd_set(
    n: usize,
    ready: &[usize],
    own: bool,
    shared_ready: &[Rc<OwnedFd>],
    pool: &[Rc<OwnedFd>],
) -> Vec<Rc<OwnedFd>> {
    let (mut j, mut p) = (0, 0);
    (0..n)
        .map(|i| {
            if ready.get(j) == Some(&i) {
                j += 1;
                if own {
                    eventfd_rc()
                } else {
                    Rc::clone(&shared_ready[j - 1])
                }
            } else {
                p += 1;
                Rc::clone(&pool[p - 1])
            }
        })
        .collect()
}
