// Device helpers shared by the .cu files of the CUDA backend: weight loads in any stored dtype, warp and
// block reductions, the tanh-GELU, and the 16-byte bf16/f16 widening of the GEMV kernels.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "ops/cuda/kernels.h"

namespace gemma4::cuda {
namespace {

// Programmatic dependent launch (Hopper): a kernel launched by launch_pdl may start while the kernel before
// it drains. It must call pdl_wait() before it reads anything an earlier kernel wrote (or writes anything an
// earlier kernel reads); work before that point (weight prefetches) overlaps the previous kernel's tail.
// pdl_trigger() lets the next PDL kernel launch once every block of this one has passed it. Both are no-ops
// for a plain launch. GEMMA4_CUDA_PDL=0 launches everything plainly (for comparisons).
// Reads before the wait are of weights only, which no kernel of a forward writes. A PDL kernel starts only
// after every kernel before its predecessor has completed, so a weight update stays safe as long as the
// kernel right before the reader is not its writer (a forward starts with a plain launch: the embedding).
// Code compiled for an older GPU (sm_80) has neither instruction; its launches are plain (pdl_enabled).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// PDL launches need Hopper code (device_code_arch() >= 90, kernels.h): then the kernels wait as above.
inline bool pdl_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("GEMMA4_CUDA_PDL");
    return !(v && std::strcmp(v, "0") == 0) && device_code_arch() >= 90;
  }();
  return on;
}

// launch_pdl with the grid's blocks in thread-block clusters of `cluster` blocks (a cluster's blocks run at
// once, on the SMs of one GPC, and can read each other's shared memory).
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, dim3 cluster, size_t smem,
                               cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (pdl_enabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster.x * cluster.y * cluster.z > 1) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster.x, attr[n].val.clusterDim.y = cluster.y, attr[n++].val.clusterDim.z = cluster.z;
  }
  cfg.attrs = attr;
  cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KArgs, typename... Args>
cudaError_t launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  return launch_pdl_cluster(kernel, grid, block, dim3(1, 1, 1), smem, s, std::forward<Args>(args)...);
}

__device__ __forceinline__ float bf16_bits_to_f(uint16_t u) { return __uint_as_float(uint32_t(u) << 16); }

// Element i of a weight stored as kF32 / kBF16 / kF16, widened to fp32.
__device__ __forceinline__ float ldw(const void* p, int dt, int64_t i) {
  if (dt == kF32) return static_cast<const float*>(p)[i];
  if (dt == kBF16) return bf16_bits_to_f(static_cast<const uint16_t*>(p)[i]);
  return __half2float(static_cast<const __half*>(p)[i]);
}

// Four consecutive weights (float4 index i4) as fp32; p 16-byte aligned (F32) or 8 (BF16 / F16).
__device__ __forceinline__ float4 ldw4(const void* p, int dt, int64_t i4) {
  if (dt == kF32) return static_cast<const float4*>(p)[i4];
  if (dt == kBF16) {
    const uint2 u = static_cast<const uint2*>(p)[i4];
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
  }
  const __half2* h = static_cast<const __half2*>(p) + 2 * i4;
  const float2 a = __half22float2(h[0]), b = __half22float2(h[1]);
  return make_float4(a.x, a.y, b.x, b.y);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result. Also a barrier.
__device__ float block_sum(float v) {
  // Two barriers: every thread adds the warps' partials itself (in warp order), so no third barrier waits for
  // warp 0 to publish a total (a decode step runs ~250 single-block norms on this path).
  __shared__ float part[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // part[] may still be read by a previous call
  if (lane == 0) part[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < nw; ++w) total += part[w];
  return total;
}

__device__ __forceinline__ float gelu_tanh_f(float x) {
  const float c = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

// The 8 weights of one 16-byte load (WDT = kBF16 or kF16), widened to fp32.
template <int WDT>
__device__ __forceinline__ void widen8(const uint4& u, float* f) {
  if constexpr (WDT == kBF16) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  } else {
    const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 v = __half22float2(h[i]);
      f[2 * i] = v.x;
      f[2 * i + 1] = v.y;
    }
  }
}

// acc += dot(8 widened weights, x[k .. k+8)) (x 16-byte aligned).
// A 16-byte weight load that does not allocate in L1: streamed weights would otherwise evict the GEMV's input
// vector x, which every warp of the SM rereads from L1. Measured on an H200 (bench_cuda --micro, same call):
// every decode GEMV 1-8% faster than with __ldg (gate+up 58.8 -> 55.4 us, q/k/v 20.1 -> 19.2 us), and decode at
// 4K context 132.6 -> 136.9 tok/s.
// Blocks of Kernel resident on the device at once, at `threads` a block and `smem` bytes of dynamic shared
// memory (queried once per kernel: pass the same launch shape every time).
template <auto Kernel>
unsigned resident_blocks(int threads, size_t smem = 0) {
  static const unsigned n = [&] {
    int dev = 0, sms = 0, per_sm = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, Kernel, threads, smem);
    return unsigned(std::max(1, sms) * std::max(1, per_sm));
  }();
  return n;
}

// The persistent GEMVs' grid for N columns and blocks of `per_block` warp groups: the fewest blocks that still
// give no group more columns than the resident grid would (3840 columns on 132 SMs at 4 blocks of 2 groups: 480
// blocks, 4 columns every group, instead of 528 blocks with groups of 3 or 4).
inline unsigned persistent_grid(int64_t N, unsigned resident, int per_block) {
  const int64_t groups = std::min<int64_t>(resident, (N + per_block - 1) / per_block) * per_block;
  const int64_t cols = (N + groups - 1) / groups;  // columns per group
  return unsigned(((N + cols - 1) / cols + per_block - 1) / per_block);
}

__device__ __forceinline__ uint4 ld_stream16(const uint4* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}

__device__ __forceinline__ float dot8(const float* f, const float* x) {
  const float4 a = *reinterpret_cast<const float4*>(x);
  const float4 b = *reinterpret_cast<const float4*>(x + 4);
  return f[0] * a.x + f[1] * a.y + f[2] * a.z + f[3] * a.w + f[4] * b.x + f[5] * b.y + f[6] * b.z + f[7] * b.w;
}

}  // namespace
}  // namespace gemma4::cuda
