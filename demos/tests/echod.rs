//! `echod` against well- and badly-behaved clients, on loopback. Every
//! client socket has read and write timeouts and every loop a count or a
//! deadline, so nothing here can hang.
#![cfg(target_os = "linux")]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use util::Proc;

const LIMIT: Duration = Duration::from_secs(20);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A running echod, killed on drop if still running.
struct Echod {
    proc: Proc,
    port: u16,
}

impl Echod {
    fn start(args: &[&str]) -> Self {
        let mut cmd = util::program(env!("CARGO_BIN_EXE_echod"));
        cmd.args(["--port", "0"]).args(args);
        let mut proc = Proc::spawn(&mut cmd);
        let line = proc.expect_line("listening on ", LIMIT);
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        assert_ne!(port, 0, "{line}");
        Self { proc, port }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to echod");
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        s
    }

    fn pid(&self) -> i32 {
        self.proc.pid() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: `kill` takes plain integers; the pid is our own child,
        // which has not been waited for yet (so it cannot have been reused).
        let r = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(r, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// SIGTERM, then the exit status must be 0; returns the output lines.
    fn stop(self) -> Vec<String> {
        self.signal(libc::SIGTERM);
        let (status, lines) = self.proc.finish(LIMIT);
        assert!(status.success(), "echod exited with {status}: {lines:#?}");
        lines
    }

    /// CPU time (user + system) used so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

/// A deterministic pattern, different per `seed`.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends `data` from a second thread, half-closes, reads the echo to EOF.
fn echo_half_close(s: TcpStream, data: &[u8]) -> Vec<u8> {
    let mut writer = s.try_clone().unwrap();
    let owned = data.to_vec();
    let w = thread::spawn(move || {
        writer.write_all(&owned).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::with_capacity(data.len());
    (&s).read_to_end(&mut got).expect("read the echo to EOF");
    w.join().unwrap();
    got
}

/// One request/response round trip on a connection.
fn round_trip(s: &mut TcpStream, data: &[u8]) {
    s.write_all(data).unwrap();
    let mut got = vec![0; data.len()];
    s.read_exact(&mut got).expect("echo");
    assert_eq!(got, data);
}

#[test]
fn many_concurrent_clients_get_their_own_bytes_back() {
    let echod = Echod::start(&["--threads", "2"]);
    let clients: Vec<_> = (0..48)
        .map(|i| {
            let s = echod.connect();
            thread::spawn(move || {
                let data = pattern(i, 64 * 1024 + i as usize * 997);
                assert_eq!(echo_half_close(s, &data), data, "client {i}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let out = echod.stop();
    assert!(
        out.iter()
            .any(|l| l.starts_with("shutting down: 48 connections")),
        "{out:#?}"
    );
}

#[test]
fn half_close_echoes_everything_then_closes() {
    let echod = Echod::start(&[]);
    // Far more than the 16 KiB buffer: the server has to hold its reads
    // back while the echo drains, and must still send it all after the EOF.
    let data = pattern(7, 4 << 20);
    let got = echo_half_close(echod.connect(), &data);
    assert_eq!(got.len(), data.len());
    assert!(got == data);

    // Half-close before the server has read anything at all.
    let mut s = echod.connect();
    s.write_all(b"last words").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last words");
    echod.stop();
}

/// Messages of exactly the 16 KiB buffer, and of two and a half buffers,
/// interleaved: the serving loop's "a full read may have left more" guesses
/// both miss (the message was all there) and hit (the rest of it was), and
/// after misses it skips guessing for a while; every byte must come back,
/// in order, whichever way each read went.
#[test]
fn messages_as_big_as_the_buffer_and_bigger_round_trip() {
    let echod = Echod::start(&[]);
    let mut s = echod.connect();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    for i in 0..300u64 {
        let len = if i % 5 == 4 { 40 * 1024 } else { 16 * 1024 };
        round_trip(&mut s, &pattern(i, len));
    }
    drop(s);
    echod.stop();
}

#[test]
fn a_reset_peer_does_not_disturb_the_others() {
    let echod = Echod::start(&[]);
    let mut steady = echod.connect();
    round_trip(&mut steady, b"before");
    for i in 0..20 {
        let s = echod.connect();
        // Unread echo pending on both sides, then RST instead of FIN.
        (&s).write_all(&pattern(i, 200_000)).unwrap_or(());
        rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO)).unwrap();
        drop(s);
        round_trip(&mut steady, format!("between {i}").as_bytes());
    }
    round_trip(&mut echod.connect(), b"a new one");
    echod.stop();
}

#[test]
fn idle_peers_and_a_connect_flood_do_not_stall_the_others() {
    let echod = Echod::start(&["--max-conns", "64"]);
    let mut steady = echod.connect();
    round_trip(&mut steady, b"hello");
    // Idle peers: never send a byte.
    let idle: Vec<TcpStream> = (0..30).map(|_| echod.connect()).collect();
    // A connect flood well beyond --max-conns: the rest wait in the backlog.
    let flood: Vec<TcpStream> = (0..300).map(|_| echod.connect()).collect();
    let t = Instant::now();
    for i in 0..50 {
        round_trip(&mut steady, format!("ping {i}").as_bytes());
    }
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // When the flood goes away, new connections are served again.
    drop(flood);
    drop(idle);
    let deadline = Instant::now() + LIMIT;
    let mut fresh = echod.connect();
    round_trip(&mut fresh, b"after the flood");
    assert!(Instant::now() < deadline);
    echod.stop();
}

#[test]
fn idle_timeout_closes_idle_peers_only() {
    let echod = Echod::start(&["--idle-timeout", "1"]);
    let idle = echod.connect();
    let mut busy = echod.connect();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        round_trip(&mut busy, b"still here");
        thread::sleep(Duration::from_millis(100));
    }
    let mut buf = [0u8; 1];
    assert_eq!((&idle).read(&mut buf).expect("EOF, not a timeout"), 0);
    let out = echod.stop();
    assert!(
        out.iter().any(|l| l.ends_with(", 1 closed idle")),
        "{out:#?}"
    );
}

#[test]
fn a_client_that_never_reads_is_throttled_and_memory_stays_bounded() {
    let echod = Echod::start(&["--max-conns", "64"]);
    let rss_before = echod.rss_kib();
    let flooder = echod.connect();
    flooder.set_nonblocking(true).unwrap();
    const GOAL: usize = 1 << 30;
    let chunk = pattern(1, 1 << 20);
    let mut sent = 0usize;
    let mut steady = echod.connect();
    let t = Instant::now();
    // Send without reading for three seconds (or until 1 GiB, which an
    // unthrottled server would swallow in that time).
    while sent < GOAL && t.elapsed() < Duration::from_secs(3) {
        let at = sent % chunk.len();
        match (&flooder).write(&chunk[at..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                // Others are still served meanwhile.
                round_trip(&mut steady, b"are you there?");
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("flood: {e}"),
        }
    }
    // Stalled now: the server must idle, not spin on the unread data.
    // SAFETY: `sysconf` has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let before = echod.cpu_ticks();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        if let Ok(n) = (&flooder).write(&chunk[sent % chunk.len()..]) {
            sent += n;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let used = echod.cpu_ticks() - before;
    assert!(
        used * 10 < hz * 2,
        "echod used {used} ticks ({hz}/s) while stalled"
    );
    let rss_after = echod.rss_kib();
    assert!(sent < GOAL, "the server kept reading: {sent} bytes taken");
    assert!(sent > 1 << 20, "the flood did not get going: {sent}");
    // Without backpressure the server would hold what it could not send.
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB after {sent} bytes"
    );
    println!("flooder got {sent} bytes in; echod RSS {rss_before} -> {rss_after} KiB");

    // Nothing was lost: reading now, the flooder gets all of it back.
    flooder.set_nonblocking(false).unwrap();
    flooder.shutdown(Shutdown::Write).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let deadline = Instant::now() + LIMIT;
    loop {
        assert!(Instant::now() < deadline, "echo of the flood too slow");
        let n = (&flooder).read(&mut buf).expect("read back the flood");
        if n == 0 {
            break;
        }
        // Compared a run of the pattern at a time (memcmp): a byte-by-byte
        // loop in a debug build took longer than LIMIT under emulation.
        let mut k = 0;
        while k < n {
            let at = (got + k) % chunk.len();
            let len = (n - k).min(chunk.len() - at);
            if buf[k..k + len] != chunk[at..at + len] {
                let i = (0..len).find(|&i| buf[k + i] != chunk[at + i]).unwrap_or(0);
                panic!("byte {} differs", got + k + i);
            }
            k += len;
        }
        got += n;
    }
    assert_eq!(got, sent);
    echod.stop();
}

#[test]
fn out_of_fds_does_not_spin_and_recovers() {
    // 0, 1, 2, epoll, its eventfd (every `Epoll` owns one), the waker's dup
    // of it, listener and the spare: 8 fds, so about 24 connections fit
    // under a limit of 32.
    let echod = Echod::start(&["--nofile", "32"]);
    let mut held = Vec::new();
    let mut rejected = 0;
    for i in 0..40u8 {
        let mut s = echod.connect();
        s.write_all(&[i]).unwrap();
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(1) => {
                assert_eq!(b[0], i);
                held.push(s);
            }
            // Accepted with the spare fd and closed at once.
            Ok(0) => rejected += 1,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => rejected += 1,
            other => panic!("client {i}: {other:?}"),
        }
    }
    assert!((20..30).contains(&held.len()), "{} served", held.len());
    assert_eq!(held.len() + rejected, 40);

    // Keep knocking for a second while out of fds: the server must sleep
    // between knocks, not spin on the readable listener.
    // SAFETY: `sysconf` has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let before = echod.cpu_ticks();
    let t = Instant::now();
    let mut knocks = Vec::new();
    while t.elapsed() < Duration::from_secs(1) {
        knocks.push(echod.connect());
        thread::sleep(Duration::from_millis(50));
    }
    let used = echod.cpu_ticks() - before;
    assert!(
        used * 10 < hz * 2,
        "echod used {used} ticks of CPU ({hz}/s) in one second out of fds"
    );
    drop(knocks);

    // Recovery: once fds are free, new clients are served.
    for s in &mut held {
        round_trip(s, b"still served");
    }
    drop(held);
    thread::sleep(Duration::from_millis(200));
    for i in 0..5 {
        round_trip(&mut echod.connect(), format!("recovered {i}").as_bytes());
    }
    let out = echod.stop();
    let summary = out.iter().find(|l| l.starts_with("shutting down")).unwrap();
    assert!(!summary.contains(" 0 rejected"), "{summary}");
}

#[test]
fn sigint_and_sigterm_exit_gracefully() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let echod = Echod::start(&["--threads", "3"]);
        let mut clients: Vec<TcpStream> = (0..5).map(|_| echod.connect()).collect();
        for c in &mut clients {
            round_trip(c, b"hi");
        }
        echod.signal(signal);
        let (status, out) = echod.proc.finish(LIMIT);
        assert!(status.success(), "signal {signal}: {status}");
        assert!(
            out.iter().any(|l| l.starts_with("shutting down")),
            "{out:#?}"
        );
        // The server closed the connections on its way out.
        for c in &clients {
            let mut b = [0u8; 1];
            assert!(matches!((&*c).read(&mut b), Ok(0) | Err(_)));
        }
    }
}

#[test]
fn threads_share_the_port() {
    let echod = Echod::start(&["--threads", "4"]);
    let mut clients: Vec<TcpStream> = (0..64).map(|_| echod.connect()).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        round_trip(c, format!("client {i}").as_bytes());
    }
    let tasks = std::fs::read_dir(format!("/proc/{}/task", echod.pid()))
        .unwrap()
        .count();
    assert_eq!(tasks, 5, "main thread and 4 workers");
    drop(clients);
    let out = echod.stop();
    let busy = out
        .iter()
        .filter(|l| l.starts_with("thread ") && !l.contains(": 0 connections"))
        .count();
    // SO_REUSEPORT spreads connections by their addresses: with 64 of them,
    // more than one thread gets some (all four, nearly always).
    assert!(busy >= 2, "{out:#?}");
}

#[test]
fn serving_does_not_allocate() {
    let echod = Echod::start(&["--threads", "2", "--count-allocs", "--max-conns", "32"]);
    let workers: Vec<_> = (0..16)
        .map(|i| {
            let s = echod.connect();
            thread::spawn(move || {
                let data = pattern(i, 100_000);
                assert_eq!(echo_half_close(s, &data), data);
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // A reset peer, an idle one, and more connections than slots.
    let r = echod.connect();
    (&r).write_all(&pattern(3, 100_000)).unwrap();
    rustix::net::sockopt::set_socket_linger(&r, Some(Duration::ZERO)).unwrap();
    drop(r);
    let _idle = echod.connect();
    let crowd: Vec<TcpStream> = (0..40).map(|_| echod.connect()).collect();
    thread::sleep(Duration::from_millis(100));
    drop(crowd);
    round_trip(&mut echod.connect(), b"done");
    let out = echod.stop();
    assert!(
        out.iter().any(|l| l == "allocations after start-up: 0"),
        "{out:#?}"
    );
}
