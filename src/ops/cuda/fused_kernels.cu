// Fused kernels for the Ops fused forms (ops.h): fewer launches per decoded token, same arithmetic as the
// composition of the plain kernels (fp32, weights widened from their stored dtype).
// - add_rmsnorm:     x = (x + f * rsqrt(mean(f^2) + eps) * w) * s, one block per row; f gets the norm
//                    (rows of D % 4 == 0 held in registers, float4 loads).
// - rmsnorm_rope:    per (token, head): rmsnorm over head_dim with w, then the half-split rotation.
// - qkv_norm_rope:   the same for a layer's q and k heads plus the weightless v norm, in one launch; in a
//                    decode step it also appends the k and v rows to the KV caches.
// - gemv_gelu_mul:   decode-shaped gate/up projections: 4 warps read the gate row and the up row of column n
//                    (each every 4th run of 32 chunks) and write gelu_tanh(g) * u (16-byte weight loads, M <= 8).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

__device__ __forceinline__ float to_f(float a) { return a; }
__device__ __forceinline__ float to_f(__nv_bfloat16 a) { return __bfloat162float(a); }
template <typename T>
__device__ __forceinline__ T from_f(float a) {
  if constexpr (sizeof(T) == 2) return __float2bfloat16_rn(a);
  else return a;
}

// (a * b) * c, each product rounded: the residual branch's norm and add are kept out of FMA contraction, whose
// use the compiler decides per kernel (templating these kernels moved an F32 fixture's logits by 1.4e-4).
__device__ __forceinline__ float mul3(float a, float b, float c) { return __fmul_rn(__fmul_rn(a, b), c); }

// Four consecutive elements of an F32 or BF16 row as floats, and back.
__device__ __forceinline__ float4 ld4(const float* p, int64_t i4) { return reinterpret_cast<const float4*>(p)[i4]; }
__device__ __forceinline__ float4 ld4(const __nv_bfloat16* p, int64_t i4) { return ldw4(p, kBF16, i4); }
__device__ __forceinline__ void st4(float* p, int64_t i4, float4 v) { reinterpret_cast<float4*>(p)[i4] = v; }
__device__ __forceinline__ void st4(__nv_bfloat16* p, int64_t i4, float4 v) {
  const __nv_bfloat162 lo = __floats2bfloat162_rn(v.x, v.y), hi = __floats2bfloat162_rn(v.z, v.w);
  reinterpret_cast<uint2*>(p)[i4] =
      make_uint2(*reinterpret_cast<const uint32_t*>(&lo), *reinterpret_cast<const uint32_t*>(&hi));
}

// With w2 (optional): afterwards out = x * rsqrt(mean(x^2) + eps) * w2 over the updated row (F32, or BF16 when
// out_bf16), and f is left as it was read; without w2, f gets the normed values. out may alias f: every element
// is read and rewritten by the same thread. F: f's element type (float, or bf16 for a bf16 prefill's GEMM
// outputs).
template <typename F>
__global__ void add_rmsnorm_kernel(float* x, F* f, const void* w, int wdt, int64_t D, float eps, const void* s,
                                   int sdt, const void* w2, int w2dt, void* out, bool out_bf16, const float* x_in) {
  float* xr = x + int64_t(blockIdx.x) * D;
  const float* xi = (x_in ? x_in : x) + int64_t(blockIdx.x) * D;
  F* fr = f + int64_t(blockIdx.x) * D;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += to_f(fr[i]) * to_f(fr[i]);
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(D) + eps);
  const float sv = s ? ldw(s, sdt, 0) : 1.f;
  float ss2 = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float n = __fmul_rn(__fmul_rn(to_f(fr[i]), inv), ldw(w, wdt, i));
    if (!w2) fr[i] = from_f<F>(n);
    const float v = s ? __fmul_rn(__fadd_rn(xi[i], n), sv) : __fadd_rn(xi[i], n);
    xr[i] = v;
    ss2 += v * v;
  }
  if (!w2) return;
  ss2 = block_sum(ss2);
  const float inv2 = 1.0f / sqrtf(ss2 / float(D) + eps);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    const float o = xr[i] * inv2 * ldw(w2, w2dt, i);
    if (out_bf16) static_cast<__nv_bfloat16*>(out)[int64_t(blockIdx.x) * D + i] = __float2bfloat16_rn(o);
    else static_cast<float*>(out)[int64_t(blockIdx.x) * D + i] = o;
  }
}

// The same, row held in registers: thread i owns float4s i, i + blockDim, ... (at most kVec of them), every
// load of the row (f, x and both weights) is issued before the first reduction, and two block reductions
// follow. A decode step runs this once per residual add on a single 3840-wide row, where the plain kernel's
// dependent scalar loads made it latency-bound (15 us under ncu with a cold L2, H200).
constexpr int kVec = 4;

template <typename F>
__global__ void add_rmsnorm_vec_kernel(float* x, F* f, const void* w, int wdt, int64_t D, float eps, const void* s,
                                       int sdt, const void* w2, int w2dt, void* out, bool out_bf16, const float* x_in) {
  const int64_t D4 = D / 4;
  float4* xr = reinterpret_cast<float4*>(x + int64_t(blockIdx.x) * D);
  const float4* xi = reinterpret_cast<const float4*>((x_in ? x_in : x) + int64_t(blockIdx.x) * D);
  F* fr = f + int64_t(blockIdx.x) * D;
  float4 fv[kVec], xv[kVec], wv[kVec], w2v[kVec];
#pragma unroll
  for (int j = 0; j < kVec; ++j) {  // the norm weights do not depend on earlier kernels (PDL)
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) {
      wv[j] = ldw4(w, wdt, i);
      if (w2) w2v[j] = ldw4(w2, w2dt, i);
    }
  }
  pdl_wait();
  pdl_trigger();
  const float sv = s ? ldw(s, sdt, 0) : 1.f;  // a device scalar: it may come from an earlier kernel
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) {
      fv[j] = ld4(fr, i), xv[j] = xi[i];
      ss += fv[j].x * fv[j].x + fv[j].y * fv[j].y + fv[j].z * fv[j].z + fv[j].w * fv[j].w;
    }
  }
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(D) + eps);
  float ss2 = 0.f;
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) {
      const float4 n = make_float4(mul3(fv[j].x, inv, wv[j].x), mul3(fv[j].y, inv, wv[j].y),
                                   mul3(fv[j].z, inv, wv[j].z), mul3(fv[j].w, inv, wv[j].w));
      if (!w2) st4(fr, i, n);
      float4 v = make_float4(__fadd_rn(xv[j].x, n.x), __fadd_rn(xv[j].y, n.y), __fadd_rn(xv[j].z, n.z),
                             __fadd_rn(xv[j].w, n.w));
      if (s) v = make_float4(__fmul_rn(v.x, sv), __fmul_rn(v.y, sv), __fmul_rn(v.z, sv), __fmul_rn(v.w, sv));
      xr[i] = v;
      xv[j] = v;
      ss2 += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  }
  if (!w2) return;
  ss2 = block_sum(ss2);
  const float inv2 = 1.0f / sqrtf(ss2 / float(D) + eps);
#pragma unroll
  for (int j = 0; j < kVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) {
      const float4 o = make_float4(xv[j].x * inv2 * w2v[j].x, xv[j].y * inv2 * w2v[j].y, xv[j].z * inv2 * w2v[j].z,
                                   xv[j].w * inv2 * w2v[j].w);
      if (out_bf16) st4(static_cast<__nv_bfloat16*>(out), int64_t(blockIdx.x) * D4 + i, o);
      else st4(static_cast<float*>(out), int64_t(blockIdx.x) * D4 + i, o);
    }
  }
}

constexpr int kMaxHead = 512;

// One head of one row: raw[] (shared memory) gets the head's values; returns 1 / rms.
__device__ float load_head_rms(const float* r, float* raw, int hd, float eps) {
  float ss = 0.f;
  for (int i = threadIdx.x; i < hd; i += blockDim.x) {
    const float a = r[i];
    raw[i] = a;
    ss += a * a;
  }
  ss = block_sum(ss);  // also orders the writes of raw[] before the reads that follow
  return 1.0f / sqrtf(ss / float(hd) + eps);
}

// A second destination of a head's values: its slice of a KV cache row (bf16 or fp32), or none.
struct CacheRow {
  void* p = nullptr;
  bool bf16 = false;
  __device__ void put(int i, float a) const {
    if (!p) return;
    if (bf16) static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(a);
    else static_cast<float*>(p)[i] = a;
  }
};

// The block kernels' rotation (128 threads a head, head_dim <= kMaxHead): a thread's pairs j = threadIdx.x +
// 128 i, i < kPairs, of the half-split rotation (j, j + hd/2). The factors depend only on the position, the
// frequencies and the norm weight, so a kernel can compute them before its PDL wait.
constexpr int kRopeThreads = 128, kPairs = kMaxHead / 2 / kRopeThreads;
struct RopeFactors {
  float c[kPairs], s[kPairs], wl[kPairs], wh[kPairs];
};
__device__ RopeFactors rope_factors(const void* w, int wdt, int hd, float p, const float* inv_freq) {
  RopeFactors f;
  const int half = hd / 2;
#pragma unroll
  for (int i = 0; i < kPairs; ++i) {
    const int j = threadIdx.x + kRopeThreads * i;
    if (j >= half) break;
    const float ang = p * inv_freq[j];
    f.c[i] = cosf(ang), f.s[i] = sinf(ang);
    f.wl[i] = ldw(w, wdt, j), f.wh[i] = ldw(w, wdt, j + half);
  }
  return f;
}

// r = rope(raw * inv * w) with the factors above; also into `also`.
__device__ void write_norm_rope(float* r, const float* raw, float inv, const RopeFactors& f, const void* w, int wdt,
                                int hd, CacheRow also = {}) {
  const int half = hd / 2;
#pragma unroll
  for (int i = 0; i < kPairs; ++i) {
    const int j = threadIdx.x + kRopeThreads * i;
    if (j >= half) break;
    const float a = raw[j] * inv * f.wl[i], b = raw[j + half] * inv * f.wh[i];
    const float lo = a * f.c[i] - b * f.s[i], hi = b * f.c[i] + a * f.s[i];
    r[j] = lo, r[j + half] = hi;
    also.put(j, lo), also.put(j + half, hi);
  }
  if ((hd & 1) && threadIdx.x == 0) {
    r[hd - 1] = raw[hd - 1] * inv * ldw(w, wdt, hd - 1);
    also.put(hd - 1, r[hd - 1]);
  }
}

__global__ void rmsnorm_rope_kernel(float* x, const void* w, int wdt, int n_heads, int hd, float eps,
                                    const int64_t* pos, const float* inv_freq) {
  __shared__ float raw[kMaxHead];
  const int64_t th = blockIdx.x;  // t * n_heads + h
  float* r = x + th * hd;
  const RopeFactors rf = rope_factors(w, wdt, hd, float(pos[th / n_heads]), inv_freq);
  const float inv = load_head_rms(r, raw, hd, eps);
  write_norm_rope(r, raw, inv, rf, w, wdt, hd);
}

// One head of a layer's attention inputs (ops.h qkv_norm_rope): head slot h of row t over the q heads, the k
// heads and (unless v_from_k) the v heads. r: the head's values (normalised in place); w: its norm weight (null
// for a v head); vr: for a k head of a K = V layer, where v = the weightless norm of k's raw projection goes;
// ck / cv: where the finished k / v values also go with `append` (row t's KV cache rows, a decode step's
// append without a launch of its own).
template <typename IO = float>
struct QkvHead {
  IO* r;
  IO* vr = nullptr;
  const void* w = nullptr;
  CacheRow ck, cv;
};
template <typename IO = float>
__device__ QkvHead<IO> qkv_head(IO* q, IO* k, IO* v, bool v_from_k, const void* wq, const void* wk, int nq, int nkv,
                                int hd, int64_t t, int h, const int64_t* append, bool append_bf16) {
  QkvHead<IO> x;
  if (h < nq) x.r = q + (t * nq + h) * hd, x.w = wq;
  else if (h < nq + nkv) x.r = k + (t * nkv + h - nq) * hd, x.w = wk;
  else x.r = v + (t * nkv + h - nq - nkv) * hd;
  if (v_from_k && h >= nq) x.vr = v + (t * nkv + h - nq) * hd;
  if (append && h >= nq) {
    const int64_t* e = append + 3 * t;  // (cache_k, cache_v, row)
    const int kvh = h < nq + nkv ? h - nq : h - nq - nkv;
    const int64_t off = (e[2] * nkv + kvh) * int64_t(hd) * (append_bf16 ? 2 : 4);
    if (h < nq + nkv) x.ck = {reinterpret_cast<char*>(e[0]) + off, append_bf16};
    x.cv = {reinterpret_cast<char*>(e[1]) + off, append_bf16};
  }
  return x;
}

// Any head_dim <= kMaxHead: one block of 128 threads per head.
__global__ void qkv_norm_rope_kernel(float* q, float* k, float* v, bool v_from_k, const void* wq, const void* wk,
                                     int wdt, int nq, int nkv, int hd, float eps, const int64_t* pos,
                                     const float* inv_freq, const int64_t* append, bool append_bf16) {
  __shared__ float raw[kMaxHead];
  const int per_row = nq + nkv + (v_from_k ? 0 : nkv);
  const int64_t t = blockIdx.x / per_row;
  // Before the PDL wait, what does not depend on the kernel before (the q/k/v projections): the head's
  // pointers and cache rows (host uploads), its pairs' rotation factors and norm weights.
  const QkvHead<> x = qkv_head(q, k, v, v_from_k, wq, wk, nq, nkv, hd, t, int(blockIdx.x % per_row), append, append_bf16);
  const RopeFactors rf = x.w ? rope_factors(x.w, wdt, hd, float(pos[t]), inv_freq) : RopeFactors{};
  pdl_wait();
  pdl_trigger();
  const float inv = load_head_rms(x.r, raw, hd, eps);
  if (!x.w) {  // a v head: weightless norm, no rotation
    for (int i = threadIdx.x; i < hd; i += blockDim.x) x.r[i] = raw[i] * inv, x.cv.put(i, x.r[i]);
    return;
  }
  if (x.vr)
    for (int i = threadIdx.x; i < hd; i += blockDim.x) x.vr[i] = raw[i] * inv, x.cv.put(i, x.vr[i]);
  write_norm_rope(x.r, raw, inv, rf, x.w, wdt, hd, x.ck);
}

// head_dim = 64 P (the 12B's 256 and 512): one warp per head, lane l holding the rotation pairs
// (j, j + hd/2) for j = l, l + 32, ...; warp reductions only. A 4096-token prefill has 131K heads per layer,
// which the block-per-head kernel ran at about a third of the memory bandwidth. IO: the q/k/v element type
// (float, or bf16 for a prefill's bf16 activations; fp32 arithmetic either way).
template <int P, typename IO>
__global__ void __launch_bounds__(256)
    qkv_norm_rope_warp_kernel(IO* q, IO* k, IO* v, bool v_from_k, const void* wq, const void* wk, int wdt,
                              int nq, int nkv, float eps, const int64_t* pos, const float* inv_freq,
                              const int64_t* append, bool append_bf16, int64_t heads) {
  constexpr int hd = 64 * P, half = 32 * P;
  pdl_wait();
  pdl_trigger();
  const int lane = threadIdx.x & 31;
  const int64_t wi = int64_t(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (wi >= heads) return;
  const int per_row = nq + nkv + (v_from_k ? 0 : nkv);
  const int64_t t = wi / per_row;
  const QkvHead<IO> x = qkv_head(q, k, v, v_from_k, wq, wk, nq, nkv, hd, t, int(wi % per_row), append, append_bf16);
  float lo[P], hi[P], ss = 0.f;
#pragma unroll
  for (int i = 0; i < P; ++i) {
    const int j = lane + 32 * i;
    lo[i] = to_f(x.r[j]), hi[i] = to_f(x.r[j + half]);
    ss += lo[i] * lo[i] + hi[i] * hi[i];
  }
  const float inv = 1.0f / sqrtf(warp_sum(ss) / float(hd) + eps);
  if (!x.w || x.vr) {  // a v head, or the v of a K = V layer: weightless norm, no rotation
    IO* out = x.w ? x.vr : x.r;
#pragma unroll
    for (int i = 0; i < P; ++i) {
      const int j = lane + 32 * i;
      const float a = lo[i] * inv, b = hi[i] * inv;
      out[j] = from_f<IO>(a), out[j + half] = from_f<IO>(b);
      x.cv.put(j, a), x.cv.put(j + half, b);
    }
    if (!x.w) return;
  }
  const float p = float(pos[t]);
#pragma unroll
  for (int i = 0; i < P; ++i) {
    const int j = lane + 32 * i;
    const float a = lo[i] * inv * ldw(x.w, wdt, j), b = hi[i] * inv * ldw(x.w, wdt, j + half);
    const float ang = p * inv_freq[j];
    const float c = cosf(ang), sn = sinf(ang);
    const float rlo = a * c - b * sn, rhi = b * c + a * sn;
    x.r[j] = from_f<IO>(rlo), x.r[j + half] = from_f<IO>(rhi);
    x.ck.put(j, rlo), x.ck.put(j + half, rhi);
  }
}

constexpr int kWarps = 8;

// KS warps share one column (each takes every KS-th 32-chunk run of both rows; partial sums meet in shared
// memory): fewer batches per warp, so a column's latency chain, and the launch's tail, are shorter.
template <int WDT, int M, int KS>
__global__ void __launch_bounds__(kWarps * 32) gemv_gelu_kernel(const float* __restrict__ x, const uint4* __restrict__ wg,
                                                                const uint4* __restrict__ wu, float* __restrict__ y,
                                                                int64_t N, int64_t K) {
  __shared__ float part[kWarps][2][M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, kpart = warp % KS;
  const int64_t n = int64_t(blockIdx.x) * (kWarps / KS) + warp / KS;
  const bool live = n < N;
  const int64_t K8 = K / 8;
  const uint4* gr = wg + (live ? n : 0) * K8;
  const uint4* ur = wu + (live ? n : 0) * K8;
  float ag[M], au[M];
#pragma unroll
  for (int m = 0; m < M; ++m) ag[m] = au[m] = 0.f;
  // Two chunks of each row per batch, the next batch in flight while the current one is used; the first batch
  // is issued before the PDL wait (weights do not depend on earlier kernels).
  uint4 g0, g1, u0, u1;
  const uint4 z = make_uint4(0, 0, 0, 0);
  constexpr int64_t step = 32 * KS;
  auto load_batch = [&](int64_t c0) {
    g0 = c0 < K8 ? ld_stream16(gr + c0) : z, u0 = c0 < K8 ? ld_stream16(ur + c0) : z;
    g1 = c0 + step < K8 ? ld_stream16(gr + c0 + step) : z, u1 = c0 + step < K8 ? ld_stream16(ur + c0 + step) : z;
  };
  int64_t c = lane + 32 * kpart;
  if (live) load_batch(c);
  pdl_wait();
  pdl_trigger();
  if (live)
    for (; c < K8; c += 2 * step) {
      const uint4 cg[2] = {g0, g1}, cu[2] = {u0, u1};
      if (c + 2 * step < K8) load_batch(c + 2 * step);
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        if (c + step * half >= K8) break;
        float fg[8], fu[8];
        widen8<WDT>(cg[half], fg);
        widen8<WDT>(cu[half], fu);
        const int64_t k = (c + step * half) * 8;
#pragma unroll
        for (int m = 0; m < M; ++m) {
          ag[m] += dot8(fg, x + m * K + k);
          au[m] += dot8(fu, x + m * K + k);
        }
      }
    }
#pragma unroll
  for (int m = 0; m < M; ++m) ag[m] = warp_sum(ag[m]), au[m] = warp_sum(au[m]);
  if constexpr (KS == 1) {
    if (lane == 0 && live)
#pragma unroll
      for (int m = 0; m < M; ++m) y[m * N + n] = gelu_tanh_f(ag[m]) * au[m];
  } else {
    if (lane == 0)
#pragma unroll
      for (int m = 0; m < M; ++m) part[warp][0][m] = ag[m], part[warp][1][m] = au[m];
    __syncthreads();
    if (kpart == 0 && lane == 0 && live)
#pragma unroll
      for (int m = 0; m < M; ++m) {
        float g = 0.f, u = 0.f;
#pragma unroll
        for (int j = 0; j < KS; ++j) g += part[warp + j][0][m], u += part[warp + j][1][m];
        y[m * N + n] = gelu_tanh_f(g) * u;
      }
  }
}

// Warps per column: 4; GEMMA4_GELU_KS=1|2 overrides it (for measurements; read at every launch, so a test can
// compare the forms in one process). One warp per column left each warp 8 dependent batches for its two 7.5 KB
// rows; with 4, decode at 4K on an H200 took 6.85 / 6.86 against 6.90 / 6.90 ms a step (same call), --micro
// 53.6 against 55.0 us (2 warps: 54.3).
int gelu_ks() {
  const char* v = std::getenv("GEMMA4_GELU_KS");
  const int k = v ? std::atoi(v) : 4;
  return k == 1 || k == 2 ? k : 4;
}

template <int WDT, int M>
void launch_gelu_wdt(const float* x, const uint4* g, const uint4* u, int64_t N, int64_t K, float* y, cudaStream_t s) {
  const int ks = gelu_ks();
  const unsigned grid = unsigned((N * ks + kWarps - 1) / kWarps);
  if (ks == 1) launch_pdl(gemv_gelu_kernel<WDT, M, 1>, dim3(grid), dim3(kWarps * 32), 0, s, x, g, u, y, N, K);
  else if (ks == 2) launch_pdl(gemv_gelu_kernel<WDT, M, 2>, dim3(grid), dim3(kWarps * 32), 0, s, x, g, u, y, N, K);
  else launch_pdl(gemv_gelu_kernel<WDT, M, 4>, dim3(grid), dim3(kWarps * 32), 0, s, x, g, u, y, N, K);
}

template <int M>
void launch_gelu(const float* x, const void* wg, const void* wu, int wdt, int64_t N, int64_t K, float* y,
                 cudaStream_t s) {
  const auto* g = static_cast<const uint4*>(wg);
  const auto* u = static_cast<const uint4*>(wu);
  if (wdt == kBF16) launch_gelu_wdt<kBF16, M>(x, g, u, N, K, y, s);
  else launch_gelu_wdt<kF16, M>(x, g, u, N, K, y, s);
}

}  // namespace

template <typename F>
void launch_add_rmsnorm(float* x, F* f, const void* w, int wdt, int64_t rows, int64_t D, float eps, const void* s,
                        int sdt, const void* w2, int w2dt, void* out, bool out_bf16, cudaStream_t st,
                        const float* x_in) {
  const int64_t threads = ((D / 4 + kVec - 1) / kVec + 31) / 32 * 32;
  const bool vec = D % 4 == 0 && threads <= 1024 &&
                   (uintptr_t(x) | uintptr_t(x_in) | uintptr_t(out) | uintptr_t(w) | uintptr_t(w2)) % 16 == 0 &&
                   uintptr_t(f) % (4 * sizeof(F)) == 0;
  if (vec)
    launch_pdl(add_rmsnorm_vec_kernel<F>, dim3(unsigned(rows)), dim3(unsigned(threads)), 0, st, x, f, w, wdt, D, eps, s,
               sdt, w2, w2dt, out, out_bf16, x_in);
  else
    add_rmsnorm_kernel<F><<<unsigned(rows), D >= 1024 ? 512 : 128, 0, st>>>(x, f, w, wdt, D, eps, s, sdt, w2, w2dt, out,
                                                                             out_bf16, x_in);
}

int add_rmsnorm(float* x, void* f, bool f_bf16, const void* w, int wdt, int64_t rows, int64_t D, float eps,
                const void* s, int sdt, const void* w2, int w2dt, void* out, bool out_bf16, cudaStream_t st,
                const float* x_in) {
  if (rows <= 0) return 0;
  if (f_bf16)
    launch_add_rmsnorm(x, static_cast<__nv_bfloat16*>(f), w, wdt, rows, D, eps, s, sdt, w2, w2dt, out, out_bf16, st,
                       x_in);
  else
    launch_add_rmsnorm(x, static_cast<float*>(f), w, wdt, rows, D, eps, s, sdt, w2, w2dt, out, out_bf16, st, x_in);
  return int(cudaGetLastError());
}

int rmsnorm_rope(float* x, const void* w, int wdt, int64_t T, int n_heads, int head_dim, float eps, const int64_t* pos,
                 const float* inv_freq, cudaStream_t s) {
  if (head_dim > kMaxHead || head_dim <= 0) return int(cudaErrorInvalidValue);
  if (T > 0)
    rmsnorm_rope_kernel<<<unsigned(T * n_heads), 128, 0, s>>>(x, w, wdt, n_heads, head_dim, eps, pos, inv_freq);
  return int(cudaGetLastError());
}

bool qkv_norm_rope_bf16_supported(int64_t T, int head_dim, bool append) {
  return T >= 16 && (head_dim == 256 || head_dim == 512) && !append;
}

int qkv_norm_rope(void* q, void* k, void* v, bool io_bf16, bool v_from_k, const void* wq, const void* wk, int wdt,
                  int64_t T, int nq, int nkv, int head_dim, float eps, const int64_t* pos, const float* inv_freq,
                  const int64_t* append, bool append_bf16, cudaStream_t s) {
  if (head_dim > kMaxHead || head_dim <= 0) return int(cudaErrorInvalidValue);
  const int64_t heads = T * (nq + nkv + (v_from_k ? 0 : nkv));
  if (heads <= 0) return 0;
  // Warp per head for many rows (prefill); a decode step's few heads keep the block kernel (as measured with
  // the decode figures of the README).
  const unsigned warp_blocks = unsigned((heads + 7) / 8);
  const bool many = T >= 16;
  if (io_bf16) {
    if (!qkv_norm_rope_bf16_supported(T, head_dim, append)) return int(cudaErrorInvalidValue);
    using B = __nv_bfloat16;
    auto* qb = static_cast<B*>(q);
    auto* kb = static_cast<B*>(k);
    auto* vb = static_cast<B*>(v);
    if (head_dim == 256)
      launch_pdl(qkv_norm_rope_warp_kernel<4, B>, dim3(warp_blocks), dim3(256), 0, s, qb, kb, vb, v_from_k, wq, wk,
                 wdt, nq, nkv, eps, pos, inv_freq, append, append_bf16, heads);
    else
      launch_pdl(qkv_norm_rope_warp_kernel<8, B>, dim3(warp_blocks), dim3(256), 0, s, qb, kb, vb, v_from_k, wq, wk,
                 wdt, nq, nkv, eps, pos, inv_freq, append, append_bf16, heads);
    return int(cudaGetLastError());
  }
  auto* qf = static_cast<float*>(q);
  auto* kf = static_cast<float*>(k);
  auto* vf = static_cast<float*>(v);
  if (many && head_dim == 256)
    launch_pdl(qkv_norm_rope_warp_kernel<4, float>, dim3(warp_blocks), dim3(256), 0, s, qf, kf, vf, v_from_k, wq, wk,
               wdt, nq, nkv, eps, pos, inv_freq, append, append_bf16, heads);
  else if (many && head_dim == 512)
    launch_pdl(qkv_norm_rope_warp_kernel<8, float>, dim3(warp_blocks), dim3(256), 0, s, qf, kf, vf, v_from_k, wq, wk,
               wdt, nq, nkv, eps, pos, inv_freq, append, append_bf16, heads);
  else
    launch_pdl(qkv_norm_rope_kernel, dim3(unsigned(heads)), dim3(128), 0, s, qf, kf, vf, v_from_k, wq, wk, wdt, nq,
               nkv, head_dim, eps, pos, inv_freq, append, append_bf16);
  return int(cudaGetLastError());
}

bool gemv_gelu_supported(int64_t M, int64_t K, const void* x, const void* wg, const void* wu, int wdt) {
  return M >= 1 && M <= 8 && wdt != kF32 && K % 8 == 0 && (uintptr_t(x) % 16) == 0 && (uintptr_t(wg) % 16) == 0 &&
         (uintptr_t(wu) % 16) == 0;
}

int gemv_gelu_mul(const float* x, int64_t M, int64_t K, const void* wg, const void* wu, int wdt, int64_t N, float* y,
                  cudaStream_t s) {
  if (!gemv_gelu_supported(M, K, x, wg, wu, wdt)) return int(cudaErrorInvalidValue);
  if (N <= 0) return 0;
  switch (M) {
    case 1: launch_gelu<1>(x, wg, wu, wdt, N, K, y, s); break;
    case 2: launch_gelu<2>(x, wg, wu, wdt, N, K, y, s); break;
    case 3: launch_gelu<3>(x, wg, wu, wdt, N, K, y, s); break;
    case 4: launch_gelu<4>(x, wg, wu, wdt, N, K, y, s); break;
    case 5: launch_gelu<5>(x, wg, wu, wdt, N, K, y, s); break;
    case 6: launch_gelu<6>(x, wg, wu, wdt, N, K, y, s); break;
    case 7: launch_gelu<7>(x, wg, wu, wdt, N, K, y, s); break;
    default: launch_gelu<8>(x, wg, wu, wdt, N, K, y, s); break;
  }
  return int(cudaGetLastError());
}

}  // namespace gemma4::cuda
