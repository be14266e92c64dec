//! Clients of `echod` shared by the reliability tests (the
//! `reliability_*.rs` files): checked echoes, floods, misbehaving peers, and
//! the lock and seed they all use.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::fault::{Fnv, fill_stream, reset};

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time within a test binary (a failed test must not block
/// the others). cargo runs the test binaries themselves one after another.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Seeds vary per run (printed, and fixed by `IOSELECT_SEED=N`).
pub fn run_seed() -> u64 {
    std::env::var("IOSELECT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

/// A counter shared by client threads.
#[derive(Default)]
pub struct Count(AtomicU64);

impl Count {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// What one checked echo saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Echoed {
    pub len: u64,
    pub fnv: Fnv,
}

/// Streams `len` bytes of stream `seed` from a writer thread (hashing what
/// it sends), half-closes, and reads the echo to end of file in this thread
/// (hashing what comes back). Returns (sent, received).
pub fn echo_checked(s: TcpStream, seed: u64, len: u64) -> (Echoed, Echoed) {
    let mut writer = s.try_clone().expect("clone");
    let w = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut fnv = Fnv::default();
        let mut at = 0u64;
        while at < len {
            let n = (len - at).min(buf.len() as u64) as usize;
            fill_stream(seed, at, &mut buf[..n]);
            fnv.update(&buf[..n]);
            writer.write_all(&buf[..n]).expect("send payload");
            at += n as u64;
        }
        writer.shutdown(Shutdown::Write).expect("half-close");
        Echoed { len: at, fnv }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut fnv = Fnv::default();
    let mut got = 0u64;
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                fnv.update(&buf[..n]);
                got += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the echo of {len} bytes after {got}: {e}"),
        }
    }
    let sent = w.join().expect("writer");
    (sent, Echoed { len: got, fnv })
}

/// Writes stream `seed` from offset `at` without blocking until the socket
/// stops taking it (or `cap` bytes or `limit` time); returns the new offset.
pub fn fill_until_blocked(s: &TcpStream, seed: u64, mut at: u64, cap: u64, limit: Duration) -> u64 {
    s.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let t = Instant::now();
    let mut blocked = 0;
    // Blocked several times in a row, a little apart: the server has stopped
    // reading (its buffer is full because we do not read the echo).
    while at < cap && t.elapsed() < limit && blocked < 5 {
        let n = (cap - at).min(buf.len() as u64) as usize;
        fill_stream(seed, at, &mut buf[..n]);
        match (&*s).write(&buf[..n]) {
            Ok(k) => {
                at += k as u64;
                blocked = 0;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                blocked += 1;
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("flood: {e}"),
        }
    }
    s.set_nonblocking(false).unwrap();
    at
}

/// Reads exactly `n` bytes of echo and checks them against stream `seed`
/// at offset `at`.
pub fn read_checked(s: &TcpStream, seed: u64, at: u64, n: usize) {
    let mut got = vec![0u8; n];
    (&*s).read_exact(&mut got).expect("read the echo");
    let mut want = vec![0u8; n];
    fill_stream(seed, at, &mut want);
    assert!(got == want, "echo at {at}..{} differs", at + n as u64);
}

/// Reads the echo to end of file, checked against stream `seed` from `at`;
/// returns the bytes read.
pub fn drain_checked(s: &TcpStream, seed: u64, mut at: u64, limit: Duration) -> u64 {
    let start = at;
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 64 * 1024];
    let mut want = vec![0u8; 64 * 1024];
    loop {
        assert!(Instant::now() < deadline, "drain too slow");
        let n = (&*s).read(&mut buf).expect("read the echo");
        if n == 0 {
            return at - start;
        }
        fill_stream(seed, at, &mut want[..n]);
        assert!(buf[..n] == want[..n], "echo at {at} differs");
        at += n as u64;
    }
}

/// Faults survived, by kind.
#[derive(Default)]
pub struct Faults {
    pub reset_mid_echo: Count,
    pub half_close_then_reset: Count,
    pub half_close_then_close_unread: Count,
    pub silent: Count,
    pub one_byte_stall: Count,
    pub flood: Count,
    pub reset_at_once: Count,
    pub close_at_once: Count,
    pub flood_bytes: Count,
}

impl Faults {
    pub fn total(&self) -> u64 {
        [
            &self.reset_mid_echo,
            &self.half_close_then_reset,
            &self.half_close_then_close_unread,
            &self.silent,
            &self.one_byte_stall,
            &self.flood,
            &self.reset_at_once,
            &self.close_at_once,
        ]
        .iter()
        .map(|c| c.get())
        .sum()
    }
}

/// One bad peer of kind `kind` against the server on `port`.
pub fn bad_peer(port: u16, kind: u64, seed: u64, f: &Faults) {
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
        s
    };
    match kind % 8 {
        0 => {
            // Reset while the server is writing to us: fill until the
            // server stops reading (its echo is stuck on our unread receive
            // queue), take a little of the echo, then RST.
            let s = connect();
            let sent = fill_until_blocked(&s, seed, 0, 64 << 20, Duration::from_secs(5));
            assert!(sent > 0);
            read_checked(&s, seed, 0, 1000.min(sent as usize));
            if seed.is_multiple_of(2) {
                thread::sleep(Duration::from_millis(10));
            }
            reset(s);
            f.reset_mid_echo.add(1);
        }
        1 => {
            let s = connect();
            let sent = fill_until_blocked(&s, seed, 0, 256 * 1024, Duration::from_secs(5));
            assert!(sent > 0);
            s.shutdown(Shutdown::Write).unwrap();
            thread::sleep(Duration::from_millis(30));
            reset(s);
            f.half_close_then_reset.add(1);
        }
        2 => {
            // Half-close, read part of the echo, close with the rest unread
            // (the kernel answers the server's data with RST).
            let s = connect();
            let sent = fill_until_blocked(&s, seed, 0, 100_000, Duration::from_secs(5));
            s.shutdown(Shutdown::Write).unwrap();
            read_checked(&s, seed, 0, 10_000.min(sent as usize));
            drop(s);
            f.half_close_then_close_unread.add(1);
        }
        3 => {
            // Connect and never send.
            let s = connect();
            thread::sleep(Duration::from_millis(200));
            drop(s);
            f.silent.add(1);
        }
        4 => {
            // One byte, then stall without reading; the byte must still be
            // there when we finally read.
            let mut s = connect();
            let b = [seed as u8];
            s.write_all(&b).unwrap();
            thread::sleep(Duration::from_millis(200));
            let mut got = [0u8; 1];
            s.read_exact(&mut got).expect("the stalled byte");
            assert_eq!(got, b);
            f.one_byte_stall.add(1);
        }
        5 => {
            // Flood without reading for a while, then read everything back.
            let s = connect();
            let sent = fill_until_blocked(&s, seed, 0, 64 << 20, Duration::from_secs(5));
            thread::sleep(Duration::from_millis(100));
            s.shutdown(Shutdown::Write).unwrap();
            let got = drain_checked(&s, seed, 0, Duration::from_secs(20));
            assert_eq!(got, sent, "flood echo lost bytes");
            f.flood_bytes.add(sent);
            f.flood.add(1);
        }
        6 => {
            reset(connect());
            f.reset_at_once.add(1);
        }
        _ => {
            drop(connect());
            f.close_at_once.add(1);
        }
    }
}
