//! The fuzzing harness of ioselect-core: bytes → a sequence of selector
//! operations, run on `Selector<SoftBackend>` and on the reference model that
//! the property test shares (`core/tests/reference/mod.rs`, included here):
//! one set of rules, two generators. After every operation the results, the
//! map view, `get_key`/`contains` of every fd and the backend's interest
//! must agree; any difference panics. libFuzzer adds coverage guidance on
//! top of proptest's random walks.

use std::time::Duration;

use ioselect_core::RawFd;

#[path = "../../../core/tests/reference/mod.rs"]
mod reference;

use reference::{M, Op};

fn fd_of(b: u8) -> RawFd {
    match b {
        0..=223 => RawFd::from(b) % (M as RawFd + 3),
        224..=239 => -RawFd::from(b - 223),
        240..=247 => RawFd::MIN,
        _ => RawFd::MAX - RawFd::from(b - 248),
    }
}

fn events_of(b: u8) -> u8 {
    if b < 192 { b % 3 + 1 } else { b }
}

/// Four bytes → one operation: `[code, fd, events/readiness, data]`.
fn op_of([code, a, b, c]: [u8; 4]) -> Op {
    let (fd, bits, data) = (fd_of(a), events_of(b), u32::from(c));
    match code % 16 {
        0..=2 => Op::Register(fd, bits, data),
        3 => Op::ModifyEvents(fd, bits),
        4 => Op::ModifyData(fd, data),
        5 => Op::Modify(fd, bits, data),
        6 => Op::Unregister(fd),
        7 => Op::UnregisterClosed(fd),
        8 => Op::Rebuild(b % 4 != 0),
        // Readiness: any bits, unknown ones included.
        9 => Op::SetReady(fd, b),
        10 => Op::Fail([1, 9, 12, 22, 2, 17][usize::from(b % 6)]),
        11 => Op::Select(match b % 4 {
            0 => Some(Duration::ZERO),
            1 => Some(Duration::from_nanos(1)),
            2 => Some(Duration::MAX),
            _ => None,
        }),
        12 => Op::NextSet(data),
        13 => Op::Drain,
        _ => Op::Next,
    }
}

/// Runs the operations the bytes encode (a short tail is ignored); panics
/// on any difference between the selector and the model.
pub fn run(data: &[u8]) {
    let ops: Vec<Op> = data
        .chunks_exact(4)
        .map(|c| op_of([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Err(difference) = reference::run(&ops, |_, _| ()) {
        panic!("{difference}");
    }
}

#[cfg(test)]
mod tests {
    /// A deterministic smoke run of the harness, without libFuzzer.
    #[test]
    fn random_sequences_agree_with_the_model() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut data = [0u8; 512];
        for _ in 0..5_000 {
            for b in data.iter_mut() {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            super::run(&data);
        }
    }
}
