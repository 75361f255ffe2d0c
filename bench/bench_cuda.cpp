// CUDA benchmark on a random-weight model with real shapes (default: the 12B Unified text model, bf16
// weights, bf16 precision). Every figure comes with a ceiling measured in the same run on the same GPU:
// decode tok/s against the memory-bandwidth roofline (device copy bandwidth / weight bytes read per token).
// Weights are generated on the device (tiled from a random host pool), so no 24 GB host copy is made.
// Decode at context C: the cache is filled by a chunked prefill of C tokens (chunks of --chunk), then
// --decode greedy steps are timed (median). tools/bench_gpu.sh runs this and HF transformers on the same
// config and prints the comparison table.
// Usage: bench_cuda [--arch 12b] [--precision bf16|f32] [--prefill 512,4096] [--contexts 512,4096,32768]
//                   [--decode N] [--chunk 4096] [--batches 8,32] [--json FILE]
//        bench_cuda --micro          per-op timings of the 12B decode shapes (GEMV GB/s, attention, norms) and
//                                    of its prefill GEMMs at 4096 rows (TFLOP/s)
//        bench_cuda --shrink 16      the 12B op sequence with tiny widths: the host-bound ceiling of decode
//        bench_cuda --load-test DIR  write a random 12B checkpoint to DIR (once; use a tmpfs), time Model::load
// GEMMA4_CUDA_PROFILE=1 adds a per-op GPU/host time table (src/ops/cuda/op_profiler.h).
// GEMMA4_BENCH_PROFILE_STEP=1 brackets one eager decode step per context with cudaProfilerStart/Stop:
//   ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum bench_cuda ...
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "model/keymap.h"
#include "model/model.h"
#include "model/registry.h"
#include "ops/ops.h"

#ifdef GEMMA4_HAS_CUDA
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#endif

using namespace gemma4;

#ifndef GEMMA4_HAS_CUDA
int main() {
  std::printf("bench_cuda: this build has no CUDA support\n");
  return 0;
}
#else
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

void ck(cudaError_t e, const char* w) {
  if (e != cudaSuccess) throw Error("{}: {}", w, cudaGetErrorString(e));
}

// Device copy bandwidth (bytes read + written per second), median of 10 copies of `bytes`.
double copy_bandwidth(size_t bytes) {
  void *a = nullptr, *b = nullptr;
  ck(cudaMalloc(&a, bytes), "malloc");
  ck(cudaMalloc(&b, bytes), "malloc");
  ck(cudaMemset(a, 1, bytes), "memset");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < 12; ++i) {
    cudaEventRecord(e0);
    ck(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "copy");
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    if (i >= 2) ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  cudaFree(a);
  cudaFree(b);
  return 2.0 * double(bytes) / (ms[ms.size() / 2] * 1e-3);
}

size_t used_bytes() {
  size_t f = 0, t = 0;
  cudaMemGetInfo(&f, &t);
  return t - f;
}

std::vector<int64_t> parse_list(const std::string& s) {
  std::vector<int64_t> v;
  size_t p = 0;
  while (p < s.size()) {
    size_t q = s.find(',', p);
    if (q == std::string::npos) q = s.size();
    v.push_back(std::stoll(s.substr(p, q - p)));
    p = q + 1;
  }
  return v;
}

// Per-op timings of the 12B decode shapes: 50 back-to-back calls between two events (host overhead hidden
// unless the op is shorter than its launch), GB/s for the matmuls against the copy bandwidth.
int run_micro(Precision prec, double bw) {
  auto ops = make_cuda_ops(prec);
  std::mt19937 g(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  // Random values tiled from a pool of 1,000,003 draws (a fresh offset per tensor): drawing each of the
  // ~1.5 G weight values of the cycled copies below one by one took most of a --micro run's device time.
  std::vector<float> pool(1000003);
  for (auto& x : pool) x = 0.05f * nd(g);
  size_t offset = 0;
  auto dev = [&](Shape shape, DType dt) {
    std::vector<float> v(size_t(shape_numel(shape)));
    offset = (offset + 7919) % pool.size();
    for (size_t o = 0; o < v.size();) {
      const size_t from = o == 0 ? offset : 0, n = std::min(pool.size() - from, v.size() - o);
      std::memcpy(v.data() + o, pool.data() + from, n * sizeof(float));
      o += n;
    }
    return ops->to_device(Tensor::from_f32(v, shape).to(dt));
  };
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  auto time_us = [&](auto&& fn) {
    fn();
    ops->synchronize();
    cudaEventRecord(e0);
    for (int i = 0; i < 50; ++i) fn();
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    return 1000.0 * ms / 50;
  };
  std::printf("%-48s %10s %10s\n", "op (12B decode shape)", "us/call", "GB/s");
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
           {2048, 3840}, {4096, 3840}, {3840, 4096}, {8192, 3840}, {15360, 3840}, {3840, 15360}, {262144, 3840}}) {
    // Copies of the weight cycled through, > 4x the L2 in all, so every call streams from memory as in a
    // decode step (one op repeated on one weight would read a small matrix from L2).
    Tensor x = dev({1, K}, DType::F32), y = ops->alloc(DType::F32, {1, N});
    const int copies = int(std::max<int64_t>(1, (int64_t(256) << 20) / (N * K * 2)));
    std::vector<Tensor> ws;
    for (int c = 0; c < copies; ++c) ws.push_back(dev({N, K}, DType::BF16));
    int next = 0;
    double us = time_us([&] { ops->linear(x, ws[next++ % copies], y); });
    std::printf("%-48s %10.1f %10.0f\n", fmt::format("linear bf16 M=1 N={} K={} ({} copies)", N, K, copies).c_str(), us,
                ws[0].nbytes() / (us * 1e3));
  }
  // Prefill matmuls (4096 rows): the linear op as the forward calls it (x to bf16, then the tensor-core GEMM).
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{
           {2048, 3840}, {4096, 3840}, {8192, 3840}, {3840, 4096}, {15360, 3840}, {30720, 3840}, {3840, 15360}}) {
    const int64_t M = 4096;
    Tensor x = dev({M, K}, DType::F32), w = dev({N, K}, DType::BF16), y = ops->alloc(DType::F32, {M, N});
    Tensor xb = ops->alloc(DType::BF16, {M, K});
    const double us = time_us([&] { ops->linear(x, w, y); });
    const double conv = time_us([&] { ops->copy(x, xb); });
    std::printf("%-48s %10.1f %10.0f   (x to bf16 alone %.1f us)\n",
                fmt::format("linear bf16 M={} N={} K={} (TFLOP/s)", M, N, K).c_str(), us, 2.0 * M * N * K / (us * 1e6),
                conv);
  }
  {  // A sliding layer's q/k/v projections and feed-forward at 4096 rows, as the forward calls them.
    const int64_t M = 4096, K = 3840, I = 15360;
    Tensor x = dev({M, K}, DType::F32), wq = dev({4096, K}, DType::BF16), wk = dev({2048, K}, DType::BF16);
    Tensor wv = dev({2048, K}, DType::BF16), q = ops->alloc(DType::F32, {M, 4096});
    Tensor k = ops->alloc(DType::F32, {M, 2048}), v = ops->alloc(DType::F32, {M, 2048});
    double us = time_us([&] { ops->linear_qkv(x, wq, wk, &wv, q, k, &v); });
    std::printf("%-48s %10.1f %10.0f\n", "linear_qkv M=4096 N=4096+2048+2048 (TFLOP/s)", us,
                2.0 * M * 8192 * K / (us * 1e6));
    Tensor wg = dev({I, K}, DType::BF16), wu = dev({I, K}, DType::BF16), wd = dev({K, I}, DType::BF16);
    Tensor g = ops->alloc(DType::F32, {M, I}), u = ops->alloc(DType::F32, {M, I}), f = ops->alloc(DType::F32, {M, K});
    us = time_us([&] { ops->feed_forward(x, wg, wu, wd, g, u, f); });
    std::printf("%-48s %10.1f %10.0f\n", "feed_forward M=4096 I=15360 (TFLOP/s)", us, 6.0 * M * I * K / (us * 1e6));
    Tensor both = dev({2 * I, K}, DType::BF16);  // gate and up side by side, as Model packs them
    Tensor pg = both.slice_rows(0, I), pu = both.slice_rows(I, 2 * I);
    us = time_us([&] { ops->feed_forward(x, pg, pu, wd, g, u, f); });
    std::printf("%-48s %10.1f %10.0f\n", "feed_forward M=4096 I=15360 gate|up packed", us, 6.0 * M * I * K / (us * 1e6));
  }
  // Rows: the GEMV kernel (M <= kGemvMaxRows in cuda_ops.cpp) against cuBLAS tensor cores above it.
  for (int64_t M : {2, 4, 6, 8, 16, 32}) {
    const int64_t N = 15360, K = 3840;
    Tensor x = dev({M, K}, DType::F32), w = dev({N, K}, DType::BF16), y = ops->alloc(DType::F32, {M, N});
    double us = time_us([&] { ops->linear(x, w, y); });
    std::printf("%-48s %10.1f %10.0f\n", fmt::format("linear bf16 M={} N={} K={}", M, N, K).c_str(), us,
                w.nbytes() / (us * 1e3));
  }
  {
    Tensor x = dev({1, 3840}, DType::F32), wg = dev({15360, 3840}, DType::BF16), wu = dev({15360, 3840}, DType::BF16);
    Tensor y = ops->alloc(DType::F32, {1, 15360}), sc = ops->alloc(DType::F32, {1, 15360});
    double us = time_us([&] { ops->linear_gelu_mul(x, wg, wu, y, sc); });
    std::printf("%-48s %10.1f %10.0f\n", "linear_gelu_mul bf16 M=1 N=15360 K=3840", us, 2 * wg.nbytes() / (us * 1e3));
  }
  for (auto [nkv, hd, with_v] : std::vector<std::tuple<int64_t, int64_t, bool>>{{8, 256, true}, {1, 512, false}}) {
    const int64_t K = 3840;
    Tensor x = dev({1, K}, DType::F32), q = ops->alloc(DType::F32, {1, 16 * hd});
    Tensor k = ops->alloc(DType::F32, {1, nkv * hd}), v = ops->alloc(DType::F32, {1, nkv * hd});
    const int copies = 6;  // cycled, as for the linear shapes above
    std::vector<Tensor> wq, wk, wv;
    for (int c = 0; c < copies; ++c)
      wq.push_back(dev({16 * hd, K}, DType::BF16)), wk.push_back(dev({nkv * hd, K}, DType::BF16)),
          wv.push_back(dev({nkv * hd, K}, DType::BF16));
    int next = 0;
    double us = time_us([&] {
      const int c = next++ % copies;
      ops->linear_qkv(x, wq[c], wk[c], with_v ? &wv[c] : nullptr, q, k, with_v ? &v : nullptr);
    });
    const double bytes = double(wq[0].nbytes() + wk[0].nbytes() + (with_v ? wv[0].nbytes() : 0));
    std::printf("%-48s %10.1f %10.0f\n", fmt::format("linear_qkv bf16 M=1 N={} K={}", bytes / 2 / K, K).c_str(), us,
                bytes / (us * 1e3));
  }
  for (auto [hq, hkv, hd, S, W] : std::vector<std::tuple<int, int, int, int64_t, int>>{
           {16, 8, 256, 512, 1024}, {16, 8, 256, 1024, 1024}, {16, 1, 512, 4096, 0}, {16, 1, 512, 32768, 0}}) {
    // K/V in the dtype of the KV cache that precision keeps (bf16 in bf16 precision, as Model::new_cache).
    const DType kv_dt = prec == Precision::BF16 ? DType::BF16 : DType::F32;
    Tensor q = dev({1, int64_t(hq) * hd}, DType::F32), k = dev({S, int64_t(hkv) * hd}, kv_dt),
           v = dev({S, int64_t(hkv) * hd}, kv_dt), o = ops->alloc(DType::F32, {1, int64_t(hq) * hd});
    std::vector<int64_t> qp = {S - 1}, kp(S);
    for (int64_t i = 0; i < S; ++i) kp[i] = i;
    AttnMask m;
    m.q_pos = qp.data();
    m.k_pos = kp.data();
    m.window = W;
    double us = time_us([&] { ops->attention(q, k, v, hq, hkv, hd, 1.f, m, o); });
    std::printf("%-48s %10.1f %10.0f\n", fmt::format("attention decode heads {}/{} hd {} keys {}", hq, hkv, hd, S).c_str(),
                us, 2.0 * k.nbytes() / (us * 1e3));
  }
  {
    Tensor x = dev({1, 3840}, DType::F32), w = dev({3840}, DType::BF16), y = ops->alloc(DType::F32, {1, 3840});
    std::printf("%-48s %10.1f\n", "rmsnorm 3840", time_us([&] { ops->rmsnorm(x, &w, 1e-6f, y); }));
    Tensor f = dev({1, 3840}, DType::F32);
    std::printf("%-48s %10.1f\n", "add_rmsnorm_norm 3840",
                time_us([&] { ops->add_rmsnorm_norm(x, f, w, 1e-6f, nullptr, w, y); }));
    Tensor a = ops->alloc(DType::F32, {1, 2048}), b = ops->alloc(DType::F32, {1, 2048});
    std::printf("%-48s %10.1f\n", "copy 8 KB (KV append)", time_us([&] { ops->copy(a, b); }));
  }
  {  // A sliding layer's tail (o, add + norms, gate/up, down, add + norms): five launches against layer_tail.cu's
     // one (GEMMA4_CUDA_LAYER_TAIL=1), weights cycled through 2 copies (> the L2) as for the GEMVs above.
    const int64_t H = 3840, Q = 4096, I = 15360;
    struct LayerW {
      Tensor wo, wg, wu, wd;
    };
    std::vector<LayerW> ws;
    for (int c = 0; c < 2; ++c)
      ws.push_back(
          {dev({H, Q}, DType::BF16), dev({I, H}, DType::BF16), dev({I, H}, DType::BF16), dev({H, I}, DType::BF16)});
    Tensor w1 = dev({H}, DType::BF16), w2 = dev({H}, DType::BF16), w3 = dev({H}, DType::BF16);
    Tensor w4 = dev({H}, DType::BF16);
    Tensor sc = ops->to_device(Tensor::from_f32({0.7f}, {1}).to(DType::BF16));
    Tensor x = dev({1, H}, DType::F32), o = dev({1, Q}, DType::F32), next = ops->alloc(DType::F32, {1, H});
    Tensor an = ops->alloc(DType::F32, {1, H}), m = ops->alloc(DType::F32, {1, H}), f = ops->alloc(DType::F32, {1, H});
    Tensor g = ops->alloc(DType::F32, {1, I}), u = ops->alloc(DType::F32, {1, I});
    for (const char* form : {"0", "1"}) {
      setenv("GEMMA4_CUDA_LAYER_TAIL", form, 1);
      int next_w = 0;
      const double us = time_us([&] {
        const LayerW& l = ws[next_w++ % 2];
        ops->layer_tail(x, o, l.wo, w1, w2, l.wg, l.wu, l.wd, w3, sc, w4, 1e-6f, an, m, g, u, f, next);
      });
      const char* what =
          form[0] == '1' ? "layer tail, one launch (12B sliding layer)" : "layer tail, five launches (12B sliding layer)";
      std::printf("%-48s %10.1f %10.0f\n", what, us, (ws[0].wo.nbytes() + 2 * ws[0].wg.nbytes() + ws[0].wd.nbytes()) / (us * 1e3));
    }
    unsetenv("GEMMA4_CUDA_LAYER_TAIL");
  }
  std::printf("(copy bandwidth %.0f GB/s)\n", bw / 1e9);
  return 0;
}

// Load time of a real checkpoint layout: a random bf16 checkpoint of the preset (text weights, tiled from
// a 2 GB random pool; config.json as an export writes it) is written to DIR once, then Model::load uploads
// it to the GPU (mmap'ed file -> device, in the stored dtype: no host fp32 copy). The file was just written,
// so it is read from the page cache: the figure is the engine's own cost, not the disk's (put DIR on a
// tmpfs such as /dev/shm: writing 24 GB to a slow disk takes minutes).
int run_load_test(const std::string& arch, const std::string& dir, Precision prec) {
  namespace fs = std::filesystem;
  ModelConfig cfg = arch_config(arch);
  cfg.vision.reset();
  cfg.audio.reset();
  if (!fs::exists(dir + "/model.safetensors")) {
    fs::create_directories(dir);
    const int64_t pool_n = int64_t(1) << 30;  // 2 GiB of bf16
    Tensor pool = Tensor::empty(DType::BF16, {pool_n});
    std::mt19937 g(7);
    std::normal_distribution<float> nd(0.f, 0.02f);
    const int64_t seed_n = int64_t(1) << 22;
    for (int64_t i = 0; i < seed_n; ++i) pool.ptr<uint16_t>()[i] = f32_to_bf16(nd(g));
    for (int64_t o = seed_n; o < pool_n; o += seed_n)
      std::memcpy(pool.ptr<uint16_t>() + o, pool.ptr<uint16_t>(), size_t(std::min(seed_n, pool_n - o)) * 2);
    std::vector<std::pair<std::string, Tensor>> tensors;
    Weights w;
    BindOptions bo;
    bo.use_vision = false;
    bo.use_audio = false;
    for_each_parameter(cfg, Layout::UnifiedConditional, bo, w, [&](const ExpectedTensor& e, Tensor& slot) {
      G4_CHECK(shape_numel(e.shape) <= pool_n, "tensor {} larger than the random pool", e.name);
      Tensor t = pool;
      t.shape = e.shape;
      tensors.emplace_back(e.name, t);
    });
    double t0 = now();
    save_safetensors(dir + "/model.safetensors", tensors);
    std::ofstream(dir + "/config.json") << cfg.to_json().dump(2);
    std::printf("wrote a random %s checkpoint (%zu tensors) to %s in %.1f s\n", arch.c_str(), tensors.size(),
                dir.c_str(), now() - t0);
  }
  std::printf("loading %s onto the GPU (precision %s)\n", dir.c_str(), precision_name(prec));
  std::fflush(stdout);
  double t0 = now();
  auto m = Model::load(dir, {}, Device::CUDA, prec);
  m->ops().synchronize();
  const double load_s = now() - t0;
  size_t bytes = 0;
  const auto file = SafetensorsFile::open(dir + "/model.safetensors");  // held: the loop reads its table
  for (auto& [name, info] : file->tensors()) bytes += info.end - info.begin;
  std::printf("Model::load of %s (%.2f GB, %s) onto the GPU: %.2f s = %.1f GB/s (page cache warm)\n", arch.c_str(),
              bytes / 1e9, dir.c_str(), load_s, bytes / 1e9 / load_s);
  KVCache c = m->new_cache();
  Tensor l = m->forward({2, 100, 200}, c, nullptr, false);
  std::printf("first forward after load: logits [%lld, %lld] finite: %s\n", (long long)l.dim(0), (long long)l.dim(1),
              std::isfinite(l.ptr<float>()[0]) ? "yes" : "no");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string arch = "12b", json_path, precision = "bf16";
    std::vector<int64_t> prefill = {512, 4096}, contexts = {512, 4096, 32768};
    int decode = 32;
    int64_t chunk = 4096;
    std::vector<int> batches = {8, 32};
    bool micro = false;  // --micro: per-op timings of the decode shapes, then exit
    std::string load_dir;  // --load-test DIR: write a random checkpoint of --arch there (if absent), time Model::load
    int shrink = 1;  // > 1: hidden, intermediate and vocab divided by it (same op count: measures host overhead)
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--arch" && i + 1 < argc) arch = argv[++i];
      else if (a == "--precision" && i + 1 < argc) precision = argv[++i];
      else if (a == "--prefill" && i + 1 < argc) prefill = parse_list(argv[++i]);
      else if (a == "--contexts" && i + 1 < argc) contexts = parse_list(argv[++i]);
      else if (a == "--decode" && i + 1 < argc) decode = std::atoi(argv[++i]);
      else if (a == "--chunk" && i + 1 < argc) chunk = std::atoll(argv[++i]);
      else if (a == "--json" && i + 1 < argc) json_path = argv[++i];
      else if (a == "--shrink" && i + 1 < argc) shrink = std::atoi(argv[++i]);
      else if (a == "--micro") micro = true;
      else if (a == "--load-test" && i + 1 < argc) load_dir = argv[++i];
      else if (a == "--batches" && i + 1 < argc) {
        batches.clear();
        for (int64_t b : parse_list(argv[++i])) batches.push_back(int(b));
      }
      else
        throw Error("usage: bench_cuda [--arch 12b] [--precision bf16|f32] [--prefill 512,4096] "
                    "[--contexts 512,4096,32768] [--decode N] [--chunk 4096] [--json FILE] [--shrink N] [--batches 8,32] [--micro] [--load-test DIR]");
    }
    std::string why;
    if (!cuda_available(&why)) {
      std::printf("bench_cuda: skipped: %s\n", why.c_str());
      return 0;
    }
    const Precision prec = select_precision(precision).value_or(Precision::BF16);
    cudaDeviceProp prop{};
    ck(cudaGetDeviceProperties(&prop, 0), "properties");
    std::printf("GPU: %s, %d SMs, %.1f GiB; precision %s\n", prop.name, prop.multiProcessorCount,
                prop.totalGlobalMem / 1073741824.0, precision_name(prec));
    const double bw = copy_bandwidth(size_t(2) << 30);
    std::printf("device copy bandwidth (read+write): %.0f GB/s\n", bw / 1e9);

    if (micro) return run_micro(prec, bw);
    if (!load_dir.empty()) return run_load_test(arch, load_dir, prec);
    ModelConfig cfg = arch_config(arch);
    BindOptions bo;
    bo.use_vision = false;
    bo.use_audio = false;
    cfg.vision.reset();
    cfg.audio.reset();
    if (shrink > 1) {
      cfg.text.hidden_size /= shrink;
      cfg.text.intermediate_size /= shrink;
      cfg.text.vocab_size /= shrink;
      std::printf("shrunk by %d: hidden %lld, intermediate %lld, vocab %lld (GPU work is tiny: host-bound figures)\n",
                  shrink, (long long)cfg.text.hidden_size, (long long)cfg.text.intermediate_size,
                  (long long)cfg.text.vocab_size);
    }
    auto ops = make_cuda_ops(prec);
    // Random pools on the host, tiled into every weight on the device.
    const int64_t pool_n = int64_t(1) << 24;
    std::mt19937 g(42);
    std::normal_distribution<float> nd(0.f, 0.02f), nn(1.f, 0.05f);
    Tensor small = Tensor::empty(DType::BF16, {pool_n}), near1 = Tensor::empty(DType::BF16, {pool_n});
    for (int64_t i = 0; i < pool_n; ++i) {
      small.ptr<uint16_t>()[i] = f32_to_bf16(nd(g));
      near1.ptr<uint16_t>()[i] = f32_to_bf16(nn(g));
    }
    double t0 = now();
    size_t weight_bytes = 0;
    Weights w;
    {
      Tensor dsmall = ops->to_device(small), dnear1 = ops->to_device(near1);
      // A layer's gate and up projections in one allocation (gate first, as Model packs a loaded checkpoint's).
      Tensor pending_up;
      for_each_parameter(cfg, Layout::UnifiedConditional, bo, w, [&](const ExpectedTensor& e, Tensor& slot) {
        const bool gate = e.name.find("mlp.gate_proj.") != std::string::npos;
        const bool up = e.name.find("mlp.up_proj.") != std::string::npos && pending_up.data &&
                        pending_up.shape == e.shape;
        if (gate) {
          Tensor both = ops->alloc(DType::BF16, {2 * e.shape.at(0), e.shape.at(1)});
          slot = both.slice_rows(0, e.shape[0]);
          pending_up = both.slice_rows(e.shape[0], 2 * e.shape[0]);
        } else if (up) {
          slot = pending_up;
          pending_up = Tensor{};
        } else {
          slot = ops->alloc(DType::BF16, e.shape);
        }
        weight_bytes += slot.nbytes();
        const bool norm = e.name.find("norm") != std::string::npos || e.name.find("layer_scalar") != std::string::npos;
        const Tensor& src = norm ? dnear1 : dsmall;
        Tensor flat = slot.reshape({slot.numel()});
        for (int64_t o = 0; o < flat.numel(); o += pool_n) {
          int64_t n = std::min(pool_n, flat.numel() - o);
          Tensor d = flat.slice_rows(o, o + n);
          ops->copy(src.slice_rows(0, n), d);
        }
      });
      ops->synchronize();
    }
    if (cfg.text.tie_word_embeddings) w.lm_head = w.embed_tokens;
    Model m(cfg, std::move(w), std::move(ops));
    const double made_s = now() - t0;
    std::printf("model %s: %.2f GB of bf16 weights made on the GPU in %.1f s\n", arch.c_str(), weight_bytes / 1e9,
                made_s);
    const double roofline = bw / double(weight_bytes);  // tok/s if every weight byte is read once per token
    const int64_t V = cfg.text.vocab_size;
    auto ids_of = [&](int64_t T, int64_t salt) {
      std::vector<int64_t> ids(T);
      for (int64_t i = 0; i < T; ++i) ids[i] = ((i + salt) * 7919 + 13) % V;
      return ids;
    };
    auto argmax = [&](const Tensor& l) {
      return int64_t(std::max_element(l.ptr<float>(), l.ptr<float>() + V) - l.ptr<float>());
    };
    // Greedy tokens of device logits [B, V], chosen on the GPU as generate() does (no [B, V] copy).
    auto greedy = [&](Tensor& l) {
      std::vector<int64_t> ids;
      G4_CHECK(m.ops().choose_tokens(l, std::vector<Ops::TokenChoice>(size_t(l.numel() / V)), {}, ids),
               "no GPU token choice");
      return ids;
    };
    {  // warm-up: module load, cuBLAS handles and workspaces, the pool
      KVCache c = m.new_cache();
      m.forward(ids_of(600, 1), c, nullptr, false);
      m.forward({5}, c, nullptr, false);
    }
    std::string json = fmt::format("{{\"gpu\": \"{}\", \"precision\": \"{}\", \"copy_bandwidth_gbs\": {:.1f}, "
                                   "\"weight_gb\": {:.3f}, \"roofline_tok_s\": {:.2f}",
                                   prop.name, precision_name(prec), bw / 1e9, weight_bytes / 1e9, roofline);
    std::printf("%-34s %12s %12s %12s\n", "phase", "tok/s", "roofline", "ratio");
    for (int64_t T : prefill) {
      std::vector<double> times;
      const Ops::MemoryStats ms0 = m.ops().memory_stats();
      for (int rep = 0; rep < 3; ++rep) {
        KVCache c = m.new_cache();
        double a = now();
        m.forward(ids_of(T, rep), c, nullptr, false);  // returns host logits: the GPU work is done
        times.push_back(now() - a);
      }
      const std::vector<double> runs = times;  // in run order, for the printout
      std::sort(times.begin(), times.end());
      const double tps = T / times[1];
      const Ops::MemoryStats ms1 = m.ops().memory_stats();
      std::printf("%-34s %12.1f %12s %12s   (3 runs: %.1f / %.1f / %.1f ms, %lld cudaMalloc, %lld cudaFree)\n",
                  fmt::format("prefill {}", T).c_str(), tps, "-", "-", 1e3 * runs[0], 1e3 * runs[1], 1e3 * runs[2],
                  (long long)(ms1.driver_allocs - ms0.driver_allocs), (long long)(ms1.driver_frees - ms0.driver_frees));
      json += fmt::format(", \"prefill_{}_tok_s\": {:.1f}", T, tps);
      std::fflush(stdout);
    }
    size_t peak_all = 0;
    const char* ps = std::getenv("GEMMA4_BENCH_PROFILE_STEP");
    const bool profile_step = ps && *ps && *ps != '0';
    for (int64_t C : contexts) {
      m.ops().release_cached_memory();
      m.ops().reset_memory_peak();
      KVCache c = m.new_cache();
      c.reserve(C + 2 * decode + 4);  // as generate() does: prompt + new tokens (recorded and eager steps)
      Tensor l;
      const double a = now();
      for (int64_t p = 0; p < C; p += chunk) {
        auto ids = ids_of(std::min(chunk, C - p), p);
        l = m.forward(ids, c, nullptr, false);
      }
      const double fill_s = now() - a;
      int64_t id = argmax(l);
      // Median step time, steps recorded as CUDA graphs (the default) or all eager, from the same cache. The
      // loop is generate()'s pipelined one: step n + 1 is issued with step n's token still on the device, then
      // the host reads that token (GEMMA4_BENCH_SYNC=1: each token read before the next step, as before).
      const char* sync_env = std::getenv("GEMMA4_BENCH_SYNC");
      const bool pipelined = m.can_forward_pending() && !(sync_env && *sync_env == '1');
      auto decode_tps = [&](bool graphs) {
        m.ops().set_step_recording(graphs);
        std::vector<double> times;
        const std::vector<Ops::TokenChoice> greedy_row(1);
        Tensor d = m.forward({id}, c, nullptr, false, nullptr, /*logits_on_device=*/true);
        if (pipelined) G4_CHECK(m.ops().choose_tokens_pending(d, greedy_row, {}), "no GPU token choice");
        else id = greedy(d)[0];
        for (int s = 0; s < decode; ++s) {
          // GEMMA4_BENCH_PROFILE_STEP=1: the middle eager step inside cudaProfilerStart/Stop, for
          // `ncu --profile-from-start off` (per-kernel times of one decode step).
          const bool profiled = !graphs && s == decode / 2 && profile_step;
          if (profiled) cudaDeviceSynchronize(), cudaProfilerStart();
          double b = now();
          if (pipelined) {
            d = m.forward_pending(c);
            id = m.ops().read_pending_tokens()[0];
            G4_CHECK(m.ops().choose_tokens_pending(d, greedy_row, {}), "no GPU token choice");
          } else {
            d = m.forward({id}, c, nullptr, false, nullptr, /*logits_on_device=*/true);
            id = greedy(d)[0];
          }
          times.push_back(now() - b);
          if (profiled) cudaProfilerStop();
        }
        if (pipelined) id = m.ops().read_pending_tokens()[0];
        m.ops().set_step_recording(true);
        std::sort(times.begin(), times.end());
        return 1.0 / times[times.size() / 2];
      };
      const Ops::StepStats st0 = m.ops().step_stats();
      const double tps = decode_tps(true);
      const Ops::StepStats st1 = m.ops().step_stats();
      const double rec = double(std::max<int64_t>(1, st1.steps - st0.steps));
      const auto ms = m.ops().memory_stats();
      peak_all = std::max(peak_all, ms.peak_reserved);
      std::printf("%-34s %12.2f %12.1f %11.1f%%   (prefill of the context: %.1f s = %.0f tok/s; peak GPU memory %.1f GB)\n",
                  fmt::format("decode batch 1, context {}", C).c_str(), tps, roofline, 100.0 * tps / roofline, fill_s,
                  C / fill_s, ms.peak_reserved / 1e9);
      std::printf("%-34s %12s %12s %12s   (%lld recorded steps: host forward %.2f ms, GPU %.2f ms per step, means)\n", "", "", "",
                  "", (long long)(st1.steps - st0.steps), 1e3 * (st1.host_seconds - st0.host_seconds) / rec,
                  1e3 * (st1.gpu_seconds - st0.gpu_seconds) / rec);
      const double eager_tps = decode_tps(false);
      std::printf("%-34s %12.2f %12.1f %11.1f%%   (every op launched by the host; graphs are %.2fx)\n",
                  fmt::format("  same, without CUDA graphs").c_str(), eager_tps, roofline, 100.0 * eager_tps / roofline,
                  tps / eager_tps);
      json += fmt::format(", \"decode_ctx{}_eager_tok_s\": {:.2f}", C, eager_tps);
      json += fmt::format(", \"decode_ctx{}_tok_s\": {:.2f}, \"peak_gb_ctx{}\": {:.2f}, \"prefill_chunked_{}_tok_s\": {:.1f}",
                          C, tps, C, ms.peak_reserved / 1e9, C, C / fill_s);
      std::fflush(stdout);
    }
    // Batched decode: B prompts of 512 tokens prefilled one by one, then B tokens per step (generate_batch's
    // step: one forward over B rows, each sequence attending to its own cache).
    for (int B : batches) {
      m.ops().release_cached_memory();
      std::vector<KVCache> caches;
      std::vector<KVCache*> ptrs;
      std::vector<std::vector<int64_t>> step(B);
      for (int b = 0; b < B; ++b) {
        caches.push_back(m.new_cache());
        caches.back().reserve(512 + decode + 1);
      }
      for (int b = 0; b < B; ++b) {
        ptrs.push_back(&caches[b]);
        Tensor l = m.forward(ids_of(512, 1000 * b), caches[b], nullptr, false);
        step[b] = {argmax(l)};
      }
      std::vector<double> times;
      const Ops::StepStats st0 = m.ops().step_stats();
      // generate_batch's pipelined loop (GEMMA4_BENCH_SYNC=1: each step's tokens read before the next step).
      const char* sync_env = std::getenv("GEMMA4_BENCH_SYNC");
      const bool pipelined = m.can_forward_pending() && !(sync_env && *sync_env == '1');
      const std::vector<Ops::TokenChoice> greedy_rows(B);
      Tensor l = m.forward_batch(step, ptrs, nullptr, false, nullptr, /*logits_on_device=*/true);
      if (pipelined) G4_CHECK(m.ops().choose_tokens_pending(l, greedy_rows, {}), "no GPU token choice");
      for (int s = 0; s < decode; ++s) {
        double t1 = now();
        if (pipelined) {
          l = m.forward_pending_batch(ptrs);
          m.ops().read_pending_tokens();
          G4_CHECK(m.ops().choose_tokens_pending(l, greedy_rows, {}), "no GPU token choice");
        } else {
          const std::vector<int64_t> ids = greedy(l);
          for (int b = 0; b < B; ++b) step[b] = {ids[b]};
          l = m.forward_batch(step, ptrs, nullptr, false, nullptr, /*logits_on_device=*/true);
        }
        times.push_back(now() - t1);
      }
      if (pipelined) m.ops().read_pending_tokens();
      std::sort(times.begin(), times.end());
      const double tps = B / times[times.size() / 2];
      const Ops::StepStats st1 = m.ops().step_stats();
      const double rec = double(std::max<int64_t>(1, st1.steps - st0.steps));
      std::printf("%-34s %12.1f %12.1f %11.1f%%   (aggregate tok/s; per sequence %.1f; %lld recorded steps: host "
                  "forward %.2f ms, GPU %.2f ms per step)\n",
                  fmt::format("decode batch {}, context 512", B).c_str(), tps, roofline, 100.0 * tps / roofline, tps / B,
                  (long long)(st1.steps - st0.steps), 1e3 * (st1.host_seconds - st0.host_seconds) / rec,
                  1e3 * (st1.gpu_seconds - st0.gpu_seconds) / rec);
      json += fmt::format(", \"decode_batch{}_tok_s\": {:.1f}", B, tps);
      std::fflush(stdout);
    }
    std::printf("peak GPU memory (caching allocator, reserved): %.1f GB; cudaMemGetInfo now: %.1f GB\n",
                peak_all / 1e9, used_bytes() / 1e9);
    json += fmt::format(", \"peak_gb\": {:.2f}}}\n", peak_all / 1e9);
    if (!json_path.empty()) {
      FILE* f = std::fopen(json_path.c_str(), "w");
      if (!f) throw Error("{}: cannot write", json_path);
      std::fputs(json.c_str(), f);
      std::fclose(f);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: error: %s\n", e.what());
    return 1;
  }
}
#endif
