#!/usr/bin/env python3
"""Per-kernel table of a replayed decode step from a kernel_trace.cpp CSV.

    python3 step_timeline.py trace.csv [--steps 20] [--show 40]

Takes the graph replays (rows sharing a correlation id with a graph id) with the most common kernel count, the
last --steps of them, and for each kernel of the step (in graph-node order) the medians over those replays of:
  dur   its own start-to-end time (with programmatic dependent launch a kernel starts before the one before it
        ends, so durations overlap),
  inc   its end minus the previous kernel's end: the time the step's critical path spends on it.
Then the same summed by kernel name, and the step's wall time (first start to last end).
"""
import argparse
import csv
import re
import statistics
from collections import Counter, defaultdict


def short(name):
    name = name.replace("gemma4::cuda::", "").replace("(anonymous namespace)::", "")
    name = re.sub(r"\(.*$", "", name)  # drop the argument list
    name = re.sub(r"^void ", "", name)  # and the return type
    return name if len(name) <= 70 else name[:67] + "..."


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--show", type=int, default=40, help="kernels of the step listed one by one")
    a = ap.parse_args()
    launches = defaultdict(list)
    with open(a.trace) as f:
        for r in csv.DictReader(f):
            if int(r["graph"]) == 0:
                continue
            launches[int(r["correlation"])].append(r)
    if not launches:
        raise SystemExit("step_timeline: no graph replays in the trace")
    count = Counter(len(v) for v in launches.values()).most_common(1)[0][0]
    steps = [sorted(v, key=lambda r: int(r["node"])) for _, v in sorted(launches.items()) if len(v) == count]
    steps = steps[-a.steps:]
    n = count
    dur = [[] for _ in range(n)]
    inc = [[] for _ in range(n)]
    walls = []
    for s in steps:
        st = [int(r["start_ns"]) for r in s]
        en = [int(r["end_ns"]) for r in s]
        walls.append(max(en) - min(st))
        for i in range(n):
            dur[i].append(en[i] - st[i])
            inc[i].append(en[i] - (en[i - 1] if i else st[0]))
    names = [short(r["name"]) for r in steps[-1]]
    med = statistics.median
    print(f"{len(steps)} replays of {n} kernels; step wall {med(walls) / 1e3:.1f} us (median), "
          f"sum of inc {sum(med(x) for x in inc) / 1e3:.1f} us")
    print(f"{'#':>4} {'dur us':>8} {'inc us':>8}  grid        kernel")
    for i in range(min(n, a.show)):
        print(f"{i:4d} {med(dur[i]) / 1e3:8.2f} {med(inc[i]) / 1e3:8.2f}  {steps[-1][i]['grid']:<11} {names[i]}")
    by = defaultdict(lambda: [0, 0.0, 0.0])
    for i in range(n):
        b = by[names[i]]
        b[0] += 1
        b[1] += med(inc[i]) / 1e3
        b[2] += med(dur[i]) / 1e3
    print(f"\n{'count':>5} {'sum inc us':>10} {'mean inc':>8} {'mean dur':>8}  kernel")
    for k, (c, si, sd) in sorted(by.items(), key=lambda kv: -kv[1][1]):
        print(f"{c:5d} {si:10.1f} {si / c:8.2f} {sd / c:8.2f}  {k}")


if __name__ == "__main__":
    main()
