// The CUDA backend against the CPU backend (the reference semantics): every forward op on random inputs
// (head dims up to 512, GQA/MQA, sliding windows smaller and larger than the sequence, block overlay,
// unordered ring positions, rows that see no key), then whole models on the GPU: the HF fixtures in
// fp32 compute (CPU tolerances: max |logit diff| <= 1e-3 and identical argmax), greedy generation equal to
// the CPU backend, prefill + decode equal to a full forward, and the CLI's --device flag.
// Without a GPU every test skips with a printed reason.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>
#include <random>
#include <tuple>

#include "generate/generator.h"
#include "io/safetensors.h"
#include "model/keymap.h"
#include "model/model.h"
#include "model/rope.h"
#include "ops/ops.h"
#ifdef GEMMA4_HAS_CUDA
#include "ops/cuda/kernels.h"  // device_code_arch
#endif
#include "text/tokenizer.h"
#include "train/eval_prompt.h"
#include "test_util.h"
#include "tiny_model.h"

using namespace gemma4;
using gemma4::test::tiny_config;
namespace fs = std::filesystem;

namespace {

// ---- GPU presence -----------------------------------------------------------------------------------
std::string g_why;
bool gpu_present() {
  static const bool ok = [] {
    bool a = cuda_available(&g_why);
    if (!a) std::printf("[cuda] no GPU: %s -- CUDA tests are skipped\n", g_why.c_str());
    return a;
  }();
  return ok;
}
#define REQUIRE_GPU() \
  if (!gpu_present()) GTEST_SKIP() << "CUDA tests skipped: " << g_why

Ops& gpu() {
  static std::unique_ptr<Ops> o = make_cuda_ops();
  return *o;
}
Ops& gpu_bf16() {
  static std::unique_ptr<Ops> o = make_cuda_ops(Precision::BF16);
  return *o;
}
Ops& cpu() {
  static std::unique_ptr<Ops> o = make_cpu_ops();
  return *o;
}

// ---- error table, printed at exit -------------------------------------------------------------------
struct Row {
  std::string op;
  float max_abs = 0, max_ref = 0;
  double rel_l2 = 0;
};
std::vector<Row>& table() {
  static std::vector<Row> t;
  return t;
}
class PrintTable : public ::testing::Environment {
 public:
  void TearDown() override {
    if (table().empty()) return;
    std::printf("\n%-58s %12s %12s %12s\n", "CUDA op vs CPU op", "max|diff|", "max|ref|", "rel L2");
    for (auto& r : table())
      std::printf("%-58s %12.3g %12.3g %12.3g\n", r.op.c_str(), r.max_abs, r.max_ref, r.rel_l2);
  }
};
const auto* g_env = ::testing::AddGlobalTestEnvironment(new PrintTable);

std::mt19937& rng() {
  static std::mt19937 g(1234);
  return g;
}

Tensor randn(Shape shape, float scale = 1.f, DType dt = DType::F32) {
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(size_t(shape_numel(shape)));
  for (auto& x : v) x = d(rng());
  Tensor t = Tensor::from_f32(v, shape);
  return dt == DType::F32 ? t : t.to(dt);
}

// GPU output tensor filled with NaN so that unwritten elements fail the comparison.
Tensor poisoned(Shape shape) {
  std::vector<float> v(size_t(shape_numel(shape)), std::nanf(""));
  return gpu().to_device(Tensor::from_f32(v, shape));
}

// Compares a GPU result with the CPU reference; tol is relative to max(1, max |ref|).
void compare(const std::string& what, const Tensor& got_dev, const Tensor& want, float tol = 2e-5f) {
  Tensor got = gpu().to_host(got_dev);
  ASSERT_EQ(got.numel(), want.numel()) << what;
  std::vector<float> g = got.f32_vector(), w = want.f32_vector();
  Row r{what};
  double num = 0, den = 0;
  bool finite = true;
  for (size_t i = 0; i < g.size(); ++i) {
    if (!std::isfinite(g[i])) finite = false;
    r.max_abs = std::max(r.max_abs, std::fabs(g[i] - w[i]));
    r.max_ref = std::max(r.max_ref, std::fabs(w[i]));
    num += double(g[i] - w[i]) * (g[i] - w[i]);
    den += double(w[i]) * w[i];
  }
  r.rel_l2 = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  table().push_back(r);
  EXPECT_TRUE(finite) << what << ": non-finite (unwritten?) output";
  EXPECT_LE(r.max_abs, tol * std::max(1.f, r.max_ref)) << what;
}

// ---- ops ----------------------------------------------------------------------------------------------
// The build's kernels run on this device: sm_80 code or newer (90 takes the Hopper-only paths: PDL, clusters).
// A build for CMAKE_CUDA_ARCHITECTURES=80 runs here through the driver's compilation of its PTX, so the same
// tests check the non-Hopper paths on a Hopper GPU.
TEST(CudaOps, KernelCodeForTheDevice) {
  REQUIRE_GPU();
#ifdef GEMMA4_HAS_CUDA
  const int code = cuda::device_code_arch();
  std::printf("kernel code: compute_%d\n", code);
  EXPECT_GE(code, 80);
#endif
}

TEST(CudaOps, MemoryRoundTrip) {
  REQUIRE_GPU();
  Tensor h = randn({5, 7});
  Tensor d = gpu().to_device(h);
  EXPECT_EQ(d.device, Device::CUDA);
  Tensor d2 = gpu().alloc(DType::F32, {5, 7});
  gpu().copy(d, d2);
  Tensor row = gpu().alloc(DType::F32, {1, 7});
  gpu().copy(d2.slice_rows(3, 4), row);
  Tensor back = gpu().to_host(d2), r = gpu().to_host(row);
  EXPECT_EQ(back.f32_vector(), h.f32_vector());
  for (int i = 0; i < 7; ++i) EXPECT_EQ(r.ptr<float>()[i], h.ptr<float>()[3 * 7 + i]);
  Tensor h2 = Tensor::empty(DType::F32, {1, 7});
  gpu().copy(row, h2);  // device -> host through copy()
  EXPECT_EQ(h2.f32_vector(), r.f32_vector());
}

TEST(CudaOps, Linear) {
  REQUIRE_GPU();
  for (DType wdt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t M : {1, 3, 8, 9, 70})
      for (auto [K, N] : {std::pair<int64_t, int64_t>{64, 33}, {100, 130}, {256, 512}})
        for (bool bias : {false, true}) {
          Tensor x = randn({M, K}), w = randn({N, K}, 0.1f, wdt), b = randn({N}, 1.f, wdt);
          Tensor want = Tensor::empty(DType::F32, {M, N});
          cpu().linear(x, w, want, bias ? &b : nullptr);
          Tensor dx = gpu().to_device(x), dw = gpu().to_device(w), db = gpu().to_device(b), y = poisoned({M, N});
          gpu().linear(dx, dw, y, bias ? &db : nullptr);
          compare(fmt::format("linear w={} M={} K={} N={}{}", dtype_name(wdt), M, K, N, bias ? " +bias" : ""), y,
                  want, 1e-5f);
          // BF16 precision: tensor cores for M > 8 (x rounded to bf16), bf16 copies of F32 weights.
          Tensor yb = gpu_bf16().alloc(DType::F32, {M, N});
          gpu_bf16().linear(gpu_bf16().to_device(x), gpu_bf16().to_device(w), yb,
                            bias ? &db : nullptr);
          compare(fmt::format("linear bf16 w={} M={} K={} N={}{}", dtype_name(wdt), M, K, N, bias ? " +bias" : ""),
                  yb, want, 2e-2f);
          // A BF16 output (a bf16 prefill's o / down projections): the GEMM's epilogue for M > 8 without a bias,
          // else an F32 result rounded.
          Tensor y16 = gpu_bf16().alloc(DType::BF16, {M, N});
          gpu_bf16().linear(gpu_bf16().to_device(x), gpu_bf16().to_device(w), y16, bias ? &db : nullptr);
          compare(fmt::format("linear bf16 out w={} M={} K={} N={}{}", dtype_name(wdt), M, K, N, bias ? " +bias" : ""),
                  gpu_bf16().to_host(y16).to_f32(), want, 2e-2f);
        }
  // Decode-shaped 12B matmuls through the 16-byte-load GEMV (K of 3840 / 15360, N of 4096).
  for (auto [K, N] : {std::pair<int64_t, int64_t>{3840, 4096}, {15360, 520}})
    for (int64_t M : {1, 2, 5}) {
      Tensor x = randn({M, K}), w = randn({N, K}, 0.02f, DType::BF16);
      Tensor want = Tensor::empty(DType::F32, {M, N});
      cpu().linear(x, w, want, nullptr);
      Tensor y = poisoned({M, N});
      gpu().linear(gpu().to_device(x), gpu().to_device(w), y, nullptr);
      compare(fmt::format("linear gemv bf16 M={} K={} N={}", M, K, N), y, want, 1e-5f);
    }
}

// The decode GEMV's two forms (persistent, the default; plain with GEMMA4_GEMV_PERSISTENT=0) against the CPU:
// fewer columns than the grid's warp groups, many columns per group (the 4-warp form below 16K columns, one warp
// above), K whose 16-byte chunks do not fill the last load slot, and the q/k/v launch of three weights.
TEST(CudaOps, DecodeGemvForms) {
  REQUIRE_GPU();
  for (bool persistent : {true, false}) {
    if (!persistent) setenv("GEMMA4_GEMV_PERSISTENT", "0", 1);
    for (auto [K, N] : {std::pair<int64_t, int64_t>{264, 33}, {264, 20000}, {3840, 5000}, {4104, 3840}, {15360, 700}})
      for (int64_t M : {1, 4, 8}) {
        Tensor x = randn({M, K}), w = randn({N, K}, 0.02f, DType::BF16);
        Tensor want = Tensor::empty(DType::F32, {M, N});
        cpu().linear(x, w, want, nullptr);
        Tensor y = poisoned({M, N});
        gpu().linear(gpu().to_device(x), gpu().to_device(w), y, nullptr);
        compare(fmt::format("gemv {} M={} K={} N={}", persistent ? "persistent" : "plain", M, K, N), y, want, 1e-5f);
      }
    for (int64_t M : {1, 3}) {
      const int64_t K = 3840;
      Tensor x = randn({M, K}), wq = randn({4096, K}, 0.02f, DType::BF16), wk = randn({2048, K}, 0.02f, DType::BF16);
      Tensor wv = randn({1000, K}, 0.02f, DType::BF16);
      Tensor qc = Tensor::empty(DType::F32, {M, 4096}), kc = Tensor::empty(DType::F32, {M, 2048});
      Tensor vc = Tensor::empty(DType::F32, {M, 1000});
      cpu().linear_qkv(x, wq, wk, &wv, qc, kc, &vc);
      Tensor qg = poisoned({M, 4096}), kg = poisoned({M, 2048}), vg = poisoned({M, 1000});
      Tensor wvg = gpu().to_device(wv);
      gpu().linear_qkv(gpu().to_device(x), gpu().to_device(wq), gpu().to_device(wk), &wvg, qg, kg, &vg);
      const std::string form = persistent ? "persistent" : "plain";
      compare(fmt::format("gemv q/k/v {} M={} (q)", form, M), qg, qc, 1e-5f);
      compare(fmt::format("gemv q/k/v {} M={} (k)", form, M), kg, kc, 1e-5f);
      compare(fmt::format("gemv q/k/v {} M={} (v)", form, M), vg, vc, 1e-5f);
    }
    unsetenv("GEMMA4_GEMV_PERSISTENT");
  }
}

// A decode row's layer tail in one launch (layer_tail.cu: o GEMV, add + norms, gate/up, down, add + norms with
// grid barriers; GEMMA4_CUDA_LAYER_TAIL=1) against its composition on the same backend (the default) and on the
// CPU: a small
// shape (fewer columns than warp groups), the 12B's sliding (Q = 4096) and full (Q = 8192) layers. Twice each:
// the barrier's counters are left ready for the next launch.
TEST(CudaOps, LayerTailOneLaunch) {
  REQUIRE_GPU();
  for (auto [H, Q, I] : {std::tuple<int64_t, int64_t, int64_t>{256, 512, 1024}, {3840, 4096, 15360},
                         {3840, 8192, 15360}}) {
    Tensor x = randn({1, H}, 2.f), o = randn({1, Q});
    Tensor wo = randn({H, Q}, 0.02f, DType::BF16), wg = randn({I, H}, 0.02f, DType::BF16);
    Tensor wu = randn({I, H}, 0.02f, DType::BF16), wd = randn({H, I}, 0.02f, DType::BF16);
    Tensor w1 = randn({H}, 1.f, DType::BF16), w2 = randn({H}, 1.f, DType::BF16), w3 = randn({H}, 1.f, DType::BF16);
    Tensor w4 = randn({H}, 1.f, DType::BF16), s = Tensor::from_f32({0.7f}, {1}).to(DType::BF16);
    auto scratch = [&](Ops& ops, int64_t n) { return ops.alloc(DType::F32, {1, n}); };
    Tensor xc = Tensor::from_f32(x.f32_vector(), x.shape), next_c = scratch(cpu(), H);
    {
      Tensor a = scratch(cpu(), H), m = scratch(cpu(), H), g = scratch(cpu(), I), u = scratch(cpu(), I);
      Tensor f = scratch(cpu(), H);
      cpu().layer_tail(xc, o, wo, w1, w2, wg, wu, wd, w3, s, w4, 1e-6f, a, m, g, u, f, next_c);
    }
    Ops& gb = gpu_bf16();
    Tensor dwo = gb.to_device(wo), dwg = gb.to_device(wg), dwu = gb.to_device(wu), dwd = gb.to_device(wd);
    Tensor d1 = gb.to_device(w1), d2 = gb.to_device(w2), d3 = gb.to_device(w3), d4 = gb.to_device(w4);
    Tensor ds = gb.to_device(s), dox = gb.to_device(o);
    std::vector<float> first_x, first_next;
    // One launch twice, the default form (the gate/up GEMV with the norms as its prologue) twice, the second time
    // with attn_out, m and next in one buffer as forward.cpp passes them, then the composition.
    const char* forms[] = {"one launch", "one launch", "normed gate/up", "normed gate/up (shared buffer)",
                           "composition"};
    for (int run = 0; run < 5; ++run) {
      if (run < 2) setenv("GEMMA4_CUDA_LAYER_TAIL", "1", 1);
      if (run == 4) setenv("GEMMA4_CUDA_NORMED_GEMV", "0", 1);
      Tensor dx = gb.to_device(x), next = scratch(gb, H);
      Tensor a = scratch(gb, H), m = scratch(gb, H), g = scratch(gb, I), u = scratch(gb, I), f = scratch(gb, H);
      if (run == 3) a = m = next;
      gb.layer_tail(dx, dox, dwo, d1, d2, dwg, dwu, dwd, d3, ds, d4, 1e-6f, a, m, g, u, f, next);
      unsetenv("GEMMA4_CUDA_LAYER_TAIL");
      unsetenv("GEMMA4_CUDA_NORMED_GEMV");
      const std::string what = fmt::format("layer_tail {} H={} Q={} I={}", forms[run], H, Q, I);
      compare(what + " (x)", dx, xc, 2e-5f);
      compare(what + " (next)", next, next_c, 2e-5f);
      if (run == 0 || run == 2) {
        first_x = gb.to_host(dx).f32_vector(), first_next = gb.to_host(next).f32_vector();
      } else if (run == 1 || run == 3) {
        EXPECT_EQ(gb.to_host(dx).f32_vector(), first_x) << what;
        EXPECT_EQ(gb.to_host(next).f32_vector(), first_next) << what;
      }
    }
  }
}

// layer_tail with its closing add + norm deferred into the next layer's q/k/v projections (gemv_normed.cu's
// prologue; a KV-shared layer's finish_deferred), against the CPU's layer_tail + linear_qkv; then the same with
// GEMMA4_CUDA_NORMED_GEMV=0 (nothing deferred: the composition). The 12B's sliding (q/k/v) and full (q/k) shapes.
TEST(CudaOps, DeferredNormIntoQkv) {
  REQUIRE_GPU();
  for (auto [H, Q, I, NK, NV] : {std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>{256, 512, 1024, 256, 256},
                                 {3840, 4096, 15360, 2048, 2048}, {3840, 8192, 15360, 512, 0}}) {
    Tensor x = randn({1, H}, 2.f), o = randn({1, Q});
    Tensor wo = randn({H, Q}, 0.02f, DType::BF16), wg = randn({I, H}, 0.02f, DType::BF16);
    Tensor wu = randn({I, H}, 0.02f, DType::BF16), wd = randn({H, I}, 0.02f, DType::BF16);
    Tensor wq = randn({Q, H}, 0.02f, DType::BF16), wk = randn({NK, H}, 0.02f, DType::BF16);
    Tensor wv = randn({std::max<int64_t>(NV, 1), H}, 0.02f, DType::BF16);
    Tensor w1 = randn({H}, 1.f, DType::BF16), w2 = randn({H}, 1.f, DType::BF16), w3 = randn({H}, 1.f, DType::BF16);
    Tensor w4 = randn({H}, 1.f, DType::BF16), s = Tensor::from_f32({0.7f}, {1}).to(DType::BF16);
    auto scratch = [&](Ops& ops, int64_t n) { return ops.alloc(DType::F32, {1, n}); };
    Tensor xc = Tensor::from_f32(x.f32_vector(), x.shape), next_c = scratch(cpu(), H);
    Tensor qc = scratch(cpu(), Q), kc = scratch(cpu(), NK), vc = scratch(cpu(), std::max<int64_t>(NV, 1));
    {
      Tensor a = scratch(cpu(), H), m = scratch(cpu(), H), g = scratch(cpu(), I), u = scratch(cpu(), I);
      Tensor f = scratch(cpu(), H);
      cpu().layer_tail(xc, o, wo, w1, w2, wg, wu, wd, w3, s, w4, 1e-6f, a, m, g, u, f, next_c);
      cpu().linear_qkv(next_c, wq, wk, NV ? &wv : nullptr, qc, kc, NV ? &vc : nullptr);
    }
    Ops& gb = gpu_bf16();
    Tensor dwo = gb.to_device(wo), dwg = gb.to_device(wg), dwu = gb.to_device(wu), dwd = gb.to_device(wd);
    Tensor dwq = gb.to_device(wq), dwk = gb.to_device(wk), dwv = gb.to_device(wv);
    Tensor d1 = gb.to_device(w1), d2 = gb.to_device(w2), d3 = gb.to_device(w3), d4 = gb.to_device(w4);
    Tensor ds = gb.to_device(s), dox = gb.to_device(o);
    std::vector<float> first_q;
    for (int run = 0; run < 4; ++run) {  // deferred twice, finished by finish_deferred, composition
      if (run == 3) setenv("GEMMA4_CUDA_NORMED_GEMV", "0", 1);
      Tensor dx = gb.to_device(x), next = scratch(gb, H);
      Tensor a = scratch(gb, H), g = scratch(gb, I), u = scratch(gb, I), f = scratch(gb, H);
      Tensor q = scratch(gb, Q), k = scratch(gb, NK), v = scratch(gb, std::max<int64_t>(NV, 1));
      if (run % 2) a = next;  // as forward.cpp passes them in a decode step (attn_out, m and next one buffer)
      Ops::DeferredNorm d;
      gb.layer_tail(dx, dox, dwo, d1, d2, dwg, dwu, dwd, d3, ds, d4, 1e-6f, a, next, g, u, f, next, &d);
      EXPECT_EQ(d.pending, run < 3);
      if (run == 2) gb.finish_deferred(d);
      EXPECT_EQ(d.pending, run < 2);
      if (run < 3) gb.linear_qkv_deferred(d, dwq, dwk, NV ? &dwv : nullptr, q, k, NV ? &v : nullptr);
      else gb.linear_qkv(next, dwq, dwk, NV ? &dwv : nullptr, q, k, NV ? &v : nullptr);
      EXPECT_FALSE(d.pending);
      unsetenv("GEMMA4_CUDA_NORMED_GEMV");
      const char* forms[] = {"deferred", "deferred", "finished", "composition"};
      const std::string what = fmt::format("deferred norm ({}) H={} q/k/v {}/{}/{}", forms[run], H, Q, NK, NV);
      compare(what + " (x)", dx, xc, 2e-5f);
      compare(what + " (next)", next, next_c, 2e-5f);
      compare(what + " (q)", q, qc, 2e-5f);
      compare(what + " (k)", k, kc, 2e-5f);
      if (NV) compare(what + " (v)", v, vc, 2e-5f);
      if (run == 0) first_q = gb.to_host(q).f32_vector();
      if (run == 1) {
        EXPECT_EQ(gb.to_host(q).f32_vector(), first_q) << what;
      }
    }
  }
}

TEST(CudaOps, RmsNormAndLayerNorm) {
  REQUIRE_GPU();
  for (int64_t D : {16, 256, 512, 3840})
    for (int wkind : {0, 1, 2}) {  // no weight, F32, BF16
      const int64_t rows = 13;
      Tensor x = randn({rows, D}, 3.f), w = randn({D}, 1.f, wkind == 2 ? DType::BF16 : DType::F32);
      const Tensor* wp = wkind ? &w : nullptr;
      Tensor want = Tensor::empty(DType::F32, {rows, D});
      cpu().rmsnorm(x, wp, 1e-6f, want);
      Tensor dx = gpu().to_device(x), dw = gpu().to_device(w), y = poisoned({rows, D});
      gpu().rmsnorm(dx, wkind ? &dw : nullptr, 1e-6f, y);
      compare(fmt::format("rmsnorm D={} weight={}", D, wkind == 0 ? "none" : wkind == 1 ? "F32" : "BF16"), y, want);
      gpu().rmsnorm(dx, wkind ? &dw : nullptr, 1e-6f, dx);  // in place
      compare(fmt::format("rmsnorm in place D={}", D), dx, want);
    }
  for (int64_t D : {16, 300, 6912}) {
    Tensor x = randn({9, D}, 2.f), w = randn({D}), b = randn({D}, 1.f, DType::BF16);
    Tensor want = Tensor::empty(DType::F32, {9, D});
    cpu().layernorm(x, w, b, 1e-5f, want);
    Tensor y = poisoned({9, D});
    gpu().layernorm(gpu().to_device(x), gpu().to_device(w), gpu().to_device(b), 1e-5f, y);
    compare(fmt::format("layernorm D={}", D), y, want);
  }
}

TEST(CudaOps, Embedding) {
  REQUIRE_GPU();
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    Tensor table = randn({50, 24}, 1.f, dt);
    std::vector<int64_t> ids = {0, 49, 7, 7, 13};
    Tensor want = Tensor::empty(DType::F32, {5, 24});
    cpu().embedding(table, ids, 62.f, want);
    Tensor y = poisoned({5, 24});
    Tensor dt_table = gpu().to_device(table);
    gpu().embedding(dt_table, ids, 62.f, y);
    compare(fmt::format("embedding {}", dtype_name(dt)), y, want, 0.f);
    EXPECT_THROW(gpu().embedding(dt_table, {3, 50}, 1.f, y), Error);
  }
}

TEST(CudaOps, Rope) {
  REQUIRE_GPU();
  RopeParams local, global;
  local.type = "default";
  local.theta = 10000;
  global.type = "proportional";
  global.theta = 1e6;
  global.partial_rotary_factor = 0.25;
  for (auto [hd, p] : {std::pair<int, RopeParams*>{256, &local}, {512, &global}, {16, &local}}) {
    const int heads = 3;
    const int64_t T = 11;
    std::vector<int64_t> pos(T);
    for (int64_t t = 0; t < T; ++t) pos[t] = 1000 + 37 * t;
    std::vector<float> freq = rope_inv_freq(*p, hd);
    Tensor x = randn({T, int64_t(heads) * hd});
    Tensor want = x.to_f32();
    cpu().rope(want, heads, hd, pos.data(), freq);
    Tensor y = gpu().to_device(x);
    gpu().rope(y, heads, hd, pos.data(), freq);
    compare(fmt::format("rope head_dim={} {}", hd, p->type), y, want, 2e-5f);
  }
}

struct AttnCase {
  std::string name;
  int64_t T, S;
  int hq, hkv, hd, window;
  int64_t q0;           // position of the first query
  bool shuffle_keys;    // ring order: keys not sorted by position
  bool blocks;          // bidirectional block overlay
};

TEST(CudaOps, Attention) {
  REQUIRE_GPU();
  std::vector<AttnCase> cases = {
      {"gqa hd256 causal", 37, 37, 4, 2, 256, 0, 0, false, false},
      {"gqa hd256 window 8 < seq", 37, 37, 4, 2, 256, 8, 0, false, false},
      {"gqa hd256 window 100 > seq", 37, 37, 4, 2, 256, 100, 0, false, false},
      {"mqa hd512 causal", 29, 29, 4, 1, 512, 0, 0, false, false},
      {"mqa hd512 window 5", 29, 29, 4, 1, 512, 5, 0, false, false},
      {"decode gqa hd256 ring window 16", 1, 16, 8, 2, 256, 16, 40, true, false},
      {"decode mqa hd512 long", 1, 300, 16, 1, 512, 0, 299, false, false},
      {"chunk after cache hd256 window 8", 5, 13, 4, 4, 256, 8, 8, true, false},
      {"block overlay hd32 window 6", 20, 20, 2, 1, 32, 6, 0, false, true},
      {"hd100 (not a multiple of 32)", 9, 9, 2, 2, 100, 0, 0, false, false},
      {"long prefill hd256 window 64", 300, 300, 4, 2, 256, 64, 0, false, false},
      {"prefill after cache hd256 window 32", 40, 100, 4, 2, 256, 32, 60, false, false},
      {"prefill after cache mqa hd512", 24, 90, 8, 1, 512, 0, 66, false, false},
      {"prefill 1100 (several query chunks) gqa hd64 window 300", 1100, 1100, 4, 2, 64, 300, 0, false, false},
      {"decode mqa hd512 4096 keys (many splits)", 1, 4096, 16, 1, 512, 0, 4095, false, false},
      {"decode gqa hd256 ring window 1024", 1, 1024, 16, 8, 256, 1024, 5000, true, false},
      {"speculative 3 queries mqa hd512", 3, 700, 16, 1, 512, 0, 697, false, false},
      {"decode gqa g=4 hd512 3000 keys", 1, 3000, 8, 2, 512, 0, 2999, false, false},
      {"decode mqa hd512 40000 keys (several tiles per split)", 1, 40000, 16, 1, 512, 0, 39999, false, false},
      {"decode g=8 hd256 ring 700 keys window 500", 1, 700, 16, 2, 256, 500, 900, true, false},
      {"decode gqa g=2 hd256 ring 5000 keys (chunks > 64)", 1, 5000, 4, 2, 256, 0, 7000, true, false},
      {"decode gqa g=2 hd256 ring 700 keys window 300 (cluster slices of 88)", 1, 700, 8, 4, 256, 300, 900, true, false},
      // bf16 precision runs these through the fused prefill kernel (flash_attention.cu): several 64-row query
      // tiles and 32-key tiles, tile skipping by window, ring-ordered keys, bidirectional blocks.
      {"flash prefill 700 gqa hd256 window 200", 700, 700, 4, 2, 256, 200, 0, false, false},
      {"flash prefill 150 after 170 cached mqa hd512", 150, 320, 4, 1, 512, 0, 170, false, false},
      {"flash ring keys gqa hd256 window 48", 70, 118, 4, 2, 256, 48, 48, true, false},
      {"flash block overlay gqa hd256 window 6", 40, 40, 4, 2, 256, 6, 0, false, true},
      // head_dim 512 takes the fused kernel only for keys out of order or bidirectional blocks.
      {"flash ring keys mqa hd512", 40, 90, 4, 1, 512, 0, 50, true, false},
      {"flash block overlay mqa hd512", 36, 36, 4, 1, 512, 0, 0, false, true},
  };
  for (const AttnCase& c : cases) {
    std::vector<int64_t> qpos(c.T), kpos(c.S);
    for (int64_t t = 0; t < c.T; ++t) qpos[t] = c.q0 + t;
    const int64_t k0 = c.q0 + c.T - c.S;  // keys end at the last query
    for (int64_t s = 0; s < c.S; ++s) kpos[s] = k0 + s;
    if (c.shuffle_keys) std::rotate(kpos.begin(), kpos.begin() + c.S / 3, kpos.end());
    std::vector<int32_t> qb(c.T, -1), kb(c.S, -1);
    if (c.blocks) {
      for (int64_t t = 0; t < c.T; ++t) qb[t] = (t >= 4 && t < 12) ? 1 : (t >= 15 ? 2 : -1);
      for (int64_t s = 0; s < c.S; ++s) kb[s] = (kpos[s] >= 4 && kpos[s] < 12) ? 1 : (kpos[s] >= 15 ? 2 : -1);
    }
    AttnMask m;
    m.q_pos = qpos.data();
    m.k_pos = kpos.data();
    m.window = c.window;
    if (c.blocks) m.q_block = qb.data(), m.k_block = kb.data();
    Tensor q = randn({c.T, int64_t(c.hq) * c.hd}, 0.3f), k = randn({c.S, int64_t(c.hkv) * c.hd}, 0.3f),
           v = randn({c.S, int64_t(c.hkv) * c.hd});
    Tensor want = Tensor::empty(DType::F32, q.shape);
    cpu().attention(q, k, v, c.hq, c.hkv, c.hd, 1.0f, m, want);
    Tensor o = poisoned(q.shape);
    gpu().attention(gpu().to_device(q), gpu().to_device(k), gpu().to_device(v), c.hq, c.hkv, c.hd, 1.0f, m, o);
    compare("attention " + c.name, o, want, 2e-5f);
    // BF16 precision: tensor-core prefill (bf16 Q/K/V/P) or the fp32 split kernel for few queries.
    Tensor ob = gpu_bf16().alloc(DType::F32, q.shape);
    gpu_bf16().attention(gpu_bf16().to_device(q), gpu_bf16().to_device(k), gpu_bf16().to_device(v), c.hq, c.hkv, c.hd,
                         1.0f, m, ob);
    compare("attention bf16 " + c.name, ob, want, 3e-2f);
    // Keys/values from a bf16 KV cache: the reference reads the same rounded values. fp32 arithmetic (decode
    // kernel, fp32 GEMMs, split kernel) matches it closely; the tensor-core prefill to bf16 precision.
    Tensor kr = k.to(DType::BF16), vr = v.to(DType::BF16);
    Tensor want_r = Tensor::empty(DType::F32, q.shape);
    cpu().attention(q, kr.to_f32(), vr.to_f32(), c.hq, c.hkv, c.hd, 1.0f, m, want_r);
    Tensor oc = poisoned(q.shape);
    gpu().attention(gpu().to_device(q), gpu().to_device(kr), gpu().to_device(vr), c.hq, c.hkv, c.hd, 1.0f, m, oc);
    compare("attention bf16 cache (f32) " + c.name, oc, want_r, 2e-5f);
    Tensor ocb = poisoned(q.shape);
    gpu_bf16().attention(gpu().to_device(q), gpu().to_device(kr), gpu().to_device(vr), c.hq, c.hkv, c.hd, 1.0f, m,
                         ocb);
    // Decode with many heads per KV head (hd 256/512) runs on the tensor cores too (decode_attention.cu).
    const bool tc_decode = c.hq / c.hkv > 4 && (c.hd == 256 || c.hd == 512);
    compare("attention bf16 cache (bf16) " + c.name, ocb, want_r, c.T < 16 && !c.blocks && !tc_decode ? 2e-5f : 3e-2f);
    if (c.T == 1 && c.hd == 256 && c.hq == 2 * c.hkv) {  // one row at g = 2: the cluster merge above, the counter here
      setenv("GEMMA4_CUDA_CLUSTER_MERGE", "0", 1);
      Tensor occ = poisoned(q.shape);
      gpu_bf16().attention(gpu().to_device(q), gpu().to_device(kr), gpu().to_device(vr), c.hq, c.hkv, c.hd, 1.0f, m,
                           occ);
      unsetenv("GEMMA4_CUDA_CLUSTER_MERGE");
      compare("attention bf16 cache (bf16, counter merge) " + c.name, occ, want_r, 2e-5f);
    }
    // BF16 q and output (Ops::qkv_dtype) with the bf16 cache: read and written as they are by the tensor-core
    // prefill paths, through F32 copies elsewhere. The reference reads the same rounded queries.
    Tensor qr = q.to(DType::BF16);
    Tensor want_q = Tensor::empty(DType::F32, q.shape);
    cpu().attention(qr.to_f32(), kr.to_f32(), vr.to_f32(), c.hq, c.hkv, c.hd, 1.0f, m, want_q);
    Tensor oio = gpu_bf16().alloc(DType::BF16, q.shape);
    gpu_bf16().attention(gpu().to_device(qr), gpu().to_device(kr), gpu().to_device(vr), c.hq, c.hkv, c.hd, 1.0f, m,
                         oio);
    compare("attention bf16 io " + c.name, gpu().to_host(oio).to_f32(), want_q, 3e-2f);
  }
  // A query that sees no key gives zeros.
  std::vector<int64_t> qpos = {0}, kpos = {5, 6, 7};
  AttnMask m;
  m.q_pos = qpos.data();
  m.k_pos = kpos.data();
  Tensor q = randn({1, 64}), k = randn({3, 64}), v = randn({3, 64});
  Tensor o = poisoned({1, 64});
  gpu().attention(gpu().to_device(q), gpu().to_device(k), gpu().to_device(v), 1, 1, 64, 1.f, m, o);
  compare("attention no visible key -> 0", o, Tensor::zeros(DType::F32, {1, 64}), 0.f);
  // The same for the fused prefill kernel (bf16 precision, 16 queries, keys all in their future).
  std::vector<int64_t> qpos16(16), kpos32(32);
  std::iota(qpos16.begin(), qpos16.end(), int64_t(0));
  std::iota(kpos32.begin(), kpos32.end(), int64_t(100));
  AttnMask mf;
  mf.q_pos = qpos16.data();
  mf.k_pos = kpos32.data();
  Tensor of = poisoned({16, 2 * 256});
  gpu_bf16().attention(gpu().to_device(randn({16, 2 * 256})), gpu().to_device(randn({32, 256}).to(DType::BF16)),
                       gpu().to_device(randn({32, 256}).to(DType::BF16)), 2, 1, 256, 1.f, mf, of);
  compare("flash attention no visible key -> 0", of, Tensor::zeros(DType::F32, {16, 2 * 256}), 0.f);
}

// The wgmma prefill kernels (flash_wgmma.cu: bf16 q / o, consecutive keys; head_dim 256 with two query heads
// per KV head, head_dim 512 with 16) against the paths GEMMA4_CUDA_WGMMA=0 selects on the same bf16 inputs
// (flash_attention.cu's mma.sync kernel at 256, chunked cuBLAS at 512), at shapes with many query and key
// tiles: the 12B's sliding layers (16 / 8 heads, window 1024) and full layers (16 / 1, head_dim 512), prefills
// after cached keys, partial row tiles, tiny windows; and against the CPU where that is cheap.
TEST(CudaOps, FlashWgmmaMatchesOtherPaths) {
  REQUIRE_GPU();
  struct Case {
    const char* name;
    int64_t T, S;
    int hq, hkv, hd, window;
    bool cpu_ref;
  };
  const std::vector<Case> cases = {
      {"12B sliding shape, 1100 queries, window 1024", 1100, 1100, 16, 8, 256, 1024, false},
      {"600 queries after 300 cached keys, causal", 600, 900, 4, 2, 256, 0, true},
      {"130 queries, window 1", 130, 130, 4, 2, 256, 1, true},
      {"77 queries (partial row tile), window 40", 77, 77, 4, 2, 256, 40, true},
      {"12B full shape, hd512 16/1, 1000 queries", 1000, 1000, 16, 1, 512, 0, false},
      {"hd512 16/1, 130 queries after 70 cached (partial block)", 130, 200, 16, 1, 512, 0, true},
      {"hd512 32/2, window 50", 90, 90, 32, 2, 512, 50, true},
  };
  for (const Case& c : cases) {
    std::vector<int64_t> qpos(c.T), kpos(c.S);
    std::iota(kpos.begin(), kpos.end(), int64_t(0));
    std::iota(qpos.begin(), qpos.end(), c.S - c.T);
    AttnMask m;
    m.q_pos = qpos.data();
    m.k_pos = kpos.data();
    m.window = c.window;
    const int hd = c.hd;
    Tensor q = randn({c.T, int64_t(c.hq) * hd}, 0.5f).to(DType::BF16);
    Tensor k = randn({c.S, int64_t(c.hkv) * hd}, 0.5f).to(DType::BF16), v = randn({c.S, int64_t(c.hkv) * hd}).to(DType::BF16);
    Tensor qd = gpu().to_device(q), kd = gpu().to_device(k), vd = gpu().to_device(v);
    auto run = [&](bool wgmma) {
      if (!wgmma) setenv("GEMMA4_CUDA_WGMMA", "0", 1);
      Tensor o = gpu_bf16().alloc(DType::BF16, q.shape);
      gpu_bf16().attention(qd, kd, vd, c.hq, c.hkv, hd, 1.0f, m, o);
      unsetenv("GEMMA4_CUDA_WGMMA");
      return gpu().to_host(o).to_f32();
    };
    const Tensor other = run(false), wg = run(true);
    // Both round P and the output to bf16; they differ in the order of fp32 accumulation.
    compare(std::string("flash wgmma vs other path: ") + c.name, gpu().to_device(wg), other, 1e-2f);
    if (c.cpu_ref) {
      Tensor want = Tensor::empty(DType::F32, q.shape);
      cpu().attention(q.to_f32(), k.to_f32(), v.to_f32(), c.hq, c.hkv, hd, 1.0f, m, want);
      compare(std::string("flash wgmma vs cpu: ") + c.name, gpu().to_device(wg), want, 3e-2f);
    }
  }
}

// Several sequences' decode attention in one call (a batched decode step): rings and contiguous caches of
// different lengths, F32 and bf16 keys/values, against the CPU per sequence.
TEST(CudaOps, AttentionSegments) {
  REQUIRE_GPU();
  for (auto [hq, hkv, hd, window] : {std::tuple<int, int, int, int>{16, 8, 256, 64}, {16, 1, 512, 0}, {8, 2, 512, 0}})
    for (DType kv_dt : {DType::F32, DType::BF16}) {
      const std::vector<int64_t> lengths = {1, 37, 64, 200, 5};
      const int64_t B = int64_t(lengths.size()), qd = int64_t(hq) * hd, kvd = int64_t(hkv) * hd;
      Tensor q = randn({B, qd}, 0.3f);
      std::vector<Tensor> ks, vs, kd, vd;
      std::vector<std::vector<int64_t>> kpos(B), qpos(B), runs(B);
      std::vector<Ops::AttnSegment> cpu_segs(B), gpu_segs(B);
      kd.reserve(B), vd.reserve(B), ks.reserve(B), vs.reserve(B);
      for (int64_t b = 0; b < B; ++b) {
        const int64_t n = window > 0 ? std::min<int64_t>(lengths[b], window) : lengths[b];
        const int64_t last = lengths[b] + 10 * b;  // the query's position
        ks.push_back(randn({n, kvd}, 0.3f).to(kv_dt).to_f32());
        vs.push_back(randn({n, kvd}).to(kv_dt).to_f32());
        const int64_t r = n > 3 ? n / 3 : 0;  // rotated like a full ring
        for (int64_t j = 0; j < n; ++j) kpos[b].push_back(last - n + 1 + (j - r + n) % n);
        runs[b] = {n, last - n + 1, r};
        qpos[b] = {last};
        kd.push_back(gpu().to_device(ks[b].to(kv_dt)));
        vd.push_back(gpu().to_device(vs[b].to(kv_dt)));
        for (auto* seg : {&cpu_segs[b], &gpu_segs[b]}) {
          seg->row0 = b, seg->T = 1;
          seg->mask.q_pos = qpos[b].data();
          seg->mask.k_pos = kpos[b].data();
          seg->mask.window = window;
        }
        cpu_segs[b].k = &ks[b], cpu_segs[b].v = &vs[b];
        gpu_segs[b].k = &kd[b], gpu_segs[b].v = &vd[b];
        if (b % 2) gpu_segs[b].mask.k_run = runs[b].data();  // described, or found by the backend
      }
      Tensor want = Tensor::empty(DType::F32, q.shape), got = poisoned(q.shape);
      cpu().attention_segments(q, cpu_segs, hq, hkv, hd, 1.f, want);
      gpu().attention_segments(gpu().to_device(q), gpu_segs, hq, hkv, hd, 1.f, got);
      compare(fmt::format("attention_segments {}/{} hd {} window {} {}", hq, hkv, hd, window, dtype_name(kv_dt)), got,
              want, 2e-5f);
      // BF16 precision: the tensor-core decode for many heads per KV head on a bf16 cache.
      Tensor got_b = poisoned(q.shape);
      gpu_bf16().attention_segments(gpu().to_device(q), gpu_segs, hq, hkv, hd, 1.f, got_b);
      compare(fmt::format("attention_segments bf16 {}/{} hd {} window {} {}", hq, hkv, hd, window, dtype_name(kv_dt)),
              got_b, want, hq / hkv > 4 && kv_dt == DType::BF16 ? 3e-2f : 2e-5f);
    }
}

// The fused forms (ops.h) against the CPU's composition of the plain ops.
TEST(CudaOps, FusedForms) {
  REQUIRE_GPU();
  for (int64_t D : {3840, 100, 102}) {  // 102: not a multiple of 4 (the scalar add_rmsnorm kernel)
    Tensor x = randn({3, D}), f = randn({3, D}, 3.f), w = randn({D}, 1.f, DType::BF16);
    Tensor sc = Tensor::from_f32({0.7f}, {1}).to(DType::BF16);
    for (bool with_scale : {false, true}) {
      Tensor xc = x.to_f32(), fc = f.to_f32();
      cpu().add_rmsnorm(xc, fc, w, 1e-6f, with_scale ? &sc : nullptr);
      Tensor xg = gpu().to_device(x), fg = gpu().to_device(f), wg = gpu().to_device(w), sg = gpu().to_device(sc);
      gpu().add_rmsnorm(xg, fg, wg, 1e-6f, with_scale ? &sg : nullptr);
      compare(fmt::format("add_rmsnorm D={}{}", D, with_scale ? " *scale" : ""), xg, xc);
      compare(fmt::format("add_rmsnorm D={} (normed f)", D), fg, fc);
      // With the next block's pre-norm, written over f (the forward's aliasing).
      Tensor w2 = randn({D}, 1.f, DType::BF16);
      Tensor xc2 = x.to_f32(), fc2 = f.to_f32();
      cpu().add_rmsnorm_norm(xc2, fc2, w, 1e-6f, with_scale ? &sc : nullptr, w2, fc2);
      Tensor xg2 = gpu().to_device(x), fg2 = gpu().to_device(f);
      gpu().add_rmsnorm_norm(xg2, fg2, wg, 1e-6f, with_scale ? &sg : nullptr, gpu().to_device(w2), fg2);
      compare(fmt::format("add_rmsnorm_norm D={}{} (x)", D, with_scale ? " *scale" : ""), xg2, xc2);
      compare(fmt::format("add_rmsnorm_norm D={}{} (out over f)", D, with_scale ? " *scale" : ""), fg2, fc2);
      // A BF16 output (matmul_input_dtype of a bf16 prefill), into a tensor of its own, from f_in (F32 or BF16)
      // against the CPU's x_want / out_want.
      auto bf16_out = [&](const Tensor& f_in, const char* x_tag, const char* out_tag, const Tensor& x_want,
                          const Tensor& out_want) {
        Tensor xg = gpu_bf16().to_device(x), fg = gpu_bf16().to_device(f_in);
        Tensor ob = gpu_bf16().alloc(DType::BF16, {3, D});
        gpu_bf16().add_rmsnorm_norm(xg, fg, gpu_bf16().to_device(w), 1e-6f, with_scale ? &sg : nullptr,
                                    gpu_bf16().to_device(w2), ob);
        compare(fmt::format("add_rmsnorm_norm D={}{} ({})", D, with_scale ? " *scale" : "", x_tag), xg, x_want);
        compare(fmt::format("add_rmsnorm_norm D={}{} ({})", D, with_scale ? " *scale" : "", out_tag),
                gpu_bf16().to_host(ob).to_f32(), out_want, 8e-3f);
      };
      bf16_out(f, "x, bf16 out", "bf16 out", xc2, fc2);
      // A BF16 f (a bf16 prefill's GEMM outputs): the CPU reference reads the same rounded values.
      Tensor f16 = f.to(DType::BF16);
      Tensor xc4 = x.to_f32(), fc4 = f16.to_f32(), xc5 = x.to_f32(), fc5 = f16.to_f32();
      cpu().add_rmsnorm_norm(xc4, fc4, w, 1e-6f, with_scale ? &sc : nullptr, w2, fc4);
      cpu().add_rmsnorm(xc5, fc5, w, 1e-6f, with_scale ? &sc : nullptr);
      bf16_out(f16, "x, bf16 f", "bf16 f, bf16 out", xc4, fc4);
      for (bool host_scale : {false, true}) {  // a host scale takes the composition
        Tensor xg5 = gpu_bf16().to_device(x), fg5 = gpu_bf16().to_device(f16);
        gpu_bf16().add_rmsnorm(xg5, fg5, gpu_bf16().to_device(w), 1e-6f,
                               with_scale ? (host_scale ? &sc : &sg) : nullptr);
        compare(fmt::format("add_rmsnorm D={}{} (x, bf16 f{})", D, with_scale ? " *scale" : "",
                            host_scale ? ", host scale" : ""), xg5, xc5);
        compare(fmt::format("add_rmsnorm D={}{} (normed bf16 f)", D, with_scale ? " *scale" : ""),
                gpu_bf16().to_host(fg5).to_f32(), fc5, 8e-3f);
      }
    }
  }
  for (auto [nh, hd] : {std::pair<int, int>{16, 256}, {1, 512}, {4, 64}}) {
    const int64_t T = 5;
    Tensor x = randn({T, int64_t(nh) * hd}, 2.f), w = randn({hd}, 1.f, DType::BF16);
    std::vector<int64_t> pos = {0, 1, 7, 300, 4095};
    std::vector<float> freq(hd / 2);
    for (int j = 0; j < hd / 2; ++j) freq[j] = j % 5 == 4 ? 0.f : std::pow(10000.f, -2.f * j / hd);
    Tensor xc = x.to_f32();
    cpu().rmsnorm_rope(xc, w, 1e-6f, nh, hd, pos.data(), freq);
    Tensor xg = gpu().to_device(x);
    gpu().rmsnorm_rope(xg, gpu().to_device(w), 1e-6f, nh, hd, pos.data(), freq);
    compare(fmt::format("rmsnorm_rope heads={} hd={}", nh, hd), xg, xc);
  }
  // The gate/up GEMV with 4 (default), 2 and 1 warps per column; K = 264: most of a column's warps see no chunk.
  for (const char* ks : {"4", "2", "1"}) {
    setenv("GEMMA4_GELU_KS", ks, 1);
    for (int64_t M : {1, 3, 20})
      for (int64_t K : {3840, 264})
        for (DType wdt : {DType::BF16, DType::F32}) {
          const int64_t N = 136;
          Tensor x = randn({M, K}), wg = randn({N, K}, 0.02f, wdt), wu = randn({N, K}, 0.02f, wdt);
          Tensor want = Tensor::empty(DType::F32, {M, N}), scratch = Tensor::empty(DType::F32, {M, N});
          cpu().linear_gelu_mul(x, wg, wu, want, scratch);
          Tensor out = poisoned({M, N}), gs = gpu().alloc(DType::F32, {M, N});
          gpu().linear_gelu_mul(gpu().to_device(x), gpu().to_device(wg), gpu().to_device(wu), out, gs);
          compare(fmt::format("linear_gelu_mul ks={} w={} M={} K={} N={}", ks, dtype_name(wdt), M, K, N), out, want,
                  1e-5f);
        }
  }
  unsetenv("GEMMA4_GELU_KS");
  // Matmul inputs kept in bf16 (matmul_input_dtype): BF16 for the tensor-core rows, F32 for one row and in f32
  // precision; BF16 inputs give the results of their F32 values on every path (the GEMMs read them as they
  // are, the others widen them), including weights the tensor-core path does not take (F16).
  EXPECT_EQ(gpu_bf16().matmul_input_dtype(20), DType::BF16);
  EXPECT_EQ(gpu_bf16().matmul_input_dtype(1), DType::F32);
  EXPECT_EQ(gpu().matmul_input_dtype(20), DType::F32);
  EXPECT_EQ(cpu().matmul_input_dtype(20), DType::F32);
  for (DType wdt : {DType::BF16, DType::F16})
    for (int64_t M : {1, 20}) {
      const int64_t K = 384, N = 136;
      Tensor xb = randn({M, K}).to(DType::BF16), w = randn({N, K}, 0.05f, wdt);
      Tensor want = Tensor::empty(DType::F32, {M, N});
      cpu().linear(xb.to_f32(), w, want);
      Tensor y = gpu_bf16().alloc(DType::F32, {M, N});
      gpu_bf16().linear(gpu_bf16().to_device(xb), gpu_bf16().to_device(w), y);
      compare(fmt::format("linear bf16 input w={} M={}", dtype_name(wdt), M), y, want, 2e-2f);
    }
  {
    const int64_t M = 20, K = 384, I = 520;
    Tensor xb = randn({M, K}).to(DType::BF16), wg = randn({I, K}, 0.05f, DType::BF16);
    Tensor wu = randn({I, K}, 0.05f, DType::BF16), wd = randn({K, I}, 0.05f, DType::BF16);
    Tensor g = Tensor::empty(DType::F32, {M, I}), u = Tensor::empty(DType::F32, {M, I});
    Tensor want = Tensor::empty(DType::F32, {M, K});
    cpu().feed_forward(xb.to_f32(), wg, wu, wd, g, u, want);
    Tensor gg = gpu_bf16().alloc(DType::F32, {M, I}), gu = gpu_bf16().alloc(DType::F32, {M, I});
    Tensor out = gpu_bf16().alloc(DType::F32, {M, K});
    gpu_bf16().feed_forward(gpu_bf16().to_device(xb), gpu_bf16().to_device(wg), gpu_bf16().to_device(wu),
                            gpu_bf16().to_device(wd), gg, gu, out);
    compare("feed_forward bf16 input M=20", out, want, 2e-2f);
    Tensor out16 = gpu_bf16().alloc(DType::BF16, {M, K});  // a BF16 output (a bf16 prefill's down projection)
    gpu_bf16().feed_forward(gpu_bf16().to_device(xb), gpu_bf16().to_device(wg), gpu_bf16().to_device(wu),
                            gpu_bf16().to_device(wd), gg, gu, out16);
    compare("feed_forward bf16 input, bf16 output M=20", gpu_bf16().to_host(out16).to_f32(), want, 2e-2f);
    Tensor wq = randn({512, K}, 0.05f, DType::F16), wk = randn({256, K}, 0.05f, DType::F16);
    Tensor qc = Tensor::empty(DType::F32, {M, 512}), kc = Tensor::empty(DType::F32, {M, 256});
    cpu().linear_qkv(xb.to_f32(), wq, wk, nullptr, qc, kc, nullptr);
    Tensor qg = gpu_bf16().alloc(DType::F32, {M, 512}), kg = gpu_bf16().alloc(DType::F32, {M, 256});
    gpu_bf16().linear_qkv(gpu_bf16().to_device(xb), gpu_bf16().to_device(wq), gpu_bf16().to_device(wk), nullptr, qg,
                          kg, nullptr);
    compare("linear_qkv bf16 input, F16 weights (q)", qg, qc, 2e-2f);
    compare("linear_qkv bf16 input, F16 weights (k)", kg, kc, 2e-2f);
  }
  // The dense feed-forward: decode rows through the GEMVs, more rows in bf16 precision through cuBLASLt with
  // bf16 intermediates (F32-stored weights through their bf16 copies).
  for (int64_t M : {1, 3, 37})
    for (DType wdt : {DType::BF16, DType::F32}) {
      const int64_t K = 384, I = 520, N = 136;
      Tensor x = randn({M, K}), wg = randn({I, K}, 0.05f, wdt), wu = randn({I, K}, 0.05f, wdt);
      Tensor wd = randn({N, I}, 0.05f, wdt);
      Tensor g = Tensor::empty(DType::F32, {M, I}), u = Tensor::empty(DType::F32, {M, I});
      Tensor want = Tensor::empty(DType::F32, {M, N});
      cpu().feed_forward(x, wg, wu, wd, g, u, want);
      for (Ops* o : {&gpu(), &gpu_bf16()}) {
        const bool bf = o == &gpu_bf16();
        Tensor gg = o->alloc(DType::F32, {M, I}), gu = o->alloc(DType::F32, {M, I}), out = poisoned({M, N});
        o->feed_forward(o->to_device(x), o->to_device(wg), o->to_device(wu), o->to_device(wd), gg, gu, out);
        compare(fmt::format("feed_forward{} w={} M={} K={} I={} N={}", bf ? " bf16" : "", dtype_name(wdt), M, K, I, N),
                out, want, bf ? 2e-2f : 1e-5f);
        if (!bf || wdt != DType::BF16) continue;
        // Gate and up in one allocation (as Model packs them): one GEMM of 2I columns in a prefill.
        Tensor both = o->alloc(DType::BF16, {2 * I, K});
        Tensor pg = both.slice_rows(0, I), pu = both.slice_rows(I, 2 * I);
        o->copy(wg, pg), o->copy(wu, pu);
        Tensor packed = poisoned({M, N});
        o->feed_forward(o->to_device(x), pg, pu, o->to_device(wd), gg, gu, packed);
        const std::string what = fmt::format("feed_forward bf16 gate|up packed M={} K={} I={} N={}", M, K, I, N);
        compare(what, packed, want, 2e-2f);
        compare(what + " (against unpacked)", packed, o->to_host(out), 1e-3f);
      }
    }
  // The attention inputs of a layer: q/k/v projections in one launch (3 or 2 segments, K = V), then the fused
  // per-head norms + RoPE, then a KV cache store at a row; against the CPU composition.
  for (auto [nq, nkv, hd, k_eq_v] : {std::tuple<int, int, int, bool>{16, 8, 256, false}, {16, 1, 512, true},
                                     {4, 2, 64, false}})
    for (int64_t M : {1, 3, 20})
      for (DType wdt : {DType::BF16, DType::F32}) {
        const int64_t K = 384;
        Tensor x = randn({M, K}), wq = randn({int64_t(nq) * hd, K}, 0.05f, wdt), wk = randn({int64_t(nkv) * hd, K}, 0.05f, wdt);
        Tensor wv = randn({int64_t(nkv) * hd, K}, 0.05f, wdt);
        Tensor nqw = randn({hd}, 1.f, DType::BF16), nkw = randn({hd}, 1.f, DType::BF16);
        std::vector<int64_t> pos;
        for (int64_t t = 0; t < M; ++t) pos.push_back(t * 37 + 5);
        std::vector<float> freq(hd / 2);
        for (int j = 0; j < hd / 2; ++j) freq[j] = j % 5 == 4 ? 0.f : std::pow(10000.f, -2.f * j / hd);
        Tensor qc = Tensor::empty(DType::F32, {M, int64_t(nq) * hd}), kc = Tensor::empty(DType::F32, {M, int64_t(nkv) * hd});
        Tensor vc = Tensor::empty(DType::F32, {M, int64_t(nkv) * hd});
        cpu().linear_qkv(x, wq, wk, k_eq_v ? nullptr : &wv, qc, kc, k_eq_v ? nullptr : &vc);
        cpu().qkv_norm_rope(qc, kc, vc, k_eq_v, nqw, nkw, 1e-6f, nq, nkv, hd, pos.data(), freq);
        Tensor qg = poisoned(qc.shape), kg = poisoned(kc.shape), vg = poisoned(vc.shape);
        Tensor wvg = gpu().to_device(wv);
        gpu().linear_qkv(gpu().to_device(x), gpu().to_device(wq), gpu().to_device(wk), k_eq_v ? nullptr : &wvg, qg, kg,
                         k_eq_v ? nullptr : &vg);
        gpu().qkv_norm_rope(qg, kg, vg, k_eq_v, gpu().to_device(nqw), gpu().to_device(nkw), 1e-6f, nq, nkv, hd,
                            pos.data(), freq);
        const std::string what = fmt::format("qkv {}/{} hd {}{} w={} M={}", nq, nkv, hd, k_eq_v ? " K=V" : "",
                                             dtype_name(wdt), M);
        compare(what + " (q)", qg, qc, 1e-4f);
        compare(what + " (k)", kg, kc, 1e-4f);
        compare(what + " (v)", vg, vc, 1e-4f);
        {  // bf16 precision: tensor-core GEMMs from one bf16 copy of x when M > 1
          Tensor q3 = poisoned(qc.shape), k3 = poisoned(kc.shape), v3 = poisoned(vc.shape);
          Tensor wvb = gpu_bf16().to_device(wv);
          gpu_bf16().linear_qkv(gpu_bf16().to_device(x), gpu_bf16().to_device(wq), gpu_bf16().to_device(wk),
                                k_eq_v ? nullptr : &wvb, q3, k3, k_eq_v ? nullptr : &v3);
          Tensor ql = Tensor::empty(DType::F32, qc.shape), kl = Tensor::empty(DType::F32, kc.shape);
          Tensor vl = Tensor::empty(DType::F32, vc.shape);
          cpu().linear_qkv(x, wq, wk, k_eq_v ? nullptr : &wv, ql, kl, k_eq_v ? nullptr : &vl);
          compare(what + " bf16 (q proj)", q3, ql, 2e-2f);
          compare(what + " bf16 (k proj)", k3, kl, 2e-2f);
          if (!k_eq_v) compare(what + " bf16 (v proj)", v3, vl, 2e-2f);
          // BF16 q/k/v (Ops::qkv_dtype): the projections written in bf16, then the norms + RoPE on them (the
          // warp kernel for hd 256/512 from 16 rows, F32 copies otherwise); the reference starts from the
          // same rounded projections.
          Tensor q4 = gpu_bf16().alloc(DType::BF16, qc.shape), k4 = gpu_bf16().alloc(DType::BF16, kc.shape);
          Tensor v4 = gpu_bf16().alloc(DType::BF16, vc.shape);
          gpu_bf16().linear_qkv(gpu_bf16().to_device(x), gpu_bf16().to_device(wq), gpu_bf16().to_device(wk),
                                k_eq_v ? nullptr : &wvb, q4, k4, k_eq_v ? nullptr : &v4);
          Tensor qh = gpu().to_host(q4).to_f32(), kh = gpu().to_host(k4).to_f32();
          Tensor vh = k_eq_v ? Tensor::empty(DType::F32, vc.shape) : gpu().to_host(v4).to_f32();
          compare(what + " bf16 out (q proj)", qh, ql, 2e-2f);
          compare(what + " bf16 out (k proj)", kh, kl, 2e-2f);
          cpu().qkv_norm_rope(qh, kh, vh, k_eq_v, nqw, nkw, 1e-6f, nq, nkv, hd, pos.data(), freq);
          gpu_bf16().qkv_norm_rope(q4, k4, v4, k_eq_v, gpu().to_device(nqw), gpu().to_device(nkw), 1e-6f, nq, nkv, hd,
                                   pos.data(), freq);
          compare(what + " bf16 norms (q)", gpu().to_host(q4).to_f32(), qh, 1e-2f);
          compare(what + " bf16 norms (k)", gpu().to_host(k4).to_f32(), kh, 1e-2f);
          compare(what + " bf16 norms (v)", gpu().to_host(v4).to_f32(), vh, 1e-2f);
        }
        // store_kv: rows [row, row + M) of a cache
        const int64_t rows = 64, row = 41;
        Tensor ck = Tensor::empty(DType::F32, {rows, int64_t(nkv) * hd}), cv = Tensor::empty(DType::F32, ck.shape);
        std::fill(ck.ptr<float>(), ck.ptr<float>() + ck.numel(), 0.5f);
        std::fill(cv.ptr<float>(), cv.ptr<float>() + cv.numel(), -0.5f);
        Tensor gk = gpu().to_device(ck), gv = gpu().to_device(cv);
        cpu().store_kv(kc, vc, ck, cv, row);
        gpu().store_kv(kg, vg, gk, gv, row);
        compare(what + " (store_kv k)", gk, ck, 1e-4f);
        compare(what + " (store_kv v)", gv, cv, 1e-4f);
        // A decode step's KV appends fused into the norms (qkv_norm_rope's `append`): row t into cache t % 2 at
        // row (row + 5 t) % rows, fp32 and bf16 caches. The q/k/v outputs as above; the cache rows equal the op's
        // own k/v rows (bf16: rounded), every other row untouched.
        for (DType cdt : {DType::F32, DType::BF16}) {
          Tensor q2 = poisoned(qc.shape), k2 = poisoned(kc.shape), v2 = poisoned(vc.shape);
          gpu().linear_qkv(gpu().to_device(x), gpu().to_device(wq), gpu().to_device(wk), k_eq_v ? nullptr : &wvg, q2,
                           k2, k_eq_v ? nullptr : &v2);
          Tensor cache_k[2], cache_v[2], want_k[2], want_v[2];
          for (int i = 0; i < 2; ++i) {
            want_k[i] = Tensor::empty(DType::F32, ck.shape), want_v[i] = Tensor::empty(DType::F32, ck.shape);
            std::fill(want_k[i].ptr<float>(), want_k[i].ptr<float>() + ck.numel(), 0.25f * float(i + 1));
            std::fill(want_v[i].ptr<float>(), want_v[i].ptr<float>() + ck.numel(), -0.25f * float(i + 1));
            Tensor hk = Tensor::empty(cdt, ck.shape), hv = Tensor::empty(cdt, ck.shape);
            for (int64_t j = 0; j < ck.numel(); ++j) {
              if (cdt == DType::F32) hk.ptr<float>()[j] = want_k[i].ptr<float>()[j], hv.ptr<float>()[j] = want_v[i].ptr<float>()[j];
              else hk.ptr<uint16_t>()[j] = f32_to_bf16(want_k[i].ptr<float>()[j]), hv.ptr<uint16_t>()[j] = f32_to_bf16(want_v[i].ptr<float>()[j]);
            }
            cache_k[i] = gpu().to_device(hk), cache_v[i] = gpu().to_device(hv);
          }
          std::vector<Ops::KVRow> append;
          for (int64_t t = 0; t < M; ++t)
            append.push_back({k2.slice_rows(t, t + 1), v2.slice_rows(t, t + 1), &cache_k[t % 2], &cache_v[t % 2],
                              (row + 5 * t) % rows});
          gpu().qkv_norm_rope(q2, k2, v2, k_eq_v, gpu().to_device(nqw), gpu().to_device(nkw), 1e-6f, nq, nkv, hd,
                              pos.data(), freq, &append);
          const std::string w2 = what + " + append " + dtype_name(cdt);
          compare(w2 + " (q)", q2, qc, 1e-4f);
          compare(w2 + " (k)", k2, kc, 1e-4f);
          compare(w2 + " (v)", v2, vc, 1e-4f);
          const Tensor hk2 = gpu().to_host(k2), hv2 = gpu().to_host(v2);
          const int64_t width = kc.dim(1);
          for (int64_t t = 0; t < M; ++t)
            for (int64_t j = 0; j < width; ++j) {
              float kv = hk2.ptr<float>()[t * width + j], vv = hv2.ptr<float>()[t * width + j];
              if (cdt == DType::BF16) kv = round_to_bf16(kv), vv = round_to_bf16(vv);
              want_k[t % 2].ptr<float>()[((row + 5 * t) % rows) * width + j] = kv;
              want_v[t % 2].ptr<float>()[((row + 5 * t) % rows) * width + j] = vv;
            }
          for (int i = 0; i < 2; ++i) {
            compare(w2 + fmt::format(" (cache k{})", i), cache_k[i], want_k[i], 0.f);
            compare(w2 + fmt::format(" (cache v{})", i), cache_v[i], want_v[i], 0.f);
          }
        }
      }
}

TEST(CudaOps, Elementwise) {
  REQUIRE_GPU();
  const int64_t n = 100003;
  Tensor a = randn({n}, 3.f), b = randn({n}, 3.f);
  Tensor da = gpu().to_device(a), db = gpu().to_device(b);
  {
    Tensor want = Tensor::empty(DType::F32, {n});
    cpu().gelu_tanh_mul(a, b, want);
    Tensor y = poisoned({n});
    gpu().gelu_tanh_mul(da, db, y);
    compare("gelu_tanh_mul", y, want, 1e-5f);
    {  // a multiple of 4 (the float4 kernel)
      const int64_t n4 = n - 3;
      Tensor want4 = Tensor::empty(DType::F32, {n4}), y4 = poisoned({n4});
      cpu().gelu_tanh_mul(a.slice_rows(0, n4), b.slice_rows(0, n4), want4);
      gpu().gelu_tanh_mul(da.slice_rows(0, n4), db.slice_rows(0, n4), y4);
      compare("gelu_tanh_mul (float4)", y4, want4, 1e-5f);
    }
    cpu().gelu_tanh(a, want);
    gpu().gelu_tanh(da, y);
    compare("gelu_tanh", y, want, 1e-5f);
    cpu().add(a, b, want);
    gpu().add(da, db, y);
    compare("add", y, want, 0.f);
    Tensor alias = gpu().to_device(a);
    gpu().add(alias, db, alias);
    compare("add (out aliases a)", alias, want, 0.f);
  }
  for (DType sdt : {DType::F32, DType::BF16}) {
    Tensor s = Tensor::from_f32({0.8125f}, {1}).to(sdt);
    Tensor want = a.to_f32();
    cpu().scale(want, s);
    Tensor y = gpu().to_device(a);
    gpu().scale(y, gpu().to_device(s));
    compare(fmt::format("scale by device {} tensor", dtype_name(sdt)), y, want, 0.f);
  }
  {
    Tensor want = a.to_f32();
    cpu().scale(want, 0.70710678f);
    Tensor y = gpu().to_device(a);
    gpu().scale(y, 0.70710678f);
    compare("scale by constant", y, want, 0.f);
  }
  {
    Tensor big = randn({n}, 40.f);
    Tensor want = big.to_f32();
    cpu().softcap(want, 30.f);
    Tensor y = gpu().to_device(big);
    gpu().softcap(y, 30.f);
    compare("softcap 30", y, want, 1e-6f);
  }
}

TEST(CudaOps, RejectsHostTensorsAndBackward) {
  REQUIRE_GPU();
  Tensor x = randn({2, 4}), w = randn({3, 4}), y = gpu().alloc(DType::F32, {2, 3});
  EXPECT_THROW(gpu().linear(x, gpu().to_device(w), y), Error);
  Tensor dw = gpu().to_device(w);
  EXPECT_THROW(gpu().linear_backward(x, dw, y, nullptr, false, nullptr), Error);
}

// ---- whole models -------------------------------------------------------------------------------------
std::vector<std::string> fixture_dirs() {
  std::vector<std::string> dirs;
  fs::path root = fs::path(test::source_dir()) / "tests" / "fixtures";
  if (!fs::exists(root)) return dirs;
  for (auto& e : fs::directory_iterator(root))
    if (e.is_directory() && fs::exists(e.path() / "reference.safetensors")) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

Tensor opt(const SafetensorsFile& f, const std::string& name) { return f.has(name) ? f.get(name) : Tensor{}; }
int64_t argmax(const float* p, int64_t n) { return std::max_element(p, p + n) - p; }

class CudaParity : public ::testing::TestWithParam<std::string> {};

// The fixture's inputs through a model; logits [T, V] on the host.
Tensor fixture_logits(Model& m, const std::string& dir) {
  auto in = SafetensorsFile::open(dir + "/inputs.safetensors");
  MultimodalInputs mm;
  mm.pixel_values = opt(*in, "pixel_values").to_f32();
  if (in->has("image_position_ids"))
    mm.image_position_ids = Tensor::from_i64(in->get("image_position_ids").i64_vector(), in->get("image_position_ids").shape);
  mm.input_features = opt(*in, "input_features").to_f32();
  KVCache c = m.new_cache();
  return m.forward(in->get("input_ids").i64_vector(), c, &mm, true);
}

struct Agreement {
  double min_cos = 1.0;
  int top1 = 0;
  float maxdiff = 0;
};
Agreement agreement(const float* g, const float* w, int64_t T, int64_t V) {
  Agreement r;
  for (int64_t t = 0; t < T; ++t) {
    double dot = 0, ng = 0, nw = 0;
    for (int64_t v = 0; v < V; ++v) {
      const double a = g[t * V + v], b = w[t * V + v];
      dot += a * b, ng += a * a, nw += b * b;
      r.maxdiff = std::max(r.maxdiff, float(std::fabs(a - b)));
    }
    r.min_cos = std::min(r.min_cos, dot / std::sqrt(ng * nw));
    r.top1 += argmax(g + t * V, V) == argmax(w + t * V, V);
  }
  return r;
}

// BF16 precision (tensor-core GEMMs and prefill attention, bf16 copies of fp32 weights) on the HF fixtures,
// against HF's fp32 reference, next to HF's own bf16 run where the fixture stores one. These random tiny
// models are built to be ill-conditioned (final norm x14 spreads the logits; MoE routers with tiny margins
// flip experts), so bf16 moves them far: HF's own bf16 run gets cosine 0.997 / top-1 86% on unified_bf16
// and 0.82 / 40% on gemma4_moe_bf16. The figures are printed; the assertion is a sanity floor (a broken
// kernel gives top-1 near 1/V): 50%, and 30% on the MoE fixtures, below HF's own 40% there (the prefill's
// feed-forward rounds its gate/up projections to bf16, as HF's bf16 run does; that moved gemma4_moe_f32 from
// above 50% to 19/40). The cosine >= 0.999 / top-1 >= 98% criterion is asserted on a trained model below
// (CudaBf16.TrainedDemoModelTracksFp32).
TEST_P(CudaParity, Bf16PrecisionOnFixtures) {
  REQUIRE_GPU();
  const std::string dir = GetParam();
  auto gm = Model::load(dir, {}, Device::CUDA, Precision::BF16);
  ASSERT_EQ(gm->ops().precision(), Precision::BF16);
  Tensor got = fixture_logits(*gm, dir);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  Tensor want = ref->has("logits_f32_bf16scale") ? ref->get("logits_f32_bf16scale") : ref->get("logits");
  ASSERT_EQ(got.shape, want.shape);
  const int64_t T = want.dim(0), V = want.dim(1);
  std::vector<float> w = want.f32_vector();
  Agreement ours = agreement(got.ptr<float>(), w.data(), T, V);
  std::string hf = "(no HF bf16 run stored)";
  if (ref->has("logits_bf16")) {
    std::vector<float> hb = ref->get("logits_bf16").f32_vector();
    Agreement h = agreement(hb.data(), ref->get("logits").f32_vector().data(), T, V);
    hf = fmt::format("HF bf16 vs HF fp32: min cosine {:.6f}, top1 {}/{}", h.min_cos, h.top1, T);
  }
  std::printf("  [cuda bf16] %s: min cosine %.6f, top1 %d/%lld, max|gpu-HF| %.3g; %s\n",
              fs::path(dir).filename().c_str(), ours.min_cos, ours.top1, (long long)T, ours.maxdiff, hf.c_str());
  const bool moe = fs::path(dir).filename().string().find("moe") != std::string::npos;
  EXPECT_GE(double(ours.top1) / T, moe ? 0.3 : 0.5);
}

TEST_P(CudaParity, LogitsMatchHuggingFaceAndCpu) {
  REQUIRE_GPU();
  const std::string dir = GetParam();
  auto gm = Model::load(dir, {}, Device::CUDA, Precision::F32);
  auto cm = Model::load(dir, {}, Device::CPU);
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  Tensor got = fixture_logits(*gm, dir);
  Tensor cpu_logits = fixture_logits(*cm, dir);
  Tensor want = ref->has("logits_f32_bf16scale") ? ref->get("logits_f32_bf16scale") : ref->get("logits");
  ASSERT_EQ(got.shape, want.shape);
  ASSERT_EQ(got.device, Device::CPU);
  const int64_t T = want.dim(0), V = want.dim(1);
  std::vector<float> w = want.f32_vector();
  const Agreement hf = agreement(got.ptr<float>(), w.data(), T, V);
  const Agreement cpu = agreement(got.ptr<float>(), cpu_logits.ptr<float>(), T, V);
  bool fp32 = gm->weights().embed_tokens.dtype == DType::F32;
  std::printf("  [cuda] %s: T=%lld V=%lld max|gpu-HF|=%.3g max|gpu-cpu|=%.3g min cosine=%.7f top1(HF)=%d/%lld "
              "top1(cpu)=%d/%lld\n",
              fs::path(dir).filename().c_str(), (long long)T, (long long)V, hf.maxdiff, cpu.maxdiff, hf.min_cos,
              hf.top1, (long long)T, cpu.top1, (long long)T);
  // Both backends are within 1e-3 of HF (checked below and in test_model), so within 2e-3 of each other.
  EXPECT_LE(cpu.maxdiff, 2e-3f);
  EXPECT_EQ(cpu.top1, T);
  if (fp32) {
    EXPECT_LE(hf.maxdiff, 1e-3f);
    EXPECT_EQ(hf.top1, T);
  } else {
    EXPECT_GE(hf.min_cos, 0.999);
    EXPECT_GE(double(hf.top1) / T, 0.98);
  }
}

TEST_P(CudaParity, GreedyGenerationMatchesCpuAndHuggingFace) {
  REQUIRE_GPU();
  const std::string dir = GetParam();
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  if (!ref->has("gen_ids")) GTEST_SKIP() << "no generation reference in " << dir;
  auto gm = Model::load(dir, {}, Device::CUDA, Precision::F32);
  auto cm = Model::load(dir, {}, Device::CPU);
  std::vector<int64_t> prompt = ref->get("gen_prompt_ids").i64_vector();
  std::vector<int64_t> want =
      (ref->has("gen_ids_f32_bf16scale") ? ref->get("gen_ids_f32_bf16scale") : ref->get("gen_ids")).i64_vector();
  GenerateOptions o = default_generate_options(gm->config());
  o.max_new_tokens = int(want.size());
  o.ignore_eos = true;
  std::vector<int64_t> got = generate(*gm, prompt, o);
  EXPECT_EQ(got, generate(*cm, prompt, o));
  EXPECT_EQ(got, want);
  if (ref->has("gen_ids_eos")) {
    GenerateOptions e = default_generate_options(gm->config());
    e.max_new_tokens = int(want.size());
    EXPECT_EQ(generate(*gm, prompt, e), ref->get("gen_ids_eos").i64_vector());
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaParity, ::testing::ValuesIn(fixture_dirs()),
                         [](const auto& info) { return fs::path(info.param).filename().string(); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(CudaParity);

// Random tiny models with every feature: prefill, step-by-step decode (device ring cache) and a chunk
// equal one full forward on the GPU, and the GPU equals the CPU.

void prefill_decode_case(bool ple, bool moe, DType dt) {
  ModelConfig cfg = tiny_config(ple, moe);
  Model gm(cfg, random_weights(cfg, dt, 7), make_cuda_ops());
  Model cm(cfg, random_weights(cfg, dt, 7));
  std::vector<int64_t> ids;
  for (int i = 0; i < 19; ++i) ids.push_back((i * 37 + 11) % 97);
  KVCache fc = gm.new_cache(), cc = cm.new_cache();
  Tensor full = gm.forward(ids, fc, nullptr, true);
  Tensor ref = cm.forward(ids, cc, nullptr, true);
  const int64_t V = full.dim(1);
  float cpu_diff = 0;
  for (int64_t i = 0; i < full.numel(); ++i)
    cpu_diff = std::max(cpu_diff, std::fabs(full.ptr<float>()[i] - ref.ptr<float>()[i]));
  KVCache c = gm.new_cache();
  std::vector<std::vector<float>> rows;
  Tensor first = gm.forward(std::vector<int64_t>(ids.begin(), ids.begin() + 7), c, nullptr, true);
  for (int64_t t = 0; t < 7; ++t) rows.emplace_back(first.ptr<float>() + t * V, first.ptr<float>() + (t + 1) * V);
  for (size_t t = 7; t < 16; ++t) {
    Tensor l = gm.forward({ids[t]}, c, nullptr, false);
    rows.emplace_back(l.ptr<float>(), l.ptr<float>() + V);
  }
  Tensor chunk = gm.forward(std::vector<int64_t>(ids.begin() + 16, ids.end()), c, nullptr, true);
  for (int64_t r = 0; r < chunk.dim(0); ++r) rows.emplace_back(chunk.ptr<float>() + r * V, chunk.ptr<float>() + (r + 1) * V);
  ASSERT_EQ(rows.size(), ids.size());
  float maxdiff = 0;
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t v = 0; v < V; ++v) maxdiff = std::max(maxdiff, std::fabs(rows[r][v] - full.ptr<float>()[r * V + v]));
  std::printf("  [cuda] tiny ple=%d moe=%d %s: max|decode-full|=%.3g max|gpu-cpu|=%.3g\n", ple, moe, dtype_name(dt),
              maxdiff, cpu_diff);
  EXPECT_LT(maxdiff, 1e-4f);
  EXPECT_LT(cpu_diff, 1e-4f);
  for (int l = 0; l < cfg.text.num_hidden_layers; ++l)
    if (c.has_layer(l) && cfg.text.layer_types[l] == LayerType::Sliding) {
      EXPECT_LE(c.held(l), cfg.text.sliding_window);
    }
}

TEST(CudaModel, PrefillThenDecodeEqualsFullForward) {
  REQUIRE_GPU();
  prefill_decode_case(false, false, DType::F32);
}
TEST(CudaModel, PrefillThenDecodeEqualsFullForwardPleKvSharing) {
  REQUIRE_GPU();
  prefill_decode_case(true, false, DType::F32);
}
TEST(CudaModel, PrefillThenDecodeEqualsFullForwardMoe) {
  REQUIRE_GPU();
  prefill_decode_case(false, true, DType::F32);
}
TEST(CudaModel, PrefillThenDecodeEqualsFullForwardBf16) {
  REQUIRE_GPU();
  prefill_decode_case(false, false, DType::BF16);
}

// BF16 precision on a trained model (the bundled demo, fp32-stored: bf16 copies of its weights) against the
// fp32 CPU forward, which matches HF within 1e-3 (tools/check_demo_model.sh): the issue-4 bf16 criterion,
// cosine >= 0.999 and top-1 agreement >= 98% at every position of held-out chat prompts.
TEST(CudaBf16, TrainedDemoModelTracksFp32) {
  REQUIRE_GPU();
  const std::string dir = test::source_dir() + "/models/gemma4-tiny-arith-it";
  if (!fs::exists(dir + "/model.safetensors")) GTEST_SKIP() << "no bundled model at " << dir;
  auto gm = Model::load(dir, {}, Device::CUDA, Precision::BF16);
  auto cm = Model::load(dir, {}, Device::CPU);
  ChatPrompter prompter(dir, Tokenizer::load(dir));
  std::ifstream f(dir + "/heldout_test.jsonl");
  std::string line;
  int64_t positions = 0, top1 = 0;
  double min_cos = 1.0;
  for (int n = 0; n < 12 && std::getline(f, line); ++n) {
    auto q = nlohmann::json::parse(line)["question"].get<std::string>();
    auto a = nlohmann::json::parse(line)["answer"].get<std::string>();
    // The prompt and the reference answer, so that positions inside the worked answer are compared too.
    std::vector<int64_t> ids = prompter.encode_question(q);
    for (int32_t id : prompter.tokenizer().encode(a, EncodeMode::AsIs)) ids.push_back(id);
    KVCache gc = gm->new_cache(), cc = cm->new_cache();
    Tensor g = gm->forward(ids, gc, nullptr, true), c = cm->forward(ids, cc, nullptr, true);
    Agreement r = agreement(g.ptr<float>(), c.ptr<float>(), g.dim(0), g.dim(1));
    positions += g.dim(0);
    top1 += r.top1;
    min_cos = std::min(min_cos, r.min_cos);
  }
  std::printf("  [cuda bf16] demo model: %lld positions, min cosine %.6f, top1 %lld/%lld\n", (long long)positions,
              min_cos, (long long)top1, (long long)positions);
  ASSERT_GT(positions, 100);
  EXPECT_GE(min_cos, 0.999);
  EXPECT_GE(double(top1) / positions, 0.98);
}

// BF16 precision with the 12B's head dims (256 sliding, 512 full with K = V): the fused prefill attention
// (flash_attention.cu, first prompt and a later chunk over the ring's window) and the one-launch decode
// attention inside a model. Prefill 50 + 20 decode steps + a 20-token chunk against one bf16 forward of the
// 90 tokens and against the fp32 CPU forward. With random norm weights, q.k over 256-512 dims has a spread
// of ~16 (scale 1, §2.4.2), a near one-hot softmax that bf16 rounding flips (cosine 0.62-0.69 on an H200);
// q_norm is scaled down towards a trained model's range. Even so this random model is ill-conditioned
// for bf16 (H200: split vs one forward 0.9969, one forward vs fp32 0.9920; the cuBLAS prefill path,
// GEMMA4_CUDA_FLASH=0, gives 0.9966 / 0.9914 on the same model), so the bounds are floors that a wrong
// kernel breaks; the tight per-op bounds are in CudaOps.Attention.
Weights tamed_wide_weights(const ModelConfig& cfg) {
  Weights w = random_weights(cfg, DType::BF16, 5);
  for (LayerWeights& l : w.layers) {
    std::vector<float> f = l.q_norm.f32_vector();
    for (float& x : f) x *= 0.2f;
    l.q_norm = Tensor::from_f32(f, l.q_norm.shape).to(DType::BF16);
  }
  return w;
}

TEST(CudaBf16, WideHeadsPrefillDecodeChunkTrackFull) {
  REQUIRE_GPU();
  ModelConfig cfg = tiny_config(false, false);
  cfg.text.head_dim = 256, cfg.text.global_head_dim = 512, cfg.text.sliding_window = 24;
  Model gm(cfg, tamed_wide_weights(cfg), make_cuda_ops(Precision::BF16));
  Model cm(cfg, tamed_wide_weights(cfg));
  std::vector<int64_t> ids;
  for (int i = 0; i < 90; ++i) ids.push_back((i * 37 + 11) % cfg.text.vocab_size);
  const int64_t V = cfg.text.vocab_size;
  KVCache fc = gm.new_cache(), cc = cm.new_cache(), c = gm.new_cache();
  Tensor full = gm.forward(ids, fc, nullptr, true), ref = cm.forward(ids, cc, nullptr, true);
  std::vector<float> split;
  Tensor first = gm.forward(std::vector<int64_t>(ids.begin(), ids.begin() + 50), c, nullptr, true);
  split.insert(split.end(), first.ptr<float>(), first.ptr<float>() + first.numel());
  for (size_t t = 50; t < 70; ++t) {
    Tensor l = gm.forward({ids[t]}, c, nullptr, false);
    split.insert(split.end(), l.ptr<float>(), l.ptr<float>() + V);
  }
  Tensor chunk = gm.forward(std::vector<int64_t>(ids.begin() + 70, ids.end()), c, nullptr, true);
  split.insert(split.end(), chunk.ptr<float>(), chunk.ptr<float>() + chunk.numel());
  ASSERT_EQ(int64_t(split.size()), 90 * V);
  const Agreement a = agreement(split.data(), full.ptr<float>(), 90, V);
  const Agreement b = agreement(full.ptr<float>(), ref.ptr<float>(), 90, V);
  std::printf("  [cuda bf16] hd 256/512: split vs one forward min cos %.6f top1 %d/90; one forward vs fp32 CPU min "
              "cos %.6f top1 %d/90\n",
              a.min_cos, a.top1, b.min_cos, b.top1);
  EXPECT_GE(a.min_cos, 0.99);
  EXPECT_GE(b.min_cos, 0.98);
}

// BF16 precision keeps a bf16 KV cache. On the bundled trained model, greedy answers to held-out prompts
// equal the fp32 CPU's (prefill through the tensor-core path, decode through the bf16 cache), and a
// prefill + decode split gives the logits of one full forward.
TEST(CudaBf16, TrainedDemoModelGeneratesWithBf16Cache) {
  REQUIRE_GPU();
  const std::string dir = test::source_dir() + "/models/gemma4-tiny-arith-it";
  if (!fs::exists(dir + "/model.safetensors")) GTEST_SKIP() << "no bundled model at " << dir;
  auto gm = Model::load(dir, {}, Device::CUDA, Precision::BF16);
  auto cm = Model::load(dir, {}, Device::CPU);
  ASSERT_EQ(gm->new_cache().dtype(), DType::BF16);
  ASSERT_EQ(cm->new_cache().dtype(), DType::F32);
  ChatPrompter prompter(dir, Tokenizer::load(dir));
  GenerateOptions o = default_generate_options(gm->config());
  o.max_new_tokens = 40;
  std::ifstream f(dir + "/heldout_test.jsonl");
  std::string line;
  int same = 0, n = 0;
  for (; n < 8 && std::getline(f, line); ++n) {
    auto ids = prompter.encode_question(nlohmann::json::parse(line)["question"].get<std::string>());
    same += generate(*gm, ids, o) == generate(*cm, ids, o);
  }
  std::printf("  [cuda bf16] demo model, bf16 KV cache: %d/%d greedy answers equal the fp32 CPU's\n", same, n);
  EXPECT_EQ(same, n);
  // prefill + decode == full forward, in bf16 precision with the bf16 cache (cosine per position)
  std::getline(f, line);
  auto ids = prompter.encode_question(nlohmann::json::parse(line)["question"].get<std::string>());
  KVCache full = gm->new_cache(), split = gm->new_cache();
  Tensor want = gm->forward(ids, full, nullptr, true);
  const int64_t V = want.dim(1), P = int64_t(ids.size()) - 6;
  std::vector<float> rows;
  Tensor first = gm->forward(std::vector<int64_t>(ids.begin(), ids.begin() + P), split, nullptr, true);
  rows.insert(rows.end(), first.ptr<float>(), first.ptr<float>() + first.numel());
  for (int64_t t = P; t < int64_t(ids.size()); ++t) {
    Tensor l = gm->forward({ids[t]}, split, nullptr, false);
    rows.insert(rows.end(), l.ptr<float>(), l.ptr<float>() + V);
  }
  Agreement r = agreement(rows.data(), want.ptr<float>(), want.dim(0), V);
  std::printf("  [cuda bf16] prefill + decode vs one forward: min cosine %.6f, top1 %lld/%lld\n", r.min_cos,
              (long long)r.top1, (long long)want.dim(0));
  EXPECT_GE(r.min_cos, 0.999);
  EXPECT_EQ(r.top1, want.dim(0));
}

// Batched generation on the GPU (fp32 precision): prompts of different lengths decoded together give the
// tokens of decoding each alone, on the GPU and on the CPU.
TEST(CudaModel, BatchedGenerationEqualsOneAtATime) {
  REQUIRE_GPU();
  ModelConfig cfg = tiny_config(false, false);
  Model gm(cfg, random_weights(cfg, DType::BF16, 5), make_cuda_ops());
  Model cm(cfg, random_weights(cfg, DType::BF16, 5));
  std::vector<std::vector<int64_t>> prompts;
  for (int n : {1, 4, 9, 2, 6, 3, 5, 7, 8, 2, 3}) {
    std::vector<int64_t> p;
    for (int i = 0; i < n; ++i) p.push_back((i * 37 + 11 + n) % 97);
    prompts.push_back(p);
  }
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.ignore_eos = true;
  auto got = generate_batch(gm, prompts, o, 8);  // batches of 8 then 3: the GEMV path, M = 1..8
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i], generate(gm, prompts[i], o)) << "prompt " << i;
    EXPECT_EQ(got[i], generate(cm, prompts[i], o)) << "prompt " << i << " (CPU)";
  }
  // Rows stopping at different steps (eos ids taken from the outputs above): the pipelined loop keeps the
  // survivors' logits rows, and admits waiting prompts mid-way (batches of 4).
  GenerateOptions e = o;
  e.ignore_eos = false;
  e.eos_ids = {got[0][3], got[2][6], got[5][1]};
  auto stopped = generate_batch(gm, prompts, e, 4);
  int early = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(stopped[i], generate(cm, prompts[i], e)) << "prompt " << i << " with eos (CPU)";
    early += int(stopped[i].size()) < e.max_new_tokens;
  }
  EXPECT_GE(early, 3);
  // More rows than the backend's pending-token buffer (1024): those steps run synchronously.
  std::vector<std::vector<int64_t>> many;
  for (int i = 0; i < 1030; ++i) many.push_back({int64_t(i % 97), int64_t((i * 7) % 89)});
  GenerateOptions three = o;
  three.max_new_tokens = 3;
  EXPECT_EQ(generate_batch(gm, many, three, 1030), generate_batch(cm, many, three, 1030));
}

// Decode steps recorded as CUDA graphs (ops/cuda/step_graph.h) against the same steps run eagerly: 600
// greedy steps cross the attention key-capacity buckets (256) of the full layers twice and fill the sliding
// rings, so steps are recorded, replayed and re-recorded; every step's logits must agree.
TEST(CudaGraphs, RecordedDecodeStepsMatchEager) {
  REQUIRE_GPU();
  // The tiny config, and the same with the 12B's head dims (256 sliding, 512 full: the one-launch decode
  // attention of decode_attention.cu on the sliding layers, whose split counters must survive replays).
  ModelConfig wide = tiny_config(false, false);
  wide.text.head_dim = 256, wide.text.global_head_dim = 512;
  for (const ModelConfig& cfg : {tiny_config(false, false), wide}) {
  SCOPED_TRACE(fmt::format("head_dim {}", cfg.text.head_dim));
  setenv("GEMMA4_CUDA_GRAPHS", "0", 1);
  Model eager(cfg, random_weights(cfg, DType::BF16, 9), make_cuda_ops());
  unsetenv("GEMMA4_CUDA_GRAPHS");
  Model graphs(cfg, random_weights(cfg, DType::BF16, 9), make_cuda_ops());
  const int64_t V = cfg.text.vocab_size;
  for (int batch : {1, 3}) {
    std::vector<KVCache> ec, gc;
    std::vector<std::vector<int64_t>> next;
    for (int b = 0; b < batch; ++b) {
      ec.push_back(eager.new_cache());
      gc.push_back(graphs.new_cache());
      ec.back().reserve(620);
      gc.back().reserve(620);
      std::vector<int64_t> prompt;
      for (int i = 0; i < 3 + 4 * b; ++i) prompt.push_back((i * 31 + 7 + b) % V);
      eager.forward(prompt, ec.back(), nullptr, false);
      Tensor l = graphs.forward(prompt, gc.back(), nullptr, false);
      next.push_back({int64_t(std::max_element(l.ptr<float>(), l.ptr<float>() + V) - l.ptr<float>())});
    }
    const int64_t recorded0 = graphs.ops().step_stats().steps;
    float maxdiff = 0;
    int argmax_diff = 0;
    for (int step = 0; step < 600; ++step) {
      std::vector<KVCache*> ep, gp;
      for (int b = 0; b < batch; ++b) ep.push_back(&ec[b]), gp.push_back(&gc[b]);
      Tensor e = eager.forward_batch(next, ep), g = graphs.forward_batch(next, gp);
      ASSERT_EQ(e.numel(), g.numel());
      for (int b = 0; b < batch; ++b) {
        const float* er = e.ptr<float>() + b * V;
        const float* gr = g.ptr<float>() + b * V;
        for (int64_t v = 0; v < V; ++v) maxdiff = std::max(maxdiff, std::fabs(er[v] - gr[v]));
        const int64_t ea = std::max_element(er, er + V) - er, ga = std::max_element(gr, gr + V) - gr;
        argmax_diff += ea != ga;
        next[b] = {ga};
      }
    }
    const int64_t recorded = graphs.ops().step_stats().steps - recorded0;
    std::printf("  [cuda graphs] batch %d: 600 steps, %lld ran as recordings, max|graph-eager| = %.3g\n", batch,
                (long long)recorded, maxdiff);
    EXPECT_LT(maxdiff, 1e-4f);
    EXPECT_EQ(argmax_diff, 0);
    EXPECT_GE(recorded, 580);  // all but the first (eager) step of each key
    EXPECT_EQ(eager.ops().step_stats().steps, 0);
  }
  }
}

// Token choice on the GPU against the host sampler's rule (Sampler::pick) on the same logits and draws:
// greedy, temperature, top-k, top-p, both, suppressed ids, ties (quantised logits: the lower id first), the
// 262K vocabulary and a small one.
TEST(CudaSampling, ChooseTokensMatchesHostSampler) {
  REQUIRE_GPU();
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  int checked = 0;
  for (int64_t V : {int64_t(262144), int64_t(97)})
    for (bool ties : {false, true}) {
      const int64_t B = 6;
      Tensor logits = randn({B, V}, 3.f);
      if (ties)
        for (int64_t i = 0; i < logits.numel(); ++i) logits.ptr<float>()[i] = std::round(logits.ptr<float>()[i]);
      std::vector<SamplingParams> cases(7);
      cases[1].temperature = 0.7;
      cases[2].temperature = 1.3, cases[2].top_k = 40;
      cases[3].temperature = 0.9, cases[3].top_p = 0.8;
      cases[4].temperature = 1.0, cases[4].top_k = 64, cases[4].top_p = 0.95;
      cases[5].temperature = 2.0, cases[5].top_k = 1;
      cases[6].temperature = 0.5, cases[6].top_p = 0.3;
      for (size_t c = 0; c < cases.size(); ++c)
        for (bool suppress : {false, true}) {
          SamplingParams p = cases[c];
          if (suppress) p.suppress_tokens = {0, 5, V - 1, V + 10};  // one out of range: ignored
          for (int rep = 0; rep < 3; ++rep) {
            std::vector<Ops::TokenChoice> rows;
            std::vector<int64_t> want;
            Sampler host_sampler(p);
            Tensor host = logits.to_f32();
            if (suppress)  // make a suppressed id the maximum of row 0: it must still never be chosen
              host.ptr<float>()[5] = 50.f;
            Tensor dev = gpu().to_device(host);
            for (int64_t b = 0; b < B; ++b) {
              const double u = uni(rng());
              rows.push_back({p.temperature, p.top_k, p.top_p, u});
              want.push_back(host_sampler.pick(host.ptr<float>() + b * V, V, u));
            }
            std::vector<int64_t> got;
            ASSERT_TRUE(gpu().choose_tokens(dev, rows, p.suppress_tokens, got));
            EXPECT_EQ(got, want) << "V=" << V << " ties=" << ties << " case " << c << " suppress=" << suppress;
            ++checked;
          }
        }
    }
  std::printf("  [cuda sampling] %d batches of 6 rows: GPU choice == host sampler\n", checked);
}

// Many draws against the host sampler: 300 batches of 256 rows of 97 logits, temperature, top-k and top-p varied
// by batch. Draws near a cumulative boundary take the neighbouring token unless the GPU's weights are the host's
// to the last bits (z - max rounded to float before the exponential).
TEST(CudaSampling, ManyDrawsMatchHostSampler) {
  REQUIRE_GPU();
  std::mt19937 g(77);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  const int64_t B = 256, V = 97;
  int64_t mismatches = 0, draws = 0;
  for (int batch = 0; batch < 300; ++batch) {
    SamplingParams p;
    p.temperature = 0.3 + 1.7 * uni(g);
    p.top_k = batch % 3 == 0 ? 0 : 20 + batch % 50;
    p.top_p = batch % 2 ? 1.0 : 0.5 + 0.45 * uni(g);
    Tensor logits = randn({B, V}, 4.f);
    Sampler host_sampler(p);
    std::vector<Ops::TokenChoice> rows;
    std::vector<int64_t> want, got;
    for (int64_t b = 0; b < B; ++b) {
      const double u = uni(g);
      rows.push_back({p.temperature, p.top_k, p.top_p, u});
      want.push_back(host_sampler.pick(logits.ptr<float>() + b * V, V, u));
    }
    Tensor dev = gpu().to_device(logits);
    ASSERT_TRUE(gpu().choose_tokens(dev, rows, {}, got));
    for (int64_t b = 0; b < B; ++b) mismatches += got[size_t(b)] != want[size_t(b)];
    draws += B;
  }
  EXPECT_EQ(mismatches, 0) << "of " << draws << " draws";
  std::printf("  [cuda sampling] %lld draws: %lld differ from the host sampler\n", (long long)draws,
              (long long)mismatches);
}

// Signed zeros: the host sampler's comparisons tie -0.0 and +0.0 (then the smaller id first), so must the GPU's
// order keys. Rounded random logits hit this (2 of 40 repetitions of ChooseTokensMatchesHostSampler failed).
TEST(CudaSampling, SignedZerosTieAsOnTheHost) {
  REQUIRE_GPU();
  const int64_t V = 97;
  for (int64_t big : {int64_t(V), int64_t(262144)})
    for (double temperature : {0.0, 0.8})
      for (int64_t top_k : {int64_t(0), int64_t(1), int64_t(2)}) {
        const int64_t B = 4;
        Tensor logits = Tensor::empty(DType::F32, {B, big});
        for (int64_t i = 0; i < logits.numel(); ++i) logits.ptr<float>()[i] = -30.f;
        for (int64_t b = 0; b < B; ++b) {  // the maxima: -0.0 before +0.0 (rows 0, 2) or after it (rows 1, 3)
          float* r = logits.ptr<float>() + b * big;
          r[3 + b] = b % 2 ? 0.0f : -0.0f;
          r[big - 5] = b % 2 ? -0.0f : 0.0f;
          r[10] = -0.0f;  // a third zero
        }
        SamplingParams p;
        p.temperature = temperature, p.top_k = top_k;
        Sampler host_sampler(p);
        std::vector<Ops::TokenChoice> rows;
        std::vector<int64_t> want, got;
        Tensor host = logits.to_f32();
        for (int64_t b = 0; b < B; ++b) {
          const double u = (double(b) + 0.5) / double(B);
          rows.push_back({p.temperature, p.top_k, p.top_p, u});
          want.push_back(host_sampler.pick(host.ptr<float>() + b * big, big, u));
        }
        Tensor dev = gpu().to_device(logits);
        ASSERT_TRUE(gpu().choose_tokens(dev, rows, {}, got));
        EXPECT_EQ(got, want) << "V=" << big << " temperature " << temperature << " top_k " << top_k;
      }
}

// Sampled generation (temperature, top-k, top-p, seeds) on the GPU follows the CPU token for token.
TEST(CudaSampling, SampledGenerationMatchesCpu) {
  REQUIRE_GPU();
  ModelConfig cfg = tiny_config(false, false);
  Model gm(cfg, random_weights(cfg, DType::F32, 3), make_cuda_ops());
  Model cm(cfg, random_weights(cfg, DType::F32, 3));
  GenerateOptions o;
  o.max_new_tokens = 24;
  o.ignore_eos = true;
  o.sampling.temperature = 0.9;
  o.sampling.top_k = 30;
  o.sampling.top_p = 0.95;
  o.sampling.suppress_tokens = {3, 4};
  for (uint64_t seed : {1u, 2u, 3u}) {
    o.sampling.seed = seed;
    std::vector<int64_t> prompt = {5, 17, 33, int64_t(seed)};
    const std::vector<int64_t> got = generate(gm, prompt, o);
    EXPECT_EQ(got, generate(cm, prompt, o)) << "seed " << seed;
    // Stopped by an eos mid-way: the GPU's pipelined loop has already issued the next step when it reads the
    // eos; that step is dropped. The streamed tokens are the returned ones.
    GenerateOptions e = o;
    e.ignore_eos = false;
    e.eos_ids = {got[6]};
    std::vector<int64_t> streamed;
    const std::vector<int64_t> stopped = generate(gm, prompt, e, nullptr, [&](int64_t id) { streamed.push_back(id); });
    EXPECT_EQ(stopped, generate(cm, prompt, e)) << "seed " << seed;
    EXPECT_EQ(stopped, streamed);
    EXPECT_LE(stopped.size(), 7u);
    EXPECT_EQ(stopped.back(), got[6]);
  }
  auto g = generate_batch(gm, {{5, 6}, {7, 8, 9}, {10}}, o, 3), c = generate_batch(cm, {{5, 6}, {7, 8, 9}, {10}}, o, 3);
  EXPECT_EQ(g, c);
}

// ---- CLI ------------------------------------------------------------------------------------------------
TEST(CudaCli, DeviceFlag) {
  const std::string dir = test::source_dir() + "/tests/fixtures/unified_text_causal";
  auto ref = SafetensorsFile::open(dir + "/reference.safetensors");
  std::vector<int64_t> prompt = ref->get("gen_prompt_ids").i64_vector();
  std::string ids;
  for (size_t i = 0; i < prompt.size(); ++i) ids += (i ? "," : "") + std::to_string(prompt[i]);
  auto cpu_run = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", ids, "--max-new-tokens", "6",
                                   "--ignore-eos", "--ids-only", "--device", "cpu"});
  ASSERT_EQ(cpu_run.exit_code, 0) << cpu_run.err;
  auto cuda_run = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", ids, "--max-new-tokens", "6",
                                    "--ignore-eos", "--ids-only", "--device", "cuda"});
  auto bad = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", ids, "--device", "tpu"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  if (!gpu_present()) {
    // Without a GPU: one clear line and a non-zero exit.
    EXPECT_NE(cuda_run.exit_code, 0);
    EXPECT_NE(cuda_run.err.find("CUDA is not available"), std::string::npos) << cuda_run.err;
    EXPECT_EQ(std::count(cuda_run.err.begin(), cuda_run.err.end(), '\n'), 1) << cuda_run.err;
    GTEST_SKIP() << "no GPU: checked the --device cuda error only (" << g_why << ")";
  }
  ASSERT_EQ(cuda_run.exit_code, 0) << cuda_run.err;
  EXPECT_EQ(cuda_run.out, cpu_run.out);
  // The default picks the GPU when one is present; the output is the same.
  auto auto_run = test::run_gemma4({"generate", "--model", dir, "--prompt-ids", ids, "--max-new-tokens", "6",
                                    "--ignore-eos", "--ids-only"});
  EXPECT_EQ(auto_run.out, cpu_run.out);
}

}  // namespace
