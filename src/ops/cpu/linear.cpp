// Dispatch for the CPU linear kernels (compiled for generic x86-64) plus the scalar reference and the
// portable fallback. The fast paths live in linear_avx2.cpp.
#include "ops/cpu/linear.h"

#include <vector>

#include "core/error.h"

namespace gemma4::cpu {

static inline float load_w(const void* w, DType wdt, int64_t i) {
  switch (wdt) {
    case DType::F32: return static_cast<const float*>(w)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: throw Error("linear: unsupported weight dtype {}", dtype_name(wdt));
  }
}

void linear_reference(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias) {
  std::vector<float> row(K);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) row[k] = load_w(w, wdt, n * K + k);
    for (int64_t m = 0; m < M; ++m) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += double(x[m * K + k]) * row[k];
      y[m * N + n] = float(acc);
    }
  }
}

// Portable fallback: one converted weight row at a time, reused for all M rows.
static void linear_scalar(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                          const float* bias) {
#pragma omp parallel if (M * N * K >= (int64_t(1) << 17))  // tiny work: the calling thread alone
  {
    std::vector<float> row(K);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t k = 0; k < K; ++k) row[k] = load_w(w, wdt, n * K + k);
      for (int64_t m = 0; m < M; ++m) {
        float acc = 0.f;
        const float* xr = x + m * K;
        for (int64_t k = 0; k < K; ++k) acc += xr[k] * row[k];
        y[m * N + n] = acc + (bias ? bias[n] : 0.f);
      }
    }
  }
}

bool linear_has_avx2() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return ok;
}

void linear_path(LinearPath path, const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N,
                 float* y, const float* bias) {
  G4_CHECK(wdt == DType::F32 || wdt == DType::BF16 || wdt == DType::F16, "linear: unsupported weight dtype {}",
           dtype_name(wdt));
  G4_CHECK(M >= 0 && K >= 0 && N >= 0, "linear: negative size (M={}, K={}, N={})", M, K, N);
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) y[m * N + n] = bias ? bias[n] : 0.f;
    return;
  }
  if (path == LinearPath::Auto) {
    if (!linear_has_avx2())
      path = LinearPath::Scalar;
    else
      path = M <= kGemvMaxM ? LinearPath::Gemv : LinearPath::Gemm;
  }
  if (path != LinearPath::Scalar)
    G4_CHECK(linear_has_avx2(), "linear: the AVX2/FMA/F16C kernels are not supported by this CPU");
  switch (path) {
    case LinearPath::Gemv: detail::linear_gemv_avx2(x, M, K, w, wdt, N, y, bias); break;
    case LinearPath::Gemm: detail::linear_gemm_avx2(x, M, K, w, wdt, N, y, bias); break;
    default: linear_scalar(x, M, K, w, wdt, N, y, bias); break;
  }
}

void linear(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y, const float* bias) {
  linear_path(LinearPath::Auto, x, M, K, w, wdt, N, y, bias);
}

}  // namespace gemma4::cpu
