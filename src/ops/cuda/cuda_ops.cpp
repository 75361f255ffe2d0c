// CUDA backend of the op set (ops.h): device memory plumbing, argument checks and kernel launches
// (kernels.cu). Activations are F32 on the device; weights stay in their stored dtype (F32/BF16/F16) and
// are widened in the kernels with fp32 accumulation. F32 weights go through cuBLAS SGEMM (plain fp32 math,
// no TF32). Everything runs on the legacy default stream, so host copies order with the kernels.
#include <cuda_runtime.h>
#ifdef GEMMA4_HAS_CUBLAS
#include <cublas_v2.h>
#endif

#include <cstdlib>

#include "ops/cuda/kernels.h"
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
  CudaOps() {
    check(cudaFree(nullptr), "context creation");
#ifdef GEMMA4_HAS_CUBLAS
    G4_CHECK(cublasCreate(&blas_) == CUBLAS_STATUS_SUCCESS, "cuBLAS: cublasCreate failed");
    cublasSetMathMode(blas_, CUBLAS_PEDANTIC_MATH);  // exact fp32 (no TF32) for the fp32 parity mode
#endif
  }
  ~CudaOps() override {
#ifdef GEMMA4_HAS_CUBLAS
    if (blas_) cublasDestroy(blas_);
#endif
  }

  Device device() const override { return Device::CUDA; }

  // ---- memory
  Tensor alloc(DType dt, Shape shape) override {
    for (auto d : shape) G4_CHECK(d >= 0, "negative dimension in shape {}", shape_str(shape));
    Tensor t;
    t.dtype = dt;
    t.shape = std::move(shape);
    t.device = Device::CUDA;
    size_t bytes = std::max<size_t>(256, (t.nbytes() + 255) / 256 * 256);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      throw Error("CUDA out of memory allocating {} bytes for a tensor of shape {}: {}", bytes, shape_str(t.shape),
                  cudaGetErrorString(e));
    }
    t.owner = std::shared_ptr<void>(p, [](void* q) { cudaFree(q); });
    t.data = p;
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
    G4_CHECK(src.nbytes() == dst.nbytes(), "copy: {} bytes into {}", src.nbytes(), dst.nbytes());
    if (!src.nbytes() || src.data == dst.data) return;
    cudaMemcpyKind kind = src.device == Device::CUDA
                              ? (dst.device == Device::CUDA ? cudaMemcpyDeviceToDevice : cudaMemcpyDeviceToHost)
                              : (dst.device == Device::CUDA ? cudaMemcpyHostToDevice : cudaMemcpyHostToHost);
    check(cudaMemcpy(dst.data, src.data, src.nbytes(), kind), "copy");
  }

  void synchronize() override { check(cudaDeviceSynchronize(), "synchronize"); }

  // ---- forward ops
  void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b) override {
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
#ifdef GEMMA4_HAS_CUBLAS
    if (w.dtype == DType::F32 && K > 0 && K < (1ll << 31) && N < (1ll << 31) && M < (1ll << 31)) {
      // Row-major y[M,N] = x[M,K] w[N,K]^T is column-major y^T[N,M] = w^T . x^T.
      const float one = 1.f, zero = 0.f;
      G4_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, w.ptr<float>(), int(K),
                           x.ptr<float>(), int(K), &zero, y.ptr<float>(), int(N)) == CUBLAS_STATUS_SUCCESS,
               "cuBLAS SGEMM failed for linear [{}, {}] x [{}, {}]^T", M, K, N, K);
      if (has_b) check_launch(add_bias(y.ptr<float>(), M, N, b->data, wtype(b->dtype, "bias"), nullptr), "linear bias");
      else check_launch(0, "linear");
      return;
    }
#endif
    check_launch(cuda::linear(x.ptr<float>(), M, K, w.data, wtype(w.dtype, "linear weight"), N, y.ptr<float>(),
                              has_b ? b->data : nullptr, has_b ? wtype(b->dtype, "bias") : 0, nullptr),
                 "linear");
  }

  void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override {
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
    on_device(table, "embedding table");
    f32_on_device(y, "embedding output");
    const int64_t V = table.dim(0), D = table.dim(1), T = int64_t(ids.size());
    for (int64_t t = 0; t < T; ++t)
      G4_CHECK(ids[t] >= 0 && ids[t] < V, "token id {} out of range [0, {})", ids[t], V);
    G4_CHECK(y.numel() == T * D, "embedding: output shape {} for {} ids of width {}", shape_str(y.shape), T, D);
    if (T == 0) return;
    Tensor dids = upload(ids.data(), T);
    check_launch(cuda::embedding(table.data, wtype(table.dtype, "embedding"), D, dids.ptr<int64_t>(), T, scale,
                                 y.ptr<float>(), nullptr),
                 "embedding");
  }

  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override {
    f32_on_device(x, "rope");
    G4_CHECK(int(inv_freq.size()) >= head_dim / 2, "rope: {} frequencies for head_dim {}", inv_freq.size(), head_dim);
    const int64_t T = x.numel() / (int64_t(n_heads) * head_dim);
    if (T == 0) return;
    Tensor dpos = upload(pos, T);
    Tensor dfreq = to_device(Tensor::from_f32(std::vector<float>(inv_freq.begin(), inv_freq.begin() + head_dim / 2),
                                              {int64_t(head_dim / 2)}));
    check_launch(cuda::rope(x.ptr<float>(), T, n_heads, head_dim, dpos.ptr<int64_t>(), dfreq.ptr<float>(), nullptr),
                 "rope");
  }

  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override {
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
      check(cudaMemset(o.data, 0, o.nbytes()), "attention (no keys)");
      return;
    }
    Tensor qp = upload(mask.q_pos, T), kp = upload(mask.k_pos, S);
    Tensor qb, kb;
    if (mask.q_block) {
      qb = upload(mask.q_block, T);
      kb = upload(mask.k_block, S);
    }
    check_launch(cuda::attention(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), T, S, n_q_heads, n_kv_heads, head_dim,
                                 scale, qp.ptr<int64_t>(), kp.ptr<int64_t>(), mask.window,
                                 mask.q_block ? qb.ptr<int32_t>() : nullptr, mask.q_block ? kb.ptr<int32_t>() : nullptr,
                                 o.ptr<float>(), nullptr),
                 "attention");
  }

  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
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
    f32_on_device(a, "add");
    f32_on_device(b, "add");
    f32_on_device(out, "add");
    const int64_t n = a.numel();
    G4_CHECK(b.numel() == n && out.numel() == n, "add: sizes {} {} {}", n, b.numel(), out.numel());
    check_launch(cuda::add(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n, nullptr), "add");
  }

  void scale(Tensor& x, const Tensor& s) override {
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
    f32_on_device(x, "softcap");
    check_launch(cuda::softcap(x.ptr<float>(), x.numel(), cap, nullptr), "softcap");
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
  template <typename T>
  Tensor upload(const T* p, int64_t n) {
    static_assert(sizeof(T) == 8 || sizeof(T) == 4);
    G4_CHECK(p != nullptr || n == 0, "CUDA backend: missing host array");
    Tensor t = alloc(sizeof(T) == 8 ? DType::I64 : DType::I32, {n});
    if (n) check(cudaMemcpy(t.data, p, size_t(n) * sizeof(T), cudaMemcpyHostToDevice), "upload");
    return t;
  }

#ifdef GEMMA4_HAS_CUBLAS
  cublasHandle_t blas_ = nullptr;
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

std::unique_ptr<Ops> make_ops() { return std::make_unique<CudaOps>(); }

}  // namespace gemma4::cuda
