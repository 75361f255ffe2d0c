// AVX2/FMA/F16C kernels for y[M,N] = x[M,K] . w[N,K]^T (+ bias). Compiled with -mavx2 -mfma -mf16c -O3;
// only called after linear_has_avx2() said yes (linear.cpp).
//
// This translation unit deliberately uses no C++ standard-library templates or inline functions shared
// with other translation units (std::vector, fmt, ...): an out-of-line copy of such a function compiled
// here with AVX2 could be the one the linker keeps, and would then fault on a CPU without AVX2. The helpers
// of avx2_common.h are in an anonymous namespace: each AVX2 unit has its own copy.
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ops/cpu/avx2_common.h"
#include "ops/cpu/linear.h"

namespace gemma4::cpu::detail {
namespace {

using namespace avx2;  // WType, load8 / load1, hsum

// A growable 64-byte-aligned scratch buffer owned by one thread (freed at thread exit).
struct Scratch {
  float* p = nullptr;
  size_t n = 0;
  float* get(size_t count) {
    if (count > n) {
      free(p);
      size_t bytes = (count * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(aligned_alloc(64, bytes));
      n = p ? count : 0;
      if (!p) abort();
    }
    return p;
  }
  ~Scratch() { free(p); }
};

// ------------------------------------------------------------------------------------------------------
// GEMV (small M): each weight row is read once from memory.

// Weight rows [n0, n0+R) against MB rows of x (x loads shared by the R rows). The tile's weights are one
// contiguous block read as R interleaved streams; the next tile is prefetched into L2 linearly at the
// same pace, so that the memory stream does not stall at tile boundaries (measured on the 2-core EPYC dev
// box: ~90% of the read bandwidth instead of 55-75% without; prefetching into L1 instead evicts x when K
// is large).
template <int WT, int MB, int R, bool kPrefetch>
inline void gemv_tile(const float* x, int64_t K, const void* w, int64_t n0, int64_t N, float* y,
                      const float* bias) {
  constexpr int64_t kWs = WT == kF32 ? 4 : 2;
  constexpr int kLinesPerStep = int((R * 8 * kWs + 63) / 64);  // bytes consumed per k-step / line
  __m256 acc[MB][R];
#pragma GCC unroll 8
  for (int m = 0; m < MB; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  const char* next = static_cast<const char*>(w) + (n0 + R) * K * kWs;
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    if constexpr (kPrefetch) {
#pragma GCC unroll 8
      for (int l = 0; l < kLinesPerStep; ++l) _mm_prefetch(next + (k / 8 * kLinesPerStep + l) * 64, _MM_HINT_T1);
    }
    __m256 xv[MB];
#pragma GCC unroll 8
    for (int m = 0; m < MB; ++m) xv[m] = _mm256_loadu_ps(x + m * K + k);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 wv = load8<WT>(w, (n0 + r) * K + k);
#pragma GCC unroll 8
      for (int m = 0; m < MB; ++m) acc[m][r] = _mm256_fmadd_ps(xv[m], wv, acc[m][r]);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MB; ++m)
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      float s = hsum(acc[m][r]);
      for (int64_t kk = k; kk < K; ++kk) s += x[m * K + kk] * load1<WT>(w, (n0 + r) * K + kk);
      y[m * N + n0 + r] = s + (bias ? bias[n0 + r] : 0.f);
    }
}

// Rows [nb, ne) of w against the MB rows of x: R rows at a time, then one at a time.
template <int WT, int MB, int R>
inline void gemv_rows(const float* x, int64_t K, const void* w, int64_t nb, int64_t ne, int64_t N, float* y,
                      const float* bias) {
  int64_t n = nb;
  for (; n + 2 * R <= ne; n += R) gemv_tile<WT, MB, R, true>(x, K, w, n, N, y, bias);
  for (; n + R <= ne; n += R) gemv_tile<WT, MB, R, false>(x, K, w, n, N, y, bias);
  for (; n < ne; ++n) gemv_tile<WT, MB, 1, false>(x, K, w, n, N, y, bias);
}

// Below this many multiply-adds a matmul runs on the calling thread: a parallel region costs more than the
// work, and on a busy machine (ctest -j2 on 2 cores) threads spinning at the barrier of thousands of tiny
// regions can stall each other for whole time slices. Every output is computed by one thread either way, so
// results do not depend on the choice.
constexpr int64_t kParallelMacs = int64_t(1) << 17;

template <int WT>
void gemv(const float* x, int64_t M, int64_t K, const void* w, int64_t N, float* y, const float* bias) {
  // Contiguous chunks of rows handed out dynamically (a thread that is descheduled on a busy machine
  // does not hold the others up); a chunk is long enough to stream well.
  const int64_t nt = omp_get_max_threads();
  int64_t chunk = N / (8 * nt);
  chunk = chunk < 64 ? 64 : (chunk + 7) / 8 * 8;
  const int64_t n_chunks = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(dynamic, 1) if (M * N * K >= kParallelMacs)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t nb = c * chunk, ne = nb + chunk < N ? nb + chunk : N;
    if (M == 1) {
      gemv_rows<WT, 1, 8>(x, K, w, nb, ne, N, y, bias);
    } else {
      // Groups of 8 weight rows (re-read from L1/L2 for each block of up to 4 input rows).
      for (int64_t n = nb; n < ne; n += 8) {
        const int64_t n1 = n + 8 < ne ? n + 8 : ne;
        for (int64_t m = 0; m < M; m += 4) {
          const int64_t mb = M - m < 4 ? M - m : 4;
          const float* xm = x + m * K;
          float* ym = y + m * N;
          switch (mb) {
            case 1: gemv_rows<WT, 1, 4>(xm, K, w, n, n1, N, ym, bias); break;
            case 2: gemv_rows<WT, 2, 4>(xm, K, w, n, n1, N, ym, bias); break;
            case 3: gemv_rows<WT, 3, 2>(xm, K, w, n, n1, N, ym, bias); break;
            default: gemv_rows<WT, 4, 2>(xm, K, w, n, n1, N, ym, bias); break;
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------------
// GEMM (large M). x is packed once into 6-row panels [M/6][K][6]; each thread converts KC x NC blocks of
// w into 16-column panels [NC/16][KC][16] of f32 and runs all of its M rows against them.

constexpr int MR = 6, NR = 16;
constexpr int64_t KC = 256, NC = 512;

// 8x8 transpose: r[i] holds row i (8 values); on return r[j] holds column j.
inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Packs w rows [n0, n0+nc) x columns [k0, k0+kc) into Bp as f32 [ceil(nc/16)][kc][16], zero-padding rows
// past nc.
template <int WT>
void pack_b(const void* w, int64_t K, int64_t n0, int64_t nc, int64_t k0, int64_t kc, float* Bp) {
  for (int64_t g = 0; g * NR < nc; ++g) {
    float* dst = Bp + g * kc * NR;
    const int64_t rows = nc - g * NR < NR ? nc - g * NR : NR;
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      for (int h = 0; h < 2; ++h) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) {
          const int64_t row = h * 8 + i;
          r[i] = row < rows ? load8<WT>(w, (n0 + g * NR + row) * K + k0 + k) : _mm256_setzero_ps();
        }
        transpose8(r);
        for (int j = 0; j < 8; ++j) _mm256_store_ps(dst + (k + j) * NR + h * 8, r[j]);
      }
    }
    for (; k < kc; ++k)
      for (int row = 0; row < NR; ++row)
        dst[k * NR + row] = row < rows ? load1<WT>(w, (n0 + g * NR + row) * K + k0 + k) : 0.f;
  }
}

// Packs rows [6p, 6p+6) of x (zero past M) into Ap + p*K*6 as [K][6].
void pack_a_panel(const float* x, int64_t M, int64_t K, int64_t p, float* Ap) {
  float* dst = Ap + p * K * MR;
  for (int i = 0; i < MR; ++i) {
    const int64_t m = p * MR + i;
    if (m < M) {
      const float* src = x + m * K;
      for (int64_t k = 0; k < K; ++k) dst[k * MR + i] = src[k];
    } else {
      for (int64_t k = 0; k < K; ++k) dst[k * MR + i] = 0.f;
    }
  }
}

// C[6][16] (row stride ldc) = (first ? bias : C) + A[kc][6] . B[kc][16].
inline void kernel_6x16(int64_t kc, const float* __restrict A, const float* __restrict B, float* C, int64_t ldc,
                        bool first, const float* bias) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(B), b1 = _mm256_load_ps(B + 8);
    __m256 a;
    a = _mm256_broadcast_ss(A + 0);
    c00 = _mm256_fmadd_ps(a, b0, c00);
    c01 = _mm256_fmadd_ps(a, b1, c01);
    a = _mm256_broadcast_ss(A + 1);
    c10 = _mm256_fmadd_ps(a, b0, c10);
    c11 = _mm256_fmadd_ps(a, b1, c11);
    a = _mm256_broadcast_ss(A + 2);
    c20 = _mm256_fmadd_ps(a, b0, c20);
    c21 = _mm256_fmadd_ps(a, b1, c21);
    a = _mm256_broadcast_ss(A + 3);
    c30 = _mm256_fmadd_ps(a, b0, c30);
    c31 = _mm256_fmadd_ps(a, b1, c31);
    a = _mm256_broadcast_ss(A + 4);
    c40 = _mm256_fmadd_ps(a, b0, c40);
    c41 = _mm256_fmadd_ps(a, b1, c41);
    a = _mm256_broadcast_ss(A + 5);
    c50 = _mm256_fmadd_ps(a, b0, c50);
    c51 = _mm256_fmadd_ps(a, b1, c51);
    A += MR;
    B += NR;
  }
  __m256 i0, i1;
  if (first) {
    i0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
    i1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  }
#define G4_STORE_ROW(m, r0, r1)                                                           \
  {                                                                                       \
    float* c = C + (m) * ldc;                                                             \
    _mm256_storeu_ps(c, _mm256_add_ps(r0, first ? i0 : _mm256_loadu_ps(c)));              \
    _mm256_storeu_ps(c + 8, _mm256_add_ps(r1, first ? i1 : _mm256_loadu_ps(c + 8)));      \
  }
  G4_STORE_ROW(0, c00, c01)
  G4_STORE_ROW(1, c10, c11)
  G4_STORE_ROW(2, c20, c21)
  G4_STORE_ROW(3, c30, c31)
  G4_STORE_ROW(4, c40, c41)
  G4_STORE_ROW(5, c50, c51)
#undef G4_STORE_ROW
}

thread_local Scratch tls_a, tls_b;

template <int WT>
void gemm(const float* x, int64_t M, int64_t K, const void* w, int64_t N, float* y, const float* bias) {
  const int64_t n_panels = (M + MR - 1) / MR;
  float* Ap = tls_a.get(size_t(n_panels) * K * MR);  // the calling thread's buffer, shared by the team
  const int64_t n_groups = (N + NR - 1) / NR;        // 16-column groups
#pragma omp parallel if (M * N * K >= kParallelMacs)
  {
#pragma omp for schedule(static)
    for (int64_t p = 0; p < n_panels; ++p) pack_a_panel(x, M, K, p, Ap);

    // Tasks: column blocks (a multiple of 16 wide, about 4 per thread) x row blocks (only when there
    // are too few column blocks), handed out dynamically.
    const int64_t nt = omp_get_num_threads();
    int64_t gpt = n_groups / (4 * nt);  // 16-column groups per task
    gpt = gpt < 1 ? 1 : gpt > NC / NR ? NC / NR : gpt;
    const int64_t tn = (n_groups + gpt - 1) / gpt;
    int64_t tm = tn >= nt ? 1 : (2 * nt + tn - 1) / tn;
    if (tm > n_panels) tm = n_panels;
    float* Bp = tls_b.get(size_t(KC) * NC);
    alignas(32) float tmp[MR * NR];
    alignas(32) float btmp[NR];
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tn * tm; ++task) {
      const int64_t jt = task % tn, it = task / tn;
      const int64_t n_begin = jt * gpt * NR, n_end = (jt + 1) * gpt * NR < N ? (jt + 1) * gpt * NR : N;
      const int64_t p0 = n_panels * it / tm, p1 = n_panels * (it + 1) / tm;
      for (int64_t nb = n_begin; nb < n_end; nb += NC) {
        const int64_t nc = n_end - nb < NC ? n_end - nb : NC;
        for (int64_t kb = 0; kb < K; kb += KC) {
          const int64_t kc = K - kb < KC ? K - kb : KC;
          const bool first = kb == 0;
          pack_b<WT>(w, K, nb, nc, kb, kc, Bp);
          for (int64_t p = p0; p < p1; ++p) {
            const float* A = Ap + (p * K + kb) * MR;
            const int64_t m = p * MR;
            const int64_t mr = M - m < MR ? M - m : MR;
            for (int64_t j = 0; j < nc; j += NR) {
              const float* B = Bp + (j / NR) * kc * NR;
              const int64_t n = nb + j;
              const int64_t nr = nc - j < NR ? nc - j : NR;
              if (mr == MR && nr == NR) {
                kernel_6x16(kc, A, B, y + m * N + n, N, first, bias ? bias + n : nullptr);
              } else {
                kernel_6x16(kc, A, B, tmp, NR, true, nullptr);
                if (first)
                  for (int64_t c = 0; c < nr; ++c) btmp[c] = bias ? bias[n + c] : 0.f;
                for (int64_t i = 0; i < mr; ++i)
                  for (int64_t c = 0; c < nr; ++c) {
                    float* o = y + (m + i) * N + n + c;
                    *o = (first ? btmp[c] : *o) + tmp[i * NR + c];
                  }
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace

void linear_gemv_avx2(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias) {
  switch (wdt) {
    case DType::F32: gemv<kF32>(x, M, K, w, N, y, bias); break;
    case DType::BF16: gemv<kBF16>(x, M, K, w, N, y, bias); break;
    default: gemv<kF16>(x, M, K, w, N, y, bias); break;
  }
}

void linear_gemm_avx2(const float* x, int64_t M, int64_t K, const void* w, DType wdt, int64_t N, float* y,
                      const float* bias) {
  switch (wdt) {
    case DType::F32: gemm<kF32>(x, M, K, w, N, y, bias); break;
    case DType::BF16: gemm<kBF16>(x, M, K, w, N, y, bias); break;
    default: gemm<kF16>(x, M, K, w, N, y, bias); break;
  }
}

}  // namespace gemma4::cpu::detail
