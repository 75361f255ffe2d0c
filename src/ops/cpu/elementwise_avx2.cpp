// AVX2/FMA kernels for the row-wise ops that follow the matmuls in the decoder (declared in linear.h):
// gelu_tanh(gate) * up and RMSNorm. Compiled with -mavx2 -mfma -mf16c -O3; call only when linear_has_avx2().
// No standard-library templates or inline functions shared with other units here (avx2_common.h's have
// internal linkage; see linear_avx2.cpp).
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "ops/cpu/avx2_common.h"
#include "ops/cpu/linear.h"

namespace gemma4::cpu {
namespace {

using namespace avx2;  // load8 / load1, exp_ps

// gelu_tanh(x) = 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3); the second
// form has no cancellation for any sign of u.
inline __m256 gelu_tanh_ps(__m256 x) {
  const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                 _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
  const __m256 e = exp_ps(_mm256_mul_ps(_mm256_set1_ps(-2.f), u));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.f), e));
}

inline float gelu_tanh_1(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return x / (1.f + expf(-2.f * u));
}

template <int WT>
void rmsnorm_rows(const float* x, const void* w, int64_t rows, int64_t D, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * D > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * D;
    float* yr = y + r * D;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= D; i += 32) {
      const __m256 v0 = _mm256_loadu_ps(xr + i), v1 = _mm256_loadu_ps(xr + i + 8);
      const __m256 v2 = _mm256_loadu_ps(xr + i + 16), v3 = _mm256_loadu_ps(xr + i + 24);
      a0 = _mm256_fmadd_ps(v0, v0, a0);
      a1 = _mm256_fmadd_ps(v1, v1, a1);
      a2 = _mm256_fmadd_ps(v2, v2, a2);
      a3 = _mm256_fmadd_ps(v3, v3, a3);
    }
    for (; i + 8 <= D; i += 8) {
      const __m256 v = _mm256_loadu_ps(xr + i);
      a0 = _mm256_fmadd_ps(v, v, a0);
    }
    const __m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    double ss = _mm_cvtss_f32(s);
    for (; i < D; ++i) ss += double(xr[i]) * xr[i];
    const float inv = 1.0f / sqrtf(float(ss / double(D)) + eps);
    const __m256 iv = _mm256_set1_ps(inv);
    int64_t j = 0;
    if (w) {
      for (; j + 8 <= D; j += 8)
        _mm256_storeu_ps(yr + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(xr + j), iv), load8<WT>(w, j)));
      for (; j < D; ++j) yr[j] = xr[j] * inv * load1<WT>(w, j);
    } else {
      for (; j + 8 <= D; j += 8) _mm256_storeu_ps(yr + j, _mm256_mul_ps(_mm256_loadu_ps(xr + j), iv));
      for (; j < D; ++j) yr[j] = xr[j] * inv;
    }
  }
}

}  // namespace

void gelu_tanh_mul_avx2(const float* gate, const float* up, float* out, int64_t n) {
  const int64_t n8 = n / 8 * 8;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n8; i += 8) {
    const __m256 g = gelu_tanh_ps(_mm256_loadu_ps(gate + i));
    _mm256_storeu_ps(out + i, up ? _mm256_mul_ps(g, _mm256_loadu_ps(up + i)) : g);
  }
  for (int64_t i = n8; i < n; ++i) out[i] = gelu_tanh_1(gate[i]) * (up ? up[i] : 1.f);
}

void rmsnorm_avx2(const float* x, const void* w, DType wdt, int64_t rows, int64_t D, float eps, float* y) {
  switch (wdt) {
    case DType::BF16: rmsnorm_rows<1>(x, w, rows, D, eps, y); break;
    case DType::F16: rmsnorm_rows<2>(x, w, rows, D, eps, y); break;
    default: rmsnorm_rows<0>(x, w, rows, D, eps, y); break;
  }
}

}  // namespace gemma4::cpu
