//! The cost comparison's (c): the same TCP echo as `net-echo` and
//! `net-hand`, written as embassy's own examples are: embassy-net (its
//! smoltcp, 0.12) on the same Ethernet controller, through an
//! `embassy_net_driver::Driver` on the same register-level driver
//! (`ioselect_firmware::embassy`), embassy-time on the board's SysTick
//! clock, and embassy-executor's executor in thread mode running the network
//! task and one echo task per socket. Each echo task owns a
//! socket: accept on the port, read into its 1 KiB buffer, write all of it
//! back (not reading meanwhile: the same back-pressure), close on end of
//! file and wait for the close to finish, accept again. The same socket
//! count, buffers and seed log lines as `net-echo`.
//!
//! The executor's loop (`ioselect_firmware::embassy::run`) is the one of
//! arch-cortex-m's thread-mode executor, sleeping in the masked
//! check-then-`wfi` of `net-echo` and `net-hand` instead of `wfe` (which
//! QEMU does not halt in), metered as theirs are (the busy time, the cost
//! figures' instructions); it logs `waiting for I/O` before it sleeps when a
//! task logged. Serves until QEMU is stopped.
#![no_std]
#![no_main]

#[cfg(not(machine = "lm3s6965evb"))]
compile_error!("net-embassy: lm3s6965evb only (its Ethernet controller)");

use core::sync::atomic::{AtomicBool, Ordering};

use defmt::{info, warn};
use embassy_executor::raw;
use embassy_net::tcp::TcpSocket;
use embassy_net::{
    Config, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr, Runner, Stack, StackResources,
    StaticConfigV4,
};
use ioselect_firmware::embassy::{self as emb, EnetDriver};
use ioselect_firmware::net::{BUFFER, SOCKETS, seed_log};
use ioselect_firmware::{self as fw, enet::Enet};

/// The port the seed listens on.
const PORT: u16 = 10000;
/// Bytes per connection whose reads are logged line by line.
const VERBOSE: u32 = 64;
/// smoltcp's random seed (initial sequence numbers, local ports): fixed,
/// as the runs under `-icount` are.
const SEED: u64 = 0x5EED_0000_0000_0001;

/// A task logged a line since the last `waiting for I/O`.
static LOGGED: AtomicBool = AtomicBool::new(true);

fn logged() {
    LOGGED.store(true, Ordering::Relaxed);
}

/// embassy-net's endpoint (its smoltcp's) as the seed prints it.
fn peer(e: Option<IpEndpoint>) -> seed_log::Peer {
    match e {
        Some(IpEndpoint {
            addr: IpAddress::Ipv4(a),
            port,
        }) => seed_log::Peer(a.octets(), port),
        None => seed_log::Peer([0; 4], 0),
    }
}

/// The stack's sockets and state: static, handed out once.
static RESOURCES: fw::Once<StackResources<SOCKETS>> = fw::Once::new(StackResources::new());

#[embassy_executor::task]
async fn net_task(mut runner: Runner<'static, EnetDriver>) -> ! {
    runner.run().await
}

/// One socket: accepts, echoes, closes, accepts again.
#[embassy_executor::task(pool_size = SOCKETS)]
async fn echo(stack: Stack<'static>) -> ! {
    let mut rx = [0; BUFFER];
    let mut tx = [0; BUFFER];
    let mut buf = [0; 1024];
    let mut socket = TcpSocket::new(stack, &mut rx, &mut tx);
    loop {
        if let Err(e) = socket.accept(PORT).await {
            // A listen refused (the socket is not closed yet): never seen;
            // the close below waits for the socket to be closed.
            warn!("accept: {}", defmt::Debug2Format(&e));
            socket.abort();
            let _ = socket.flush().await;
            continue;
        }
        let peer = peer(socket.remote_endpoint());
        logged();
        seed_log::accept(peer);
        let busy_at = fw::meter::busy_ns();
        let (mut received, mut reads) = (0u32, 0u32);
        loop {
            let r = socket.read(&mut buf).await;
            let verbose = received < VERBOSE;
            if verbose {
                logged();
                seed_log::read(peer);
            }
            let n = match r {
                Ok(0) => {
                    logged();
                    info!("    closing");
                    break;
                }
                Ok(n) => n,
                Err(_) => {
                    logged();
                    warn!("    recv: reset: closing");
                    break;
                }
            };
            received += n as u32;
            reads += 1;
            if verbose {
                seed_log::received(&buf[..n]);
            }
            // The seed's `sendall`: this connection is not read until all
            // of it is queued.
            let mut sent = 0;
            while sent < n {
                match socket.write(&buf[sent..n]).await {
                    Ok(k) => sent += k,
                    Err(_) => break,
                }
            }
            if sent < n {
                logged();
                warn!("    send: reset: closing");
                break;
            }
        }
        // A FIN after what is queued; the socket is free again once the
        // peer has acknowledged it (`flush` waits for that), or after 5 s
        // without an answer.
        socket.close();
        socket.set_timeout(Some(embassy_time::Duration::from_secs(5)));
        let _ = socket.flush().await;
        socket.set_timeout(None);
        if received > VERBOSE {
            seed_log::closed(received, reads, busy_at, emb::polls());
        }
        // Fault injection (see the `tx-busy` feature): what the driver met.
        #[cfg(feature = "tx-busy")]
        {
            let (driver, wakes) = emb::driver_stats();
            info!(
                "    driver: {=u32} frames received, {=u32} sent, transmitter busy {=u32} times, {=u32} of them with a received frame held, {=u32} wake-ups by TXEMP",
                driver.rx, driver.tx, driver.tx_busy, driver.rx_held, wakes
            );
        }
    }
}

#[cortex_m_rt::entry]
fn main() -> ! {
    fw::stack::paint();
    fw::init();
    let Some((enet, mac)) = Enet::init() else {
        panic!("Ethernet taken")
    };
    let Some(resources) = RESOURCES.take() else {
        panic!("resources taken")
    };
    let ip = Ipv4Address::new(10, 0, 2, 15);
    let config = Config::ipv4_static(StaticConfigV4 {
        address: Ipv4Cidr::new(ip, 24),
        gateway: Some(Ipv4Address::new(10, 0, 2, 2)),
        dns_servers: Default::default(),
    });
    let (stack, runner) = embassy_net::new(EnetDriver::new(enet, mac), config, resources, SEED);
    // The context is the pender's argument; this pender needs none.
    let executor = raw::Executor::new(core::ptr::null_mut());
    // SAFETY: `main` never returns, so `executor` lives for the rest of
    // the program and is never moved (embassy's documented way for a
    // `fn main() -> !`; it is not `Sync` and so cannot be a `static`).
    let executor: &'static raw::Executor = unsafe { &*core::ptr::from_ref(&executor) };
    let spawner = executor.spawner();
    seed_log::starting(ip, PORT, " (embassy-net, embassy-executor)");
    if spawner.spawn(net_task(runner)).is_err() {
        panic!("spawn: network task");
    }
    for _ in 0..SOCKETS {
        if spawner.spawn(echo(stack)).is_err() {
            panic!("spawn: echo task");
        }
    }
    emb::run(executor, || {
        if LOGGED.load(Ordering::Relaxed) {
            LOGGED.store(false, Ordering::Relaxed);
            info!("waiting for I/O");
        }
    })
}
