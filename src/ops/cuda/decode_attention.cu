// Decode attention for few query heads per KV head (g <= 4; the 12B's sliding layers have g = 2) and head_dim
// 256 or 512: one pass over the keys with 16-byte loads, and the split merge done by the last block of each
// (query row, KV head), so a layer's decode attention is one launch. One bf16 row of the 12B's sliding shape
// (g = 2, head_dim 256) runs 8 splits as one thread-block cluster instead, merged through distributed shared
// memory (CM below).
//
// Grid (KV head, split, query row), 8 warps (16 for the cluster form). Lane l owns dims [8l, 8l + 8) (and
// [256 + 8l, ...) for head_dim 512) of every key, value and query row, so a key row is one coalesced read per 256
// dims. Each warp takes 8 keys at a time (4 for head_dim 512, half that for g > 2) (their K and V rows in flight
// together), computes the g scores (a dot over the lane's dims, then a warp sum), and folds them into its own
// online softmax: running max m, sum l and the lane's slice of the accumulator for each head. The warps then
// combine in shared memory into the block's partial (m, l, acc) for its slice of keys; the last block of the row
// to finish (a counter per row and KV head, reset by that block) merges the nsplit partials into o. Key
// positions: as attention_decode (kernels.h): a ring run {n, k0, r} per sequence, or explicit k_pos.
//
// Many query heads per KV head (5..16; the 12B's full layers: 16 heads on one 512-wide KV head) and a bf16
// cache: decode_mqa_kernel, on the tensor cores. The g heads of the KV head are the 16 rows of an m16n8k16
// tile, so a tile of 64 keys is two small matrix products per warp. Block = 4 warps and a slice of the keys,
// in tiles of 64 keys staged in shared memory by cp.async (K of the next tile loads during P V):
//   S^T [16 keys x 16 heads] per warp (its 16 keys; A = K rows, B = Q^T, both by ldmatrix), masked, scaled;
//   per-head tile max over the 4 warps (shared memory) -> running max M, rescale c = 2^(M_old - M);
//   P = 2^(S - M) as bf16 into shared memory [key][head];
//   O^T [dims x heads] += V^T P^T, each warp for its quarter of the dims (A = V by ldmatrix.trans, B = P by
//   ldmatrix.trans), so no warp holds all 16 x 512 accumulators.
// The block writes its partial (m, l, acc) for attention_merge (attention_kernels.cu).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <type_traits>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"
#include "ops/cuda/mma_util.cuh"
#include "ops/cuda/split_merge.cuh"

namespace gemma4::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kSmallGMax = 4;
constexpr int kMaxSplits = 64;  // the merge keeps 2 * G * nsplit floats in s_acc (>= 8 * 256 floats)

// 8 consecutive elements as fp32, from bf16 (one 16-byte load) or fp32 (two).
__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* f) {
  widen8<kBF16>(*reinterpret_cast<const uint4*>(p), f);
}
__device__ __forceinline__ void load8(const float* p, float* f) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}

__device__ __forceinline__ bool visible_key(int64_t qp, int64_t kp, int window) {
  return kp <= qp && (window <= 0 || kp > qp - window);
}

// The keys one decode block attends to: its query row's sequence (K/V tables, key layout) and the block's
// slice [s0, s0 + len) of key slots; slot s holds position k_pos[s], or k0 + (s - r + n) % n (a ring run).
template <typename KV>
struct KeySlice {
  const KV* __restrict__ k;
  const KV* __restrict__ v;
  int64_t n, k0, r, s0, len;
  __device__ int64_t position(int64_t s, const int64_t* k_pos) const {
    return k_pos ? k_pos[s] : k0 + (s - r + n) % n;
  }
};
template <typename KV>
__device__ KeySlice<KV> key_slice(const DecodeSeq* seqs, const int32_t* row_seq, int64_t t, int64_t s_cap,
                                  const int64_t* k_pos, int split, int64_t chunk) {
  const DecodeSeq sq = seqs[row_seq ? row_seq[t] : 0];
  KeySlice<KV> ks{static_cast<const KV*>(sq.k), static_cast<const KV*>(sq.v), s_cap, 0, 0, 0, 0};
  if (!k_pos) ks.n = sq.n < s_cap ? sq.n : s_cap, ks.k0 = sq.k0, ks.r = sq.r;
  ks.s0 = int64_t(split) * chunk;
  ks.len = ks.s0 >= ks.n ? 0 : (ks.s0 + chunk < ks.n ? chunk : ks.n - ks.s0);
  return ks;
}

constexpr int kClusterSplits = 8;  // CM: the blocks of a (row, KV head), one (portable) thread-block cluster
constexpr int kClusterWarps = 16;  // CM: warps a block

// Thread-block clusters are Hopper's (sm_90): code for an older GPU traps here, and the host launches the CM
// path only for Hopper code (device_code_arch() >= 90).
__device__ __forceinline__ void cluster_sync_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
#else
  __trap();
#endif
}
// Address of `p` (this block's shared memory) in the shared memory of the cluster's block `rank`.
template <typename T>
__device__ __forceinline__ const T* cluster_peer(const T* p, int rank) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  uint64_t r;
  asm volatile("mapa.u64 %0, %1, %2;\n" : "=l"(r) : "l"(p), "r"(rank));
  return reinterpret_cast<const T*>(r);
#else
  __trap();
  return p;
#endif
}

// HD = head_dim (256 or 512), G = query heads per KV head (1..4). PRE (one query row, bf16 cache): each warp
// loads its first keys before the PDL wait, while the kernel before (the q/k/v norms, which append the step's
// own K/V row) still runs; every other row of the cache is final by then, and the step's own row (the slot
// holding position q_pos) is read again after the wait. Launch parameters (seqs, q_pos, k_pos) are host
// uploads made before the step's first kernel.
//
// CM (the nsplit <= kClusterSplits blocks of a (row, KV head) one thread-block cluster): each block keeps its
// partial in shared memory and, after a cluster barrier, merges its 1 / nsplit of the G HD outputs from every
// block's partial (distributed shared memory): no global partials, no counter, no last block.
//
// NW warps a block: kWarps, or kClusterWarps for CM. A block's key loads are bounded by its warps (each warp's
// outstanding loads are limited: 16 keys a warp in flight did not come back sooner than two rounds of 8), so
// CM, with 8 blocks of 128 keys a KV head on 64 SMs, runs 16 warps of 8 keys (128 registers, the PRE keys kept
// as loaded): one round of loads (README).
template <int HD, int G, typename KV, bool PRE, bool CM = false, int NW = kWarps>
__global__ void __launch_bounds__(NW * 32)
    decode_small_g_kernel(const float* __restrict__ q, const DecodeSeq* __restrict__ seqs,
                          const int32_t* __restrict__ row_seq, int64_t s_cap, int Hkv, float scale,
                          const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window,
                          int64_t chunk, float* __restrict__ part_m, float* __restrict__ part_l,
                          float* __restrict__ part_acc, unsigned* __restrict__ counters, float* __restrict__ o) {
  constexpr int E = HD / 32;     // dims per lane
  constexpr int NB = HD / 256;   // 8-dim blocks per lane
  // Keys per warp whose rows are loaded together (within the register budget).
  constexpr int kInFlight = (HD == 256 ? 8 : 4) / (G > 2 ? 2 : 1);
  __shared__ float s_m[NW][G], s_l[NW][G];
  __shared__ __align__(16) float s_acc[NW][HD];
  __shared__ bool s_last;
  if constexpr (!PRE) {
    pdl_wait();
    pdl_trigger();
  }
  const int kh = blockIdx.x, split = blockIdx.y, nsplit = gridDim.y;
  const int64_t t = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int Hq = Hkv * G;
  const KeySlice<KV> ks = key_slice<KV>(seqs, row_seq, t, s_cap, k_pos, split, chunk);
  const KV* __restrict__ k = ks.k;
  const KV* __restrict__ v = ks.v;
  const int64_t kstride = int64_t(Hkv) * HD, s0 = ks.s0, len = ks.len;
  const int64_t qp = q_pos[t];
  // Dim of element e of this lane: block b = e / 8 at 256 b + 8 lane.
  auto dim = [&](int b) { return 256 * b + 8 * lane; };
  float kf[kInFlight][E], vf[kInFlight][E];
  bool vis[kInFlight];
  // This lane's 8 elements of block b of a cache row (K or V) of this KV head.
  auto at = [&](const KV* base, int64_t row, int b) { return base + row * kstride + int64_t(kh) * HD + dim(b); };
  auto load_key = [&](int u, int64_t row) {
#pragma unroll
    for (int b = 0; b < NB; ++b) load8(at(k, row, b), &kf[u][8 * b]), load8(at(v, row, b), &vf[u][8 * b]);
  };
  auto load_keys = [&](int64_t base) {
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t i = base + u, s = s0 + i;
      vis[u] = i < len && visible_key(qp, ks.position(s, k_pos), window);
      load_key(u, vis[u] ? s : s0);  // an in-range row; its values are unused when !vis
    }
  };
  const int64_t base0 = int64_t(warp) * kInFlight;
  // PRE: the first keys as loaded (bf16, 16 bytes a load), each widened only while it is folded (fold_raw).
  uint4 kr[PRE ? kInFlight : 1][NB], vr[PRE ? kInFlight : 1][NB];
  if constexpr (PRE) {
    auto raw_key = [&](int u, int64_t row) {
#pragma unroll
      for (int b = 0; b < NB; ++b) {
        kr[u][b] = *reinterpret_cast<const uint4*>(at(k, row, b));
        vr[u][b] = *reinterpret_cast<const uint4*>(at(v, row, b));
      }
    };
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      const int64_t i = base0 + u, s = s0 + i;
      vis[u] = i < len && visible_key(qp, ks.position(s, k_pos), window);
      // A held row: a block whose slice starts past the held keys has none of its own (a recorded step sizes
      // the grid for up to 255 keys more than the cache may hold).
      raw_key(u, vis[u] ? s : len > 0 ? s0 : 0);
    }
    pdl_wait();
    pdl_trigger();
#pragma unroll
    for (int u = 0; u < kInFlight; ++u)
      if (vis[u] && ks.position(s0 + base0 + u, k_pos) == qp) raw_key(u, s0 + base0 + u);  // the step's own row
  }
  float qf[G][E];
#pragma unroll
  for (int j = 0; j < G; ++j)
#pragma unroll
    for (int b = 0; b < NB; ++b) load8(q + t * int64_t(Hq) * HD + int64_t(kh * G + j) * HD + dim(b), &qf[j][8 * b]);
  float m[G], l[G], acc[G][E];
#pragma unroll
  for (int j = 0; j < G; ++j) {
    m[j] = -INFINITY, l[j] = 0.f;
#pragma unroll
    for (int e = 0; e < E; ++e) acc[j][e] = 0.f;
  }
  const float sl2 = scale * 1.4426950408889634f;  // scores in log2 units
  // Scores of kInFlight keys and the online softmax over them: all scores, one rescale per head, then the values.
  // key_of(u, x) / val_of(u, x) put key u's K / V elements (this lane's E) in x: fold() from the loop's widened
  // loads, fold_raw() from the PRE keys as loaded, each widened only while it is used.
  auto fold_keys = [&](auto&& key_of, auto&& val_of) {
    float sc[kInFlight][G];
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      float kx[E];
      key_of(u, kx);
#pragma unroll
      for (int j = 0; j < G; ++j) {
        float d = 0.f;
#pragma unroll
        for (int e = 0; e < E; ++e) d += qf[j][e] * kx[e];
        d = warp_sum(d);
        sc[u][j] = vis[u] ? d * sl2 : -INFINITY;
      }
    }
    bool live[G];
#pragma unroll
    for (int j = 0; j < G; ++j) {
      float mx = m[j];
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) mx = fmaxf(mx, sc[u][j]);
      live[j] = mx != -INFINITY;
      if (!live[j]) continue;  // nothing visible yet for this warp
      const float c = exp2f(m[j] - mx);
      m[j] = mx;
      l[j] *= c;
#pragma unroll
      for (int e = 0; e < E; ++e) acc[j][e] *= c;
#pragma unroll
      for (int u = 0; u < kInFlight; ++u) {
        sc[u][j] = exp2f(sc[u][j] - mx);  // -inf -> 0
        l[j] += sc[u][j];
      }
    }
#pragma unroll
    for (int u = 0; u < kInFlight; ++u) {
      float vx[E];
      val_of(u, vx);
#pragma unroll
      for (int j = 0; j < G; ++j)
        if (live[j])
#pragma unroll
          for (int e = 0; e < E; ++e) acc[j][e] += sc[u][j] * vx[e];
    }
  };
  auto fold = [&] {
    auto copy = [](const float* from, float* x) {
#pragma unroll
      for (int e = 0; e < E; ++e) x[e] = from[e];
    };
    fold_keys([&](int u, float* x) { copy(kf[u], x); }, [&](int u, float* x) { copy(vf[u], x); });
  };
  auto fold_raw = [&] {
    fold_keys([&](int u, float* x) {
#pragma unroll
      for (int b = 0; b < NB; ++b) widen8<kBF16>(kr[u][b], &x[8 * b]);
    }, [&](int u, float* x) {
#pragma unroll
      for (int b = 0; b < NB; ++b) widen8<kBF16>(vr[u][b], &x[8 * b]);
    });
  };
  int64_t base = base0;
  if constexpr (PRE) {  // the first keys from the raw loads (a peeled iteration: no join with the loop's loads)
    if (base < len) {
      fold_raw();
      base += int64_t(NW) * kInFlight;
    }
  }
  for (; base < len; base += int64_t(NW) * kInFlight) {
    load_keys(base);
    fold();
  }
  // Combine the warps: the block's partial for its key slice, head by head.
  __shared__ float s_pm[CM ? G : 1], s_pl[CM ? G : 1];
  __shared__ __align__(16) float s_pa[CM ? G : 1][CM ? HD : 1];
  if (lane == 0)
#pragma unroll
    for (int j = 0; j < G; ++j) s_m[warp][j] = m[j], s_l[warp][j] = l[j];
  const int64_t prow = (t * Hq + int64_t(kh) * G) * nsplit + split;  // part index of head 0; head j: + j * nsplit
#pragma unroll
  for (int j = 0; j < G; ++j) {
    __syncthreads();  // s_m/s_l written; s_acc free
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < NW; ++w) M = fmaxf(M, s_m[w][j]);
    const float f = M == -INFINITY ? 0.f : exp2f(m[j] - M);
#pragma unroll
    for (int b = 0; b < NB; ++b) {
      float4* dst = reinterpret_cast<float4*>(&s_acc[warp][dim(b)]);
      const float* a = &acc[j][8 * b];
      dst[0] = make_float4(a[0] * f, a[1] * f, a[2] * f, a[3] * f);
      dst[1] = make_float4(a[4] * f, a[5] * f, a[6] * f, a[7] * f);
    }
    __syncthreads();
    float* pa = CM ? &s_pa[CM ? j : 0][0] : part_acc + (prow + int64_t(j) * nsplit) * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
      float a = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w) a += s_acc[w][d];
      pa[d] = a;
    }
    if (threadIdx.x == 0) {
      float L = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w)
        if (s_m[w][j] != -INFINITY) L += s_l[w][j] * exp2f(s_m[w][j] - M);
      if constexpr (CM) {
        s_pm[j] = M, s_pl[j] = L;
      } else {
        part_m[prow + int64_t(j) * nsplit] = M;  // log2 units
        part_l[prow + int64_t(j) * nsplit] = L;
      }
    }
  }
  if constexpr (CM) {
    static_assert((G * HD) % kClusterSplits == 0, "CM: each block merges an equal share of the outputs");
    // The launch makes every cluster kClusterSplits blocks (nsplit == kClusterSplits).
    cluster_sync_all();  // every block's partial is in its shared memory
    constexpr int per = G * HD / kClusterSplits;
    for (int i = threadIdx.x; i < per; i += blockDim.x) {
      const int idx = split * per + i, j = idx / HD, d = idx % HD;
      float pm[kClusterSplits], pl[kClusterSplits], pa[kClusterSplits];
#pragma unroll
      for (int p = 0; p < kClusterSplits; ++p)
        pm[p] = *cluster_peer(&s_pm[j], p), pl[p] = *cluster_peer(&s_pl[j], p), pa[p] = *cluster_peer(&s_pa[j][d], p);
      float M = -INFINITY;
#pragma unroll
      for (int p = 0; p < kClusterSplits; ++p) M = fmaxf(M, pm[p]);
      float L = 0.f, a = 0.f;
#pragma unroll
      for (int p = 0; p < kClusterSplits; ++p)
        if (pm[p] != -INFINITY) {
          const float w = exp2f(pm[p] - M);
          L += w * pl[p], a += w * pa[p];
        }
      o[(t * Hq + int64_t(kh) * G + j) * HD + d] = L > 0.f ? a / L : 0.f;
    }
    cluster_sync_all();  // the peers have read this block's partial
    return;
  }
  // The last block of (row, KV head) merges the splits.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned* c = counters + t * Hkv + kh;
    const unsigned done = atomicAdd(c, 1u);
    s_last = done == unsigned(nsplit) - 1;
    if (s_last) *c = 0;  // ready for the next launch
  }
  __syncthreads();
  if (!s_last) return;
  __threadfence();
  const int64_t row0 = t * Hq + int64_t(kh) * G;
  if (((reinterpret_cast<uintptr_t>(part_acc) | reinterpret_cast<uintptr_t>(o)) & 15) == 0)
    merge_split_rows<true, 4>(part_m, part_l, part_acc, o, row0, G, nsplit, HD, 0, HD, &s_acc[0][0]);
  else
    merge_split_rows<true, 1>(part_m, part_l, part_acc, o, row0, G, nsplit, HD, 0, HD, &s_acc[0][0]);
}

constexpr int kMqaKeys = 64;     // keys per tile (16 per warp)
constexpr int kMqaThreads = 128;

// grid (KV head, split, query row); chunk = keys per split, a multiple of kMqaKeys. G <= 16 heads per KV head.
template <int HD>
__global__ void __launch_bounds__(kMqaThreads, 1)
    decode_mqa_kernel(const float* __restrict__ q, const DecodeSeq* __restrict__ seqs,
                      const int32_t* __restrict__ row_seq, int64_t s_cap, int Hkv, int G, float scale,
                      const int64_t* __restrict__ q_pos, const int64_t* __restrict__ k_pos, int window, int64_t chunk,
                      float* __restrict__ part_m, float* __restrict__ part_l, float* __restrict__ part_acc) {
  constexpr int C = HD / 8;           // 16-byte chunks per row
  constexpr int MT = HD / 64;         // m-tiles of 16 dims per warp (a quarter of the dims)
  extern __shared__ __align__(16) char smem[];
  char* sq = smem;                    // [16 heads][HD] bf16, swizzled
  char* sk = sq + 16 * HD * 2;        // [64 keys][HD]
  char* sv = sk + kMqaKeys * HD * 2;  // [64 keys][HD]
  uint32_t* sp = reinterpret_cast<uint32_t*>(sv + kMqaKeys * HD * 2);  // P [64 keys][16 heads] bf16 (8 words a row)
  __shared__ float s_wmax[4][16], s_wl[4][16], s_M[16];
  __shared__ bool s_vis[kMqaKeys];
  pdl_wait();
  pdl_trigger();
  const int kh = blockIdx.x, split = blockIdx.y, nsplit = gridDim.y;
  const int64_t t = blockIdx.z;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g8 = lane >> 2, t4 = lane & 3;
  const int Hq = Hkv * G;
  const KeySlice<__nv_bfloat16> ks = key_slice<__nv_bfloat16>(seqs, row_seq, t, s_cap, k_pos, split, chunk);
  const __nv_bfloat16* __restrict__ k = ks.k;
  const __nv_bfloat16* __restrict__ v = ks.v;
  const int64_t kstride = int64_t(Hkv) * HD, s0 = ks.s0, len = ks.len;
  const int64_t qp = q_pos[t];
  // Q rows of the KV head's heads (zeros past G), as bf16.
  for (int i = threadIdx.x; i < 16 * C; i += kMqaThreads) {
    const int h = i / C, c = i % C;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (h < G) {
      const float4* p = reinterpret_cast<const float4*>(q + t * int64_t(Hq) * HD + int64_t(kh * G + h) * HD + c * 8);
      val = pack8(p[0], p[1]);
    }
    *reinterpret_cast<uint4*>(sq + swz(h, c, C)) = val;
  }
  auto load = [&](char* tile, const __nv_bfloat16* src, int64_t j0) {
    for (int i = threadIdx.x; i < kMqaKeys * C; i += kMqaThreads) {
      const int row = i / C, c = i % C;
      const bool valid = j0 + row < len;
      cp_async16(smem_addr(tile + swz(row, c, C)), src + (s0 + (valid ? j0 + row : 0)) * kstride + int64_t(kh) * HD + c * 8,
                 valid);
    }
    cp_async_commit();
  };
  // This thread's 4 heads (QK and PV phases alike): 8 j + 2 t4 + e, j, e in {0, 1}.
  float M[2][2], L[2][2];
  float acc[MT][2][4];
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) M[j][e] = -INFINITY, L[j][e] = 0.f;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int j = 0; j < 2; ++j) acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.f;
  const float sl2 = scale * 1.4426950408889634f;
  if (len > 0) {
    load(sk, k, 0);
    load(sv, v, 0);
  }
  for (int64_t j0 = 0; j0 < len; j0 += kMqaKeys) {
    if (threadIdx.x < kMqaKeys) {
      const int64_t i = j0 + threadIdx.x, s = s0 + i;
      s_vis[threadIdx.x] = i < len && visible_key(qp, ks.position(s, k_pos), window);
    }
    cp_async_wait<1>();  // K tile landed
    __syncthreads();
    float st[2][4];
#pragma unroll
    for (int j = 0; j < 2; ++j) st[j][0] = st[j][1] = st[j][2] = st[j][3] = 0.f;
#pragma unroll 4
    for (int kk = 0; kk < HD / 16; ++kk) {
      uint32_t a0, a1, a2, a3, b0, b1, b2, b3;
      ldsm_x4(smem_addr(sk + swz(warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, 2 * kk + (lane >> 4), C)), a0, a1, a2,
              a3);
      ldsm_x4(smem_addr(sq + swz((lane & 7) + (lane >> 4) * 8, 2 * kk + ((lane >> 3) & 1), C)), b0, b1, b2, b3);
      mma(st[0], a0, a1, a2, a3, b0, b1);
      mma(st[1], a0, a1, a2, a3, b2, b3);
    }
    // st[j]: (key 16 warp + g8 [+8], heads 8 j + 2 t4 + e).
    const bool v0 = s_vis[warp * 16 + g8], v1 = s_vis[warp * 16 + g8 + 8];
    float mx[2][2];
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        st[j][e] = v0 ? st[j][e] * sl2 : -INFINITY;
        st[j][2 + e] = v1 ? st[j][2 + e] * sl2 : -INFINITY;
        float m = fmaxf(st[j][e], st[j][2 + e]);
        for (int off = 4; off < 32; off <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
        mx[j][e] = m;
      }
    if (g8 == 0)
#pragma unroll
      for (int j = 0; j < 2; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) s_wmax[warp][8 * j + 2 * t4 + e] = mx[j][e];
    __syncthreads();  // K tile consumed; the warps' maxima visible
    if (j0 + kMqaKeys < len) load(sk, k, j0 + kMqaKeys);
    else cp_async_commit();
    float c[2][2];
#pragma unroll
    for (int j = 0; j < 2; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int h = 8 * j + 2 * t4 + e;
        const float tm = fmaxf(fmaxf(s_wmax[0][h], s_wmax[1][h]), fmaxf(s_wmax[2][h], s_wmax[3][h]));
        const float nm = fmaxf(M[j][e], tm);
        const float b = nm == -INFINITY ? 0.f : nm;
        c[j][e] = exp2f(M[j][e] - b);
        M[j][e] = nm;
        const float p0 = exp2f(st[j][e] - b), p1 = exp2f(st[j][2 + e] - b);
        L[j][e] = L[j][e] * c[j][e] + p0 + p1;
        st[j][e] = p0, st[j][2 + e] = p1;
      }
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      sp[(warp * 16 + g8) * 8 + 4 * j + t4] = pack_bf16(st[j][0], st[j][1]);
      sp[(warp * 16 + g8 + 8) * 8 + 4 * j + t4] = pack_bf16(st[j][2], st[j][3]);
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        acc[mt][j][0] *= c[j][0], acc[mt][j][1] *= c[j][1];
        acc[mt][j][2] *= c[j][0], acc[mt][j][3] *= c[j][1];
      }
    cp_async_wait<1>();  // V tile landed
    __syncthreads();     // and P complete
#pragma unroll
    for (int ks = 0; ks < kMqaKeys / 16; ++ks) {
      uint32_t b0, b1, b2, b3;
      ldsm_x4_t(smem_addr(sp + (ks * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * 8 + (lane >> 4) * 4), b0, b1, b2, b3);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int dchunk = (warp * (HD / 4) + mt * 16) / 8;
        uint32_t a0, a1, a2, a3;
        ldsm_x4_t(smem_addr(sv + swz(ks * 16 + (lane & 7) + (lane >> 4) * 8, dchunk + ((lane >> 3) & 1), C)), a0, a1, a2,
                  a3);
        mma(acc[mt][0], a0, a1, a2, a3, b0, b1);
        mma(acc[mt][1], a0, a1, a2, a3, b2, b3);
      }
    }
    __syncthreads();  // V tile and P consumed
    if (j0 + kMqaKeys < len) load(sv, v, j0 + kMqaKeys);
    else cp_async_commit();
  }
  cp_async_wait<0>();
  // Sums over the warp's keys (lanes of one t4), then over the warps.
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      float l = L[j][e];
      for (int off = 4; off < 32; off <<= 1) l += __shfl_xor_sync(0xffffffffu, l, off);
      if (g8 == 0) s_wl[warp][8 * j + 2 * t4 + e] = l;
      if (g8 == 0 && warp == 0) s_M[8 * j + 2 * t4 + e] = M[j][e];  // every warp tracked the same M
    }
  __syncthreads();
  const float kLn2 = 0.6931471805599453f;  // part_m in natural-log units (attention_merge)
  if (threadIdx.x < G) {
    const int h = threadIdx.x;
    const float m = s_M[h];
    const int64_t pidx = (t * Hq + int64_t(kh) * G + h) * nsplit + split;
    part_m[pidx] = m == -INFINITY ? -INFINITY : m * kLn2;
    part_l[pidx] = s_wl[0][h] + s_wl[1][h] + s_wl[2][h] + s_wl[3][h];
  }
  // acc[mt][j]: dims (warp HD/4 + 16 mt + g8 [+8]), heads 8 j + 2 t4 + e.
#pragma unroll
  for (int j = 0; j < 2; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int h = 8 * j + 2 * t4 + e;
      if (h >= G) continue;
      float* pa = part_acc + ((t * Hq + int64_t(kh) * G + h) * nsplit + split) * HD + warp * (HD / 4);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        pa[mt * 16 + g8] = acc[mt][j][e];
        pa[mt * 16 + g8 + 8] = acc[mt][j][2 + e];
      }
    }
}

// GEMMA4_CUDA_DECODE_PRELOAD=0: no key loads before the PDL wait (for comparisons; read at every launch).
bool decode_preload_enabled() {
  const char* v = std::getenv("GEMMA4_CUDA_DECODE_PRELOAD");
  return !(v && v[0] == '0' && v[1] == 0);
}

bool cluster_merge_enabled() {
  const char* v = std::getenv("GEMMA4_CUDA_CLUSTER_MERGE");
  return !(v && v[0] == '0' && v[1] == 0);
}

template <int HD, typename KV>
int launch_g(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, int64_t T, int64_t s_cap, int Hq, int Hkv,
             float scale, const int64_t* q_pos, const int64_t* k_pos, int window, int nsplit, float* part_m,
             float* part_l, float* part_acc, unsigned* counters, float* o, cudaStream_t s) {
  const int64_t chunk = (s_cap + nsplit - 1) / nsplit;
  const dim3 grid{unsigned(Hkv), unsigned(nsplit), unsigned(T)};
  const int G = Hq / Hkv;
  constexpr bool kBf16 = std::is_same_v<KV, __nv_bfloat16>;
  const bool pre = kBf16 && T == 1 && decode_preload_enabled();
  // One bf16 row of the 12B's sliding shape: kClusterSplits blocks a KV head in a cluster, merged through
  // distributed shared memory (GEMMA4_CUDA_CLUSTER_MERGE=0: the counter merge). H200, decode at 4K, same call:
  // 146.72 / 146.78 against 145.72 / 145.77 tok/s; trace: 10.09 against 10.75 us a layer (README). Clusters of
  // 16 (the 16 splits the host sizes for 1024 keys) do not fit the device at once: 7 of 8 KV heads.
  if constexpr (kBf16 && HD == 256) {
    if (pre && G == 2 && cluster_merge_enabled() && device_code_arch() >= 90) {
      const int64_t cchunk = (s_cap + kClusterSplits - 1) / kClusterSplits;
      const cudaError_t e = launch_pdl_cluster(
          decode_small_g_kernel<HD, 2, KV, true, true, kClusterWarps>, dim3(unsigned(Hkv), kClusterSplits, 1),
          dim3(kClusterWarps * 32),
          dim3(1, kClusterSplits, 1), 0, s, q, seqs, row_seq, s_cap, Hkv, scale, q_pos, k_pos, window, cchunk, part_m,
          part_l, part_acc, counters, o);
      return e != cudaSuccess ? int(e) : int(cudaGetLastError());
    }
  }
#define G4_DECODE_G(GG)                                                                                               \
  pre ? launch_pdl(decode_small_g_kernel<HD, GG, KV, kBf16>, grid, dim3(kWarps * 32), 0, s, q, seqs, row_seq, s_cap, \
                   Hkv, scale, q_pos, k_pos, window, chunk, part_m, part_l, part_acc, counters, o)                      \
      : launch_pdl(decode_small_g_kernel<HD, GG, KV, false>, grid, dim3(kWarps * 32), 0, s, q, seqs, row_seq, s_cap, \
                   Hkv, scale, q_pos, k_pos, window, chunk, part_m, part_l, part_acc, counters, o)
  if (G == 1) G4_DECODE_G(1);
  else if (G == 2) G4_DECODE_G(2);
  else if (G == 3) G4_DECODE_G(3);
  else G4_DECODE_G(4);
#undef G4_DECODE_G
  return int(cudaGetLastError());
}

}  // namespace

bool attention_decode_mqa_supported(int n_q_heads, int n_kv_heads, int head_dim, bool kv_bf16) {
  return kv_bf16 && n_kv_heads > 0 && n_q_heads % n_kv_heads == 0 && n_q_heads / n_kv_heads > kSmallGMax &&
         n_q_heads / n_kv_heads <= 16 && (head_dim == 256 || head_dim == 512);
}

int64_t attention_decode_mqa_chunk(int64_t s_cap, int sm_count) {
  const int64_t tiles = (s_cap + kMqaKeys - 1) / kMqaKeys;
  return kMqaKeys * ((tiles + sm_count - 1) / sm_count);
}

int attention_decode_mqa(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, int64_t T, int64_t s_cap,
                         int n_q_heads, int n_kv_heads, int head_dim, float scale, const int64_t* q_pos,
                         const int64_t* k_pos, int window, int64_t chunk, int nsplit, float* part_m, float* part_l,
                         float* part_acc, float* o, cudaStream_t s) {
  if (!attention_decode_mqa_supported(n_q_heads, n_kv_heads, head_dim, true) || nsplit < 1 || !seqs ||
      chunk % kMqaKeys != 0 || chunk * nsplit < s_cap)
    return int(cudaErrorInvalidValue);
  if (T <= 0) return 0;
  const dim3 grid{unsigned(n_kv_heads), unsigned(nsplit), unsigned(T)};
  const int G = n_q_heads / n_kv_heads;
  auto run = [&](auto kernel, int hd) {
    const size_t smem = size_t(16) * hd * 2 + size_t(2) * kMqaKeys * hd * 2 + size_t(kMqaKeys) * 16 * 2;
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) return int(e);
    launch_pdl(kernel, grid, dim3(kMqaThreads), smem, s, q, seqs, row_seq, s_cap, n_kv_heads, G, scale, q_pos, k_pos,
               window, chunk, part_m, part_l, part_acc);
    return int(cudaGetLastError());
  };
  const int e = head_dim == 256 ? run(decode_mqa_kernel<256>, 256) : run(decode_mqa_kernel<512>, 512);
  if (e) return e;
  return attention_merge_partials(part_m, part_l, part_acc, T * n_q_heads, nsplit, head_dim, o, s);
}

bool attention_decode_small_g_supported(int n_q_heads, int n_kv_heads, int head_dim) {
  return n_kv_heads > 0 && n_q_heads % n_kv_heads == 0 && n_q_heads / n_kv_heads <= kSmallGMax &&
         (head_dim == 256 || head_dim == 512);
}

int attention_decode_small_g(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, bool kv_bf16, int64_t T,
                             int64_t s_cap, int n_q_heads, int n_kv_heads, int head_dim, float scale,
                             const int64_t* q_pos, const int64_t* k_pos, int window, int nsplit, float* part_m,
                             float* part_l, float* part_acc, unsigned* counters, float* o, cudaStream_t s) {
  if (!attention_decode_small_g_supported(n_q_heads, n_kv_heads, head_dim) || nsplit < 1 || nsplit > kMaxSplits ||
      !seqs)
    return int(cudaErrorInvalidValue);
  if (T <= 0) return 0;
  if (head_dim == 256)
    return kv_bf16 ? launch_g<256, __nv_bfloat16>(q, seqs, row_seq, T, s_cap, n_q_heads, n_kv_heads, scale, q_pos,
                                                  k_pos, window, nsplit, part_m, part_l, part_acc, counters, o, s)
                   : launch_g<256, float>(q, seqs, row_seq, T, s_cap, n_q_heads, n_kv_heads, scale, q_pos, k_pos,
                                          window, nsplit, part_m, part_l, part_acc, counters, o, s);
  return kv_bf16 ? launch_g<512, __nv_bfloat16>(q, seqs, row_seq, T, s_cap, n_q_heads, n_kv_heads, scale, q_pos, k_pos,
                                                window, nsplit, part_m, part_l, part_acc, counters, o, s)
                 : launch_g<512, float>(q, seqs, row_seq, T, s_cap, n_q_heads, n_kv_heads, scale, q_pos, k_pos, window,
                                        nsplit, part_m, part_l, part_acc, counters, o, s);
}

}  // namespace gemma4::cuda
