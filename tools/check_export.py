#!/usr/bin/env python3
"""Checks that an HF export of `gemma4 sft` (OUTPUT_DIR/hf) loads in transformers with our logits.

usage: check_export.py HF_DIR INPUTS.safetensors LOGITS.safetensors

INPUTS holds input_ids (I64 [T]); LOGITS holds `logits` (F32 [T, V]) written by
`gemma4 forward --model HF_DIR --inputs INPUTS --out LOGITS`. The model class comes from config.json's
architectures; it is loaded in float32 with eager attention on the CPU. Passes when max |logit difference|
<= 1e-3 and the argmax agrees at every position (the project's fp32 tolerance). Exits 1 otherwise.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    hf_dir, inputs, logits_path = sys.argv[1:]
    cfg = json.load(open(os.path.join(hf_dir, "config.json")))
    arch = cfg["architectures"][0]
    cls = getattr(transformers, arch)
    model, info = cls.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager",
                                      output_loading_info=True)
    model.eval()
    bad_keys = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad_keys:
        print(f"{hf_dir}: loading info: {bad_keys}")
    ids = load_file(inputs)["input_ids"].reshape(1, -1).long()
    ours = load_file(logits_path)["logits"].float()
    with torch.no_grad():
        theirs = model(input_ids=ids).logits[0].float()
    diff = (theirs - ours).abs().max().item()
    same_argmax = bool((theirs.argmax(-1) == ours.argmax(-1)).all())
    spread = ours.std().item()
    print(f"{hf_dir}: {arch}, {sum(p.numel() for p in model.parameters())} parameters, T={ids.shape[1]}, "
          f"max |logit diff| {diff:.3e}, argmax equal {same_argmax}, logit std {spread:.3f}")
    ok = diff <= 1e-3 and same_argmax and spread > 1e-3 and not bad_keys
    print("export check:", "OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
