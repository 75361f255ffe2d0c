// Attention kernels beyond the plain one of kernels.cu:
// - split-key attention for few queries (decode): grid (query x head, split); each block runs an online
//   softmax over its slice of the keys (8 warps, lane l holds dims l, l+32, ...) and writes a partial
//   (max, sum, unnormalised accumulator); attention_merge combines the splits. Keys may be in any order (a
//   ring buffer): visibility comes from each key's position.
// - masked_softmax for the chunked tensor-core prefill (attention_chunked.cpp): one block per score row,
//   fp32 statistics, probabilities written as bf16 or fp32.
// - f32_to_bf16: round-to-nearest-even conversion of activations for the bf16 GEMMs.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kMaxD = 512;
constexpr int kPer = kMaxD / 32;

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

// One block per row: o[row] = sum_i acc_i e^(m_i - M) / sum_i l_i e^(m_i - M); 0 when no key was visible.
__global__ void attention_merge_kernel(const float* part_m, const float* part_l, const float* part_acc, int nsplit,
                                       int Hq, int hd, float* o) {
  const int64_t row = blockIdx.x;
  const int64_t t = row / Hq;
  const int h = int(row % Hq);
  float M = -INFINITY;
  for (int i = 0; i < nsplit; ++i) M = fmaxf(M, part_m[row * nsplit + i]);
  float* out = o + t * int64_t(Hq) * hd + int64_t(h) * hd;
  if (M == -INFINITY) {
    for (int d = threadIdx.x; d < hd; d += blockDim.x) out[d] = 0.f;
    return;
  }
  float L = 0.f;
  for (int i = 0; i < nsplit; ++i) {
    const float mi = part_m[row * nsplit + i];
    if (mi != -INFINITY) L += part_l[row * nsplit + i] * __expf(mi - M);
  }
  const float invL = 1.f / L;
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float a = 0.f;
    for (int i = 0; i < nsplit; ++i) {
      const float mi = part_m[row * nsplit + i];
      if (mi != -INFINITY) a += part_acc[(row * nsplit + i) * hd + d] * __expf(mi - M);
    }
    out[d] = a * invL;
  }
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

}  // namespace

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
  attention_merge_kernel<<<unsigned(T * n_q_heads), 128, 0, s>>>(part_m, part_l, part_acc, nsplit, n_q_heads,
                                                                 head_dim, o);
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

int f32_to_bf16(const float* x, void* y, int64_t n, cudaStream_t s) {
  if (n <= 0) return 0;
  int64_t blocks = (n + 255) / 256;
  if (blocks > 65535 * 8) blocks = 65535 * 8;
  f32_to_bf16_kernel<<<unsigned(blocks), 256, 0, s>>>(x, static_cast<__nv_bfloat16*>(y), n);
  return int(cudaGetLastError());
}

}  // namespace gemma4::cuda
