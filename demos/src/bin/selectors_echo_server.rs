//! The selectors echo server of Python's documentation (PyMOTW), in Rust:
//! `selectors_echo_server [--host localhost] [--port 10000]`.

use std::process::ExitCode;

use ioselect_demos::args::Args;
use ioselect_demos::seed::{DEFAULT_PORT, EchoServer};

fn main() -> ExitCode {
    let run = || -> Result<(), String> {
        let args = Args::parse(&[])?;
        args.only(&["host", "port"])?;
        let host: String = args.get("host", "localhost".to_owned())?;
        let port: u16 = args.get("port", DEFAULT_PORT)?;
        let server = EchoServer::bind(&host, port, Box::new(std::io::stdout()))
            .map_err(|e| e.to_string())?;
        server.run().map_err(|e| e.to_string())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("selectors_echo_server: {e}");
            ExitCode::FAILURE
        }
    }
}
