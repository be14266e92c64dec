//! Benchmark (issue 5, items 1 and 2): the cost of one `select` and of one
//! register + unregister pair, for ioselect's epoll selector against a
//! hand-written rustix epoll loop (the floor), mio and polling.
//!
//! ```text
//! cargo bench -p ioselect-tests --bench select              # full run, writes tests/bench/results/
//! cargo bench -p ioselect-tests --bench select -- --quick   # smoke: runs and verifies, judges nothing
//! ```
//!
//! Method. Every implementation gets its own `N` eventfds (level-triggered
//! readiness stays while nobody reads, so "K ready" is a steady state), its
//! own epoll instance and an event buffer of `N`. The `K` ready fds are spread
//! over the `N` (every `N/K`-th). One *batch* times `iters` consecutive
//! operations of one implementation; a *round* runs one batch of each
//! implementation in a fresh random order. Batches are timed in thread CPU
//! time, so a batch preempted by another process is not charged for the
//! wait. A second, identical raw epoll loop (`raw epoll #2`, an A/A control)
//! shows how far two equal loops land apart. Reported: the median over rounds of ns per operation, and the median
//! (with the 25th–75th percentile) over rounds of the ratio to the floor
//! *measured in the same round*, so slow drifts of a shared machine cancel.
//! Every select's event count is checked against `K` inside the timed loop,
//! and before timing each implementation's ready set is compared with the
//! expected one, key by key.
//!
//! Three tables:
//! - **A: steady readiness.** One select returning the K level-triggered
//!   events, and a walk of them reading each key's data and mask. mio is
//!   edge-triggered only: a never-read fd is reported once, so it has no
//!   figure here.
//! - **B: wake + select.** Write to each of the K eventfds (a new edge), then
//!   one select returning the K events. Every implementation pays the same
//!   writes, so mio can be compared with the others and with a raw
//!   edge-triggered epoll loop, its own floor.
//! - **C: churn.** Register and unregister one fd, with 0 or 1024 other fds
//!   registered.
#![allow(missing_docs)]

// Linux only (epoll, /proc); elsewhere this target builds to a no-op.
#[cfg(target_os = "linux")]
mod imp {
    use std::fmt::Write as _;
    use std::hint::black_box;
    use std::num::NonZeroUsize;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::path::{Path, PathBuf};
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    use ioselect_linux::{DefaultSelector, Events};
    use rustix::event::epoll::{self, EventData, EventFlags};
    use rustix::event::{EventfdFlags, eventfd};

    // ---------------------------------------------------------------------------
    // The implementations.

    /// One implementation with its own registered eventfds.
    trait Subject {
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
    fn wake(fd: &OwnedFd) {
        let n = rustix::io::write(fd, &1u64.to_ne_bytes()).expect("eventfd write");
        assert_eq!(n, 8);
    }

    fn eventfd_rc() -> Rc<OwnedFd> {
        Rc::new(eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).expect("eventfd"))
    }

    fn eventfds(n: usize) -> Vec<Rc<OwnedFd>> {
        (0..n).map(|_| eventfd_rc()).collect()
    }

    /// The fds of one subject: key `i` is `ready`'s own (or shared) fd when `i`
    /// is in `ready`, else the next fd of `pool` (never-ready fds, shared by all
    /// subjects: nothing ever writes to them, so sharing them changes no
    /// subject's work).
    fn fd_set(
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

    /// ioselect's `DefaultSelector` (epoll, level-triggered), capacity and event
    /// buffer `C`; each key's data is its index.
    struct Ioselect<const C: usize> {
        sel: Box<DefaultSelector<u32, C>>,
        fds: Vec<Rc<OwnedFd>>,
    }

    impl<const C: usize> Ioselect<C> {
        fn new(fds: Vec<Rc<OwnedFd>>) -> Self {
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

    /// The floor: `epoll_wait` into a buffer of `capacity` events and a walk over
    /// them, nothing else. `ET`: edge-triggered registrations (mio's floor).
    struct Raw<const ET: bool> {
        /// The A/A control copy (its name differs).
        control: bool,
        ep: OwnedFd,
        buf: Vec<epoll::Event>,
        fds: Vec<Rc<OwnedFd>>,
    }

    impl<const ET: bool> Raw<ET> {
        fn flags() -> EventFlags {
            if ET {
                EventFlags::IN | EventFlags::ET
            } else {
                EventFlags::IN
            }
        }
        fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
            let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll_create");
            for (i, fd) in fds.iter().enumerate() {
                epoll::add(&ep, fd, EventData::new_u64(i as u64), Self::flags())
                    .expect("epoll_ctl");
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
        fn wait(&mut self, timeout: Option<&rustix::time::Timespec>) -> usize {
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

    /// mio 1.x (`Poll`, edge-triggered).
    struct Mio {
        poll: mio::Poll,
        events: mio::Events,
        fds: Vec<Rc<OwnedFd>>,
    }

    impl Mio {
        fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
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
    struct Polling {
        poller: polling::Poller,
        events: polling::Events,
        fds: Vec<Rc<OwnedFd>>,
    }

    impl Polling {
        fn new(fds: Vec<Rc<OwnedFd>>, capacity: usize) -> Self {
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

    // ---------------------------------------------------------------------------
    // Timing.

    struct Opts {
        quick: bool,
        rounds: usize,
        batch: Duration,
        out: Option<PathBuf>,
    }

    /// One measured row: per implementation, ns/op of each round.
    struct Row {
        label: String,
        names: Vec<&'static str>,
        /// `ns[impl][round]`.
        ns: Vec<Vec<f64>>,
    }

    fn median(v: &[f64]) -> f64 {
        quantile(v, 0.5)
    }

    fn quantile(v: &[f64], q: f64) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        let pos = q * (s.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
    }

    impl Row {
        fn median_ns(&self, i: usize) -> f64 {
            median(&self.ns[i])
        }
        /// Per-round ratios of implementation `i` to `floor`: (p25, median, p75).
        fn ratio(&self, i: usize, floor: usize) -> (f64, f64, f64) {
            let r: Vec<f64> = self.ns[i]
                .iter()
                .zip(&self.ns[floor])
                .map(|(a, b)| a / b)
                .collect();
            (quantile(&r, 0.25), median(&r), quantile(&r, 0.75))
        }
    }

    /// Interleaved rounds of `op(subject, iters)` over all subjects; `iters` is
    /// calibrated on the first subject so that its batch takes `opts.batch`.
    fn measure(
        label: String,
        subjects: &mut [&mut dyn Subject],
        opts: &Opts,
        op: &dyn Fn(&mut dyn Subject, u64),
    ) -> Row {
        // Warm up every subject, then calibrate on the first.
        for s in subjects.iter_mut() {
            op(&mut **s, 3);
        }
        let mut iters = 1u64;
        loop {
            let t = cpu_now();
            op(&mut *subjects[0], iters);
            let dt = cpu_now() - t;
            if dt >= opts.batch / 4 || iters >= 1 << 30 {
                let per = dt.as_secs_f64() / iters as f64;
                iters = ((opts.batch.as_secs_f64() / per) as u64).max(1);
                break;
            }
            iters *= 2;
        }
        let m = subjects.len();
        let mut ns = vec![Vec::with_capacity(opts.rounds); m];
        // A fresh random order every round (xorshift, fixed seed): no subject
        // always follows the same one, so after-effects of one subject's batch on
        // the next (caches, the kernel's state) fall on all of them alike.
        let mut order: Vec<usize> = (0..m).collect();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..opts.rounds {
            for j in (1..m).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(j, (seed % (j as u64 + 1)) as usize);
            }
            for &i in &order {
                let t = cpu_now();
                op(&mut *subjects[i], iters);
                let dt = cpu_now() - t;
                ns[i].push(dt.as_secs_f64() * 1e9 / iters as f64);
            }
        }
        let row = Row {
            label,
            names: subjects.iter().map(|s| s.name()).collect(),
            ns,
        };
        eprint!("  {:<28}", row.label);
        for (i, name) in row.names.iter().enumerate() {
            eprint!(" {name} {:.0} ns", row.median_ns(i));
        }
        eprintln!("  ({iters} ops/batch)");
        if std::env::var_os("BENCH_DUMP").is_some() {
            for (i, name) in row.names.iter().enumerate() {
                let v: Vec<String> = row.ns[i].iter().map(|x| format!("{x:.0}")).collect();
                eprintln!("    {name:>14}: {}", v.join(" "));
            }
        }
        row
    }

    /// This thread's CPU time (user + system): a batch that is preempted by
    /// another process on this shared machine does not count the time it waited.
    /// Everything timed here is on-CPU work (a select with K >= 1 ready fds does
    /// not block).
    fn cpu_now() -> Duration {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    }

    /// `K` indices spread evenly over `0..n`.
    fn spread(n: usize, k: usize) -> Vec<usize> {
        (0..k).map(|i| i * n / k).collect()
    }

    fn want(ready: &[usize]) -> Vec<u64> {
        ready.iter().map(|&i| i as u64).collect()
    }

    fn check_ready(s: &mut dyn Subject, ready: &[usize]) {
        let got = s.ready_keys(Duration::from_secs(1));
        assert_eq!(got, want(ready), "{}: wrong ready set", s.name());
    }

    /// The soft limit on open fds.
    fn nofile() -> usize {
        let cur = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        cur.map_or(usize::MAX, |c| c as usize)
    }

    struct Tables {
        steady: Vec<Row>,
        wake: Vec<Row>,
        churn: Vec<Row>,
        modify: Vec<Row>,
    }

    /// Tables A and B for `N` registered fds (capacity and buffer `N`), each
    /// `K` with fresh subjects.
    fn select_rows<const N: usize>(ks: &[usize], opts: &Opts, t: &mut Tables) {
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
                assert!(
                    own && left.is_empty() || !own && (left.is_empty() || left == want(&ready))
                );
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
    fn churn_row<const C: usize>(background: usize, opts: &Opts, t: &mut Tables) {
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
        // Table D: the churned fd registered for reading, then its interest
        // changed to writing and back.
        for s in subjects.iter_mut() {
            s.watch(fd, true);
        }
        t.modify.push(measure(
            format!("D {background} others"),
            &mut subjects,
            opts,
            &|s, it| s.modify_batch(it, fd),
        ));
        for s in subjects.iter_mut() {
            s.watch(fd, false);
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

    // ---------------------------------------------------------------------------
    // Output.

    fn cell(row: &Row, i: usize, floor: usize) -> String {
        let ns = row.median_ns(i);
        if i == floor {
            return format!("{ns:.0}");
        }
        let (lo, mid, hi) = row.ratio(i, floor);
        format!("{ns:.0} ({mid:.2}× [{lo:.2}–{hi:.2}])")
    }

    fn index(row: &Row, name: &str) -> usize {
        row.names.iter().position(|n| *n == name).expect("subject")
    }

    fn split_label(label: &str) -> (String, String) {
        // "A N=64 K=1" → ("64", "1")
        let mut n = String::new();
        let mut k = String::new();
        for part in label.split(' ') {
            if let Some(v) = part.strip_prefix("N=") {
                n = v.to_string();
            } else if let Some(v) = part.strip_prefix("K=") {
                k = v.to_string();
            }
        }
        if label.contains("shared") {
            k.push_str(" (fds shared by the subjects)");
        }
        (n, k)
    }

    fn shell(cmd: &str) -> String {
        std::process::Command::new("sh")
            .args(["-c", cmd])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    }

    fn machine() -> String {
        let cpu = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
        format!(
            "{} CPUs ({}), Linux {}, {}; load average at start: {}",
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu.trim(),
            shell("uname -r"),
            shell("rustc --version"),
            shell("cut -d' ' -f1-3 /proc/loadavg"),
        )
    }

    /// Worst median ratio of `name` to `floor` over `rows`, with its row.
    fn worst(rows: &[Row], name: &str, floor: &str) -> Option<(f64, String)> {
        rows.iter()
            .map(|r| (r.ratio(index(r, name), index(r, floor)).1, r.label.clone()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    }

    fn markdown(t: &Tables, opts: &Opts, date: &str) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "## Select cost and registration churn\n");
        let _ = writeln!(
            md,
            "Measured {date} on {}. `cargo bench -p ioselect-tests --bench select`; {} interleaved rounds of ~{} ms batches per row. \
         Cells: median ns per operation over the rounds, then (median [p25–p75]) over the rounds of the ratio to the floor timed in the same round. \
         Each subject has its own eventfds, epoll instance and an event buffer of N.\n",
            machine(),
            opts.rounds,
            opts.batch.as_millis()
        );
        let _ = writeln!(
            md,
            "### A. One select returning K level-triggered events (N registered, K ready and never read)\n"
        );
        let _ = writeln!(
            md,
            "| N | K | raw epoll (floor), ns | ioselect | polling (level) | raw epoll #2 (A/A control) |"
        );
        let _ = writeln!(md, "|--:|--:|--:|--:|--:|--:|");
        for r in &t.steady {
            let (n, k) = split_label(&r.label);
            let f = index(r, "raw epoll");
            let _ = writeln!(
                md,
                "| {n} | {k} | {} | {} | {} | {} |",
                cell(r, f, f),
                cell(r, index(r, "ioselect"), f),
                cell(r, index(r, "polling"), f),
                cell(r, index(r, "raw epoll #2"), f)
            );
        }
        let _ = writeln!(
            md,
            "\nmio has no row here: it is edge-triggered only, so an fd that stays ready is reported once; see B.\n"
        );
        let _ = writeln!(
            md,
            "### B. K eventfd writes (new edges), then one select returning the K events\n"
        );
        let _ = writeln!(
            md,
            "| N | K | raw epoll (floor), ns | raw epoll ET (mio's floor), ns | ioselect | polling (level) | mio (ratio to raw ET) | raw epoll #2 (A/A control) |"
        );
        let _ = writeln!(md, "|--:|--:|--:|--:|--:|--:|--:|--:|");
        for r in &t.wake {
            let (n, k) = split_label(&r.label);
            let f = index(r, "raw epoll");
            let fe = index(r, "raw epoll ET");
            let _ = writeln!(
                md,
                "| {n} | {k} | {} | {} | {} | {} | {} | {} |",
                cell(r, f, f),
                cell(r, fe, f),
                cell(r, index(r, "ioselect"), f),
                cell(r, index(r, "polling"), f),
                cell(r, index(r, "mio"), fe),
                cell(r, index(r, "raw epoll #2"), f)
            );
        }
        let _ = writeln!(
            md,
            "\n### C. Registration churn: register + unregister of one fd (ns per pair)\n"
        );
        let _ = writeln!(
            md,
            "| others registered | raw epoll (floor), ns | ioselect | mio | polling (level) |"
        );
        let _ = writeln!(md, "|--:|--:|--:|--:|--:|");
        for r in &t.churn {
            let f = index(r, "raw epoll");
            let bg = r.label.split(' ').nth(1).unwrap_or("?");
            let _ = writeln!(
                md,
                "| {bg} | {} | {} | {} | {} |",
                cell(r, f, f),
                cell(r, index(r, "ioselect"), f),
                cell(r, index(r, "mio"), f),
                cell(r, index(r, "polling"), f)
            );
        }
        let _ = writeln!(
            md,
            "\n### D. Interest change: modify one fd from READ to WRITE and back (ns per pair)\n"
        );
        let _ = writeln!(
            md,
            "| others registered | raw epoll (floor), ns | ioselect | mio | polling (level) |"
        );
        let _ = writeln!(md, "|--:|--:|--:|--:|--:|");
        for r in &t.modify {
            let f = index(r, "raw epoll");
            let bg = r.label.split(' ').nth(1).unwrap_or("?");
            let _ = writeln!(
                md,
                "| {bg} | {} | {} | {} | {} |",
                cell(r, f, f),
                cell(r, index(r, "ioselect"), f),
                cell(r, index(r, "mio"), f),
                cell(r, index(r, "polling"), f)
            );
        }
        let _ = writeln!(
            md,
            "\n### Size of the selector (`size_of`, bytes: all of its memory, no heap)\n"
        );
        let _ = writeln!(md, "| type | bytes |\n|---|--:|");
        for (name, bytes) in [
            (
                "DefaultSelector<u32, 16>",
                size_of::<DefaultSelector<u32, 16>>(),
            ),
            (
                "DefaultSelector<u32, 64>",
                size_of::<DefaultSelector<u32, 64>>(),
            ),
            (
                "DefaultSelector<u32, 1024>",
                size_of::<DefaultSelector<u32, 1024>>(),
            ),
            (
                "DefaultSelector<u32, 4096> (echod's)",
                size_of::<DefaultSelector<u32, 4096>>(),
            ),
            (
                "DefaultSelector<(), 64>",
                size_of::<DefaultSelector<(), 64>>(),
            ),
            (
                "DefaultSelector<usize, 64>",
                size_of::<DefaultSelector<usize, 64>>(),
            ),
            (
                "DefaultSelector<[u8; 32], 64>",
                size_of::<DefaultSelector<[u8; 32], 64>>(),
            ),
        ] {
            let _ = writeln!(md, "| `{name}` | {bytes} |");
        }
        let _ = writeln!(
            md,
            "\n### Targets (issue 5), judged on the median paired ratios above\n"
        );
        let mut target = |what: &str, rows: &[Row], name: &str, floor: &str, bound: f64| {
            if let Some((w, at)) = worst(rows, name, floor) {
                let verdict = if w <= bound { "met" } else { "**missed**" };
                let _ = writeln!(
                    md,
                    "- {what}: worst {name}/{floor} = {w:.3} at {at} (bound {bound:.2}): {verdict}"
                );
            }
        };
        target(
            "select, steady (A), within 5% of the floor",
            &t.steady,
            "ioselect",
            "raw epoll",
            1.05,
        );
        target(
            "select, wake (B), within 5% of the floor",
            &t.wake,
            "ioselect",
            "raw epoll",
            1.05,
        );
        target(
            "churn (C), within 10% of the floor",
            &t.churn,
            "ioselect",
            "raw epoll",
            1.10,
        );
        for (what, rows) in [("A", &t.steady), ("B", &t.wake)] {
            if let Some((w, at)) = worst(rows, "ioselect", "polling") {
                let _ = writeln!(
                    md,
                    "- select ({what}) below polling's at every (N, K): worst ioselect/polling = {w:.3} at {at}: {}",
                    if w < 1.0 { "met" } else { "**missed**" }
                );
            }
        }
        if let Some((w, at)) = worst(&t.wake, "ioselect", "mio") {
            let _ = writeln!(
                md,
                "- select (B) within 5% of mio's: worst ioselect/mio = {w:.3} at {at}: {}",
                if w <= 1.05 { "met" } else { "**missed**" }
            );
        }
        md
    }

    /// A horizontal bar chart of the median ratios to the floor, by hand.
    fn svg(t: &Tables) -> String {
        struct Group<'a> {
            title: String,
            bars: Vec<(&'a str, f64, f64)>,
        }
        let colors = |name: &str| match name {
            "ioselect" => "#1f77b4",
            "raw epoll ET" => "#7f7f7f",
            "mio" => "#2ca02c",
            "polling" => "#d62728",
            _ => "#000000",
        };
        let mut groups = Vec::new();
        let mut add = |prefix: &str, rows: &[Row], pairs: &[(&'static str, &'static str)]| {
            for r in rows {
                let bars = pairs
                    .iter()
                    .map(|&(name, floor)| {
                        let i = index(r, name);
                        (name, r.ratio(i, index(r, floor)).1, r.median_ns(i))
                    })
                    .collect();
                let label = r.label.split_once(' ').map_or(r.label.as_str(), |x| x.1);
                groups.push(Group {
                    title: format!("{prefix} {label}"),
                    bars,
                });
            }
        };
        add(
            "A select",
            &t.steady,
            &[("ioselect", "raw epoll"), ("polling", "raw epoll")],
        );
        add(
            "B wake+select",
            &t.wake,
            &[
                ("ioselect", "raw epoll"),
                ("polling", "raw epoll"),
                ("mio", "raw epoll ET"),
            ],
        );
        add(
            "C churn,",
            &t.churn,
            &[
                ("ioselect", "raw epoll"),
                ("mio", "raw epoll"),
                ("polling", "raw epoll"),
            ],
        );
        let max = groups
            .iter()
            .flat_map(|g| g.bars.iter().map(|b| b.1))
            .fold(1.5f64, f64::max);
        let max = (max * 2.0).ceil() / 2.0;
        let (left, width, bar_h) = (240.0, 560.0, 11.0);
        let x = |v: f64| left + v / max * width;
        let height: f64 = groups
            .iter()
            .map(|g| g.bars.len() as f64 * bar_h + 10.0)
            .sum::<f64>()
            + 90.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="10">"#,
            w = left + width + 120.0
        );
        let _ = writeln!(
            s,
            r#"<text x="10" y="16" font-size="13">Cost relative to the floor measured in the same round (1.0 = raw epoll; mio in B: raw edge-triggered epoll)</text>"#
        );
        let top = 40.0;
        for v in (0..=(max * 2.0) as usize).map(|i| i as f64 / 2.0) {
            let _ = writeln!(
                s,
                r##"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="#ddd"/><text x="{0}" y="{2}" text-anchor="middle">{v:.1}×</text>"##,
                x(v),
                height - 40.0,
                height - 28.0
            );
        }
        for (v, c) in [(1.0, "#000"), (1.05, "#999")] {
            let _ = writeln!(
                s,
                r#"<line x1="{0}" x2="{0}" y1="{top}" y2="{1}" stroke="{c}" stroke-dasharray="3,2"/>"#,
                x(v),
                height - 40.0
            );
        }
        let mut y = top;
        for g in &groups {
            let _ = writeln!(
                s,
                r#"<text x="{0}" y="{1}" text-anchor="end">{2}</text>"#,
                left - 6.0,
                y + bar_h,
                g.title
            );
            for &(name, ratio, ns) in &g.bars {
                let _ = writeln!(
                    s,
                    r#"<rect x="{left}" y="{y}" width="{0:.1}" height="{1}" fill="{2}"/><text x="{3:.1}" y="{4}">{ratio:.2}× ({ns:.0} ns)</text>"#,
                    x(ratio) - left,
                    bar_h - 2.0,
                    colors(name),
                    x(ratio) + 4.0,
                    y + bar_h - 3.0
                );
                y += bar_h;
            }
            y += 10.0;
        }
        let mut lx = left;
        for name in ["ioselect", "polling", "mio"] {
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{0}" width="10" height="10" fill="{1}"/><text x="{2}" y="{3}">{name}</text>"#,
                height - 16.0,
                colors(name),
                lx + 14.0,
                height - 7.0
            );
            lx += 90.0;
        }
        let _ = writeln!(s, "</svg>");
        s
    }

    fn raise_nofile(want: u64) {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let cur = getrlimit(Resource::Nofile);
        let hard = cur.maximum.unwrap_or(u64::MAX);
        let target = if hard >= want { want } else { hard };
        let new = rustix::process::Rlimit {
            current: Some(target.max(cur.current.unwrap_or(0))),
            maximum: cur.maximum.map(|m| m.max(want)),
        };
        // Raising the hard limit needs privilege; fall back to the soft limit.
        if setrlimit(Resource::Nofile, new).is_err() {
            let _ = setrlimit(
                Resource::Nofile,
                rustix::process::Rlimit {
                    current: Some(target),
                    maximum: cur.maximum,
                },
            );
        }
    }

    /// `--profile SUBJECT OP OPS`: `OPS` operations of one subject, untimed and
    /// with no timeouts (rustix's vDSO lookup does not run under valgrind), for
    /// `valgrind --tool=callgrind`. The difference of the instruction counts of
    /// two runs with different `OPS`, divided by the difference of `OPS`, is the
    /// user-space instructions per operation, free of start-up and of noise.
    /// SUBJECT: `raw`, `ioselect`, `mio`, `polling`; OP: `select` (N = K = 1,
    /// level-triggered; not for mio), `wake` (one write + select, N = K = 1),
    /// `churn` (register + unregister).
    fn profile(mut args: impl Iterator<Item = String>) {
        let subject = args.next().expect("--profile SUBJECT OP OPS");
        let op = args.next().expect("--profile SUBJECT OP OPS");
        let ops: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .expect("--profile SUBJECT OP OPS");
        // Capacity 2: one fd to select, room for the churned one.
        let mut s: Box<dyn Subject> = match subject.as_str() {
            "raw" => Box::new(Raw::<false>::new(eventfds(1), 2)),
            "ioselect" => Box::new(Ioselect::<2>::new(eventfds(1))),
            "mio" => Box::new(Mio::new(eventfds(1), 2)),
            "polling" => Box::new(Polling::new(eventfds(1), 2)),
            other => panic!("unknown subject {other}"),
        };
        let churned = eventfd_rc();
        match op.as_str() {
            "select" => {
                wake(&s.fds()[0]);
                black_box(s.select_batch(ops, 1));
            }
            "wake" => {
                black_box(s.wake_batch(ops, &[0]));
            }
            "churn" => s.churn_batch(ops, churned.as_fd()),
            other => panic!("unknown op {other}"),
        }
    }

    pub(super) fn main() {
        let mut opts = Opts {
            quick: false,
            rounds: 31,
            batch: Duration::from_millis(5),
            out: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/results")),
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => {
                    opts.quick = true;
                    opts.rounds = 3;
                    opts.batch = Duration::from_micros(300);
                    opts.out = None;
                }
                "--rounds" => {
                    opts.rounds = args
                        .next()
                        .and_then(|v| v.parse().ok())
                        .expect("--rounds N")
                }
                "--batch-ms" => {
                    opts.batch = Duration::from_millis(
                        args.next()
                            .and_then(|v| v.parse().ok())
                            .expect("--batch-ms N"),
                    )
                }
                "--out" => opts.out = args.next().map(PathBuf::from),
                "--no-out" => opts.out = None,
                "--profile" => return profile(args),
                // `cargo bench` passes `--bench`; ignore it and test-name filters.
                _ => {}
            }
        }
        // 5 subjects × 8192 eventfds each.
        raise_nofile(65536);
        let date = shell("date -u '+%Y-%m-%d %H:%M UTC'");
        let started = Instant::now();
        let mut t = Tables {
            steady: Vec::new(),
            wake: Vec::new(),
            churn: Vec::new(),
            modify: Vec::new(),
        };
        eprintln!(
            "select bench ({} rounds, {:?} batches)",
            opts.rounds, opts.batch
        );
        select_rows::<1>(&[1], &opts, &mut t);
        select_rows::<64>(&[1, 64], &opts, &mut t);
        if !opts.quick {
            select_rows::<1024>(&[1, 64, 1024], &opts, &mut t);
            select_rows::<8192>(&[1, 64, 8192], &opts, &mut t);
        }
        churn_row::<2048>(0, &opts, &mut t);
        churn_row::<2048>(if opts.quick { 64 } else { 1024 }, &opts, &mut t);
        let md = markdown(&t, &opts, &date);
        println!("{md}");
        eprintln!("select bench took {:.1} s", started.elapsed().as_secs_f64());
        if opts.quick {
            println!(
                "quick mode: harness ran and every check passed; the figures above judge nothing"
            );
        }
        if let Some(dir) = &opts.out {
            std::fs::create_dir_all(dir).expect("results dir");
            std::fs::write(dir.join("select.md"), &md).expect("write select.md");
            std::fs::write(dir.join("select.svg"), svg(&t)).expect("write select.svg");
            eprintln!("wrote {}/select.{{md,svg}}", dir.display());
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
