//! `echod`: a production echo server on ioselect's `LargeSelector`.
//!
//! ```text
//! echod --port P [--host H] [--threads N] [--max-conns M]
//!       [--idle-timeout SECS] [--nofile LIMIT] [--count-allocs]
//!       [--catch-sigusr1]
//! ```
//!
//! Prints `listening on H:P` once every thread is ready (the real port when
//! `P` is 0), and on SIGINT/SIGTERM shuts down gracefully and exits 0.
//!
//! - **Fixed memory.** Each connection has a fixed 16 KiB buffer, allocated
//!   with the connection table at start-up; after start-up the server does
//!   not allocate at all (`--count-allocs` prints the count at shutdown).
//! - **Backpressure.** Data is echoed from the buffer as the peer accepts it
//!   (WRITE interest while a write is pending). A peer that sends without
//!   reading fills its buffer, and then stops being read (READ interest
//!   dropped) until it reads, so its data waits in the kernel, not here.
//! - **No wasted calls.** A connection is read and echoed while that makes
//!   progress, so a stream is served up to 1 MiB per `select`; a read that
//!   got less than it asked for has drained the socket, so ping-pong costs
//!   one read and one write per message, no read that ends in `EAGAIN`
//!   (with messages exactly as big as the 16 KiB buffer, one in 64 or fewer).
//! - **Half-close.** After the peer's end of file, everything read is still
//!   echoed, then the connection is closed.
//! - **Bad peers** (reset, idle, floods of connects) only cost their own
//!   slot. At `--max-conns` the listener is taken out of the selector until
//!   a slot frees up (pending connects wait in the kernel's backlog).
//!   `--idle-timeout` closes peers idle that long (default: never).
//! - **Out of file descriptors** (`accept` fails with EMFILE/ENFILE): the
//!   listener stays readable, so a naive loop would spin. echod keeps one
//!   spare fd: it closes it, accepts the pending connection, closes that at
//!   once (the client sees its connection closed), and reopens the spare.
//!   If even that fails, it stops watching the listener for 100 ms.
//! - **Signals.** SIGINT/SIGTERM set a flag and call each thread's `Waker`
//!   (async-signal-safe), so a blocked `select` returns at once.
//! - **`--threads N`**: N threads, each with its own selector and its own
//!   listening socket, sharing the port through `SO_REUSEPORT`.
//! - `--nofile LIMIT` lowers the soft `RLIMIT_NOFILE` first (for testing).
//! - `--catch-sigusr1` catches SIGUSR1 with a handler that only counts it,
//!   installed without `SA_RESTART`, so a SIGUSR1 interrupts a blocked
//!   `select` (`EINTR`); the count is printed at shutdown (for testing).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Barrier, OnceLock};
use std::time::{Duration, Instant};

use ioselect_demos::args::Args;
use ioselect_demos::io_error;
use ioselect_demos::platform::{Events, LargeSelector, Slot, Waker};
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, bind, listen, recv, send};
use rustix::net::{accept, sockopt};

/// Bytes of buffer per connection.
const BUF: usize = 16 * 1024;
/// Keys per selector (so connections per thread, plus the listener).
const CAP: usize = 4096;
/// Most threads (and so wakers) the signal handler knows of.
const MAX_THREADS: usize = 64;
/// Connections accepted per listener event, so a connect flood cannot
/// starve the connections already open.
const ACCEPT_BATCH: usize = 64;
/// How long the listener rests after an `accept` error the spare fd could
/// not absorb.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);
/// Most read-and-echo passes over one connection per event (see
/// `Server::serve`), so that one stream cannot starve the others; what is
/// left is reported again by the next `select` (level-triggered).
const PASSES: usize = 64;
/// Most full reads between two guesses that missed (`Guesses::may_hold_more`):
/// bounds the reads that end in `EAGAIN` to one per this many messages when
/// the peer's messages are as big as the buffer.
const MAX_BACKOFF: u8 = 64;
/// Key data of the listening socket; connections use their slot index.
const LISTENER: u32 = u32::MAX;

/// `CAP` keys in a table on the heap (a `DefaultSelector` of 4,096 keys is
/// ~180 KB inline, several copies of it on a thread's stack while a debug
/// build opens it), and an event buffer of `CAP` events, so one select can
/// report every connection.
type Sel = LargeSelector<u32, Box<[Slot<u32>]>, CAP>;

// ---- allocation counting -------------------------------------------------

/// The system allocator, counting every allocation (alloc, zeroed alloc and
/// realloc), so `--count-allocs` can show that serving does not allocate.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the same arguments, so
// `System`'s guarantees hold; the counter is a side effect only.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` through this allocator and the
        // caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- signals -------------------------------------------------------------

static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// SIGUSR1s caught (`--catch-sigusr1`).
static SIGUSR1_CAUGHT: AtomicU64 = AtomicU64::new(0);
static WAKERS: [OnceLock<Waker>; MAX_THREADS] = [const { OnceLock::new() }; MAX_THREADS];

/// SIGINT/SIGTERM: set the flag, wake every selector. Only atomics and
/// `Waker::wake` (one `write`), all async-signal-safe.
extern "C" fn on_signal(_signal: libc::c_int) {
    SHUTDOWN.store(true, Ordering::SeqCst);
    for waker in &WAKERS {
        if let Some(w) = waker.get() {
            let _ = w.wake();
        }
    }
}

/// SIGUSR1 under `--catch-sigusr1`: count it (one atomic add), nothing else.
extern "C" fn on_sigusr1(_signal: libc::c_int) {
    SIGUSR1_CAUGHT.fetch_add(1, Ordering::Relaxed);
}

fn install_signal_handlers(catch_sigusr1: bool) -> io::Result<()> {
    let shutdown = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let count = on_sigusr1 as extern "C" fn(libc::c_int) as libc::sighandler_t;
    let mut handlers = vec![
        (libc::SIGINT, shutdown, libc::SA_RESTART),
        (libc::SIGTERM, shutdown, libc::SA_RESTART),
    ];
    if catch_sigusr1 {
        // No SA_RESTART: interrupted calls fail with EINTR.
        handlers.push((libc::SIGUSR1, count, 0));
    }
    for (signal, handler, flags) in handlers {
        // SAFETY: an all-zero `sigaction` is a valid value of the C struct
        // (no handler, empty mask, no flags) before we fill it in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        // SAFETY: `action.sa_mask` is a valid, owned `sigset_t`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is fully initialised and `handler` is `on_signal`
        // or `on_sigusr1`, `extern "C"` functions that only do
        // async-signal-safe work.
        if unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

// ---- options -------------------------------------------------------------

struct Options {
    addr: SocketAddr,
    threads: usize,
    max_conns: usize,
    idle_timeout: Option<Duration>,
    nofile: Option<u64>,
    count_allocs: bool,
    catch_sigusr1: bool,
}

const USAGE: &str = "usage: echod --port P [--host H] [--threads N] [--max-conns M] \
                     [--idle-timeout SECS] [--nofile LIMIT] [--count-allocs] [--catch-sigusr1]";

fn options() -> Result<Options, String> {
    let args = Args::parse(&["count-allocs", "catch-sigusr1", "help"])?;
    if args.flag("help") {
        return Err(String::new());
    }
    args.only(&[
        "port",
        "host",
        "threads",
        "max-conns",
        "idle-timeout",
        "nofile",
        "count-allocs",
        "catch-sigusr1",
        "help",
    ])?;
    let port: u32 = args.get("port", u32::MAX)?;
    if port == u32::MAX {
        return Err("--port is required".to_owned());
    }
    let port = u16::try_from(port).map_err(|_| format!("invalid port {port}"))?;
    let host: String = args.get("host", "127.0.0.1".to_owned())?;
    // Literal addresses only (no resolver, so a static build needs no NSS).
    let ip: IpAddr = match host.as_str() {
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("--host must be an IP address, not {h:?}"))?,
    };
    let threads: usize = args.get("threads", 1)?;
    if !(1..=MAX_THREADS).contains(&threads) {
        return Err(format!("--threads must be 1 to {MAX_THREADS}"));
    }
    let max_conns: usize = args.get("max-conns", 1024)?;
    if max_conns == 0 || max_conns.div_ceil(threads) > CAP - 1 {
        return Err(format!("--max-conns must be 1 to {} per thread", CAP - 1));
    }
    let idle: u64 = args.get("idle-timeout", 0)?;
    let nofile: u64 = args.get("nofile", 0)?;
    Ok(Options {
        addr: SocketAddr::new(ip, port),
        threads,
        max_conns,
        idle_timeout: (idle > 0).then(|| Duration::from_secs(idle)),
        nofile: (nofile > 0).then_some(nofile),
        count_allocs: args.flag("count-allocs"),
        catch_sigusr1: args.flag("catch-sigusr1"),
    })
}

// ---- portability ------------------------------------------------------------

/// Non-blocking, close-on-exec sockets, and sends that never raise SIGPIPE:
/// one call each where the OS has the flags, two or three where it has not
/// (Apple's).
mod sys {
    use rustix::fd::OwnedFd;
    use rustix::net::{AddressFamily, SendFlags, SocketType};

    #[cfg(not(target_vendor = "apple"))]
    use rustix::net::SocketFlags;

    /// Flags for every `send`.
    #[cfg(not(target_vendor = "apple"))]
    pub(crate) const SEND: SendFlags = SendFlags::NOSIGNAL;
    /// Flags for every `send`: Apple has no `MSG_NOSIGNAL`; sockets get
    /// `SO_NOSIGPIPE` instead (and Rust programs ignore SIGPIPE anyway).
    #[cfg(target_vendor = "apple")]
    pub(crate) const SEND: SendFlags = SendFlags::empty();

    #[cfg(not(target_vendor = "apple"))]
    pub(crate) fn socket(family: AddressFamily) -> rustix::io::Result<OwnedFd> {
        let flags = SocketFlags::NONBLOCK | SocketFlags::CLOEXEC;
        rustix::net::socket_with(family, SocketType::STREAM, flags, None)
    }

    #[cfg(not(target_vendor = "apple"))]
    pub(crate) fn accept_nonblocking(listener: &OwnedFd) -> rustix::io::Result<OwnedFd> {
        rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
    }

    #[cfg(target_vendor = "apple")]
    fn prepare(fd: OwnedFd) -> rustix::io::Result<OwnedFd> {
        rustix::io::ioctl_fionbio(&fd, true)?;
        rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC)?;
        rustix::net::sockopt::set_socket_nosigpipe(&fd, true)?;
        Ok(fd)
    }

    #[cfg(target_vendor = "apple")]
    pub(crate) fn socket(family: AddressFamily) -> rustix::io::Result<OwnedFd> {
        prepare(rustix::net::socket(family, SocketType::STREAM, None)?)
    }

    #[cfg(target_vendor = "apple")]
    pub(crate) fn accept_nonblocking(listener: &OwnedFd) -> rustix::io::Result<OwnedFd> {
        prepare(rustix::net::accept(listener)?)
    }
}

// ---- listening sockets ---------------------------------------------------

fn listener(addr: SocketAddr, reuse_port: bool) -> io::Result<OwnedFd> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::INET,
        SocketAddr::V6(_) => AddressFamily::INET6,
    };
    let fd = sys::socket(family)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    if reuse_port {
        sockopt::set_socket_reuseport(&fd, true)?;
    }
    bind(&fd, &addr)?;
    listen(&fd, 1024)?;
    Ok(fd)
}

fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    SocketAddr::try_from(rustix::net::getsockname(fd)?)
        .map_err(|_| io::Error::other("not an inet socket"))
}

/// A spare fd kept open so that, out of fds, one can be freed to accept
/// (and close) a pending connection.
fn spare_fd() -> Option<OwnedFd> {
    rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
}

// ---- one thread's server ------------------------------------------------

/// One connection's state; its buffer is `slab[slot * BUF..][..BUF]`.
/// Bytes `start..end` of the buffer are read but not yet echoed.
struct Conn {
    fd: Option<OwnedFd>,
    start: usize,
    end: usize,
    /// The peer sent its end of file.
    eof: bool,
    /// What the key is registered for.
    interest: Events,
    /// The last read filled all the room it was offered, so the kernel may
    /// hold more (and `Guesses::may_hold_more` agreed to try).
    unread: bool,
    guesses: Guesses,
    last_active: Instant,
}

/// How one connection's guesses that more waits to be read have fared.
struct Guesses {
    /// Full reads left before the next guess.
    skip: u8,
    /// The current wait between guesses, doubled by each one that missed.
    backoff: u8,
}

/// A new connection starts as if a guess had just missed at the longest
/// wait: most peers send requests, not streams, and a stream gets past the
/// first `MAX_BACKOFF` full reads (1 MiB) in no time.
impl Default for Guesses {
    fn default() -> Self {
        Guesses {
            skip: MAX_BACKOFF,
            backoff: MAX_BACKOFF,
        }
    }
}

impl Guesses {
    /// A read filled all the room it was offered: is reading again (a guess,
    /// no event says so) worth a system call? Yes, unless recent guesses
    /// missed: a stream has more waiting, but a peer whose messages are as
    /// big as the buffer (ping-pong) has not, and each miss is a read that
    /// ends in `EAGAIN`. After a miss the next 1, 2, 4, ... up to
    /// `MAX_BACKOFF` full reads go back to `select` instead (level-triggered,
    /// it reports what is left at once); a guess that finds data resets it.
    fn may_hold_more(&mut self) -> bool {
        if self.skip == 0 {
            true
        } else {
            self.skip -= 1;
            false
        }
    }

    /// A guessed read found data: keep guessing.
    fn hit(&mut self) {
        self.backoff = 0;
    }

    /// A guessed read found nothing.
    fn missed(&mut self) {
        self.backoff = self.backoff.saturating_mul(2).clamp(1, MAX_BACKOFF);
        self.skip = self.backoff;
    }
}

/// Counters a thread reports at shutdown.
#[derive(Default, Clone, Copy)]
struct Stats {
    accepted: u64,
    /// Connections accepted and closed at once because fds ran out.
    rejected: u64,
    /// `accept` errors other than "no connection pending".
    accept_errors: u64,
    idle_closed: u64,
}

/// Why the listener is out of the selector.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Paused {
    No,
    /// Every slot is taken: back when one frees up.
    Full,
    /// After an accept error: back at this instant.
    Until(Instant),
    /// Shutting down: never back.
    Stopped,
}

struct Server {
    sel: Box<Sel>,
    listener: OwnedFd,
    paused: Paused,
    spare: Option<OwnedFd>,
    conns: Vec<Conn>,
    slab: Vec<u8>,
    free: Vec<u32>,
    idle_timeout: Option<Duration>,
    stats: Stats,
}

impl Server {
    fn new(
        listener: OwnedFd,
        max_conns: usize,
        idle_timeout: Option<Duration>,
    ) -> io::Result<Self> {
        let mut sel = Box::new(Sel::with_capacity(CAP).map_err(io_error)?);
        sel.register(listener.as_fd(), Events::READ, LISTENER)
            .map_err(|e| io_error(e.error))?;
        let now = Instant::now();
        let conns = (0..max_conns)
            .map(|_| Conn {
                fd: None,
                start: 0,
                end: 0,
                eof: false,
                interest: Events::READ,
                unread: false,
                guesses: Guesses::default(),
                last_active: now,
            })
            .collect();
        // `calloc`-backed: pages are only touched by connections that use them.
        let slab = vec![0u8; max_conns * BUF];
        let free = (0..max_conns as u32).rev().collect();
        Ok(Self {
            sel,
            listener,
            paused: Paused::No,
            spare: spare_fd(),
            conns,
            slab,
            free,
            idle_timeout,
            stats: Stats::default(),
        })
    }

    fn run(&mut self) -> io::Result<Stats> {
        let mut last_sweep = Instant::now();
        while !SHUTDOWN.load(Ordering::SeqCst) {
            let timeout = match (self.paused, self.idle_timeout) {
                (Paused::Until(_), _) => Some(ACCEPT_PAUSE),
                (_, Some(_)) => Some(Duration::from_secs(1)),
                _ => None,
            };
            self.sel.select(timeout).map_err(io_error)?;
            while let Some((key, mask)) = self.sel.next_ready() {
                let slot = *key.data();
                if slot == LISTENER {
                    self.accept_some();
                } else {
                    self.serve(slot as usize, mask);
                }
            }
            let now = Instant::now();
            if let Paused::Until(t) = self.paused
                && now >= t
            {
                self.resume_listener();
            }
            if let Some(idle) = self.idle_timeout
                && now.duration_since(last_sweep) >= Duration::from_secs(1)
            {
                last_sweep = now;
                self.close_idle(now, idle);
            }
        }
        self.shutdown();
        Ok(self.stats)
    }

    fn pause_listener(&mut self, why: Paused) {
        if self.paused == Paused::No && self.sel.unregister(self.listener.as_fd()).is_ok() {
            self.paused = why;
        }
    }

    fn resume_listener(&mut self) {
        if self.paused != Paused::No
            && self
                .sel
                .register(self.listener.as_fd(), Events::READ, LISTENER)
                .is_ok()
        {
            self.paused = Paused::No;
        }
    }

    /// Accepts pending connections, at most `ACCEPT_BATCH`.
    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH {
            let Some(&slot) = self.free.last() else {
                self.pause_listener(Paused::Full);
                return;
            };
            match sys::accept_nonblocking(&self.listener) {
                Ok(fd) => {
                    if self.sel.register(fd.as_fd(), Events::READ, slot).is_err() {
                        // Cannot happen with a free slot and a fresh fd; if
                        // it does, the connection is dropped (closed).
                        self.stats.accept_errors += 1;
                        continue;
                    }
                    self.free.pop();
                    let c = &mut self.conns[slot as usize];
                    *c = Conn {
                        fd: Some(fd),
                        start: 0,
                        end: 0,
                        eof: false,
                        interest: Events::READ,
                        unread: false,
                        guesses: Guesses::default(),
                        last_active: Instant::now(),
                    };
                    self.stats.accepted += 1;
                }
                Err(Errno::AGAIN) => return,
                // The peer gave up before we accepted: next one.
                Err(Errno::INTR | Errno::CONNABORTED | Errno::PROTO) => {}
                Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                    self.stats.accept_errors += 1;
                    // Out of fds: use the spare to take the pending connection
                    // off the backlog (closing it at once), so the listener is
                    // no longer readable for it and the loop does not spin.
                    let rejected = match self.spare.take() {
                        Some(spare) => {
                            drop(spare);
                            // Accepted and closed at once (dropped).
                            accept(&self.listener).is_ok()
                        }
                        None => false,
                    };
                    self.spare = spare_fd();
                    if rejected {
                        self.stats.rejected += 1;
                    }
                    if !rejected || self.spare.is_none() {
                        self.pause_listener(Paused::Until(Instant::now() + ACCEPT_PAUSE));
                        return;
                    }
                }
                Err(_) => {
                    self.stats.accept_errors += 1;
                    self.pause_listener(Paused::Until(Instant::now() + ACCEPT_PAUSE));
                    return;
                }
            }
        }
    }

    /// Reads and echoes while that makes progress, then sets the interest:
    /// READ while there is room and no end of file, WRITE while data waits.
    ///
    /// One pass: one read into the free part of the buffer, then writes
    /// until all is echoed or the socket would block. A read that got less
    /// than the room it was offered has drained the socket (the kernel gives
    /// all it holds, up to the room), so the pass ends the call: ping-pong
    /// costs one read and one write per message, no read that ends in
    /// `EAGAIN`. A read that filled the room may have left more: then
    /// another pass follows (up to `PASSES` per `select`), unless guesses
    /// like that have been missing (`Guesses::may_hold_more`).
    fn serve(&mut self, slot: usize, mask: Events) {
        let Some(c) = self.conns.get_mut(slot) else {
            return;
        };
        let Some(fd) = c.fd.as_ref() else {
            return;
        };
        let buf = &mut self.slab[slot * BUF..][..BUF];
        c.last_active = Instant::now();

        // Also read on a WRITE event when the last read filled its room:
        // the room the writes make can take the rest now.
        let mut read = mask.contains(Events::READ) || c.unread;
        // Reading because no event said so.
        let mut guess = !mask.contains(Events::READ);
        for _ in 0..PASSES {
            if read && !c.eof {
                if c.end == BUF && c.start > 0 {
                    buf.copy_within(c.start..c.end, 0);
                    c.end -= c.start;
                    c.start = 0;
                }
                // A full buffer (backpressure) reads nothing and keeps `unread`.
                if c.end < BUF {
                    let offered = BUF - c.end;
                    match recv(fd, &mut buf[c.end..], RecvFlags::empty()) {
                        Ok((0, _)) => {
                            c.eof = true;
                            c.unread = false;
                        }
                        Ok((n, _)) => {
                            c.end += n;
                            if guess {
                                c.guesses.hit();
                            }
                            c.unread = n == offered && c.guesses.may_hold_more();
                        }
                        Err(Errno::AGAIN) => {
                            c.unread = false;
                            if guess {
                                c.guesses.missed();
                            }
                        }
                        Err(Errno::INTR) => c.unread = true,
                        Err(_) => return self.close(slot), // reset, or worse
                    }
                }
            }
            let mut blocked = false;
            while c.start < c.end {
                match send(fd, &buf[c.start..c.end], sys::SEND) {
                    Ok(n) => c.start += n,
                    Err(Errno::AGAIN) => {
                        blocked = true;
                        break;
                    }
                    Err(Errno::INTR) => {}
                    Err(_) => return self.close(slot), // reset, broken pipe
                }
            }
            if c.start == c.end {
                c.start = 0;
                c.end = 0;
            }
            if blocked || !c.unread || c.eof {
                break;
            }
            read = true;
            guess = true;
        }
        if c.eof && c.end == 0 {
            // Half-closed and everything echoed: done.
            return self.close(slot);
        }

        let mut want = Events::empty();
        if !c.eof && (c.end < BUF || c.start > 0) {
            want |= Events::READ;
        }
        if c.start < c.end {
            want |= Events::WRITE;
        }
        // Never empty: with no room there is data to write, and after end
        // of file with nothing left the connection was closed above.
        if want != c.interest {
            if self.sel.modify_events(fd.as_fd(), want).is_ok() {
                c.interest = want;
            } else {
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(fd) = self.conns[slot].fd.take() else {
            return;
        };
        let _ = self.sel.unregister(fd.as_fd());
        drop(fd);
        self.free.push(slot as u32);
        if self.paused == Paused::Full {
            self.resume_listener();
        }
    }

    fn close_idle(&mut self, now: Instant, idle: Duration) {
        for slot in 0..self.conns.len() {
            let c = &self.conns[slot];
            if c.fd.is_some() && now.duration_since(c.last_active) >= idle {
                self.stats.idle_closed += 1;
                self.close(slot);
            }
        }
    }

    /// Graceful shutdown: stop accepting, give each connection one last
    /// chance to take its pending echo, close everything.
    fn shutdown(&mut self) {
        self.pause_listener(Paused::Stopped);
        self.paused = Paused::Stopped;
        for slot in 0..self.conns.len() {
            let c = &mut self.conns[slot];
            if let Some(fd) = c.fd.as_ref() {
                let buf = &self.slab[slot * BUF..][..BUF];
                if c.start < c.end {
                    let _ = send(fd.as_fd(), &buf[c.start..c.end], sys::SEND);
                }
                self.close(slot);
            }
        }
    }
}

// ---- main ----------------------------------------------------------------

fn main() -> ExitCode {
    let opts = match options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("echod: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echod: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(opts: &Options) -> io::Result<()> {
    if let Some(limit) = opts.nofile {
        let old = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        rustix::process::setrlimit(
            rustix::process::Resource::Nofile,
            rustix::process::Rlimit {
                current: Some(limit),
                maximum: old.maximum,
            },
        )?;
    }
    install_signal_handlers(opts.catch_sigusr1)?;

    // Bind every listener here, so `listening on` comes only once all are
    // bound (the first one picks the port when it is 0).
    let reuse_port = opts.threads > 1;
    let first = listener(opts.addr, reuse_port)?;
    let addr = local_addr(&first)?;
    let mut listeners = vec![first];
    for _ in 1..opts.threads {
        listeners.push(listener(addr, reuse_port)?);
    }

    let per_thread = opts.max_conns.div_ceil(opts.threads);
    let ready = Barrier::new(opts.threads + 1);
    let idle = opts.idle_timeout;
    // Allocated before start-up ends, so that collecting the results does
    // not count.
    let mut results: Vec<io::Result<Stats>> = Vec::with_capacity(opts.threads);
    std::thread::scope(|s| -> io::Result<()> {
        let handles: Vec<_> = listeners
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let ready = &ready;
                s.spawn(move || {
                    let server = Server::new(l, per_thread, idle).and_then(|server| {
                        let waker =
                            Waker::new(server.sel.backend()).map_err(|e| io_error(e.into()))?;
                        let _ = WAKERS[i].set(waker);
                        Ok(server)
                    });
                    ready.wait();
                    server?.run()
                })
            })
            .collect();
        ready.wait();
        let mut out = io::stdout().lock();
        writeln!(out, "listening on {addr}")?;
        out.flush()?;
        drop(out);
        let at_start = ALLOCATIONS.load(Ordering::SeqCst);

        for h in handles {
            results.push(
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("thread panicked"))),
            );
        }
        let allocated = ALLOCATIONS.load(Ordering::SeqCst) - at_start;
        if opts.count_allocs {
            writeln!(io::stdout(), "allocations after start-up: {allocated}")?;
        }
        Ok(())
    })?;

    let mut total = Stats::default();
    let mut first_error = None;
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(s) => {
                println!("thread {i}: {} connections accepted", s.accepted);
                total.accepted += s.accepted;
                total.rejected += s.rejected;
                total.accept_errors += s.accept_errors;
                total.idle_closed += s.idle_closed;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    println!(
        "shutting down: {} connections accepted, {} rejected for lack of fds, \
         {} accept errors, {} closed idle",
        total.accepted, total.rejected, total.accept_errors, total.idle_closed
    );
    if opts.catch_sigusr1 {
        println!("caught {} SIGUSR1", SIGUSR1_CAUGHT.load(Ordering::SeqCst));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
