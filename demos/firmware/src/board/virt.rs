//! QEMU `virt` (RV32, machine mode, `-bios none`): the CLINT's `mtime`
//! (10 MHz) is the clock, its timer interrupt the 1 ms tick, its software
//! interrupt (`msip`) the software-triggered one.

use core::ptr::{read_volatile, write_volatile};
use core::time::Duration;

use riscv::interrupt::Interrupt;

/// The QEMU machine this firmware is for.
pub const MACHINE: &str = "virt";

const MSIP: usize = 0x0200_0000;
const MTIMECMP: usize = 0x0200_4000;
const MTIME: usize = 0x0200_BFF8;
const PER_MS: u64 = 10_000;
/// `mtime` counts at 10 MHz.
const HZ: u64 = 10_000_000;

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

/// Monotonic time since reset (`mtime`, 100 ns resolution). Computed in
/// seconds and nanoseconds, not as `mtime * 100` ns in a `u64` (which would
/// wrap after 584 years): the clock runs as far as `mtime` does (2^64
/// counts, 58,494 years; its own wrap is not handled).
pub fn now() -> Duration {
    let t = mtime();
    // The remainder is below 10^7: it and its 100 ns fit in a u32.
    Duration::new(t / HZ, (t % HZ) as u32 * 100)
}

/// The points where a counter of this clock wraps, or would in a narrower
/// scheme, for the contract's test (a timed `select` across each): the low
/// half of `mtime` (read as two halves on RV32), and 2^64 ns (where a `u64`
/// of nanoseconds would wrap). `mtime`'s own wrap, after 58,494 years, is
/// not handled.
pub const CLOCK_WRAPS: [(&str, Duration); 2] = [
    (
        "2^32 mtime counts (its low half wraps)",
        Duration::from_nanos(100 << 32),
    ),
    (
        "2^64 ns (a u64 of nanoseconds would wrap)",
        Duration::new(18_446_744_073, 709_551_616),
    ),
];

/// Nanoseconds since reset in a `u64`, for the cost meter only (wraps
/// after 584 years).
pub fn now_nanos() -> u64 {
    mtime() * 100
}

/// Monotonic time since reset in microseconds (the network stack's clock
/// on the machines that have one; here for the same API).
pub fn now_micros() -> u64 {
    mtime() / 10
}

/// Moves the clock forward to `t` (`mtime` is writable on QEMU's CLINT), for
/// the tests of the clock's wraps, and the 1 ms tick with it. Never back:
/// an earlier `t` is ignored.
pub fn skip_clock_to(t: Duration) {
    let target = u64::try_from(t.as_nanos() / 100).unwrap_or(u64::MAX);
    critical_section::with(|_| {
        if target <= mtime() {
            return;
        }
        // No timer interrupt while the halves change.
        write32(MTIMECMP + 4, u32::MAX);
        write32(MTIME, 0);
        write32(MTIME + 4, (target >> 32) as u32);
        write32(MTIME, target as u32);
        let next = mtime() + PER_MS;
        NEXT_TICK.store(next);
        set_mtimecmp(next);
    });
}

/// Triggers the machine software interrupt.
pub fn pend_soft() {
    write32(MSIP, 1);
}

/// Clears `mstatus.MIE`, runs `woken`, sleeps in `wfi` unless it said
/// `true`, and leaves `mstatus.MIE` as it found it: sets it only if it was
/// set on entry (a `select` inside a critical section stays in it). `wfi`
/// wakes on an interrupt pending and enabled in `mie` whatever
/// `mstatus.MIE` says.
/// A `deadline` before the next tick arms `mtimecmp` for it (the timer
/// handler puts the tick back).
pub(crate) fn masked_wait(deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
    let enabled = interrupts_enabled();
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
    if enabled {
        // SAFETY: interrupts were enabled when this was called: this puts
        // back the state found, inside no critical section of ours.
        unsafe { riscv::interrupt::enable() };
    }
}

pub(crate) fn wfi() {
    riscv::asm::wfi();
}

/// Whether interrupts are enabled (`mstatus.MIE` set).
pub fn interrupts_enabled() -> bool {
    riscv::register::mstatus::read().mie()
}

/// The sleep of before the restore fix, for the control of the test: masks,
/// checks, `wfi`, then enables interrupts whatever it found.
pub(crate) fn careless_wait(woken: impl FnOnce() -> bool) {
    riscv::interrupt::disable();
    if !woken() {
        riscv::asm::wfi();
    }
    // SAFETY: deliberately wrong inside a critical section: the control
    // of the test that must catch it. Outside one it is harmless.
    unsafe { riscv::interrupt::enable() };
}

#[riscv_rt::core_interrupt(Interrupt::MachineTimer)]
fn machine_timer() {
    let next = NEXT_TICK.load();
    if mtime() < next {
        // A deadline `masked_wait` armed: the wake-up is all it is for.
        set_mtimecmp(next);
        return;
    }
    // The next tick, on the 1 ms grid (no drift).
    NEXT_TICK.store(next + PER_MS);
    set_mtimecmp(next + PER_MS);
    // The tick count, 64 bits: the grid's ticks since `mtime` 0.
    crate::on_tick(next / PER_MS);
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
