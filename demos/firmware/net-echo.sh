#!/usr/bin/env bash
# The seed's TCP echo server on a microcontroller: serves it on
# 127.0.0.1:PORT until stopped (Ctrl-C, or a signal to this script).
#
#   demos/firmware/net-echo.sh PORT [PROGRAM]
#   python3 demos/python/selectors_echo_client.py --host 127.0.0.1 --port PORT
#
# QEMU's lm3s6965evb (Cortex-M3) runs the `net-echo` firmware (PROGRAM: the
# cost comparison's `net-hand` and `net-embassy` serve the same way): its Ethernet
# controller on QEMU's user-mode network, confined to the guest
# (restrict=on: the guest reaches nothing but the forwarded port), with
# 127.0.0.1:PORT forwarded to the guest's port 10000. The firmware's log
# (defmt) is decoded on stdout. Builds what is missing first; the tools
# (QEMU, Debian's rustc-web, lld) come from ci.sh's apt step: run
# `bash demos/firmware/ci.sh` once on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")"
port=${1:-}
bin=${2:-net-echo}
usage="usage: $0 PORT [net-echo | net-hand | net-embassy | net-echo-tx-busy | net-embassy-tx-busy]"
case $port in
  '' | *[!0-9]*) echo "$usage" >&2; exit 2 ;;
esac
features= dir=target
case $bin in
  net-echo | net-hand) ;;
  net-embassy) features="--features embassy" ;;
  # ci.sh's fault injection: net-echo with a transmitter that is busy on
  # every third look (Cargo.toml's `tx-busy` feature), built apart.
  net-echo-tx-busy) dir=target/tx-busy features="--features tx-busy --target-dir $dir" bin=net-echo ;;
  # The same for net-embassy, whose "transmit FIFO empty" wake-up then runs.
  net-embassy-tx-busy) dir=target/tx-busy features="--features embassy,tx-busy --target-dir $dir" bin=net-embassy ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
for tool in qemu-system-arm /usr/bin/cargo /usr/bin/rustc; do
  command -v "$tool" >/dev/null || { echo "$0: $tool missing: run demos/firmware/ci.sh once (it installs the tools)" >&2; exit 1; }
done
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TERM_COLOR=never
unset RUSTFLAGS CARGO_TARGET_DIR
run=host/target/release/qemu-run
if [ ! -x "$run" ]; then
  echo "net-echo.sh: building the host runner (a few minutes the first time)" >&2
  (cd / && /usr/bin/cargo build --release --locked -q --manifest-path "$OLDPWD/host/Cargo.toml")
fi
# shellcheck disable=SC2086
RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --release --locked -q --target thumbv7m-none-eabi $features --bin "$bin"
# qemu-run starts QEMU, decodes its log, and takes QEMU down with it
# (PR_SET_PDEATHSIG) however it ends.
exec "$run" --machine lm3s6965evb --nic "$port" --no-icount --timeout 0 \
  "$dir/thumbv7m-none-eabi/release/$bin"
