// Tensor-core GEMMs of the linear layers through cuBLASLt with a plan per shape (cuda_ops.cpp linear and the
// prefill paths of linear_qkv / linear_gelu_mul / feed_forward). cublasGemmEx chooses its algorithm on every
// call, and for some prefill shapes that host work (240-430 us a call for [4096 x 3840] . [3840 x 4096] on an
// H200) was longer than the GEMM, so the GPU waited for the host. Here the descriptors and the heuristic's
// algorithm are made once per (M, N, K, output dtype, pointer alignments) and reused; each call is one
// cublasLtMatmul on the backend's stream with a fixed workspace (so it can be recorded in a step graph).
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <tuple>

namespace gemma4::cuda {

class LtGemm {
 public:
  LtGemm(cudaStream_t stream, void* workspace, size_t workspace_bytes);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;

  // y[M, N] = x[M, K] . w[N, K]^T, all row-major: x and w bf16, y fp32 (y_bf16 = false) or bf16, fp32
  // accumulation. Throws gemma4::Error when cuBLASLt has no algorithm or the call fails.
  void run(const void* w, const void* x, void* y, bool y_bf16, int64_t M, int64_t N, int64_t K);

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  using Key = std::tuple<int64_t, int64_t, int64_t, bool, int, int, int>;  // M, N, K, y bf16, alignments
  const Plan& plan(const Key& key);

  cudaStream_t stream_;
  void* ws_;
  size_t ws_bytes_;
  cublasLtHandle_t lt_ = nullptr;
  std::map<Key, Plan> plans_;
};

}  // namespace gemma4::cuda
