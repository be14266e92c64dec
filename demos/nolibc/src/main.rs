//! An echo server on ioselect with no libc and no `std`: every system call is
//! rustix's raw Linux syscall, program start-up is the naked `_start` of
//! [`start`] (x86_64, i686, arm64, armv7, riscv64 and s390x), and there is
//! no heap: all state lives on the stack of `main`.
//!
//! `nolibc-echo [--port P]` listens on 127.0.0.1:P (P = 0: a free port),
//! prints `listening on 127.0.0.1:P`, and echoes for up to [`CONNS`]
//! clients at once, each with a fixed [`BUF`]-byte buffer: partial writes
//! wait for WRITE readiness, a client that does not read stops being read
//! (backpressure), a half-closed client gets all its data back before the
//! close. It runs until killed.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod mem;
mod start;

use core::net::{Ipv4Addr, SocketAddrV4};
use core::time::Duration;

use ioselect_linux::{DefaultSelector, Events};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType, accept_with, bind, listen, recv,
    send, socket_with, sockopt,
};

/// Clients served at once.
const CONNS: usize = 16;
/// Bytes of buffer per client.
const BUF: usize = 4096;
/// Key data of the listening socket (clients use their slot).
const LISTENER: u8 = u8::MAX;

// ---- start-up and the bare minimum a Rust program needs ---------------------

/// Reads `argc`/`argv` off the initial stack, runs [`main`], exits with its
/// status. Called by `_start` (in [`start`]).
///
/// # Safety
/// `stack` is the stack pointer the kernel gave `_start`.
unsafe extern "C" fn entry(stack: *const usize) -> ! {
    // SAFETY: the kernel's initial stack starts with argc, then argc
    // pointers to NUL-terminated strings (then a NULL, envp, auxv).
    let argc = unsafe { *stack };
    // SAFETY: as above: argv follows argc.
    let argv = unsafe { stack.add(1) } as *const *const u8;
    let args = Args { argc, argv };
    start::exit(main(&args))
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    print(b"nolibc-echo: panic\n");
    start::exit(101)
}

/// The command line, as the kernel handed it over.
struct Args {
    argc: usize,
    argv: *const *const u8,
}

impl Args {
    /// Argument `i` (0 is the program), without its NUL.
    fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: `i < argc`, so `argv[i]` is one of the kernel's pointers.
        let p = unsafe { *self.argv.add(i) };
        // SAFETY: each argument is NUL-terminated.
        let len = unsafe { mem::strlen(p) };
        // SAFETY: `p..p + len` is the argument without its NUL, and the
        // kernel's argument strings live (unchanged) for the whole run.
        Some(unsafe { core::slice::from_raw_parts(p, len) })
    }
}

fn print(msg: &[u8]) {
    // SAFETY: fd 1 is the standard output the process was started with;
    // it is only borrowed for this one `write`.
    let stdout = unsafe { BorrowedFd::borrow_raw(1) };
    let _ = rustix::io::write(stdout, msg);
}

fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut v: u32 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    u16::try_from(v).ok()
}

/// Writes `v` in decimal at the end of `out`, returns the digits.
fn decimal(mut v: u16, out: &mut [u8; 5]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &out[i..];
        }
    }
}

// ---- the echo server ---------------------------------------------------------

type Sel = DefaultSelector<u8, { CONNS + 1 }>;

struct Conn {
    fd: Option<OwnedFd>,
    buf: [u8; BUF],
    /// Bytes `start..end` of `buf` are read but not yet echoed.
    start: usize,
    end: usize,
    eof: bool,
    interest: Events,
}

fn main(args: &Args) -> i32 {
    let mut port = 0;
    let mut i = 1;
    while let Some(a) = args.get(i) {
        match (a, args.get(i + 1).and_then(parse_port)) {
            (b"--port", Some(p)) => port = p,
            _ => {
                print(b"usage: nolibc-echo [--port P]\n");
                return 2;
            }
        }
        i += 2;
    }
    match serve(port) {
        Ok(()) => 0,
        Err(e) => {
            print(b"nolibc-echo: error ");
            let mut digits = [0; 5];
            print(decimal(e.raw_os_error() as u16, &mut digits));
            print(b"\n");
            1
        }
    }
}

fn os(e: ioselect_linux::Error) -> Errno {
    match e {
        ioselect_linux::Error::Os(os) => Errno::from_raw_os_error(os.raw()),
        _ => Errno::INVAL,
    }
}

fn serve(port: u16) -> Result<(), Errno> {
    let listener = socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&listener, true)?;
    bind(&listener, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
    listen(&listener, 128)?;
    let bound = SocketAddrV4::try_from(rustix::net::getsockname(&listener)?)
        .map_err(|_| Errno::AFNOSUPPORT)?;

    let mut sel = Sel::open().map_err(os)?;
    sel.register(listener.as_fd(), Events::READ, LISTENER)
        .map_err(|e| os(e.error))?;
    let mut conns: [Conn; CONNS] = core::array::from_fn(|_| Conn {
        fd: None,
        buf: [0; BUF],
        start: 0,
        end: 0,
        eof: false,
        interest: Events::READ,
    });
    let mut listening = true;
    let mut resting = false;

    let mut digits = [0; 5];
    print(b"listening on 127.0.0.1:");
    print(decimal(bound.port(), &mut digits));
    print(b"\n");

    loop {
        // After an accept error the listener rests for 100 ms.
        let timeout = resting.then_some(Duration::from_millis(100));
        sel.select(timeout).map_err(os)?;
        // Set when the listener is paused for an error in this round: it
        // comes back only after the next (100 ms) select.
        let mut paused_now = false;
        while let Some((key, mask)) = sel.next_ready() {
            let slot = *key.data();
            if slot != LISTENER {
                serve_conn(&mut sel, &mut conns[usize::from(slot)], mask);
                continue;
            }
            let Some(free) = conns.iter().position(|c| c.fd.is_none()) else {
                // Full: stop watching the listener until a client leaves.
                let _ = sel.unregister(listener.as_fd());
                listening = false;
                continue;
            };
            match accept_with(&listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(fd) => {
                    if sel.register(fd.as_fd(), Events::READ, free as u8).is_ok() {
                        let c = &mut conns[free];
                        c.fd = Some(fd);
                        (c.start, c.end, c.eof, c.interest) = (0, 0, false, Events::READ);
                    }
                }
                Err(Errno::AGAIN | Errno::INTR | Errno::CONNABORTED) => {}
                Err(_) => {
                    // Out of fds or memory: the listener stays readable, so
                    // rest instead of spinning.
                    let _ = sel.unregister(listener.as_fd());
                    listening = false;
                    (resting, paused_now) = (true, true);
                }
            }
        }
        let room = conns.iter().any(|c| c.fd.is_none());
        if !listening && !paused_now && room {
            resting = false;
            listening = sel
                .register(listener.as_fd(), Events::READ, LISTENER)
                .is_ok();
        }
    }
}

/// Reads what fits, echoes what the peer takes, then sets the interest:
/// READ while there is room and no end of file, WRITE while data waits.
fn serve_conn(sel: &mut Sel, c: &mut Conn, mask: Events) {
    let Some(fd) = c.fd.as_ref() else {
        return;
    };
    let fd = fd.as_fd();
    let mut broken = false;
    if mask.contains(Events::READ) && !c.eof {
        loop {
            if c.end == BUF {
                if c.start == 0 {
                    break;
                }
                c.buf.copy_within(c.start..c.end, 0);
                c.end -= c.start;
                c.start = 0;
            }
            match recv(fd, &mut c.buf[c.end..], RecvFlags::empty()) {
                Ok((0, _)) => {
                    c.eof = true;
                    break;
                }
                Ok((n, _)) => c.end += n,
                Err(Errno::AGAIN) => break,
                Err(Errno::INTR) => {}
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
    }
    while !broken && c.start < c.end {
        match send(fd, &c.buf[c.start..c.end], SendFlags::NOSIGNAL) {
            Ok(n) => c.start += n,
            Err(Errno::AGAIN) => break,
            Err(Errno::INTR) => {}
            Err(_) => broken = true,
        }
    }
    if c.start == c.end {
        (c.start, c.end) = (0, 0);
    }
    let mut want = Events::empty();
    if !c.eof && (c.end < BUF || c.start > 0) {
        want |= Events::READ;
    }
    if c.start < c.end {
        want |= Events::WRITE;
    }
    if broken || want.is_empty() {
        // Reset, or half-closed with everything echoed: done.
        let _ = sel.unregister(fd);
        c.fd = None;
    } else if want != c.interest {
        if sel.modify_events(fd, want).is_ok() {
            c.interest = want;
        } else {
            let _ = sel.unregister(fd);
            c.fd = None;
        }
    }
}
