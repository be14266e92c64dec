//! Program start and exit, the only code that differs per architecture: the
//! ELF entry point `_start`, which hands the kernel's initial stack to
//! [`entry`], and `exit_group(2)`. The system call number is the kernel's
//! for the target (linux-raw-sys's `__NR_exit_group`), never a literal.
//!
//! At `_start` the stack pointer points at `argc`; each `_start` below
//! clears the frame pointer and return address (the outermost frame, for
//! debuggers), passes that address as the first argument, aligns the stack
//! as the C ABI wants it at a call, and calls `entry`, which never returns.

use core::arch::naked_asm;

use crate::entry;

/// The ELF entry point (x86_64: `rsp` holds the initial stack, the first
/// argument goes in `rdi`, `rsp` 16-byte aligned at the `call`).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "xor ebp, ebp",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {entry}",
        "ud2",
        entry = sym entry,
    )
}

/// The ELF entry point (i686: arguments on the stack, `esp` 16-byte aligned
/// before the `call`, as the i386 System V ABI requires since GCC 4.5).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "x86")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "xor ebp, ebp",
        "mov eax, esp",
        "and esp, -16",
        "sub esp, 12",
        "push eax",
        "call {entry}",
        "ud2",
        entry = sym entry,
    )
}

/// The ELF entry point (arm64: `sp` is 16-byte aligned already, the first
/// argument goes in `x0`).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x0, sp",
        "bl {entry}",
        "udf #0",
        entry = sym entry,
    )
}

/// The ELF entry point (armv7, A32 state: the first argument goes in `r0`,
/// `sp` 8-byte aligned at a public interface; 16 here).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "arm")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "mov fp, #0",
        "mov lr, #0",
        "mov r0, sp",
        "bic sp, sp, #15",
        "bl {entry}",
        "udf #0",
        entry = sym entry,
    )
}

/// The ELF entry point (riscv64: `gp` is set first, as the C runtime's
/// start-up does, since the linker may relax accesses to be relative to it;
/// the first argument goes in `a0`, `sp` 16-byte aligned).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "riscv64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        ".option push",
        ".option norelax",
        "lla gp, __global_pointer$",
        ".option pop",
        "li fp, 0",
        "li ra, 0",
        "mv a0, sp",
        "andi sp, sp, -16",
        "call {entry}",
        "unimp",
        entry = sym entry,
    )
}

/// The ELF entry point (s390x: the stack pointer is `r15`, the first
/// argument goes in `r2`; a callee may use the 160-byte register save area
/// above the stack pointer, whose first word, the back chain, is zeroed to
/// end the chain of frames).
///
/// # Safety
/// Only the kernel calls it, once, at program start.
#[cfg(target_arch = "s390x")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start() -> ! {
    naked_asm!(
        "lgr %r2, %r15",
        "aghi %r15, -160",
        "nill %r15, 0xfff8",
        "xc 0(8,%r15), 0(%r15)",
        "brasl %r14, {entry}",
        ".short 0",
        entry = sym entry,
    )
}

/// `exit_group(2)`: ends the process (all threads) with `code`.
pub(crate) fn exit(code: i32) -> ! {
    const NR: usize = linux_raw_sys::general::__NR_exit_group as usize;
    // SAFETY: `exit_group` takes one integer and never returns; it touches
    // no memory of ours. Each block is the architecture's system call
    // instruction with its number and first-argument registers.
    unsafe {
        #[cfg(target_arch = "x86_64")]
        core::arch::asm!("syscall", in("rax") NR, in("rdi") code, options(noreturn, nostack));
        #[cfg(target_arch = "x86")]
        core::arch::asm!("int 0x80", in("eax") NR, in("ebx") code, options(noreturn, nostack));
        #[cfg(target_arch = "aarch64")]
        core::arch::asm!("svc 0", in("x8") NR, in("x0") code, options(noreturn, nostack));
        #[cfg(target_arch = "arm")]
        core::arch::asm!("svc 0", in("r7") NR, in("r0") code, options(noreturn, nostack));
        #[cfg(target_arch = "riscv64")]
        core::arch::asm!("ecall", in("a7") NR, in("a0") code, options(noreturn, nostack));
        #[cfg(target_arch = "s390x")]
        core::arch::asm!("svc 0", in("r1") NR, in("r2") code, options(noreturn, nostack));
    }
}
