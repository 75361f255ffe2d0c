// Prefill attention on tensor cores: queries in chunks of C rows; per chunk, scores = Q K^T for the keys the
// chunk can see (causal + sliding window bound the key range), a masked fp32 softmax, then O = P V, all with
// cuBLAS strided-batched GEMMs. Memory is O(heads x C x keys) per chunk: T x T is never materialised, and a
// sliding layer's cost is proportional to its window, not to T. bf16 mode: Q, K, V and P in bf16 with fp32
// accumulation (tensor cores); fp32 mode: exact fp32 GEMMs (no TF32).
#include "ops/cuda/attention_chunked.h"

#include <cuda_runtime.h>

#include <algorithm>

#include "core/error.h"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {

namespace {

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("CUDA {}: {}", what, cudaGetErrorString(e));
}
void ckb(cublasStatus_t e, const char* what) {
  if (e != CUBLAS_STATUS_SUCCESS) throw Error("cuBLAS {} failed (status {})", what, int(e));
}

}  // namespace

bool keys_consecutive(const int64_t* k_pos, int64_t S) {
  if (S == 0) return false;
  for (int64_t j = 1; j < S; ++j)
    if (k_pos[j] != k_pos[0] + j) return false;
  return true;
}

void attention_chunked(const ChunkedAttention& a, const Scratch& scratch) {
  const bool bf = a.bf16;
  const int64_t T = a.T, S = a.S;
  const int Hq = a.n_q_heads, Hkv = a.n_kv_heads, hd = a.head_dim, g = Hq / Hkv;
  const int64_t ldq = int64_t(Hq) * hd, kvd = int64_t(Hkv) * hd;
  const size_t eb = bf ? 2 : 4;  // bytes per GEMM input element
  const cudaDataType_t in_t = bf ? CUDA_R_16BF : CUDA_R_32F;
  const cublasComputeType_t comp = bf ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_PEDANTIC;
  cublasHandle_t h = bf ? a.blas_tc : a.blas_f32;

  // GEMM inputs: bf16 copies of Q, K, V (bf16 mode), the fp32 tensors themselves otherwise.
  const void *q = a.q, *k = a.k, *v = a.v;
  std::shared_ptr<void> qb, kb, vb;
  G4_CHECK(bf || !a.io_bf16, "attention: bf16 queries need the bf16 GEMM mode");
  if (bf) {
    if (!a.io_bf16) {  // bf16 queries are used as they are
      qb = scratch(size_t(T) * ldq * 2);
      ck(cudaError_t(f32_to_bf16(static_cast<const float*>(a.q), qb.get(), T * ldq, a.stream)), "attention: q to bf16");
      q = qb.get();
    }
    if (!a.kv_bf16) {  // a bf16 KV cache is used as it is
      kb = scratch(size_t(S) * kvd * 2);
      vb = scratch(size_t(S) * kvd * 2);
      ck(cudaError_t(f32_to_bf16(static_cast<const float*>(a.k), kb.get(), S * kvd, a.stream)), "attention: k to bf16");
      ck(cudaError_t(f32_to_bf16(static_cast<const float*>(a.v), vb.get(), S * kvd, a.stream)), "attention: v to bf16");
      k = kb.get(), v = vb.get();
    }
  } else if (a.kv_bf16) {
    throw Error("attention: bf16 keys/values need the bf16 GEMM mode");
  }
  auto keys_for = [&](int64_t c) { return a.window > 0 && a.keys_consecutive ? std::min<int64_t>(S, c + a.window) : S; };
  // Chunk rows so that scores (fp32) + probabilities stay within the budget.
  const double budget = double(a.scratch_budget_bytes);
  // Sliding layers: chunks of a quarter window, so most of each chunk's key range (C + window - 1) is inside
  // the window of every query (80% for C = window/4, 50% for C = window).
  // Full layers: chunks of 512 queries. Each chunk computes its whole causal rectangle, so smaller chunks waste
  // less on masked keys; 12B prefill 4096 on an H200 (one call, two runs each): 23,834 / 23,885 tok/s with 512,
  // 23,746 / 23,763 with 1024, 23,822 with 256, 23,666 with 2048. The scores also take half the scratch.
  int64_t C = std::min<int64_t>(T, a.window > 0 ? std::clamp<int64_t>(a.window / 4, 64, 1024) : 512);
  while (C > 16 && double(Hq) * C * keys_for(C) * (4 + eb) > budget) C = (C + 1) / 2;
  std::shared_ptr<void> sc = scratch(size_t(Hq) * C * keys_for(C) * 4);
  std::shared_ptr<void> pr = scratch(size_t(Hq) * C * keys_for(C) * eb);
  float* scores = static_cast<float*>(sc.get());
  char* probs = static_cast<char*>(pr.get());
  const float one = 1.f, zero = 0.f;
  const int64_t k0 = a.k_pos_host[0];

  for (int64_t i0 = 0; i0 < T; i0 += C) {
    const int64_t i1 = std::min(T, i0 + C), c = i1 - i0;
    int64_t qmin = a.q_pos_host[i0], qmax = qmin;
    for (int64_t i = i0; i < i1; ++i) qmin = std::min(qmin, a.q_pos_host[i]), qmax = std::max(qmax, a.q_pos_host[i]);
    const int64_t j_lo = !a.keys_consecutive ? 0 : a.window > 0 ? std::max<int64_t>(0, qmin - a.window + 1 - k0) : 0;
    const int64_t j_hi = !a.keys_consecutive ? S : std::min<int64_t>(S, qmax - k0 + 1);
    const size_t ob = a.io_bf16 ? 2 : 4;  // bytes per output element
    char* o_rows = static_cast<char*>(a.o) + size_t(i0) * ldq * ob;
    const cudaDataType_t out_t = a.io_bf16 ? CUDA_R_16BF : CUDA_R_32F;
    if (j_hi <= j_lo) {  // no query of the chunk sees a key
      ck(cudaMemsetAsync(o_rows, 0, size_t(c) * ldq * ob, a.stream), "attention: zero rows");
      continue;
    }
    const int64_t sk = j_hi - j_lo;
    const char* qc = static_cast<const char*>(q) + size_t(i0) * ldq * eb;
    const char* kc = static_cast<const char*>(k) + size_t(j_lo) * kvd * eb;
    const char* vc = static_cast<const char*>(v) + size_t(j_lo) * kvd * eb;
    // Batches: with one KV head every query head is a batch entry (K stride 0); otherwise one call per
    // member j of the query group, batched over the KV heads (query head h = kv_head * g + j).
    if (c == 1) {  // one query (decode): its g heads of a KV head are g columns (ld = hd); K, V read once
      ckb(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(sk), g, hd, &one, kc, in_t, int(kvd), hd, qc,
                                     in_t, hd, int64_t(g) * hd, &zero, scores, CUDA_R_32F, int(sk), int64_t(g) * sk,
                                     Hkv, comp, CUBLAS_GEMM_DEFAULT),
          "attention scores GEMM");
      ck(cudaError_t(masked_softmax(scores, Hq, 1, sk, a.scale, a.q_pos_dev + i0, a.k_pos_dev + j_lo, a.window, probs,
                                    bf, a.stream)),
         "attention softmax");
      ckb(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, hd, g, int(sk), &one, vc, in_t, int(kvd), hd, probs,
                                     in_t, int(sk), int64_t(g) * sk, &zero, o_rows, out_t, hd, int64_t(g) * hd,
                                     Hkv, comp, CUBLAS_GEMM_DEFAULT),
          "attention output GEMM");
      continue;
    }
    const int calls = Hkv == 1 ? 1 : g;
    const int batch = Hkv == 1 ? Hq : Hkv;
    const int64_t kv_stride = Hkv == 1 ? 0 : hd;
    const int64_t q_stride = Hkv == 1 ? hd : int64_t(g) * hd;
    const int64_t s_stride = Hkv == 1 ? c * sk : int64_t(g) * c * sk;
    for (int j = 0; j < calls; ++j) {
      // Column-major: scores_h^T [sk, c] = K_kh [sk, hd] . Q_h^T [hd, c].
      ckb(cublasGemmStridedBatchedEx(h, CUBLAS_OP_T, CUBLAS_OP_N, int(sk), int(c), hd, &one, kc, in_t, int(kvd),
                                     kv_stride, qc + size_t(j) * hd * eb, in_t, int(ldq), q_stride, &zero,
                                     scores + size_t(j) * c * sk, CUDA_R_32F, int(sk), s_stride, batch, comp,
                                     CUBLAS_GEMM_DEFAULT),
          "attention scores GEMM");
    }
    ck(cudaError_t(masked_softmax(scores, int64_t(Hq) * c, c, sk, a.scale, a.q_pos_dev + i0, a.k_pos_dev + j_lo,
                                  a.window, probs, bf, a.stream)),
       "attention softmax");
    for (int j = 0; j < calls; ++j) {
      // Column-major: O_h^T [hd, c] = V_kh^T [hd, sk] . P_h^T [sk, c].
      ckb(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, hd, int(c), int(sk), &one, vc, in_t, int(kvd),
                                     kv_stride, probs + size_t(j) * c * sk * eb, in_t, int(sk), s_stride, &zero,
                                     o_rows + size_t(j) * hd * ob, out_t, int(ldq), q_stride, batch, comp,
                                     CUBLAS_GEMM_DEFAULT),
          "attention output GEMM");
    }
  }
}

}  // namespace gemma4::cuda
