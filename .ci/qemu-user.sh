#!/usr/bin/env bash
# The test suite, executed (not type-checked) on the Linux machines static
# binaries ship to, under QEMU's user-mode emulation:
#
#   aarch64-unknown-linux-gnu        arm64        64-bit, little-endian
#   armv7-unknown-linux-gnueabihf    armv7 (hf)   32-bit usize and time_t
#   i686-unknown-linux-gnu           i686         32-bit, the only other packed epoll_event ABI
#   riscv64gc-unknown-linux-gnu      riscv64      rustix's raw-syscall backend, own code
#   s390x-unknown-linux-gnu          s390x        big-endian (rustix's libc backend)
#
# Debian's rustc-web with -Zbuild-std (the rustup toolchain here has only the
# x86_64 target), Debian's cross compilers and C libraries as linkers
# (gcc-<triple>, libc6-dev-<arch>-cross), and Debian's qemu-user as the cargo
# runner (`qemu-<arch> -L /usr/<triple>`, the cross C library's root). Per
# target, one build of std serves everything:
#   1. the unit and doc tests of ioselect-core and ioselect-linux, and every
#      test target of ioselect-tests (tests/tests/*.rs, whatever is there:
#      whole targets by package, never a list of test names);
#   2. the demos: `together` (both transcripts checked against the seed's by
#      demos/tests/interop.rs), `echod` and `small_echo_ioselect` under a
#      short checked echo run (echo_check, itself under QEMU), and
#      demos/nolibc (no std, no libc, own `_start`) with its echo run; its
#      size per target goes to demos/results/sizes.md (--write-results).
# Test binaries are built once (`cargo test --no-run`) and run directly under
# QEMU; doc tests run through cargo with the same runner. While one target's
# tests run (mostly waiting), the next target is built (mostly compiling).
#
# Tests that cannot run under user-mode emulation are skipped by name, with
# the reason, in SKIP below (nothing is skipped anywhere else); the count of
# tests run, failed and skipped is printed per target, and the script fails if
# any test fails, or runs no test, on any target.
#
#   bash .ci/qemu-user.sh [TARGET...]           # all five when none is named
#   bash .ci/qemu-user.sh --write-results ...   # also writes demos/results/sizes.md's section
#
# Needs root for apt-get when the packages are missing. Builds go to
# target-qemu/ (git-ignored; $CARGO_TARGET_DIR-qemu when that is set).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$(date +%s)
step() { printf '\n--- [%4ss] %s\n' "$(( $(date +%s) - start ))" "$*"; }

write_results=0
targets=()
for arg in "$@"; do
  case "$arg" in
    --write-results) write_results=1 ;;
    -*) echo "usage: $0 [--write-results] [TARGET...]" >&2; exit 2 ;;
    *) targets+=("$arg") ;;
  esac
done

# triple : QEMU's name for the CPU : Debian's GNU triple : Debian's arch
ALL="aarch64-unknown-linux-gnu:aarch64:aarch64-linux-gnu:arm64
armv7-unknown-linux-gnueabihf:arm:arm-linux-gnueabihf:armhf
i686-unknown-linux-gnu:i386:i686-linux-gnu:i386
riscv64gc-unknown-linux-gnu:riscv64:riscv64-linux-gnu:riscv64
s390x-unknown-linux-gnu:s390x:s390x-linux-gnu:s390x"
[ "${#targets[@]}" -gt 0 ] || mapfile -t targets < <(cut -d: -f1 <<<"$ALL")
spec() { grep "^$1:" <<<"$ALL" || { echo "qemu-user: unknown target $1" >&2; exit 2; }; }

# The only tests not run under QEMU, as `TARGET-GLOB PACKAGE/TEST-TARGET
# TEST-NAME REASON`: each is one that needs something user-mode emulation
# does not give (QEMU translates system calls one by one; it does not
# emulate the kernel). Matched exactly (`--exact --skip`); a name here that
# no longer exists makes the run fail, so the list cannot go stale.
SKIP=$(cat <<'EOF'
* ioselect-demos/echod threads_share_the_port counts /proc/PID/task, and QEMU user mode runs a thread of its own (RCU) in the emulated process: 6 where echod has 5
EOF
)

# ---- packages -----------------------------------------------------------------
# QEMU's user-mode emulator for a CPU: qemu-ARCH-static (Debian's
# qemu-user-static) or qemu-ARCH (qemu-user; the two packages replace each
# other, and GitHub's arm64 job installs the first).
qemu_of() { command -v "qemu-$1-static" || command -v "qemu-$1"; }
# QEMU 10 (bookworm-backports) at least: bookworm's 7.2 corrupts i686
# threads' TLS under a signal storm (tests/tests/signals.rs: "cannot access a
# Thread Local Storage value during or after destruction" in libtest's own
# threads, then a hang), which 10.0 does not; and bookworm's qemu-user
# conflicts with the image's backported qemu-utils.
qemu_ok() {
  local q major
  q=$(qemu_of "$1") || return 1
  major=$("$q" --version | sed -n 's/^qemu-[^ ]* version \([0-9]*\)\..*/\1/p')
  [ "${major:-0}" -ge 10 ]
}
# Installs Debian packages quietly, waiting for apt's lock if another job
# holds it.
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "$@" >/dev/null
}
need=()
for t in "${targets[@]}"; do
  IFS=: read -r _ qarch gnu deb <<<"$(spec "$t")"
  command -v "$gnu-gcc" >/dev/null || need+=("gcc-$gnu")
  [ -e "/usr/$gnu/lib/libc.so" ] || need+=("libc6-dev-$deb-cross")
  qemu_ok "$qarch" || need_qemu=1
done
# rustc-web 1.96 or later with std's source (older ones cannot build-std the
# dependencies' newest versions).
minor=$( { /usr/bin/rustc -V 2>/dev/null || true; } | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p')
if [ "${minor:-0}" -lt 96 ] || [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  need+=(rustc-web cargo-web rust-web-src)
fi
if [ "${need_qemu:-0}" = 1 ] || [ "${#need[@]}" -gt 0 ]; then
  step "apt: ${need[*]} ${need_qemu:+qemu-user-static (bookworm-backports)}"
  apt-get -o DPkg::Lock::Timeout=900 update -qq
  [ "${#need[@]}" -eq 0 ] || apt_install "${need[@]}"
  if [ "${need_qemu:-0}" = 1 ]; then
    bash .ci/apt-backports.sh
    apt_install -t bookworm-backports qemu-user-static
  fi
fi
/usr/bin/rustc -V
"$(qemu_of "$(spec "${targets[0]}" | cut -d: -f2)")" --version | head -n 1

# Debian's compiler and cargo, never rustup's proxies. Warnings fail the
# builds, as clippy's -D warnings does for x86_64.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
export RUSTFLAGS="-D warnings" RUSTDOCFLAGS="-D warnings"
target_dir="${CARGO_TARGET_DIR:-$root/target}-qemu"
export CARGO_TARGET_DIR=$target_dir
cargo=/usr/bin/cargo
results=$target_dir/results
mkdir -p "$results"

# counts LOG: "passed failed ignored", summed over LOG's `test result:` lines.
counts() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) g += $i } }
       END { print p + 0, f + 0, g + 0 }' "$1"
}

# setup TARGET: its triple, emulator and log directory; cargo's linker and
# runner for it.
setup() {
  IFS=: read -r triple qarch gnu _ <<<"$(spec "$1")"
  local upper
  upper=$(tr 'a-z-' 'A-Z_' <<<"$triple")
  runner="$(qemu_of "$qarch") -L /usr/$gnu"
  export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc" "CARGO_TARGET_${upper}_RUNNER=$runner"
  log=$results/$triple
}

# bad MESSAGE: a failure of the current target that is not a test's.
bad() { echo "qemu-user: $triple: FAILED: $*" | tee -a "$log/failures"; }

# prepare TARGET: everything the target runs, built with one build of std:
# the test binaries, the demos' tests (and so their programs), demos/nolibc;
# and the doc tests, which cargo builds and runs itself. Only cargo runs here
# (`run` never calls cargo, so never waits for its lock on the target
# directory).
prepare() {
  setup "$1"
  rm -rf "$log"
  mkdir -p "$log"
  : >"$log/failures"
  local t0
  t0=$(date +%s)
  echo "--- $triple: build the test binaries (std built once, debug: overflow checks on)"
  "$cargo" test --locked --no-run -Zbuild-std --target "$triple" --message-format=json-render-diagnostics \
    -p ioselect-core -p ioselect-linux -p ioselect-tests --lib --tests >"$log/build.json" ||
    bad "the test binaries do not build"
  echo "--- $triple: doc tests of ioselect-core and ioselect-linux (cargo, runner ${runner%% *})"
  # (The tests crate's doc tests are compile_fail checks of the API, one
  # compilation each and nothing to run: the x86_64 run has them.)
  "$cargo" test --locked -Zbuild-std --target "$triple" -p ioselect-core -p ioselect-linux \
    --doc >"$log/doctests.log" 2>&1 || echo $? >"$log/doctests.status"
  echo "--- $triple: build the demos' tests (interop: together and the seed's programs; echod; small_echo)"
  "$cargo" test --locked --no-run -Zbuild-std --target "$triple" --message-format=json-render-diagnostics \
    -p ioselect-demos --test interop --test echod --test small_echo >"$log/demos.json" ||
    bad "the demos' tests do not build"
  echo "--- $triple: build demos/nolibc (no std, no libc; release: opt z, LTO, abort)"
  # Only `core` is built; RUSTFLAGS, even empty, would replace demos/nolibc/.cargo/
  # config.toml's static, non-PIE flags.
  (cd demos/nolibc && env -u RUSTFLAGS CARGO_TARGET_DIR=$target_dir/nolibc \
    "$cargo" build --locked -q --release -Zbuild-std=core --target "$triple") ||
    bad "demos/nolibc does not build"
  echo "--- $triple: built in $(( $(date +%s) - t0 ))s"
}

# run_binaries JSON: runs each test binary that cargo's JSON lists, in its
# package's directory (as cargo does), under $runner, with SKIP's entries for
# it, adding the counts to the target's.
run_binaries() {
  [ -s "$1" ] || return 0
  python3 - "$1" >"$1.binaries" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["profile"]["test"] and m.get("executable"):
        # path+file:///dir#name@version, or #version when name is dir's.
        where, frag = m["package_id"].split("#", 1)
        pkg = frag.split("@")[0] if "@" in frag else where.rsplit("/", 1)[-1]
        print(pkg, m["target"]["name"], m["executable"], m["manifest_path"].rsplit("/", 1)[0])
PY
  local pkg name exe dir glob id test reason out status p f g listed
  while read -r pkg name exe dir; do
    local args=()
    while read -r glob id test reason; do
      [ -n "$glob" ] || continue
      # shellcheck disable=SC2053
      [[ $triple == $glob ]] && [ "$id" = "$pkg/$name" ] || continue
      args+=(--skip "$test")
      printf '%s %s: %s\n' "$id" "$test" "$reason" >>"$log/skipped"
      t_skipped=$((t_skipped + 1))
      # A stale entry fails the run: the test must exist. (The list is read
      # whole: `grep -q` in a pipe would end the runner early, and pipefail
      # would count that as no match.)
      listed=$($runner "$exe" --list --exact "$test" 2>/dev/null || true)
      grep -qx "$test: test" <<<"$listed" || bad "SKIP names $id $test, which does not exist"
    done <<<"$SKIP"
    step "$triple: $pkg/$name under ${runner%% *}"
    out=$log/$pkg-$name.log
    status=0
    (cd "$dir" && timeout 900 $runner "$exe" --exact "${args[@]}") >"$out" 2>&1 || status=$?
    grep '^test result:' "$out" || true
    read -r p f g < <(counts "$out")
    t_passed=$((t_passed + p)) t_failed=$((t_failed + f)) t_ignored=$((t_ignored + g))
    if [ "$status" != 0 ]; then
      grep -E '^test .* FAILED$|panicked|^---- ' "$out" | head -n 40 || true
      [ "$f" -gt 0 ] || bad "$pkg/$name exited with status $status (see $out)"
    fi
  done <"$1.binaries"
}

# echoes SERVER ECHO_CHECK: starts SERVER --port 0 under $runner, echoes
# through ECHO_CHECK (16 clients x 100,000 bytes, every byte checked), stops
# it with SIGTERM (143: it has no handler).
echoes() {
  local out pid port="" status=0
  out=$(mktemp)
  $runner "$1" --port 0 >"$out" &
  pid=$!
  for _ in $(seq 200); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
    [ -n "$port" ] && break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    bad "${1##*/} did not print 'listening on'"
  elif timeout 120 $runner "$2" --port "$port" --clients 16 --bytes 100000; then
    echo "ok: ${1##*/} echoes (16 clients x 100000 bytes)"
    t_passed=$((t_passed + 1))
  else
    bad "${1##*/} did not echo"
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  if [ "$status" = 143 ]; then
    echo "ok: ${1##*/} exits with status 143 on SIGTERM"
    t_passed=$((t_passed + 1))
  else
    bad "${1##*/} exited with status $status on SIGTERM, not 143"
  fi
  rm -f "$out"
}

# run TARGET: after `prepare`, runs what it built; the target's verdict.
run() {
  setup "$1"
  : >"$log/skipped"
  t_passed=0 t_failed=0 t_ignored=0 t_skipped=0
  run_binaries "$log/build.json"

  step "$triple: doc tests of ioselect-core and ioselect-linux (run by cargo while building)"
  grep '^test result:' "$log/doctests.log" || true
  local p f g
  read -r p f g < <(counts "$log/doctests.log")
  t_passed=$((t_passed + p)) t_failed=$((t_failed + f)) t_ignored=$((t_ignored + g))
  if [ -e "$log/doctests.status" ]; then
    grep -v '^ *Compiling' "$log/doctests.log" | tail -n 40
    [ "$f" -gt 0 ] || bad "doc tests exited with status $(cat "$log/doctests.status")"
  fi

  # The demos' programs run under the same emulator (IOSELECT_TEST_RUNNER:
  # a program under QEMU cannot start another foreign one directly).
  export IOSELECT_TEST_RUNNER=$runner
  run_binaries "$log/demos.json"
  unset IOSELECT_TEST_RUNNER

  local nolibc=$target_dir/nolibc/$triple/release/nolibc-echo
  if [ -x "$nolibc" ] && [ -x "$target_dir/$triple/debug/echo_check" ]; then
    step "$triple: demos/nolibc's echo run under ${runner%% *}"
    echoes "$nolibc" "$target_dir/$triple/debug/echo_check"
    printf '| `%s` | %s |\n' "$triple" "$(stat -c %s "$nolibc" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')" >>"$results/sizes"
  fi

  local fails
  fails=$(wc -l <"$log/failures")
  t_failed=$((t_failed + fails))
  local line="$triple: $t_passed passed, $t_failed failed, $t_ignored ignored, $t_skipped skipped"
  echo "$line"
  [ ! -s "$log/skipped" ] || sed 's/^/  skipped: /' "$log/skipped"
  summary+=("$line")
  [ "$t_failed" = 0 ] && [ "$t_passed" -gt 0 ] || failed_targets+=("$triple")
}

summary=()
failed_targets=()
: >"$results/sizes"
step "${targets[0]}: build"
prepare "${targets[0]}" 2>&1 | sed '/^ *Compiling /d'
for i in "${!targets[@]}"; do
  next=${targets[$((i + 1))]:-}
  if [ -n "$next" ]; then
    # Build the next target while this one's tests run (in a subshell:
    # its `setup` exports stay there).
    (prepare "$next" >"$results/prepare-$next.log" 2>&1) &
    building=$!
  fi
  run "${targets[$i]}"
  if [ -n "$next" ]; then
    step "$next: build (its output: $results/prepare-$next.log)"
    wait "$building" || true
    sed '/^ *Compiling /d' "$results/prepare-$next.log"
  fi
done

printf '\nqemu-user: per target (in %ss)\n' "$(( $(date +%s) - start ))"
printf '  %s\n' "${summary[@]}"
if [ "${#failed_targets[@]}" -gt 0 ]; then
  echo "qemu-user: FAILED on ${failed_targets[*]}" >&2
  exit 1
fi
if [ "$write_results" = 1 ]; then
  # Its own section of demos/results/sizes.md (static-check.sh writes the
  # rest and keeps this one).
  {
    sed '/^<!-- qemu-user.sh -->$/,$d' demos/results/sizes.md | sed '${/^$/d}'
    echo
    echo '<!-- qemu-user.sh -->'
    echo '### `nolibc-echo` on the machines static binaries ship to'
    echo
    echo "Generated by \`bash .ci/qemu-user.sh --write-results\` on $(date -u '+%Y-%m-%d %H:%M UTC') from commit"
    echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- . ':!demos/results' 2>/dev/null || echo ' with local changes'),"
    echo "$(/usr/bin/rustc -V) with \`-Zbuild-std=core\`, linked by Debian's cross gcc; each one echoed under"
    echo "QEMU $("${runner%% *}" --version | sed -n 's/^qemu-[^ ]* version \([^ ]*\).*/\1/p') user mode (opt z, LTO, abort, stripped, static non-PIE)."
    echo
    echo '| target | bytes |'
    echo '|---|--:|'
    cat "$results/sizes"
  } >"$results/sizes.md"
  cp "$results/sizes.md" demos/results/sizes.md
  echo "wrote demos/results/sizes.md"
fi
echo "qemu-user: all passed"
