//! Runs `defmt-demo --raw`, decodes its raw defmt output with
//! `defmt-decoder` (the table read from the demo's own ELF file) and checks
//! the text; then runs `defmt-demo` as a user would and checks that it
//! prints the same log as text by itself.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use defmt_decoder::{DecodeError, Table};
use defmt_parser::Level;

/// What the demo printed with `args`.
fn run(args: &[&str]) -> Vec<u8> {
    let exe = env!("CARGO_BIN_EXE_defmt-demo");
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run defmt-demo");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("try_wait").is_none() {
        assert!(Instant::now() < deadline, "defmt-demo hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().expect("demo output");
    assert!(output.status.success(), "{}", output.status);
    assert!(!output.stdout.is_empty(), "no output");
    output.stdout
}

/// (level, message) of every frame the demo printed with `--raw`.
fn run_and_decode() -> Vec<(Option<Level>, String)> {
    let stdout = run(&["--raw"]);
    let elf = std::fs::read(env!("CARGO_BIN_EXE_defmt-demo")).expect("read the demo's ELF");
    let table = Table::parse(&elf)
        .expect("parse the .defmt section")
        .expect("the demo has defmt data");
    let mut decoder = table.new_stream_decoder();
    decoder.received(&stdout);
    let mut frames = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => frames.push((frame.level(), frame.display_message().to_string())),
            Err(DecodeError::UnexpectedEof) => break,
            Err(DecodeError::Malformed) => panic!("malformed frame after {frames:#?}"),
        }
        assert!(frames.len() < 100, "runaway decoding");
    }
    frames
}

#[test]
fn keys_and_events_decode_back_to_text() {
    let frames = run_and_decode();
    for (level, message) in &frames {
        let level = level.map_or("-".to_owned(), |l| format!("{l:?}").to_uppercase());
        println!("{level:<5} {message}");
    }
    let text: Vec<&str> = frames.iter().map(|(_, m)| m.as_str()).collect();
    // The demo names its two fds first; everything after refers to them.
    let first = text.first().expect("frames");
    let fds: Vec<i32> = first
        .strip_prefix("socket pair: a=")
        .and_then(|r| {
            let (a, b) = r.split_once(" b=")?;
            Some(vec![a.parse().ok()?, b.parse().ok()?])
        })
        .unwrap_or_else(|| panic!("first frame: {first:?}"));
    let (a, b) = (fds[0], fds[1]);
    // The third socket's fd comes after the selector's own (epoll, eventfd).
    let c: i32 = text
        .iter()
        .find_map(|m| m.strip_prefix("unregister fd=")?.strip_suffix(" refused: NotRegistered"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no refused unregister in {text:#?}"));
    assert!(c > b, "fd {c}");
    let expected = vec![
        (Level::Info, format!("socket pair: a={a} b={b}")),
        (
            Level::Info,
            format!("registered SelectorKey {{ fd: {a}, events: READ, data: \"a\" }}"),
        ),
        (
            Level::Info,
            format!("registered SelectorKey {{ fd: {b}, events: READ | WRITE, data: \"b\" }}"),
        ),
        // Logged by ioselect-core itself.
        (
            Level::Debug,
            format!("register fd={a} refused: AlreadyRegistered"),
        ),
        (
            Level::Warn,
            "register a again: AlreadyRegistered".to_owned(),
        ),
        (
            Level::Debug,
            format!("unregister fd={c} refused: NotRegistered"),
        ),
        (Level::Warn, "unregister c: NotRegistered".to_owned()),
        (Level::Debug, format!("modify fd={a} refused: InvalidEvents")),
        (Level::Warn, "modify a to no events: InvalidEvents".to_owned()),
        (Level::Info, "ready a with READ".to_owned()),
        (Level::Info, "ready b with WRITE".to_owned()),
        (
            Level::Info,
            format!("modified Some(SelectorKey {{ fd: {b}, events: READ, data: \"b\" }})"),
        ),
        (
            Level::Info,
            format!("unregistered SelectorKey {{ fd: {a}, events: READ, data: \"a\" }}"),
        ),
        (Level::Info, "1 key left".to_owned()),
    ];
    let got: Vec<(Level, String)> = frames
        .into_iter()
        .map(|(l, m)| (l.expect("every frame has a level"), m))
        .collect();
    // The two ready events may come in either order (kernel order).
    let mut got_sorted = got.clone();
    let mut want_sorted = expected.clone();
    got_sorted[9..11].sort_by(|x, y| x.1.cmp(&y.1));
    want_sorted[9..11].sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(got_sorted, want_sorted, "decoded: {got:#?}");
}

/// Without `--raw`, the demo decodes its own frames and prints the same
/// log, one line per frame: readable with no tool at all.
#[test]
fn the_demo_prints_its_log_as_text() {
    let text = String::from_utf8(run(&[])).expect("text");
    let lines: Vec<&str> = text.lines().collect();
    let frames = run_and_decode();
    assert_eq!(lines.len(), frames.len(), "{text}");
    for (line, (level, message)) in lines.iter().zip(&frames) {
        let level = format!("{:?}", level.expect("a level")).to_uppercase();
        // The two ready events may come in either order, run to run.
        if message.starts_with("ready ") {
            assert!(line.starts_with("INFO  ready "), "{line}");
            continue;
        }
        // Numbers (fds) may differ run to run only if the demo's own fds do;
        // they do not: both runs open the same fds in the same order.
        assert_eq!(*line, format!("{level:<5} {message}"));
    }
}
