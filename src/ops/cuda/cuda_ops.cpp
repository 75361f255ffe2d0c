// CudaOps (cuda_ops.h): construction, memory, matmuls, norms, elementwise ops, the fused forms, token choice,
// the recorded-step plumbing and the backward stubs. Attention and KV appends: cuda_attention_ops.cpp.
#include "ops/cuda/cuda_ops.h"

namespace gemma4::cuda {
namespace {

[[noreturn]] void no_backward(const char* op) {
  throw Error("the CUDA backend has no {} yet (training runs on the CPU backend)", op);
}

}  // namespace

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error("CUDA {}: {}", what, cudaGetErrorString(e));
}

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
    case DType::F32:
      return kF32;
    case DType::BF16:
      return kBF16;
    case DType::F16:
      return kF16;
    default:
      throw Error("{}: expected a float tensor, got {}", what, dtype_name(d));
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

CudaOps::CudaOps(Precision p) : precision_(p) {
  check(cudaFree(nullptr), "context creation");
  check(cudaGetDeviceProperties(&prop_, 0), "device properties");
  check(cudaStreamCreate(&stream_), "stream");  // a blocking stream: synchronous copies still wait for it
  steps_ = std::make_unique<StepGraphs>(stream_, pool_);
  prof_.set_stream(stream_);
  split_counters_ = pool_->allocate(2 * kSplitCounters * sizeof(unsigned));
  check(cudaMemsetAsync(split_counters_.get(), 0, 2 * kSplitCounters * sizeof(unsigned), stream_), "split counters");
  const size_t tail_bytes = 256 + size_t(8) * kLayerTailMaxBlocks * sizeof(float);
  tail_scratch_ = pool_->allocate(tail_bytes);
  check(cudaMemsetAsync(tail_scratch_.get(), 0, tail_bytes, stream_), "layer tail scratch");
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
  lt_ws_ = pool_->allocate(kBlasWorkspace);
  lt_ = std::make_unique<LtGemm>(stream_, lt_ws_.get(), kBlasWorkspace);
#endif
}

CudaOps::~CudaOps() {
  cudaDeviceSynchronize();
  steps_.reset();
#ifdef GEMMA4_HAS_CUBLAS
  lt_.reset();
#endif
  uploads_.clear();
  constants_.clear();
  shadows_.clear();
#ifdef GEMMA4_HAS_CUBLAS
  if (blas_) cublasDestroy(blas_);
  if (blas_tc_) cublasDestroy(blas_tc_);
#endif
  if (pending_host_) cudaFreeHost(pending_host_);
  if (pending_copied_) cudaEventDestroy(pending_copied_);
  cudaStreamDestroy(stream_);
}

Tensor CudaOps::alloc(DType dt, Shape shape) {
  for (auto d : shape) G4_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
  Tensor t;
  t.dtype = dt;
  t.shape = std::move(shape);
  t.device = Device::CUDA;
  t.owner = device_block(t.nbytes());
  t.data = t.owner.get();
  return t;
}

Tensor CudaOps::to_device(const Tensor& t) {
  if (t.device == Device::CUDA || !t.data) return t;
  no_host_transfer_in_step("to_device");
  Tensor d = alloc(t.dtype, t.shape);
  copy(t, d);  // large tensors through the stager's pinned buffers (waits), small ones by cudaMemcpy
  return d;
}

Tensor CudaOps::to_host(const Tensor& t) {
  if (t.device == Device::CPU || !t.data) return t;
  no_host_transfer_in_step("to_host");
  Tensor h = Tensor::empty(t.dtype, t.shape);
  if (t.nbytes()) check(cudaMemcpy(h.data, t.data, t.nbytes(), cudaMemcpyDeviceToHost), "download");
  return h;
}

void CudaOps::copy(const Tensor& src, Tensor& dst) {
  auto prof = prof_.scope([&] {
    return fmt::format("copy {} {} -> {}", shape_str(src.shape), dtype_name(src.dtype), dtype_name(dst.dtype));
  });
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
  if (src.device == Device::CPU && dst.device == Device::CUDA && src.nbytes() >= (size_t(1) << 20)) {
    stager_.upload_large(dst.data, src.data, src.nbytes(), stream_);  // as to_device (waits)
    return;
  }
  cudaMemcpyKind kind = src.device == Device::CUDA
                            ? cudaMemcpyDeviceToHost
                            : (dst.device == Device::CUDA ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
  check(cudaMemcpy(dst.data, src.data, src.nbytes(), kind), "copy");
}

void CudaOps::synchronize() {
  no_host_transfer_in_step("synchronize");
  check(cudaDeviceSynchronize(), "synchronize");
}

void CudaOps::begin_step(uint64_t key) {
  if (!prof_.enabled()) steps_->begin(key);  // profiling times ops one by one: eager
}

Ops::MemoryStats CudaOps::memory_stats() const {
  const size_t used = pool_->in_use_bytes();
  return {used, used + pool_->cached_bytes(), pool_->peak_reserved_bytes(), pool_->driver_allocs(),
          pool_->driver_frees()};
}

void CudaOps::release_cached_memory() {
  synchronize();
  uploads_.clear();
  constants_.clear();
  pool_->trim();
}

void CudaOps::linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b) {
  auto prof = prof_.scope([&] {
    return fmt::format("linear M{} N={} K={}", x.numel() / std::max<int64_t>(1, x.dim(-1)) <= 8 ? "<=8" : ">8",
                       w.dim(0), w.dim(1));
  });
  on_device(x, "linear");
  on_device(w, "linear weight");
  on_device(y, "linear output");
  G4_CHECK(x.dtype == DType::F32 || x.dtype == DType::BF16, "linear: input must be F32 or BF16, got {}",
           dtype_name(x.dtype));
  G4_CHECK(y.dtype == DType::F32 || y.dtype == DType::BF16, "linear: output must be F32 or BF16, got {}",
           dtype_name(y.dtype));
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
  const Tensor& wk = gemm_weight(w);
  if (x.dtype == DType::BF16 && !lt_gemm_ok(M, K, {&wk})) return linear(widened(x), w, y, b);
  const int wdt = wtype(wk.dtype, "linear weight");
  const bool gemv = x.dtype == DType::F32 && gemv_rows_ok(M) &&
                    gemv_vec_supported(M, K, x.data, wk.data, wdt);  // weight streaming
  const bool dims_ok = K > 0 && K < (1ll << 31) && N < (1ll << 31) && M < (1ll << 31);
#ifdef GEMMA4_HAS_CUBLAS
  const bool gemm_bf16 = !gemv && dims_ok && precision_ == Precision::BF16 && wk.dtype == DType::BF16;
  const bool gemm_f32 = !gemv && !gemm_bf16 && dims_ok && wk.dtype == DType::F32;
#else
  const bool gemm_bf16 = false, gemm_f32 = false;
#endif
  // A BF16 output (the o / down projections of a bf16 prefill) comes from the tensor-core GEMM's epilogue;
  // another path computes F32 and rounds.
  if (y.dtype == DType::BF16 && (!gemm_bf16 || has_b)) {
    Tensor yf = alloc(DType::F32, y.shape);
    linear(x, w, yf, b);
    copy(yf, y);
    return;
  }
  // A BF16 input (matmul_input_dtype) reaches here only for the tensor-core path, which reads it as it is.
  std::shared_ptr<void> xb;
  if (gemm_bf16 && x.dtype == DType::F32) xb = device_block(size_t(M) * K * 2);
  if (skip("linear",
           {P(x.data), P(wk.data), P(y.data), P(has_b ? b->data : nullptr), uint64_t(M), uint64_t(N), uint64_t(K)}))
    return;
  if (gemv) {
    check_launch(gemv_vec(x.ptr<float>(), M, K, wk.data, wdt, N, y.ptr<float>(), stream_), "linear (gemv)");
  } else if (gemm_bf16 || gemm_f32) {
#ifdef GEMMA4_HAS_CUBLAS
    // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T . x^T.
    const float one = 1.f, zero = 0.f;
    if (gemm_bf16) {
      if (xb) check_launch(f32_to_bf16(x.ptr<float>(), xb.get(), M * K, stream_), "linear: x to bf16");
      lt_gemm(xb ? xb.get() : x.data, wk, y.data, y.dtype == DType::BF16, M);
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

Tensor CudaOps::widened(const Tensor& x) {
  Tensor xf = alloc(DType::F32, x.shape);
  copy(x, xf);
  return xf;
}

bool CudaOps::lt_gemm_ok(int64_t M, int64_t K, std::initializer_list<const Tensor*> w16) const {
#ifdef GEMMA4_HAS_CUBLAS
  if (precision_ != Precision::BF16 || gemv_rows_ok(M) || M >= (1ll << 31) || K <= 0 || K >= (1ll << 31)) return false;
  for (const Tensor* w : w16)
    if (w && (w->device != Device::CUDA || w->dtype != DType::BF16 || w->ndim() != 2 || w->dim(1) != K ||
              w->dim(0) >= (1ll << 31)))
      return false;
  return true;
#else
  (void)M, (void)K, (void)w16;
  return false;
#endif
}

void CudaOps::lt_gemm(const void* xb, const Tensor& w16, void* y, bool y_bf16, int64_t M) {
#ifdef GEMMA4_HAS_CUBLAS
  lt_->run(w16.data, xb, y, y_bf16, M, w16.dim(0), w16.dim(1));
#else
  (void)xb, (void)w16, (void)y, (void)y_bf16, (void)M;
  throw Error("this build has no cuBLAS");
#endif
}

void CudaOps::layer_tail(Tensor& x, const Tensor& o, const Tensor& wo, const Tensor& w_post_attn,
                         const Tensor& w_pre_ffw, const Tensor& wg, const Tensor& wu, const Tensor& wd,
                         const Tensor& w_post_ffw, const Tensor& s, const Tensor& w_next, float eps, Tensor& attn_out,
                         Tensor& m, Tensor& g, Tensor& u, Tensor& f, Tensor& next, DeferredNorm* deferred) {
  auto composition = [&] {
    Ops::layer_tail(x, o, wo, w_post_attn, w_pre_ffw, wg, wu, wd, w_post_ffw, s, w_next, eps, attn_out, m, g, u, f,
                    next);
  };
  // One decode row in bf16 precision (the GEMVs' territory), every tensor on the device in the shapes below.
  if (precision_ != Precision::BF16 || !(layer_tail_enabled() || normed_gemv_enabled())) return composition();
  const Tensor& wo16 = gemm_weight(wo);
  const Tensor& wg16 = gemm_weight(wg);
  const Tensor& wu16 = gemm_weight(wu);
  const Tensor& wd16 = gemm_weight(wd);
  const int64_t H = x.numel(), Q = o.numel(), I = wg16.ndim() == 2 ? wg16.dim(0) : 0;
  bool ok = x.ndim() == 2 && x.dim(0) == 1 && H < (1 << 30) && Q < (1 << 30) && I < (1 << 30);
  for (const Tensor* t : std::initializer_list<const Tensor*>{&x, &o, &attn_out, &g, &f, &next})
    ok = ok && t->device == Device::CUDA && t->dtype == DType::F32;
  for (const Tensor* t : {&wo16, &wg16, &wu16, &wd16})
    ok = ok && t->device == Device::CUDA && t->dtype == wo16.dtype && t->ndim() == 2;
  for (const Tensor* t : {&w_post_attn, &w_pre_ffw, &w_post_ffw, &w_next})
    ok = ok && t->device == Device::CUDA && t->numel() == H;
  ok = ok && s.device == Device::CUDA && s.numel() == 1 && attn_out.numel() == H && f.numel() == H &&
       next.numel() == H && g.numel() >= I && wo16.dim(0) == H && wo16.dim(1) == Q && wu16.shape == wg16.shape &&
       wg16.dim(1) == H && wd16.dim(0) == H && wd16.dim(1) == I && wo16.dtype != DType::F32;
  if (!ok) return composition();
  if (!layer_tail_enabled()) {
    if (!normed_layer_tail(x, o, wo, w_post_attn, w_pre_ffw, wg16, wu16, wd, w_post_ffw, s, w_next, eps, attn_out, g,
                           u, f, next, deferred))
      composition();
    return;
  }
  const int wdt = wtype(wo16.dtype, "layer_tail");
  LayerTailArgs a{};
  a.o = o.ptr<float>();
  a.wo = wo16.data, a.wg = wg16.data, a.wu = wu16.data, a.wd = wd16.data;
  a.w1 = w_post_attn.data, a.w2 = w_pre_ffw.data, a.w3 = w_post_ffw.data, a.w4 = w_next.data, a.s = s.data;
  a.wdt1 = wtype(w_post_attn.dtype, "layer_tail"), a.wdt2 = wtype(w_pre_ffw.dtype, "layer_tail");
  a.wdt3 = wtype(w_post_ffw.dtype, "layer_tail"), a.wdt4 = wtype(w_next.dtype, "layer_tail");
  a.sdt = wtype(s.dtype, "layer_tail");
  a.x = x.ptr<float>(), a.a_out = attn_out.ptr<float>(), a.h_out = g.ptr<float>(), a.f_out = f.ptr<float>();
  a.next = next.ptr<float>();
  a.H = int(H), a.Q = int(Q), a.I = int(I), a.eps = eps;
  if (!layer_tail_supported(a, wdt)) return composition();
  auto prof = prof_.scope([&] { return fmt::format("layer_tail H={} Q={} I={}", H, Q, I); });
  if (skip("layer_tail", {P(x.data), P(o.data), P(wo16.data), P(wg16.data), P(wu16.data), P(wd16.data),
                          P(w_post_attn.data), P(w_pre_ffw.data), P(w_post_ffw.data), P(w_next.data), P(s.data),
                          P(attn_out.data), P(g.data), P(f.data), P(next.data), uint64_t(H), uint64_t(Q),
                          uint64_t(I), F(eps)}))
    return;
  check_launch(cuda::layer_tail(a, wdt, tail_sync(), tail_partials(), stream_), "layer_tail");
}

bool CudaOps::normed_layer_tail(Tensor& x, const Tensor& o, const Tensor& wo, const Tensor& w_post_attn,
                                const Tensor& w_pre_ffw, const Tensor& wg16, const Tensor& wu16, const Tensor& wd,
                                const Tensor& w_post_ffw, const Tensor& s, const Tensor& w_next, float eps,
                                Tensor& attn_out, Tensor& g, Tensor& u, Tensor& f, Tensor& next,
                                DeferredNorm* deferred) {
  // h = x + rmsnorm(attn_out, w_post_attn) goes to u (F32 scratch of I >= H elements, unused otherwise): the
  // gate/up kernel's other blocks still read x and attn_out while its block 0 writes h, and next / m may share
  // attn_out's buffer (forward.cpp).
  const int64_t H = x.numel(), I = wg16.dim(0);
  NormedInput in;
  in.H = int(H), in.eps = eps, in.x = x.ptr<float>(), in.a = attn_out.ptr<float>();
  in.wa = w_post_attn.data, in.wadt = wtype(w_post_attn.dtype, "layer_tail");
  in.wn = w_pre_ffw.data, in.wndt = wtype(w_pre_ffw.dtype, "layer_tail");
  in.h = u.device == Device::CUDA && u.dtype == DType::F32 && u.numel() >= H ? u.ptr<float>() : nullptr;
  const int wdt = wtype(wg16.dtype, "layer_tail");
  const void* w[2] = {wg16.data, wu16.data};
  if (!in.h || u.data == x.data || u.data == attn_out.data || u.data == g.data || u.data == f.data ||
      u.data == next.data || !gemv_normed_supported(in, w, 2, wdt))
    return false;
  linear(o, wo, attn_out, nullptr);
  auto prof = prof_.scope([&] { return fmt::format("gate/up GEMV (normed input) H={} I={}", H, I); });
  if (!skip("gate/up GEMV (normed input)", {P(x.data), P(attn_out.data), P(w_post_attn.data), P(w_pre_ffw.data),
                                            P(wg16.data), P(wu16.data), P(g.data), P(u.data), uint64_t(H),
                                            uint64_t(I), F(eps)}))
    check_launch(gemv_gelu_normed(in, wg16.data, wu16.data, wdt, int(I), g.ptr<float>(), stream_),
                 "gate/up GEMV (normed input)");
  Tensor hv = u;  // its first H elements
  hv.shape = x.shape;
  linear(g, wd, f, nullptr);
  DeferredNorm d;
  d.pending = true;
  d.x = x, d.h = hv, d.f = f, d.next = next, d.w_post = w_post_ffw, d.s = s, d.w_next = w_next, d.eps = eps;
  if (deferred) *deferred = d;
  else finish_deferred(d);
  return true;
}

void CudaOps::finish_deferred(DeferredNorm& d) {
  if (!d.pending) return;
  fused_add_rmsnorm(d.x, d.f, d.w_post, d.eps, &d.s, &d.w_next, &d.next, &d.h);
  d.pending = false;
}

void CudaOps::linear_qkv_deferred(DeferredNorm& d, const Tensor& wq, const Tensor& wk, const Tensor* wv, Tensor& q,
                                  Tensor& k, Tensor* v) {
  if (!d.pending || precision_ != Precision::BF16 || !normed_gemv_enabled())
    return Ops::linear_qkv_deferred(d, wq, wk, wv, q, k, v);
  const Tensor& q16 = gemm_weight(wq);
  const Tensor& k16 = gemm_weight(wk);
  const Tensor* v16 = wv ? &gemm_weight(*wv) : nullptr;
  const int64_t H = d.x.numel();
  bool ok = H == d.w_next.numel() && d.x.ndim() == 2 && d.x.dim(0) == 1 && q16.dtype != DType::F32 &&
            d.next.data != d.h.data && d.next.data != d.f.data && d.x.data != d.h.data && d.x.data != d.f.data;
  for (const Tensor* t : {&d.x, &d.h, &d.f, &d.next, &q, &k, v})
    ok = ok && (!t || (t->device == Device::CUDA && t->dtype == DType::F32));
  for (const Tensor* w : {&q16, &k16, v16})
    ok = ok && (!w || (w->device == Device::CUDA && w->dtype == q16.dtype && w->ndim() == 2 && w->dim(1) == H));
  ok = ok && d.h.numel() == H && d.f.numel() == H && d.next.numel() == H && d.s.device == Device::CUDA &&
       d.s.numel() == 1 && q.numel() == q16.dim(0) && k.numel() == k16.dim(0) &&
       (!v16 || (v && v->numel() == v16->dim(0)));
  NormedInput in;
  const int wdt = ok ? wtype(q16.dtype, "linear_qkv") : 0;
  if (ok) {
    in.H = int(H), in.eps = d.eps, in.x = d.h.ptr<float>(), in.a = d.f.ptr<float>();
    in.wa = d.w_post.data, in.wadt = wtype(d.w_post.dtype, "linear_qkv_deferred");
    in.wn = d.w_next.data, in.wndt = wtype(d.w_next.dtype, "linear_qkv_deferred");
    in.s = d.s.data, in.sdt = wtype(d.s.dtype, "linear_qkv_deferred");
    in.h = d.x.ptr<float>(), in.m = d.next.ptr<float>();
    const void* w[3] = {q16.data, k16.data, v16 ? v16->data : nullptr};
    ok = gemv_normed_supported(in, w, v16 ? 3 : 2, wdt);
  }
  if (!ok) return Ops::linear_qkv_deferred(d, wq, wk, wv, q, k, v);
  auto prof = prof_.scope([&] { return fmt::format("linear_qkv (normed input) K={}", H); });
  d.pending = false;
  if (skip("linear_qkv (normed input)", {P(d.x.data), P(d.h.data), P(d.f.data), P(d.next.data), P(d.w_post.data),
                                         P(d.s.data), P(d.w_next.data), P(q16.data), P(k16.data),
                                         P(v16 ? v16->data : nullptr), P(q.data), P(k.data), P(v ? v->data : nullptr),
                                         uint64_t(H), F(d.eps)}))
    return;
  const GemvPart parts[3] = {{q16.data, q16.dim(0), q.ptr<float>()},
                             {k16.data, k16.dim(0), k.ptr<float>()},
                             {v16 ? v16->data : nullptr, v16 ? v16->dim(0) : 0, v ? v->ptr<float>() : nullptr}};
  check_launch(gemv_normed_multi(in, parts, v16 ? 3 : 2, wdt, stream_), "linear_qkv (normed input)");
}

// GEMMA4_CUDA_PACKED_FFN=0: two GEMMs for gate and up even when they sit side by side (for comparisons).
static bool packed_ffn_enabled() {
  const char* v = std::getenv("GEMMA4_CUDA_PACKED_FFN");
  return !(v && std::strcmp(v, "0") == 0);
}

void CudaOps::feed_forward(const Tensor& x, const Tensor& wg, const Tensor& wu, const Tensor& wd, Tensor& g,
                           Tensor& u, Tensor& out) {
  const int64_t K = wg.ndim() == 2 ? wg.dim(1) : 0, I = wg.ndim() == 2 ? wg.dim(0) : 0;
  const int64_t M = x.numel() / std::max<int64_t>(1, K);
  const Tensor& g16 = gemm_weight(wg);
  const Tensor& u16 = gemm_weight(wu);
  const Tensor& d16 = gemm_weight(wd);
  // g holds the bf16 gate and the bf16 product, u the bf16 up projection: 16-byte aligned halves (or, for
  // packed weights, g the [M, gate | up] output and u the product).
  const bool ok = x.device == Device::CUDA && (x.dtype == DType::F32 || x.dtype == DType::BF16) &&
                  x.numel() == M * K && K > 0 &&
                  lt_gemm_ok(M, K, {&g16, &u16}) && lt_gemm_ok(M, I, {&d16}) && u16.dim(0) == I && I % 8 == 0 &&
                  g.device == Device::CUDA && u.device == Device::CUDA && g.dtype == DType::F32 &&
                  u.dtype == DType::F32 && g.numel() >= M * I && u.numel() >= M * I && out.numel() == M * d16.dim(0) &&
                  (P(g.data) | P(u.data)) % 16 == 0;
  if (!ok) return Ops::feed_forward(x.dtype == DType::BF16 ? widened(x) : x, wg, wu, wd, g, u, out);
  auto prof = prof_.scope([&] { return fmt::format("feed_forward M>1 I={} K={}", I, K); });
  on_device(out, "feed_forward output");
  G4_CHECK(out.dtype == DType::F32 || out.dtype == DType::BF16, "feed_forward: output must be F32 or BF16, got {}",
           dtype_name(out.dtype));
  const bool out_bf16 = out.dtype == DType::BF16;
  std::shared_ptr<void> xb;
  if (x.dtype == DType::F32) xb = device_block(size_t(M) * K * 2);
  if (skip("feed_forward", {P(x.data), P(g16.data), P(u16.data), P(d16.data), P(g.data), P(u.data), P(out.data),
                            uint64_t(M), uint64_t(I), uint64_t(K)}))
    return;
  if (xb) check_launch(f32_to_bf16(x.ptr<float>(), xb.get(), M * K, stream_), "feed_forward: x to bf16");
  const void* xin = xb ? xb.get() : x.data;
  if (static_cast<const char*>(g16.data) + g16.nbytes() == u16.data && packed_ffn_enabled()) {
    // Gate and up side by side (Model packs them so): one GEMM of 2I columns, its [M, gate | up] bf16 output
    // filling g, the product in u (H200, 4096 rows: 1277.6 us against 2 x 649.8 for the two GEMMs, --micro).
    Tensor pair = g16;  // the two weights as one [2I, K] matrix (the bytes were just checked to be adjacent)
    pair.shape = {2 * I, K};
    char* gu = static_cast<char*>(g.data);
    lt_gemm(xin, pair, gu, true, M);
    check_launch(gelu_tanh_mul_bf16(gu, gu + size_t(I) * 2, u.data, M, I, 2 * I, stream_), "feed_forward: gelu");
    lt_gemm(u.data, d16, out.data, out_bf16, M);
    return;
  }
  char* gate = static_cast<char*>(g.data);
  char* prod = gate + size_t(M) * I * 2;
  lt_gemm(xin, g16, gate, true, M);
  lt_gemm(xin, u16, u.data, true, M);
  check_launch(gelu_tanh_mul_bf16(gate, u.data, prod, M, I, I, stream_), "feed_forward: gelu");
  lt_gemm(prod, d16, out.data, out_bf16, M);
}

void CudaOps::rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) {
  auto prof = prof_.scope([&] { return std::string("rmsnorm"); });
  f32_on_device(x, "rmsnorm");
  on_device(y, "rmsnorm output");
  G4_CHECK(y.dtype == DType::F32 || y.dtype == DType::BF16, "rmsnorm: output must be F32 or BF16, got {}",
           dtype_name(y.dtype));
  const bool has_w = w && w->defined() && w->numel() > 0;
  if (has_w) on_device(*w, "rmsnorm weight");
  const int64_t D = has_w ? w->numel() : x.dim(-1);
  G4_CHECK(D > 0 && x.numel() % D == 0 && y.numel() == x.numel(), "rmsnorm: shapes {} / {} with width {}",
           shape_str(x.shape), shape_str(y.shape), D);
  // A BF16 output (a matmul input, matmul_input_dtype) goes through an F32 temporary: once per forward.
  std::shared_ptr<void> tmp;
  if (y.dtype == DType::BF16) tmp = device_block(size_t(y.numel()) * 4);
  if (skip("rmsnorm", {P(x.data), P(has_w ? w->data : nullptr), P(y.data), uint64_t(x.numel()), uint64_t(D), F(eps),
                       uint64_t(y.dtype == DType::BF16)}))
    return;
  float* yf = tmp ? static_cast<float*>(tmp.get()) : y.ptr<float>();
  check_launch(cuda::rmsnorm(x.ptr<float>(), has_w ? w->data : nullptr, has_w ? wtype(w->dtype, "rmsnorm") : 0,
                             x.numel() / D, D, eps, yf, stream_),
               "rmsnorm");
  if (tmp) check_launch(f32_to_bf16(yf, y.data, y.numel(), stream_), "rmsnorm (to bf16)");
}

void CudaOps::layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) {
  f32_on_device(x, "layernorm");
  f32_on_device(y, "layernorm output");
  on_device(w, "layernorm weight");
  on_device(b, "layernorm bias");
  const int64_t D = x.dim(-1);
  G4_CHECK(w.numel() == D && b.numel() == D && y.numel() == x.numel(), "layernorm: shapes {} {} {}", shape_str(x.shape),
           shape_str(w.shape), shape_str(b.shape));
  if (skip("layernorm", {P(x.data), P(w.data), P(b.data), P(y.data), uint64_t(x.numel()), uint64_t(D), F(eps)})) return;
  check_launch(cuda::layernorm(x.ptr<float>(), w.data, wtype(w.dtype, "layernorm"), b.data, wtype(b.dtype, "layernorm"),
                               x.numel() / D, D, eps, y.ptr<float>(), stream_),
               "layernorm");
}

void CudaOps::embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) {
  auto prof = prof_.scope([&] { return std::string("embedding"); });
  on_device(table, "embedding table");
  f32_on_device(y, "embedding output");
  const int64_t V = table.dim(0), D = table.dim(1), T = int64_t(ids.size());
  for (int64_t t = 0; t < T; ++t) G4_CHECK(ids[t] >= 0 && ids[t] < V, "token id {} out of range [0, {})", ids[t], V);
  G4_CHECK(y.numel() == T * D, "embedding: output shape {} for {} ids of width {}", shape_str(y.shape), T, D);
  if (T == 0) return;
  Tensor dids = upload(ids.data(), T);  // the staged copy of this call's ids
  if (skip("embedding", {P(table.data), P(y.data), uint64_t(T), uint64_t(D), F(scale)})) return;
  check_launch(cuda::embedding(table.data, wtype(table.dtype, "embedding"), D, dids.ptr<int64_t>(), T, scale,
                               y.ptr<float>(), stream_),
               "embedding");
}

void CudaOps::rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) {
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

void CudaOps::gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) {
  auto prof = prof_.scope([&] { return std::string("gelu_tanh_mul"); });
  f32_on_device(gate, "gelu_tanh_mul");
  f32_on_device(up, "gelu_tanh_mul");
  f32_on_device(out, "gelu_tanh_mul");
  G4_CHECK(up.numel() == gate.numel() && out.numel() == gate.numel(), "gelu_tanh_mul: sizes differ");
  if (skip("gelu_tanh_mul", {P(gate.data), P(up.data), P(out.data), uint64_t(gate.numel())})) return;
  check_launch(cuda::gelu_tanh_mul(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel(), stream_),
               "gelu_tanh_mul");
}

void CudaOps::gelu_tanh(const Tensor& x, Tensor& out) {
  f32_on_device(x, "gelu_tanh");
  f32_on_device(out, "gelu_tanh");
  G4_CHECK(out.numel() == x.numel(), "gelu_tanh: sizes differ");
  if (skip("gelu_tanh", {P(x.data), P(out.data), uint64_t(x.numel())})) return;
  check_launch(cuda::gelu_tanh(x.ptr<float>(), out.ptr<float>(), x.numel(), stream_), "gelu_tanh");
}

void CudaOps::add(const Tensor& a, const Tensor& b, Tensor& out) {
  auto prof = prof_.scope([&] { return std::string("add"); });
  f32_on_device(a, "add");
  f32_on_device(b, "add");
  f32_on_device(out, "add");
  const int64_t n = a.numel();
  G4_CHECK(b.numel() == n && out.numel() == n, "add: sizes {} {} {}", n, b.numel(), out.numel());
  if (skip("add", {P(a.data), P(b.data), P(out.data), uint64_t(n)})) return;
  check_launch(cuda::add(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n, stream_), "add");
}

void CudaOps::scale(Tensor& x, const Tensor& s) {
  auto prof = prof_.scope([&] { return std::string("scale"); });
  f32_on_device(x, "scale");
  G4_CHECK(s.numel() >= 1, "scale: empty scale tensor");
  if (s.device == Device::CPU) return scale(x, s.f32_vector()[0]);
  if (skip("scale", {P(x.data), P(s.data), uint64_t(x.numel())})) return;
  check_launch(cuda::scale(x.ptr<float>(), x.numel(), 0.f, s.data, wtype(s.dtype, "scale"), stream_), "scale");
}

void CudaOps::scale(Tensor& x, float s) {
  f32_on_device(x, "scale");
  if (skip("scale", {P(x.data), uint64_t(x.numel()), F(s)})) return;
  check_launch(cuda::scale(x.ptr<float>(), x.numel(), s, nullptr, 0, stream_), "scale");
}

void CudaOps::softcap(Tensor& x, float cap) {
  auto prof = prof_.scope([&] { return std::string("softcap"); });
  f32_on_device(x, "softcap");
  if (skip("softcap", {P(x.data), uint64_t(x.numel()), F(cap)})) return;
  check_launch(cuda::softcap(x.ptr<float>(), x.numel(), cap, stream_), "softcap");
}

void CudaOps::add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s) {
  fused_add_rmsnorm(x, f, w, eps, s, nullptr, nullptr);
}

void CudaOps::add_rmsnorm_norm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor& w_next,
                               Tensor& out) {
  fused_add_rmsnorm(x, f, w, eps, s, &w_next, &out);
}

void CudaOps::rmsnorm_rope(Tensor& x, const Tensor& w, float eps, int n_heads, int head_dim, const int64_t* pos,
                           const std::vector<float>& inv_freq) {
  auto prof = prof_.scope([&] { return std::string("rmsnorm_rope"); });
  f32_on_device(x, "rmsnorm_rope");
  on_device(w, "rmsnorm_rope weight");
  G4_CHECK(w.numel() == head_dim && head_dim <= 512, "rmsnorm_rope: weight of {} for head_dim {}", w.numel(), head_dim);
  G4_CHECK(int(inv_freq.size()) >= head_dim / 2, "rope: {} frequencies for head_dim {}", inv_freq.size(), head_dim);
  const int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
  if (T == 0) return;
  Tensor dpos = upload(pos, T);
  Tensor dfreq = upload_constant(inv_freq.data(), head_dim / 2);
  if (skip("rmsnorm_rope",
           {P(x.data), P(w.data), uint64_t(T), uint64_t(n_heads), uint64_t(head_dim), F(eps), P(dfreq.data)}))
    return;
  check_launch(cuda::rmsnorm_rope(x.ptr<float>(), w.data, wtype(w.dtype, "rmsnorm_rope"), T, n_heads, head_dim, eps,
                                  dpos.ptr<int64_t>(), dfreq.ptr<float>(), stream_),
               "rmsnorm_rope");
}

void CudaOps::linear_gelu_mul(const Tensor& x, const Tensor& wg, const Tensor& wu, Tensor& out, Tensor& scratch) {
  const int64_t K = wg.dim(1), N = wg.dim(0), M = x.numel() / std::max<int64_t>(1, K);
  const Tensor& g16 = gemm_weight(wg);
  const Tensor& u16 = gemm_weight(wu);
  const bool fused = g16.dtype == u16.dtype && g16.dtype != DType::F32 && wu.shape == wg.shape &&
                     x.device == Device::CUDA && out.numel() == M * N && gemv_rows_ok(M) &&
                     gemv_gelu_supported(M, K, x.data, g16.data, u16.data, wtype(g16.dtype, "gate"));
  if (!fused) return Ops::linear_gelu_mul(x, wg, wu, out, scratch);
  auto prof = prof_.scope([&] { return fmt::format("linear_gelu_mul M<=8 N={} K={}", N, K); });
  f32_on_device(out, "linear_gelu_mul output");
  if (skip("linear_gelu_mul",
           {P(x.data), P(g16.data), P(u16.data), P(out.data), uint64_t(M), uint64_t(N), uint64_t(K)}))
    return;
  check_launch(
      gemv_gelu_mul(x.ptr<float>(), M, K, g16.data, u16.data, wtype(g16.dtype, "gate"), N, out.ptr<float>(), stream_),
      "linear_gelu_mul");
}

void CudaOps::launch_token_choice(Tensor& logits, const std::vector<TokenChoice>& rows,
                                  const std::vector<int64_t>& suppress, int64_t* out) {
  f32_on_device(logits, "choose_tokens");
  no_host_transfer_in_step("choose_tokens");
  const int64_t B = int64_t(rows.size()), V = logits.dim(-1);
  G4_CHECK(logits.numel() == B * V, "choose_tokens: logits {} for {} rows", shape_str(logits.shape), B);
  std::vector<double> params;
  for (const TokenChoice& r : rows) params.insert(params.end(), {r.temperature, double(r.top_k), r.top_p, r.uniform});
  Tensor dp = upload(params.data(), int64_t(params.size()));
  Tensor ds = upload(suppress.data(), int64_t(suppress.size()));
  const bool greedy = std::all_of(rows.begin(), rows.end(), [](const TokenChoice& r) { return r.temperature == 0.0; });
  if (greedy && B <= kSplitCounters) {  // spread over the GPU (sampling.cu argmax_rows)
    auto scratch = device_block(size_t(argmax_rows_scratch_words(B, V)) * sizeof(uint64_t));
    check_launch(cuda::argmax_rows(logits.ptr<float>(), B, V, ds.ptr<int64_t>(), int(suppress.size()),
                                   static_cast<uint64_t*>(scratch.get()), split_counters() + kSplitCounters, out,
                                   stream_),
                 "choose_tokens");
  } else {
    check_launch(cuda::choose_tokens(logits.ptr<float>(), B, V, dp.ptr<double>(), ds.ptr<int64_t>(),
                                     int(suppress.size()), out, stream_),
                 "choose_tokens");
  }
}

bool CudaOps::choose_tokens(Tensor& logits, const std::vector<TokenChoice>& rows, const std::vector<int64_t>& suppress,
                            std::vector<int64_t>& ids) {
  auto prof = prof_.scope([&] { return std::string("choose_tokens"); });
  if (logits.device != Device::CUDA) return false;
  const int64_t B = int64_t(rows.size());
  auto out = device_block(size_t(B) * sizeof(int64_t));
  launch_token_choice(logits, rows, suppress, static_cast<int64_t*>(out.get()));
  ids.resize(B);
  check(cudaMemcpy(ids.data(), out.get(), size_t(B) * sizeof(int64_t), cudaMemcpyDeviceToHost), "choose_tokens");
  for (int64_t id : ids) G4_CHECK(id >= 0, "every token is suppressed");
  return true;
}

bool CudaOps::choose_tokens_pending(Tensor& logits, const std::vector<TokenChoice>& rows,
                                    const std::vector<int64_t>& suppress) {
  auto prof = prof_.scope([&] { return std::string("choose_tokens (pending)"); });
  const int64_t B = int64_t(rows.size());
  if (logits.device != Device::CUDA || B > kMaxPendingTokens) return false;
  if (!pending_dev_) {  // allocated once: recorded steps hold its address
    pending_dev_ = pool_->allocate(kMaxPendingTokens * sizeof(int64_t));
    check(cudaMallocHost(reinterpret_cast<void**>(&pending_host_), kMaxPendingTokens * sizeof(int64_t)),
          "pinned pending tokens");
    check(cudaEventCreateWithFlags(&pending_copied_, cudaEventDisableTiming), "pending token event");
  }
  // Overwrites the previous choice and its host copy: a caller reads it (read_pending_tokens) before this.
  launch_token_choice(logits, rows, suppress, static_cast<int64_t*>(pending_dev_.get()));
  check(cudaMemcpyAsync(pending_host_, pending_dev_.get(), size_t(B) * sizeof(int64_t), cudaMemcpyDeviceToHost,
                        stream_),
        "pending tokens");
  check(cudaEventRecord(pending_copied_, stream_), "pending token event");
  pending_n_ = B;
  return true;
}

std::vector<int64_t> CudaOps::read_pending_tokens() {
  G4_CHECK(pending_n_ >= 0, "read_pending_tokens: no token was chosen");
  check(cudaEventSynchronize(pending_copied_), "pending tokens");
  std::vector<int64_t> ids(pending_host_, pending_host_ + pending_n_);
  for (int64_t id : ids) G4_CHECK(id >= 0, "every token is suppressed");
  return ids;
}

void CudaOps::embedding_pending(const Tensor& table, int64_t T, float scale, const std::vector<int64_t>& to_pad,
                                int64_t pad_id, Tensor& y) {
  auto prof = prof_.scope([&] { return std::string("embedding (pending)"); });
  on_device(table, "embedding table");
  f32_on_device(y, "embedding output");
  G4_CHECK(pending_n_ >= 0 && T == pending_n_, "embedding_pending: {} rows, but {} pending tokens", T, pending_n_);
  G4_CHECK(to_pad.size() <= 3, "embedding_pending: at most 3 placeholder ids");
  const int64_t D = table.dim(1);
  G4_CHECK(y.numel() == T * D, "embedding: output shape {} for {} ids of width {}", shape_str(y.shape), T, D);
  IdRemap remap;
  for (size_t i = 0; i < to_pad.size(); ++i) remap.to_pad[i] = to_pad[i];
  remap.pad_id = pad_id;
  if (skip("embedding (pending)", {P(table.data), P(y.data), uint64_t(T), uint64_t(D), F(scale), uint64_t(remap.to_pad[0]),
                                   uint64_t(remap.to_pad[1]), uint64_t(remap.to_pad[2]), uint64_t(pad_id)}))
    return;
  check_launch(cuda::embedding(table.data, wtype(table.dtype, "embedding"), D,
                               static_cast<const int64_t*>(pending_dev_.get()), T, scale, y.ptr<float>(), stream_,
                               remap),
               "embedding (pending)");
}

void CudaOps::linear_backward(const Tensor&, const Tensor&, const Tensor&, Tensor*, bool, Tensor*) {
  no_backward("linear_backward");
}

void CudaOps::rmsnorm_backward(const Tensor&, const Tensor*, float, const Tensor&, Tensor&, bool, Tensor*) {
  no_backward("rmsnorm_backward");
}

void CudaOps::rope_backward(Tensor&, int, int, const int64_t*, const std::vector<float>&) {
  no_backward("rope_backward");
}

void CudaOps::attention_backward(const Tensor&, const Tensor&, const Tensor&, int, int, int, float, const AttnMask&,
                                 const Tensor&, Tensor&, Tensor&, Tensor&) {
  no_backward("attention_backward");
}

void CudaOps::gelu_tanh_mul_backward(const Tensor&, const Tensor&, const Tensor&, Tensor&, Tensor&) {
  no_backward("gelu_tanh_mul_backward");
}

void CudaOps::fused_add_rmsnorm(Tensor& x, Tensor& f, const Tensor& w, float eps, const Tensor* s, const Tensor* w2,
                                Tensor* out, const Tensor* x_in) {
  auto prof = prof_.scope([&] { return std::string(w2 ? "add_rmsnorm_norm" : "add_rmsnorm"); });
  f32_on_device(x, "add_rmsnorm");
  on_device(f, "add_rmsnorm");
  // f in BF16: the o / down GEMMs' outputs in a bf16 prefill (forward.cpp), read as they are.
  const bool f_bf16 = f.dtype == DType::BF16;
  G4_CHECK(f.dtype == DType::F32 || f_bf16, "add_rmsnorm: f must be F32 or BF16, got {}", dtype_name(f.dtype));
  on_device(w, "add_rmsnorm weight");
  const int64_t D = w.numel();
  G4_CHECK(D > 0 && x.numel() == f.numel() && x.numel() % D == 0, "add_rmsnorm: shapes {} / {} with width {}",
           shape_str(x.shape), shape_str(f.shape), D);
  if (x_in) {
    f32_on_device(*x_in, "add_rmsnorm residual");
    G4_CHECK(x_in->numel() == x.numel(), "add_rmsnorm: residual {} for x {}", shape_str(x_in->shape),
             shape_str(x.shape));
  }
  if (s && s->device == Device::CPU) {  // a host scale: the composition
    if (x_in) copy(*x_in, x);
    Tensor ff = f_bf16 ? widened(f) : f;
    Ops::add_rmsnorm(x, ff, w, eps, s);
    if (f_bf16 && !w2) copy(ff, f);
    if (w2) rmsnorm(x, w2, eps, *out);
    return;
  }
  if (s) on_device(*s, "add_rmsnorm scale");
  const bool out_bf16 = w2 && out->dtype == DType::BF16;
  if (w2) {
    on_device(*w2, "add_rmsnorm next weight");
    on_device(*out, "add_rmsnorm_norm output");
    G4_CHECK(out->dtype == DType::F32 || out_bf16, "add_rmsnorm_norm: output must be F32 or BF16, got {}",
             dtype_name(out->dtype));
    G4_CHECK(w2->numel() == D && out->numel() == x.numel(), "add_rmsnorm_norm: next weight {} / output {}",
             shape_str(w2->shape), shape_str(out->shape));
  }
  if (skip("add_rmsnorm", {P(x.data), P(f.data), P(w.data), P(s ? s->data : nullptr), P(w2 ? w2->data : nullptr),
                           P(out ? out->data : nullptr), uint64_t(x.numel()), uint64_t(D), F(eps), uint64_t(out_bf16),
                           uint64_t(f_bf16), P(x_in ? x_in->data : nullptr)}))
    return;
  check_launch(
      cuda::add_rmsnorm(x.ptr<float>(), f.data, f_bf16, w.data, wtype(w.dtype, "add_rmsnorm"), x.numel() / D, D, eps,
                        s ? s->data : nullptr, s ? wtype(s->dtype, "scale") : 0, w2 ? w2->data : nullptr,
                        w2 ? wtype(w2->dtype, "rmsnorm") : 0, out ? out->data : nullptr, out_bf16, stream_,
                        x_in ? x_in->ptr<float>() : nullptr),
      "add_rmsnorm");
}

uint64_t CudaOps::F(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

bool CudaOps::skip(const char* what, std::initializer_list<uint64_t> sig) {
  return steps_->active() && steps_->skip(what, sig);
}

void CudaOps::no_host_transfer_in_step(const char* what) {
  G4_CHECK(!steps_->active(), "CUDA backend: {} inside a recorded decode step", what);
}

std::shared_ptr<void> CudaOps::device_block(size_t bytes) {
  return steps_->active() ? steps_->block(bytes) : pool_->allocate(bytes);
}

const Tensor& CudaOps::bf16_shadow(const Tensor& w) {
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
  if (device_code_arch() == 0) {
    const auto e = cudaError_t(device_code_error());
    if (why && (e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidDeviceFunction)) {
      // e.g. an sm_90a-only build on an A100 or a Blackwell GPU
      const int cc = device_compute_capability();
      *why = fmt::format(
          "this build has no CUDA code for the GPU (compute capability {}.{}; built for CMAKE_CUDA_ARCHITECTURES={}); "
          "rebuild with -DCMAKE_CUDA_ARCHITECTURES={} (sm_80 or newer)",
          cc / 10, cc % 10, GEMMA4_CUDA_ARCHS, cc);
    } else if (why) {
      *why = fmt::format("CUDA could not load this build's kernels: {}", cudaGetErrorString(e));
    }
    return false;
  }
  return true;
}

std::unique_ptr<Ops> make_ops(Precision p) { return std::make_unique<CudaOps>(p); }

}  // namespace gemma4::cuda
