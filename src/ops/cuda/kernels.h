// Launchers of the CUDA kernels (kernels.cu). Plain C types only, so that this header is shared by nvcc
// and the host compiler. Every launcher enqueues on `stream` and returns cudaGetLastError() as an int
// (0 = success). Activations are F32; "wdt" arguments name a weight's storage: 0 = F32, 1 = BF16, 2 = F16.
#pragma once
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace gemma4::cuda {

enum WeightType : int { kF32 = 0, kBF16 = 1, kF16 = 2 };

// The architecture this build's kernels were compiled for on the current device, as 10 major + minor of the
// code (90 for sm_90a / sm_90 code, 80 for sm_80 code, also when the driver compiles its PTX for a newer GPU), or
// 0 when the build has no code the device can run. Hopper-only paths (programmatic dependent launch, thread-block
// clusters) are taken for code >= 90 only. Cached after the first call.
int device_code_arch();
// The cudaError_t of that query when device_code_arch() is 0 (no kernel image, or CUDA could not start).
int device_code_error();
// The current device's compute capability as 10 major + minor (90 for H100 / H200, 80 for A100).
int device_compute_capability();

// y[M,N] = x[M,K] . w[N,K]^T (+ bias[N], any wdt) with fp32 accumulation; w of any wdt.
int linear(const float* x, int64_t M, int64_t K, const void* w, int wdt, int64_t N, float* y, const void* bias,
           int bias_dt, cudaStream_t s);
// y[:, N] += bias[N]
int add_bias(float* y, int64_t M, int64_t N, const void* bias, int bias_dt, cudaStream_t s);
int rmsnorm(const float* x, const void* w, int wdt, int64_t rows, int64_t D, float eps, float* y, cudaStream_t s);
int layernorm(const float* x, const void* w, int wdt, const void* b, int bdt, int64_t rows, int64_t D, float eps,
              float* y, cudaStream_t s);
// y[t] = table[ids[t]] * scale; ids on the device.
// Ids equal to one of to_pad (-1: unused) read row pad_id (the multimodal placeholders); a negative id reads
// row 0 (a pending token that every suppression ruled out; the host reports it when it reads the token).
struct IdRemap {
  int64_t to_pad[3] = {-1, -1, -1};
  int64_t pad_id = 0;
};
int embedding(const void* table, int tdt, int64_t D, const int64_t* ids, int64_t T, float scale, float* y,
              cudaStream_t s, IdRemap remap = {});
// pos [T], inv_freq [head_dim/2] on the device.
int rope(float* x, int64_t T, int n_heads, int head_dim, const int64_t* pos, const float* inv_freq, cudaStream_t s);
int gelu_tanh_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s);
// The prefill feed-forward between its GEMMs, bf16 in and out: out [rows, width] = gelu_tanh(gate) * up, gate
// and up rows ld elements apart (ld = width for separate [rows, width] tensors, 2 width for one [rows, gate |
// up] GEMM output); width and ld % 8 == 0 and pointers 16-byte aligned, else cudaErrorInvalidValue.
int gelu_tanh_mul_bf16(const void* gate, const void* up, void* out, int64_t rows, int64_t width, int64_t ld,
                       cudaStream_t s);
int gelu_tanh(const float* x, float* out, int64_t n, cudaStream_t s);
int add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s);
// x *= scalar (a host constant, or element 0 of a device tensor of type sdt when sdev != nullptr).
int scale(float* x, int64_t n, float scalar, const void* sdev, int sdt, cudaStream_t s);
int softcap(float* x, int64_t n, float cap, cudaStream_t s);

// ---- gemv.cu: decode-shaped linear (1 <= M <= 8) with 16-byte weight loads.
bool gemv_vec_supported(int64_t M, int64_t K, const void* x, const void* w, int wdt);
int gemv_vec(const float* x, int64_t M, int64_t K, const void* w, int wdt, int64_t N, float* y, cudaStream_t s);
// Up to three projections of the same x (weights of one wdt, each [N_i, K]) in one launch: y_i = x . w_i^T.
struct GemvPart {
  const void* w;
  int64_t N;
  float* y;
};
int gemv_vec_multi(const float* x, int64_t M, int64_t K, const GemvPart* parts, int nparts, int wdt, cudaStream_t s);

// ---- layer_tail.cu: a dense layer's tail for one decode row in one launch (ops.h layer_tail; the comment at
// the top of the file): a = o . wo^T; x1 = x + rmsnorm(a, w1); m = rmsnorm(x1, w2); h = gelu(m . wg^T) * (m .
// wu^T); f = h . wd^T; x = (x1 + rmsnorm(f, w3)) * s; next = rmsnorm(x, w4). Weights wo [H, Q], wg / wu [I, H],
// wd [H, I] of dtype wdt (bf16 / f16); norm weights of any dtype; s a device scalar or null. a_out [H], h_out
// [I], f_out [H]: device scratch (they hold a, h and f afterwards). sync: 2 zeroed words, partials:
// 8 * kLayerTailMaxBlocks floats, both for this stream only (one launch at a time).
struct LayerTailArgs {
  const float* o;
  const void *wo, *wg, *wu, *wd;
  const void *w1, *w2, *w3, *w4, *s;
  int wdt1, wdt2, wdt3, wdt4, sdt;
  float *x, *a_out, *h_out, *f_out, *next;
  int H, Q, I;
  float eps;
};
constexpr int kLayerTailMaxBlocks = 1024;
bool layer_tail_supported(const LayerTailArgs& a, int wdt);
int layer_tail(const LayerTailArgs& a, int wdt, unsigned* sync, float* partials, cudaStream_t s);

// ---- gemv_normed.cu: a decode row's GEMV with the residual add and norms before it as its prologue (the
// comment at the top of the file): h = (x + rmsnorm(a, wa)) * s (s a device scalar, or null: 1), m =
// rmsnorm(h, wn), then the gate/up pair (y = gelu_tanh(m . wg^T) * (m . wu^T), [N]) or up to three projections of
// m. x, a, h and m [H] F32 on the device; h (and m, unless null) written, aliasing neither x nor a; weights [N, H]
// of dtype wdt (bf16 / f16); norm weights of any dtype; everything 16-byte aligned; one row.
struct NormedInput {
  int H = 0;
  float eps = 0.f;
  const float* x = nullptr;
  const float* a = nullptr;
  const void* wa = nullptr;
  const void* wn = nullptr;
  const void* s = nullptr;
  int wadt = 0, wndt = 0, sdt = 0;
  float* h = nullptr;
  float* m = nullptr;
};
bool gemv_normed_supported(const NormedInput& in, const void* const* w, int nw, int wdt);
int gemv_gelu_normed(const NormedInput& in, const void* wg, const void* wu, int wdt, int N, float* y, cudaStream_t s);
int gemv_normed_multi(const NormedInput& in, const GemvPart* parts, int nparts, int wdt, cudaStream_t s);

// ---- fused_kernels.cu (the fused forms of ops.h)
// x = (x_in + rmsnorm(f, w)) * s; without w2 f = rmsnorm(f, w); with w2 out = rmsnorm(x, w2) (F32, or BF16 when
// out_bf16; out may alias f, f is not written otherwise). f is F32, or BF16 when f_bf16 (a bf16 prefill's GEMM
// outputs). x_in: the residual read, x itself when null (it may alias out or f, not x, otherwise).
int add_rmsnorm(float* x, void* f, bool f_bf16, const void* w, int wdt, int64_t rows, int64_t D, float eps,
                const void* s, int sdt, const void* w2, int w2dt, void* out, bool out_bf16, cudaStream_t st,
                const float* x_in = nullptr);
int rmsnorm_rope(float* x, const void* w, int wdt, int64_t T, int n_heads, int head_dim, float eps, const int64_t* pos,
                 const float* inv_freq, cudaStream_t s);
// The attention inputs of T rows in one launch (ops.h qkv_norm_rope): q [T, nq*hd] and k [T, nkv*hd] get the
// per-head rmsnorm (weights wq, wk) and RoPE; v [T, nkv*hd] the weightless per-head rmsnorm, of itself or
// (v_from_k) of k's projection. append (or null): [T, 3] on the device = (cache_k, cache_v, row) per row t; the
// finished k and v rows also go to row `row` of those [rows, nkv*hd] caches (bf16 if append_bf16, else fp32).
// q/k/v are F32, or BF16 (io_bf16) where qkv_norm_rope_bf16_supported (else cudaErrorInvalidValue).
bool qkv_norm_rope_bf16_supported(int64_t T, int head_dim, bool append);
int qkv_norm_rope(void* q, void* k, void* v, bool io_bf16, bool v_from_k, const void* wq, const void* wk, int wdt,
                  int64_t T, int nq, int nkv, int head_dim, float eps, const int64_t* pos, const float* inv_freq,
                  const int64_t* append, bool append_bf16, cudaStream_t s);
bool gemv_gelu_supported(int64_t M, int64_t K, const void* x, const void* wg, const void* wu, int wdt);
int gemv_gelu_mul(const float* x, int64_t M, int64_t K, const void* wg, const void* wu, int wdt, int64_t N, float* y,
                  cudaStream_t s);

// ---- attention_kernels.cu
// Split-key attention for few queries: `nsplit` blocks per (query, head), merged into o. Scratch:
// part_m/part_l [T*Hq*nsplit], part_acc [T*Hq*nsplit*head_dim].
int attention_split(const float* q, const float* k, const float* v, int64_t T, int64_t S, int n_q_heads,
                    int n_kv_heads, int head_dim, float scale, const int64_t* q_pos, const int64_t* k_pos, int window,
                    const int32_t* q_block, const int32_t* k_block, int nsplit, float* part_m, float* part_l,
                    float* part_acc, float* o, cudaStream_t s);
// Decode attention (few query rows, possibly of several sequences; no bidirectional blocks; Hq / Hkv <= 16,
// head_dim <= 512): one block per (KV head, key slice, query row) reads the slice's K and V once for all query
// heads of the KV head, then attention_merge. Query row t belongs to sequence seqs[row_seq[t]] (row_seq null:
// seqs[0]): its keys/values and key layout, key j < n at position k0 + (j - r + n) % n (a ring; r = 0:
// consecutive), keys >= n absent; or, with k_pos (one sequence), explicit positions k_pos [s_cap]. The grid is
// sized by s_cap >= every n and `nsplit` (the slice, ceil(s_cap / nsplit), must be <=
// attention_decode_chunk_limit), so a recorded launch stays valid while n changes. Scratch as attention_split.
struct DecodeSeq {
  const void* k;  // [rows, Hkv * head_dim]: F32, or BF16 (kv_bf16: a bf16 KV cache, widened on load)
  const void* v;
  int64_t n, k0, r;
};
bool attention_decode_supported(int n_q_heads, int n_kv_heads, int head_dim);
int64_t attention_decode_chunk_limit(int n_q_heads, int n_kv_heads);
int attention_decode(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, bool kv_bf16, int64_t T,
                     int64_t s_cap, int n_q_heads, int n_kv_heads, int head_dim, float scale, const int64_t* q_pos,
                     const int64_t* k_pos, int window, int nsplit, float* part_m, float* part_l, float* part_acc,
                     float* o, cudaStream_t s);
// ---- flash_attention.cu: prefill attention in one tensor-core kernel (bf16 Q/K/V/P, fp32 accumulation and
// softmax statistics), head_dim 256 or 512, any GQA ratio. Keys in any order (visibility from positions and
// optional bidirectional block ids); keys_consecutive (k_pos[j] = k_pos[0] + j) lets each block of 64 query
// rows skip the key tiles outside its causal/window range. A row that sees no key gets zeros.
struct FlashAttention {
  const void* q;      // [T, Hq * head_dim]: F32, or BF16 when io_bf16
  const void *k, *v;  // [S, Hkv * head_dim]: BF16 when kv_bf16, else F32 (rounded to bf16 on load)
  void* o;            // [T, Hq * head_dim]: like q
  int64_t T, S;
  int n_q_heads, n_kv_heads, head_dim;
  float scale;
  const int64_t *q_pos, *k_pos;      // on the device
  int window;                        // > 0: sliding window
  const int32_t *q_block, *k_block;  // optional (both or neither)
  bool keys_consecutive;
  bool kv_bf16;
  bool io_bf16 = false;  // q and o in bf16 (a prefill's activations, Ops::qkv_dtype); needs kv_bf16
};
bool flash_attention_supported(int n_q_heads, int n_kv_heads, int head_dim);
int flash_attention(const FlashAttention& a, cudaStream_t s);
// ---- flash_wgmma.cu: the same contract on Hopper's warpgroup MMA, for the cases it takes (bf16 q / k / v / o,
// consecutive keys, no bidirectional blocks; head_dim 256 with an even number of query heads per KV head, or
// 512 with 16; built for sm_90a, run on a compute-capability-9.0 device, GEMMA4_CUDA_WGMMA != 0).
// flash_attention() calls it.
bool flash_wgmma_takes(int n_q_heads, int n_kv_heads, int head_dim, bool io_bf16, bool kv_bf16, bool consecutive,
                       bool blocks);
bool flash_wgmma_applies(const FlashAttention& a);
int flash_attention_wgmma(const FlashAttention& a, cudaStream_t s);
// ---- decode_attention.cu: the same contract as attention_decode for g = Hq / Hkv <= 4 and head_dim 256 or
// 512, in one launch: the last block of each (row, KV head) merges the splits. counters: T * Hkv zeros on the
// device, left zero.
bool attention_decode_small_g_supported(int n_q_heads, int n_kv_heads, int head_dim);
int attention_decode_small_g(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, bool kv_bf16, int64_t T,
                             int64_t s_cap, int n_q_heads, int n_kv_heads, int head_dim, float scale,
                             const int64_t* q_pos, const int64_t* k_pos, int window, int nsplit, float* part_m,
                             float* part_l, float* part_acc, unsigned* counters, float* o, cudaStream_t s);
// Many heads per KV head (4 < g <= 16), head_dim 256 or 512, bf16 cache: tensor-core decode attention
// (decode_attention.cu), then attention_merge; chunk (keys per split, a multiple of 64) from
// attention_decode_mqa_chunk, nsplit = ceil(s_cap / chunk). Scratch as attention_split.
bool attention_decode_mqa_supported(int n_q_heads, int n_kv_heads, int head_dim, bool kv_bf16);
int64_t attention_decode_mqa_chunk(int64_t s_cap, int sm_count);
int attention_decode_mqa(const float* q, const DecodeSeq* seqs, const int32_t* row_seq, int64_t T, int64_t s_cap,
                         int n_q_heads, int n_kv_heads, int head_dim, float scale, const int64_t* q_pos,
                         const int64_t* k_pos, int window, int64_t chunk, int nsplit, float* part_m, float* part_l,
                         float* part_acc, float* o, cudaStream_t s);
// o[row] from the split partials (m in natural-log units, l, unnormalised acc) of rows = T * Hq query heads.
int attention_merge_partials(const float* part_m, const float* part_l, const float* part_acc, int64_t rows, int nsplit,
                             int hd, float* o, cudaStream_t s);
// dst rows [row, row + n) = src rows [0, n), and the same for (src2, dst2) when given (a KV cache append of
// keys and values); rows of `row_bytes` (a multiple of 4); row read from the device.
int copy_rows_at(const void* src, void* dst, const void* src2, void* dst2, const int64_t* row, int64_t n,
                 int64_t row_bytes, cudaStream_t s);
// Batched KV appends (ops.h store_kv_rows): table [n, 5] on the device = (src_k, src_v, dst_k, dst_v, row) per
// sequence, F32 source rows of `width` into F32 or BF16 (dst_bf16) cache tables.
int store_kv_rows(const int64_t* table, int64_t n, int64_t width, bool dst_bf16, cudaStream_t s);
// ---- sampling.cu: next token of each row of logits [B, V] (modified: suppressed ids -> -inf). params [B, 4]
// = (temperature, top_k, top_p, uniform draw) per row; out [B] (-1: every token suppressed).
int choose_tokens(float* logits, int64_t B, int64_t V, const double* params, const int64_t* suppress, int n_suppress,
                  int64_t* out, cudaStream_t s);
// The same choice when every row is greedy (temperature 0), spread over slices of each row: scratch of
// argmax_rows_scratch_words(B, V) words, counters: B zeros on the device, left zero.
int64_t argmax_rows_scratch_words(int64_t B, int64_t V);
int argmax_rows(float* logits, int64_t B, int64_t V, const int64_t* suppress, int n_suppress, uint64_t* scratch,
                unsigned* counters, int64_t* out, cudaStream_t s);
// probs[r, j] = softmax_j(scores[r, j] * scale) over the keys query (r % C) may see (causal + window), fp32
// statistics; rows = Hq * C; probs are bf16 (probs_bf16) or f32. A row that sees no key gets zeros.
int masked_softmax(const float* scores, int64_t rows, int64_t C, int64_t Sk, float scale, const int64_t* q_pos,
                   const int64_t* k_pos, int window, void* probs, bool probs_bf16, cudaStream_t s);
// y = bf16(x), round to nearest even.
int f32_to_bf16(const float* x, void* y, int64_t n, cudaStream_t s);
int bf16_to_f32(const void* x, float* y, int64_t n, cudaStream_t s);
// A bf16 KV cache append: dst rows [row, row + n) = bf16(src rows), and (src2, dst2) alike; rows of `width`
// elements; row read from the device.
int store_rows_bf16(const float* src, void* dst, const float* src2, void* dst2, const int64_t* row, int64_t n,
                    int64_t width, cudaStream_t s);

}  // namespace gemma4::cuda
