// The op set the Gemma 4 model is written against (model/forward.cpp). A backend (CPU now, CUDA later)
// implements these; the model math is written once. Activations are F32 row-major tensors on the
// backend's device; weights may be F32, BF16 or F16 (kept in their stored dtype, accumulated in fp32).
#pragma once
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gemma4 {

// Which keys a query may see. Key/query positions are absolute token positions.
struct AttnMask {
  const int64_t* q_pos = nullptr;  // [T]
  const int64_t* k_pos = nullptr;  // [S]
  int window = 0;                  // > 0: also require k > q - window (sliding layers, spec §2.3)
  // Optional bidirectional overlay (spec §4.5): same non-negative block id => visible (still within the
  // window on sliding layers). nullptr = plain causal.
  const int32_t* q_block = nullptr;
  const int32_t* k_block = nullptr;
  // Optional description of k_pos (a KV cache's keys): {S, k0, r} when k_pos[j] = k0 + (j - r + S) % S, a ring
  // buffer rotated by r (r = 0: consecutive). A GPU backend passes these three numbers instead of S positions.
  const int64_t* k_run = nullptr;
  bool visible(int64_t qi, int64_t ki) const {
    int64_t q = q_pos[qi], k = k_pos[ki];
    bool same_block = q_block && q_block[qi] >= 0 && q_block[qi] == k_block[ki];
    return (k <= q || same_block) && (window <= 0 || k > q - window);
  }
};

// Arithmetic of the matmuls and attention: F32 (exact fp32, the parity mode; the only mode of the CPU
// backend) or BF16 (GPU: bf16 GEMM inputs on tensor cores with fp32 accumulation; norms, softmax, RoPE and
// the residual stream stay fp32).
enum class Precision { F32, BF16 };
const char* precision_name(Precision p);

class Ops {
 public:
  virtual ~Ops() = default;
  virtual Device device() const = 0;
  virtual Precision precision() const { return Precision::F32; }
  // The dtype a caller may keep an activation in when it only feeds matmuls (linear, linear_qkv, feed_forward)
  // of `rows` rows, and is written by rmsnorm / add_rmsnorm_norm: BF16 where those matmuls read bf16 anyway
  // (the CUDA backend's tensor-core GEMMs), so no F32 copy is written and converted; F32 elsewhere.
  virtual DType matmul_input_dtype(int64_t rows) const {
    (void)rows;
    return DType::F32;
  }
  // The dtype a caller may keep q, k, v and the attention output in (linear_qkv, qkv_norm_rope, store_kv,
  // attention, then the o projection) when every sequence of the forward has at least `min_rows` new rows:
  // BF16 where attention reads bf16 anyway (the CUDA backend's tensor-core prefill), F32 elsewhere.
  virtual DType qkv_dtype(int64_t min_rows) const {
    (void)min_rows;
    return DType::F32;
  }

  // ---- Memory on this backend's device (the CPU defaults are plain host memory).
  // A fresh, uninitialised tensor on the device.
  virtual Tensor alloc(DType dt, Shape shape) { return Tensor::empty(dt, std::move(shape)); }
  // `t` (from any device) on this device, same dtype and shape; may return `t` itself when it is already there.
  virtual Tensor to_device(const Tensor& t) { return t; }
  // `t` on the CPU; may return `t` itself when it is already there.
  virtual Tensor to_host(const Tensor& t) { return t; }
  // dst = src (same element count; either may be on the CPU or on this device). Differing float dtypes are
  // converted (round to nearest even into BF16/F16).
  virtual void copy(const Tensor& src, Tensor& dst) {
    if (src.dtype != dst.dtype) {
      G4_CHECK(src.numel() == dst.numel(), "copy: {} elements into {}", src.numel(), dst.numel());
      Tensor c = src.to(dst.dtype);
      std::memmove(dst.data, c.data, c.nbytes());
      return;
    }
    G4_CHECK(src.nbytes() == dst.nbytes(), "copy: {} bytes into {}", src.nbytes(), dst.nbytes());
    if (src.data != dst.data && src.nbytes()) std::memmove(dst.data, src.data, src.nbytes());
  }
  // Waits for queued device work (no-op on the CPU).
  virtual void synchronize() {}
  // Device memory accounting of a GPU backend's caching allocator (zeros on the CPU): bytes held by live
  // tensors, bytes reserved from the driver (live + cached), and the peak of reserved since the last reset.
  struct MemoryStats {
    size_t in_use = 0, reserved = 0, peak_reserved = 0;
    int64_t driver_allocs = 0, driver_frees = 0;  // calls into the driver so far (they can stall the device)
  };
  virtual MemoryStats memory_stats() const { return {}; }
  virtual void reset_memory_peak() {}
  // Returns cached (free) device blocks to the driver.
  virtual void release_cached_memory() {}

  // y[M,N] = x[M,K] . w[N,K]^T (+ b[N] when b is defined). x, y F32.
  virtual void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b = nullptr) = 0;
  // Per row over the last dim of width D: y = x * (mean(x^2) + eps)^-0.5 * w (w may be null: no weight).
  virtual void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) = 0;
  // Per row: (x - mean) / sqrt(var + eps) * w + b.
  virtual void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) = 0;
  // y[t] = table[ids[t]] * scale (row gathered from a table of any float dtype).
  virtual void embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) = 0;
  // In place on x viewed as [T, n_heads, head_dim]: half-split rotation (pairs j, j + head_dim/2) with
  // inv_freq[j] for j < head_dim/2 (zeros = identity; spec §2.2).
  virtual void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) = 0;
  // o[T, Hq*d] = softmax(q k^T * scale + mask) v, with q [T, Hq*d], k/v [S, Hkv*d], Hq % Hkv == 0
  // (query head h reads kv head h / (Hq/Hkv)). Softmax in fp32. A query row that sees no key gives 0.
  virtual void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads,
                         int head_dim, float scale, const AttnMask& mask, Tensor& o) = 0;
  // attention() for several independent sequences (a batched decode step): segment b owns query/output rows
  // [row0, row0 + T) of q and o, and has its own keys, values and mask. A GPU backend runs the decode case
  // (few rows per sequence) as one launch.
  struct AttnSegment {
    int64_t row0 = 0, T = 0;
    const Tensor* k = nullptr;
    const Tensor* v = nullptr;
    AttnMask mask;
  };
  virtual void attention_segments(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads,
                                  int n_kv_heads, int head_dim, float scale, Tensor& o) {
    for (const AttnSegment& g : segs) {
      Tensor ob = o.slice_rows(g.row0, g.row0 + g.T);
      attention(q.slice_rows(g.row0, g.row0 + g.T), *g.k, *g.v, n_q_heads, n_kv_heads, head_dim, scale, g.mask, ob);
    }
  }
  // out = gelu_tanh(gate) * up, elementwise.
  virtual void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) = 0;
  // out = a + b, elementwise (out may alias a or b).
  virtual void add(const Tensor& a, const Tensor& b, Tensor& out) = 0;
  // x *= s (s: a one-element weight tensor of any float dtype, or a constant).
  virtual void scale(Tensor& x, const Tensor& s) = 0;
  virtual void scale(Tensor& x, float s) = 0;
  // x = cap * tanh(x / cap)
  virtual void softcap(Tensor& x, float cap) = 0;
  // out = gelu_tanh(x) (elementwise)
  virtual void gelu_tanh(const Tensor& x, Tensor& out) = 0;

  // ---- Fused forms (decode issues ~1,100 ops per token on a 12B: fewer, larger ops keep a GPU fed). The
  // defaults compose the plain ops, so a backend overrides only what it fuses; results equal the composition.
  // x = (x + rmsnorm(f, w)) * s (s optional: a one-element tensor). f is clobbered (it holds the norm).
  virtual void add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s) {
    rmsnorm(f, &w, eps, f);
    add(x, f, x);
    if (s) scale(x, *s);
  }
  // add_rmsnorm, then out = rmsnorm(x, w_next) (the next block's pre-norm, read from the updated residual);
  // out may alias f, and f's contents afterwards are unspecified.
  virtual void add_rmsnorm_norm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s,
                                const Tensor& w_next, Tensor& out) {
    add_rmsnorm(x, f, w, eps, s);
    rmsnorm(x, &w_next, eps, out);
  }
  // In place on x viewed as [T, n_heads, head_dim]: per-head rmsnorm with w [head_dim], then rope().
  virtual void rmsnorm_rope(Tensor& x, const Tensor& w, float eps, int n_heads, int head_dim, const int64_t* pos,
                            const std::vector<float>& inv_freq) {
    Tensor h = x.reshape({x.numel() / head_dim, int64_t(head_dim)});
    rmsnorm(h, &w, eps, h);
    rope(x, n_heads, head_dim, pos, inv_freq);
  }
  // out = gelu_tanh(x . wg^T) * (x . wu^T); `scratch` is a buffer of out's size the default may use.
  virtual void linear_gelu_mul(const Tensor& x, const Tensor& wg, const Tensor& wu, Tensor& out, Tensor& scratch) {
    linear(x, wg, out);
    linear(x, wu, scratch);
    gelu_tanh_mul(out, scratch, out);
  }

  // out = (gelu_tanh(x . wg^T) * (x . wu^T)) . wd^T: the dense feed-forward (§2.4.4). g and u are [M, I] F32
  // scratch (I = wg's rows); what they hold afterwards is unspecified.
  virtual void feed_forward(const Tensor& x, const Tensor& wg, const Tensor& wu, const Tensor& wd, Tensor& g,
                            Tensor& u, Tensor& out) {
    linear_gelu_mul(x, wg, wu, g, u);
    linear(g, wd, out);
  }

  // The rest of a dense layer after its attention output o (§2.4.3, §2.4.4), with the next layer's input norm:
  //   x = x + rmsnorm(o . wo^T, w_post_attn);  m = rmsnorm(x, w_pre_ffw);
  //   x = (x + rmsnorm(feed_forward(m), w_post_ffw)) * s;  next = rmsnorm(x, w_next).
  // attn_out [T, H], m [T, H], g / u [T, I] and f [T, H] are the composition's scratch (their contents afterwards
  // are unspecified; attn_out and f F32, or BF16 where the backend's GEMMs write bf16); next may alias m, and f
  // may alias attn_out. A fused backend may take the norms' statistics from partial sums, so its
  // results can differ from the composition's in the last bits.
  //
  // With `deferred` given, a backend may leave the last line undone and describe it there instead (pending =
  // true; x and next are then not final): the caller must pass it to linear_qkv_deferred, which a backend can
  // run with that add + norm as its prologue, or to finish_deferred, before anything reads x or next.
  struct DeferredNorm {
    bool pending = false;
    Tensor x, h, f, next;  // x = (h + rmsnorm(f, w_post)) * s; next = rmsnorm(x, w_next)
    Tensor w_post, s, w_next;
    float eps = 0.f;
  };
  virtual void layer_tail(Tensor& x, const Tensor& o, const Tensor& wo, const Tensor& w_post_attn,
                          const Tensor& w_pre_ffw, const Tensor& wg, const Tensor& wu, const Tensor& wd,
                          const Tensor& w_post_ffw, const Tensor& s, const Tensor& w_next, float eps, Tensor& attn_out,
                          Tensor& m, Tensor& g, Tensor& u, Tensor& f, Tensor& next, DeferredNorm* deferred = nullptr) {
    (void)deferred;
    linear(o, wo, attn_out);
    add_rmsnorm_norm(x, attn_out, w_post_attn, eps, nullptr, w_pre_ffw, m);
    feed_forward(m, wg, wu, wd, g, u, f);
    add_rmsnorm_norm(x, f, w_post_ffw, eps, &s, w_next, next);
  }
  // Completes a pending DeferredNorm (nothing when none is pending).
  virtual void finish_deferred(DeferredNorm& d) {
    if (!d.pending) return;
    if (d.h.data != d.x.data) copy(d.h, d.x);
    add_rmsnorm_norm(d.x, d.f, d.w_post, d.eps, &d.s, d.w_next, d.next);
    d.pending = false;
  }
  // finish_deferred(d), then linear_qkv(d.next, ...); d as layer_tail filled it (pending, or finished since).
  virtual void linear_qkv_deferred(DeferredNorm& d, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q,
                                   Tensor& k, Tensor* v) {
    finish_deferred(d);
    linear_qkv(d.next, wq, wk, wv, q, k, v);
  }

  // ---- Recorded steps (GPU decode, ops/cuda/step_graph.h). A caller repeating one forward shape (decode
  // steps) brackets each repetition with begin_step(key) / end_step(), end_step before reading results on the
  // host. Repetitions under one key must issue the same ops over the same tensors (pointers, shapes); only
  // host arrays (positions, ids, rows) may differ, and attention key counts within step_key_capacity().
  // abort_step leaves a step that threw. Backends without recording ignore these.
  virtual void begin_step(uint64_t key) { (void)key; }
  virtual void end_step() {}
  virtual void abort_step() {}
  // Steps that ran as a recording (captured or replayed) so far, with the host time of their forward (from
  // begin_step to the launch) and the GPU time of the recording (benchmarks, tests).
  struct StepStats {
    int64_t steps = 0;
    double host_seconds = 0, gpu_seconds = 0;
  };
  virtual StepStats step_stats() const { return {}; }
  // Turns recording on or off (benchmarks: recorded vs eager steps in one run; GEMMA4_CUDA_GRAPHS=0: off).
  virtual void set_step_recording(bool on) { (void)on; }
  // dst rows [row, row + n) = src ([n, width] into dst [rows, width], converted to dst's dtype); a recording
  // backend reads `row` from device memory, so a recorded step replays with a new row (KV cache appends).
  virtual void copy_rows(const Tensor& src, Tensor& dst, int64_t row) {
    G4_CHECK(src.ndim() == 2 && dst.ndim() == 2 && src.dim(1) == dst.dim(1) && row >= 0 &&
                 row + src.dim(0) <= dst.dim(0),
             "copy_rows: {} into {} at row {}", shape_str(src.shape), shape_str(dst.shape), row);
    Tensor d = dst.slice_rows(row, row + src.dim(0));
    copy(src, d);
  }

  // q = x . wq^T, k = x . wk^T and (wv given) v = x . wv^T: a layer's attention projections in one pass.
  virtual void linear_qkv(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q, Tensor& k,
                          Tensor* v) {
    linear(x, wq, q);
    linear(x, wk, k);
    if (wv) linear(x, *wv, *v);
  }
  // Several KV cache appends of one row each (a decode step: one per sequence), see store_kv.
  struct KVRow {
    Tensor k, v;  // [1, width] rows to store
    Tensor* cache_k;
    Tensor* cache_v;
    int64_t row;
  };
  // The attention inputs of T rows, in place (spec §2.4.2): q and k get the per-head rmsnorm (wq, wk; head_dim
  // wide) and RoPE at `pos`; v the weightless per-head rmsnorm. v_from_k (K = V layers): v is first set to k's
  // raw projection. `append` (a decode step: row t of k/v is append[t].k/.v) then stores the finished rows in
  // their KV caches, as store_kv_rows; a backend may do both in one pass.
  virtual void qkv_norm_rope(Tensor& q, Tensor& k, Tensor& v, bool v_from_k, const Tensor& wq, const Tensor& wk,
                             float eps, int n_q_heads, int n_kv_heads, int head_dim, const int64_t* pos,
                             const std::vector<float>& inv_freq, const std::vector<KVRow>* append = nullptr) {
    if (v_from_k) copy(k, v);
    rmsnorm_rope(q, wq, eps, n_q_heads, head_dim, pos, inv_freq);
    rmsnorm_rope(k, wk, eps, n_kv_heads, head_dim, pos, inv_freq);
    Tensor vh = v.reshape({v.numel() / head_dim, int64_t(head_dim)});
    rmsnorm(vh, nullptr, eps, vh);
    if (append) store_kv_rows(*append);
  }
  // A KV cache append: rows [row, row + n) of cache_k / cache_v = k / v ([n, width]); see copy_rows.
  virtual void store_kv(const Tensor& k, const Tensor& v, Tensor& cache_k, Tensor& cache_v, int64_t row) {
    copy_rows(k, cache_k, row);
    copy_rows(v, cache_v, row);
  }

  // Next-token choice for each row of logits [B, V] on this backend's device (the host sampler's rule,
  // generate/sampler.h: suppress -> temperature -> top-k -> top-p -> the candidate where the cumulative
  // probability passes rows[b].uniform). Logits are modified (suppressed ids). Returns false when the backend
  // has no such op (the caller samples on the host).
  struct TokenChoice {
    double temperature = 0;
    int top_k = 0;
    double top_p = 1;
    double uniform = 0;
  };
  virtual bool choose_tokens(Tensor& logits, const std::vector<TokenChoice>& rows,
                             const std::vector<int64_t>& suppress, std::vector<int64_t>& ids) {
    (void)logits, (void)rows, (void)suppress, (void)ids;
    return false;
  }
  // Pipelined decode (a GPU backend; generate() uses it): choose_tokens whose ids stay on the device as the
  // backend's pending tokens, the input of the next embedding_pending, while their copy to the host runs. The
  // host issues step n + 1 before it reads step n's tokens (read_pending_tokens), so the GPU never waits for
  // the host's part of a step. has_pending_tokens(): whether the backend has these three ops;
  // choose_tokens_pending returns false when it cannot take the call (more rows than its buffer).
  virtual bool has_pending_tokens() const { return false; }
  virtual bool choose_tokens_pending(Tensor& logits, const std::vector<TokenChoice>& rows,
                                     const std::vector<int64_t>& suppress) {
    (void)logits, (void)rows, (void)suppress;
    return false;
  }
  // The pending tokens of the last choose_tokens_pending (waits for their copy).
  virtual std::vector<int64_t> read_pending_tokens() { throw Error("this backend has no pending tokens"); }
  // embedding() of the pending tokens (row t: pending id t), ids listed in `to_pad` read as pad_id (the
  // multimodal placeholders, as the forward's host lookup does).
  virtual void embedding_pending(const Tensor& table, int64_t T, float scale, const std::vector<int64_t>& to_pad,
                                 int64_t pad_id, Tensor& y) {
    (void)table, (void)T, (void)scale, (void)to_pad, (void)pad_id, (void)y;
    throw Error("this backend has no pending tokens");
  }

  virtual void store_kv_rows(const std::vector<KVRow>& rows) {
    for (const KVRow& r : rows) store_kv(r.k, r.v, *r.cache_k, *r.cache_v, r.row);
  }

  // ---- Backward (training). Gradients are F32. "accumulate" adds into the output instead of writing it.
  // For y = x . w^T: dx (= or +=) dy . w; dw += dy^T . x (dx, dw may be null).
  virtual void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, bool accumulate_dx,
                               Tensor* dw) = 0;
  // For y = rmsnorm(x, w): dx (= or +=) d/dx; dw += d/dw (w and dw may be null: weightless norm).
  virtual void rmsnorm_backward(const Tensor& x, const Tensor* w, float eps, const Tensor& dy, Tensor& dx,
                                bool accumulate_dx, Tensor* dw) = 0;
  // In place: the transpose of rope() (rotation by the negative angle).
  virtual void rope_backward(Tensor& dx, int n_heads, int head_dim, const int64_t* pos,
                             const std::vector<float>& inv_freq) = 0;
  // Gradients of attention(): dq written; dk, dv accumulated (+=), so KV-shared layers can add theirs.
  virtual void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads,
                                  int head_dim, float scale, const AttnMask& mask, const Tensor& dout, Tensor& dq,
                                  Tensor& dk, Tensor& dv) = 0;
  // For out = gelu_tanh(gate) * up: dgate, dup written.
  virtual void gelu_tanh_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                                      Tensor& dup) = 0;
};

// The attention key count a recorded step is sized for (ops.h begin_step): keys rounded up to 256, so a
// growing context re-records once per 256 tokens.
inline int64_t step_key_capacity(int64_t keys) { return (keys + 255) / 256 * 256; }

std::unique_ptr<Ops> make_cpu_ops();
// The CUDA backend (ops/cuda); throws Error when this build has no CUDA or no device is present.
std::unique_ptr<Ops> make_cuda_ops(Precision p = Precision::F32);
std::unique_ptr<Ops> make_ops(Device d, Precision p = Precision::F32);
// True when this build has CUDA support and a CUDA device is present; else false with the reason in *why.
bool cuda_available(std::string* why = nullptr);
// The --device flag: "cpu", "cuda", or "" / "auto" (cuda when available, else cpu). Requesting cuda
// where it is unavailable is an Error naming the reason.
Device select_device(const std::string& requested);
const char* device_name(Device d);
// The --precision flag: "f32", "bf16", or "" / "auto" (nullopt: the model picks, see Model::load).
std::optional<Precision> select_precision(const std::string& requested);

}  // namespace gemma4
