// CUDA backend of the op set (ops.h): device memory plumbing, argument checks and kernel launches
// (kernels.cu, gemv.cu, attention_kernels.cu, attention_chunked.cpp). Activations are F32 on the device;
// weights stay in their stored dtype (F32/BF16/F16). Two precisions (ops.h):
// - F32: exact fp32 (cuBLAS SGEMM without TF32 for F32 weights, fp32 kernels for the others);
// - BF16: matmuls with M > 8 rows and prefill attention on tensor cores (bf16 inputs, fp32 accumulation);
//   F32-stored weights get a bf16 device copy on first use.
// Decode-shaped matmuls (M <= 8) stream the weights with 16-byte loads in both precisions.
// Everything runs in order on one stream; the host never waits except in to_host/synchronize:
// device memory comes from a caching pool (device_pool.h) and small host arrays (positions, ids) are
// staged through pinned memory, so the host enqueues ahead of the GPU. Decode steps are recorded as CUDA
// graphs and replayed (step_graph.h): every op checks `skip(...)` before it launches.
#include <cuda_runtime.h>
#ifdef GEMMA4_HAS_CUBLAS
#include <cublas_v2.h>

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

[[noreturn]] void no_backward(const char* op) {
  throw Error("the CUDA backend has no {} yet (training runs on the CPU backend)", op);
}

class CudaOps final : public Ops {
 public:
  explicit CudaOps(Precision p) : precision_(p) {
    check(cudaFree(nullptr), "context creation");
    check(cudaGetDeviceProperties(&prop_, 0), "device properties");
    check(cudaStreamCreate(&stream_), "stream");  // a blocking stream: synchronous copies still wait for it
    steps_ = std::make_unique<StepGraphs>(stream_, pool_);
    prof_.set_stream(stream_);
    decode_counters_ = pool_->allocate(2 * kDecodeCounters * sizeof(unsigned));
    check(cudaMemsetAsync(decode_counters_.get(), 0, 2 * kDecodeCounters * sizeof(unsigned), stream_),
          "split counters");
#ifdef GEMMA4_HAS_CUBLAS
    G4_CHECK(cublasCreate(&blas_) == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed");
    cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH);  // exact fp32 (no TF32) for the fp32 parity mode
    G4_CHECK(cublasCreate(&blas_tc_) == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed");
    cublasSetMathMode(blas_tc_, CUBLAS_DEFAULT_MATH);  // tensor cores for the bf16 GEMMs
    // Own stream and fixed workspaces, so cuBLAS calls can be recorded in a step graph.
    for (auto [h, ws] : {std::pair{blas_, &blas_ws_}, std::pair{blas_tc_, &blas_tc_ws_}}) {
      *ws = pool_->allocate(kBlasWorkspace);
      G4_CHECK(cublasSetStream(h, stream_) == CUBLAS_STATUS_SUCCESS &&
                   cublasSetWorkspace(h, ws->get(), kBlasWorkspace) == CUBLAS_STATUS_SUCCESS,
               "cuBLAS: setting the stream and workspace failed");
    }
#endif
  }
  ~CudaOps() override {
    cudaDeviceSynchronize();
    steps_.reset();
    uploads_.clear();
    constants_.clear();
    shadows_.clear();
#ifdef GEMMA4_HAS_CUBLAS
    if (blas_) cublasDestroy(blas_);
    if (blas_tc_) cublasDestroy(blas_tc_);
#endif
    cudaStreamDestroy(stream_);
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
    t.owner = device_block(t.nbytes());
    t.data = t.owner.get();
    return t;
  }

  Tensor to_device(const Tensor& t) override {
    if (t.device == Device::CUDA || !t.data) return t;
    no_host_transfer_in_step("to_device");
    Tensor d = alloc(t.dtype, t.shape);
    if (t.nbytes() >= (size_t(1) << 20)) stager_.upload_large(d.data, t.data, t.nbytes(), stream_);  // waits
    else if (t.nbytes()) check(cudaMemcpy(d.data, t.data, t.nbytes(), cudaMemcpyHostToDevice), "upload");
    return d;
  }

  Tensor to_host(const Tensor& t) override {
    if (t.device == Device::CPU || !t.data) return t;
    no_host_transfer_in_step("to_host");
    Tensor h = Tensor::empty(t.dtype, t.shape);
    if (t.nbytes()) check(cudaMemcpy(h.data, t.data, t.nbytes(), cudaMemcpyDeviceToHost), "download");
    return h;
  }

  void copy(const Tensor& src, Tensor& dst) override {
    auto prof = prof_.scope([&] { return std::string("copy"); });
    if (src.dtype != dst.dtype && src.device == Device::CUDA && dst.device == Device::CUDA) {  // F32 <-> BF16
      G4_CHECK(src.numel() == dst.numel(), "copy: {} elements into {}", src.numel(), dst.numel());
      const bool down = src.dtype == DType::F32 && dst.dtype == DType::BF16;
      G4_CHECK(down || (src.dtype == DType::BF16 && dst.dtype == DType::F32), "copy: {} into {} on the GPU",
               dtype_name(src.dtype), dtype_name(dst.dtype));
      if (skip("convert", {P(src.data), P(dst.data), uint64_t(src.numel()), uint64_t(down)})) return;
      check_launch(down ? f32_to_bf16(src.ptr<float>(), dst.data, src.numel(), stream_)
                        : bf16_to_f32(src.data, dst.ptr<float>(), src.numel(), stream_),
                   "copy (convert)");
      return;
    }
    if (src.dtype != dst.dtype) return Ops::copy(src, dst);  // across host and device: no conversion kernel
    G4_CHECK(src.nbytes() == dst.nbytes(), "copy: {} bytes into {}", src.nbytes(), dst.nbytes());
    if (!src.nbytes() || src.data == dst.data) return;
    if (src.device == Device::CUDA && dst.device == Device::CUDA) {  // stays in stream order, no host wait
      if (skip("copy", {P(src.data), P(dst.data), src.nbytes()})) return;
      check(cudaMemcpyAsync(dst.data, src.data, src.nbytes(), cudaMemcpyDeviceToDevice, stream_), "copy");
      return;
    }
    no_host_transfer_in_step("copy");
    cudaMemcpyKind kind = src.device == Device::CUDA
                              ? cudaMemcpyDeviceToHost
                              : (dst.device == Device::CUDA ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    check(cudaMemcpy(dst.data, src.data, src.nbytes(), kind), "copy");
  }

  void synchronize() override {
    no_host_transfer_in_step("synchronize");
    check(cudaDeviceSynchronize(), "synchronize");
  }

  void copy_rows(const Tensor& src, Tensor& dst, int64_t row) override { rows_at(src, dst, nullptr, nullptr, row); }
  void store_kv(const Tensor& k, const Tensor& v, Tensor& cache_k, Tensor& cache_v, int64_t row) override {
    rows_at(k, cache_k, &v, &cache_v, row);
  }

  void begin_step(uint64_t key) override {
    if (!prof_.enabled()) steps_->begin(key);  // profiling times ops one by one: eager
  }
  void end_step() override { steps_->end(); }
  void abort_step() override { steps_->abort(); }
  StepStats step_stats() const override { return steps_->stats(); }
  void set_step_recording(bool on) override { steps_->set_enabled(on); }
  MemoryStats memory_stats() const override {
    const size_t used = pool_->in_use_bytes();
    return {used, used + pool_->cached_bytes(), pool_->peak_reserved_bytes()};
  }
  void reset_memory_peak() override { pool_->reset_peak(); }
  void release_cached_memory() override {
    synchronize();
    uploads_.clear();
    constants_.clear();
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
    const bool gemv = gemv_rows_ok(M) && gemv_vec_supported(M, K, x.data, wk.data, wdt);  // weight streaming
    const bool dims_ok = K > 0 && K < (1ll << 31) && N < (1ll << 31) && M < (1ll << 31);
#ifdef GEMMA4_HAS_CUBLAS
    const bool gemm_bf16 = !gemv && dims_ok && precision_ == Precision::BF16 && wk.dtype == DType::BF16;
    const bool gemm_f32 = !gemv && !gemm_bf16 && dims_ok && wk.dtype == DType::F32;
#else
    const bool gemm_bf16 = false, gemm_f32 = false;
#endif
    std::shared_ptr<void> xb;
    if (gemm_bf16) xb = device_block(size_t(M) * K * 2);
    if (skip("linear", {P(x.data), P(wk.data), P(y.data), P(has_b ? b->data : nullptr), uint64_t(M), uint64_t(N),
                        uint64_t(K)}))
      return;
    if (gemv) {
      check_launch(gemv_vec(x.ptr<float>(), M, K, wk.data, wdt, N, y.ptr<float>(), stream_), "linear (gemv)");
    } else if (gemm_bf16 || gemm_f32) {
#ifdef GEMMA4_HAS_CUBLAS
      // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T . x^T.
      const float one = 1.f, zero = 0.f;
      if (gemm_bf16) {
        check_launch(f32_to_bf16(x.ptr<float>(), xb.get(), M * K, stream_), "linear: x to bf16");
        G4_CHECK(cublasGemmEx(blas_tc_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, wk.data, CUDA_R_16BF,
                              int(K), xb.get(), CUDA_R_16BF, int(K), &zero, y.data, CUDA_R_32F, int(N),
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS,
                 "cuBLAS bf16 GEMM failed for linear [{}, {}] x [{}, {}]^T", M, K, N, K);
      } else {
        G4_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, wk.ptr<float>(), int(K),
                             x.ptr<float>(), int(K), &zero, y.ptr<float>(), int(N)) == CUBLAS_STATUS_SUCCESS,
                 "cuBLAS SGEMM failed for linear [{}, {}] x [{}, {}]^T", M, K, N, K);
      }
      check_launch(0, "linear");
#endif
    } else {
      check_launch(cuda::linear(x.ptr<float>(), M, K, wk.data, wdt, N, y.ptr<float>(), nullptr, 0, stream_), "linear");
    }
    if (has_b) check_launch(add_bias(y.ptr<float>(), M, N, b->data, bdt, stream_), "linear bias");
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
    if (skip("rmsnorm", {P(x.data), P(has_w ? w->data : nullptr), P(y.data), uint64_t(x.numel()), uint64_t(D), F(eps)}))
      return;
    check_launch(cuda::rmsnorm(x.ptr<float>(), has_w ? w->data : nullptr, has_w ? wtype(w->dtype, "rmsnorm") : 0,
                               x.numel() / D, D, eps, y.ptr<float>(), stream_),
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
    if (skip("layernorm", {P(x.data), P(w.data), P(b.data), P(y.data), uint64_t(x.numel()), uint64_t(D), F(eps)}))
      return;
    check_launch(cuda::layernorm(x.ptr<float>(), w.data, wtype(w.dtype, "layernorm"), b.data,
                                 wtype(b.dtype, "layernorm"), x.numel() / D, D, eps, y.ptr<float>(), stream_),
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
    if (skip("embedding", {P(table.data), P(y.data), uint64_t(T), uint64_t(D), F(scale)})) return;
    check_launch(cuda::embedding(table.data, wtype(table.dtype, "embedding"), D, dids.ptr<int64_t>(), T, scale,
                                 y.ptr<float>(), stream_),
                 "embedding");
  }

  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override {
    auto prof = prof_.scope([&] { return std::string("rope"); });
    f32_on_device(x, "rope");
    G4_CHECK(int(inv_freq.size()) >= head_dim / 2, "rope: {} frequencies for head_dim {}", inv_freq.size(), head_dim);
    const int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
    if (T == 0) return;
    Tensor dpos = upload(pos, T);
    Tensor dfreq = upload_constant(inv_freq.data(), head_dim / 2);
    if (skip("rope", {P(x.data), uint64_t(T), uint64_t(n_heads), uint64_t(head_dim), P(dfreq.data)})) return;
    check_launch(cuda::rope(x.ptr<float>(), T, n_heads, head_dim, dpos.ptr<int64_t>(), dfreq.ptr<float>(), stream_),
                 "rope");
  }

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override {
    auto prof = prof_.scope([&] { return fmt::format("attention T{} hd={} S{}", q.numel() / (int64_t(n_q_heads) * head_dim) >= 16 ? ">=16" : "<16", head_dim, k.numel() / (int64_t(n_kv_heads) * head_dim) > 8192 ? ">8K" : (k.numel() / (int64_t(n_kv_heads) * head_dim) > 1024 ? ">1K" : "<=1K")); });
    f32_on_device(q, "attention q");
    on_device(k, "attention k");
    on_device(v, "attention v");
    f32_on_device(o, "attention output");
    G4_CHECK((k.dtype == DType::F32 || k.dtype == DType::BF16) && v.dtype == k.dtype,
             "attention: keys/values must be F32 or BF16 (a bf16 KV cache), got {} / {}", dtype_name(k.dtype),
             dtype_name(v.dtype));
    const bool kv_bf16 = k.dtype == DType::BF16;
    G4_CHECK(head_dim > 0 && head_dim <= 512, "attention: head_dim {} (the CUDA kernel supports up to 512)", head_dim);
    G4_CHECK(n_kv_heads > 0 && n_q_heads % n_kv_heads == 0, "attention: {} query heads for {} kv heads", n_q_heads,
             n_kv_heads);
    const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
    const int64_t S = k.numel() / (int64_t(n_kv_heads) * head_dim);
    G4_CHECK(v.numel() == k.numel() && o.numel() == q.numel(), "attention: shapes q {} k {} v {} o {}",
             shape_str(q.shape), shape_str(k.shape), shape_str(v.shape), shape_str(o.shape));
    if (T == 0) return;
    if (S == 0) {
      if (skip("attention (no keys)", {P(o.data), o.nbytes()})) return;
      check(cudaMemsetAsync(o.data, 0, o.nbytes(), stream_), "attention (no keys)");
      return;
    }
    const bool step = steps_->active();
    // Decode (few queries, no bidirectional blocks): K and V read once per KV head (attention_decode).
    const AttnSegment one{0, T, &k, &v, mask};
    if (T < kChunkedMinQueries && !mask.q_block && decode_attention(q, {one}, n_q_heads, n_kv_heads, head_dim, scale, o))
      return;
    G4_CHECK(!step, "attention: only decode attention (few queries, no bidirectional blocks) can be recorded");
    Tensor qp = upload(mask.q_pos, T), kp = upload(mask.k_pos, S);
    // The paths below read F32 keys/values, except the tensor-core prefill, which reads a bf16 cache as is.
    Tensor kf = k, vf = v;
    auto widen = [&] {
      if (!kv_bf16 || kf.dtype == DType::F32) return;
      kf = alloc(DType::F32, k.shape), vf = alloc(DType::F32, v.shape);
      copy(k, kf), copy(v, vf);
    };
    Tensor qb, kb;
    if (mask.q_block) {
      qb = upload(mask.q_block, T);
      kb = upload(mask.k_block, S);
    }
#ifdef GEMMA4_HAS_CUBLAS
    // Prefill in bf16 precision: the fused tensor-core kernel (flash_attention.cu) for head_dim 256, and for
    // 512 when the chunked cuBLAS path below cannot take it (bidirectional blocks, keys out of order). At 512
    // the kernel computes Q K^T once per half of the output dims; on the 12B's full layers (4096 tokens,
    // H200) it took 2.7 ms a layer against 1.9 ms for the cuBLAS path. GEMMA4_CUDA_FLASH=0: never.
    const bool cublas_takes_it = head_dim == 512 && !mask.q_block && keys_consecutive(mask.k_pos, S);
    if (precision_ == Precision::BF16 && T >= kChunkedMinQueries && flash_ && !cublas_takes_it &&
        flash_attention_supported(n_q_heads, n_kv_heads, head_dim)) {
      FlashAttention fa{q.ptr<float>(), k.data, v.data, o.ptr<float>(), T, S, n_q_heads, n_kv_heads, head_dim, scale,
                        qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window,
                        mask.q_block ? qb.ptr<int32_t>() : nullptr, mask.q_block ? kb.ptr<int32_t>() : nullptr,
                        keys_consecutive(mask.k_pos, S), kv_bf16};
      check_launch(flash_attention(fa, stream_), "attention (flash)");
      return;
    }
    // cuBLAS GEMMs + masked softmax (attention_chunked.cpp): prefill over query chunks (tensor cores in bf16
    // precision) when the keys are at consecutive positions; decode over many keys in any order when the
    // decode kernel does not apply (more than 16 query heads per KV head).
    const bool consecutive = keys_consecutive(mask.k_pos, S);
    const bool prefill = T >= kChunkedMinQueries && consecutive;
    const bool long_decode = T < kChunkedMinQueries && S >= kGemmDecodeMinKeys;
    if (!mask.q_block && (prefill || long_decode)) {
      const bool tensor_cores = precision_ == Precision::BF16 && prefill;
      if (!tensor_cores) widen();
      ChunkedAttention c{q.ptr<float>(), kf.data, vf.data, o.ptr<float>(), T, S, n_q_heads, n_kv_heads,
                         head_dim, scale, mask.window, mask.q_pos, mask.k_pos, qp.ptr<int64_t>(), kp.ptr<int64_t>(),
                         tensor_cores, consecutive, blas_tc_, blas_};
      c.stream = stream_;
      c.kv_bf16 = kf.dtype == DType::BF16;
      attention_chunked(c, [this](size_t n) { return device_block(n); });
      check_launch(0, "attention (cuBLAS)");
      return;
    }
#endif
    // Few queries with bidirectional blocks: split the keys over enough blocks to fill the GPU, then merge.
    widen();
    const int64_t rows = T * n_q_heads;
    // About 8 blocks per SM, at least 16 keys (two per warp) per block.
    int64_t nsplit = (8 * int64_t(prop_.multiProcessorCount) + rows - 1) / rows;
    nsplit = std::max<int64_t>(1, std::min<int64_t>({nsplit, (S + 15) / 16, 128}));
    auto part = device_block(size_t(rows) * nsplit * (2 + head_dim) * sizeof(float));
    float* pm = static_cast<float*>(part.get());
    float* pl = pm + rows * nsplit;
    float* pa = pl + rows * nsplit;
    check_launch(cuda::attention_split(q.ptr<float>(), kf.ptr<float>(), vf.ptr<float>(), T, S, n_q_heads, n_kv_heads,
                                       head_dim, scale, qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window,
                                       mask.q_block ? qb.ptr<int32_t>() : nullptr,
                                       mask.q_block ? kb.ptr<int32_t>() : nullptr, int(nsplit), pm, pl, pa,
                                       o.ptr<float>(), stream_),
                 "attention");
  }

  void attention_segments(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                          int head_dim, float scale, Tensor& o) override {
    auto prof = prof_.scope([&] { return fmt::format("attention_segments x{}", segs.size()); });
    f32_on_device(q, "attention q");
    f32_on_device(o, "attention output");
    if (decode_attention(q, segs, n_q_heads, n_kv_heads, head_dim, scale, o)) return;
    Ops::attention_segments(q, segs, n_q_heads, n_kv_heads, head_dim, scale, o);  // one launch set per sequence
  }

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    auto prof = prof_.scope([&] { return std::string("gelu_tanh_mul"); });
    f32_on_device(gate, "gelu_tanh_mul");
    f32_on_device(up, "gelu_tanh_mul");
    f32_on_device(out, "gelu_tanh_mul");
    G4_CHECK(up.numel() == gate.numel() && out.numel() == gate.numel(), "gelu_tanh_mul: sizes differ");
    if (skip("gelu_tanh_mul", {P(gate.data), P(up.data), P(out.data), uint64_t(gate.numel())})) return;
    check_launch(cuda::gelu_tanh_mul(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), stream_),
                 "gelu_tanh_mul");
  }

  void gelu_tanh(const Tensor& x, Tensor& out) override {
    f32_on_device(x, "gelu_tanh");
    f32_on_device(out, "gelu_tanh");
    G4_CHECK(out.numel() == x.numel(), "gelu_tanh: sizes differ");
    if (skip("gelu_tanh", {P(x.data), P(out.data), uint64_t(x.numel())})) return;
    check_launch(cuda::gelu_tanh(x.ptr<float>(), out.ptr<float>(), x.numel(), stream_), "gelu_tanh");
  }

  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    auto prof = prof_.scope([&] { return std::string("add"); });
    f32_on_device(a, "add");
    f32_on_device(b, "add");
    f32_on_device(out, "add");
    const int64_t n = a.numel();
    G4_CHECK(b.numel() == n && out.numel() == n, "add: sizes {} {} {}", n, b.numel(), out.numel());
    if (skip("add", {P(a.data), P(b.data), P(out.data), uint64_t(n)})) return;
    check_launch(cuda::add(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n, stream_), "add");
  }

  void scale(Tensor& x, const Tensor& s) override {
    auto prof = prof_.scope([&] { return std::string("scale"); });
    f32_on_device(x, "scale");
    G4_CHECK(s.numel() >= 1, "scale: empty scale tensor");
    if (s.device == Device::CPU) return scale(x, s.f32_vector()[0]);
    if (skip("scale", {P(x.data), P(s.data), uint64_t(x.numel())})) return;
    check_launch(cuda::scale(x.ptr<float>(), x.numel(), 0.f, s.data, wtype(s.dtype, "scale"), stream_), "scale");
  }

  void scale(Tensor& x, float s) override {
    f32_on_device(x, "scale");
    if (skip("scale", {P(x.data), uint64_t(x.numel()), F(s)})) return;
    check_launch(cuda::scale(x.ptr<float>(), x.numel(), s, nullptr, 0, stream_), "scale");
  }

  void softcap(Tensor& x, float cap) override {
    auto prof = prof_.scope([&] { return std::string("softcap"); });
    f32_on_device(x, "softcap");
    if (skip("softcap", {P(x.data), uint64_t(x.numel()), F(cap)})) return;
    check_launch(cuda::softcap(x.ptr<float>(), x.numel(), cap, stream_), "softcap");
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
    Tensor dfreq = upload_constant(inv_freq.data(), head_dim / 2);
    if (skip("rmsnorm_rope", {P(x.data), P(w.data), uint64_t(T), uint64_t(n_heads), uint64_t(head_dim), F(eps),
                              P(dfreq.data)}))
      return;
    check_launch(cuda::rmsnorm_rope(x.ptr<float>(), w.data, wtype(w.dtype, "rmsnorm_rope"), T, n_heads, head_dim, eps,
                                    dpos.ptr<int64_t>(), dfreq.ptr<float>(), stream_),
                 "rmsnorm_rope");
  }

  void linear_gelu_mul(const Tensor& x, const Tensor& wg, const Tensor& wu, Tensor& out, Tensor& scratch) override {
    const int64_t K = wg.dim(1), N = wg.dim(0), M = x.numel() / std::max<int64_t>(1, K);
    const Tensor& g16 = precision_ == Precision::BF16 && wg.dtype == DType::F32 ? bf16_shadow(wg) : wg;
    const Tensor& u16 = precision_ == Precision::BF16 && wu.dtype == DType::F32 ? bf16_shadow(wu) : wu;
    const bool fused = g16.dtype == u16.dtype && g16.dtype != DType::F32 && wu.shape == wg.shape &&
                       x.device == Device::CUDA && out.numel() == M * N && gemv_rows_ok(M) &&
                       gemv_gelu_supported(M, K, x.data, g16.data, u16.data, wtype(g16.dtype, "gate"));
    if (!fused) return Ops::linear_gelu_mul(x, wg, wu, out, scratch);
    auto prof = prof_.scope([&] { return fmt::format("linear_gelu_mul M<=8 N={} K={}", N, K); });
    f32_on_device(out, "linear_gelu_mul output");
    if (skip("linear_gelu_mul", {P(x.data), P(g16.data), P(u16.data), P(out.data), uint64_t(M), uint64_t(N),
                                 uint64_t(K)}))
      return;
    check_launch(gemv_gelu_mul(x.ptr<float>(), M, K, g16.data, u16.data, wtype(g16.dtype, "gate"), N, out.ptr<float>(),
                               stream_),
                 "linear_gelu_mul");
  }

  void store_kv_rows(const std::vector<KVRow>& rows) override {
    auto prof = prof_.scope([&] { return fmt::format("store_kv_rows x{}", rows.size()); });
    if (rows.empty()) return;
    const int64_t width = rows[0].k.numel();
    const DType dst_dt = rows[0].cache_k->dtype;
    bool ok = dst_dt == DType::F32 || dst_dt == DType::BF16;
    std::vector<int64_t> table;
    for (const KVRow& r : rows) {
      ok = ok && r.k.dtype == DType::F32 && r.v.dtype == DType::F32 && r.k.numel() == width && r.v.numel() == width &&
           r.k.device == Device::CUDA && r.v.device == Device::CUDA && r.cache_k->device == Device::CUDA &&
           r.cache_k->dtype == dst_dt && r.cache_v->dtype == dst_dt && r.cache_k->ndim() == 2 &&
           r.cache_k->dim(1) == width && r.cache_v->shape == r.cache_k->shape && r.row >= 0 &&
           r.row < r.cache_k->dim(0);
      table.insert(table.end(), {int64_t(reinterpret_cast<uintptr_t>(r.k.data)),
                                 int64_t(reinterpret_cast<uintptr_t>(r.v.data)),
                                 int64_t(reinterpret_cast<uintptr_t>(r.cache_k->data)),
                                 int64_t(reinterpret_cast<uintptr_t>(r.cache_v->data)), r.row});
    }
    if (!ok) return Ops::store_kv_rows(rows);  // one store_kv per row
    Tensor dtable = upload(table.data(), int64_t(table.size()));
    if (skip("store_kv_rows", {uint64_t(rows.size()), uint64_t(width), uint64_t(dst_dt == DType::BF16)})) return;
    check_launch(cuda::store_kv_rows(dtable.ptr<int64_t>(), int64_t(rows.size()), width, dst_dt == DType::BF16,
                                     stream_),
                 "store_kv_rows");
  }

  void linear_qkv(const Tensor& x, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q, Tensor& k,
                  Tensor* v) override {
    const int64_t K = x.dim(-1), M = x.numel() / std::max<int64_t>(1, K);
    const Tensor& q16 = precision_ == Precision::BF16 && wq.dtype == DType::F32 ? bf16_shadow(wq) : wq;
    const Tensor& k16 = precision_ == Precision::BF16 && wk.dtype == DType::F32 ? bf16_shadow(wk) : wk;
    const Tensor* v16 = wv && precision_ == Precision::BF16 && wv->dtype == DType::F32 ? &bf16_shadow(*wv) : wv;
    bool fused = x.device == Device::CUDA && q16.dtype != DType::F32 && k16.dtype == q16.dtype &&
                 (!v16 || v16->dtype == q16.dtype) && q16.ndim() == 2 && k16.ndim() == 2 && q16.dim(1) == K &&
                 k16.dim(1) == K && (!v16 || (v16->ndim() == 2 && v16->dim(1) == K)) &&
                 q.numel() == M * q16.dim(0) && k.numel() == M * k16.dim(0) && (!v16 || v->numel() == M * v16->dim(0));
    fused = fused && gemv_rows_ok(M);
    const int wdt = fused ? wtype(q16.dtype, "linear_qkv") : 0;
    for (const Tensor* w : {&q16, &k16, v16})
      fused = fused && (!w || gemv_vec_supported(M, K, x.data, w->data, wdt));
    if (!fused) return Ops::linear_qkv(x, wq, wk, wv, q, k, v);
    auto prof = prof_.scope([&] { return fmt::format("linear_qkv M<=8 K={}", K); });
    f32_on_device(x, "linear_qkv");
    f32_on_device(q, "linear_qkv q");
    f32_on_device(k, "linear_qkv k");
    if (v) f32_on_device(*v, "linear_qkv v");
    if (skip("linear_qkv", {P(x.data), P(q16.data), P(k16.data), P(v16 ? v16->data : nullptr), P(q.data), P(k.data),
                            P(v ? v->data : nullptr), uint64_t(M), uint64_t(K)}))
      return;
    const GemvPart parts[3] = {{q16.data, q16.dim(0), q.ptr<float>()},
                               {k16.data, k16.dim(0), k.ptr<float>()},
                               {v16 ? v16->data : nullptr, v16 ? v16->dim(0) : 0, v ? v->ptr<float>() : nullptr}};
    check_launch(gemv_vec_multi(x.ptr<float>(), M, K, parts, v16 ? 3 : 2, wdt, stream_), "linear_qkv");
  }

  void qkv_norm_rope(Tensor& q, Tensor& k, Tensor& v, bool v_from_k, const Tensor& wq, const Tensor& wk, float eps,
                     int n_q_heads, int n_kv_heads, int head_dim, const int64_t* pos,
                     const std::vector<float>& inv_freq) override {
    auto prof = prof_.scope([&] { return std::string("qkv_norm_rope"); });
    f32_on_device(q, "qkv_norm_rope q");
    f32_on_device(k, "qkv_norm_rope k");
    f32_on_device(v, "qkv_norm_rope v");
    on_device(wq, "qkv_norm_rope q weight");
    on_device(wk, "qkv_norm_rope k weight");
    const int64_t T = q.numel() / (int64_t(n_q_heads) * head_dim);
    G4_CHECK(head_dim <= 512 && wq.numel() == head_dim && wk.numel() == head_dim && wq.dtype == wk.dtype &&
                 k.numel() == T * n_kv_heads * head_dim && v.numel() == k.numel() &&
                 int(inv_freq.size()) >= head_dim / 2,
             "qkv_norm_rope: q {} k {} v {} weights {} {} for {}/{} heads of {}", shape_str(q.shape),
             shape_str(k.shape), shape_str(v.shape), shape_str(wq.shape), shape_str(wk.shape), n_q_heads, n_kv_heads,
             head_dim);
    if (T == 0) return;
    Tensor dpos = upload(pos, T);
    Tensor dfreq = upload_constant(inv_freq.data(), head_dim / 2);
    if (skip("qkv_norm_rope", {P(q.data), P(k.data), P(v.data), P(wq.data), P(wk.data), uint64_t(v_from_k),
                               uint64_t(T), uint64_t(n_q_heads), uint64_t(n_kv_heads), uint64_t(head_dim), F(eps),
                               P(dfreq.data)}))
      return;
    check_launch(cuda::qkv_norm_rope(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), v_from_k, wq.data, wk.data,
                                     wtype(wq.dtype, "qkv_norm_rope"), T, n_q_heads, n_kv_heads, head_dim, eps,
                                     dpos.ptr<int64_t>(), dfreq.ptr<float>(), stream_),
                 "qkv_norm_rope");
  }

  bool choose_tokens(Tensor& logits, const std::vector<TokenChoice>& rows, const std::vector<int64_t>& suppress,
                     std::vector<int64_t>& ids) override {
    auto prof = prof_.scope([&] { return std::string("choose_tokens"); });
    if (logits.device != Device::CUDA) return false;
    f32_on_device(logits, "choose_tokens");
    no_host_transfer_in_step("choose_tokens");
    const int64_t B = int64_t(rows.size()), V = logits.dim(-1);
    G4_CHECK(logits.numel() == B * V, "choose_tokens: logits {} for {} rows", shape_str(logits.shape), B);
    std::vector<double> params;
    for (const TokenChoice& r : rows) params.insert(params.end(), {r.temperature, double(r.top_k), r.top_p, r.uniform});
    Tensor dp = upload(params.data(), int64_t(params.size()));
    Tensor ds = upload(suppress.data(), int64_t(suppress.size()));
    auto out = device_block(size_t(B) * sizeof(int64_t));
    const bool greedy = std::all_of(rows.begin(), rows.end(), [](const TokenChoice& r) { return r.temperature == 0.0; });
    if (greedy && B <= kDecodeCounters) {  // spread over the GPU (sampling.cu argmax_rows)
      auto scratch = device_block(size_t(argmax_rows_scratch_words(B, V)) * sizeof(uint64_t));
      check_launch(cuda::argmax_rows(logits.ptr<float>(), B, V, ds.ptr<int64_t>(), int(suppress.size()),
                                     static_cast<uint64_t*>(scratch.get()), decode_counters() + kDecodeCounters,
                                     static_cast<int64_t*>(out.get()), stream_),
                   "choose_tokens");
    } else {
      check_launch(cuda::choose_tokens(logits.ptr<float>(), B, V, dp.ptr<double>(), ds.ptr<int64_t>(),
                                       int(suppress.size()), static_cast<int64_t*>(out.get()), stream_),
                   "choose_tokens");
    }
    ids.resize(B);
    check(cudaMemcpy(ids.data(), out.get(), size_t(B) * sizeof(int64_t), cudaMemcpyDeviceToHost), "choose_tokens");
    for (int64_t id : ids) G4_CHECK(id >= 0, "every token is suppressed");
    return true;
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
  // Zeroed counters of the one-launch decode attention (decode_attention.cu), one per (query row, KV head),
  // followed by as many for the greedy token choice (sampling.cu argmax_rows); every launch leaves them zero.
  // Allocated with the backend, so a recorded step only reads the pointer.
  static constexpr int64_t kDecodeCounters = 16384;
  unsigned* decode_counters() { return static_cast<unsigned*>(decode_counters_.get()); }
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
    if (skip("add_rmsnorm", {P(x.data), P(f.data), P(w.data), P(s ? s->data : nullptr), P(w2 ? w2->data : nullptr),
                             P(out ? out->data : nullptr), uint64_t(x.numel()), uint64_t(D), F(eps)}))
      return;
    check_launch(cuda::add_rmsnorm(x.ptr<float>(), f.ptr<float>(), w.data, wtype(w.dtype, "add_rmsnorm"), x.numel() / D,
                                   D, eps, s ? s->data : nullptr, s ? wtype(s->dtype, "scale") : 0,
                                   w2 ? w2->data : nullptr, w2 ? wtype(w2->dtype, "rmsnorm") : 0,
                                   out ? out->ptr<float>() : nullptr, stream_),
                 "add_rmsnorm");
  }

  // dst rows [row, row + n) = src (and dst2 = src2 when given) with the row read on the device, so a recorded
  // step replays with a new row.
  void rows_at(const Tensor& src, Tensor& dst, const Tensor* src2, Tensor* dst2, int64_t row) {
    auto prof = prof_.scope([&] { return std::string(src2 ? "store_kv" : "copy_rows"); });
    const bool dev = src.device == Device::CUDA && dst.device == Device::CUDA &&
                     (!src2 || (src2->device == Device::CUDA && dst2->device == Device::CUDA));
    if (!dev) {
      if (src2) return Ops::store_kv(src, *src2, dst, *dst2, row);
      return Ops::copy_rows(src, dst, row);
    }
    // Same dtype (a copy), or F32 rows into a BF16 table (a bf16 KV cache append).
    const bool to_bf16 = src.dtype == DType::F32 && dst.dtype == DType::BF16;
    auto fits = [&](const Tensor& s, const Tensor& d) {
      return s.ndim() == 2 && d.ndim() == 2 && s.dim(1) == d.dim(1) && (s.dtype == d.dtype || to_bf16) &&
             s.dtype == src.dtype && d.dtype == dst.dtype && row >= 0 && row + s.dim(0) <= d.dim(0);
    };
    G4_CHECK(fits(src, dst) && (!src2 || (fits(*src2, *dst2) && src2->shape == src.shape && dst2->shape == dst.shape)),
             "copy_rows: {} into {} at row {}", shape_str(src.shape), shape_str(dst.shape), row);
    const int64_t row_bytes = dst.nbytes() / std::max<int64_t>(1, dst.dim(0));
    Tensor drow = upload(&row, 1);
    if (skip("rows_at", {P(src.data), P(dst.data), P(src2 ? src2->data : nullptr), P(dst2 ? dst2->data : nullptr),
                         uint64_t(src.dim(0)), uint64_t(row_bytes), uint64_t(to_bf16)}))
      return;
    if (to_bf16) {
      check_launch(store_rows_bf16(src.ptr<float>(), dst.data, src2 ? src2->ptr<float>() : nullptr,
                                   dst2 ? dst2->data : nullptr, drow.ptr<int64_t>(), src.dim(0), src.dim(1), stream_),
                   "store_kv (bf16)");
      return;
    }
    check_launch(copy_rows_at(src.data, dst.data, src2 ? src2->data : nullptr, dst2 ? dst2->data : nullptr,
                              drow.ptr<int64_t>(), src.dim(0), row_bytes, stream_),
                 "copy_rows");
  }

  // The GEMV kernels stream each weight once for up to 8 rows, but their cost grows with the rows (H200,
  // N=15360 K=3840: 35 us at M=1, 144 us at M=8, where a cuBLAS bf16 GEMM takes 36 us at M=16): with tensor
  // cores at hand (BF16 precision) they take only M = 1.
  bool gemv_rows_ok(int64_t M) const { return precision_ != Precision::BF16 || M == 1; }

  // Decode attention of one or more sequences in one launch (attention_decode): every segment has few query
  // rows, no bidirectional blocks and keys/values of one dtype on the device. Keys at rotated consecutive
  // positions (a ring, or a contiguous cache) travel as {n, k0, r}, not as S positions; a single sequence may
  // also give explicit positions (eager only). A recorded step sizes the launch for step_key_capacity(S) keys
  // and reads n on the device. Returns false when the segments do not qualify (the caller falls back).
  bool decode_attention(const Tensor& q, const std::vector<AttnSegment>& segs, int n_q_heads, int n_kv_heads,
                        int head_dim, float scale, Tensor& o) {
    if (segs.empty() || !attention_decode_supported(n_q_heads, n_kv_heads, head_dim)) return false;
    const bool step = steps_->active();
    const DType kv_dt = segs[0].k->dtype;
    const int window = segs[0].mask.window;
    std::vector<int64_t> table, q_pos;  // DecodeSeq records (5 x 8 bytes each), query positions by row
    std::vector<int32_t> row_seq;
    int64_t rows = 0, cap = 0;
    bool explicit_keys = false;
    for (size_t b = 0; b < segs.size(); ++b) {
      const AttnSegment& g = segs[b];
      if (g.T >= kChunkedMinQueries || g.mask.q_block || g.k->dtype != kv_dt || g.v->dtype != kv_dt ||
          g.mask.window != window || g.k->device != Device::CUDA || g.v->device != Device::CUDA)
        return false;
      const int64_t S = g.k->numel() / (int64_t(n_kv_heads) * head_dim);
      if (S == 0 || g.row0 != rows) return false;
      int64_t desc[3];
      bool ring = false;
      if (g.mask.k_run) {  // the caller's description; spot-checked against the positions
        std::copy(g.mask.k_run, g.mask.k_run + 3, desc);
        const int64_t r = desc[2];
        ring = desc[0] == S && r >= 0 && r < S && g.mask.k_pos[r] == desc[1] &&
               g.mask.k_pos[(r + S - 1) % S] == desc[1] + S - 1;
        G4_CHECK(ring, "attention: k_run {{{}, {}, {}}} does not describe the {} key positions", desc[0], desc[1],
                 desc[2], S);
      } else {
        ring = rotated_run(g.mask.k_pos, S, desc);
      }
      if (!ring) {
        if (step || segs.size() > 1) {
          G4_CHECK(!step, "attention: a recorded decode step needs keys at consecutive positions (a ring)");
          return false;
        }
        explicit_keys = true;
        desc[0] = S, desc[1] = 0, desc[2] = 0;
      }
      table.insert(table.end(), {int64_t(reinterpret_cast<uintptr_t>(g.k->data)),
                                 int64_t(reinterpret_cast<uintptr_t>(g.v->data)), desc[0], desc[1], desc[2]});
      for (int64_t t = 0; t < g.T; ++t) q_pos.push_back(g.mask.q_pos[t]), row_seq.push_back(int32_t(b));
      rows += g.T;
      cap = std::max(cap, step ? step_key_capacity(S) : S);
    }
    G4_CHECK(q.numel() == rows * n_q_heads * head_dim && o.numel() == q.numel(),
             "attention: q {} / o {} for {} query rows", shape_str(q.shape), shape_str(o.shape), rows);
    Tensor dtable = upload(table.data(), int64_t(table.size()));
    Tensor dqp = upload(q_pos.data(), rows);
    Tensor drs = segs.size() > 1 ? upload(row_seq.data(), rows) : Tensor{};
    Tensor dkp = explicit_keys ? upload(segs[0].mask.k_pos, cap) : Tensor{};
    // Few query heads per KV head (the sliding layers): decode_attention.cu, 64 keys per block (at most 64
    // splits), merged in the same launch. Otherwise attention_kernels.cu: about four blocks per SM and at
    // least 32 keys per block, within that kernel's shared memory.
    const bool small_g = attention_decode_small_g_supported(n_q_heads, n_kv_heads, head_dim) &&
                         rows * n_kv_heads <= kDecodeCounters;
    const int64_t blocks_per_split = int64_t(n_kv_heads) * rows;
    const int64_t want = std::max<int64_t>(1, (4 * prop_.multiProcessorCount + blocks_per_split - 1) / blocks_per_split);
    // Many heads per KV head with a bf16 cache in bf16 precision (the full layers): tensor cores (bf16 Q and
    // P), 64-key tiles, about one block per SM per query row. F32 precision keeps fp32 arithmetic.
    const bool mqa = !small_g && precision_ == Precision::BF16 &&
                     attention_decode_mqa_supported(n_q_heads, n_kv_heads, head_dim, kv_dt == DType::BF16);
    const int64_t chunk =
        small_g ? std::max<int64_t>(64, (cap + 63) / 64)
        : mqa   ? attention_decode_mqa_chunk(cap, prop_.multiProcessorCount)
                : std::clamp<int64_t>((cap + want - 1) / want, 32, attention_decode_chunk_limit(n_q_heads, n_kv_heads));
    const int64_t nsplit = (cap + chunk - 1) / chunk, qrows = rows * n_q_heads;
    auto part = device_block(size_t(qrows) * nsplit * (2 + head_dim) * sizeof(float));
    if (skip("attention (decode)", {P(q.data), P(o.data), uint64_t(rows), uint64_t(segs.size()), uint64_t(cap),
                                    uint64_t(n_q_heads), uint64_t(n_kv_heads), uint64_t(head_dim), F(scale),
                                    uint64_t(window), uint64_t(explicit_keys), uint64_t(kv_dt == DType::BF16)}))
      return true;
    float* pm = static_cast<float*>(part.get());
    float* pl = pm + qrows * nsplit;
    float* pa = pl + qrows * nsplit;
    if (small_g) {
      check_launch(attention_decode_small_g(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                                            segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, kv_dt == DType::BF16, rows,
                                            cap, n_q_heads, n_kv_heads, head_dim, scale, dqp.ptr<int64_t>(),
                                            explicit_keys ? dkp.ptr<int64_t>() : nullptr, window, int(nsplit), pm, pl,
                                            pa, decode_counters(), o.ptr<float>(), stream_),
                   "attention (decode)");
      return true;
    }
    if (mqa) {
      check_launch(attention_decode_mqa(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                                        segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, rows, cap, n_q_heads,
                                        n_kv_heads, head_dim, scale, dqp.ptr<int64_t>(),
                                        explicit_keys ? dkp.ptr<int64_t>() : nullptr, window, chunk, int(nsplit), pm,
                                        pl, pa, o.ptr<float>(), stream_),
                   "attention (decode)");
      return true;
    }
    check_launch(attention_decode(q.ptr<float>(), reinterpret_cast<const DecodeSeq*>(dtable.data),
                                  segs.size() > 1 ? drs.ptr<int32_t>() : nullptr, kv_dt == DType::BF16, rows, cap,
                                  n_q_heads, n_kv_heads, head_dim, scale, dqp.ptr<int64_t>(),
                                  explicit_keys ? dkp.ptr<int64_t>() : nullptr, window, int(nsplit), pm, pl, pa,
                                  o.ptr<float>(), stream_),
                 "attention (decode)");
    return true;
  }

  static uint64_t P(const void* p) { return uint64_t(reinterpret_cast<uintptr_t>(p)); }
  static uint64_t F(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
  }
  // Inside a recorded step: records the op (capture) or checks it against the recording and skips its
  // launches (replay). Every allocation and upload of an op happens before this call.
  bool skip(const char* what, std::initializer_list<uint64_t> sig) {
    return steps_->active() && steps_->skip(what, sig);
  }
  void no_host_transfer_in_step(const char* what) {
    G4_CHECK(!steps_->active(), "CUDA backend: {} inside a recorded decode step", what);
  }
  // Device memory: from the pool, or inside a recorded step from the recording (same addresses on replay).
  std::shared_ptr<void> device_block(size_t bytes) {
    return steps_->active() ? steps_->block(bytes) : pool_->allocate(bytes);
  }

  // True when k_pos is a rotation of a consecutive run (a ring buffer; r = 0: consecutive):
  // k_pos[j] = k0 + (j - r + S) % S. desc = {S, k0, r}.
  static bool rotated_run(const int64_t* k_pos, int64_t S, int64_t* desc) {
    int64_t r = 0;
    for (int64_t j = 1; j < S; ++j)
      if (k_pos[j] < k_pos[r]) r = j;
    const int64_t k0 = k_pos[r];
    for (int64_t j = r; j < S; ++j)
      if (k_pos[j] != k0 + (j - r)) return false;
    for (int64_t j = 0; j < r; ++j)
      if (k_pos[j] != k0 + (S - r) + j) return false;
    desc[0] = S, desc[1] = k0, desc[2] = r;
    return true;
  }

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
    G4_CHECK(!steps_->active(), "bf16 weight copy made inside a recorded step");
    Tensor b = alloc(DType::BF16, w.shape);
    check_launch(f32_to_bf16(w.ptr<float>(), b.data, w.numel(), stream_), "weight to bf16");
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
  // GEMMA4_CUDA_FLASH=0: bf16 prefill attention through cuBLAS GEMMs (attention_chunked) instead of the fused
  // kernel, for comparisons.
  const bool flash_ = [] {
    const char* v = std::getenv("GEMMA4_CUDA_FLASH");
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
  std::shared_ptr<void> decode_counters_;
#ifdef GEMMA4_HAS_CUBLAS
  static constexpr size_t kBlasWorkspace = size_t(32) << 20;
  cublasHandle_t blas_ = nullptr, blas_tc_ = nullptr;
  std::shared_ptr<void> blas_ws_, blas_tc_ws_;
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
