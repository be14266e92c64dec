//! `loop-ioselect`'s event loop written by hand, for the size figures: the
//! same interrupts and readiness flags, the same check-then-`wfi` with
//! interrupts masked, a fixed dispatch instead of the selector.
#![no_std]
#![no_main]

use defmt::info;
use ioselect_firmware::{self as fw, Events, Idle, Platform, READY, SOFT, TIMER, TIMER_EVERY};

const ROUNDS: u32 = 50;

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    fw::init();
    TIMER_EVERY.store(2, core::sync::atomic::Ordering::Relaxed);
    let (mut timer_on, mut soft_on) = (true, true);
    let (mut rounds, mut handled) = (0, 0);
    let mut idle = Idle;
    while timer_on || soft_on {
        let ready = |fd, on: bool| on && READY.get(fd).contains(Events::READ);
        idle.sleep(None, || ready(TIMER, timer_on) || ready(SOFT, soft_on));
        if ready(TIMER, timer_on) {
            READY.clear(TIMER, Events::READ);
            rounds += 1;
            timer_on = rounds < ROUNDS;
            fw::pend_soft();
        }
        if ready(SOFT, soft_on) {
            READY.clear(SOFT, Events::READ);
            handled += 1;
            soft_on = handled < ROUNDS;
        }
    }
    info!(
        "loop-hand: {=u32} timer rounds, {=u32} software interrupts",
        rounds, handled
    );
    fw::exit(if (rounds, handled) == (ROUNDS, ROUNDS) {
        0
    } else {
        1
    })
}
