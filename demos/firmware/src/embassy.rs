//! embassy on lm3s6965evb (the `embassy` feature, for `net-embassy`, the
//! cost table's (c)): the Ethernet controller as an
//! [`embassy_net_driver::Driver`] ([`EnetDriver`]), an
//! `embassy_time_driver` on the board's SysTick clock, and embassy-executor's
//! executor in thread mode ([`run`]).
//!
//! - The driver is the register-level one of [`enet`](crate::enet): its
//!   interrupt wakes [`NIC_WAKER`] (the network task's waker, registered by
//!   every `receive` and `transmit`) instead of setting a readiness flag.
//!   `receive` registers the waker before it looks at the FIFO, and unmasks
//!   the interrupt only when the FIFO is empty, so a frame that arrives
//!   after the look still raises it. `transmit` never waits: while the
//!   transmitter is busy it returns `None` and unmasks the "transmit FIFO
//!   empty" interrupt, whose wake-up polls the stack again (under QEMU,
//!   whose transmitter is never busy, only with the `tx-busy` fault
//!   injection: see `enet`; [`driver_stats`] then counts those wake-ups).
//! - Time: embassy-time's default 1 MHz tick, read from the board's clock
//!   ([`now_micros`](crate::now_micros): a 64-bit count of SysTick's 1 ms
//!   ticks kept with plain loads and stores, plus the part of the current
//!   tick), monotonic. Timers wait in a fixed queue of [`TIMERS`] entries,
//!   checked by the 1 ms tick interrupt: a timer fires at the first tick
//!   at or after its time (at most 1 ms late), as `select`'s timeouts do on the
//!   Cortex-M machines.
//! - The executor: embassy-executor's `raw::Executor` in thread mode, with
//!   the loop of its arch-cortex-m thread-mode executor (`Executor::run`:
//!   poll the tasks that were woken, then sleep until a waker calls the
//!   pender) but sleeping as every program here sleeps: `wfi` behind a
//!   check, with interrupts masked, of a flag the pender sets. The stock
//!   loop sleeps in `wfe` and its pender executes `sev`; QEMU implements
//!   `wfe` as a yield that never halts (`HELPER(wfe)` in
//!   `target/arm/tcg/op_helper.c`), so under QEMU that executor never
//!   sleeps: tried, its loop turned 735,081 times in the first 2.75 s of a
//!   run (2.4 s of them before the first client), and the cost figures
//!   would count the spinning.

use core::cell::RefCell;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use core::task::{Context, Waker};

use critical_section::Mutex;
use embassy_executor::raw;
use embassy_net_driver::{Capabilities, Driver, HardwareAddress, LinkState};
use embassy_sync::waitqueue::AtomicWaker;

use crate::Platform as _;
use crate::enet::{self, Enet, Rx, RxToken, TxToken};

/// The network task's waker: woken by the Ethernet interrupt.
pub static NIC_WAKER: AtomicWaker = AtomicWaker::new();

/// Polls of the stack so far (embassy-net asks the link state once per
/// poll): the `polls` figure of the connections' sum-up lines.
static POLLS: AtomicU32 = AtomicU32::new(0);

/// Polls of the stack so far.
pub fn polls() -> u32 {
    POLLS.load(Ordering::Relaxed)
}

/// Feature `tx-busy`: the driver's counters as of the last poll of the
/// stack (the driver itself is embassy-net's), and the wake-ups by the
/// "transmit FIFO empty" interrupt.
#[cfg(feature = "tx-busy")]
static STATS: Mutex<core::cell::Cell<Option<enet::Stats>>> =
    Mutex::new(core::cell::Cell::new(None));

/// Feature `tx-busy`: the driver's counters as of the last poll of the
/// stack, and the wake-ups of the network task by the "transmit FIFO
/// empty" interrupt so far.
#[cfg(feature = "tx-busy")]
pub fn driver_stats() -> (enet::Stats, u32) {
    let stats = critical_section::with(|cs| STATS.borrow(cs).get()).unwrap_or_default();
    (stats, enet::tx_empty_wakes())
}

/// lm3s6965evb's Ethernet controller as an embassy-net driver.
pub struct EnetDriver {
    enet: Enet,
    mac: [u8; 6],
    /// A transmit found the transmitter busy: keep its interrupt unmasked
    /// until one succeeds.
    tx_waiting: bool,
}

impl EnetDriver {
    /// The driver over `enet`, whose MAC address is `mac` (both from
    /// [`Enet::init`]).
    pub fn new(enet: Enet, mac: [u8; 6]) -> Self {
        Self {
            enet,
            mac,
            tx_waiting: false,
        }
    }

    /// The driver's counters.
    pub fn stats(&self) -> enet::Stats {
        self.enet.stats
    }

    /// The transmitter was found idle: a transmit that waited for the end
    /// of a frame waits no more, so `TXEMP` is masked again (the end of the
    /// frame about to be sent would otherwise wake the task for nothing).
    fn tx_sent(&mut self) {
        if self.tx_waiting {
            self.tx_waiting = false;
            self.enet.disarm_tx_empty();
        }
    }
}

impl embassy_net_driver::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let mut token = self;
        f(token.frame())
    }
}

impl embassy_net_driver::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.send(len, f)
    }
}

impl Driver for EnetDriver {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, cx: &mut Context<'_>) -> Option<(RxToken<'_>, TxToken<'_>)> {
        NIC_WAKER.register(cx.waker());
        let unmask = if self.tx_waiting {
            enet::RX_AND_TX_EMPTY
        } else {
            enet::RX_ONLY
        };
        match self.enet.next_frame(unmask, || {}) {
            Rx::Frame(len) => {
                // The transmitter was idle (a transmit token goes with the
                // frame): no transmit waits for its end any more.
                self.tx_sent();
                Some(self.enet.tokens(len))
            }
            Rx::Empty => None,
            Rx::TxBusy => {
                // The frame stays in the FIFO; the end of the transmit
                // wakes the task (or it ended already: look again now).
                self.tx_waiting = true;
                if self.enet.arm_tx_empty() {
                    cx.waker().wake_by_ref();
                }
                None
            }
        }
    }

    fn transmit(&mut self, cx: &mut Context<'_>) -> Option<TxToken<'_>> {
        NIC_WAKER.register(cx.waker());
        if self.enet.tx_busy() && !self.enet.arm_tx_empty() {
            self.tx_waiting = true;
            return None;
        }
        self.tx_sent();
        Some(self.enet.tx_token())
    }

    fn link_state(&mut self, _cx: &mut Context<'_>) -> LinkState {
        // Once per poll of the stack (embassy-net's `Inner::poll`); one
        // writer, the network task: a load and a store.
        POLLS.store(POLLS.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        #[cfg(feature = "tx-busy")]
        critical_section::with(|cs| STATS.borrow(cs).set(Some(self.enet.stats)));
        // QEMU's model has no PHY state to read: the link is up.
        LinkState::Up
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.max_transmission_unit = enet::MTU;
        caps.max_burst_size = Some(1);
        caps
    }

    fn hardware_address(&self) -> HardwareAddress {
        HardwareAddress::Ethernet(self.mac)
    }
}

// --- time --------------------------------------------------------------------

/// Timers that can wait at once: one per task that sleeps on a timer (here
/// only the network task, for smoltcp's next timer), with room to spare.
/// A full queue wakes its earliest timer early to make room (a spurious
/// wake-up, which futures allow: the timer registers again).
pub const TIMERS: usize = 8;

struct Timers {
    at: [u64; TIMERS],
    wakers: [Option<Waker>; TIMERS],
    /// The earliest `at` waiting (`u64::MAX`: none).
    next: u64,
}

static QUEUE: Mutex<RefCell<Timers>> = Mutex::new(RefCell::new(Timers {
    at: [0; TIMERS],
    wakers: [const { None }; TIMERS],
    next: u64::MAX,
}));

impl Timers {
    /// Wakes `waker` at `at` (µs): a waker already waiting keeps the
    /// earlier of its two times.
    fn schedule(&mut self, at: u64, waker: &Waker) {
        let slot = match self
            .wakers
            .iter()
            .position(|w| w.as_ref().is_some_and(|w| w.will_wake(waker)))
        {
            Some(i) => {
                self.at[i] = self.at[i].min(at);
                i
            }
            None => {
                let i = match self.wakers.iter().position(Option::is_none) {
                    Some(i) => i,
                    None => {
                        // Full: the earliest goes now.
                        let mut i = 0;
                        for j in 1..TIMERS {
                            if self.at[j] < self.at[i] {
                                i = j;
                            }
                        }
                        if let Some(w) = self.wakers[i].take() {
                            w.wake();
                        }
                        i
                    }
                };
                self.wakers[i] = Some(waker.clone());
                self.at[i] = at;
                i
            }
        };
        self.next = self.next.min(self.at[slot]);
    }

    /// Wakes every timer due at `now` (µs).
    fn expire(&mut self, now: u64) {
        if now < self.next {
            return;
        }
        let mut next = u64::MAX;
        for (at, waker) in self.at.iter().zip(self.wakers.iter_mut()) {
            if waker.is_none() {
                continue;
            }
            if *at <= now {
                if let Some(w) = waker.take() {
                    w.wake();
                }
            } else {
                next = next.min(*at);
            }
        }
        self.next = next;
    }
}

/// Called by the 1 ms tick interrupt with the tick count (ms): wakes the
/// timers due at the start of this tick. It does not read the clock: in
/// the tick's handler QEMU's SysTick may still show the count before its
/// reload, a time almost a tick ahead, which `now` would then keep (it
/// never goes back) until the clock caught up.
pub(crate) fn on_tick(ms: u64) {
    critical_section::with(|cs| QUEUE.borrow_ref_mut(cs).expire(ms * 1000));
}

/// embassy-time's driver: the board's clock in µs (embassy-time's default
/// tick rate, 1 MHz), and the timer queue above.
struct SysTickDriver;

impl embassy_time_driver::Driver for SysTickDriver {
    fn now(&self) -> u64 {
        crate::now_micros()
    }

    fn schedule_wake(&self, at: u64, waker: &Waker) {
        if at <= crate::now_micros() {
            waker.wake_by_ref();
            return;
        }
        critical_section::with(|cs| QUEUE.borrow_ref_mut(cs).schedule(at, waker));
    }
}

embassy_time_driver::time_driver_impl!(static DRIVER: SysTickDriver = SysTickDriver);

// --- the executor ------------------------------------------------------------

/// A task was woken since the loop last polled: set by the pender (from
/// any context), cleared by [`run`] before each poll.
static PENDED: AtomicBool = AtomicBool::new(true);

/// embassy-executor's pender: the executor calls it when a task is woken
/// (from a waker, in an interrupt or in a task). [`run`]'s masked check
/// sees the flag, and an interrupt that set it ends the `wfi`.
#[unsafe(export_name = "__pender")]
fn pender(_context: *mut ()) {
    PENDED.store(true, Ordering::Release);
}

/// Runs `executor`'s tasks in thread mode, forever: polls the woken tasks,
/// calls `idle` (the program's "waiting for I/O"), then sleeps, metered, in
/// the machine's masked check-then-`wfi` ([`Idle`](crate::Idle)) unless a
/// task was woken meanwhile. A wake-up during the poll sets the flag again
/// (cleared before the poll), so it is polled at once; one from an
/// interrupt after the check is pending when `wfi` runs, and ends it.
pub fn run(executor: &'static raw::Executor, mut idle: impl FnMut()) -> ! {
    loop {
        PENDED.store(false, Ordering::Relaxed);
        // SAFETY: this loop is the only caller, never reentrant: the
        // pender only sets a flag.
        unsafe { executor.poll() };
        idle();
        crate::meter::metered(|| {
            crate::Idle.sleep(None, || PENDED.load(Ordering::Acquire));
        });
    }
}
