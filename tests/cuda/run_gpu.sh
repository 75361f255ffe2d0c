#!/usr/bin/env bash
# On a GPU machine: configure, build the CUDA tests and the CPU suites the CUDA work touches, run them, and
# print the op error table; BENCH=1 also runs bench_cuda (BENCH_ARGS, BENCH_TIMEOUT). Logs go to $OUT (default /tmp/g4cuda). Usage: bash tests/cuda/run_gpu.sh [build dir]
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/g4cuda}
B=${1:-build-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; exit 1; }
start=$(date +%s)
if ! ninja -C "$B" gemma4 test_cuda test_model test_ops bench_cuda >"$OUT/build.log" 2>&1; then
  grep -A12 -E "error|Error" "$OUT/build.log" | head -80
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s"
rc=0
"$B/test_cuda" 2>&1 | tee "$OUT/test_cuda.log" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |\[cuda\]|Failure|Expected|Which is|actual|^  " | head -120 || true
[ "${PIPESTATUS[0]}" = 0 ] || rc=1
for t in test_model test_ops; do
  "$B/$t" --gtest_brief=1 >"$OUT/$t.log" 2>&1 && echo "$t: OK ($(grep -c '^\[       OK' "$OUT/$t.log") ok lines)" || { echo "$t: FAILED"; tail -30 "$OUT/$t.log"; rc=1; }
done
echo "---- op table ----"
sed -n '/CUDA op vs CPU op/,$p' "$OUT/test_cuda.log" | head -200
if [ "${BENCH:-0}" = 1 ]; then
  echo "---- bench_cuda ----"
  timeout "${BENCH_TIMEOUT:-300}" "$B/bench_cuda" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench_cuda.log"
fi
exit $rc
