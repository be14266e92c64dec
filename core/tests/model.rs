//! Property test: random sequences of `register`, `modify_events`,
//! `modify_data`, `modify`, `unregister`, `unregister_closed`, `rebuild`,
//! `select` and `next_ready` (reading and writing the key's data), with
//! random readiness and injected kernel failures, run against the selector
//! over `SoftBackend` and against the reference model in `reference/`,
//! which the fuzz target (`tests/fuzz/`) shares.
//!
//! After every operation the result (kind, error, returned data or key), the
//! whole map view, `get_key`/`contains` of every fd and the "kernel's"
//! interest (`SoftBackend::interest`) must agree with the model; every event
//! handed out must be the one the model expects.
//!
//! The default case count (proptest's 256, or `PROPTEST_CASES`) is quick
//! enough for CI. The long "fuzz" run:
//!
//! ```text
//! PROPTEST_CASES=100000 cargo test -p ioselect-core --test model --release
//! ```

mod reference;

use std::collections::BTreeMap;
use std::time::Duration;

use ioselect_core::RawFd;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reference::{M, Op, Outcome, Skipped};

fn fd() -> impl Strategy<Value = RawFd> {
    prop_oneof![
        8 => 0..M as RawFd,
        1 => -3..0,
        1 => prop_oneof![Just(i32::MIN), M as RawFd..M as RawFd + 3],
    ]
}

fn events() -> impl Strategy<Value = u8> {
    prop_oneof![6 => 1u8..=3, 1 => Just(0u8), 1 => any::<u8>()]
}

fn data() -> impl Strategy<Value = u32> {
    0u32..1000
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (fd(), events(), data()).prop_map(|(f, e, d)| Op::Register(f, e, d)),
        2 => (fd(), events()).prop_map(|(f, e)| Op::ModifyEvents(f, e)),
        2 => (fd(), data()).prop_map(|(f, d)| Op::ModifyData(f, d)),
        2 => (fd(), events(), data()).prop_map(|(f, e, d)| Op::Modify(f, e, d)),
        3 => fd().prop_map(Op::Unregister),
        1 => fd().prop_map(Op::UnregisterClosed),
        1 => any::<bool>().prop_map(Op::Rebuild),
        4 => (0..M as RawFd + 1, any::<u8>()).prop_map(|(f, b)| Op::SetReady(f, b)),
        1 => prop_oneof![Just(12), Just(22), Just(1), Just(9), Just(17)].prop_map(Op::Fail),
        3 => prop_oneof![
            Just(Some(Duration::ZERO)),
            Just(Some(Duration::from_millis(1))),
            Just(Some(Duration::MAX)),
            Just(None),
        ]
        .prop_map(Op::Select),
        3 => Just(Op::Next),
        1 => data().prop_map(Op::NextSet),
        1 => Just(Op::Drain),
    ]
}

/// Single operations, and the pair a handler does to reuse an fd number
/// (unregister, register again), which makes stale events likely.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let step = prop_oneof![
        12 => op().prop_map(|o| vec![o]),
        1 => (fd(), events(), data())
            .prop_map(|(f, e, d)| vec![Op::Unregister(f), Op::Register(f, e, d)]),
    ];
    prop::collection::vec(step, 1..100).prop_map(|v| v.concat())
}

/// What happened, counted over a run, to prove the generator reaches every
/// rule (see `generator_reaches_every_rule`).
#[derive(Debug, Default)]
struct Tally {
    outcomes: BTreeMap<String, usize>,
    skipped: Skipped,
}

impl Tally {
    fn count(outcomes: &mut BTreeMap<String, usize>, op: &Op, outcome: &Outcome) {
        let op = format!("{op:?}");
        let op = op.split('(').next().unwrap_or_default();
        let what = match outcome {
            Outcome::Err(e) | Outcome::ErrData(e, _) => format!("{e:?}"),
            Outcome::Ready(Some(_)) => "Some".into(),
            Outcome::Ready(None) => "None".into(),
            Outcome::Drained(v) if !v.is_empty() => "some".into(),
            other => format!("{other:?}")
                .split('(')
                .next()
                .unwrap_or_default()
                .into(),
        };
        *outcomes.entry(format!("{op} {what}")).or_default() += 1;
    }
}

proptest! {
    #[test]
    fn selector_matches_model(ops in ops()) {
        reference::run(&ops, |_, _| ()).map_err(TestCaseError::fail)?;
    }
}

/// The property above is only as good as its generator: run a fixed,
/// seeded set of cases and check that every rule was reached, each error of
/// each call, and each kind of stale event.
#[test]
fn generator_reaches_every_rule() {
    let mut runner = TestRunner::deterministic();
    let mut tally = Tally::default();
    for _ in 0..300 {
        let ops = ops().new_tree(&mut runner).unwrap().current();
        let mut outcomes = BTreeMap::new();
        let skipped =
            reference::run(&ops, |op, outcome| Tally::count(&mut outcomes, op, outcome)).unwrap();
        for (k, v) in outcomes {
            *tally.outcomes.entry(k).or_default() += v;
        }
        tally.skipped.stale_gone += skipped.stale_gone;
        tally.skipped.stale_reused += skipped.stale_reused;
        tally.skipped.masked_away += skipped.masked_away;
        tally.skipped.narrowed += skipped.narrowed;
    }
    let expected = [
        "Register Ok",
        "Register AlreadyRegistered",
        "Register InvalidEvents",
        "Register InvalidFd",
        "Register Full",
        "Register Os(OsError(12",
        "Register Os(OsError(9))",
        "ModifyEvents Ok",
        "ModifyEvents InvalidEvents",
        "ModifyEvents NotRegistered",
        "ModifyEvents InvalidFd",
        "ModifyEvents Os(",
        "ModifyData OkData",
        "ModifyData NotRegistered",
        "ModifyData InvalidFd",
        "Modify OkData",
        "Modify InvalidEvents",
        "Modify NotRegistered",
        "Modify InvalidFd",
        "Modify Os(",
        "Unregister OkKey",
        "Unregister NotRegistered",
        "Unregister InvalidFd",
        "Unregister Os(",
        "UnregisterClosed OkKey",
        "UnregisterClosed NotRegistered",
        "UnregisterClosed InvalidFd",
        "Rebuild Ok",
        "Rebuild InvalidFd",
        "Register StaleRegistration",
        "NextSet Some",
        "Select Ok",
        "Select Os(",
        "Next Some",
        "Next None",
        "Drain some",
    ];
    for what in expected {
        assert!(
            // A name, or a prefix (`Modify Os(`: any injected errno).
            tally
                .outcomes
                .iter()
                .any(|(k, &n)| k.starts_with(what) && n > 0),
            "never reached: {what}\n{tally:#?}"
        );
    }
    assert!(tally.skipped.stale_gone > 0, "{tally:#?}");
    assert!(tally.skipped.stale_reused > 0, "{tally:#?}");
    assert!(tally.skipped.masked_away > 0, "{tally:#?}");
    assert!(tally.skipped.narrowed > 0, "{tally:#?}");
}
