//! QEMU `virt` (RV32, machine mode, `-bios none`): the CLINT's `mtime`
//! (10 MHz) is the clock, its timer interrupt the 1 ms tick, its software
//! interrupt (`msip`) the software-triggered one.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

use riscv::interrupt::Interrupt;

/// The QEMU machine this firmware is for.
pub const MACHINE: &str = "virt";

const MSIP: usize = 0x0200_0000;
const MTIMECMP: usize = 0x0200_4000;
const MTIME: usize = 0x0200_BFF8;
const PER_MS: u64 = 10_000;

static TICKS: AtomicU32 = AtomicU32::new(0);

fn read32(addr: usize) -> u32 {
    // SAFETY: a CLINT register of QEMU's virt machine, always mapped.
    unsafe { read_volatile(addr as *const u32) }
}

fn write32(addr: usize, value: u32) {
    // SAFETY: a CLINT register of QEMU's virt machine, always mapped.
    unsafe { write_volatile(addr as *mut u32, value) }
}

fn mtime() -> u64 {
    loop {
        let hi = read32(MTIME + 4);
        let lo = read32(MTIME);
        if read32(MTIME + 4) == hi {
            return (u64::from(hi) << 32) | u64::from(lo);
        }
    }
}

fn set_mtimecmp(t: u64) {
    // No spurious interrupt while the halves are written.
    write32(MTIMECMP + 4, u32::MAX);
    write32(MTIMECMP, t as u32);
    write32(MTIMECMP + 4, (t >> 32) as u32);
}

/// Starts the 1 ms tick and enables interrupts.
pub fn init() {
    let first = mtime() + PER_MS;
    NEXT_TICK.store(first);
    set_mtimecmp(first);
    // SAFETY: the handlers are ready.
    unsafe {
        riscv::interrupt::enable_interrupt(Interrupt::MachineTimer);
        riscv::interrupt::enable_interrupt(Interrupt::MachineSoft);
        riscv::interrupt::enable();
    }
}

/// Monotonic time since reset (`mtime`, 100 ns resolution).
pub fn now() -> Duration {
    Duration::from_nanos(mtime() * 100)
}

/// Triggers the machine software interrupt.
pub fn pend_soft() {
    write32(MSIP, 1);
}

/// Clears `mstatus.MIE`, runs `woken`, sleeps in `wfi` unless it said
/// `true`, sets `mstatus.MIE`. `wfi` wakes on an interrupt pending and
/// enabled in `mie` whatever `mstatus.MIE` says.
/// A `deadline` before the next tick arms `mtimecmp` for it (the timer
/// handler puts the tick back).
pub(crate) fn masked_wait(deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
    riscv::interrupt::disable();
    if !woken() {
        if let Some(deadline) = deadline {
            // mtime ticks are 100 ns: round up, never wake before it.
            let at = deadline.as_nanos().div_ceil(100) as u64;
            if at < NEXT_TICK.load() {
                set_mtimecmp(at);
            }
        }
        riscv::asm::wfi();
    }
    // SAFETY: the thread runs with interrupts enabled; this restores it.
    unsafe { riscv::interrupt::enable() };
}

pub(crate) fn wfi() {
    riscv::asm::wfi();
}

#[riscv_rt::core_interrupt(Interrupt::MachineTimer)]
fn machine_timer() {
    let next = NEXT_TICK.load();
    if mtime() < next {
        // A deadline `masked_wait` armed: the wake-up is all it is for.
        set_mtimecmp(next);
        return;
    }
    let ms = TICKS.load(Ordering::Relaxed) + 1;
    TICKS.store(ms, Ordering::Relaxed);
    // The next tick, on the 1 ms grid (no drift).
    NEXT_TICK.store(next + PER_MS);
    set_mtimecmp(next + PER_MS);
    crate::on_tick(ms);
}

/// When the next 1 ms tick is due, in `mtime` units: a `u64` behind a
/// critical section (RV32 has no 64-bit atomics).
struct NextTick(critical_section::Mutex<core::cell::Cell<u64>>);

impl NextTick {
    fn load(&self) -> u64 {
        critical_section::with(|cs| self.0.borrow(cs).get())
    }

    fn store(&self, t: u64) {
        critical_section::with(|cs| self.0.borrow(cs).set(t));
    }
}

static NEXT_TICK: NextTick = NextTick(critical_section::Mutex::new(core::cell::Cell::new(0)));

#[riscv_rt::core_interrupt(Interrupt::MachineSoft)]
fn machine_soft() {
    write32(MSIP, 0);
    crate::on_soft();
}

/// Any exception (riscv-rt's default handler would loop): log, exit 1.
#[unsafe(export_name = "ExceptionHandler")]
fn exception_handler(_frame: &riscv_rt::TrapFrame) -> ! {
    defmt::error!(
        "exception, mcause {=usize:x}",
        riscv::register::mcause::read().bits()
    );
    crate::exit(1)
}
