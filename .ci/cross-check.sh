#!/usr/bin/env bash
# Cross-target type checks.
#
# The rustup toolchain here has only the x86_64 Linux target, so this uses
# Debian's rustc-web/cargo-web/rust-web-src (a rustc with the standard
# library's source) and builds core/std for each target with -Zbuild-std
# (RUSTC_BOOTSTRAP=1 unlocks -Z on that stable compiler). Nothing is linked
# or run: these are `cargo check`s.
#
#   - ioselect-bsd and the tests crate with its tests, for the six kqueue
#     targets (FreeBSD, macOS x86_64 and arm64, NetBSD, OpenBSD, DragonFly);
#   - ioselect-core, with and without `defmt`, for four bare-metal targets,
#     building only `core`: proof that it needs neither std nor alloc, nor
#     compare-and-swap (thumbv6m: Cortex-M0/M0+; riscv32imc: ESP32-C3 have
#     only atomic loads and stores);
#   - ioselect-linux for aarch64 Linux;
#   - ioselect-linux and the tests crate with its tests for Android (arm64,
#     armv7);
#   - ioselect-bsd's docs as docs.rs will build them (FreeBSD, macOS): they
#     must document DefaultSelector, LargeSelector, Waker, backend::Kqueue
#     and the kernels module (KERNELS.md).
#
# Needs root for apt-get when the packages are missing. Uses its own target
# directory (target-cross/, git-ignored). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

# The newest rustc-web apt offers (bookworm-security's, 1.96 when this was
# written), not just any installed one: an older rustc-web (bookworm's 1.85)
# may lack what the tests crate and the dependencies' newest versions use.
# (.ci/msrv.sh keeps that 1.85 in a private prefix, out of the way.)
export DEBIAN_FRONTEND=noninteractive
installed() { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null | sed -n 's/^ii *//p'; }
candidate() { apt-cache policy "$1" | sed -n 's/^ *Candidate: //p'; }
need_install=0
for pkg in rustc-web cargo-web rust-web-src; do
  have=$(installed "$pkg")
  want=$(candidate "$pkg")
  if [ -z "$have" ] || [ -z "$want" ] || [ "$want" = "(none)" ] || dpkg --compare-versions "$have" lt "$want"; then
    need_install=1
  fi
done
if [ "$need_install" = 1 ] || [ ! -x /usr/bin/cargo ] || [ ! -d /usr/lib/rustlib/src/rust/library ]; then
  apt-get update -qq
  echo "cross-check: installing or upgrading rustc-web cargo-web rust-web-src to $(candidate rustc-web) (was: $(installed rustc-web || true))"
  apt-get install -y -qq rustc-web cargo-web rust-web-src >/dev/null
fi

# Debian's compiler, not rustup's proxies (which come first on PATH).
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}-cross" CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
# Warnings fail the check, as clippy's -D warnings does on Linux (there is no
# clippy for this compiler). Dependencies, std included, are capped anyway.
export RUSTFLAGS="-D warnings"
unset RUSTDOCFLAGS
cargo=/usr/bin/cargo
"$cargo" --version
"$RUSTC" --version
# The workspace's MSRV is a floor for this compiler too.
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
have=$("$RUSTC" --version | sed -n 's/^rustc \([0-9]*\.[0-9]*\).*/\1/p')
if [ "$(printf '%s\n' "$msrv" "$have" | sort -V | head -n 1)" != "$msrv" ]; then
  echo "cross-check: /usr/bin/rustc is $have, older than the MSRV $msrv" >&2
  exit 1
fi

start=$(date +%s)
check() {
  printf '\n--- [%4ss] cargo check %s\n' "$(( $(date +%s) - start ))" "$*"
  # --locked: the workspace's Cargo.lock is used as it is, never rewritten.
  "$cargo" check --locked -q "$@"
}

for target in x86_64-unknown-freebsd x86_64-apple-darwin aarch64-apple-darwin \
              x86_64-unknown-netbsd x86_64-unknown-openbsd x86_64-unknown-dragonfly; do
  # Default -Zbuild-std set (std, and `test` for the test harnesses).
  check -Zbuild-std --target "$target" -p ioselect-bsd -p ioselect-tests --tests
done
# The optional integration, once, on one kqueue target.
check -Zbuild-std=core --target x86_64-unknown-freebsd -p ioselect-bsd --no-default-features --features defmt

for target in thumbv7em-none-eabihf riscv32imac-unknown-none-elf \
              thumbv6m-none-eabi riscv32imc-unknown-none-elf; do
  check -Zbuild-std=core --target "$target" -p ioselect-core
  check -Zbuild-std=core --target "$target" -p ioselect-core --features defmt
done

check -Zbuild-std=core --target aarch64-unknown-linux-gnu -p ioselect-linux --no-default-features
check -Zbuild-std=core --target aarch64-unknown-linux-gnu -p ioselect-linux --no-default-features --features defmt

# Android (the same epoll backend, chosen by the same `cfg`): the library and
# the whole test suite type-check for arm64 and armv7 phones. No NDK is
# needed, nothing is linked. (Linux on arm64, armv7, i686, riscv64 and s390x
# is built and run under QEMU by .ci/qemu-user.sh.)
for target in aarch64-linux-android armv7-linux-androideabi; do
  check -Zbuild-std --target "$target" -p ioselect-linux -p ioselect-tests --tests
done

# docs.rs: ioselect-bsd documented the way docs.rs will build it
# (the targets and features of its [package.metadata.docs.rs]) must show the
# backend, which exists only on kqueue targets. Reuses the checks' std.
bsd_docs_features=$("$cargo" metadata --locked --format-version 1 --no-deps | python3 -c '
import json, sys
p = next(p for p in json.load(sys.stdin)["packages"] if p["name"] == "ioselect-bsd")
print(",".join(p["metadata"]["docs"]["rs"]["features"]))')
for target in x86_64-unknown-freebsd aarch64-apple-darwin; do
  printf '\n--- [%4ss] cargo doc -p ioselect-bsd --target %s --features %s\n' \
    "$(( $(date +%s) - start ))" "$target" "$bsd_docs_features"
  RUSTDOCFLAGS="-D warnings" "$cargo" doc --locked -q -Zbuild-std --target "$target" \
    -p ioselect-bsd --no-deps --features "$bsd_docs_features"
  for page in struct.DefaultSelector.html struct.LargeSelector.html struct.Waker.html \
    backend/struct.Kqueue.html kernels/index.html; do
    [ -f "$CARGO_TARGET_DIR/$target/doc/ioselect_bsd/$page" ] ||
      { echo "cross-check: ioselect-bsd's docs for $target lack $page" >&2; exit 1; }
  done
done

# What GitHub Actions builds on macOS and FreeBSD (`cargo test --workspace`
# builds examples too; clippy uses --all-targets): the whole workspace. It
# passes (Linux-only examples, benches and tests are gated); opt-in
# (IOSELECT_CROSS_ALL=1) here only to keep .ci/run's time down, and run on every
# push by the workflow's cross-bsd job.
if [ "${IOSELECT_CROSS_ALL:-0}" = 1 ]; then
  for target in x86_64-unknown-freebsd aarch64-apple-darwin; do
    check -Zbuild-std --target "$target" --workspace --all-targets --keep-going
  done
fi

printf '\ncross-check: all passed in %ss\n' "$(( $(date +%s) - start ))"
