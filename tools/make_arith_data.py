#!/usr/bin/env python3
"""Seeded generator of the bundled demo model's dataset: sums and differences of two integers in [0, 999].

Every problem (a, op, b) is phrased with one of several sentence templates per operation. The assistant's answer
restates the problem in a canonical form and ends with GSM8K's answer line:

    user:      "Subtract 58 from 731."
    assistant: "731 - 58 = 673\\n#### 673"

Writes into OUT_DIR:
  train.jsonl        chat records {"chat":[{"role":"user",...},{"role":"assistant",...}]}  (SFT training)
  valid.jsonl        chat records (validation loss)
  test.jsonl         the held-out problems as chat records
  test_gsm8k.jsonl   the same held-out problems as {"question","answer":"... #### N"} for `gemma4 eval gsm8k --data`

The held-out test problems (and the validation problems) are never seen in training: their (a, op, b) triples are
excluded from train, whatever the phrasing. Output is a pure function of the arguments (seeded).

Usage: python3 tools/make_arith_data.py [--out DIR] [--seed S] [--train N] [--valid N] [--test N]
"""
import argparse
import json
import os
import random
import sys

LO, HI = 0, 999

# At least five phrasings per operation ({a} and {b} are the operands; the result is a op b).
TEMPLATES = {
    "+": [
        "What is {a} plus {b}?",
        "Compute {a} + {b}.",
        "Add {a} and {b}.",
        "What is the sum of {a} and {b}?",
        "Calculate {a} + {b}.",
        "How much is {a} plus {b}?",
        "Find the total of {a} and {b}.",
    ],
    "-": [
        "What is {a} minus {b}?",
        "Compute {a} - {b}.",
        "Subtract {b} from {a}.",
        "What is {a} take away {b}?",
        "Calculate {a} - {b}.",
        "How much is {a} minus {b}?",
        "Find the difference {a} - {b}.",
    ],
}


def solve(a, op, b):
    return a + b if op == "+" else a - b


def question(a, op, b, rng):
    return rng.choice(TEMPLATES[op]).format(a=a, b=b)


def columns(a, op, b):
    """Column-by-column working, ones first: "965 + 687: 5+7=12, 6+8+1=15, 9+6+1=16" (the carry is added to
    the next column); "731 - 58: 11-8=3, 13-5-1=7, 7-0-1=6" (a borrowed ten is written into the column, the
    borrow taken from the next one). A negative difference is worked as -(b - a)."""
    if op == "-" and a < b:
        return f"{a} - {b} = -({b} - {a}), " + columns(b, "-", a)
    da, db = str(a)[::-1], str(b)[::-1]
    steps, carry = [], 0
    for i in range(max(len(da), len(db))):
        x = int(da[i]) if i < len(da) else 0
        y = int(db[i]) if i < len(db) else 0
        if op == "+":
            s = x + y + carry
            steps.append(f"{x}+{y}" + ("+1" if carry else "") + f"={s}")
            carry = s // 10
        else:
            borrow_in = carry
            carry = 1 if x - y - borrow_in < 0 else 0
            xx = x + 10 * carry
            steps.append(f"{xx}-{y}" + ("-1" if borrow_in else "") + f"={xx - y - borrow_in}")
    return f"{a} {op} {b}: " + ", ".join(steps)


def answer(a, op, b, fmt="columns"):
    r = solve(a, op, b)
    if fmt == "columns":
        return f"{columns(a, op, b)}, so {a} {op} {b} = {r}.\n#### {r}"
    return f"{a} {op} {b} = {r}\n#### {r}"


def chat_record(q, ans):
    return {"chat": [{"role": "user", "content": q}, {"role": "assistant", "content": ans}]}


def random_problem(rng):
    return rng.randint(LO, HI), rng.choice("+-"), rng.randint(LO, HI)


def distinct_problems(rng, n, exclude):
    out, seen = [], set(exclude)
    while len(out) < n:
        p = random_problem(rng)
        if p not in seen:
            seen.add(p)
            out.append(p)
    return out


def write_jsonl(path, records):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=".cache/arith", help="output directory (created)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--train", type=int, default=100000, help="training examples (problems may repeat)")
    ap.add_argument("--valid", type=int, default=500)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--format", choices=["plain", "columns"], default="columns",
                    help="assistant answer: 'a op b = r' (plain) or column-by-column working first (columns)")
    args = ap.parse_args(argv)
    for name in ("train", "valid", "test"):
        if getattr(args, name) < 0:
            ap.error(f"--{name} must be >= 0")
    if args.valid + args.test > (HI - LO + 1) ** 2:
        ap.error("--valid + --test exceed the number of distinct problems")

    rng = random.Random(args.seed)
    test = distinct_problems(rng, args.test, ())
    valid = distinct_problems(rng, args.valid, test)
    held_out = set(test) | set(valid)
    train = []
    while len(train) < args.train:
        p = random_problem(rng)
        if p not in held_out:
            train.append(p)

    os.makedirs(args.out, exist_ok=True)
    write_jsonl(os.path.join(args.out, "train.jsonl"), (chat_record(question(*p, rng), answer(*p, args.format)) for p in train))
    write_jsonl(os.path.join(args.out, "valid.jsonl"), (chat_record(question(*p, rng), answer(*p, args.format)) for p in valid))
    test_q = [(p, question(*p, rng)) for p in test]
    write_jsonl(os.path.join(args.out, "test.jsonl"), (chat_record(q, answer(*p, args.format)) for p, q in test_q))
    write_jsonl(os.path.join(args.out, "test_gsm8k.jsonl"),
                ({"question": q, "answer": answer(*p, args.format)} for p, q in test_q))
    print(f"wrote {len(train)} train, {len(valid)} valid, {len(test)} test problems to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
