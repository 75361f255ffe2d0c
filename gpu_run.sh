#!/bin/bash
export LD_LIBRARY_PATH=$PWD/build
timeout 300 build/test_cuda 2>&1 | grep -E "^\[ +(FAILED|PASSED) |Failure|Expected|Which is|cuda graphs|error|counter merge\) decode" | head -30
GEMMA4_CM_PB1=1 timeout 100 build/test_cuda --gtest_filter='CudaOps.Attention:CudaGraphs.*' 2>&1 | grep -E "^\[ +(FAILED|PASSED) |Failure" | head
B() { build/bench_cuda --arch 12b --precision bf16 --prefill "" --contexts 512,4096 --decode 64 --batches "" 2>&1; }
for r in 1 2; do
  echo "== PB2"; B | grep -E "decode batch"
  echo "== PB1"; GEMMA4_CM_PB1=1 B | grep -E "decode batch"
  echo "== counter"; GEMMA4_CUDA_CLUSTER_MERGE=0 B | grep -E "decode batch"
done
for v in PB2 PB1; do
[ $v = PB1 ] && export GEMMA4_CM_PB1=1
CUDA_INJECTION64_PATH=$PWD/build/libkernel_trace.so GEMMA4_TRACE_FILE=/tmp/t$v.csv build/bench_cuda --arch 12b --precision bf16 --prefill "" --contexts 4096 --decode 64 --batches "" 2>&1 | grep -E "decode batch"
(cd tools/kernel_trace && python3 step_timeline.py /tmp/t$v.csv --show 0 2>&1 | grep -E "decode_small|gemv16_persistent|step wall")
done
