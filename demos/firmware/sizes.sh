#!/usr/bin/env bash
# The size and cost tables of demos/firmware/README.md and README.md, from the
# release builds in target/ (ci.sh builds them first):
#
# 1. `sizes`: .text, .rodata and static RAM (.data + .bss + .uninit) of
#    `loop-ioselect` (a small event loop written with ioselect) and
#    `loop-hand` (the same loop by hand), on the three machines; the selector
#    itself lives on main's stack: its size_of comes from the program's log.
# 2. `net costs`: the TCP echo written with ioselect (`net-echo`) against the
#    same echo as a hand-rolled smoltcp poll loop (`net-hand`) and on
#    embassy-net with embassy-executor (`net-embassy`), lm3s6965evb:
#    flash (.text + .rodata), static RAM, peak stack (painted, from the
#    program's log) and instructions per echoed message: each program runs
#    under QEMU with `-icount shift=0` (1 ns of the machine's clock per
#    instruction while it runs) on the user-mode network (restrict=on,
#    127.0.0.1), net_bench.py sends 200 and then 2200 messages of 64 bytes,
#    one at a time, each on its own connection; the firmware logs its busy
#    time (outside its sleeps) per connection; the difference of the two
#    connections over 2000 messages cancels the connection's own costs;
#    the median of five runs (the count moves with the host's timing: an
#    ACK apart from or together with the next segment, and the 1 ms ticks
#    that wake the idle loop while the host is slow to answer), and the
#    largest peak stack of the five.
# 3. `net parts`: where (a)'s and (b)'s flash and instructions go, by
#    source file (costs.py): `.text` byte by byte from the DWARF line
#    table, and the instructions run per message from QEMU's trace of
#    every block run (`qemu-run --trace`) in two runs of net_bench.py,
#    100 and 600 messages (each run twice, the quieter one taken).
#
# .rodata is stable across clone folders: panic locations are off
# (-Z location-detail=none in .cargo/config.toml), so no source path is in it.
#
#   ./sizes.sh            print the tables
#   ./sizes.sh --write    put them (with the compiler's version) between their
#                         markers in demos/firmware/README.md and README.md
#   ./sizes.sh --check    fail when a committed table differs from this
#                         build's: sizes exactly (the parts' flash too);
#                         peak stack and instructions per message of (a),
#                         (b) and (c) (measured against the host's timing;
#                         runs were seen 14% apart) within 25%, the lines
#                         comparing them not at all (they follow from them),
#                         the parts' instructions not at all (one run each,
#                         and a part of a few dozen instructions moves by
#                         more than 25%). Only under the compiler recorded;
#                         otherwise say so and pass.
set -euo pipefail
cd "$(dirname "$0")"
run=host/target/release/qemu-run
mode=${1:-}

# size ELF SIZE-TOOL -> "text rodata ram"
sections() {
  "$2" -A "$1" | awk '
    $1 == ".text" { t = $2 } $1 == ".rodata" { r = $2 }
    $1 == ".data" || $1 == ".bss" || $1 == ".uninit" { d += $2 }
    END { print t + 0, r + 0, d + 0 }'
}

loops_table() {
  printf '| machine (target) | loop | .text | .rodata | .text + .rodata | static RAM | selector (stack) |\n'
  printf '|---|---|---:|---:|---:|---:|---:|\n'
  for m in lm3s6965evb:thumbv7m-none-eabi:arm-none-eabi-size \
           microbit:thumbv6m-none-eabi:arm-none-eabi-size \
           virt:riscv32imac-unknown-none-elf:riscv64-unknown-elf-size; do
    IFS=: read -r machine target size <<<"$m"
    declare -A flash=() ram=() text=() ro=()
    for loop in loop-hand loop-ioselect; do
      elf=target/$target/release/$loop
      read -r t r d <<<"$(sections "$elf" "$size")"
      sel=-
      if [ "$loop" = loop-ioselect ]; then
        sel=$(timeout 30 "$run" --machine "$machine" "$elf" | sed -n 's/.*selector \([0-9]*\) B.*/\1 B/p')
        [ -n "$sel" ] || { echo "sizes.sh: no selector size from $elf" >&2; exit 1; }
      fi
      text[$loop]=$t ro[$loop]=$r flash[$loop]=$((t + r)) ram[$loop]=$d
      printf '| %s (`%s`) | `%s` | %s | %s | %s | %s | %s |\n' "$machine" "$target" "$loop" \
        "$t" "$r" "$((t + r))" "$d" "$sel"
    done
    printf '| | difference | %+d | %+d | %+d | %+d | |\n' \
      $(( text[loop-ioselect] - text[loop-hand] )) $(( ro[loop-ioselect] - ro[loop-hand] )) \
      $(( flash[loop-ioselect] - flash[loop-hand] )) $(( ram[loop-ioselect] - ram[loop-hand] ))
    unset text ro flash ram
  done
}

# measure ELF -> "stack instructions-per-message"
measure() {
  local elf=$1 port log pid
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log=$(mktemp)
  setsid "$run" --machine lm3s6965evb --nic "$port" --icount-shift 0 --timeout 300 "$elf" >"$log" 2>&1 &
  pid=$!
  if ! timeout 300 python3 net_bench.py "$port" 200 2200 >/dev/null; then
    kill -- -"$pid" 2>/dev/null || true; cat "$log" >&2; rm -f "$log"
    echo "sizes.sh: net_bench.py failed against $elf" >&2; exit 1
  fi
  kill -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  python3 - "$log" <<'PY'
import re, sys
rows = [re.search(r'(\d+) reads, busy (\d+) ns, stack peak (\d+) B', l) for l in open(sys.argv[1])]
rows = [(int(m.group(1)), int(m.group(2)), int(m.group(3))) for m in rows if m]
short = [r for r in rows if r[0] == 200]
long_ = [r for r in rows if r[0] == 2200]
if not short or not long_:
    sys.exit('sizes.sh: no busy figures in the log')
(n0, b0, _), (n1, b1, s1) = short[-1], long_[-1]
print(s1, round((b1 - b0) / (n1 - n0)))
PY
  rm -f "$log"
}

net_table() {
  local t r d s i
  declare -A flash=() ram=() stack=() insn=()
  for b in net-echo net-hand net-embassy; do
    elf=target/thumbv7m-none-eabi/release/$b
    read -r t r d <<<"$(sections "$elf" arm-none-eabi-size)"
    # The median of five runs: the count moves with the host's timing
    # (an ACK apart or together with the next segment, idle ticks).
    local runs=() stacks=()
    for _ in 1 2 3 4 5; do
      read -r s i <<<"$(measure "$elf")"
      runs+=("$i") stacks+=("$s")
    done
    i=$(printf '%s\n' "${runs[@]}" | sort -n | sed -n 3p)
    s=$(printf '%s\n' "${stacks[@]}" | sort -n | sed -n 5p)
    flash[$b]=$((t + r)) ram[$b]=$d stack[$b]=$s insn[$b]=$i
  done
  printf '| lm3s6965evb (`thumbv7m-none-eabi`) | flash (.text + .rodata) | static RAM | peak stack | instructions per echoed message |\n'
  printf '|---|---:|---:|---:|---:|\n'
  printf '| (a) `net-echo`: ioselect, selectable smoltcp sockets | %s | %s | %s | %s |\n' \
    "${flash[net-echo]}" "${ram[net-echo]}" "${stack[net-echo]}" "${insn[net-echo]}"
  printf '| (b) `net-hand`: hand-rolled smoltcp poll loop | %s | %s | %s | %s |\n' \
    "${flash[net-hand]}" "${ram[net-hand]}" "${stack[net-hand]}" "${insn[net-hand]}"
  against() {
    printf '| (a) against (%s) | %+d | %+d | %+d | %s× |\n' "$1" \
      $(( flash[net-echo] - flash[$2] )) $(( ram[net-echo] - ram[$2] )) \
      $(( stack[net-echo] - stack[$2] )) \
      "$(python3 -c "print('%.3f' % (${insn[net-echo]} / ${insn[$2]}))")"
  }
  against b net-hand
  printf '| (c) `net-embassy`: embassy-net, embassy-executor | %s | %s | %s | %s |\n' \
    "${flash[net-embassy]}" "${ram[net-embassy]}" "${stack[net-embassy]}" "${insn[net-embassy]}"
  against c net-embassy
}

# trace ELF MESSAGES FILE: QEMU's trace of a net_bench.py run of MESSAGES.
trace() {
  local port pid
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  setsid "$run" --machine lm3s6965evb --nic "$port" --icount-shift 0 --timeout 300 \
    --trace "$3" "$1" >/dev/null 2>&1 &
  pid=$!
  if ! timeout 300 python3 net_bench.py "$port" "$2" >/dev/null; then
    kill -- -"$pid" 2>/dev/null || true
    echo "sizes.sh: net_bench.py failed against $1 (traced)" >&2; exit 1
  fi
  kill -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

parts_table() {
  local dir b
  dir=$(mktemp -d)
  # Each run twice: costs.py takes the one that ran fewer instructions.
  for b in net-echo net-hand; do
    for n in 100 600; do
      for k in 1 2; do
        trace "target/thumbv7m-none-eabi/release/$b" "$n" "$dir/$b.$n.$k"
      done
    done
  done
  python3 costs.py table \
    target/thumbv7m-none-eabi/release/net-echo "$dir/net-echo.100.1,$dir/net-echo.100.2" \
    "$dir/net-echo.600.1,$dir/net-echo.600.2" \
    target/thumbv7m-none-eabi/release/net-hand "$dir/net-hand.100.1,$dir/net-hand.100.2" \
    "$dir/net-hand.600.1,$dir/net-hand.600.2" 500
  rm -rf "$dir"
}

if [ -n "$mode" ]; then
  rustc_v=$(/usr/bin/rustc --version)
  loops=$(loops_table)
  net=$(net_table)
  parts=$(parts_table)
  status=0
  for f in README.md ../../README.md; do
    LOOPS="$loops" NET="$net" PARTS="$parts" MODE="$mode" RUSTC_V="$rustc_v" python3 - "$f" <<'PY' || status=1
import os, re, sys
path = sys.argv[1]
text = open(path).read()
mode, rustc_v = os.environ['MODE'], os.environ['RUSTC_V']
blocks = {'sizes': os.environ['LOOPS'], 'net costs': os.environ['NET'], 'net parts': os.environ['PARTS']}
MEASURED = {'net costs': (3, 4)}  # columns measured against the host's timing
UNCHECKED = {'net parts': (4, 5, 6)}  # one run each: written, not compared

def cells(table):
    return [[c.strip() for c in row.strip('|').split('|')] for row in table.splitlines()]

failed = False
new = text
for name, table in blocks.items():
    pat = re.compile(r'<!-- %s: generated by demos/firmware/sizes.sh --write \((.*?)\); do not edit -->\n(.*?)\n<!-- end %s -->'
                     % (re.escape(name), re.escape(name)), re.S)
    m = pat.search(new)
    if not m and name == 'net parts' and path.endswith('../README.md'):
        continue  # the firmware README's only
    if not m:
        sys.exit(f'sizes.sh: no {name} markers in {path}')
    block = f'<!-- {name}: generated by demos/firmware/sizes.sh --write ({rustc_v}); do not edit -->\n{table}\n<!-- end {name} -->'
    if mode == '--write':
        new = new[:m.start()] + block + new[m.end():]
        continue
    if m.group(1) != rustc_v:
        print(f'sizes.sh: {path}: the {name} table holds figures of {m.group(1)}, this is {rustc_v}: not compared')
        continue
    old_cells, new_cells = cells(m.group(2)), cells(table)
    same = len(old_cells) == len(new_cells)
    for o, n in zip(old_cells, new_cells):
        if len(o) != len(n):
            same = False
            break
        for j, (a, b) in enumerate(zip(o, n)):
            if a == b or j in UNCHECKED.get(name, ()):
                continue
            if j in MEASURED.get(name, ()) and o[0].startswith('(a) against'):
                continue  # follows from the two rows above it
            if j in MEASURED.get(name, ()) and a and b:
                try:
                    x, y = float(a), float(b)
                except ValueError:
                    same = False
                    continue
                if abs(x - y) <= 0.25 * abs(x):
                    continue
                print(f'sizes.sh: {path}: {name}: {a} now {b} (more than 25% apart)')
            same = False
    if not same:
        print(f'sizes.sh: the {name} table in {path} differs from this build\'s:\n{table}')
        failed = True
    else:
        print(f'sizes.sh: {path}: the {name} table matches this build')
if mode == '--write':
    open(path, 'w').write(new)
    print(f'sizes.sh: wrote {path}')
if failed:
    sys.exit(1)
PY
  done
  exit $status
fi
loops_table
echo
net_table
echo
parts_table
