#!/usr/bin/env python3
"""Hugging Face transformers on the same random 12B config as bench_cuda, and the comparison table.

    python3 tools/bench_hf.py --config CONFIG.json [--ours OURS.json] [--json OUT.json]
                              [--prefill 512,4096] [--contexts 512,4096,32768] [--decode N] [--chunk 4096]
                              [--batches 8,32]

CONFIG.json is `gemma4 arch show 12b` (its text_config builds Gemma4UnifiedForCausalLM, random bf16 weights
made on the GPU, sdpa attention). Measures prefill tok/s (one forward, logits of the last position only),
batch-1 decode tok/s at each context (the cache filled by a chunked prefill, then greedy steps with the
DynamicCache, median step), batched decode throughput (B prompts of 512 tokens, B tokens per step) and the
peak of torch.cuda.max_memory_allocated. With --ours (bench_cuda --json)
it prints the table: our figures, HF's, ours/HF, and ours against the bandwidth roofline.
"""
import argparse
import json
import statistics
import time

import torch


def parse_list(s):
    return [int(x) for x in s.split(",") if x]


def build(config_path):
    import transformers

    cfg = json.load(open(config_path))
    text = cfg.get("text_config", cfg)
    tc = transformers.Gemma4UnifiedTextConfig(**{k: v for k, v in text.items() if k not in ("model_type",)})
    tc._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = transformers.Gemma4UnifiedForCausalLM._from_config(tc, dtype=torch.bfloat16)
    return model.eval(), tc


def ids_of(T, salt, vocab):
    return torch.tensor([[((i + salt) * 7919 + 13) % vocab for i in range(T)]], device="cuda")


def decode_step_time(model, cache, out, steps):
    """Median seconds of one greedy decode step (every sequence of the batch advances one token)."""
    nxt = out.logits[:, -1:].argmax(-1)
    times = []
    for _ in range(steps):
        torch.cuda.synchronize()
        b = time.time()
        out = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        nxt = out.logits[:, -1:].argmax(-1)
        torch.cuda.synchronize()
        times.append(time.time() - b)
    return statistics.median(times)


@torch.no_grad()
def measure(args):
    t0 = time.time()
    model, tc = build(args.config)
    torch.cuda.synchronize()
    res = {"gpu": torch.cuda.get_device_name(), "hf_build_s": round(time.time() - t0, 1),
           "weight_gb": sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9}
    V = tc.vocab_size
    model(input_ids=ids_of(600, 1, V), use_cache=False, logits_to_keep=1)  # warm-up
    for T in parse_list(args.prefill):
        times = []
        for rep in range(3):
            ids = ids_of(T, rep, V)
            torch.cuda.synchronize()
            a = time.time()
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            torch.cuda.synchronize()
            times.append(time.time() - a)
        res[f"prefill_{T}_tok_s"] = T / sorted(times)[1]
        print(f"HF prefill {T}: {res[f'prefill_{T}_tok_s']:.1f} tok/s", flush=True)
    for C in parse_list(args.contexts):
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            from transformers import DynamicCache

            cache = DynamicCache(config=tc)
            a = time.time()
            out = None
            for p in range(0, C, args.chunk):
                ids = ids_of(min(args.chunk, C - p), p, V)
                out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            torch.cuda.synchronize()
            fill = time.time() - a
            res[f"decode_ctx{C}_tok_s"] = 1.0 / decode_step_time(model, cache, out, args.decode)
            res[f"prefill_chunked_{C}_tok_s"] = C / fill
            res[f"peak_gb_ctx{C}"] = torch.cuda.max_memory_allocated() / 1e9
            print(f"HF decode ctx {C}: {res[f'decode_ctx{C}_tok_s']:.2f} tok/s, peak {res[f'peak_gb_ctx{C}']:.1f} GB",
                  flush=True)
            del cache, out
        except torch.OutOfMemoryError as e:
            print(f"HF decode ctx {C}: out of memory ({str(e).splitlines()[0]})", flush=True)
            torch.cuda.empty_cache()
    for B in parse_list(args.batches):
        try:
            torch.cuda.empty_cache()
            from transformers import DynamicCache

            cache = DynamicCache(config=tc)
            ids = torch.cat([ids_of(512, 1000 * b, V) for b in range(B)])  # equal lengths: no padding needed
            out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
            res[f"decode_batch{B}_tok_s"] = B / decode_step_time(model, cache, out, args.decode)
            print(f"HF decode batch {B}: {res[f'decode_batch{B}_tok_s']:.1f} tok/s", flush=True)
            del cache, out
        except torch.OutOfMemoryError as e:
            print(f"HF decode batch {B}: out of memory ({str(e).splitlines()[0]})", flush=True)
            torch.cuda.empty_cache()
    return res


def table(ours, hf, args):
    roof = ours["roofline_tok_s"]
    print()
    print(f"GPU: {ours['gpu']}; copy bandwidth {ours['copy_bandwidth_gbs']:.0f} GB/s; {ours['weight_gb']:.2f} GB of "
          f"bf16 weights -> roofline {roof:.1f} tok/s; gemma4 precision {ours['precision']}")
    print(f"{'figure':<30} {'gemma4':>10} {'HF 5.17':>10} {'gemma4/HF':>10} {'of roofline':>12}")

    def row(name, key, unit_roof=False, fmt="{:.1f}"):
        o, h = ours.get(key), hf.get(key)
        ratio = f"{o / h:.1f}x" if o and h else "-"
        rl = f"{100 * o / roof:.1f}%" if unit_roof and o else "-"
        print(f"{name:<30} {fmt.format(o) if o else 'n/a':>10} {fmt.format(h) if h else 'n/a':>10} {ratio:>10} {rl:>12}")

    for T in parse_list(args.prefill):
        row(f"prefill {T} (tok/s)", f"prefill_{T}_tok_s", fmt="{:.0f}")
    for C in parse_list(args.contexts):
        row(f"decode b=1 ctx {C} (tok/s)", f"decode_ctx{C}_tok_s", unit_roof=True, fmt="{:.2f}")
    for B in parse_list(args.batches):
        row(f"decode batch {B} ctx 512 (tok/s)", f"decode_batch{B}_tok_s", fmt="{:.1f}")
    for C in parse_list(args.contexts):
        row(f"peak GPU GB, ctx {C}", f"peak_gb_ctx{C}", fmt="{:.1f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--ours")
    ap.add_argument("--json")
    ap.add_argument("--prefill", default="512,4096")
    ap.add_argument("--contexts", default="512,4096,32768")
    ap.add_argument("--decode", type=int, default=16)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--batches", default="8,32")
    args = ap.parse_args()
    hf = measure(args)
    if args.json:
        json.dump(hf, open(args.json, "w"), indent=1)
    if args.ours:
        table(json.load(open(args.ours)), hf, args)


if __name__ == "__main__":
    main()
