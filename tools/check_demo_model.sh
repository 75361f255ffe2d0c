#!/usr/bin/env bash
# Checks the bundled demo model against Hugging Face on a machine with transformers (the GPU machine):
#   1. the chat template + tokenizer: HF apply_chat_template ids == gemma4 render-chat | gemma4 tokenize ids
#      for every held-out question;
#   2. the export loads in transformers with our logits (tools/check_export.py, fp32, <= 1e-3, same argmax).
# Usage: bash tools/check_demo_model.sh [BUILD_DIR] [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
M=${2:-models/gemma4-tiny-arith-it}
W=$(mktemp -d)
python3 - "$M" "$W" <<'PY'
import json, sys, torch
from transformers import AutoTokenizer
from safetensors.torch import save_file
model, work = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(model)
qs = [json.loads(l)["question"] for l in open(f"{model}/heldout_test.jsonl")]
with open(f"{work}/hf_ids.jsonl", "w") as f:
    for i, q in enumerate(qs):
        conv = {"messages": [{"role": "user", "content": q}], "add_generation_prompt": True}
        json.dump(conv, open(f"{work}/conv{i}.json", "w"))
        ids = tok.apply_chat_template(conv["messages"], add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "keys"):
            ids = ids["input_ids"]
        f.write(json.dumps(list(map(int, ids))) + "\n")
first = json.loads(open(f"{work}/hf_ids.jsonl").readline())
save_file({"input_ids": torch.tensor(first, dtype=torch.int64)}, f"{work}/inputs.safetensors")
print(f"HF: {len(qs)} prompts rendered and tokenized")
PY
n=$(wc -l <"$W/hf_ids.jsonl")
bad=0
for ((i = 0; i < n; i++)); do
  ours="[$("$B/gemma4" render-chat --template "$M/chat_template.jinja" --input "$W/conv$i.json" |
    "$B/gemma4" tokenize --tokenizer "$M" --mode as_is | xargs | tr ' ' ',')]"
  theirs=$(sed -n "$((i + 1))p" "$W/hf_ids.jsonl" | tr -d ' \n')
  [ "$ours" = "$theirs" ] || { bad=$((bad + 1)); [ $bad -le 3 ] && echo "mismatch $i: ours $ours HF $theirs"; }
done
echo "chat template + tokenizer: $((n - bad))/$n prompts give identical ids"
"$B/gemma4" forward --model "$M" --inputs "$W/inputs.safetensors" --out "$W/logits.safetensors" --device cpu
python3 tools/check_export.py "$M" "$W/inputs.safetensors" "$W/logits.safetensors"
[ $bad = 0 ]
