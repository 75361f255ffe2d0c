#!/usr/bin/env python3
"""Writes the bundled demo model's small tokenizer, in Hugging Face `tokenizers` format, plus its
tokenizer_config.json and chat_template.jinja (a short Gemma-4-style template).

The tokenizer has the shape of Gemma's (spec §5.1): a BPE model with byte_fallback, normalizer Replace " " -> "▁",
pre-tokenizer Split " " MergedWithPrevious (a no-op after the normalizer, as in Gemma's file), decoder
Replace "▁" -> " ", ByteFallback, Fuse. Vocabulary (ids in this order):
  <pad>=0 <eos>=1 <bos>=2 <unk>=3 <mask>=4, the Gemma 4 chat/tool/media tokens (<|turn>, <turn|>, ...) as added
  special tokens, the 256 byte-fallback tokens <0x00>..<0xFF>, "\\n", "▁", the printable ASCII characters, then
  merges learned (deterministically) from the arithmetic dataset's sentence templates. Digits are never merged,
  so every number is spelled digit by digit, which keeps the arithmetic learnable. Any text round-trips (byte
  fallback covers everything outside the base alphabet).

Usage: python3 tools/make_demo_tokenizer.py OUT_DIR [--vocab-size N]
"""
import argparse
import collections
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_arith_data  # noqa: E402  (sentence templates: the merge-learning corpus)

SPACE = "\u2581"
BASE_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
# Gemma 4 special tokens (spec §5.2), at small ids here.
GEMMA4_SPECIAL = [
    "<|tool>", "<tool|>", "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>", '<|"|>',
    "<|think|>", "<|channel>", "<channel|>", "<|turn>", "<turn|>",
    "<|image>", "<|audio>", "<|image|>", "<|audio|>", "<image|>", "<audio|>", "<|video|>",
]

CHAT_TEMPLATE = """{{ bos_token }}
{%- for message in messages -%}
    {%- if message['role'] == 'assistant' -%}
        {%- set role = 'model' -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<|turn>' + role + '\\n' }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- else -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {{ '<turn|>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<|turn>model\\n' }}
{%- endif -%}
"""


def corpus_texts(seed=7, n=20000):
    """Texts of the kind the model sees: every template with random operands, the answers, the role names."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, op, b = make_arith_data.random_problem(rng)
        out.append(make_arith_data.question(a, op, b, rng))
        out.append(make_arith_data.answer(a, op, b))
    for tmpls in make_arith_data.TEMPLATES.values():
        for t in tmpls:
            out.append(t.format(a=1, b=2))
    out += ["user", "model", "system"] * 100
    return out


def split_words(text):
    """Normalized text split where merges never cross: before each '▁', around '\\n' and around digits."""
    s = text.replace(" ", SPACE)
    words, cur = [], ""
    for ch in s:
        if ch == SPACE or ch == "\n" or ch.isdigit() or (cur and (cur[-1].isdigit() or cur[-1] == "\n")):
            if cur:
                words.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


def learn_merges(texts, max_merges):
    freq = collections.Counter()
    for t in texts:
        for w in split_words(t):
            if not any(c.isdigit() or c == "\n" for c in w):
                freq[tuple(w)] += 1
    words = {w: n for w, n in freq.items() if len(w) > 1}
    merges = []
    while len(merges) < max_merges:
        pairs = collections.Counter()
        for w, n in words.items():
            for i in range(len(w) - 1):
                pairs[(w[i], w[i + 1])] += n
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], [-ord(c) for c in kv[0][0] + "\0" + kv[0][1]]))
        (l, r), n = best
        if n < 2:
            break
        merges.append((l, r))
        new_words = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == l and w[i + 1] == r:
                    out.append(l + r)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


def build(vocab_size):
    tokens = list(BASE_SPECIAL) + list(GEMMA4_SPECIAL)
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    tokens += ["\n", SPACE] + [chr(c) for c in range(0x21, 0x7F)]
    budget = vocab_size - len(tokens)
    if budget < 0:
        raise SystemExit(f"--vocab-size must be at least {len(tokens)}")
    merges = learn_merges(corpus_texts(), budget)
    for l, r in merges:
        tokens.append(l + r)
    n_unused = vocab_size - len(tokens)
    tokens += [f"<unused{i}>" for i in range(n_unused)]  # pads the table to vocab_size (never produced)
    assert len(set(tokens)) == len(tokens), "duplicate token"
    vocab = {t: i for i, t in enumerate(tokens)}

    special_ids = set(range(len(BASE_SPECIAL) + len(GEMMA4_SPECIAL)))
    added = []
    for i, t in enumerate(tokens):
        if i in special_ids or t.startswith("<unused"):
            added.append({"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": t != "<mask>" and not t.startswith("<unused")})
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        "pre_tokenizer": {"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious",
                          "invert": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<bos>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<bos>": {"id": "<bos>", "ids": [2], "tokens": ["<bos>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [[l, r] for l, r in merges]},
    }
    config = {
        "add_bos_token": False,  # the chat template writes <bos> (an -it tokenizer, spec §5.4)
        "add_eos_token": False,
        "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added},
        "bos_token": "<bos>",
        "eos_token": "<eos>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1024,
        "padding_side": "left",
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "extra_special_tokens": {"sot_token": "<|turn>", "eot_token": "<turn|>", "image_token": "<|image|>",
                                 "audio_token": "<|audio|>", "boi_token": "<|image>", "eoi_token": "<image|>",
                                 "boa_token": "<|audio>", "eoa_token": "<audio|>"},
    }
    return tok, config, merges


def encode(tok, text):
    """Reference encoder for this file (no added tokens in `text`): normalizer + BPE by merge rank + byte
    fallback. Used for the summary printed below."""
    vocab = tok["model"]["vocab"]
    ranks = {(l, r): i for i, (l, r) in enumerate(tok["model"]["merges"])}
    sym = list(text.replace(" ", SPACE))
    while True:
        best = None
        for i in range(len(sym) - 1):
            r = ranks.get((sym[i], sym[i + 1]))
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        sym[i:i + 2] = [sym[i] + sym[i + 1]]
    ids = []
    for s in sym:
        if s in vocab:
            ids.append(vocab[s])
        else:
            ids += [vocab[f"<0x{b:02X}>"] for b in s.encode("utf-8")]
    return ids


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir")
    ap.add_argument("--vocab-size", type=int, default=512)
    args = ap.parse_args(argv)
    tok, config, merges = build(args.vocab_size)
    os.makedirs(args.out_dir, exist_ok=True)
    write_json(os.path.join(args.out_dir, "tokenizer.json"), tok)
    write_json(os.path.join(args.out_dir, "tokenizer_config.json"), config)
    with open(os.path.join(args.out_dir, "chat_template.jinja"), "w", encoding="utf-8") as f:
        f.write(CHAT_TEMPLATE)
    v = tok["model"]["vocab"]
    sample = "What is the sum of 123 and 456?"
    ids = encode(tok, sample)
    print(f"wrote {args.out_dir}: vocab {len(v)}, {len(merges)} merges, <|turn>={v['<|turn>']} "
          f"<turn|>={v['<turn|>']}; {sample!r} -> {len(ids)} tokens "
          f"{[next(k for k, i in v.items() if i == t) for t in ids]}")


if __name__ == "__main__":
    main(sys.argv[1:])
