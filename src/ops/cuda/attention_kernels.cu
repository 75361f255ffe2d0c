// Attention kernels beyond the plain one of kernels.cu:
// - decode attention (few queries, no bidirectional blocks): K and V read once per KV head, keys in any
//   order, key count readable from the device (CUDA graphs);
// - split-key attention for few queries with bidirectional blocks: grid (query x head, split); each block runs an online
//   softmax over its slice of the keys (8 warps, lane l holds dims l, l+32, ...) and writes a partial
//   (max, sum, unnormalised accumulator); attention_merge combines the splits. Keys may be in any order (a
//   ring buffer): visibility comes from each key's position.
// - masked_softmax for the chunked tensor-core prefill (attention_chunked.cpp): one block per score row,
//   fp32 statistics, probabilities written as bf16 or fp32.
// - f32_to_bf16: round-to-nearest-even conversion of activations for the bf16 GEMMs.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/split_merge.cuh"

namespace gemma4::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxD = 512;
constexpr int kPer = kMaxD / 32;

__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

__device__ __forceinline__ bool visible(int64_t qp, int64_t kp, int window, int32_t qb, int32_t kb) {
  const bool same_block = qb >= 0 && qb == kb;
  return (kp <= qp || same_block) && (window <= 0 || kp > qp - window);
}

// part_m/part_l: [rows, nsplit]; part_acc: [rows, nsplit, hd]; rows = T * Hq (row = t * Hq + h).
// VEC: head_dim % 128 == 0 and 16-byte aligned rows: lane l owns the contiguous dims [l*P, l*P + P) (P =
// hd/32), read as float4; otherwise lane l owns dims l, l+32, ... Each warp keeps two keys in flight.
template <bool VEC>
__global__ void __launch_bounds__(kWarps * 32)
    attention_split_kernel(const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                           int64_t S, int Hq, int Hkv, int hd, float scale, const int64_t* q_pos, const int64_t* k_pos,
                           int window, const int32_t* q_block, const int32_t* k_block, int64_t chunk,
                           float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc) {
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][kMaxD];
  const int64_t row = blockIdx.x;
  const int split = blockIdx.y, nsplit = gridDim.y;
  const int h = int(row % Hq);
  const int64_t t = row / Hq;
  const int kh = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t qs = int64_t(Hq) * hd, ks = int64_t(Hkv) * hd;
  const int per = VEC ? hd / 32 : 0;  // contiguous dims per lane (VEC)
  // Element i of this lane: dim (VEC ? lane*per + i : lane + 32*i).
  auto dim_of = [&](int i) { return VEC ? lane * per + i : lane + 32 * i; };
  const float* qv = q + t * qs + int64_t(h) * hd;
  float qr[kPer], acc[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int d = dim_of(i);
    const bool in = VEC ? i < per : d < hd;
    qr[i] = in ? qv[d] * scale : 0.f;
    acc[i] = 0.f;
  }
  const int64_t qp = q_pos[t];
  const int32_t qb = q_block ? q_block[t] : -1;
  const int64_t s_begin = int64_t(split) * chunk;
  const int64_t s_end = s_begin + chunk < S ? s_begin + chunk : S;
  float m = -INFINITY, l = 0.f;
  auto load_row = [&](const float* base, float* out) {
    if constexpr (VEC) {
#pragma unroll
      for (int i = 0; i < kPer; i += 4) {
        if (i < per) {
          const float4 f = *reinterpret_cast<const float4*>(base + lane * per + i);
          out[i] = f.x, out[i + 1] = f.y, out[i + 2] = f.z, out[i + 3] = f.w;
        } else {
          out[i] = out[i + 1] = out[i + 2] = out[i + 3] = 0.f;
        }
      }
    } else {
#pragma unroll
      for (int i = 0; i < kPer; ++i) out[i] = lane + 32 * i < hd ? base[lane + 32 * i] : 0.f;
    }
  };
  for (int64_t s = s_begin + warp; s < s_end; s += kWarps) {
    if (!visible(qp, k_pos[s], window, qb, k_block ? k_block[s] : -1)) continue;
    float kr[kPer], vr[kPer];
    load_row(k + s * ks + int64_t(kh) * hd, kr);
    load_row(v + s * ks + int64_t(kh) * hd, vr);  // issued before the reduction: both rows in flight
    float d = 0.f;
#pragma unroll
    for (int i = 0; i < kPer; ++i) d += qr[i] * kr[i];
    const float sc = warp_sum(d);
    const float mn = fmaxf(m, sc);
    const float corr = __expf(m - mn);
    const float p = __expf(sc - mn);
    l = l * corr + p;
#pragma unroll
    for (int i = 0; i < kPer; ++i) acc[i] = acc[i] * corr + p * vr[i];
    m = mn;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int d = dim_of(i);
    if (VEC ? i < per : d < hd) s_acc[warp][d] = acc[i];
  }
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  float L = 0.f, f[kWarps];
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.f : __expf(s_m[w] - M);
    L += s_l[w] * f[w];
  }
  const int64_t pidx = row * nsplit + split;
  if (threadIdx.x == 0) {
    part_m[pidx] = M;
    part_l[pidx] = L;
  }
  float* pa = part_acc + pidx * hd;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) a += s_acc[w][d] * f[w];
    pa[d] = a;
  }
}

// Decode attention, K and V read once per KV head: grid (kv head, split, query row); the block holds the g
// query heads of its KV head (q in shared memory) and a slice of `chunk` keys.
//  1. warp per key: the g scores of the key (lane l holds dims l, l+32, ...), into shared memory;
//  2. warp per head: slice max m, p = e^(s - m), l = sum p -> part_m, part_l;
//  3. thread per dim (d, d + 256) for all g heads: acc += p * v -> part_acc; attention_merge combines.
// Keys: explicit positions k_pos[j], or (k_pos == nullptr) a rotated consecutive run described on the device
// by k_desc = {n, k0, r}: key j < n has position k0 + (j - r + n) % n (a ring buffer; r = 0: consecutive)
// and keys j >= n are absent. s_cap bounds the key count (the grid is sized for it), so a recorded decode
// step replays with a new n. Shared memory: q [g][hd], p [g][chunk], seen [chunk].
constexpr int kDecodeMaxG = 16;
constexpr int kKeysInFlight = 4;  // keys whose loads one warp (phase 1) or thread (phase 3) keeps in flight
constexpr int64_t kDecodeMaxProbs = 2048;  // g * chunk: shared memory <= 4*(16*512 + 2048 + 128) bytes < 48 KB

// PER: dims per lane in phase 1 (head_dim <= 32 * PER); MAXG: bound on the query heads per KV head; KV: the
// cache's element type (float or bf16, widened on load).
template <int PER, int MAXG, typename KV>
__global__ void __launch_bounds__(kWarps * 32, 2)
    attention_decode_kernel(const float* __restrict__ q, const DecodeSeq* __restrict__ seqs,
                            const int32_t* __restrict__ row_seq, int64_t s_cap, int Hq, int Hkv, int hd, float scale,
                            const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window,
                            int64_t chunk, float* __restrict__ part_m, float* __restrict__ part_l,
                            float* __restrict__ part_acc) {
  extern __shared__ float smem[];
  const int g = Hq / Hkv, kh = blockIdx.x, split = blockIdx.y, nsplit = gridDim.y;
  const int64_t t = blockIdx.z;  // query row; its sequence (keys, values, key layout) is seqs[row_seq[t]]
  const DecodeSeq sq = seqs[row_seq ? row_seq[t] : 0];
  const KV* __restrict__ k = static_cast<const KV*>(sq.k);
  const KV* __restrict__ v = static_cast<const KV*>(sq.v);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  float* qs = smem;                  // [g][hd]
  float* ps = qs + g * hd;           // [g][chunk]: scores, then probabilities
  float* seen = ps + g * chunk;      // [chunk]: 1 = visible key
  const int64_t qstride = int64_t(Hq) * hd, kstride = int64_t(Hkv) * hd;
  const float* qrow = q + t * qstride + int64_t(kh) * g * hd;
  for (int i = threadIdx.x; i < g * hd; i += blockDim.x) qs[i] = qrow[i];
  int64_t n = s_cap, k0 = 0, r = 0;
  if (!k_pos) {
    n = sq.n < s_cap ? sq.n : s_cap;
    k0 = sq.k0;
    r = sq.r;
  }
  const int64_t s0 = int64_t(split) * chunk;
  const int64_t len = s0 >= n ? 0 : (s0 + chunk < n ? chunk : n - s0);
  const int64_t qp = q_pos[t];
  __syncthreads();
  // Phase 1: each warp takes kKeysInFlight keys at a time, so their position and row loads overlap.
  for (int64_t base = int64_t(warp) * kKeysInFlight; base < len; base += int64_t(kWarps) * kKeysInFlight) {
    bool vis[kKeysInFlight];
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const int64_t i = base + u, s = s0 + i;
      vis[u] = i < len && visible(qp, k_pos ? k_pos[s] : k0 + (s - r + n) % n, window, -1, -1);
    }
    float kr[kKeysInFlight][PER];
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const KV* krow = k + (s0 + base + u) * kstride + int64_t(kh) * hd;
#pragma unroll
      for (int e = 0; e < PER; ++e) kr[u][e] = vis[u] && lane + 32 * e < hd ? to_f(krow[lane + 32 * e]) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const int64_t i = base + u;
      if (i >= len) break;
      if (lane == 0) seen[i] = vis[u] ? 1.f : 0.f;
      if (!vis[u]) continue;
#pragma unroll
      for (int j = 0; j < MAXG; ++j) {
        if (j >= g) break;
        float d = 0.f;
#pragma unroll
        for (int e = 0; e < PER; ++e)
          if (lane + 32 * e < hd) d += qs[j * hd + lane + 32 * e] * kr[u][e];
        d = warp_sum(d);
        if (lane == 0) ps[j * chunk + i] = d * scale;
      }
    }
  }
  __syncthreads();
  for (int j = warp; j < g; j += kWarps) {
    float m = -INFINITY;
    for (int64_t i = lane; i < len; i += 32)
      if (seen[i] != 0.f) m = fmaxf(m, ps[j * chunk + i]);
    m = warp_max(m);
    float l = 0.f;
    for (int64_t i = lane; i < len; i += 32) {
      const float p = seen[i] != 0.f ? __expf(ps[j * chunk + i] - m) : 0.f;
      ps[j * chunk + i] = p;
      l += p;
    }
    l = warp_sum(l);
    if (lane == 0) {
      const int64_t pidx = (t * Hq + int64_t(kh) * g + j) * nsplit + split;
      part_m[pidx] = m;
      part_l[pidx] = l;
    }
  }
  __syncthreads();
  const int d0 = threadIdx.x, d1 = threadIdx.x + kWarps * 32;
  float a0[MAXG], a1[MAXG];
#pragma unroll
  for (int j = 0; j < MAXG; ++j) a0[j] = a1[j] = 0.f;
  // Phase 3: kKeysInFlight value rows are loaded before they are accumulated.
  for (int64_t i0 = 0; i0 < len; i0 += kKeysInFlight) {
    float v0[kKeysInFlight], v1[kKeysInFlight];
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const int64_t i = i0 + u;
      const bool use = i < len && seen[i] != 0.f;
      const KV* vrow = v + (s0 + i) * kstride + int64_t(kh) * hd;
      v0[u] = use && d0 < hd ? to_f(vrow[d0]) : 0.f;
      v1[u] = use && d1 < hd ? to_f(vrow[d1]) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < kKeysInFlight; ++u) {
      const int64_t i = i0 + u;
      if (i >= len) break;
#pragma unroll
      for (int j = 0; j < MAXG; ++j) {
        if (j >= g) break;
        const float p = ps[j * chunk + i];  // 0 for keys not seen (phase 2)
        a0[j] += p * v0[u];
        a1[j] += p * v1[u];
      }
    }
  }
#pragma unroll
  for (int j = 0; j < MAXG; ++j) {
    if (j >= g) break;
    float* pa = part_acc + ((t * Hq + int64_t(kh) * g + j) * nsplit + split) * hd;
    if (d0 < hd) pa[d0] = a0[j];
    if (d1 < hd) pa[d1] = a1[j];
  }
}

// o[row] = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M) over the splits i (split_merge.cuh).
// Grid (row, 64-dim slice); dynamic shared memory 2 * nsplit floats.
template <int V>
__global__ void __launch_bounds__(kWarps * 32)
    attention_merge_kernel(const float* part_m, const float* part_l, const float* part_acc, int nsplit, int hd,
                           float* o) {
  extern __shared__ float s_w[];
  pdl_wait();
  pdl_trigger();
  const int d0 = blockIdx.y * 64, d1 = d0 + 64 < hd ? d0 + 64 : hd;
  merge_split_rows<false, V>(part_m, part_l, part_acc, o, blockIdx.x, 1, nsplit, hd, d0, d1, s_w);
}

// scores/probs: [Hq, C, Sk]; row r = h * C + i reads query i's position, keys j's positions.
template <typename P>
__global__ void masked_softmax_kernel(const float* __restrict__ scores, int64_t C, int64_t Sk, float scale,
                                      const int64_t* q_pos, const int64_t* k_pos, int window, P* __restrict__ probs) {
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int64_t i = r % C;
  const float* sr = scores + r * Sk;
  P* pr = probs + r * Sk;
  const int64_t qp = q_pos[i];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < Sk; j += blockDim.x)
    if (visible(qp, k_pos[j], window, -1, -1)) mx = fmaxf(mx, sr[j] * scale);
  mx = warp_max(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = -INFINITY;
  for (int w = 0; w < nw; ++w) mx = fmaxf(mx, red[w]);
  __syncthreads();
  float sum = 0.f;
  if (mx != -INFINITY)
    for (int64_t j = threadIdx.x; j < Sk; j += blockDim.x)
      if (visible(qp, k_pos[j], window, -1, -1)) sum += __expf(sr[j] * scale - mx);
  sum = warp_sum(sum);
  if (lane == 0) red[warp] = sum;
  __syncthreads();
  sum = 0.f;
  for (int w = 0; w < nw; ++w) sum += red[w];
  const float inv = sum > 0.f ? 1.f / sum : 0.f;
  for (int64_t j = threadIdx.x; j < Sk; j += blockDim.x) {
    const float p = (mx != -INFINITY && visible(qp, k_pos[j], window, -1, -1)) ? __expf(sr[j] * scale - mx) * inv : 0.f;
    if constexpr (sizeof(P) == 2) pr[j] = __float2bfloat16_rn(p);
    else pr[j] = p;
  }
}

__global__ void f32_to_bf16_kernel(const float* __restrict__ x, __nv_bfloat16* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16_rn(x[i]);
}

// Four at a time (n % 4 == 0, x 16-byte and y 8-byte aligned): a prefill's activations, memory-bound.
__global__ void f32_to_bf16_4_kernel(const float4* __restrict__ x, uint2* __restrict__ y, int64_t n4) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n4; i += int64_t(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
    y[i] = make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
  }
}

__global__ void bf16_to_f32_kernel(const __nv_bfloat16* __restrict__ x, float* __restrict__ y, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

// Rows of F32 into a BF16 table at row *row (read on the device); blockIdx.y picks the pair.
__global__ void store_rows_bf16_kernel(const float* src, __nv_bfloat16* dst, const float* src2, __nv_bfloat16* dst2,
                                       const int64_t* row, int64_t width, int64_t n) {
  pdl_wait();
  pdl_trigger();
  const float* s = blockIdx.y ? src2 : src;
  __nv_bfloat16* d = (blockIdx.y ? dst2 : dst) + *row * width;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    d[i] = __float2bfloat16_rn(s[i]);
}

// rows: (query row, head) pairs; output row r is partial row r.
void attention_merge(const float* part_m, const float* part_l, const float* part_acc, int64_t rows, int nsplit, int hd,
                     float* o, cudaStream_t s) {
  const dim3 grid{unsigned(rows), unsigned((hd + 63) / 64)};
  const size_t smem = size_t(2) * nsplit * sizeof(float);
  const bool vec = hd % 4 == 0 && (reinterpret_cast<uintptr_t>(part_acc) | reinterpret_cast<uintptr_t>(o)) % 16 == 0;
  auto kernel = vec ? attention_merge_kernel<4> : attention_merge_kernel<1>;
  launch_pdl(kernel, grid, dim3(kWarps * 32), smem, s, part_m, part_l, part_acc, nsplit, hd, o);
}

}  // namespace

int attention_merge_partials(const float* part_m, const float* part_l, const float* part_acc, int64_t rows, int nsplit,
                             int hd, float* o, cudaStream_t s) {
  if (rows > 0) attention_merge(part_m, part_l, part_acc, rows, nsplit, hd, o, s);
  return int(cudaGetLastError());
}

int attention_split(const float* q, const float* k, const float* v, int64_t T, int64_t S, int n_q_heads,
                    int n_kv_heads, int head_dim, float scale, const int64_t* q_pos, const int64_t* k_pos, int window,
                    const int32_t* q_block, const int32_t* k_block, int nsplit, float* part_m, float* part_l,
                    float* part_acc, float* o, cudaStream_t s) {
  if (head_dim > kMaxD || head_dim <= 0 || nsplit < 1) return int(cudaErrorInvalidValue);
  if (T <= 0) return 0;
  const int64_t chunk = (S + nsplit - 1) / nsplit;
  dim3 grid(unsigned(T * n_q_heads), unsigned(nsplit));
  const bool vec = head_dim % 128 == 0 && uintptr_t(q) % 16 == 0 && uintptr_t(k) % 16 == 0 && uintptr_t(v) % 16 == 0;
  if (vec)
    attention_split_kernel<true><<<grid, kWarps * 32, 0, s>>>(q, k, v, S, n_q_heads, n_kv_heads, head_dim, scale, q_pos,
                                                              k_pos, window, q_block, k_block, chunk, part_m, part_l,
                                                              part_acc);
  else
    attention_split_kernel<false><<<grid, kWarps * 32, 0, s>>>(q, k, v, S, n_q_heads, n_kv_heads, head_dim, scale,
                                                               q_pos, k_pos, window, q_block, k_block, chunk, part_m,
                                                               part_l, part_acc);
  attention_merge(part_m, part_l, part_acc, T * n_q_heads, nsplit, head_dim, o, s);
  return int(cudaGetLastError());
}

bool attention_decode_supported(int n_q_heads, int n_kv_heads, int head_dim) {
  return n_kv_heads > 0 && n_q_heads % n_kv_heads == 0 && n_q_heads / n_kv_heads <= kDecodeMaxG && head_dim > 0 &&
         head_dim <= kMaxD;
}

int64_t attention_decode_chunk_limit(int n_q_heads, int n_kv_heads) {
  return kDecodeMaxProbs / (n_q_heads / n_kv_heads);
}

int attention_decode(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, bool kv_bf16, int64_t T,
                     int64_t s_cap, int n_q_heads, int n_kv_heads, int head_dim, float scale, const int64_t* q_pos,
                     const int64_t* k_pos, int window, int nsplit, float* part_m, float* part_l, float* part_acc,
                     float* o, cudaStream_t s) {
  if (!attention_decode_supported(n_q_heads, n_kv_heads, head_dim) || nsplit < 1 || !seqs)
    return int(cudaErrorInvalidValue);
  if (T <= 0) return 0;
  const int g = n_q_heads / n_kv_heads;
  const int64_t chunk = (s_cap + nsplit - 1) / nsplit;
  if (chunk > attention_decode_chunk_limit(n_q_heads, n_kv_heads)) return int(cudaErrorInvalidValue);
  const size_t smem = (size_t(g) * head_dim + size_t(g) * chunk + size_t(chunk)) * sizeof(float);
  const dim3 grid{unsigned(n_kv_heads), unsigned(nsplit), unsigned(T)};
  // Registers sized for the shape: head_dim <= 256 needs 8 dims per lane, and the heads per KV head round
  // up to a power of two.
  auto run = [&](auto kv_zero) {
    using KV = decltype(kv_zero);
    auto launch = [&](auto kernel) {
      kernel<<<grid, kWarps * 32, smem, s>>>(q, seqs, row_seq, s_cap, n_q_heads, n_kv_heads, head_dim, scale, q_pos,
                                             k_pos, window, chunk, part_m, part_l, part_acc);
    };
    const bool wide = head_dim > 256;
    if (g == 1) wide ? launch(attention_decode_kernel<16, 1, KV>) : launch(attention_decode_kernel<8, 1, KV>);
    else if (g == 2) wide ? launch(attention_decode_kernel<16, 2, KV>) : launch(attention_decode_kernel<8, 2, KV>);
    else if (g <= 4) wide ? launch(attention_decode_kernel<16, 4, KV>) : launch(attention_decode_kernel<8, 4, KV>);
    else if (g <= 8) wide ? launch(attention_decode_kernel<16, 8, KV>) : launch(attention_decode_kernel<8, 8, KV>);
    else wide ? launch(attention_decode_kernel<16, 16, KV>) : launch(attention_decode_kernel<8, 16, KV>);
  };
  if (kv_bf16) run(__nv_bfloat16{});
  else run(0.f);
  attention_merge(part_m, part_l, part_acc, T * n_q_heads, nsplit, head_dim, o, s);
  return int(cudaGetLastError());
}

int masked_softmax(const float* scores, int64_t rows, int64_t C, int64_t Sk, float scale, const int64_t* q_pos,
                   const int64_t* k_pos, int window, void* probs, bool probs_bf16, cudaStream_t s) {
  if (rows <= 0 || Sk <= 0) return 0;
  const int threads = Sk >= 8192 && rows < 1024 ? 1024 : Sk >= 1024 ? 256 : 128;  // long rows, few of them: wide
  if (probs_bf16)
    masked_softmax_kernel<<<unsigned(rows), threads, 0, s>>>(scores, C, Sk, scale, q_pos, k_pos, window,
                                                             static_cast<__nv_bfloat16*>(probs));
  else
    masked_softmax_kernel<<<unsigned(rows), threads, 0, s>>>(scores, C, Sk, scale, q_pos, k_pos, window,
                                                             static_cast<float*>(probs));
  return int(cudaGetLastError());
}

int bf16_to_f32(const void* x, float* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return 0;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  bf16_to_f32_kernel<<<unsigned(blocks), 256, 0, s>>>(static_cast<const __nv_bfloat16*>(x), y, n);
  return int(cudaGetLastError());
}

int store_rows_bf16(const float* src, void* dst, const float* src2, void* dst2, const int64_t* row, int64_t n,
                    int64_t width, cudaStream_t s) {
  const int64_t total = n * width;
  if (total <= 0) return 0;
  int64_t blocks = (total + 255) / 256;
  if (blocks > 65535) blocks = 65535;
  const dim3 grid{unsigned(blocks), src2 ? 2u : 1u};
  launch_pdl(store_rows_bf16_kernel, grid, dim3(256), 0, s, src, static_cast<__nv_bfloat16*>(dst), src2,
             static_cast<__nv_bfloat16*>(dst2), row, width, total);
  return int(cudaGetLastError());
}

int f32_to_bf16(const float* x, void* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return 0;
  if (n % 4 == 0 && uintptr_t(x) % 16 == 0 && uintptr_t(y) % 8 == 0) {
    const int64_t n4 = n / 4, blocks = std::min<int64_t>((n4 + 255) / 256, 65535 * 8);
    f32_to_bf16_4_kernel<<<unsigned(blocks), 256, 0, s>>>(reinterpret_cast<const float4*>(x), static_cast<uint2*>(y),
                                                            n4);
    return int(cudaGetLastError());
  }
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  f32_to_bf16_kernel<<<unsigned(blocks), 256, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  return int(cudaGetLastError());
}

}  // namespace gemma4::cuda
