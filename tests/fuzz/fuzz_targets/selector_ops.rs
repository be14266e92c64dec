//! libFuzzer target: the fuzzer's bytes are a sequence of selector
//! operations, run against the selector and a reference model by
//! [`ioselect_fuzz::run`], which panics on any difference.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ioselect_fuzz::run(data);
});
