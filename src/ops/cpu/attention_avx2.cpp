// AVX2/FMA attention kernel with the semantics of Ops::attention (declared in linear.h; see there). Compiled
// with -mavx2 -mfma -mf16c -O3; call only when linear_has_avx2(). Like linear_avx2.cpp, this file uses no
// standard-library templates or inline functions shared with other translation units (avx2_common.h's have
// internal linkage).
//
// Per task (query position t, KV head, a chunk of up to 8 of its query heads):
//   pass 1: scores of the chunk's heads against every visible key; each key row is loaded once for all heads;
//   pass 2: softmax numerators with a vectorized exp, row sums;
//   pass 3: o = sum_s p[s] v[s] / sum, 64 output columns at a time in registers.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "ops/cpu/avx2_common.h"
#include "ops/cpu/linear.h"

namespace gemma4::cpu {
namespace {

using namespace avx2;  // exp_ps

// The 8 horizontal sums of a[0..7], as one vector.
inline __m256 hsum8x8(const __m256 a[8]) {
  const __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_add_ps(_mm256_permute2f128_ps(h0, h1, 0x20), _mm256_permute2f128_ps(h0, h1, 0x31));
}

struct Mask {
  const int64_t* q_pos;
  const int64_t* k_pos;
  int window;
  const int32_t* q_block;
  const int32_t* k_block;
  bool visible(int64_t qi, int64_t ki) const {
    const int64_t q = q_pos[qi], k = k_pos[ki];
    const bool same_block = q_block && q_block[qi] >= 0 && q_block[qi] == k_block[ki];
    return (k <= q || same_block) && (window <= 0 || k > q - window);
  }
};

// Scores of G query heads (q + g*hd) against key rows; sc[g*S + s]; -inf where not visible. Returns the
// number of visible keys.
template <int G>
int64_t scores(const float* q, const float* k, int64_t kstride, int64_t S, int hd, float scale, const Mask& mask,
               int64_t t, float* sc, float* mx) {
  for (int g = 0; g < G; ++g) mx[g] = -__builtin_inff();
  int64_t nvis = 0;
  alignas(32) float tmp[8];
  for (int64_t s = 0; s < S; ++s) {
    if (!mask.visible(t, s)) {
      for (int g = 0; g < G; ++g) sc[g * S + s] = -__builtin_inff();
      continue;
    }
    ++nvis;
    const float* kr = k + s * kstride;
    __m256 acc[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; ++g) acc[g] = _mm256_setzero_ps();
    for (int i = 0; i < hd; i += 8) {
      const __m256 kv = _mm256_loadu_ps(kr + i);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) acc[g] = _mm256_fmadd_ps(_mm256_loadu_ps(q + g * hd + i), kv, acc[g]);
    }
    _mm256_store_ps(tmp, _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(scale)));
    for (int g = 0; g < G; ++g) {
      sc[g * S + s] = tmp[g];
      mx[g] = tmp[g] > mx[g] ? tmp[g] : mx[g];
    }
  }
  return nvis;
}

// o[0, hd) = sum_s p[s] v[s] * inv, NB*8 columns starting at column c.
template <int NB>
inline void pv_block(const float* p, const float* v, int64_t vstride, int64_t S, int c, float inv, float* o) {
  __m256 acc[NB];
#pragma GCC unroll 8
  for (int j = 0; j < NB; ++j) acc[j] = _mm256_setzero_ps();
  for (int64_t s = 0; s < S; ++s) {
    if (p[s] == 0.f) continue;
    const __m256 ps = _mm256_set1_ps(p[s]);
    const float* vr = v + s * vstride + c;
#pragma GCC unroll 8
    for (int j = 0; j < NB; ++j) acc[j] = _mm256_fmadd_ps(ps, _mm256_loadu_ps(vr + 8 * j), acc[j]);
  }
  const __m256 iv = _mm256_set1_ps(inv);
#pragma GCC unroll 8
  for (int j = 0; j < NB; ++j) _mm256_storeu_ps(o + c + 8 * j, _mm256_mul_ps(acc[j], iv));
}

// Scratch of the calling thread (freed at thread exit).
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t count) {
    if (count > n) {
      free(p);
      p = static_cast<float*>(aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64));
      if (!p) abort();
      n = count;
    }
    return p;
  }
  ~Scratch() { free(p); }
};
thread_local Scratch tls_scores;

void attend_chunk(const float* q, const float* k, const float* v, int64_t S, int64_t kstride, int hd, int G,
                  float scale, const Mask& mask, int64_t t, float* o, float* sc) {
  // q, o: the chunk's first head; heads are hd apart.
  float mx[8];
  int64_t nvis = 0;
  switch (G) {
    case 1: nvis = scores<1>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 2: nvis = scores<2>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 3: nvis = scores<3>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 4: nvis = scores<4>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 5: nvis = scores<5>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 6: nvis = scores<6>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    case 7: nvis = scores<7>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
    default: nvis = scores<8>(q, k, kstride, S, hd, scale, mask, t, sc, mx); break;
  }
  for (int g = 0; g < G; ++g) {
    float* out = o + int64_t(g) * hd;
    if (nvis == 0) {
      for (int i = 0; i < hd; ++i) out[i] = 0.f;
      continue;
    }
    float* p = sc + g * S;
    const __m256 m = _mm256_set1_ps(mx[g]);
    __m256 sum = _mm256_setzero_ps();
    int64_t s = 0;
    for (; s + 8 <= S; s += 8) {
      const __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(p + s), m));
      _mm256_storeu_ps(p + s, e);
      sum = _mm256_add_ps(sum, e);
    }
    alignas(32) float tail[8];
    for (int j = 0; j < 8; ++j) tail[j] = s + j < S ? p[s + j] : -__builtin_inff();
    const __m256 e = exp_ps(_mm256_sub_ps(_mm256_load_ps(tail), m));
    _mm256_store_ps(tail, e);
    for (int j = 0; s + j < S; ++j) p[s + j] = tail[j];
    sum = _mm256_add_ps(sum, e);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
    const float inv = 1.f / _mm_cvtss_f32(s4);
    int c = 0;
    for (; c + 64 <= hd; c += 64) pv_block<8>(p, v, kstride, S, c, inv, out);
    switch ((hd - c) / 8) {
      case 1: pv_block<1>(p, v, kstride, S, c, inv, out); break;
      case 2: pv_block<2>(p, v, kstride, S, c, inv, out); break;
      case 3: pv_block<3>(p, v, kstride, S, c, inv, out); break;
      case 4: pv_block<4>(p, v, kstride, S, c, inv, out); break;
      case 5: pv_block<5>(p, v, kstride, S, c, inv, out); break;
      case 6: pv_block<6>(p, v, kstride, S, c, inv, out); break;
      case 7: pv_block<7>(p, v, kstride, S, c, inv, out); break;
      default: break;
    }
  }
}

}  // namespace

bool attention_avx2(const float* q, const float* k, const float* v, int64_t T, int64_t S, int n_q_heads,
                    int n_kv_heads, int head_dim, float scale, const int64_t* q_pos, const int64_t* k_pos, int window,
                    const int32_t* q_block, const int32_t* k_block, float* o) {
  if (head_dim % 8 != 0 || n_kv_heads <= 0 || n_q_heads % n_kv_heads != 0) return false;
  const Mask mask{q_pos, k_pos, window, q_block, k_block};
  const int group = n_q_heads / n_kv_heads;
  const int64_t qstride = int64_t(n_q_heads) * head_dim, kstride = int64_t(n_kv_heads) * head_dim;
  // Tasks: (t, kv head, chunk of <= 8 query heads); chunks smaller than 8 only when there are fewer
  // (t, kv head) pairs than threads (decode).
  const int64_t nt = omp_get_max_threads();
  int chunk = group < 8 ? group : 8;
  const int64_t pairs = T * n_kv_heads;
  if (pairs < nt) {
    const int64_t want = (nt + pairs - 1) / pairs;  // chunks per pair
    const int c = int((group + want - 1) / want);
    chunk = c < chunk ? (c < 1 ? 1 : c) : chunk;
  }
  const int chunks_per_kv = (group + chunk - 1) / chunk;
  const int64_t n_tasks = pairs * chunks_per_kv;
  // Small problems (decode at short contexts) run on the calling thread: a parallel region costs more
  // than the work, and much more when the machine is busy.
  const double work = double(T) * double(S) * n_q_heads * head_dim;
#pragma omp parallel if (n_tasks > 1 && work > 262144.0)
  {
    float* sc = tls_scores.get(size_t(8) * (S > 0 ? S : 1));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < n_tasks; ++task) {
      const int64_t pair = task / chunks_per_kv;
      const int ci = int(task % chunks_per_kv);
      const int64_t t = pair / n_kv_heads;
      const int kh = int(pair % n_kv_heads);
      const int h0 = kh * group + ci * chunk;
      const int G = (ci + 1) * chunk <= group ? chunk : group - ci * chunk;
      attend_chunk(q + t * qstride + int64_t(h0) * head_dim, k + int64_t(kh) * head_dim, v + int64_t(kh) * head_dim,
                   S, kstride, head_dim, G, scale, mask, t, o + t * qstride + int64_t(h0) * head_dim, sc);
    }
  }
  return true;
}

}  // namespace gemma4::cpu
