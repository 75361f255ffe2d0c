// Prefill attention on Hopper's warpgroup MMA (wgmma, sm_90a) for the 12B's layers: bf16 q / k / v / o, keys
// at consecutive positions, causal with an optional sliding window (no bidirectional blocks); head_dim 256
// with an even number of query heads per KV head (the sliding layers, flash_wgmma_kernel) or head_dim 512
// with 16 (the full layers, flash_wgmma_mqa_kernel, below). Everything else takes flash_attention.cu or the
// chunked cuBLAS path.
//
// head_dim 256: block = 2 warpgroups = the same 64 query rows of the two query heads of a KV head (one head per warpgroup),
// sharing every K / V tile. Per tile of 64 keys, each warpgroup:
//   S [64 x 64] = Q K^T: 16 wgmma m64n64k16, Q and K from shared memory (K-major descriptors), fp32;
//   scale, mask by position, online softmax in fp32 (running max m and sum l per row, as flash_attention.cu;
//   the accumulator layout puts a row's 64 keys in the 4 lanes of a quad);
//   O [64 x 256] += P V: 4 wgmma m64n256k16, P (bf16) straight from the S registers as the A operand, V from
//   shared memory read transposed (MN-major descriptor); O stays in registers (128 fp32 a thread).
// K and V tiles go through two shared-memory stages by cp.async (tile t + 1 loads while tile t is used).
// Shared tiles use the 128-byte swizzle layout of wgmma_util.cuh.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "ops/cuda/kernels.h"
#include "ops/cuda/mma_util.cuh"
#include "ops/cuda/wgmma_util.cuh"

namespace gemma4::cuda {
namespace {

#if GEMMA4_WGMMA
constexpr int kRows = 64;                  // query rows per block (per warpgroup: one head)
constexpr int kKeys = 64;                  // keys per tile
constexpr int kHD = 256;                   // head_dim
constexpr int kChunks = kHD / 8;           // 16-byte chunks per row
constexpr int kTile = kKeys * kHD * 2;     // bytes of one K or V tile (= one head's Q tile)
constexpr int kThreads = 256;
constexpr size_t kSmem = 6 * size_t(kTile) + 1024;  // Q of 2 heads, 2 stages of K and V; 1024-byte alignment

using bf16 = __nv_bfloat16;

// Rows [j0, j0 + ROWS) of a bf16 table (row stride ld elements; src points at the tile's first column) into a
// tile of the wgmma_util.cuh layout, CH 16-byte chunks a row, by THREADS threads: thread t copies chunk t % CH of
// rows t / CH + (THREADS / CH) i. Rows >= S are zero-filled. A whole tile (every tile of a key range but
// its last) skips the row checks, and its swizzle (chunk ^ (row & 7)) takes two values, since the rows step by
// a multiple of 4 (ncu SASS found ~15 instructions around each cp.async of the checked form).
template <int ROWS, int CH, int THREADS>
__device__ __forceinline__ void load_rows(char* tile, const bf16* src, int64_t ld, int64_t j0, int64_t S) {
  constexpr int kStep = THREADS / CH;
  static_assert(THREADS % CH == 0 && ROWS % kStep == 0 && kStep % 4 == 0, "load_rows: the threads must tile the rows");
  const int c = threadIdx.x % CH, r0 = threadIdx.x / CH;
  const uint32_t base = smem_addr(tile) + (c >> 3) * (ROWS * 128) + r0 * 128;
  const bf16* p = src + (j0 + r0) * ld + c * 8;
  if (j0 + ROWS <= S) {
    // Row r0 + kStep i: swizzle sw[(kStep i / 4) & 1], since adding 4 to a row flips bit 2 of row & 7.
    const uint32_t sw0 = ((c & 7) ^ (r0 & 7)) << 4, sw[2] = {sw0, sw0 ^ 64u};
    const int64_t step = int64_t(kStep) * ld;
#pragma unroll
    for (int i = 0; i < ROWS / kStep; ++i, p += step) cp_async16(base + sw[(kStep * i / 4) & 1] + kStep * i * 128, p);
    return;
  }
#pragma unroll
  for (int i = 0; i < ROWS / kStep; ++i) {
    const int r = r0 + kStep * i;
    const bool valid = j0 + r < S;
    cp_async16(base + kStep * i * 128 + (((c & 7) ^ (r & 7)) << 4), valid ? p + int64_t(kStep * i) * ld : src, valid);
  }
}

// Positions in the kernels' arithmetic are relative to the first key's (kp0; keys at consecutive positions,
// key slot j at kp0 + j) and 32-bit: a query position becomes qp - kp0, clamped to +-2^30, which keeps every
// comparison with a slot j in [0, S) exact (S < 2^30, flash_wgmma_applies). 64-bit position arithmetic cost
// registers and two instructions per compare.
__device__ __forceinline__ int rel_pos(int64_t qp, int64_t kp0) {
  return int(max(int64_t(-(1 << 30)), min(int64_t(1 << 30), qp - kp0)));
}
constexpr int kNoRow = -(1 << 30);  // the relative position of a padding row: sees no key

// The key slots [j_lo, j_hi) that a block with relative query positions qmin .. qmax may see, bounded by
// causality and the window.
__device__ __forceinline__ void key_range(int qmin, int qmax, int S, int window, int& j_lo, int& j_hi) {
  j_lo = window > 0 ? max(0, qmin - window + 1) : 0;
  j_hi = min(S, qmax + 1);
}

// The first step of tile_pipeline's iteration t for both kernels: K_t and V_{t-1} (issued one iteration ago)
// have landed and are visible to the async proxy; after the barrier every warp is done with iteration t - 1, so
// K_{t-1}'s stage takes K_{t+1} and V_{t-2}'s takes V_t (stages t & 1 of `bytes` each, KEYS keys a tile).
template <int KEYS, class Load>
__device__ __forceinline__ void next_tiles(int t, int n_tiles, int j_lo, char* sk, char* sv, int bytes,
                                           const bf16* k, const bf16* v, Load&& load) {
  cp_async_wait<0>();
  fence_proxy_async();
  __syncthreads();
  if (t + 1 < n_tiles) load(sk + ((t + 1) & 1) * bytes, k, j_lo + (t + 1) * KEYS);
  if (t < n_tiles) load(sv + (t & 1) * bytes, v, j_lo + t * KEYS);
  cp_async_commit();
}

// The 128 output accumulators (32 n-tiles: acc[4 n], acc[4 n + 1] row g; acc[4 n + 2], acc[4 n + 3] row g + 8)
// times the rows' correction factors; skipped when no row of the warp moved its max (most tiles, once the
// maxima settle).
__device__ __forceinline__ void rescale(float* acc, float c0, float c1) {
  if (__any_sync(0xffffffffu, c0 != 1.f || c1 != 1.f)) {
#pragma unroll
    for (int n = 0; n < 32; ++n) acc[4 * n] *= c0, acc[4 * n + 1] *= c0, acc[4 * n + 2] *= c1, acc[4 * n + 3] *= c1;
  }
}

// The loop both kernels run over n_tiles key tiles: iteration t issues S_t = Q K_t^T together with
// O += P_{t-1} V_{t-1}, waits for S_t only, runs the softmax of tile t under the P V product, then waits for
// it and applies tile t's rescale to O. The first iteration (no P V yet) and the last (no S) are peeled, so the
// steady state has no branches between the MMAs and their waits. P alternates between two register sets
// (pa for even tiles, pb for odd ones; the loop body is two iterations): with one set copied into the other
// after each tile, ptxas merged the two and, seeing the softmax define registers that the P V product in
// flight reads, serialized every wgmma of the kernel (warning C7513; ncu on the 12B's full layers: a
// WARPGROUP.DEPBAR after each of the 16 score MMAs a tile). NS / NP: registers of s / of one P set.
// begin(t) waits for tile t's data and issues the next loads; issue_s(t) / issue_pv(t, p) issue and commit
// one wgmma group each (P V reads p); softmax(t, p, c0, c1) turns s into p.
template <int NS, int NP, class Begin, class IssueS, class IssuePV, class Softmax>
__device__ __forceinline__ void tile_pipeline(int n_tiles, float* s, float* acc, uint32_t* pa, uint32_t* pb,
                                              Begin&& begin, IssueS&& issue_s, IssuePV&& issue_pv,
                                              Softmax&& softmax) {
  if (n_tiles <= 0) return;
  float c0, c1;
  begin(0);
  wg_fence();
  issue_s(0);
  wg_wait<0>();
  wg_pin<NS>(s);
  softmax(0, pa, c0, c1);
  // Iteration t: P_{t-1} in `prev`, P_t into `next`.
  auto step = [&](int t, uint32_t* prev, uint32_t* next) {
    begin(t);
    wg_fence();
    issue_s(t);
    issue_pv(t - 1, prev);
    wg_wait<1>();  // S_t (committed first) is done; P_{t-1} V_{t-1} may still run
    wg_pin<NS>(s);
    softmax(t, next, c0, c1);
    wg_wait<0>();
    wg_pin<128>(acc);
    wg_pin<NP>(prev);
    rescale(acc, c0, c1);
  };
  int t = 1;
  for (; t + 1 < n_tiles; t += 2) {
    step(t, pa, pb);
    step(t + 1, pb, pa);
  }
  uint32_t* last = pa;  // P_{n_tiles - 1}
  if (t < n_tiles) {
    step(t, pa, pb);
    last = pb;
  }
  begin(n_tiles);
  wg_fence();
  issue_pv(n_tiles - 1, last);
  wg_wait<0>();
  wg_pin<128>(acc);
  wg_pin<NP>(pa);
  wg_pin<NP>(pb);
}

// The rows' 1 / l (quad sums of the running sums; 0 for a row that saw no key).
__device__ __forceinline__ void row_inverse(float l0, float l1, float& inv0, float& inv1) {
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    l0 += __shfl_xor_sync(0xffffffffu, l0, off);
    l1 += __shfl_xor_sync(0xffffffffu, l1, off);
  }
  inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
}

// One tile's scores -> probabilities, for the thread's two rows (g and g + 8 of its warp's 16): s holds NT
// n-tiles of 8 keys in the accumulator layout, s[4 n + e] = (row g, key j0 + 8 n + 2 t4 + e) and
// s[4 n + 2 + e] = (row g + 8, same key), a row's keys spread over the 4 lanes of a quad. Scales to log2
// units, masks by position unless every row of the block (relative positions qmin .. qmax) sees the whole
// tile (keys j0 .. j0 + 8 NT - 1), updates the running max m and sum l, sets
// the factors c0 / c1 by which the rows' output accumulators must be rescaled (rescale(), exactly 1 when a
// max did not move), and packs P in bf16 as the A operand of NT / 2 k-steps of 16 keys (pa[4 ks .. 4 ks + 3]:
// the mma.sync A layout).
template <int NT>
__device__ __forceinline__ void softmax_tile(float* s, uint32_t* pa, float& m0, float& m1, float& l0, float& l1,
                                             float& c0, float& c1, int j0, int S, int qmin, int qmax, int qp0,
                                             int qp1, int window, float sl2, int t4) {
  constexpr int kTileKeys = 8 * NT;
  const bool whole =
      j0 + kTileKeys <= S && j0 + kTileKeys - 1 <= qmin && (window <= 0 || j0 > qmax - window);
  float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float& a = s[4 * n + e];
      float& b = s[4 * n + 2 + e];
      if (whole) {
        a *= sl2, b *= sl2;
      } else {
        const int j = j0 + 8 * n + 2 * t4 + e;
        const bool in = j < S;
        a = in && j <= qp0 && (window <= 0 || j > qp0 - window) ? a * sl2 : -INFINITY;
        b = in && j <= qp1 && (window <= 0 || j > qp1 - window) ? b * sl2 : -INFINITY;
      }
      mx0 = fmaxf(mx0, a);
      mx1 = fmaxf(mx1, b);
    }
  float b0, b1;
  online_max(mx0, mx1, m0, m1, b0, b1, c0, c1);
  l0 *= c0, l1 *= c1;
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    const float p0 = exp2f(s[4 * n] - b0), p1 = exp2f(s[4 * n + 1] - b0), p2 = exp2f(s[4 * n + 2] - b1),
                p3 = exp2f(s[4 * n + 3] - b1);
    l0 += p0 + p1, l1 += p2 + p3;
    pa[4 * (n >> 1) + 2 * (n & 1)] = pack_bf16(p0, p1);
    pa[4 * (n >> 1) + 2 * (n & 1) + 1] = pack_bf16(p2, p3);
  }
}

__global__ void __launch_bounds__(kThreads, 1)
    flash_wgmma_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                       bf16* __restrict__ o, int64_t T, int64_t S, int Hq, int Hkv, float scale,
                       const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window) {
  extern __shared__ char smem_raw[];
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  char* sq = smem;             // [2 heads] tiles of [64 rows][256]
  char* sk = sq + 2 * kTile;   // [2 stages]
  char* sv = sk + 2 * kTile;   // [2 stages]
  __shared__ unsigned long long s_qmin, s_qmax;

  const int wg = threadIdx.x >> 7, warp = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t i0 = int64_t(blockIdx.x) * kRows;
  const int h0 = blockIdx.y * 2, h = h0 + wg, kh = h0 / (Hq / Hkv);
  const int64_t ldq = int64_t(Hq) * kHD, ldkv = int64_t(Hkv) * kHD;

  if (threadIdx.x == 0) s_qmin = ~0ull, s_qmax = 0;
  for (int i = threadIdx.x; i < 2 * kRows * kChunks; i += kThreads) {
    const int hh = i / (kRows * kChunks), r = (i / kChunks) % kRows, c = i % kChunks;
    const bool valid = i0 + r < T;
    cp_async16(smem_addr(sq + hh * kTile + wg_off(r, c, kRows)),
               q + (valid ? i0 + r : 0) * ldq + int64_t(h0 + hh) * kHD + c * 8, valid);
  }
  cp_async_commit();
  __syncthreads();
  if (threadIdx.x < kRows && i0 + threadIdx.x < T) {
    const unsigned long long p = (unsigned long long)q_pos[i0 + threadIdx.x];
    atomicMin(&s_qmin, p);
    atomicMax(&s_qmax, p);
  }
  __syncthreads();
  const int64_t kp0 = S > 0 ? k_pos[0] : 0;
  const int qmin = rel_pos(int64_t(s_qmin), kp0), qmax = rel_pos(int64_t(s_qmax), kp0), S32 = int(S);
  int j_lo, j_hi;
  key_range(qmin, qmax, S32, window, j_lo, j_hi);
  // This thread's two rows (g and g + 8 of its warp's 16).
  const int64_t row0 = i0 + warp * 16 + g, row1 = row0 + 8;
  const int qp0 = row0 < T ? rel_pos(q_pos[row0], kp0) : kNoRow, qp1 = row1 < T ? rel_pos(q_pos[row1], kp0) : kNoRow;

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units: exp2(s - m)

  // K tile t + 1 and V tile t load during iteration t (next_tiles), so each has a whole iteration to land.
  auto load = [&](char* base, const bf16* src, int64_t j0) {
    load_rows<kKeys, kChunks, kThreads>(base, src + int64_t(kh) * kHD, ldkv, j0, S);
  };
  const uint64_t dq = wg_desc(smem_addr(sq + wg * kTile), 16, 1024);
  const int n_tiles = j_lo < j_hi ? (j_hi - j_lo + kKeys - 1) / kKeys : 0;
  if (n_tiles > 0) load(sk, k, j_lo);
  cp_async_commit();
  // The steps of tile_pipeline.
  uint32_t pa[16] = {}, pb[16] = {};
  float s[32];
  auto begin_tile = [&](int t) { next_tiles<kKeys>(t, n_tiles, j_lo, sk, sv, kTile, k, v, load); };
  auto issue_s = [&](int t) {  // 16 k-steps of 16 dims: step kk is 32 bytes into the rows of block kk / 4
    const uint64_t dk = wg_desc(smem_addr(sk + (t & 1) * kTile), 16, 1024);
#pragma unroll
    for (int kk = 0; kk < kHD / 16; ++kk) {
      const uint32_t off = (kk >> 2) * (kRows * 128) + (kk & 3) * 32;
      wgmma_m64n64k16_ss(s, wg_desc_at(dq, off), wg_desc_at(dk, off), kk > 0);  // (s needs no zeros)
    }
    wg_commit();
  };
  auto issue_pv = [&](int t, const uint32_t* p) {  // O += P_t V_t: k-step ks = keys 16 ks .. + 15 = two 8-key groups
    const uint64_t dv = wg_desc(smem_addr(sv + (t & 1) * kTile), kKeys * 128, 1024);
#pragma unroll
    for (int ks = 0; ks < kKeys / 16; ++ks) wgmma_m64n256k16_rs(acc, p + 4 * ks, wg_desc_at(dv, ks * 2048));
    wg_commit();
  };
  auto softmax = [&](int t, uint32_t* p, float& c0, float& c1) {
    softmax_tile<kKeys / 8>(s, p, m0, m1, l0, l1, c0, c1, j_lo + t * kKeys, S32, qmin, qmax, qp0, qp1, window, sl2,
                            t4);
  };
  tile_pipeline<32, 16>(n_tiles, s, acc, pa, pb, begin_tile, issue_s, issue_pv, softmax);
  cp_async_wait<0>();
  float inv0, inv1;
  row_inverse(l0, l1, inv0, inv1);
  const int64_t ocol = int64_t(h) * kHD + 2 * t4;
#pragma unroll
  for (int n = 0; n < 32; ++n) {
    if (row0 < T)
      *reinterpret_cast<uint32_t*>(o + row0 * ldq + ocol + n * 8) = pack_bf16(acc[4 * n] * inv0, acc[4 * n + 1] * inv0);
    if (row1 < T)
      *reinterpret_cast<uint32_t*>(o + row1 * ldq + ocol + n * 8) =
          pack_bf16(acc[4 * n + 2] * inv1, acc[4 * n + 3] * inv1);
  }
}

// head_dim 512 with 16 query heads per KV head (the 12B's full layers). Block = 64 rows = 4 positions x the 16
// heads of one KV head (row r: position p0 + r / 16, head r % 16; so each warp's 16 rows are one position),
// 2 warpgroups that split the head dims: warpgroup w computes the partial S_w over dims [256 w, 256 w + 256),
// the two partials meet in shared memory (each warpgroup adds the other's: S_0 + S_1 in both, the same
// floats), both run the same softmax, and warpgroup w accumulates O for its 256 output dims. Tiles of 32 keys
// (two stages of K and V at 64 KB each, next to the 64 KB Q tile), pipelined as flash_wgmma_kernel. Blocks
// run latest positions first (they see the most keys).
constexpr int kMRows = 64, kMKeys = 32, kMHD = 512, kMChunks = kMHD / 8;
constexpr int kMQBytes = kMRows * kMHD * 2, kMTile = kMKeys * kMHD * 2;
constexpr size_t kMSmem = kMQBytes + 4 * size_t(kMTile) + 1024;

__global__ void __launch_bounds__(kThreads, 1)
    flash_wgmma_mqa_kernel(const bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                           bf16* __restrict__ o, int64_t T, int64_t S, int Hq, int Hkv, float scale,
                           const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window) {
  extern __shared__ char smem_raw[];
  char* smem = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~uintptr_t(1023));
  char* sq = smem;                  // [64 rows][512]
  char* sk = sq + kMQBytes;         // [2 stages][32 keys][512]
  char* sv = sk + 2 * kMTile;       // [2 stages]
  // The partial scores' exchange, [2 warpgroups][4][128 threads] float4s: a static array, which the compiler
  // reads with shared loads (through a pointer into the aligned dynamic buffer it used generic ones).
  __shared__ float4 x4[2 * 4 * 128];

  const int wg = threadIdx.x >> 7, wt = threadIdx.x & 127, warp = wt >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  const int64_t p0 = int64_t(gridDim.x - 1 - blockIdx.x) * (kMRows / 16);
  const int kh = blockIdx.y;
  const int64_t ldq = int64_t(Hq) * kMHD, ldkv = int64_t(Hkv) * kMHD;

  for (int i = threadIdx.x; i < kMRows * kMChunks; i += kThreads) {
    const int r = i / kMChunks, c = i % kMChunks;
    const int64_t t = p0 + r / 16;
    const bool valid = t < T;
    cp_async16(smem_addr(sq + wg_off(r, c, kMRows)),
               q + (valid ? t : 0) * ldq + int64_t(kh * 16 + r % 16) * kMHD + c * 8, valid);
  }
  cp_async_commit();
  int64_t qmin64 = INT64_MAX, qmax64 = INT64_MIN;
#pragma unroll
  for (int i = 0; i < kMRows / 16; ++i)
    if (p0 + i < T) qmin64 = min(qmin64, q_pos[p0 + i]), qmax64 = max(qmax64, q_pos[p0 + i]);
  const int64_t kp0 = S > 0 ? k_pos[0] : 0;
  const int qmin = rel_pos(qmin64, kp0), qmax = rel_pos(qmax64, kp0), S32 = int(S);
  int j_lo, j_hi;
  key_range(qmin, qmax, S32, window, j_lo, j_hi);
  const int qp = p0 + warp < T ? rel_pos(q_pos[p0 + warp], kp0) : kNoRow;  // both of this thread's rows

  float acc[128];
#pragma unroll
  for (int i = 0; i < 128; ++i) acc[i] = 0.f;
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;
  const float sl2 = scale * 1.4426950408889634f;

  // The same loads and tile_pipeline as flash_wgmma_kernel; the exchange and softmax of tile t run under
  // P_{t-1} V_{t-1}.
  auto load = [&](char* base, const bf16* src, int64_t j0) {
    load_rows<kMKeys, kMChunks, kThreads>(base, src + int64_t(kh) * kMHD, ldkv, j0, S);
  };
  const uint64_t dq = wg_desc(smem_addr(sq), 16, 1024);
  const int n_tiles = j_lo < j_hi ? (j_hi - j_lo + kMKeys - 1) / kMKeys : 0;
  if (n_tiles > 0) load(sk, k, j_lo);
  cp_async_commit();
  uint32_t pa[8] = {}, pb[8] = {};
  float s[16];
  // (next_tiles' barrier also frees the partials' exchange area of iteration t - 1.)
  auto begin_tile = [&](int t) { next_tiles<kMKeys>(t, n_tiles, j_lo, sk, sv, kMTile, k, v, load); };
  auto issue_s = [&](int t) {  // this warpgroup's 16 k-steps (dims 256 wg + 16 kk: block 4 wg + kk / 4)
    const uint64_t dk = wg_desc(smem_addr(sk + (t & 1) * kMTile), 16, 1024);
#pragma unroll
    for (int kk = 0; kk < 16; ++kk) {
      const int blk = 4 * wg + (kk >> 2);
      wgmma_m64n32k16_ss(s, wg_desc_at(dq, blk * (kMRows * 128) + (kk & 3) * 32),
                         wg_desc_at(dk, blk * (kMKeys * 128) + (kk & 3) * 32), kk > 0);
    }
    wg_commit();
  };
  auto issue_pv = [&](int t, const uint32_t* p) {  // this warpgroup's 256 dims: V blocks 4 wg .. 4 wg + 3
    const uint64_t dv = wg_desc(smem_addr(sv + (t & 1) * kMTile) + 4 * wg * (kMKeys * 128), kMKeys * 128, 1024);
#pragma unroll
    for (int ks = 0; ks < kMKeys / 16; ++ks) wgmma_m64n256k16_rs(acc, p + 4 * ks, wg_desc_at(dv, ks * 2048));
    wg_commit();
  };
  // S_t's partial (done) plus the other warpgroup's (thread wt of both holds the same elements), then the
  // softmax.
  auto softmax = [&](int t, uint32_t* p, float& c0, float& c1) {
#pragma unroll
    for (int i = 0; i < 4; ++i) x4[(wg * 4 + i) * 128 + wt] = make_float4(s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float4 o4 = x4[((wg ^ 1) * 4 + i) * 128 + wt];
      s[4 * i] += o4.x, s[4 * i + 1] += o4.y, s[4 * i + 2] += o4.z, s[4 * i + 3] += o4.w;
    }
    softmax_tile<kMKeys / 8>(s, p, m0, m1, l0, l1, c0, c1, j_lo + t * kMKeys, S32, qmin, qmax, qp, qp, window, sl2,
                             t4);
  };
  tile_pipeline<16, 8>(n_tiles, s, acc, pa, pb, begin_tile, issue_s, issue_pv, softmax);
  cp_async_wait<0>();
  float inv0, inv1;
  row_inverse(l0, l1, inv0, inv1);
  const int64_t t = p0 + warp;
  if (t >= T) return;
  bf16* o0 = o + t * ldq + int64_t(kh * 16 + g) * kMHD + 256 * wg + 2 * t4;
  bf16* o1 = o0 + 8 * kMHD;
#pragma unroll
  for (int n = 0; n < 32; ++n) {
    *reinterpret_cast<uint32_t*>(o0 + n * 8) = pack_bf16(acc[4 * n] * inv0, acc[4 * n + 1] * inv0);
    *reinterpret_cast<uint32_t*>(o1 + n * 8) = pack_bf16(acc[4 * n + 2] * inv1, acc[4 * n + 3] * inv1);
  }
}

// GEMMA4_CUDA_WGMMA=0: never (comparisons against flash_attention.cu's kernel; read at every call, so a test
// can run both kernels in one process).
bool wgmma_enabled() {
  static const bool sm90 = device_compute_capability() == 90;  // sm_90a code runs on sm_90 only
  const char* e = std::getenv("GEMMA4_CUDA_WGMMA");
  return sm90 && !(e && std::string_view(e) == "0");
}
#endif  // GEMMA4_WGMMA

}  // namespace

bool flash_wgmma_takes(int n_q_heads, int n_kv_heads, int head_dim, bool io_bf16, bool kv_bf16, bool consecutive,
                       bool blocks) {
#if GEMMA4_WGMMA
  if (!wgmma_enabled() || !io_bf16 || !kv_bf16 || !consecutive || blocks || n_kv_heads <= 0 ||
      n_q_heads % n_kv_heads != 0)
    return false;
  const int G = n_q_heads / n_kv_heads;
  return (head_dim == 256 && G % 2 == 0) || (head_dim == 512 && G == 16);
#else
  (void)n_q_heads, (void)n_kv_heads, (void)head_dim, (void)io_bf16, (void)kv_bf16, (void)consecutive, (void)blocks;
  return false;
#endif
}

bool flash_wgmma_applies(const FlashAttention& a) {
  return a.S < (int64_t(1) << 30) && flash_wgmma_takes(a.n_q_heads, a.n_kv_heads, a.head_dim, a.io_bf16, a.kv_bf16, a.keys_consecutive,
                           a.q_block != nullptr);
}

int flash_attention_wgmma(const FlashAttention& a, cudaStream_t s) {
#if GEMMA4_WGMMA
  if (!flash_wgmma_applies(a)) return int(cudaErrorInvalidValue);
  if (a.T <= 0) return 0;
  const auto* q = static_cast<const bf16*>(a.q);
  const auto* k = static_cast<const bf16*>(a.k);
  const auto* v = static_cast<const bf16*>(a.v);
  auto* o = static_cast<bf16*>(a.o);
  if (a.head_dim == 512) {
    static const cudaError_t attr =
        cudaFuncSetAttribute(flash_wgmma_mqa_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kMSmem));
    if (attr != cudaSuccess) return int(attr);
    const dim3 grid(unsigned((a.T + kMRows / 16 - 1) / (kMRows / 16)), unsigned(a.n_kv_heads));
    flash_wgmma_mqa_kernel<<<grid, kThreads, kMSmem, s>>>(q, k, v, o, a.T, a.S, a.n_q_heads, a.n_kv_heads, a.scale,
                                                          a.q_pos, a.k_pos, a.window);
    return int(cudaGetLastError());
  }
  static const cudaError_t attr =
      cudaFuncSetAttribute(flash_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kSmem));
  if (attr != cudaSuccess) return int(attr);
  const dim3 grid(unsigned((a.T + kRows - 1) / kRows), unsigned(a.n_q_heads / 2));
  flash_wgmma_kernel<<<grid, kThreads, kSmem, s>>>(q, k, v, o, a.T, a.S, a.n_q_heads, a.n_kv_heads, a.scale,
                                                   a.q_pos, a.k_pos, a.window);
  return int(cudaGetLastError());
#else
  (void)a, (void)s;
  return int(cudaErrorNotSupported);
#endif
}

}  // namespace gemma4::cuda
