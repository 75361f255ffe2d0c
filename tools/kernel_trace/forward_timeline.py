#!/usr/bin/env python3
"""Per-kernel breakdown of eagerly launched forwards (a prefill) from a kernel_trace.cpp CSV.

    python3 forward_timeline.py trace.csv [--last 3] [--top 30]

A forward is the run of kernels launched outside CUDA graphs from one `embedding_kernel` to the next
`softcap_kernel` (the tied LM head's last op). Of the --last such forwards (those with the most kernels, i.e. the
longest prompt) it prints per forward the wall time (first start to last end), the time with a kernel running
and the idle time, and then, summed by kernel name and taken as the median over those forwards:
  busy  the kernel's own start-to-end time, counting overlap with the kernel before it once (its end minus
        max(its start, the previous kernel's end)),
  idle  the gaps before it with nothing running (its start minus the previous kernel's end, when positive).
"""
import argparse
import csv
import statistics
from collections import defaultdict

from step_timeline import short


def forwards(rows):
    """Runs of non-graph kernels from an embedding_kernel to the next softcap_kernel."""
    out, cur = [], None
    for r in rows:
        name = r["name"]
        if "embedding_kernel" in name:
            cur = [r]
        elif cur is not None:
            cur.append(r)
            if "softcap_kernel" in name:
                out.append(cur)
                cur = None
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("trace")
    ap.add_argument("--last", type=int, default=3, help="forwards summarised (the last of the longest)")
    ap.add_argument("--top", type=int, default=30, help="kernel names listed")
    a = ap.parse_args()
    with open(a.trace) as f:
        rows = [r for r in csv.DictReader(f) if int(r["graph"]) == 0]
    rows.sort(key=lambda r: int(r["start_ns"]))
    fws = forwards(rows)
    if not fws:
        raise SystemExit("forward_timeline: no embedding_kernel ... softcap_kernel run in the trace")
    most = max(len(f) for f in fws)
    fws = [f for f in fws if len(f) == most][-a.last:]
    per_name = defaultdict(lambda: [[0.0] * len(fws), [0.0] * len(fws), 0])
    for j, fw in enumerate(fws):
        prev_end = int(fw[0]["start_ns"])
        busy_all = idle_all = 0
        for r in fw:
            s, e = int(r["start_ns"]), int(r["end_ns"])
            busy = max(0, e - max(s, prev_end))
            idle = max(0, s - prev_end)
            p = per_name[short(r["name"])]
            p[0][j] += busy / 1e3
            p[1][j] += idle / 1e3
            if j == 0:
                p[2] += 1
            busy_all += busy
            idle_all += idle
            prev_end = max(prev_end, e)
        wall = prev_end - int(fw[0]["start_ns"])
        print(f"forward {j}: {len(fw)} kernels, wall {wall / 1e6:.2f} ms, busy {busy_all / 1e6:.2f} ms, "
              f"idle {idle_all / 1e6:.2f} ms")
    med = statistics.median
    items = sorted(per_name.items(), key=lambda kv: -med(kv[1][0]))
    print(f"\n{'count':>5} {'busy ms':>8} {'idle ms':>8} {'us each':>8}  kernel")
    for k, (b, i, c) in items[:a.top]:
        print(f"{c:5d} {med(b) / 1e3:8.3f} {med(i) / 1e3:8.3f} {med(b) / max(c, 1):8.1f}  {k}")
    rest = items[a.top:]
    if rest:
        print(f"{sum(c for _, (_, _, c) in rest):5d} {sum(med(b) for _, (b, _, _) in rest) / 1e3:8.3f} "
              f"{sum(med(i) for _, (_, i, _) in rest) / 1e3:8.3f} {'':8}  ({len(rest)} other kernels)")


if __name__ == "__main__":
    main()
