//! The echo client the static-binary checks use: `echo_check --port P
//! [--host 127.0.0.1] [--clients 8] [--bytes 100000]`.
//!
//! Every client connects at once, sends its own pattern from one thread,
//! half-closes, reads the echo to end of file on another, and compares.
//! Exits 0 when every byte came back, 1 otherwise; gives up after 10 s of
//! silence on any socket.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::ExitCode;
use std::thread;
use std::time::Duration;

use ioselect_demos::args::Args;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ seed.wrapping_mul(97) ^ (i >> 8)) as u8)
        .collect()
}

fn client(host: &str, port: u16, seed: usize, len: usize) -> Result<(), String> {
    let s = TcpStream::connect((host, port)).map_err(|e| format!("connect: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    s.set_read_timeout(timeout).map_err(|e| e.to_string())?;
    s.set_write_timeout(timeout).map_err(|e| e.to_string())?;
    let data = pattern(seed, len);
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let sent = data.clone();
    let writer = thread::spawn(move || -> Result<(), String> {
        w.write_all(&sent).map_err(|e| format!("send: {e}"))?;
        w.shutdown(Shutdown::Write)
            .map_err(|e| format!("shutdown: {e}"))
    });
    let mut got = Vec::with_capacity(len);
    (&s).read_to_end(&mut got)
        .map_err(|e| format!("receive: {e}"))?;
    writer.join().map_err(|_| "writer panicked".to_owned())??;
    if got != data {
        let at = got.iter().zip(&data).position(|(a, b)| a != b);
        return Err(format!(
            "echo differs: {} bytes back of {len}, first difference at {at:?}",
            got.len()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let run = || -> Result<String, String> {
        let args = Args::parse(&[])?;
        args.only(&["host", "port", "clients", "bytes"])?;
        let host: String = args.get("host", "127.0.0.1".to_owned())?;
        let port: u16 = args.get("port", 0)?;
        if port == 0 {
            return Err("--port is required".to_owned());
        }
        let clients: usize = args.get("clients", 8)?;
        let bytes: usize = args.get("bytes", 100_000)?;
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let host = host.clone();
                thread::spawn(move || client(&host, port, i, bytes))
            })
            .collect();
        for (i, h) in handles.into_iter().enumerate() {
            h.join()
                .map_err(|_| format!("client {i} panicked"))?
                .map_err(|e| format!("client {i}: {e}"))?;
        }
        Ok(format!("{clients} clients x {bytes} bytes echoed"))
    };
    match run() {
        Ok(msg) => {
            println!("echo_check: {msg}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_check: {e}");
            ExitCode::FAILURE
        }
    }
}
