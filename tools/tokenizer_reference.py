#!/usr/bin/env python3
"""Reference ids and decoded text from Hugging Face `tokenizers` (0.23) for the tokenizer parity tests, plus HF's
speed on GSM8K. Runs on the GPU machine (which has `tokenizers`); the outputs are committed under
tests/data/tokenizer/.

For each corpus string (tests/data/tokenizer/corpus.jsonl) and each tokenizer file it writes one JSON line:
  {"ids": encode(s, add_special_tokens=False), "ids_special": encode(s, add_special_tokens=True),
   "decoded": decode(ids, skip_special_tokens=False)   -- omitted when equal to s,
   "decoded_skip": decode(ids, skip_special_tokens=True) -- omitted when equal to "decoded"}

Speed (--gsm8k): load time of tokenizer.json (best of 3) and single-threaded encode throughput over the GSM8K
train questions and answers, one text at a time (best of 3), printed as one JSON line.

With --tiny it also writes reference_tiny_NAME.jsonl for each tests/data/tokenizer/tiny_NAME.json over
tiny_corpus.jsonl (full ids, ids_special, decoded, decoded_skip; or "error" / "load_error" when HF fails).

usage: tokenizer_reference.py --g3 G3.json --g4 G4.json [--corpus C] [--out-dir D] [--gsm8k TRAIN.jsonl] [--tiny]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer, __version__ as tokenizers_version  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BOS_ID = 2  # Gemma's <bos>, which add_special_tokens prepends


def references(tok, corpus, out_path):
    with open(out_path, "w", encoding="utf-8") as f:
        for s in corpus:
            ids = tok.encode(s, add_special_tokens=False).ids
            rec = {"ids": ids}
            ids_special = tok.encode(s, add_special_tokens=True).ids
            if ids_special != [BOS_ID] + ids:  # stored only when not <bos> + ids (keeps the files small)
                rec["ids_special"] = ids_special
            dec = tok.decode(ids, skip_special_tokens=False)
            if dec != s:
                rec["decoded"] = dec
            dec_skip = tok.decode(ids, skip_special_tokens=True)
            if dec_skip != dec:
                rec["decoded_skip"] = dec_skip
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")


def tiny_references(data_dir, out_dir):
    """Reference for each tests/data/tokenizer/tiny_*.json over tiny_corpus.jsonl; errors are recorded."""
    with open(os.path.join(data_dir, "tiny_corpus.jsonl"), encoding="utf-8") as f:
        corpus = [json.loads(line) for line in f]
    for name in sorted(os.listdir(data_dir)):
        if not (name.startswith("tiny_") and name.endswith(".json")):
            continue
        out = os.path.join(out_dir, "reference_" + name[:-5] + ".jsonl")
        with open(out, "w", encoding="utf-8") as f:
            try:
                tok = Tokenizer.from_file(os.path.join(data_dir, name))
            except BaseException as e:  # noqa: BLE001 (PanicException is a BaseException)
                f.write(json.dumps({"load_error": str(e)}) + "\n")
                continue
            for s in corpus:
                rec = {}
                try:
                    rec["ids"] = tok.encode(s, add_special_tokens=False).ids
                    rec["ids_special"] = tok.encode(s, add_special_tokens=True).ids
                    rec["decoded"] = tok.decode(rec["ids"], skip_special_tokens=False)
                    rec["decoded_skip"] = tok.decode(rec["ids"], skip_special_tokens=True)
                except BaseException as e:  # noqa: BLE001
                    rec["error"] = str(e)
                f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"{os.path.basename(out)}: {len(corpus)} strings", file=sys.stderr)


def gsm8k_texts(path):
    texts = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            texts += [rec["question"], rec["answer"]]
    return texts


def speed(path, texts):
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        tok = Tokenizer.from_file(path)
        loads.append(time.perf_counter() - t0)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    best, ntok = 1e9, 0
    for _ in range(3):
        t0 = time.perf_counter()
        ntok = 0
        for t in texts:
            ntok += len(tok.encode(t, add_special_tokens=False).ids)
        best = min(best, time.perf_counter() - t0)
    return {"who": "hf_tokenizers", "version": tokenizers_version, "file": os.path.basename(os.path.dirname(path)),
            "load_s": min(loads), "texts": len(texts), "bytes": nbytes, "tokens": ntok, "encode_s": best,
            "MB_per_s": nbytes / best / 1e6, "tokens_per_s": ntok / best}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--g3", required=True)
    ap.add_argument("--g4", required=True)
    ap.add_argument("--corpus", default=os.path.join(ROOT, "tests/data/tokenizer/corpus.jsonl"))
    ap.add_argument("--out-dir", default=None, help="write reference_gemma3/4.jsonl here")
    ap.add_argument("--gsm8k", default=None)
    ap.add_argument("--tiny", action="store_true", help="also write reference_tiny_*.jsonl into --out-dir")
    args = ap.parse_args()
    if args.tiny:
        tiny_references(os.path.join(ROOT, "tests/data/tokenizer"), args.out_dir)
    if args.out_dir:
        with open(args.corpus, encoding="utf-8") as f:
            corpus = [json.loads(line) for line in f]
        for name, path in (("gemma3", args.g3), ("gemma4", args.g4)):
            references(Tokenizer.from_file(path), corpus, os.path.join(args.out_dir, f"reference_{name}.jsonl"))
            print(f"reference_{name}.jsonl: {len(corpus)} strings", file=sys.stderr)
    if args.gsm8k:
        print(json.dumps(speed(args.g3, gsm8k_texts(args.gsm8k))), flush=True)


if __name__ == "__main__":
    main()
