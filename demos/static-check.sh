#!/usr/bin/env bash
# Static and constrained binaries: builds them, checks that each is fully
# static (no PT_INTERP program header, no DT_NEEDED entry) and that each
# echoes (through echo_check, the same client for all), and prints their
# sizes. Called by .ci/run; run it from anywhere.
#
#   echod                 std + glibc, -C target-feature=+crt-static, --release
#                         (and --profile min-size, for its size)
#   small_echo_ioselect   the same small server on ioselect and on mio, std +
#   small_echo_mio        glibc static, --profile min-size (opt z, LTO, abort, strip)
#   nolibc-echo           demos/nolibc: no std, no libc, own _start; opt z,
#                         LTO, abort, stripped, static non-PIE
# and, because it too needs a link of its own: demos/defmt, ioselect's defmt
# logging on the host, decoded back to text by defmt-decoder (cargo test).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-unknown-linux-gnu
static_dir=$root/target/static
passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

echo "--- building"
cargo build -q -p ioselect-demos --bin echo_check
echo_check=$root/target/debug/echo_check
export RUSTFLAGS="-C target-feature=+crt-static"
cargo build -q --release --target $target --target-dir "$static_dir" -p ioselect-demos --bin echod
cargo build -q --profile min-size --target $target --target-dir "$static_dir" -p ioselect-demos \
  --bin echod --bin small_echo_ioselect --bin small_echo_mio
unset RUSTFLAGS
# The same two small servers linked dynamically, for their own code's size.
cargo build -q --profile min-size --target $target --target-dir "$static_dir/dynamic" \
  -p ioselect-demos --bin small_echo_ioselect --bin small_echo_mio
(cd demos/nolibc && cargo build -q --release)

rel=$static_dir/$target/release
min=$static_dir/$target/min-size
dyn=$static_dir/dynamic/$target/min-size
nolibc=$root/demos/nolibc/target/$target/release/nolibc-echo

# is_static NAME FILE: no interpreter, no needed libraries.
is_static() {
  if readelf -lW "$2" | grep -q 'INTERP'; then
    bad "$1 has a PT_INTERP (dynamic loader)"
  elif readelf -dW "$2" | grep -q '(NEEDED)'; then
    bad "$1 needs shared libraries: $(readelf -dW "$2" | grep NEEDED | tr -s ' ')"
  else
    ok "$1 is static: no PT_INTERP, no DT_NEEDED ($(readelf -hW "$2" | sed -n 's/^ *Type: *//p'))"
  fi
}

# echoes NAME EXIT_STATUS_ON_SIGTERM CMD...: starts the server on a free
# port, echoes through echo_check, stops it with SIGTERM.
echoes() {
  local name=$1 want=$2
  shift 2
  local out
  out=$(mktemp)
  "$@" --port 0 >"$out" &
  local pid=$! port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    bad "$name did not print 'listening on'"
  elif timeout 60 "$echo_check" --port "$port" --clients 40 --bytes 200000; then
    ok "$name echoes (40 clients x 200000 bytes)"
  else
    bad "$name did not echo"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local status=0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  if [ "$status" = "$want" ]; then
    ok "$name exits with status $status on SIGTERM"
  else
    bad "$name exited with status $status on SIGTERM, not $want"
  fi
  rm -f "$out"
}

echo "--- checks"
is_static "echod (release, crt-static)" "$rel/echod"
echoes "echod (release, crt-static)" 0 "$rel/echod" --threads 2
is_static "echod (min-size, crt-static)" "$min/echod"
echoes "echod (min-size, crt-static)" 0 "$min/echod"
is_static "small_echo_ioselect (min-size, crt-static)" "$min/small_echo_ioselect"
echoes "small_echo_ioselect (min-size, crt-static)" 143 "$min/small_echo_ioselect"
is_static "small_echo_mio (min-size, crt-static)" "$min/small_echo_mio"
echoes "small_echo_mio (min-size, crt-static)" 143 "$min/small_echo_mio"
is_static "nolibc-echo" "$nolibc"
echoes "nolibc-echo" 143 "$nolibc"

echo "--- defmt on the host: demos/defmt (frames decoded by defmt-decoder)"
if (cd demos/defmt && cargo test -q 2>&1); then
  ok "defmt-demo's frames decode back to the expected text"
else
  bad "defmt decoding test"
fi

echo "--- sizes (bytes)"
size() { printf '%10s  %s\n' "$(stat -c %s "$2")" "$1"; }
{
  size "echod, glibc static, --release (debug = 1, not stripped)" "$rel/echod"
  size "echod, glibc static, --profile min-size (stripped)" "$min/echod"
  size "small_echo_ioselect, glibc static, min-size" "$min/small_echo_ioselect"
  size "small_echo_mio, glibc static, min-size" "$min/small_echo_mio"
  size "small_echo_ioselect, glibc dynamic, min-size" "$dyn/small_echo_ioselect"
  size "small_echo_mio, glibc dynamic, min-size" "$dyn/small_echo_mio"
  size "nolibc-echo (ioselect, no std, no libc)" "$nolibc"
} | tee "$static_dir/sizes.txt"

echo "static-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
