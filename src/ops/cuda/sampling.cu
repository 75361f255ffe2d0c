// Token selection on the GPU (Ops::choose_tokens), one block per row of logits [B, V], with the rule of the
// host sampler (generate/sampler.cpp): suppressed ids -> -inf; temperature 0 = the first maximal logit;
// otherwise candidates (finite logits, scaled by 1/temperature) in the order (scaled logit desc, id asc),
// top-k keeps the first k, top-p the shortest prefix whose probability reaches top_p, and the draw takes the
// first candidate whose cumulative probability exceeds `uniform`.
//
// Nothing is sorted: each candidate gets a 64-bit key that orders it (ordered float bits of the scaled logit,
// then the inverted id), and every "shortest prefix whose weight reaches a target" is a radix select over the
// keys: eight passes of 8-bit digits from the top, each a 256-bin histogram of the weight (count for top-k,
// e^(z - max) in double for top-p and the draw). The prefixes are then "all keys >= threshold".
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

constexpr int kThreads = 1024;

__device__ __forceinline__ uint64_t order_key(float z, int64_t i) {
  // -0.0 and +0.0 are one value to the host sampler (its comparisons tie them, then the smaller id goes
  // first): the sign bit of a zero must not order them here.
  const uint32_t u = __float_as_uint(z == 0.f ? 0.f : z);
  const uint32_t ordered = (u & 0x80000000u) ? ~u : (u | 0x80000000u);  // larger float -> larger key
  return (uint64_t(ordered) << 32) | uint64_t(0xffffffffu - uint32_t(i));  // smaller id first among equals
}

__device__ __forceinline__ float key_value(uint64_t key) {
  const uint32_t o = uint32_t(key >> 32);
  return __uint_as_float((o & 0x80000000u) ? (o & 0x7fffffffu) : ~o);
}

__device__ __forceinline__ uint64_t warp_max_u64(uint64_t v) {
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t w = __shfl_xor_sync(0xffffffffu, v, o);
    v = w > v ? w : v;
  }
  return v;
}

struct Shared {
  double hist[256];
  double red[kThreads / 32];
  uint64_t kred[kThreads / 32];
  uint64_t prefix;
  double above;
};

__device__ uint64_t block_max_u64(uint64_t v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warp_max_u64(v);
  __syncthreads();
  if (lane == 0) sh.kred[warp] = v;
  __syncthreads();
  uint64_t m = 0;
  for (int w = 0; w < kThreads / 32; ++w) m = sh.kred[w] > m ? sh.kred[w] : m;
  return m;
}

__device__ double block_sum_d(double v, Shared& sh) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) sh.red[warp] = v;
  __syncthreads();
  double s = 0;
  for (int w = 0; w < kThreads / 32; ++w) s += sh.red[w];
  return s;
}

// The largest key T among the candidates with key >= lo such that the weight of {keys >= T} reaches the
// target (strict: exceeds it). weight(i, key) >= 0 for a candidate, and the caller guarantees the total weight
// of the candidates reaches (exceeds) the target.
template <class Weight>
__device__ uint64_t select_prefix(const float* z, int64_t V, float inv_t, uint64_t lo, double target, bool strict,
                                  Weight weight, Shared& sh) {
  if (threadIdx.x == 0) sh.prefix = 0, sh.above = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) sh.hist[b] = 0;
    __syncthreads();
    const uint64_t prefix = sh.prefix;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float zi = __fmul_rn(z[i], inv_t);  // never contracted with a later subtraction
      if (zi == -INFINITY) continue;
      const uint64_t key = order_key(zi, i);
      if (key < lo) continue;
      if (shift < 56 && (key >> (shift + 8)) != (prefix >> (shift + 8))) continue;
      atomicAdd(&sh.hist[(key >> shift) & 255], weight(zi));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double a = sh.above;
      int b = 255;
      for (; b > 0; --b) {
        const double h = sh.hist[b];
        if (strict ? a + h > target : a + h >= target) break;
        a += h;
      }
      sh.above = a;
      sh.prefix = prefix | (uint64_t(b) << shift);
    }
    __syncthreads();
  }
  return sh.prefix;
}

__global__ void __launch_bounds__(kThreads)
    choose_tokens_kernel(float* logits, int64_t V, const double* params, const int64_t* suppress, int n_suppress,
                         int64_t* out) {
  __shared__ Shared sh;
  const int64_t row = blockIdx.x;
  float* z = logits + row * V;
  const double temperature = params[row * 4], top_p = params[row * 4 + 2], uniform = params[row * 4 + 3];
  const int64_t top_k = int64_t(params[row * 4 + 1]);
  for (int j = threadIdx.x; j < n_suppress; j += blockDim.x)
    if (suppress[j] >= 0 && suppress[j] < V) z[suppress[j]] = -INFINITY;
  __syncthreads();
  if (temperature == 0.0) {  // greedy: the first maximal logit (suppressed entries are -inf, not skipped)
    uint64_t best = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const uint64_t k = order_key(z[i], i);
      best = k > best ? k : best;
    }
    best = block_max_u64(best, sh);
    if (threadIdx.x == 0) out[row] = int64_t(0xffffffffu - uint32_t(best & 0xffffffffu));
    return;
  }
  const float inv_t = float(1.0 / temperature);
  uint64_t best = 0;
  double count = 0;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float zi = __fmul_rn(z[i], inv_t);
    if (zi == -INFINITY) continue;
    const uint64_t k = order_key(zi, i);
    best = k > best ? k : best;
    count += 1;
  }
  best = block_max_u64(best, sh);
  count = block_sum_d(count, sh);
  if (count == 0) {
    if (threadIdx.x == 0) out[row] = -1;  // every token suppressed
    return;
  }
  // e^(z - max) with z - max rounded to float first, as the host sampler computes it (the difference taken in
  // double moves a weight by up to ~1e-7 relative, which can move a draw near a cumulative boundary).
  const float mx = key_value(best);
  auto one = [](float) { return 1.0; };
  auto mass = [mx](float zi) { return exp(double(__fsub_rn(zi, mx))); };
  uint64_t lo = 0;  // candidates kept so far: keys >= lo
  if (top_k > 0 && double(top_k) < count) lo = select_prefix(z, V, inv_t, 0, double(top_k), false, one, sh);
  auto kept_mass = [&](uint64_t from) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float zi = __fmul_rn(z[i], inv_t);
      if (zi != -INFINITY && order_key(zi, i) >= from) s += mass(zi);
    }
    return block_sum_d(s, sh);
  };
  double total = kept_mass(lo);
  if (top_p < 1.0) {
    lo = select_prefix(z, V, inv_t, lo, top_p * total, false, mass, sh);
    total = kept_mass(lo);
  }
  const double target = uniform * total;
  uint64_t pick;
  if (target < total) {
    pick = select_prefix(z, V, inv_t, lo, target, true, mass, sh);
  } else {  // rounding left the draw past the last candidate: the last kept one (as the host sampler)
    double kept = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float zi = __fmul_rn(z[i], inv_t);
      if (zi != -INFINITY && order_key(zi, i) >= lo) kept += 1;
    }
    kept = block_sum_d(kept, sh);
    pick = select_prefix(z, V, inv_t, lo, kept, false, one, sh);
  }
  if (threadIdx.x == 0) out[row] = int64_t(0xffffffffu - uint32_t(pick & 0xffffffffu));
}

// Greedy rows only: grid (slice, row), each block the best order key of its slice of the row (its suppressed
// ids set to -inf first, as the kernel above does), the last block of the row (counter) reduces the slices.
// One 1024-thread block per 262K-entry row took ~100 us (H200, ncu); the slices spread it over the GPU.
constexpr int kArgmaxThreads = 256;
constexpr int64_t kArgmaxSlice = 8192;

__global__ void __launch_bounds__(kArgmaxThreads)
    argmax_rows_kernel(float* logits, int64_t V, const int64_t* suppress, int n_suppress, uint64_t* part,
                       unsigned* counters, int64_t* out) {
  __shared__ uint64_t kred[kArgmaxThreads / 32];
  __shared__ bool last;
  const int64_t row = blockIdx.y, nblk = gridDim.x;
  const int64_t i0 = int64_t(blockIdx.x) * kArgmaxSlice, i1 = i0 + kArgmaxSlice < V ? i0 + kArgmaxSlice : V;
  float* z = logits + row * V;
  for (int j = threadIdx.x; j < n_suppress; j += blockDim.x)
    if (suppress[j] >= i0 && suppress[j] < i1) z[suppress[j]] = -INFINITY;
  __syncthreads();
  uint64_t best = 0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
    const uint64_t k = order_key(z[i], i);
    best = k > best ? k : best;
  }
  best = warp_max_u64(best);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) kred[warp] = best;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t m = 0;
    for (int w = 0; w < kArgmaxThreads / 32; ++w) m = kred[w] > m ? kred[w] : m;
    part[row * nblk + blockIdx.x] = m;
    __threadfence();
    const unsigned done = atomicAdd(counters + row, 1u);
    last = done == unsigned(nblk) - 1;
  }
  __syncthreads();
  if (!last) return;
  __threadfence();
  uint64_t m = 0;
  for (int64_t b = threadIdx.x; b < nblk; b += blockDim.x) {
    const uint64_t k = __ldcg(part + row * nblk + b);
    m = k > m ? k : m;
  }
  m = warp_max_u64(m);
  if (lane == 0) kred[warp] = m;
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t r = 0;
    for (int w = 0; w < kArgmaxThreads / 32; ++w) r = kred[w] > r ? kred[w] : r;
    out[row] = int64_t(0xffffffffu - uint32_t(r & 0xffffffffu));
    counters[row] = 0;  // ready for the next launch
  }
}

}  // namespace

int64_t argmax_rows_scratch_words(int64_t B, int64_t V) { return B * ((V + kArgmaxSlice - 1) / kArgmaxSlice); }

int argmax_rows(float* logits, int64_t B, int64_t V, const int64_t* suppress, int n_suppress, uint64_t* scratch,
                unsigned* counters, int64_t* out, cudaStream_t s) {
  if (B <= 0) return 0;
  if (V <= 0 || V > 0xffffffffll || B > 65535) return int(cudaErrorInvalidValue);
  const dim3 grid{unsigned((V + kArgmaxSlice - 1) / kArgmaxSlice), unsigned(B)};
  argmax_rows_kernel<<<grid, kArgmaxThreads, 0, s>>>(logits, V, suppress, n_suppress, scratch, counters, out);
  return int(cudaGetLastError());
}

int choose_tokens(float* logits, int64_t B, int64_t V, const double* params, const int64_t* suppress, int n_suppress,
                  int64_t* out, cudaStream_t s) {
  if (B <= 0) return 0;
  if (V <= 0 || V > 0xffffffffll) return int(cudaErrorInvalidValue);
  choose_tokens_kernel<<<unsigned(B), kThreads, 0, s>>>(logits, V, params, suppress, n_suppress, out);
  return int(cudaGetLastError());
}

}  // namespace gemma4::cuda
