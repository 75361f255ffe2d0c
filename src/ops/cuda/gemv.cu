// Decode-shaped matmuls (M <= 8 rows): y[M,N] = x[M,K] . w[N,K]^T with 16-byte weight loads. Batch-1 decode
// reads every weight byte once per token, so this kernel is what decides tok/s: each warp owns one output
// column n and streams its weight row with 128-bit loads that bypass L1 (ld_stream16), kUnroll loads in
// flight per lane; x (a few KB, hot in L1) is read as float4. Accumulation in fp32, one warp reduction per
// (row, column) at the end.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

constexpr int kMaxM = 8;
constexpr int kWarps = 8;
constexpr int kUnroll = 4;

// Half-precision weights (BF16/F16): a lane reads 8 weights per load; K % 8 == 0, rows 16-byte aligned.
// KS warps share one output column (each takes every KS-th 512-byte chunk of the row; partial sums meet in
// shared memory): with few columns (N = 2048 on a 132-SM GPU) one warp per column leaves too few loads in
// flight to reach the memory bandwidth.
// Up to three weight matrices of the same input side by side (the q/k/v projections in one launch): column n
// of the launch is column n - end[i-1] of segment i.
struct Segments {
  const uint4* w[3];
  float* y[3];
  int64_t end[3];  // cumulative column counts
};

template <int WDT, int M, int KS>
__global__ void __launch_bounds__(kWarps * 32) gemv16_kernel(const float* __restrict__ x, Segments seg,
                                                             int64_t N_total, int64_t K) {
  __shared__ float part[kWarps][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t n_all = int64_t(blockIdx.x) * (kWarps / KS) + warp / KS;
  // Constant indices only: a run-time index into the parameter struct would move it to local memory.
  const bool s0 = n_all < seg.end[0], s1 = !s0 && n_all < seg.end[1];
  const int64_t base = s0 ? 0 : s1 ? seg.end[0] : seg.end[1];
  const int64_t n = n_all - base, N = (s0 ? seg.end[0] : s1 ? seg.end[1] : seg.end[2]) - base;
  const uint4* __restrict__ w = s0 ? seg.w[0] : s1 ? seg.w[1] : seg.w[2];
  float* __restrict__ y = s0 ? seg.y[0] : s1 ? seg.y[1] : seg.y[2];
  const int kpart = warp % KS;
  const int64_t K8 = K / 8;  // 16-byte chunks per row
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  const uint4* wr = w + (n_all < N_total ? n : 0) * K8;
  const int64_t step = 32 * KS;
  int64_t c = lane + 32 * kpart;
  // Batches of kUnroll 16-byte loads per lane, the next batch in flight while the current one is used (chunks
  // past the row's end are skipped). The first batch does not depend on earlier kernels: it is issued before
  // the PDL wait, so it overlaps the previous kernel's tail.
  uint4 u[kUnroll];
  auto load_batch = [&](int64_t c0) {
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) u[j] = c0 + step * j < K8 ? ld_stream16(wr + c0 + step * j) : make_uint4(0, 0, 0, 0);
  };
  if (n_all < N_total) load_batch(c);
  pdl_wait();
  pdl_trigger();
  if (n_all < N_total)
    for (; c < K8; c += step * kUnroll) {
      uint4 cur[kUnroll];
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) cur[j] = u[j];
      if (c + step * kUnroll < K8) load_batch(c + step * kUnroll);
#pragma unroll
      for (int j = 0; j < kUnroll; ++j) {
        if (c + step * j >= K8) break;
        float f[8];
        widen8<WDT>(cur[j], f);
        const int64_t k = (c + step * j) * 8;
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] += dot8(f, x + m * K + k);
      }
    }
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
  if constexpr (KS == 1) {
    if (lane == 0 && n_all < N_total)
#pragma unroll
      for (int m = 0; m < M; ++m) y[m * N + n] = acc[m];
  } else {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) part[warp][m] = acc[m];
    __syncthreads();
    if (kpart == 0 && lane == 0 && n_all < N_total) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float t = 0.f;
#pragma unroll
        for (int j = 0; j < KS; ++j) t += part[warp + j][m];
        y[m * N + n] = t;
      }
    }
  }
}

// The persistent form of gemv16_kernel: a grid of at most the resident blocks, group gid (KS warps) takes
// columns gid, gid + G, gid + 2G, ... (G groups in the grid), and each lane walks its load slots (L per column,
// the last one possibly past the row's end) across column boundaries, so the next column's first batch is in
// flight while the current column is finished: no block turnover between columns, and the loads stay in
// flight to the end of the group's work (the plain form's blocks each load one batch or a few and exit).
// Partial sums of a column's KS warps meet in shared memory (two buffers, alternating by column) at a named
// barrier of the group's warps. One row fits 64 registers: 4 blocks an SM (fewer blocks an SM, or 8 loads a lane
// per batch at 2 blocks an SM, were slower on every decode shape, see README).
template <int WDT, int M, int KS>
__global__ void __launch_bounds__(kWarps * 32, M == 1 ? 4 : 2)
    gemv16_persistent_kernel(const float* __restrict__ x, Segments seg, int N_total, int K) {
  __shared__ float part[2][kWarps][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = int(blockIdx.x) * (kWarps / KS) + warp / KS, G = int(gridDim.x) * (kWarps / KS);
  const int kpart = warp % KS;
  const int K8 = K / 8, step = 32 * KS;
  const int L = (K8 + step - 1) / step;  // load slots per lane per column
  const int ncols = gid < N_total ? (N_total - 1 - gid) / G + 1 : 0;
  const int total = ncols * L;
  const int c0 = lane + 32 * kpart;  // this lane's first chunk of a row
  // Column n_all of the launch: its segment (constant indices into seg, as above).
  auto seg_of = [&](int n_all) { return n_all < seg.end[0] ? 0 : n_all < seg.end[1] ? 1 : 2; };
  auto row_of = [&](int n_all) {
    const int i = seg_of(n_all);
    const int64_t base = i == 0 ? 0 : i == 1 ? seg.end[0] : seg.end[1];
    return (i == 0 ? seg.w[0] : i == 1 ? seg.w[1] : seg.w[2]) + (n_all - base) * K8 + c0;
  };
  // Load cursor: slot j of the column whose row (offset by c0) is lrow.
  int lcol = gid, lj = 0;
  const uint4* lrow = ncols > 0 ? row_of(gid) : nullptr;
  uint4 u[kUnroll];
  auto load_batch = [&](int s0) {
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      if (s0 + j >= total) break;
      u[j] = c0 + step * lj < K8 ? ld_stream16(lrow + step * lj) : make_uint4(0, 0, 0, 0);
      if (++lj == L) {
        lj = 0, lcol += G;
        if (lcol < N_total) lrow = row_of(lcol);
      }
    }
  };
  if (total > 0) load_batch(0);
  pdl_wait();
  pdl_trigger();
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  int ccol = gid, cj = 0, ci = 0;  // compute cursor; ci counts finished columns
  for (int s0 = 0; s0 < total; s0 += kUnroll) {
    uint4 cur[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) cur[j] = u[j];
    load_batch(s0 + kUnroll);
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) {
      if (s0 + j >= total) break;
      const int c = c0 + step * cj;
      if (c < K8) {
        float f[8];
        widen8<WDT>(cur[j], f);
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] += dot8(f, x + m * K + c * 8);
      }
      if (++cj == L) {  // column ccol done
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = warp_sum(acc[m]);
        if constexpr (KS > 1) {
          const int buf = ci & 1;
          if (lane == 0)
#pragma unroll
            for (int m = 0; m < M; ++m) part[buf][warp][m] = acc[m];
          // The group's KS warps only (barrier ids 1, 2, ...; 0 is __syncthreads').
          asm volatile("bar.sync %0, %1;" ::"r"(1 + warp / KS), "r"(KS * 32) : "memory");
#pragma unroll
          for (int m = 0; m < M; ++m) {
            acc[m] = 0.f;
#pragma unroll
            for (int p = 0; p < KS; ++p) acc[m] += part[buf][warp - kpart + p][m];
          }
        }
        if (kpart == 0 && lane == 0) {
          const int i = seg_of(ccol);
          const int64_t base = i == 0 ? 0 : i == 1 ? seg.end[0] : seg.end[1];
          const int64_t N = (i == 0 ? seg.end[0] : i == 1 ? seg.end[1] : seg.end[2]) - base;
          float* y = (i == 0 ? seg.y[0] : i == 1 ? seg.y[1] : seg.y[2]) + (ccol - base);
#pragma unroll
          for (int m = 0; m < M; ++m) y[m * N] = acc[m];
        }
#pragma unroll
        for (int m = 0; m < M; ++m) acc[m] = 0.f;
        cj = 0, ccol += G, ++ci;
      }
    }
  }
}

// F32 weights: 4 per 16-byte load; K % 4 == 0.
template <int M>
__global__ void __launch_bounds__(kWarps * 32) gemv32_kernel(const float* __restrict__ x, const float4* __restrict__ w,
                                                             float* __restrict__ y, int64_t N, int64_t K) {
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (n >= N) return;
  const int64_t K4 = K / 4;
  const float4* wr = w + n * K4;
  float acc[M];
#pragma unroll
  for (int m = 0; m < M; ++m) acc[m] = 0.f;
  for (int64_t c = lane; c < K4; c += 32) {
    const float4 f = __ldg(wr + c);
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4 a = *reinterpret_cast<const float4*>(x + m * K + c * 4);
      acc[m] += f.x * a.x + f.y * a.y + f.z * a.z + f.w * a.w;
    }
  }
#pragma unroll
  for (int m = 0; m < M; ++m) {
    const float s = warp_sum(acc[m]);
    if (lane == 0) y[m * N + n] = s;
  }
}

// Warps per column: GEMMA4_GEMV_KS=1|2|4 overrides the rule below (for measurements).
int ks_override() {
  static const int ks = [] {
    const char* v = std::getenv("GEMMA4_GEMV_KS");
    const int k = v ? std::atoi(v) : 0;
    return k == 1 || k == 2 || k == 4 ? k : 0;
  }();
  return ks;
}

// GEMMA4_GEMV_PERSISTENT=0 launches the plain form (for comparisons; read at every launch, so a test can
// compare both forms in one process).
bool persistent_enabled() {
  const char* v = std::getenv("GEMMA4_GEMV_PERSISTENT");
  return !(v && std::strcmp(v, "0") == 0);
}

template <int WDT, int M, int KS>
void launch16_ks(const float* x, const Segments& seg, int64_t N, int64_t K, cudaStream_t s) {
  const unsigned blocks = unsigned((N * KS + kWarps - 1) / kWarps);
  // Persistent for the 4-warp columns (< 16K columns); the LM head's one-warp columns are as fast or faster in
  // the plain form (bench_cuda --micro on one H200: 431 against 440 us).
  if constexpr (KS > 1) {
    if (persistent_enabled()) {
      constexpr auto kernel = gemv16_persistent_kernel<WDT, M, KS>;
      // The fewest blocks that still give no group more columns than the resident grid would (3840 columns on
      // 132 SMs: 480 blocks, 4 columns every group, instead of 528 blocks with groups of 3 or 4): decode at 4K on
      // an H200 7.05 -> 7.00 ms a step (README). Leaving 4 more SMs free did not change it, 8 or 16 was slower.
      const unsigned grid = persistent_grid(N, resident_blocks<kernel>(kWarps * 32), kWarps / KS);
      launch_pdl(kernel, dim3(grid), dim3(kWarps * 32), 0, s, x, seg, int(N), int(K));
      return;
    }
  }
  launch_pdl(gemv16_kernel<WDT, M, KS>, dim3(blocks), dim3(kWarps * 32), 0, s, x, seg, N, K);
}

template <int WDT, int M>
void launch16(const float* x, const Segments& seg, int64_t N, int64_t K, cudaStream_t s) {
  // Fewer than ~16K columns (a 132-SM GPU holds ~8K warps): 4 warps per column, so that enough loads are in
  // flight; the LM head (262K columns) runs one warp per column.
  const int forced = ks_override();
  const int ks = forced ? forced : N < 16384 ? 4 : 1;
  if (ks == 4) launch16_ks<WDT, M, 4>(x, seg, N, K, s);
  else if (ks == 2) launch16_ks<WDT, M, 2>(x, seg, N, K, s);
  else launch16_ks<WDT, M, 1>(x, seg, N, K, s);
}

template <int M>
void launch_m(const float* x, const GemvPart* parts, int nparts, int wdt, int64_t K, cudaStream_t s) {
  if (wdt == kF32) {
    for (int i = 0; i < nparts; ++i)
      gemv32_kernel<M><<<unsigned((parts[i].N + kWarps - 1) / kWarps), kWarps * 32, 0, s>>>(
          x, static_cast<const float4*>(parts[i].w), parts[i].y, parts[i].N, K);
    return;
  }
  Segments seg{};
  int64_t n = 0;
  for (int i = 0; i < 3; ++i) {
    const int j = i < nparts ? i : nparts - 1;  // unused segments repeat the last one (never selected)
    if (i < nparts) n += parts[i].N;
    seg.w[i] = static_cast<const uint4*>(parts[j].w);
    seg.y[i] = parts[j].y;
    seg.end[i] = n;
  }
  if (wdt == kBF16) launch16<kBF16, M>(x, seg, n, K, s);
  else launch16<kF16, M>(x, seg, n, K, s);
}

}  // namespace

bool gemv_vec_supported(int64_t M, int64_t K, const void* x, const void* w, int wdt) {
  const int per = wdt == kF32 ? 4 : 8;
  return M >= 1 && M <= kMaxM && K % per == 0 && (uintptr_t(x) % 16) == 0 && (uintptr_t(w) % 16) == 0;
}

int gemv_vec_multi(const float* x, int64_t M, int64_t K, const GemvPart* parts, int nparts, int wdt, cudaStream_t s) {
  if (nparts < 1 || nparts > 3) return int(cudaErrorInvalidValue);
  int64_t n = 0;
  for (int i = 0; i < nparts; ++i) {
    if (!gemv_vec_supported(M, K, x, parts[i].w, wdt)) return int(cudaErrorInvalidValue);
    n += parts[i].N;
  }
  if (n <= 0) return 0;
  switch (M) {
    case 1: launch_m<1>(x, parts, nparts, wdt, K, s); break;
    case 2: launch_m<2>(x, parts, nparts, wdt, K, s); break;
    case 3: launch_m<3>(x, parts, nparts, wdt, K, s); break;
    case 4: launch_m<4>(x, parts, nparts, wdt, K, s); break;
    case 5: launch_m<5>(x, parts, nparts, wdt, K, s); break;
    case 6: launch_m<6>(x, parts, nparts, wdt, K, s); break;
    case 7: launch_m<7>(x, parts, nparts, wdt, K, s); break;
    default: launch_m<8>(x, parts, nparts, wdt, K, s); break;
  }
  return int(cudaGetLastError());
}

int gemv_vec(const float* x, int64_t M, int64_t K, const void* w, int wdt, int64_t N, float* y, cudaStream_t s) {
  const GemvPart part{w, N, y};
  return gemv_vec_multi(x, M, K, &part, 1, wdt, s);
}

}  // namespace gemma4::cuda
