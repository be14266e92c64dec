#!/usr/bin/env bash
# Fuzzes ioselect-core's selector and key table with cargo-fuzz (libFuzzer,
# AddressSanitizer): random operation sequences against a reference model
# (tests/fuzz/src/lib.rs, sharing core/tests/reference/). Runs on the stable toolchain with RUSTC_BOOTSTRAP=1
# (cargo-fuzz passes -Z flags) with the default toolchain, or with
# FUZZ_TOOLCHAIN (e.g. nightly) when that is set.
#
#   bash tests/fuzz/run.sh                     # 30 s (what .ci/run does)
#   IOSELECT_LONG=1 bash tests/fuzz/run.sh     # 10 minutes
#   FUZZ_SECONDS=3600 bash tests/fuzz/run.sh   # any length
#
# Installs cargo-fuzz from crates.io if it is missing. A crash leaves its
# input in tests/fuzz/artifacts/selector_ops/ and fails the script; replay it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run selector_ops fuzz/artifacts/selector_ops/<file>
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-30}
if [ "${IOSELECT_LONG:-}" = 1 ] && [ -z "${FUZZ_SECONDS:-}" ]; then
  seconds=600
fi
cargo=(cargo)
if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  cargo=(cargo "+$FUZZ_TOOLCHAIN")
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2 >/dev/null
fi
mkdir -p corpus/selector_ops
export RUSTC_BOOTSTRAP=1
"${cargo[@]}" fuzz build selector_ops
log=$(mktemp)
status=0
"${cargo[@]}" fuzz run selector_ops corpus/selector_ops -- \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
tail -n 25 "$log"
runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
rm -f "$log"
if [ "$status" -ne 0 ]; then
  echo "fuzz: selector_ops FAILED after ${seconds}s budget (exit $status); see fuzz/artifacts/selector_ops/" >&2
  exit 1
fi
echo "fuzz: selector_ops, ${seconds}s, ${runs} runs, no crash, no model difference"
