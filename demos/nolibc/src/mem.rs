//! The C memory functions that compiled Rust code calls (`memcpy`, ...) and
//! that libc would otherwise provide. `rep movsb`/`rep stosb` on x86_64,
//! volatile byte loops elsewhere and for the rest, so the compiler cannot
//! turn them back into calls to themselves.

#[cfg(target_arch = "x86_64")]
use core::arch::asm;
use core::ffi::c_int;

/// `memcpy`: copies `n` bytes; the areas do not overlap.
///
/// # Safety
/// `dest` is valid for `n` writes, `src` for `n` reads.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; `rep movsb` copies rcx bytes forward
    // from rsi to rdi (the direction flag is clear, as the ABI guarantees).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// `memmove`: copies `n` bytes; the areas may overlap.
///
/// # Safety
/// `dest` is valid for `n` writes, `src` for `n` reads.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past its end: a forward copy is safe.
        // SAFETY: as `memcpy`; a forward copy reads each byte before it is
        // overwritten when `dest` lies below `src`.
        return unsafe { memcpy(dest, src, n) };
    }
    // `dest` overlaps the end of `src`: copy backwards, last byte first.
    // SAFETY: the caller's contract; with the direction flag set `rep movsb`
    // copies rcx bytes downwards from rsi/rdi (here the last bytes); the
    // flag is cleared again before returning, as the ABI requires.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.add(n - 1) => _,
             inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dest
}

/// `memset`: fills `n` bytes with `c`.
///
/// # Safety
/// `dest` is valid for `n` writes.
#[cfg(target_arch = "x86_64")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: c_int, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; `rep stosb` stores al at rdi, rcx times.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dest => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// `memcpy`: copies `n` bytes; the areas do not overlap.
///
/// # Safety
/// `dest` is valid for `n` writes, `src` for `n` reads.
#[cfg(not(target_arch = "x86_64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: `i < n`: within both areas (the caller's contract).
        unsafe { dest.add(i).write_volatile(src.add(i).read_volatile()) };
    }
    dest
}

/// `memmove`: copies `n` bytes; the areas may overlap.
///
/// # Safety
/// `dest` is valid for `n` writes, `src` for `n` reads.
#[cfg(not(target_arch = "x86_64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src` or past its end: a forward copy reads each
        // byte before it is overwritten.
        // SAFETY: the caller's contract.
        return unsafe { memcpy(dest, src, n) };
    }
    // `dest` overlaps the end of `src`: copy backwards, last byte first.
    for i in (0..n).rev() {
        // SAFETY: `i < n`: within both areas (the caller's contract).
        unsafe { dest.add(i).write_volatile(src.add(i).read_volatile()) };
    }
    dest
}

/// `memset`: fills `n` bytes with `c`.
///
/// # Safety
/// `dest` is valid for `n` writes.
#[cfg(not(target_arch = "x86_64"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: c_int, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: `i < n`: within the area (the caller's contract).
        unsafe { dest.add(i).write_volatile(c as u8) };
    }
    dest
}

/// `memcmp`: compares `n` bytes.
///
/// # Safety
/// `a` and `b` are valid for `n` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
    for i in 0..n {
        // SAFETY: `i < n`: within both areas (the caller's contract).
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return c_int::from(x) - c_int::from(y);
        }
    }
    0
}

/// `bcmp`: zero when the `n` bytes are equal.
///
/// # Safety
/// `a` and `b` are valid for `n` reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
    // SAFETY: the same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// `strlen`: the length of a NUL-terminated string.
///
/// # Safety
/// `s` points to a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: every byte up to and including the NUL is readable.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}
