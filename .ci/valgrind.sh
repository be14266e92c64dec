#!/usr/bin/env bash
# Runs the unit and integration test binaries of ioselect-core, ioselect-linux
# and ioselect-tests under valgrind memcheck; any memory error fails the run.
# Installs valgrind if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
exes=$(cargo test --no-run --message-format=json -p ioselect-core -p ioselect-linux -p ioselect-tests 2>/dev/null |
  python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])')
[ -n "$exes" ] || { echo "valgrind.sh: no test binaries found" >&2; exit 1; }
for exe in $exes; do
  echo "--- valgrind $(basename "$exe")"
  # Tests that measure wall-clock bounds or need many fds read this and relax
  # only what valgrind itself makes impossible (see tests/src/lib.rs).
  IOSELECT_UNDER_VALGRIND=1 valgrind -q --error-exitcode=99 --track-fds=no "$exe" --test-threads=2 -q
done
echo "valgrind: $(echo "$exes" | wc -l) test binaries clean"
