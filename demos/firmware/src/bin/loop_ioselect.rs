//! A small event loop written with ioselect, for the size figures: the timer
//! source's handler (every 2 ms) triggers the software interrupt, whose
//! handler counts; after 50 rounds both unregister and the program exits.
//! `loop-hand` is the same loop written by hand.
#![no_std]
#![no_main]

use defmt::info;
use ioselect_firmware::{
    self as fw, Events, Idle, READY, RawFd, SOFT, SOURCES, Selector, SoftBackend, TIMER,
    TIMER_EVERY,
};

type Sel = Selector<SoftBackend<'static, SOURCES, Idle>, Handler, SOURCES>;

#[derive(Clone, Copy)]
struct Handler(fn(&mut Sel, RawFd, &mut u32));

const ROUNDS: u32 = 50;

fn on_timer(sel: &mut Sel, fd: RawFd, rounds: &mut u32) {
    READY.clear(fd, Events::READ);
    *rounds += 1;
    if *rounds == ROUNDS {
        let _ = sel.unregister(fd);
    }
    fw::pend_soft();
}

fn on_soft(sel: &mut Sel, fd: RawFd, handled: &mut u32) {
    READY.clear(fd, Events::READ);
    *handled += 1;
    if *handled == ROUNDS {
        let _ = sel.unregister(fd);
    }
}

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    fw::init();
    TIMER_EVERY.store(2, core::sync::atomic::Ordering::Relaxed);
    let mut sel: Sel = Selector::new(SoftBackend::with_platform(&READY, Idle));
    let (mut rounds, mut handled) = (0, 0);
    if sel
        .register(TIMER, Events::READ, Handler(on_timer))
        .is_err()
        || sel.register(SOFT, Events::READ, Handler(on_soft)).is_err()
    {
        fw::exit(1);
    }
    while !sel.is_empty() {
        if sel.select(None).is_err() {
            fw::exit(1);
        }
        while let Some((key, _)) = sel.next_ready() {
            let (fd, Handler(callback)) = (key.fd(), *key.data());
            let count = if fd == TIMER {
                &mut rounds
            } else {
                &mut handled
            };
            callback(&mut sel, fd, count);
        }
    }
    info!(
        "loop-ioselect: {=u32} timer rounds, {=u32} software interrupts, selector {=usize} B",
        rounds,
        handled,
        core::mem::size_of::<Sel>()
    );
    fw::exit(if (rounds, handled) == (ROUNDS, ROUNDS) {
        0
    } else {
        1
    })
}
