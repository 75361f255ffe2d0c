// The merge of split-key attention partials, for a block: rows [row0, row0 + R) (query-head rows), dims
// [d0, d1) (multiples of V, 1 or 4):
//   o[row][d] = sum_i w_i acc_i[d],  w_i = e^(m_i - M) / sum_j l_j e^(m_j - M),  M = max_i m_i
// (0 where no key was visible: M = -inf). Partials (written by other blocks, so read through L2):
// part_m / part_l [row * nsplit + i], part_acc [(row * nsplit + i) * hd + d]; LOG2: part_m in log2 units.
//
// Written for latency (a decode step waits on it): every thread requests its first partial accumulators
// before the weights are known, warp r < R loads row r's (m, l) with all loads in flight and forms the
// weights with shuffles, and the `per` consecutive lanes that share a column (each its own splits) sum with
// shuffles. So the merge costs about two L2 round trips instead of one per split.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"

namespace gemma4::cuda {

template <int V>
struct MergeVec;
template <>
struct MergeVec<1> {
  using T = float;
  static __device__ __forceinline__ T load(const float* p) { return __ldcg(p); }
  static __device__ __forceinline__ T zero() { return 0.f; }
  static __device__ __forceinline__ void fma(T& a, T x, float w) { a += w * x; }
  static __device__ __forceinline__ T shfl_sum(T a, int off) { return a + __shfl_xor_sync(0xffffffffu, a, off); }
  static __device__ __forceinline__ void store(float* p, T a) { *p = a; }
};
template <>
struct MergeVec<4> {
  using T = float4;
  static __device__ __forceinline__ T load(const float* p) { return __ldcg(reinterpret_cast<const float4*>(p)); }
  static __device__ __forceinline__ T zero() { return make_float4(0.f, 0.f, 0.f, 0.f); }
  static __device__ __forceinline__ void fma(T& a, T x, float w) {
    a.x += w * x.x, a.y += w * x.y, a.z += w * x.z, a.w += w * x.w;
  }
  static __device__ __forceinline__ T shfl_sum(T a, int off) {
    return make_float4(a.x + __shfl_xor_sync(0xffffffffu, a.x, off), a.y + __shfl_xor_sync(0xffffffffu, a.y, off),
                       a.z + __shfl_xor_sync(0xffffffffu, a.z, off), a.w + __shfl_xor_sync(0xffffffffu, a.w, off));
  }
  static __device__ __forceinline__ void store(float* p, T a) { *reinterpret_cast<float4*>(p) = a; }
};

// Called by every thread of the block (blockDim.x a multiple of 32, R <= blockDim.x / 32). s_w: shared
// memory for 2 * R * nsplit floats.
template <bool LOG2, int V>
__device__ __forceinline__ void merge_split_rows(const float* __restrict__ part_m, const float* __restrict__ part_l,
                                 const float* __restrict__ part_acc, float* __restrict__ o, int64_t row0, int R,
                                 int nsplit, int hd, int d0, int d1, float* s_w) {
  using MV = MergeVec<V>;
  using T = typename MV::T;
  constexpr int kBatch = 8;  // partial loads in flight per thread
  const int row_cols = (d1 - d0) / V, cols = R * row_cols;
  int per = 1;  // threads per column: a power of two up to a warp, as many as the block has for the columns
  while (per < 32 && 2 * per * cols <= int(blockDim.x)) per *= 2;
  const int slots = int(blockDim.x) / per, sub = int(threadIdx.x) % per;
  const int rounds = (cols + slots - 1) / slots, mine = (nsplit - 1) / per + 1;  // splits a thread sums (at most)
  const int batches = (mine + kBatch - 1) / kBatch;
  T buf[kBatch];
  auto issue = [&](int c, int b) {  // this thread's loads of column c, batch b (zeros past the splits)
    const int64_t row = row0 + c / row_cols;
    const int d = d0 + (c % row_cols) * V;
#pragma unroll
    for (int u = 0; u < kBatch; ++u) {
      const int i = sub + per * (b * kBatch + u);
      buf[u] = c < cols && i < nsplit ? MV::load(part_acc + (row * nsplit + i) * hd + d) : MV::zero();
    }
  };
  const int c_first = int(threadIdx.x) / per;
  issue(c_first, 0);
  // Weights of row r by warp r: s_w[r * nsplit + i] = w_i (m in s_w first, l in s_w + R * nsplit).
  const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
  if (warp < R) {
    float* sm = s_w + warp * nsplit;
    float* sl = s_w + (R + warp) * nsplit;
    const int64_t base = (row0 + warp) * nsplit;
    float M = -INFINITY;
    for (int i0 = 0; i0 < nsplit; i0 += 64) {  // two loads of each array in flight per lane
      const int i = i0 + lane, j = i + 32;
      const float mi = i < nsplit ? __ldcg(part_m + base + i) : -INFINITY;
      const float mj = j < nsplit ? __ldcg(part_m + base + j) : -INFINITY;
      const float li = i < nsplit ? __ldcg(part_l + base + i) : 0.f;
      const float lj = j < nsplit ? __ldcg(part_l + base + j) : 0.f;
      if (i < nsplit) sm[i] = mi, sl[i] = li;
      if (j < nsplit) sm[j] = mj, sl[j] = lj;
      M = fmaxf(M, fmaxf(mi, mj));
    }
    M = warp_max(M);
    float L = 0.f;
    for (int i = lane; i < nsplit; i += 32) {  // each lane its own entries: no exchange before the barrier
      const float mi = sm[i];
      const float w = M == -INFINITY || mi == -INFINITY ? 0.f : (LOG2 ? exp2f(mi - M) : __expf(mi - M));
      L += sl[i] * w;
      sm[i] = w;
    }
    L = warp_sum(L);
    const float inv = L > 0.f ? 1.f / L : 0.f;
    for (int i = lane; i < nsplit; i += 32) sm[i] *= inv;
  }
  __syncthreads();
  for (int k = 0; k < rounds; ++k) {  // uniform trip counts: every lane reaches the shuffles
    const int c = c_first + k * slots;
    if (k > 0) issue(c, 0);
    const float* w = s_w + (c < cols ? c / row_cols : 0) * nsplit;
    T a = MV::zero();
    for (int b = 0; b < batches; ++b) {
      if (b > 0) issue(c, b);
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int i = sub + per * (b * kBatch + u);
        if (i < nsplit && w[i] != 0.f) MV::fma(a, buf[u], w[i]);  // a split with no visible key may hold no acc
      }
    }
    for (int off = per / 2; off > 0; off >>= 1) a = MV::shfl_sum(a, off);
    if (sub == 0 && c < cols) MV::store(o + (row0 + c / row_cols) * hd + d0 + (c % row_cols) * V, a);
  }
}

}  // namespace gemma4::cuda
