//! The seed's echo server on a microcontroller: lm3s6965evb's UART0 is the
//! connection. Its receive interrupt makes it ready for `READ`, room in its
//! transmit FIFO for `WRITE`; the key carries its handler, as the seed's
//! server keys do, and holds `WRITE` interest only while output is pending,
//! switching with `modify` the way the seed's client does.
//!
//! The host (`qemu-run --echo`) sends the seed's two messages, a 64 KiB
//! stream, a break, a last line, then EOT (0x04): the server echoes
//! everything before it, closes and exits 0. Reads are logged for the
//! seed's messages (the first 41 bytes); the stream is summed up at the
//! close. Receive errors (overrun, break, parity, framing) are logged as
//! they come and counted at the close.
#![no_std]
#![no_main]

#[cfg(not(machine = "lm3s6965evb"))]
compile_error!("echo: lm3s6965evb only (its UART0)");

use defmt::info;
use ioselect_firmware::uart::{self, RxErrors};
use ioselect_firmware::{
    self as fw, Events, Idle, READY, RawFd, SOURCES, Selector, SoftBackend, UART,
};

type Sel = Selector<SoftBackend<'static, SOURCES, Idle>, Handler, SOURCES>;

/// The key's data: its callback.
#[derive(Clone, Copy)]
struct Handler(fn(&mut Sel, RawFd, Events, &mut Conn));

const EOT: u8 = 4;
/// Bytes of the seed's two messages: logged read by read.
const SEED_BYTES: u32 = 41;

/// The connection's state: a ring of received bytes not yet echoed.
struct Conn {
    ring: [u8; 1024],
    head: usize,
    len: usize,
    closing: bool,
    closed: bool,
    received: u32,
    errors: RxErrors,
    reads: u32,
    writes: u32,
    switches: u32,
}

impl Conn {
    fn want(&self) -> Events {
        let mut events = Events::empty();
        if !self.closing && self.len < self.ring.len() {
            events |= Events::READ;
        }
        if self.len > 0 {
            events |= Events::WRITE;
        }
        events
    }
}

/// Sets the key's interest to what the connection needs now: `WRITE` only
/// while output is pending, `READ` while there is room.
fn update(sel: &mut Sel, fd: RawFd, conn: &mut Conn) {
    let want = conn.want();
    let have = sel.get_key(fd).map_or(Events::empty(), |k| k.events());
    if want == have {
        return;
    }
    conn.switches += 1;
    let verbose = conn.received <= SEED_BYTES;
    if want.is_empty() {
        if verbose {
            info!("    closing");
        }
        if sel.unregister(fd).is_err() {
            panic!("unregister");
        }
        conn.closed = true;
        return;
    }
    if verbose {
        if want.contains(Events::WRITE) && !have.contains(Events::WRITE) {
            info!("    output pending: switching to read-write");
        } else if !want.contains(Events::WRITE) {
            info!("    all sent: switching to read-only");
        }
    }
    uart::want_write(want.contains(Events::WRITE));
    if sel.modify_events(fd, want).is_err() {
        panic!("modify");
    }
}

fn on_io(sel: &mut Sel, fd: RawFd, mask: Events, conn: &mut Conn) {
    let verbose = conn.received <= SEED_BYTES;
    if mask.contains(Events::READ) {
        if verbose {
            info!("read(uart0)");
        }
        conn.reads += 1;
        let cap = conn.ring.len();
        let mut got = [0u8; 64];
        let room = (cap - conn.len).min(got.len());
        let before = conn.errors;
        let n = uart::recv(&mut got[..room], &mut conn.errors);
        if conn.errors != before {
            info!("    receive error: now {}", conn.errors);
        }
        let mut data = &got[..n];
        if let Some(end) = data.iter().position(|&b| b == EOT) {
            data = &data[..end];
            conn.closing = true;
        }
        for &b in data {
            conn.ring[(conn.head + conn.len) % cap] = b;
            conn.len += 1;
        }
        conn.received += data.len() as u32;
        if verbose {
            match core::str::from_utf8(data) {
                Ok(text) => info!("    received b'{=str}'", text),
                Err(_) => info!("    received {=usize} bytes", data.len()),
            }
        }
    }
    if mask.contains(Events::WRITE) && conn.len > 0 {
        let cap = conn.ring.len();
        let end = (conn.head + conn.len).min(cap);
        let n = uart::send(&conn.ring[conn.head..end]);
        conn.head = (conn.head + n) % cap;
        conn.len -= n;
        conn.writes += 1;
    }
    update(sel, fd, conn);
}

#[cortex_m_rt::entry]
fn main() -> ! {
    fw::init();
    uart::init();
    let mut sel: Sel = Selector::new(SoftBackend::with_platform(&READY, Idle));
    let mut conn = Conn {
        ring: [0; 1024],
        head: 0,
        len: 0,
        closing: false,
        closed: false,
        received: 0,
        errors: RxErrors::default(),
        reads: 0,
        writes: 0,
        switches: 0,
    };
    info!("starting up on uart0");
    if sel.register(UART, Events::READ, Handler(on_io)).is_err() {
        panic!("register");
    }
    while !conn.closed {
        if conn.received <= SEED_BYTES {
            info!("waiting for I/O");
        }
        if sel.select(None).is_err() {
            panic!("select");
        }
        while let Some((key, mask)) = sel.next_ready() {
            let (fd, Handler(callback)) = (key.fd(), *key.data());
            callback(&mut sel, fd, mask, &mut conn);
        }
    }
    let e = conn.errors;
    info!(
        "closed after {=u32} bytes echoed; receive errors: {=u32} overrun, {=u32} break, {=u32} parity, {=u32} framing",
        conn.received, e.overrun, e.brk, e.parity, e.framing
    );
    info!(
        "    {=u32} reads, {=u32} writes, {=u32} interest switches [measured]",
        conn.reads, conn.writes, conn.switches
    );
    info!("shutting down");
    fw::exit(0)
}
