// CUDA backend of the op set (ops.h), the CudaOps class: device memory plumbing, argument checks and kernel
// launches. Members are defined in cuda_ops.cpp (memory, matmuls, norms, elementwise, fused forms, token
// choice) and cuda_attention_ops.cpp (attention, KV appends, the q/k/v projections and norms).
// Activations are F32 on the device; weights stay in their stored dtype (F32/BF16/F16). Two precisions (ops.h):
// - F32: exact fp32 (cuBLAS SGEMM without TF32 for F32 weights, fp32 kernels for the others);
// - BF16: matmuls with M > 1 row, prefill attention and many-head decode attention on tensor cores (bf16
//   inputs, fp32 accumulation);
//   F32-stored weights get a bf16 device copy on first use.
// Decode-shaped matmuls (M = 1 in bf16, M <= 8 in f32) stream the weights with 16-byte loads.
// Everything runs in order on one stream; the host never waits except in to_host/synchronize:
// device memory comes from a caching pool (device_pool.h) and small host arrays (positions, ids) are
// staged through pinned memory, so the host enqueues ahead of the GPU. Decode steps are recorded as CUDA
// graphs and replayed (step_graph.h): every op checks `skip(...)` before it launches.
#pragma once
#include <cuda_runtime.h>
#ifdef GEMMA4_HAS_CUBLAS
#include <cublas_v2.h>

#include "ops/cuda/lt_gemm.h"

#include "ops/cuda/attention_chunked.h"
#endif

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <initializer_list>
#include <list>
#include <type_traits>
#include <map>

#include "ops/cuda/device_pool.h"
#include "ops/cuda/kernels.h"
#include "ops/cuda/op_profiler.h"
#include "ops/cuda/stager.h"
#include "ops/cuda/step_graph.h"
#include "ops/ops.h"

namespace gemma4::cuda {

void check(cudaError_t e, const char* what);
// Launch results; with GEMMA4_CUDA_SYNC=1 every op also waits, so a fault names the op that caused it.
void check_launch(int e, const char* what);
int wtype(DType d, const char* what);
void on_device(const Tensor& t, const char* what);
void f32_on_device(const Tensor& t, const char* what);

class CudaOps final : public Ops {
 public:
  explicit CudaOps(Precision p);
  ~CudaOps() override;

  Device device() const override { return Device::CUDA; }
  Precision precision() const override { return precision_; }

  // ---- memory
  Tensor alloc(DType dt, Shape shape) override;

  Tensor to_device(const Tensor& t) override;

  Tensor to_host(const Tensor& t) override;

  void copy(const Tensor& src, Tensor& dst) override;

  void synchronize() override;

  void copy_rows(const Tensor& src, Tensor& dst, int64_t row) override { rows_at(src, dst, nullptr, nullptr, row); }
  void store_kv(const Tensor& k, const Tensor& v, Tensor& cache_k, Tensor& cache_v, int64_t row) override;

  void begin_step(uint64_t key) override;
  void end_step() override { steps_->end(); }
  void abort_step() override { steps_->abort(); }
  StepStats step_stats() const override { return steps_->stats(); }
  void set_step_recording(bool on) override { steps_->set_enabled(on); }
  MemoryStats memory_stats() const override;
  void reset_memory_peak() override { pool_->reset_peak(); }
  void release_cached_memory() override;

  // ---- forward ops
  void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b) override;

  void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override;

  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override;

  void embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) override;

  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override;

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override;

  void attention_segments(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                          int head_dim, float scale, Tensor& o) override;

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override;

  void gelu_tanh(const Tensor& x, Tensor& out) override;

  void add(const Tensor& a, const Tensor& b, Tensor& out) override;

  void scale(Tensor& x, const Tensor& s) override;

  void scale(Tensor& x, float s) override;

  void softcap(Tensor& x, float cap) override;

  // ---- fused forms (ops.h)
  void add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s) override;
  void add_rmsnorm_norm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor& w_next,
                        Tensor& out) override;

  void rmsnorm_rope(Tensor& x, const Tensor& w, float eps, int n_heads, int head_dim, const int64_t* pos,
                    const std::vector<float>& inv_freq) override;

  void linear_gelu_mul(const Tensor& x, const Tensor& wg, const Tensor& wu, Tensor& out, Tensor& scratch) override;
  // One decode row in bf16 precision with GEMMA4_CUDA_LAYER_TAIL=1: layer_tail.cu's one launch; otherwise the
  // composition.
  void layer_tail(Tensor& x, const Tensor& o, const Tensor& wo, const Tensor& w_post_attn, const Tensor& w_pre_ffw,
                  const Tensor& wg, const Tensor& wu, const Tensor& wd, const Tensor& w_post_ffw, const Tensor& s,
                  const Tensor& w_next, float eps, Tensor& attn_out, Tensor& m, Tensor& g, Tensor& u, Tensor& f,
                  Tensor& next, DeferredNorm* deferred) override;
  void finish_deferred(DeferredNorm& d) override;
  void linear_qkv_deferred(DeferredNorm& d, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q, Tensor& k,
                           Tensor* v) override;
  // More than one row in bf16 precision: x to bf16 once, the gate and up GEMMs write bf16 into g and u, the
  // gelu product (bf16) goes straight into the down GEMM: no fp32 [M, I] tensors (prefill).
  void feed_forward(const Tensor& x, const Tensor& wg, const Tensor& wu, const Tensor& wd, Tensor& g, Tensor& u,
                    Tensor& out) override;
  // BF16 for the rows that take the tensor-core GEMMs: the norms then write the GEMMs' input directly.
  DType matmul_input_dtype(int64_t rows) const override {
    return lt_gemm_ok(rows, 1, {}) ? DType::BF16 : DType::F32;
  }
  // BF16 from the rows where attention takes its tensor-core prefill paths (kChunkedMinQueries).
  DType qkv_dtype(int64_t min_rows) const override {
    return min_rows >= kChunkedMinQueries && lt_gemm_ok(min_rows, 1, {}) ? DType::BF16 : DType::F32;
  }

  void store_kv_rows(const std::vector<KVRow>& rows) override;

  void linear_qkv(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q, Tensor& k,
                  Tensor* v) override;

  void qkv_norm_rope(Tensor& q, Tensor& k, Tensor& v, bool v_from_k, const Tensor& wq, const Tensor& wk, float eps,
                     int n_q_heads, int n_kv_heads, int head_dim, const int64_t* pos,
                     const std::vector<float>& inv_freq, const std::vector<KVRow>* append = nullptr) override;

  bool choose_tokens(Tensor& logits, const std::vector<TokenChoice>& rows, const std::vector<int64_t>& suppress,
                     std::vector<int64_t>& ids) override;
  bool has_pending_tokens() const override { return true; }
  bool choose_tokens_pending(Tensor& logits, const std::vector<TokenChoice>& rows,
                             const std::vector<int64_t>& suppress) override;
  std::vector<int64_t> read_pending_tokens() override;
  void embedding_pending(const Tensor& table, int64_t T, float scale, const std::vector<int64_t>& to_pad,
                         int64_t pad_id, Tensor& y) override;

  // ---- backward: not yet on the GPU
  void linear_backward(const Tensor&, const Tensor&, const Tensor&, Tensor*, bool, Tensor*) override;
  void rmsnorm_backward(const Tensor&, const Tensor*, float, const Tensor&, Tensor&, bool, Tensor*) override;
  void rope_backward(Tensor&, int, int, const int64_t*, const std::vector<float>&) override;
  void attention_backward(const Tensor&, const Tensor&, const Tensor&, int, int, int, float, const AttnMask&,
                          const Tensor&, Tensor&, Tensor&, Tensor&) override;
  void gelu_tanh_mul_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&) override;

 private:
  static constexpr int64_t kChunkedMinQueries = 16;
  // Zeroed counters of the one-launch decode attention (decode_attention.cu), one per (query row, KV head),
  // followed by as many for the greedy token choice (sampling.cu argmax_rows); every launch leaves them zero.
  // Allocated with the backend, so a recorded step only reads the pointer.
  static constexpr int64_t kSplitCounters = 16384;
  unsigned* split_counters() { return static_cast<unsigned*>(split_counters_.get()); }
  // layer_tail's grid barrier (2 zeroed words) and partial sums (layer_tail.cu), allocated with the backend.
  unsigned* tail_sync() { return static_cast<unsigned*>(tail_scratch_.get()); }
  float* tail_partials() { return reinterpret_cast<float*>(static_cast<char*>(tail_scratch_.get()) + 256); }
  static constexpr int64_t kGemmDecodeMinKeys = 512;

  // x_in (optional): the residual read, x itself when null.
  void fused_add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor* w2,
                         Tensor* out, const Tensor* x_in = nullptr);
  // layer_tail as o GEMV -> gate/up GEMV with the add + norms as its prologue (gemv_normed.cu) -> down GEMV ->
  // add + norms (or, with `deferred`, left pending for linear_qkv_deferred); false (nothing launched) where its
  // kernel does not take the shapes.
  bool normed_layer_tail(Tensor& x, const Tensor& o, const Tensor& wo, const Tensor& w_post_attn,
                         const Tensor& w_pre_ffw, const Tensor& wg16, const Tensor& wu16, const Tensor& wd,
                         const Tensor& w_post_ffw, const Tensor& s, const Tensor& w_next, float eps, Tensor& attn_out,
                         Tensor& g, Tensor& u, Tensor& f, Tensor& next, DeferredNorm* deferred);

  // The token choice of choose_tokens / choose_tokens_pending: ids of the B rows into out (device).
  void launch_token_choice(Tensor& logits, const std::vector<TokenChoice>& rows, const std::vector<int64_t>& suppress,
                           int64_t* out);
  // Pending tokens (choose_tokens_pending): a device buffer of fixed address (recorded steps read it), its
  // pinned host copy and the event after that copy.
  static constexpr int64_t kMaxPendingTokens = 1024;
  std::shared_ptr<void> pending_dev_;
  int64_t* pending_host_ = nullptr;
  cudaEvent_t pending_copied_ = nullptr;
  int64_t pending_n_ = -1;  // -1: nothing chosen yet

  // dst rows [row, row + n) = src (and dst2 = src2 when given) with the row read on the device, so a recorded
  // step replays with a new row.
  void rows_at(const Tensor& src, Tensor& dst, const Tensor* src2, Tensor* dst2, int64_t row);

  // The GEMV kernels stream each weight once for up to 8 rows, but their cost grows with the rows (H200,
  // N=15360 K=3840: 35 us at M=1, 144 us at M=8, where a cuBLAS bf16 GEMM takes 36 us at M=16): with tensor
  // cores at hand (BF16 precision) they take only M = 1.
  bool gemv_rows_ok(int64_t M) const { return precision_ != Precision::BF16 || M == 1; }
  // The rows that take cuBLASLt tensor-core GEMMs (bf16 precision, M > 1) with these bf16 weights of width K.
  bool lt_gemm_ok(int64_t M, int64_t K, std::initializer_list<const Tensor*> w16) const;
  // y[M, N] = xb[M, K] . w16[N, K]^T (cuBLASLt): xb and w16 bf16 on the device, y fp32 or bf16.
  void lt_gemm(const void* xb, const Tensor& w16, void* y, bool y_bf16, int64_t M);
  // An F32 copy of a BF16 activation, for the paths that read F32 (a matmul input kept in bf16 whose weight
  // or row count does not take the tensor-core GEMMs).
  Tensor widened(const Tensor& x);
  // The weight as the GEMMs of this precision read it: F32-stored weights through their bf16 copy in bf16.
  const Tensor& gemm_weight(const Tensor& w) {
    return precision_ == Precision::BF16 && w.dtype == DType::F32 ? bf16_shadow(w) : w;
  }

  // Decode attention of one or more sequences in one launch (attention_decode): every segment has few query
  // rows, no bidirectional blocks and keys/values of one dtype on the device. Keys at rotated consecutive
  // positions (a ring, or a contiguous cache) travel as {n, k0, r}, not as S positions; a single sequence may
  // also give explicit positions (eager only). A recorded step sizes the launch for step_key_capacity(S) keys
  // and reads n on the device. Returns false when the segments do not qualify (the caller falls back).
  bool decode_attention(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                        int head_dim, float scale, Tensor& o);

  static uint64_t P(const void* p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); }
  static uint64_t F(float f);
  // Inside a recorded step: records the op (capture) or checks it against the recording and skips its
  // launches (replay). Every allocation and upload of an op happens before this call.
  bool skip(const char* what, std::initializer_list<uint64_t> sig);
  void no_host_transfer_in_step(const char* what);
  // Device memory: from the pool, or inside a recorded step from the recording (same addresses on replay).
  std::shared_ptr<void> device_block(size_t bytes);

  // True when k_pos is a rotation of a consecutive run (a ring buffer; r = 0: consecutive):
  // k_pos[j] = k0 + (j - r + S) % S. desc = {S, k0, r}.
  static bool rotated_run(const int64_t* k_pos, int64_t S, int64_t* desc);

  template <typename T>
  static DType dtype_of() {
    static_assert(sizeof(T) == 8 || sizeof(T) == 4);
    return sizeof(T) == 8 ? (std::is_floating_point_v<T> ? DType::F64 : DType::I64)
                          : (std::is_floating_point_v<T> ? DType::F32 : DType::I32);
  }

  // A device copy of a constant host array (RoPE frequencies): uploaded once, kept.
  template <typename T>
  Tensor upload_constant(const T* p, int64_t n) {
    const size_t bytes = size_t(n) * sizeof(T);
    std::string key(reinterpret_cast<const char*>(p), bytes);
    auto it = constants_.find(key);
    if (it != constants_.end() && it->second.dtype == dtype_of<T>()) return it->second;
    if (steps_->active()) return upload(p, n);  // first seen inside a recording: an upload of the step
    Tensor t = alloc(dtype_of<T>(), {n});
    if (n) stager_.upload(t.data, p, bytes, stream_);
    return constants_[key] = t;
  }

  // A device copy of a small host array. Recent uploads are kept and matched by content: every layer of a
  // forward asks for the same positions, and they cross the bus once. Inside a recorded step the array goes
  // to the step's upload area (replays rewrite it).
  template <typename T>
  Tensor upload(const T* p, int64_t n) {
    G4_CHECK(p != nullptr || n == 0, "CUDA backend: missing host array");
    const DType dt = dtype_of<T>();
    const size_t bytes = size_t(n) * sizeof(T);
    if (steps_->active()) {
      Tensor t;
      t.dtype = dt;
      t.shape = {n};
      t.device = Device::CUDA;
      t.data = steps_->upload(p, bytes);
      return t;
    }
    for (auto it = uploads_.begin(); it != uploads_.end(); ++it) {
      if (it->dev.dtype == dt && it->bytes.size() == bytes && std::memcmp(it->bytes.data(), p, bytes) == 0) {
        Tensor t = it->dev;
        if (it != uploads_.begin()) uploads_.splice(uploads_.begin(), uploads_, it);  // most recent first
        return t;
      }
    }
    Tensor t = alloc(dt, {n});
    if (n) stager_.upload(t.data, p, bytes, stream_);
    uploads_.push_front(
        {std::vector<char>(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p) + bytes), t});
    if (uploads_.size() > 16) uploads_.pop_back();
    return t;
  }

  // The bf16 device copy of an F32 weight (made once; dropped when the weight's memory is released).
  const Tensor& bf16_shadow(const Tensor& w);

  struct Upload {
    std::vector<char> bytes;
    Tensor dev;
  };
  struct Shadow {
    Tensor t;
    std::weak_ptr<void> owner;
  };
  OpProfiler prof_;
  Precision precision_;
  // GEMMA4_CUDA_FLASH=0: bf16 prefill attention through cuBLAS GEMMs (attention_chunked) instead of the fused
  // kernel, for comparisons.
  const bool flash_ = [] {
    const char* v = std::getenv("GEMMA4_CUDA_FLASH");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  // GEMMA4_CUDA_LAYER_TAIL=1: a decode row's layer tail runs as layer_tail.cu's one launch instead of the
  // composition of five (o GEMV, add + norms, gate/up, down, add + norms). Opt-in: correct, but slower so far
  // (README). Read per call, so a test can compare both in one process.
  static bool layer_tail_enabled() {
    const char* v = std::getenv("GEMMA4_CUDA_LAYER_TAIL");
    return v && std::strcmp(v, "1") == 0;
  }
  // GEMMA4_CUDA_NORMED_GEMV=0: a decode row's layer tail is the plain composition (an add + norm kernel before
  // the gate/up GEMV) instead of normed_layer_tail, for comparisons. Read per call.
  static bool normed_gemv_enabled() {
    const char* v = std::getenv("GEMMA4_CUDA_NORMED_GEMV");
    return !(v && std::strcmp(v, "0") == 0);
  }
  // GEMMA4_CUDA_DECODE_FUSION=0: a decode step's KV appends run as a launch of their own (store_kv_rows)
  // instead of inside qkv_norm_rope, for comparisons.
  const bool decode_fusion_ = [] {
    const char* v = std::getenv("GEMMA4_CUDA_DECODE_FUSION");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  cudaDeviceProp prop_{};
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<DevicePool> pool_ = std::make_shared<DevicePool>();
  std::unique_ptr<StepGraphs> steps_;
  Stager stager_;
  std::list<Upload> uploads_;
  std::map<std::string, Tensor> constants_;
  std::map<const void*, Shadow> shadows_;
  std::shared_ptr<void> split_counters_;
  std::shared_ptr<void> tail_scratch_;
#ifdef GEMMA4_HAS_CUBLAS
  static constexpr size_t kBlasWorkspace = size_t(32) << 20;
  cublasHandle_t blas_ = nullptr, blas_tc_ = nullptr;
  std::shared_ptr<void> blas_ws_, blas_tc_ws_, lt_ws_;
  std::unique_ptr<LtGemm> lt_;  // the bf16 GEMMs of linear layers (planned once per shape)
#endif
};

}  // namespace gemma4::cuda
