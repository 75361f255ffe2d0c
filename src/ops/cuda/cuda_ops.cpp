// CUDA backend of the op set (ops.h): device memory plumbing, argument checks and kernel launches
// (kernels.cu, gemv.cu, attention_kernels.cu, attention_chunked.cpp). Activations are F32 on the device;
// weights stay in their stored dtype (F32/BF16/F16). Two precisions (ops.h):
// - F32: exact fp32 (cuBLAS SGEMM without TF32 for F32 weights, fp32 kernels for the others);
// - BF16: matmuls with M > 8 rows and prefill attention on tensor cores (bf16 inputs, fp32 accumulation);
//   F32-stored weights get a bf16 device copy on first use.
// Decode-shaped matmuls (M <= 8) stream the weights with 16-byte loads in both precisions.
// Everything runs in order on the legacy default stream; the host never waits except in to_host/synchronize:
// device memory comes from a caching pool (device_pool.h) and small host arrays (positions, ids) are
// staged through pinned memory, so the host enqueues ahead of the GPU.
#include <cuda_runtime.h>
#ifdef GEMMA4_HAS_CUBLAS
#include <cublas_v2.h>

#include "ops/cuda/attention_chunked.h"
#endif

#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <type_traits>
#include <map>

#include "ops/cuda/device_pool.h"
#include "ops/cuda/kernels.h"
#include "ops/cuda/op_profiler.h"
#include "ops/ops.h"

namespace gemma4::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("CUDA {}: {}", what, cudaGetErrorString(e));
}

// Launch results; with GEMMA4_CUDA_SYNC=1 every op also waits, so a fault names the op that caused it.
void check_launch(int e, const char* what) {
  check(cudaError_t(e), what);
  static const bool sync = [] {
    const char* v = std::getenv("GEMMA4_CUDA_SYNC");
    return v && *v && *v != '0';
  }();
  if (sync) check(cudaDeviceSynchronize(), what);
}

int wtype(DType d, const char* what) {
  switch (d) {
    case DType::F32: return kF32;
    case DType::BF16: return kBF16;
    case DType::F16: return kF16;
    default: throw Error("{}: expected a float tensor, got {}", what, dtype_name(d));
  }
}

void on_device(const Tensor& t, const char* what) {
  G4_CHECK(t.device == Device::CUDA && (t.data || t.numel() == 0),
           "{}: the CUDA backend needs tensors on the GPU (got a {} tensor of shape {})", what,
           t.device == Device::CPU ? "CPU" : "CUDA", shape_str(t.shape));
}

void f32_on_device(const Tensor& t, const char* what) {
  on_device(t, what);
  G4_CHECK(t.dtype == DType::F32, "{}: activations must be F32, got {}", what, dtype_name(t.dtype));
}

// Small host arrays to the device without waiting: copied into a pinned ring, then an async copy. A region
// of the ring is rewritten only after the copy that last read it has completed (its event).
class Stager {
 public:
  static constexpr size_t kBytes = size_t(32) << 20;
  Stager() {
    check(cudaMallocHost(&buf_, kBytes), "pinned staging buffer");
  }
  ~Stager() {
    for (auto& p : pending_) cudaEventDestroy(p.ev);
    for (auto e : spare_) cudaEventDestroy(e);
    cudaFreeHost(buf_);
  }
  void upload(void* dst, const void* src, size_t n) {
    if (n > kBytes / 2) {  // large: a plain synchronous copy
      check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "upload");
      return;
    }
    const size_t len = (n + 255) / 256 * 256;
    if (cursor_ + len > kBytes) cursor_ = 0;
    while (!pending_.empty() && overlaps(pending_.front(), cursor_, cursor_ + len)) {
      check(cudaEventSynchronize(pending_.front().ev), "staging wait");
      spare_.push_back(pending_.front().ev);
      pending_.pop_front();
    }
    std::memcpy(buf_ + cursor_, src, n);
    check(cudaMemcpyAsync(dst, buf_ + cursor_, n, cudaMemcpyHostToDevice, nullptr), "upload");
    cudaEvent_t ev;
    if (spare_.empty()) check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "event");
    else ev = spare_.back(), spare_.pop_back();
    check(cudaEventRecord(ev, nullptr), "event record");
    pending_.push_back({cursor_, cursor_ + len, ev});
    cursor_ += len;
  }

 private:
  struct Pending {
    size_t a, b;
    cudaEvent_t ev;
  };
  static bool overlaps(const Pending& p, size_t a, size_t b) { return p.a < b && a < p.b; }
  char* buf_ = nullptr;
  size_t cursor_ = 0;
  std::deque<Pending> pending_;
  std::vector<cudaEvent_t> spare_;
};

[[noreturn]] void no_backward(const char* op) {
  throw Error("the CUDA backend has no {} yet (training runs on the CPU backend)", op);
}

class CudaOps final : public Ops {
 public:
  explicit CudaOps(Precision p) : precision_(p) {
    check(cudaFree(nullptr), "context creation");
    check(cudaGetDeviceProperties(&prop_, 0), "device properties");
#ifdef GEMMA4_HAS_CUBLAS
    G4_CHECK(cublasCreate(&blas_) == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed");
    cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH);  // exact fp32 (no TF32) for the fp32 parity mode
    G4_CHECK(cublasCreate(&blas_tc_) == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed");
    cublasSetMathMode(blas_tc_, CUBLAS_DEFAULT_MATH);  // tensor cores for the bf16 GEMMs
#endif
  }
  ~CudaOps() override {
    cudaDeviceSynchronize();
    uploads_.clear();
    shadows_.clear();
#ifdef GEMMA4_HAS_CUBLAS
    if (blas_) cublasDestroy(blas_);
    if (blas_tc_) cublasDestroy(blas_tc_);
#endif
  }

  Device device() const override { return Device::CUDA; }
  Precision precision() const override { return precision_; }

  // ---- memory
  Tensor alloc(DType dt, Shape shape) override {
    for (auto d : shape) G4_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
    Tensor t;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.device = Device::CUDA;
    t.owner = pool_->allocate(t.nbytes());
    t.data = t.owner.get();
    return t;
  }

  Tensor to_device(const Tensor& t) override {
    if (t.device == Device::CUDA || !t.data) return t;
    Tensor d = alloc(t.dtype, t.shape);
    if (t.nbytes()) check(cudaMemcpy(d.data, t.data, t.nbytes(), cudaMemcpyHostToDevice), "upload");
    return d;
  }

  Tensor to_host(const Tensor& t) override {
    if (t.device == Device::CPU || !t.data) return t;
    Tensor h = Tensor::empty(t.dtype, t.shape);
    if (t.nbytes()) check(cudaMemcpy(h.data, t.data, t.nbytes(), cudaMemcpyDeviceToHost), "download");
    return h;
  }

  void copy(const Tensor& src, Tensor& dst) override {
    auto prof = prof_.scope([&] { return std::string("copy"); });
    G4_CHECK(src.nbytes() == dst.nbytes(), "copy: {} bytes into {}", src.nbytes(), dst.nbytes());
    if (!src.nbytes() || src.data == dst.data) return;
    if (src.device == Device::CUDA && dst.device == Device::CUDA) {  // stays in stream order, no host wait
      check(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, nullptr), "copy");
      return;
    }
    cudaMemcpyKind kind = src.device == Device::CUDA
                              ? cudaMemcpyDeviceToHost
                              : (dst.device == Device::CUDA ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    check(cudaMemcpy(dst.data, src.data, src.nbytes(), kind), "copy");
  }

  void synchronize() override { check(cudaDeviceSynchronize(), "synchronize"); }
  MemoryStats memory_stats() const override {
    const size_t used = pool_->in_use_bytes();
    return {used, used + pool_->cached_bytes(), pool_->peak_reserved_bytes()};
  }
  void reset_memory_peak() override { pool_->reset_peak(); }
  void release_cached_memory() override {
    synchronize();
    uploads_.clear();
    pool_->trim();
  }

  // ---- forward ops
  void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b) override {
    auto prof = prof_.scope([&] { return fmt::format("linear M{} N={} K={}", x.numel() / std::max<int64_t>(1, x.dim(-1)) <= 8 ? "<=8" : ">8", w.dim(0), w.dim(1)); });
    f32_on_device(x, "linear");
    on_device(w, "linear weight");
    f32_on_device(y, "linear output");
    G4_CHECK(w.ndim() == 2, "linear: weight must be 2-D, got {}", shape_str(w.shape));
    const int64_t K = w.dim(1), N = w.dim(0);
    G4_CHECK(x.dim(-1) == K, "linear: input width {} but weight {}", x.dim(-1), shape_str(w.shape));
    const int64_t M = x.numel() / K;
    G4_CHECK(y.numel() == M * N, "linear: output shape {}", shape_str(y.shape));
    const bool has_b = b && b->defined() && b->numel() > 0;
    if (has_b) {
      on_device(*b, "linear bias");
      G4_CHECK(b->numel() == N, "linear: bias of {} elements for {} outputs", b->numel(), N);
    }
    if (M == 0 || N == 0) return;
    const int bdt = has_b ? wtype(b->dtype, "bias") : 0;
    // BF16 precision reads F32-stored weights through a bf16 copy (half the bytes, tensor-core GEMMs).
    const Tensor& wk = precision_ == Precision::BF16 && w.dtype == DType::F32 ? bf16_shadow(w) : w;
    const int wdt = wtype(wk.dtype, "linear weight");
    if (gemv_vec_supported(M, K, x.data, wk.data, wdt)) {  // decode shape: bandwidth-bound weight streaming
      check_launch(gemv_vec(x.ptr<float>(), M, K, wk.data, wdt, N, y.ptr<float>(), nullptr), "linear (gemv)");
      if (has_b) check_launch(add_bias(y.ptr<float>(), M, N, b->data, bdt, nullptr), "linear bias");
      return;
    }
#ifdef GEMMA4_HAS_CUBLAS
    const bool dims_ok = K > 0 && K < (1ll << 31) && N < (1ll << 31) && M < (1ll << 31);
    // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T . x^T.
    const float one = 1.f, zero = 0.f;
    if (dims_ok && precision_ == Precision::BF16 && wk.dtype == DType::BF16) {
      auto xb = pool_->allocate(size_t(M) * K * 2);
      check_launch(f32_to_bf16(x.ptr<float>(), xb.get(), M * K, nullptr), "linear: x to bf16");
      G4_CHECK(cublasGemmEx(blas_tc_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, wk.data, CUDA_R_16BF,
                            int(K), xb.get(), CUDA_R_16BF, int(K), &zero, y.data, CUDA_R_32F, int(N),
                            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
               "cuBLAS bf16 GEMM failed for linear [{}, {}] x [{}, {}]^T", M, K, N, K);
      if (has_b) check_launch(add_bias(y.ptr<float>(), M, N, b->data, bdt, nullptr), "linear bias");
      else check_launch(0, "linear");
      return;
    }
    if (dims_ok && wk.dtype == DType::F32) {
      G4_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, wk.ptr<float>(), int(K),
                           x.ptr<float>(), int(K), &zero, y.ptr<float>(), int(N)) == CUBLAS_STATUS_SUCCESS,
               "cuBLAS SGEMM failed for linear [{}, {}] x [{}, {}]^T", M, K, N, K);
      if (has_b) check_launch(add_bias(y.ptr<float>(), M, N, b->data, bdt, nullptr), "linear bias");
      else check_launch(0, "linear");
      return;
    }
#endif
    check_launch(cuda::linear(x.ptr<float>(), M, K, wk.data, wdt, N, y.ptr<float>(), has_b ? b->data : nullptr, bdt,
                              nullptr),
                 "linear");
  }

  void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override {
    auto prof = prof_.scope([&] { return std::string("rmsnorm"); });
    f32_on_device(x, "rmsnorm");
    f32_on_device(y, "rmsnorm output");
    const bool has_w = w && w->defined() && w->numel() > 0;
    if (has_w) on_device(*w, "rmsnorm weight");
    const int64_t D = has_w ? w->numel() : x.dim(-1);
    G4_CHECK(D > 0 && x.numel() % D == 0 && y.numel() == x.numel(), "rmsnorm: shapes {} / {} with width {}",
             shape_str(x.shape), shape_str(y.shape), D);
    check_launch(cuda::rmsnorm(x.ptr<float>(), has_w ? w->data : nullptr, has_w ? wtype(w->dtype, "rmsnorm") : 0,
                               x.numel() / D, D, eps, y.ptr<float>(), nullptr),
                 "rmsnorm");
  }

  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override {
    f32_on_device(x, "layernorm");
    f32_on_device(y, "layernorm output");
    on_device(w, "layernorm weight");
    on_device(b, "layernorm bias");
    const int64_t D = x.dim(-1);
    G4_CHECK(w.numel() == D && b.numel() == D && y.numel() == x.numel(), "layernorm: shapes {} {} {}",
             shape_str(x.shape), shape_str(w.shape), shape_str(b.shape));
    check_launch(cuda::layernorm(x.ptr<float>(), w.data, wtype(w.dtype, "layernorm"), b.data,
                                 wtype(b.dtype, "layernorm"), x.numel() / D, D, eps, y.ptr<float>(), nullptr),
                 "layernorm");
  }

  void embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) override {
    auto prof = prof_.scope([&] { return std::string("embedding"); });
    on_device(table, "embedding table");
    f32_on_device(y, "embedding output");
    const int64_t V = table.dim(0), D = table.dim(1), T = int64_t(ids.size());
    for (int64_t t = 0; t < T; ++t)
      G4_CHECK(ids[t] >= 0 && ids[t] < V, "token id {} out of range [0, {})", ids[t], V);
    G4_CHECK(y.numel() == T * D, "embedding: output shape {} for {} ids of width {}", shape_str(y.shape), T, D);
    if (T == 0) return;
    Tensor dids = upload(ids.data(), T);  // the staged copy of this call's ids
    check_launch(cuda::embedding(table.data, wtype(table.dtype, "embedding"), D, dids.ptr<int64_t>(), T, scale,
                                 y.ptr<float>(), nullptr),
                 "embedding");
  }

  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override {
    auto prof = prof_.scope([&] { return std::string("rope"); });
    f32_on_device(x, "rope");
    G4_CHECK(int(inv_freq.size()) >= head_dim / 2, "rope: {} frequencies for head_dim {}", inv_freq.size(), head_dim);
    const int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
    if (T == 0) return;
    Tensor dpos = upload(pos, T);
    Tensor dfreq = upload(inv_freq.data(), head_dim / 2);
    check_launch(cuda::rope(x.ptr<float>(), T, n_heads, head_dim, dpos.ptr<int64_t>(), dfreq.ptr<float>(), nullptr),
                 "rope");
  }

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override {
    auto prof = prof_.scope([&] { return fmt::format("attention T{} hd={} S{}", q.numel() / (int64_t(n_q_heads) * head_dim) >= 16 ? ">=16" : "<16", head_dim, k.numel() / (int64_t(n_kv_heads) * head_dim) > 8192 ? ">8K" : (k.numel() / (int64_t(n_kv_heads) * head_dim) > 1024 ? ">1K" : "<=1K")); });
    f32_on_device(q, "attention q");
    f32_on_device(k, "attention k");
    f32_on_device(v, "attention v");
    f32_on_device(o, "attention output");
    G4_CHECK(head_dim > 0 && head_dim <= 512, "attention: head_dim {} (the CUDA kernel supports up to 512)", head_dim);
    G4_CHECK(n_kv_heads > 0 && n_q_heads % n_kv_heads == 0, "attention: {} query heads for {} kv heads", n_q_heads,
             n_kv_heads);
    const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
    const int64_t S = k.numel() / (int64_t(n_kv_heads) * head_dim);
    G4_CHECK(v.numel() == k.numel() && o.numel() == q.numel(), "attention: shapes q {} k {} v {} o {}",
             shape_str(q.shape), shape_str(k.shape), shape_str(v.shape), shape_str(o.shape));
    if (T == 0) return;
    if (S == 0) {
      check(cudaMemsetAsync(o.data, 0, o.nbytes(), nullptr), "attention (no keys)");
      return;
    }
    Tensor qp = upload(mask.q_pos, T), kp = upload(mask.k_pos, S);
    Tensor qb, kb;
    if (mask.q_block) {
      qb = upload(mask.q_block, T);
      kb = upload(mask.k_block, S);
    }
#ifdef GEMMA4_HAS_CUBLAS
    // cuBLAS GEMMs + masked softmax (attention_chunked.cpp): prefill over query chunks (tensor cores in bf16
    // precision) when the keys are at consecutive positions; decode over many keys in any order (fp32 GEMMs,
    // memory-bound: K and V are read once for all query heads of a KV head).
    const bool consecutive = keys_consecutive(mask.k_pos, S);
    const bool prefill = T >= kChunkedMinQueries && consecutive;
    const bool long_decode = T < kChunkedMinQueries && S >= kGemmDecodeMinKeys;
    if (!mask.q_block && (prefill || long_decode)) {
      ChunkedAttention c{q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), o.ptr<float>(), T, S, n_q_heads, n_kv_heads,
                         head_dim, scale, mask.window, mask.q_pos, mask.k_pos, qp.ptr<int64_t>(), kp.ptr<int64_t>(),
                         precision_ == Precision::BF16 && prefill, consecutive, blas_tc_, blas_};
      attention_chunked(c, [this](size_t n) { return pool_->allocate(n); });
      check_launch(0, "attention (cuBLAS)");
      return;
    }
#endif
    // Few queries (decode): split the keys over enough blocks to fill the GPU, then merge.
    const int64_t rows = T * n_q_heads;
    // About 8 blocks per SM, at least 16 keys (two per warp) per block.
    int64_t nsplit = (8 * int64_t(prop_.multiProcessorCount) + rows - 1) / rows;
    nsplit = std::max<int64_t>(1, std::min<int64_t>({nsplit, (S + 15) / 16, 128}));
    auto part = pool_->allocate(size_t(rows) * nsplit * (2 + head_dim) * sizeof(float));
    float* pm = static_cast<float*>(part.get());
    float* pl = pm + rows * nsplit;
    float* pa = pl + rows * nsplit;
    check_launch(cuda::attention_split(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), T, S, n_q_heads, n_kv_heads,
                                       head_dim, scale, qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window,
                                       mask.q_block ? qb.ptr<int32_t>() : nullptr,
                                       mask.q_block ? kb.ptr<int32_t>() : nullptr, int(nsplit), pm, pl, pa,
                                       o.ptr<float>(), nullptr),
                 "attention");
  }

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    auto prof = prof_.scope([&] { return std::string("gelu_tanh_mul"); });
    f32_on_device(gate, "gelu_tanh_mul");
    f32_on_device(up, "gelu_tanh_mul");
    f32_on_device(out, "gelu_tanh_mul");
    G4_CHECK(up.numel() == gate.numel() && out.numel() == gate.numel(), "gelu_tanh_mul: sizes differ");
    check_launch(cuda::gelu_tanh_mul(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), nullptr),
                 "gelu_tanh_mul");
  }

  void gelu_tanh(const Tensor& x, Tensor& out) override {
    f32_on_device(x, "gelu_tanh");
    f32_on_device(out, "gelu_tanh");
    G4_CHECK(out.numel() == x.numel(), "gelu_tanh: sizes differ");
    check_launch(cuda::gelu_tanh(x.ptr<float>(), out.ptr<float>(), x.numel(), nullptr), "gelu_tanh");
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    auto prof = prof_.scope([&] { return std::string("add"); });
    f32_on_device(a, "add");
    f32_on_device(b, "add");
    f32_on_device(out, "add");
    const int64_t n = a.numel();
    G4_CHECK(b.numel() == n && out.numel() == n, "add: sizes {} {} {}", n, b.numel(), out.numel());
    check_launch(cuda::add(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n, nullptr), "add");
  }

  void scale(Tensor& x, const Tensor& s) override {
    auto prof = prof_.scope([&] { return std::string("scale"); });
    f32_on_device(x, "scale");
    G4_CHECK(s.numel() >= 1, "scale: empty scale tensor");
    if (s.device == Device::CPU) return scale(x, s.f32_vector()[0]);
    check_launch(cuda::scale(x.ptr<float>(), x.numel(), 0.f, s.data, wtype(s.dtype, "scale"), nullptr), "scale");
  }

  void scale(Tensor& x, float s) override {
    f32_on_device(x, "scale");
    check_launch(cuda::scale(x.ptr<float>(), x.numel(), s, nullptr, 0, nullptr), "scale");
  }

  void softcap(Tensor& x, float cap) override {
    auto prof = prof_.scope([&] { return std::string("softcap"); });
    f32_on_device(x, "softcap");
    check_launch(cuda::softcap(x.ptr<float>(), x.numel(), cap, nullptr), "softcap");
  }

  // ---- fused forms (ops.h)
  void add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s) override {
    fused_add_rmsnorm(x, f, w, eps, s, nullptr, nullptr);
  }
  void add_rmsnorm_norm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor& w_next,
                        Tensor& out) override {
    fused_add_rmsnorm(x, f, w, eps, s, &w_next, &out);
  }

  void rmsnorm_rope(Tensor& x, const Tensor& w, float eps, int n_heads, int head_dim, const int64_t* pos,
                    const std::vector<float>& inv_freq) override {
    auto prof = prof_.scope([&] { return std::string("rmsnorm_rope"); });
    f32_on_device(x, "rmsnorm_rope");
    on_device(w, "rmsnorm_rope weight");
    G4_CHECK(w.numel() == head_dim && head_dim <= 512, "rmsnorm_rope: weight of {} for head_dim {}", w.numel(),
             head_dim);
    G4_CHECK(int(inv_freq.size()) >= head_dim / 2, "rope: {} frequencies for head_dim {}", inv_freq.size(), head_dim);
    const int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
    if (T == 0) return;
    Tensor dpos = upload(pos, T);
    Tensor dfreq = upload(inv_freq.data(), head_dim / 2);
    check_launch(cuda::rmsnorm_rope(x.ptr<float>(), w.data, wtype(w.dtype, "rmsnorm_rope"), T, n_heads, head_dim, eps,
                                    dpos.ptr<int64_t>(), dfreq.ptr<float>(), nullptr),
                 "rmsnorm_rope");
  }

  void linear_gelu_mul(const Tensor& x, const Tensor& wg, const Tensor& wu, Tensor& out, Tensor& scratch) override {
    const int64_t K = wg.dim(1), N = wg.dim(0), M = x.numel() / std::max<int64_t>(1, K);
    const Tensor& g16 = precision_ == Precision::BF16 && wg.dtype == DType::F32 ? bf16_shadow(wg) : wg;
    const Tensor& u16 = precision_ == Precision::BF16 && wu.dtype == DType::F32 ? bf16_shadow(wu) : wu;
    const bool fused = g16.dtype == u16.dtype && g16.dtype != DType::F32 && wu.shape == wg.shape &&
                       x.device == Device::CUDA && out.numel() == M * N &&
                       gemv_gelu_supported(M, K, x.data, g16.data, u16.data, wtype(g16.dtype, "gate"));
    if (!fused) return Ops::linear_gelu_mul(x, wg, wu, out, scratch);
    auto prof = prof_.scope([&] { return fmt::format("linear_gelu_mul M<=8 N={} K={}", N, K); });
    f32_on_device(out, "linear_gelu_mul output");
    check_launch(gemv_gelu_mul(x.ptr<float>(), M, K, g16.data, u16.data, wtype(g16.dtype, "gate"), N, out.ptr<float>(),
                               nullptr),
                 "linear_gelu_mul");
  }

  // ---- backward: not yet on the GPU
  void linear_backward(const Tensor&, const Tensor&, const Tensor&, Tensor*, bool, Tensor*) override {
    no_backward("linear_backward");
  }
  void rmsnorm_backward(const Tensor&, const Tensor*, float, const Tensor&, Tensor&, bool, Tensor*) override {
    no_backward("rmsnorm_backward");
  }
  void rope_backward(Tensor&, int, int, const int64_t*, const std::vector<float>&) override {
    no_backward("rope_backward");
  }
  void attention_backward(const Tensor&, const Tensor&, const Tensor&, int, int, int, float, const AttnMask&,
                          const Tensor&, Tensor&, Tensor&, Tensor&) override {
    no_backward("attention_backward");
  }
  void gelu_tanh_mul_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&) override {
    no_backward("gelu_tanh_mul_backward");
  }

 private:
  static constexpr int64_t kChunkedMinQueries = 16;
  static constexpr int64_t kGemmDecodeMinKeys = 512;

  void fused_add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor* w2,
                         Tensor* out) {
    auto prof = prof_.scope([&] { return std::string(w2 ? "add_rmsnorm_norm" : "add_rmsnorm"); });
    f32_on_device(x, "add_rmsnorm");
    f32_on_device(f, "add_rmsnorm");
    on_device(w, "add_rmsnorm weight");
    const int64_t D = w.numel();
    G4_CHECK(D > 0 && x.numel() == f.numel() && x.numel() % D == 0, "add_rmsnorm: shapes {} / {} with width {}",
             shape_str(x.shape), shape_str(f.shape), D);
    if (s && s->device == Device::CPU) {  // a host scale: the composition
      Ops::add_rmsnorm(x, f, w, eps, s);
      if (w2) rmsnorm(x, w2, eps, *out);
      return;
    }
    if (s) on_device(*s, "add_rmsnorm scale");
    if (w2) {
      on_device(*w2, "add_rmsnorm next weight");
      f32_on_device(*out, "add_rmsnorm_norm output");
      G4_CHECK(w2->numel() == D && out->numel() == x.numel(), "add_rmsnorm_norm: next weight {} / output {}",
               shape_str(w2->shape), shape_str(out->shape));
    }
    check_launch(cuda::add_rmsnorm(x.ptr<float>(), f.ptr<float>(), w.data, wtype(w.dtype, "add_rmsnorm"), x.numel() / D,
                                   D, eps, s ? s->data : nullptr, s ? wtype(s->dtype, "scale") : 0,
                                   w2 ? w2->data : nullptr, w2 ? wtype(w2->dtype, "rmsnorm") : 0,
                                   out ? out->ptr<float>() : nullptr, nullptr),
                 "add_rmsnorm");
  }

  // A device copy of a small host array. Recent uploads are kept and matched by content: every layer of a
  // forward asks for the same positions, and they cross the bus once.
  template <typename T>
  Tensor upload(const T* p, int64_t n) {
    static_assert(sizeof(T) == 8 || sizeof(T) == 4);
    G4_CHECK(p != nullptr || n == 0, "CUDA backend: missing host array");
    const DType dt = sizeof(T) == 8 ? (std::is_floating_point_v<T> ? DType::F64 : DType::I64)
                                    : (std::is_floating_point_v<T> ? DType::F32 : DType::I32);
    const size_t bytes = size_t(n) * sizeof(T);
    for (auto it = uploads_.begin(); it != uploads_.end(); ++it) {
      if (it->dev.dtype == dt && it->bytes.size() == bytes && std::memcmp(it->bytes.data(), p, bytes) == 0) {
        Tensor t = it->dev;
        if (it != uploads_.begin()) uploads_.splice(uploads_.begin(), uploads_, it);  // most recent first
        return t;
      }
    }
    Tensor t = alloc(dt, {n});
    if (n) stager_.upload(t.data, p, bytes);
    uploads_.push_front({std::vector<char>(reinterpret_cast<const char*>(p), reinterpret_cast<const char*>(p) + bytes),
                         t});
    if (uploads_.size() > 16) uploads_.pop_back();
    return t;
  }

  // The bf16 device copy of an F32 weight (made once; dropped when the weight's memory is released).
  const Tensor& bf16_shadow(const Tensor& w) {
    auto it = shadows_.find(w.data);
    if (it != shadows_.end()) {
      const auto& owner = it->second.owner;
      const bool same = !owner.expired() && !owner.owner_before(w.owner) && !w.owner.owner_before(owner) &&
                        it->second.t.numel() == w.numel();
      if (same) return it->second.t;
      shadows_.erase(it);
    }
    for (auto s = shadows_.begin(); s != shadows_.end();)  // drop copies of weights that are gone
      s = s->second.owner.expired() ? shadows_.erase(s) : std::next(s);
    Tensor b = alloc(DType::BF16, w.shape);
    check_launch(f32_to_bf16(w.ptr<float>(), b.data, w.numel(), nullptr), "weight to bf16");
    return shadows_[w.data] = Shadow{b, w.owner}, shadows_[w.data].t;
  }

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
  cudaDeviceProp prop_{};
  std::shared_ptr<DevicePool> pool_ = std::make_shared<DevicePool>();
  Stager stager_;
  std::list<Upload> uploads_;
  std::map<const void*, Shadow> shadows_;
#ifdef GEMMA4_HAS_CUBLAS
  cublasHandle_t blas_ = nullptr, blas_tc_ = nullptr;
#endif
};

}  // namespace

bool device_available(std::string* why) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = fmt::format("no usable CUDA GPU (cudaGetDeviceCount: {})", cudaGetErrorString(e));
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device is present";
    return false;
  }
  return true;
}

std::unique_ptr<Ops> make_ops(Precision p) { return std::make_unique<CudaOps>(p); }

}  // namespace gemma4::cuda
