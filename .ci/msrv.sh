#!/usr/bin/env bash
# MSRV check: builds and tests the library crates
# (ioselect-core, ioselect-linux, ioselect-bsd) with a compiler of exactly the
# `rust-version` declared in the workspace Cargo.toml, and type-checks the
# kqueue backend and bare-metal core with it.
#
# The compiler is Debian bookworm's rustc-web of that version (1.85 in the
# `bookworm` suite; `bookworm-security` carries a newer one, which
# .ci/cross-check.sh installs system-wide). So that both can live side by
# side, this one is never installed: its .debs are fetched with
# `apt-get download` and unpacked with `dpkg -x` into a private prefix
# ($IOSELECT_MSRV_HOME, default ~/.cache/ioselect/rustc-web-VERSION), together
# with the shared libraries it needs that a fresh machine lacks (its LLVM,
# cargo's libpcre3 and libhttp-parser).
#
# What runs, with that cargo and rustc and the workspace's Cargo.lock
# (--locked, and without --ignore-rust-version, so a dependency that declares
# a newer rust-version fails the check):
#   - cargo build of the three library crates, default features and all features;
#   - cargo test of each (unit tests, integration tests, doc tests), and of
#     ioselect-core with all its features;
#   - cargo check -Zbuild-std of ioselect-bsd for FreeBSD and macOS (the
#     kqueue code is compiled only there) and of ioselect-core for two
#     bare-metal targets (thumbv6m: no compare-and-swap).
# Uses its own target directory: $CARGO_TARGET_DIR/msrv, or target-msrv/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "msrv: no rust-version in Cargo.toml" >&2; exit 1; }
home=${IOSELECT_MSRV_HOME:-$HOME/.cache/ioselect/rustc-web-$msrv}
prefix=$home/prefix

# The Debian version string of rustc-web $msrv.x (e.g. 1.85.0+dfsg3-1~deb12u3).
debver() {
  apt-cache madison rustc-web | awk -F' *[|] *' -v v="$msrv" \
    'index($2, v ".") == 1 { print $2; exit }'
}

if [ ! -x "$prefix/usr/bin/rustc" ] || [ ! -d "$prefix/usr/lib/rustlib/src/rust/library" ]; then
  ver=$(debver)
  if [ -z "$ver" ]; then
    echo "msrv: apt has no rustc-web $msrv.x; running apt-get update" >&2
    apt-get update -qq
    ver=$(debver)
  fi
  [ -n "$ver" ] || { echo "msrv: no rustc-web $msrv.x in the apt sources (Debian bookworm has 1.85)" >&2; exit 1; }
  llvm=$(apt-cache show "libstd-rust-web-$msrv=$ver" | sed -n 's/^Depends: //p' | head -n 1 |
         grep -o 'libllvm[0-9][0-9]*' | head -n 1)
  echo "msrv: fetching rustc-web $ver (with $llvm) into $prefix"
  rm -rf "$home" && mkdir -p "$home/debs" "$prefix"
  # apt-get download writes into the current directory; as root it warns that
  # the _apt user cannot write there, which is harmless.
  (cd "$home/debs" && apt-get download -q \
      "rustc-web=$ver" "cargo-web=$ver" "libstd-rust-web-$msrv=$ver" \
      "libstd-rust-web-dev=$ver" "rust-web-src=$ver" \
      "$llvm" libpcre3 libhttp-parser2.9 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
  for deb in "$home"/debs/*.deb; do dpkg -x "$deb" "$prefix"; done
fi

export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu:$prefix/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for bin in rustc cargo rustdoc; do
  if ldd "$prefix/usr/bin/$bin" | grep -q 'not found'; then
    echo "msrv: $bin lacks shared libraries:" >&2
    ldd "$prefix/usr/bin/$bin" | grep 'not found' >&2
    exit 1
  fi
done
export RUSTC="$prefix/usr/bin/rustc" RUSTDOC="$prefix/usr/bin/rustdoc"
cargo="$prefix/usr/bin/cargo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}-msrv" CARGO_TERM_COLOR=never CARGO_INCREMENTAL=0
unset RUSTFLAGS RUSTDOCFLAGS RUSTC_WRAPPER

have=$("$RUSTC" --version)
echo "msrv: rust-version $msrv; $have; $("$cargo" --version)"
case "$have" in
  "rustc $msrv."*) ;;
  *) echo "msrv: the compiler is not $msrv" >&2; exit 1 ;;
esac

libs=(-p ioselect-core -p ioselect-linux -p ioselect-bsd)
start=$(date +%s)
run() {
  printf '\n--- [%4ss] cargo %s\n' "$(( $(date +%s) - start ))" "$*"
  "$cargo" "$@"
}
run build --locked "${libs[@]}"
run build --locked "${libs[@]}" --all-features
# One crate at a time, as a user's build sees it (no feature unification
# across the three: os-linux's default `std` would turn on core's).
for lib in ioselect-core ioselect-linux ioselect-bsd; do
  run test --locked -p "$lib"
done
run test --locked -p ioselect-core --all-features

# The kqueue backend and bare-metal core, type-checked with the MSRV's own
# standard library sources (rust-web-src); RUSTC_BOOTSTRAP unlocks -Z.
export RUSTC_BOOTSTRAP=1
for target in x86_64-unknown-freebsd aarch64-apple-darwin; do
  run check --locked -Zbuild-std --target "$target" -p ioselect-bsd --all-features
done
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
  run check --locked -Zbuild-std=core --target "$target" -p ioselect-core --features defmt
done

printf '\nmsrv: the library crates build and pass their tests with %s (%ss)\n' "$have" "$(( $(date +%s) - start ))"
