#!/usr/bin/env python3
"""Gradient references for issue 5: loss and per-parameter gradients from PyTorch autograd on the HF model.

Runs where transformers 5.17 + torch are installed (the GPU machine; computed on CPU in float64, eager
attention: the reference is the exact gradient, so the test measures our fp32 error alone, not the sum of two
fp32 errors). For each fp32 fixture in tests/fixtures, a text-only example (ids, target mask) is drawn with a
fixed seed; loss = cross-entropy summed over target tokens (row t-1 predicts ids[t] where mask[t] = 1), the
objective of `gemma4 sft` before its division by the step's target count. Writes
tests/fixtures/<name>/grad_reference.safetensors with `ids` I64 [T], `target` U8 [T], `loss` F64 [1] and
`grad.<stored parameter name>` F32 for every text parameter (tied lm_head folded into embed_tokens).

    python3 tools/grad_reference.py --fixtures tests/fixtures --out OUTDIR
"""
import argparse
import json
import os

import torch
import transformers
from safetensors.torch import save_file

CLASSES = {
    "Gemma4UnifiedForConditionalGeneration": "Gemma4UnifiedForConditionalGeneration",
    "Gemma4UnifiedForCausalLM": "Gemma4UnifiedForCausalLM",
    "Gemma4ForConditionalGeneration": "Gemma4ForConditionalGeneration",
    "Gemma4ForCausalLM": "Gemma4ForCausalLM",
}
FIXTURES = ["unified_f32", "unified_text_causal", "gemma4_ple_f32", "gemma4_moe_f32"]
MEDIA_KEYS = ("image_token_id", "audio_token_id", "video_token_id", "boi_token_id", "eoi_token_id",
              "boa_token_id", "eoa_token_id", "eoa_token_index")


def load(path, dtype):
    cfg = json.load(open(os.path.join(path, "config.json")))
    cls = getattr(transformers, CLASSES[cfg["architectures"][0]])
    kw = dict(dtype=dtype, attn_implementation="eager")
    try:
        m = cls.from_pretrained(path, experts_implementation="eager", **kw)
    except Exception:
        m = cls.from_pretrained(path, **kw)
    return m.eval(), cfg


def example(cfg, model, seed):
    vocab = model.config.get_text_config().vocab_size
    banned = {cfg[k] for k in MEDIA_KEYS if isinstance(cfg.get(k), int)}
    g = torch.Generator().manual_seed(seed)
    ids = []
    while len(ids) < 24:
        t = int(torch.randint(3, vocab, (1,), generator=g))
        if t not in banned:
            ids.append(t)
    ids[0] = 2  # bos
    target = [0] * 8 + [1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1]
    return torch.tensor(ids), torch.tensor(target, dtype=torch.uint8)


def stored_name(name, layout_prefix):
    return name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    a = ap.parse_args()
    torch.manual_seed(0)
    for i, name in enumerate(FIXTURES):
        path = os.path.join(a.fixtures, name)
        model, cfg = load(path, getattr(torch, a.dtype))
        ids, target = example(cfg, model, 1000 + i)
        model.zero_grad()
        logits = model(input_ids=ids[None], use_cache=False).logits[0]
        logp = torch.log_softmax(logits[:-1], dim=-1)
        picked = logp.gather(1, ids[1:, None])[:, 0]
        loss = -(picked * target[1:].to(picked.dtype)).sum()
        loss.backward()
        out = {"ids": ids.to(torch.int64), "target": target, "loss": loss.detach().double().reshape(1)}
        n = 0
        for pname, p in model.named_parameters():
            if p.grad is None:
                continue
            if any(s in pname for s in ("vision", "audio", "embed_vision", "embed_audio")):
                continue
            out["grad." + pname] = p.grad.detach().float().contiguous()
            n += 1
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
        save_file(out, os.path.join(a.out, name, "grad_reference.safetensors"))
        print(f"{name}: loss {loss.item():.6f}, {n} parameter gradients, targets {int(target[1:].sum())}", flush=True)


if __name__ == "__main__":
    main()
