// A dense decoder layer's tail for one decode row in one launch (ops.h layer_tail):
//   a = o . wo^T;  x1 = x + rmsnorm(a, w1);  m = rmsnorm(x1, w2);
//   h = gelu_tanh(m . wg^T) * (m . wu^T);  f = h . wd^T;
//   x = (x1 + rmsnorm(f, w3)) * s;  next = rmsnorm(x, w4).
// The launch replaces five (the o GEMV, two residual add + norm kernels, the gate/up GEMV, the down GEMV): every
// kernel boundary of a decode step costs a few microseconds that its bytes do not explain (src/ops/cuda/README).
//
// One block of 32 warps per SM, all resident (the grid is the SM count), in five phases with a grid barrier
// between the dependent ones:
//   P1  o GEMV (a, written to `a_out`), each block also leaving partial sums of a^2, x a w1, (a w1)^2, x^2 over
//       the columns it computed;                                                                   barrier
//   P2  every block: both norms' statistics from the partial sums, without a pass over the row:
//       sum x1^2 = sum x^2 + 2 r1 sum x a w1 + r1^2 sum (a w1)^2 (r1 = the post-attention norm's rsqrt), then m
//       into shared memory (x1 recomputed from x and a; x is not written before P5);
//   P3  the gate/up pair (each column's two rows by one warp group), h = gelu(g) u to `h_out`;        barrier
//   P4  h into shared memory, the down GEMV (f, to `f_out`), partial sums of f^2, x1 f w3, (f w3)^2;   barrier
//   P5  r3 and the next norm's statistic as in P2 (times s^2), then x and next, each element once.
// Before each barrier the block issues the next phase's first weight loads (weights do not depend on the
// barrier), so the memory system is not idle while the barrier drains.
// The GEMVs are the persistent strided form of gemv.cu (4 warps a column, columns gid, gid + G, ...; the groups'
// reads sweep the weight together) reading their input from shared memory. All sums are in a fixed order, so
// the results do not depend on timing; they differ from the composition's in the last bits (the norms'
// statistics are summed in another order and, for x1, through the expansion above).
// Status: opt-in (GEMMA4_CUDA_LAYER_TAIL=1). Correct on an H200, but decode at 4K ran at 131.9 tok/s against
// the composition's 142.9 (src/ops/cuda/README.md, "Not reached").
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

constexpr int kTailWarps = 32;
constexpr int kTailKS = 4;                              // warps per column
constexpr int kTailGroups = kTailWarps / kTailKS;       // column groups per block
constexpr int kTailUnroll = 4;                          // 16-byte loads per lane per batch

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}

// All blocks of the grid (resident together) meet here; writes before it are visible after it.
__device__ void grid_barrier(unsigned* count, unsigned* gen) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned g = ld_acquire(gen);
    __threadfence();
    if (atomicAdd(count, 1u) == gridDim.x - 1) {
      *count = 0u;  // before the generation moves on: no block arrives at the next barrier earlier
      __threadfence();
      atomicAdd(gen, 1u);
    } else {
      while (ld_acquire(gen) == g) {
      }
    }
    __threadfence();
  }
  __syncthreads();
}

// The load and compute cursors of one GEMV phase for one lane: columns gid, gid + G, ... of N; a column's slots
// are L per weight row (PAIR: the gate row's L, then the up row's L).
template <bool PAIR>
struct GemvPhase {
  const uint4* w0;
  const uint4* w1;
  int N, K8, L, slots, total;
  int lcol, lj;
  uint4 u[kTailUnroll];
};

template <bool PAIR>
__device__ __forceinline__ void phase_init(GemvPhase<PAIR>& ph, const void* w0, const void* w1, int N, int K, int gid,
                                           int G, int c0) {
  ph.w0 = static_cast<const uint4*>(w0) + c0;
  ph.w1 = PAIR ? static_cast<const uint4*>(w1) + c0 : nullptr;
  ph.N = N, ph.K8 = K / 8;
  ph.L = (ph.K8 + 32 * kTailKS - 1) / (32 * kTailKS);
  ph.slots = PAIR ? 2 * ph.L : ph.L;
  ph.total = gid < N ? ((N - 1 - gid) / G + 1) * ph.slots : 0;
  ph.lcol = gid, ph.lj = 0;
}

// The next kUnroll slots' weights into ph.u (slots past the row's end read nothing).
template <bool PAIR>
__device__ __forceinline__ void phase_load(GemvPhase<PAIR>& ph, int s0, int G, int c0) {
#pragma unroll
  for (int j = 0; j < kTailUnroll; ++j) {
    if (s0 + j >= ph.total) break;
    const bool second = PAIR && ph.lj >= ph.L;
    const int jj = second ? ph.lj - ph.L : ph.lj;
    const int c = c0 + 32 * kTailKS * jj;
    const uint4* row = (second ? ph.w1 : ph.w0) + int64_t(ph.lcol) * ph.K8;
    ph.u[j] = c < ph.K8 ? ld_stream16(row + 32 * kTailKS * jj) : make_uint4(0, 0, 0, 0);
    if (++ph.lj == ph.slots) ph.lj = 0, ph.lcol += G;
  }
}

// Runs the phase from its first batch (already in ph.u) over the input xs (shared memory); for every finished
// column, lane 0 of the group's first warp calls epi(col, v0, v1) (v1: the up row's sum for PAIR).
template <int WDT, bool PAIR, class Epi>
__device__ __forceinline__ void phase_run(GemvPhase<PAIR>& ph, const float* xs, int gid, int G, int c0, int warp,
                                          int lane, float (*part)[kTailWarps][2], Epi&& epi) {
  const int kpart = warp % kTailKS;
  float acc0 = 0.f, acc1 = 0.f;
  int ccol = gid, cj = 0, ci = 0;
  for (int s0 = 0; s0 < ph.total; s0 += kTailUnroll) {
    uint4 cur[kTailUnroll];
#pragma unroll
    for (int j = 0; j < kTailUnroll; ++j) cur[j] = ph.u[j];
    phase_load(ph, s0 + kTailUnroll, G, c0);
#pragma unroll
    for (int j = 0; j < kTailUnroll; ++j) {
      if (s0 + j >= ph.total) break;
      const bool second = PAIR && cj >= ph.L;
      const int c = c0 + 32 * kTailKS * (second ? cj - ph.L : cj);
      if (c < ph.K8) {
        float f[8];
        widen8<WDT>(cur[j], f);
        const float d = dot8(f, xs + c * 8);
        if (second) acc1 += d;
        else acc0 += d;
      }
      if (++cj == ph.slots) {
        acc0 = warp_sum(acc0);
        if (PAIR) acc1 = warp_sum(acc1);
        const int buf = ci & 1;
        if (lane == 0) part[buf][warp][0] = acc0, part[buf][warp][1] = acc1;
        asm volatile("bar.sync %0, %1;" ::"r"(1 + warp / kTailKS), "r"(kTailKS * 32) : "memory");
        if (kpart == 0 && lane == 0) {
          float v0 = 0.f, v1 = 0.f;
#pragma unroll
          for (int p = 0; p < kTailKS; ++p) v0 += part[buf][warp + p][0], v1 += part[buf][warp + p][1];
          epi(ccol, v0, v1);
        }
        acc0 = acc1 = 0.f;
        cj = 0, ccol += G, ++ci;
      }
    }
  }
}

// Sum over the grid of the blocks' partials [grid][4] (every block in the same order): stat j into out[j].
__device__ void sum_partials(const float* partials, float* out) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  if (warp < 4) {
    float s = 0.f;
    for (int b = lane; b < int(gridDim.x); b += 32) s += __ldcg(partials + b * 4 + warp);
    s = warp_sum(s);
    if (lane == 0) out[warp] = s;
  }
  __syncthreads();
}

// The block's four statistics from its groups' (fixed order; every group's first lane has written its four),
// to partials[blockIdx.x].
__device__ void store_block_stats(float (*gstats)[4], float* partials) {
  __syncthreads();
  if (threadIdx.x < 4) {
    float s = 0.f;
    for (int g = 0; g < kTailGroups; ++g) s += gstats[g][threadIdx.x];
    partials[blockIdx.x * 4 + threadIdx.x] = s;
  }
}

template <int WDT>
__global__ void __launch_bounds__(kTailWarps * 32, 1)
    layer_tail_kernel(LayerTailArgs a, unsigned* __restrict__ sync, float* __restrict__ partials) {
  extern __shared__ __align__(16) float vec[];  // the current GEMV's input (max(Q, H, I) floats)
  __shared__ float part[2][kTailWarps][2];
  __shared__ float gstats[kTailGroups][4];
  __shared__ float stats[4];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = int(blockIdx.x) * kTailGroups + warp / kTailKS, G = int(gridDim.x) * kTailGroups;
  const int c0 = lane + 32 * (warp % kTailKS);
  const int H = a.H, Q = a.Q, I = a.I;
  const bool stats_lane = warp % kTailKS == 0 && lane == 0;
  float* p1 = partials;                    // [grid][4]: P1's sums
  float* p4 = partials + gridDim.x * 4;    // [grid][4]: P4's sums

  GemvPhase<false> po;
  phase_init(po, a.wo, nullptr, H, Q, gid, G, c0);
  phase_load(po, 0, G, c0);
  pdl_wait();
  for (int i = threadIdx.x; i < Q; i += blockDim.x) vec[i] = a.o[i];
  __syncthreads();

  // P1: a = o . wo^T.
  float s_aa = 0.f, s_xaw = 0.f, s_aw2 = 0.f, s_xx = 0.f;
  phase_run<WDT, false>(po, vec, gid, G, c0, warp, lane, part, [&](int n, float v, float) {
    a.a_out[n] = v;
    const float x = a.x[n], aw = v * ldw(a.w1, a.wdt1, n);
    s_aa += v * v, s_xaw += x * aw, s_aw2 += aw * aw, s_xx += x * x;
  });
  if (stats_lane) {
    const int g = warp / kTailKS;
    gstats[g][0] = s_aa, gstats[g][1] = s_xaw, gstats[g][2] = s_aw2, gstats[g][3] = s_xx;
  }
  store_block_stats(gstats, p1);
  GemvPhase<true> pgu;
  phase_init(pgu, a.wg, a.wu, I, H, gid, G, c0);
  phase_load(pgu, 0, G, c0);
  grid_barrier(sync, sync + 1);
  pdl_trigger();  // every block is resident by now: the next kernel cannot take an SM one of ours still needs

  // P2: r1, r2 and m.
  sum_partials(p1, stats);
  const float r1 = 1.0f / sqrtf(stats[0] / float(H) + a.eps);
  const float sx1 = stats[3] + 2.f * r1 * stats[1] + r1 * r1 * stats[2];
  const float r2 = 1.0f / sqrtf(sx1 / float(H) + a.eps);
  for (int i = threadIdx.x; i < H; i += blockDim.x) {
    const float x1 = a.x[i] + __ldcg(a.a_out + i) * r1 * ldw(a.w1, a.wdt1, i);
    vec[i] = x1 * r2 * ldw(a.w2, a.wdt2, i);
  }
  __syncthreads();

  // P3: h = gelu(m . wg^T) * (m . wu^T).
  phase_run<WDT, true>(pgu, vec, gid, G, c0, warp, lane, part,
                       [&](int n, float g, float u) { a.h_out[n] = gelu_tanh_f(g) * u; });
  GemvPhase<false> pd;
  phase_init(pd, a.wd, nullptr, H, I, gid, G, c0);
  phase_load(pd, 0, G, c0);
  grid_barrier(sync, sync + 1);

  // P4: f = h . wd^T.
  for (int i = threadIdx.x; i < I; i += blockDim.x) vec[i] = __ldcg(a.h_out + i);
  __syncthreads();
  float s_ff = 0.f, s_xfw = 0.f, s_fw2 = 0.f;
  phase_run<WDT, false>(pd, vec, gid, G, c0, warp, lane, part, [&](int n, float v, float) {
    a.f_out[n] = v;
    const float x1 = a.x[n] + __ldcg(a.a_out + n) * r1 * ldw(a.w1, a.wdt1, n);
    const float fw = v * ldw(a.w3, a.wdt3, n);
    s_ff += v * v, s_xfw += x1 * fw, s_fw2 += fw * fw;
  });
  if (stats_lane) {
    const int g = warp / kTailKS;
    gstats[g][0] = s_ff, gstats[g][1] = s_xfw, gstats[g][2] = s_fw2, gstats[g][3] = 0.f;
  }
  store_block_stats(gstats, p4);
  grid_barrier(sync, sync + 1);

  // P5: x = (x1 + rmsnorm(f, w3)) * s, next = rmsnorm(x, w4).
  sum_partials(p4, stats);
  const float r3 = 1.0f / sqrtf(stats[0] / float(H) + a.eps);
  const float sv = a.s ? ldw(a.s, a.sdt, 0) : 1.f;
  const float sx = sv * sv * (sx1 + 2.f * r3 * stats[1] + r3 * r3 * stats[2]);
  const float r4 = 1.0f / sqrtf(sx / float(H) + a.eps);
  for (int i = int(blockIdx.x) * blockDim.x + threadIdx.x; i < H; i += gridDim.x * blockDim.x) {
    const float x1 = a.x[i] + __ldcg(a.a_out + i) * r1 * ldw(a.w1, a.wdt1, i);
    const float n3 = __ldcg(a.f_out + i) * r3 * ldw(a.w3, a.wdt3, i);
    const float xv = a.s ? (x1 + n3) * sv : x1 + n3;
    a.x[i] = xv;
    a.next[i] = xv * r4 * ldw(a.w4, a.wdt4, i);
  }
}

// One block an SM with room for the widest input (the 12B's I = 15360 floats, 60 KB): the attribute and the
// occupancy check once per weight dtype.
constexpr size_t kTailMaxSmem = size_t(96) * 1024;

struct TailLaunch {
  int sms = 0;
  bool fits = false;
};

template <int WDT>
const TailLaunch& tail_launch() {
  static const TailLaunch t = [] {
    TailLaunch r;
    int dev = 0, per_sm = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&r.sms, cudaDevAttrMultiProcessorCount, dev);
    r.fits = cudaFuncSetAttribute(layer_tail_kernel<WDT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(kTailMaxSmem)) == cudaSuccess &&
             cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, layer_tail_kernel<WDT>, kTailWarps * 32,
                                                           kTailMaxSmem) == cudaSuccess &&
             per_sm >= 1;
    cudaGetLastError();  // a failed query leaves the kernel unused, not an error for the next launch
    return r;
  }();
  return t;
}

// The input vector in shared memory: o (Q), m (H) and h (I) in turn.
size_t tail_smem(const LayerTailArgs& a) {
  const int n = a.Q > a.I ? a.Q : a.I;
  return size_t(n > a.H ? n : a.H) * sizeof(float);
}

}  // namespace

bool layer_tail_supported(const LayerTailArgs& a, int wdt) {
  if (wdt != kBF16 && wdt != kF16) return false;
  if (a.H <= 0 || a.Q <= 0 || a.I <= 0 || a.H % 8 || a.Q % 8 || a.I % 8 || tail_smem(a) > kTailMaxSmem) return false;
  const TailLaunch& t = wdt == kBF16 ? tail_launch<kBF16>() : tail_launch<kF16>();
  return t.fits && t.sms > 0 && t.sms <= kLayerTailMaxBlocks;
}

int layer_tail(const LayerTailArgs& a, int wdt, unsigned* sync, float* partials, cudaStream_t s) {
  if (!layer_tail_supported(a, wdt)) return int(cudaErrorInvalidValue);
  const dim3 grid(unsigned((wdt == kBF16 ? tail_launch<kBF16>() : tail_launch<kF16>()).sms)), block(kTailWarps * 32);
  const cudaError_t e = wdt == kBF16 ? launch_pdl(layer_tail_kernel<kBF16>, grid, block, tail_smem(a), s, a, sync, partials)
                                     : launch_pdl(layer_tail_kernel<kF16>, grid, block, tail_smem(a), s, a, sync, partials);
  return e != cudaSuccess ? int(e) : int(cudaGetLastError());
}

}  // namespace gemma4::cuda
