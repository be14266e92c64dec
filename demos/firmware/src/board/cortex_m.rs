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

/// Processor clock, Hz. lm3s6965evb: QEMU derives it from RCC's SYSDIV
/// (reset value 15: 200 MHz / 16). microbit: nRF51's fixed 16 MHz.
#[cfg(machine = "lm3s6965evb")]
const HZ: u32 = 12_500_000;
#[cfg(machine = "microbit")]
const HZ: u32 = 16_000_000;
const PER_MS: u32 = HZ / 1000;

/// Milliseconds since `init` (written by the SysTick handler only).
static TICKS: AtomicU32 = AtomicU32::new(0);

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

/// The largest time `now` returned, in ns.
static LAST: critical_section::Mutex<Cell<u64>> = critical_section::Mutex::new(Cell::new(0));

/// Monotonic time since `init`: ticks plus the part of the current tick.
///
/// QEMU computes SysTick's current value from its clock, and may show the
/// counter reloaded shortly before it marks the tick pending; the time read
/// then would go back by a tick. So `now` never returns less than it
/// returned before (it stands still for that moment instead).
pub fn now() -> Duration {
    let ns = critical_section::with(|cs| {
        let ms = TICKS.load(Ordering::Relaxed);
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
        let ns = u64::from(ms) * 1_000_000 + u64::from(cycles) * 1_000_000_000 / u64::from(HZ);
        let last = LAST.borrow(cs);
        let ns = ns.max(last.get());
        last.set(ns);
        ns
    });
    Duration::from_nanos(ns)
}

/// Triggers the software interrupt (PendSV).
pub fn pend_soft() {
    SCB::set_pendsv();
}

/// Masks interrupts, runs `woken`, sleeps in `wfi` unless it said `true`,
/// unmasks. `wfi` wakes on an interrupt that is pending while PRIMASK masks
/// it, so one that lands after the check still ends the sleep.
/// SysTick is the clock: the deadline waits for the tick after it.
pub(crate) fn masked_wait(_deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
    cortex_m::interrupt::disable();
    if !woken() {
        cortex_m::asm::wfi();
    }
    // SAFETY: the thread runs with interrupts enabled; this restores it.
    unsafe { cortex_m::interrupt::enable() };
}

pub(crate) fn wfi() {
    cortex_m::asm::wfi();
}

#[exception]
fn SysTick() {
    let ms = TICKS.load(Ordering::Relaxed) + 1;
    TICKS.store(ms, Ordering::Relaxed);
    crate::on_tick(ms);
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
        unsafe { cortex_m::peripheral::NVIC::unmask(Irq) };
    }

    #[derive(Clone, Copy)]
    struct Irq;
    // SAFETY: IRQ 5 is UART0 on the LM3S6965.
    unsafe impl cortex_m::interrupt::InterruptNumber for Irq {
        fn number(self) -> u16 {
            IRQ as u16
        }
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

    /// Reads what the receive FIFO holds into `buf`; when it is empty, clears
    /// `READ` and unmasks the receive interrupt. Returns the count.
    pub fn recv(buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            if read(FR) & FR_RXFE != 0 {
                READY.clear(UART, Events::READ);
                unmask(INT_RX | INT_RT);
                // Data that came after the check raises the interrupt again.
                break;
            }
            buf[n] = read(DR) as u8;
            n += 1;
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
