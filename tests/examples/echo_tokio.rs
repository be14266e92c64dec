//! Benchmark peer: a plain tokio echo server, as tokio's own example writes
//! one: a `TcpListener`, a task per connection, `read` then `write_all`, with
//! a 16 KiB buffer per connection (as echod's).
//!
//! `echo_tokio [--port P] [--runtime current|multi] [--workers N]`: the
//! current-thread runtime, or the multi-thread runtime with N worker threads
//! (default 1). Prints `listening on ADDR`, then serves until killed.
#![allow(missing_docs)]

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Bytes of buffer per connection (as echod).
const BUF: usize = 16 * 1024;

struct Opts {
    port: u16,
    multi: bool,
    workers: usize,
}

fn opts() -> Opts {
    let usage = "usage: echo_tokio [--port P] [--runtime current|multi] [--workers N]";
    let mut o = Opts {
        port: 0,
        multi: false,
        workers: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| panic!("{usage}"));
        match a.as_str() {
            "--port" => o.port = v.parse().expect("--port P"),
            "--runtime" => {
                o.multi = match v.as_str() {
                    "current" => false,
                    "multi" => true,
                    _ => panic!("{usage}"),
                }
            }
            "--workers" => o.workers = v.parse().expect("--workers N"),
            _ => panic!("{usage}"),
        }
    }
    o
}

async fn echo(mut socket: TcpStream) {
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(port: u16) {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local_addr");
    let mut out = std::io::stdout();
    writeln!(out, "listening on {addr}").expect("stdout");
    out.flush().expect("stdout");
    loop {
        match listener.accept().await {
            Ok((socket, _)) => {
                tokio::spawn(echo(socket));
            }
            // Out of fds and the like: the others keep being served.
            Err(_) => tokio::task::yield_now().await,
        }
    }
}

fn main() {
    let o = opts();
    let rt = if o.multi {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(o.workers)
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    };
    rt.expect("tokio runtime").block_on(serve(o.port));
}
