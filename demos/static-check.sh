#!/usr/bin/env bash
# Static and constrained binaries: builds them, checks that each is fully
# static (no PT_INTERP program header, no DT_NEEDED entry) and that each
# echoes (through echo_check, the same client for all), and prints their
# sizes. Called by .ci/run; run it from anywhere.
#
#   bash demos/static-check.sh                   # checks; sizes to $static_dir/sizes.md
#   bash demos/static-check.sh --write-results   # also writes demos/results/sizes.md
#
#   echod                 std + glibc, -C target-feature=+crt-static, --release
#                         (and --profile min-size, for its size)
#   small_echo_ioselect   the same small server on ioselect and on mio, std +
#   small_echo_mio        glibc static, --profile min-size (opt z, LTO, abort, strip)
#   nolibc-echo           demos/nolibc: no std, no libc, own _start; opt z,
#                         LTO, abort, stripped, static non-PIE
# and, because it too needs a link of its own: demos/defmt, ioselect's defmt
# logging on the host, decoded back to text by defmt-decoder (cargo test).
#
# Builds go to $CARGO_TARGET_DIR when it is set (the workspace's builds in it,
# demos/nolibc and demos/defmt, separate workspaces, in nolibc/ and defmt/
# under it), else to target/, demos/nolibc/target/ and demos/defmt/target/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
write_results=0
case "${1:-}" in
  --write-results) write_results=1 ;;
  "") ;;
  *) echo "usage: $0 [--write-results]" >&2; exit 2 ;;
esac
target=x86_64-unknown-linux-gnu
target_dir=${CARGO_TARGET_DIR:-$root/target}
# sub_target NAME: the target directory of the separate workspace demos/NAME.
sub_target() {
  if [ -n "${CARGO_TARGET_DIR:-}" ]; then echo "$CARGO_TARGET_DIR/$1"; else echo "$root/demos/$1/target"; fi
}
static_dir=$target_dir/static
passed=0
failed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
bad() { echo "FAILED: $*"; failed=$((failed + 1)); }

echo "--- building"
cargo build -q -p ioselect-demos --bin echo_check
echo_check=$target_dir/debug/echo_check
export RUSTFLAGS="-C target-feature=+crt-static"
cargo build -q --release --target $target --target-dir "$static_dir" -p ioselect-demos --bin echod
cargo build -q --profile min-size --target $target --target-dir "$static_dir" -p ioselect-demos \
  --bin echod --bin small_echo_ioselect --bin small_echo_mio
unset RUSTFLAGS
# The same two small servers linked dynamically, for their own code's size.
cargo build -q --profile min-size --target $target --target-dir "$static_dir/dynamic" \
  -p ioselect-demos --bin small_echo_ioselect --bin small_echo_mio
(cd demos/nolibc && CARGO_TARGET_DIR=$(sub_target nolibc) cargo build -q --release)

rel=$static_dir/$target/release
min=$static_dir/$target/min-size
dyn=$static_dir/dynamic/$target/min-size
nolibc=$(sub_target nolibc)/$target/release/nolibc-echo

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

# rests NAME LIMIT CMD...: with RLIMIT_NOFILE at LIMIT, exactly the fds the
# server holds when idle, a pending connection makes `accept` fail with
# EMFILE while the listener stays readable: the server must rest (under 20%
# of a CPU over one second), then serve the client once the limit is raised
# (prlimit --pid). LIMIT is 6 on ioselect (stdio, listener, the epoll fd and
# the eventfd every `Epoll` owns from `open()` on) and 5 on mio (no eventfd
# without a `Waker`).
rests() {
  local name=$1 limit=$2
  shift 2
  local out
  out=$(mktemp)
  prlimit --nofile="$limit":64 "$@" --port 0 >"$out" &
  local pid=$! port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    bad "$name did not start under RLIMIT_NOFILE=$limit"
  else
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'out of fds' >&3
    sleep 0.2
    local hz t0 t1
    hz=$(getconf CLK_TCK)
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sleep 1
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    if (( (t1 - t0) * 10 < hz * 2 )); then
      ok "$name rests out of fds ($((t1 - t0)) ticks of $hz/s in one second)"
    else
      bad "$name spins out of fds ($((t1 - t0)) ticks of $hz/s in one second)"
    fi
    prlimit --pid "$pid" --nofile=64:64
    local reply
    reply=$(timeout 10 head -c 10 <&3 || true)
    exec 3<&-
    if [ "$reply" = "out of fds" ]; then
      ok "$name serves the waiting client once fds are available"
    else
      bad "$name did not recover (got '$reply')"
    fi
  fi
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
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
rests "small_echo_ioselect (min-size, crt-static)" 6 "$min/small_echo_ioselect"
rests "small_echo_mio (min-size, crt-static)" 5 "$min/small_echo_mio"
rests "nolibc-echo" 6 "$nolibc"

echo "--- defmt on the host: demos/defmt (frames decoded by defmt-decoder)"
if (cd demos/defmt && CARGO_TARGET_DIR=$(sub_target defmt) cargo test -q 2>&1); then
  ok "defmt-demo's frames decode back to the expected text"
else
  bad "defmt decoding test"
fi

echo "--- sizes (bytes)"
# A results page generated from this run, never typed: demos/results/sizes.md
# with --write-results (only when every check passed).
rustc_version=$(rustc --version)
glibc="glibc $(getconf GNU_LIBC_VERSION | sed 's/^glibc //') ($(dpkg-query -W -f='${Version}' libc6 2>/dev/null || echo '?'))"
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(stat -c %s "$4" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')"; }
{
  echo "## Sizes of the static and constrained binaries"
  echo
  echo "Generated by \`bash demos/static-check.sh --write-results\` on $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "from commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- . ':!demos/results' 2>/dev/null || echo ' with local changes'),"
  echo "$(uname -m), $rustc_version, $glibc. Sizes move a little with every change of the code."
  echo
  echo "| binary | linking | profile | bytes |"
  echo "|---|---|---|--:|"
  row '`echod`' 'glibc, `+crt-static`' '`--release` (debug = 1, not stripped)' "$rel/echod"
  row '`echod`' 'glibc, `+crt-static`' '`min-size` (opt z, LTO, abort, stripped)' "$min/echod"
  row '`small_echo_ioselect`' 'glibc, `+crt-static`' '`min-size`' "$min/small_echo_ioselect"
  row '`small_echo_mio` (the same server on mio)' 'glibc, `+crt-static`' '`min-size`' "$min/small_echo_mio"
  row '`small_echo_ioselect`' 'glibc, dynamic' '`min-size`' "$dyn/small_echo_ioselect"
  row '`small_echo_mio`' 'glibc, dynamic' '`min-size`' "$dyn/small_echo_mio"
  row '`nolibc-echo` (no std, no libc, own `_start`)' 'static, non-PIE' 'opt z, LTO, abort, stripped' "$nolibc"
} | tee "$static_dir/sizes.md"
if [ "$write_results" = 1 ] && [ "$failed" = 0 ]; then
  mkdir -p demos/results
  # The section that .ci/qemu-user.sh --write-results keeps there (the
  # no-libc echo on the other architectures) stays.
  {
    cat "$static_dir/sizes.md"
    if grep -qx '<!-- qemu-user.sh -->' demos/results/sizes.md 2>/dev/null; then
      echo
      sed -n '/^<!-- qemu-user.sh -->$/,$p' demos/results/sizes.md
    fi
  } >"$static_dir/sizes-all.md"
  cp "$static_dir/sizes-all.md" demos/results/sizes.md
  echo "wrote demos/results/sizes.md"
fi

echo "static-check: $passed passed, $failed failed"
[ "$failed" = 0 ]
