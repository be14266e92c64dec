//! `qemu-run`: runs one firmware ELF under QEMU and judges it.
//!
//! ```text
//! qemu-run --machine lm3s6965evb|microbit|virt [--expect FILE [--bless]]
//!          [--log FILE] [--echo] [--nic PORT] [--no-icount] [--icount-shift N]
//!          [--timeout SECS] [--trace FILE] ELF
//! ```
//!
//! - QEMU's semihosting stdout carries the firmware's defmt frames; they are
//!   decoded with `defmt-decoder` against the ELF and printed as
//!   `timestamp LEVEL message`.
//! - The exit status is QEMU's, which is the firmware's semihosting exit
//!   status (its panic handler exits with 1); a run over the timeout is
//!   killed and fails.
//! - `--expect FILE`: the log, without timestamps and without the lines
//!   marked `[measured`, must equal FILE (`--bless` writes it instead).
//!   Runs use `-icount shift=3,sleep=off` (deterministic) unless
//!   `--no-icount`.
//! - `--echo`: the UART is a Unix socket this program connects to, in
//!   QEMU's telnet mode (so that it can send a break); it sends the seed's
//!   two messages, a 64 KiB stream of a seeded PRNG (not periodic), a break
//!   and a last line, checks every byte of the echo, then sends EOT (0x04),
//!   on which the firmware closes and exits. The firmware's log must count
//!   exactly that one break among its receive errors.
//! - `--nic PORT` (lm3s6965evb): QEMU's user-mode network, confined to the
//!   guest (`restrict=on`), with 127.0.0.1:PORT forwarded to the guest's
//!   port 10000 (`net-echo.sh`). `--timeout 0`: no timeout. With `--nic`,
//!   `-icount` keeps `sleep=on` (idle time follows the host's clock);
//!   `--icount-shift N` sets its shift (default 3; 0: 1 ns per
//!   instruction, the cost figures).
//! - `--trace FILE`: QEMU writes every translated block's instructions
//!   (`-d in_asm`) and every block it runs (`-d exec,nochain`: no chaining,
//!   so each run of a block is logged) to FILE, for `costs.py`'s count of
//!   the instructions run per source file. Large: about 230 bytes per
//!   instruction block run.
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use std::{env, fs, thread};

use defmt_decoder::{DecodeError, Table};

struct Args {
    machine: String,
    elf: PathBuf,
    expect: Option<PathBuf>,
    bless: bool,
    log: Option<PathBuf>,
    echo: bool,
    nic: Option<u16>,
    icount: bool,
    shift: u32,
    timeout: Duration,
    trace: Option<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: qemu-run --machine lm3s6965evb|microbit|virt [--expect FILE [--bless]] \
         [--log FILE] [--echo] [--nic PORT] [--no-icount] [--icount-shift N] [--timeout SECS] [--trace FILE] ELF"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut it = env::args().skip(1);
    let (mut machine, mut elf, mut expect, mut log) = (None, None, None, None);
    let mut trace = None;
    let mut nic = None;
    let mut shift = 3;
    let (mut bless, mut echo, mut icount, mut timeout) = (false, false, true, 60);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--machine" => machine = it.next(),
            "--expect" => expect = it.next().map(PathBuf::from),
            "--log" => log = it.next().map(PathBuf::from),
            "--trace" => trace = it.next().map(PathBuf::from),
            "--bless" => bless = true,
            "--echo" => echo = true,
            "--nic" => {
                nic = Some(
                    it.next()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "--no-icount" => icount = false,
            "--icount-shift" => {
                shift = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--timeout" => {
                timeout = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ if a.starts_with("--") => usage(),
            _ => elf = Some(PathBuf::from(a)),
        }
    }
    // `cargo run`'s runner line puts --machine first; any order works.
    let (Some(machine), Some(elf)) = (machine, elf) else {
        usage()
    };
    Args {
        machine,
        elf,
        expect,
        bless,
        log,
        echo,
        nic,
        icount,
        shift,
        timeout: Duration::from_secs(timeout),
        trace,
    }
}

fn qemu(args: &Args, serial: Option<&str>) -> Command {
    let mut cmd = match args.machine.as_str() {
        "lm3s6965evb" => {
            let mut c = Command::new("qemu-system-arm");
            c.args(["-cpu", "cortex-m3", "-machine", "lm3s6965evb"]);
            c
        }
        "microbit" => {
            let mut c = Command::new("qemu-system-arm");
            c.args(["-machine", "microbit"]);
            c
        }
        "virt" => {
            let mut c = Command::new("qemu-system-riscv32");
            c.args(["-machine", "virt", "-bios", "none"]);
            c
        }
        _ => usage(),
    };
    cmd.args([
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
    ]);
    if args.icount && args.nic.is_some() {
        // With a network the host's clock paces the idle time (sleep=on);
        // running, each instruction is 2^shift ns of the machine's clock.
        cmd.args(["-icount", &format!("shift={}", args.shift)]);
    } else if args.icount {
        cmd.args(["-icount", &format!("shift={},sleep=off", args.shift)]);
    }
    match serial {
        // telnet=on: QEMU turns `IAC BRK` into a break on the UART.
        Some(path) => cmd.args([
            "-serial",
            &format!("unix:{path},server=on,wait=on,telnet=on"),
        ]),
        None => cmd.args(["-serial", "none"]),
    };
    if let Some(port) = args.nic {
        // Confined: the guest reaches nothing but the forwarded port.
        cmd.args([
            "-nic",
            &format!("user,model=stellaris,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:10000"),
        ]);
    } else if args.machine == "lm3s6965evb" {
        // Its Ethernet controller is always there: give it a network that
        // reaches nothing (no warning about a NIC without a peer).
        cmd.args(["-nic", "user,model=stellaris,restrict=on"]);
    } else {
        cmd.args(["-nic", "none"]);
    }
    if let Some(path) = &args.trace {
        cmd.args(["-d", "exec,nochain,in_asm", "-D"]).arg(path);
    }
    cmd.arg("-kernel").arg(&args.elf);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: prctl is async-signal-safe, and the closure touches nothing
    // but its arguments. QEMU then gets SIGKILL when this runner ends,
    // however it ends (a test's `kill`, Ctrl-C, a crash): no QEMU is left.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Decodes frames from QEMU's stdout until it closes; sends each line.
fn decode(
    elf: Vec<u8>,
    mut out: impl Read,
    lines: mpsc::Sender<String>,
    waiting: Arc<AtomicBool>,
) -> Result<(), String> {
    let table = Table::parse(&elf)
        .map_err(|e| format!("defmt table: {e}"))?
        .ok_or("the ELF has no defmt data")?;
    let mut decoder = table.new_stream_decoder();
    let mut buf = [0u8; 4096];
    loop {
        let n = out
            .read(&mut buf)
            .map_err(|e| format!("reading QEMU's stdout: {e}"))?;
        if n == 0 {
            return Ok(());
        }
        decoder.received(&buf[..n]);
        loop {
            match decoder.decode() {
                Ok(frame) => {
                    let ts = frame
                        .display_timestamp()
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    let level = frame
                        .level()
                        .map_or("PRINT".to_string(), |l| format!("{l:?}").to_uppercase());
                    let line = format!("{ts} {level} {}", frame.display_message());
                    println!("{line}");
                    if line.ends_with("waiting for I/O") {
                        waiting.store(true, Ordering::Release);
                    }
                    let _ = lines.send(line);
                }
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => return Err("malformed defmt frame".into()),
            }
        }
    }
}

/// The log as compared: no timestamp, no `[measured` lines.
fn normalize(lines: &[String]) -> String {
    let mut s = String::new();
    for l in lines {
        if l.contains("[measured") {
            continue;
        }
        let rest = l.split_once(' ').map_or(l.as_str(), |(_, r)| r);
        s.push_str(rest);
        s.push('\n');
    }
    s
}

fn wait(child: &mut Child, limit: Duration) -> Result<i32, String> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return status
                .code()
                .ok_or_else(|| format!("QEMU killed: {status}"));
        }
        if !limit.is_zero() && start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timeout: QEMU still running after {limit:?}, killed"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// What QEMU's telnet mode sends first: WILL ECHO, WILL SUPPRESS-GO-AHEAD,
/// WILL BINARY, DO BINARY (`tcp_chr_telnet_init` in chardev/char-socket.c).
const TELNET_INIT: [u8; 12] = [
    0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfb, 0x00, 0xff, 0xfd, 0x00,
];
/// Telnet's "interpret as command", and the break command.
const IAC: u8 = 0xff;
const BRK: u8 = 0xf3;
/// The firmware closes on this byte.
const EOT: u8 = 4;

/// `data` as telnet sends it: an `IAC` byte doubled.
fn telnet(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 128);
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

/// `n` bytes of splitmix64 from `seed`: no period within them, so a block
/// echoed out of place is caught. EOT (which closes) becomes 0x05.
fn prng_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend(
            z.to_le_bytes()
                .iter()
                .map(|&b| if b == EOT { 5 } else { b }),
        );
    }
    out.truncate(n);
    out
}

/// The seed's two messages, a 64 KiB stream, a break, a last line and EOT
/// through the UART, once the firmware says `waiting for I/O` (its UART is
/// set up: bytes that come before are dropped when it turns the FIFOs on).
fn echo_client(path: &str, waiting: &AtomicBool) -> Result<(), String> {
    let start = Instant::now();
    let mut sock = loop {
        match UnixStream::connect(path) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(20) => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(format!("connect {path}: {e}")),
        }
    };
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let read_exact = |sock: &mut UnixStream, n: usize| -> Result<Vec<u8>, String> {
        let mut got = vec![0u8; n];
        sock.read_exact(&mut got)
            .map_err(|e| format!("reading the echo: {e}"))?;
        Ok(got)
    };
    let init = read_exact(&mut sock, TELNET_INIT.len())?;
    if init != TELNET_INIT {
        return Err(format!("QEMU's telnet negotiation: {init:02x?}"));
    }
    println!("[host] connected to the UART (telnet mode)");
    while !waiting.load(Ordering::Acquire) {
        if start.elapsed() > Duration::from_secs(20) {
            return Err("the firmware never said `waiting for I/O`".into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let messages: [&[u8]; 2] = [b"This is the message. ", b"It will be repeated."];
    for m in messages {
        println!("[host] sending b'{}'", String::from_utf8_lossy(m));
        sock.write_all(m).map_err(|e| e.to_string())?;
    }
    let want: Vec<u8> = messages.concat();
    let got = read_exact(&mut sock, want.len())?;
    println!("[host] received b'{}'", String::from_utf8_lossy(&got));
    if got != want {
        return Err("the echo of the seed's messages differs".into());
    }

    let stream = prng_bytes(0x10_5e1e_c7, 64 * 1024);
    let mut writer = sock.try_clone().map_err(|e| e.to_string())?;
    let sent = telnet(&stream);
    let t = Instant::now();
    let feeder = thread::spawn(move || writer.write_all(&sent).map_err(|e| e.to_string()));
    let got = read_exact(&mut sock, stream.len())?;
    feeder.join().map_err(|_| "writer panicked")??;
    if let Some(i) = got.iter().zip(&stream).position(|(a, b)| a != b) {
        return Err(format!(
            "64 KiB stream: byte {i} is {:#04x}, sent {:#04x}",
            got[i], stream[i]
        ));
    }
    println!(
        "[host] 64 KiB stream (seeded PRNG) echoed, every byte checked, in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    // A break (its 0 byte is not data: not echoed), then a line.
    let last = b"after the break";
    sock.write_all(&[IAC, BRK]).map_err(|e| e.to_string())?;
    sock.write_all(last).map_err(|e| e.to_string())?;
    let got = read_exact(&mut sock, last.len())?;
    if got != last {
        return Err(format!(
            "after the break: got b'{}'",
            String::from_utf8_lossy(&got)
        ));
    }
    println!("[host] sent a break, then b'after the break': echoed without the break");
    sock.write_all(&[EOT]).map_err(|e| e.to_string())?;
    println!("[host] sent EOT");
    Ok(())
}

/// The receive errors the echo firmware must report for `echo_client`'s run.
const ECHO_ERRORS: &str = "receive errors: 0 overrun, 1 break, 0 parity, 0 framing";

fn run(args: &Args) -> Result<(), String> {
    let elf = fs::read(&args.elf).map_err(|e| format!("{}: {e}", args.elf.display()))?;
    let dir = env::temp_dir().join(format!("qemu-run-{}", std::process::id()));
    let sock = args.echo.then(|| {
        let _ = fs::create_dir_all(&dir);
        dir.join("uart.sock").to_string_lossy().into_owned()
    });
    let mut child = qemu(args, sock.as_deref())
        .spawn()
        .map_err(|e| format!("starting QEMU: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel();
    let waiting = Arc::new(AtomicBool::new(false));
    let seen = waiting.clone();
    let decoder = thread::spawn(move || decode(elf, stdout, tx, seen));
    let client = sock.as_deref().map(|path| echo_client(path, &waiting));
    let code = wait(&mut child, args.timeout);
    let decoded = decoder.join().map_err(|_| "decoder panicked")?;
    let _ = fs::remove_dir_all(&dir);
    let lines: Vec<String> = rx.try_iter().collect();
    if let Some(path) = &args.log {
        fs::write(path, lines.join("\n") + "\n").map_err(|e| e.to_string())?;
    }
    decoded?;
    if let Some(client) = client {
        client?;
        if !lines.iter().any(|l| l.ends_with(ECHO_ERRORS)) {
            return Err(format!("the firmware did not report `{ECHO_ERRORS}`"));
        }
    }
    let code = code?;
    if code != 0 {
        return Err(format!("the firmware failed: exit status {code}"));
    }
    if let Some(path) = &args.expect {
        let got = normalize(&lines);
        if args.bless {
            fs::write(path, &got).map_err(|e| e.to_string())?;
            println!("wrote {}", path.display());
        } else {
            let want = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if got != want {
                for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
                    if g != w {
                        eprintln!("line {}:\n  expected: {w}\n  got:      {g}", i + 1);
                        break;
                    }
                }
                return Err(format!(
                    "the log differs from {} ({} lines expected, {} got)",
                    path.display(),
                    want.lines().count(),
                    got.lines().count()
                ));
            }
            println!("log matches {}", path.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qemu-run: {} on {}: {e}", args.elf.display(), args.machine);
            ExitCode::FAILURE
        }
    }
}
