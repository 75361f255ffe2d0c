#!/usr/bin/env python3
"""Renders the chat-template suite with Hugging Face transformers' own machinery (the reference).

Suite: for every template and every conversation of tests/data/chat/conversations.jsonl this calls
transformers.utils.chat_template_utils.render_jinja_template -- the function that
PreTrainedTokenizerBase.apply_chat_template(tokenize=False) uses -- with the arguments apply_chat_template
passes: messages, tools, documents, add_generation_prompt, the special tokens (bos_token="<bos>",
eos_token="<eos>" unless the conversation sets them) and every other top-level key of the conversation.
It writes reference_<template stem>.jsonl lines {"name", "text"} or {"name", "error"} (jinja2 raised), and
reference_meta.json with the versions used. The suite needs transformers (run it on the GPU machine).

Engine cases (--cases tests/data/chat/jinja_cases.jsonl, lines {"name", "template", "vars"}): each template
is compiled in HF's environment (chat_template_utils._compile_jinja_template) and rendered with its vars into
reference_jinja_cases.jsonl. Without transformers installed, --cases-only builds the same environment from
jinja2 directly (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, HF's tojson,
raise_exception, strftime_now and a pass-through {% generation %} tag) and records that in the meta file.

Usage:
  python3 tools/chat_reference.py --suite tests/data/chat/conversations.jsonl \\
      --templates tests/data/chat/templates/*.jinja --cases tests/data/chat/jinja_cases.jsonl --out tests/data/chat
  python3 tools/chat_reference.py --cases-only --cases tests/data/chat/jinja_cases.jsonl --out tests/data/chat
"""
import argparse
import inspect
import json
import os

import jinja2

try:
    import transformers
    from transformers.utils import chat_template_utils as ctu
except ImportError:  # --cases-only can run without it
    transformers = None
    ctu = None

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


def hf_like_environment():
    """jinja2 configured as transformers configures it, for --cases-only without transformers."""
    from datetime import datetime

    from jinja2.exceptions import TemplateError
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # HF's AssistantTracker, minus the index tracking
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def render_cases(path, out_dir):
    with open(path, encoding="utf-8") as f:
        cases = [json.loads(line) for line in f if line.strip()]
    if ctu is not None:
        compile_template, renderer = ctu._compile_jinja_template, "transformers _compile_jinja_template"
    else:
        env = hf_like_environment()
        compile_template, renderer = env.from_string, "jinja2 configured as transformers (no transformers installed)"
    n_err = 0
    with open(os.path.join(out_dir, "reference_jinja_cases.jsonl"), "w", encoding="utf-8") as out:
        for case in cases:
            try:
                rec = {"name": case["name"], "text": compile_template(case["template"]).render(**case["vars"])}
            except Exception as e:  # jinja2 raised: the C++ engine must raise too
                rec = {"name": case["name"], "error": f"{type(e).__name__}: {e}"}
                n_err += 1
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return {"cases": len(cases), "errors": n_err, "renderer": renderer, "jinja2": jinja2.__version__}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite")
    ap.add_argument("--templates", nargs="+", default=[])
    ap.add_argument("--cases")
    ap.add_argument("--cases-only", action="store_true")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    meta_path = os.path.join(args.out, "reference_meta.json")
    if args.cases_only:
        if not args.cases:
            ap.error("--cases-only needs --cases")
        meta = json.load(open(meta_path, encoding="utf-8")) if os.path.exists(meta_path) else {}
        meta["jinja_cases"] = render_cases(args.cases, args.out)
    else:
        if ctu is None:
            raise SystemExit("the suite reference needs transformers (run on the GPU machine)")
        if not args.suite or not args.templates:
            ap.error("--suite and --templates are required")
        with open(args.suite, encoding="utf-8") as f:
            suite = [json.loads(line) for line in f if line.strip()]
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
        meta = {
            "transformers": transformers.__version__,
            "jinja2": jinja2.__version__,
            "renderer": "transformers.utils.chat_template_utils.render_jinja_template",
            "render_signature": str(inspect.signature(ctu.render_jinja_template)),
            "summary": summary,
        }
        if args.cases:
            meta["jinja_cases"] = render_cases(args.cases, args.out)
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(json.dumps(meta, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
