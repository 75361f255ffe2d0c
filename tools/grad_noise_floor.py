#!/usr/bin/env python3
"""How close can fp32 autograd get to the exact gradient on each fixture? Compares two grad_reference.py
outputs (e.g. --dtype float64 and --dtype float32, both PyTorch on the HF model) and prints, per fixture, the
worst per-parameter relative L2 error of the second against the first and the loss difference. This is the
fp32 noise floor the C++ gradients (tests/train/test_grad_parity.cpp) are judged against.

    python3 tools/grad_noise_floor.py EXACT_DIR FP32_DIR
"""
import os
import sys

from safetensors.torch import load_file


def main():
    exact_dir, f32_dir = sys.argv[1:3]
    for name in sorted(os.listdir(exact_dir)):
        a = os.path.join(exact_dir, name, "grad_reference.safetensors")
        b = os.path.join(f32_dir, name, "grad_reference.safetensors")
        if not (os.path.exists(a) and os.path.exists(b)):
            continue
        ea, eb = load_file(a), load_file(b)
        worst, worst_name = 0.0, ""
        for k, ga in ea.items():
            if not k.startswith("grad."):
                continue
            ga, gb = ga.double(), eb[k].double()
            rel = ((gb - ga).norm() / ga.norm().clamp_min(1e-30)).item()
            if rel > worst:
                worst, worst_name = rel, k[5:]
        la, lb = ea["loss"].item(), eb["loss"].item()
        print(f"{name}: PyTorch fp32 vs float64: worst gradient relative L2 error {worst:.2e} ({worst_name}); "
              f"loss relative difference {abs(lb - la) / abs(la):.1e}")


if __name__ == "__main__":
    main()
