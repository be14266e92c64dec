//! The byte stream each connection sends: pattern[(offset + salt) % 65536..].
#![cfg(target_os = "linux")]

pub(crate) const PATTERN_PERIOD: usize = 1 << 16;
/// Longest slice compared or sent at once.
pub(crate) const CHUNK: usize = 1 << 16;

pub(crate) fn pattern() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut p: Vec<u8> = (0..PATTERN_PERIOD)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 56) as u8
        })
        .collect();
    // Periodic: byte `PATTERN_PERIOD + j` is byte `j`, so any window reads
    // the same stream whatever the chunking.
    p.extend_from_within(..CHUNK);
    p
}

pub(crate) fn window(pattern: &[u8], salt: usize, offset: u64, len: usize) -> &[u8] {
    let start = (offset as usize + salt) % PATTERN_PERIOD;
    &pattern[start..start + len.min(CHUNK)]
}
