//! `defmt::Format` of the public types.

use super::*;

/// `defmt::Format` of the public types, through defmt's host test mode
/// (the `unstable-test` feature of the dev-dependency): the encoded bytes
/// land in a thread-local buffer. In that mode each interned string is a
/// fresh 2-byte index, so these tests check the structure and the argument
/// bytes of each encoding, not the format strings' text.
/// What `{}` of `value` encodes: its tag (2 bytes), then its data.
fn encode<F: defmt::Format + ?Sized>(value: &F) -> Vec<u8> {
    defmt::export::fetch_bytes();
    defmt::export::fmt(value);
    defmt::export::fetch_bytes()
}

/// A hand-written impl's own bytes: between the tag and the 2-byte
/// terminator that defmt adds around it.
fn written<F: defmt::Format + ?Sized>(value: &F) -> Vec<u8> {
    let bytes = encode(value);
    assert!(bytes.len() >= 4 && bytes.ends_with(&[0, 0]), "{bytes:?}");
    bytes[2..bytes.len() - 2].to_vec()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn events_by_name_and_unknown_bits_in_hex() {
    // One interned string each: "READ", "WRITE", "READ | WRITE", "(empty)".
    for events in [Events::READ, Events::WRITE, RW, Events::empty()] {
        assert_eq!(written(&events).len(), 2, "{events:?}");
    }
    // Unknown bits alone: "{=u8:#x}" and the byte.
    let bytes = written(&Events::from_bits_retain(0x80));
    assert_eq!((bytes.len(), bytes[2]), (3, 0x80));
    // Known and unknown: the name, then " | {=u8:#x}" and only the
    // unknown bits.
    let bytes = written(&Events::from_bits_retain(0x85));
    assert_eq!((bytes.len(), bytes[4]), (5, 0x84));
    let bytes = written(&Events::from_bits_retain(0xff));
    assert_eq!((bytes.len(), bytes[4]), (5, 0xfc));
}

#[test]
fn errors_and_keys_carry_their_values() {
    let os = OsError::from_raw(0x1122_3344);
    assert!(contains(&encode(&os), &0x1122_3344i32.to_le_bytes()));
    assert!(contains(
        &encode(&Error::Os(os)),
        &0x1122_3344i32.to_le_bytes()
    ));
    // Unit variants differ in their discriminant.
    let unit = [
        Error::AlreadyRegistered,
        Error::NotRegistered,
        Error::InvalidEvents,
        Error::InvalidFd,
        Error::Full,
    ]
    .map(|e| encode(&e));
    for (i, a) in unit.iter().enumerate() {
        for b in &unit[i + 1..] {
            assert_ne!(a[2..], b[2..]);
        }
    }
    // DataError prints the error, not the data (T need not be Format).
    struct NotFormat(u32);
    let e = DataError {
        error: Error::Os(os),
        data: NotFormat(0xDEAD_BEEF),
    };
    let bytes = written(&e);
    assert!(contains(&bytes, &0x1122_3344i32.to_le_bytes()));
    assert!(!contains(&bytes, &e.data.0.to_le_bytes()));

    let key = SelectorKey {
        fd: 0x0A0B_0C0D,
        events: RW,
        data: 0x5566_7788u32,
    };
    let bytes = encode(&key);
    assert!(contains(&bytes, &0x0A0B_0C0Di32.to_le_bytes()));
    assert!(contains(&bytes, &0x5566_7788u32.to_le_bytes()));

    let token = Token::key(0x0102_0304_0506_0708);
    assert!(contains(&encode(&token), &token.get().to_le_bytes()));
}

#[test]
fn refused_calls_log_at_debug_level() {
    // Whether defmt's debug level is compiled in for this crate is
    // decided by DEFMT_LOG at compile time (default: error only). A
    // probe in this crate tells, and the selector must agree with it.
    defmt::export::fetch_bytes();
    defmt::debug!("probe");
    let debug_on = !defmt::export::fetch_bytes().is_empty();

    let r = SoftReadiness::new();
    let mut sel: Sel<'_, 4> = new_sel(&r);
    sel.register(1, Events::READ, 1).unwrap();
    assert!(
        defmt::export::fetch_bytes().is_empty(),
        "a successful call logged"
    );
    let (error, _) = data_err(sel.register(1, Events::READ, 2));
    assert_eq!(error, Error::AlreadyRegistered);
    let logged = defmt::export::fetch_bytes();
    // A DEFMT_LOG with module paths (`ioselect_core::tests=debug`) can
    // set the probe's module and the selector's apart: compare only
    // when the level is the same for the whole crate.
    if option_env!("DEFMT_LOG").is_none_or(|v| !v.contains("::")) {
        assert_eq!(!logged.is_empty(), debug_on, "{logged:?}");
    }
    if !logged.is_empty() {
        // "{=str} fd={=i32} refused: {}": the call, the fd as i32, the error.
        assert!(contains(&logged, &1i32.to_le_bytes()));
    }
    // Every other refused call logs too; successful ones (the hot paths)
    // never do.
    let refusals: [&dyn Fn(&mut Sel<'_, 4>) -> bool; 4] = [
        &|sel| sel.unregister(9).is_err(),
        &|sel| sel.modify_events(1, Events::empty()).is_err(),
        &|sel| sel.modify_data(7, 0).is_err(),
        &|sel| sel.unregister_closed(-1).is_err(),
    ];
    for refuse in refusals {
        assert!(refuse(&mut sel));
        let logged = defmt::export::fetch_bytes();
        if option_env!("DEFMT_LOG").is_none_or(|v| !v.contains("::")) {
            assert_eq!(!logged.is_empty(), debug_on, "{logged:?}");
        }
    }
    r.set(1, Events::READ);
    sel.select(Some(Duration::ZERO)).unwrap();
    assert!(sel.next_ready().is_some());
    sel.modify_events(1, Events::WRITE).unwrap();
    sel.unregister(1).unwrap();
    assert!(
        defmt::export::fetch_bytes().is_empty(),
        "a successful call logged"
    );
}
