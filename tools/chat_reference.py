#!/usr/bin/env python3
"""Renders the chat-template suite with Hugging Face transformers' own machinery (the reference).

For every template and every conversation of tests/data/chat/conversations.jsonl this calls
transformers.utils.chat_template_utils.render_jinja_template -- the function that
PreTrainedTokenizerBase.apply_chat_template(tokenize=False) uses -- with the arguments apply_chat_template
passes: messages, tools, documents, add_generation_prompt, the special tokens (bos_token="<bos>",
eos_token="<eos>" unless the conversation sets them) and every other top-level key of the conversation.
It writes reference_<template stem>.jsonl lines {"name", "text"} or {"name", "error"} (jinja2 raised), and
reference_meta.json with the versions used. With --cases it also renders the engine cases
(tests/data/chat/jinja_cases.jsonl: {"name", "template", "vars"}) with HF's compiled-template environment
(_compile_jinja_template(template).render(**vars)) into reference_jinja_cases.jsonl.

Usage (on a machine with transformers, e.g. the GPU machine):
  python3 tools/chat_reference.py --suite tests/data/chat/conversations.jsonl \
      --templates tests/data/chat/templates/*.jinja --cases tests/data/chat/jinja_cases.jsonl --out tests/data/chat
"""
import argparse
import inspect
import json
import os

import jinja2
import transformers
from transformers.utils import chat_template_utils as ctu

DEFAULT_TOKENS = {"bos_token": "<bos>", "eos_token": "<eos>"}


def render(template, conversation):
    conv = dict(conversation)
    messages = conv.pop("messages")
    tools = conv.pop("tools", None)
    documents = conv.pop("documents", None)
    add_generation_prompt = conv.pop("add_generation_prompt", False)
    kwargs = dict(DEFAULT_TOKENS)
    kwargs.update(conv)
    rendered, _ = ctu.render_jinja_template(
        conversations=[messages],
        tools=tools,
        documents=documents,
        chat_template=template,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )
    return rendered[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", required=True)
    ap.add_argument("--templates", nargs="+", required=True)
    ap.add_argument("--cases")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.suite, encoding="utf-8") as f:
        suite = [json.loads(line) for line in f if line.strip()]
    os.makedirs(args.out, exist_ok=True)
    summary = {}
    for path in args.templates:
        with open(path, encoding="utf-8") as f:
            template = f.read()
        stem = os.path.splitext(os.path.basename(path))[0]
        n_err = 0
        with open(os.path.join(args.out, f"reference_{stem}.jsonl"), "w", encoding="utf-8") as out:
            for case in suite:
                try:
                    rec = {"name": case["name"], "text": render(template, case["conversation"])}
                except Exception as e:  # jinja2 raised: the C++ engine must raise too
                    rec = {"name": case["name"], "error": f"{type(e).__name__}: {e}"}
                    n_err += 1
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        summary[stem] = {"cases": len(suite), "errors": n_err}
    if args.cases:
        with open(args.cases, encoding="utf-8") as f:
            cases = [json.loads(line) for line in f if line.strip()]
        n_err = 0
        with open(os.path.join(args.out, "reference_jinja_cases.jsonl"), "w", encoding="utf-8") as out:
            for case in cases:
                try:
                    text = ctu._compile_jinja_template(case["template"]).render(**case["vars"])
                    rec = {"name": case["name"], "text": text}
                except Exception as e:
                    rec = {"name": case["name"], "error": f"{type(e).__name__}: {e}"}
                    n_err += 1
                out.write(json.dumps(rec, ensure_ascii=False) + "\n")
        summary["jinja_cases"] = {"cases": len(cases), "errors": n_err}
    meta = {
        "transformers": transformers.__version__,
        "jinja2": jinja2.__version__,
        "renderer": "transformers.utils.chat_template_utils.render_jinja_template",
        "render_signature": str(inspect.signature(ctu.render_jinja_template)),
        "summary": summary,
    }
    with open(os.path.join(args.out, "reference_meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
