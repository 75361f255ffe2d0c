#!/usr/bin/env python3
"""Small synthetic tokenizer.json files that exercise what the Gemma files do not: added-token flags
(single_word, lstrip, rstrip, normalized), Prepend / Metaspace / Split behaviors, Strip and Metaspace decoders,
legacy "a b" merges, unk with and without fuse_unk, continuing_subword_prefix, end_of_word_suffix, ignore_merges.
Their reference ids come from HF `tokenizers` (tools/tokenizer_reference.py --tiny).

Writes tests/data/tokenizer/tiny_*.json and tests/data/tokenizer/tiny_corpus.jsonl (python3 stdlib only).
"""
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests/data/tokenizer")
M = "\u2581"


def bpe(vocab_words, merges, **opts):
    """A BPE model: every character of every word and merge result gets an id, in order."""
    vocab = {}
    for w in vocab_words:
        vocab.setdefault(w, len(vocab))
    for a, b in merges:
        for t in (a, b, a + b):
            vocab.setdefault(t, len(vocab))
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
             "vocab": vocab, "merges": [[a, b] for a, b in merges]}
    model.update(opts)
    return model


def added(id_, content, special=False, single_word=False, lstrip=False, rstrip=False, normalized=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def tokenizer(model, added_tokens=(), normalizer=None, pre_tokenizer=None, post_processor=None, decoder=None):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": list(added_tokens),
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


LETTERS = list("abcdefghijklmnopqrstuvwxyz") + [M, " ", "-", ",", ".", "!", "?", "<", ">", "/"]
BYTES = ["<0x%02X>" % b for b in range(256)]
MERGES = [("h", "e"), ("l", "l"), ("he", "ll"), ("hell", "o"), (M, "hello"), ("w", "o"), ("r", "l"), ("wo", "rl"),
          ("worl", "d"), (M, "world"), ("a", "b"), (M, "a"), ("x", "y"), ("xy", "z"), (M, M)]


def flags():
    # Llama-style: Prepend + Replace normalizer, byte fallback, legacy "a b" merges, Strip decoder.
    model = bpe(["<unk>"] + BYTES + LETTERS, MERGES, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    model["merges"] = [f"{a} {b}" for a, b in MERGES]
    n = len(model["vocab"])
    toks = [added(0, "<unk>", special=True), added(n, "<sw>", single_word=True), added(n + 1, "<ls>", lstrip=True),
            added(n + 2, "<rs>", rstrip=True), added(n + 3, "<both>", lstrip=True, rstrip=True, special=True),
            added(n + 4, "[norm] x", normalized=True), added(n + 5, "<sp>", special=True),
            added(n + 6, "hello", normalized=True), added(n + 7, "<sp>x", special=False)]
    return tokenizer(
        model, toks,
        normalizer={"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": M},
                                                         {"type": "Replace", "pattern": {"String": " "}, "content": M}]},
        post_processor={"type": "TemplateProcessing",
                        "single": [{"SpecialToken": {"id": "<sp>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                   {"SpecialToken": {"id": "<both>", "type_id": 0}}],
                        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                        "special_tokens": {"<sp>": {"id": "<sp>", "ids": [n + 5], "tokens": ["<sp>"]},
                                           "<both>": {"id": "<both>", "ids": [n + 3], "tokens": ["<both>"]}}},
        decoder={"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": M}, "content": " "},
                                                  {"type": "ByteFallback"}, {"type": "Fuse"},
                                                  {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})


def metaspace():
    # Metaspace pre-tokenizer and decoder, unk without fusing, no byte fallback.
    model = bpe(["<unk>"] + LETTERS, MERGES, unk_token="<unk>", fuse_unk=False)
    return tokenizer(model, [added(0, "<unk>", special=True), added(len(model["vocab"]), "<x>", special=True)],
                     pre_tokenizer={"type": "Metaspace", "replacement": M, "prepend_scheme": "first", "split": True},
                     decoder={"type": "Metaspace", "replacement": M, "prepend_scheme": "first", "split": True})


def splits():
    # Split behaviors (and invert) chained in a Sequence; continuing_subword_prefix; a Strip decoder.
    # Its merge ("ab", "##c") needs "abc" in the vocabulary, which it lacks: HF refuses to load this file, and the
    # test checks that we refuse it too (Split behaviors are tested on HF's documented example instead).
    words = ["a", "b", "c", "-", ",", ".", "!", "?", " ", "x", "##a", "##b", "##c", "##x", "##-", "##,", "##.",
             "##!", "##?", "## "]
    merges = [("a", "##b"), ("ab", "##c"), ("x", "##x"), ("##a", "##b")]
    model = bpe(words, merges, continuing_subword_prefix="##")
    pre = [{"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": False},
           {"type": "Split", "pattern": {"String": ","}, "behavior": "Removed", "invert": False},
           {"type": "Split", "pattern": {"String": "."}, "behavior": "MergedWithNext", "invert": False},
           {"type": "Split", "pattern": {"String": "!"}, "behavior": "Contiguous", "invert": False},
           {"type": "Split", "pattern": {"String": "?"}, "behavior": "MergedWithPrevious", "invert": False},
           {"type": "Split", "pattern": {"String": "x"}, "behavior": "Isolated", "invert": True}]
    return tokenizer(model, [], pre_tokenizer={"type": "Sequence", "pretokenizers": pre},
                     decoder={"type": "Strip", "content": "a", "start": 2, "stop": 0})


def suffix():
    # end_of_word_suffix and ignore_merges; no decoder (tokens joined by spaces).
    words = ["a", "b", "c", "a</w>", "b</w>", "c</w>", "abc</w>", " </w>", " "]
    merges = [("a", "b"), ("ab", "c</w>"), ("b", "c</w>")]
    model = bpe(words, merges, end_of_word_suffix="</w>", ignore_merges=True)
    return tokenizer(model, [], pre_tokenizer={"type": "Split", "pattern": {"String": " "}, "behavior": "Removed",
                                               "invert": False})


CORPUS = [
    "", "hello", "hello world", " hello  world ", "<sw>", "a<sw>b", "a <sw> b", "é<sw>", "<sw>é", "_<sw>", "1<sw>2",
    "x <ls>", "x   <ls>y", "<ls>", "  <ls>  ", "<rs>   x", "x<rs>", "<rs>\t\n y", "a  <both>  b", " <both> <both> ",
    "[norm] x", "a [norm] x b", "[norm]  x", "hello<sp>x", "<sp>", "<sp>xhello", "ab xyz", "xyz xyz", "€ and ☃",
    "a\u00a0<ls>", "a\u3000<rs>\u2003b", "<unk>", "héllo wörld", "a-b,c.d!e?f", "a--b,,c..d!!e??f", "x-x,x.x!x?x",
    "abc", "ab c", "xx", "x", "-", ",", ".", "!!", "??", "hello.world", "a.b.c", "!a!", "?a?", "abcabc", "abc abc",
    "ab", "a b c", "ca", "zzz", "<x>hello <x> world<x>", "  leading", "trailing  ", "<0x41>", "\u2581hello",
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, make in (("flags", flags), ("metaspace", metaspace), ("splits", splits), ("suffix", suffix)):
        with open(os.path.join(OUT, f"tiny_{name}.json"), "w", encoding="utf-8") as f:
            json.dump(make(), f, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(OUT, "tiny_corpus.jsonl"), "w", encoding="utf-8") as f:
        for s in CORPUS:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
