//! The panic path: logs through defmt and exits with status 1, so a failed
//! check anywhere fails the run. ci.sh expects this program to fail.
#![no_std]
#![no_main]

use ioselect_firmware as fw;

#[cfg_attr(target_arch = "arm", cortex_m_rt::entry)]
#[cfg_attr(target_arch = "riscv32", riscv_rt::entry)]
fn main() -> ! {
    fw::init();
    defmt::info!("about to fail a check on {=str}", fw::MACHINE);
    let ticks = fw::now().as_secs();
    defmt::assert!(
        ticks > 3600,
        "deliberate failure: {=u64} s since boot",
        ticks
    );
    fw::exit(0)
}
