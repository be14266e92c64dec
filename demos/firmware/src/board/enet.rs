//! lm3s6965evb's Ethernet controller (the LM3S6965's integrated MAC; QEMU's
//! `stellaris_enet` model): one register-level driver, interrupt-driven, with
//! two faces: a smoltcp [`Device`] (the selectable sockets of `net-echo` and
//! the poll loop of `net-hand`) and, with the `embassy` feature, an
//! `embassy_net_driver::Driver` (`crate::embassy`, for `net-embassy`).
//!
//! Registers as in the LM3S6965 data sheet (Ethernet Controller) and QEMU's
//! `hw/net/stellaris_enet.c`: `MACRIS`/`MACIACK` (0x00), `MACIM` (0x04),
//! `MACRCTL` (0x08), `MACTCTL` (0x0C), `MACDATA` (0x10), `MACIA0/1` (0x14,
//! 0x18), `MACNP` (0x34, frames in the receive FIFO), `MACTR` (0x38).
//!
//! - Receive: the interrupt masks the controller's interrupts and says a
//!   frame waits: it sets the NIC's readiness ([`NIC`](crate::net::NIC)
//!   `READ` in [`NET_READY`](crate::net::NET_READY)), or with the `embassy`
//!   feature wakes the network task's waker instead. The driver hands out a
//!   frame while `MACNP` says one waits, and when none does it acknowledges
//!   the interrupt, looks again, and only then clears the readiness (or has
//!   registered the waker) and unmasks: a frame that arrives in between keeps
//!   the interrupt's status bit set and raises it again at the unmask, never
//!   lost (level-triggered, like the UART).
//! - Transmit: a token is handed out only while the transmitter is idle
//!   (`MACTR.NEWTX` clear); the driver never waits for it. A frame is
//!   written word by word into the transmit FIFO (first word: the payload
//!   length and the first two bytes of the frame), then `NEWTX` starts it.
//!   A busy transmitter makes smoltcp keep the packet for its next poll; the
//!   embassy driver also unmasks the "transmit FIFO empty" interrupt
//!   (`TXEMP`), which wakes the network task when the frame is out. QEMU
//!   sends a frame at once, within the write that sets `NEWTX`, and reads
//!   `MACTR` as 0 (`stellaris_enet_read`): under QEMU the transmitter is
//!   never busy. The `tx-busy` feature (fault injection, for ci.sh) makes
//!   every third look find it busy, so that the busy paths of `receive`
//!   and `transmit` run under QEMU: busy with the last frame handed to it,
//!   still "going out". A look is only made busy when that frame exists:
//!   QEMU's `TXEMP` for it is latched in `MACRIS`, unacknowledged (QEMU
//!   sets it in `stellaris_enet_send` after every frame and clears it only
//!   at a `MACIACK` write of it; an `MACIM` write re-evaluates its
//!   interrupt line, `(ris & im) != 0`). The embassy driver then unmasks
//!   `TXEMP` without acknowledging it first (the latched bit is the end of
//!   the frame pretended in flight), so QEMU raises the controller's real
//!   interrupt, whose handler counts the wake-up and acknowledges `TXEMP`
//!   (the next injected busy look needs a frame sent after it). The
//!   selector's driver never acknowledges `TXEMP` after `init`: for it, a
//!   look is made busy once any frame has been sent. Once the transmitter
//!   is found idle again the embassy driver masks `TXEMP` (otherwise the
//!   end of the next frame would wake the task for nothing).
//! - A frame read from the FIFO is the length word (frame length + 6), the
//!   frame, and its FCS; the driver drops the FCS.

use core::ptr::{read_volatile, write_volatile};

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::Events;
use crate::net::{NET_READY as READY, NIC};

/// The Ethernet controller's interrupt number (LM3S6965: 42).
pub const IRQ: i16 = 42;
const BASE: usize = 0x4004_8000;
const RIS: usize = BASE;
const IM: usize = BASE + 0x04;
const RCTL: usize = BASE + 0x08;
const TCTL: usize = BASE + 0x0C;
const DATA: usize = BASE + 0x10;
const IA0: usize = BASE + 0x14;
const IA1: usize = BASE + 0x18;
const NP: usize = BASE + 0x34;
const TR: usize = BASE + 0x38;

const INT_RX: u32 = 1 << 0;
#[cfg_attr(not(any(feature = "embassy", feature = "tx-busy")), allow(dead_code))]
const INT_TXEMP: u32 = 1 << 2;
const RCTL_RXEN: u32 = 1 << 0;
const RCTL_RSTFIFO: u32 = 1 << 4;
const TCTL_TXEN: u32 = 1 << 0;
const TCTL_PADEN: u32 = 1 << 1;
const TCTL_CRC: u32 = 1 << 2;
const TR_NEWTX: u32 = 1 << 0;

/// The largest frame handled (without FCS): Ethernet's 1514 bytes.
pub const MTU: usize = 1514;
/// Buffer size: a frame, its FCS and the length word's 2 bytes, in words.
const BUF: usize = 1536;

fn read(reg: usize) -> u32 {
    // SAFETY: a register of the LM3S6965's Ethernet controller, always
    // mapped on lm3s6965evb.
    unsafe { read_volatile(reg as *const u32) }
}

fn write(reg: usize, value: u32) {
    // SAFETY: a register of the LM3S6965's Ethernet controller, always
    // mapped on lm3s6965evb.
    unsafe { write_volatile(reg as *mut u32, value) }
}

/// Counters of the driver, for the logs.
#[derive(Clone, Copy, Default, Debug)]
pub struct Stats {
    /// Frames received.
    pub rx: u32,
    /// Frames sent.
    pub tx: u32,
    /// Frames dropped: longer than [`MTU`], or shorter than a header.
    pub rx_dropped: u32,
    /// Times the driver found the transmitter busy: `transmit` handed out
    /// no token, or a received frame was left in the FIFO.
    pub tx_busy: u32,
    /// Feature `tx-busy`: of those, the times a received frame was left in
    /// the FIFO (the rest: `transmit` handed out no token).
    #[cfg(feature = "tx-busy")]
    pub rx_held: u32,
}

/// The frame buffers, in `.bss`; handed out once, by [`Enet::init`].
struct Buffers(core::cell::UnsafeCell<[[u32; BUF / 4]; 2]>);
// SAFETY: handed out once (guarded by TAKEN).
unsafe impl Sync for Buffers {}
static BUFFERS: Buffers = Buffers(core::cell::UnsafeCell::new([[0; BUF / 4]; 2]));
static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// The Ethernet controller, with one receive and one transmit buffer
/// (static: the driver itself is a few words).
pub struct Enet {
    rx: &'static mut [u32; BUF / 4],
    tx: &'static mut [u32; BUF / 4],
    /// Counters.
    pub stats: Stats,
    /// Feature `tx-busy`: looks at the transmitter since the last injected
    /// busy one, 0 to 2 (a cycle, so no count wraps).
    #[cfg(feature = "tx-busy")]
    tx_phase: u8,
    /// Feature `tx-busy`: the last look at the transmitter was made busy.
    #[cfg(feature = "tx-busy")]
    injected: bool,
}

/// Called by the Ethernet interrupt: masks the controller's interrupts until
/// the driver has drained the FIFO, and says a frame waits: the NIC is ready
/// for `READ`.
#[cfg(not(feature = "embassy"))]
pub(crate) fn on_interrupt() {
    write(IM, 0);
    READY.set(NIC, Events::READ);
}

/// Called by the Ethernet interrupt (receive, or with a transmit waiting,
/// transmit FIFO empty): masks the controller's interrupts until the driver
/// has drained the FIFO, and wakes the network task. With the `tx-busy`
/// feature it also counts the wake-ups by `TXEMP` and acknowledges it.
#[cfg(feature = "embassy")]
pub(crate) fn on_interrupt() {
    #[cfg(feature = "tx-busy")]
    let raised = read(RIS) & read(IM);
    write(IM, 0);
    #[cfg(feature = "tx-busy")]
    if raised & INT_TXEMP != 0 {
        write(RIS, INT_TXEMP);
        TX_EMPTY_WAKES.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }
    crate::embassy::NIC_WAKER.wake();
}

/// Features `embassy` and `tx-busy`: the Ethernet interrupts that woke the
/// network task by `TXEMP` (the end of a frame, with a transmit waiting).
#[cfg(all(feature = "embassy", feature = "tx-busy"))]
static TX_EMPTY_WAKES: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Features `embassy` and `tx-busy`: the wake-ups of the network task by
/// the `TXEMP` interrupt so far.
#[cfg(all(feature = "embassy", feature = "tx-busy"))]
pub fn tx_empty_wakes() -> u32 {
    TX_EMPTY_WAKES.load(core::sync::atomic::Ordering::Relaxed)
}

/// What [`Enet::next_frame`] found.
pub(crate) enum Rx {
    /// A frame of this length is in the receive buffer.
    Frame(usize),
    /// No frame waits; the receive interrupt is unmasked.
    Empty,
    /// A frame waits, but the transmitter is busy (an answer could not be
    /// sent): the frame stays in the FIFO.
    TxBusy,
}

impl Enet {
    /// Resets the FIFOs, enables receive and transmit (padding, FCS added by
    /// the hardware) and the receive interrupt. Returns the controller and
    /// its MAC address (QEMU's: `52:54:00:12:34:56` unless set otherwise).
    /// `None` after the first call (one controller, one set of buffers).
    pub fn init() -> Option<(Self, [u8; 6])> {
        if TAKEN.swap(true, core::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        // SAFETY: TAKEN makes this the only reference ever handed out.
        let [rx, tx] = unsafe { &mut *BUFFERS.0.get() };
        write(IM, 0);
        write(RCTL, RCTL_RSTFIFO);
        write(RCTL, RCTL_RXEN);
        write(TCTL, TCTL_TXEN | TCTL_PADEN | TCTL_CRC);
        write(RIS, !0); // acknowledge everything
        let (a, b) = (read(IA0).to_le_bytes(), read(IA1).to_le_bytes());
        let mac = [a[0], a[1], a[2], a[3], b[0], b[1]];
        write(IM, INT_RX);
        // SAFETY: the handler (`on_interrupt`) is ready.
        unsafe { cortex_m::peripheral::NVIC::unmask(super::Irq::Ethernet) };
        let enet = Self {
            rx,
            tx,
            stats: Stats::default(),
            #[cfg(feature = "tx-busy")]
            tx_phase: 0,
            #[cfg(feature = "tx-busy")]
            injected: false,
        };
        Some((enet, mac))
    }

    /// Reads the next frame from the FIFO into the receive buffer; returns
    /// its length (0: dropped).
    fn read_frame(&mut self) -> usize {
        let first = read(DATA);
        // The first word: frame length + 6 (the length's 2 bytes, the FCS's
        // 4) in its low half, the frame's first 2 bytes in its high half.
        let total = (first & 0xffff) as usize;
        let words = total.div_ceil(4);
        if !(20..=BUF).contains(&total) {
            // Drain and drop it.
            for _ in 1..words {
                read(DATA);
            }
            self.stats.rx_dropped += 1;
            return 0;
        }
        self.rx[0] = first;
        for w in 1..words {
            self.rx[w] = read(DATA);
        }
        self.stats.rx += 1;
        total - 6
    }

    /// The next frame: read from the FIFO into the receive buffer (frames
    /// too long or too short are dropped and counted), unless the
    /// transmitter is busy. When none waits: acknowledges the receive
    /// interrupt, looks again, then runs `idle` and unmasks the interrupts
    /// `unmask` (a frame that came after the first look raises the
    /// interrupt again once unmasked).
    pub(crate) fn next_frame(&mut self, unmask: u32, idle: impl FnOnce()) -> Rx {
        loop {
            if read(NP) == 0 {
                write(RIS, INT_RX);
                if read(NP) != 0 {
                    continue;
                }
                idle();
                write(IM, unmask);
                return Rx::Empty;
            }
            if self.tx_busy() {
                #[cfg(feature = "tx-busy")]
                {
                    self.stats.rx_held += 1;
                }
                return Rx::TxBusy;
            }
            let len = self.read_frame();
            if len > 0 {
                return Rx::Frame(len);
            }
        }
    }

    /// Whether the transmitter is still sending (counted).
    pub(crate) fn tx_busy(&mut self) -> bool {
        if read(TR) & TR_NEWTX != 0 || self.injected_busy() {
            self.stats.tx_busy += 1;
            return true;
        }
        false
    }

    /// Feature `tx-busy`: every third look at the transmitter finds it
    /// busy, still sending the last frame handed to it, if one was handed
    /// to it since `TXEMP` was last acknowledged (QEMU's `TXEMP` for it is
    /// latched). The look after a busy one never is, as a frame of a real
    /// controller is out by then.
    #[cfg(feature = "tx-busy")]
    fn injected_busy(&mut self) -> bool {
        self.tx_phase = if self.tx_phase == 2 {
            0
        } else {
            self.tx_phase + 1
        };
        self.injected = self.tx_phase == 0 && read(RIS) & INT_TXEMP != 0;
        self.injected
    }

    /// Without feature `tx-busy`: the transmitter's own flag alone.
    #[cfg(not(feature = "tx-busy"))]
    #[allow(clippy::unused_self)]
    fn injected_busy(&mut self) -> bool {
        false
    }

    /// For a transmit that found the transmitter busy: acknowledges
    /// `TXEMP`, looks again, and unmasks `TXEMP` if it is still busy, so
    /// that the end of its frame raises the interrupt. Returns whether it
    /// is idle now. Feature `tx-busy`, after an injected busy look: unmasks
    /// `TXEMP` at once, unacknowledged (latched by the end of the frame
    /// pretended in flight: QEMU raises the interrupt at the unmask).
    #[cfg(feature = "embassy")]
    pub(crate) fn arm_tx_empty(&mut self) -> bool {
        #[cfg(feature = "tx-busy")]
        let injected = self.injected;
        #[cfg(not(feature = "tx-busy"))]
        let injected = false;
        if !injected {
            write(RIS, INT_TXEMP);
            if read(TR) & TR_NEWTX == 0 {
                return true;
            }
        }
        // A read-modify-write the interrupt (which writes 0) must not split.
        critical_section::with(|_| write(IM, read(IM) | INT_TXEMP));
        false
    }

    /// Masks `TXEMP` again (no transmit waits for the transmitter).
    #[cfg(feature = "embassy")]
    pub(crate) fn disarm_tx_empty(&mut self) {
        // A read-modify-write the interrupt (which writes 0) must not split.
        critical_section::with(|_| write(IM, read(IM) & !INT_TXEMP));
    }

    /// The tokens for the frame of `len` bytes in the receive buffer.
    pub(crate) fn tokens(&mut self, len: usize) -> (RxToken<'_>, TxToken<'_>) {
        let rx = RxToken { buf: self.rx, len };
        let tx = TxToken {
            buf: self.tx,
            sent: &mut self.stats.tx,
        };
        (rx, tx)
    }

    /// A token for a frame to send (the transmitter is idle).
    pub(crate) fn tx_token(&mut self) -> TxToken<'_> {
        TxToken {
            buf: self.tx,
            sent: &mut self.stats.tx,
        }
    }
}

/// The receive interrupt alone, for [`Enet::next_frame`].
#[cfg(feature = "embassy")]
pub(crate) const RX_ONLY: u32 = INT_RX;
/// The receive and the "transmit FIFO empty" interrupts.
#[cfg(feature = "embassy")]
pub(crate) const RX_AND_TX_EMPTY: u32 = INT_RX | INT_TXEMP;

/// A received frame, read from the FIFO.
pub struct RxToken<'a> {
    buf: &'a mut [u32; BUF / 4],
    len: usize,
}

/// Room for a frame to send.
pub struct TxToken<'a> {
    buf: &'a mut [u32; BUF / 4],
    sent: &'a mut u32,
}

fn bytes_mut(words: &mut [u32; BUF / 4]) -> &mut [u8; BUF] {
    // SAFETY: [u32; N/4] and [u8; N] have the same size, u8's alignment
    // is 1, and every bit pattern is a valid u8; the borrow is unique.
    unsafe { &mut *(words as *mut [u32; BUF / 4]).cast::<[u8; BUF]>() }
}

impl RxToken<'_> {
    /// The frame (it starts after the length's 2 bytes).
    pub(crate) fn frame(&mut self) -> &mut [u8] {
        &mut bytes_mut(self.buf)[2..2 + self.len]
    }
}

impl TxToken<'_> {
    /// Lets `f` write a frame of `len` bytes (at most [`MTU`]) and sends it.
    pub(crate) fn send<R>(self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let len = len.min(MTU);
        let buf = bytes_mut(self.buf);
        let r = f(&mut buf[2..2 + len]);
        // The first word's low half: the payload length (the frame less its
        // 14-byte header).
        let payload = len.saturating_sub(14) as u16;
        buf[..2].copy_from_slice(&payload.to_le_bytes());
        for &w in &self.buf[..(len + 2).div_ceil(4)] {
            write(DATA, w);
        }
        write(TR, TR_NEWTX);
        *self.sent += 1;
        r
    }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let mut token = self;
        f(token.frame())
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.send(len, f)
    }
}

impl Device for Enet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        match self.next_frame(INT_RX, || READY.clear(NIC, Events::READ)) {
            Rx::Frame(len) => Some(self.tokens(len)),
            // A busy transmitter leaves the readiness set: the next poll
            // looks again.
            Rx::Empty | Rx::TxBusy => None,
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if self.tx_busy() {
            return None;
        }
        Some(self.tx_token())
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}
