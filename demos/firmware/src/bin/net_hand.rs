//! The cost comparison's baseline: the same TCP echo as `net-echo`, written
//! as smoltcp's own examples are, a hand-rolled poll loop: poll the
//! interface, walk the sockets, sleep until the NIC's interrupt or smoltcp's
//! `poll_delay`. Same driver, same socket pool and buffers, the same
//! per-connection buffer and back-pressure (a connection whose echo waits
//! is not read), the same masked check-then-`wfi` sleep; every socket
//! listens on the port (smoltcp's way: no accept). No selector. It logs the
//! seed's lines as `net-echo` does (`accept`, `read`, `received`, `closing`,
//! `waiting for I/O` while a connection's first bytes come), so that the two
//! differ only in how they wait and dispatch.
#![no_std]
#![no_main]

#[cfg(not(machine = "lm3s6965evb"))]
compile_error!("net-hand: lm3s6965evb only (its Ethernet controller)");
#[cfg(feature = "embassy")]
compile_error!(
    "net-hand: build it without the `embassy` feature (with it, the Ethernet interrupt wakes embassy-net's task, not the NIC's readiness)"
);

use defmt::info;
use ioselect_firmware::net::{self, NET_READY, NIC, SOCKETS, seed_log};
use ioselect_firmware::{self as fw, Events, Idle, Platform, enet::Enet};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant;
use smoltcp::wire::{IpEndpoint, Ipv4Address};

const PORT: u16 = 10000;
/// Bytes per connection whose reads are logged line by line (as in
/// `net-echo`).
const VERBOSE: u32 = 64;
static POLLS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

#[derive(Clone, Copy)]
struct Conn {
    open: bool,
    peer: IpEndpoint,
    buf: [u8; 1024],
    start: usize,
    end: usize,
    received: u32,
    reads: u32,
    busy_at: u64,
}

/// The connections' state, out of the stack (as `net-echo` keeps it).
static CONNS: fw::Once<[Conn; SOCKETS]> = fw::Once::new([CLOSED; SOCKETS]);

const CLOSED: Conn = Conn {
    open: false,
    peer: seed_log::NOBODY,
    buf: [0; 1024],
    start: 0,
    end: 0,
    received: 0,
    reads: 0,
    busy_at: 0,
};

fn now() -> Instant {
    Instant::from_micros(i64::try_from(fw::now_micros()).unwrap_or(i64::MAX))
}

fn closed(c: &mut Conn) {
    if c.open && c.received > VERBOSE {
        seed_log::closed(
            c.received,
            c.reads,
            c.busy_at,
            POLLS.load(core::sync::atomic::Ordering::Relaxed),
        );
    }
    (c.start, c.end, c.received, c.reads) = (0, 0, 0, 0);
}

/// One socket's turn: accept, echo, close on end of file. Returns whether
/// it logged a line.
fn serve(s: &mut tcp::Socket<'_>, c: &mut Conn) -> bool {
    if !s.is_open() {
        closed(c);
        c.open = false;
        let _ = s.listen(PORT);
        return false;
    }
    let mut logged = false;
    if !c.open {
        if !matches!(s.state(), State::Established | State::CloseWait) {
            return false;
        }
        c.open = true;
        c.peer = s.remote_endpoint().unwrap_or(seed_log::NOBODY);
        c.busy_at = fw::meter::busy_ns();
        seed_log::accept(c.peer);
        logged = true;
    }
    if c.start < c.end {
        if let Ok(n) = s.send_slice(&c.buf[c.start..c.end]) {
            c.start += n;
        }
        if c.start < c.end {
            return logged;
        }
    }
    if s.can_recv() || (!s.may_recv() && s.state() == State::CloseWait) {
        let verbose = c.received < VERBOSE;
        if verbose {
            seed_log::read(c.peer);
            logged = true;
        }
        match s.recv_slice(&mut c.buf) {
            Ok(n) if n > 0 => {
                c.received += n as u32;
                c.reads += 1;
                if verbose {
                    seed_log::received(&c.buf[..n]);
                }
                let sent = s.send_slice(&c.buf[..n]).unwrap_or(0);
                (c.start, c.end) = (sent, n);
            }
            _ => {
                info!("    closing");
                logged = true;
                s.close();
            }
        }
    }
    logged
}

#[cortex_m_rt::entry]
fn main() -> ! {
    fw::stack::paint();
    fw::init();
    let Some((mut dev, mac)) = Enet::init() else {
        panic!("Ethernet taken")
    };
    let Some(storage) = net::storage() else {
        panic!("storage taken")
    };
    let (slots, rx, tx) = storage.parts();
    let ip = Ipv4Address::new(10, 0, 2, 15);
    let mut iface = net::interface(&mut dev, mac, (ip, 24), Ipv4Address::new(10, 0, 2, 2));
    let mut set = SocketSet::new(&mut slots[..]);
    let mut handles: [Option<SocketHandle>; SOCKETS] = [None; SOCKETS];
    for ((h, rx), tx) in handles.iter_mut().zip(rx.iter_mut()).zip(tx.iter_mut()) {
        let mut s = tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[..]),
            tcp::SocketBuffer::new(&mut tx[..]),
        );
        let _ = s.listen(PORT);
        *h = Some(set.add(s));
    }
    let Some(conns) = CONNS.take() else {
        panic!("connections taken")
    };
    seed_log::starting(ip, PORT, " (hand-rolled poll loop)");
    let mut logged = true;
    loop {
        if logged {
            info!("waiting for I/O");
            logged = false;
        }
        let t = now();
        iface.poll(t, &mut dev, &mut set);
        POLLS.store(
            POLLS.load(core::sync::atomic::Ordering::Relaxed) + 1,
            core::sync::atomic::Ordering::Relaxed,
        );
        for (h, c) in handles.iter().zip(conns.iter_mut()) {
            if let Some(h) = *h {
                logged |= serve(set.get_mut::<tcp::Socket<'_>>(h), c);
            }
        }
        let t = now();
        match iface.poll_delay(t, &set) {
            Some(d) if d.total_micros() == 0 => {}
            delay => {
                let deadline = delay.map(|d| {
                    core::time::Duration::from_micros(fw::now_micros() + d.total_micros())
                });
                fw::meter::metered(|| {
                    Idle.sleep(deadline, || NET_READY.get(NIC).contains(Events::READ))
                });
            }
        }
    }
}
