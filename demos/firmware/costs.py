#!/usr/bin/env python3
"""Where the TCP echo's flash and instructions go, by source file.

costs.py table A.elf A.short A.long B.elf B.short B.long MESSAGES

Compares two programs, (a) and (b), part by part: each byte of `.text` and
each instruction run is put down to the source file of the code it came
from (its innermost frame in the DWARF line table, inlined code included,
that is not Rust's own library: a `memcpy` inlined into smoltcp counts as
smoltcp's), and the files are grouped into the parts below.

- Flash: every instruction of `.text` (and the literal pools between them),
  from `objdump -d`, located with `addr2line -i`.
- Instructions per message: A.short and A.long are QEMU traces
  (`qemu-run --trace`: `-d exec,nochain,in_asm`) of two runs of
  `net_bench.py` whose measured connections differ by MESSAGES messages
  (each may be several traces, comma-separated, of the same run repeated:
  the one that ran the fewest instructions is taken, the run least
  disturbed by the host: while the host is slow to answer, each 1 ms tick
  wakes the idle loop for nothing, and tracing slows QEMU's network);
  every block run is weighted by its instructions, and the difference of
  the two runs divided by MESSAGES is the count per message (the boot and
  each connection's own costs cancel out). A block cut short by an
  interrupt counts whole: the split is exact to a few instructions per
  message, not to one.

Prints a Markdown table: the parts' flash and instructions per message in
(a) and (b), and (a) less (b).
"""

import collections
import re
import subprocess
import sys

# (part, pattern on 'function path'), first match wins. Paths of Rust's own
# library (`/library/`) are skipped: their code belongs to the caller.
PARTS = [
    ('ioselect-core (selector, `SoftBackend`)', r'/core/src/'),
    ('the program (`src/bin`, and the log lines of `net::seed_log`)',
     r'/demos/firmware/src/bin/|seed_log'),
    ('socket layer (the rest of `net`: `Net`, the pool, the readiness)', r'/demos/firmware/src/net\.rs'),
    ('Ethernet driver', r'/demos/firmware/src/board/enet\.rs'),
    ('clock, sleep, runtime', r'/demos/firmware/src/|/cortex-m|/critical-section|/vcell'),
    ('smoltcp (with managed, heapless, byteorder)', r'/smoltcp-|/managed-|/heapless-|/byteorder-'),
    ('defmt, semihosting', r'/defmt|/semihosting'),
]
OTHER = 'compiler builtins (`memcpy`, ...), other'


def part_of(frames):
    """The part of an address, from its addr2line frames (innermost first)."""
    for function, path in frames:
        if '/library/' in path or path.startswith('??'):
            continue
        for name, pat in PARTS:
            if re.search(pat, function + ' ' + path):
                return name
        return OTHER
    return OTHER


def locate(elf, addrs):
    """addr -> part, for every address, with one addr2line run (a function
    line and a file line per frame, innermost first)."""
    out = subprocess.run(
        ['addr2line', '-i', '-f', '-C', '-a', '-e', elf],
        input='\n'.join('0x%x' % a for a in addrs),
        capture_output=True, text=True, check=True).stdout.splitlines()
    frames, cur, function = {}, None, None
    for line in out:
        if line.startswith('0x'):
            cur = int(line, 16)
            frames[cur] = []
        elif function is None:
            function = line
        else:
            frames[cur].append((function, line))
            function = None
    return {a: part_of(f) for a, f in frames.items()}


def text_bytes(elf):
    """addr -> bytes, for every instruction and literal of `.text`."""
    out = subprocess.run(
        ['arm-none-eabi-objdump', '-d', '-j', '.text', elf],
        capture_output=True, text=True, check=True).stdout
    sizes = {}
    for m in re.finditer(r'^\s*([0-9a-f]+):\t([0-9a-f ]+?) *(?:\t|$)', out, re.M):
        sizes[int(m.group(1), 16)] = len(m.group(2).replace(' ', '')) // 2
    return sizes


def executed(trace):
    """addr -> times run, from a `-d exec,nochain,in_asm` log."""
    blocks, runs, cur = {}, collections.Counter(), None
    with open(trace, errors='replace') as f:
        for line in f:
            if line.startswith('Trace'):
                runs[int(line.split('/', 2)[1], 16)] += 1
                cur = None
            elif line.startswith('IN:'):
                cur = []
            elif cur is not None and line.startswith('0x'):
                cur.append(int(line.split(':', 1)[0], 16))
                blocks[cur[0]] = cur
    counts = collections.Counter()
    for start, n in runs.items():
        for a in blocks.get(start, [start]):
            counts[a] += n
    return counts


def quietest(traces):
    """The counts of the trace, of those comma-separated, that ran the
    fewest instructions."""
    return min((executed(t) for t in traces.split(',')), key=lambda c: sum(c.values()))


def program(elf, short, long_, messages):
    sizes = text_bytes(elf)
    a, b = quietest(short), quietest(long_)
    where = locate(elf, sorted(set(sizes) | set(a) | set(b)))
    flash, insn = collections.Counter(), collections.Counter()
    for addr, n in sizes.items():
        flash[where[addr]] += n
    for addr in set(a) | set(b):
        insn[where[addr]] += b[addr] - a[addr]
    return flash, {k: v / messages for k, v in insn.items()}


def main():
    if len(sys.argv) != 9 or sys.argv[1] != 'table':
        sys.exit(__doc__.split('\n\n')[1])
    messages = int(sys.argv[8])
    fa, ia = program(sys.argv[2], sys.argv[3], sys.argv[4], messages)
    fb, ib = program(sys.argv[5], sys.argv[6], sys.argv[7], messages)
    names = [n for n, _ in PARTS] + [OTHER]
    print('| part | flash (a) | flash (b) | (a) less (b) | instructions per message (a) | (b) | (a) less (b) |')
    print('|---|---:|---:|---:|---:|---:|---:|')
    for n in names:
        x, y = round(ia.get(n, 0)), round(ib.get(n, 0))
        print('| %s | %d | %d | %+d | %d | %d | %+d |' % (
            n, fa[n], fb[n], fa[n] - fb[n], x, y, x - y))
    ta, tb = sum(fa.values()), sum(fb.values())
    sa, sb = round(sum(ia.values())), round(sum(ib.values()))
    print('| **all** (`.text`) | %d | %d | %+d | %d | %d | %+d |' % (ta, tb, ta - tb, sa, sb, sa - sb))


if __name__ == '__main__':
    main()
