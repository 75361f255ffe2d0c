// CPU benchmark: every figure is reported against a ceiling measured in the same run on this machine.
//   (a) memory bandwidth: read (sum over a buffer >> L3) and copy, all threads;
//   (b) matmul peak: a register-only FMA loop (all threads) and the best GFLOP/s of our GEMM;
//   kernel microbenchmarks: the GEMV (decode) against the read bandwidth, the GEMV/GEMM crossover;
//   (c) decode tok/s of a random ~1B-parameter Gemma 4 config in bf16 against the roofline
//       read bandwidth / bytes read per token;
//   (d) prefill tok/s and its FLOP/s against the matmul peak.
// Usage: bench_cpu [--quick] [--no-model] [--prefill T] [--decode N] [--reps R] [--vocab V] [--fast-ops]
//   --fast-ops: the model's attention, RMSNorm and gelu_tanh_mul run cpu::attention_avx2, rmsnorm_avx2 and
//   gelu_tanh_mul_avx2 (linear.h) instead of the CPU backend's own (for as long as the backend does not)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "core/dtype.h"
#include "core/timer.h"
#include "model/config.h"
#include "model/keymap.h"
#include "model/model.h"
#include "ops/cpu/linear.h"
#include "ops/ops.h"

using namespace gemma4;

namespace {

struct Opts {
  bool quick = false, model = true;
  int prefill_tokens = 512, decode_tokens = 16, reps = 5;
  int64_t vocab = 262144;
  bool fast_ops = false;  // route attention/rmsnorm/gelu to the AVX2 kernels (until the backend uses them)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
double best(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

// Runs f() reps times (after one warm-up) and returns the seconds of each run.
template <typename F>
std::vector<double> time_runs(int reps, F&& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    Timer tm;
    f();
    t.push_back(tm.seconds());
  }
  return t;
}

// A 64-byte aligned buffer, first touched by the threads that will read it.
struct Buf {
  float* p = nullptr;
  size_t n = 0;
  explicit Buf(size_t count) : n(count) {
    p = static_cast<float*>(std::aligned_alloc(64, (count * 4 + 63) / 64 * 64));
    if (!p) std::abort();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); ++i) p[i] = float(i % 1024) * 1e-3f;
  }
  ~Buf() { std::free(p); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
};

__attribute__((target("avx2,fma"))) float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Sums p[0, n) (n a multiple of 32) with AVX2 loads: a pure streaming read.
__attribute__((target("avx2,fma"))) float read_sum(const float* p, int64_t n) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

// 12 independent FMA chains kept in registers; 12 * 16 flops per iteration.
__attribute__((target("avx2,fma"))) float fma_loop(int64_t iters, float seed) {
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-3f);
  __m256 c0 = _mm256_set1_ps(seed), c1 = _mm256_set1_ps(seed + 1), c2 = _mm256_set1_ps(seed + 2),
         c3 = _mm256_set1_ps(seed + 3), c4 = _mm256_set1_ps(seed + 4), c5 = _mm256_set1_ps(seed + 5),
         c6 = _mm256_set1_ps(seed + 6), c7 = _mm256_set1_ps(seed + 7), c8 = _mm256_set1_ps(seed + 8),
         c9 = _mm256_set1_ps(seed + 9), c10 = _mm256_set1_ps(seed + 10), c11 = _mm256_set1_ps(seed + 11);
  for (int64_t i = 0; i < iters; ++i) {
    c0 = _mm256_fmadd_ps(c0, a, b);
    c1 = _mm256_fmadd_ps(c1, a, b);
    c2 = _mm256_fmadd_ps(c2, a, b);
    c3 = _mm256_fmadd_ps(c3, a, b);
    c4 = _mm256_fmadd_ps(c4, a, b);
    c5 = _mm256_fmadd_ps(c5, a, b);
    c6 = _mm256_fmadd_ps(c6, a, b);
    c7 = _mm256_fmadd_ps(c7, a, b);
    c8 = _mm256_fmadd_ps(c8, a, b);
    c9 = _mm256_fmadd_ps(c9, a, b);
    c10 = _mm256_fmadd_ps(c10, a, b);
    c11 = _mm256_fmadd_ps(c11, a, b);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                           _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
  return hsum256(s);
}

volatile float g_sink;

struct Machine {
  double read_gbs = 0, read_gbs_median = 0, copy_gbs = 0;
  double fma_peak = 0;   // GFLOP/s, register-only FMA loop, all threads
  double gemm_best = 0;  // GFLOP/s, our GEMM on a cache-friendly large problem
};

void measure_bandwidth(const Opts& o, Machine& mc) {
  const size_t n = (o.quick ? 256ull : 1024ull) << 20 >> 2;  // floats (1 GiB; 256 MiB quick)
  Buf a(n);
  const int nt = omp_get_max_threads();
  auto read = [&] {
    float tot = 0;
#pragma omp parallel reduction(+ : tot)
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t chunk = (int64_t(n) / T) / 32 * 32;
      tot += read_sum(a.p + t * chunk, chunk);
    }
    g_sink = tot;
  };
  auto tr = time_runs(o.reps, read);
  const double bytes = double(n) * 4;
  std::vector<double> gbs;
  for (double t : tr) gbs.push_back(bytes / t / 1e9);
  mc.read_gbs = best(gbs);
  mc.read_gbs_median = median(gbs);

  const size_t nc = n / 2;
  Buf src(nc), dst(nc);
  auto copy = [&] {
#pragma omp parallel
    {
      const int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t chunk = int64_t(nc) / T;
      std::memcpy(dst.p + t * chunk, src.p + t * chunk, size_t(chunk) * 4);
    }
  };
  auto tc = time_runs(o.reps, copy);
  std::vector<double> cgbs;
  for (double t : tc) cgbs.push_back(2.0 * double(nc) * 4 / t / 1e9);  // bytes read + written
  mc.copy_gbs = best(cgbs);
  fmt::print("(a) memory bandwidth, {} threads, buffer {} MiB (L3 32 MiB):\n", nt, bytes / (1 << 20));
  fmt::print("    read  {:6.1f} GB/s best, {:6.1f} median   <- decode roofline denominator\n", mc.read_gbs,
             mc.read_gbs_median);
  fmt::print("    copy  {:6.1f} GB/s best (read + write bytes), {:6.1f} median\n", mc.copy_gbs, median(cgbs));
}

void measure_fma_peak(const Opts& o, Machine& mc) {
  const int64_t iters = o.quick ? 20'000'000 : 100'000'000;
  auto run = [&] {
    float tot = 0;
#pragma omp parallel reduction(+ : tot)
    tot += fma_loop(iters, float(omp_get_thread_num()));
    g_sink = tot;
  };
  auto t = time_runs(o.reps, run);
  const double flops = double(iters) * 12 * 16 * omp_get_max_threads();
  std::vector<double> g;
  for (double s : t) g.push_back(flops / s / 1e9);
  mc.fma_peak = best(g);
  fmt::print("(b) fp32 FMA peak (register-only loop, {} threads): {:.1f} GFLOP/s best, {:.1f} median\n",
             omp_get_max_threads(), mc.fma_peak, median(g));
}

// Random weights of a dtype, stored as raw bits.
struct Weight {
  DType dt;
  std::vector<float> f32;
  std::vector<uint16_t> h;
  const void* data() const { return dt == DType::F32 ? static_cast<const void*>(f32.data()) : h.data(); }
  size_t bytes() const { return dt == DType::F32 ? f32.size() * 4 : h.size() * 2; }
};

Weight make_weight(DType dt, int64_t N, int64_t K, uint32_t seed) {
  Weight w{dt, {}, {}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  const size_t n = size_t(N) * K;
  if (dt == DType::F32) {
    w.f32.resize(n);
    for (auto& v : w.f32) v = u(rng);
  } else {
    // Fill a small random table and tile it (fast for the 400M-element lm_head).
    std::vector<uint16_t> tab(1 << 16);
    for (auto& v : tab) v = dt == DType::BF16 ? f32_to_bf16(u(rng)) : f32_to_f16(u(rng));
    w.h.resize(n);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < int64_t(n); ++i) w.h[i] = tab[(i * 40503u) & 0xffff];
  }
  return w;
}

std::vector<float> rand_vec(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

double gemm_gflops(const Opts& o, cpu::LinearPath path, int64_t M, int64_t K, int64_t N, DType dt,
                   double* med = nullptr) {
  Weight w = make_weight(dt, N, K, 1);
  auto x = rand_vec(size_t(M) * K, 2);
  std::vector<float> y(size_t(M) * N);
  auto t = time_runs(o.reps, [&] { cpu::linear_path(path, x.data(), M, K, w.data(), dt, N, y.data()); });
  std::vector<double> g;
  for (double s : t) g.push_back(2.0 * M * K * N / s / 1e9);
  if (med) *med = median(g);
  return best(g);
}

void measure_gemm(const Opts& o, Machine& mc) {
  fmt::print("    our GEMM (blocked, packed panels) GFLOP/s, best / median of {}:\n", o.reps);
  struct S {
    int64_t M, K, N;
    DType dt;
  };
  std::vector<S> shapes{{510, 1536, 1536, DType::F32}, {510, 1536, 1536, DType::BF16},
                        {512, 1536, 6144, DType::BF16}, {512, 6144, 1536, DType::BF16},
                        {512, 1536, 6144, DType::F16}};
  if (o.quick) shapes.resize(2);
  for (const S& s : shapes) {
    double med = 0;
    double g = gemm_gflops(o, cpu::LinearPath::Gemm, s.M, s.K, s.N, s.dt, &med);
    mc.gemm_best = std::max(mc.gemm_best, g);
    fmt::print("      M={:4} K={:5} N={:5} w {:4}: {:6.1f} / {:6.1f}  ({:.0f}% / {:.0f}% of FMA peak)\n", s.M, s.K,
               s.N, dtype_name(s.dt), g, med, 100 * g / mc.fma_peak, 100 * med / mc.fma_peak);
  }
  fmt::print("    GEMM best: {:.1f} GFLOP/s = {:.0f}% of the register FMA peak\n", mc.gemm_best,
             100 * mc.gemm_best / mc.fma_peak);
}

void measure_gemv(const Opts& o, const Machine& mc) {
  fmt::print("    GEMV M=1 (decode), weight bytes / time vs read bandwidth {:.1f} GB/s (best / median):\n",
             mc.read_gbs);
  struct S {
    int64_t K, N;
    DType dt;
  };
  std::vector<S> shapes{{1536, 6144, DType::BF16}, {6144, 1536, DType::BF16}, {1536, 262144, DType::BF16},
                        {1536, 6144, DType::F16},  {1536, 6144, DType::F32}};
  if (o.quick) shapes.resize(3);
  for (const S& s : shapes) {
    // Enough distinct copies of the weight to exceed L3, so every call streams from memory.
    const Weight w0 = make_weight(s.dt, s.N, s.K, 3);
    const int copies = std::max<int>(1, int(std::ceil(128.0 * (1 << 20) / double(w0.bytes()))));
    std::vector<Weight> ws;
    ws.push_back(w0);
    for (int c = 1; c < copies; ++c) ws.push_back(make_weight(s.dt, s.N, s.K, 3 + c));
    auto x = rand_vec(s.K, 4);
    std::vector<float> y(s.N);
    auto t = time_runs(o.reps, [&] {
      for (const Weight& w : ws) cpu::linear(x.data(), 1, s.K, w.data(), s.dt, s.N, y.data());
    });
    std::vector<double> g;
    for (double sec : t) g.push_back(double(w0.bytes()) * copies / sec / 1e9);
    fmt::print("      K={:5} N={:6} w {:4}: {:6.1f} / {:6.1f} GB/s  ({:.0f}% / {:.0f}% of read bw)\n", s.K, s.N,
               dtype_name(s.dt), best(g), median(g), 100 * best(g) / mc.read_gbs, 100 * median(g) / mc.read_gbs);
  }
  // Small-M crossover: GEMV streams w once per call; GEMM converts it into panels.
  fmt::print("    small M, K=1536 N=6144 bf16, ms per call (GEMV / GEMM):");
  for (int64_t M : {1, 2, 4, 6, 8, 12, 16}) {
    if (o.quick && M > 8) break;
    Weight w = make_weight(DType::BF16, 6144, 1536, 5);
    auto x = rand_vec(size_t(M) * 1536, 6);
    std::vector<float> y(size_t(M) * 6144);
    double tv = median(time_runs(o.reps, [&] {
      cpu::linear_path(cpu::LinearPath::Gemv, x.data(), M, 1536, w.data(), DType::BF16, 6144, y.data());
    }));
    double tg = median(time_runs(o.reps, [&] {
      cpu::linear_path(cpu::LinearPath::Gemm, x.data(), M, 1536, w.data(), DType::BF16, 6144, y.data());
    }));
    fmt::print(" M={}: {:.2f}/{:.2f}", M, tv * 1e3, tg * 1e3);
  }
  fmt::print("\n");
}


// ------------------------------------------------------------------------------------------------------
// Model level: (c) decode and (d) prefill on a random ~1B Gemma 4 config.

// Forwards every op to the CPU backend and accumulates the wall time of each kind (no `override` on
// purpose: the backward ops are being added to the interface).
class ProfOps : public Ops {
 public:
  enum Kind { kLinear, kAttention, kNorm, kRope, kEmbed, kElementwise, kOther, kNumKinds };
  static constexpr const char* kNames[kNumKinds] = {"linear", "attention", "norms", "rope",
                                                    "embedding", "elementwise", "other"};
  double t[kNumKinds] = {};
  int64_t calls[kNumKinds] = {};
  void reset() {
    for (int i = 0; i < kNumKinds; ++i) t[i] = 0, calls[i] = 0;
  }

  explicit ProfOps(std::unique_ptr<Ops> inner, bool fast) : in_(std::move(inner)), fast_(fast) {}
  Device device() const override { return in_->device(); }
  void linear(const Tensor& x, const Tensor& w, Tensor& y, const Tensor* b = nullptr) override {
    Scope s(this, kLinear);
    in_->linear(x, w, y, b);
  }
  void rmsnorm(const Tensor& x, const Tensor* w, float eps, Tensor& y) override {
    Scope s(this, kNorm);
    if (fast_ && x.dtype == DType::F32) {
      const bool has_w = w && w->defined();
      const int64_t D = has_w ? w->numel() : x.dim(-1);
      cpu::rmsnorm_avx2(x.ptr<float>(), has_w ? w->data : nullptr, has_w ? w->dtype : DType::F32, x.numel() / D, D,
                        eps, y.ptr<float>());
      return;
    }
    in_->rmsnorm(x, w, eps, y);
  }
  void layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps, Tensor& y) override {
    Scope s(this, kNorm);
    in_->layernorm(x, w, b, eps, y);
  }
  void embedding(const Tensor& table, const std::vector<int64_t>& ids, float scale, Tensor& y) override {
    Scope s(this, kEmbed);
    in_->embedding(table, ids, scale, y);
  }
  void rope(Tensor& x, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) override {
    Scope s(this, kRope);
    in_->rope(x, n_heads, head_dim, pos, inv_freq);
  }
  void attention(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads, int head_dim,
                 float scale, const AttnMask& mask, Tensor& o) override {
    Scope s(this, kAttention);
    if (fast_ && cpu::attention_avx2(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(),
                                          q.numel() / (int64_t(n_q_heads) * head_dim),
                                          k.numel() / (int64_t(n_kv_heads) * head_dim), n_q_heads, n_kv_heads,
                                          head_dim, scale, mask.q_pos, mask.k_pos, mask.window, mask.q_block,
                                          mask.k_block, o.ptr<float>()))
      return;
    in_->attention(q, k, v, n_q_heads, n_kv_heads, head_dim, scale, mask, o);
  }
  void gelu_tanh_mul(const Tensor& gate, const Tensor& up, Tensor& out) override {
    Scope s(this, kElementwise);
    if (fast_) {
      cpu::gelu_tanh_mul_avx2(gate.ptr<float>(), up.ptr<float>(), out.ptr<float>(), gate.numel());
      return;
    }
    in_->gelu_tanh_mul(gate, up, out);
  }
  void add(const Tensor& a, const Tensor& b, Tensor& out) override {
    Scope s(this, kElementwise);
    in_->add(a, b, out);
  }
  void scale(Tensor& x, const Tensor& sc) override {
    Scope s(this, kElementwise);
    in_->scale(x, sc);
  }
  void scale(Tensor& x, float sc) override {
    Scope s(this, kElementwise);
    in_->scale(x, sc);
  }
  void softcap(Tensor& x, float cap) override {
    Scope s(this, kElementwise);
    in_->softcap(x, cap);
  }
  void gelu_tanh(const Tensor& x, Tensor& out) override {
    Scope s(this, kElementwise);
    in_->gelu_tanh(x, out);
  }
  void linear_backward(const Tensor& x, const Tensor& w, const Tensor& dy, Tensor* dx, bool accumulate_dx,
                       Tensor* dw) {
    Scope s(this, kOther);
    in_->linear_backward(x, w, dy, dx, accumulate_dx, dw);
  }
  void rmsnorm_backward(const Tensor& x, const Tensor* w, float eps, const Tensor& dy, Tensor& dx,
                        bool accumulate_dx, Tensor* dw) {
    Scope s(this, kOther);
    in_->rmsnorm_backward(x, w, eps, dy, dx, accumulate_dx, dw);
  }
  void rope_backward(Tensor& dx, int n_heads, int head_dim, const int64_t* pos, const std::vector<float>& inv_freq) {
    Scope s(this, kOther);
    in_->rope_backward(dx, n_heads, head_dim, pos, inv_freq);
  }
  void attention_backward(const Tensor& q, const Tensor& k, const Tensor& v, int n_q_heads, int n_kv_heads,
                          int head_dim, float scale, const AttnMask& mask, const Tensor& dout, Tensor& dq,
                          Tensor& dk, Tensor& dv) {
    Scope s(this, kOther);
    in_->attention_backward(q, k, v, n_q_heads, n_kv_heads, head_dim, scale, mask, dout, dq, dk, dv);
  }
  void gelu_tanh_mul_backward(const Tensor& gate, const Tensor& up, const Tensor& dout, Tensor& dgate,
                              Tensor& dup) {
    Scope s(this, kOther);
    in_->gelu_tanh_mul_backward(gate, up, dout, dgate, dup);
  }

 private:
  struct Scope {
    ProfOps* p;
    Kind k;
    Timer tm;
    Scope(ProfOps* p_, Kind k_) : p(p_), k(k_) {}
    ~Scope() {
      p->t[k] += tm.seconds();
      p->calls[k]++;
    }
  };
  std::unique_ptr<Ops> in_;
  bool fast_ = false;
};

std::string profile_line(const ProfOps& p, double total) {
  std::string s;
  double acc = 0;
  for (int i = 0; i < ProfOps::kNumKinds; ++i) {
    acc += p.t[i];
    if (p.calls[i]) s += fmt::format(" {} {:.1f}%", ProfOps::kNames[i], 100 * p.t[i] / total);
  }
  s += fmt::format(" outside ops {:.1f}%", 100 * (total - acc) / total);
  return s;
}

// A ~1B-parameter Gemma 4 text config with the family's shape: E2B widths (hidden 1536, MLP 4x = 6144,
// 8 query heads, head_dim 256 sliding / 512 full, 1 KV head) and the 12B/31B features (5:1 sliding:full,
// K=V full layers, no PLE, no KV sharing), 18 layers, sliding window 512, the family's 262144 vocabulary.
ModelConfig bench_config(int64_t vocab) {
  ModelConfig c;
  c.model_type = "gemma4_text";
  TextConfig& t = c.text;
  t.vocab_size = vocab;
  t.hidden_size = 1536;
  t.intermediate_size = 6144;
  t.num_hidden_layers = 18;
  t.num_attention_heads = 8;
  t.num_key_value_heads = 1;
  t.head_dim = 256;
  t.global_head_dim = 512;
  t.num_global_key_value_heads = 1;
  t.attention_k_eq_v = true;
  t.sliding_window = 512;
  t.final_logit_softcapping = 30.0;
  t.tie_word_embeddings = true;
  t.num_kv_shared_layers = 0;
  t.hidden_size_per_layer_input = 0;
  t.layer_types.clear();  // default rule: every 6th layer full, the last one full
  return c;
}

int64_t tensor_bytes(const Tensor& t) { return t.defined() && t.data ? int64_t(t.nbytes()) : 0; }

// Bytes of weights one decoded token reads: every layer tensor, the final norm, the whole (tied) LM head
// and one embedding row.
int64_t weight_bytes_per_token(const ModelConfig& cfg, const Weights& w) {
  int64_t b = 0;
  for (const LayerWeights& l : w.layers) {
    for (const Tensor* t : {&l.input_layernorm, &l.post_attention_layernorm, &l.pre_feedforward_layernorm,
                            &l.post_feedforward_layernorm, &l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.q_norm,
                            &l.k_norm, &l.gate_proj, &l.up_proj, &l.down_proj, &l.layer_scalar})
      b += tensor_bytes(*t);
  }
  b += tensor_bytes(w.final_norm) + tensor_bytes(w.lm_head);
  b += cfg.text.hidden_size * int64_t(dtype_size(w.embed_tokens.dtype));
  return b;
}

// Bytes of the f32 KV cache a decode step at context length ctx reads.
int64_t kv_bytes_per_token(const ModelConfig& cfg, int64_t ctx) {
  int64_t b = 0;
  for (const LayerSpec& s : cfg.text.layers()) {
    const int64_t held = s.type == LayerType::Sliding ? std::min<int64_t>(ctx, cfg.text.sliding_window) : ctx;
    b += held * s.num_kv_heads * s.head_dim * 4 * (s.k_eq_v ? 1 : 2);
  }
  return b;
}

// Matmul FLOPs of a prefill of T tokens (linear layers for every token, the LM head for the last one, and
// the attention products q.k and p.v over the visible keys).
double prefill_flops(const ModelConfig& cfg, const Weights& w, int64_t T) {
  double lin = 0;
  for (const LayerWeights& l : w.layers)
    for (const Tensor* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      if (t->defined() && t->data) lin += double(t->numel());
  double f = 2.0 * lin * T + 2.0 * double(w.lm_head.numel());
  for (const LayerSpec& s : cfg.text.layers()) {
    double keys = 0;
    for (int64_t q = 0; q < T; ++q)
      keys += s.type == LayerType::Sliding ? std::min<int64_t>(q + 1, cfg.text.sliding_window) : q + 1;
    f += 2.0 * 2.0 * keys * cfg.text.num_attention_heads * s.head_dim;
  }
  return f;
}

void measure_model(const Opts& o, const Machine& mc) {
  ModelConfig cfg = bench_config(o.vocab);
  const int64_t params = text_parameter_count(cfg);
  Timer tinit;
  Weights w = random_weights(cfg, DType::BF16, 42);
  const double init_s = tinit.seconds();
  auto prof_owner = std::make_unique<ProfOps>(make_cpu_ops(), o.fast_ops);
  ProfOps* prof = prof_owner.get();
  Model model(cfg, std::move(w), std::move(prof_owner));
  const Weights& mw = model.weights();
  const int64_t embed = cfg.text.vocab_size * cfg.text.hidden_size;
  fmt::print(
      "(c,d) model: random Gemma 4 text config, bf16 weights: hidden 1536, MLP 6144, 18 layers (15 sliding + 3 full, "
      "K=V), 8 q heads, 1 kv head, head_dim 256/512, window 512, vocab {} (tied)\n"
      "      parameters {:.3f} B ({:.3f} B embedding, {:.3f} B in the layers); random init {:.1f} s\n",
      cfg.text.vocab_size, params / 1e9, embed / 1e9, (params - embed) / 1e9, init_s);
  if (o.fast_ops) fmt::print("      (--fast-ops: attention, rmsnorm, gelu_tanh_mul from linear.h's AVX2 kernels)\n");

  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> tok(3, cfg.text.vocab_size - 1);
  auto ids = [&](int64_t n) {
    std::vector<int64_t> v(n);
    for (auto& x : v) x = tok(rng);
    return v;
  };

  // (c) decode: a 32-token prompt, then single-token steps.
  const int64_t prompt = 32;
  KVCache cache = model.new_cache();
  model.forward(ids(prompt), cache, nullptr, false);
  model.forward(ids(1), cache, nullptr, false);  // warm-up step
  prof->reset();
  std::vector<double> step;
  Timer tall;
  for (int i = 0; i < o.decode_tokens; ++i) {
    auto id = ids(1);
    Timer tm;
    model.forward(id, cache, nullptr, false);
    step.push_back(tm.seconds());
  }
  const double decode_total = tall.seconds();
  const int64_t ctx = prompt + 1 + o.decode_tokens / 2;
  const int64_t wbytes = weight_bytes_per_token(cfg, mw), kvb = kv_bytes_per_token(cfg, ctx);
  const double bytes = double(wbytes + kvb);
  const double roof = mc.read_gbs * 1e9 / bytes;
  std::vector<double> tps;
  for (double s : step) tps.push_back(1.0 / s);
  fmt::print("(c) decode, batch 1, context {}..{}: bytes read per token {:.3f} GB ({:.3f} GB weights incl. the "
             "{:.3f} GB LM head, {:.1f} MB KV cache)\n",
             prompt + 1, prompt + o.decode_tokens, bytes / 1e9, wbytes / 1e9, tensor_bytes(mw.lm_head) / 1e9,
             kvb / 1e6);
  fmt::print("    roofline = read bw {:.1f} GB/s / bytes per token = {:.2f} tok/s\n", mc.read_gbs, roof);
  fmt::print("    measured {:.2f} tok/s median, {:.2f} best over {} tokens  =>  {:.0f}% of the roofline (median), "
             "{:.0f}% (best)\n",
             median(tps), best(tps), o.decode_tokens, 100 * median(tps) / roof, 100 * best(tps) / roof);
  fmt::print("    effective weight stream {:.1f} GB/s; time in ops:{}\n", bytes * median(tps) / 1e9,
             profile_line(*prof, decode_total));

  // (d) prefill: a fresh cache, T tokens in one forward, logits of the last position only.
  const int64_t T = o.prefill_tokens;
  {
    KVCache c0 = model.new_cache();
    model.forward(ids(std::min<int64_t>(T, 64)), c0, nullptr, false);  // warm-up
  }
  const int preps = o.quick ? 1 : 3;
  std::vector<double> pt;
  prof->reset();
  double ptotal = 0;
  for (int r = 0; r < preps; ++r) {
    KVCache c = model.new_cache();
    auto v = ids(T);
    Timer tm;
    model.forward(v, c, nullptr, false);
    pt.push_back(tm.seconds());
    ptotal += pt.back();
  }
  const double flops = prefill_flops(cfg, mw, T);
  const double tsec = median(pt), tbest = *std::min_element(pt.begin(), pt.end());
  const double gf = flops / tsec / 1e9, gfb = flops / tbest / 1e9;
  fmt::print("(d) prefill {} tokens: {:.1f} tok/s median ({:.1f} best); {:.1f} GFLOP per prefill -> {:.1f} GFLOP/s "
             "median ({:.1f} best)\n",
             T, T / tsec, T / tbest, flops / 1e9, gf, gfb);
  fmt::print("    = {:.0f}% of the register FMA peak {:.1f} GFLOP/s (median; {:.0f}% best), {:.0f}% of our best GEMM "
             "{:.1f} GFLOP/s\n",
             100 * gf / mc.fma_peak, mc.fma_peak, 100 * gfb / mc.fma_peak, 100 * gf / mc.gemm_best, mc.gemm_best);
  fmt::print("    time in ops:{}\n", profile_line(*prof, ptotal));
  const double lin_gf = 2.0 * double(params - embed) * T / (prof->t[ProfOps::kLinear] / preps) / 1e9;
  fmt::print("    the linear layers alone: {:.1f} GFLOP/s ({:.0f}% of the FMA peak)\n", lin_gf, 100 * lin_gf / mc.fma_peak);
}

}  // namespace

int main(int argc, char** argv) {
  Opts o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) {
        fmt::print(stderr, "bench_cpu: {} needs a value\n", a);
        std::exit(2);
      }
      return std::atoi(argv[++i]);
    };
    if (a == "--quick") {
      o.quick = true;
      o.reps = 3;
      o.prefill_tokens = 128;
      o.decode_tokens = 4;
    } else if (a == "--no-model") {
      o.model = false;
    } else if (a == "--prefill") {
      o.prefill_tokens = next();
    } else if (a == "--decode") {
      o.decode_tokens = next();
    } else if (a == "--reps") {
      o.reps = std::max(1, next());
    } else if (a == "--fast-ops") {
      o.fast_ops = true;
    } else if (a == "--vocab") {
      o.vocab = std::max(16, next());
    } else {
      fmt::print(stderr, "usage: bench_cpu [--quick] [--no-model] [--prefill T] [--decode N] [--reps R] [--vocab V] [--fast-ops]\n");
      return 2;
    }
  }
  if (!cpu::linear_has_avx2()) {
    fmt::print(stderr, "bench_cpu: this CPU lacks AVX2/FMA/F16C; the fast kernels (and this benchmark) need them\n");
    return 1;
  }
  fmt::print("bench_cpu: {} OpenMP threads\n", omp_get_max_threads());
  Machine mc;
  measure_bandwidth(o, mc);
  measure_fma_peak(o, mc);
  measure_gemm(o, mc);
  measure_gemv(o, mc);
  if (o.model) measure_model(o, mc);
  return 0;
}
