//! What the firmware programs share: the machine (clock, interrupts, the
//! waiting [`Platform`]), the readiness the interrupt handlers set, defmt
//! over semihosting, and the panic path (exit status 1).
//!
//! Sources of the one [`SoftReadiness`]: [`TIMER`] (set every
//! [`TIMER_EVERY`] ms by the 1 ms tick interrupt), [`SOFT`] (set by the
//! software-triggered interrupt: PendSV on Cortex-M, the machine software
//! interrupt on RISC-V), [`UART`] (lm3s6965evb's UART0 interrupt).
#![no_std]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};
use core::time::Duration;

pub use ioselect_core::{Events, Platform, RawFd, Selector, SoftBackend, SoftReadiness};

#[cfg(target_arch = "arm")]
#[path = "board/cortex_m.rs"]
mod board;
#[cfg(target_arch = "riscv32")]
#[path = "board/virt.rs"]
mod board;

/// embassy-net's driver, embassy-time's driver and the executor's loop (`net-embassy`).
#[cfg(all(feature = "embassy", machine = "lm3s6965evb"))]
pub mod embassy;
#[cfg(machine = "lm3s6965evb")]
pub mod net;
pub use board::{
    CLOCK_WRAPS, MACHINE, init, interrupts_enabled, now, now_micros, now_nanos, pend_soft,
    skip_clock_to,
};
#[cfg(machine = "lm3s6965evb")]
pub use board::{enet, uart};

/// The timer source: ready every [`TIMER_EVERY`] ms.
pub const TIMER: RawFd = 0;
/// The software-interrupt source.
pub const SOFT: RawFd = 1;
/// The UART (lm3s6965evb only).
pub const UART: RawFd = 2;
/// Number of sources.
pub const SOURCES: usize = 4;

/// Set by the interrupt handlers, consumed by the selector.
pub static READY: SoftReadiness<SOURCES> = SoftReadiness::new();
/// The tick handler sets [`TIMER`] ready every this many ms (0: never).
pub static TIMER_EVERY: AtomicU32 = AtomicU32::new(0);
/// Software interrupts handled so far (written by the handler only).
pub static SOFT_IRQS: AtomicU32 = AtomicU32::new(0);
/// Passes through [`Platform::sleep`] of [`Idle`] and [`Naive`].
pub static SLEEPS: AtomicU32 = AtomicU32::new(0);

/// Called by the 1 ms tick interrupt with the tick count.
fn on_tick(ms: u64) {
    let every = TIMER_EVERY.load(Ordering::Relaxed);
    if every != 0 && ms % u64::from(every) == 0 {
        READY.set(TIMER, Events::READ);
    }
    #[cfg(all(feature = "embassy", machine = "lm3s6965evb"))]
    embassy::on_tick(ms);
}

/// Called by the software interrupt's handler.
fn on_soft() {
    // Single writer (this handler): a load and a store, no read-modify-write.
    SOFT_IRQS.store(SOFT_IRQS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    READY.set(SOFT, Events::READ);
}

fn count_sleep() {
    SLEEPS.store(SLEEPS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// The machine's waiting [`Platform`]: the tick clock, and check-then-`wfi`
/// with interrupts masked, so an interrupt that lands after the selector's
/// scan still ends the sleep. The 1 ms tick bounds every sleep; on `virt` a
/// deadline before the next tick also arms the timer for that moment (on
/// the Cortex-M machines SysTick is the clock, and a timeout ends at the
/// first tick after its deadline).
#[derive(Clone, Copy, Default)]
pub struct Idle;

impl Platform for Idle {
    fn now(&self) -> Option<Duration> {
        Some(now())
    }

    fn sleep(&mut self, deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        count_sleep();
        board::masked_wait(deadline, woken);
    }
}

/// The idle hook found broken before `Idle` masked interrupts around its
/// check, kept as the control of the tests:
/// the check runs with interrupts enabled, then `wfi`. An interrupt landing
/// between the two is seen only at the next interrupt (the next tick).
#[derive(Clone, Copy, Default)]
pub struct Naive;

impl Platform for Naive {
    fn now(&self) -> Option<Duration> {
        Some(now())
    }

    fn sleep(&mut self, _deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        count_sleep();
        if !woken() {
            board::wfi();
        }
    }
}

/// The sleep this firmware had before it restored the interrupt state,
/// kept as the control of the test that a `select` inside a critical
/// section stays in it: mask, check, `wfi`, then enable interrupts whatever
/// the state was.
#[derive(Clone, Copy, Default)]
pub struct Careless;

impl Platform for Careless {
    fn now(&self) -> Option<Duration> {
        Some(now())
    }

    fn sleep(&mut self, _deadline: Option<Duration>, woken: impl FnOnce() -> bool) {
        count_sleep();
        board::careless_wait(woken);
    }
}

/// Busy time: the time spent outside [`metered`] sleeps. Under QEMU's
/// `-icount shift=0` one instruction takes 1 ns of the machine's clock while
/// it runs (idle time follows the host's clock), so busy nanoseconds count
/// instructions: the cost figures of the network programs.
pub mod meter {
    use core::cell::Cell;

    /// Nanoseconds asleep (only the thread touches it).
    static ASLEEP: critical_section::Mutex<Cell<u64>> = critical_section::Mutex::new(Cell::new(0));

    /// Runs `sleep` (a platform's sleep), counting its time as asleep.
    pub fn metered<R>(sleep: impl FnOnce() -> R) -> R {
        let start = crate::now_nanos();
        let r = sleep();
        let slept = crate::now_nanos() - start;
        critical_section::with(|cs| {
            let asleep = ASLEEP.borrow(cs);
            asleep.set(asleep.get() + slept);
            let n = SLEEPS.borrow(cs);
            n.set(n.get() + 1);
        });
        r
    }

    /// Sleeps counted by [`metered`].
    static SLEEPS: critical_section::Mutex<Cell<u32>> = critical_section::Mutex::new(Cell::new(0));

    /// Sleeps so far through [`metered`].
    pub fn sleeps() -> u32 {
        critical_section::with(|cs| SLEEPS.borrow(cs).get())
    }

    /// Time since `init` spent outside [`metered`] sleeps, in ns (under
    /// `-icount shift=0`: instructions).
    pub fn busy_ns() -> u64 {
        let asleep = critical_section::with(|cs| ASLEEP.borrow(cs).get());
        crate::now_nanos() - asleep
    }
}

/// The peak of the main stack, by painting: [`paint`](stack::paint) fills
/// the free stack with a pattern at the start of `main`; [`peak`](stack::peak)
/// finds the lowest word no longer holding it.
#[cfg(target_arch = "arm")]
pub mod stack {
    const PAINT: u32 = 0x5ca1_ab1e;

    unsafe extern "C" {
        // cortex-m-rt's link.x: the stack's top and the lowest address it
        // may grow to (the end of .bss/.uninit).
        static _stack_start: u32;
        static _stack_end: u32;
    }

    fn bounds() -> (usize, usize) {
        (
            core::ptr::addr_of!(_stack_end) as usize,
            core::ptr::addr_of!(_stack_start) as usize,
        )
    }

    /// Paints the stack below the current frame (less 256 bytes of margin).
    pub fn paint() {
        let (low, _) = bounds();
        let sp = cortex_m::register::msp::read() as usize - 256;
        let mut p = low;
        while p < sp {
            // SAFETY: between the end of the static data and below the live
            // stack (with a margin): memory nothing else uses yet.
            unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
            p += 4;
        }
    }

    /// The most stack used since [`paint`], in bytes.
    pub fn peak() -> usize {
        let (low, high) = bounds();
        let mut p = low;
        // SAFETY: reads of RAM between the static data and the stack's top.
        while p < high && unsafe { core::ptr::read_volatile(p as *const u32) } == PAINT {
            p += 4;
        }
        high - p
    }
}

/// A `static` handed out once as `&'static mut` (big state kept out of the
/// stack, so that the stack figures show the stack).
pub struct Once<T>(UnsafeCell<T>, core::sync::atomic::AtomicBool);

// SAFETY: the value is handed out once (the flag), to one owner.
unsafe impl<T: Send> Sync for Once<T> {}

impl<T> Once<T> {
    /// Holds `value` (a constant: it is in the program's image or `.bss`).
    pub const fn new(value: T) -> Self {
        Self(
            UnsafeCell::new(value),
            core::sync::atomic::AtomicBool::new(false),
        )
    }

    /// The value, the first time; `None` after.
    pub fn take(&'static self) -> Option<&'static mut T> {
        // A load and a store in a critical section: thumbv6m has no swap.
        let taken = critical_section::with(|_| {
            let taken = self.1.load(Ordering::Relaxed);
            self.1.store(true, Ordering::Relaxed);
            taken
        });
        if taken {
            return None;
        }
        // SAFETY: the flag makes this the only reference ever handed out.
        Some(unsafe { &mut *self.0.get() })
    }
}

/// Ends the program: semihosting exit, QEMU's exit status is `code`.
pub fn exit(code: i32) -> ! {
    semihosting::process::exit(code)
}

// Saturates rather than wraps (at 2^64 us, 584,942 years).
defmt::timestamp!(
    "{=u64:us}",
    u64::try_from(now().as_micros()).unwrap_or(u64::MAX)
);

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    defmt::error!("panicked: {}", defmt::Display2Format(info));
    exit(1)
}

// --- defmt over semihosting -------------------------------------------------

#[defmt::global_logger]
struct Logger;

struct LogState {
    encoder: defmt::Encoder,
    restore: critical_section::RestoreState,
    taken: bool,
    buf: [u8; 128],
    len: usize,
}

struct Shared(UnsafeCell<LogState>);
// SAFETY: only touched between `acquire` and `release`, inside a critical
// section on a single core.
unsafe impl Sync for Shared {}

static LOG: Shared = Shared(UnsafeCell::new(LogState {
    encoder: defmt::Encoder::new(),
    restore: critical_section::RestoreState::invalid(),
    taken: false,
    buf: [0; 128],
    len: 0,
}));

fn flush(state: &mut LogState) {
    if state.len > 0 {
        if let Ok(mut out) = semihosting::io::stdout() {
            let _ = semihosting::io::Write::write_all(&mut out, &state.buf[..state.len]);
        }
        state.len = 0;
    }
}

// SAFETY: the state is used only inside the critical section that
// `acquire` enters and `release` leaves; `taken` refuses re-entry.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: released in `release`, in order.
        let restore = unsafe { critical_section::acquire() };
        // SAFETY: inside the critical section.
        let state = unsafe { &mut *LOG.0.get() };
        if state.taken {
            panic!("defmt logger taken reentrantly");
        }
        state.taken = true;
        state.restore = restore;
        let LogState {
            encoder, buf, len, ..
        } = state;
        let mut out = Out { buf, len };
        encoder.start_frame(|b| out.push(b));
    }

    unsafe fn flush() {
        // SAFETY: called between acquire and release.
        flush(unsafe { &mut *LOG.0.get() });
    }

    unsafe fn release() {
        // SAFETY: called after acquire, inside its critical section.
        let state = unsafe { &mut *LOG.0.get() };
        {
            let LogState {
                encoder, buf, len, ..
            } = &mut *state;
            let mut out = Out { buf, len };
            encoder.end_frame(|b| out.push(b));
        }
        flush(state);
        state.taken = false;
        let restore = state.restore;
        // SAFETY: the state `acquire` saved.
        unsafe { critical_section::release(restore) };
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called between acquire and release.
        let state = unsafe { &mut *LOG.0.get() };
        let LogState {
            encoder, buf, len, ..
        } = state;
        let mut out = Out { buf, len };
        encoder.write(bytes, |b| out.push(b));
    }
}

/// The frame buffer, split from the encoder that fills it.
struct Out<'a> {
    buf: &'a mut [u8; 128],
    len: &'a mut usize,
}

impl Out<'_> {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if *self.len == self.buf.len() {
                if let Ok(mut out) = semihosting::io::stdout() {
                    let _ = semihosting::io::Write::write_all(&mut out, &self.buf[..]);
                }
                *self.len = 0;
            }
            self.buf[*self.len] = b;
            *self.len += 1;
        }
    }
}
