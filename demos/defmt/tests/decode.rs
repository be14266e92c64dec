//! Runs `defmt-demo`, decodes its raw defmt output with `defmt-decoder`
//! (the table read from the demo's own ELF file) and checks the text.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use defmt_decoder::{DecodeError, Table};
use defmt_parser::Level;

/// (level, message) of every frame the demo printed.
fn run_and_decode() -> Vec<(Option<Level>, String)> {
    let exe = env!("CARGO_BIN_EXE_defmt-demo");
    let mut child = Command::new(exe)
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
    assert!(!output.stdout.is_empty(), "no defmt frames");

    let elf = std::fs::read(exe).expect("read the demo's ELF");
    let table = Table::parse(&elf)
        .expect("parse the .defmt section")
        .expect("the demo has defmt data");
    let mut decoder = table.new_stream_decoder();
    decoder.received(&output.stdout);
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
            format!("register fd={a} failed: AlreadyRegistered"),
        ),
        (
            Level::Warn,
            "register a again: AlreadyRegistered".to_owned(),
        ),
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
    got_sorted[5..7].sort_by(|x, y| x.1.cmp(&y.1));
    want_sorted[5..7].sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(got_sorted, want_sorted, "decoded: {got:#?}");
}
