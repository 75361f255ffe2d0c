// CPU matrix kernels. y[M,N] = x[M,K] . w[N,K]^T (+ bias[N]), x/y F32, w F32/BF16/F16 in its stored
// dtype (never expanded in memory), fp32 accumulation, OpenMP over the output.
//
// `linear` picks a path at run time:
//  - no AVX2/FMA/F16C on this CPU: the portable scalar loop (linear_scalar);
//  - M <= kGemvMaxM (decode): a GEMV that streams each weight row once, converting bf16/f16 to f32 in
//    registers, several rows and accumulators at a time, N split across threads (linear_avx2.cpp);
//  - larger M (prefill): a blocked GEMM; each thread converts a KC x NC block of w into a thread-local f32
//    panel once and reuses it for all M rows through a 6x16 register-blocked FMA micro-kernel.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace gemma4::cpu {

void linear(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
            const float* bias = nullptr);

// Reference implementation (scalar, used by tests to check the fast kernels).
void linear_reference(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias = nullptr);

// ---- Explicit paths (tests and benchmarks; `linear` chooses among these) ----

enum class LinearPath { Auto, Scalar, Gemv, Gemm };
// Largest M that `Auto` sends to the GEMV.
inline constexpr int64_t kGemvMaxM = 4;

// Runs the given path (Gemv/Gemm require linear_has_avx2(); any M is accepted by every path).
void linear_path(LinearPath path, const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N,
                 float* y, const float* bias = nullptr);
// True when this CPU has AVX2, FMA and F16C (the fast kernels are used).
bool linear_has_avx2();

// ---- Attention (attention_avx2.cpp) ----

// The semantics of Ops::attention (ops/ops.h): o[T, Hq*d] = softmax(q k^T * scale + mask) v with q [T, Hq*d],
// k/v [S, Hkv*d] (query head h reads kv head h / (Hq/Hkv)); the mask arguments are the fields of AttnMask
// (q_block/k_block may be null); a query row that sees no key gives 0. Softmax in fp32 (vectorized exp,
// relative error ~2e-7). AVX2/FMA: call only when linear_has_avx2(). Returns false, writing nothing, for
// shapes it does not handle (head_dim not a multiple of 8).
bool attention_avx2(const float* q, const float* k, const float* v, int64_t T, int64_t S, int n_q_heads,
                    int n_kv_heads, int head_dim, float scale, const int64_t* q_pos, const int64_t* k_pos, int window,
                    const int32_t* q_block, const int32_t* k_block, float* o);

// ---- Row-wise ops (elementwise_avx2.cpp); AVX2/FMA: call only when linear_has_avx2() ----

// out[i] = gelu_tanh(gate[i]) * up[i] (up may be null: out = gelu_tanh(gate)); out may alias gate or up.
// Computed as x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3) (= 0.5 x (1 + tanh u)), rel. error ~3e-7.
void gelu_tanh_mul_avx2(const float* gate, const float* up, float* out, int64_t n);
// y[r] = x[r] * (mean(x[r]^2) + eps)^-0.5 * w over rows of width D; w F32/BF16/F16 of D values, or null
// (no weight); y may alias x.
void rmsnorm_avx2(const float* x, const void* w, DType wdt, int64_t rows, int64_t D, float eps, float* y);

namespace detail {
// Implemented in linear_avx2.cpp (compiled with -mavx2 -mfma -mf16c); call only when linear_has_avx2().
// wdt must be F32, BF16 or F16; M, N, K >= 1.
void linear_gemv_avx2(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias);
void linear_gemm_avx2(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias);
}  // namespace detail

}  // namespace gemma4::cpu
