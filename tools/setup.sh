#!/usr/bin/env bash
# The README's first command: installs the Debian packages, builds gemma4, and runs the main job on the
# bundled default model (models/gemma4-tiny-arith-it, a tiny Gemma 4 Unified model trained from scratch on
# CPU by recipes/demo_arith.yaml): a few questions piped into `gemma4 chat`, then `gemma4 eval gsm8k` on the
# model's 200 held-out problems (never seen in training). The last line printed is "accuracy: X".
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
ninja -C build gemma4

model=models/gemma4-tiny-arith-it
questions=(
  "What is 123 plus 456?"
  "Subtract 58 from 731."
  "What is the sum of 999 and 1?"
  "How much is 250 minus 600?"
  "Compute 47 + 385."
)
echo
echo "== gemma4 chat --model $model --no-history   (questions piped in, one reply per line)"
replies="$(printf '%s\n' "${questions[@]}" | ./build/gemma4 chat --model "$model" --no-history)"
i=0
while IFS= read -r reply; do
  printf 'user:  %s\nmodel: %s\n' "${questions[$i]}" "${reply//\\n/ | }"
  i=$((i + 1))
done <<<"$replies"
echo
echo "== gemma4 eval gsm8k --model $model --data $model/heldout_test.jsonl"
./build/gemma4 eval gsm8k --model "$model" --data "$model/heldout_test.jsonl" --quiet
