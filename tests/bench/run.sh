#!/bin/sh
# Benchmarks: ioselect against a raw epoll loop, mio, polling and
# Python's selectors. One command builds everything and prints the tables:
#
#   tests/bench/run.sh           # full: ~25 min on 2 cores (the echo bench ~20); writes tests/bench/results/
#   tests/bench/run.sh --select  # the select bench and the callgrind counts only (~1 min):
#                                # rewrites select.md, instructions.md and the README's speed table
#   tests/bench/run.sh --quick   # smoke (seconds once built): runs every harness and
#                                # checks every byte and event; judges no speed; writes nothing;
#                                # FAILS if echod makes more system calls per message than the
#                                # raw epoll server on ping-pong (counted with perf or strace)
#
# Parts: tests/benches/select/ (select cost, churn, size_of),
# tests/benches/echo/ (echo servers incl. tokio: CPU per message, messages/s,
# RTT, bulk MB/s, system calls per message by kind, peak RSS, binary sizes,
# echod's allocations, --threads 2), and,
# in the full run when valgrind is installed, user-space instructions per
# operation from callgrind (tests/bench/results/instructions.md).
set -eu
cd "$(dirname "$0")/../.."
mode=""
only_select=""
case "${1:-}" in
    --quick) mode=--quick ;;
    --select) only_select=1 ;;
    "") ;;
    *) echo "usage: $0 [--quick | --select]" >&2; exit 2 ;;
esac

# The echo bench counts system calls with strace.
if ! command -v strace >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq strace >/dev/null
    fi
    command -v strace >/dev/null 2>&1 || { echo "$0: strace is needed (apt-get install strace)" >&2; exit 1; }
fi

cargo build --release -q -p ioselect-demos --bin echod
cargo build --release -q -p ioselect-tests --examples
cargo bench -q -p ioselect-tests --bench select --no-run
cargo bench -q -p ioselect-tests --bench echo --no-run

cargo bench -q -p ioselect-tests --bench select -- $mode
[ -n "$only_select" ] || cargo bench -q -p ioselect-tests --bench echo -- $mode

# Instructions per operation, user space only: the difference of two runs
# with 1000 and 11000 operations, over 10000. Deterministic (the same count
# for the same binary whatever the machine is doing), so it shows the
# libraries' own work apart from the kernel's and the noise.
bench=$(ls -t "${CARGO_TARGET_DIR:-target}"/release/deps/select-* | grep -v '\.d$' | head -n 1)
ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bench" --profile "$1" "$2" "$3" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_op() {
    a=$(ir "$1" "$2" 1000)
    b=$(ir "$1" "$2" 11000)
    echo $(( (b - a) / 10000 ))
}

# The limits --quick enforces on ioselect (N = K = 1), the targets:
# register + unregister 100, select 60 (the raw epoll loop itself takes 45;
# see tests/bench/results/instructions.md).
SELECT_LIMIT=60
CHURN_LIMIT=100

if [ "$mode" = --quick ]; then
    if ! command -v valgrind >/dev/null 2>&1; then
        echo "$0: valgrind is needed for the instruction limits (apt-get install valgrind)" >&2
        exit 1
    fi
    select_ir=$(per_op ioselect select)
    churn_ir=$(per_op ioselect churn)
    echo "ioselect user-space instructions: select $select_ir (limit $SELECT_LIMIT), register + unregister $churn_ir (limit $CHURN_LIMIT)"
    if [ "$select_ir" -gt "$SELECT_LIMIT" ] || [ "$churn_ir" -gt "$CHURN_LIMIT" ]; then
        echo "$0: a hot path takes more instructions than its limit" >&2
        exit 1
    fi
fi

if [ -z "$mode" ] && command -v valgrind >/dev/null 2>&1; then
    out=tests/bench/results/instructions.md
    {
        echo "## User-space instructions per operation (callgrind)"
        echo
        echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`valgrind --tool=callgrind\` on \`select --profile SUBJECT OP OPS\`:"
        echo "(instructions at 11000 ops - at 1000 ops) / 10000. N = K = 1. Kernel work is not counted."
        echo
        echo "| operation | raw epoll | ioselect | mio | polling |"
        echo "|---|--:|--:|--:|--:|"
        for op in select wake churn; do
            row="| $op |"
            for s in raw ioselect mio polling; do
                if [ "$op" = select ] && [ "$s" = mio ]; then
                    row="$row n/a (edge-triggered) |"
                    continue
                fi
                row="$row $(per_op "$s" "$op") |"
            done
            echo "$row"
        done
        echo
        echo "select: one select returning one level-triggered event and reading it; wake: one eventfd write, then that select;"
        echo "churn: register + unregister of one fd."
        echo
        echo "Targets for ioselect: select at most 60, churn at most 100. \`tests/bench/run.sh --quick\` fails when"
        echo "select exceeds $SELECT_LIMIT or churn exceeds $CHURN_LIMIT."
    } > "$out"
    cat "$out"
fi

# The README's speed table is generated from select.md: keep it in step.
if [ -z "$mode" ]; then
    python3 docs/readme-figures.py --write
    [ -n "$only_select" ] || python3 tests/bench/readme_echo.py --write-readme
fi
