// Attention as cuBLAS GEMMs (attention_chunked.cpp): chunked Q K^T -> masked softmax -> P V, without
// bidirectional blocks. Prefill (keys at consecutive positions: each chunk reads only its key range) and
// decode (any key order, e.g. a ring: all keys, the softmax masks by position). Host code.
#pragma once
#include <cublas_v2.h>

#include <cstdint>
#include <functional>
#include <memory>

typedef struct CUstream_st* cudaStream_t;

namespace gemma4::cuda {

// Device scratch of at least n bytes, released when the pointer is dropped (stream-ordered reuse).
using Scratch = std::function<std::shared_ptr<void>(size_t)>;

struct ChunkedAttention {
  const void* q;           // [T, Hq*hd] on the device: F32, or BF16 when io_bf16 (bf16 mode only)
  const void *k, *v;       // [S, Hkv*hd] on the device: F32, or BF16 when kv_bf16 (bf16 mode only)
  void* o;                 // [T, Hq*hd]: like q
  int64_t T, S;
  int n_q_heads, n_kv_heads, head_dim;
  float scale;
  int window;                          // > 0: sliding window
  const int64_t *q_pos_host, *k_pos_host;  // positions (host copies, for the key ranges)
  const int64_t *q_pos_dev, *k_pos_dev;    // the same on the device (for the softmax mask)
  bool bf16;                           // bf16 GEMM inputs + tensor cores, else exact fp32
  bool keys_consecutive;               // k_pos[j] = k_pos[0] + j: key ranges per chunk; else all keys, masked
  cublasHandle_t blas_tc, blas_f32;    // default math (tensor cores) / pedantic fp32
  size_t scratch_budget_bytes = size_t(512) << 20;
  cudaStream_t stream = nullptr;
  bool kv_bf16 = false;
  bool io_bf16 = false;
};

// True when the keys sit at consecutive positions k_pos[0] + j.
bool keys_consecutive(const int64_t* k_pos, int64_t S);
void attention_chunked(const ChunkedAttention& a, const Scratch& scratch);

}  // namespace gemma4::cuda
