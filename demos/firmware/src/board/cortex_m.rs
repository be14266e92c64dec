//! Cortex-M machines: lm3s6965evb (Cortex-M3, 12.5 MHz system clock after
//! reset) and microbit (nRF51, Cortex-M0, 16 MHz). SysTick runs from the
//! processor clock and interrupts every 1 ms: the tick and the clock.
//! PendSV is the software-triggered interrupt.

use core::cell::Cell;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use cortex_m::peripheral::{SCB, SYST, syst::SystClkSource};
use cortex_m_rt::exception;

/// The QEMU machine this firmware is for.
#[cfg(machine = "lm3s6965evb")]
pub const MACHINE: &str = "lm3s6965evb";
#[cfg(machine = "microbit")]
pub const MACHINE: &str = "microbit";

#[cfg(machine = "lm3s6965evb")]
pub mod enet;

/// lm3s6965evb's interrupts this firmware enables.
#[cfg(machine = "lm3s6965evb")]
#[derive(Clone, Copy)]
pub(crate) enum Irq {
    Uart0,
    Ethernet,
}

// SAFETY: the numbers are the LM3S6965's (data sheet, interrupt table):
// UART0 is 5, the Ethernet controller 42.
#[cfg(machine = "lm3s6965evb")]
unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
    fn number(self) -> u16 {
        match self {
            Irq::Uart0 => uart::IRQ as u16,
            Irq::Ethernet => enet::IRQ as u16,
        }
    }
}

/// Processor clock, Hz. lm3s6965evb: QEMU derives it from RCC's SYSDIV
/// (reset value 15: 200 MHz / 16). microbit: nRF51's fixed 16 MHz.
#[cfg(machine = "lm3s6965evb")]
const HZ: u32 = 12_500_000;
#[cfg(machine = "microbit")]
const HZ: u32 = 16_000_000;
const PER_MS: u32 = HZ / 1000;

/// The millisecond count since `init`, 64 bits wide without 64-bit atomics
/// (thumbv6m has neither those nor compare-and-swap), kept the way embassy's
/// time drivers keep theirs: [`LOW`] is the count modulo 2^32, [`PERIOD`]
/// counts half-wraps of it (it steps when `LOW` reaches 2^31 and when it
/// wraps to 0). The SysTick handler is the only writer and stores `LOW`
/// before `PERIOD`; [`ticks`] loads `PERIOD` before `LOW`. `PERIOD`'s parity
/// says which half of `LOW` goes with it, so a reader that sees a new `LOW`
/// with the old `PERIOD` (it ran between the handler's two stores) still
/// reads the right count. The count ends at 2^63 ms (292 million years),
/// when `PERIOD` wraps.
static LOW: AtomicU32 = AtomicU32::new(0);
/// Half-wraps of [`LOW`]; see there.
static PERIOD: AtomicU32 = AtomicU32::new(0);

/// Milliseconds since `init`, from [`PERIOD`] and [`LOW`].
fn ticks() -> u64 {
    let period = PERIOD.load(Ordering::Acquire);
    let low = LOW.load(Ordering::Relaxed);
    (u64::from(period) << 31) + u64::from(low ^ ((period & 1) << 31))
}

/// The points where a counter of this clock wraps, or would in a narrower
/// scheme, for the contract's test (a timed `select` across each): `LOW`'s
/// half step (`PERIOD` steps), `LOW`'s wrap (a 32-bit count of ms stopped
/// here after 49.7 days), and 2^64 ns (where a `u64` of nanoseconds would
/// wrap). The next, `PERIOD`'s own wrap at 2^63 ms, is not reachable.
pub const CLOCK_WRAPS: [(&str, Duration); 3] = [
    (
        "2^31 ms (the period count's half step)",
        Duration::from_millis(1 << 31),
    ),
    (
        "2^32 ms (the low count's wrap)",
        Duration::from_millis(1 << 32),
    ),
    (
        "2^64 ns (a u64 of nanoseconds would wrap)",
        Duration::new(18_446_744_073, 709_551_616),
    ),
];

/// Stores `ms` (below 2^63) as [`PERIOD`] and [`LOW`]; inside a critical
/// section, so that the handler does not step them in between.
fn set_ticks(ms: u64, _cs: critical_section::CriticalSection<'_>) {
    // The low 32 bits, and the count of 2^31 ms halves (below 2^32 for
    // `ms` below 2^63): the casts keep exactly what is meant.
    LOW.store(ms as u32, Ordering::Relaxed);
    PERIOD.store((ms >> 31) as u32, Ordering::Release);
}

/// Starts the 1 ms tick and enables interrupts.
pub fn init() {
    // SAFETY: called once, at the start of `main`, before anything else
    // owns the core peripherals.
    let mut p = unsafe { cortex_m::Peripherals::steal() };
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(PER_MS - 1);
    p.SYST.clear_current();
    p.SYST.enable_interrupt();
    p.SYST.enable_counter();
    // SAFETY: the handlers are ready; nothing runs in a critical section yet.
    unsafe { cortex_m::interrupt::enable() };
}

/// The largest time `now` returned: (ms, ns within the ms).
static LAST: critical_section::Mutex<Cell<(u64, u32)>> =
    critical_section::Mutex::new(Cell::new((0, 0)));

/// Monotonic time since `init`: (ms, ns within the ms), ticks plus the part
/// of the current tick.
///
/// QEMU computes SysTick's current value from its clock, and may show the
/// counter reloaded shortly before it marks the tick pending; the time read
/// then would go back by a tick. So the clock never returns less than it
/// returned before (it stands still for that moment instead). Kept as
/// milliseconds and nanoseconds, not a `u64` of nanoseconds (which would
/// wrap after 584 years), without 64-bit division.
fn now_parts() -> (u64, u32) {
    critical_section::with(|cs| {
        let ms = ticks();
        let val = SYST::get_current();
        let (ms, cycles) = if SCB::is_pendst_pending() {
            // The counter wrapped and the handler has not run yet: the value
            // read may be from before or after the wrap; read again. QEMU
            // may still show 0 (not reloaded yet): that is the wrap itself.
            let val = SYST::get_current();
            (
                ms + 1,
                if val > PER_MS / 2 {
                    PER_MS - 1 - val
                } else {
                    0
                },
            )
        } else {
            (ms, PER_MS - 1 - val)
        };
        // cycles < PER_MS <= 16,000: cycles * 10^4 fits a u32; HZ is a
        // multiple of 10^5 (12.5 MHz, 16 MHz).
        let t = (ms, cycles * 10_000 / (HZ / 100_000));
        let last = LAST.borrow(cs);
        let t = t.max(last.get());
        last.set(t);
        t
    })
}

/// Monotonic time since `init` (see [`now_parts`]).
pub fn now() -> Duration {
    let (ms, ns) = now_parts();
    Duration::from_millis(ms) + Duration::from_nanos(u64::from(ns))
}

/// Nanoseconds since `init` in a `u64`, for the cost meter only: it wraps
/// after 584 years (the clock itself, [`now`], does not).
pub fn now_nanos() -> u64 {
    let (ms, ns) = now_parts();
    ms * 1_000_000 + u64::from(ns)
}

/// Monotonic time since `init` in microseconds, the cheap way (no 64-bit
/// division): the network stack's clock. Wraps after 584,942 years.
pub fn now_micros() -> u64 {
    let (ms, ns) = now_parts();
    ms * 1000 + u64::from(ns / 1000)
}

/// Moves the clock forward to `t` (whole milliseconds), for the tests of
/// the tick count's wraps. Never back: an earlier `t` is ignored.
pub fn skip_clock_to(t: Duration) {
    critical_section::with(|cs| {
        let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
        if ms > ticks() && ms < 1 << 63 {
            set_ticks(ms, cs);
        }
        // Within the millisecond the clock said last: the part of the
        // tick is not moved.
    });
}

/// Triggers the software interrupt (PendSV).
pub fn pend_soft() {
    SCB::set_pendsv();
}

/// Masks interrupts, runs `woken`, sleeps in `wfi` unless it said `true`,
/// and leaves PRIMASK as it found it: unmasks only if interrupts were
/// enabled on entry (a `select` inside a critical section stays in it).
/// `wfi` wakes on an interrupt that is pending while PRIMASK masks it, so
/// one that lands after the check still ends the sleep.
/// SysTick is the clock: the deadline waits for the tick after it.
pub(crate) fn masked_wait(_deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
    let enabled = interrupts_enabled();
    cortex_m::interrupt::disable();
    if !woken() {
        cortex_m::asm::wfi();
    }
    if enabled {
        // SAFETY: interrupts were enabled when this was called: this puts
        // back the state found, inside no critical section of ours.
        unsafe { cortex_m::interrupt::enable() };
    }
}

pub(crate) fn wfi() {
    cortex_m::asm::wfi();
}

/// Whether interrupts are enabled (PRIMASK clear).
pub fn interrupts_enabled() -> bool {
    cortex_m::register::primask::read().is_active()
}

/// The sleep of before the restore fix, for the control of the test: masks,
/// checks, `wfi`, then enables interrupts whatever it found.
pub(crate) fn careless_wait(woken: impl FnOnce() -> bool) {
    cortex_m::interrupt::disable();
    if !woken() {
        cortex_m::asm::wfi();
    }
    // SAFETY: deliberately wrong inside a critical section: the control
    // of the test that must catch it. Outside one it is harmless.
    unsafe { cortex_m::interrupt::enable() };
}

#[exception]
fn SysTick() {
    // The only writer of LOW and PERIOD: LOW first (see there).
    let low = LOW.load(Ordering::Relaxed).wrapping_add(1);
    LOW.store(low, Ordering::Relaxed);
    if low & 0x7FFF_FFFF == 0 {
        PERIOD.store(
            PERIOD.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Release,
        );
    }
    crate::on_tick(ticks());
}

#[exception]
fn PendSV() {
    crate::on_soft();
}

#[cfg(machine = "lm3s6965evb")]
#[exception]
unsafe fn DefaultHandler(irqn: i16) {
    if irqn == uart::IRQ {
        uart::on_interrupt();
    } else if irqn == enet::IRQ {
        enet::on_interrupt();
    } else {
        panic!("unexpected interrupt {}", irqn);
    }
}

#[exception]
unsafe fn HardFault(_frame: &cortex_m_rt::ExceptionFrame) -> ! {
    defmt::error!("hard fault");
    crate::exit(1)
}

/// lm3s6965evb's UART0 (a PL011) as a readiness source: the receive
/// interrupt makes [`UART`](crate::UART) ready for `READ`, room in the
/// transmit FIFO for `WRITE`.
///
/// Level-triggered like a socket: the handler sets the readiness and masks
/// the interrupt that caused it; the thread clears the readiness when it has
/// drained the receive FIFO (or filled the transmit FIFO) and then unmasks,
/// so an interrupt that comes in between is raised again, never lost.
///
/// Receive errors are reported, not discarded: each word read from the data
/// register carries the error bits of its byte (overrun, break, parity,
/// framing); [`recv`] counts them in the caller's [`RxErrors`] and drops
/// the bytes that are not data (a break reads as a 0 byte; a byte with a
/// framing or parity error is corrupt), keeping a byte flagged with overrun
/// (it is good: the bytes after it were lost). QEMU's model produces only
/// break (a telnet `IAC BRK` on the serial socket): it never overruns (it
/// stops taking input while the FIFO is full) and has no framing or parity
/// to get wrong, so [`decode`]'s other cases are tested by `contract`.
#[cfg(machine = "lm3s6965evb")]
pub mod uart {
    use core::ptr::{read_volatile, write_volatile};

    use crate::{Events, READY, UART};

    /// UART0's interrupt number.
    pub const IRQ: i16 = 5;
    const BASE: usize = 0x4000_C000;
    const DR: usize = BASE;
    const FR: usize = BASE + 0x18;
    const LCRH: usize = BASE + 0x2C;
    const CTL: usize = BASE + 0x30;
    const IM: usize = BASE + 0x38;
    const MIS: usize = BASE + 0x40;
    const ICR: usize = BASE + 0x44;
    const FR_RXFE: u32 = 1 << 4;
    const FR_TXFF: u32 = 1 << 5;
    const INT_RX: u32 = 1 << 4;
    const INT_TX: u32 = 1 << 5;
    const INT_RT: u32 = 1 << 6;
    /// Error bits of a data register word (LM3S6965 data sheet, UARTDR;
    /// the PL011's layout).
    const DR_FE: u32 = 1 << 8;
    const DR_PE: u32 = 1 << 9;
    const DR_BE: u32 = 1 << 10;
    const DR_OE: u32 = 1 << 11;

    /// Receive errors counted by [`recv`], one counter per kind.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, defmt::Format)]
    pub struct RxErrors {
        /// The receive FIFO was full: bytes after the one flagged were lost.
        pub overrun: u32,
        /// A break: the line held low for longer than a byte (no data).
        pub brk: u32,
        /// A parity error (the byte is dropped).
        pub parity: u32,
        /// A framing error: no valid stop bit (the byte is dropped).
        pub framing: u32,
    }

    impl RxErrors {
        /// No error at all.
        pub fn is_empty(&self) -> bool {
            *self == Self::default()
        }
    }

    /// Decodes one word of the data register: the byte, unless the word is
    /// not data (break, framing or parity error), and counts its errors in
    /// `errors`.
    pub fn decode(word: u32, errors: &mut RxErrors) -> Option<u8> {
        let count = |bit: u32, n: &mut u32| {
            if word & bit != 0 {
                *n = n.wrapping_add(1);
            }
        };
        count(DR_OE, &mut errors.overrun);
        count(DR_BE, &mut errors.brk);
        count(DR_PE, &mut errors.parity);
        count(DR_FE, &mut errors.framing);
        // The low 8 bits are the byte.
        (word & (DR_BE | DR_PE | DR_FE) == 0).then_some(word as u8)
    }

    fn read(reg: usize) -> u32 {
        // SAFETY: a UART0 register of the LM3S6965, always mapped.
        unsafe { read_volatile(reg as *const u32) }
    }

    fn write(reg: usize, value: u32) {
        // SAFETY: a UART0 register of the LM3S6965, always mapped.
        unsafe { write_volatile(reg as *mut u32, value) }
    }

    /// Enables UART0 (8N1, FIFOs) and its receive interrupts.
    pub fn init() {
        write(LCRH, (3 << 5) | (1 << 4)); // 8 bits, FIFOs on
        write(CTL, (1 << 9) | (1 << 8) | 1); // RXE, TXE, UARTEN
        write(IM, INT_RX | INT_RT);
        // SAFETY: the handler is ready.
        unsafe { cortex_m::peripheral::NVIC::unmask(super::Irq::Uart0) };
    }

    pub(crate) fn on_interrupt() {
        let mis = read(MIS);
        let mut mask = read(IM);
        if mis & (INT_RX | INT_RT) != 0 {
            READY.set(UART, Events::READ);
            mask &= !(INT_RX | INT_RT);
        }
        if mis & INT_TX != 0 {
            READY.set(UART, Events::WRITE);
            mask &= !INT_TX;
        }
        write(ICR, mis);
        write(IM, mask);
    }

    fn unmask(bits: u32) {
        critical_section::with(|_| write(IM, read(IM) | bits));
    }

    fn mask(bits: u32) {
        critical_section::with(|_| write(IM, read(IM) & !bits));
    }

    /// Reads what the receive FIFO holds into `buf`, counting receive
    /// errors in `errors` (see [`decode`]: words that are not data take no
    /// room in `buf`); when the FIFO is empty, clears `READ` and unmasks the
    /// receive interrupt. Returns the count of bytes stored.
    pub fn recv(buf: &mut [u8], errors: &mut RxErrors) -> usize {
        let mut n = 0;
        while n < buf.len() {
            if read(FR) & FR_RXFE != 0 {
                READY.clear(UART, Events::READ);
                unmask(INT_RX | INT_RT);
                // Data that came after the check raises the interrupt again.
                break;
            }
            if let Some(b) = decode(read(DR), errors) {
                buf[n] = b;
                n += 1;
            }
        }
        n
    }

    /// Writes as much of `data` as the transmit FIFO takes; when it is full,
    /// clears `WRITE` and unmasks the transmit interrupt. Returns the count.
    pub fn send(data: &[u8]) -> usize {
        let mut n = 0;
        for &b in data {
            if read(FR) & FR_TXFF != 0 {
                READY.clear(UART, Events::WRITE);
                unmask(INT_TX);
                break;
            }
            write(DR, u32::from(b));
            n += 1;
        }
        n
    }

    /// Starts reporting `WRITE` (output is pending): ready at once when the
    /// transmit FIFO has room, else when its interrupt says so.
    pub fn want_write(on: bool) {
        if on {
            if read(FR) & FR_TXFF == 0 {
                READY.set(UART, Events::WRITE);
            } else {
                unmask(INT_TX);
            }
        } else {
            mask(INT_TX);
            READY.clear(UART, Events::WRITE);
        }
    }
}
