//! The Rust seed programs against the Python originals: every pairing of
//! {Rust, Python} server with {Rust, Python} client, transcripts compared
//! line by line with the seed's, ports aside.
//!
//! What may legitimately differ between two runs (of the same or of
//! different languages) is timing only, and the comparison factors exactly
//! that out, nothing else:
//! - how many `waiting for I/O` lines appear (a select that times out after
//!   one second prints another one); every event line must still come
//!   straight after a `waiting for I/O`;
//! - whether the server reads the two messages in one `recv` or two, and
//!   the client the echo in one or two (the joined payloads must match);
//! - whether the client sees the echo in the same `select` as its last
//!   "ready to write" (`ready to read` before `ready to write` in one batch).
//!
//! The remaining lines are compared exactly, in order, with the seed's
//! transcript (PyMOTW's, its typos fixed: two-space indents, one space
//! between the messages).

mod util;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use util::{Proc, have_python};

const LIMIT: Duration = Duration::from_secs(20);

/// The seed's server transcript, after `canonical_server`.
const SEED_SERVER: &[&str] = &[
    "starting up on localhost port PORT",
    "accept(('127.0.0.1', PORT))",
    "read(('127.0.0.1', PORT))",
    "  received b'This is the message. It will be repeated.'",
    "read(('127.0.0.1', PORT))",
    "  closing",
    "shutting down",
];

/// The seed's client transcript, after `canonical_client`.
const SEED_CLIENT: &[&str] = &[
    "connecting to localhost port PORT",
    "client(('127.0.0.1', PORT))",
    "  ready to write",
    "  sending b'This is the message. '",
    "client(('127.0.0.1', PORT))",
    "  ready to write",
    "  sending b'It will be repeated.'",
    "client(('127.0.0.1', PORT))",
    "  ready to write",
    "  switching to read-only",
    "  received b'This is the message. It will be repeated.'",
    "shutting down",
];

#[derive(Clone, Copy, Debug)]
enum Lang {
    Rust,
    Python,
}

fn python_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python")
}

fn command(lang: Lang, program: &str, port: u16) -> Command {
    let mut cmd = match lang {
        Lang::Rust => util::program(match program {
            "server" => env!("CARGO_BIN_EXE_selectors_echo_server"),
            _ => env!("CARGO_BIN_EXE_selectors_echo_client"),
        }),
        Lang::Python => {
            let mut c = Command::new("python3");
            c.arg("-u")
                .arg(python_dir().join(format!("selectors_echo_{program}.py")));
            c
        }
    };
    cmd.arg("--port").arg(port.to_string());
    cmd
}

/// Replaces every port number (`port 123`, `', 123)`) with `PORT`.
fn normalise_ports(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    loop {
        let at = [rest.find("port "), rest.find("', ")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = at else {
            out.push_str(rest);
            return out;
        };
        let skip = if rest[at..].starts_with("port ") {
            5
        } else {
            3
        };
        out.push_str(&rest[..at + skip]);
        rest = &rest[at + skip..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str("PORT");
            rest = &rest[digits..];
        }
    }
}

/// The payload of a `  received b'...'` line, as its repr text.
fn payload(line: &str) -> Option<&str> {
    line.strip_prefix("  received b'")?.strip_suffix('\'')
}

/// Checks that each event line follows a `waiting for I/O` (in its batch)
/// and drops the `waiting for I/O` lines.
fn drop_waiting(lines: &[String], event_prefixes: &[&str]) -> Vec<String> {
    let mut previous_waiting = false;
    let mut out = Vec::new();
    for l in lines {
        if l == "waiting for I/O" {
            previous_waiting = true;
            continue;
        }
        if event_prefixes.iter().any(|p| l.starts_with(p)) {
            assert!(
                previous_waiting,
                "{l:?} does not follow a `waiting for I/O` in {lines:#?}"
            );
        }
        previous_waiting = false;
        out.push(normalise_ports(l));
    }
    out
}

/// The server transcript with timing factored out (see the module docs):
/// consecutive `read`+`received` pairs joined into one.
fn canonical_server(lines: &[String]) -> Vec<String> {
    let lines = drop_waiting(lines, &["accept(", "read("]);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = &lines[i];
        if let (true, Some(p)) = (
            l.starts_with("read("),
            lines.get(i + 1).and_then(|n| payload(n)),
        ) {
            let n = out.len();
            if n >= 2
                && out[n - 2] == *l
                && let Some(prev) = payload(&out[n - 1])
            {
                out[n - 1] = format!("  received b'{prev}{p}'");
                i += 2;
                continue;
            }
        }
        out.push(l.clone());
        i += 1;
    }
    out
}

/// The client transcript with timing factored out (see the module docs):
/// reads taken out of their batches and joined into one `received` line
/// just before `shutting down`.
fn canonical_client(lines: &[String]) -> Vec<String> {
    let lines = drop_waiting(lines, &["client("]);
    let mut received = String::new();
    let mut kept: Vec<String> = Vec::new();
    for l in &lines {
        if let Some(p) = payload(l) {
            received.push_str(p);
        } else if l != "  ready to read" {
            kept.push(l.clone());
        }
    }
    let mut out = Vec::new();
    for (i, l) in kept.iter().enumerate() {
        // A batch that only read leaves its `client(...)` line alone.
        let alone =
            l.starts_with("client(") && !kept.get(i + 1).is_some_and(|n| n.starts_with("  "));
        if alone {
            continue;
        }
        if l == "shutting down" {
            out.push(format!("  received b'{received}'"));
        }
        out.push(l.clone());
    }
    out
}

fn check(what: &str, got: &[String], want: &[&str], raw: &[String]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{what}: line {i} differs; raw transcript: {raw:#?}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {got:#?} vs {want:#?}; raw: {raw:#?}"
    );
}

/// Runs one pairing; returns the canonical (server, client) transcripts.
fn pair(server: Lang, client: Lang) -> (Vec<String>, Vec<String>) {
    let what = format!("{server:?} server, {client:?} client");
    let mut srv = Proc::spawn(&mut command(server, "server", 0));
    let first = srv.expect_line("starting up on localhost port ", LIMIT);
    let port: u16 = first
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no port in {first:?}"));
    assert_ne!(port, 0);

    let (cstatus, cout) = util::run(&mut command(client, "client", port), LIMIT);
    assert!(
        cstatus.success(),
        "{what}: client failed: {cstatus}; {cout}"
    );
    let (sstatus, sout) = srv.finish(LIMIT);
    assert!(
        sstatus.success(),
        "{what}: server failed: {sstatus}; {sout:#?}"
    );

    let client_lines: Vec<String> = cout.lines().map(str::to_owned).collect();
    // The client names the server's real port; the server the client's.
    assert!(
        client_lines.contains(&format!("client(('127.0.0.1', {port}))")),
        "{what}: {client_lines:#?}"
    );
    let canon_s = canonical_server(&sout);
    let canon_c = canonical_client(&client_lines);
    check(&format!("{what}: server"), &canon_s, SEED_SERVER, &sout);
    check(
        &format!("{what}: client"),
        &canon_c,
        SEED_CLIENT,
        &client_lines,
    );
    (canon_s, canon_c)
}

#[test]
fn rust_with_rust() {
    pair(Lang::Rust, Lang::Rust);
}

#[test]
fn rust_client_python_server() {
    if !have_python() {
        println!("skipped: python3 is not available to run the Python server");
        return;
    }
    let (rust_client_s, rust_client_c) = pair(Lang::Python, Lang::Rust);
    let (py_s, py_c) = pair(Lang::Python, Lang::Python);
    assert_eq!(rust_client_c, py_c, "Rust and Python clients differ");
    assert_eq!(rust_client_s, py_s);
}

#[test]
fn python_client_rust_server() {
    if !have_python() {
        println!("skipped: python3 is not available to run the Python client");
        return;
    }
    let (rust_s, rust_server_c) = pair(Lang::Rust, Lang::Python);
    let (py_s, py_c) = pair(Lang::Python, Lang::Python);
    assert_eq!(rust_s, py_s, "Rust and Python servers differ");
    assert_eq!(rust_server_c, py_c);
}

#[test]
fn canonical_forms_factor_out_timing_only() {
    let lines = |s: &str| s.lines().map(str::to_owned).collect::<Vec<_>>();
    // The server reading the messages one by one, after a timed-out select.
    let split = lines(
        "starting up on localhost port 5\nwaiting for I/O\nwaiting for I/O\n\
         accept(('127.0.0.1', 40186))\nwaiting for I/O\nread(('127.0.0.1', 40186))\n\
         \x20 received b'This is the message. '\nwaiting for I/O\nread(('127.0.0.1', 40186))\n\
         \x20 received b'It will be repeated.'\nwaiting for I/O\nread(('127.0.0.1', 40186))\n\
         \x20 closing\nshutting down",
    );
    assert_eq!(canonical_server(&split), SEED_SERVER);
    // The client reading the echo in the batch of its last write.
    let merged = lines(
        "connecting to localhost port 7\nwaiting for I/O\nclient(('127.0.0.1', 7))\n\
         \x20 ready to write\n  sending b'This is the message. '\nwaiting for I/O\n\
         client(('127.0.0.1', 7))\n  ready to write\n  sending b'It will be repeated.'\n\
         waiting for I/O\nclient(('127.0.0.1', 7))\n  ready to read\n\
         \x20 received b'This is the message. It will be repeated.'\n  ready to write\n\
         \x20 switching to read-only\nshutting down",
    );
    assert_eq!(canonical_client(&merged), SEED_CLIENT);
    // A wrong message order, a missing switch or a lost byte is not factored out.
    let mut wrong = merged.clone();
    wrong.swap(4, 8);
    assert_ne!(canonical_client(&wrong), SEED_CLIENT);
    let mut no_switch = merged.clone();
    no_switch.remove(14);
    assert_ne!(canonical_client(&no_switch), SEED_CLIENT);
    let mut short = split.clone();
    short[9] = "  received b'It will be repeated'".to_owned();
    assert_ne!(canonical_server(&short), SEED_SERVER);
}

#[test]
#[should_panic(expected = "does not follow a `waiting for I/O`")]
fn an_event_without_its_select_is_caught() {
    let lines: Vec<String> = ["connecting to localhost port 7", "client(('127.0.0.1', 7))"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    canonical_client(&lines);
}

#[test]
fn together_prints_both_transcripts() {
    let (status, out) = util::run(
        util::program(env!("CARGO_BIN_EXE_together")).args(["--port", "0"]),
        Duration::from_secs(30),
    );
    assert!(status.success(), "{status}: {out}");
    let lines: Vec<String> = out.lines().map(str::to_owned).collect();
    assert!(lines[0].starts_with("==> server: selectors_echo_server --port "));
    let at = lines
        .iter()
        .position(|l| l.starts_with("==> client: selectors_echo_client --port "))
        .unwrap_or_else(|| panic!("no client header in {out}"));
    let server: Vec<String> = lines[1..at]
        .iter()
        .filter(|l| !l.is_empty())
        .cloned()
        .collect();
    check(
        "together: server",
        &canonical_server(&server),
        SEED_SERVER,
        &lines,
    );
    check(
        "together: client",
        &canonical_client(&lines[at + 1..]),
        SEED_CLIENT,
        &lines,
    );
}
