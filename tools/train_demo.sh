#!/usr/bin/env bash
# Retrains the bundled demo model from scratch on CPU and installs it into models/gemma4-tiny-arith-it:
#   1. tools/make_arith_data.py    seeded sums/differences dataset (chat records) + the 200 held-out problems
#   2. tools/make_demo_model.py    the tiny random Gemma 4 Unified checkpoint + tokenizer + chat template
#   3. gemma4 sft --config-file recipes/demo_arith.yaml   (chat-mode SFT, assistant turns are the targets)
#   4. copies the HF export and the held-out set into the model directory
#   5. gemma4 eval gsm8k on the held-out problems
# Usage: bash tools/train_demo.sh [BUILD_DIR] [extra --config overrides for gemma4 sft...]
# Work files go to .cache/demo_arith/ (ignored by git). The build must already exist (tools/setup.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
work=.cache/demo_arith
model=models/gemma4-tiny-arith-it

python3 tools/make_arith_data.py --out "$work/data"
rm -rf "$work/init" "$work/run"
python3 tools/make_demo_model.py "$work/init"
start=$(date +%s)
"$build/gemma4" sft --config-file recipes/demo_arith.yaml "$@" "$work/run"
end=$(date +%s)
echo "training wall time: $((end - start)) s"

mkdir -p "$model"
cp "$work/run/hf/"{config.json,generation_config.json,model.safetensors,tokenizer.json,tokenizer_config.json,chat_template.jinja} "$model/"
cp "$work/data/test_gsm8k.jsonl" "$model/heldout_test.jsonl"
"$build/gemma4" eval gsm8k --model "$model" --data "$model/heldout_test.jsonl" --quiet
