//! Reliability of `echod` on loopback under load: 10,000 concurrent
//! connections from one selector-driven client, every byte checked.
//! Prints its figures.
//!
//! Every client socket has timeouts and every loop a count and a deadline.
//! The shared helpers are in util/peer.rs and util/fault.rs; the other
//! reliability tests are the other `reliability_*.rs` files (`cargo test -p
//! ioselect-demos --test 'reliability_*'` runs them all). cargo runs test
//! binaries one after another, so their CPU and latency bounds do not
//! measure each other; within a binary, tests take `serial()`'s lock.
//!
//! `IOSELECT_LONG=1` runs the load for more rounds.
#![cfg(target_os = "linux")]

mod util;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use ioselect_demos::platform::{DefaultSelector, Events};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use util::fault::{Echod, fd_count, fill_stream, long, raise_nofile, shutdown_summary, splitmix};
use util::peer::{run_seed, serial};

/// Keys for the load client's selector (more than the connections).
const LOAD_CAP: usize = 16_384;
type LoadSel = DefaultSelector<u32, LOAD_CAP>;

/// One connection of the load client.
struct LoadConn {
    fd: OwnedFd,
    seed: u64,
    /// Bytes to have sent (and had echoed) by the end of this round.
    target: u64,
    sent: u64,
    got: u64,
    connected: bool,
    /// Got the first byte of echo (so the server accepted it).
    answered: bool,
    round_done: bool,
    eof: bool,
    interest: Events,
}

/// Figures of the load run.
#[derive(Debug, Default)]
struct LoadStats {
    held: usize,
    server_fds_held: usize,
    rounds: u32,
    sent: u64,
    verified: u64,
    eofs: usize,
    elapsed: Duration,
}

/// Opens `want` nonblocking connections to `addr`, at most `window` not yet
/// answered at once, and drives them all with one ioselect selector: each
/// round, every connection sends a random-length random payload and checks
/// every byte of its echo (position and value). Connections are all held
/// open until the end, then half-closed, and each must see the server's
/// end of file.
fn load_client(addr: SocketAddr, want: usize, rounds: u32, seed: u64, server: i32) -> LoadStats {
    const WINDOW: usize = 512;
    let limit = Duration::from_secs(if long() { 600 } else { 180 });
    let start = Instant::now();
    let mut sel = Box::new(LoadSel::open().expect("selector"));
    let mut conns: Vec<LoadConn> = Vec::with_capacity(want);
    let mut buf = vec![0u8; 16 * 1024];
    let mut expect = vec![0u8; 16 * 1024];
    let mut stats = LoadStats::default();
    let mut answered = 0usize;
    let mut done = 0usize;
    let payload_len = |i: usize, round: u32, max: u64| {
        splitmix(seed ^ ((i as u64) << 20) ^ u64::from(round)) % max + 1
    };

    // Handles one event of connection `i`; returns true when its round
    // completed now.
    let mut handle = |sel: &mut LoadSel, c: &mut LoadConn, i: usize, mask: Events| -> bool {
        if !c.connected && mask.contains(Events::WRITE) {
            match rustix::net::sockopt::socket_error(&c.fd).expect("SO_ERROR") {
                Ok(()) => c.connected = true,
                Err(e) => panic!("connection {i}: connect failed: {e}"),
            }
        }
        if mask.contains(Events::READ) {
            loop {
                match rustix::net::recv(&c.fd, &mut buf, RecvFlags::empty()) {
                    Ok((0, _)) => {
                        c.eof = true;
                        break;
                    }
                    Ok((n, _)) => {
                        assert!(
                            c.got + n as u64 <= c.sent,
                            "connection {i}: {} bytes echoed of {} sent",
                            c.got + n as u64,
                            c.sent
                        );
                        fill_stream(c.seed, c.got, &mut expect[..n]);
                        if buf[..n] != expect[..n] {
                            let k = buf[..n].iter().zip(&expect[..n]).position(|(a, b)| a != b);
                            panic!(
                                "connection {i}: echo differs at byte {:?}",
                                k.map(|k| c.got + k as u64)
                            );
                        }
                        c.got += n as u64;
                        c.answered = true;
                    }
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(e) => panic!("connection {i}: recv: {e}"),
                }
            }
        }
        if c.connected && mask.contains(Events::WRITE) {
            while c.sent < c.target {
                let n = (c.target - c.sent).min(buf.len() as u64) as usize;
                fill_stream(c.seed, c.sent, &mut buf[..n]);
                match rustix::net::send(&c.fd, &buf[..n], SendFlags::NOSIGNAL) {
                    Ok(k) => c.sent += k as u64,
                    Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => {}
                    Err(e) => panic!("connection {i}: send: {e}"),
                }
            }
        }
        let mut want_ev = Events::READ;
        if !c.connected || c.sent < c.target {
            want_ev |= Events::WRITE;
        }
        if c.eof {
            want_ev = Events::empty();
        }
        if want_ev != c.interest {
            if want_ev.is_empty() {
                sel.unregister(c.fd.as_fd()).expect("unregister");
            } else {
                sel.modify_events(c.fd.as_fd(), want_ev).expect("modify");
            }
            c.interest = want_ev;
        }
        if !c.round_done && c.connected && c.sent == c.target && c.got == c.target {
            c.round_done = true;
            return true;
        }
        false
    };

    // Round 1, opening the connections as it goes.
    let ip = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    while done < want {
        assert!(
            start.elapsed() < limit,
            "load: {} opened, {answered} answered, {done} done after {limit:?}",
            conns.len()
        );
        while conns.len() < want && conns.len() - answered < WINDOW {
            let i = conns.len();
            let fd = rustix::net::socket_with(
                ip,
                SocketType::STREAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .expect("socket");
            match rustix::net::connect(&fd, &addr) {
                Ok(()) | Err(Errno::INPROGRESS) => {}
                Err(e) => panic!("connect {i}: {e}"),
            }
            sel.register(fd.as_fd(), Events::READ | Events::WRITE, i as u32)
                .map_err(|e| e.error)
                .expect("register");
            conns.push(LoadConn {
                fd,
                seed: splitmix(seed ^ i as u64),
                target: payload_len(i, 0, 4096),
                sent: 0,
                got: 0,
                connected: false,
                answered: false,
                round_done: false,
                eof: false,
                interest: Events::READ | Events::WRITE,
            });
        }
        sel.select(Some(Duration::from_millis(100)))
            .expect("select");
        while let Some((key, mask)) = sel.next_ready() {
            let i = *key.data() as usize;
            let c = &mut conns[i];
            let was = c.answered;
            if handle(&mut sel, c, i, mask) {
                done += 1;
            }
            assert!(!conns[i].eof, "connection {i}: server closed it");
            if !was && conns[i].answered {
                answered += 1;
            }
        }
    }
    stats.held = sel.len();
    assert_eq!(stats.held, want);
    stats.server_fds_held = fd_count(server);
    stats.rounds = 1;

    // More rounds: every connection at once.
    for round in 1..rounds {
        for (i, c) in conns.iter_mut().enumerate() {
            c.target += payload_len(i, round, 16 * 1024);
            c.round_done = false;
            sel.modify_events(c.fd.as_fd(), Events::READ | Events::WRITE)
                .expect("modify");
            c.interest = Events::READ | Events::WRITE;
        }
        done = 0;
        while done < want {
            assert!(
                start.elapsed() < limit,
                "load round {round}: {done} of {want} done after {limit:?}"
            );
            sel.select(Some(Duration::from_millis(100)))
                .expect("select");
            while let Some((key, mask)) = sel.next_ready() {
                let i = *key.data() as usize;
                if handle(&mut sel, &mut conns[i], i, mask) {
                    done += 1;
                }
                assert!(!conns[i].eof, "connection {i}: server closed it");
            }
        }
        stats.rounds += 1;
        assert_eq!(sel.len(), want, "a connection was lost");
    }

    // Half-close all; the server echoes nothing more and closes each.
    for c in &conns {
        rustix::net::shutdown(&c.fd, rustix::net::Shutdown::Write).expect("shutdown");
    }
    while stats.eofs < want {
        assert!(
            start.elapsed() < limit,
            "load: {} of {want} closed by the server after {limit:?}",
            stats.eofs
        );
        sel.select(Some(Duration::from_millis(100)))
            .expect("select");
        while let Some((key, mask)) = sel.next_ready() {
            let i = *key.data() as usize;
            handle(&mut sel, &mut conns[i], i, mask);
            if conns[i].eof {
                stats.eofs += 1;
            }
        }
    }
    for c in &conns {
        stats.sent += c.sent;
        stats.verified += c.got;
    }
    stats.elapsed = start.elapsed();
    stats
}

#[test]
fn ten_thousand_concurrent_connections() {
    let _serial = serial();
    const WANT: usize = 10_000;
    let seed = run_seed();
    let rounds = if long() { 10 } else { 3 };
    // The test process holds WANT client sockets, echod WANT connections;
    // each needs its own RLIMIT_NOFILE above that (echod inherits ours).
    let nofile = raise_nofile(32_768);
    assert!(
        nofile >= WANT as u64 + 500,
        "RLIMIT_NOFILE is {nofile} and could not be raised (needs CAP_SYS_RESOURCE or a hard \
         limit above {})",
        WANT + 500
    );
    // 4 threads of at most 4,000 connections (a selector holds 4,096 keys).
    let echod = Echod::start(&["--threads", "4", "--max-conns", "16000"]);
    let idle_fds = echod.fd_count();
    let addr: SocketAddr = ([127, 0, 0, 1], echod.port).into();
    let pid = echod.pid();
    // The load client's selector is big: give it a thread with room.
    let stats = thread::scope(|s| {
        thread::Builder::new()
            .stack_size(64 << 20)
            .spawn_scoped(s, || load_client(addr, WANT, rounds, seed, pid))
            .expect("spawn")
            .join()
            .expect("load client")
    });
    assert_eq!(stats.held, WANT);
    assert!(
        stats.server_fds_held >= idle_fds + WANT,
        "echod had {} fds open with {WANT} clients held (idle: {idle_fds})",
        stats.server_fds_held
    );
    assert_eq!(stats.eofs, WANT);
    assert_eq!(stats.verified, stats.sent, "bytes lost");
    let fds_after = echod.wait_fds(idle_fds, Duration::from_secs(10));
    assert_eq!(fds_after, idle_fds, "echod fds after all closed");
    let rss = echod.rss_kib();
    let out = echod.stop();
    let summary = shutdown_summary(&out);
    assert!(
        summary.starts_with(&format!(
            "shutting down: {WANT} connections accepted, 0 rejected"
        )),
        "{summary}"
    );
    println!(
        "load: {WANT} concurrent connections held at once (one selector-driven client, \
         RLIMIT_NOFILE {nofile}); echod had {} fds open while they were held (idle {idle_fds}); \
         {} rounds of random payloads on every connection, {} bytes sent, {} echoed and checked \
         byte by byte, {} lost or reordered; all {WANT} closed cleanly by the server; {:?}; echod \
         RSS at the end {rss} KiB; echod: {summary}",
        stats.server_fds_held,
        stats.rounds,
        stats.sent,
        stats.verified,
        stats.sent - stats.verified,
        stats.elapsed,
    );
}
