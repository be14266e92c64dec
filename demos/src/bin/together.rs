//! The seed's echo server and client in one command: the server runs on one
//! thread and the client on another, each on its own `DefaultSelector`, and
//! both transcripts are printed, labelled, once both are done.
//!
//! `together [--host localhost] [--port P]` (`--port 0`: a free port).
//! Without `--port` it uses the seed's port 10000, or a free port when
//! 10000 is taken.
//! It gives up after 20 seconds, so it always terminates.

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ioselect_demos::args::Args;
use ioselect_demos::seed::{DEFAULT_PORT, EchoServer, run_client};

/// A transcript kept in memory, shared with the thread writing it.
#[derive(Clone, Default)]
struct Transcript(Arc<Mutex<Vec<u8>>>);

impl Write for Transcript {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut v = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transcript {
    fn text(&self) -> String {
        match self.0.lock() {
            Ok(v) => String::from_utf8_lossy(&v).into_owned(),
            Err(_) => String::from("(transcript lost)\n"),
        }
    }
}

const LIMIT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    let args = match Args::parse(&[]).and_then(|a| {
        a.only(&["host", "port"])?;
        Ok((
            a.get("host", "localhost".to_owned())?,
            a.get("port", u32::MAX)?,
        ))
    }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("together: {e}\nusage: together [--host H] [--port P]");
            return ExitCode::FAILURE;
        }
    };
    let (host, port) = args;
    // Without `--port`, the seed's 10000, or a free port if that is taken.
    let fallback = port == u32::MAX;
    let port = match u16::try_from(port) {
        Ok(p) => p,
        Err(_) if fallback => DEFAULT_PORT,
        Err(_) => {
            eprintln!("together: invalid port {port}");
            return ExitCode::FAILURE;
        }
    };
    let (server_out, client_out) = (Transcript::default(), Transcript::default());

    // The server binds first, on its own thread, and reports its port: the
    // client cannot try to connect too early.
    let (done, finished) = mpsc::channel();
    let (bound, port_rx) = mpsc::channel();
    let (d, h, s_out) = (done.clone(), host.clone(), server_out.clone());
    std::thread::spawn(move || {
        let mut server = EchoServer::bind(&h, port, Box::new(s_out.clone()));
        if fallback && matches!(&server, Err(e) if e.kind() == io::ErrorKind::AddrInUse) {
            eprintln!("together: port {port} is in use; using a free port instead");
            server = EchoServer::bind(&h, 0, Box::new(s_out));
        }
        let result = server.and_then(|s| {
            let _ = bound.send(Some(s.port()?));
            s.run()
        });
        let _ = bound.send(None);
        let _ = d.send(("server", result));
    });
    let port = match port_rx.recv_timeout(LIMIT) {
        Ok(Some(p)) => p,
        _ => {
            let why = match finished.try_recv() {
                Ok((_, Err(e))) => e.to_string(),
                _ => "did not start".to_owned(),
            };
            eprintln!("together: server: {why} (try --port 0 for a free port)");
            return ExitCode::FAILURE;
        }
    };
    let c = client_out.clone();
    std::thread::spawn(move || {
        let _ = done.send(("client", run_client(&host, port, Box::new(c))));
    });

    let deadline = Instant::now() + LIMIT;
    let mut failures = Vec::new();
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        match finished.recv_timeout(left) {
            Ok((_, Ok(()))) => {}
            Ok((who, Err(e))) => failures.push(format!("{who}: {e}")),
            Err(_) => {
                failures.push(format!("did not finish within {LIMIT:?}"));
                break;
            }
        }
    }

    let mut stdout = io::stdout().lock();
    let _ = write!(
        stdout,
        "==> server: selectors_echo_server --port {port} <==\n{}\n\
         ==> client: selectors_echo_client --port {port} <==\n{}",
        server_out.text(),
        client_out.text()
    );
    let _ = stdout.flush();
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in failures {
            eprintln!("together: {f}");
        }
        ExitCode::FAILURE
    }
}
