#!/usr/bin/env bash
# A user's first hour, checked: a scratch crate OUTSIDE the workspace,
# created in a temporary directory, depending on the library crates by path
# as a user must before they are published. It takes
#
#   - its [dependencies] from the README's "Install" snippet (the ```toml block
#     there, with the README's `../ioselect` replaced by this checkout's path),
#   - src/bin/readme.rs: the README's example (its first ```rust block), built
#     with -D warnings and run (it serves one client and checks the echo);
#   - src/main.rs: an `fn main() -> std::io::Result<()>` that reaches `open`,
#     `register`, `modify`, `unregister` and `select` through `?`, and checks
#     that refused calls arrive as `std::io::Error`s with the right kind;
#   - src/bin/api_examples.rs: every example of ioselect-linux's API docs (the
#     method examples of DefaultSelector, LargeSelector, Waker, ...), as
#     rustdoc writes them out for its doc tests, built against the path
#     dependency with -D warnings: they compile as written in a user's crate.
#     (The workspace's doc tests run them; ioselect-bsd's run on macOS and
#     FreeBSD, where they are compiled.)
#
# Dependencies are resolved afresh (no Cargo.lock), as a user's would be.
# Builds go to $CARGO_TARGET_DIR/user-crate, or target-user-crate/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}-user-crate" CARGO_TERM_COLOR=never
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# block LANG: the first fenced block of that language under "## Install"
# (toml) or anywhere (rust) in README.md, without its fences.
block() {
  awk -v lang="$1" '
    lang == "toml" && /^## / { in_install = ($0 == "## Install") }
    !inside && $0 == "```" lang && (lang != "toml" || in_install) { inside = 1; next }
    inside && /^```/ { exit }
    inside { print }
  ' README.md
}

deps=$(block toml)
example=$(block rust)
[ -n "$deps" ] || { echo "user-crate: no \`\`\`toml block under ## Install in README.md" >&2; exit 1; }
[ -n "$example" ] || { echo "user-crate: no \`\`\`rust block in README.md" >&2; exit 1; }
grep -q '\.\./ioselect/' <<<"$deps" ||
  { echo "user-crate: the README's snippet no longer uses ../ioselect/ paths" >&2; exit 1; }

mkdir -p "$dir/src/bin"
{
  cat <<'EOF'
[package]
name = "first-hour"
version = "0.1.0"
edition = "2024"
publish = false

# Not part of any workspace above the temporary directory.
[workspace]

EOF
  sed "s|\.\./ioselect/|$root/|g" <<<"$deps"
} >"$dir/Cargo.toml"
printf '%s\n' "$example" >"$dir/src/bin/readme.rs"

cat >"$dir/src/main.rs" <<'EOF'
//! `?` from every selector call into `std::io::Result`, as with mio and polling.
use std::io::{self, ErrorKind};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

#[cfg(any(target_os = "linux", target_os = "android"))]
use ioselect_linux::{DefaultSelector, Events};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use ioselect_bsd::{DefaultSelector, Events};

fn main() -> io::Result<()> {
    let mut sel = DefaultSelector::<&str, 4>::open()?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    client.set_nonblocking(true)?;

    sel.register(client.as_fd(), Events::WRITE, "client")?;
    sel.select(Some(Duration::from_secs(5)))?;
    let (key, events) = sel.next_ready().ok_or_else(|| io::Error::other("no event"))?;
    assert_eq!((*key.data(), events), ("client", Events::WRITE));

    let old = sel.modify(client.as_fd(), Events::READ, "reader")?;
    assert_eq!(old, "client");
    sel.modify_events(client.as_fd(), Events::READ | Events::WRITE)?;
    sel.select(Some(Duration::ZERO))?;

    // Refused calls come back as io::Errors of the matching kind.
    let dup = sel.register(client.as_fd(), Events::READ, "again").map_err(io::Error::from);
    let kind = dup.expect_err("a second register must be refused").kind();
    assert_eq!(kind, ErrorKind::AlreadyExists, "register of a registered fd");
    let none = sel.unregister(listener.as_fd()).map_err(io::Error::from);
    assert_eq!(none.expect_err("not registered").kind(), ErrorKind::NotFound, "unregister of an unknown fd");

    let key = sel.unregister(client.as_fd())?;
    assert_eq!(*key.data(), "reader");
    assert!(sel.is_empty());
    println!("first-hour: ? into io::Result from open, register, modify, select and unregister: ok");
    Ok(())
}
EOF

# Every API example of ioselect-linux, as rustdoc extracts it for the doc
# tests (edition 2024 bundles them into one file of `mod`s).
dt=$(mktemp -d)
RUSTC_BOOTSTRAP=1 RUSTDOCFLAGS="-Zunstable-options --persist-doctests $dt" \
  cargo test -q --doc -p ioselect-linux >/dev/null
bundle=$(find "$dt" -name 'doctest_bundle_*.rs' | head -n 1)
[ -n "$bundle" ] || { echo "user-crate: rustdoc persisted no doc-test bundle" >&2; exit 1; }
examples=$(grep -c '^pub mod __doctest_' "$bundle")
# Fewer than the methods documented would mean examples were lost.
[ "$examples" -ge 40 ] || { echo "user-crate: only $examples API examples found" >&2; exit 1; }
{ cat "$bundle"; echo 'fn main() {}'; } >"$dir/src/bin/api_examples.rs"
rm -rf "$dt"

cd "$dir"
echo "--- Cargo.toml of the scratch crate ($dir)"
cat Cargo.toml
echo "--- cargo build (RUSTFLAGS=-D warnings)"
RUSTFLAGS="-D warnings" cargo build -q --bins
echo "--- $examples ioselect-linux API examples built as written (src/bin/api_examples.rs)"
echo "--- the README's example"
timeout 60 "$CARGO_TARGET_DIR/debug/readme"
echo "--- io::Result main"
timeout 60 "$CARGO_TARGET_DIR/debug/first-hour"
echo "user-crate: passed"
