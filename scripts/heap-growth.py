#!/usr/bin/env python3
"""What a process's live heap gained between two moments, by allocation stack, from a heaptrack
recording (heaptrack 1.4; the binary built with feature `system-allocator`, since heaptrack
sees only malloc):

  heaptrack -o /tmp/h target/heap-stats/release/alcor-scale run …   # writes /tmp/h.zst
  zstdcat /tmp/h.zst | scripts/heap-growth.py 120 470 [TOP]

Prints the live heap at both times (seconds since start) and the TOP stacks (default 5) whose
live bytes grew most between them, innermost frame first, inlined frames included. Written by
hand because heaptrack_print reports leaks and peaks but not the live heap at a given time, and
its massif export (-M) carried no allocation tree here; heaptrack_gui can, but needs a display.

Reads heaptrack's interpreted format line by line: `s` strings, `i` instruction pointers with
their (function, file, line) frames, `t` traces (ip, parent), `a` allocation infos (size,
trace), `+`/`-` an allocation / free of an info, `c` the clock in ms.
"""
import collections
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    t1, t2 = float(sys.argv[1]) * 1000, float(sys.argv[2]) * 1000
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    strings, ips, traces, infos = [None], [None], [None], []
    live = collections.Counter()
    snaps, due = {}, sorted([t1, t2])
    for ln in sys.stdin:
        c = ln[0]
        if c == '+':
            live[int(ln[2:], 16)] += 1
        elif c == '-':
            live[int(ln[2:], 16)] -= 1
        elif c == 'c':
            now = int(ln[2:], 16)
            while due and now >= due[0]:
                snaps[due.pop(0)] = (now, collections.Counter(live))
        elif c == 'a':
            _, size, trace = ln.split()
            infos.append((int(size, 16), int(trace, 16)))
        elif c == 't':
            _, ip, parent = ln.split()
            traces.append((int(ip, 16), int(parent, 16)))
        elif c == 'i':
            f = ln.split()[3:]
            ips.append([tuple(int(x, 16) for x in f[i:i + 3]) for i in range(0, len(f) - 2, 3)])
        elif c == 's':
            rest = ln[2:].rstrip('\n')
            strings.append(rest.split(' ', 1)[1] if ' ' in rest else '')
    if len(snaps) < 2:
        sys.exit(f"the recording ends before {max(t1, t2) / 1000:.0f} s")
    (at1, a), (at2, b) = snaps[t1], snaps[t2]

    def total(counts):
        return sum(infos[i][0] * n for i, n in counts.items())

    growth = collections.Counter()
    for i in set(a) | set(b):
        if b[i] != a[i]:
            size, trace = infos[i]
            growth[trace] += size * (b[i] - a[i])

    def frames(trace):
        while trace:
            ip, trace = traces[trace]
            for fn, fi, line in ips[ip]:
                yield f"{strings[fn][:110]}  {strings[fi].rsplit('/', 1)[-1] if fi else '?'}:{line}"

    print(f"live heap: {total(a) / 1e6:.1f} MB at {at1 / 1000:.0f} s, {total(b) / 1e6:.1f} MB at {at2 / 1000:.0f} s")
    for trace, grew in growth.most_common(top):
        print(f"\n{grew / 1e6:+.2f} MB")
        for i, f in enumerate(frames(trace)):
            if i == 40:
                print("    …")
                break
            print("   ", f)


if __name__ == '__main__':
    main()
