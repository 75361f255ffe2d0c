#!/usr/bin/env bash
# The issue-4 benchmark, on a GPU machine with transformers installed: gemma4 (bench_cuda) and HF transformers
# on the same random 12B Unified text config, in one run on the same GPU, then the comparison table.
#   bash tools/bench_gpu.sh [BUILD_DIR]   (env: CONTEXTS=512,4096,32768 PREFILL=512,4096 DECODE=32 BATCHES=8,32 OUT=dir)
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build}
OUT=${OUT:-/tmp/g4bench}
mkdir -p "$OUT"
CONTEXTS=${CONTEXTS:-512,4096,32768}
PREFILL=${PREFILL:-512,4096}
DECODE=${DECODE:-32}
BATCHES=${BATCHES:-8,32}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$B/gemma4" arch show 12b >"$OUT/config.json"
"$B/bench_cuda" --arch 12b --precision bf16 --prefill "$PREFILL" --contexts "$CONTEXTS" --decode "$DECODE" --batches "$BATCHES" \
  --json "$OUT/gemma4.json" | tee "$OUT/bench_cuda.log"
python3 tools/bench_hf.py --config "$OUT/config.json" --ours "$OUT/gemma4.json" --json "$OUT/hf.json" \
  --prefill "$PREFILL" --contexts "$CONTEXTS" --batches "$BATCHES" --decode 16 | tee "$OUT/bench_hf.log"
