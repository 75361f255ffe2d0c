// Tensor-core and shared-memory helpers of the attention kernels (flash_attention.cu, decode_attention.cu):
// mma.sync m16n8k16 (bf16 inputs, fp32 accumulators), ldmatrix (plain and transposed), cp.async 16-byte
// copies and the 16-byte-chunk swizzle of shared tiles. Fragment layouts (PTX ISA, m16n8k16): lane = 4 g + t;
// A (16x16, row-major): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..), a3 = (g+8, 2t+8..);
// B (16x8, k x n): b0 = (k 2t..2t+1, n g), b1 = (k 2t+8.., n g); C/D (16x8): (g, 2t..2t+1), (g+8, 2t..2t+1).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace gemma4::cuda {
namespace {

__device__ __forceinline__ uint32_t smem_addr(const void* p) { return uint32_t(__cvta_generic_to_shared(p)); }

// Byte offset of 16-byte chunk c of row r in a swizzled tile of `chunks` chunks per row.
__device__ __forceinline__ uint32_t swz(int r, int c, int chunks) { return uint32_t((r * chunks + (c ^ (r & 7))) * 16); }

__device__ __forceinline__ void ldsm_x4(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t addr, uint32_t& r0, uint32_t& r1, uint32_t& r2, uint32_t& r3) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
}
// d += a . b (m16n8k16, bf16 inputs, fp32 accumulators).
__device__ __forceinline__ void mma(float* d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}
__device__ __forceinline__ uint4 pack8(const float4& a, const float4& b) {
  return make_uint4(pack_bf16(a.x, a.y), pack_bf16(a.z, a.w), pack_bf16(b.x, b.y), pack_bf16(b.z, b.w));
}
// The online softmax's max step for a thread's two rows (g and g + 8 of an m16 fragment), from this tile's
// per-thread maxima mx0 / mx1 (log2 units): the quad's maxima, the new running maxima m0 / m1, the reference
// points b0 / b1 for exp2(s - b), and the factors c0 / c1 that rescale what was accumulated so far (exactly 1
// when a max did not move). A row with no visible key so far keeps m = -inf: its reference point is 0 (all
// p = 0, nothing scaled).
__device__ __forceinline__ void online_max(float mx0, float mx1, float& m0, float& m1, float& b0, float& b1,
                                           float& c0, float& c1) {
#pragma unroll
  for (int off = 1; off <= 2; off <<= 1) {
    mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
    mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
  }
  const float nm0 = fmaxf(m0, mx0), nm1 = fmaxf(m1, mx1);
  b0 = nm0 == -INFINITY ? 0.f : nm0, b1 = nm1 == -INFINITY ? 0.f : nm1;
  c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);  // m = -inf -> 0
  m0 = nm0, m1 = nm1;
}

// 16 bytes global -> shared; zero-filled when !valid (the source address must still be mapped).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
// 16 bytes global -> shared, unconditionally.
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace
}  // namespace gemma4::cuda
