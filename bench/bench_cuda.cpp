// CUDA benchmark of the first (correctness-first) CUDA backend on a random-weight model with real shapes
// (default: the 12B Unified text model, bf16 weights). Every figure comes with a ceiling measured in the
// same run on the same GPU: decode tok/s against the memory-bandwidth roofline (device copy bandwidth /
// weight bytes read per token). Weights are generated on the device side (tiled from a random host pool),
// so no 24 GB host copy is made.
// Usage: bench_cuda [--arch 12b] [--prefill 512,4096] [--decode N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/keymap.h"
#include "model/model.h"
#include "model/registry.h"
#include "ops/ops.h"

#ifdef GEMMA4_HAS_CUDA
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

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string arch = "12b";
    std::vector<int64_t> prefill = {512, 4096};
    int decode = 16;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--arch" && i + 1 < argc) arch = argv[++i];
      else if (a == "--prefill" && i + 1 < argc) prefill = parse_list(argv[++i]);
      else if (a == "--decode" && i + 1 < argc) decode = std::atoi(argv[++i]);
      else throw Error("usage: bench_cuda [--arch 12b] [--prefill 512,4096] [--decode N]");
    }
    std::string why;
    if (!cuda_available(&why)) {
      std::printf("bench_cuda: skipped: %s\n", why.c_str());
      return 0;
    }
    cudaDeviceProp prop{};
    ck(cudaGetDeviceProperties(&prop, 0), "properties");
    std::printf("GPU: %s, %d SMs, %.1f GiB\n", prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0);
    const double bw = copy_bandwidth(size_t(2) << 30);
    std::printf("device copy bandwidth (read+write): %.0f GB/s\n", bw / 1e9);

    ModelConfig cfg = arch_config(arch);
    BindOptions bo;
    bo.use_vision = false;
    bo.use_audio = false;
    cfg.vision.reset();
    cfg.audio.reset();
    auto ops = make_cuda_ops();
    // Random pools on the host, tiled into every weight on the device.
    const int64_t pool_n = int64_t(1) << 24;
    std::mt19937 g(42);
    std::normal_distribution<float> nd(0.f, 0.02f), nn(1.f, 0.05f);
    Tensor small = Tensor::empty(DType::BF16, {pool_n}), near1 = Tensor::empty(DType::BF16, {pool_n});
    for (int64_t i = 0; i < pool_n; ++i) {
      small.ptr<uint16_t>()[i] = f32_to_bf16(nd(g));
      near1.ptr<uint16_t>()[i] = f32_to_bf16(nn(g));
    }
    Tensor dsmall = ops->to_device(small), dnear1 = ops->to_device(near1);
    double t0 = now();
    size_t weight_bytes = 0;
    Weights w;
    for_each_parameter(cfg, Layout::UnifiedConditional, bo, w, [&](const ExpectedTensor& e, Tensor& slot) {
      slot = ops->alloc(DType::BF16, e.shape);
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
    if (cfg.text.tie_word_embeddings) w.lm_head = w.embed_tokens;
    ops->synchronize();
    Model m(cfg, std::move(w), std::move(ops));
    std::printf("model %s: %.2f GB of bf16 weights made on the GPU in %.1f s; GPU memory in use %.1f GB\n",
                arch.c_str(), weight_bytes / 1e9, now() - t0, used_bytes() / 1e9);
    const double roofline = bw / double(weight_bytes);  // tok/s if every weight byte is read once per token
    const int64_t V = cfg.text.vocab_size;
    std::printf("%-34s %12s %12s %12s\n", "phase", "tok/s", "roofline", "ratio");
    // Warm-up (module load, cuBLAS handles).
    {
      KVCache c = m.new_cache();
      m.forward({2, 3, 4}, c, nullptr, false);
      m.forward({5}, c, nullptr, false);
    }
    size_t peak = used_bytes();
    for (int64_t T : prefill) {
      std::vector<int64_t> ids(T);
      for (int64_t i = 0; i < T; ++i) ids[i] = (i * 7919 + 13) % V;
      KVCache c = m.new_cache();
      double a = now();
      Tensor l = m.forward(ids, c, nullptr, false);
      double pt = now() - a;
      peak = std::max(peak, used_bytes());
      std::printf("%-34s %12.1f %12s %12s\n", fmt::format("prefill {}", T).c_str(), T / pt, "-", "-");
      std::fflush(stdout);
      int64_t id = std::max_element(l.ptr<float>(), l.ptr<float>() + V) - l.ptr<float>();
      std::vector<double> times;
      for (int s = 0; s < decode; ++s) {
        double b = now();
        Tensor d = m.forward({id}, c, nullptr, false);
        times.push_back(now() - b);
        id = std::max_element(d.ptr<float>(), d.ptr<float>() + V) - d.ptr<float>();
      }
      std::sort(times.begin(), times.end());
      const double tps = 1.0 / times[times.size() / 2];
      peak = std::max(peak, used_bytes());
      std::printf("%-34s %12.2f %12.1f %11.1f%%\n", fmt::format("decode batch 1, context {}", T).c_str(), tps, roofline,
                  100.0 * tps / roofline);
      std::fflush(stdout);
    }
    std::printf("peak GPU memory in use (cudaMemGetInfo, sampled): %.1f GB\n", peak / 1e9);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda: error: %s\n", e.what());
    return 1;
  }
}
#endif
