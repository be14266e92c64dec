//! Logs an ioselect selector's keys and events through defmt on the host,
//! and prints the log as text: `cargo run` in `demos/defmt`.
//!
//! defmt writes compact binary frames, not text (on a microcontroller a
//! host-side decoder turns them into text). This program keeps its frames
//! in memory and, at the end, decodes them itself with `defmt-decoder`,
//! reading the format strings from its own ELF file, and prints one line
//! per frame (`INFO  registered SelectorKey { fd: 3, .. }`). With `--raw`
//! it writes the raw frames to stdout instead, for `defmt-print -e
//! target/debug/defmt-demo` (the decoder defmt's own tools use).
//!
//! The program registers two ends of a socket pair, makes one readable,
//! selects, and logs every key and ready event; three refused calls
//! (`register`, `unregister`, `modify_events`) are logged by ioselect-core
//! itself, at `debug` level.

use std::cell::UnsafeCell;
use std::io::Write;
use std::sync::Mutex;
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

/// The frames written so far, decoded (or written raw) at the end.
static FRAMES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn emit(bytes: &[u8]) {
    if let Ok(mut frames) = FRAMES.lock() {
        frames.extend_from_slice(bytes);
    }
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

    unsafe fn flush() {}

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

// ---- the log, as text -------------------------------------------------------

/// The frames as text, one line per frame: level and message, decoded with
/// the format strings in this program's own ELF file.
fn decoded(frames: &[u8]) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let elf = std::fs::read(&exe).map_err(|e| format!("read {}: {e}", exe.display()))?;
    let table = defmt_decoder::Table::parse(&elf)
        .map_err(|e| format!("the .defmt section: {e}"))?
        .ok_or("no defmt data in the ELF file")?;
    let mut decoder = table.new_stream_decoder();
    decoder.received(frames);
    let mut text = String::new();
    loop {
        match decoder.decode() {
            Ok(frame) => {
                let level = frame
                    .level()
                    .map_or("-".to_owned(), |l| format!("{l:?}").to_uppercase());
                text.push_str(&format!("{level:<5} {}\n", frame.display_message()));
            }
            Err(defmt_decoder::DecodeError::UnexpectedEof) => return Ok(text),
            Err(defmt_decoder::DecodeError::Malformed) => return Err("a malformed frame".into()),
        }
    }
}

fn main() -> std::process::ExitCode {
    let raw = std::env::args().any(|a| a == "--raw");
    if let Err(e) = demo() {
        eprintln!("defmt-demo: {e}");
        return std::process::ExitCode::FAILURE;
    }
    let frames = match FRAMES.lock() {
        Ok(frames) => frames.clone(),
        Err(_) => return std::process::ExitCode::FAILURE,
    };
    let out = if raw {
        std::io::stdout().lock().write_all(&frames)
    } else {
        match decoded(&frames) {
            Ok(text) => std::io::stdout().lock().write_all(text.as_bytes()),
            Err(e) => {
                eprintln!("defmt-demo: decoding: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    };
    if out.is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

// ---- the demo --------------------------------------------------------------

fn demo() -> Result<(), ioselect_linux::Error> {
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
    let (c, _d) = UnixStream::pair().map_err(|_| ioselect_linux::Error::InvalidFd)?;
    if let Err(e) = sel.unregister(c.as_fd()) {
        defmt::warn!("unregister c: {}", e);
    }
    if let Err(e) = sel.modify_events(a.as_fd(), Events::empty()) {
        defmt::warn!("modify a to no events: {}", e);
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
