// The plain fp32 kernels of the op set: norms, RoPE, embedding, elementwise, and the fallback matmuls
// (GEMV / tiled GEMM for weights the 16-byte GEMV and cuBLAS paths do not take). Weights are read in their
// stored dtype (F32/BF16/F16) and widened in registers. Attention lives in attention_kernels.cu.
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/device_util.cuh"
#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

struct F32W {
  using T = float;
  __device__ static float get(const float* p, int64_t i) { return p[i]; }
};
struct BF16W {
  using T = uint16_t;
  __device__ static float get(const uint16_t* p, int64_t i) { return bf16_bits_to_f(p[i]); }
};
struct F16W {
  using T = __half;
  __device__ static float get(const __half* p, int64_t i) { return __half2float(p[i]); }
};

int64_t blocks_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  return b < 1 ? 1 : (b > 65535 * 4 ? 65535 * 4 : b);
}

// ---- linear ---------------------------------------------------------------------------------------------
// Few rows (decode): one warp per output column n, all M rows at once (M <= 8).
constexpr int kGemvMaxM = 8;
template <typename W>
__global__ void gemv_kernel(const float* __restrict__ x, const typename W::T* __restrict__ w, float* __restrict__ y,
                            int M, int64_t N, int64_t K) {
  const int warps = blockDim.x >> 5, lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * warps + (threadIdx.x >> 5);
  if (n >= N) return;
  float acc[kGemvMaxM];
#pragma unroll
  for (int m = 0; m < kGemvMaxM; ++m) acc[m] = 0.f;
  const typename W::T* wr = w + n * K;
  for (int64_t k = lane; k < K; k += 32) {
    float wv = W::get(wr, k);
#pragma unroll
    for (int m = 0; m < kGemvMaxM; ++m)
      if (m < M) acc[m] += x[m * K + k] * wv;
  }
#pragma unroll
  for (int m = 0; m < kGemvMaxM; ++m) {
    if (m < M) {
      float s = warp_sum(acc[m]);
      if (lane == 0) y[m * N + n] = s;
    }
  }
}

// Many rows: 64x64 output tile per block of 256 threads, 4x4 per thread, k-steps of 16 through shared memory.
template <typename W>
__global__ void gemm_kernel(const float* __restrict__ x, const typename W::T* __restrict__ w, float* __restrict__ y,
                            int64_t M, int64_t N, int64_t K) {
  constexpr int BM = 64, BN = 64, BK = 16;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = int64_t(blockIdx.y) * BM, n0 = int64_t(blockIdx.x) * BN;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    for (int i = tid; i < BM * BK; i += 256) {
      const int r = i / BK, c = i % BK;
      const int64_t gk = k0 + c, gm = m0 + r, gn = n0 + r;
      As[c][r] = (gm < M && gk < K) ? x[gm * K + gk] : 0.f;
      Bs[c][r] = (gn < N && gk < K) ? W::get(w, gn * K + gk) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = As[kk][ty * 4 + i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = Bs[kk][tx * 4 + j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + ty * 4 + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tx * 4 + j;
      if (n < N) y[m * N + n] = acc[i][j];
    }
  }
}

template <typename W>
void launch_linear(const float* x, int64_t M, int64_t K, const void* w, int64_t N, float* y, cudaStream_t s) {
  const auto* wp = static_cast<const typename W::T*>(w);
  if (M <= kGemvMaxM) {
    const int warps = 8;
    gemv_kernel<W><<<unsigned((N + warps - 1) / warps), warps * 32, 0, s>>>(x, wp, y, int(M), N, K);
  } else {
    dim3 grid(unsigned((N + 63) / 64), unsigned((M + 63) / 64));
    gemm_kernel<W><<<grid, 256, 0, s>>>(x, wp, y, M, N, K);
  }
}

__global__ void add_bias_kernel(float* y, int64_t M, int64_t N, const void* b, int bdt) {
  const int64_t n_all = M * N;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n_all; i += int64_t(gridDim.x) * blockDim.x)
    y[i] += ldw(b, bdt, i % N);
}

// ---- norms ----------------------------------------------------------------------------------------------
__global__ void rmsnorm_kernel(const float* x, const void* w, int wdt, int64_t D, float eps, float* y) {
  const float* xr = x + int64_t(blockIdx.x) * D;
  float* yr = y + int64_t(blockIdx.x) * D;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_sum(ss);
  const float inv = 1.0f / sqrtf(ss / float(D) + eps);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) {
    float v = xr[i] * inv;
    yr[i] = w ? v * ldw(w, wdt, i) : v;
  }
}

// A row held in registers (thread i owns float4s i, i + blockDim, ... up to kNormVec of them), the weights
// read before the PDL wait: a decode step's first and last norms (one 3840-wide row) are latency-bound.
constexpr int kNormVec = 4;
__global__ void rmsnorm_vec_kernel(const float4* x, const void* w, int wdt, int64_t D, float eps, float4* y) {
  const int64_t D4 = D / 4;
  const float4* xr = x + int64_t(blockIdx.x) * D4;
  float4* yr = y + int64_t(blockIdx.x) * D4;
  float4 xv[kNormVec], wv[kNormVec];
#pragma unroll
  for (int j = 0; j < kNormVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) wv[j] = w ? ldw4(w, wdt, i) : make_float4(1.f, 1.f, 1.f, 1.f);
  }
  pdl_wait();
  pdl_trigger();
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < kNormVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4) xv[j] = xr[i], ss += xv[j].x * xv[j].x + xv[j].y * xv[j].y + xv[j].z * xv[j].z + xv[j].w * xv[j].w;
  }
  const float inv = 1.0f / sqrtf(block_sum(ss) / float(D) + eps);
#pragma unroll
  for (int j = 0; j < kNormVec; ++j) {
    const int64_t i = threadIdx.x + int64_t(j) * blockDim.x;
    if (i < D4)
      yr[i] = make_float4(xv[j].x * inv * wv[j].x, xv[j].y * inv * wv[j].y, xv[j].z * inv * wv[j].z,
                          xv[j].w * inv * wv[j].w);
  }
}

__global__ void layernorm_kernel(const float* x, const void* w, int wdt, const void* b, int bdt, int64_t D, float eps,
                                 float* y) {
  const float* xr = x + int64_t(blockIdx.x) * D;
  float* yr = y + int64_t(blockIdx.x) * D;
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s) / float(D);
  float v = 0.f;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) v += (xr[i] - mean) * (xr[i] - mean);
  const float var = block_sum(v) / float(D);
  const float inv = 1.0f / sqrtf(var + eps);
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) yr[i] = (xr[i] - mean) * inv * ldw(w, wdt, i) + ldw(b, bdt, i);
}

// ---- embedding, rope ------------------------------------------------------------------------------------
__global__ void embedding_kernel(const void* table, int tdt, int64_t D, const int64_t* ids, float scale, float* y,
                                 IdRemap remap) {
  const int64_t t = blockIdx.x;
  int64_t row = ids[t];
  if (row == remap.to_pad[0] || row == remap.to_pad[1] || row == remap.to_pad[2]) row = remap.pad_id;
  if (row < 0) row = 0;
  for (int64_t i = threadIdx.x; i < D; i += blockDim.x) y[t * D + i] = ldw(table, tdt, row * D + i) * scale;
}

__global__ void rope_kernel(float* x, int64_t T, int n_heads, int head_dim, const int64_t* pos, const float* inv_freq) {
  const int half = head_dim / 2;
  const int64_t n = T * n_heads * half;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int j = int(i % half);
    const int64_t th = i / half;  // t * n_heads + h
    const int64_t t = th / n_heads;
    const float ang = float(pos[t]) * inv_freq[j];
    const float c = cosf(ang), sn = sinf(ang);
    float* v = x + th * head_dim;
    const float a = v[j], b = v[j + half];
    v[j] = a * c - b * sn;
    v[j + half] = b * c + a * sn;
  }
}

// ---- elementwise ----------------------------------------------------------------------------------------
#define G4_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void gelu_tanh_mul_kernel(const float* g, const float* u, float* o, int64_t n) {
  G4_GRID_LOOP(i, n) o[i] = gelu_tanh_f(g[i]) * u[i];
}
// The same on float4s (n % 4 == 0, 16-byte aligned): a prefill's [T, 15360] gate/up pass is memory-bound.
__global__ void gelu_tanh_mul4_kernel(const float4* g, const float4* u, float4* o, int64_t n4) {
  G4_GRID_LOOP(i, n4) {
    const float4 a = g[i], b = u[i];
    o[i] = make_float4(gelu_tanh_f(a.x) * b.x, gelu_tanh_f(a.y) * b.y, gelu_tanh_f(a.z) * b.z, gelu_tanh_f(a.w) * b.w);
  }
}
// bf16 gate and up (the prefill GEMMs' outputs) to the bf16 input of the down GEMM, 8 values a thread
// (rows of w8 chunks; gate and up rows ld8 chunks apart, 16-byte aligned); fp32 arithmetic.
__global__ void gelu_tanh_mul_bf16x8_kernel(const uint4* g, const uint4* u, uint4* o, int64_t n8, int64_t w8,
                                            int64_t ld8) {
  G4_GRID_LOOP(i, n8) {
    const int64_t r = i / w8, src = r * ld8 + (i - r * w8);
    const uint4 a = g[src], b = u[src];
    const uint32_t av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
    uint32_t ov[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const float r0 = gelu_tanh_f(__uint_as_float(av[j] << 16)) * __uint_as_float(bv[j] << 16);
      const float r1 = gelu_tanh_f(__uint_as_float(av[j] & 0xffff0000u)) * __uint_as_float(bv[j] & 0xffff0000u);
      const __nv_bfloat162 r = __floats2bfloat162_rn(r0, r1);
      ov[j] = *reinterpret_cast<const uint32_t*>(&r);
    }
    o[i] = make_uint4(ov[0], ov[1], ov[2], ov[3]);
  }
}
__global__ void gelu_tanh_kernel(const float* x, float* o, int64_t n) { G4_GRID_LOOP(i, n) o[i] = gelu_tanh_f(x[i]); }
__global__ void add_kernel(const float* a, const float* b, float* o, int64_t n) { G4_GRID_LOOP(i, n) o[i] = a[i] + b[i]; }
__global__ void scale_kernel(float* x, int64_t n, float scalar, const void* sdev, int sdt) {
  const float sv = sdev ? ldw(sdev, sdt, 0) : scalar;
  G4_GRID_LOOP(i, n) x[i] *= sv;
}
__global__ void softcap_kernel(float* x, int64_t n, float cap) {
  pdl_wait();
  pdl_trigger();
  G4_GRID_LOOP(i, n) x[i] = cap * tanhf(x[i] / cap);
}
// Batched KV appends: table [n, 5] = (src_k, src_v, dst_k, dst_v, row) per sequence; blockIdx.z = sequence,
// blockIdx.y = keys / values; F32 rows of `width` into F32 or BF16 (DST) tables.
template <typename DST>
__global__ void store_kv_rows_kernel(const int64_t* table, int64_t width) {
  const int64_t* e = table + int64_t(blockIdx.z) * 5;
  const float* src = reinterpret_cast<const float*>(e[blockIdx.y]);
  DST* dst = reinterpret_cast<DST*>(e[2 + blockIdx.y]) + e[4] * width;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < width; i += int64_t(gridDim.x) * blockDim.x) {
    if constexpr (sizeof(DST) == 2) dst[i] = __float2bfloat16_rn(src[i]);
    else dst[i] = src[i];
  }
}

// 32-bit words: dst starts at row *row (read on the device); blockIdx.y picks the pair.
__global__ void copy_rows_at_kernel(const uint32_t* src, uint32_t* dst, const uint32_t* src2, uint32_t* dst2,
                                    const int64_t* row, int64_t row_words, int64_t n) {
  const uint32_t* s = blockIdx.y ? src2 : src;
  uint32_t* d = (blockIdx.y ? dst2 : dst) + *row * row_words;
  G4_GRID_LOOP(i, n) d[i] = s[i];
}

int last() { return int(cudaGetLastError()); }

__global__ void code_arch_probe_kernel() {}

struct CodeProbe {
  int arch = 0;   // ptxVersion of the probe kernel's code for the device; 0 if none could be loaded
  int error = 0;  // the cudaError_t of that query
};
const CodeProbe& code_probe() {
  static const CodeProbe p = [] {
    CodeProbe r;
    cudaFuncAttributes a{};
    const cudaError_t e = cudaFuncGetAttributes(&a, code_arch_probe_kernel);
    if (e != cudaSuccess) cudaGetLastError(), r.error = int(e);
    else r.arch = a.ptxVersion;
    return r;
  }();
  return p;
}

}  // namespace

int device_code_arch() { return code_probe().arch; }
int device_code_error() { return code_probe().error; }

int device_compute_capability() {
  int dev = 0, major = 0, minor = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  return 10 * major + minor;
}

int linear(const float* x, int64_t M, int64_t K, const void* w, int wdt, int64_t N, float* y, const void* bias,
           int bias_dt, cudaStream_t s) {
  if (M > 0 && N > 0) {
    switch (wdt) {
      case kF32: launch_linear<F32W>(x, M, K, w, N, y, s); break;
      case kBF16: launch_linear<BF16W>(x, M, K, w, N, y, s); break;
      default: launch_linear<F16W>(x, M, K, w, N, y, s); break;
    }
  }
  int e = last();
  if (e || !bias) return e;
  return add_bias(y, M, N, bias, bias_dt, s);
}

int add_bias(float* y, int64_t M, int64_t N, const void* bias, int bias_dt, cudaStream_t s) {
  if (M * N > 0) add_bias_kernel<<<unsigned(blocks_for(M * N, 256)), 256, 0, s>>>(y, M, N, bias, bias_dt);
  return last();
}

int rmsnorm(const float* x, const void* w, int wdt, int64_t rows, int64_t D, float eps, float* y, cudaStream_t s) {
  if (rows <= 0) return 0;
  const int64_t threads = ((D / 4 + kNormVec - 1) / kNormVec + 31) / 32 * 32;
  if (D % 4 == 0 && threads <= 1024 && (uintptr_t(x) | uintptr_t(y) | uintptr_t(w)) % 16 == 0)
    launch_pdl(rmsnorm_vec_kernel, dim3(unsigned(rows)), dim3(unsigned(threads)), 0, s,
               reinterpret_cast<const float4*>(x), w, wdt, D, eps, reinterpret_cast<float4*>(y));
  else
    rmsnorm_kernel<<<unsigned(rows), D >= 1024 ? 512 : 128, 0, s>>>(x, w, wdt, D, eps, y);
  return last();
}

int layernorm(const float* x, const void* w, int wdt, const void* b, int bdt, int64_t rows, int64_t D, float eps,
              float* y, cudaStream_t s) {
  if (rows > 0) layernorm_kernel<<<unsigned(rows), D >= 1024 ? 512 : 128, 0, s>>>(x, w, wdt, b, bdt, D, eps, y);
  return last();
}

int embedding(const void* table, int tdt, int64_t D, const int64_t* ids, int64_t T, float scale, float* y,
              cudaStream_t s, IdRemap remap) {
  if (T > 0) embedding_kernel<<<unsigned(T), 256, 0, s>>>(table, tdt, D, ids, scale, y, remap);
  return last();
}

int rope(float* x, int64_t T, int n_heads, int head_dim, const int64_t* pos, const float* inv_freq, cudaStream_t s) {
  const int64_t n = T * n_heads * (head_dim / 2);
  if (n > 0) rope_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, s>>>(x, T, n_heads, head_dim, pos, inv_freq);
  return last();
}

int gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s) {
  if (n > 0 && n % 4 == 0 && (uintptr_t(gate) | uintptr_t(up) | uintptr_t(out)) % 16 == 0)
    gelu_tanh_mul4_kernel<<<unsigned(blocks_for(n / 4, 256)), 256, 0, s>>>(
        reinterpret_cast<const float4*>(gate), reinterpret_cast<const float4*>(up), reinterpret_cast<float4*>(out),
        n / 4);
  else if (n > 0)
    gelu_tanh_mul_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, s>>>(gate, up, out, n);
  return last();
}
int gelu_tanh_mul_bf16(const void* gate, const void* up, void* out, int64_t rows, int64_t width, int64_t ld,
                       cudaStream_t s) {
  if (width % 8 || ld % 8 || ld < width || (uintptr_t(gate) | uintptr_t(up) | uintptr_t(out)) % 16)
    return int(cudaErrorInvalidValue);
  const int64_t n8 = rows * (width / 8);
  if (n8 > 0)
    gelu_tanh_mul_bf16x8_kernel<<<unsigned(blocks_for(n8, 256)), 256, 0, s>>>(
        static_cast<const uint4*>(gate), static_cast<const uint4*>(up), static_cast<uint4*>(out), n8, width / 8, ld / 8);
  return last();
}
int gelu_tanh(const float* x, float* out, int64_t n, cudaStream_t s) {
  if (n > 0) gelu_tanh_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, s>>>(x, out, n);
  return last();
}
int add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  if (n > 0) add_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, s>>>(a, b, out, n);
  return last();
}
int scale(float* x, int64_t n, float scalar, const void* sdev, int sdt, cudaStream_t s) {
  if (n > 0) scale_kernel<<<unsigned(blocks_for(n, 256)), 256, 0, s>>>(x, n, scalar, sdev, sdt);
  return last();
}
int softcap(float* x, int64_t n, float cap, cudaStream_t s) {
  if (n > 0) launch_pdl(softcap_kernel, dim3(unsigned(blocks_for(n, 256))), dim3(256), 0, s, x, n, cap);
  return last();
}

int copy_rows_at(const void* src, void* dst, const void* src2, void* dst2, const int64_t* row, int64_t n,
                 int64_t row_bytes, cudaStream_t s) {
  if (row_bytes % 4) return int(cudaErrorInvalidValue);
  const int64_t words = n * (row_bytes / 4);
  if (words > 0) {
    const dim3 grid{unsigned(blocks_for(words, 256)), src2 ? 2u : 1u};
    copy_rows_at_kernel<<<grid, 256, 0, s>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst),
                                            static_cast<const uint32_t*>(src2), static_cast<uint32_t*>(dst2), row,
                                            row_bytes / 4, words);
  }
  return last();
}

int store_kv_rows(const int64_t* table, int64_t n, int64_t width, bool dst_bf16, cudaStream_t s) {
  if (n <= 0 || width <= 0) return 0;
  const dim3 grid{unsigned((width + 255) / 256), 2u, unsigned(n)};
  if (dst_bf16) store_kv_rows_kernel<__nv_bfloat16><<<grid, 256, 0, s>>>(table, width);
  else store_kv_rows_kernel<float><<<grid, 256, 0, s>>>(table, width);
  return last();
}

}  // namespace gemma4::cuda
