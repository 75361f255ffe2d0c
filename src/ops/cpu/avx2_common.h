// Helpers shared by the AVX2 translation units (*_avx2.cpp, compiled with -mavx2 -mfma -mf16c); include it from
// nowhere else. Everything here has internal linkage (an anonymous namespace), so each of those units keeps its
// own copy and no AVX2 code can stand in for a function of a unit built for the baseline CPU (the concern that
// keeps standard-library templates out of those units: linear_avx2.cpp).
#pragma once
#include <immintrin.h>
#include <stdint.h>

namespace gemma4::cpu::avx2 {
namespace {

// A weight's stored dtype, as a template argument.
enum WType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// 8 consecutive weights starting at element i, as f32.
template <int WT>
inline __m256 load8(const void* w, int64_t i) {
  if constexpr (WT == kF32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (WT == kBF16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_cvtph_ps(h);
  }
}

// Weight element i as f32.
template <int WT>
inline float load1(const void* w, int64_t i) {
  if constexpr (WT == kF32) {
    return static_cast<const float*>(w)[i];
  } else if constexpr (WT == kBF16) {
    uint32_t u = uint32_t(static_cast<const uint16_t*>(w)[i]) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
  } else {
    return _cvtsh_ss(static_cast<const uint16_t*>(w)[i]);
  }
}

// The sum of the 8 lanes.
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) over the float range (relative error ~2e-7): below -87 gives 0 (also -inf), above 88 gives ~1.6e38.
inline __m256 exp_ps(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
  // x = n ln2 + r, |r| <= ln2/2; ln2 split into a part exact in float and the remainder.
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  // e^r by its Taylor series to r^7/7! (truncation error < 3e-8 for |r| <= 0.347), Horner form.
  __m256 p = _mm256_set1_ps(1.f / 5040.f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 720.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 120.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 24.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f / 6.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.f));
  // 2^n: n in [-126, 127], a normal biased exponent.
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

}  // namespace
}  // namespace gemma4::cpu::avx2
