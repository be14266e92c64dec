//! The load generator: one thread, level-triggered epoll over the clients.
#![cfg(target_os = "linux")]

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketType, connect, recv, send, socket, sockopt,
};

use crate::server::Server;
use crate::stream::{CHUNK, window};

#[derive(Clone, Copy)]
pub(crate) enum Load {
    /// Ping-pong with messages of this many bytes.
    PingPong(usize),
    /// One stream with at most this many bytes in flight.
    Stream(u64),
}

pub(crate) struct Client {
    fd: OwnedFd,
    salt: usize,
    sent: u64,
    received: u64,
    /// End (stream offset) of the message in flight (ping-pong).
    target: u64,
    started: Instant,
    want_write: bool,
    /// Stream offset the client may send up to (a `Plan::Counted` phase).
    limit: u64,
}

#[derive(Default, Clone)]
pub(crate) struct Run {
    /// Messages (ping-pong) or bytes (stream) completed in the timed window.
    pub(crate) units: u64,
    pub(crate) secs: f64,
    pub(crate) rtt_ns: Vec<u32>,
    pub(crate) server_cpu: Duration,
}

impl Run {
    /// Adds another run's counts and times to this one.
    pub(crate) fn add(&mut self, other: Run) {
        self.units += other.units;
        self.secs += other.secs;
        self.server_cpu += other.server_cpu;
        self.rtt_ns.extend(other.rtt_ns);
    }
}

pub(crate) fn client(addr: SocketAddr, salt: usize) -> Client {
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).expect("socket");
    connect(&fd, &addr).expect("connect");
    sockopt::set_tcp_nodelay(&fd, true).expect("TCP_NODELAY");
    rustix::io::ioctl_fionbio(&fd, true).expect("non-blocking");
    Client {
        fd,
        salt,
        sent: 0,
        received: 0,
        target: 0,
        started: Instant::now(),
        want_write: false,
        limit: u64::MAX,
    }
}

/// Sends what is due; returns false when the socket is full.
pub(crate) fn push(c: &mut Client, pattern: &[u8], limit: u64) -> bool {
    while c.sent < limit {
        let len = (limit - c.sent).min(CHUNK as u64) as usize;
        match send(
            &c.fd,
            window(pattern, c.salt, c.sent, len),
            SendFlags::NOSIGNAL,
        ) {
            Ok(n) => c.sent += n as u64,
            Err(Errno::AGAIN) => return false,
            Err(Errno::INTR) => {}
            Err(e) => panic!("send: {e}"),
        }
    }
    true
}

pub(crate) fn set_write(ep: &OwnedFd, c: &mut Client, i: usize, on: bool) {
    if c.want_write != on {
        let flags = if on {
            EventFlags::IN | EventFlags::OUT
        } else {
            EventFlags::IN
        };
        epoll::modify(ep, &c.fd, EventData::new_u64(i as u64), flags).expect("modify");
        c.want_write = on;
    }
}

/// How long a `drive` goes on.
pub(crate) enum Plan<'a> {
    /// Warm up for `warmup`, then the timed window of `time`.
    Timed { warmup: Duration, time: Duration },
    /// Nothing timed: each connection does `warm` units (messages, or
    /// bytes of a stream) and waits for all of them to come back;
    /// `hook(true)`; each does `count` more, all come back; `hook(false)`.
    /// Between the hooks the server does exactly `conns * count` units.
    Counted {
        warm: u64,
        count: u64,
        hook: &'a mut dyn FnMut(bool),
    },
}

/// Connects `conns` clients to `server` and runs `load` as `plan` says;
/// after a timed window, stops sending and waits for every byte to come
/// back. Every byte is checked against what was sent.
pub(crate) fn drive(
    server: &Server,
    conns: usize,
    load: Load,
    plan: Plan<'_>,
    pattern: &[u8],
) -> Run {
    let (warmup, time, mut counted) = match plan {
        Plan::Timed { warmup, time } => (warmup, time, None),
        Plan::Counted { warm, count, hook } => (
            Duration::ZERO,
            Duration::from_secs(100),
            Some((warm, count, hook, false)),
        ),
    };
    // Bytes of stream per unit.
    let unit = match load {
        Load::PingPong(s) => s as u64,
        Load::Stream(_) => 1,
    };
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).expect("epoll");
    let mut clients: Vec<Client> = (0..conns).map(|i| client(server.addr, i * 977)).collect();
    for (i, c) in clients.iter().enumerate() {
        epoll::add(&ep, &c.fd, EventData::new_u64(i as u64), EventFlags::IN).expect("add");
    }
    let mut run = Run {
        rtt_ns: Vec::with_capacity(1 << 20),
        ..Run::default()
    };
    let mut buf = vec![0u8; CHUNK];
    let empty = epoll::Event {
        flags: EventFlags::empty(),
        data: EventData::new_u64(0),
    };
    let mut events = vec![empty; 1024];
    let begin = Instant::now();
    let (mut timed_from, mut timed_to) = (None::<(Instant, Duration)>, None::<(Instant, Duration)>);
    let mut stopping = false;
    // Start: every client sends its first message (or fills its window).
    for (i, c) in clients.iter_mut().enumerate() {
        if let Some((warm, ..)) = counted {
            c.limit = warm * unit;
        }
        c.target = match load {
            Load::PingPong(s) => s as u64,
            Load::Stream(w) => w.min(c.limit),
        };
        c.started = Instant::now();
        let done = push(c, pattern, c.target);
        set_write(&ep, c, i, !done);
    }
    loop {
        let now = Instant::now();
        if let Some((_, count, hook, second)) = counted.as_mut()
            && clients
                .iter()
                .all(|c| c.received == c.sent && c.sent == c.target && c.target == c.limit)
        {
            if *second {
                hook(false);
                return run;
            }
            hook(true);
            *second = true;
            for (i, c) in clients.iter_mut().enumerate() {
                c.limit += *count * unit;
                c.target = match load {
                    Load::PingPong(s) => c.sent + s as u64,
                    Load::Stream(w) => (c.sent + w).min(c.limit),
                };
                c.started = Instant::now();
                let done = push(c, pattern, c.target);
                set_write(&ep, c, i, !done);
            }
            continue;
        }
        if counted.is_none() && timed_from.is_none() && now >= begin + warmup {
            run.units = 0;
            run.rtt_ns.clear();
            timed_from = Some((now, server.cpu()));
        }
        if let Some((t0, _)) = timed_from
            && timed_to.is_none()
            && now >= t0 + time
        {
            timed_to = Some((now, server.cpu()));
            stopping = true;
            // Stop the streams where they are.
            if let Load::Stream(_) = load {
                for (i, c) in clients.iter_mut().enumerate() {
                    c.target = c.sent;
                    set_write(&ep, c, i, false);
                }
            }
        }
        if stopping
            && clients
                .iter()
                .all(|c| c.received == c.sent && c.sent == c.target)
        {
            break;
        }
        assert!(
            now < begin + warmup + time + Duration::from_secs(20),
            "{}: echoes stopped coming back",
            server.name
        );
        let n = match epoll::wait(
            &ep,
            &mut events[..],
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            }),
        ) {
            Ok(n) => n,
            Err(Errno::INTR) => continue,
            Err(e) => panic!("epoll_wait: {e}"),
        };
        let counting = timed_from.is_some() && timed_to.is_none();
        for e in &events[..n] {
            let (flags, i) = (e.flags, e.data.u64() as usize);
            let c = &mut clients[i];
            if flags.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR) {
                loop {
                    let room = (c.sent - c.received).min(CHUNK as u64) as usize;
                    if room == 0 {
                        break;
                    }
                    match recv(&c.fd, &mut buf[..room], RecvFlags::empty()) {
                        Ok((0, _)) => {
                            panic!("{}: connection closed by the server", server.name)
                        }
                        Ok((got, _)) => {
                            let want = window(pattern, c.salt, c.received, got);
                            if buf[..got] != *want {
                                let at = (0..got).find(|&k| buf[k] != want[k]).unwrap_or(0);
                                panic!(
                                    "{}: wrong bytes echoed at offset {} of connection {i} ({got} bytes received, first wrong at +{at})",
                                    server.name, c.received
                                );
                            }
                            c.received += got as u64;
                            if let Load::Stream(_) = load
                                && counting
                            {
                                run.units += got as u64;
                            }
                        }
                        Err(Errno::AGAIN) => break,
                        Err(Errno::INTR) => {}
                        Err(e) => panic!("{}: recv: {e}", server.name),
                    }
                }
                match load {
                    Load::PingPong(s) => {
                        if c.received == c.target {
                            if counting {
                                run.units += 1;
                                let rtt = c.started.elapsed().as_nanos();
                                run.rtt_ns.push(rtt.min(u128::from(u32::MAX)) as u32);
                            }
                            if !stopping && c.target < c.limit {
                                c.target += s as u64;
                                c.started = Instant::now();
                                let done = push(c, pattern, c.target);
                                set_write(&ep, c, i, !done);
                            }
                        }
                    }
                    Load::Stream(w) => {
                        if !stopping {
                            c.target = (c.received + w).min(c.limit);
                            let done = push(c, pattern, c.target);
                            set_write(&ep, c, i, !done);
                        }
                    }
                }
            }
            if flags.contains(EventFlags::OUT) && c.sent < c.target {
                let done = push(c, pattern, c.target);
                set_write(&ep, c, i, !done);
            } else if flags.contains(EventFlags::OUT) {
                set_write(&ep, c, i, false);
            }
        }
    }
    let ((t0, cpu0), (t1, cpu1)) = (timed_from.expect("timed"), timed_to.expect("timed"));
    run.secs = (t1 - t0).as_secs_f64();
    run.server_cpu = cpu1.saturating_sub(cpu0);
    run
}
