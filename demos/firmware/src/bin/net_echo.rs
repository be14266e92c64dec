//! The seed's TCP echo server (PyMOTW's `selectors_echo_server.py`) on a
//! microcontroller: lm3s6965evb's Ethernet, smoltcp, selectable sockets
//! (`ioselect_firmware::net`), no heap, no executor.
//!
//! In the seed's shape: the listener is registered with `accept` as its
//! data; each accepted connection with `read`, which echoes and unregisters
//! on close. The seed's `sendall` becomes what a non-blocking server does:
//! what the transmit buffer does not take waits in the connection's buffer,
//! the key switches to `WRITE` until it is sent, and the connection is not
//! read meanwhile (back-pressure: a peer that does not read is not read
//! either). Serves until QEMU is stopped (`net-echo.sh`).
//!
//! The seed's lines are logged for each connection's first bytes (up to
//! [`VERBOSE`]); longer streams are summed up when they close.
#![no_std]
#![no_main]

#[cfg(not(machine = "lm3s6965evb"))]
compile_error!("net-echo: lm3s6965evb only (its Ethernet controller)");
#[cfg(feature = "embassy")]
compile_error!(
    "net-echo: build it without the `embassy` feature (with it, the Ethernet interrupt wakes embassy-net's task, not the NIC's readiness)"
);

use defmt::{info, warn};
use ioselect_firmware::net::{self, Error, Net, NetCell, SOCKETS, seed_log};
use ioselect_firmware::{self as fw, Events, RawFd, enet::Enet};
use smoltcp::wire::{IpEndpoint, Ipv4Address};

/// The port the seed listens on.
const PORT: u16 = 10000;
/// Bytes per connection whose reads are logged line by line.
const VERBOSE: u32 = 64;

type Sel<'n> = net::Selector<'n, Handler>;

/// The key's data: its callback, as in the seed.
#[derive(Clone, Copy)]
struct Handler(fn(&mut Sel<'_>, &Net, RawFd, Events, &mut Conns));

/// A connection's state: what was read and not yet sent.
#[derive(Clone, Copy)]
struct Conn {
    peer: IpEndpoint,
    buf: [u8; 1024],
    start: usize,
    end: usize,
    received: u32,
    reads: u32,
    /// Busy time at `accept`, ns (see `fw::meter`).
    busy_at: u64,
}

/// The connections, by pool index; `logged`: a callback logged a line
/// since the last `waiting for I/O`.
struct Conns {
    conns: [Conn; SOCKETS],
    logged: bool,
}

/// The state of connection `fd` (a number `accept` returned): one lookup,
/// for `accept` and `read`.
fn conn(conns: &mut [Conn; SOCKETS], fd: RawFd) -> &mut Conn {
    match net::socket_index(fd) {
        Some(i) => &mut conns[i],
        None => defmt::panic!("not a connection: {=i32}", fd),
    }
}

fn accept(sel: &mut Sel<'_>, net: &Net, fd: RawFd, _mask: Events, conns: &mut Conns) {
    let (conn, peer) = match net.accept(fd) {
        Ok(c) => c,
        Err(Error::WouldBlock) => return,
        Err(e) => defmt::panic!("accept: {}", e),
    };
    conns.logged = true;
    seed_log::accept(peer);
    let c = self::conn(&mut conns.conns, conn);
    (c.peer, c.start, c.end, c.received, c.reads) = (peer, 0, 0, 0, 0);
    c.busy_at = fw::meter::busy_ns();
    register(sel, conn, Handler(read));
}

/// `sel.register`, for the listener (in `main`) and each connection (in
/// `accept`): one copy of the selector's insertion, not one inlined in each.
#[inline(never)]
fn register(sel: &mut Sel<'_>, fd: RawFd, handler: Handler) {
    if sel.register(fd, Events::READ, handler).is_err() {
        panic!("register");
    }
}

/// Unregisters and closes, as the seed does on end of file.
fn close(sel: &mut Sel<'_>, net: &Net, fd: RawFd, c: &Conn) {
    if sel.unregister(fd).is_err() {
        panic!("unregister");
    }
    if net.close(fd).is_err() {
        panic!("close");
    }
    if c.received > VERBOSE {
        seed_log::closed(c.received, c.reads, c.busy_at, net.stats().0.polls);
    }
    // Fault injection (see the `tx-busy` feature): what the driver met.
    #[cfg(feature = "tx-busy")]
    {
        let driver = net.stats().1;
        info!(
            "    driver: {=u32} frames received, {=u32} sent, transmitter busy {=u32} times, {=u32} of them with a received frame held",
            driver.rx, driver.tx, driver.tx_busy, driver.rx_held
        );
    }
}

fn read(sel: &mut Sel<'_>, net: &Net, fd: RawFd, mask: Events, conns: &mut Conns) {
    let logged = &mut conns.logged;
    let c = conn(&mut conns.conns, fd);
    if mask.contains(Events::WRITE) {
        // The rest of the last read (`sendall`).
        match net.send(fd, &c.buf[c.start..c.end]) {
            Ok(n) => c.start += n,
            Err(Error::WouldBlock) => {}
            Err(e) => {
                warn!("    send: {}: closing", e);
                return close(sel, net, fd, c);
            }
        }
        if c.start == c.end && sel.modify_events(fd, Events::READ).is_err() {
            panic!("modify");
        }
        return;
    }
    let verbose = c.received < VERBOSE;
    *logged |= verbose;
    if verbose {
        seed_log::read(c.peer);
    }
    let n = match net.recv(fd, &mut c.buf) {
        Ok(0) => {
            *logged = true;
            info!("    closing");
            return close(sel, net, fd, c);
        }
        Ok(n) => n,
        Err(Error::WouldBlock) => return,
        Err(e) => {
            warn!("    recv: {}: closing", e);
            return close(sel, net, fd, c);
        }
    };
    c.received += n as u32;
    c.reads += 1;
    if verbose {
        seed_log::received(&c.buf[..n]);
    }
    let sent = match net.send(fd, &c.buf[..n]) {
        Ok(s) => s,
        Err(Error::WouldBlock) => 0,
        Err(e) => {
            warn!("    send: {}: closing", e);
            return close(sel, net, fd, c);
        }
    };
    if sent < n {
        (c.start, c.end) = (sent, n);
        if sel.modify_events(fd, Events::WRITE).is_err() {
            panic!("modify");
        }
    }
}

static NET: NetCell = NetCell::new();
/// The connections' state, out of the stack: all zeros, so in `.bss` (a
/// byte not zero would put all of it in `.data`, whose image is in flash).
static CONNS: fw::Once<Conns> = fw::Once::new(Conns {
    conns: [Conn {
        peer: seed_log::NOBODY,
        buf: [0; 1024],
        start: 0,
        end: 0,
        received: 0,
        reads: 0,
        busy_at: 0,
    }; SOCKETS],
    logged: false,
});

#[cortex_m_rt::entry]
fn main() -> ! {
    fw::stack::paint();
    fw::init();
    let Some((dev, mac)) = Enet::init() else {
        panic!("Ethernet taken")
    };
    let Some(storage) = net::storage() else {
        panic!("storage taken")
    };
    let ip = Ipv4Address::new(10, 0, 2, 15);
    let stack = Net::new(storage, dev, mac, (ip, 24), Ipv4Address::new(10, 0, 2, 2));
    let Some(net) = NET.init(stack) else {
        panic!("net taken")
    };
    let mut sel: Sel<'_> = net::Selector::new(fw::SoftBackend::with_platform(
        &net::NET_READY,
        net.platform(),
    ));
    let Some(conns) = CONNS.take() else {
        panic!("connections taken")
    };
    // `starting` logs: `waiting for I/O` follows.
    conns.logged = true;
    seed_log::starting(ip, PORT, "");
    let server = match net.listen(PORT, 5) {
        Ok(fd) => fd,
        Err(e) => defmt::panic!("listen: {}", e),
    };
    register(&mut sel, server, Handler(accept));
    loop {
        if conns.logged {
            info!("waiting for I/O");
            conns.logged = false;
        }
        if sel.select(None).is_err() {
            panic!("select");
        }
        while let Some((key, mask)) = sel.next_ready() {
            let (fd, Handler(callback)) = (key.fd(), *key.data());
            callback(&mut sel, net, fd, mask, conns);
        }
    }
}
