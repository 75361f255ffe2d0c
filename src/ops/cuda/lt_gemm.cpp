#include "ops/cuda/lt_gemm.h"

#include "core/error.h"

namespace gemma4::cuda {
namespace {

void ck(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error("cuBLASLt {} failed (status {})", what, int(s));
}

// The largest power of two (<= 256) that divides the address: cuBLASLt algorithms state the alignment they need.
int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

}  // namespace

LtGemm::LtGemm(cudaStream_t stream, void* workspace, size_t workspace_bytes)
    : stream_(stream), ws_(workspace), ws_bytes_(workspace_bytes) {
  ck(cublasLtCreate(&lt_), "handle creation");
}

LtGemm::~LtGemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  if (lt_) cublasLtDestroy(lt_);
}

const LtGemm::Plan& LtGemm::plan(const Key& key) {
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  const auto [M, N, K, y_bf16, align_w, align_x, align_y] = key;
  // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = op(A) B with A = w seen as a K x N
  // column-major matrix (op = transpose), B = x as K x M column-major and C = y as N x M column-major.
  Plan p;
  ck(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor");
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  ck(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)), "descriptor");
  ck(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)), "descriptor");
  ck(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(K), uint64_t(N), K), "layout");
  ck(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(K), uint64_t(M), K), "layout");
  ck(cublasLtMatrixLayoutCreate(&p.c, y_bf16 ? CUDA_R_16BF : CUDA_R_32F, uint64_t(N), uint64_t(M), N), "layout");
  cublasLtMatmulPreference_t pref;
  ck(cublasLtMatmulPreferenceCreate(&pref), "preference");
  const uint64_t ws = ws_bytes_;
  const uint32_t aw = uint32_t(align_w), ax = uint32_t(align_x), ay = uint32_t(align_y);
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aw, sizeof(aw));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ax, sizeof(ax));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ay, sizeof(ay));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ay, sizeof(ay));
  cublasLtMatmulHeuristicResult_t r{};
  int found = 0;
  const cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt_, p.op, p.a, p.b, p.c, p.c, pref, 1, &r, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
    throw Error("cuBLASLt has no algorithm for the bf16 GEMM [{}, {}] x [{}, {}]^T (status {})", M, K, N, K, int(s));
  }
  p.algo = r.algo;
  return plans_.emplace(key, p).first->second;
}

void LtGemm::run(const void* w, const void* x, void* y, bool y_bf16, int64_t M, int64_t N, int64_t K) {
  const Plan& p = plan({M, N, K, y_bf16, alignment(w), alignment(x), alignment(y)});
  const float one = 1.f, zero = 0.f;
  ck(cublasLtMatmul(lt_, p.op, &one, w, p.a, x, p.b, &zero, y, p.c, y, p.c, &p.algo, ws_, ws_bytes_, stream_),
     "bf16 GEMM");
}

}  // namespace gemma4::cuda
