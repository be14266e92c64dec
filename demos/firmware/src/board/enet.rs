//! lm3s6965evb's Ethernet controller (the LM3S6965's integrated MAC; QEMU's
//! `stellaris_enet` model) as a smoltcp [`Device`], interrupt-driven.
//!
//! Registers as in the LM3S6965 data sheet (Ethernet Controller) and QEMU's
//! `hw/net/stellaris_enet.c`: `MACRIS`/`MACIACK` (0x00), `MACIM` (0x04),
//! `MACRCTL` (0x08), `MACTCTL` (0x0C), `MACDATA` (0x10), `MACIA0/1` (0x14,
//! 0x18), `MACNP` (0x34, frames in the receive FIFO), `MACTR` (0x38).
//!
//! - Receive: the receive interrupt sets the NIC's readiness
//!   ([`NIC`](crate::net::NIC) `READ` in [`NET_READY`](crate::net::NET_READY)) and masks
//!   itself; [`Enet::receive`] hands out a frame while `MACNP` says one
//!   waits, and when none does it acknowledges the interrupt, looks again,
//!   and only then clears the readiness and unmasks: a frame that arrives in
//!   between raises the interrupt again, never lost (level-triggered, like
//!   the UART).
//! - Transmit: [`Enet::transmit`] hands out a token only while the
//!   transmitter is idle (`MACTR.NEWTX` clear); it never waits for it. A frame
//!   is written word by word into the transmit FIFO (first word: the payload
//!   length and the first two bytes of the frame), then `NEWTX` starts it.
//!   QEMU sends a frame at once; the hardware clears `NEWTX` when done. A busy
//!   transmitter makes smoltcp keep the packet for its next poll.
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
    /// Times `transmit` found the transmitter busy (no token).
    pub tx_busy: u32,
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
}

/// Called by the Ethernet interrupt: the NIC is ready for `READ` (a frame
/// waits); the receive interrupt is masked until the driver has drained
/// the FIFO.
pub(crate) fn on_interrupt() {
    READY.set(NIC, Events::READ);
    write(IM, 0);
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
}

/// A received frame, read from the FIFO.
pub struct RxToken<'a> {
    buf: &'a [u32; BUF / 4],
    len: usize,
}

/// Room for a frame to send.
pub struct TxToken<'a> {
    buf: &'a mut [u32; BUF / 4],
    sent: &'a mut u32,
}

fn bytes(words: &[u32; BUF / 4]) -> &[u8; BUF] {
    // SAFETY: [u32; N/4] and [u8; N] have the same size, u8's alignment
    // is 1, and every bit pattern is a valid u8.
    unsafe { &*(words as *const [u32; BUF / 4]).cast::<[u8; BUF]>() }
}

fn bytes_mut(words: &mut [u32; BUF / 4]) -> &mut [u8; BUF] {
    // SAFETY: as in `bytes`; the borrow is unique.
    unsafe { &mut *(words as *mut [u32; BUF / 4]).cast::<[u8; BUF]>() }
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        // The frame starts after the length's 2 bytes.
        f(&bytes(self.buf)[2..2 + self.len])
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
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

impl Device for Enet {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken<'_>, TxToken<'_>)> {
        loop {
            if read(NP) == 0 {
                // Acknowledge, then look again: a frame that came after the
                // first look raises the interrupt again once unmasked.
                write(RIS, INT_RX);
                if read(NP) != 0 {
                    continue;
                }
                READY.clear(NIC, Events::READ);
                write(IM, INT_RX);
                return None;
            }
            if read(TR) & TR_NEWTX != 0 {
                // No room to answer: leave the frame for the next poll.
                self.stats.tx_busy += 1;
                return None;
            }
            let len = self.read_frame();
            if len > 0 {
                let rx = RxToken { buf: self.rx, len };
                let tx = TxToken {
                    buf: self.tx,
                    sent: &mut self.stats.tx,
                };
                return Some((rx, tx));
            }
        }
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        if read(TR) & TR_NEWTX != 0 {
            self.stats.tx_busy += 1;
            return None;
        }
        Some(TxToken {
            buf: self.tx,
            sent: &mut self.stats.tx,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MTU;
        caps.max_burst_size = Some(1);
        caps
    }
}
