//! Selectable TCP sockets on a microcontroller: smoltcp's TCP sockets as
//! sources of an ioselect [`Selector`](ioselect_core::Selector), with no
//! heap and no executor (lm3s6965evb, its Ethernet controller).
//!
//! Sockets are numbered like file descriptors ([`RawFd`]): a listener and
//! each connection is a source of [`NET_READY`], which the stack sets and
//! clears after every poll and every socket call, level-triggered, with
//! Python's meaning of the masks:
//! - a connection is `READ` when [`Net::recv`] would not block: data
//!   waits, or the peer closed (`recv` returns `Ok(0)`, end of file), or the
//!   connection failed (`recv` returns the error);
//! - a connection is `WRITE` when [`Net::send`] would not block: room in
//!   its transmit buffer, or the connection is gone (`send` returns the
//!   error);
//! - a listener is `READ` when a connection is established and waiting to
//!   be accepted.
//!
//! `listen(port, n)` keeps a backlog of `n` listening smoltcp sockets (smoltcp
//! has no backlog: a listening socket becomes the connection); `accept`
//! hands out an established one and re-arms the listener with a free socket.
//!
//! The stack runs while `select` waits: the [`NetPlatform`] polls smoltcp
//! before each sleep when the NIC's receive interrupt said a frame waits,
//! when a socket call left work (data to send, a window to open, a FIN), or
//! when smoltcp's next timer (retransmission, delayed ACK, keep-alive:
//! `poll_at`) is due, and never sleeps past that timer. `select`'s own
//! timeout is kept by the backend: never early.
//!
//! # Where these sockets differ from a kernel's
//! - The stack runs only inside a `select` that waits (or [`Net::poll`]):
//!   a `select` that returns at once because something is ready does not
//!   poll it first, and a loop of `select(Some(Duration::ZERO))` alone never
//!   moves it. A kernel's stack runs on its own.
//! - Sockets come from a fixed pool of [`SOCKETS`]; a listener's backlog takes
//!   its sockets from that pool at `listen`, and an accepted connection
//!   leaves the listener one short until a socket is free again. A connection
//!   attempt finding no listening socket is refused (smoltcp answers the SYN
//!   with a reset); it is never queued.
//! - `close` returns at once; the socket finishes its close (FIN, the
//!   peer's FIN) in the background and goes back to the pool when closed.
//!   TIME-WAIT is not kept: a socket in it is reused at once (smoltcp's
//!   `listen` takes it).
//! - A connection that fails (reset by the peer, or smoltcp's timeout)
//!   reports [`Error::Reset`] for both: smoltcp does not say which.
//! - A connection reset while it waits in the backlog is dropped silently
//!   (its socket listens again); a kernel would hand it out and report the
//!   reset on the first read.
//! - There is no `shutdown(SHUT_WR)`: `close` is the only way to send a FIN.
//! - Numbers are this module's: `listen` and `accept` return [`RawFd`]s
//!   from `1` up; `0` is the NIC's readiness, watched by the platform, never
//!   by the application.

use core::cell::{RefCell, UnsafeCell};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use ioselect_core::{Events, Platform, RawFd, SoftBackend, SoftReadiness};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp::{self, RecvError, State};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address};

use crate::board::enet::Enet;

/// TCP sockets in the pool.
pub const SOCKETS: usize = 6;
/// Listeners at most.
pub const LISTENERS: usize = 2;
/// Each socket's receive and transmit buffer, bytes.
pub const BUFFER: usize = 2048;
/// Sources of [`NET_READY`]: the NIC, the listeners, the sockets.
pub const SOURCES: usize = 1 + LISTENERS + SOCKETS;
/// The NIC's source in [`NET_READY`]: set by its receive interrupt.
pub const NIC: RawFd = 0;
const FIRST_LISTENER: RawFd = 1;
const FIRST_SOCKET: RawFd = FIRST_LISTENER + LISTENERS as RawFd;

/// The readiness of the NIC, the listeners and the connections.
pub static NET_READY: SoftReadiness<SOURCES> = SoftReadiness::new();

/// A selector over these sockets: a [`SoftBackend`] on [`NET_READY`] that
/// waits through the [`NetPlatform`].
pub type Selector<'n, T> =
    ioselect_core::Selector<SoftBackend<'static, SOURCES, NetPlatform<'n>>, T, SOURCES>;

/// smoltcp's interface on `dev` (MAC `mac`) with the address `ip`/`prefix`
/// and a default route through `gateway`.
pub fn interface(
    dev: &mut Enet,
    mac: [u8; 6],
    ip: (Ipv4Address, u8),
    gateway: Ipv4Address,
) -> Interface {
    let mut iface = Interface::new(Config::new(EthernetAddress(mac).into()), dev, now());
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(ip.0.into(), ip.1));
    });
    let _ = iface.routes_mut().add_default_ipv4_route(gateway);
    iface
}

/// The seed's log lines, written once for the three echo programs
/// (`net-echo`, and the cost comparison's `net-hand` and `net-embassy`), so
/// that they log alike.
pub mod seed_log {
    use defmt::info;
    use smoltcp::wire::{IpAddress, IpEndpoint, Ipv4Address};

    /// A peer as the seed prints it: IPv4 address and port (from smoltcp's
    /// endpoint, or from another smoltcp's: `net-embassy`'s).
    #[derive(Clone, Copy)]
    pub struct Peer(pub [u8; 4], pub u16);

    impl From<IpEndpoint> for Peer {
        fn from(peer: IpEndpoint) -> Self {
            let IpAddress::Ipv4(a) = peer.addr;
            Self(a.octets(), peer.port)
        }
    }

    /// `starting up on ADDRESS port PORT`, then the stack's figures.
    pub fn starting(ip: Ipv4Address, port: u16, how: &str) {
        let o = ip.octets();
        info!(
            "starting up on {=u8}.{=u8}.{=u8}.{=u8} port {=u16}",
            o[0], o[1], o[2], o[3], port
        );
        info!(
            "    {=usize} sockets, {=usize} B buffers each way{=str}",
            super::SOCKETS,
            super::BUFFER,
            how
        );
    }

    /// `accept(('ADDRESS', PORT))`.
    pub fn accept(peer: impl Into<Peer>) {
        let Peer(a, port) = peer.into();
        info!(
            "accept(('{=u8}.{=u8}.{=u8}.{=u8}', {=u16}))",
            a[0], a[1], a[2], a[3], port
        );
    }

    /// `read(('ADDRESS', PORT))`.
    pub fn read(peer: impl Into<Peer>) {
        let Peer(a, port) = peer.into();
        info!(
            "read(('{=u8}.{=u8}.{=u8}.{=u8}', {=u16}))",
            a[0], a[1], a[2], a[3], port
        );
    }

    /// `    received b'...'` (or the count, for bytes that are not text).
    pub fn received(data: &[u8]) {
        match core::str::from_utf8(data) {
            Ok(text) => info!("    received b'{=str}'", text),
            Err(_) => info!("    received {=usize} bytes", data.len()),
        }
    }

    /// The sum-up of a longer connection and the cost figures (`busy_at`:
    /// the busy time when it was accepted; `polls`: smoltcp polls so far).
    pub fn closed(received: u32, reads: u32, busy_at: u64, polls: u32) {
        info!("    closed after {=u32} bytes echoed", received);
        info!(
            "    {=u32} reads, busy {=u64} ns, stack peak {=usize} B, {=u32} sleeps, {=u32} polls [measured]",
            reads,
            crate::meter::busy_ns() - busy_at,
            crate::stack::peak(),
            crate::meter::sleeps(),
            polls
        );
    }

    /// An unspecified peer, for state not yet connected.
    pub const NOBODY: IpEndpoint = IpEndpoint::new(IpAddress::Ipv4(Ipv4Address::UNSPECIFIED), 0);
}

/// What a socket call can fail with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Error {
    /// The call would block: nothing to read, no room to send, no
    /// connection waiting (`EAGAIN`).
    WouldBlock,
    /// The connection was reset by the peer or timed out (`ECONNRESET`).
    Reset,
    /// Sending on a connection whose sending half is closed (`EPIPE`).
    BrokenPipe,
    /// Not a listener or connection of this stack, or the wrong kind (`EBADF`).
    BadFd,
    /// No free socket or listener for `listen` (`ENOBUFS`), or a backlog of 0.
    NoBuffers,
}

/// What a pool socket is used for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// In the pool.
    Free,
    /// Listening (or handshaking, or established and not yet accepted) for
    /// listener `l`.
    Backlog(u8),
    /// An accepted connection, the application's.
    Conn,
    /// Closed by the application, finishing its close in the stack.
    Closing,
}

#[derive(Clone, Copy)]
struct Listener {
    port: u16,
    /// Sockets to keep listening; 0: this listener is not in use.
    backlog: u8,
}

/// Memory for the stack: the sockets' buffers and the NIC's frame buffers,
/// in a `static` (zeroed, in `.bss`); see [`storage`].
pub struct Storage {
    sockets: [SocketStorage<'static>; SOCKETS],
    rx: [[u8; BUFFER]; SOCKETS],
    tx: [[u8; BUFFER]; SOCKETS],
}

impl Storage {
    /// The socket slots and the sockets' receive and transmit buffers, for
    /// a program that drives smoltcp by hand (the cost comparison's
    /// `net-hand`).
    #[allow(clippy::type_complexity)]
    pub fn parts(
        &'static mut self,
    ) -> (
        &'static mut [SocketStorage<'static>; SOCKETS],
        &'static mut [[u8; BUFFER]; SOCKETS],
        &'static mut [[u8; BUFFER]; SOCKETS],
    ) {
        (&mut self.sockets, &mut self.rx, &mut self.tx)
    }
}

struct StorageCell(UnsafeCell<Storage>);
// SAFETY: handed out once, by `storage` (guarded by TAKEN).
unsafe impl Sync for StorageCell {}
static STORAGE: StorageCell = StorageCell(UnsafeCell::new(Storage {
    sockets: [SocketStorage::EMPTY; SOCKETS],
    rx: [[0; BUFFER]; SOCKETS],
    tx: [[0; BUFFER]; SOCKETS],
}));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The stack's memory, once (`None` after the first call).
pub fn storage() -> Option<&'static mut Storage> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: TAKEN makes this the only reference ever handed out.
    Some(unsafe { &mut *STORAGE.0.get() })
}

/// Counters of the stack, for the logs.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    /// smoltcp polls.
    pub polls: u32,
    /// Polls started because a timer of smoltcp was due (nothing else).
    pub timer_polls: u32,
    /// Connections accepted.
    pub accepted: u32,
    /// Backlog sockets dropped because their connection failed before
    /// `accept`.
    pub backlog_dropped: u32,
}

struct Inner {
    iface: Interface,
    dev: Enet,
    sockets: SocketSet<'static>,
    handles: [SocketHandle; SOCKETS],
    roles: [Role; SOCKETS],
    listeners: [Listener; LISTENERS],
    /// A socket call left work for the stack: poll before sleeping.
    dirty: bool,
    /// A socket came back to the pool, or was accepted: top the listeners
    /// up at the next refresh.
    short: bool,
    /// smoltcp's next timer, in µs of its clock (`None`: none, or not
    /// asked since the last poll: `timer_stale`).
    next_at: Option<i64>,
    timer_stale: bool,
    stats: Stats,
}

/// The TCP/IP stack: smoltcp on the Ethernet controller, its sockets
/// numbered as sources of [`NET_READY`]. Used from thread mode only (the
/// interrupt handlers touch only [`NET_READY`]).
pub struct Net {
    inner: RefCell<Inner>,
}

fn now() -> Instant {
    stamp(crate::now_micros())
}

fn stamp(us: u64) -> Instant {
    Instant::from_micros(i64::try_from(us).unwrap_or(i64::MAX))
}

fn socket_fd(i: usize) -> RawFd {
    FIRST_SOCKET + i as RawFd
}

/// The pool index of socket `fd` (`0..SOCKETS`), for per-connection state
/// kept in arrays.
pub fn socket_index(fd: RawFd) -> Option<usize> {
    usize::try_from(fd.checked_sub(FIRST_SOCKET)?)
        .ok()
        .filter(|&i| i < SOCKETS)
}

fn listener_index(fd: RawFd) -> Option<usize> {
    usize::try_from(fd.checked_sub(FIRST_LISTENER)?)
        .ok()
        .filter(|&i| i < LISTENERS)
}

/// Established and not yet accepted: what a listener reports as `READ`.
fn acceptable(s: &tcp::Socket<'_>) -> bool {
    matches!(s.state(), State::Established | State::CloseWait)
}

/// What a connection is ready for (see the module's documentation).
fn conn_ready(s: &tcp::Socket<'_>) -> Events {
    let mut ready = Events::empty();
    if s.can_recv() || !s.may_recv() {
        ready |= Events::READ;
    }
    if s.can_send() || !s.may_send() {
        ready |= Events::WRITE;
    }
    ready
}

/// Sets `fd`'s readiness to `ready` (stores only what changed).
fn publish(fd: RawFd, ready: Events) {
    let have = NET_READY.get(fd);
    if have != ready {
        NET_READY.set(fd, ready - have);
        NET_READY.clear(fd, have - ready);
    }
}

impl Inner {
    fn socket(&mut self, i: usize) -> &mut tcp::Socket<'static> {
        self.sockets
            .get_mut::<tcp::Socket<'static>>(self.handles[i])
    }

    /// Brings the pool and the readiness up to date after the stack moved:
    /// closed sockets go back to the pool, failed backlog sockets listen
    /// again, listeners are topped up to their backlog when a socket came
    /// free or was accepted, and every source's readiness is published.
    ///
    /// `ingress`: the stack took in a frame since the last refresh. Without
    /// one, only the closing sockets are looked at: what a poll does
    /// without a frame (smoltcp 0.14's `Socket::dispatch`: send what is
    /// queued, retransmit, acknowledge) changes no connection's or backlog
    /// socket's readiness. Data, a window that frees transmit space, a FIN
    /// or a reset, a handshake's last ACK all arrive in frames (transmit
    /// space is freed when an ACK is processed, never by sending). The
    /// state changes of `dispatch` itself are three, none of them open to
    /// these sockets: the `timeout` (set on closing sockets only, in
    /// `Net::close`), the end of TIME-WAIT (which only a socket closed
    /// here reaches), and a reset when the interface loses the socket's
    /// address (this stack's address is set once, in `interface`).
    fn refresh(&mut self, ingress: bool) {
        let mut waiting = [false; LISTENERS];
        for i in 0..SOCKETS {
            let role = self.roles[i];
            if role == Role::Free || (!ingress && role != Role::Closing) {
                continue;
            }
            let s = self
                .sockets
                .get_mut::<tcp::Socket<'static>>(self.handles[i]);
            match role {
                Role::Conn => publish(socket_fd(i), conn_ready(s)),
                Role::Backlog(l) => match s.state() {
                    State::Established | State::CloseWait => waiting[usize::from(l)] = true,
                    State::Closed => {
                        // Reset or timed out before `accept`: listen again.
                        let port = self.listeners[usize::from(l)].port;
                        let _ = s.listen(port);
                        self.stats.backlog_dropped += 1;
                    }
                    _ => {}
                },
                _ => {
                    if matches!(s.state(), State::Closed | State::TimeWait) {
                        self.roles[i] = Role::Free;
                        self.short = true;
                    }
                }
            }
        }
        let short = core::mem::take(&mut self.short);
        if !ingress && !short {
            return;
        }
        for (l, waiting) in waiting.into_iter().enumerate() {
            if self.listeners[l].backlog == 0 {
                continue;
            }
            if short {
                self.top_up(l);
            }
            // Without a frame the backlog sockets were not looked at (and
            // their readiness did not change).
            if ingress {
                let ready = if waiting {
                    Events::READ
                } else {
                    Events::empty()
                };
                publish(FIRST_LISTENER + l as RawFd, ready);
            }
        }
    }

    /// Gives listener `l` free sockets until it has its backlog.
    fn top_up(&mut self, l: usize) {
        let Listener { port, backlog } = self.listeners[l];
        let mut have = self
            .roles
            .iter()
            .filter(|&&r| r == Role::Backlog(l as u8))
            .count();
        for i in 0..SOCKETS {
            if have >= usize::from(backlog) {
                break;
            }
            if self.roles[i] == Role::Free && self.socket(i).listen(port).is_ok() {
                self.roles[i] = Role::Backlog(l as u8);
                have += 1;
            }
        }
    }

    fn poll(&mut self, at: Instant) {
        let Inner {
            iface,
            dev,
            sockets,
            ..
        } = self;
        // The driver counts each frame it hands to smoltcp (a frame left in
        // its FIFO while the transmitter is busy is not handed over yet).
        let received = dev.stats.rx;
        iface.poll(at, dev, sockets);
        let ingress = dev.stats.rx != received;
        // smoltcp's next timer is asked for before the next sleep only
        // (`poll_at` walks every socket: once per sleep, not per poll).
        self.next_at = None;
        self.timer_stale = true;
        self.dirty = false;
        self.stats.polls += 1;
        self.refresh(ingress);
    }

    fn conn(&mut self, fd: RawFd) -> Result<usize, Error> {
        match socket_index(fd) {
            Some(i) if self.roles[i] == Role::Conn => Ok(i),
            _ => Err(Error::BadFd),
        }
    }
}

impl Net {
    /// The stack on `dev` (MAC `mac`) with the address `ip`/`prefix` and a
    /// default route through `gateway`, its sockets in `storage`.
    pub fn new(
        storage: &'static mut Storage,
        mut dev: Enet,
        mac: [u8; 6],
        ip: (Ipv4Address, u8),
        gateway: Ipv4Address,
    ) -> Self {
        let iface = interface(&mut dev, mac, ip, gateway);
        let Storage { sockets, rx, tx } = storage;
        let mut set = SocketSet::new(&mut sockets[..]);
        // One socket per pair of buffers (`add` into a set with room for all
        // SOCKETS never fails).
        let mut tx = tx.iter_mut();
        let handles = rx.each_mut().map(|rx| {
            let Some(tx) = tx.next() else { unreachable!() };
            set.add(tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            ))
        });
        Self {
            inner: RefCell::new(Inner {
                iface,
                dev,
                sockets: set,
                handles,
                roles: [Role::Free; SOCKETS],
                listeners: [Listener {
                    port: 0,
                    backlog: 0,
                }; LISTENERS],
                dirty: true,
                short: false,
                next_at: None,
                timer_stale: true,
                stats: Stats::default(),
            }),
        }
    }

    /// The stack's state, for one call of this module. Never in use
    /// already: no call of this module holds it while it calls anything
    /// that could call back into [`Net`] (smoltcp, the driver and the
    /// readiness never do; the interrupt handlers touch only
    /// [`NET_READY`]). Were it in use, the call would fail with
    /// [`Error::BadFd`] (or do nothing) rather than panic: this keeps
    /// `RefCell`'s panic paths out of the firmware.
    fn inner(&self) -> Result<core::cell::RefMut<'_, Inner>, Error> {
        self.inner.try_borrow_mut().map_err(|_| Error::BadFd)
    }

    /// A [`Platform`] that runs this stack while `select` waits.
    pub fn platform(&self) -> NetPlatform<'_> {
        NetPlatform { net: self }
    }

    /// Listens on `port` with a backlog of `backlog` sockets taken from the
    /// pool now (fewer if the pool has fewer free; at least one). Returns
    /// the listener's number.
    pub fn listen(&self, port: u16, backlog: usize) -> Result<RawFd, Error> {
        let inner = &mut *self.inner()?;
        if backlog == 0 || port == 0 {
            return Err(Error::NoBuffers);
        }
        let l = inner
            .listeners
            .iter()
            .position(|l| l.backlog == 0)
            .ok_or(Error::NoBuffers)?;
        if !inner.roles.contains(&Role::Free) {
            return Err(Error::NoBuffers);
        }
        inner.listeners[l] = Listener {
            port,
            backlog: backlog.min(SOCKETS) as u8,
        };
        inner.top_up(l);
        inner.dirty = true;
        Ok(FIRST_LISTENER + l as RawFd)
    }

    /// Accepts a connection waiting on `listener`: returns its number and
    /// the peer's address, or [`Error::WouldBlock`]. The listener gets a
    /// free socket in its place, if the pool has one.
    pub fn accept(&self, listener: RawFd) -> Result<(RawFd, IpEndpoint), Error> {
        let inner = &mut *self.inner()?;
        let l = listener_index(listener)
            .filter(|&l| inner.listeners[l].backlog > 0)
            .ok_or(Error::BadFd)?;
        let found = (0..SOCKETS)
            .find(|&i| inner.roles[i] == Role::Backlog(l as u8) && acceptable(inner.socket(i)));
        let Some(i) = found else {
            publish(listener, Events::empty());
            return Err(Error::WouldBlock);
        };
        inner.roles[i] = Role::Conn;
        inner.stats.accepted += 1;
        inner.short = true;
        let peer = inner
            .socket(i)
            .remote_endpoint()
            .unwrap_or(IpEndpoint::new(Ipv4Address::UNSPECIFIED.into(), 0));
        inner.refresh(true);
        Ok((socket_fd(i), peer))
    }

    /// Reads what connection `fd` has received into `buf`: `Ok(n > 0)`,
    /// `Ok(0)` at end of file (the peer closed, all read), or the error.
    pub fn recv(&self, fd: RawFd, buf: &mut [u8]) -> Result<usize, Error> {
        let inner = &mut *self.inner()?;
        let i = inner.conn(fd)?;
        let s = inner.socket(i);
        let r = match s.recv_slice(buf) {
            Ok(0) if !buf.is_empty() => Err(Error::WouldBlock),
            Ok(n) => Ok(n),
            Err(RecvError::Finished) => Ok(0),
            Err(RecvError::InvalidState) => Err(Error::Reset),
        };
        let ready = conn_ready(s);
        publish(fd, ready);
        inner.dirty = true;
        r
    }

    /// Queues as much of `data` as connection `fd`'s transmit buffer takes:
    /// `Ok(n > 0)`, [`Error::WouldBlock`] when it is full, or the error.
    pub fn send(&self, fd: RawFd, data: &[u8]) -> Result<usize, Error> {
        let inner = &mut *self.inner()?;
        let i = inner.conn(fd)?;
        let s = inner.socket(i);
        let r = if !s.may_send() {
            if s.state() == State::Closed {
                Err(Error::Reset)
            } else {
                Err(Error::BrokenPipe)
            }
        } else {
            match s.send_slice(data) {
                Ok(0) if !data.is_empty() => Err(Error::WouldBlock),
                Ok(n) => Ok(n),
                Err(_) => Err(Error::BrokenPipe),
            }
        };
        let ready = conn_ready(s);
        publish(fd, ready);
        inner.dirty = true;
        r
    }

    /// The peer of connection `fd`.
    pub fn peer(&self, fd: RawFd) -> Option<IpEndpoint> {
        let inner = &mut *self.inner().ok()?;
        let i = inner.conn(fd).ok()?;
        inner.socket(i).remote_endpoint()
    }

    /// Closes connection `fd` (a FIN after what is queued; the socket
    /// returns to the pool once closed), or listener `fd` (its backlog
    /// sockets return to the pool; waiting connections are reset).
    pub fn close(&self, fd: RawFd) -> Result<(), Error> {
        let inner = &mut *self.inner()?;
        if let Some(l) = listener_index(fd).filter(|&l| inner.listeners[l].backlog > 0) {
            for i in 0..SOCKETS {
                if inner.roles[i] == Role::Backlog(l as u8) {
                    inner.socket(i).abort();
                    inner.roles[i] = Role::Closing;
                }
            }
            inner.listeners[l].backlog = 0;
        } else {
            let i = inner.conn(fd)?;
            let s = inner.socket(i);
            s.close();
            // A peer that stops answering does not hold the socket forever.
            s.set_timeout(Some(smoltcp::time::Duration::from_secs(5)));
            inner.roles[i] = Role::Closing;
        }
        publish(fd, Events::empty());
        inner.dirty = true;
        Ok(())
    }

    /// Runs the stack now: received frames, queued data, due timers.
    pub fn poll(&self) {
        if let Ok(mut inner) = self.inner() {
            inner.poll(now());
        }
    }

    /// Counters of the stack and of the driver.
    pub fn stats(&self) -> (Stats, crate::board::enet::Stats) {
        let Ok(inner) = self.inner() else {
            return Default::default();
        };
        (inner.stats, inner.dev.stats)
    }

    /// Polls when there is work: a frame waits, a socket call left work, or
    /// smoltcp's next timer is due (`now`: µs).
    fn service(&self, now: u64) {
        let Ok(mut inner) = self.inner() else {
            return;
        };
        let inner = &mut *inner;
        let at = stamp(now);
        let due = inner.next_at.is_some_and(|t| t <= at.total_micros());
        let nic = NET_READY.get(NIC).contains(Events::READ);
        if nic || inner.dirty || due {
            if due && !nic && !inner.dirty {
                inner.stats.timer_polls += 1;
            }
            inner.poll(at);
        }
    }

    /// smoltcp's next timer, in µs (asked for once after each poll).
    fn timer(&self, now: u64) -> Option<u64> {
        let inner = &mut *self.inner().ok()?;
        if inner.timer_stale {
            inner.next_at = inner
                .iface
                .poll_at(stamp(now), &inner.sockets)
                .map(|t| t.total_micros());
            inner.timer_stale = false;
        }
        inner.next_at.map(|t| u64::try_from(t).unwrap_or(0))
    }
}

/// The waiting [`Platform`] of a [`Selector`] over these sockets: before
/// each sleep it runs the stack if there is work (see [`Net`]), and it
/// sleeps no later than smoltcp's next timer, through the machine's
/// [`Idle`](crate::Idle) (masked check, `wfi`). The NIC's readiness is part
/// of the masked check, so a frame arriving after the stack ran ends the
/// sleep at once.
pub struct NetPlatform<'n> {
    net: &'n Net,
}

impl Platform for NetPlatform<'_> {
    fn now(&self) -> Option<Duration> {
        Some(crate::now())
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        let now = crate::now_micros();
        self.net.service(now);
        let timer = self.net.timer(now);
        // Due already (smoltcp wants to be polled again at once): no sleep.
        let due = timer.is_some_and(|t| t <= now);
        let deadline = match (deadline, timer.map(Duration::from_micros)) {
            (Some(d), Some(t)) => Some(d.min(t)),
            (d, t) => d.or(t),
        };
        crate::meter::metered(|| {
            crate::Idle.sleep(deadline, || {
                woken() || due || NET_READY.get(NIC).contains(Events::READ)
            })
        });
        // Woken by the NIC: run the stack now, so that the backend's next
        // look sees what the frame made ready (not one empty pass first).
        if NET_READY.get(NIC).contains(Events::READ) {
            self.net.service(crate::now_micros());
        }
    }
}

/// The stack, once, in a `static` (its `Interface` and counters; the
/// buffers are in [`Storage`]).
pub struct NetCell(UnsafeCell<MaybeUninit<Net>>, AtomicBool);
// SAFETY: initialised once (guarded by the flag), then only shared.
unsafe impl Sync for NetCell {}

impl NetCell {
    /// Empty.
    pub const fn new() -> Self {
        Self(
            UnsafeCell::new(MaybeUninit::uninit()),
            AtomicBool::new(false),
        )
    }

    /// Puts `net` in; `None` if it was done before.
    pub fn init(&'static self, net: Net) -> Option<&'static Net> {
        if self.1.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: the flag makes this the only write; the value is
        // initialised before the shared reference is made.
        Some(unsafe { (*self.0.get()).write(net) })
    }
}

impl Default for NetCell {
    fn default() -> Self {
        Self::new()
    }
}
