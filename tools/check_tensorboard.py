#!/usr/bin/env python3
"""Checks that TensorBoard reads the event files of `gemma4 sft` runs.

usage: check_tensorboard.py OUTPUT_DIR [OUTPUT_DIR ...]

For every OUTPUT_DIR/tb/<run>/ (train, valid) it loads the directory with TensorBoard's own
EventAccumulator and compares every scalar with OUTPUT_DIR/metrics/<run>.jsonl: the same steps (each once,
which also checks that events an interrupted run wrote after its last checkpoint are purged by the resumed
run's SessionLog START), and the same values as float32. Exits 1 on any mismatch.
"""
import json
import math
import os
import sys

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def check_run(out_dir, run):
    tb_dir = os.path.join(out_dir, "tb", run)
    jsonl = os.path.join(out_dir, "metrics", run + ".jsonl")
    if not os.path.isdir(tb_dir):
        return [f"{tb_dir}: missing"]
    records = [json.loads(line) for line in open(jsonl) if line.strip()]
    acc = EventAccumulator(tb_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    problems = []
    expected_tags = {k for r in records for k, v in r.items() if k != "step" and isinstance(v, (int, float))}
    if set(tags) != expected_tags:
        problems.append(f"{tb_dir}: tags {sorted(tags)} != jsonl keys {sorted(expected_tags)}")
    n_values = 0
    for tag in tags:
        events = acc.Scalars(tag)
        steps = [e.step for e in events]
        want = [(r["step"], r[tag]) for r in records if tag in r]
        if steps != [s for s, _ in want]:
            problems.append(f"{tb_dir}: tag {tag}: steps {steps} != jsonl steps {[s for s, _ in want]}")
            continue
        for e, (s, v) in zip(events, want):
            f32 = float(np.float32(v))
            if not (e.value == f32 or (math.isnan(e.value) and math.isnan(f32))):
                problems.append(f"{tb_dir}: tag {tag} step {s}: {e.value} != {f32}")
            n_values += 1
    print(f"{tb_dir}: {len(tags)} tags, {len(records)} steps {[r['step'] for r in records]}, "
          f"{n_values} values match {os.path.basename(jsonl)}")
    return problems


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    problems = []
    for out_dir in sys.argv[1:]:
        for run in ("train", "valid"):
            problems += check_run(out_dir, run)
    for p in problems:
        print("MISMATCH:", p)
    print("tensorboard check:", "FAILED" if problems else "OK")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
