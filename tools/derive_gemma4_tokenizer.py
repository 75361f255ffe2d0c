#!/usr/bin/env python3
"""Derives a Gemma-4-style tokenizer.json from the Gemma 3 one (python3 stdlib only).

Gemma 4 reuses the 262,144-token Gemma 3 vocabulary and puts its own special tokens at ids that Gemma 3 reserves
(docs/gemma4-architecture.md §5.2). Each of those ids is renamed in BOTH model.vocab and added_tokens (HF assigns
an added token the model id of its content, so renaming only added_tokens would give it a new id) and marked
special. Gemma 3's <image_soft_token> (id 262144, beyond the 262,144-row embedding) is dropped: Gemma 4 uses
<|image|> as its image soft token.

usage: derive_gemma4_tokenizer.py GEMMA3_TOKENIZER_JSON OUT_JSON
"""
import json
import sys

GEMMA4_SPECIAL = {
    46: "<|tool>", 47: "<tool|>", 48: "<|tool_call>", 49: "<tool_call|>", 50: "<|tool_response>",
    51: "<tool_response|>", 52: '<|"|>', 98: "<|think|>", 100: "<|channel>", 101: "<channel|>",
    105: "<|turn>", 106: "<turn|>", 255999: "<|image>", 256000: "<|audio>", 258880: "<|image|>",
    258881: "<|audio|>", 258882: "<image|>", 258883: "<audio|>", 258884: "<|video|>",
}
DROPPED = {"<image_soft_token>"}


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src, encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    by_id = {i: s for s, i in vocab.items()}
    renamed = {}
    for i, new in GEMMA4_SPECIAL.items():
        old = by_id[i]
        if new in vocab:
            sys.exit(f"derive: {new!r} already in the vocabulary")
        renamed[old] = new
    # Rebuild the vocab in the same (id) order with the new names.
    tok["model"]["vocab"] = {renamed.get(s, s): i for s, i in sorted(vocab.items(), key=lambda kv: kv[1])}
    for a, b in (m.split(" ") if isinstance(m, str) else m for m in tok["model"]["merges"]):
        if a in renamed or b in renamed or a + b in renamed:
            sys.exit(f"derive: merge ({a!r}, {b!r}) uses a renamed token")
    added = []
    seen = set()
    for t in tok["added_tokens"]:
        if t["content"] in DROPPED:
            continue
        if t["id"] in GEMMA4_SPECIAL:
            t = dict(t, content=GEMMA4_SPECIAL[t["id"]], special=True)
        seen.add(t["id"])
        added.append(t)
    for i, name in GEMMA4_SPECIAL.items():  # reserved ids that Gemma 3 did not list as added tokens
        if i not in seen:
            added.append({"id": i, "content": name, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True})
    tok["added_tokens"] = sorted(added, key=lambda t: t["id"])
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
