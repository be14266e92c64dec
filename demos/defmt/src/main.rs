//! Logs an ioselect selector's keys and events through defmt on the host.
//!
//! The defmt frames go to stdout, raw (rzcobs-encoded, as defmt writes
//! them); `defmt-print -e target/debug/defmt-demo` or the decoding test
//! (`tests/decode.rs`) turns them back into text. The program registers
//! two ends of a socket pair, makes one readable, selects, and logs every
//! key, every ready event, and a refused `register` (which ioselect-core
//! itself logs at `debug` level).

use std::cell::UnsafeCell;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ioselect_linux::{DefaultSelector, Events};

// ---- the global logger: defmt frames to stdout -----------------------------

#[defmt::global_logger]
struct Logger;

/// The frame encoder and the lock that guards it.
struct State {
    taken: AtomicBool,
    encoder: UnsafeCell<defmt::Encoder>,
}

// SAFETY: `encoder` is only touched between a successful `acquire` (which
// takes `taken`) and the matching `release`, so by one thread at a time.
unsafe impl Sync for State {}

static STATE: State = State {
    taken: AtomicBool::new(false),
    encoder: UnsafeCell::new(defmt::Encoder::new()),
};

fn emit(bytes: &[u8]) {
    let _ = std::io::stdout().lock().write_all(bytes);
}

// SAFETY: `acquire` spins until it holds the lock, so frames never
// interleave; `write`, `flush` and `release` are only called by defmt
// between `acquire` and `release`, as the trait requires.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        while STATE
            .taken
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: we hold the lock (`taken`).
        unsafe { (*STATE.encoder.get()).start_frame(emit) }
    }

    unsafe fn flush() {
        let _ = std::io::stdout().lock().flush();
    }

    unsafe fn release() {
        // SAFETY: called after `acquire`, so we hold the lock.
        unsafe { (*STATE.encoder.get()).end_frame(emit) }
        STATE.taken.store(false, Ordering::Release);
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called after `acquire`, so we hold the lock.
        unsafe { (*STATE.encoder.get()).write(bytes, emit) }
    }
}

// ---- the demo --------------------------------------------------------------

fn main() -> Result<(), ioselect_linux::Error> {
    let (a, b) = UnixStream::pair().map_err(|_| ioselect_linux::Error::InvalidFd)?;
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    defmt::info!("socket pair: a={=i32} b={=i32}", fa, fb);

    let mut sel = DefaultSelector::<&'static str, 8>::open()?;
    sel.register(a.as_fd(), Events::READ, "a")?;
    sel.register(b.as_fd(), Events::READ | Events::WRITE, "b")?;
    for key in sel.map().iter() {
        defmt::info!("registered {}", key);
    }

    // Refused: core logs it at debug level; the demo warns with the error.
    if let Err(e) = sel.register(a.as_fd(), Events::WRITE, "again") {
        defmt::warn!("register a again: {}", e.error);
    }

    (&b).write_all(b"ping")
        .map_err(|_| ioselect_linux::Error::InvalidFd)?;
    sel.select(Some(Duration::from_secs(1)))?;
    while let Some((key, mask)) = sel.next_ready() {
        defmt::info!("ready {} with {}", *key.data(), mask);
    }

    sel.modify_events(b.as_fd(), Events::READ)?;
    defmt::info!("modified {}", sel.get_key(fb));
    let key = sel.unregister(a.as_fd())?;
    defmt::info!("unregistered {}", key);
    defmt::info!("{=usize} key left", sel.len());
    Ok(())
}
