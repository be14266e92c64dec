//! The workloads: tables A and B (select, wake + select) and C (churn,
//! modify), each row checked before it is timed.
#![cfg(target_os = "linux")]

use std::hint::black_box;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use crate::floor::Raw;
use crate::ioselect::Ioselect;
use crate::peers::{Mio, Polling};
use crate::subject::{Subject, eventfd_rc, eventfds, fd_set, wake};
use crate::timing::{Opts, Row, measure};

/// `K` indices spread evenly over `0..n`.
pub(crate) fn spread(n: usize, k: usize) -> Vec<usize> {
    (0..k).map(|i| i * n / k).collect()
}

pub(crate) fn want(ready: &[usize]) -> Vec<u64> {
    ready.iter().map(|&i| i as u64).collect()
}

pub(crate) fn check_ready(s: &mut dyn Subject, ready: &[usize]) {
    let got = s.ready_keys(Duration::from_secs(1));
    assert_eq!(got, want(ready), "{}: wrong ready set", s.name());
}

/// The soft limit on open fds.
pub(crate) fn nofile() -> usize {
    let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cur.map_or(usize::MAX, |c| c as usize)
}

pub(crate) struct Tables {
    pub(crate) steady: Vec<Row>,
    pub(crate) wake: Vec<Row>,
    pub(crate) churn: Vec<Row>,
    pub(crate) modify: Vec<Row>,
}

/// Tables A and B for `N` registered fds (capacity and buffer `N`), each
/// `K` with fresh subjects.
pub(crate) fn select_rows<const N: usize>(ks: &[usize], opts: &Opts, t: &mut Tables) {
    for &k in ks {
        let ready = spread(N, k);
        // Each subject's K ready fds are its own when the fd limit allows,
        // else (N = K = 8192 under a 20000 limit) shared too, and the row
        // says so: then a write in B wakes all five epoll instances.
        let own = 6 * k + (N - k) + 100 <= nofile();
        let pool = eventfds(N - k);
        let shared = if own { Vec::new() } else { eventfds(k) };
        let set = || fd_set(N, &ready, own, &shared, &pool);
        let mut raw = Raw::<false>::new(set(), N);
        let mut raw_et = Raw::<true>::new(set(), N);
        let mut io = Ioselect::<N>::new(set());
        let mut mio = Mio::new(set(), N);
        let mut pl = Polling::new(set(), N);
        // An A/A control: a second floor, created last. Its ratio to the
        // first shows what placement and order alone do to these figures.
        let mut raw2 = Raw::<false>::new(set(), N);
        raw2.control = true;
        // Registered while not ready, so the writes are edges for the
        // edge-triggered subjects too: every subject reports exactly them.
        for s in [
            &mut raw as &mut dyn Subject,
            &mut raw_et,
            &mut io,
            &mut mio,
            &mut pl,
            &mut raw2,
        ] {
            for &i in &ready {
                wake(&s.fds()[i]);
            }
            check_ready(s, &ready);
        }
        let label = format!("N={N} K={k}{}", if own { "" } else { " shared" });
        let mut subjects: [&mut dyn Subject; 4] = [&mut raw, &mut io, &mut pl, &mut raw2];
        t.steady.push(measure(
            format!("A {label}"),
            &mut subjects,
            opts,
            &|s, it| {
                black_box(s.select_batch(it, k));
            },
        ));
        // Table B: the edge-triggered subjects have reported their edges
        // above and see nothing new until the next write.
        // (With shared fds, the other subjects' writes were edges too:
        // drain those first.)
        for s in [&mut raw_et as &mut dyn Subject, &mut mio] {
            let left = s.ready_keys(Duration::ZERO);
            assert!(own && left.is_empty() || !own && (left.is_empty() || left == want(&ready)));
            assert_eq!(
                s.ready_keys(Duration::ZERO),
                [],
                "{}: edge repeated",
                s.name()
            );
        }
        for s in [
            &mut raw as &mut dyn Subject,
            &mut raw_et,
            &mut io,
            &mut mio,
            &mut pl,
            &mut raw2,
        ] {
            for &i in &ready {
                wake(&s.fds()[i]);
            }
            check_ready(s, &ready);
        }
        let mut subjects: [&mut dyn Subject; 6] =
            [&mut raw, &mut raw_et, &mut io, &mut mio, &mut pl, &mut raw2];
        t.wake.push(measure(
            format!("B {label}"),
            &mut subjects,
            opts,
            &|s, it| {
                black_box(s.wake_batch(it, &ready));
            },
        ));
    }
}

/// Table C with `background` other fds registered (never ready), capacity
/// and buffer `C`.
pub(crate) fn churn_row<const C: usize>(background: usize, opts: &Opts, t: &mut Tables) {
    let pool = eventfds(background);
    let mut raw = Raw::<false>::new(pool.clone(), C);
    let mut io = Ioselect::<C>::new(pool.clone());
    let mut mio = Mio::new(pool.clone(), C);
    let mut pl = Polling::new(pool, C);
    let churned = eventfd_rc();
    let fd = churned.as_fd();
    let mut subjects: [&mut dyn Subject; 4] = [&mut raw, &mut io, &mut mio, &mut pl];
    t.churn.push(measure(
        format!("C {background} others"),
        &mut subjects,
        opts,
        &|s, it| s.churn_batch(it, fd),
    ));
    // Table D: an fd registered for reading, then its interest changed to
    // writing and back. Each subject has an fd of its own that no other
    // epoll instance watches: with one fd watched by all four, a subject's
    // modify cost moved with where its watch was registered (the same code
    // measured from 0.76x to 1.3x the floor as the registration order
    // changed), which would time the other subjects, not the subject.
    let own: Vec<(&'static str, Rc<OwnedFd>)> =
        subjects.iter().map(|s| (s.name(), eventfd_rc())).collect();
    for (s, (_, f)) in subjects.iter_mut().zip(&own) {
        s.watch(f.as_fd(), true);
    }
    t.modify.push(measure(
        format!("D {background} others"),
        &mut subjects,
        opts,
        &|s, it| {
            let (_, f) = own
                .iter()
                .find(|(name, _)| *name == s.name())
                .expect("every subject has its own fd");
            s.modify_batch(it, f.as_fd())
        },
    ));
    for (s, (_, f)) in subjects.iter_mut().zip(&own) {
        s.watch(f.as_fd(), false);
    }
    // The churned fd is left registered nowhere: made readable, it is not
    // reported, and ioselect's table forgot it.
    wake(&churned);
    assert!(!io.sel.contains(fd.as_raw_fd()));
    for s in [&mut raw as &mut dyn Subject, &mut io, &mut mio, &mut pl] {
        assert_eq!(
            s.ready_keys(Duration::ZERO),
            [],
            "{}: churned fd still registered",
            s.name()
        );
    }
}
