// A decode row's GEMV that takes the residual add and both norms before it as its own prologue (ops.h
// layer_tail and linear_qkv_deferred, spec §2.4.3-2.4.4), so the add + norm kernel between two projections, and
// its kernel boundary, go:
//   h = (x + rmsnorm(a, wa)) * s      (a = the previous projection's output, x the residual, s optional)
//   m = rmsnorm(h, wn)                (the next block's pre-norm)
// then either the gate/up pair, y = gelu_tanh(m . wg^T) * (m . wu^T), or up to three projections of m side by
// side (the next layer's q/k/v). Every block computes h and m itself, from x and a read after its PDL wait
// (30 KB from L2 at the 12B's width) and the norm weights read before it, and keeps m in shared memory; block 0
// also writes h (and m where asked) for later kernels, to buffers that no block of this launch reads. The
// rounding is add_rmsnorm_vec_kernel's (fused_kernels.cu); the sums run in another order, so h and m can
// differ from that kernel's in the last bits.
//
// The GEMV is the persistent form of gemv.cu's (4 warps a column, each lane's loads walking across column ends
// with the next batch in flight), one block of 32 warps an SM, so that an SM reads the row's inputs once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

constexpr int kThreads = 1024, kWarps = kThreads / 32, kKS = 4, kGroups = kWarps / kKS, kUnroll = 4;
constexpr int kMaxVec = 1;  // float4s of the row a thread holds in the prologue: H <= 4096 (64 registers a thread)
constexpr int kMaxH = 4 * kMaxVec * kThreads;

__device__ __forceinline__ float mul3(float a, float b, float c) { return __fmul_rn(__fmul_rn(a, b), c); }

// Sum over the block's 32 warps into every thread: one barrier (red is this reduction's own shared array).
__device__ __forceinline__ float block_sum32(float v, float* red) {
  const int lane = threadIdx.x & 31;
  v = warp_sum(v);
  if (lane == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  return warp_sum(red[lane]);
}

// The weights of one launch: R = 1: up to three matrices side by side (column n of the launch is column
// n - end[i-1] of matrix i, written to y[i]); R = 2: w[0] / w[1] the gate / up rows of column n, y[0] gets
// gelu_tanh(gate) * up.
struct Mats {
  const uint4* w[3];
  float* y[3];
  int end[3];
};

template <int WDT, int R>
__global__ void __launch_bounds__(kThreads, 1)
    gemv_normed_kernel(NormedInput in, Mats mats, int N) {
  static_assert(R == 1 || R == 2, "one or two rows a column");
  // m by 16-byte chunks: chunk c (elements 8c .. 8c + 7) as s_m[c] (the first four) and s_m[K8 + c], so that the
  // lanes of a warp, reading consecutive chunks, read consecutive 16-byte words (no bank conflicts).
  extern __shared__ float4 s_m[];
  __shared__ float part[2][kWarps][R];
  __shared__ float red[2][kWarps];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = int(blockIdx.x) * kGroups + warp / kKS, G = int(gridDim.x) * kGroups;
  const int kpart = warp % kKS;
  const int K = in.H, K8 = K / 8, H4 = K / 4, step = 32 * kKS;
  const int L = (K8 + step - 1) / step;  // load slots per lane per column
  const int ncols = gid < N ? (N - 1 - gid) / G + 1 : 0;
  const int total = ncols * L;
  const int c0 = lane + 32 * kpart;
  // Column n's segment and its rows (constant indices into mats: a run-time index would move it to local memory).
  auto seg_of = [&](int n) { return R == 2 ? 0 : n < mats.end[0] ? 0 : n < mats.end[1] ? 1 : 2; };
  auto base_of = [&](int i) { return i == 0 ? 0 : i == 1 ? mats.end[0] : mats.end[1]; };
  auto row_of = [&](int n, int r) {  // row r of column n, offset by this lane's first chunk
    if constexpr (R == 2) return mats.w[r == 0 ? 0 : 1] + int64_t(n) * K8 + c0;
    const int i = seg_of(n);
    return (i == 0 ? mats.w[0] : i == 1 ? mats.w[1] : mats.w[2]) + int64_t(n - base_of(i)) * K8 + c0;
  };
  // Load cursor over (column, slot); a batch is kUnroll 16-byte loads: kSlots slots of the column's R rows.
  constexpr int kSlots = kUnroll / R;
  int lcol = gid, lj = 0;
  const uint4* lrow[R];
#pragma unroll
  for (int r = 0; r < R; ++r) lrow[r] = ncols > 0 ? row_of(gid, r) : nullptr;
  uint4 u[kUnroll];
  auto load_batch = [&](int s0) {
#pragma unroll
    for (int j = 0; j < kSlots; ++j) {
      if (s0 + j >= total) break;
      const bool live = c0 + step * lj < K8;
#pragma unroll
      for (int r = 0; r < R; ++r) u[j * R + r] = live ? ld_stream16(lrow[r] + step * lj) : make_uint4(0, 0, 0, 0);
      if (++lj == L) {
        lj = 0, lcol += G;
        if (lcol < N)
#pragma unroll
          for (int r = 0; r < R; ++r) lrow[r] = row_of(lcol, r);
      }
    }
  };
  if (total > 0) load_batch(0);
  // The norm weights do not depend on earlier kernels: read before the wait, like the first weight batch.
  float4 wav[kMaxVec], wnv[kMaxVec];
#pragma unroll
  for (int j = 0; j < kMaxVec; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    if (i < H4) wav[j] = ldw4(in.wa, in.wadt, i), wnv[j] = ldw4(in.wn, in.wndt, i);
  }
  pdl_wait();
  pdl_trigger();
  // The prologue: h = (x + a r_a wa) s, m = h r_m wn.
  const float sv = in.s ? ldw(in.s, in.sdt, 0) : 1.f;  // a device scalar: it may come from an earlier kernel
  float4 av[kMaxVec], hv[kMaxVec];
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxVec; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    if (i < H4) {
      const float4 a = reinterpret_cast<const float4*>(in.a)[i];
      av[j] = a, hv[j] = reinterpret_cast<const float4*>(in.x)[i];
      ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
    }
  }
  ss = block_sum32(ss, red[0]);
  const float ra = 1.0f / sqrtf(ss / float(K) + in.eps);
  float ss2 = 0.f;
#pragma unroll
  for (int j = 0; j < kMaxVec; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    if (i < H4) {
      const float4 a = av[j], w = wav[j];
      float4& h = hv[j];
      h = make_float4(__fadd_rn(h.x, mul3(a.x, ra, w.x)), __fadd_rn(h.y, mul3(a.y, ra, w.y)),
                      __fadd_rn(h.z, mul3(a.z, ra, w.z)), __fadd_rn(h.w, mul3(a.w, ra, w.w)));
      if (in.s) h = make_float4(__fmul_rn(h.x, sv), __fmul_rn(h.y, sv), __fmul_rn(h.z, sv), __fmul_rn(h.w, sv));
      ss2 += h.x * h.x + h.y * h.y + h.z * h.z + h.w * h.w;
      if (blockIdx.x == 0) reinterpret_cast<float4*>(in.h)[i] = h;
    }
  }
  ss2 = block_sum32(ss2, red[1]);
  const float rm = 1.0f / sqrtf(ss2 / float(K) + in.eps);
#pragma unroll
  for (int j = 0; j < kMaxVec; ++j) {
    const int i = int(threadIdx.x) + j * kThreads;
    if (i < H4) {
      const float4 h = hv[j], w = wnv[j];
      const float4 m = make_float4(h.x * rm * w.x, h.y * rm * w.y, h.z * rm * w.z, h.w * rm * w.w);
      s_m[(i & 1) * K8 + (i >> 1)] = m;
      if (blockIdx.x == 0 && in.m) reinterpret_cast<float4*>(in.m)[i] = m;
    }
  }
  __syncthreads();
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0.f;
  int cj = 0, ci = 0, ccol = gid;
  for (int s0 = 0; s0 < total; s0 += kSlots) {
    uint4 cur[kUnroll];
#pragma unroll
    for (int j = 0; j < kUnroll; ++j) cur[j] = u[j];
    load_batch(s0 + kSlots);
#pragma unroll
    for (int j = 0; j < kSlots; ++j) {
      if (s0 + j >= total) break;
      const int c = c0 + step * cj;
      if (c < K8) {
        const float4 lo = s_m[c], hi = s_m[K8 + c];
#pragma unroll
        for (int r = 0; r < R; ++r) {
          float f[8];
          widen8<WDT>(cur[j * R + r], f);
          acc[r] += f[0] * lo.x + f[1] * lo.y + f[2] * lo.z + f[3] * lo.w + f[4] * hi.x + f[5] * hi.y +
                    f[6] * hi.z + f[7] * hi.w;
        }
      }
      if (++cj == L) {  // column ccol done: the group's 4 warps meet in shared memory
        const int buf = ci & 1;
#pragma unroll
        for (int r = 0; r < R; ++r) {
          acc[r] = warp_sum(acc[r]);
          if (lane == 0) part[buf][warp][r] = acc[r];
        }
        asm volatile("bar.sync %0, %1;" ::"r"(1 + warp / kKS), "r"(kKS * 32) : "memory");
        if (kpart == 0 && lane == 0) {
          float v[R];
#pragma unroll
          for (int r = 0; r < R; ++r) {
            v[r] = 0.f;
#pragma unroll
            for (int q = 0; q < kKS; ++q) v[r] += part[buf][warp + q][r];
          }
          if constexpr (R == 2) {
            mats.y[0][ccol] = gelu_tanh_f(v[0]) * v[1];
          } else {
            const int i = seg_of(ccol);
            (i == 0 ? mats.y[0] : i == 1 ? mats.y[1] : mats.y[2])[ccol - base_of(i)] = v[0];
          }
        }
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] = 0.f;
        cj = 0, ccol += G, ++ci;
      }
    }
  }
}

template <int WDT, int R>
int launch(const NormedInput& in, const Mats& m, int N, cudaStream_t s) {
  constexpr auto kernel = gemv_normed_kernel<WDT, R>;
  // Occupancy for the largest row (registers hold it to one block an SM at any width).
  const unsigned grid = persistent_grid(N, resident_blocks<kernel>(kThreads, kMaxH * sizeof(float)), kGroups);
  return int(launch_pdl(kernel, dim3(grid), dim3(kThreads), size_t(in.H) * sizeof(float), s, in, m, N));
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool gemv_normed_supported(const NormedInput& in, const void* const* w, int nw, int wdt) {
  bool ok = in.H > 0 && in.H % 8 == 0 && in.H <= kMaxH && (wdt == kBF16 || wdt == kF16) &&
            aligned16(in.x) && aligned16(in.a) && aligned16(in.h) && aligned16(in.m) && aligned16(in.wa) &&
            aligned16(in.wn);
  for (int i = 0; i < nw; ++i) ok = ok && aligned16(w[i]);
  return ok;
}

int gemv_gelu_normed(const NormedInput& in, const void* wg, const void* wu, int wdt, int N, float* y,
                     cudaStream_t s) {
  const void* w[2] = {wg, wu};
  if (!gemv_normed_supported(in, w, 2, wdt) || N <= 0) return int(cudaErrorInvalidValue);
  Mats m{};
  m.w[0] = static_cast<const uint4*>(wg), m.w[1] = m.w[2] = static_cast<const uint4*>(wu);
  m.y[0] = m.y[1] = m.y[2] = y;
  m.end[0] = m.end[1] = m.end[2] = N;
  return wdt == kBF16 ? launch<kBF16, 2>(in, m, N, s) : launch<kF16, 2>(in, m, N, s);
}

int gemv_normed_multi(const NormedInput& in, const GemvPart* parts, int nparts, int wdt, cudaStream_t s) {
  if (nparts < 1 || nparts > 3) return int(cudaErrorInvalidValue);
  const void* w[3] = {};
  Mats m{};
  int n = 0;
  for (int i = 0; i < 3; ++i) {
    const int j = i < nparts ? i : nparts - 1;  // unused segments repeat the last one (never selected)
    if (i < nparts) n += int(parts[i].N), w[i] = parts[i].w;
    m.w[i] = static_cast<const uint4*>(parts[j].w), m.y[i] = parts[j].y, m.end[i] = n;
  }
  if (!gemv_normed_supported(in, w, nparts, wdt) || n <= 0) return int(cudaErrorInvalidValue);
  return wdt == kBF16 ? launch<kBF16, 1>(in, m, n, s) : launch<kF16, 1>(in, m, n, s);
}

}  // namespace gemma4::cuda
