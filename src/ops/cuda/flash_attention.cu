// Prefill attention in one kernel on the tensor cores (flash-attention style): S = Q K^T, the masked online
// softmax and O += P V per tile of keys, all in registers and shared memory, so neither the T x S scores nor
// any bf16 copy of Q/K/V reaches device memory.
//
// Block = 4 warps = 64 query rows of one query head (16 rows per warp) and 256 output dims (head_dim 512 runs
// two blocks per head, each computing the full Q K^T over 512 dims and its half of P V); with an even number of
// query heads per KV head (the 12B's sliding layers: 2), 8 warps = the same 64 rows of two heads that share
// every K / V tile load. Per tile of 32 keys:
//   S[16 x 32] per warp: mma.sync m16n8k16 (bf16 in, fp32 accumulate), Q and K from shared memory by
//   ldmatrix; scale, mask by positions (causal, sliding window, bidirectional blocks), online softmax in fp32
//   (running max m and sum l per row); P (bf16) is reused as the A operand of P V straight from the
//   accumulator registers; V comes from shared memory by ldmatrix.trans; O[16 x 256] fp32 in registers,
//   rescaled only when a row's running max moved (any row of the warp).
// Two shared-memory stages: the K and V tiles of tile t + 1 load while tile t is used (cp.async for a bf16
// cache; F32 keys/values are converted on the way into shared memory).
// Shared-memory rows are swizzled in 16-byte chunks (chunk c of row r stored at c ^ (r & 7)), so that the 8
// row addresses of an ldmatrix hit different banks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/kernels.h"
#include "ops/cuda/mma_util.cuh"

namespace gemma4::cuda {
namespace {

constexpr int kRows = 64;   // query rows per block
constexpr int kKeys = 32;   // keys per tile
constexpr int kDimsOut = 256;  // output dims per block
constexpr int kThreads = 128;

// Rows [j0, j0 + kKeys) of a key/value table (row stride ld elements, the tile's dims start at col0) into a
// swizzled shared tile of `chunks` 16-byte chunks per row. Rows >= S are zero. BF16: cp.async (committed by
// the caller); F32: loaded, rounded to bf16 and stored.
template <typename KV>
__device__ __forceinline__ void load_tile(char* tile, const KV* src, int64_t ld, int64_t col0, int64_t j0, int64_t S,
                                          int chunks) {
  const int n = kKeys * chunks;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const int r = i / chunks, c = i % chunks;
    const int64_t j = j0 + r;
    const bool valid = j < S;
    const KV* p = src + (valid ? j : 0) * ld + col0 + c * 8;
    if constexpr (sizeof(KV) == 2) {
      cp_async16(smem_addr(tile + swz(r, c, chunks)), p, valid);
    } else {
      uint4 v = make_uint4(0, 0, 0, 0);
      if (valid) v = pack8(reinterpret_cast<const float4*>(p)[0], reinterpret_cast<const float4*>(p)[1]);
      *reinterpret_cast<uint4*>(tile + swz(r, c, chunks)) = v;
    }
  }
}

__device__ __forceinline__ bool visible(int64_t qp, int64_t kp, int window, int32_t qb, int32_t kb) {
  const bool same_block = qb >= 0 && qb == kb;
  return (kp <= qp || same_block) && (window <= 0 || kp > qp - window);
}

// grid (ceil(T / 64), Hq / HPB, HD / 256). HD = head_dim (256 or 512). HPB = query heads per block (1 or 2,
// heads of one KV head): 4 warps per head, all reading the same K / V tiles.
template <int HD, typename KV, int HPB, typename IO>
__global__ void __launch_bounds__(kThreads * HPB, 1)
    flash_attention_kernel(const IO* __restrict__ q, const KV* __restrict__ k, const KV* __restrict__ v,
                           IO* __restrict__ o, int64_t T, int64_t S, int Hq, int Hkv, float scale,
                           const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window,
                           const int32_t* __restrict__ q_block, const int32_t* __restrict__ k_block, bool consecutive) {
  constexpr int QC = HD / 8;          // 16-byte chunks per Q / K row
  constexpr int VC = kDimsOut / 8;    // per V row (the block's output dims)
  constexpr int NT = kDimsOut / 8;    // output n-tiles of 8 dims
  extern __shared__ __align__(16) char smem[];
  // Two stages of K, V, key positions and block ids: tile t + 1 loads while tile t is used.
  constexpr int kKBytes = kKeys * HD * 2, kVBytes = kKeys * kDimsOut * 2;
  char* sq = smem;                                  // [HPB * kRows][HD] bf16: row r = head r / 64, query r % 64
  char* sk0 = sq + HPB * kRows * HD * 2;            // [2][kKeys][HD]
  char* sv0 = sk0 + 2 * kKBytes;                    // [2][kKeys][kDimsOut]
  int64_t* skp0 = reinterpret_cast<int64_t*>(sv0 + 2 * kVBytes);  // [2][kKeys] key positions
  int32_t* skb0 = reinterpret_cast<int32_t*>(skp0 + 2 * kKeys);   // [2][kKeys] key block ids
  __shared__ unsigned long long s_qmin, s_qmax;

  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t i0 = int64_t(blockIdx.x) * kRows;
  const int h0 = blockIdx.y * HPB, h = h0 + warp / 4, kh = h0 / (Hq / Hkv);
  const int64_t ldq = int64_t(Hq) * HD, ldkv = int64_t(Hkv) * HD;
  const int64_t vcol = int64_t(kh) * HD + int64_t(blockIdx.z) * kDimsOut;

  // Q tile -> bf16 shared; the block's position range.
  if (threadIdx.x == 0) s_qmin = ~0ull, s_qmax = 0;
  __syncthreads();
  for (int i = threadIdx.x; i < HPB * kRows * QC; i += blockDim.x) {
    const int r = i / QC, c = i % QC, rq = r % kRows;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (i0 + rq < T) {
      const IO* src = q + (i0 + rq) * ldq + int64_t(h0 + r / kRows) * HD + c * 8;
      if constexpr (sizeof(IO) == 2) {
        val = *reinterpret_cast<const uint4*>(src);
      } else {
        const float4* p = reinterpret_cast<const float4*>(src);
        val = pack8(p[0], p[1]);
      }
    }
    *reinterpret_cast<uint4*>(sq + swz(r, c, QC)) = val;
  }
  if (threadIdx.x < kRows && i0 + threadIdx.x < T) {
    const unsigned long long p = (unsigned long long)q_pos[i0 + threadIdx.x];
    atomicMin(&s_qmin, p);
    atomicMax(&s_qmax, p);
  }
  __syncthreads();
  // Keys that any row may see: with consecutive positions and no bidirectional blocks, the causal bound and
  // the window give a range; otherwise every key (masked by position).
  int64_t j_lo = 0, j_hi = S;
  const int64_t k_pos0 = S > 0 ? k_pos[0] : 0;
  if (consecutive && !q_block) {
    const int64_t k0 = k_pos[0], qmin = int64_t(s_qmin), qmax = int64_t(s_qmax);
    if (window > 0) j_lo = max(int64_t(0), qmin - window + 1 - k0);
    j_hi = min(S, qmax - k0 + 1);
  }
  // This thread's two rows (g and g + 8 of the warp's 16).
  const int64_t row0 = i0 + (warp % 4) * 16 + g, row1 = row0 + 8;
  const int64_t qp0 = row0 < T ? q_pos[row0] : INT64_MIN / 2, qp1 = row1 < T ? q_pos[row1] : INT64_MIN / 2;
  const int32_t qb0 = q_block && row0 < T ? q_block[row0] : -1, qb1 = q_block && row1 < T ? q_block[row1] : -1;

  float acc[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units: exp2(s - m)

  auto load = [&](int64_t j0, int st) {
    load_tile<KV>(sk0 + st * kKBytes, k, ldkv, int64_t(kh) * HD, j0, S, QC);
    load_tile<KV>(sv0 + st * kVBytes, v, ldkv, vcol, j0, S, VC);
    if (threadIdx.x < kKeys) {
      const int64_t j = j0 + threadIdx.x;
      skp0[st * kKeys + threadIdx.x] = j < S ? k_pos[j] : INT64_MAX / 2;
      skb0[st * kKeys + threadIdx.x] = k_block && j < S ? k_block[j] : -2;
    }
    cp_async_commit();
  };
  // Per-thread ldmatrix offsets (bytes) of chunk 2 m + x, m = 0..3, in this lane's row of each tile.
  const uint32_t sq_a = smem_addr(sq);
  uint32_t a_off[4], b_off[4], v_off[4];
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    a_off[m] = swz(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * m + (lane >> 4), QC);
    b_off[m] = swz((lane & 7) + (lane >> 4) * 8, 2 * m + ((lane >> 3) & 1), QC);
    v_off[m] = swz((lane & 7) + ((lane >> 3) & 1) * 8, 2 * m + (lane >> 4), VC);
  }
  if (j_lo < j_hi) load(j_lo, 0);
  int st = 0;
  for (int64_t j0 = j_lo; j0 < j_hi; j0 += kKeys, st ^= 1) {
    // The other stage was released by the barrier that ended the previous tile.
    if (j0 + kKeys < j_hi) load(j0 + kKeys, st ^ 1);
    else cp_async_commit();  // an empty group keeps the wait counts uniform
    cp_async_wait<1>();      // this tile's group has landed
    __syncthreads();
    const char* sk = sk0 + st * kKBytes;
    const char* sv = sv0 + st * kVBytes;
    const int64_t* skp = skp0 + st * kKeys;
    const int32_t* skb = skb0 + st * kKeys;
    // S = Q K^T: 4 n-tiles of 8 keys. ldmatrix addresses: the swizzle (chunk ^ (row & 7)) only touches the low
    // 3 bits of the chunk, so chunk 2 kk + x of a row is at base[kk % 4] + 128 (kk / 4) bytes (a_off / b_off).
    const uint32_t sk_a = smem_addr(sk), sv_a = smem_addr(sv);
    float s[4][4];
#pragma unroll
    for (int n = 0; n < 4; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a0, a1, a2, a3;
      ldsm_x4(sq_a + a_off[kk & 3] + 128 * (kk >> 2), a0, a1, a2, a3);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t b0, b1, b2, b3;
        ldsm_x4(sk_a + b_off[kk & 3] + np * 16 * QC * 16 + 128 * (kk >> 2), b0, b1, b2, b3);
        mma(s[2 * np], a0, a1, a2, a3, b0, b1);
        mma(s[2 * np + 1], a0, a1, a2, a3, b2, b3);
      }
    }
    // Mask, then the online softmax over this tile (each row's 32 keys live in the 4 lanes of a quad). A tile
    // that every row of the block sees whole (consecutive keys: all at or before the block's first position
    // and inside the window of its last) needs no mask.
    float mx0 = -INFINITY, mx1 = -INFINITY;
    const bool whole = consecutive && !q_block && j0 + kKeys <= S &&
                       k_pos0 + j0 + kKeys - 1 <= int64_t(s_qmin) &&
                       (window <= 0 || k_pos0 + j0 > int64_t(s_qmax) - window);
    if (whole) {
#pragma unroll
      for (int n = 0; n < 4; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          s[n][e] *= sl2, s[n][2 + e] *= sl2;
          mx0 = fmaxf(mx0, s[n][e]);
          mx1 = fmaxf(mx1, s[n][2 + e]);
        }
    } else {
#pragma unroll
      for (int n = 0; n < 4; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int c = n * 8 + 2 * t4 + e;
          const int64_t kp = skp[c];
          const int32_t kb = skb[c];
          s[n][e] = visible(qp0, kp, window, qb0, kb) ? s[n][e] * sl2 : -INFINITY;
          s[n][2 + e] = visible(qp1, kp, window, qb1, kb) ? s[n][2 + e] * sl2 : -INFINITY;
          mx0 = fmaxf(mx0, s[n][e]);
          mx1 = fmaxf(mx1, s[n][2 + e]);
        }
    }
    float b0, b1, c0, c1;
    online_max(mx0, mx1, m0, m1, b0, b1, c0, c1);
    l0 *= c0, l1 *= c1;
    // Once the running maxima settle, most tiles change none of the warp's: skip the 128 multiplies then.
    if (__any_sync(0xffffffffu, c0 != 1.f || c1 != 1.f)) {
#pragma unroll
      for (int n = 0; n < NT; ++n) acc[n][0] *= c0, acc[n][1] *= c0, acc[n][2] *= c1, acc[n][3] *= c1;
    }
    uint32_t pa[2][4];  // P as the A operand of two k-steps of 16 keys
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      const float p0 = exp2f(s[n][0] - b0), p1 = exp2f(s[n][1] - b0), p2 = exp2f(s[n][2] - b1),
                  p3 = exp2f(s[n][3] - b1);
      l0 += p0 + p1, l1 += p2 + p3;
      pa[n >> 1][(n & 1) * 2] = pack_bf16(p0, p1);
      pa[n >> 1][(n & 1) * 2 + 1] = pack_bf16(p2, p3);
    }
#pragma unroll
    for (int ks = 0; ks < 2; ++ks) {
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t v0, v1, v2, v3;
        ldsm_x4_t(sv_a + v_off[np & 3] + ks * 16 * VC * 16 + 128 * (np >> 2), v0, v1, v2, v3);
        mma(acc[2 * np], pa[ks][0], pa[ks][1], pa[ks][2], pa[ks][3], v0, v1);
        mma(acc[2 * np + 1], pa[ks][0], pa[ks][1], pa[ks][2], pa[ks][3], v2, v3);
      }
    }
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  cp_async_wait<0>();
  // Row sums over the quad; rows that saw no key get zeros.
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  const float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
  const int64_t ocol = int64_t(h) * HD + int64_t(blockIdx.z) * kDimsOut + 2 * t4;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    if constexpr (sizeof(IO) == 2) {
      if (row0 < T)
        *reinterpret_cast<uint32_t*>(o + row0 * ldq + ocol + n * 8) = pack_bf16(acc[n][0] * inv0, acc[n][1] * inv0);
      if (row1 < T)
        *reinterpret_cast<uint32_t*>(o + row1 * ldq + ocol + n * 8) = pack_bf16(acc[n][2] * inv1, acc[n][3] * inv1);
    } else {
      if (row0 < T)
        *reinterpret_cast<float2*>(o + row0 * ldq + ocol + n * 8) = make_float2(acc[n][0] * inv0, acc[n][1] * inv0);
      if (row1 < T)
        *reinterpret_cast<float2*>(o + row1 * ldq + ocol + n * 8) = make_float2(acc[n][2] * inv1, acc[n][3] * inv1);
    }
  }
}

template <int HD, typename KV, int HPB, typename IO = float>
int launch(const FlashAttention& a, cudaStream_t s) {
  const size_t smem = size_t(HPB) * kRows * HD * 2 +
                      2 * (size_t(kKeys) * HD * 2 + size_t(kKeys) * kDimsOut * 2 +
                           size_t(kKeys) * (sizeof(int64_t) + sizeof(int32_t)));
  auto kernel = flash_attention_kernel<HD, KV, HPB, IO>;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
  if (attr != cudaSuccess) return int(attr);
  const dim3 grid(unsigned((a.T + kRows - 1) / kRows), unsigned(a.n_q_heads / HPB), unsigned(HD / kDimsOut));
  kernel<<<grid, kThreads * HPB, smem, s>>>(static_cast<const IO*>(a.q), static_cast<const KV*>(a.k),
                                            static_cast<const KV*>(a.v), static_cast<IO*>(a.o), a.T, a.S,
                                            a.n_q_heads, a.n_kv_heads, a.scale, a.q_pos, a.k_pos, a.window,
                                            a.q_block, a.k_block, a.keys_consecutive);
  return int(cudaGetLastError());
}

}  // namespace

bool flash_attention_supported(int n_q_heads, int n_kv_heads, int head_dim) {
  return (head_dim == 256 || head_dim == 512) && n_kv_heads > 0 && n_q_heads % n_kv_heads == 0;
}

int flash_attention(const FlashAttention& a, cudaStream_t s) {
  if (!flash_attention_supported(a.n_q_heads, a.n_kv_heads, a.head_dim)) return int(cudaErrorInvalidValue);
  if (a.T <= 0) return 0;
  if (flash_wgmma_applies(a)) return flash_attention_wgmma(a, s);
  const bool pair = (a.n_q_heads / a.n_kv_heads) % 2 == 0;
  if (a.io_bf16) {  // bf16 q / o: a prefill in bf16 precision, whose cache is bf16
    if (!a.kv_bf16) return int(cudaErrorInvalidValue);
    using B = __nv_bfloat16;
    if (a.head_dim == 256) return pair ? launch<256, B, 2, B>(a, s) : launch<256, B, 1, B>(a, s);
    return launch<512, B, 1, B>(a, s);
  }
  if (a.head_dim == 256) {
    if (pair) return a.kv_bf16 ? launch<256, __nv_bfloat16, 2>(a, s) : launch<256, float, 2>(a, s);
    return a.kv_bf16 ? launch<256, __nv_bfloat16, 1>(a, s) : launch<256, float, 1>(a, s);
  }
  return a.kv_bf16 ? launch<512, __nv_bfloat16, 1>(a, s) : launch<512, float, 1>(a, s);
}

}  // namespace gemma4::cuda
