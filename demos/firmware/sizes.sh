#!/usr/bin/env bash
# Size figures of demos/firmware/README.md: .text, .rodata and static RAM
# (.data + .bss + .uninit) of `loop-ioselect` (a small event loop written with
# ioselect) and `loop-hand` (the same loop by hand), for the three machines,
# from the release builds in target/. The selector itself lives on main's
# stack: its size_of comes from the program's own log (run under QEMU).
# Prints a Markdown table. Run by ci.sh after the builds.
set -euo pipefail
cd "$(dirname "$0")"
run=host/target/release/qemu-run
printf '| machine (target) | loop | .text | .rodata | static RAM | selector (stack) |\n'
printf '|---|---|---:|---:|---:|---:|\n'
for m in lm3s6965evb:thumbv7m-none-eabi:arm-none-eabi-size \
         microbit:thumbv6m-none-eabi:arm-none-eabi-size \
         virt:riscv32imac-unknown-none-elf:riscv64-unknown-elf-size; do
  IFS=: read -r machine target size <<<"$m"
  declare -A text=() ram=()
  for loop in loop-hand loop-ioselect; do
    elf=target/$target/release/$loop
    read -r t r d <<<"$("$size" -A "$elf" | awk '
      $1 == ".text" { t = $2 } $1 == ".rodata" { r = $2 }
      $1 == ".data" || $1 == ".bss" || $1 == ".uninit" { d += $2 }
      END { print t + 0, r + 0, d + 0 }')"
    sel=-
    if [ "$loop" = loop-ioselect ]; then
      sel=$(timeout 30 "$run" --machine "$machine" "$elf" | sed -n 's/.*selector \([0-9]*\) B.*/\1 B/p')
      [ -n "$sel" ] || { echo "sizes.sh: no selector size from $elf" >&2; exit 1; }
    fi
    text[$loop]=$t ram[$loop]=$d
    printf '| %s (`%s`) | `%s` | %s | %s | %s | %s |\n' "$machine" "$target" "$loop" \
      "$(printf "%'d" "$t")" "$(printf "%'d" "$r")" "$(printf "%'d" "$d")" "$sel"
  done
  printf '| | difference | %+d | | %+d | |\n' \
    $(( text[loop-ioselect] - text[loop-hand] )) $(( ram[loop-ioselect] - ram[loop-hand] ))
  unset text ram
done
